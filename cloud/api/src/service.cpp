#include "outpost/cloud/api/service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <nlohmann/json.hpp>

#include "outpost/cloud/crypto.h"
#include "outpost/http/message.h"

namespace outpost::cloud::api {
namespace {

using nlohmann::json;

ServiceResponse Error(int status, std::string_view code, std::string_view message) {
  return ErrorResponse(status, code, message);
}

ServiceResponse Json(int status, const json& body) {
  ServiceResponse r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

// Maps a storage failure to the edge: unavailable and data-loss are retryable (503), and so is
// a full disk (kResourceExhausted from libs/sqlite's map): the gateway keeps its outbox and
// retries after Retry-After; whoever frees space makes it go through.
ServiceResponse StorageError(const Status& s, std::int64_t retry_after_s) {
  spdlog::warn("database: {}", s.ToString());
  if (s.code() == Code::kResourceExhausted) {
    ServiceResponse r = Error(503, "storage_full", "database storage is full: " + s.message());
    r.headers.emplace_back("Retry-After", std::to_string(retry_after_s));
    return r;
  }
  if (s.code() == Code::kUnavailable || s.code() == Code::kDataLoss ||
      s.code() == Code::kDeadlineExceeded) {
    ServiceResponse r = Error(503, "unavailable", "database unavailable: " + s.message());
    r.headers.emplace_back("Retry-After", std::to_string(retry_after_s));
    return r;
  }
  return Error(500, "internal", "database error: " + s.message());
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// The media type of a Content-Type value: before any parameters, without surrounding blanks
// (RFC 9110 allows "application/json ; charset=utf-8"), lower-cased.
std::string MediaType(const std::string& value) {
  const std::string t = value.substr(0, value.find(';'));
  const auto first = t.find_first_not_of(" \t");
  if (first == std::string::npos) return {};
  return Lower(t.substr(first, t.find_last_not_of(" \t") - first + 1));
}

const std::string* Header(const ServiceRequest& r, const char* name) {
  auto it = r.headers.find(name);
  return it == r.headers.end() ? nullptr : &it->second;
}

const std::string* Param(const ServiceRequest& r, const char* name) {
  auto it = r.params.find(name);
  return it == r.params.end() ? nullptr : &it->second;
}

// Parses an optional integer query parameter; false with *error set when malformed.
bool IntParam(const ServiceRequest& r, const char* name, std::int64_t min, std::int64_t max,
              std::int64_t* out, ServiceResponse* error) {
  const std::string* v = Param(r, name);
  if (v == nullptr) return true;
  std::int64_t n = 0;
  auto res = std::from_chars(v->data(), v->data() + v->size(), n);
  if (v->empty() || res.ec != std::errc() || res.ptr != v->data() + v->size()) {
    *error = Error(400, "invalid_field", std::string(name) + ": expected an integer");
    return false;
  }
  if (n < min || n > max) {
    *error = Error(
        400, "invalid_field",
        std::string(name) + ": must be in " + std::to_string(min) + ".." + std::to_string(max));
    return false;
  }
  *out = n;
  return true;
}

// The gateway a query is about: the caller's own, or (admin) any/all.
// `required`: an admin must name one. Returns false with *error set.
bool ScopeGateway(const ServiceRequest& r, const Principal& who, bool required, std::string* gw,
                  ServiceResponse* error) {
  const std::string* p = Param(r, "gateway");
  if (p != nullptr && !IsValidCloudId(*p)) {
    *error = Error(400, "invalid_field", "gateway: must be 1..64 characters of [A-Za-z0-9_.:-]");
    return false;
  }
  if (who.admin) {
    if (p == nullptr && required) {
      *error = Error(400, "invalid_field", "gateway: missing (required for an admin token)");
      return false;
    }
    *gw = p ? *p : std::string();
    return true;
  }
  if (p != nullptr && *p != who.gateway_id) {
    *error = Error(403, "forbidden",
                   "gateway: this token may only read gateway \"" + who.gateway_id + "\"");
    return false;
  }
  *gw = who.gateway_id;
  return true;
}

// Both answers list the items left out (docs/formats/cloud.md): "rejected" is always there
// (empty when all were valid), and "replayed" stays last (Replay rewrites it).
std::string SeedResponse(const WriteCounts& c, const std::vector<ItemReject>& rejected) {
  std::string out = R"({"accepted":)" + std::to_string(c.readings) + R"(,"duplicates":)" +
                    std::to_string(c.duplicates) + ",";
  proto::batch::AppendRejected(&out, rejected);
  out += R"(,"replayed":false})";
  return out;
}

std::string NativeResponse(const WriteCounts& c, const std::vector<ItemReject>& rejected) {
  std::string out = R"({"accepted":{"readings":)" + std::to_string(c.readings) + R"(,"alerts":)" +
                    std::to_string(c.alerts) + R"(,"statuses":)" + std::to_string(c.statuses) +
                    R"(},"duplicates":)" + std::to_string(c.duplicates) + ",";
  proto::batch::AppendRejected(&out, rejected);
  out += R"(,"replayed":false})";
  return out;
}

ServiceResponse Replay(const IdempotencyRecord& record) {
  ServiceResponse r;
  r.status = record.http_status;
  r.body = record.response;
  const std::string from = R"("replayed":false)";
  const std::size_t at = r.body.rfind(from);
  if (at != std::string::npos) r.body.replace(at, from.size(), R"("replayed":true)");
  return r;
}

ServiceResponse KeyReused(const std::string& key) {
  return Error(409, "idempotency_key_reused",
               "Idempotency-Key \"" + key +
                   "\" was already used for a different body (SHA-256 differs); use a new key "
                   "for a new batch");
}

}  // namespace

ServiceResponse ErrorResponse(int status, std::string_view code, std::string_view message) {
  http::Response p = http::Problem(status, code, message);
  ServiceResponse r;
  r.status = p.status;
  r.content_type = std::move(p.content_type);
  r.body = std::move(p.body);
  return r;
}

const char* EndpointLabel(std::string_view path) {
  if (path == "/sensor-data/batch") return "seed_batch";
  if (path == "/v1/batches") return "native_batch";
  if (path == "/v1/gateways") return "gateways";
  if (path == "/v1/devices") return "devices";
  if (path == "/v1/readings") return "readings";
  if (path == "/v1/alerts") return "alerts";
  if (path == "/healthz") return "healthz";
  if (path == "/metrics") return "metrics";
  return "other";
}

Service::Service(Storage& storage, const Clock& clock, ServiceOptions options)
    : storage_(storage),
      clock_(clock),
      options_(std::move(options)),
      unknown_tokens_(options_.unknown_token_ttl_ms, options_.unknown_token_cache_entries) {}

ServiceResponse Service::Handle(const ServiceRequest& request) {
  const std::string_view path = request.path;
  const bool is_post_route = path == "/sensor-data/batch" || path == "/v1/batches";
  const bool is_get_route = path == "/v1/gateways" || path == "/v1/devices" ||
                            path == "/v1/readings" || path == "/v1/alerts" || path == "/healthz" ||
                            path == "/metrics";
  if (!is_post_route && !is_get_route) {
    return Error(404, "not_found", "no such endpoint: " + request.method + " " + request.path);
  }
  const char* allowed = is_post_route ? "POST" : "GET";
  if (request.method != allowed && !(is_get_route && request.method == "HEAD")) {
    ServiceResponse r =
        Error(405, "method_not_allowed",
              request.method + " " + request.path + ": only " + allowed + " is allowed");
    r.headers.emplace_back("Allow", allowed);
    return r;
  }
  if (path == "/healthz") return Healthz();
  if (is_post_route) return Batch(request, path == "/v1/batches");

  Principal who;
  ServiceResponse error;
  if (!Authenticate(request, &who, &error)) return error;
  if (path == "/metrics") return MetricsPage();
  if (path == "/v1/gateways") return Gateways(request, who);
  if (path == "/v1/devices") return Devices(request, who);
  if (path == "/v1/readings") return Readings(request, who);
  return Alerts(request, who);
}

bool Service::Authenticate(const ServiceRequest& request, Principal* who, ServiceResponse* error) {
  const std::string* auth = Header(request, "authorization");
  if (auth == nullptr) {
    *error = Error(401, "unauthorized", "Authorization: missing (expected \"Bearer <token>\")");
    error->headers.emplace_back("WWW-Authenticate", "Bearer");
    return false;
  }
  if (auth->size() < 8 || Lower(auth->substr(0, 7)) != "bearer ") {
    *error = Error(401, "unauthorized", "Authorization: expected \"Bearer <token>\"");
    error->headers.emplace_back("WWW-Authenticate", "Bearer");
    return false;
  }
  std::string token = auth->substr(7);
  while (!token.empty() && token.front() == ' ') token.erase(token.begin());
  while (!token.empty() && token.back() == ' ') token.pop_back();
  if (token.empty() || token.size() > 512) {
    *error = Error(401, "unauthorized", "Authorization: empty or oversized bearer token");
    error->headers.emplace_back("WWW-Authenticate", "Bearer");
    return false;
  }
  const std::string hash = Sha256Hex(token);
  if (unknown_tokens_.Contains(hash, clock_.steady_ms())) {
    *error = Error(401, "unauthorized", "Authorization: unknown or revoked token");
    error->headers.emplace_back("WWW-Authenticate", "Bearer error=\"invalid_token\"");
    return false;
  }
  Result<Principal> p = storage_.Authenticate(hash);
  if (!p.ok()) {
    if (p.status().code() == Code::kNotFound) {
      unknown_tokens_.Insert(hash, clock_.steady_ms());
      *error = Error(401, "unauthorized", "Authorization: unknown or revoked token");
      error->headers.emplace_back("WWW-Authenticate", "Bearer error=\"invalid_token\"");
    } else {
      ++metrics_.storage_errors;
      *error = StorageError(p.status(), options_.retry_after_s);
    }
    return false;
  }
  *who = std::move(p).value();
  return true;
}

void Service::MaybePurge(std::int64_t now_ms) {
  std::int64_t last = last_purge_ms_.load();
  if (now_ms - last < options_.purge_interval_ms) return;
  if (!last_purge_ms_.compare_exchange_strong(last, now_ms)) return;  // another thread does it
  Result<std::int64_t> n = storage_.PurgeIdempotency(now_ms - options_.idempotency_retention_ms);
  if (n.ok()) {
    metrics_.idempotency_purged += *n;
  } else {
    ++metrics_.storage_errors;
  }
}

ServiceResponse Service::Batch(const ServiceRequest& request, bool native) {
  Principal who;
  ServiceResponse error;
  if (!Authenticate(request, &who, &error)) return error;

  const std::string* type = Header(request, "content-type");
  if (type == nullptr || MediaType(*type) != "application/json") {
    ++metrics_.batches_rejected;
    return Error(415, "unsupported_media_type",
                 "Content-Type: expected application/json, got " +
                     (type ? "\"" + *type + "\"" : std::string("none")));
  }
  std::optional<std::string> key;
  if (const std::string* k = Header(request, "idempotency-key")) {
    if (!IsValidIdempotencyKey(*k)) {
      ++metrics_.batches_rejected;
      return Error(400, "invalid_field",
                   "Idempotency-Key: must be 1..128 characters of [A-Za-z0-9._:-]");
    }
    key = *k;
  } else if (native) {
    ++metrics_.batches_rejected;
    return Error(400, "invalid_field", "Idempotency-Key: missing (required on /v1/batches)");
  }
  if (request.body.size() > options_.max_body_bytes) {
    ++metrics_.batches_rejected;
    return Error(413, "body_too_large",
                 "body: " + std::to_string(request.body.size()) + " bytes; limit " +
                     std::to_string(options_.max_body_bytes) + " (--max-body-bytes)");
  }
  const std::string body_sha = Sha256Hex(request.body);
  if (key) {
    Result<std::optional<IdempotencyRecord>> known = storage_.FindIdempotency(who.gateway_id, *key);
    if (!known.ok()) {
      ++metrics_.storage_errors;
      return StorageError(known.status(), options_.retry_after_s);
    }
    if (known->has_value()) {
      if ((*known)->body_sha256 != body_sha) {
        ++metrics_.idempotency_conflicts;
        spdlog::warn("gateway {}: Idempotency-Key {} reused with a different body (409)",
                     who.gateway_id, *key);
        return KeyReused(*key);
      }
      ++metrics_.batches_replayed;
      return Replay(**known);
    }
  }

  outpost::cloud::Batch batch;
  ParseError parse_error;
  const bool parsed = native ? ParseNativeBatch(request.body, options_.limits, &batch, &parse_error)
                             : ParseSeedBatch(request.body, options_.limits, &batch, &parse_error);
  if (!parsed) {
    ++metrics_.batches_rejected;
    spdlog::debug("gateway {}: batch rejected: {}", who.gateway_id, parse_error.message);
    switch (parse_error.kind) {
      case ParseErrorKind::kBadJson:
        return Error(400, "bad_json", parse_error.message);
      case ParseErrorKind::kTooLarge:
        return Error(413, "payload_too_large", parse_error.message);
      case ParseErrorKind::kInvalidField:
        break;
    }
    return Error(400, "invalid_field", parse_error.message);
  }
  if (batch.gateway_id && *batch.gateway_id != who.gateway_id) {
    ++metrics_.batches_rejected;
    return Error(403, "forbidden",
                 "gateway_id: \"" + *batch.gateway_id +
                     "\" does not match this token's gateway \"" + who.gateway_id + "\"");
  }

  const std::int64_t now_ms = clock_.wall_ms();
  MaybePurge(now_ms);
  if (!batch.rejected.empty()) {
    spdlog::debug("gateway {}: {} items of a batch rejected, first: {}", who.gateway_id,
                  batch.rejected.size(), batch.rejected.front().message);
  }
  const std::vector<ItemReject>& rejected = batch.rejected;
  Result<WriteResult> written =
      storage_.WriteBatch(who.gateway_id, key, body_sha, batch, now_ms, [&](const WriteCounts& c) {
        return native ? NativeResponse(c, rejected) : SeedResponse(c, rejected);
      });
  if (!written.ok()) {
    ++metrics_.storage_errors;
    return StorageError(written.status(), options_.retry_after_s);
  }
  switch (written->kind) {
    case WriteResult::Kind::kReplayed:
      ++metrics_.batches_replayed;
      return Replay(written->record);
    case WriteResult::Kind::kKeyReused:
      ++metrics_.idempotency_conflicts;
      return KeyReused(*key);
    case WriteResult::Kind::kStored:
      break;
  }
  const WriteCounts& c = written->counts;
  metrics_.readings_accepted += c.readings;
  metrics_.alerts_accepted += c.alerts;
  metrics_.statuses_accepted += c.statuses;
  metrics_.readings_duplicate += c.duplicates;
  metrics_.items_rejected += static_cast<std::int64_t>(batch.rejected.size());
  ++metrics_.batches_stored;
  ServiceResponse r;
  r.body = written->record.response;
  return r;
}

ServiceResponse Service::Gateways(const ServiceRequest& request, const Principal& who) {
  std::string gw;
  ServiceResponse error;
  if (!ScopeGateway(request, who, false, &gw, &error)) return error;
  Result<std::vector<GatewayInfo>> rows = storage_.ListGateways(gw);
  if (!rows.ok()) return StorageError(rows.status(), options_.retry_after_s);
  json out = json::array();
  for (const auto& g : *rows) {
    out.push_back({{"gateway_id", g.gateway_id},
                   {"first_seen_ms", g.first_seen_ms},
                   {"last_seen_ms", g.last_seen_ms},
                   {"batches", g.batches},
                   {"readings", g.readings}});
  }
  return Json(200, {{"gateways", out}});
}

ServiceResponse Service::Devices(const ServiceRequest& request, const Principal& who) {
  std::string gw;
  ServiceResponse error;
  if (!ScopeGateway(request, who, false, &gw, &error)) return error;
  Result<std::vector<DeviceInfo>> rows = storage_.ListDevices(gw);
  if (!rows.ok()) return StorageError(rows.status(), options_.retry_after_s);
  json out = json::array();
  for (const auto& d : *rows) {
    json s = d.status.empty() ? json(nullptr) : json(d.status);
    out.push_back({{"gateway_id", d.gateway_id},
                   {"device_id", d.device_id},
                   {"status", s},
                   {"status_ts_ms", d.status_ts_ms},
                   {"last_seen_ms", d.last_seen_ms},
                   {"readings", d.readings}});
  }
  return Json(200, {{"devices", out}});
}

ServiceResponse Service::Readings(const ServiceRequest& request, const Principal& who) {
  ReadingsQuery q;
  ServiceResponse error;
  if (!ScopeGateway(request, who, true, &q.gateway_id, &error)) return error;
  const std::string* device = Param(request, "device");
  if (device == nullptr || !IsValidCloudId(*device)) {
    return Error(
        400, "invalid_field",
        device ? "device: must be 1..64 characters of [A-Za-z0-9_.:-]" : "device: missing");
  }
  const std::string* metric = Param(request, "metric");
  if (metric == nullptr || !IsValidMetricName(*metric, options_.limits.max_metric_name_bytes)) {
    return Error(400, "invalid_field",
                 metric ? "metric: not a valid metric name" : "metric: missing");
  }
  q.device_id = *device;
  q.metric = *metric;
  q.from_ms = 0;
  q.to_ms = INT64_MAX;
  q.limit = 10'000;
  constexpr std::int64_t kMax = INT64_MAX;
  if (!IntParam(request, "from_ms", 0, kMax, &q.from_ms, &error) ||
      !IntParam(request, "to_ms", 0, kMax, &q.to_ms, &error) ||
      !IntParam(request, "step_ms", 1, kMax, &q.step_ms, &error) ||
      !IntParam(request, "limit", 1, 100'000, &q.limit, &error)) {
    return error;
  }
  if (q.to_ms < q.from_ms) return Error(400, "invalid_field", "to_ms: must not be before from_ms");
  if (q.step_ms > 0) {
    Result<std::vector<Bucket>> rows = storage_.QueryBuckets(q);
    if (!rows.ok()) return StorageError(rows.status(), options_.retry_after_s);
    json out = json::array();
    for (const auto& b : *rows) {
      out.push_back(
          {{"ts_ms", b.ts_ms}, {"min", b.min}, {"max", b.max}, {"avg", b.avg}, {"count", b.count}});
    }
    return Json(200, {{"gateway_id", q.gateway_id},
                      {"device_id", q.device_id},
                      {"metric", q.metric},
                      {"step_ms", q.step_ms},
                      {"buckets", out}});
  }
  Result<std::vector<Point>> rows = storage_.QueryPoints(q);
  if (!rows.ok()) return StorageError(rows.status(), options_.retry_after_s);
  json out = json::array();
  for (const auto& p : *rows) out.push_back({{"ts_ms", p.ts_ms}, {"value", p.value}});
  return Json(200, {{"gateway_id", q.gateway_id},
                    {"device_id", q.device_id},
                    {"metric", q.metric},
                    {"points", out}});
}

ServiceResponse Service::Alerts(const ServiceRequest& request, const Principal& who) {
  AlertsQuery q;
  ServiceResponse error;
  if (!ScopeGateway(request, who, false, &q.gateway_id, &error)) return error;
  if (const std::string* device = Param(request, "device")) {
    if (!IsValidCloudId(*device)) {
      return Error(400, "invalid_field", "device: must be 1..64 characters of [A-Za-z0-9_.:-]");
    }
    q.device_id = *device;
  }
  constexpr std::int64_t kMax = INT64_MAX;
  if (!IntParam(request, "from_ms", 0, kMax, &q.from_ms, &error) ||
      !IntParam(request, "to_ms", 0, kMax, &q.to_ms, &error) ||
      !IntParam(request, "limit", 1, 100'000, &q.limit, &error)) {
    return error;
  }
  if (q.to_ms < q.from_ms) return Error(400, "invalid_field", "to_ms: must not be before from_ms");
  Result<std::vector<StoredAlert>> rows = storage_.QueryAlerts(q);
  if (!rows.ok()) return StorageError(rows.status(), options_.retry_after_s);
  json out = json::array();
  for (const auto& a : *rows) {
    out.push_back({{"gateway_id", a.gateway_id},
                   {"id", a.alert.id},
                   {"device_id", a.alert.device_id},
                   {"rule", a.alert.rule},
                   {"state", a.alert.state},
                   {"message", a.alert.message},
                   {"value", a.alert.value ? json(*a.alert.value) : json(nullptr)},
                   {"ts_ms", a.alert.ts_ms}});
  }
  return Json(200, {{"alerts", out}});
}

ServiceResponse Service::Healthz() {
  // One Ping per healthz_max_age_ms at most; while one is under way, others answer from the
  // previous result (the first ever check is made by whoever comes).
  Status status;
  std::int64_t checked_ms = 0;
  bool check = false;
  {
    std::lock_guard<std::mutex> lock(health_mu_);
    const bool fresh =
        health_known_ && clock_.steady_ms() - health_checked_ms_ < options_.healthz_max_age_ms;
    if (fresh || (health_known_ && health_checking_)) {
      status = health_status_;
      checked_ms = health_checked_ms_;
    } else {
      health_checking_ = true;
      check = true;
    }
  }
  if (check) {
    ++metrics_.healthz_checks;
    status = storage_.Ping();
    checked_ms = clock_.steady_ms();
    std::lock_guard<std::mutex> lock(health_mu_);
    health_known_ = true;
    health_checking_ = false;
    health_status_ = status;
    health_checked_ms_ = checked_ms;
  }
  const std::int64_t age_ms = std::max<std::int64_t>(0, clock_.steady_ms() - checked_ms);
  if (!status.ok()) {
    ServiceResponse r =
        Error(503, "unavailable",
              "database: " + status.message() + " (checked " + std::to_string(age_ms) + " ms ago)");
    r.headers.emplace_back("Retry-After", std::to_string(options_.retry_after_s));
    return r;
  }
  return Json(200,
              {{"status", "ok"}, {"database", storage_.backend()}, {"checked_ms_ago", age_ms}});
}

ServiceResponse Service::MetricsPage() {
  ServiceResponse r;
  r.content_type = "text/plain; version=0.0.4";
  r.body = metrics_.Render();
  r.body += unknown_tokens_.RenderPrometheus("outpost_cloud_unknown_token_cache_");
  if (metrics_appendix_) r.body += metrics_appendix_();
  return r;
}

}  // namespace outpost::cloud::api
