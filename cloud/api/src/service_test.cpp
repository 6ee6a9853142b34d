// Service (request -> response) over a real SqliteStorage in a temp file and a FakeClock.
#include "outpost/cloud/api/service.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "outpost/cloud/crypto.h"
#include "outpost/cloud/storage/open.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/temp_dir.h"

namespace outpost::cloud::api {
namespace {

using nlohmann::json;

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    OUTPOST_ASSERT_OK_AND_ASSIGN(storage_, storage::OpenStorage("sqlite:" + dir_.File("cloud.db")));
    OUTPOST_ASSERT_OK(storage_->Migrate());
    OUTPOST_ASSERT_OK(storage_->CreateToken("gw1", false, Sha256Hex("secret"), 0));
    ServiceOptions o;
    o.max_body_bytes = 2048;
    o.limits.max_items = 5;
    service_ = std::make_unique<Service>(*storage_, clock_, o);
  }

  ServiceResponse Call(const std::string& method, const std::string& path, std::string body = "",
                       std::map<std::string, std::string> headers = {
                           {"authorization", "Bearer secret"},
                           {"content-type", "application/json"}}) {
    body_ = std::move(body);
    ServiceRequest r;
    r.method = method;
    r.path = path;
    r.headers = std::move(headers);
    r.body = body_;
    return service_->Handle(r);
  }

  static std::string Code(const ServiceResponse& r) {
    json j = json::parse(r.body, nullptr, false);
    return j.is_object() && j.contains("error") ? j["error"]["code"].get<std::string>() : "";
  }

  outpost::testing::TempDir dir_{"cloud-service-test"};
  FakeClock clock_{1'764'201'600'000};
  std::unique_ptr<Storage> storage_;
  std::unique_ptr<Service> service_;
  std::string body_;
};

TEST_F(ServiceTest, MethodNotAllowedSaysWhatIs) {
  ServiceResponse r = Call("GET", "/v1/batches");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(Code(r), "method_not_allowed");
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0], (std::pair<std::string, std::string>("Allow", "POST")));
}

TEST_F(ServiceTest, BearerSchemeIsCaseInsensitive) {
  ServiceResponse r = Call("GET", "/v1/gateways", "", {{"authorization", "bearer secret"}});
  EXPECT_EQ(r.status, 200) << r.body;
  r = Call("GET", "/v1/gateways", "", {{"authorization", "Basic secret"}});
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(Code(r), "unauthorized");
}

TEST_F(ServiceTest, ContentTypeWithCharsetIsJson) {
  ServiceResponse r = Call(
      "POST", "/sensor-data/batch", R"({"readings":[]})",
      {{"authorization", "Bearer secret"}, {"content-type", "application/json; charset=utf-8"}});
  EXPECT_EQ(r.status, 200) << r.body;
  r = Call("POST", "/sensor-data/batch", R"({"readings":[]})",
           {{"authorization", "Bearer secret"}});
  EXPECT_EQ(r.status, 415);
}

// Regression: a blank before the parameters ("application/json ;charset=utf-8", allowed by
// RFC 9110) was answered 415.
TEST_F(ServiceTest, ContentTypeWithBlanksBeforeParametersIsJson) {
  ServiceResponse r = Call(
      "POST", "/sensor-data/batch", R"({"readings":[]})",
      {{"authorization", "Bearer secret"}, {"content-type", " Application/JSON ;charset=utf-8"}});
  EXPECT_EQ(r.status, 200) << r.body;
}

// Regression: /v1/alerts accepted to_ms before from_ms (an empty answer) where /v1/readings
// answers 400.
TEST_F(ServiceTest, AlertsRangeBackwardsIs400) {
  ServiceRequest request;
  request.method = "GET";
  request.path = "/v1/alerts";
  request.headers = {{"authorization", "Bearer secret"}};
  request.params = {{"from_ms", "2000"}, {"to_ms", "1000"}};
  ServiceResponse r = service_->Handle(request);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("to_ms"), std::string::npos) << r.body;
}

TEST_F(ServiceTest, LimitsAre413) {
  ServiceResponse r = Call("POST", "/sensor-data/batch", std::string(3000, ' '));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(Code(r), "body_too_large");  // the HTTP layer's code for the same limit
  r = Call("POST", "/sensor-data/batch", R"({"readings":[{},{},{},{},{},{}]})");
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(r.body.find("limit 5"), std::string::npos) << r.body;
}

TEST_F(ServiceTest, ReplayFlipsOnlyTheReplayedFlag) {
  std::map<std::string, std::string> h = {{"authorization", "Bearer secret"},
                                          {"content-type", "application/json"},
                                          {"idempotency-key", "gw1:1:1"}};
  const std::string body = R"({"readings":[{"device_id":"n1","ts_ms":5,"metrics":{"t":1}}]})";
  ServiceResponse first = Call("POST", "/v1/batches", body, h);
  ASSERT_EQ(first.status, 200) << first.body;
  ServiceResponse second = Call("POST", "/v1/batches", body, h);
  ASSERT_EQ(second.status, 200);
  json a = json::parse(first.body), b = json::parse(second.body);
  EXPECT_EQ(a["replayed"], false);
  EXPECT_EQ(b["replayed"], true);
  b["replayed"] = false;
  EXPECT_EQ(a, b);
  EXPECT_EQ(service_->metrics().batches_replayed.load(), 1);
  EXPECT_EQ(service_->metrics().readings_accepted.load(), 1);
}

TEST_F(ServiceTest, InvalidBatchStoresNothing) {
  ServiceResponse r = Call("POST", "/sensor-data/batch", R"({"readings":{"device_id":"n1"}})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Code(r), "invalid_field");
  EXPECT_NE(r.body.find("readings: expected an array, got object"), std::string::npos) << r.body;
  auto devices = storage_->ListDevices("");
  OUTPOST_ASSERT_OK(devices);
  EXPECT_TRUE(devices->empty());
}

// issue 8: one bad item made the whole batch a 400, and the gateway dropped all of it.
TEST_F(ServiceTest, one_bad_item_is_rejected_alone) {
  ServiceResponse r = Call(
      "POST", "/sensor-data/batch",
      R"({"readings":[{"device_id":"n1","timestamp":1,"t":1},{"device_id":"n2","timestamp":"x"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  EXPECT_EQ(j["accepted"], 1);
  ASSERT_EQ(j["rejected"].size(), 1u);
  EXPECT_EQ(j["rejected"][0]["array"], "readings");
  EXPECT_EQ(j["rejected"][0]["index"], 1);
  EXPECT_EQ(j["rejected"][0]["reason"], "wrong_type");
  EXPECT_EQ(j["rejected"][0]["error"], "readings[1].timestamp: expected a number, got string");
  EXPECT_EQ(service_->metrics().items_rejected.load(), 1);
  auto devices = storage_->ListDevices("");
  OUTPOST_ASSERT_OK(devices);
  ASSERT_EQ(devices->size(), 1u);
  EXPECT_EQ((*devices)[0].device_id, "n1");
}

TEST_F(ServiceTest, HealthzNeedsNoToken) {
  ServiceResponse r = Call("GET", "/healthz", "", {});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["database"], "sqlite");
}

TEST_F(ServiceTest, MetricsRenderRequestsAndLatency) {
  service_->metrics().ObserveRequest("seed_batch", 200, 0.003);
  service_->metrics().ObserveRequest("seed_batch", 200, 0.2);
  ServiceResponse r = Call("GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4");
  EXPECT_NE(
      r.body.find("outpost_cloud_http_requests_total{endpoint=\"seed_batch\",status=\"200\"} 2"),
      std::string::npos)
      << r.body;
  EXPECT_NE(
      r.body.find(
          "outpost_cloud_http_request_seconds_bucket{endpoint=\"seed_batch\",le=\"0.005\"} 1"),
      std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find(
                "outpost_cloud_http_request_seconds_bucket{endpoint=\"seed_batch\",le=\"+Inf\"} 2"),
            std::string::npos);
}

// A Storage that fails writes and auth with kUnavailable while `down` is set, else delegates:
// the database going away without needing one that can be stopped.
class FlakyStorage final : public Storage {
 public:
  explicit FlakyStorage(Storage& real) : real_(real) {}
  bool down = false;

  const char* backend() const override { return real_.backend(); }
  Status Migrate() override { return real_.Migrate(); }
  Result<std::optional<IdempotencyRecord>> FindIdempotency(const std::string& g,
                                                           const std::string& k) override {
    if (down) return Unavailable("injected: database down");
    return real_.FindIdempotency(g, k);
  }
  Result<WriteResult> WriteBatch(const std::string& g, const std::optional<std::string>& k,
                                 const std::string& sha, const Batch& b, std::int64_t now,
                                 const ResponseBuilder& build) override {
    if (down) return Unavailable("injected: database down");
    return real_.WriteBatch(g, k, sha, b, now, build);
  }
  Result<std::int64_t> PurgeIdempotency(std::int64_t before) override {
    return real_.PurgeIdempotency(before);
  }
  Result<TokenRecord> CreateToken(const std::string& g, bool admin, const std::string& sha,
                                  std::int64_t now) override {
    return real_.CreateToken(g, admin, sha, now);
  }
  Result<Principal> Authenticate(const std::string& sha) override {
    return real_.Authenticate(sha);
  }
  Result<std::int64_t> RevokeGatewayTokens(const std::string& g, std::int64_t now) override {
    return real_.RevokeGatewayTokens(g, now);
  }
  Result<std::int64_t> RevokeToken(std::int64_t id, std::int64_t now) override {
    return real_.RevokeToken(id, now);
  }
  Result<std::vector<TokenRecord>> ListTokens() override { return real_.ListTokens(); }
  Result<std::vector<GatewayInfo>> ListGateways(const std::string& g) override {
    return real_.ListGateways(g);
  }
  Result<std::vector<DeviceInfo>> ListDevices(const std::string& g) override {
    return real_.ListDevices(g);
  }
  Result<std::vector<Point>> QueryPoints(const ReadingsQuery& q) override {
    return real_.QueryPoints(q);
  }
  Result<std::vector<Bucket>> QueryBuckets(const ReadingsQuery& q) override {
    return real_.QueryBuckets(q);
  }
  Result<std::vector<StoredAlert>> QueryAlerts(const AlertsQuery& q) override {
    return real_.QueryAlerts(q);
  }
  Status Ping() override { return down ? Unavailable("injected: database down") : real_.Ping(); }

 private:
  Storage& real_;
};

TEST_F(ServiceTest, DatabaseDownIsRetryable503AndTheRetryStores) {
  FlakyStorage flaky(*storage_);
  Service service(flaky, clock_, ServiceOptions{});
  const std::string body = R"({"readings":[{"device_id":"n1","ts_ms":5,"metrics":{"t":1}}]})";
  ServiceRequest r;
  r.method = "POST";
  r.path = "/v1/batches";
  r.headers = {{"authorization", "Bearer secret"},
               {"content-type", "application/json"},
               {"idempotency-key", "gw1:1:9"}};
  r.body = body;
  flaky.down = true;
  ServiceResponse down = service.Handle(r);
  EXPECT_EQ(down.status, 503);
  EXPECT_EQ(Code(down), "unavailable");
  ASSERT_EQ(down.headers.size(), 1u);
  EXPECT_EQ(down.headers[0].first, "Retry-After");
  EXPECT_EQ(service.metrics().storage_errors.load(), 1);
  ServiceRequest health;
  health.method = "GET";
  health.path = "/healthz";
  EXPECT_EQ(service.Handle(health).status, 503);

  flaky.down = false;
  ServiceResponse up = service.Handle(r);
  ASSERT_EQ(up.status, 200) << up.body;
  EXPECT_EQ(json::parse(up.body)["replayed"], false) << "the failed attempt left no record";
  EXPECT_EQ(json::parse(up.body)["accepted"]["readings"], 1);
}

// Errors are RFC 9457 problem+json and keep the "error" object every client reads.
TEST(ErrorResponse, EscapesAndShapes) {
  ServiceResponse r = ErrorResponse(400, "invalid_field", "x: \"quoted\"\n");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.content_type, "application/problem+json");
  json j = json::parse(r.body);
  EXPECT_EQ(j["error"]["code"], "invalid_field");
  EXPECT_EQ(j["error"]["message"], "x: \"quoted\"\n");
  EXPECT_EQ(j["status"], 400);
  EXPECT_EQ(j["title"], "Bad Request");
  EXPECT_EQ(j["detail"], "x: \"quoted\"\n");
}

}  // namespace
}  // namespace outpost::cloud::api
