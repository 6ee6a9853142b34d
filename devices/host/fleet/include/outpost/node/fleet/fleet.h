// Fleet: N virtual devices, each the real device core (outpost::device::Node) with host ports
// (sensor models, in-memory settings, RTC memory, power, seeded random), driven by a Backend that
// provides time, timers and byte streams: the Asio backend (asio_backend.h: one io_context, one
// socket and one timer per device, a real broker over TCP or TLS) or the virtual-time backend
// (virtual_backend.h: an in-process broker speaking MQTT bytes, time jumping from event to event).
//
// The Fleet owns what is common: the ramp (devices start at --ramp per second), the scenario's
// faults, the end of the run (duration/count, then a bounded drain until rings are empty), the
// accounting of what the broker acknowledged, and the summary. Guide: docs/simulator.md.
//
// Ownership: the Fleet owns its devices; it borrows the Backend, which must outlive it.
// Thread: one thread (the backend's loop) calls everything.
// Errors: Init() returns kInvalidArgument for options the core rejects (naming the field).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/device/node.h"
#include "outpost/node/sim/latency.h"
#include "outpost/node/sim/scenario.h"

namespace outpost::node::fleet {

enum class Mode { kNative, kSeed };

struct FleetOptions {
  std::uint32_t devices = 10;
  std::string id_prefix = "node-";  // device i is id_prefix + 5-digit zero-padded i (from 0)
  std::uint32_t first_index = 0;
  Mode mode = Mode::kNative;
  std::uint32_t interval_ms = 5'000;  // the seed's 5 s
  std::int64_t duration_ms = 60'000;  // sampling stops after this (0: until count or stopped)
  std::uint64_t count = 0;            // readings per device, then stop (0: no limit)
  int qos = 1;
  double ramp_per_s = 1'000;  // device starts (Begin) per second
  std::uint64_t seed = 1;
  std::uint16_t ring_capacity = 32;
  std::uint16_t keepalive_s = 60;
  std::uint32_t boot_delay_max_ms = 1'000;
  std::int64_t drain_timeout_ms = 15'000;  // after the end: wait this long at most for rings
  std::string firmware_version = "outpost-node-0.1.0";
  std::string username, password;  // MQTT credentials (empty: none)
  std::string settings_dir;        // empty: settings in memory; else one file per device
  sim::Scenario scenario;
};

// Per-run totals. `lost_acked` is the simulator's own check: readings acknowledged by the broker
// whose seq did not follow the previous acknowledged one of the same boot, and were not dropped.
struct Summary {
  std::uint32_t devices = 0, started = 0, connected_now = 0, ever_connected = 0;
  std::uint64_t sampled = 0, published = 0, resent = 0, acked = 0, buffered = 0;
  std::uint64_t ring_dropped = 0;     // dropped from a full ring (counts against exit status)
  std::uint64_t lost_at_restart = 0;  // in RAM at a reboot or deep sleep (by design)
  std::uint64_t reconnects = 0, connect_failures = 0, disconnects = 0;
  std::uint64_t read_errors = 0, commands = 0, commands_duplicate = 0, commands_rejected = 0;
  std::uint64_t sleeps = 0, restarts = 0, malformed_sent = 0, protocol_errors = 0;
  std::uint64_t ack_order_errors = 0;   // an acknowledged seq out of order or duplicated
  std::uint64_t commands_retained = 0;  // retained commands ignored (NodeStats)
  std::uint64_t rx_oversize = 0;        // inbound PUBLISHes over max_packet_bytes, skipped
  std::uint64_t cert_rotations = 0, cert_rotation_failures = 0;  // NodeStats (docs/adr/0011)
  std::int64_t latency_p50_ms = 0, latency_p99_ms = 0, latency_max_ms = 0;
  std::int64_t elapsed_ms = 0;
  std::int64_t all_connected_ms = -1;  // until every device had its first CONNACK (-1: never)
  bool drained = false;                // every ring was empty at the end
};

// What the simulator knows per device, for --verify-store and tests.
struct DeviceRecord {
  std::string id;
  std::uint32_t boot = 0;            // current boot
  std::uint32_t boots = 0;           // Begin() calls (this run)
  std::uint64_t acked = 0;           // readings acknowledged (all boots of this run)
  std::int64_t last_acked_seq = -1;  // in `boot`
  std::uint64_t sampled = 0;         // readings taken (all boots)
};

class Fleet;

// Time, timers and transport for every device. Implemented by the Asio and virtual backends.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::int64_t NowMs() = 0;   // monotonic
  virtual std::int64_t WallMs() = 0;  // Unix ms, before per-device skew
  virtual void Connect(std::uint32_t device) = 0;
  virtual std::size_t Write(std::uint32_t device, const std::uint8_t* data, std::size_t size) = 0;
  // Closes the device's stream (no OnDisconnected for it).
  virtual void Close(std::uint32_t device) = 0;
  // Calls Fleet::Wake(device) at or after `at_ms` (an earlier request replaces a later one).
  virtual void ScheduleWake(std::uint32_t device, std::int64_t at_ms) = 0;
  // Calls Fleet::Tick() at or after `at_ms`.
  virtual void ScheduleTick(std::int64_t at_ms) = 0;
  // Stops the loop (Run returns).
  virtual void Stop() = 0;
  // Whether devices get a Credentials port (certificate rotation; the Node then needs
  // max_packet_bytes >= 1024), and each device's port (nullptr: none; asked at every boot).
  virtual bool ProvidesCredentials() const { return false; }
  virtual device::Credentials* CredentialsFor(std::uint32_t device) {
    (void)device;
    return nullptr;
  }
};

class Device;

class Fleet {
 public:
  Fleet(FleetOptions options, Backend& backend);
  ~Fleet();
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;

  // Builds the devices (validating the core config). Call once, then Start().
  Status Init();
  void Start();

  // ---- called by the backend ----
  void Wake(std::uint32_t device);
  void Tick();
  void OnConnected(std::uint32_t device);
  void OnBytes(std::uint32_t device, const std::uint8_t* data, std::size_t size);
  void OnDisconnected(std::uint32_t device);
  // Write space became available again after Write() refused bytes.
  void OnWritable(std::uint32_t device) { Wake(device); }
  // Whether the device's network is blackholed (backend: drop bytes, let connects hang).
  bool Blackholed(std::uint32_t device) const;
  // Whether the broker is "down" (backend: refuse connects).
  bool BrokerDown() const { return broker_down_; }

  // Asks the run to end now (SIGINT): stops sampling and drains.
  void RequestStop();
  bool finished() const { return finished_; }

  Summary Summarize() const;
  // One-line progress: "12.0s connected 1000/1000 sent ... p99 9 ms".
  std::string ProgressLine() const;
  const std::vector<DeviceRecord>& records() const { return records_; }
  const device::NodeStats& node_stats(std::uint32_t device) const;
  std::uint32_t size() const { return static_cast<std::uint32_t>(devices_.size()); }
  const FleetOptions& options() const { return options_; }
  std::string DeviceId(std::uint32_t index) const;
  // Bytes the core needs per device (StorageBytes of the config), for memory reports.
  std::size_t node_storage_bytes() const { return node_storage_bytes_; }

  // Optional: a progress callback every `progress_interval_ms` (0: none).
  std::function<void(const Fleet&)> on_progress;
  std::int64_t progress_interval_ms = 0;

 private:
  friend class Device;
  void Service(std::uint32_t device);
  void StopDevice(std::uint32_t device);
  void ApplyFaults(std::int64_t elapsed);
  std::int64_t NextFaultEdge(std::int64_t elapsed) const;

  FleetOptions options_;
  Backend& backend_;
  std::vector<std::unique_ptr<Device>> devices_;
  std::vector<DeviceRecord> records_;
  std::vector<device::NodeStats> totals_before_;  // sums over earlier boots, per device
  std::vector<std::uint32_t> drops_since_ack_;    // per device, for the ack-order check
  sim::LatencyHistogram latency_;
  std::size_t node_storage_bytes_ = 0;
  std::int64_t start_ms_ = 0;
  std::int64_t start_wall_ms_ = 0;
  std::uint32_t started_ = 0;
  std::uint32_t stopped_ = 0;
  std::uint32_t count_reached_ = 0;  // devices that sampled --count readings
  std::uint32_t connected_ = 0;
  std::uint32_t ever_connected_ = 0;
  std::int64_t all_connected_ms_ = -1;
  bool broker_down_ = false;
  std::vector<bool> blackhole_active_;         // per fault
  std::vector<std::vector<bool>> storm_done_;  // per fault, per device
  std::int64_t next_malformed_ms_ = 0;
  std::uint64_t malformed_sent_ = 0;
  std::uint32_t malformed_cursor_ = 0;
  bool ending_ = false;
  std::int64_t end_ms_ = 0;
  bool finished_ = false;
  bool drained_ = false;
  std::int64_t next_progress_ms_ = 0;
  std::uint64_t ack_order_errors_ = 0;
  std::uint64_t lost_at_restart_ = 0;
  std::uint64_t ring_dropped_full_ = 0;
  std::uint64_t restarts_ = 0;
  std::uint64_t sleeps_ = 0;
};

}  // namespace outpost::node::fleet
