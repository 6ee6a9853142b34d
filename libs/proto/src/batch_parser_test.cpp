#include <gtest/gtest.h>

#include <string>

#include "outpost/proto/batch.h"

namespace outpost::proto::batch {
namespace {

struct Parsed {
  bool ok;
  Batch batch;
  ParseError error;
};

Parsed Seed(const std::string& body, ParseLimits limits = {}) {
  Parsed p;
  p.ok = ParseSeedBatch(body, limits, &p.batch, &p.error);
  return p;
}

Parsed Native(const std::string& body, ParseLimits limits = {}) {
  Parsed p;
  p.ok = ParseNativeBatch(body, limits, &p.batch, &p.error);
  return p;
}

// The one item the parse left out: "<reason>: <message>".
std::string Rejected(const Parsed& p) {
  if (p.batch.rejected.size() != 1) {
    ADD_FAILURE() << p.batch.rejected.size() << " items rejected, expected 1";
    return "";
  }
  return p.batch.rejected[0].reason + ": " + p.batch.rejected[0].message;
}

double Metric(const Reading& r, const std::string& name) {
  for (const auto& m : r.metrics) {
    if (m.first == name) return m.second;
  }
  ADD_FAILURE() << "no metric " << name;
  return -1;
}

TEST(SeedBatch, GatewayFlattenedReading) {
  Parsed p = Seed(
      R"({"readings":[{"device_id":"esp32_001","timestamp":1764201600.123,"ts_ms":1764201600123,)"
      R"("ts_source":"device","boot":3,"seq":17,"temperature":22.5,"humidity":45.1,)"
      R"("motion":false,"battery":87,"rssi":-61}]})");
  ASSERT_TRUE(p.ok) << p.error.message;
  ASSERT_EQ(p.batch.readings.size(), 1u);
  const Reading& r = p.batch.readings[0];
  EXPECT_EQ(r.device_id, "esp32_001");
  EXPECT_EQ(r.ts_ms, 1764201600123);
  EXPECT_TRUE(r.has_boot_seq);
  EXPECT_EQ(r.boot, 3u);
  EXPECT_EQ(r.seq, 17u);
  EXPECT_EQ(r.ts_source, "device");
  ASSERT_EQ(r.metrics.size(), 5u);
  EXPECT_EQ(Metric(r, "temperature"), 22.5);
  EXPECT_EQ(Metric(r, "motion"), 0.0);
  EXPECT_EQ(Metric(r, "rssi"), -61.0);
}

TEST(SeedBatch, SeedClientRowWithIgnoredKeysAndSecondsTimestamp) {
  Parsed p =
      Seed(R"({"readings":[{"id":7,"deviceId":"esp32_001","timestamp":1764201600.5,"synced":0,)"
           R"("created_at":"2025-11-27","received_ms":5,"note":"x","extra":null,"co2":410}]})");
  ASSERT_TRUE(p.ok) << p.error.message;
  const Reading& r = p.batch.readings[0];
  EXPECT_EQ(r.ts_ms, 1764201600500);
  EXPECT_FALSE(r.has_boot_seq);
  ASSERT_EQ(r.metrics.size(), 1u);
  EXPECT_EQ(r.metrics[0].first, "co2");
}

TEST(SeedBatch, ErrorsNameTheField) {
  Parsed p =
      Seed(R"({"readings":[{"device_id":"a","timestamp":1},{"device_id":5,"timestamp":1}]})");
  ASSERT_TRUE(p.ok) << p.error.message;
  EXPECT_EQ(Rejected(p), "wrong_type: readings[1].device_id: expected a string, got number");
  EXPECT_EQ(p.batch.rejected[0].index, 1u);
  ASSERT_EQ(p.batch.readings.size(), 1u);  // the valid one is kept
  EXPECT_EQ(p.batch.readings[0].device_id, "a");

  p = Seed(R"({"readings":[{"device_id":"a"}]})");
  ASSERT_TRUE(p.ok) << p.error.message;
  EXPECT_EQ(Rejected(p), "missing_field: readings[0].timestamp: missing");

  p = Seed(R"({"readings":[{"device_id":"a","timestamp":1,"seq":-1}]})");
  ASSERT_TRUE(p.ok) << p.error.message;
  EXPECT_EQ(Rejected(p), "invalid_field: readings[0].seq: must not be negative");

  p = Seed(R"({"readings":[{"device_id":"a b","timestamp":1}]})");
  ASSERT_TRUE(p.ok) << p.error.message;
  EXPECT_EQ(Rejected(p),
            "bad_id: readings[0].device_id: must be 1..64 characters of [A-Za-z0-9_.:-]");

  p = Seed(R"({"data":[]})");
  ASSERT_FALSE(p.ok);
  EXPECT_EQ(p.error.message, "readings: missing");
}

TEST(SeedBatch, BadJsonAndWrongRoot) {
  Parsed p = Seed("{\"readings\":[");
  ASSERT_FALSE(p.ok);
  EXPECT_EQ(p.error.kind, ParseErrorKind::kBadJson);
  p = Seed("[1]");
  ASSERT_FALSE(p.ok);
  EXPECT_EQ(p.error.kind, ParseErrorKind::kBadJson);
  EXPECT_EQ(p.error.message, "body: expected a JSON object, got array");
}

TEST(SeedBatch, TooManyReadingsIsTooLarge) {
  ParseLimits limits;
  limits.max_items = 2;
  Parsed p = Seed(R"({"readings":[{},{},{}]})", limits);
  ASSERT_FALSE(p.ok);
  EXPECT_EQ(p.error.kind, ParseErrorKind::kTooLarge);
  EXPECT_EQ(p.error.message, "body: 3 items in one batch; limit 2");
}

// Bodies over 2 MiB take the one-off parser path (bounded idle memory); same result.
TEST(SeedBatch, LargeBodyParsesTheSame) {
  std::string body = R"({"readings":[)";
  int n = 0;
  while (body.size() < 3 * 1024 * 1024) {
    if (n) body += ",";
    body += R"({"device_id":"d)" + std::to_string(n % 100) + R"(","ts_ms":)" +
            std::to_string(1764201600000 + n) + R"(,"temperature":21.5,"note":"padding padding"})";
    ++n;
  }
  body += "]}";
  Parsed p = Seed(body);
  ASSERT_TRUE(p.ok) << p.error.message;
  ASSERT_EQ(p.batch.readings.size(), static_cast<std::size_t>(n));
  EXPECT_EQ(p.batch.readings.back().ts_ms, 1764201600000 + n - 1);
  // And a small one afterwards still uses (and works with) the per-thread parser.
  EXPECT_TRUE(Seed(R"({"readings":[]})").ok);
}

TEST(NativeBatch, FullExample) {
  Parsed p = Native(
      R"({"gateway_id":"gw1","readings":[{"device_id":"n1","boot":3,"seq":17,"ts_ms":1764201600123,)"
      R"("ts_source":"device","metrics":{"temperature":22.5,"motion":true}}],)"
      R"("alerts":[{"id":"gw1:a:42","device_id":"n1","rule":"temperature_max","state":"raised",)"
      R"("message":"High temperature alert: 36.2°C from n1","value":36.2,"ts_ms":1764201600123}],)"
      R"("statuses":[{"device_id":"n1","status":"online","ts_ms":1764201600123}]})");
  ASSERT_TRUE(p.ok) << p.error.message;
  ASSERT_TRUE(p.batch.gateway_id.has_value());
  EXPECT_EQ(*p.batch.gateway_id, "gw1");
  ASSERT_EQ(p.batch.readings.size(), 1u);
  EXPECT_EQ(Metric(p.batch.readings[0], "motion"), 1.0);
  ASSERT_EQ(p.batch.alerts.size(), 1u);
  EXPECT_EQ(p.batch.alerts[0].message, "High temperature alert: 36.2°C from n1");
  ASSERT_TRUE(p.batch.alerts[0].value.has_value());
  EXPECT_EQ(*p.batch.alerts[0].value, 36.2);
  ASSERT_EQ(p.batch.statuses.size(), 1u);
  EXPECT_EQ(p.batch.statuses[0].status, "online");
}

TEST(NativeBatch, ArraysMayBeAbsent) {
  Parsed p = Native("{}");
  ASSERT_TRUE(p.ok) << p.error.message;
  EXPECT_TRUE(p.batch.readings.empty());
  EXPECT_FALSE(p.batch.gateway_id.has_value());
}

TEST(NativeBatch, ErrorsNameTheField) {
  Parsed p = Native(R"({"readings":[{"device_id":"n1","ts_ms":1,"metrics":{"t":"hot"}}]})");
  ASSERT_TRUE(p.ok) << p.error.message;
  EXPECT_EQ(Rejected(p),
            "wrong_type: readings[0].metrics.t: expected a number or boolean, got string");

  p = Native(R"({"readings":[{"device_id":"n1","ts_ms":1,"metrics":{"t":1,"t":2}}]})");
  ASSERT_TRUE(p.ok) << p.error.message;
  EXPECT_EQ(Rejected(p), "duplicate_metric: readings[0].metrics.t: duplicate metric");

  p = Native(R"({"alerts":[{"id":"a1"}]})");
  ASSERT_TRUE(p.ok) << p.error.message;
  EXPECT_EQ(Rejected(p), "missing_field: alerts[0].ts_ms: missing");

  p = Native(R"({"statuses":[{"device_id":"n1","status":"online","ts_ms":1.5}]})");
  ASSERT_TRUE(p.ok) << p.error.message;
  EXPECT_EQ(Rejected(p), "wrong_type: statuses[0].ts_ms: expected an integer, got number");

  p = Native(R"({"gateway_id":7})");
  ASSERT_FALSE(p.ok);
  EXPECT_EQ(p.error.message, "gateway_id: expected a string, got number");

  p = Native(R"({"readings":[{"device_id":"n1","ts_ms":1,"boot":4294967296,"seq":1}]})");
  ASSERT_TRUE(p.ok) << p.error.message;
  EXPECT_EQ(Rejected(p), "invalid_field: readings[0].boot: must fit in 32 bits");
}

// issue 8: the gateway accepted names the cloud refused, and one of them cost the batch.
TEST(NativeBatch, one_bad_metric_name_is_rejected_alone) {
  Parsed p = Native(
      R"({"readings":[{"device_id":"n1","ts_ms":1,"metrics":{"t":1}},)"
      R"({"device_id":"n1","ts_ms":2,"metrics":{"bad name":1}},)"
      R"({"device_id":"n1","ts_ms":3,"metrics":{"t":3}}],)"
      R"("alerts":[{"id":"x","ts_ms":1,"message":"m"}],"statuses":[{"device_id":"n1","ts_ms":1}]})");
  ASSERT_TRUE(p.ok) << p.error.message;
  ASSERT_EQ(p.batch.readings.size(), 2u);
  EXPECT_EQ(p.batch.readings[1].ts_ms, 3);
  EXPECT_EQ(p.batch.alerts.size(), 1u);
  ASSERT_EQ(p.batch.rejected.size(), 2u);
  EXPECT_EQ(p.batch.rejected[0].array, "readings");
  EXPECT_EQ(p.batch.rejected[0].index, 1u);
  EXPECT_EQ(p.batch.rejected[0].reason, "bad_metric_name");
  EXPECT_EQ(p.batch.rejected[1].array, "statuses");
  EXPECT_EQ(p.batch.rejected[1].reason, "missing_field");
}

// issue 8 section 6: the seed's gateway sends millis() as timestamp and a julian-day created_at.
TEST(SeedBatch, seed_created_at_replaces_an_uptime_timestamp) {
  // 2461006.5 = 2025-11-27T00:00:00Z; + 0.25 day = 06:00.
  Parsed p =
      Seed(R"({"readings":[{"id":1,"device_id":"esp32_001","timestamp":50000,"temperature":22.5,)"
           R"("synced":0,"created_at":2461006.75},)"
           R"({"device_id":"esp32_001","timestamp":1764201600.5,"created_at":2461006.75},)"
           R"({"device_id":"esp32_001","timestamp":50000}]})");
  ASSERT_TRUE(p.ok) << p.error.message;
  ASSERT_EQ(p.batch.readings.size(), 3u);
  EXPECT_EQ(p.batch.readings[0].ts_ms, 1764223200000);
  EXPECT_EQ(p.batch.readings[0].ts_source, "gateway");
  EXPECT_EQ(p.batch.readings[1].ts_ms, 1764201600500);  // a wall time is kept
  EXPECT_EQ(p.batch.readings[1].ts_source, "");
  EXPECT_EQ(p.batch.readings[2].ts_ms, 50000000);  // nothing better to use
}

TEST(Answer, RejectedRoundTrip) {
  std::vector<ItemReject> rejected = {{"readings", 3, "bad_metric_name", "readings[3]: \"x\""},
                                      {"alerts", 0, "bad_alert_id", "alerts[0].id"}};
  std::string answer = R"({"accepted":2,)";
  AppendRejected(&answer, rejected);
  answer += R"(,"replayed":false})";
  EXPECT_EQ(ParseRejectedReasons(answer),
            (std::vector<std::string>{"bad_metric_name", "bad_alert_id"}));
  EXPECT_TRUE(ParseRejectedReasons(R"({"accepted":5})").empty());  // the seed's cloud
  EXPECT_TRUE(ParseRejectedReasons("OK").empty());
}

}  // namespace
}  // namespace outpost::proto::batch
