// The gateway status report (`gateway/status`, retained `gateway/{id}/status`): a pure function
// from plain figures to the JSON document. Its shape: docs/formats/topics.md#gateway-status
// (status_report_test.cpp checks every key listed there). Private to gateway/app.
// Thread: none of its own; callers gather the figures on the loop thread that owns them.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "outpost/gateway/model/outbox.h"
#include "outpost/gateway/store/store.h"
#include "outpost/gateway/uplink/uplink.h"
#include "outpost/proto/batch.h"

namespace outpost::gateway::app {

// The gateway's counters since start (`ingest.*`, `store.*`, `alerts.*`, `devices.*`).
struct GatewayCounters {
  std::uint64_t messages = 0, readings_received = 0, stored = 0, duplicates = 0, seq_gaps = 0,
                beyond_window = 0, status_messages = 0, commands = 0, rejected = 0, quarantined = 0,
                pauses = 0, commits = 0, store_errors = 0, alerts_raised = 0, alerts_cleared = 0,
                alerts_published = 0, publish_errors = 0, restarts_refused = 0, seq_jumps = 0,
                boot_conflicts = 0, devices_evicted = 0, devices_refused = 0;
  std::map<std::string, std::uint64_t, std::less<>> rejected_by_reason;
  std::int64_t last_commit_ms = 0;  // wall ms; 0 = none yet
  std::string last_store_error;
};

// Latency histogram in 1 ms buckets up to kMaxMs (beyond counts in the last bucket), over one
// status interval: exact percentiles at millisecond resolution in fixed memory.
class LatencyHistogram {
 public:
  void Add(std::int64_t ms) {
    ++buckets_[static_cast<std::size_t>(std::clamp<std::int64_t>(ms, 0, kMaxMs))];
    ++count_;
  }
  std::uint64_t count() const { return count_; }
  // The smallest bucket at or below which a fraction p of the samples lie; -1 when empty.
  std::int64_t Percentile(double p) const {
    if (count_ == 0) return -1;
    auto rank = static_cast<std::uint64_t>(std::ceil(p * static_cast<double>(count_)));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets_.size(); ++i) {
      seen += buckets_[i];
      if (seen >= std::max<std::uint64_t>(rank, 1)) return static_cast<std::int64_t>(i);
    }
    return kMaxMs;
  }
  void Reset() {
    buckets_.fill(0);
    count_ = 0;
  }

 private:
  static constexpr std::int64_t kMaxMs = 10'000;
  std::array<std::uint32_t, kMaxMs + 1> buckets_{};
  std::uint64_t count_ = 0;
};

// A running total's growth per second over the last 10 s (`ingest.rate_per_s`). Sampled on the
// loop's tick, keeping the first sample of each second: fixed memory, no timer of its own.
class RateMeter {
 public:
  static constexpr std::int64_t kWindowMs = 10'000;
  void Sample(std::int64_t mono_ms, std::uint64_t total);
  // The growth since the oldest sample at most kWindowMs old; nullopt when that spans less than
  // a second (just started) or there is none (no tick for 10 s).
  std::optional<double> PerSecond(std::int64_t mono_ms, std::uint64_t total) const;

 private:
  struct Point {
    std::int64_t ms;
    std::uint64_t total;
  };
  std::array<Point, kWindowMs / 1000 + 1> ring_{};
  std::size_t size_ = 0, next_ = 0;  // next_: where the next sample goes (the oldest when full)
};

// One latency window as the report shows it: p50/p99 in ms (-1 when empty) and the samples.
struct LatencySummary {
  std::int64_t p50_ms = -1, p99_ms = -1;
  std::uint64_t samples = 0;
};
LatencySummary Summarize(const LatencyHistogram& histogram);

// Everything the report shows, as plain values.
struct StatusInputs {
  bool periodic = false;  // the interval's status ("trigger": "interval"), else "command"
  std::string gateway_id;
  std::string version;
  std::int64_t now_ms = 0;            // wall clock
  std::int64_t uptime_ms = 0;         // monotonic, since start
  std::int64_t latency_since_ms = 0;  // wall ms the latency window began

  // Host (system_stats.h): -1 when unreadable.
  double memory_usage_percent = -1, cpu_usage_percent = -1;
  std::int64_t rss_bytes = -1;

  // Registry.
  std::size_t devices = 0, online = 0, sleeping = 0, offline = 0, max_devices = 0;

  const GatewayCounters* counters = nullptr;  // required
  std::optional<double> ingest_rate_per_s;    // readings stored per second (RateMeter)
  std::size_t queue_depth = 0, queue_max = 0;
  bool paused = false;
  LatencySummary receive_to_commit, device_to_commit;

  // Store.
  store::Stats store{};
  std::optional<std::int64_t> full_since_ms;  // set while the disk is full
  std::uint64_t full_events = 0, full_attempts = 0;
  std::int64_t max_bytes = 0;
  bool max_bytes_auto = false;
  nlohmann::json pki = nlohmann::json::object();  // ExpiryJson (expiry.h)
  std::int64_t disk_free_bytes = -1;  // the file system holding the database; -1 unreadable

  std::size_t active_alerts = 0;

  // MQTT client.
  bool mqtt_connected = false;
  std::uint64_t mqtt_connects = 0, mqtt_connect_failures = 0, mqtt_stale_acks = 0,
                mqtt_oversize = 0;
  std::size_t mqtt_inflight = 0;

  // Cloud uplink: the outbox's latest figures and the uplink's (default when it is off).
  bool cloud_enabled = false;
  proto::batch::Protocol protocol = proto::batch::Protocol::kSeed;
  std::string endpoint;
  std::int64_t quota_bytes = 0;
  model::WhenFull when_full = model::WhenFull::kDropOldest;
  model::OutboxStats outbox{};
  uplink::UplinkStatus uplink{};

  // The live event stream (/api/v1/stream; all 0 when the API is off).
  struct Stream {
    std::size_t clients = 0, ring = 0, ring_max = 0;
    std::uint64_t events = 0, subscribed = 0, replayed = 0, resets = 0, dropped_slow = 0;
  } stream;
};

// The status document. Pure: the same inputs give the same JSON.
nlohmann::json StatusReport(const StatusInputs& in);

}  // namespace outpost::gateway::app
