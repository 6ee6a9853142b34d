#include "outpost/base/backoff.h"

#include <gtest/gtest.h>

namespace outpost {
namespace {

TEST(FullJitter, CeilingDoublesThenCaps) {
  BackoffPolicy p{100, 1000};
  // Just under 1.0 approaches the ceiling for that attempt.
  EXPECT_EQ(FullJitterDelayMs(p, 0, 0.999999), 99);
  EXPECT_EQ(FullJitterDelayMs(p, 1, 0.999999), 199);
  EXPECT_EQ(FullJitterDelayMs(p, 3, 0.999999), 799);
  EXPECT_EQ(FullJitterDelayMs(p, 4, 0.999999), 999);
  EXPECT_EQ(FullJitterDelayMs(p, 4000, 0.999999), 999);  // no overflow at huge attempts
}

TEST(FullJitter, ZeroDrawIsImmediateAndHalfIsHalf) {
  BackoffPolicy p{100, 1000};
  EXPECT_EQ(FullJitterDelayMs(p, 2, 0.0), 0);
  EXPECT_EQ(FullJitterDelayMs(p, 2, 0.5), 200);
}

TEST(FullJitter, OutOfRangeDrawIsClamped) {
  BackoffPolicy p{100, 1000};
  EXPECT_EQ(FullJitterDelayMs(p, 0, -3.0), 0);
  EXPECT_EQ(FullJitterDelayMs(p, 0, 7.0), 99);
}

}  // namespace
}  // namespace outpost
