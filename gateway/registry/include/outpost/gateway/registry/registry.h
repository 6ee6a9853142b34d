// Registry: every device the gateway has heard from, with first/last seen, last reading and
// status. Status comes from the status topics (online, sleeping, offline — offline also as the
// broker-published last will) and from silence: a device not heard from for `offline_after_ms`
// (or `sleeping_grace_ms` after it said it was going to sleep) becomes offline.
// Pure: no I/O, time passed in: wall time (ms since the epoch) for what is stored and shown, and a
// monotonic time for silence, so a clock step (an RTC-less Pi syncing after a power cut) does
// not mark the whole site offline. Persisted by the caller (the store writes Device rows).
// Thread: not thread-safe; owned by the ingest (event loop) thread.
// Bounds: at most `max_devices`. When full, FindOrAdd returns nullptr; EvictIdle then makes room
// by removing the device whose last valid reading is oldest, if it is older than
// `evict_after_ms` (fake device ids cannot fill the registry for good; a known device is never
// refused, and a device with a valid reading within evict_after_ms is never evicted).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace outpost::gateway::registry {

enum class State : std::uint8_t { kOnline, kSleeping, kOffline };
const char* StateName(State state);  // "online", "sleeping", "offline"
std::optional<State> StateFromName(std::string_view name);

// What last decided the device's state (kept in memory only: a device restored from storage at
// start-up says kRestored until it is heard again). With the state it gives the API's reason:
// a reading; its own status message (online, sleeping, or offline: the broker's last will or the
// device's own word); silence (the sweep); the state stored by the previous run.
enum class Reason : std::uint8_t { kRestored, kReading, kStatus, kSilence };

struct Device {
  std::string id;
  std::int64_t first_seen_ms = 0;
  std::int64_t last_seen_ms = 0;   // wall
  std::int64_t heard_mono_ms = 0;  // monotonic; not persisted (restored devices start at Restore)
  // Monotonic time of its last valid (stored) reading, or when it was added; restored devices
  // get it from last_seen_ms (see Restore). Orders eviction.
  std::int64_t valid_mono_ms = 0;
  State state = State::kOnline;
  Reason reason = Reason::kReading;
  std::int64_t state_changed_ms = 0;
  std::string last_reading_json;  // metrics of the last stored reading
  std::string firmware;
  std::uint32_t boot = 0;
  std::uint64_t last_seq = 0;
  std::uint64_t readings = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t seq_gaps = 0;
  // Heard on a per-device topic at least once (model::DeviceRow::native).
  bool native = false;
};

struct Change {
  std::string device_id;
  State from;
  State to;
  std::int64_t at_ms;
};

struct Options {
  std::int64_t offline_after_ms = 300'000;
  std::int64_t sleeping_grace_ms = 3'600'000;
  std::size_t max_devices = 10'000;
  std::int64_t evict_after_ms = 86'400'000;  // 0 = never evict
};

class Registry {
 public:
  explicit Registry(Options options) : options_(options) {}

  void set_options(Options options) {
    options_ = options;
    candidates_.clear();  // judged by the old evict_after_ms
    next_scan_mono_ms_ = INT64_MIN;
  }
  const Options& options() const { return options_; }

  // The device, added (online, first seen now) when new; nullptr when the registry is full.
  Device* FindOrAdd(std::string_view id, std::int64_t wall_ms, std::int64_t mono_ms,
                    bool* added = nullptr);
  // Puts back a device loaded from storage (at start-up); its silence counts from mono_ms, its
  // last valid reading from its last_seen_ms (wall_ms is now).
  void Restore(Device device, std::int64_t wall_ms, std::int64_t mono_ms);
  // The device's reading was valid and stored: it is not idle.
  void Valid(Device& device, std::int64_t mono_ms) { device.valid_mono_ms = mono_ms; }
  // When full: removes the device with the oldest valid reading if that is at least
  // evict_after_ms old and `may_evict` agrees, and returns its id; else nullopt (the caller
  // refuses the new device). The caller drops what it keeps of the evicted device (the Device
  // is destroyed). Amortised: a scan keeps the oldest candidates for the next calls
  // and, when none is old enough, no scan runs until the oldest could be.
  std::optional<std::string> EvictIdle(std::int64_t mono_ms,
                                       const std::function<bool(const Device&)>& may_evict);

  // The device sent a reading. A sleeping or offline device comes back online.
  std::optional<Change> Seen(Device& device, std::int64_t wall_ms, std::int64_t mono_ms);
  // Heard from the device without a reading (e.g. its own status message): times only.
  void Touch(Device& device, std::int64_t wall_ms, std::int64_t mono_ms);
  // A status message (or last will) set the state explicitly. It does not count as hearing
  // from the device (a last will is published by the broker).
  std::optional<Change> SetState(Device& device, State state, std::int64_t wall_ms);
  // Marks devices silent since mono_ms - limit offline; appends one Change for each.
  void Sweep(std::int64_t wall_ms, std::int64_t mono_ms, std::vector<Change>* changes);

  std::size_t size() const { return devices_.size(); }
  std::size_t count(State state) const;
  const std::unordered_map<std::string, Device>& devices() const { return devices_; }

 private:
  std::optional<Change> Move(Device& device, State to, std::int64_t now_ms);

  Options options_;
  std::unordered_map<std::string, Device> devices_;
  struct Candidate {
    std::int64_t valid_mono_ms;
    std::string id;
  };
  std::vector<Candidate> candidates_;  // oldest last, from the last scan
  std::int64_t next_scan_mono_ms_ = INT64_MIN;
};

}  // namespace outpost::gateway::registry
