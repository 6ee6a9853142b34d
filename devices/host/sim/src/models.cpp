#include "outpost/node/sim/models.h"

#include <algorithm>
#include <cmath>

namespace outpost::node::sim {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr std::int64_t kDayMs = 86'400'000;
constexpr std::int64_t kHourMs = 3'600'000;
constexpr std::int64_t kRssiKnotMs = 300'000;

enum Salt : std::uint64_t {
  kTempOffset = 1,
  kTempNoise,
  kHumOffset,
  kHumNoise,
  kMotion,
  kBatteryStart,
  kRssiOffset,
  kRssiKnot,
  kRssiJitter,
  kReadError,
};

std::int64_t FloorDiv(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

// Noise is keyed by the second, so two reads in the same second agree (a real sensor's
// conversion time is about that).
std::uint64_t Second(std::int64_t wall_ms) {
  return static_cast<std::uint64_t>(FloorDiv(wall_ms, 1000));
}

double DeviceTempOffset(const ModelParams& p, std::uint64_t seed, std::uint32_t device) {
  return (Unit(Hash(seed, device, kTempOffset, 0)) * 2.0 - 1.0) * p.temperature_spread_c;
}

double DailyCycle(std::int64_t wall_ms) {
  const double day_fraction =
      static_cast<double>(wall_ms - FloorDiv(wall_ms, kDayMs) * kDayMs) / kDayMs;
  // Peak at 15:00, trough at 03:00.
  return std::sin(2.0 * kPi * (day_fraction - 9.0 / 24.0));
}

}  // namespace

std::uint64_t Mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::uint64_t Hash(std::uint64_t seed, std::uint64_t device, std::uint64_t salt, std::uint64_t t) {
  return Mix(Mix(Mix(Mix(seed) ^ device) ^ salt) ^ t);
}

double Unit(std::uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }

double Gaussian(std::uint64_t h) {
  double sum = 0;
  for (int i = 0; i < 4; ++i) {
    sum += static_cast<double>((h >> (16 * i)) & 0xffff) / 65536.0;
  }
  // Four uniforms: mean 2, variance 4/12.
  return (sum - 2.0) * std::sqrt(3.0);
}

double TemperatureC(const ModelParams& p, std::uint64_t seed, std::uint32_t device,
                    std::int64_t wall_ms) {
  const double noise = Gaussian(Hash(seed, device, kTempNoise, Second(wall_ms)));
  const double t = p.temperature_mean_c + DeviceTempOffset(p, seed, device) +
                   p.temperature_daily_amplitude_c * DailyCycle(wall_ms) +
                   p.temperature_noise_c * noise;
  return std::round(t * 100.0) / 100.0;
}

double HumidityPct(const ModelParams& p, std::uint64_t seed, std::uint32_t device,
                   std::int64_t wall_ms) {
  const double offset =
      (Unit(Hash(seed, device, kHumOffset, 0)) * 2.0 - 1.0) * p.humidity_spread_pct;
  const double warming = p.temperature_daily_amplitude_c * DailyCycle(wall_ms);
  const double noise = Gaussian(Hash(seed, device, kHumNoise, Second(wall_ms)));
  const double h = p.humidity_mean_pct + offset - p.humidity_per_degree_pct * warming +
                   p.humidity_noise_pct * noise;
  return std::round(std::clamp(h, 0.0, 100.0) * 10.0) / 10.0;
}

bool Motion(const ModelParams& p, std::uint64_t seed, std::uint32_t device, std::int64_t wall_ms) {
  const int hour = static_cast<int>((wall_ms - FloorDiv(wall_ms, kDayMs) * kDayMs) / kHourMs);
  const bool occupied = p.occupied_from_h <= p.occupied_to_h
                            ? (hour >= p.occupied_from_h && hour < p.occupied_to_h)
                            : (hour >= p.occupied_from_h || hour < p.occupied_to_h);
  const double prob = occupied ? p.motion_probability_occupied : p.motion_probability_empty;
  return Unit(Hash(seed, device, kMotion, Second(wall_ms))) < prob;
}

double BatteryPct(const ModelParams& p, std::uint64_t seed, std::uint32_t device,
                  std::int64_t elapsed_ms) {
  const double start =
      p.battery_start_min_pct + Unit(Hash(seed, device, kBatteryStart, 0)) *
                                    (p.battery_start_max_pct - p.battery_start_min_pct);
  const double hours = static_cast<double>(std::max<std::int64_t>(elapsed_ms, 0)) / kHourMs;
  const double pct = start - p.battery_drain_pct_per_hour * hours;
  return std::round(std::clamp(pct, 0.0, 100.0) * 10.0) / 10.0;
}

double HoursUntilBattery(const ModelParams& p, std::uint64_t seed, std::uint32_t device,
                         double pct) {
  const double start = BatteryPct(p, seed, device, 0);
  if (start < pct) return 0;
  if (p.battery_drain_pct_per_hour <= 0) return 1e12;
  return (start - pct) / p.battery_drain_pct_per_hour;
}

int RssiDbm(const ModelParams& p, std::uint64_t seed, std::uint32_t device, std::int64_t wall_ms) {
  // Value noise: a random level at every knot, smoothly interpolated between them.
  const std::int64_t knot = FloorDiv(wall_ms, kRssiKnotMs);
  const double frac = static_cast<double>(wall_ms - knot * kRssiKnotMs) / kRssiKnotMs;
  const double a = Unit(Hash(seed, device, kRssiKnot, static_cast<std::uint64_t>(knot))) * 2 - 1;
  const double b =
      Unit(Hash(seed, device, kRssiKnot, static_cast<std::uint64_t>(knot + 1))) * 2 - 1;
  const double s = frac * frac * (3 - 2 * frac);
  const double offset = (Unit(Hash(seed, device, kRssiOffset, 0)) * 2 - 1) * 10.0;
  const double jitter = Gaussian(Hash(seed, device, kRssiJitter, Second(wall_ms)));
  const double r =
      p.rssi_mean_dbm + offset + p.rssi_drift_db * (a + (b - a) * s) + p.rssi_jitter_db * jitter;
  return static_cast<int>(std::lround(std::clamp(r, -110.0, -20.0)));
}

bool ReadFails(const ModelParams& p, std::uint64_t seed, std::uint32_t device,
               std::int64_t wall_ms) {
  return Unit(Hash(seed, device, kReadError, static_cast<std::uint64_t>(wall_ms))) <
         p.read_error_rate;
}

}  // namespace outpost::node::sim
