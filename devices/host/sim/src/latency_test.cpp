#include "outpost/node/sim/latency.h"

#include <gtest/gtest.h>

namespace outpost::node::sim {
namespace {

TEST(LatencyHistogram, EmptyIsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.Percentile(0.5), 0);
  EXPECT_EQ(h.count(), 0u);
}

TEST(LatencyHistogram, ExactBelow64) {
  LatencyHistogram h;
  for (int i = 1; i <= 50; ++i) h.Record(i);
  EXPECT_EQ(h.Percentile(0.5), 25);
  EXPECT_EQ(h.Percentile(0.99), 50);
  EXPECT_EQ(h.max(), 50);
}

TEST(LatencyHistogram, BoundedRelativeErrorAbove) {
  LatencyHistogram h;
  for (int i = 0; i < 99; ++i) h.Record(10);
  h.Record(12'345);
  EXPECT_EQ(h.Percentile(0.5), 10);
  EXPECT_EQ(h.Percentile(0.99), 10);
  EXPECT_EQ(h.Percentile(1.0), 12'345);
  LatencyHistogram g;
  for (std::int64_t v : {100, 1000, 5000, 70'000, 1'000'000}) {
    LatencyHistogram one;
    one.Record(v);
    one.Record(v * 2);  // so the first is not also the max
    EXPECT_GE(one.Percentile(0.5), v);
    EXPECT_LE(one.Percentile(0.5), v + v / 16 + 1) << v;
    g.Merge(one);
  }
  EXPECT_EQ(g.count(), 10u);
}

}  // namespace
}  // namespace outpost::node::sim
