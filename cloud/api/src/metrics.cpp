#include "outpost/cloud/api/metrics.h"

#include <sstream>

namespace outpost::cloud::api {

void Metrics::ObserveRequest(const std::string& endpoint, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{endpoint, status}];
  Histogram& h = latency_[endpoint];
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++h.counts[i];
  }
  ++h.count;
  h.sum += seconds;
}

std::string Metrics::Render() const {
  std::ostringstream o;
  auto counter = [&](const char* name, const char* help, std::int64_t v) {
    o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " counter\n"
      << name << ' ' << v << '\n';
  };
  counter("outpost_cloud_readings_accepted_total", "Readings newly stored.",
          readings_accepted.load());
  counter("outpost_cloud_duplicates_total",
          "Items (readings, alerts, statuses) already stored, counted and not stored again.",
          readings_duplicate.load());
  counter("outpost_cloud_alerts_accepted_total", "Alerts newly stored.", alerts_accepted.load());
  counter("outpost_cloud_statuses_accepted_total", "Device status events newly stored.",
          statuses_accepted.load());
  counter("outpost_cloud_batches_stored_total", "Batches written to the database.",
          batches_stored.load());
  counter("outpost_cloud_batches_replayed_total",
          "Batches answered from the idempotency record (retries).", batches_replayed.load());
  counter("outpost_cloud_batches_rejected_total", "Batches refused with a 4xx.",
          batches_rejected.load());
  counter("outpost_cloud_items_rejected_total",
          "Items of stored batches left out as invalid (listed in the answer's \"rejected\").",
          items_rejected.load());
  counter("outpost_cloud_idempotency_conflicts_total",
          "Idempotency keys reused with a different body (409).", idempotency_conflicts.load());
  counter("outpost_cloud_idempotency_purged_total",
          "Idempotency records deleted after the retention period.", idempotency_purged.load());
  counter("outpost_cloud_storage_errors_total", "Database calls that failed.",
          storage_errors.load());
  counter("outpost_cloud_healthz_checks_total",
          "Database checks made for /healthz (at most one per healthz_max_age_ms).",
          healthz_checks.load());

  std::lock_guard<std::mutex> lock(mu_);
  o << "# HELP outpost_cloud_http_requests_total HTTP requests by endpoint and status.\n"
    << "# TYPE outpost_cloud_http_requests_total counter\n";
  for (const auto& [k, v] : requests_) {
    o << "outpost_cloud_http_requests_total{endpoint=\"" << k.first << "\",status=\"" << k.second
      << "\"} " << v << '\n';
  }
  o << "# HELP outpost_cloud_http_request_seconds HTTP request latency by endpoint.\n"
    << "# TYPE outpost_cloud_http_request_seconds histogram\n";
  for (const auto& [endpoint, h] : latency_) {
    for (std::size_t i = 0; i < kBuckets.size(); ++i) {
      o << "outpost_cloud_http_request_seconds_bucket{endpoint=\"" << endpoint << "\",le=\""
        << kBuckets[i] << "\"} " << h.counts[i] << '\n';
    }
    o << "outpost_cloud_http_request_seconds_bucket{endpoint=\"" << endpoint << "\",le=\"+Inf\"} "
      << h.count << '\n'
      << "outpost_cloud_http_request_seconds_sum{endpoint=\"" << endpoint << "\"} " << h.sum << '\n'
      << "outpost_cloud_http_request_seconds_count{endpoint=\"" << endpoint << "\"} " << h.count
      << '\n';
  }
  return o.str();
}

}  // namespace outpost::cloud::api
