// RuleEngine turns readings into alert transitions: raised once when a rule's condition holds
// (for `for_s` if set), cleared once when the value is back past the threshold by `hysteresis`.
// Also the built-in "device_offline" rule, driven by registry changes.
// Time is the gateway's receive time (passed in): replayed readings from a device's offline
// buffer are judged when they arrive.
// Pure: no I/O. Thread: not thread-safe; owned by the ingest (event loop) thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "outpost/gateway/config/config.h"

namespace outpost::gateway::rules {

struct MetricSample {
  std::string_view name;
  double value;
};

struct Transition {
  bool raised = true;    // false: cleared
  std::string alert_id;  // rule + ":" + device
  std::string rule;
  std::string device_id;
  std::string metric;  // empty for device_offline
  std::string severity;
  std::string message;
  double value = 0;
  double threshold = 0;
  std::int64_t at_ms = 0;      // when raised, or when cleared
  std::int64_t raised_ms = 0;  // when raised (for a clear: when its alert was raised)
};

inline constexpr std::string_view kOfflineRule = "device_offline";

class RuleEngine {
 public:
  explicit RuleEngine(std::vector<config::RuleConfig> rules, bool offline_alerts = true);

  // Replaces the rules (config reload). Active alerts of rules that still exist unchanged (same
  // name, metric, comparison, threshold and devices) stay active; the others are cleared through
  // `out`.
  void Reload(std::vector<config::RuleConfig> rules, bool offline_alerts, std::int64_t now_ms,
              std::vector<Transition>* out);
  // Marks an alert active without emitting it (restored from storage at start-up). An alert of
  // a rule that no longer exists (or no longer watches the device) is cleared through `out`.
  void RestoreActive(std::string_view rule, std::string_view device_id, std::string_view metric,
                     double value, std::int64_t raised_ms, std::int64_t now_ms,
                     std::vector<Transition>* out);

  void Evaluate(std::string_view device_id, const std::vector<MetricSample>& metrics,
                std::int64_t now_ms, std::vector<Transition>* out);
  // Raises rules whose condition has held for their duration without a new reading.
  void Tick(std::int64_t now_ms, std::vector<Transition>* out);
  void DeviceOffline(std::string_view device_id, std::int64_t now_ms, std::vector<Transition>* out);
  void DeviceOnline(std::string_view device_id, std::int64_t now_ms, std::vector<Transition>* out);
  // Drops the state kept for a device the registry evicted, unless one of its alerts is active
  // (that stays until it clears).
  void Forget(std::string_view device_id);

  std::size_t active_count() const { return active_; }
  const std::vector<config::RuleConfig>& rules() const { return rules_; }

 private:
  enum class Phase : std::uint8_t { kIdle, kPending, kActive };
  struct State {
    Phase phase = Phase::kIdle;
    std::int64_t since_ms = 0;
    double value = 0;
  };
  struct DeviceStates {
    std::vector<State> per_rule;  // indexed like rules_
    bool offline_active = false;
    std::int64_t offline_since_ms = 0;
  };

  void Index();
  bool Applies(const config::RuleConfig& rule, std::string_view device_id) const;
  DeviceStates& StatesFor(std::string_view device_id);
  Transition Make(const config::RuleConfig& rule, std::string_view device_id, bool raised,
                  double value, std::int64_t now_ms, std::int64_t raised_ms) const;
  Transition MakeOffline(std::string_view device_id, bool raised, std::int64_t now_ms,
                         std::int64_t raised_ms) const;

  std::vector<config::RuleConfig> rules_;
  bool offline_alerts_;
  std::unordered_map<std::string, std::vector<std::size_t>> by_metric_;
  std::unordered_map<std::string, DeviceStates> devices_;
  std::size_t active_ = 0;
};

// Fills {device} {metric} {value} {threshold} {rule} in a message template.
std::string FormatMessage(std::string_view tmpl, std::string_view rule, std::string_view device,
                          std::string_view metric, double value, double threshold);

}  // namespace outpost::gateway::rules
