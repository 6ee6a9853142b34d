#include "outpost/bench_pub/readings.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "outpost/proto/reading.h"
#include "outpost/proto/topics.h"

namespace outpost::bench_pub {
namespace {

constexpr std::int64_t kNow = 1'732'000'000'000;

double Metric(const proto::Reading& r, const std::string& name) {
  for (const auto& m : r.metrics) {
    if (m.name == name) return m.value;
  }
  ADD_FAILURE() << "no metric " << name;
  return 0;
}

TEST(ReadingGenerator, NativePayloadsPassTheGatewayParserWithRealisticValues) {
  ReadingGenerator gen(50, Format::kNative, 7, 123);
  proto::ReadingParser parser;
  proto::Reading r;
  proto::Reject reject;
  std::string payload;
  for (int i = 0; i < 20'000; ++i) {
    std::size_t d = static_cast<std::size_t>(i) % gen.devices();
    gen.Next(d, kNow + i, i, &payload);
    proto::TopicInfo t = proto::ClassifyTopic(gen.topic(d));
    ASSERT_EQ(t.kind, proto::TopicKind::kSensorData);
    ASSERT_EQ(t.device_id, gen.device_id(d));
    ASSERT_TRUE(parser.Parse(payload, t.device_id, kNow + i, &r, &reject)) << payload;
    EXPECT_TRUE(r.has_seq);
    EXPECT_EQ(r.seq, static_cast<std::uint64_t>(i / 50 + 1));
    EXPECT_EQ(r.ts_ms, kNow + i);
    EXPECT_EQ(r.ts_source, proto::TimeSource::kDevice);
    EXPECT_EQ(r.metrics.size(), 5u);
    EXPECT_GE(Metric(r, "temperature"), 16.0);
    EXPECT_LE(Metric(r, "temperature"), 28.0);
    EXPECT_GE(Metric(r, "humidity"), 30.0);
    EXPECT_LE(Metric(r, "humidity"), 70.0);
    EXPECT_GT(Metric(r, "battery"), 20.0);
    EXPECT_LE(Metric(r, "battery"), 100.0);
    EXPECT_LE(Metric(r, "rssi"), -40.0);
    EXPECT_GE(Metric(r, "rssi"), -95.0);
  }
  EXPECT_LT(payload.size(), 200u);
}

TEST(ReadingGenerator, SeedPayloadsUseTheSeedTopicAndIncreasingMillis) {
  ReadingGenerator gen(3, Format::kSeed, 7, 123);
  proto::ReadingParser parser;
  proto::Reading r;
  proto::Reject reject;
  std::string payload;
  std::set<std::pair<std::string, std::int64_t>> identities;
  for (int i = 0; i < 3000; ++i) {
    std::size_t d = static_cast<std::size_t>(i) % 3;
    gen.Next(d, kNow, /*since_start_ms=*/i / 100, &payload);  // many readings per millisecond
    ASSERT_EQ(gen.topic(d), "sensors/data");
    ASSERT_TRUE(parser.Parse(payload, "", kNow, &r, &reject)) << payload;
    EXPECT_FALSE(r.has_seq);
    EXPECT_TRUE(r.has_device_ts);
    EXPECT_EQ(r.ts_source, proto::TimeSource::kGateway);  // millis() is uptime
    EXPECT_TRUE(identities.emplace(r.device_id, r.device_ts_raw).second) << "duplicate " << payload;
  }
}

TEST(ReadingGenerator, SameSeedSameValuesOtherSaltOtherBoot) {
  ReadingGenerator a(10, Format::kNative, 42, 1), b(10, Format::kNative, 42, 1),
      c(10, Format::kNative, 42, 2);
  std::string pa, pb, pc;
  for (int i = 0; i < 100; ++i) {
    a.Next(i % 10, kNow, 0, &pa);
    b.Next(i % 10, kNow, 0, &pb);
    c.Next(i % 10, kNow, 0, &pc);
    EXPECT_EQ(pa, pb);
    EXPECT_NE(pa, pc);  // boot differs
  }
}

}  // namespace
}  // namespace outpost::bench_pub
