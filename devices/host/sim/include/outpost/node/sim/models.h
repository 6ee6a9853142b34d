// Sensor models for virtual devices: pure functions of (seed, device index, time), so a run is
// reproducible from its seed and a model can be evaluated at any instant without history.
//
//   temperature   daily cycle (minimum at 03:00, maximum at 15:00 UTC + device offset) + noise
//   humidity      moves against temperature (-2 %RH per degree above the device mean) + noise
//   motion        random events on an occupancy schedule (busy hours vs. quiet hours)
//   battery       linear drain from a per-device start level; reaches the low-battery path at a
//                 configurable speed; a fault can force it low (scenario `low_battery`)
//   rssi          slow drift (value noise over 5-minute knots) plus per-sample jitter
//   read errors   a sample fails with probability `read_error_rate` (as a DHT22 does)
//
// Thread: pure functions; safe anywhere. Errors: none (inputs are clamped).
#pragma once

#include <cstdint>

namespace outpost::node::sim {

struct ModelParams {
  double temperature_mean_c = 21.0;
  double temperature_spread_c = 3.0;  // per-device offset in [-spread, +spread]
  double temperature_daily_amplitude_c = 5.0;
  double temperature_noise_c = 0.2;
  double humidity_mean_pct = 50.0;
  double humidity_spread_pct = 8.0;
  double humidity_per_degree_pct = 2.0;  // humidity falls by this much per degree of warming
  double humidity_noise_pct = 0.5;
  int occupied_from_h = 8;  // UTC hours [from, to) are busy
  int occupied_to_h = 18;
  double motion_probability_occupied = 0.30;  // per sample
  double motion_probability_empty = 0.02;
  double battery_start_min_pct = 80.0;
  double battery_start_max_pct = 100.0;
  double battery_drain_pct_per_hour = 0.5;
  double rssi_mean_dbm = -65.0;
  double rssi_drift_db = 8.0;  // amplitude of the slow drift
  double rssi_jitter_db = 1.0;
  double read_error_rate = 0.001;  // probability that a temperature/humidity read fails
};

// Deterministic hashing: SplitMix64 finaliser, and a uniform double in [0, 1).
std::uint64_t Mix(std::uint64_t x);
std::uint64_t Hash(std::uint64_t seed, std::uint64_t device, std::uint64_t salt, std::uint64_t t);
double Unit(std::uint64_t h);
// Approximately normal (sum of four uniforms, scaled to unit variance).
double Gaussian(std::uint64_t h);

// `wall_ms`: the device's wall clock (Unix ms). `elapsed_ms`: time since the device's model
// started (the simulation start), for battery drain.
double TemperatureC(const ModelParams& p, std::uint64_t seed, std::uint32_t device,
                    std::int64_t wall_ms);
double HumidityPct(const ModelParams& p, std::uint64_t seed, std::uint32_t device,
                   std::int64_t wall_ms);
bool Motion(const ModelParams& p, std::uint64_t seed, std::uint32_t device, std::int64_t wall_ms);
double BatteryPct(const ModelParams& p, std::uint64_t seed, std::uint32_t device,
                  std::int64_t elapsed_ms);
int RssiDbm(const ModelParams& p, std::uint64_t seed, std::uint32_t device, std::int64_t wall_ms);
bool ReadFails(const ModelParams& p, std::uint64_t seed, std::uint32_t device,
               std::int64_t wall_ms);
// Hours until BatteryPct crosses `pct` (0 if already below; a large value if it never drains).
double HoursUntilBattery(const ModelParams& p, std::uint64_t seed, std::uint32_t device,
                         double pct);

}  // namespace outpost::node::sim
