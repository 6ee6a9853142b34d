// The sensor reading codec: validates an untrusted JSON payload from sensors/data or
// sensors/{device_id}/data and turns it into a Reading, or says precisely why not.
// Format, rules and the reject table: docs/formats/readings.md
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/proto/reject.h"

namespace outpost::proto {

struct Limits {
  std::size_t max_payload_bytes = 4096;  // larger payloads -> kTooLarge, before parsing
  // How many objects may enclose a value: 1 allows only top-level fields, 4 allows the metric
  // {"a":{"b":{"c":{"d":1}}}} ("a.b.c.d"). Arrays count as levels too. Deeper -> kTooDeep.
  std::size_t max_depth = 4;
  // Both at most the batch contract's (batch::kMaxMetricsPerReading, kMaxMetricNameBytes; the
  // parser clamps them), so the cloud takes every reading the gateway accepts.
  std::size_t max_metrics = 64;     // more metrics -> kTooManyFields
  std::size_t max_name_bytes = 64;  // longest flattened metric name -> else kBadFieldName
  // A device timestamp is believed when it falls in [min_plausible_ms, now_ms + skew].
  std::int64_t max_future_skew_ms = 24LL * 3600 * 1000;
  std::int64_t min_plausible_ms = 1'577'836'800'000;  // 2020-01-01T00:00:00Z
  // Epoch SECONDS are believed only within [now - this, now + skew] (see readings.md).
  std::int64_t max_seconds_age_ms = 7LL * 24 * 3600 * 1000;
};

struct Metric {
  std::string name;  // flattened with '.', e.g. "env.temperature"
  double value = 0;  // always finite; booleans are 1 or 0
  bool is_bool = false;
};

enum class TimeSource : std::uint8_t {
  kDevice,   // ts_ms is the device's own epoch timestamp
  kGateway,  // the device sent none, or uptime, or an implausible one: ts_ms is receive time
};

struct Reading {
  std::string device_id;  // always IsValidId() after a successful Parse
  // Identity: (device_id, boot, seq) when has_seq, else (device_id, device_ts_raw) when
  // has_device_ts, else none (the reading cannot be deduplicated).
  bool has_seq = false;
  std::uint32_t boot = 0;
  std::uint64_t seq = 0;  // < 2^63
  bool has_device_ts = false;
  std::int64_t device_ts_raw = 0;  // "timestamp" as sent (e.g. millis()), truncated to integer
  std::int64_t ts_ms = 0;          // Unix epoch milliseconds: when the reading was taken
  TimeSource ts_source = TimeSource::kGateway;
  std::string firmware;         // "fw" if present, else empty
  std::vector<Metric> metrics;  // payload order, non-empty, unique names

  // Resets every field; keeps the capacity of strings and of the metrics vector.
  void Clear();
};

// Parses readings. Owns a simdjson parser and buffers sized for Limits::max_payload_bytes, all
// allocated in the constructor, so steady-state Parse allocates only for Reading strings that
// outgrow their capacity. Reuse one per thread. Not thread-safe. Movable.
class ReadingParser {
 public:
  explicit ReadingParser(Limits limits = {});
  ~ReadingParser();
  ReadingParser(ReadingParser&&) noexcept;
  ReadingParser& operator=(ReadingParser&&) noexcept;
  ReadingParser(const ReadingParser&) = delete;
  ReadingParser& operator=(const ReadingParser&) = delete;

  const Limits& limits() const { return limits_; }

  // topic_device_id: the device id from a per-device topic (ClassifyTopic), or empty for the
  // flat seed topic. now_ms: the gateway's receive time, Unix epoch milliseconds.
  // Returns true and fills *out, or false and fills *reject (then *out is valid but
  // unspecified). Never throws on any input and never reads outside `payload`.
  // Reuse the same *out across calls to avoid allocations.
  bool Parse(std::string_view payload, std::string_view topic_device_id, std::int64_t now_ms,
             Reading* out, Reject* reject);

 private:
  struct Impl;
  Limits limits_;
  std::unique_ptr<Impl> impl_;
};

// Compact JSON object of a reading's metrics in payload order, e.g.
// {"temperature":22.5,"motion":true,"rssi":-65}. Numbers use the shortest text that reads back
// as the same double. Used for storage and for the registry's last reading.
std::string MetricsJson(const Reading& reading);
// Same, appended to *out (no allocation once *out has the capacity).
void AppendMetricsJson(const Reading& reading, std::string* out);

}  // namespace outpost::proto
