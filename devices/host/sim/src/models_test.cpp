#include "outpost/node/sim/models.h"

#include <gtest/gtest.h>

#include <cmath>

namespace outpost::node::sim {
namespace {

constexpr std::int64_t kMidnight = 1'748'736'000'000;  // 2025-06-01T00:00:00Z
constexpr std::int64_t kHour = 3'600'000;

TEST(Models, SameSeedSameValues) {
  ModelParams p;
  for (std::int64_t t = kMidnight; t < kMidnight + kHour; t += 7'777) {
    EXPECT_EQ(TemperatureC(p, 1, 3, t), TemperatureC(p, 1, 3, t));
    EXPECT_EQ(RssiDbm(p, 1, 3, t), RssiDbm(p, 1, 3, t));
  }
  // Different seeds or devices differ somewhere.
  EXPECT_NE(TemperatureC(p, 1, 3, kMidnight), TemperatureC(p, 2, 3, kMidnight));
  EXPECT_NE(TemperatureC(p, 1, 3, kMidnight), TemperatureC(p, 1, 4, kMidnight));
}

TEST(Models, TemperatureFollowsDailyCycle) {
  ModelParams p;
  p.temperature_noise_c = 0;
  const double at3 = TemperatureC(p, 9, 0, kMidnight + 3 * kHour);
  const double at15 = TemperatureC(p, 9, 0, kMidnight + 15 * kHour);
  EXPECT_NEAR(at15 - at3, 2 * p.temperature_daily_amplitude_c, 0.05);
  // Noise stays around its standard deviation.
  p.temperature_noise_c = 0.2;
  double sum = 0, sum2 = 0;
  const int n = 2000;
  for (int i = 0; i < n; ++i) {
    const double d = TemperatureC(p, 9, 0, kMidnight + 3 * kHour + i * 1000) - at3;
    sum += d;
    sum2 += d * d;
  }
  EXPECT_NEAR(sum / n, 0, 0.05);
  EXPECT_NEAR(std::sqrt(sum2 / n), 0.2, 0.05);
}

TEST(Models, HumidityMovesAgainstTemperature) {
  ModelParams p;
  p.humidity_noise_pct = 0;
  const double warm = HumidityPct(p, 9, 0, kMidnight + 15 * kHour);
  const double cold = HumidityPct(p, 9, 0, kMidnight + 3 * kHour);
  EXPECT_LT(warm, cold);
  EXPECT_NEAR(cold - warm, 2 * p.temperature_daily_amplitude_c * p.humidity_per_degree_pct, 0.2);
}

TEST(Models, MotionFollowsOccupancy) {
  ModelParams p;
  int busy = 0, quiet = 0;
  for (int i = 0; i < 3600; ++i) {
    busy += Motion(p, 5, 1, kMidnight + 10 * kHour + i * 1000);
    quiet += Motion(p, 5, 1, kMidnight + 22 * kHour + i * 1000);
  }
  EXPECT_NEAR(busy / 3600.0, p.motion_probability_occupied, 0.03);
  EXPECT_NEAR(quiet / 3600.0, p.motion_probability_empty, 0.01);
}

TEST(Models, BatteryDrainsToLowAtConfiguredSpeed) {
  ModelParams p;
  p.battery_drain_pct_per_hour = 50;
  const double start = BatteryPct(p, 5, 2, 0);
  EXPECT_GE(start, p.battery_start_min_pct);
  EXPECT_LE(start, p.battery_start_max_pct);
  const double hours = HoursUntilBattery(p, 5, 2, 10.0);
  EXPECT_NEAR(hours, (start - 10.0) / 50, 1e-9);
  EXPECT_GT(BatteryPct(p, 5, 2, static_cast<std::int64_t>((hours - 0.01) * kHour)), 10.0);
  EXPECT_LT(BatteryPct(p, 5, 2, static_cast<std::int64_t>((hours + 0.01) * kHour)), 10.0);
  EXPECT_EQ(BatteryPct(p, 5, 2, 100 * kHour), 0.0);  // clamped
}

TEST(Models, RssiDriftsSmoothlyWithinBounds) {
  ModelParams p;
  p.rssi_jitter_db = 0;
  int prev = RssiDbm(p, 5, 2, kMidnight);
  int lo = prev, hi = prev;
  for (int i = 1; i < 24 * 60; ++i) {
    const int r = RssiDbm(p, 5, 2, kMidnight + i * 60'000);
    EXPECT_LE(std::abs(r - prev), 6) << "minute " << i;  // a drift, not white noise
    lo = std::min(lo, r);
    hi = std::max(hi, r);
    prev = r;
  }
  EXPECT_GT(hi - lo, 3);  // it does move
  EXPECT_GE(lo, -110);
  EXPECT_LE(hi, -20);
}

TEST(Models, ReadErrorsAtConfiguredRate) {
  ModelParams p;
  p.read_error_rate = 0.05;
  int fails = 0;
  for (int i = 0; i < 20000; ++i) fails += ReadFails(p, 3, 1, kMidnight + i * 1000);
  EXPECT_NEAR(fails / 20000.0, 0.05, 0.01);
  p.read_error_rate = 0;
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(ReadFails(p, 3, 1, kMidnight + i));
}

}  // namespace
}  // namespace outpost::node::sim
