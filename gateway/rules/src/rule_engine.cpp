#include "outpost/gateway/rules/rule_engine.h"

#include <fmt/format.h>

#include <algorithm>

namespace outpost::gateway::rules {

using config::Comparison;
using config::RuleConfig;

namespace {

bool Breached(const RuleConfig& r, double v) {
  return r.comparison == Comparison::kAbove ? v > r.threshold : v < r.threshold;
}

bool Recovered(const RuleConfig& r, double v) {
  return r.comparison == Comparison::kAbove ? v <= r.threshold - r.hysteresis
                                            : v >= r.threshold + r.hysteresis;
}

std::string Number(double v) { return fmt::format("{}", v); }

}  // namespace

std::string FormatMessage(std::string_view tmpl, std::string_view rule, std::string_view device,
                          std::string_view metric, double value, double threshold) {
  std::string out;
  out.reserve(tmpl.size() + 32);
  for (std::size_t i = 0; i < tmpl.size();) {
    auto try_sub = [&](std::string_view key, std::string_view with) {
      if (tmpl.compare(i, key.size(), key) != 0) return false;
      out.append(with);
      i += key.size();
      return true;
    };
    if (tmpl[i] == '{' && (try_sub("{device}", device) || try_sub("{metric}", metric) ||
                           try_sub("{value}", Number(value)) ||
                           try_sub("{threshold}", Number(threshold)) || try_sub("{rule}", rule))) {
      continue;
    }
    out.push_back(tmpl[i++]);
  }
  return out;
}

RuleEngine::RuleEngine(std::vector<RuleConfig> rules, bool offline_alerts)
    : rules_(std::move(rules)), offline_alerts_(offline_alerts) {
  Index();
}

void RuleEngine::Index() {
  by_metric_.clear();
  for (std::size_t i = 0; i < rules_.size(); ++i) by_metric_[rules_[i].metric].push_back(i);
}

bool RuleEngine::Applies(const RuleConfig& rule, std::string_view device_id) const {
  return rule.devices.empty() ||
         std::find(rule.devices.begin(), rule.devices.end(), device_id) != rule.devices.end();
}

RuleEngine::DeviceStates& RuleEngine::StatesFor(std::string_view device_id) {
  auto it = devices_.find(std::string(device_id));
  if (it == devices_.end()) it = devices_.emplace(std::string(device_id), DeviceStates{}).first;
  it->second.per_rule.resize(rules_.size());
  return it->second;
}

Transition RuleEngine::Make(const RuleConfig& rule, std::string_view device_id, bool raised,
                            double value, std::int64_t now_ms, std::int64_t raised_ms) const {
  Transition t;
  t.raised_ms = raised_ms;
  t.raised = raised;
  t.alert_id = rule.name + ":" + std::string(device_id);
  t.rule = rule.name;
  t.device_id = std::string(device_id);
  t.metric = rule.metric;
  t.severity = raised ? rule.severity : "info";
  t.value = value;
  t.threshold = rule.threshold;
  t.at_ms = now_ms;
  if (raised) {
    std::string_view tmpl = rule.message.empty()
                                ? (rule.comparison == Comparison::kAbove
                                       ? "{metric} above {threshold} on {device}: {value}"
                                       : "{metric} below {threshold} on {device}: {value}")
                                : std::string_view(rule.message);
    t.message = FormatMessage(tmpl, rule.name, device_id, rule.metric, value, rule.threshold);
  } else {
    t.message = FormatMessage("Cleared {rule} on {device}: {metric} is {value}", rule.name,
                              device_id, rule.metric, value, rule.threshold);
  }
  return t;
}

void RuleEngine::Evaluate(std::string_view device_id, const std::vector<MetricSample>& metrics,
                          std::int64_t now_ms, std::vector<Transition>* out) {
  DeviceStates* states = nullptr;
  for (const MetricSample& m : metrics) {
    auto it = by_metric_.find(std::string(m.name));
    if (it == by_metric_.end()) continue;
    for (std::size_t index : it->second) {
      const RuleConfig& rule = rules_[index];
      if (!Applies(rule, device_id)) continue;
      if (!states) states = &StatesFor(device_id);
      State& s = states->per_rule[index];
      s.value = m.value;
      switch (s.phase) {
        case Phase::kIdle:
          if (!Breached(rule, m.value)) break;
          s.since_ms = now_ms;
          s.phase = Phase::kPending;
          [[fallthrough]];
        case Phase::kPending:
          if (!Breached(rule, m.value)) {
            s.phase = Phase::kIdle;
          } else if (now_ms - s.since_ms >= rule.for_s * 1000) {
            s.phase = Phase::kActive;
            s.since_ms = now_ms;  // from now on: when the alert was raised
            ++active_;
            out->push_back(Make(rule, device_id, true, m.value, now_ms, now_ms));
          }
          break;
        case Phase::kActive:
          if (Recovered(rule, m.value)) {
            s.phase = Phase::kIdle;
            --active_;
            out->push_back(Make(rule, device_id, false, m.value, now_ms, s.since_ms));
          }
          break;
      }
    }
  }
}

void RuleEngine::Tick(std::int64_t now_ms, std::vector<Transition>* out) {
  for (auto& [device_id, states] : devices_) {
    for (std::size_t i = 0; i < states.per_rule.size() && i < rules_.size(); ++i) {
      State& s = states.per_rule[i];
      if (s.phase == Phase::kPending && now_ms - s.since_ms >= rules_[i].for_s * 1000) {
        s.phase = Phase::kActive;
        s.since_ms = now_ms;
        ++active_;
        out->push_back(Make(rules_[i], device_id, true, s.value, now_ms, now_ms));
      }
    }
  }
}

Transition RuleEngine::MakeOffline(std::string_view device_id, bool raised, std::int64_t now_ms,
                                   std::int64_t raised_ms) const {
  Transition t;
  t.raised = raised;
  t.alert_id = std::string(kOfflineRule) + ":" + std::string(device_id);
  t.rule = std::string(kOfflineRule);
  t.device_id = std::string(device_id);
  t.severity = raised ? "warning" : "info";
  t.message = "Device " + std::string(device_id) + (raised ? " is offline" : " is back online");
  t.at_ms = now_ms;
  t.raised_ms = raised_ms;
  return t;
}

void RuleEngine::DeviceOffline(std::string_view device_id, std::int64_t now_ms,
                               std::vector<Transition>* out) {
  if (!offline_alerts_) return;
  DeviceStates& states = StatesFor(device_id);
  if (states.offline_active) return;
  states.offline_active = true;
  states.offline_since_ms = now_ms;
  ++active_;
  out->push_back(MakeOffline(device_id, true, now_ms, now_ms));
}

void RuleEngine::DeviceOnline(std::string_view device_id, std::int64_t now_ms,
                              std::vector<Transition>* out) {
  auto it = devices_.find(std::string(device_id));
  if (it == devices_.end() || !it->second.offline_active) return;
  it->second.offline_active = false;
  --active_;
  out->push_back(MakeOffline(device_id, false, now_ms, it->second.offline_since_ms));
}

void RuleEngine::Forget(std::string_view device_id) {
  auto it = devices_.find(std::string(device_id));
  if (it == devices_.end() || it->second.offline_active) return;
  for (const State& st : it->second.per_rule) {
    if (st.phase == Phase::kActive) return;
  }
  devices_.erase(it);
}

void RuleEngine::RestoreActive(std::string_view rule, std::string_view device_id,
                               std::string_view metric, double value, std::int64_t raised_ms,
                               std::int64_t now_ms, std::vector<Transition>* out) {
  if (rule == kOfflineRule) {
    DeviceStates& states = StatesFor(device_id);
    if (!offline_alerts_) {
      out->push_back(MakeOffline(device_id, false, now_ms, raised_ms));
      return;
    }
    if (!states.offline_active) ++active_;
    states.offline_active = true;
    states.offline_since_ms = raised_ms;
    return;
  }
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    if (rules_[i].name != rule || rules_[i].metric != metric || !Applies(rules_[i], device_id)) {
      continue;
    }
    State& s = StatesFor(device_id).per_rule[i];
    if (s.phase != Phase::kActive) ++active_;
    s = State{Phase::kActive, raised_ms, value};
    return;
  }
  // The rule is gone (or changed what it watches): its alert cannot clear by itself.
  RuleConfig gone;
  gone.name = std::string(rule);
  gone.metric = std::string(metric);
  out->push_back(Make(gone, device_id, false, value, now_ms, raised_ms));
}

void RuleEngine::Reload(std::vector<RuleConfig> rules, bool offline_alerts, std::int64_t now_ms,
                        std::vector<Transition>* out) {
  std::vector<RuleConfig> old = std::move(rules_);
  rules_ = std::move(rules);
  Index();
  for (auto& [device_id, states] : devices_) {
    std::vector<State> next(rules_.size());
    for (std::size_t i = 0; i < old.size() && i < states.per_rule.size(); ++i) {
      const State& s = states.per_rule[i];
      auto same = std::find_if(rules_.begin(), rules_.end(), [&](const RuleConfig& r) {
        return r.name == old[i].name && r.metric == old[i].metric &&
               r.comparison == old[i].comparison && r.threshold == old[i].threshold &&
               r.devices == old[i].devices;
      });
      if (same != rules_.end()) {
        next[static_cast<std::size_t>(same - rules_.begin())] = s;
      } else if (s.phase == Phase::kActive) {
        --active_;
        out->push_back(Make(old[i], device_id, false, s.value, now_ms, s.since_ms));
      }
    }
    states.per_rule = std::move(next);
  }
  if (offline_alerts_ && !offline_alerts) {
    for (auto& [device_id, states] : devices_) {
      if (states.offline_active) DeviceOnline(device_id, now_ms, out);
    }
  }
  offline_alerts_ = offline_alerts;
}

}  // namespace outpost::gateway::rules
