// What happens to one message, top to bottom: OnMessage classifies its topic; a reading goes
// through HandleReading (parse, device context, dedupe, registry, rate limit, rules, the batch),
// a status through HandleStatus, a command through HandleCommand; anything bad through Reject.
// TakeBatch completes the batch for the writer.
#include "outpost/gateway/ingest/pipeline.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <iterator>

#include "outpost/gateway/ingest/outbox_items.h"
#include "outpost/proto/device_status.h"
#include "outpost/proto/topics.h"

namespace outpost::gateway::ingest {
namespace {

using registry::State;

TokenBucket ReadingBucket(const config::IngestConfig& c) {
  return TokenBucket(c.device_rate_per_s, c.device_burst, c.device_backlog_max_s * 1000);
}

TokenBucket StatusBucket(const config::IngestConfig& c) {
  return TokenBucket(c.status_rate_per_min / 60.0, c.status_burst);
}

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
                          d.seq_gaps,
                          d.native};
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
  d.native = r.native;
  return d;
}

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

Pipeline::Pipeline(Options options)
    : options_(std::move(options)),
      registry_(options_.registry),
      rules_(options_.rules, options_.offline_alerts),
      parser_(options_.parser) {}

void Pipeline::Restore(const std::vector<model::DeviceRow>& devices,
                       const std::vector<model::AlertRow>& active_alerts,
                       const std::vector<model::RecentIdentity>& recent, Instant now) {
  for (const auto& row : devices) registry_.Restore(FromRow(row), now.wall_ms, now.mono_ms);
  for (const auto& [id, restored] : registry_.devices()) {
    registry::Device* device = registry_.FindOrAdd(id, now.wall_ms, now.mono_ms);  // finds it
    DeviceContext& c = devices_.emplace(id, NewContext(device)).first->second;
    // Its silence includes the gateway's own downtime: the backlog the broker queued meanwhile
    // is credited (a wall clock stepped back credits nothing).
    c.bucket.HeardAt(now.mono_ms - std::max<std::int64_t>(0, now.wall_ms - restored.last_seen_ms));
  }
  for (const auto& a : active_alerts) {
    rules_.RestoreActive(a.rule, a.device_id, a.metric, a.value, a.raised_ms, now.wall_ms,
                         &transitions_);
  }
  AddTransitions();  // clears of alerts whose rule is gone; committed with the first batch
  for (const auto& r : recent) {
    auto it = devices_.find(r.device_id);
    if (it == devices_.end()) continue;  // not in the registry (e.g. removed): nothing to guard
    (void)it->second.dedupe.Check(
        Identity{r.has_seq, r.boot, r.seq, r.has_device_ts, r.device_ts_raw});
  }
}

std::optional<proto::Command> Pipeline::OnMessage(const Message& m, Instant now,
                                                  std::optional<DeviceReplyMessage>* reply) {
  ++counters_.messages;
  ++next_messages_;
  proto::TopicInfo t = proto::ClassifyTopic(m.topic);
  switch (t.kind) {
    case proto::TopicKind::kSensorData:
      HandleReading(m, t.device_id, now);
      break;
    case proto::TopicKind::kDeviceStatus:
      HandleStatus(m, t.device_id, now);
      break;
    case proto::TopicKind::kGatewayCommands:
      if (m.retain) {
        // A retained command would run again at every (re)subscription: a retained "restart"
        // would restart the gateway forever.
        Reject(m, "command_retained", "commands must not be published with the retain flag", now);
      } else if (t.gateway_id.empty() || t.gateway_id == options_.gateway_id) {
        return HandleCommand(m, now);
      } else {
        Ack(m);
      }
      break;
    case proto::TopicKind::kDeviceReplies: {
      proto::Reject reject;
      DeviceReplyMessage r{std::string(t.device_id), {}};
      if (!proto::ParseDeviceReply(m.payload, &r.reply, &reject)) {
        Reject(m, "reply_" + std::string(proto::RejectReasonName(reject.reason)), reject.detail,
               now);
        break;
      }
      ++counters_.replies;
      Ack(m);
      if (reply != nullptr) *reply = std::move(r);
      break;
    }
    default:
      Reject(m, "bad_topic", "topic not handled by the gateway", now);
      break;
  }
  return std::nullopt;
}

void Pipeline::OnOversizeMessage(const OversizeMessage& o, Instant now) {
  ++counters_.messages;
  ++next_messages_;
  const Message m{o.topic, o.head, o.qos, o.retain, o.ack};
  const std::string too_large = proto::RejectReasonName(proto::RejectReason::kTooLarge);
  std::string reason = too_large;
  switch (proto::ClassifyTopic(o.topic).kind) {
    case proto::TopicKind::kDeviceStatus:
      reason = "status_" + too_large;
      break;
    case proto::TopicKind::kGatewayCommands:
      reason = "command_" + too_large;
      break;
    case proto::TopicKind::kDeviceReplies:
      reason = "reply_" + too_large;
      break;
    default:
      break;
  }
  Reject(m, reason,
         "MQTT message of " + std::to_string(o.packet_bytes) + " bytes (payload " +
             std::to_string(o.payload_bytes) + ") exceeds the gateway's packet limit of " +
             std::to_string(options_.max_packet_bytes) + " bytes; skipped",
         now);
}

void Pipeline::HandleReading(const Message& m, std::string_view topic_device, Instant now) {
  ++counters_.readings_received;
  proto::Reject reject;
  if (!parser_.Parse(m.payload, topic_device, now.wall_ms, &reading_, &reject)) {
    Reject(m, proto::RejectReasonName(reject.reason), reject.detail, now);
    return;
  }
  const std::string& id = reading_.device_id;
  bool added = false;
  DeviceContext* ctx = Context(id, now, &added);
  if (!ctx) {
    Reject(m, "too_many_devices", "registry full (registry.max_devices)", now);
    return;
  }
  if (added) spdlog::info("new device {}", id);
  registry::Device& device = *ctx->device;
  if (!topic_device.empty()) device.native = true;  // persisted with the row marked below
  Verdict v = ctx->dedupe.Check(Identity{reading_.has_seq, reading_.boot, reading_.seq,
                                         reading_.has_device_ts, reading_.device_ts_raw});
  if (auto change = registry_.Seen(device, now.wall_ms, now.mono_ms)) ApplyStateChange(*change);
  MarkDirty(*ctx);
  if (v.duplicate) {  // redeliveries take no rate tokens
    ++counters_.duplicates;
    ++device.duplicates;
    AddTransitions();
    Ack(m);
    return;
  }
  // The rate is judged in receive time (a device's timestamps are its own word); a backlog
  // after a silence is let through by the credit the silence earned (token_bucket.h).
  if (!ctx->bucket.Take(now.mono_ms)) {
    Reject(m, "rate_limited", "device " + id + " over ingest.device_rate_per_s", now);
    return;
  }
  counters_.seq_gaps += v.new_gaps;
  counters_.beyond_window += v.beyond_window;
  counters_.seq_jumps += v.seq_jump;
  counters_.boot_conflicts += v.boot_conflict;
  device.seq_gaps += v.new_gaps;
  if (v.filled_gap && device.seq_gaps > 0) --device.seq_gaps;
  if (v.filled_gap && counters_.seq_gaps > 0) --counters_.seq_gaps;
  ++device.readings;
  if (reading_.has_seq && (v.new_boot || v.boot_conflict ||
                           (reading_.boot == device.boot && reading_.seq > device.last_seq))) {
    device.boot = reading_.boot;
    device.last_seq = reading_.seq;
  }
  if (!reading_.firmware.empty()) device.firmware = reading_.firmware;
  registry_.Valid(device, now.mono_ms);

  samples_.clear();
  for (const auto& metric : reading_.metrics) samples_.push_back({metric.name, metric.value});
  rules_.Evaluate(id, samples_, now.wall_ms, &transitions_);

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
  row.received_ms = now.wall_ms;
  row.metrics.reserve(reading_.metrics.size());
  for (const auto& metric : reading_.metrics) {
    row.metrics.push_back(model::MetricValue{metric.name, metric.value, metric.is_bool});
  }
  next_.received_ms.push_back(now.wall_ms);
  AddTransitions();
  Ack(m);
}

void Pipeline::HandleStatus(const Message& m, std::string_view topic_device, Instant now) {
  ++counters_.status_messages;
  proto::StatusMessage s;
  proto::Reject reject;
  if (!proto::ParseStatus(m.payload, topic_device, &s, &reject)) {
    Reject(m, std::string("status_") + proto::RejectReasonName(reject.reason), reject.detail, now);
    return;
  }
  bool added = false;
  DeviceContext* ctx = Context(s.device_id, now, &added);
  if (!ctx) {
    Reject(m, "too_many_devices", "registry full (registry.max_devices)", now);
    return;
  }
  if (!ctx->status_bucket.Take(now.mono_ms)) {
    // A forged stream of online/offline would raise and clear device_offline alerts.
    Reject(m, "status_rate_limited", "device " + s.device_id + " over ingest.status_rate_per_min",
           now);
    return;
  }
  registry::Device& device = *ctx->device;
  if (!topic_device.empty() && !device.native) {
    device.native = true;
    MarkDirty(*ctx);
  }
  State to = s.state == proto::DeviceState::kOnline     ? State::kOnline
             : s.state == proto::DeviceState::kSleeping ? State::kSleeping
                                                        : State::kOffline;
  if (m.retain && !added) {
    // The broker replays retained statuses at every (re)subscription: history, not a sign of
    // life. It may tell us a device went offline or to sleep, but never wakes one we think is
    // offline (that would raise and clear offline alerts at every reconnect).
    if (to != State::kOnline && device.state != State::kOffline) {
      if (auto change = registry_.SetState(device, to, now.wall_ms)) ApplyStateChange(*change);
    }
  } else {
    // The device's own word is a sign of life; a last will ("offline") is the broker's.
    if (to != State::kOffline) registry_.Touch(device, now.wall_ms, now.mono_ms);
    if (auto change = registry_.SetState(device, to, now.wall_ms)) {
      ApplyStateChange(*change);  // queues the status for the cloud
    } else if (native_cloud()) {
      // A live status that changes nothing here (e.g. a new device saying "online") is still
      // an event for the cloud's device history.
      next_.batch.outbox.push_back(StatusItem(device.id, registry::StateName(to), now.wall_ms));
    }
  }
  MarkDirty(*ctx);
  AddTransitions();
  Ack(m);
}

std::optional<proto::Command> Pipeline::HandleCommand(const Message& m, Instant now) {
  ++counters_.commands;
  proto::Command cmd;
  proto::Reject reject;
  if (!proto::ParseCommand(m.payload, &cmd, &reject)) {
    Reject(m, std::string("command_") + proto::RejectReasonName(reject.reason), reject.detail, now);
    return std::nullopt;
  }
  Ack(m);
  return cmd;
}

void Pipeline::Reject(const Message& m, std::string_view reason, std::string_view detail,
                      Instant now) {
  ++counters_.rejected;
  auto it = counters_.rejected_by_reason.find(reason);
  if (it == counters_.rejected_by_reason.end()) {
    it = counters_.rejected_by_reason.emplace(reason, 0).first;
  }
  ++it->second;
  // The quarantine is sampled so a flood of garbage cannot turn into a flood of writes.
  std::int64_t second = now.mono_ms / 1000;
  if (second != quarantine_second_) {
    quarantine_second_ = second;
    quarantine_in_second_ = 0;
  }
  bool keep =
      quarantine_in_second_ < kQuarantinePerSecond && options_.ingest.quarantine_max_rows > 0;
  if (keep) {
    ++quarantine_in_second_;
    ++counters_.quarantined;
  }
  if (spdlog::should_log(spdlog::level::debug)) {
    spdlog::debug("rejected {} on {}: {}", reason, m.topic, detail);
  }
  if (keep) {
    std::size_t cap = options_.ingest.quarantine_max_payload_bytes;
    next_.batch.quarantine.push_back(
        model::QuarantineRow{now.wall_ms, std::string(m.topic.substr(0, 256)), std::string(reason),
                             std::string(detail), std::string(m.payload.substr(0, cap))});
  }
  Ack(m);
}

// Every QoS 1 message is acknowledged after the batch that follows its handling commits, in
// arrival order, whatever its outcome (stored, duplicate, rejected, command).
void Pipeline::Ack(const Message& m) {
  if (m.qos == 1) next_.acks.push_back(m.ack);
}

Pipeline::DeviceContext Pipeline::NewContext(registry::Device* device) const {
  return DeviceContext{device,
                       DeviceDedupe(options_.ingest.dedupe_window, options_.ingest.max_seq_jump),
                       ReadingBucket(options_.ingest), StatusBucket(options_.ingest)};
}

Pipeline::DeviceContext* Pipeline::Context(std::string_view id, Instant now, bool* added) {
  *added = false;
  auto it = devices_.find(std::string(id));
  if (it != devices_.end()) return &it->second;
  registry::Device* device = registry_.FindOrAdd(id, now.wall_ms, now.mono_ms, added);
  if (!device) {
    // Full: make room by evicting the device idle longest (registry.evict_after_s), never one
    // whose row is waiting for the next batch.
    std::optional<std::string> gone =
        registry_.EvictIdle(now.mono_ms, [this](const registry::Device& d) {
          auto c = devices_.find(d.id);
          return c == devices_.end() || !c->second.dirty;
        });
    if (!gone) {
      ++counters_.devices_refused;
      return nullptr;
    }
    // Its dedupe and rate state go with it (the broker cannot hold unacknowledged readings of a
    // device silent that long); its row is deleted, its readings stay.
    devices_.erase(*gone);
    rules_.Forget(*gone);
    next_.batch.removed_devices.push_back(*gone);
    ++counters_.devices_evicted;
    spdlog::info("registry full: evicted device {} (no valid reading for {} s) for {}", *gone,
                 options_.registry.evict_after_ms / 1000, id);
    device = registry_.FindOrAdd(id, now.wall_ms, now.mono_ms, added);
    if (!device) return nullptr;
  }
  it = devices_.emplace(std::string(id), NewContext(device)).first;
  if (*added) {
    MarkDirty(it->second);
    // An evicted device that comes back: its offline alert (if still active) clears.
    rules_.DeviceOnline(it->second.device->id, now.wall_ms, &transitions_);
  }
  return &it->second;
}

void Pipeline::MarkDirty(DeviceContext& c) {
  if (!c.dirty) {
    c.dirty = true;
    dirty_.push_back(&c);
  }
}

void Pipeline::ApplyStateChange(const registry::Change& change) {
  spdlog::info("device {} {} -> {}", change.device_id, registry::StateName(change.from),
               registry::StateName(change.to));
  if (change.to == State::kOffline) {
    rules_.DeviceOffline(change.device_id, change.at_ms, &transitions_);
  } else if (change.from == State::kOffline) {
    rules_.DeviceOnline(change.device_id, change.at_ms, &transitions_);
  }
  auto it = devices_.find(change.device_id);
  if (it != devices_.end()) MarkDirty(it->second);
  if (native_cloud()) {
    next_.batch.outbox.push_back(
        StatusItem(change.device_id, registry::StateName(change.to), change.at_ms));
  }
}

// Moves the rule transitions collected so far into the batch; they are published after commit.
void Pipeline::AddTransitions() {
  for (auto& t : transitions_) {
    (t.raised ? counters_.alerts_raised : counters_.alerts_cleared)++;
    next_.batch.alerts.push_back(model::AlertRow{t.alert_id, t.rule, t.device_id, t.metric,
                                                 t.severity, t.message, t.value, t.threshold,
                                                 t.raised_ms, t.raised ? 0 : t.at_ms});
  }
  transitions_.clear();
}

void Pipeline::AddAlert(model::AlertRow alert) {
  CountAlert(alert);
  next_.batch.alerts.push_back(std::move(alert));
}

void Pipeline::CountAlert(const model::AlertRow& alert) {
  (alert.cleared_ms == 0 ? counters_.alerts_raised : counters_.alerts_cleared)++;
}

void Pipeline::Tick(Instant now) {
  std::vector<registry::Change> changes;
  registry_.Sweep(now.wall_ms, now.mono_ms, &changes);
  rules_.Tick(now.wall_ms, &transitions_);
  for (const auto& c : changes) ApplyStateChange(c);
  AddTransitions();
}

void Pipeline::Reload(Options options, Instant now) {
  rules_.Reload(options.rules, options.offline_alerts, now.wall_ms, &transitions_);
  registry_.set_options(options.registry);
  parser_ = proto::ReadingParser(options.parser);
  for (auto& [id, c] : devices_) {
    c.bucket.SetRate(options.ingest.device_rate_per_s, options.ingest.device_burst,
                     options.ingest.device_backlog_max_s * 1000);
    c.status_bucket.SetRate(options.ingest.status_rate_per_min / 60.0, options.ingest.status_burst);
  }
  options_ = std::move(options);
  AddTransitions();
}

// Queues what the filling batch carries for the cloud, in the same transaction (the outbox).
void Pipeline::QueueForCloud() {
  if (!options_.cloud) return;
  auto& out = next_.batch.outbox;
  out.reserve(out.size() + next_.batch.readings.size() + next_.batch.alerts.size());
  if (native_cloud()) {
    for (const auto& a : next_.batch.alerts) out.push_back(AlertItem(a, options_.gateway_id));
  }
  for (const auto& r : next_.batch.readings) out.push_back(ReadingItem(r));
}

Pending Pipeline::TakeBatch() {
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
  Pending out = std::move(next_);
  next_ = Pending{};
  next_messages_ = 0;
  return out;
}

}  // namespace outpost::gateway::ingest
