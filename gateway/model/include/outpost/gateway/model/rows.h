// Plain row types of the gateway: what the ingest pipeline produces and the store persists
// (docs/formats/store.md). No behaviour and no dependencies, so the pipeline, the uplink's
// codec and the store share them without any of them seeing the others.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace outpost::gateway::model {

struct MetricValue {
  std::string name;
  double value;  // for booleans 0 or 1
  bool is_bool;
};

struct ReadingRow {
  std::string device_id;
  bool has_seq;
  uint32_t boot;
  uint64_t seq;
  bool has_device_ts;
  int64_t device_ts_raw;  // the device's timestamp as sent (may be uptime)
  int64_t ts_ms;          // the reading's time, ms since the Unix epoch
  bool ts_from_device;    // false: ts_ms is the gateway's receive time
  int64_t received_ms;
  std::vector<MetricValue> metrics;
};

struct DeviceRow {
  std::string device_id;
  int64_t first_seen_ms;
  int64_t last_seen_ms;
  std::string status;
  int64_t status_changed_ms;
  std::string last_reading_json;
  std::string firmware;
  uint32_t boot;
  uint64_t last_seq;
  uint64_t readings;
  uint64_t duplicates;
  uint64_t seq_gaps;
  // Heard on a per-device topic (sensors/{id}/data, devices/{id}/status) at least once: a
  // native device, which takes commands on devices/{id}/commands and replies. false: a seed
  // device, only ever on the flat topics.
  bool native = false;
};

struct AlertRow {
  std::string alert_id;  // stable key: rule + ":" + device
  std::string rule;
  std::string device_id;
  std::string metric;
  std::string severity;
  std::string message;
  double value;
  double threshold;
  int64_t raised_ms;
  int64_t cleared_ms;  // 0 = active
  // Acknowledged by a user (Store::AckAlert); a raise or clear written later keeps these.
  int64_t acked_ms = 0;  // 0 = not acknowledged
  std::string acked_by;
  std::string ack_comment;
};

// What Store::AckAlert records on one alert.
struct AlertAck {
  std::string alert_id;
  int64_t raised_ms = 0;
  int64_t acked_ms = 0;
  std::string user;
  std::string comment;
};

struct QuarantineRow {
  int64_t received_ms;
  std::string topic;
  std::string reason;
  std::string detail;
  std::string payload;  // raw bytes, truncated to the store's quarantine_max_payload_bytes
};

// The de-duplication identity of a stored reading, loaded at start to rebuild the dedupe state.
struct RecentIdentity {
  std::string device_id;
  bool has_seq;
  uint32_t boot;
  uint64_t seq;
  bool has_device_ts;
  int64_t device_ts_raw;
};

// One device command as the store keeps it (table `commands`, docs/formats/store.md): the
// scalar fields as columns, params, reply and history as JSON text (gateway/commands encodes).
struct CommandRow {
  std::string id;
  std::string device_id;
  uint64_t seq = 0;
  std::string name;
  std::string params_json;
  std::string state;
  std::string transport;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  int64_t expires_ms = 0;
  std::string user;
  std::string idempotency_key;
  std::string fingerprint;
  std::string reply_json;  // "" = none
  std::string history_json;
};

}  // namespace outpost::gateway::model
