#include "outpost/gateway/registry/registry.h"

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
  d.heard_mono_ms = mono_ms;
  if (added) *added = true;
  return &devices_.emplace(d.id, std::move(d)).first->second;
}

void Registry::Restore(Device device, std::int64_t mono_ms) {
  device.heard_mono_ms = mono_ms;
  std::string id = device.id;
  devices_[id] = std::move(device);
}

std::optional<Change> Registry::Seen(Device& device, std::int64_t wall_ms, std::int64_t mono_ms) {
  if (wall_ms > device.last_seen_ms) device.last_seen_ms = wall_ms;
  device.heard_mono_ms = mono_ms;
  if (device.state == State::kOnline) return std::nullopt;
  return Move(device, State::kOnline, wall_ms);
}

void Registry::Touch(Device& device, std::int64_t wall_ms, std::int64_t mono_ms) {
  if (wall_ms > device.last_seen_ms) device.last_seen_ms = wall_ms;
  device.heard_mono_ms = mono_ms;
}

std::optional<Change> Registry::SetState(Device& device, State state, std::int64_t wall_ms) {
  return Move(device, state, wall_ms);
}

void Registry::Sweep(std::int64_t wall_ms, std::int64_t mono_ms, std::vector<Change>* changes) {
  for (auto& [id, d] : devices_) {
    if (d.state == State::kOffline) continue;
    std::int64_t limit =
        d.state == State::kSleeping ? options_.sleeping_grace_ms : options_.offline_after_ms;
    if (mono_ms - d.heard_mono_ms >= limit) {
      if (auto c = Move(d, State::kOffline, wall_ms)) changes->push_back(*c);
    }
  }
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
