// Metrics: the cloud's counters and latency histograms, rendered as Prometheus text.
// Thread: every method is thread-safe (atomics, and a mutex around the labelled maps).
// Bounded: labels come from a closed set (endpoint labels and HTTP status codes).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace outpost::cloud::api {

class Metrics {
 public:
  // One finished request: its endpoint label, HTTP status and latency.
  void ObserveRequest(const std::string& endpoint, int status, double seconds);

  std::atomic<std::int64_t> readings_accepted{0};
  std::atomic<std::int64_t> readings_duplicate{0};  // every duplicate item (readings, alerts,
                                                    // statuses) reported by storage
  std::atomic<std::int64_t> alerts_accepted{0};
  std::atomic<std::int64_t> statuses_accepted{0};
  std::atomic<std::int64_t> batches_stored{0};
  std::atomic<std::int64_t> batches_replayed{0};
  std::atomic<std::int64_t> batches_rejected{0};
  std::atomic<std::int64_t> items_rejected{0};  // invalid items left out of stored batches
  std::atomic<std::int64_t> idempotency_conflicts{0};
  std::atomic<std::int64_t> idempotency_purged{0};
  std::atomic<std::int64_t> storage_errors{0};
  std::atomic<std::int64_t> healthz_checks{0};  // database Pings made for /healthz

  std::string Render() const;

  // Upper bounds (seconds) of the latency histogram buckets; +Inf is implicit.
  static constexpr std::array<double, 12> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                      0.1,   0.25,   0.5,   1.0,  2.5,   10.0};

 private:
  struct Histogram {
    std::array<std::int64_t, kBuckets.size()> counts{};
    std::int64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, std::int64_t> requests_;
  std::map<std::string, Histogram> latency_;
};

}  // namespace outpost::cloud::api
