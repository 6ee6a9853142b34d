// Service: the cloud's HTTP API as a pure request -> response function over the Storage port.
// It knows nothing about sockets or SQL: HttpServer (http_server.h) serves it with libs/http,
// and tests call Handle() directly.
// Ownership: borrows `storage` and `clock`, which must outlive it; owns its Metrics.
// Thread: Handle() is safe to call from many threads at once.
// Errors: every failure is an HTTP response in application/problem+json (RFC 9457, built by
//   libs/http's Problem): {"type","title","status","detail",
//   "error":{"code":"<snake_case>","message":"<text naming the field>"}}.
// Contract: docs/formats/cloud.md
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "outpost/base/clock.h"
#include "outpost/cloud/api/metrics.h"
#include "outpost/cloud/api/unknown_token_cache.h"
#include "outpost/cloud/batch_parser.h"
#include "outpost/cloud/storage.h"

namespace outpost::cloud::api {

// An HTTP request as the Service sees it, without the transport (HttpServer fills it).
struct ServiceRequest {
  std::string method;                          // "GET", "POST", ...
  std::string path;                            // without the query string
  std::map<std::string, std::string> params;   // query parameters (first value of each)
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string_view body;                       // borrowed for the duration of Handle()
};

// What Service::Handle answers; HttpServer writes it out. (Not the gateway uplink's client-side
// result of a POST, which is gateway/uplink's.)
struct ServiceResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

struct ServiceOptions {
  std::size_t max_body_bytes = 16 * 1024 * 1024;
  ParseLimits limits;  // max_items: readings + alerts + statuses per batch
  std::int64_t idempotency_retention_ms = 7LL * 24 * 3600 * 1000;
  std::int64_t purge_interval_ms = 3600 * 1000;
  std::int64_t retry_after_s = 1;  // Retry-After on 503
  // /healthz answers from the last database check while it is younger than this (at most one
  // Ping per interval, however often load balancers ask); the answer says how old it is.
  std::int64_t healthz_max_age_ms = 1000;
  // Tokens the database did not know are refused from memory for this long (a flood with a
  // forged token costs one lookup), at most this many hashes (UnknownTokenCache).
  std::int64_t unknown_token_ttl_ms = 5000;
  std::size_t unknown_token_cache_entries = 10'000;
};

// The answer every 4xx/5xx is: application/problem+json with `status`, a stable snake_case
// `code` and a `message` naming what was wrong (http::Problem, as the HTTP layer's own errors).
ServiceResponse ErrorResponse(int status, std::string_view code, std::string_view message);
// The endpoint label used in metrics: "seed_batch", "native_batch", "gateways", "devices",
// "readings", "alerts", "healthz", "metrics", or "other".
const char* EndpointLabel(std::string_view path);

class Service {
 public:
  Service(Storage& storage, const Clock& clock, ServiceOptions options);

  ServiceResponse Handle(const ServiceRequest& request);

  Metrics& metrics() { return metrics_; }
  const UnknownTokenCache& unknown_tokens() const { return unknown_tokens_; }
  const ServiceOptions& options() const { return options_; }
  // Text appended to GET /metrics (the transport's own counters; HttpServer sets it). Set before
  // Handle() is first called and cleared after its last call: it is read without a lock.
  void SetMetricsAppendix(std::function<std::string()> appendix) {
    metrics_appendix_ = std::move(appendix);
  }

 private:
  ServiceResponse Batch(const ServiceRequest& request, bool native);
  ServiceResponse Gateways(const ServiceRequest& request, const Principal& who);
  ServiceResponse Devices(const ServiceRequest& request, const Principal& who);
  ServiceResponse Readings(const ServiceRequest& request, const Principal& who);
  ServiceResponse Alerts(const ServiceRequest& request, const Principal& who);
  ServiceResponse Healthz();
  ServiceResponse MetricsPage();
  // Resolves the bearer token; on failure fills *error (401 or 503).
  bool Authenticate(const ServiceRequest& request, Principal* who, ServiceResponse* error);
  void MaybePurge(std::int64_t now_ms);

  Storage& storage_;
  const Clock& clock_;
  ServiceOptions options_;
  Metrics metrics_;
  std::atomic<std::int64_t> last_purge_ms_{0};
  std::function<std::string()> metrics_appendix_;
  UnknownTokenCache unknown_tokens_;
  // The last database check of /healthz (steady clock).
  std::mutex health_mu_;
  bool health_known_ = false;           // guarded by health_mu_
  bool health_checking_ = false;        // guarded by health_mu_: a Ping is under way
  std::int64_t health_checked_ms_ = 0;  // guarded by health_mu_
  Status health_status_;                // guarded by health_mu_
};

}  // namespace outpost::cloud::api
