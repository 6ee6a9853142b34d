#include "outpost/bench_pub/pacer.h"

#include <gtest/gtest.h>

namespace outpost::bench_pub {
namespace {

TEST(Pacer, UnpacedMakesEverythingDue) {
  Pacer p(0, 1000);
  EXPECT_EQ(p.DueBy(0), 1000u);
  EXPECT_FALSE(p.paced());
}

TEST(Pacer, DueCountFollowsAbsoluteScheduleWithoutDrift) {
  Pacer p(10'000, 1'000'000);
  EXPECT_EQ(p.DueBy(0), 1u);  // the first reading at the start
  EXPECT_EQ(p.DueBy(99'999), 1u);
  EXPECT_EQ(p.DueBy(100'000), 2u);
  // A loop that wakes up late catches up at once: the count depends only on elapsed time.
  EXPECT_EQ(p.DueBy(1'000'000'000), 10'001u);
  EXPECT_EQ(p.DueBy(3'600'000'000'000), 1'000'000u);  // capped at the limit
}

TEST(Pacer, DueAtIsConsistentWithDueBy) {
  for (double rate : {1.0, 7.0, 1000.0, 10'000.0, 123'456.7, 1e6}) {
    Pacer p(rate, 100'000'000);
    for (std::uint64_t k : {1ull, 2ull, 3ull, 999ull, 12'345ull, 9'999'999ull}) {
      EXPECT_GT(p.DueBy(p.DueAtNs(k)), k) << rate << " " << k;
      EXPECT_LE(p.DueBy(p.DueAtNs(k) - 1000), k) << rate << " " << k;
    }
  }
}

}  // namespace
}  // namespace outpost::bench_pub
