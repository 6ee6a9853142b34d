#include "status_report.h"

#include "outpost/base/check.h"
#include "outpost/gateway/config/config.h"

namespace outpost::gateway::app {
namespace {

using nlohmann::json;

double Seconds(std::int64_t ms) { return static_cast<double>(ms) / 1000.0; }
double Round1(double v) { return std::round(v * 10.0) / 10.0; }

json CloudJson(const StatusInputs& in) {
  const model::OutboxStats& outbox = in.outbox;
  const uplink::UplinkStatus& u = in.uplink;
  return {
      {"enabled", in.cloud_enabled},
      {"protocol", proto::batch::ProtocolName(in.protocol)},
      {"endpoint", in.endpoint},
      {"backlog",
       {{"readings", outbox.readings},
        {"alerts", outbox.alerts},
        {"statuses", outbox.statuses},
        {"bytes", outbox.bytes},
        {"oldest_age_s", outbox.oldest_created_ms ? Seconds(std::max<std::int64_t>(
                                                        0, in.now_ms - outbox.oldest_created_ms))
                                                  : 0.0}}},
      {"quota_bytes", in.quota_bytes},
      {"when_full", config::WhenFullName(in.when_full)},
      {"dropped",
       {{"quota_oldest", outbox.dropped_quota_oldest},
        {"quota_rejected", outbox.dropped_quota_rejected},
        {"expired", outbox.expired},
        {"dead_letter", outbox.dead_letter},
        {"dead_letter_reasons", outbox.dead_letter_reasons},
        {"left_out_seed", u.left_out}}},
      {"rejected_items_this_run", u.rejected_items},
      {"splits_this_run", u.splits},
      {"alert", u.alert.empty() ? json(nullptr)
                                : json{{"since_ms", u.alert_since_ms}, {"message", u.alert}}},
      {"reserved_metrics_skipped", u.reserved_metrics},
      {"sent",
       {{"batches", outbox.sent_batches},
        {"readings", outbox.sent_items},
        {"batches_this_run", u.sent_batches},
        {"items_this_run", u.sent_items},
        {"replayed", u.replayed}}},
      {"retries", u.retries},
      {"attempt", u.attempt},
      {"next_attempt_ms", u.next_attempt_ms ? json(u.next_attempt_ms) : json(nullptr)},
      {"last_success_ms", u.last_success_ms ? json(u.last_success_ms) : json(nullptr)},
      {"last_error", u.last_error.empty()
                         ? json(nullptr)
                         : json{{"ts_ms", u.last_error_ms}, {"message", u.last_error}}},
      {"in_flight_key", outbox.in_flight_key.empty() ? json(nullptr) : json(outbox.in_flight_key)},
  };
}

}  // namespace

void RateMeter::Sample(std::int64_t mono_ms, std::uint64_t total) {
  if (size_ > 0) {
    const Point& newest = ring_[(next_ + ring_.size() - 1) % ring_.size()];
    if (newest.ms / 1000 == mono_ms / 1000) return;  // one sample per second
  }
  ring_[next_] = Point{mono_ms, total};
  next_ = (next_ + 1) % ring_.size();
  size_ = std::min(size_ + 1, ring_.size());
}

std::optional<double> RateMeter::PerSecond(std::int64_t mono_ms, std::uint64_t total) const {
  for (std::size_t i = 0; i < size_; ++i) {  // oldest first
    const Point& p = ring_[(next_ + ring_.size() - size_ + i) % ring_.size()];
    const std::int64_t age_ms = mono_ms - p.ms;
    if (age_ms > kWindowMs) continue;
    if (age_ms < 1000 || total < p.total) return std::nullopt;
    return static_cast<double>(total - p.total) * 1000.0 / static_cast<double>(age_ms);
  }
  return std::nullopt;
}

LatencySummary Summarize(const LatencyHistogram& histogram) {
  return LatencySummary{histogram.Percentile(0.5), histogram.Percentile(0.99), histogram.count()};
}

json StatusReport(const StatusInputs& in) {
  OUTPOST_CHECK(in.counters != nullptr);
  const GatewayCounters& n = *in.counters;
  json rejected = json::object();
  for (const auto& [reason, count] : n.rejected_by_reason) rejected[reason] = count;
  return {
      {"gateway_id", in.gateway_id},
      {"timestamp", Seconds(in.now_ms)},
      {"uptime", Seconds(in.uptime_ms)},
      {"devices_count", in.devices},
      {"local_db_records", in.store.readings},
      {"last_cloud_sync",
       in.uplink.last_success_ms ? json(Seconds(in.uplink.last_success_ms)) : json(nullptr)},
      {"memory_usage", in.memory_usage_percent},
      {"cpu_usage", in.cpu_usage_percent},
      {"version", in.version},
      {"trigger", in.periodic ? "interval" : "command"},
      {"rss_bytes", in.rss_bytes},
      {"devices",
       {{"online", in.online},
        {"sleeping", in.sleeping},
        {"offline", in.offline},
        {"max", in.max_devices},
        {"evicted", n.devices_evicted},
        {"refused", n.devices_refused}}},
      {"ingest",
       {{"messages", n.messages},
        {"received", n.readings_received},
        {"stored", n.stored},
        {"rate_per_s", in.ingest_rate_per_s ? json(Round1(*in.ingest_rate_per_s)) : json(nullptr)},
        {"duplicates", n.duplicates},
        {"seq_gaps", n.seq_gaps},
        {"beyond_dedupe_window", n.beyond_window},
        {"seq_jumps", n.seq_jumps},
        {"boot_conflicts", n.boot_conflicts},
        {"status_messages", n.status_messages},
        {"commands", n.commands},
        {"restarts_refused", n.restarts_refused},
        {"rejected", n.rejected},
        {"rejected_by_reason", rejected},
        {"quarantined", n.quarantined},
        {"queue_depth", in.queue_depth},
        {"queue_max", in.queue_max},
        {"paused", in.paused},
        {"pauses", n.pauses}}},
      {"store",
       {{"commits", n.commits},
        {"last_commit", n.last_commit_ms ? json(Seconds(n.last_commit_ms)) : json(nullptr)},
        {"latency_window_s", Seconds(in.now_ms - in.latency_since_ms)},
        {"commit_latency_ms_p50", in.receive_to_commit.p50_ms},
        {"commit_latency_ms_p99", in.receive_to_commit.p99_ms},
        {"commit_latency_samples", in.receive_to_commit.samples},
        {"device_to_commit_ms_p50", in.device_to_commit.p50_ms},
        {"device_to_commit_ms_p99", in.device_to_commit.p99_ms},
        {"device_to_commit_samples", in.device_to_commit.samples},
        {"state", in.full_since_ms ? "full" : "ok"},
        {"full_since", in.full_since_ms ? json(Seconds(*in.full_since_ms)) : json(nullptr)},
        {"full_events", in.full_events},
        {"full_attempts", in.full_attempts},
        {"max_bytes", in.max_bytes},
        {"max_bytes_auto", in.max_bytes_auto},
        {"db_bytes", in.store.db_bytes},
        {"disk_free_bytes", in.disk_free_bytes},
        {"deleted_by_age", in.store.deleted_by_age},
        {"deleted_by_size", in.store.deleted_by_size},
        {"quarantine_rows", in.store.quarantine},
        {"errors", n.store_errors},
        {"last_error", n.last_store_error}}},
      {"pki", in.pki},
      {"alerts",
       {{"active", in.active_alerts},
        {"raised", n.alerts_raised},
        {"cleared", n.alerts_cleared},
        {"publish_errors", n.publish_errors}}},
      {"mqtt",
       {{"connected", in.mqtt_connected},
        {"connects", in.mqtt_connects},
        {"connect_failures", in.mqtt_connect_failures},
        {"stale_acks", in.mqtt_stale_acks},
        {"oversize", in.mqtt_oversize},
        {"inflight", in.mqtt_inflight}}},
      {"cloud", CloudJson(in)},
      {"stream",
       {{"clients", in.stream.clients},
        {"events", in.stream.events},
        {"subscribed", in.stream.subscribed},
        {"replayed", in.stream.replayed},
        {"resets", in.stream.resets},
        {"dropped_slow", in.stream.dropped_slow},
        {"ring", in.stream.ring},
        {"ring_max", in.stream.ring_max}}},
  };
}

}  // namespace outpost::gateway::app
