// NodeConfig: everything a Node needs to know at setup, and the closed set of error codes used
// by the device core (libs/base's Status holds a std::string, which the core cannot use).
// Topics and payloads: docs/formats/topics.md, docs/formats/readings.md; the core:
// docs/device_core.md
#pragma once

#include <cstdint>

#include "outpost/base/backoff.h"

namespace outpost::device {

enum class DeviceError : std::uint8_t {
  kOk = 0,
  kInvalidConfig,   // NodeConfig rejected; ConfigFieldName() names the field
  kNoMemory,        // the one-time allocation in Begin() failed, or caller storage too small
  kBufferTooSmall,  // a payload or packet did not fit its fixed buffer
  kNotConnected,    // the operation needs an MQTT session
};
const char* DeviceErrorName(DeviceError e);

enum class TopicScheme : std::uint8_t {
  // sensors/{id}/data, devices/{id}/status (retained bare word, will "offline"),
  // devices/{id}/commands, devices/{id}/replies; payload with boot/seq/fw.
  kNative,
  // The seed sketch exactly: sensors/data, devices/status (JSON), devices/commands; the seed's
  // payload; no replies, no will.
  kSeed,
};

// Upper bound of the sampling interval (setSensorInterval, max_interval_ms): a node that reports
// less than once a day looks dead to the gateway's offline detection and cannot be told apart
// from one whose command went wrong.
inline constexpr std::uint32_t kMaxIntervalMs = 86'400'000;  // 24 h

struct NodeConfig {
  // Identity. Copied by Node::Begin(); a valid id (1..64 of [A-Za-z0-9_.:-]).
  const char* device_id = "esp32_sensor_001";
  const char* firmware_version = "0.1.0";  // "fw" in native payloads; <= 32 printable ASCII
  TopicScheme scheme = TopicScheme::kNative;

  // MQTT.
  std::uint8_t qos = 1;            // readings: 0 or 1 (status and replies always use 1 in native)
  std::uint16_t keepalive_s = 60;  // 0 disables keepalive
  bool clean_session = true;
  const char* username = nullptr;  // nullptr: none. Copied by Begin().
  const char* password = nullptr;  // nullptr: none; requires username. Copied by Begin().
  std::uint32_t connect_timeout_ms = 15'000;  // transport connect + CONNACK
  std::uint16_t max_packet_bytes = 512;       // rx and tx buffer each; a larger inbound PUBLISH
                                              // is skipped unread and acked (rx_oversize), any
                                              // other larger packet closes the connection.
                                              // >= 256, and >= the longest reading's JSON (300
                                              // always fits)

  // Sampling. The interval is persisted ("interval_ms") when changed by command.
  std::uint32_t interval_ms = 5'000;      // default when nothing is persisted (the seed's 5 s)
  std::uint32_t min_interval_ms = 2'000;  // a DHT22 needs >= 2 s between reads
  std::uint32_t max_interval_ms = kMaxIntervalMs;  // setSensorInterval's bound; <= kMaxIntervalMs

  // Offline buffer and flow control.
  std::uint16_t ring_capacity = 64;  // readings kept while the broker is away (drop-oldest)
  std::uint16_t max_inflight = 8;    // unacknowledged QoS 1 readings on the wire at once

  // Reconnect.
  BackoffPolicy backoff{1'000, 60'000};     // full jitter: uniform(0, min(cap, base * 2^attempt))
  std::uint32_t boot_delay_max_ms = 5'000;  // uniform(0, max) before the first connect

  // Battery policy (the seed: deep sleep below 10 % for 30 minutes).
  float low_battery_pct = 10.0f;   // below: announce "sleeping" and deep-sleep
  float high_battery_pct = 15.0f;  // low-power mode ends only at or above this
  std::uint32_t sleep_duration_ms = 30u * 60u * 1000u;
  bool wake_on_motion = true;
  std::uint32_t sleep_ack_timeout_ms = 5'000;  // wait for "sleeping"'s PUBACK at most this long

  // Commands.
  std::uint32_t reboot_ack_timeout_ms = 5'000;  // restart anyway if the reply is not PUBACKed

  // Watchdog: Poll() never asks to sleep longer than this, so the watchdog is fed. 0: no cap.
  std::uint32_t max_poll_interval_ms = 1'000;
};

// Checks `config`; on kInvalidConfig sets `field` to the offending field's name (static text)
// and `reason` to a short explanation.
DeviceError ValidateConfig(const NodeConfig& config, const char** field, const char** reason);

// True for 1..64 bytes of [A-Za-z0-9_.:-] (the wire contract's valid id).
bool IsValidDeviceId(const char* s, std::uint32_t size);

}  // namespace outpost::device
