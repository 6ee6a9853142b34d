#include "outpost/gateway/registry/registry.h"

#include <algorithm>

namespace outpost::gateway::registry {

const char* StateName(State state) {
  switch (state) {
    case State::kOnline:
      return "online";
    case State::kSleeping:
      return "sleeping";
    case State::kOffline:
      return "offline";
  }
  return "unknown";
}

std::optional<State> StateFromName(std::string_view name) {
  if (name == "online") return State::kOnline;
  if (name == "sleeping") return State::kSleeping;
  if (name == "offline") return State::kOffline;
  return std::nullopt;
}

Device* Registry::FindOrAdd(std::string_view id, std::int64_t wall_ms, std::int64_t mono_ms,
                            bool* added) {
  if (added) *added = false;
  auto it = devices_.find(std::string(id));
  if (it != devices_.end()) return &it->second;
  if (devices_.size() >= options_.max_devices) return nullptr;
  Device d;
  d.id = std::string(id);
  d.first_seen_ms = d.last_seen_ms = d.state_changed_ms = wall_ms;
  d.heard_mono_ms = d.valid_mono_ms = mono_ms;
  if (added) *added = true;
  return &devices_.emplace(d.id, std::move(d)).first->second;
}

void Registry::Restore(Device device, std::int64_t wall_ms, std::int64_t mono_ms) {
  device.heard_mono_ms = mono_ms;
  device.valid_mono_ms = mono_ms - std::max<std::int64_t>(0, wall_ms - device.last_seen_ms);
  device.reason = Reason::kRestored;
  std::string id = device.id;
  devices_[id] = std::move(device);
}

std::optional<Change> Registry::Seen(Device& device, std::int64_t wall_ms, std::int64_t mono_ms) {
  if (wall_ms > device.last_seen_ms) device.last_seen_ms = wall_ms;
  device.heard_mono_ms = mono_ms;
  device.reason = Reason::kReading;
  if (device.state == State::kOnline) return std::nullopt;
  return Move(device, State::kOnline, wall_ms);
}

void Registry::Touch(Device& device, std::int64_t wall_ms, std::int64_t mono_ms) {
  if (wall_ms > device.last_seen_ms) device.last_seen_ms = wall_ms;
  device.heard_mono_ms = mono_ms;
}

std::optional<Change> Registry::SetState(Device& device, State state, std::int64_t wall_ms) {
  device.reason = Reason::kStatus;
  return Move(device, state, wall_ms);
}

void Registry::Sweep(std::int64_t wall_ms, std::int64_t mono_ms, std::vector<Change>* changes) {
  for (auto& [id, d] : devices_) {
    if (d.state == State::kOffline) continue;
    std::int64_t limit =
        d.state == State::kSleeping ? options_.sleeping_grace_ms : options_.offline_after_ms;
    if (mono_ms - d.heard_mono_ms >= limit) {
      d.reason = Reason::kSilence;
      if (auto c = Move(d, State::kOffline, wall_ms)) changes->push_back(*c);
    }
  }
}

std::optional<std::string> Registry::EvictIdle(
    std::int64_t mono_ms, const std::function<bool(const Device&)>& may_evict) {
  if (options_.evict_after_ms <= 0) return std::nullopt;
  const std::int64_t cutoff = mono_ms - options_.evict_after_ms;
  for (int pass = 0; pass < 2; ++pass) {
    while (!candidates_.empty()) {
      Candidate c = std::move(candidates_.back());
      candidates_.pop_back();
      auto it = devices_.find(c.id);
      // Skip what changed since the scan (heard again, already gone) or may not go now.
      if (it == devices_.end() || it->second.valid_mono_ms != c.valid_mono_ms ||
          c.valid_mono_ms > cutoff || !may_evict(it->second)) {
        continue;
      }
      devices_.erase(it);
      return c.id;
    }
    if (pass == 1 || mono_ms < next_scan_mono_ms_) break;
    // Scan: the oldest kMaxCandidates idle devices, oldest last; and when the next could be.
    constexpr std::size_t kMaxCandidates = 64;
    std::int64_t oldest_kept = INT64_MAX;
    for (const auto& [id, d] : devices_) {
      if (d.valid_mono_ms > cutoff) {
        oldest_kept = std::min(oldest_kept, d.valid_mono_ms);
        continue;
      }
      candidates_.push_back(Candidate{d.valid_mono_ms, id});
    }
    auto newer_first = [](const Candidate& a, const Candidate& b) {
      return a.valid_mono_ms > b.valid_mono_ms;
    };
    if (candidates_.size() > kMaxCandidates) {
      std::nth_element(candidates_.begin(),
                       candidates_.end() - static_cast<std::ptrdiff_t>(kMaxCandidates),
                       candidates_.end(), newer_first);
      candidates_.erase(candidates_.begin(),
                        candidates_.end() - static_cast<std::ptrdiff_t>(kMaxCandidates));
    }
    std::sort(candidates_.begin(), candidates_.end(), newer_first);
    next_scan_mono_ms_ = candidates_.empty() && oldest_kept != INT64_MAX
                             ? oldest_kept + options_.evict_after_ms
                             : mono_ms;  // candidates left: rescan when they are used up
  }
  return std::nullopt;
}

std::size_t Registry::count(State state) const {
  std::size_t n = 0;
  for (const auto& [id, d] : devices_) n += d.state == state;
  return n;
}

std::optional<Change> Registry::Move(Device& device, State to, std::int64_t now_ms) {
  if (device.state == to) return std::nullopt;
  Change c{device.id, device.state, to, now_ms};
  device.state = to;
  device.state_changed_ms = now_ms;
  return c;
}

}  // namespace outpost::gateway::registry
