// outpost-cloud at the wire: the real binary as a child process, spoken to over HTTP, against
// both backends (SQLite in a temp file; PostgreSQL on a throwaway server started here).
// Contract under test: docs/formats/cloud.md. Synchronisation is by condition (poll the log for
// the "listening" line with a deadline); no sleeps.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "outpost/testing/cloud_process.h"
#include "outpost/testing/postgres_process.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/temp_dir.h"
#include "outpost/testing/tmpfs_mount.h"
#include "outpost/testing/wait_until.h"

namespace outpost::testing {
namespace {

using nlohmann::json;

// Runs `outpost-cloud ARGS...` to completion; returns {exit code, output} ({-1, why} when it
// could not run or did not finish).
std::pair<int, std::string> RunCli(const std::vector<std::string>& args, const TempDir& dir) {
  auto run = RunCloudCli(args, dir.path());
  if (!run.ok()) return {-1, run.status().ToString()};
  return {run->exit_code, run->output};
}

struct Reply {
  int status = 0;
  json body;
  std::string raw;
  std::string content_type;
};

class CloudTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgresql") {
      OUTPOST_ASSERT_OK_AND_ASSIGN(database_, FreshPostgresDatabase("cloud"));
    } else {
      database_ = "sqlite:" + dir_.File("cloud.db");
    }
    token_ = CreateToken("gw1");
    ASSERT_FALSE(token_.empty());
  }

  void TearDown() override {
    StopServer();
    if (HasFailure()) dir_.Keep();
  }

  std::string CreateToken(const std::string& gateway, bool admin = false) {
    std::vector<std::string> args = {"token", "create",     "--gateway",
                                     gateway, "--database", database_};
    if (admin) args.push_back("--admin");
    auto [rc, out] = RunCli(args, dir_);
    EXPECT_EQ(rc, 0) << out;
    std::smatch m;
    if (!std::regex_search(out, m, std::regex("opt_[0-9a-f]{64}"))) {
      ADD_FAILURE() << "no token in: " << out;
      return "";
    }
    return m.str();
  }

  // Starts `outpost-cloud serve` on a free port and waits for its "listening" line.
  void StartServer(const std::vector<std::string>& extra = {}) {
    CloudOptions o;
    o.database = database_;
    o.extra_args = {"--threads", "4"};
    o.extra_args.insert(o.extra_args.end(), extra.begin(), extra.end());
    o.log_dir = dir_.path();
    OUTPOST_ASSERT_OK_AND_ASSIGN(server_, CloudProcess::Start(std::move(o)));
    port_ = server_->port();
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    client_->set_tcp_nodelay(true);
    client_->set_read_timeout(30, 0);
  }

  void StopServer() {
    if (!server_) return;
    OUTPOST_EXPECT_OK(server_->Stop(std::chrono::seconds(20))) << "unclean exit";
    server_.reset();
  }

  static Reply ToReply(const httplib::Result& r) {
    Reply out;
    if (!r) {
      out.status = -1;
      return out;
    }
    out.status = r->status;
    out.raw = r->body;
    out.content_type = r->get_header_value("Content-Type");
    out.body = json::parse(r->body, nullptr, /*allow_exceptions=*/false);
    return out;
  }

  httplib::Headers Auth(const std::string& token, const std::string& key = "") {
    httplib::Headers h;
    if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
    if (!key.empty()) h.emplace("Idempotency-Key", key);
    return h;
  }

  Reply Post(const std::string& path, const std::string& body, const std::string& key = "",
             const std::string& token = "-", const std::string& type = "application/json") {
    return ToReply(
        client_->Post(path.c_str(), Auth(token == "-" ? token_ : token, key), body, type.c_str()));
  }

  Reply Get(const std::string& path, const std::string& token = "-") {
    return ToReply(client_->Get(path.c_str(), Auth(token == "-" ? token_ : token)));
  }

  // The error shape every 4xx/5xx must have: RFC 9457 problem+json (issue 10) that keeps the
  // "error":{"code","message"} object clients have always read.
  static void ExpectError(const Reply& r, int status, const std::string& code,
                          const std::string& message_part = "") {
    EXPECT_EQ(r.status, status) << r.raw;
    EXPECT_EQ(r.content_type, "application/problem+json") << r.raw;
    ASSERT_TRUE(r.body.is_object()) << r.raw;
    EXPECT_EQ(r.body.value("status", 0), status) << r.raw;
    ASSERT_TRUE(r.body.contains("error")) << r.raw;
    EXPECT_EQ(r.body["error"]["code"], code) << r.raw;
    ASSERT_TRUE(r.body["error"]["message"].is_string()) << r.raw;
    EXPECT_FALSE(r.body["error"]["message"].get<std::string>().empty());
    if (!message_part.empty()) {
      EXPECT_NE(r.body["error"]["message"].get<std::string>().find(message_part), std::string::npos)
          << r.raw;
    }
  }

  json Device(const std::string& device) {
    Reply r = Get("/v1/devices");
    EXPECT_EQ(r.status, 200) << r.raw;
    for (const auto& d : r.body["devices"]) {
      if (d["device_id"] == device) return d;
    }
    return json();
  }

  TempDir dir_{"outpost-cloud-test"};
  std::string database_;
  std::string token_;
  std::unique_ptr<CloudProcess> server_;
  int port_ = 0;
  std::unique_ptr<httplib::Client> client_;
};

constexpr const char* kSeedBody =
    R"({"readings":[{"device_id":"esp32_001","timestamp":1764201600.123,"ts_ms":1764201600123,)"
    R"("ts_source":"device","boot":3,"seq":17,"temperature":22.5,"humidity":45.1,)"
    R"("motion":false,"battery":87,"rssi":-61},)"
    R"({"id":4,"deviceId":"esp32_002","timestamp":1764201601.5,"temperature":21.0,"synced":0,)"
    R"("created_at":"2025-11-27 00:00:00"}]})";

constexpr const char* kNativeBody =
    R"({"gateway_id":"gw1","readings":[{"device_id":"n1","boot":3,"seq":17,"ts_ms":1764201600123,)"
    R"("ts_source":"device","metrics":{"temperature":22.5,"motion":false}}],"alerts":[{"id":)"
    R"("gw1:a:42","device_id":"n1","rule":"temperature_max","state":"raised","message":)"
    R"("High temperature alert: 36.2°C from n1","value":36.2,"ts_ms":1764201600123}],)"
    R"("statuses":[{"device_id":"n1","status":"online","ts_ms":1764201600123}]})";

std::string NativeReading(const std::string& device, int boot, int seq, std::int64_t ts_ms,
                          double temperature) {
  return R"({"device_id":")" + device + R"(","boot":)" + std::to_string(boot) + R"(,"seq":)" +
         std::to_string(seq) + R"(,"ts_ms":)" + std::to_string(ts_ms) +
         R"(,"metrics":{"temperature":)" + std::to_string(temperature) + "}}";
}

TEST_P(CloudTest, TokenCreateRevokeAndUnauthorized) {
  StartServer();
  ExpectError(Get("/v1/gateways", ""), 401, "unauthorized", "Authorization");
  ExpectError(Get("/v1/gateways", "opt_not_a_real_token"), 401, "unauthorized");
  EXPECT_EQ(Get("/v1/gateways").status, 200);
  ExpectError(Post("/sensor-data/batch", kSeedBody, "", ""), 401, "unauthorized");

  auto [rc, out] = RunCli({"token", "revoke", "--gateway", "gw1", "--database", database_}, dir_);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("revoked 1 token(s)"), std::string::npos) << out;
  ExpectError(Get("/v1/gateways"), 401, "unauthorized", "revoked");
  ExpectError(Post("/sensor-data/batch", kSeedBody), 401, "unauthorized");

  // A second gateway's token still works; the list shows both, never the secret.
  const std::string other = CreateToken("gw2");
  EXPECT_EQ(Get("/v1/gateways", other).status, 200);
  auto [rc2, listing] = RunCli({"token", "list", "--database", database_}, dir_);
  EXPECT_EQ(rc2, 0);
  EXPECT_NE(listing.find("gw2"), std::string::npos) << listing;
  EXPECT_EQ(listing.find(other), std::string::npos) << "token list must not show secrets";
  // Revoke by id: gw2's token is id 2.
  auto [rc3, out3] = RunCli({"token", "revoke", "--token-id", "2", "--database", database_}, dir_);
  EXPECT_EQ(rc3, 0) << out3;
  ExpectError(Get("/v1/gateways", other), 401, "unauthorized");
}

TEST_P(CloudTest, SeedBodyAccepted) {
  StartServer();
  Reply r = Post("/sensor-data/batch", kSeedBody);
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body, json::parse(R"({"accepted":2,"duplicates":0,"rejected":[],"replayed":false})"));
  json d = Device("esp32_001");
  EXPECT_EQ(d["readings"], 1);
  EXPECT_EQ(d["last_seen_ms"], 1764201600123);
  EXPECT_EQ(Device("esp32_002")["last_seen_ms"], 1764201601500);
  Reply points = Get("/v1/readings?device=esp32_001&metric=rssi&from_ms=0&to_ms=2000000000000");
  ASSERT_EQ(points.status, 200) << points.raw;
  EXPECT_EQ(points.body["points"], json::parse(R"([{"ts_ms":1764201600123,"value":-61.0}])"));
  // The seed client sends no key; sending the same body again stores nothing new.
  r = Post("/sensor-data/batch", kSeedBody);
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body, json::parse(R"({"accepted":0,"duplicates":2,"rejected":[],"replayed":false})"));
}

TEST_P(CloudTest, NativeBodyAccepted) {
  StartServer();
  Reply r = Post("/v1/batches", kNativeBody, "gw1:boot1:1");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body, json::parse(R"({"accepted":{"readings":1,"alerts":1,"statuses":1},)"
                                R"("duplicates":0,"rejected":[],"replayed":false})"));
  json d = Device("n1");
  EXPECT_EQ(d["status"], "online");
  EXPECT_EQ(d["readings"], 1);
  Reply motion = Get("/v1/readings?device=n1&metric=motion&from_ms=0&to_ms=2000000000000");
  EXPECT_EQ(motion.body["points"], json::parse(R"([{"ts_ms":1764201600123,"value":0.0}])"));
  Reply alerts = Get("/v1/alerts");
  ASSERT_EQ(alerts.body["alerts"].size(), 1u) << alerts.raw;
  EXPECT_EQ(alerts.body["alerts"][0]["message"], "High temperature alert: 36.2°C from n1");
  EXPECT_EQ(alerts.body["alerts"][0]["value"], 36.2);
  // Empty batches are fine.
  r = Post("/v1/batches", R"({"readings":[]})", "gw1:boot1:2");
  EXPECT_EQ(r.status, 200) << r.raw;
}

// issue 8: one bad reading made the cloud answer 400 for the whole batch; the gateway then
// dead-lettered thousands of good readings with it.
TEST_P(CloudTest, one_bad_item_is_rejected_alone_and_replayed_the_same) {
  StartServer();
  std::string body = R"({"gateway_id":"gw1","readings":[)";
  for (int i = 0; i < 50; ++i) {
    if (i) body += ",";
    body += i == 17 ? R"({"device_id":"n1","ts_ms":1764201600000,"metrics":{"soil moisture":1}})"
                    : NativeReading("n1", 1, i, 1764201600000 + i * 1000, 20.0);
  }
  body += R"(],"alerts":[{"id":")" + std::string(300, 'a') + R"(","ts_ms":1764201600000}]})";
  Reply first = Post("/v1/batches", body, "gw1:b:9");
  ASSERT_EQ(first.status, 200) << first.raw;
  EXPECT_EQ(first.body["accepted"]["readings"], 49);
  ASSERT_EQ(first.body["rejected"].size(), 2u) << first.raw;
  EXPECT_EQ(first.body["rejected"][0]["index"], 17);
  EXPECT_EQ(first.body["rejected"][0]["reason"], "bad_metric_name");
  EXPECT_EQ(first.body["rejected"][1]["array"], "alerts");
  EXPECT_EQ(first.body["rejected"][1]["reason"], "bad_alert_id");
  EXPECT_EQ(Device("n1")["readings"], 49);
  // Exactly-once: the retry gets the same answer and stores nothing.
  Reply again = Post("/v1/batches", body, "gw1:b:9");
  ASSERT_EQ(again.status, 200) << again.raw;
  EXPECT_EQ(again.body["rejected"], first.body["rejected"]);
  EXPECT_EQ(again.body["replayed"], true);
  EXPECT_EQ(Device("n1")["readings"], 49);
}

// issue 8 section 6: the seed's own gateway sends the node's millis() as `timestamp` and its
// row's created_at (a SQLite julian day); the device showed last_seen in 1970.
TEST_P(CloudTest, seed_gateway_created_at_replaces_uptime_timestamp) {
  StartServer();
  // created_at 2461006.75 = 2025-11-27T06:00:00Z = 1764223200000 ms.
  const std::string body =
      R"({"readings":[{"id":1,"device_id":"esp32_sensor_001","timestamp":50000,)"
      R"("temperature":22.5,"humidity":45.2,"motion":0,"battery":87.5,"rssi":-65,"synced":0,)"
      R"("created_at":2461006.75}]})";
  Reply r = Post("/sensor-data/batch", body);
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["accepted"], 1);
  json d = Device("esp32_sensor_001");
  EXPECT_EQ(d["last_seen_ms"], 1764223200000);
  Reply points =
      Get("/v1/readings?device=esp32_sensor_001&metric=temperature&from_ms=0&to_ms=2000000000000");
  ASSERT_EQ(points.status, 200) << points.raw;
  EXPECT_EQ(points.body["points"], json::parse(R"([{"ts_ms":1764223200000,"value":22.5}])"));
  // (The stored row's ts_source is checked from the database in uplink_test.cpp.)
}

TEST_P(CloudTest, RetriedKeyIsReplayedAndStoredOnce) {
  StartServer();
  std::string body = R"({"readings":[)";
  for (int i = 0; i < 100; ++i) {
    if (i) body += ",";
    body += NativeReading("n1", 1, i, 1764201600000 + i * 1000, 20.0);
  }
  body += "]}";
  Reply first = Post("/v1/batches", body, "gw1:b:7");
  ASSERT_EQ(first.status, 200) << first.raw;
  EXPECT_EQ(first.body["accepted"]["readings"], 100);
  EXPECT_EQ(first.body["replayed"], false);
  for (int retry = 0; retry < 3; ++retry) {
    Reply again = Post("/v1/batches", body, "gw1:b:7");
    ASSERT_EQ(again.status, 200) << again.raw;
    EXPECT_EQ(again.body["accepted"]["readings"], 100) << "a replay repeats the first answer";
    EXPECT_EQ(again.body["replayed"], true);
  }
  EXPECT_EQ(Device("n1")["readings"], 100);
  Reply gw = Get("/v1/gateways");
  ASSERT_EQ(gw.body["gateways"].size(), 1u);
  EXPECT_EQ(gw.body["gateways"][0]["batches"], 1) << "replays store nothing";
}

TEST_P(CloudTest, SameReadingInTwoBatchesStoredOnce) {
  StartServer();
  const std::string a = R"({"readings":[)" + NativeReading("n1", 1, 1, 1000, 1.0) + "," +
                        NativeReading("n1", 1, 2, 2000, 2.0) + "]}";
  const std::string b = R"({"readings":[)" + NativeReading("n1", 1, 2, 2000, 2.0) + "," +
                        NativeReading("n1", 1, 3, 3000, 3.0) + "]}";
  Reply ra = Post("/v1/batches", a, "k-a");
  ASSERT_EQ(ra.status, 200) << ra.raw;
  Reply rb = Post("/v1/batches", b, "k-b");
  ASSERT_EQ(rb.status, 200) << rb.raw;
  EXPECT_EQ(rb.body["accepted"]["readings"], 1);
  EXPECT_EQ(rb.body["duplicates"], 1);
  EXPECT_EQ(Device("n1")["readings"], 3);
  // Identity without boot/seq is (device, ts_ms), across the two endpoints.
  Reply s1 = Post("/sensor-data/batch", R"({"readings":[{"device_id":"n2","timestamp":5,"t":1}]})");
  Reply s2 = Post("/v1/batches",
                  R"({"readings":[{"device_id":"n2","ts_ms":5000,"metrics":{"t":1}}]})", "k-c");
  EXPECT_EQ(s1.body["accepted"], 1) << s1.raw;
  EXPECT_EQ(s2.body["duplicates"], 1) << s2.raw;
  // Alerts by id, statuses by (device, ts, status).
  Reply n1 = Post("/v1/batches", kNativeBody, "k-d");
  Reply n2 = Post("/v1/batches", kNativeBody, "k-e");
  EXPECT_EQ(n2.body["accepted"], json::parse(R"({"readings":0,"alerts":0,"statuses":0})"))
      << n2.raw;
  EXPECT_EQ(n2.body["duplicates"], 3);
}

TEST_P(CloudTest, KeyReusedWithDifferentBodyIs409) {
  StartServer();
  ASSERT_EQ(Post("/v1/batches", kNativeBody, "gw1:x:1").status, 200);
  Reply r = Post("/v1/batches", R"({"readings":[]})", "gw1:x:1");
  ExpectError(r, 409, "idempotency_key_reused", "gw1:x:1");
  // Keys are per gateway: another gateway may use the same key.
  const std::string other = CreateToken("gw2");
  Reply r2 = Post("/v1/batches", R"({"readings":[]})", "gw1:x:1", other);
  EXPECT_EQ(r2.status, 200) << r2.raw;
}

TEST_P(CloudTest, Every4xxHasTheJsonErrorShape) {
  StartServer();
  ExpectError(Post("/v1/batches", "{not json", "k1"), 400, "bad_json", "body");
  ExpectError(Post("/v1/batches", R"({"readings":{"device_id":"n1"}})", "k2"), 400, "invalid_field",
              "readings: expected an array");
  ExpectError(Post("/sensor-data/batch", R"({"data":[]})"), 400, "invalid_field",
              "readings: missing");
  ExpectError(Post("/v1/batches", "{}", ""), 400, "invalid_field", "Idempotency-Key");
  ExpectError(Post("/v1/batches", "{}", "bad key!"), 400, "invalid_field", "Idempotency-Key");
  ExpectError(Post("/v1/batches", R"({"gateway_id":"gw9"})", "k3"), 403, "forbidden", "gateway_id");
  ExpectError(Get("/v1/devices?gateway=gw9"), 403, "forbidden", "gateway");
  ExpectError(Get("/v1/nothing"), 404, "not_found");
  ExpectError(Get("/v1/batches"), 405, "method_not_allowed", "POST");
  ExpectError(Post("/v1/batches", "{}", "k4", "-", "text/plain"), 415, "unsupported_media_type",
              "Content-Type");
  ExpectError(Get("/v1/readings?device=n1"), 400, "invalid_field", "metric: missing");
  ExpectError(Get("/v1/readings?device=n1&metric=t&from_ms=abc"), 400, "invalid_field", "from_ms");
  ExpectError(Get("/v1/readings?device=n1&metric=t&step_ms=0"), 400, "invalid_field", "step_ms");
  // Nothing of the refused batches was stored.
  EXPECT_EQ(Get("/v1/devices").body["devices"].size(), 0u);
}

TEST_P(CloudTest, OversizeIs413) {
  StartServer({"--max-body-bytes", "4096", "--max-batch-items", "10"});
  std::string big = R"({"readings":[)";
  for (int i = 0; big.size() < 8000; ++i) {
    if (i) big += ",";
    big += NativeReading("n1", 1, i, 1000 + i, 1.0);
  }
  big += "]}";
  // Over --max-body-bytes: the HTTP layer's refusal, counted as the body arrives.
  ExpectError(Post("/v1/batches", big, "k-big"), 413, "body_too_large", "4096");
  std::string many = R"({"readings":[)";
  for (int i = 0; i < 11; ++i) {
    if (i) many += ",";
    many += R"({"device_id":"n1","ts_ms":)" + std::to_string(i) + "}";
  }
  many += "]}";
  ASSERT_LT(many.size(), 4096u);
  ExpectError(Post("/v1/batches", many, "k-many"), 413, "payload_too_large", "limit 10");
  EXPECT_EQ(Get("/v1/devices").body["devices"].size(), 0u);
}

TEST_P(CloudTest, QueryApiWithDownsampling) {
  StartServer();
  // n1: temperature 10, 20, 30 in [0 s, 3 s), 40, 50 in [3 s, 6 s), one at 10 s; other device
  // noise.
  const std::int64_t t0 = 1764201600000;
  std::string body = R"({"readings":[)";
  const double values[] = {10, 20, 30, 40, 50};
  for (int i = 0; i < 5; ++i) {
    body += NativeReading("n1", 1, i, t0 + i * 1000 + (i >= 3 ? 500 : 0), values[i]) + ",";
  }
  body += NativeReading("n1", 1, 5, t0 + 10'000, 7.0) + "," +
          NativeReading("n2", 1, 0, t0 + 1000, 999.0) + "]}";
  ASSERT_EQ(Post("/v1/batches", body, "q1").status, 200);

  const std::string base =
      "/v1/readings?device=n1&metric=temperature&from_ms=" + std::to_string(t0) +
      "&to_ms=" + std::to_string(t0 + 6000);
  Reply raw = Get(base);
  ASSERT_EQ(raw.status, 200) << raw.raw;
  ASSERT_EQ(raw.body["points"].size(), 5u) << raw.raw;
  EXPECT_EQ(raw.body["points"][0], json({{"ts_ms", t0}, {"value", 10.0}}));
  EXPECT_EQ(raw.body["points"][4], json({{"ts_ms", t0 + 4500}, {"value", 50.0}}));
  Reply limited = Get(base + "&limit=2");
  EXPECT_EQ(limited.body["points"].size(), 2u);

  Reply buckets = Get(base + "&step_ms=3000");
  ASSERT_EQ(buckets.status, 200) << buckets.raw;
  EXPECT_EQ(buckets.body["buckets"],
            json::parse("[{\"ts_ms\":" + std::to_string(t0) +
                        ",\"min\":10.0,\"max\":30.0,\"avg\":20.0,\"count\":3},"
                        "{\"ts_ms\":" +
                        std::to_string(t0 + 3000) +
                        ",\"min\":40.0,\"max\":50.0,\"avg\":45.0,\"count\":2}]"))
      << buckets.raw;

  // Devices: status, last seen and count.
  json n1 = Device("n1");
  EXPECT_EQ(n1["readings"], 6);
  EXPECT_EQ(n1["last_seen_ms"], t0 + 10'000);
  EXPECT_TRUE(n1["status"].is_null());

  // Alerts by device and time range.
  std::string alerts = R"({"alerts":[)";
  for (int i = 0; i < 3; ++i) {
    if (i) alerts += ",";
    alerts += R"({"id":"a)" + std::to_string(i) + R"(","device_id":"n)" +
              std::to_string(i % 2 + 1) +
              R"(","rule":"r","state":"raised","message":"m",)"
              R"("ts_ms":)" +
              std::to_string(t0 + i * 1000) + "}";
  }
  alerts += "]}";
  ASSERT_EQ(Post("/v1/batches", alerts, "q2").status, 200);
  EXPECT_EQ(Get("/v1/alerts").body["alerts"].size(), 3u);
  EXPECT_EQ(Get("/v1/alerts?device=n1").body["alerts"].size(), 2u);
  Reply ranged =
      Get("/v1/alerts?from_ms=" + std::to_string(t0 + 500) + "&to_ms=" + std::to_string(t0 + 2000));
  ASSERT_EQ(ranged.body["alerts"].size(), 1u) << ranged.raw;
  EXPECT_EQ(ranged.body["alerts"][0]["id"], "a1");
  EXPECT_TRUE(ranged.body["alerts"][0]["value"].is_null());

  // Scoping: gw2 sees only its own data; an admin sees every gateway.
  const std::string gw2 = CreateToken("gw2");
  EXPECT_EQ(Get("/v1/devices", gw2).body["devices"].size(), 0u);
  ExpectError(Get(base + "&gateway=gw1", gw2), 403, "forbidden");
  const std::string admin = CreateToken("ops", true);
  ASSERT_EQ(Post("/v1/batches", R"({"readings":[{"device_id":"z","ts_ms":1}]})", "q3", gw2).status,
            200);
  EXPECT_EQ(Get("/v1/gateways", admin).body["gateways"].size(), 2u);
  EXPECT_EQ(Get("/v1/devices", admin).body["devices"].size(), 3u);
  EXPECT_EQ(Get("/v1/devices?gateway=gw2", admin).body["devices"].size(), 1u);
  Reply admin_readings = Get(base + "&gateway=gw1&step_ms=3000", admin);
  EXPECT_EQ(admin_readings.body["buckets"], buckets.body["buckets"]);
  ExpectError(Get(base, admin), 400, "invalid_field", "gateway");
}

TEST_P(CloudTest, DeviceStatusKeepsTheNewest) {
  StartServer();
  ASSERT_EQ(Post("/v1/batches",
                 R"({"statuses":[{"device_id":"n1","status":"online","ts_ms":2000},)"
                 R"({"device_id":"n1","status":"offline","ts_ms":1000}]})",
                 "s1")
                .status,
            200);
  json d = Device("n1");
  EXPECT_EQ(d["status"], "online");
  EXPECT_EQ(d["status_ts_ms"], 2000);
  ASSERT_EQ(Post("/v1/batches",
                 R"({"statuses":[{"device_id":"n1","status":"sleeping","ts_ms":3000}]})", "s2")
                .status,
            200);
  EXPECT_EQ(Device("n1")["status"], "sleeping");
}

TEST_P(CloudTest, HealthzAndMetrics) {
  StartServer();
  Reply h = Get("/healthz", "");
  ASSERT_EQ(h.status, 200) << h.raw;
  EXPECT_EQ(h.body["status"], "ok");
  EXPECT_EQ(h.body["database"], GetParam());
  ASSERT_EQ(Post("/v1/batches", kNativeBody, "m1").status, 200);
  ASSERT_EQ(Post("/v1/batches", kNativeBody, "m1").status, 200);
  ASSERT_EQ(Post("/v1/batches", kNativeBody, "m2").status, 200);
  ExpectError(Get("/metrics", ""), 401, "unauthorized");
  auto metrics = client_->Get("/metrics", Auth(token_));
  ASSERT_TRUE(metrics);
  ASSERT_EQ(metrics->status, 200);
  const std::string& text = metrics->body;
  EXPECT_NE(text.find("outpost_cloud_readings_accepted_total 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("outpost_cloud_duplicates_total 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("outpost_cloud_batches_replayed_total 1\n"), std::string::npos) << text;
  EXPECT_NE(
      text.find(R"(outpost_cloud_http_requests_total{endpoint="native_batch",status="200"} 3)"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(outpost_cloud_http_request_seconds_count{endpoint="native_batch"} 3)"),
            std::string::npos)
      << text;
}

// Cloud-only ingest rate for 5,000-reading native batches (for the benchmark report). Asserts
// correctness; prints the rate.
TEST_P(CloudTest, IngestRateFor5000ReadingBatches) {
  StartServer();
  constexpr int kBatches = 20;
  constexpr int kPerBatch = 5000;
  std::vector<std::string> bodies;
  for (int b = 0; b < kBatches; ++b) {
    std::string body = R"({"gateway_id":"gw1","readings":[)";
    for (int i = 0; i < kPerBatch; ++i) {
      const int n = b * kPerBatch + i;
      if (i) body += ",";
      body += R"({"device_id":"node)" + std::to_string(n % 1000) + R"(","boot":1,"seq":)" +
              std::to_string(n / 1000) + R"(,"ts_ms":)" + std::to_string(1764201600000 + n) +
              R"(,"ts_source":"device","metrics":{"temperature":22.5,"humidity":45.1,)"
              R"("motion":false,"battery":87,"rssi":-61}})";
    }
    body += "]}";
    bodies.push_back(std::move(body));
  }
  const auto start = std::chrono::steady_clock::now();
  for (int b = 0; b < kBatches; ++b) {
    Reply r = Post("/v1/batches", bodies[b], "rate:" + std::to_string(b));
    ASSERT_EQ(r.status, 200) << r.raw.substr(0, 300);
    ASSERT_EQ(r.body["accepted"]["readings"], kPerBatch);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double rate = kBatches * kPerBatch / seconds;
  std::printf("[ rate     ] %s: %d x %d readings in %.3f s = %.0f readings/s (%.1f ms/batch)\n",
              GetParam().c_str(), kBatches, kPerBatch, seconds, rate, seconds * 1000 / kBatches);
  RecordProperty("readings_per_second", static_cast<int>(rate));
  Reply gw = Get("/v1/gateways");
  EXPECT_EQ(gw.body["gateways"][0]["readings"], kBatches * kPerBatch);
}

TEST_P(CloudTest, CliMigrateAndBadArguments) {
  auto [rc, out] = RunCli({"migrate", "--database", database_}, dir_);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("schema up to date (" + GetParam() + ")"), std::string::npos) << out;
  auto [rc2, out2] = RunCli({"migrate", "--database", "mysql://nope"}, dir_);
  EXPECT_EQ(rc2, 2) << out2;
  EXPECT_NE(out2.find("expected sqlite:PATH"), std::string::npos) << out2;
  auto [rc3, out3] =
      RunCli({"token", "create", "--gateway", "bad id", "--database", database_}, dir_);
  EXPECT_EQ(rc3, 2) << out3;
  EXPECT_NE(out3.find("--gateway"), std::string::npos) << out3;
  auto [rc4, out4] =
      RunCli({"token", "revoke", "--gateway", "nobody", "--database", database_}, dir_);
  EXPECT_EQ(rc4, 3) << "nothing revoked: " << out4;
  auto [rc5, out5] = RunCli({"serve", "--listen", "nonsense", "--database", database_}, dir_);
  EXPECT_EQ(rc5, 2) << out5;
  auto [rc6, out6] = RunCli({"--help"}, dir_);
  EXPECT_EQ(rc6, 0);
  EXPECT_NE(out6.find("token"), std::string::npos);
}

TEST_P(CloudTest, SeedEndpointHonoursAnIdempotencyKey) {
  StartServer();
  Reply first = Post("/sensor-data/batch", kSeedBody, "seed:1");
  ASSERT_EQ(first.status, 200) << first.raw;
  Reply again = Post("/sensor-data/batch", kSeedBody, "seed:1");
  ASSERT_EQ(again.status, 200) << again.raw;
  EXPECT_EQ(again.body,
            json::parse(R"({"accepted":2,"duplicates":0,"rejected":[],"replayed":true})"));
  ExpectError(Post("/sensor-data/batch", R"({"readings":[]})", "seed:1"), 409,
              "idempotency_key_reused");
}

// Many gateways at once, each batch sent twice concurrently with the same key (a retry racing
// the original): every reading stored once, every batch counted once, every answer a 200.
TEST_P(CloudTest, ConcurrentGatewaysAndRacingRetries) {
  constexpr int kGateways = 3;
  constexpr int kBatches = 15;
  constexpr int kPerBatch = 100;
  std::vector<std::string> tokens;
  for (int g = 0; g < kGateways; ++g) tokens.push_back(CreateToken("cgw" + std::to_string(g)));
  ASSERT_NO_FATAL_FAILURE(StartServer({"--pool-size", "4"}));
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int g = 0; g < kGateways; ++g) {
    for (int copy = 0; copy < 2; ++copy) {
      threads.emplace_back([&, g] {
        httplib::Client c("127.0.0.1", port_);
        c.set_tcp_nodelay(true);
        c.set_read_timeout(60, 0);
        for (int b = 0; b < kBatches; ++b) {
          std::string body = R"({"readings":[)";
          for (int i = 0; i < kPerBatch; ++i) {
            if (i) body += ",";
            body += NativeReading("d" + std::to_string(i % 10), 1, b * kPerBatch + i,
                                  1764201600000 + b * kPerBatch + i, i);
          }
          body += "]}";
          httplib::Headers h = {{"Authorization", "Bearer " + tokens[g]},
                                {"Idempotency-Key", "k" + std::to_string(b)}};
          auto r = c.Post("/v1/batches", h, body, "application/json");
          if (!r || r->status != 200) ++failures;
        }
      });
    }
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  const std::string admin = CreateToken("ops", true);
  Reply gws = Get("/v1/gateways", admin);
  ASSERT_EQ(gws.body["gateways"].size(), static_cast<std::size_t>(kGateways)) << gws.raw;
  for (const auto& gw : gws.body["gateways"]) {
    EXPECT_EQ(gw["readings"], kBatches * kPerBatch) << gw.dump();
    EXPECT_EQ(gw["batches"], kBatches) << gw.dump();
  }
}

// The database going away: batches get a retryable 503 with Retry-After (nothing half-stored),
// /healthz says so, and the same batch (same key) is accepted once the database is back.
// Only PostgreSQL has a server that can go away under a running cloud: this suite runs on it alone.
class CloudServerDownTest : public CloudTest {};

TEST_P(CloudServerDownTest, DatabaseDownIs503ThenRecovers) {
  auto own = PostgresProcess::Start();
  OUTPOST_ASSERT_OK(own);
  database_ = (*own)->uri();
  token_ = CreateToken("gw1");
  StartServer();
  ASSERT_EQ(Post("/v1/batches", kNativeBody, "d1").status, 200);
  OUTPOST_ASSERT_OK((*own)->Stop());

  const std::string body = R"({"readings":[)" + NativeReading("n9", 1, 1, 1000, 1.0) + "]}";
  Reply down = Post("/v1/batches", body, "d2");
  ExpectError(down, 503, "unavailable", "database");
  auto raw = client_->Post("/v1/batches", Auth(token_, "d2"), body, "application/json");
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->get_header_value("Retry-After"), "1");
  ExpectError(Get("/healthz", ""), 503, "unavailable");

  OUTPOST_ASSERT_OK((*own)->Restart());
  // The pool drops broken connections as it meets them: poll until the retry goes through.
  Reply up;
  EXPECT_TRUE(WaitUntil("the retried batch accepted", std::chrono::seconds(30), [&] {
    up = Post("/v1/batches", body, "d2");
    if (up.status == 200) return true;
    EXPECT_EQ(up.status, 503) << up.raw;
    return false;
  }));
  ASSERT_EQ(up.status, 200) << up.raw;
  EXPECT_EQ(up.body["accepted"]["readings"], 1);
  EXPECT_EQ(up.body["replayed"], false);
  EXPECT_EQ(Device("n9")["readings"], 1);
  StopServer();
}

// The SQLite database on a small tmpfs the test mounts (root only; CI runs as root), filled by a
// ballast file: batches get a retryable 503 "storage_full" with Retry-After (nothing
// half-stored, the server stays up), and the same batch (same key) is accepted once space
// returns.
class CloudFullDiskTest : public CloudTest {
 protected:
  void SetUp() override {
    if (!TmpfsMount::Supported()) GTEST_SKIP() << TmpfsMount::kSkipReason;
    OUTPOST_ASSERT_OK_AND_ASSIGN(fs_, TmpfsMount::Mount(dir_.File("fs"), 4 << 20));
    database_ = "sqlite:" + fs_->path() + "/cloud.db";
    token_ = CreateToken("gw1");
    ASSERT_FALSE(token_.empty());
  }
  void TearDown() override {
    CloudTest::TearDown();
    fs_.reset();
  }
  std::unique_ptr<TmpfsMount> fs_;
};

TEST_P(CloudFullDiskTest, cloud_full_disk_answers_503_and_recovers) {
  StartServer();
  ASSERT_EQ(Post("/v1/batches", kNativeBody, "f0").status, 200);
  auto ballast = fs_->FillWithBallast("ballast", 4 << 20);
  OUTPOST_ASSERT_OK(ballast);

  // Batches of 200 readings until one is refused; bounded (the disk fills after a few).
  std::string body, key;
  Reply r;
  int seq = 0;
  for (int b = 1; b <= 200; ++b) {
    body = R"({"readings":[)";
    for (int i = 0; i < 200; ++i, ++seq) {
      if (i) body += ",";
      body += NativeReading("full", 1, seq, 1764201600000 + seq, seq);
    }
    body += "]}";
    key = "f" + std::to_string(b);
    r = Post("/v1/batches", body, key);
    if (r.status != 200) break;
  }
  ExpectError(r, 503, "storage_full", "full");
  auto raw = client_->Post("/v1/batches", Auth(token_, key), body, "application/json");
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->status, 503);
  EXPECT_EQ(raw->get_header_value("Retry-After"), "1");
  ASSERT_TRUE(server_->Running()) << server_->log();
  const json d = Device("full");
  const std::int64_t before = d.is_object() ? d["readings"].get<std::int64_t>() : 0;
  std::printf("refused after %d readings: %s\n", seq - 200, r.raw.c_str());

  OUTPOST_ASSERT_OK(fs_->RemoveBallast("ballast"));
  Reply up = Post("/v1/batches", body, key);
  ASSERT_EQ(up.status, 200) << up.raw;
  EXPECT_EQ(up.body["accepted"]["readings"], 200);
  EXPECT_EQ(up.body["replayed"], false);
  EXPECT_EQ(Device("full")["readings"], before + 200);
  StopServer();
}

INSTANTIATE_TEST_SUITE_P(Backends, CloudFullDiskTest, ::testing::Values("sqlite"),
                         [](const auto& param_info) { return param_info.param; });
INSTANTIATE_TEST_SUITE_P(Backends, CloudTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& param_info) { return param_info.param; });
INSTANTIATE_TEST_SUITE_P(Backends, CloudServerDownTest, ::testing::Values("postgresql"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
}  // namespace outpost::testing
