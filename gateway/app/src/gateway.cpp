#include "outpost/gateway/app/gateway.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <asio.hpp>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>

#include "alerts_api.h"
#include "api.h"
#include "auth_api.h"
#include "commands_api.h"
#include "event_stream.h"
#include "expiry.h"
#include "options.h"
#include "outpost/base/clock.h"
#include "outpost/gateway/app/system_stats.h"
#include "outpost/gateway/app/writer.h"
#include "outpost/gateway/auth/auth_store.h"
#include "outpost/gateway/auth/secrets.h"
#include "outpost/gateway/commands/codec.h"
#include "outpost/gateway/ingest/outbox_items.h"
#include "outpost/gateway/ingest/pipeline.h"
#include "outpost/gateway/registry/registry.h"
#include "outpost/gateway/store/store.h"
#include "outpost/gateway/store/store_reader.h"
#include "outpost/gateway/uplink/codec.h"
#include "outpost/gateway/uplink/sender.h"
#include "outpost/gateway/uplink/uplink.h"
#include "outpost/gateway/web/assets.h"
#include "outpost/http/server.h"
#include "outpost/mqtt/client.h"
#include "outpost/proto/command.h"
#include "outpost/proto/topics.h"
#include "reload.h"
#include "series_api.h"
#include "service.h"
#include "status_report.h"

#ifndef OUTPOST_VERSION
#define OUTPOST_VERSION "0.0.0"
#endif

namespace outpost::gateway::app {

extern const std::string_view kOpenApiJson;  // gateway/app/api/openapi.json, embedded

namespace {

using nlohmann::json;
using registry::State;

constexpr std::int64_t kDrainTimeoutMs = 15'000;

double Seconds(std::int64_t ms) { return static_cast<double>(ms) / 1000.0; }

// The uplink reaches the store's outbox through the writer thread that owns the store.
class WriterOutbox final : public uplink::OutboxPort {
 public:
  explicit WriterOutbox(Writer& writer) : writer_(writer) {}
  Status Run(const std::function<Status(model::Outbox&)>& fn) override {
    return writer_.Call([&fn](store::Store& store) { return fn(store.outbox()); });
  }
  model::OutboxStats LatestStats() override { return writer_.LatestStats().outbox; }

 private:
  Writer& writer_;
};

http::Response JsonResponse(const json& j) {
  http::Response r;
  r.body = j.dump();
  return r;
}

// A JSON answer with its ETag, or 304 when the request's If-None-Match names it; gzip-encoded
// when the request accepts it and the body is worth it (the devices of a large site are ~270
// bytes each), with the gzip variant's own tag ("...-gz").
http::Response Cacheable(const http::Request& q, const json& j) {
  http::Response r = JsonResponse(j);
  std::string etag = api::ETag(r.body);
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.headers.emplace_back("Vary", "Accept-Encoding");
  const bool gzip =
      r.body.size() >= web::kMinGzipBytes && web::AcceptsGzip(q.Header("accept-encoding"));
  if (gzip) etag.insert(etag.size() - 1, "-gz");
  if (const std::string& inm = q.Header("if-none-match");
      !inm.empty() && api::IfNoneMatch(inm, etag)) {
    r.status = 304;
    r.body.clear();
    r.content_type.clear();
  } else if (gzip && !web::GzipBody(&r)) {
    etag = api::ETag(r.body);  // not compressed after all: the identity tag
  }
  r.headers.emplace_back("ETag", std::move(etag));
  return r;
}

std::string RandomHex(std::size_t n) {
  std::random_device rd;  // a per-run id for idempotency keys, not a simulation input
  std::string out;
  const char* digits = "0123456789abcdef";
  while (out.size() < n) {
    std::uint32_t v = rd();
    for (int i = 0; i < 8 && out.size() < n; ++i, v >>= 4) out += digits[v & 15];
  }
  return out;
}

// fsyncs the directory holding `path` (a rename or unlink in it is then durable).
Status SyncDirOf(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Unavailable(dir + ": " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return Unavailable(dir + ": fsync: " + std::strerror(err));
  return Status::Ok();
}

// Writes `bytes` to `path` whole or not at all (a temporary file, fsync, rename, fsync of the
// directory), mode 0600.
Status WriteFileDurably(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Unavailable(tmp + ": " + std::strerror(errno));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  const bool ok = done == bytes.size() && ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(tmp.c_str());
    return Unavailable(tmp + ": " + std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return Unavailable(path + ": rename: " + std::strerror(e));
  }
  return SyncDirOf(path);
}

// Reads `path` and removes it (durably) before returning its bytes: what it held is used at
// most once, so a crash later in this run cannot bring it back. nullopt when there is none.
Result<std::optional<std::string>> TakeFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    return Unavailable(path + ": " + std::strerror(errno));
  }
  std::string bytes;
  char buf[64 * 1024];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return Unavailable(path + ": " + std::strerror(err));
    }
    bytes.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  if (::unlink(path.c_str()) != 0) return Unavailable(path + ": unlink: " + std::strerror(errno));
  OUTPOST_RETURN_IF_ERROR(SyncDirOf(path));
  return std::optional<std::string>(std::move(bytes));
}

// The `gateway/alerts` message of a raise or clear (docs/formats/topics.md); the stream's `alert`
// event carries it too, and for an acknowledgement (`state` "acked") also who, when and why.
json AlertMessage(const model::AlertRow& a, const std::string& gateway_id, const char* state) {
  const std::int64_t at = a.cleared_ms == 0 ? a.raised_ms : a.cleared_ms;
  json j = {{"timestamp", Seconds(at)}, {"message", a.message},    {"severity", a.severity},
            {"alert_id", a.alert_id},   {"rule", a.rule},          {"device_id", a.device_id},
            {"state", state},           {"gateway_id", gateway_id}};
  if (!a.metric.empty()) {
    j["metric"] = a.metric;
    j["value"] = a.value;
    j["threshold"] = a.threshold;
  }
  if (a.acked_ms != 0) {
    j["id"] = alerts::ApiId(a);
    j["acked_ms"] = a.acked_ms;
    j["acked_by"] = a.acked_by;
    j["ack_comment"] = a.ack_comment;
  }
  return j;
}

}  // namespace

class Gateway::Impl {
 public:
  Impl(config::Config config, std::string config_path)
      : config_(std::move(config)),
        config_path_(std::move(config_path)),
        pipeline_(PipelineOptions(config_)),
        expiry_alerts_(config_.gateway_id, config_.mqtt.tls.expiry_alert_days),
        signals_(io_, SIGTERM, SIGINT, SIGHUP),
        status_timer_(io_),
        tick_timer_(io_),
        drain_timer_(io_) {}

  ExitReason Run();

 private:
  Status OpenAndRestore();
  Status StartUplink();
  // auth.sqlite (auth.path); on the first start also the admin and its password file.
  Status OpenAuth();
  void StopUplink();
  // The API server on io_ (http.*; nothing when http.listen is ""). StopHttp() after io_.run()
  // returned: runs the loop until every connection is gone.
  Status StartHttp();
  void StopHttp();
  // The stream's replay ring across a clean restart (config::StreamRingPath): read and removed
  // at start, written after the drain. A crash leaves no file: the next run is new (a reset).
  void RestoreStreamRing();
  void SaveStreamRing();
  http::Router ApiRoutes();
  alerts::Hooks AlertHooks();
  // The device commands (commands_api.h), on the loop; built once the writer runs.
  void StartCommands(std::vector<commands::Command> stored);
  std::unique_ptr<commands_api::Service> commands_;
  void StartMqtt();
  // Hands a delivered message to the pipeline (a command it returns runs here), then bounds the
  // filling batch and schedules its hand-over.
  void OnMessage(const mqtt::Message& m);
  // A PUBLISH over the MQTT packet limit, skipped by the client: rejected as too large, its head
  // quarantined and (QoS 1) acknowledged in order, so the broker forgets it.
  void OnOversizeMessage(const mqtt::OversizeMessage& o);
  void AfterMessage();
  void HandleCommand(const proto::Command& cmd);
  ingest::Instant Now() const { return ingest::Instant{clock_.wall_ms(), clock_.steady_ms()}; }
  void ScheduleSubmit();
  void MaybeSubmit();
  void Pause();
  void MaybeResume();
  void OnCommitted(Committed c);
  // Full disk: raised (published at once; it cannot be stored) on the first failed attempt,
  // cleared by the first commit after it (the clear, carrying the raise time, goes into the
  // next batch: stored, sent to the cloud, published after that commit).
  void StorageFull(const Status& error);
  void StorageRecovered();
  // `periodic`: the interval's status (its latency window then restarts), else on request.
  void PublishStatus(bool periodic);
  json StatusJson(bool periodic);
  // The report's counters: the pipeline's ingest counters and the loop's own.
  GatewayCounters ReportCounters() const;
  void PublishAlert(const model::AlertRow& a);
  // Publishes the uplink's alert (a 4xx that refuses every batch) when it is raised or cleared.
  void CheckUplinkAlert(std::int64_t now_ms);
  std::int64_t uplink_alert_raised_ms_ = 0;  // 0 = not raised
  void Reply(const proto::Command& cmd, bool ok, const std::string& message);
  // Re-reads the config file; returns what was applied (and what needs a restart).
  // Re-reads the config file; the service manager sees RELOADING=1 .. READY=1 around it,
  // whether a SIGHUP or the MQTT `reload` command asked.
  Result<std::string> Reload();
  Result<std::string> ReloadConfig();
  void ScheduleStatus();
  void ScheduleTick();
  // Days left of the certificates and the CRL (expiry.h): at start, then hourly from the tick.
  void CheckExpiry(const ingest::Instant& now);
  void WaitSignal();
  void Shutdown(ExitReason reason);
  void FinishShutdown();
  std::string GatewayTopic(std::string_view leaf) const {
    return proto::GatewayTopic(config_.gateway_id, leaf);
  }

  config::Config config_;
  std::string config_path_;
  SystemClock clock_;
  asio::io_context io_;

  // Registry, rules, per-device contexts, ingest counters and the filling batch.
  ingest::Pipeline pipeline_;
  ExpiryAlerts expiry_alerts_;  // pki_expiry, raised by the gateway itself

  std::unique_ptr<Writer> writer_;
  std::unique_ptr<WriterOutbox> outbox_port_;
  std::unique_ptr<uplink::Sender> sender_;
  std::unique_ptr<uplink::Uplink> uplink_;
  uplink::Protocol protocol_ = uplink::Protocol::kSeed;
  std::unique_ptr<mqtt::Client> client_;
  std::unique_ptr<auth::AuthStore> auth_store_;
  // Logins, sessions and roles in front of the routes (auth_api.h); with the API.
  std::unique_ptr<authn::Authenticator> authn_;
  std::unique_ptr<http::Server> http_;  // on io_; handlers run on the loop thread
  // GET /api/v1/series: a read-only connection on its own thread (series_api.h).
  series::ExportStats series_exports_;  // outlives the reader's jobs
  std::unique_ptr<store::ReaderThread> series_reader_;
  // /api/v1/stream (event_stream.h), with the API; the status each device last had in it.
  std::unique_ptr<EventHub> events_;
  std::unordered_map<std::string, std::string> streamed_status_;
  void StreamEvent(EventType type, const json& data) {
    if (events_) events_->Publish(type, data.dump(-1, ' ', false, json::error_handler_t::replace));
  }
  // After a commit: a `device` event for each device of the batch whose status changed.
  void StreamDevices(const model::WriteSet& batch);
  // Replays go out a slice every 2 ms (a timer, so the server can write in between), never
  // needing more than a few slices of a stream's buffer (event_stream.h).
  void ScheduleReplay();
  std::unique_ptr<asio::steady_timer> replay_timer_;
  bool replay_scheduled_ = false;
  asio::signal_set signals_;
  asio::steady_timer status_timer_, tick_timer_, drain_timer_;
  CpuUsage cpu_;

  bool writer_busy_ = false;  // a batch is with the writer until its final Committed
  std::size_t inflight_readings_ = 0;
  bool submit_scheduled_ = false;

  std::int64_t started_mono_ms_ = 0;
  std::int64_t latency_since_ms_ = 0;
  bool paused_ = false;
  bool shutting_down_ = false;
  bool finishing_ = false;
  ExitReason exit_reason_ = ExitReason::kStopped;

  // The loop's own counters (the ingest ones are the pipeline's).
  struct Counters {
    std::uint64_t stored = 0, pauses = 0, commits = 0, store_errors = 0, alerts_published = 0,
                  publish_errors = 0, restarts_refused = 0;
    std::int64_t last_commit_ms = 0;
    std::string last_store_error;
  } n_;
  // Since the last periodic status: gateway receive -> commit, and device timestamp -> commit
  // for readings that carry the device's own clock (publish -> commit when clocks agree).
  LatencyHistogram receive_to_commit_, device_to_commit_;
  RateMeter ingest_rate_;  // n_.stored per second, sampled on the tick
  store::Stats store_stats_{};
  std::int64_t max_bytes_ = 0;  // effective storage.max_bytes (auto resolved at start)
  bool max_bytes_auto_ = false;
  // Full disk (kResourceExhausted from the store): commits fail, nothing is acknowledged.
  std::optional<model::AlertRow> storage_full_;  // the raised alert while full
  std::uint64_t storage_full_events_ = 0, storage_full_attempts_ = 0;
  std::vector<ExpiryItem> expiry_;
  std::optional<std::int64_t> expiry_checked_mono_ms_;
  // The service manager's readiness and watchdog (service.h); on io_, so declared after it.
  std::unique_ptr<Service> service_;
};

Gateway::Gateway(config::Config config, std::string config_path)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(config_path))) {}
Gateway::~Gateway() = default;
ExitReason Gateway::Run() { return impl_->Run(); }

Status Gateway::Impl::OpenAndRestore() {
  auto max_bytes = config::EffectiveMaxBytes(config_.storage, &max_bytes_auto_);
  if (!max_bytes.ok()) return max_bytes.status();
  max_bytes_ = *max_bytes;
  const store::Options so = StoreOptions(config_, max_bytes_);
  protocol_ = config_.cloud.protocol;
  auto opened = store::Store::Open(so);
  if (!opened.ok()) return opened.status();
  std::unique_ptr<store::Store> store = std::move(opened).value();

  auto devices = store->LoadDevices();
  if (!devices.ok()) return devices.status();
  auto alerts = store->LoadActiveAlerts();
  if (!alerts.ok()) return alerts.status();
  auto recent = store->LoadRecentIdentities(ingest::kRecentIdentities);
  if (!recent.ok()) return recent.status();
  // pki_expiry alerts are the gateway's own (not a rule's): it clears them itself.
  std::vector<model::AlertRow> rule_alerts;
  for (model::AlertRow& a : *alerts) {
    if (a.rule == kExpiryRule) {
      expiry_alerts_.Restore(a);
    } else {
      rule_alerts.push_back(std::move(a));
    }
  }
  pipeline_.Restore(*devices, rule_alerts, *recent, Now());
  auto command_rows = store->LoadCommands();
  if (!command_rows.ok()) return command_rows.status();
  std::vector<commands::Command> stored_commands;
  for (const model::CommandRow& row : *command_rows) {
    auto c = commands::FromRow(row);
    if (!c.ok()) return c.status();  // not written by this code: let the operator look
    stored_commands.push_back(*std::move(c));
  }
  store_stats_ = store->stats();
  spdlog::info("store {}: {} readings, {} devices, {} active alerts; dedupe rebuilt from {} recent",
               so.path, store_stats_.readings, pipeline_.registry().size(), alerts->size(),
               recent->size());
  spdlog::info("store {}: storage.max_bytes {} bytes{}", so.path, max_bytes_,
               max_bytes_ == 0   ? " (unbounded)"
               : max_bytes_auto_ ? " (auto)"
                                 : "");

  Writer::Options wo;
  wo.before_write = StallWriteFaultFromEnvironment();  // test-only; empty in production
  writer_ = std::make_unique<Writer>(
      std::move(store), std::move(wo), clock_,
      [this](Committed c) {  // on the writer thread
        asio::post(io_, [this, c = std::move(c)]() mutable { OnCommitted(std::move(c)); });
      });
  writer_->Start();
  StartCommands(std::move(stored_commands));
  return StartUplink();
}

Status Gateway::Impl::OpenAuth() {
  OUTPOST_RETURN_IF_ERROR(auth::InitCrypto());
  auth::AuthStoreOptions ao;
  ao.path = config::AuthPath(config_);
  ao.audit_max_rows = config_.auth.audit_max_rows;
  auto store = auth::AuthStore::Open(ao);
  if (!store.ok()) return store.status();
  auth_store_ = std::move(store).value();
  const std::string file = config::AdminPasswordPath(config_);
  auto created = auth::EnsureAdmin(*auth_store_, file, clock_.wall_ms());
  if (!created.ok()) return created.status();
  if (*created) {
    spdlog::warn(
        "first start: created the user \"admin\"; its password is in {} (mode 0600). "
        "Log in, then change it with `outpost-gateway user passwd admin`",
        file);
  }
  return Status::Ok();
}

Status Gateway::Impl::StartUplink() {
  if (!config_.cloud.enabled()) {
    if (store_stats_.outbox.readings + store_stats_.outbox.alerts + store_stats_.outbox.statuses >
        0) {
      spdlog::warn(
          "cloud uplink off (no cloud.api_endpoint) but {} readings are still queued "
          "for it; they stay until an endpoint is configured",
          store_stats_.outbox.readings);
    }
    return Status::Ok();
  }
  auto token = config::ResolveCloudToken(config_.cloud, std::getenv("OUTPOST_CLOUD_API_KEY"));
  if (!token.ok()) return token.status();
  if (token->empty()) {
    spdlog::warn(
        "cloud: no token (cloud.api_key, cloud.api_key_file or OUTPOST_CLOUD_API_KEY); "
        "requests go without Authorization");
  }
  auto sender = uplink::MakeHttpSender(SenderOptions(config_.cloud, *token));
  if (!sender.ok()) return sender.status();
  sender_ = std::move(sender).value();
  const uplink::Options uo = UplinkOptions(config_, RandomHex(12), std::random_device{}());
  outbox_port_ = std::make_unique<WriterOutbox>(*writer_);
  uplink_ = std::make_unique<uplink::Uplink>(uo, *outbox_port_, *sender_, clock_);
  uplink_->Start();
  spdlog::info(
      "cloud uplink on: {} protocol to {} (batches of up to {} readings / {} bytes, "
      "linger {} ms, quota {} bytes, when full: {})",
      uplink::ProtocolName(protocol_), config_.cloud.api_endpoint, config_.cloud.batch_max_readings,
      config_.cloud.batch_max_bytes, config_.cloud.linger_ms(), config_.cloud.quota_bytes,
      config::WhenFullName(config_.cloud.when_full));
  return Status::Ok();
}

void Gateway::Impl::StopUplink() {
  if (uplink_) uplink_->Stop();  // aborts a request in flight; before the writer stops
}

Status Gateway::Impl::StartHttp() {
  if (!config_.http.enabled()) {
    spdlog::info("http api off (http.listen is \"\")");
    return Status::Ok();
  }
  auto reader = store::StoreReader::Open(store::ReaderOptions{config_.storage.path});
  if (!reader.ok()) return reader.status();
  series_reader_ =
      std::make_unique<store::ReaderThread>(std::move(reader).value(), series::kMaxQueuedQueries);
  EventHubOptions eo;
  eo.replay_events = config_.http.stream_replay_events;
  eo.run = RandomHex(8);
  events_ = std::make_unique<EventHub>(std::move(eo));
  RestoreStreamRing();
  for (const auto& [id, d] : pipeline_.registry().devices()) {
    streamed_status_[id] = api::DeviceStatus(d);
  }
  authn::Options ao;
  ao.sessions = {config_.auth.session_idle_s * 1000, config_.auth.session_max_s * 1000,
                 config_.auth.max_sessions};
  ao.limiter = {static_cast<int>(config_.auth.login_max_failures),
                config_.auth.login_window_s * 1000, config_.auth.login_lockout_s * 1000,
                config_.auth.login_tracked_keys};
  ao.max_verifications = config_.auth.max_verifications;
  ao.secure_cookie = config_.http.tls();
  authn_ = std::make_unique<authn::Authenticator>(
      auth_store_.get(), ao, [this](std::function<void()> fn) { asio::post(io_, std::move(fn)); },
      [this] { return clock_.steady_ms(); }, [this] { return clock_.wall_ms(); });
  http::ServerOptions o = HttpServerOptions(config_);
  o.access_log = [](const http::AccessLogEntry& e) {
    spdlog::debug("http {} {} {} -> {} ({} bytes, {:.1f} ms)", e.remote, e.method, e.target,
                  e.status, e.bytes_sent, e.seconds * 1000);
  };
  http_ = std::make_unique<http::Server>(std::vector<asio::io_context*>{&io_}, std::move(o),
                                         authn_->Guard(ApiRoutes()));
  auto port = http_->Start();
  if (!port.ok()) {
    http_.reset();
    return Status(port.status().code(), "http.listen " + config_.http.listen + ": " +
                                            port.status().message() +
                                            " (set http.listen to another address, or \"\" "
                                            "to run without the API)");
  }
  const std::string& host = config_.http.host;
  spdlog::info("http api listening on {}://{}:{}", config_.http.tls() ? "https" : "http",
               host.find(':') == std::string::npos ? host : "[" + host + "]", *port);
  const bool loopback = host.rfind("127.", 0) == 0 || host == "::1";
  if (!loopback && !config_.http.tls()) {
    spdlog::warn(
        "http.listen {} is reachable beyond this machine without TLS: passwords and session "
        "cookies cross the network in clear (set http.tls_cert_file and http.tls_key_file, or "
        "listen on 127.0.0.1 behind a TLS proxy)",
        config_.http.listen);
  }
  return Status::Ok();
}

void Gateway::Impl::StopHttp() {
  if (!http_) return;
  // Stop() waits for the connections to end, which happens on the loop: run it meanwhile.
  io_.restart();
  std::thread stopper([this] {
    http_->Stop();
    io_.stop();
  });
  io_.run();
  stopper.join();
  http_.reset();
  series_reader_.reset();  // after the server: no handler posts any more
  authn_.reset();          // joins its workers; what they post is never run
}

void Gateway::Impl::RestoreStreamRing() {
  const std::string path = config::StreamRingPath(config_);
  auto taken = TakeFile(path);
  if (!taken.ok()) {
    spdlog::warn("stream: not resuming the last run's ids: {}", taken.status().ToString());
    return;
  }
  if (!taken->has_value()) return;  // first start, or the last run did not stop cleanly
  if (Status s = events_->Restore(**taken); !s.ok()) {
    spdlog::warn("stream: not resuming the last run's ids ({}): {}", path, s.ToString());
    return;
  }
  const EventHubStats st = events_->stats();
  spdlog::info("stream: resuming run {} with {} events for replay (from {})", events_->run(),
               st.ring, path);
}

void Gateway::Impl::SaveStreamRing() {
  if (!events_) return;
  const std::string path = config::StreamRingPath(config_);
  const std::int64_t start_ms = clock_.steady_ms();
  const std::string snap = events_->Snapshot();
  if (Status s = WriteFileDurably(path, snap); !s.ok()) {
    spdlog::error("stream: cannot keep the replay ring for the next start: {}", s.ToString());
    return;
  }
  spdlog::info("stream: kept {} events ({} bytes) for the next start in {} ms",
               events_->stats().ring, snap.size(), clock_.steady_ms() - start_ms);
}

void Gateway::Impl::StartCommands(std::vector<commands::Command> stored) {
  commands::Options o;
  const auto& c = config_.commands;
  o.queue_per_device = static_cast<std::size_t>(c.queue_per_device);
  o.history_per_device = static_cast<std::size_t>(c.history_per_device);
  o.default_ttl_ms = c.default_ttl_s * 1000;
  o.max_ttl_ms = c.max_ttl_s * 1000;
  commands_api::Hooks h;
  h.device = [this](const std::string& id) {
    commands_api::DeviceInfo info;
    const auto& devices = pipeline_.registry().devices();
    auto it = devices.find(id);
    if (it == devices.end()) return info;
    info.known = true;
    info.native = it->second.native;
    info.online = it->second.state == State::kOnline;
    return info;
  };
  h.save = [this](const std::vector<model::CommandRow>& rows,
                  const std::vector<std::string>& remove) {
    return writer_->Call([&](store::Store& s) { return s.SaveCommands(rows, remove); });
  };
  h.publish = [this](const commands::Command& cmd) {
    if (!client_) return false;
    const bool native = cmd.transport == commands::Transport::kNative;
    const std::string topic = native ? proto::DeviceCommandsTopic(cmd.device)
                                     : std::string(proto::kSeedDeviceCommandsTopic);
    auto r = client_->Publish(topic, commands::DevicePayload(cmd), 1, false);
    if (!r.ok()) {
      spdlog::warn("command {} to {}: publish failed: {}", cmd.id, cmd.device,
                   r.status().ToString());
    }
    return r.ok();
  };
  h.on_transition = [this](const json& j) {
    // Who asked is audited (sending and canceling); the device's and the clock's moves are not.
    const json& last = j["history"].back();
    const std::string state = last["state"];
    if (authn_ && (state == "queued" || state == "canceled")) {
      authn_->Audit(last["user"], "command_" + state,
                    fmt::format("{} {} {}", j["id"].get<std::string>(),
                                j["device"].get<std::string>(), j["command"].get<std::string>()));
    }
    StreamEvent(EventType::kCommand, j);
  };
  h.now_ms = [this] { return clock_.wall_ms(); };
  h.user = [](const http::Request& q) { return authn::User(q); };
  h.new_id = [] { return "c" + RandomHex(16); };
  commands_ = std::make_unique<commands_api::Service>(
      io_, o, static_cast<std::size_t>(c.max_waiters), std::move(h));
  const std::size_t n = stored.size();
  commands_->Restore(std::move(stored));
  spdlog::info("commands: {} restored, {} devices with commands to send", n,
               commands_->book().waiting().size());
}

// The alert routes' hooks (alerts_api.h). Acknowledgements run on the series reader's thread and
// wait there for the writer; the stream event is posted back to the loop.
alerts::Hooks Gateway::Impl::AlertHooks() {
  alerts::Hooks h;
  h.reader = series_reader_.get();
  h.now_ms = [this] { return clock_.wall_ms(); };
  h.user = [](const http::Request& q) { return authn::User(q); };
  // Read here, on the loop: cloud.protocol and gateway_id are restart-only (reload.h).
  const bool native =
      config_.cloud.enabled() && config_.cloud.protocol == proto::batch::Protocol::kNative;
  h.ack = [this, native, gateway_id = config_.gateway_id](const model::AlertAck& ack) {
    Result<model::AlertRow> row = Status(Code::kCancelled, "the gateway is stopping");
    const Status called = writer_->Call([&](store::Store& s) {
      row = s.AckAlert(ack, [&](const model::AlertRow& a) -> std::optional<model::OutboxItem> {
        if (!native) return std::nullopt;  // a seed cloud has no alerts endpoint
        return ingest::AlertAckItem(a, gateway_id);
      });
      return row.status();
    });
    return row.ok() || called.ok() ? row : Result<model::AlertRow>(called);
  };
  h.on_acked = [this](const model::AlertRow& a) {
    authn_->Audit(a.acked_by, "alert_ack",
                  alerts::ApiId(a) + (a.ack_comment.empty() ? "" : ": " + a.ack_comment));
    asio::post(io_, [this, a] {
      StreamEvent(EventType::kAlert, AlertMessage(a, config_.gateway_id, "acked"));
    });
  };
  return h;
}

// Every handler runs on the loop thread (the server's one loop is io_), which owns the registry
// and the status figures: they read them directly and answer at once. None reads the store:
// the devices come from the registry in memory, the health from the report's figures (the
// store's from its last commit). The exceptions, /api/v1/series and /api/v1/alerts, parse here
// and query on the series reader's thread (series_api.h, alerts_api.h), which answers.
http::Router Gateway::Impl::ApiRoutes() {
  http::Router router;
  router.Add("GET", "/healthz", [this](http::Request, http::Responder r) {
    if (!writer_ || shutting_down_) {
      return r.Send(
          http::Problem(503, "unavailable",
                        shutting_down_ ? "the gateway is shutting down" : "the store is not open"));
    }
    http::Response ok;
    ok.content_type = "text/plain; charset=utf-8";
    ok.body = "ok\n";
    r.Send(std::move(ok));
  });
  router.Add("GET", "/metrics", [this](http::Request, http::Responder r) {
    http::Response m;
    m.content_type = "text/plain; version=0.0.4; charset=utf-8";
    m.body = api::StatusPrometheus(StatusJson(/*periodic=*/false), "outpost_gateway_");
    if (http_) m.body += http_->stats().RenderPrometheus("outpost_gateway_http_");
    if (authn_) m.body += authn_->Prometheus("outpost_gateway_auth_");
    if (series_reader_) {
      m.body += "outpost_gateway_series_busy_total " +
                std::to_string(series_reader_->rejected_full()) + "\n";
      m.body += "outpost_gateway_series_exports_open " +
                std::to_string(series_exports_.open.load()) + "\n";
      m.body += "outpost_gateway_series_exports_busy_total " +
                std::to_string(series_exports_.busy.load()) + "\n";
      m.body += "outpost_gateway_series_exports_completed_total " +
                std::to_string(series_exports_.completed.load()) + "\n";
    }
    if (commands_) m.body += commands_->Prometheus("outpost_gateway_commands_");
    r.Send(std::move(m));
  });
  router.Add("GET", "/api/v1/health", [this](http::Request, http::Responder r) {
    json j = StatusJson(/*periodic=*/false);
    j["trigger"] = "api";
    r.Send(JsonResponse(j));
  });
  router.Add("GET", "/api/v1/devices", [this](http::Request q, http::Responder r) {
    auto limit = api::ParseLimit(q.params);
    if (!limit.ok()) return r.Send(http::Problem(400, "bad_limit", limit.status().message()));
    std::string after;
    if (auto c = q.params.find("cursor"); c != q.params.end()) {
      auto decoded = api::DecodeCursor(c->second);
      if (!decoded.ok())
        return r.Send(http::Problem(400, "bad_cursor", decoded.status().message()));
      after = std::move(decoded).value();
    }
    r.Send(Cacheable(q, api::DevicesPage(pipeline_.registry().devices(), after, *limit)));
  });
  router.Add("GET", "/api/v1/devices/*", [this](http::Request q, http::Responder r) {
    if (commands_ && commands_->HandleGet(q, &r)) return;  // .../{id}/commands[/{cid}]
    const std::string id = q.path.substr(std::string_view("/api/v1/devices/").size());
    const auto& devices = pipeline_.registry().devices();
    auto it = devices.find(id);
    if (id.empty() || it == devices.end()) {
      return r.Send(http::Problem(404, "unknown_device",
                                  "no device \"" + id.substr(0, 128) + "\" in the registry"));
    }
    r.Send(Cacheable(q, api::DeviceJson(it->second)));
  });
  series::AddSeriesRoute(&router, series_reader_.get(), &series_exports_,
                         [this] { return clock_.wall_ms(); });
  alerts::AddAlertRoutes(&router, AlertHooks());
  authn_->AddRoutes(&router);
  if (commands_) commands_->AddRoutes(&router);
  // The dashboard: public static files (docs/dashboard.md), served from the binary.
  web::AddRoutes(&router, web::BundledAssets());
  router.Add("GET", "/api/v1/stream", [this](http::Request q, http::Responder r) {
    auto param = [&q](const char* name) {
      auto it = q.params.find(name);
      return it == q.params.end() ? std::string() : it->second;
    };
    auto types = ParseTypes(param("types"));
    if (!types.ok()) return r.Send(http::Problem(400, "bad_types", types.status().message()));
    if (shutting_down_ || !events_) {
      return r.Send(http::Problem(503, "unavailable", "the gateway is shutting down"));
    }
    std::string last = q.Header("last-event-id");
    if (last.empty()) last = param("last_event_id");
    http::Response head;
    head.content_type = "text/event-stream";
    head.headers.emplace_back("Cache-Control", "no-cache");
    head.headers.emplace_back("X-Accel-Buffering", "no");
    if (q.method == "HEAD") return r.Send(std::move(head));  // the head only, no stream
    std::shared_ptr<http::Stream> stream = r.StartStream(std::move(head));
    events_->Subscribe([stream](std::string bytes) { return stream->Write(std::move(bytes)); },
                       *types, last, clock_.steady_ms());
    ScheduleReplay();
  });
  router.Add("GET", "/api/v1/openapi.json", [](http::Request, http::Responder r) {
    http::Response doc;
    doc.body = std::string(kOpenApiJson);
    r.Send(std::move(doc));
  });
  return router;
}

void Gateway::Impl::StartMqtt() {
  mqtt::ClientOptions o = MqttOptions(config_);

  mqtt::ClientCallbacks cb;
  cb.on_connected = [this](bool session_present) {
    spdlog::info("connected to mqtt {}:{} (session {})", config_.mqtt.host, config_.mqtt.port,
                 session_present ? "resumed" : "new");
    (void)client_->Publish(GatewayTopic("state"), "online", 1, true);
  };
  cb.on_disconnected = [this](const Status& why) {
    if (!shutting_down_) spdlog::warn("mqtt: {}", why.ToString());
  };
  cb.on_message = [this](const mqtt::Message& m) { OnMessage(m); };
  cb.on_oversize_message = [this](const mqtt::OversizeMessage& m) { OnOversizeMessage(m); };
  cb.on_subscribed = [this](std::uint16_t, const std::vector<std::uint8_t>& codes) {
    service_->OnSubscribed(codes,
                           fmt::format("running as {}, subscribed at {}:{}", config_.gateway_id,
                                       config_.mqtt.host, config_.mqtt.port));
  };
  client_ = std::make_unique<mqtt::Client>(io_, std::move(o), std::move(cb));
}

ExitReason Gateway::Impl::Run() {
  started_mono_ms_ = clock_.steady_ms();
  ingest_rate_.Sample(started_mono_ms_, 0);  // nothing stored yet: the rate counts from here
  latency_since_ms_ = clock_.wall_ms();
  for (const auto& w : config_.warnings) spdlog::warn("{}", w);
  for (const auto& w : config::CleartextWarnings(config_)) spdlog::warn("{}", w);
  service_ = std::make_unique<Service>(io_, clock_);
  if (Status s = OpenAndRestore(); !s.ok()) {
    spdlog::critical("cannot start: {}", s.ToString());
    StopUplink();
    if (writer_) writer_->Stop();
    return ExitReason::kFailed;
  }
  if (Status s = OpenAuth(); !s.ok()) {
    spdlog::critical("cannot start: {}", s.ToString());
    StopUplink();
    if (writer_) writer_->Stop();
    return ExitReason::kFailed;
  }
  if (Status s = StartHttp(); !s.ok()) {
    spdlog::critical("cannot start: {}", s.ToString());
    StopUplink();
    writer_->Stop();
    return ExitReason::kFailed;
  }
  StartMqtt();
  if (Status s = client_->Start(); !s.ok()) {
    spdlog::critical("mqtt: {}", s.ToString());
    StopHttp();
    StopUplink();
    writer_->Stop();
    return ExitReason::kFailed;
  }
  service_->StartWatchdog([this] {
    const Writer::Progress p = writer_->progress();
    return systemd::LoopProgress{p.turns, p.busy, p.busy_since_ms};
  });
  cpu_.Sample();
  WaitSignal();
  CheckExpiry(Now());  // before the first status: it has the days left from the start
  ScheduleStatus();
  ScheduleTick();
  spdlog::info("outpost-gateway {} running as {} (broker {}:{})", OUTPOST_VERSION,
               config_.gateway_id, config_.mqtt.host, config_.mqtt.port);
  io_.run();
  StopHttp();
  StopUplink();
  writer_->Stop();
  SaveStreamRing();
  spdlog::info("stopped: {} readings stored this run, {} duplicates dropped, {} rejected",
               n_.stored, pipeline_.counters().duplicates, pipeline_.counters().rejected);
  return exit_reason_;
}

void Gateway::Impl::OnMessage(const mqtt::Message& m) {
  std::optional<ingest::DeviceReplyMessage> reply;
  std::optional<proto::Command> cmd = pipeline_.OnMessage(
      ingest::Message{m.topic, m.payload, m.qos, m.retain, {m.connection_id, m.packet_id}}, Now(),
      &reply);
  if (cmd) HandleCommand(*cmd);
  // Stored before the batch holding its acknowledgement commits.
  if (reply && commands_) commands_->OnReply(reply->device_id, reply->reply);
  AfterMessage();
}

void Gateway::Impl::OnOversizeMessage(const mqtt::OversizeMessage& o) {
  pipeline_.OnOversizeMessage(ingest::OversizeMessage{o.topic,
                                                      o.head,
                                                      o.qos,
                                                      o.retain,
                                                      {o.connection_id, o.packet_id},
                                                      o.packet_bytes,
                                                      o.payload_bytes},
                              Now());
  AfterMessage();
}

// Counting messages bounds everything in the filling batch, whatever the writer is doing.
void Gateway::Impl::AfterMessage() {
  if (pipeline_.pending_messages() >= config_.storage.queue_max_readings) Pause();
  ScheduleSubmit();
}

void Gateway::Impl::ScheduleSubmit() {
  if (submit_scheduled_ || writer_busy_) return;
  submit_scheduled_ = true;
  // After this event-loop turn, so the messages of one socket read share a batch.
  asio::post(io_, [this] {
    submit_scheduled_ = false;
    MaybeSubmit();
  });
}

void Gateway::Impl::MaybeSubmit() {
  if (writer_busy_ || !pipeline_.HasWork()) return;
  Pending next = pipeline_.TakeBatch();
  inflight_readings_ = next.batch.readings.size();
  writer_busy_ = true;
  writer_->Submit(std::move(next));
  MaybeResume();
}

void Gateway::Impl::Pause() {
  if (paused_) return;
  paused_ = true;
  ++n_.pauses;
  client_->PauseReading();
}

// Reading resumes when the filling batch has room again.
void Gateway::Impl::MaybeResume() {
  if (!paused_ || shutting_down_) return;
  if (pipeline_.pending_messages() >= config_.storage.queue_max_readings) return;
  paused_ = false;
  client_->ResumeReading();
}

void Gateway::Impl::OnCommitted(Committed c) {
  store_stats_ = c.stats;
  if (!c.status.ok()) {
    ++n_.store_errors;
    n_.last_store_error = c.status.ToString();
  }
  if (c.disk_full) StorageFull(c.status);
  if (c.fatal) {
    // Nothing of this batch is acknowledged; the broker redelivers it to the next run.
    spdlog::critical("stopping: the store cannot commit: {}", c.status.ToString());
    exit_reason_ = ExitReason::kFailed;
    io_.stop();
    return;
  }
  if (!c.done) return;
  writer_busy_ = false;
  inflight_readings_ = 0;
  if (c.status.ok()) {
    if (storage_full_) StorageRecovered();
    ++n_.commits;
    n_.stored += c.batch.batch.readings.size();
    n_.last_commit_ms = c.committed_wall_ms;
    for (std::int64_t t : c.batch.received_ms) receive_to_commit_.Add(c.committed_wall_ms - t);
    for (const auto& r : c.batch.batch.readings) {
      if (r.ts_from_device) device_to_commit_.Add(c.committed_wall_ms - r.ts_ms);
    }
    for (const AckToken& a : c.batch.acks) client_->Ack(a.connection_id, a.packet_id);
    if (events_) {
      for (const auto& row : c.batch.batch.readings) {
        events_->Publish(EventType::kReading, ReadingEventData(row));
      }
      StreamDevices(c.batch.batch);
    }
    for (const auto& alert : c.batch.batch.alerts) PublishAlert(alert);
    if (uplink_ && !c.batch.batch.outbox.empty()) uplink_->Notify();
  }
  MaybeSubmit();
  MaybeResume();
  if (shutting_down_ && !writer_busy_) FinishShutdown();
}

void Gateway::Impl::ScheduleReplay() {
  if (replay_scheduled_ || !events_ || !events_->replaying()) return;
  if (!replay_timer_) replay_timer_ = std::make_unique<asio::steady_timer>(io_);
  replay_scheduled_ = true;
  replay_timer_->expires_after(std::chrono::milliseconds(2));
  replay_timer_->async_wait([this](const asio::error_code& ec) {
    replay_scheduled_ = false;
    if (ec || shutting_down_ || !events_) return;
    if (events_->Pump()) ScheduleReplay();
  });
}

void Gateway::Impl::StreamDevices(const model::WriteSet& batch) {
  for (const std::string& id : batch.removed_devices) streamed_status_.erase(id);
  const auto& devices = pipeline_.registry().devices();
  for (const model::DeviceRow& row : batch.devices) {
    auto it = devices.find(row.device_id);
    if (it == devices.end()) continue;
    const char* status = api::DeviceStatus(it->second);
    std::string& streamed = streamed_status_[row.device_id];
    if (streamed == status) continue;
    streamed = status;
    StreamEvent(EventType::kDevice, api::DeviceJson(it->second));
  }
}

void Gateway::Impl::StorageFull(const Status& error) {
  ++storage_full_attempts_;
  if (storage_full_) return;
  ++storage_full_events_;
  storage_full_ = model::AlertRow{
      "storage_full:" + config_.gateway_id,
      "storage_full",
      config_.gateway_id,
      "",
      "critical",
      "Storage full on gateway " + config_.gateway_id + " (" + config_.storage.path +
          "): readings are not stored or acknowledged (the broker keeps them) until space is "
          "freed: " +
          error.message(),
      0,
      0,
      clock_.wall_ms(),
      0};
  pipeline_.CountAlert(*storage_full_);
  PublishAlert(*storage_full_);
}

void Gateway::Impl::StorageRecovered() {
  model::AlertRow clear = *storage_full_;
  storage_full_.reset();
  clear.cleared_ms = clock_.wall_ms();
  clear.severity = "info";
  clear.message = "Storage on gateway " + config_.gateway_id + " accepts writes again";
  pipeline_.AddAlert(std::move(clear));  // published once that batch commits
  ScheduleSubmit();
}

void Gateway::Impl::PublishAlert(const model::AlertRow& a) {
  const bool raised = a.cleared_ms == 0;
  const json j = AlertMessage(a, config_.gateway_id, raised ? "raised" : "cleared");
  std::string payload = j.dump();
  StreamEvent(EventType::kAlert, j);
  if (raised)
    spdlog::warn("ALERT: {}", a.message);
  else
    spdlog::info("alert cleared: {}", a.message);
  for (const std::string& topic : {std::string("gateway/alerts"), GatewayTopic("alerts")}) {
    auto r = client_->Publish(topic, payload, 1, false);
    if (r.ok())
      ++n_.alerts_published;
    else
      ++n_.publish_errors;
  }
}

void Gateway::Impl::CheckUplinkAlert(std::int64_t now_ms) {
  if (!uplink_) return;
  const uplink::UplinkStatus u = uplink_->status();
  const bool raised = !u.alert.empty();
  if (raised == (uplink_alert_raised_ms_ != 0)) return;
  model::AlertRow a{"cloud_uplink",
                    "cloud_uplink",
                    "",
                    "",
                    "critical",
                    raised ? u.alert : "the cloud accepts batches again",
                    std::nan(""),
                    0,
                    raised ? u.alert_since_ms : uplink_alert_raised_ms_,
                    raised ? 0 : now_ms};
  uplink_alert_raised_ms_ = raised ? std::max<std::int64_t>(u.alert_since_ms, 1) : 0;
  PublishAlert(a);
}

json Gateway::Impl::StatusJson(bool periodic) {
  StatusInputs in;
  in.periodic = periodic;
  in.gateway_id = config_.gateway_id;
  in.version = OUTPOST_VERSION;
  in.now_ms = clock_.wall_ms();
  in.uptime_ms = clock_.steady_ms() - started_mono_ms_;
  in.latency_since_ms = latency_since_ms_;
  in.memory_usage_percent = MemoryUsagePercent();
  in.cpu_usage_percent = cpu_.Sample();
  in.rss_bytes = ProcessRssBytes();
  const registry::Registry& devices = pipeline_.registry();
  in.devices = devices.size();
  in.online = devices.count(State::kOnline);
  in.sleeping = devices.count(State::kSleeping);
  in.offline = devices.count(State::kOffline);
  in.max_devices = config_.registry.max_devices;
  const GatewayCounters counters = ReportCounters();
  in.counters = &counters;
  in.ingest_rate_per_s = ingest_rate_.PerSecond(clock_.steady_ms(), counters.stored);
  in.queue_depth = pipeline_.pending_readings() + inflight_readings_;
  in.queue_max = config_.storage.queue_max_readings;
  in.paused = paused_;
  in.receive_to_commit = Summarize(receive_to_commit_);
  in.device_to_commit = Summarize(device_to_commit_);
  in.store = store_stats_;
  if (storage_full_) in.full_since_ms = storage_full_->raised_ms;
  in.full_events = storage_full_events_;
  in.full_attempts = storage_full_attempts_;
  in.max_bytes = max_bytes_;
  in.max_bytes_auto = max_bytes_auto_;
  in.disk_free_bytes = DiskFreeBytes(config_.storage.path);
  in.active_alerts = pipeline_.rules().active_count() + expiry_alerts_.active_count();
  in.pki = ExpiryJson(expiry_, in.now_ms / 1000, config_.mqtt.tls.expiry_alert_days);
  in.mqtt_connected = client_->connected();
  const mqtt::ClientCounters& mc = client_->counters();
  in.mqtt_connects = mc.connects;
  in.mqtt_connect_failures = mc.connect_failures;
  in.mqtt_stale_acks = mc.stale_acks;
  in.mqtt_oversize = mc.oversize_in;
  in.mqtt_inflight = client_->inflight();
  in.cloud_enabled = config_.cloud.enabled();
  in.protocol = protocol_;
  in.endpoint = config_.cloud.api_endpoint;
  in.quota_bytes = config_.cloud.quota_bytes;
  in.when_full = config_.cloud.when_full;
  in.outbox = writer_ ? writer_->LatestStats().outbox : store_stats_.outbox;
  if (uplink_) in.uplink = uplink_->status();
  if (events_) {
    const EventHubStats s = events_->stats();
    in.stream = {s.subscribers,
                 s.ring,
                 config_.http.stream_replay_events,
                 s.events,
                 s.subscribed,
                 s.replayed,
                 s.resets,
                 http_ ? http_->stats().streams_dropped_slow.load() : 0};
  }
  return StatusReport(in);
}

GatewayCounters Gateway::Impl::ReportCounters() const {
  const ingest::Counters& p = pipeline_.counters();
  GatewayCounters c;
  c.messages = p.messages;
  c.readings_received = p.readings_received;
  c.duplicates = p.duplicates;
  c.seq_gaps = p.seq_gaps;
  c.beyond_window = p.beyond_window;
  c.seq_jumps = p.seq_jumps;
  c.boot_conflicts = p.boot_conflicts;
  c.status_messages = p.status_messages;
  c.commands = p.commands;
  c.rejected = p.rejected;
  c.rejected_by_reason = p.rejected_by_reason;
  c.quarantined = p.quarantined;
  c.alerts_raised = p.alerts_raised;
  c.alerts_cleared = p.alerts_cleared;
  c.devices_evicted = p.devices_evicted;
  c.devices_refused = p.devices_refused;
  c.stored = n_.stored;
  c.pauses = n_.pauses;
  c.commits = n_.commits;
  c.store_errors = n_.store_errors;
  c.alerts_published = n_.alerts_published;
  c.publish_errors = n_.publish_errors;
  c.restarts_refused = n_.restarts_refused;
  c.last_commit_ms = n_.last_commit_ms;
  c.last_store_error = n_.last_store_error;
  return c;
}

void Gateway::Impl::PublishStatus(bool periodic) {
  const json status = StatusJson(periodic);
  std::string payload = status.dump();
  StreamEvent(EventType::kHealth, status);
  (void)client_->Publish("gateway/status", payload, 0, false);
  (void)client_->Publish(GatewayTopic("status"), payload, 0, true);
}

void Gateway::Impl::Reply(const proto::Command& cmd, bool ok, const std::string& message) {
  json j = {{"command", cmd.name},
            {"ok", ok},
            {"message", message},
            {"gateway_id", config_.gateway_id},
            {"timestamp", Seconds(clock_.wall_ms())}};
  if (!cmd.id.empty()) j["id"] = cmd.id;
  (void)client_->Publish(GatewayTopic("replies"), j.dump(), 1, false);
}

// A valid command for this gateway, parsed, counted and acknowledged by the pipeline.
void Gateway::Impl::HandleCommand(const proto::Command& cmd) {
  spdlog::info("command {}{}", cmd.name, cmd.id.empty() ? "" : " (id " + cmd.id + ")");
  if (cmd.name == "get_status") {
    PublishStatus(/*periodic=*/false);
    Reply(cmd, true, "status published");
  } else if (cmd.name == "sync_cloud") {
    if (!uplink_) {
      Reply(cmd, true, "accepted; no cloud.api_endpoint is configured");
    } else {
      uplink_->SyncNow();
      const model::OutboxStats outbox = writer_->LatestStats().outbox;
      Reply(cmd, true,
            "draining now: " + std::to_string(outbox.readings + outbox.alerts + outbox.statuses) +
                " items queued");
    }
  } else if (cmd.name == "reload") {
    auto r = Reload();
    Reply(cmd, r.ok(),
          r.ok() ? *r : "error: " + r.status().message() + " (the running config is unchanged)");
  } else if (cmd.name == "restart" || cmd.name == "reboot") {
    // Measured from this process's start (a restart re-executes it), so a stream of restart
    // commands restarts the gateway at most once per interval.
    const std::int64_t uptime_ms = clock_.steady_ms() - started_mono_ms_;
    const std::int64_t min_ms = config_.restart_min_interval_s * 1000;
    if (uptime_ms < min_ms) {
      ++n_.restarts_refused;
      std::string why = fmt::format(
          "refused: the gateway started {:.1f} s ago; at most one restart per {} s "
          "(commands.restart_min_interval_s), retry in {:.1f} s",
          Seconds(uptime_ms), config_.restart_min_interval_s, Seconds(min_ms - uptime_ms));
      spdlog::warn("command {}: {}", cmd.name, why);
      Reply(cmd, false, why);
      return;
    }
    Reply(cmd, true, "restarting after draining");
    Shutdown(ExitReason::kRestart);
  } else {
    Reply(cmd, false, "unknown command");
  }
}

Result<std::string> Gateway::Impl::Reload() {
  service_->Reloading();
  auto r = ReloadConfig();  // logs its outcome
  service_->Reloaded(r.ok() ? *r : "reload refused: " + r.status().message());
  return r;
}

Result<std::string> Gateway::Impl::ReloadConfig() {
  if (config_path_.empty()) {
    return FailedPrecondition("nothing to reload: the gateway was started without --config");
  }
  auto loaded = config::LoadFile(config_path_);
  if (!loaded.ok()) {
    spdlog::error("reload refused, running config unchanged: {}", loaded.status().message());
    return loaded.status();
  }
  config::Config next = std::move(loaded).value();
  for (const auto& w : next.warnings) spdlog::warn("{}", w);
  // Restart-only settings keep their running values (reload.h).
  ReloadPlan plan = PlanReload(config_, std::move(next));
  next = std::move(plan.config);
  const std::vector<std::string>& need_restart = plan.need_restart;

  pipeline_.Reload(PipelineOptions(next), Now());
  auto level = spdlog::level::from_str(next.log_level);
  if (level != spdlog::level::off || next.log_level == "off") spdlog::set_level(level);
  config_ = std::move(next);
  ScheduleSubmit();

  std::string summary = "reloaded " + config_path_ + ": " +
                        std::to_string(pipeline_.rules().rules().size()) + " rules";
  if (!need_restart.empty()) {
    summary += "; changes to";
    for (const auto& key : need_restart) summary += " " + key;
    summary += " take effect after a restart";
  }
  spdlog::info("{}", summary);
  return summary;
}

void Gateway::Impl::ScheduleStatus() {
  status_timer_.expires_after(std::chrono::seconds(config_.status_interval_s));
  status_timer_.async_wait([this](const asio::error_code& ec) {
    if (ec || shutting_down_) return;
    PublishStatus(/*periodic=*/true);
    receive_to_commit_.Reset();
    device_to_commit_.Reset();
    latency_since_ms_ = clock_.wall_ms();
    ScheduleStatus();
  });
}

void Gateway::Impl::CheckExpiry(const ingest::Instant& now) {
  constexpr std::int64_t kEveryMs = 3'600'000;
  if (expiry_checked_mono_ms_ && now.mono_ms - *expiry_checked_mono_ms_ < kEveryMs) return;
  expiry_checked_mono_ms_ = now.mono_ms;
  std::vector<ExpiryItem> items = ReadExpiry(config_.mqtt.tls, now.wall_ms / 1000, config_.storage.path);
  for (const ExpiryItem& item : items) {
    auto before = std::find_if(expiry_.begin(), expiry_.end(),
                               [&](const ExpiryItem& e) { return e.kind == item.kind; });
    if (!item.error.empty() && (before == expiry_.end() || before->error != item.error)) {
      spdlog::warn("days left of {} ({}): cannot read it: {}", item.path, item.kind, item.error);
    }
  }
  expiry_ = std::move(items);
  for (model::AlertRow& row : expiry_alerts_.Update(expiry_, now.wall_ms)) {
    if (row.cleared_ms == 0) spdlog::warn("{}", row.message);
    pipeline_.AddAlert(std::move(row));  // stored, then published with its batch
  }
}

void Gateway::Impl::ScheduleTick() {
  // Silence sweep and duration rules. A quarter of the offline limit, between 100 ms and 1 s.
  std::int64_t period = std::clamp<std::int64_t>(config_.registry.offline_after_s * 250, 100, 1000);
  tick_timer_.expires_after(std::chrono::milliseconds(period));
  tick_timer_.async_wait([this](const asio::error_code& ec) {
    if (ec || shutting_down_) return;
    const ingest::Instant now = Now();
    pipeline_.Tick(now);
    ingest_rate_.Sample(now.mono_ms, n_.stored);
    if (events_) events_->Tick(now.mono_ms);
    if (commands_) commands_->Tick();  // expiry; devices back online get their commands
    CheckExpiry(now);
    ScheduleSubmit();
    CheckUplinkAlert(now.wall_ms);
    ScheduleTick();
  });
}

void Gateway::Impl::WaitSignal() {
  signals_.async_wait([this](const asio::error_code& ec, int signo) {
    if (ec) return;
    if (signo == SIGHUP) {
      static_cast<void>(Reload());  // logs its outcome; the signal has nobody to answer
      WaitSignal();
      return;
    }
    spdlog::info("signal {}: draining", signo);
    Shutdown(ExitReason::kStopped);
  });
}

void Gateway::Impl::Shutdown(ExitReason reason) {
  if (shutting_down_) return;
  shutting_down_ = true;
  exit_reason_ = reason;
  service_->Stopping();
  status_timer_.cancel();
  tick_timer_.cancel();
  if (replay_timer_) replay_timer_->cancel();
  if (commands_) commands_->Stop();  // answers the ?wait requests before the server closes
  if (http_) http_->Stop();  // on the loop: closes the listener and every connection, returns
  client_->PauseReading();
  // What is pending commits next; OnCommitted finishes the shutdown once the writer has reported
  // back with nothing left (so every acknowledgement went out).
  MaybeSubmit();
  if (!writer_busy_) FinishShutdown();
  drain_timer_.expires_after(std::chrono::milliseconds(kDrainTimeoutMs));
  drain_timer_.async_wait([this](const asio::error_code& ec) {
    if (ec) return;
    spdlog::error("drain timed out after {} ms; the broker redelivers what was not acknowledged",
                  kDrainTimeoutMs);
    io_.stop();
  });
}

void Gateway::Impl::FinishShutdown() {
  if (finishing_) return;
  finishing_ = true;
  (void)client_->Publish(GatewayTopic("state"), "offline", 1, true);
  client_->Stop([this] {
    drain_timer_.cancel();
    signals_.cancel();
    io_.stop();
  });
}

}  // namespace outpost::gateway::app
