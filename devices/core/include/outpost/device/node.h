// Node: the portable, sans-I/O logic of one Outpost sensor node. It samples on a drift-free
// schedule, buffers compact readings in a fixed ring, publishes them over MQTT 3.1.1 at QoS 1
// (libs/mqtt wire.h), releases each only on its PUBACK, handles the seed's commands with
// acknowledgements and de-duplication, rotates its certificate through the Credentials port
// (docs/adr/0011), reconnects with full-jitter backoff, and applies the
// battery policy. It never blocks, never owns a socket and never reads a clock.
//
// Driving it (see docs/device_core.md):
//   Node node(config, ports);
//   node.Begin(now);                       // once at setup, and again after a host-side
//                                          // restart or wake (see Power)
//   loop: wake = node.Poll(now);           // run what is due; call again at `wake` (or earlier)
//         transport events -> node.OnConnected(now) / OnBytes(data, n, now) / OnDisconnected(now)
//
// Ownership: borrows the ports (must outlive the Node); copies the strings of NodeConfig in
//   Begin(). Memory: Begin() allocates one block sized from the config (StorageBytes()) with
//   new(std::nothrow), or uses caller storage; nothing is allocated afterwards.
// Thread: one thread (the binding's loop) calls everything, including the ports.
// Errors: Begin() returns kInvalidConfig (see config_error_field()) or kNoMemory. Network, broker
//   and payload problems are handled, logged and counted in NodeStats, never returned.
// Formats: docs/formats/readings.md, docs/formats/topics.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "outpost/device/config.h"
#include "outpost/device/ports.h"

namespace outpost::device {

enum class NodeState : std::uint8_t {
  kIdle,            // before Begin()
  kBootDelay,       // random delay before the first connect
  kBackoff,         // waiting before the next connect attempt
  kConnecting,      // Transport::Connect() issued
  kMqttConnecting,  // CONNECT sent, waiting for CONNACK
  kOnline,          // CONNACK accepted
  kSleepPending,    // "sleeping" published, waiting for its PUBACK (or timeout)
  kRebootPending,   // reboot acknowledged, waiting for the reply's PUBACK (or timeout)
  kAsleep,          // Power::DeepSleep() called (host: it returned); call Begin() at wake
  kRestarting,      // Power::Restart() called (host: it returned); call Begin() again
};
const char* NodeStateName(NodeState s);

struct NodeStats {
  NodeState state = NodeState::kIdle;
  std::uint32_t boot = 0;          // boot counter (persisted, +1 per Begin)
  std::uint32_t interval_ms = 0;   // current sampling interval
  std::uint64_t sampled = 0;       // readings taken (seq assigned)
  std::uint64_t published = 0;     // PUBLISH packets of readings written (resends included)
  std::uint64_t resent = 0;        // of which DUP resends after a reconnect
  std::uint64_t acked = 0;         // readings released by PUBACK (QoS 0: by write)
  std::uint64_t ring_dropped = 0;  // readings dropped: ring full (oldest) or lost at sleep/restart
  std::uint32_t ring_depth = 0;    // readings in the ring (in flight included)
  std::uint32_t inflight = 0;      // QoS 1 packets awaiting PUBACK (readings and control)
  std::uint64_t connects = 0;      // CONNACK accepted
  std::uint64_t connect_failures = 0;  // transport failures, refusals, timeouts
  std::uint64_t reconnects = 0;        // connects after the first
  std::uint64_t disconnects = 0;       // established sessions lost
  std::uint64_t protocol_errors = 0;   // malformed broker packets (connection dropped)
  std::uint64_t rx_oversize = 0;  // PUBLISHes over max_packet_bytes: skipped unread (and acked)
  std::uint64_t stale_acks = 0;   // PUBACKs for unknown packet ids
  std::uint64_t commands_handled = 0;
  std::uint64_t commands_duplicate = 0;
  std::uint64_t commands_rejected = 0;  // unknown command, bad JSON, out-of-range argument
  std::uint64_t commands_retained = 0;  // retained commands (replayed at subscribe): ignored
  std::uint64_t read_errors = 0;        // climate sensor failures (no reading, no seq used)
  std::uint64_t control_dropped = 0;    // status/reply messages dropped (control queue full)
  std::uint64_t settings_errors = 0;
  // Certificate rotation (certInstall, docs/adr/0011): committed after the broker accepted the
  // new identity; failed (refused 3 times in a row, or the commit failed) and abandoned.
  std::uint64_t cert_rotations = 0;
  std::uint64_t cert_rotation_failures = 0;
  std::uint64_t sleeps = 0;  // deep sleeps entered (this boot)
  std::uint64_t tx_bytes = 0;
  std::uint64_t rx_bytes = 0;
};

class Node {
 public:
  Node(const NodeConfig& config, const NodePorts& ports);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Bytes Begin() needs for `config` (ring, in-flight table, buffers, copied strings).
  static std::size_t StorageBytes(const NodeConfig& config);

  // Validates the config, loads settings and RTC state, increments and stores the boot counter,
  // resets all volatile state (as a reboot does) and picks the random boot delay. With
  // `storage` (>= StorageBytes(), aligned to 8) no allocation happens at all.
  DeviceError Begin(std::int64_t now_ms, void* storage = nullptr, std::size_t storage_size = 0);

  // Runs what is due at `now_ms`; returns the time at which it next needs to run (>= now_ms + 1,
  // capped by max_poll_interval_ms). Feeds the watchdog.
  std::int64_t Poll(std::int64_t now_ms);

  // Transport events. OnBytes may deliver any split of the stream. Each returns the new wake
  // time, exactly as Poll() would (an event can move it: a command, a CONNACK).
  std::int64_t OnConnected(std::int64_t now_ms);
  std::int64_t OnBytes(const std::uint8_t* data, std::size_t size, std::int64_t now_ms);
  std::int64_t OnDisconnected(std::int64_t now_ms);

  // Publishes `payload` verbatim on the data topic at QoS 0, untracked (fault injection:
  // malformed payloads). Returns kNotConnected or kBufferTooSmall when not sent.
  DeviceError PublishRawForTest(std::string_view payload, std::int64_t now_ms);

  const NodeStats& stats() const { return stats_; }
  NodeState state() const { return stats_.state; }
  // After Begin() returned kInvalidConfig: the field and reason (static text).
  const char* config_error_field() const { return config_error_field_; }
  const char* config_error_reason() const { return config_error_reason_; }

  struct Impl;  // private state (src/node.cpp)

 private:
  friend struct NodeOps;
  NodeConfig config_;
  NodePorts ports_;
  NodeStats stats_;
  Impl* impl_ = nullptr;
  void* owned_storage_ = nullptr;
  std::size_t owned_storage_size_ = 0;
  const char* config_error_field_ = "";
  const char* config_error_reason_ = "";
};

}  // namespace outpost::device
