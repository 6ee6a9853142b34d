// Service's two caches over a FakeStorage that counts its calls, with a FakeClock: /healthz
// checks the database at most once per healthz_max_age_ms and says how old its answer is; a
// token the database did not know is refused from memory for unknown_token_ttl_ms.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "fake_storage.h"
#include "outpost/cloud/api/service.h"
#include "outpost/cloud/crypto.h"
#include "outpost/testing/status_matchers.h"

namespace outpost::cloud::api {
namespace {

using nlohmann::json;

class ServiceCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    OUTPOST_ASSERT_OK(storage_.CreateToken("gw1", false, Sha256Hex("secret"), 0));
  }

  ServiceResponse Get(const std::string& path, const std::string& token = "secret") {
    ServiceRequest r;
    r.method = "GET";
    r.path = path;
    if (!token.empty()) r.headers = {{"authorization", "Bearer " + token}};
    return service_.Handle(r);
  }

  static std::string Code(const ServiceResponse& r) {
    json j = json::parse(r.body, nullptr, false);
    return j.is_object() && j.contains("error") ? j["error"].value("code", "") : "";
  }

  FakeStorage storage_;
  FakeClock clock_{1'764'201'600'000};
  Service service_{storage_, clock_, ServiceOptions{}};
};

TEST_F(ServiceCacheTest, forged_token_flood_costs_one_database_lookup) {
  for (int i = 0; i < 100; ++i) {
    ServiceResponse r = Get("/v1/gateways", "forged");
    ASSERT_EQ(r.status, 401) << r.body;
    EXPECT_EQ(Code(r), "unauthorized");
  }
  EXPECT_EQ(storage_.authenticate_calls.load(), 1);
  EXPECT_EQ(service_.unknown_tokens().stats().hits.load(), 99u);
  clock_.Advance(4999);
  EXPECT_EQ(Get("/v1/gateways", "forged").status, 401);
  EXPECT_EQ(storage_.authenticate_calls.load(), 1);
  clock_.Advance(1);  // the 5 s TTL is over: looked up again
  EXPECT_EQ(Get("/v1/gateways", "forged").status, 401);
  EXPECT_EQ(storage_.authenticate_calls.load(), 2);
  // A batch POST with the forged token is refused from the cache as well.
  ServiceRequest post;
  post.method = "POST";
  post.path = "/v1/batches";
  post.headers = {{"authorization", "Bearer forged"}, {"content-type", "application/json"}};
  EXPECT_EQ(service_.Handle(post).status, 401);
  EXPECT_EQ(storage_.authenticate_calls.load(), 2);
  const std::string metrics = Get("/metrics").body;  // 99 + the one at 4999 ms + the POST
  EXPECT_NE(metrics.find("outpost_cloud_unknown_token_cache_hits_total 101\n"), std::string::npos)
      << metrics;
}

TEST_F(ServiceCacheTest, a_live_token_is_looked_up_every_time_so_revocation_is_immediate) {
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Get("/v1/gateways").status, 200);
  EXPECT_EQ(storage_.authenticate_calls.load(), 3);
  OUTPOST_ASSERT_OK(storage_.RevokeGatewayTokens("gw1", clock_.wall_ms()));
  EXPECT_EQ(Get("/v1/gateways").status, 401);
  EXPECT_EQ(Get("/v1/gateways").status, 401);
  EXPECT_EQ(storage_.authenticate_calls.load(), 4) << "the revoked token is now cached unknown";
}

TEST_F(ServiceCacheTest, healthz_checks_the_database_at_most_once_per_second_and_says_its_age) {
  for (int i = 0; i < 10; ++i) {
    ServiceResponse r = Get("/healthz", "");
    ASSERT_EQ(r.status, 200) << r.body;
  }
  EXPECT_EQ(storage_.ping_calls.load(), 1);
  clock_.Advance(400);
  json j = json::parse(Get("/healthz", "").body);
  EXPECT_EQ(j["status"], "ok");
  EXPECT_EQ(j["database"], "fake");
  EXPECT_EQ(j["checked_ms_ago"], 400);
  EXPECT_EQ(storage_.ping_calls.load(), 1);
  clock_.Advance(600);  // 1 s old: checked again
  j = json::parse(Get("/healthz", "").body);
  EXPECT_EQ(j["checked_ms_ago"], 0);
  EXPECT_EQ(storage_.ping_calls.load(), 2);

  storage_.SetPingStatus(Unavailable("injected: database down"));
  clock_.Advance(1000);
  ServiceResponse down = Get("/healthz", "");
  EXPECT_EQ(down.status, 503);
  EXPECT_EQ(Code(down), "unavailable");
  EXPECT_NE(down.body.find("checked 0 ms ago"), std::string::npos) << down.body;
  ASSERT_EQ(down.headers.size(), 1u);
  EXPECT_EQ(down.headers[0].first, "Retry-After");
  clock_.Advance(500);
  storage_.SetPingStatus(Status::Ok());
  down = Get("/healthz", "");
  EXPECT_EQ(down.status, 503) << "answered from the check 500 ms ago";
  EXPECT_NE(down.body.find("checked 500 ms ago"), std::string::npos) << down.body;
  EXPECT_EQ(storage_.ping_calls.load(), 3);
  clock_.Advance(500);
  EXPECT_EQ(Get("/healthz", "").status, 200);
  EXPECT_EQ(storage_.ping_calls.load(), 4);
  const std::string metrics = Get("/metrics").body;
  EXPECT_NE(metrics.find("outpost_cloud_healthz_checks_total 4\n"), std::string::npos) << metrics;
}

}  // namespace
}  // namespace outpost::cloud::api
