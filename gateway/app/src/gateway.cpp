#include "outpost/gateway/app/gateway.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <asio.hpp>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>

#include "options.h"
#include "outpost/base/clock.h"
#include "outpost/gateway/app/system_stats.h"
#include "outpost/gateway/app/writer.h"
#include "outpost/gateway/ingest/dedupe.h"
#include "outpost/gateway/ingest/rate_limiter.h"
#include "outpost/gateway/registry/registry.h"
#include "outpost/gateway/rules/rule_engine.h"
#include "outpost/gateway/store/store.h"
#include "outpost/gateway/uplink/codec.h"
#include "outpost/gateway/uplink/sender.h"
#include "outpost/gateway/uplink/uplink.h"
#include "outpost/mqtt/client.h"
#include "outpost/proto/command.h"
#include "outpost/proto/device_status.h"
#include "outpost/proto/reading.h"
#include "outpost/proto/topics.h"
#include "reload.h"
#include "status_report.h"

#ifndef OUTPOST_VERSION
#define OUTPOST_VERSION "0.0.0"
#endif

namespace outpost::gateway::app {
namespace {

using nlohmann::json;
using registry::State;

// Rows read back at start to rebuild the dedupe state: more than the broker can redeliver
// (Mosquitto may resend tens of thousands it had already been acknowledged, see dedupe.h).
constexpr std::size_t kRecentIdentities = 500'000;
constexpr int kQuarantinePerSecond = 100;  // rejected payloads kept; the rest counted
constexpr std::int64_t kDrainTimeoutMs = 15'000;

double Seconds(std::int64_t ms) { return static_cast<double>(ms) / 1000.0; }

model::DeviceRow ToRow(const registry::Device& d) {
  return model::DeviceRow{d.id,
                          d.first_seen_ms,
                          d.last_seen_ms,
                          registry::StateName(d.state),
                          d.state_changed_ms,
                          d.last_reading_json,
                          d.firmware,
                          d.boot,
                          d.last_seq,
                          d.readings,
                          d.duplicates,
                          d.seq_gaps};
}

registry::Device FromRow(const model::DeviceRow& r) {
  registry::Device d;
  d.id = r.device_id;
  d.first_seen_ms = r.first_seen_ms;
  d.last_seen_ms = r.last_seen_ms;
  d.state = registry::StateFromName(r.status).value_or(State::kOffline);
  d.state_changed_ms = r.status_changed_ms;
  d.last_reading_json = r.last_reading_json;
  d.firmware = r.firmware;
  d.boot = r.boot;
  d.last_seq = r.last_seq;
  d.readings = r.readings;
  d.duplicates = r.duplicates;
  d.seq_gaps = r.seq_gaps;
  return d;
}

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

}  // namespace

class Gateway::Impl {
 public:
  Impl(config::Config config, std::string config_path)
      : config_(std::move(config)),
        config_path_(std::move(config_path)),
        registry_(RegistryOptions(config_)),
        rules_(config::EffectiveRules(config_), config_.offline_alerts),
        parser_(ParserLimits(config_)),
        signals_(io_, SIGTERM, SIGINT, SIGHUP),
        status_timer_(io_),
        tick_timer_(io_),
        drain_timer_(io_) {}

  ExitReason Run();

 private:
  // Per-device state of the loop: one hash lookup per message reaches all of it.
  struct DeviceContext {
    registry::Device* device;  // owned by registry_; node addresses are stable
    ingest::DeviceDedupe dedupe;
    ingest::TokenBucket bucket;         // readings, in receive time, with backlog credit
    ingest::TokenBucket status_bucket;  // status messages, in receive time
    bool dirty = false;                 // its row goes into the next batch
    std::int64_t last_reading = -1;     // index of its last reading in next_, if any
  };

  Status OpenAndRestore();
  Status StartUplink();
  void StopUplink();
  void QueueForCloud();
  void StartMqtt();
  void OnMessage(const mqtt::Message& m);
  // A PUBLISH over the MQTT packet limit, skipped by the client: rejected as too large, its head
  // quarantined and (QoS 1) acknowledged in order, so the broker forgets it.
  void OnOversizeMessage(const mqtt::OversizeMessage& o);
  void HandleReading(const mqtt::Message& m, std::string_view topic_device);
  void HandleStatus(const mqtt::Message& m, std::string_view topic_device);
  void HandleCommand(const mqtt::Message& m);
  void Reject(const mqtt::Message& m, std::string_view reason, std::string_view detail);
  // Every QoS 1 message is acknowledged after the batch that follows its handling commits, in
  // arrival order, whatever its outcome (stored, duplicate, rejected, command).
  void Ack(const mqtt::Message& m) {
    if (m.qos == 1) next_.acks.push_back(AckToken{m.connection_id, m.packet_id});
  }
  DeviceContext* Context(std::string_view id, std::int64_t now, bool* added);
  ingest::TokenBucket ReadingBucket(const config::IngestConfig& c) const {
    return ingest::TokenBucket(c.device_rate_per_s, c.device_burst, c.device_backlog_max_s * 1000);
  }
  ingest::TokenBucket StatusBucket(const config::IngestConfig& c) const {
    return ingest::TokenBucket(c.status_rate_per_min / 60.0, c.status_burst);
  }
  void MarkDirty(DeviceContext& c) {
    if (!c.dirty) {
      c.dirty = true;
      dirty_.push_back(&c);
    }
  }
  void ApplyStateChange(const registry::Change& change);
  void AddTransitions();
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
  void PublishAlert(const model::AlertRow& a);
  // Publishes the uplink's alert (a 4xx that refuses every batch) when it is raised or cleared.
  void CheckUplinkAlert(std::int64_t now_ms);
  std::int64_t uplink_alert_raised_ms_ = 0;  // 0 = not raised
  void Reply(const proto::Command& cmd, bool ok, const std::string& message);
  // Re-reads the config file; returns what was applied (and what needs a restart).
  Result<std::string> Reload();
  void ScheduleStatus();
  void ScheduleTick();
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

  registry::Registry registry_;
  rules::RuleEngine rules_;
  std::unordered_map<std::string, DeviceContext> devices_;
  std::vector<DeviceContext*> dirty_;
  proto::ReadingParser parser_;
  proto::Reading reading_;  // reused
  std::vector<rules::Transition> transitions_;
  std::vector<rules::MetricSample> samples_;

  std::unique_ptr<Writer> writer_;
  std::unique_ptr<WriterOutbox> outbox_port_;
  std::unique_ptr<uplink::Sender> sender_;
  std::unique_ptr<uplink::Uplink> uplink_;
  uplink::Protocol protocol_ = uplink::Protocol::kSeed;
  std::unique_ptr<mqtt::Client> client_;
  asio::signal_set signals_;
  asio::steady_timer status_timer_, tick_timer_, drain_timer_;
  CpuUsage cpu_;

  Pending next_;                   // filling while the writer commits the previous batch
  bool writer_busy_ = false;       // a batch is with the writer until its final Committed
  std::size_t next_messages_ = 0;  // messages whose handling is in next_
  std::size_t inflight_readings_ = 0;
  bool submit_scheduled_ = false;

  std::int64_t started_mono_ms_ = 0;
  std::int64_t latency_since_ms_ = 0;
  bool paused_ = false;
  bool shutting_down_ = false;
  bool finishing_ = false;
  ExitReason exit_reason_ = ExitReason::kStopped;
  std::int64_t quarantine_second_ = 0;
  int quarantine_in_second_ = 0;

  GatewayCounters n_;
  // Since the last periodic status: gateway receive -> commit, and device timestamp -> commit
  // for readings that carry the device's own clock (publish -> commit when clocks agree).
  LatencyHistogram receive_to_commit_, device_to_commit_;
  store::Stats store_stats_{};
  std::int64_t max_bytes_ = 0;  // effective storage.max_bytes (auto resolved at start)
  bool max_bytes_auto_ = false;
  // Full disk (kResourceExhausted from the store): commits fail, nothing is acknowledged.
  std::optional<model::AlertRow> storage_full_;  // the raised alert while full
  std::uint64_t storage_full_events_ = 0, storage_full_attempts_ = 0;
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
  for (const auto& row : *devices) {
    registry_.Restore(FromRow(row), clock_.wall_ms(), clock_.steady_ms());
  }
  const std::int64_t wall_now = clock_.wall_ms(), mono_now = clock_.steady_ms();
  for (const auto& [id, device] : registry_.devices()) {
    bool added = false;
    DeviceContext* c = Context(id, 0, &added);
    // Its silence includes the gateway's own downtime: the backlog the broker queued meanwhile
    // is credited (a wall clock stepped back credits nothing).
    c->bucket.HeardAt(mono_now - std::max<std::int64_t>(0, wall_now - device.last_seen_ms));
  }
  auto alerts = store->LoadActiveAlerts();
  if (!alerts.ok()) return alerts.status();
  for (const auto& a : *alerts) {
    rules_.RestoreActive(a.rule, a.device_id, a.metric, a.value, a.raised_ms, clock_.wall_ms(),
                         &transitions_);
  }
  AddTransitions();  // clears of alerts whose rule is gone; committed with the first batch
  auto recent = store->LoadRecentIdentities(kRecentIdentities);
  if (!recent.ok()) return recent.status();
  for (const auto& r : *recent) {
    auto it = devices_.find(r.device_id);
    if (it == devices_.end()) continue;  // not in the registry (e.g. removed): nothing to guard
    ingest::Identity id{r.has_seq, r.boot, r.seq, r.has_device_ts, r.device_ts_raw};
    (void)it->second.dedupe.Check(id);
  }
  store_stats_ = store->stats();
  spdlog::info("store {}: {} readings, {} devices, {} active alerts; dedupe rebuilt from {} recent",
               so.path, store_stats_.readings, registry_.size(), alerts->size(), recent->size());
  spdlog::info("store {}: storage.max_bytes {} bytes{}", so.path, max_bytes_,
               max_bytes_ == 0   ? " (unbounded)"
               : max_bytes_auto_ ? " (auto)"
                                 : "");

  writer_ = std::make_unique<Writer>(
      std::move(store), Writer::Options{}, clock_,
      [this](Committed c) {  // on the writer thread
        asio::post(io_, [this, c = std::move(c)]() mutable { OnCommitted(std::move(c)); });
      });
  writer_->Start();
  return StartUplink();
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

// Queues what the filling batch carries for the cloud, in the same transaction (the outbox).
void Gateway::Impl::QueueForCloud() {
  if (!config_.cloud.enabled()) return;
  auto& out = next_.batch.outbox;
  out.reserve(out.size() + next_.batch.readings.size() + next_.batch.alerts.size());
  if (protocol_ == uplink::Protocol::kNative) {
    for (const auto& a : next_.batch.alerts) {
      out.push_back(model::OutboxItem{model::OutboxKind::kAlert,
                                      a.cleared_ms ? a.cleared_ms : a.raised_ms,
                                      uplink::EncodeAlertItem(a, config_.gateway_id)});
    }
  }
  for (const auto& r : next_.batch.readings) {
    out.push_back(model::OutboxItem{model::OutboxKind::kReading, r.received_ms,
                                    uplink::EncodeReadingItem(r)});
  }
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
  client_ = std::make_unique<mqtt::Client>(io_, std::move(o), std::move(cb));
}

ExitReason Gateway::Impl::Run() {
  started_mono_ms_ = clock_.steady_ms();
  latency_since_ms_ = clock_.wall_ms();
  for (const auto& w : config_.warnings) spdlog::warn("{}", w);
  if (Status s = OpenAndRestore(); !s.ok()) {
    spdlog::critical("cannot start: {}", s.ToString());
    StopUplink();
    if (writer_) writer_->Stop();
    return ExitReason::kFailed;
  }
  StartMqtt();
  if (Status s = client_->Start(); !s.ok()) {
    spdlog::critical("mqtt: {}", s.ToString());
    StopUplink();
    writer_->Stop();
    return ExitReason::kFailed;
  }
  cpu_.Sample();
  WaitSignal();
  ScheduleStatus();
  ScheduleTick();
  spdlog::info("outpost-gateway {} running as {} (broker {}:{})", OUTPOST_VERSION,
               config_.gateway_id, config_.mqtt.host, config_.mqtt.port);
  io_.run();
  StopUplink();
  writer_->Stop();
  spdlog::info("stopped: {} readings stored this run, {} duplicates dropped, {} rejected",
               n_.stored, n_.duplicates, n_.rejected);
  return exit_reason_;
}

void Gateway::Impl::OnMessage(const mqtt::Message& m) {
  ++n_.messages;
  proto::TopicInfo t = proto::ClassifyTopic(m.topic);
  switch (t.kind) {
    case proto::TopicKind::kSensorData:
      HandleReading(m, t.device_id);
      break;
    case proto::TopicKind::kDeviceStatus:
      HandleStatus(m, t.device_id);
      break;
    case proto::TopicKind::kGatewayCommands:
      if (m.retain) {
        // A retained command would run again at every (re)subscription: a retained "restart"
        // would restart the gateway forever.
        Reject(m, "command_retained", "commands must not be published with the retain flag");
      } else if (t.gateway_id.empty() || t.gateway_id == config_.gateway_id) {
        HandleCommand(m);
      } else {
        Ack(m);
      }
      break;
    default:
      Reject(m, "bad_topic", "topic not handled by the gateway");
      break;
  }
  // Every message leaves at most a reading, a quarantine row or an acknowledgement (plus rare
  // alert rows) in next_: counting messages bounds all of it, whatever the writer is doing.
  ++next_messages_;
  if (next_messages_ >= config_.storage.queue_max_readings) Pause();
  ScheduleSubmit();
}

void Gateway::Impl::OnOversizeMessage(const mqtt::OversizeMessage& o) {
  ++n_.messages;
  mqtt::Message m;
  m.topic = o.topic;
  m.payload = o.head;
  m.qos = o.qos;
  m.retain = o.retain;
  m.dup = o.dup;
  m.packet_id = o.packet_id;
  m.connection_id = o.connection_id;
  const std::string too_large = proto::RejectReasonName(proto::RejectReason::kTooLarge);
  std::string reason = too_large;
  switch (proto::ClassifyTopic(o.topic).kind) {
    case proto::TopicKind::kDeviceStatus:
      reason = "status_" + too_large;
      break;
    case proto::TopicKind::kGatewayCommands:
      reason = "command_" + too_large;
      break;
    default:
      break;
  }
  Reject(m, reason,
         "MQTT message of " + std::to_string(o.packet_bytes) + " bytes (payload " +
             std::to_string(o.payload_bytes) + ") exceeds the gateway's packet limit of " +
             std::to_string(config_.mqtt.max_packet_bytes) + " bytes; skipped");
  ++next_messages_;
  if (next_messages_ >= config_.storage.queue_max_readings) Pause();
  ScheduleSubmit();
}

void Gateway::Impl::Reject(const mqtt::Message& m, std::string_view reason,
                           std::string_view detail) {
  ++n_.rejected;
  auto it = n_.rejected_by_reason.find(reason);
  if (it == n_.rejected_by_reason.end()) it = n_.rejected_by_reason.emplace(reason, 0).first;
  ++it->second;
  std::int64_t now = clock_.wall_ms();
  // The quarantine is sampled so a flood of garbage cannot turn into a flood of writes.
  std::int64_t second = clock_.steady_ms() / 1000;
  if (second != quarantine_second_) {
    quarantine_second_ = second;
    quarantine_in_second_ = 0;
  }
  bool keep =
      quarantine_in_second_ < kQuarantinePerSecond && config_.ingest.quarantine_max_rows > 0;
  if (keep) {
    ++quarantine_in_second_;
    ++n_.quarantined;
  }
  if (spdlog::should_log(spdlog::level::debug)) {
    spdlog::debug("rejected {} on {}: {}", reason, m.topic, detail);
  }
  if (keep) {
    std::size_t cap = config_.ingest.quarantine_max_payload_bytes;
    next_.batch.quarantine.push_back(model::QuarantineRow{now, m.topic.substr(0, 256),
                                                          std::string(reason), std::string(detail),
                                                          m.payload.substr(0, cap)});
  }
  Ack(m);
}

Gateway::Impl::DeviceContext* Gateway::Impl::Context(std::string_view id, std::int64_t now,
                                                     bool* added) {
  *added = false;
  auto it = devices_.find(std::string(id));
  if (it != devices_.end()) return &it->second;
  registry::Device* device = registry_.FindOrAdd(id, now, clock_.steady_ms(), added);
  if (!device) {
    // Full: make room by evicting the device idle longest (registry.evict_after_s), never one
    // whose row is waiting for the next batch.
    std::optional<std::string> gone =
        registry_.EvictIdle(clock_.steady_ms(), [this](const registry::Device& d) {
          auto c = devices_.find(d.id);
          return c == devices_.end() || !c->second.dirty;
        });
    if (!gone) {
      ++n_.devices_refused;
      return nullptr;
    }
    // Its dedupe and rate state go with it (the broker cannot hold unacknowledged readings of a
    // device silent that long); its row is deleted, its readings stay.
    devices_.erase(*gone);
    rules_.Forget(*gone);
    next_.batch.removed_devices.push_back(*gone);
    ++n_.devices_evicted;
    spdlog::info("registry full: evicted device {} (no valid reading for {} s) for {}", *gone,
                 config_.registry.evict_after_s, id);
    device = registry_.FindOrAdd(id, now, clock_.steady_ms(), added);
    if (!device) return nullptr;
  }
  it = devices_
           .emplace(std::string(id),
                    DeviceContext{device,
                                  ingest::DeviceDedupe(config_.ingest.dedupe_window,
                                                       config_.ingest.max_seq_jump),
                                  ReadingBucket(config_.ingest), StatusBucket(config_.ingest)})
           .first;
  if (*added) {
    MarkDirty(it->second);
    // An evicted device that comes back: its offline alert (if still active) clears.
    rules_.DeviceOnline(it->second.device->id, now, &transitions_);
  }
  return &it->second;
}

void Gateway::Impl::HandleReading(const mqtt::Message& m, std::string_view topic_device) {
  ++n_.readings_received;
  std::int64_t now = clock_.wall_ms();
  proto::Reject reject;
  if (!parser_.Parse(m.payload, topic_device, now, &reading_, &reject)) {
    Reject(m, proto::RejectReasonName(reject.reason), reject.detail);
    return;
  }
  const std::string& id = reading_.device_id;
  bool added = false;
  DeviceContext* ctx = Context(id, now, &added);
  if (!ctx) {
    Reject(m, "too_many_devices", "registry full (registry.max_devices)");
    return;
  }
  if (added) spdlog::info("new device {}", id);
  std::int64_t mono = clock_.steady_ms();
  registry::Device& device = *ctx->device;
  ingest::Verdict v =
      ctx->dedupe.Check(ingest::Identity{reading_.has_seq, reading_.boot, reading_.seq,
                                         reading_.has_device_ts, reading_.device_ts_raw});
  if (auto change = registry_.Seen(device, now, mono)) ApplyStateChange(*change);
  MarkDirty(*ctx);
  if (v.duplicate) {  // redeliveries take no rate tokens
    ++n_.duplicates;
    ++device.duplicates;
    AddTransitions();
    Ack(m);
    return;
  }
  // The rate is judged in receive time (a device's timestamps are its own word); a backlog
  // after a silence is let through by the credit the silence earned (rate_limiter.h).
  if (!ctx->bucket.Take(mono)) {
    Reject(m, "rate_limited", "device " + id + " over ingest.device_rate_per_s");
    return;
  }
  n_.seq_gaps += v.new_gaps;
  n_.beyond_window += v.beyond_window;
  n_.seq_jumps += v.seq_jump;
  n_.boot_conflicts += v.boot_conflict;
  device.seq_gaps += v.new_gaps;
  if (v.filled_gap && device.seq_gaps > 0) --device.seq_gaps;
  if (v.filled_gap && n_.seq_gaps > 0) --n_.seq_gaps;
  ++device.readings;
  if (reading_.has_seq && (v.new_boot || v.boot_conflict ||
                           (reading_.boot == device.boot && reading_.seq > device.last_seq))) {
    device.boot = reading_.boot;
    device.last_seq = reading_.seq;
  }
  if (!reading_.firmware.empty()) device.firmware = reading_.firmware;
  registry_.Valid(device, mono);

  samples_.clear();
  for (const auto& metric : reading_.metrics) samples_.push_back({metric.name, metric.value});
  rules_.Evaluate(id, samples_, now, &transitions_);

  ctx->last_reading = static_cast<std::int64_t>(next_.batch.readings.size());
  model::ReadingRow& row = next_.batch.readings.emplace_back();
  row.device_id = id;
  row.has_seq = reading_.has_seq;
  row.boot = reading_.boot;
  row.seq = reading_.seq;
  row.has_device_ts = reading_.has_device_ts;
  row.device_ts_raw = reading_.device_ts_raw;
  row.ts_ms = reading_.ts_ms;
  row.ts_from_device = reading_.ts_source == proto::TimeSource::kDevice;
  row.received_ms = now;
  row.metrics.reserve(reading_.metrics.size());
  for (const auto& metric : reading_.metrics) {
    row.metrics.push_back(model::MetricValue{metric.name, metric.value, metric.is_bool});
  }
  next_.received_ms.push_back(now);
  AddTransitions();
  Ack(m);
}

void Gateway::Impl::HandleStatus(const mqtt::Message& m, std::string_view topic_device) {
  ++n_.status_messages;
  proto::StatusMessage s;
  proto::Reject reject;
  if (!proto::ParseStatus(m.payload, topic_device, &s, &reject)) {
    Reject(m, std::string("status_") + proto::RejectReasonName(reject.reason), reject.detail);
    return;
  }
  std::int64_t now = clock_.wall_ms();
  bool added = false;
  DeviceContext* ctx = Context(s.device_id, now, &added);
  if (!ctx) {
    Reject(m, "too_many_devices", "registry full (registry.max_devices)");
    return;
  }
  if (!ctx->status_bucket.Take(clock_.steady_ms())) {
    // A forged stream of online/offline would raise and clear device_offline alerts.
    Reject(m, "status_rate_limited", "device " + s.device_id + " over ingest.status_rate_per_min");
    return;
  }
  registry::Device& device = *ctx->device;
  State to = s.state == proto::DeviceState::kOnline     ? State::kOnline
             : s.state == proto::DeviceState::kSleeping ? State::kSleeping
                                                        : State::kOffline;
  if (m.retain && !added) {
    // The broker replays retained statuses at every (re)subscription: history, not a sign of
    // life. It may tell us a device went offline or to sleep, but never wakes one we think is
    // offline (that would raise and clear offline alerts at every reconnect).
    if (to != State::kOnline && device.state != State::kOffline) {
      if (auto change = registry_.SetState(device, to, now)) ApplyStateChange(*change);
    }
  } else {
    // The device's own word is a sign of life; a last will ("offline") is the broker's.
    if (to != State::kOffline) registry_.Touch(device, now, clock_.steady_ms());
    if (auto change = registry_.SetState(device, to, now)) {
      ApplyStateChange(*change);  // queues the status for the cloud
    } else if (config_.cloud.enabled() && protocol_ == uplink::Protocol::kNative) {
      // A live status that changes nothing here (e.g. a new device saying "online") is still
      // an event for the cloud's device history.
      next_.batch.outbox.push_back(
          model::OutboxItem{model::OutboxKind::kStatus, now,
                            uplink::EncodeStatusItem(device.id, registry::StateName(to), now)});
    }
  }
  MarkDirty(*ctx);
  AddTransitions();
  Ack(m);
}

void Gateway::Impl::ApplyStateChange(const registry::Change& change) {
  spdlog::info("device {} {} -> {}", change.device_id, registry::StateName(change.from),
               registry::StateName(change.to));
  if (change.to == State::kOffline) {
    rules_.DeviceOffline(change.device_id, change.at_ms, &transitions_);
  } else if (change.from == State::kOffline) {
    rules_.DeviceOnline(change.device_id, change.at_ms, &transitions_);
  }
  auto it = devices_.find(change.device_id);
  if (it != devices_.end()) MarkDirty(it->second);
  if (config_.cloud.enabled() && protocol_ == uplink::Protocol::kNative) {
    next_.batch.outbox.push_back(model::OutboxItem{
        model::OutboxKind::kStatus, change.at_ms,
        uplink::EncodeStatusItem(change.device_id, registry::StateName(change.to), change.at_ms)});
  }
}

// Moves the rule transitions collected so far into the batch; they are published after commit.
void Gateway::Impl::AddTransitions() {
  for (auto& t : transitions_) {
    (t.raised ? n_.alerts_raised : n_.alerts_cleared)++;
    next_.batch.alerts.push_back(model::AlertRow{t.alert_id, t.rule, t.device_id, t.metric,
                                                 t.severity, t.message, t.value, t.threshold,
                                                 t.raised_ms, t.raised ? 0 : t.at_ms});
  }
  transitions_.clear();
}

namespace {
// {"temperature":22.5,"motion":true}. Metric names never need escaping (libs/proto checks them).
std::string MetricsJson(const std::vector<model::MetricValue>& metrics) {
  std::string out = "{";
  for (const auto& m : metrics) {
    if (out.size() > 1) out += ',';
    out += '"';
    out += m.name;
    out += "\":";
    if (m.is_bool) {
      out += m.value != 0 ? "true" : "false";
    } else {
      fmt::format_to(std::back_inserter(out), "{}", m.value);
    }
  }
  out += '}';
  return out;
}
}  // namespace

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
  if (writer_busy_ || (next_.empty() && dirty_.empty())) return;
  // Device rows once per batch, with the JSON of their last reading in it.
  for (DeviceContext* c : dirty_) {
    if (c->last_reading >= 0) {
      c->device->last_reading_json =
          MetricsJson(next_.batch.readings[static_cast<std::size_t>(c->last_reading)].metrics);
      c->last_reading = -1;
    }
    c->dirty = false;
    next_.batch.devices.push_back(ToRow(*c->device));
  }
  dirty_.clear();
  QueueForCloud();
  inflight_readings_ = next_.batch.readings.size();
  writer_busy_ = true;
  writer_->Submit(std::move(next_));
  next_ = Pending{};
  next_messages_ = 0;
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
  if (next_messages_ >= config_.storage.queue_max_readings) return;
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
    for (const auto& alert : c.batch.batch.alerts) PublishAlert(alert);
    if (uplink_ && !c.batch.batch.outbox.empty()) uplink_->Notify();
  }
  MaybeSubmit();
  MaybeResume();
  if (shutting_down_ && !writer_busy_) FinishShutdown();
}

void Gateway::Impl::StorageFull(const Status& error) {
  ++storage_full_attempts_;
  if (storage_full_) return;
  ++storage_full_events_;
  ++n_.alerts_raised;
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
  PublishAlert(*storage_full_);
}

void Gateway::Impl::StorageRecovered() {
  model::AlertRow clear = *storage_full_;
  storage_full_.reset();
  ++n_.alerts_cleared;
  clear.cleared_ms = clock_.wall_ms();
  clear.severity = "info";
  clear.message = "Storage on gateway " + config_.gateway_id + " accepts writes again";
  next_.batch.alerts.push_back(std::move(clear));  // published once that batch commits
  ScheduleSubmit();
}

void Gateway::Impl::PublishAlert(const model::AlertRow& a) {
  bool raised = a.cleared_ms == 0;
  std::int64_t at = raised ? a.raised_ms : a.cleared_ms;
  json j = {{"timestamp", Seconds(at)},
            {"message", a.message},
            {"severity", a.severity},
            {"alert_id", a.alert_id},
            {"rule", a.rule},
            {"device_id", a.device_id},
            {"state", raised ? "raised" : "cleared"},
            {"gateway_id", config_.gateway_id}};
  if (!a.metric.empty()) {
    j["metric"] = a.metric;
    j["value"] = a.value;
    j["threshold"] = a.threshold;
  }
  std::string payload = j.dump();
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
  in.devices = registry_.size();
  in.online = registry_.count(State::kOnline);
  in.sleeping = registry_.count(State::kSleeping);
  in.offline = registry_.count(State::kOffline);
  in.max_devices = config_.registry.max_devices;
  in.counters = &n_;
  in.queue_depth = next_.batch.readings.size() + inflight_readings_;
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
  in.active_alerts = rules_.active_count();
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
  return StatusReport(in);
}

void Gateway::Impl::PublishStatus(bool periodic) {
  std::string payload = StatusJson(periodic).dump();
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

void Gateway::Impl::HandleCommand(const mqtt::Message& m) {
  ++n_.commands;
  proto::Command cmd;
  proto::Reject reject;
  if (!proto::ParseCommand(m.payload, &cmd, &reject)) {
    Reject(m, std::string("command_") + proto::RejectReasonName(reject.reason), reject.detail);
    return;
  }
  Ack(m);
  spdlog::info("command {}{}", cmd.name, cmd.id.empty() ? "" : " (id " + cmd.id + ")");
  if (cmd.name == "get_status") {
    PublishStatus(/*periodic=*/false);
    Reply(cmd, true, "status published");
  } else if (cmd.name == "sync_cloud") {
    if (!uplink_) {
      Reply(cmd, true, "accepted; no cloud.api_endpoint is configured");
    } else {
      uplink_->SyncNow();
      const model::OutboxStats ob = writer_->LatestStats().outbox;
      Reply(cmd, true,
            "draining now: " + std::to_string(ob.readings + ob.alerts + ob.statuses) +
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

  rules_.Reload(config::EffectiveRules(next), next.offline_alerts, clock_.wall_ms(), &transitions_);
  registry_.set_options(RegistryOptions(next));
  parser_ = proto::ReadingParser(ParserLimits(next));
  for (auto& [id, c] : devices_) {
    c.bucket.SetRate(next.ingest.device_rate_per_s, next.ingest.device_burst,
                     next.ingest.device_backlog_max_s * 1000);
    c.status_bucket.SetRate(next.ingest.status_rate_per_min / 60.0, next.ingest.status_burst);
  }
  auto level = spdlog::level::from_str(next.log_level);
  if (level != spdlog::level::off || next.log_level == "off") spdlog::set_level(level);
  config_ = std::move(next);
  AddTransitions();
  ScheduleSubmit();

  std::string summary =
      "reloaded " + config_path_ + ": " + std::to_string(rules_.rules().size()) + " rules";
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

void Gateway::Impl::ScheduleTick() {
  // Silence sweep and duration rules. A quarter of the offline limit, between 100 ms and 1 s.
  std::int64_t period = std::clamp<std::int64_t>(config_.registry.offline_after_s * 250, 100, 1000);
  tick_timer_.expires_after(std::chrono::milliseconds(period));
  tick_timer_.async_wait([this](const asio::error_code& ec) {
    if (ec || shutting_down_) return;
    std::int64_t now = clock_.wall_ms();
    std::vector<registry::Change> changes;
    registry_.Sweep(now, clock_.steady_ms(), &changes);
    rules_.Tick(now, &transitions_);
    for (const auto& c : changes) ApplyStateChange(c);
    AddTransitions();
    ScheduleSubmit();
    CheckUplinkAlert(now);
    ScheduleTick();
  });
}

void Gateway::Impl::WaitSignal() {
  signals_.async_wait([this](const asio::error_code& ec, int signo) {
    if (ec) return;
    if (signo == SIGHUP) {
      (void)Reload();  // logs its outcome
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
  status_timer_.cancel();
  tick_timer_.cancel();
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
