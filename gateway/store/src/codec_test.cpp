#include "codec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

namespace outpost::gateway::store::codec {
namespace {

TEST(Varint, RoundTripsEdgeValues) {
  for (uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{127}, uint64_t{128}, uint64_t{300},
                     std::numeric_limits<uint64_t>::max()}) {
    std::string s;
    PutVarint(&s, v);
    std::string_view in(s);
    uint64_t out = 0;
    ASSERT_TRUE(GetVarint(&in, &out));
    EXPECT_EQ(out, v);
    EXPECT_TRUE(in.empty());
  }
  std::string_view truncated("\x80\x80", 2);
  uint64_t out;
  EXPECT_FALSE(GetVarint(&truncated, &out));
}

TEST(ZigZag, RoundTripsExtremes) {
  for (int64_t v : {int64_t{0}, int64_t{-1}, int64_t{1}, std::numeric_limits<int64_t>::min(),
                    std::numeric_limits<int64_t>::max()}) {
    EXPECT_EQ(UnZigZag(ZigZag(v)), v);
  }
}

TEST(Metrics, PackAndIterate) {
  std::string blob;
  AppendMetric(&blob, 1, false, 21.5);
  AppendMetric(&blob, 700, true, 1);
  AppendMetric(&blob, 3, true, 0);
  AppendMetric(&blob, 4, false, -0.25);
  MetricReader r(blob);
  PackedMetric m;
  ASSERT_TRUE(r.Next(&m));
  EXPECT_EQ(m.key, 1);
  EXPECT_FALSE(m.is_bool);
  EXPECT_EQ(m.value, 21.5);
  ASSERT_TRUE(r.Next(&m));
  EXPECT_EQ(m.key, 700);
  EXPECT_TRUE(m.is_bool);
  EXPECT_EQ(m.value, 1.0);
  ASSERT_TRUE(r.Next(&m));
  EXPECT_EQ(m.value, 0.0);
  ASSERT_TRUE(r.Next(&m));
  EXPECT_EQ(m.value, -0.25);
  EXPECT_FALSE(r.Next(&m));
  EXPECT_FALSE(r.corrupt());

  MetricReader bad(std::string_view(blob).substr(0, 5));  // cut inside the first double
  EXPECT_FALSE(bad.Next(&m));
  EXPECT_TRUE(bad.corrupt());
}

TEST(Block, RoundTripsSparseColumnsAndIdentities) {
  std::vector<std::string> blobs(300);
  std::vector<BlockReading> in;
  for (int i = 0; i < 300; ++i) {
    AppendMetric(&blobs[i], 1, false, i * 0.5);
    if (i % 3 == 0) AppendMetric(&blobs[i], 2, true, i % 2);
    if (i == 7) AppendMetric(&blobs[i], 9, false, std::nan(""));
    uint8_t flags = static_cast<uint8_t>(i % 2 ? kFlagHasSeq : kFlagHasDeviceTs);
    in.push_back({1000 + i * 7, 1'700'000'000'000 + i * 1000, 1'700'000'000'000 + i * 1000 + 5,
                  flags, 3, static_cast<uint64_t>(i), -5 + i, blobs[i]});
  }
  BlockScratch scratch;
  std::string block;
  EncodeBlock(in, &scratch, &block);

  std::vector<int64_t> ts;
  std::vector<TsValue> pts;
  ASSERT_TRUE(DecodeBlockSeries(block, 1, 1'700'000'000'000 + 10'000, 1'700'000'000'000 + 20'000,
                                &ts, &pts));
  ASSERT_EQ(pts.size(), 10u);
  EXPECT_EQ(pts[0].ts_ms, 1'700'000'000'000 + 10'000);
  EXPECT_EQ(pts[0].value, 5.0);

  pts.clear();
  ASSERT_TRUE(DecodeBlockSeries(block, 2, 0, std::numeric_limits<int64_t>::max(), &ts, &pts));
  ASSERT_EQ(pts.size(), 100u);
  EXPECT_EQ(pts[1].ts_ms, 1'700'000'000'000 + 3 * 1000);
  EXPECT_EQ(pts[1].value, 1.0);
  EXPECT_EQ(pts[2].value, 0.0);

  pts.clear();
  ASSERT_TRUE(DecodeBlockSeries(block, 9, 0, std::numeric_limits<int64_t>::max(), &ts, &pts));
  ASSERT_EQ(pts.size(), 1u);
  EXPECT_TRUE(std::isnan(pts[0].value));

  std::vector<BlockIdentity> ids;
  ASSERT_TRUE(DecodeBlockIdentities(block, &ids));
  ASSERT_EQ(ids.size(), 300u);
  EXPECT_EQ(ids[5].id, 1035);
  EXPECT_EQ(ids[5].flags, kFlagHasSeq);
  EXPECT_EQ(ids[5].seq, 5u);
  EXPECT_EQ(ids[5].boot, 3u);
  EXPECT_EQ(ids[6].device_ts, 1);
}

TEST(Block, CorruptInputIsRejectedNotRead) {
  std::string blob;
  AppendMetric(&blob, 1, false, 1.0);
  std::vector<BlockReading> in = {{1, 10, 10, 0, 0, 0, 0, blob}, {2, 20, 20, 0, 0, 0, 0, blob}};
  BlockScratch scratch;
  std::string block;
  EncodeBlock(in, &scratch, &block);
  std::vector<int64_t> ts;
  std::vector<TsValue> pts;
  std::vector<BlockIdentity> ids;
  // Every truncation and a sweep of byte flips must fail cleanly or decode; never crash.
  for (size_t cut = 0; cut < block.size(); ++cut) {
    std::string_view t(block.data(), cut);
    EXPECT_FALSE(DecodeBlockSeries(t, 1, 0, 100, &ts, &pts)) << cut;
    (void)DecodeBlockIdentities(t, &ids);
  }
  std::mt19937 rng(42);
  for (int i = 0; i < 2000; ++i) {
    std::string b = block;
    b[rng() % b.size()] = static_cast<char>(rng());
    pts.clear();
    ids.clear();
    (void)DecodeBlockSeries(b, 1, 0, 100, &ts, &pts);
    (void)DecodeBlockIdentities(b, &ids);
  }
}

TEST(Block, SummariesCountEachMetricOnceAReadingBooleansAsZeroOne) {
  std::string a, b, c;
  AppendMetric(&a, 1, false, 20.5);
  AppendMetric(&a, 2, true, 1);
  AppendMetric(&a, 1, false, 99);  // a second value of key 1 in one reading: not counted
  AppendMetric(&b, 1, false, -3);
  AppendMetric(&c, 2, true, 0);
  AppendMetric(&c, 7, false, 4);
  std::vector<BlockReading> readings = {
      {1, 10, 10, 0, 1, 1, 0, a}, {2, 20, 20, 0, 1, 2, 0, b}, {3, 30, 30, 0, 1, 3, 0, c}};
  std::vector<MetricSummary> s;
  ASSERT_TRUE(SummarizeBlock(readings, &s));
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].metric_key, 1);
  EXPECT_EQ(s[0].n, 2);
  EXPECT_EQ(s[0].min, -3);
  EXPECT_EQ(s[0].max, 20.5);
  EXPECT_EQ(s[0].sum, 17.5);
  EXPECT_EQ(s[1].metric_key, 2);
  EXPECT_EQ(s[1].n, 2);
  EXPECT_EQ(s[1].min, 0);
  EXPECT_EQ(s[1].max, 1);
  EXPECT_EQ(s[1].sum, 1);
  EXPECT_EQ(s[2].metric_key, 7);
  EXPECT_EQ(s[2].n, 1);

  std::string corrupt = a.substr(0, a.size() - 3);  // a double cut short
  readings[1].metrics = corrupt;
  EXPECT_FALSE(SummarizeBlock(readings, &s));
}

}  // namespace
}  // namespace outpost::gateway::store::codec
