#include "options.h"

#include <algorithm>
#include <utility>

#include "outpost/proto/topics.h"

namespace outpost::gateway::app {

store::Options StoreOptions(const config::Config& config, std::int64_t max_bytes) {
  store::Options so;
  so.path = config.storage.path;
  so.synchronous = config.storage.synchronous;
  so.retention_ms = config.storage.retention_days * 86'400'000LL;
  so.max_bytes = max_bytes;
  so.cache_bytes = config.storage.cache_bytes;
  so.quarantine_max_rows = config.ingest.quarantine_max_rows;
  so.quarantine_max_payload_bytes = config.ingest.quarantine_max_payload_bytes;
  so.outbox.enabled = config.cloud.enabled();
  so.outbox.quota_bytes = config.cloud.quota_bytes;
  so.outbox.when_full = config.cloud.when_full;
  so.outbox.expire_after_ms = config.cloud.expire_after_s * 1000;
  return so;
}

uplink::HttpSenderOptions SenderOptions(const config::CloudConfig& cloud, std::string token) {
  uplink::HttpSenderOptions ho;
  ho.endpoint = cloud.api_endpoint;
  ho.token = std::move(token);
  ho.ca_file = cloud.ca_file;
  ho.connect_timeout_ms = cloud.connect_timeout_ms;
  ho.request_timeout_ms = cloud.request_timeout_ms;
  return ho;
}

uplink::Options UplinkOptions(const config::Config& config, std::string boot_id,
                              std::uint64_t jitter_seed) {
  const config::CloudConfig& cloud = config.cloud;
  uplink::Options uo;
  uo.protocol = cloud.protocol;
  uo.gateway_id = config.gateway_id;
  uo.boot_id = std::move(boot_id);
  uo.batch_max_items = cloud.batch_max_readings;
  // The batch in flight counts against the quota and is never dropped: keep it to a quarter.
  uo.batch_max_bytes = std::min(cloud.batch_max_bytes, cloud.quota_bytes / 4);
  uo.linger_ms = cloud.linger_ms();
  uo.reading_share = cloud.batch_reading_share;
  uo.retry.backoff = BackoffPolicy{cloud.retry_base_ms, cloud.retry_cap_ms};
  uo.jitter_seed = jitter_seed;
  return uo;
}

mqtt::ClientOptions MqttOptions(const config::Config& config) {
  const config::MqttConfig& mc = config.mqtt;
  mqtt::ClientOptions o;
  o.host = mc.host;
  o.port = mc.port;
  o.tls.enabled = mc.tls.enabled;
  o.tls.ca_file = mc.tls.ca_file;
  o.tls.cert_file = mc.tls.cert_file;
  o.tls.key_file = mc.tls.key_file;
  o.tls.verify_peer = mc.tls.verify_peer;
  o.session.client_id = mc.client_id;
  o.session.clean_session = false;  // the broker queues QoS 1 readings while we are away
  o.session.keepalive_s = mc.keepalive_s;
  if (!mc.username.empty()) o.session.username = mc.username;
  if (!mc.password.empty()) o.session.password = mc.password;
  o.session.will = mqtt::Will{proto::GatewayTopic(config.gateway_id, "state"), "offline", 1, true};
  o.session.max_packet_size = mc.max_packet_bytes;
  // Of a message too large to take, keep what the quarantine keeps of a payload.
  o.session.oversize_head_bytes =
      std::min(config.ingest.quarantine_max_payload_bytes, mqtt::kMaxOversizeHeadBytes);
  o.backoff = BackoffPolicy{mc.reconnect_base_ms, mc.reconnect_cap_ms};
  const std::uint8_t q = mc.qos;
  for (const char* filter : {"sensors/data", "sensors/+/data", "devices/status", "devices/+/status",
                             "devices/+/replies", "gateway/commands"}) {
    o.subscriptions.push_back(mqtt::Subscription{filter, q});
  }
  o.subscriptions.push_back(
      mqtt::Subscription{proto::GatewayTopic(config.gateway_id, "commands"), q});
  return o;
}

registry::Options RegistryOptions(const config::Config& config) {
  return registry::Options{config.registry.offline_after_s * 1000,
                           config.registry.sleeping_grace_s * 1000, config.registry.max_devices,
                           config.registry.evict_after_s * 1000};
}

proto::Limits ParserLimits(const config::Config& config) {
  proto::Limits l;
  l.max_payload_bytes = config.ingest.max_payload_bytes;
  l.max_depth = config.ingest.max_depth;
  l.max_metrics = config.ingest.max_metrics;
  return l;
}

ingest::Options PipelineOptions(const config::Config& config) {
  ingest::Options o;
  o.gateway_id = config.gateway_id;
  o.parser = ParserLimits(config);
  o.ingest = config.ingest;
  o.registry = RegistryOptions(config);
  o.rules = config::EffectiveRules(config);
  o.offline_alerts = config.offline_alerts;
  if (config.cloud.enabled()) o.cloud = config.cloud.protocol;
  o.max_packet_bytes = config.mqtt.max_packet_bytes;
  return o;
}

http::ServerOptions HttpServerOptions(const config::Config& config) {
  http::ServerOptions o;
  o.host = config.http.host;
  o.port = config.http.port;
  o.max_connections = config.http.max_connections;
  o.header_timeout_ms = config.http.header_timeout_ms;
  o.idle_timeout_ms = config.http.idle_timeout_ms;
  o.max_stream_buffer_bytes = config.http.stream_buffer_bytes;
  o.tls_cert_file = config.http.tls_cert_file;
  o.tls_key_file = config.http.tls_key_file;
  return o;
}

}  // namespace outpost::gateway::app
