#include "reload.h"

#include <tuple>
#include <utility>

namespace outpost::gateway::app {
namespace {

// `fields(config)` ties the settings of one entry (std::tie), for a const or a mutable Config:
// the diff compares the tuples, the copy-back assigns them.
template <typename Fields>
RestartOnlySetting Setting(const char* key, const char* covers, Fields fields) {
  return RestartOnlySetting{
      key, covers,
      [fields](const config::Config& a, const config::Config& b) { return fields(a) != fields(b); },
      [fields](const config::Config& running, config::Config* next) {
        fields(*next) = fields(running);
      }};
}

std::vector<RestartOnlySetting> MakeTable() {
  std::vector<RestartOnlySetting> t;
  t.push_back(Setting("mqtt.host/port", "`mqtt.host`, `mqtt.port`",
                      [](auto& c) { return std::tie(c.mqtt.host, c.mqtt.port); }));
  t.push_back(Setting("mqtt.username/password", "`mqtt.username`, `mqtt.password`",
                      [](auto& c) { return std::tie(c.mqtt.username, c.mqtt.password); }));
  t.push_back(Setting("mqtt.client_id", "`mqtt.client_id`",
                      [](auto& c) { return std::tie(c.mqtt.client_id); }));
  t.push_back(Setting("mqtt.keepalive_s", "`mqtt.keepalive_s`",
                      [](auto& c) { return std::tie(c.mqtt.keepalive_s); }));
  t.push_back(Setting("mqtt.qos", "`mqtt.qos`", [](auto& c) { return std::tie(c.mqtt.qos); }));
  t.push_back(Setting("mqtt.max_packet_bytes", "`mqtt.max_packet_bytes`",
                      [](auto& c) { return std::tie(c.mqtt.max_packet_bytes); }));
  t.push_back(
      Setting("mqtt.reconnect_*", "`mqtt.reconnect_base_ms`, `mqtt.reconnect_cap_ms`",
              [](auto& c) { return std::tie(c.mqtt.reconnect_base_ms, c.mqtt.reconnect_cap_ms); }));
  t.push_back(Setting("mqtt.tls",
                      "`mqtt.tls.enabled`, `mqtt.tls.ca_file`, `mqtt.tls.cert_file`, "
                      "`mqtt.tls.key_file`, `mqtt.tls.verify_peer`, `mqtt.tls.crl_file`, "
                      "`mqtt.tls.registry_file`, `mqtt.tls.expiry_alert_days`",
                      [](auto& c) {
                        auto& tls = c.mqtt.tls;
                        return std::tie(tls.enabled, tls.ca_file, tls.cert_file, tls.key_file,
                                        tls.verify_peer, tls.crl_file, tls.registry_file,
                                        tls.expiry_alert_days);
                      }));
  t.push_back(
      Setting("storage.path", "`storage.path`", [](auto& c) { return std::tie(c.storage.path); }));
  t.push_back(Setting("storage.synchronous", "`storage.synchronous`",
                      [](auto& c) { return std::tie(c.storage.synchronous); }));
  t.push_back(Setting("storage.retention_days", "`storage.retention_days`",
                      [](auto& c) { return std::tie(c.storage.retention_days); }));
  t.push_back(Setting("storage.max_bytes", "`storage.max_bytes`",
                      [](auto& c) { return std::tie(c.storage.max_bytes); }));
  t.push_back(Setting("storage.cache_bytes", "`storage.cache_bytes`",
                      [](auto& c) { return std::tie(c.storage.cache_bytes); }));
  t.push_back(Setting(
      "ingest.quarantine_*", "`ingest.quarantine_max_rows`, `ingest.quarantine_max_payload_bytes`",
      [](auto& c) {
        return std::tie(c.ingest.quarantine_max_rows, c.ingest.quarantine_max_payload_bytes);
      }));
  t.push_back(Setting("ingest.dedupe_window", "`ingest.dedupe_window`",
                      [](auto& c) { return std::tie(c.ingest.dedupe_window); }));
  t.push_back(Setting("ingest.max_seq_jump", "`ingest.max_seq_jump`",
                      [](auto& c) { return std::tie(c.ingest.max_seq_jump); }));
  t.push_back(
      Setting("gateway.id", "`gateway.id`", [](auto& c) { return std::tie(c.gateway_id); }));
  t.push_back(Setting("http.*", "every `http.*` key (the server is bound at start)", [](auto& c) {
    auto& h = c.http;
    return std::tie(h.listen, h.host, h.port, h.max_connections, h.header_timeout_ms,
                    h.idle_timeout_ms, h.stream_replay_events, h.stream_buffer_bytes,
                    h.tls_cert_file, h.tls_key_file);
  }));
  t.push_back(Setting("auth.*", "every `auth.*` key (read at start)", [](auto& c) {
    auto& a = c.auth;
    return std::tie(a.path, a.session_idle_s, a.session_max_s, a.max_sessions, a.login_max_failures,
                    a.login_window_s, a.login_lockout_s, a.login_tracked_keys, a.max_verifications,
                    a.audit_max_rows);
  }));
  t.push_back(Setting("commands.*",
                      "`commands.queue_per_device`, `history_per_device`, `default_ttl_s`, "
                      "`max_ttl_s`, `max_waiters` (not `restart_min_interval_s`)",
                      [](auto& c) {
                        auto& m = c.commands;
                        return std::tie(m.queue_per_device, m.history_per_device, m.default_ttl_s,
                                        m.max_ttl_s, m.max_waiters);
                      }));
  t.push_back(Setting("cloud.*", "every `cloud.*` key", [](auto& c) {
    auto& cl = c.cloud;
    return std::tie(cl.api_endpoint, cl.api_key, cl.api_key_file, cl.protocol, cl.ca_file,
                    cl.sync_interval_s, cl.batch_delay_ms, cl.batch_max_readings,
                    cl.batch_max_bytes, cl.batch_reading_share, cl.quota_bytes, cl.when_full,
                    cl.expire_after_s, cl.connect_timeout_ms, cl.request_timeout_ms,
                    cl.retry_base_ms, cl.retry_cap_ms);
  }));
  return t;
}

}  // namespace

const std::vector<RestartOnlySetting>& RestartOnlySettings() {
  static const std::vector<RestartOnlySetting> kTable = MakeTable();
  return kTable;
}

ReloadPlan PlanReload(const config::Config& running, config::Config next) {
  ReloadPlan plan;
  for (const RestartOnlySetting& s : RestartOnlySettings()) {
    if (s.differs(running, next)) plan.need_restart.emplace_back(s.key);
    s.keep(running, &next);
  }
  plan.config = std::move(next);
  return plan;
}

std::string RestartOnlyMarkdown() {
  std::string out(kRestartOnlyDocBegin);
  out += "\n| reply names | settings |\n|---|---|\n";
  for (const RestartOnlySetting& s : RestartOnlySettings()) {
    out += "| `";
    out += s.key;
    out += "` | ";
    out += s.covers;
    out += " |\n";
  }
  out += kRestartOnlyDocEnd;
  out += '\n';
  return out;
}

}  // namespace outpost::gateway::app
