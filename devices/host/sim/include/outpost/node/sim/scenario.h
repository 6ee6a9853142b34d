// Scenario: the sensor model parameters and the faults of a simulator run, read from YAML.
// Format, with every key: docs/simulator.md and config/scenario.example.yaml.
//
//   models:   { temperature: {...}, humidity: {...}, motion: {...}, battery: {...}, rssi: {...},
//               read_errors: {rate: 0.001} }
//   faults:   - {type: broker_outage, at_s: 30, duration_s: 10}
//             - {type: blackhole, at_s: 60, duration_s: 20, fraction: 0.25}
//             - {type: clock_skew, fraction: 0.1, max_skew_s: 120}
//             - {type: reboot_storm, at_s: 90, fraction: 0.5, spread_s: 5}
//             - {type: malformed, rate_per_s: 2, at_s: 0, duration_s: 0}
//             - {type: low_battery, devices: [node-00003], at_s: 10, battery_pct: 5}
//
// Times are seconds since the start of the run. A fault hits every device, the devices listed in
// `devices` (ids), or a `fraction` of the fleet chosen deterministically from the run's seed.
// Ownership: value types. Thread: pure; parse anywhere.
// Errors: ParseScenario returns kInvalidArgument naming the key path, e.g.
//   "faults[1].duration_s: expected a number >= 0, got \"ten\"", or an unknown key;
//   LoadScenario adds kNotFound/kUnavailable for the file, and kInvalidArgument for one that is
//   not a regular file of at most kMaxScenarioBytes (a FIFO, a device).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/node/sim/models.h"

namespace outpost::node::sim {

enum class FaultKind {
  kBrokerOutage,  // every connection is cut and no connect succeeds for the window
  kBlackhole,     // affected devices' bytes vanish both ways for the window; connects time out
  kClockSkew,     // affected devices' wall clocks are off by up to +-max_skew (fixed per device)
  kRebootStorm,   // affected devices restart (RAM lost, boot counter kept) within spread
  kMalformed,     // malformed payloads on device topics at rate_per_s for the window
  kLowBattery,    // affected devices' battery reads battery_pct from at on
};
const char* FaultKindName(FaultKind kind);

struct Fault {
  FaultKind kind = FaultKind::kBrokerOutage;
  std::int64_t at_ms = 0;
  std::int64_t duration_ms = 0;  // 0 with kMalformed: until the end of the run
  double fraction = 1.0;         // share of the fleet, used when `devices` is empty
  std::vector<std::string> devices;
  std::int64_t max_skew_ms = 0;
  std::int64_t spread_ms = 0;
  double rate_per_s = 0;
  double battery_pct = 5.0;

  bool ActiveAt(std::int64_t elapsed_ms) const {
    return elapsed_ms >= at_ms &&
           (duration_ms == 0 ? kind == FaultKind::kMalformed || kind == FaultKind::kClockSkew ||
                                   kind == FaultKind::kLowBattery
                             : elapsed_ms < at_ms + duration_ms);
  }
};

struct Scenario {
  ModelParams models;
  std::vector<Fault> faults;
};

Result<Scenario> ParseScenario(std::string_view yaml);
inline constexpr std::size_t kMaxScenarioBytes = 1 << 20;
Result<Scenario> LoadScenario(const std::string& path);

// Whether fault number `fault_index` of a run with `seed` hits this device.
bool FaultAffects(const Fault& fault, std::size_t fault_index, std::uint64_t seed,
                  std::uint32_t device_index, std::string_view device_id);
// A per-device value in [0, 1) for spreading a fault (reboot time within spread, skew).
double FaultDraw(std::size_t fault_index, std::uint64_t seed, std::uint32_t device_index);

}  // namespace outpost::node::sim
