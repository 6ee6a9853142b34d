// The two halves of the batch contract agree: whatever the gateway's reading parser accepts,
// encoded into an outbox item and a request body of either protocol, the cloud's parser accepts
// in full, with the same values (property test, seeded). fuzz/batch_fuzz.cpp does the same on
// fuzzer input.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "outpost/proto/batch.h"
#include "outpost/proto/reading.h"
#include "outpost/testing/status_matchers.h"

namespace outpost::proto::batch {
namespace {

constexpr std::int64_t kNow = 1'764'201'600'000;

std::string RandomName(std::mt19937_64& rng) {
  // Printable ASCII and a few bytes outside it: the reading parser decides what is a name.
  static const std::string kChars =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:/ "
      "!#$%&'()*+,;<=>?@[]^`{|}~"
      "\t";
  std::uniform_int_distribution<int> len(1, 70);
  // Mostly the characters of real names, sometimes anything.
  std::uniform_int_distribution<std::size_t> pick(0, rng() % 8 == 0 ? kChars.size() - 1 : 65);
  std::string out;
  const int n = len(rng);
  for (int i = 0; i < n; ++i) out += kChars[pick(rng)];
  return out;
}

std::string RandomValue(std::mt19937_64& rng) {
  switch (rng() % 6) {
    case 0:
      return rng() % 2 ? "true" : "false";
    case 1:
      return std::to_string(static_cast<std::int64_t>(rng() % 2000) - 1000);
    case 2: {
      char buf[64];
      std::snprintf(
          buf, sizeof(buf), "%.17g",
          std::ldexp(static_cast<double>(rng() % 1000000), static_cast<int>(rng() % 200) - 100));
      return buf;
    }
    case 3:
      return "1e300";
    case 4:
      return "-0.000001";
    default:
      return "12345678901234567890";  // beyond int64: the reading parser decides
  }
}

// A payload the way a device (or an attacker) might send it.
std::string RandomPayload(std::mt19937_64& rng, int* metrics) {
  std::string p = "{\"deviceId\":\"dev-" + std::to_string(rng() % 50) + "\"";
  if (rng() % 2) {
    p += ",\"boot\":" + std::to_string(rng() % 5) + ",\"seq\":" + std::to_string(rng() % 100000);
  }
  p += ",\"timestamp\":" + std::to_string(rng() % 2 ? kNow - 1000 : 123456);
  *metrics = 1 + static_cast<int>(rng() % 12);
  for (int i = 0; i < *metrics; ++i) {
    std::string name = RandomName(rng);
    std::string key;
    for (char c : name) {
      if (c == '"' || c == '\\') key += '\\';
      if (c == '\t') {
        key += "\\t";
        continue;
      }
      key += c;
    }
    p += ",\"" + key + "\":" + RandomValue(rng);
  }
  p += "}";
  return p;
}

TEST(BatchContract, everything_the_gateway_accepts_the_cloud_accepts) {
  std::mt19937_64 rng(20261202);
  ReadingParser parser;
  proto::Reading reading;
  Reject reject;
  int accepted = 0, refused = 0;
  std::vector<std::string> items;
  std::vector<proto::Reading> sent;
  for (int round = 0; round < 3000; ++round) {
    int n = 0;
    const std::string payload = RandomPayload(rng, &n);
    if (!parser.Parse(payload, "", kNow, &reading, &reject)) {
      ++refused;
      continue;
    }
    ++accepted;
    std::vector<Metric> metrics;
    for (const auto& m : reading.metrics) metrics.push_back(Metric{m.name, m.value, m.is_bool});
    items.push_back(EncodeReading(reading.device_id, reading.has_seq, reading.boot, reading.seq,
                                  reading.ts_ms, reading.ts_source == TimeSource::kDevice,
                                  metrics));
    sent.push_back(reading);
  }
  // Both outcomes occur, or the test proves nothing.
  ASSERT_GT(accepted, 300);
  ASSERT_GT(refused, 300);

  std::vector<proto::batch::Item> in;
  for (std::size_t i = 0; i < items.size(); ++i) {
    in.push_back(proto::batch::Item{ItemKind::kReading, static_cast<std::int64_t>(i), items[i]});
  }
  ParseLimits limits;
  limits.max_items = in.size();
  for (Protocol protocol : {Protocol::kNative, Protocol::kSeed}) {
    auto body = BuildBody(protocol, "gw-1", in);
    OUTPOST_ASSERT_OK(body);
    ASSERT_EQ(body->items_used, in.size());
    Batch batch;
    ParseError error;
    const bool ok = protocol == Protocol::kNative
                        ? ParseNativeBatch(body->json, limits, &batch, &error)
                        : ParseSeedBatch(body->json, limits, &batch, &error);
    ASSERT_TRUE(ok) << ProtocolName(protocol) << ": " << error.message;
    ASSERT_TRUE(batch.rejected.empty())
        << ProtocolName(protocol) << ": " << batch.rejected[0].message;
    ASSERT_EQ(batch.readings.size(), sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) {
      const proto::Reading& want = sent[i];
      const Reading& got = batch.readings[i];
      EXPECT_EQ(got.device_id, want.device_id);
      EXPECT_EQ(got.ts_ms, want.ts_ms);
      EXPECT_EQ(got.has_boot_seq, want.has_seq);
      std::size_t skipped = 0;
      for (const auto& m : want.metrics) {
        if (protocol == Protocol::kSeed && IsSeedReservedKey(m.name)) ++skipped;
      }
      ASSERT_EQ(got.metrics.size() + skipped, want.metrics.size()) << i;
      std::size_t j = 0;
      for (const auto& m : want.metrics) {
        if (protocol == Protocol::kSeed && IsSeedReservedKey(m.name)) continue;
        EXPECT_EQ(got.metrics[j].first, m.name);
        EXPECT_EQ(got.metrics[j].second, m.value) << m.name;  // exact: shortest round trip
        ++j;
      }
    }
    // And the same body in halves (what a 413 does) parses to the same items.
    auto halves = SplitBody(protocol, body->json);
    OUTPOST_ASSERT_OK(halves);
    Batch a, b;
    ASSERT_TRUE(protocol == Protocol::kNative ? ParseNativeBatch(halves->first, limits, &a, &error)
                                              : ParseSeedBatch(halves->first, limits, &a, &error));
    ASSERT_TRUE(protocol == Protocol::kNative ? ParseNativeBatch(halves->second, limits, &b, &error)
                                              : ParseSeedBatch(halves->second, limits, &b, &error));
    EXPECT_EQ(a.readings.size() + b.readings.size(), batch.readings.size());
    EXPECT_EQ(static_cast<std::size_t>(halves->first_items), a.readings.size());
    ASSERT_FALSE(b.readings.empty());
    EXPECT_EQ(b.readings.back().ts_ms, batch.readings.back().ts_ms);
  }
}

// issue 8: a metric name with a space passed the gateway and cost the cloud batch.
TEST(BatchContract, gateway_refuses_metric_names_the_cloud_refuses) {
  ReadingParser parser;
  proto::Reading reading;
  Reject reject;
  EXPECT_FALSE(parser.Parse(R"({"deviceId":"n1","bad name":1})", "", kNow, &reading, &reject));
  EXPECT_EQ(reject.reason, RejectReason::kBadFieldName);
  EXPECT_FALSE(IsValidMetricName("bad name"));
  EXPECT_TRUE(IsValidMetricName("env.temp_c"));
  // A firmware string may still have spaces (it is not a name).
  EXPECT_TRUE(
      parser.Parse(R"({"deviceId":"n1","fw":"v1 beta","t":1})", "", kNow, &reading, &reject));
  // Limits above the contract's are clamped, never above what the cloud takes.
  Limits wide;
  wide.max_metrics = 10'000;
  wide.max_name_bytes = 10'000;
  ReadingParser clamped(wide);
  EXPECT_EQ(clamped.limits().max_metrics, kMaxMetricsPerReading);
  EXPECT_EQ(clamped.limits().max_name_bytes, kMaxMetricNameBytes);
}

// issue 8: long alert ids and texts were refused by the cloud, and the batch with them.
TEST(BatchContract, longest_alert_the_gateway_makes_is_accepted) {
  const std::string gw(kMaxIdBytes, 'g'), dev(kMaxIdBytes, 'd'), rule(kMaxRuleNameBytes, 'r');
  const std::string message(5000, 'm');
  const std::string alert_id = rule + ":" + dev;
  const std::string cleared = EncodeAlert(gw, alert_id, dev, rule, message, 1.5,
                                          std::numeric_limits<std::int64_t>::max() / 1000, kNow);
  const std::string status = EncodeStatus(dev, "sleeping", kNow);
  std::vector<proto::batch::Item> in = {{ItemKind::kAlert, 1, cleared},
                                        {ItemKind::kStatus, 2, status}};
  auto body = BuildBody(Protocol::kNative, gw, in);
  OUTPOST_ASSERT_OK(body);
  Batch batch;
  ParseError error;
  ASSERT_TRUE(ParseNativeBatch(body->json, ParseLimits{}, &batch, &error)) << error.message;
  ASSERT_TRUE(batch.rejected.empty()) << batch.rejected[0].message;
  ASSERT_EQ(batch.alerts.size(), 1u);
  EXPECT_LE(batch.alerts[0].id.size(), kMaxAlertIdBytes);
  EXPECT_EQ(batch.alerts[0].message.size(), kMaxTextBytes);
  EXPECT_EQ(batch.statuses.size(), 1u);
}

TEST(BatchContract, body_stays_within_max_bytes_and_keys_stay_valid) {
  std::vector<std::string> items;
  for (int i = 0; i < 100; ++i) {
    items.push_back(EncodeReading("n1", true, 1, static_cast<std::uint64_t>(i), kNow + i, true,
                                  {Metric{"temperature", 21.5, false}}));
  }
  std::vector<proto::batch::Item> in;
  for (std::size_t i = 0; i < items.size(); ++i) {
    in.push_back({ItemKind::kReading, static_cast<std::int64_t>(i), items[i]});
  }
  for (Protocol protocol : {Protocol::kNative, Protocol::kSeed}) {
    auto body = BuildBody(protocol, "gw1", in, 2000);
    OUTPOST_ASSERT_OK(body);
    EXPECT_LE(body->json.size(), 2000u) << ProtocolName(protocol);
    EXPECT_GT(body->items_used, 5u);
    EXPECT_LT(body->items_used, in.size());
    EXPECT_EQ(static_cast<std::size_t>(body->readings), body->items_used);
  }
  std::string key = MakeIdempotencyKey(std::string(200, 'g'), "0123456789ab", 1234567890123);
  EXPECT_TRUE(IsValidIdempotencyKey(key));
  for (int depth = 0; depth < 26; ++depth) key = SubBatchKey(key, depth % 2 == 1);
  EXPECT_TRUE(IsValidIdempotencyKey(key)) << key.size();
  EXPECT_NE(SubBatchKey("gw:b:1", false), SubBatchKey("gw:b:1", true));
  EXPECT_EQ(SubBatchKey(SubBatchKey("gw.x:b:1", false), true), "gw.x:b:1.ab");
}

}  // namespace
}  // namespace outpost::proto::batch
