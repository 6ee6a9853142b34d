#include "outpost/gateway/uplink/codec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "outpost/gateway/ingest/outbox_items.h"

namespace outpost::gateway::uplink {
namespace {

using nlohmann::json;

model::ReadingRow Reading() {
  model::ReadingRow r;
  r.device_id = "esp32_001";
  r.has_seq = true;
  r.boot = 3;
  r.seq = 17;
  r.has_device_ts = true;
  r.device_ts_raw = 1764201600123;
  r.ts_ms = 1764201600123;
  r.ts_from_device = true;
  r.received_ms = 1764201600200;
  r.metrics = {{"temperature", 22.5, false},
               {"humidity", 45.1, false},
               {"motion", 0, true},
               {"battery", 87, false},
               {"rssi", -61, false}};
  return r;
}

TEST(UplinkCodec, ReadingItemIsTheNativeShape) {
  std::string item = ingest::ReadingItem(Reading()).body;
  EXPECT_EQ(item, R"({"device_id":"esp32_001","boot":3,"seq":17,"ts_ms":1764201600123,)"
                  R"("ts_source":"device","metrics":{"temperature":22.5,"humidity":45.1,)"
                  R"("motion":false,"battery":87,"rssi":-61}})");
}

TEST(UplinkCodec, ReadingWithoutSeqAndOddValues) {
  model::ReadingRow r = Reading();
  r.has_seq = false;
  r.ts_from_device = false;
  r.device_id = "a\"b\\c\n";
  r.metrics = {{"x", std::nan(""), false}, {"y\"", 1e-7, false}, {"on", 1, true}};
  json j = json::parse(ingest::ReadingItem(r).body);
  EXPECT_EQ(j["device_id"], "a\"b\\c\n");
  EXPECT_FALSE(j.contains("boot"));
  EXPECT_EQ(j["ts_source"], "gateway");
  EXPECT_FALSE(j["metrics"].contains("x"));  // NaN has no JSON form
  EXPECT_DOUBLE_EQ(j["metrics"]["y\""].get<double>(), 1e-7);
  EXPECT_EQ(j["metrics"]["on"], true);
}

TEST(UplinkCodec, SeedBodyFlattensReadingsExactlyAsTheContractSays) {
  std::vector<model::OutboxEntry> items = {
      {1, model::OutboxKind::kReading, 0, ingest::ReadingItem(Reading()).body},
      {2, model::OutboxKind::kAlert, 0, "{\"id\":\"x\"}"},
  };
  auto b = BuildBody(Protocol::kSeed, "gw1", items);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->json,
            R"({"readings":[{"device_id":"esp32_001","timestamp":1764201600.123,)"
            R"("ts_ms":1764201600123,"ts_source":"device","boot":3,"seq":17,"temperature":22.5,)"
            R"("humidity":45.1,"motion":false,"battery":87,"rssi":-61}]})");
  EXPECT_EQ(b->readings, 1);
  EXPECT_EQ(b->left_out, 1);  // the seed cloud has no endpoint for alerts
}

TEST(UplinkCodec, SeedSkipsMetricsNamedLikeReservedKeysAndCountsThem) {
  model::ReadingRow r = Reading();
  r.metrics = {{"timestamp", 5, false}, {"id", 1, false}, {"t", 2, false}};
  auto b = BuildBody(Protocol::kSeed, "gw1",
                     {{1, model::OutboxKind::kReading, 0, ingest::ReadingItem(r).body}});
  ASSERT_TRUE(b.ok());
  json j = json::parse(b->json);
  EXPECT_DOUBLE_EQ(j["readings"][0]["timestamp"].get<double>(), 1764201600.123);
  EXPECT_EQ(j["readings"][0]["t"], 2);
  EXPECT_FALSE(j["readings"][0].contains("id"));
  EXPECT_EQ(b->reserved_metrics, 2);
}

TEST(UplinkCodec, NativeBodyGroupsItemsByKindKeepingOrder) {
  model::AlertRow a{"temperature_max:n1",
                    "temperature_max",
                    "n1",
                    "temperature",
                    "warning",
                    "High temperature alert: 36.2°C from n1",
                    36.2,
                    35,
                    1764201600123,
                    0};
  std::vector<model::OutboxEntry> items = {
      {1, model::OutboxKind::kAlert, 0, ingest::AlertItem(a, "gw1").body},
      {2, model::OutboxKind::kStatus, 0, ingest::StatusItem("n1", "online", 1764201600000).body},
      {3, model::OutboxKind::kReading, 0, ingest::ReadingItem(Reading()).body},
  };
  model::ReadingRow r2 = Reading();
  r2.seq = 18;
  items.push_back({4, model::OutboxKind::kReading, 0, ingest::ReadingItem(r2).body});
  auto b = BuildBody(Protocol::kNative, "gw1", items);
  ASSERT_TRUE(b.ok());
  json j = json::parse(b->json);
  EXPECT_EQ(j["gateway_id"], "gw1");
  ASSERT_EQ(j["readings"].size(), 2u);
  EXPECT_EQ(j["readings"][0]["seq"], 17);
  EXPECT_EQ(j["readings"][1]["seq"], 18);
  EXPECT_EQ(j["readings"][0]["metrics"]["motion"], false);
  EXPECT_EQ(j["alerts"][0]["id"], "gw1:temperature_max:n1:1764201600123");
  EXPECT_EQ(j["alerts"][0]["state"], "raised");
  EXPECT_EQ(j["alerts"][0]["message"], "High temperature alert: 36.2°C from n1");
  EXPECT_EQ(j["statuses"][0]["status"], "online");
  EXPECT_EQ(b->readings, 2);
  EXPECT_EQ(b->alerts, 1);
  EXPECT_EQ(b->statuses, 1);
  a.cleared_ms = 1764201700000;
  EXPECT_EQ(json::parse(ingest::AlertItem(a, "gw1").body)["id"],
            "gw1:temperature_max:n1:1764201600123:cleared");
}

TEST(UplinkCodec, CorruptItemIsDataLossNamingIt) {
  auto b = BuildBody(Protocol::kSeed, "gw1", {{42, model::OutboxKind::kReading, 0, "{nope"}});
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), Code::kDataLoss);
  EXPECT_NE(b.status().message().find("outbox item 42"), std::string::npos);
  auto n = BuildBody(Protocol::kNative, "gw1", {{7, model::OutboxKind::kReading, 0, ""}});
  EXPECT_EQ(n.status().code(), Code::kDataLoss);
}

TEST(UplinkCodec, IdempotencyKeyIsWithinTheContractAlphabet) {
  EXPECT_EQ(MakeIdempotencyKey("gw 1/ü", "a1b2", 17), "gw_1___:a1b2:17");
  std::string k = MakeIdempotencyKey(std::string(300, 'g'), std::string(100, 'b'), 1);
  EXPECT_LE(k.size(), 128u);
}

}  // namespace
}  // namespace outpost::gateway::uplink
