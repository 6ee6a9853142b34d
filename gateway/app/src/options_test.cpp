// The config -> options mapping (options.h), from parsed YAML as the gateway reads it.
#include "options.h"

#include <gtest/gtest.h>

#include <string>

#include "outpost/testing/status_matchers.h"

namespace outpost::gateway::app {
namespace {

constexpr const char* kYaml = R"(
gateway:
  id: gw7
mqtt:
  host: broker.local
  port: 8883
  username: u
  password: p
  keepalive_s: 15
  qos: 0
  max_packet_bytes: 65536
  reconnect_base_ms: 100
  reconnect_cap_ms: 2000
  tls:
    enabled: true
    ca_file: /ca.pem
    verify_peer: false
cloud:
  api_endpoint: https://cloud.example.com/base
  protocol: native
  ca_file: /cloud-ca.pem
  batch_max_readings: 100
  batch_max_bytes: 1MiB
  batch_reading_share: 0.25
  batch_delay_ms: 200
  quota_bytes: 2MiB
  when_full: reject_new
  expire_after_s: 60
  connect_timeout_ms: 1500
  request_timeout_ms: 2500
  retry_base_ms: 20
  retry_cap_ms: 400
storage:
  path: /data/gw.db
  synchronous: normal
  retention_days: 2
  cache_bytes: 1MiB
ingest:
  max_payload_bytes: 2048
  max_depth: 3
  max_metrics: 10
  quarantine_max_rows: 50
  quarantine_max_payload_bytes: 100
registry:
  offline_after_s: 60
  sleeping_grace_s: 600
  max_devices: 5
  evict_after_s: 7
)";

config::Config Load() {
  auto c = config::Parse(kYaml, "gw.yaml");
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->warnings.empty()) << c->warnings.front();
  return *c;
}

TEST(Options, StoreOptionsFromStorageIngestAndCloud) {
  const config::Config c = Load();
  const store::Options so = StoreOptions(c, 12'345'678);
  EXPECT_EQ(so.path, "/data/gw.db");
  EXPECT_EQ(so.synchronous, store::Synchronous::kNormal);
  EXPECT_EQ(so.retention_ms, 2 * 86'400'000LL);
  EXPECT_EQ(so.max_bytes, 12'345'678);  // the effective value, not the config's "auto"
  EXPECT_EQ(so.cache_bytes, 1 << 20);
  EXPECT_EQ(so.quarantine_max_rows, 50u);
  EXPECT_EQ(so.quarantine_max_payload_bytes, 100u);
  EXPECT_TRUE(so.outbox.enabled);
  EXPECT_EQ(so.outbox.quota_bytes, 2 << 20);
  EXPECT_EQ(so.outbox.when_full, model::WhenFull::kRejectNew);
  EXPECT_EQ(so.outbox.expire_after_ms, 60'000);

  OUTPOST_ASSERT_OK_AND_ASSIGN(config::Config defaults, config::Parse("", "(defaults)"));
  const store::Options d = StoreOptions(defaults, 0);
  EXPECT_EQ(d.synchronous, store::Synchronous::kFull);
  EXPECT_FALSE(d.outbox.enabled);  // no cloud.api_endpoint: nothing is queued
  EXPECT_EQ(d.outbox.when_full, model::WhenFull::kDropOldest);
  EXPECT_EQ(d.outbox.expire_after_ms, 0);
}

TEST(Options, SenderAndUplinkOptionsFromCloud) {
  const config::Config c = Load();
  const uplink::HttpSenderOptions ho = SenderOptions(c.cloud, "tok");
  EXPECT_EQ(ho.endpoint, "https://cloud.example.com/base");
  EXPECT_EQ(ho.token, "tok");
  EXPECT_EQ(ho.ca_file, "/cloud-ca.pem");
  EXPECT_EQ(ho.connect_timeout_ms, 1500);
  EXPECT_EQ(ho.request_timeout_ms, 2500);

  const uplink::Options uo = UplinkOptions(c, "boot12", 42);
  EXPECT_EQ(uo.protocol, uplink::Protocol::kNative);
  EXPECT_EQ(uo.gateway_id, "gw7");
  EXPECT_EQ(uo.boot_id, "boot12");
  EXPECT_EQ(uo.jitter_seed, 42u);
  EXPECT_EQ(uo.batch_max_items, 100u);
  // The batch in flight counts against the quota: at most a quarter of it.
  EXPECT_EQ(uo.batch_max_bytes, (2 << 20) / 4);
  EXPECT_EQ(uo.linger_ms, 200);
  EXPECT_EQ(uo.reading_share, 0.25);
  EXPECT_EQ(uo.retry.backoff.base_ms, 20);
  EXPECT_EQ(uo.retry.backoff.cap_ms, 400);

  config::Config big = c;
  big.cloud.quota_bytes = 64 << 20;
  EXPECT_EQ(UplinkOptions(big, "b", 1).batch_max_bytes, 1 << 20);  // batch_max_bytes rules
}

TEST(Options, MqttOptionsSubscribeTheSeedAndNativeTopics) {
  const config::Config c = Load();
  const mqtt::ClientOptions o = MqttOptions(c);
  EXPECT_EQ(o.host, "broker.local");
  EXPECT_EQ(o.port, 8883);
  EXPECT_TRUE(o.tls.enabled);
  EXPECT_EQ(o.tls.ca_file, "/ca.pem");
  EXPECT_FALSE(o.tls.verify_peer);
  EXPECT_EQ(o.session.client_id, "outpost-gateway-gw7");
  EXPECT_FALSE(o.session.clean_session);  // the broker queues QoS 1 readings while we are away
  EXPECT_EQ(o.session.keepalive_s, 15);
  EXPECT_EQ(o.session.username, "u");
  EXPECT_EQ(o.session.password, "p");
  ASSERT_TRUE(o.session.will.has_value());
  EXPECT_EQ(o.session.will->topic, "gateway/gw7/state");
  EXPECT_EQ(o.session.will->payload, "offline");
  EXPECT_EQ(o.session.will->qos, 1);
  EXPECT_TRUE(o.session.will->retain);
  EXPECT_EQ(o.session.max_packet_size, 65'536u);
  EXPECT_EQ(o.session.oversize_head_bytes, 100u);  // what the quarantine keeps of a payload
  EXPECT_EQ(o.backoff.base_ms, 100);
  EXPECT_EQ(o.backoff.cap_ms, 2000);
  std::vector<std::string> filters;
  for (const auto& s : o.subscriptions) {
    filters.push_back(s.filter);
    EXPECT_EQ(s.qos, 0) << s.filter;
  }
  EXPECT_EQ(filters, (std::vector<std::string>{"sensors/data", "sensors/+/data", "devices/status",
                                               "devices/+/status", "devices/+/replies",
                                               "gateway/commands", "gateway/gw7/commands"}));

  OUTPOST_ASSERT_OK_AND_ASSIGN(config::Config defaults, config::Parse("", "(defaults)"));
  const mqtt::ClientOptions d = MqttOptions(defaults);
  EXPECT_FALSE(d.session.username.has_value());  // empty: not sent
  EXPECT_FALSE(d.session.password.has_value());
  EXPECT_EQ(d.session.oversize_head_bytes, 512u);
}

TEST(Options, RegistryAndParserOptions) {
  const config::Config c = Load();
  const registry::Options r = RegistryOptions(c);
  EXPECT_EQ(r.offline_after_ms, 60'000);
  EXPECT_EQ(r.sleeping_grace_ms, 600'000);
  EXPECT_EQ(r.max_devices, 5u);
  EXPECT_EQ(r.evict_after_ms, 7'000);
  const proto::Limits l = ParserLimits(c);
  EXPECT_EQ(l.max_payload_bytes, 2048u);
  EXPECT_EQ(l.max_depth, 3u);
  EXPECT_EQ(l.max_metrics, 10u);
}

TEST(Options, PipelineOptionsFromIngestRegistryRulesAndCloud) {
  const config::Config c = Load();
  const ingest::Options o = PipelineOptions(c);
  EXPECT_EQ(o.gateway_id, "gw7");
  EXPECT_EQ(o.parser.max_payload_bytes, 2048u);
  EXPECT_EQ(o.parser.max_depth, 3u);
  EXPECT_EQ(o.ingest.quarantine_max_rows, 50u);
  EXPECT_EQ(o.ingest.quarantine_max_payload_bytes, 100u);
  EXPECT_EQ(o.registry.max_devices, 5u);
  EXPECT_EQ(o.registry.evict_after_ms, 7'000);
  EXPECT_EQ(o.rules.size(), config::EffectiveRules(c).size());
  EXPECT_EQ(o.offline_alerts, c.offline_alerts);
  EXPECT_EQ(o.cloud, proto::batch::Protocol::kNative);
  EXPECT_EQ(o.max_packet_bytes, 65'536u);

  config::Config no_cloud = c;
  no_cloud.cloud.api_endpoint.clear();
  EXPECT_FALSE(PipelineOptions(no_cloud).cloud.has_value()) << "nothing queued for the cloud";
}

// The config's http.* defaults are the server's own (config does not link libs/http).
TEST(Options, HttpDefaultsAreTheServersAndKeysMap) {
  auto d = config::Parse("", "defaults");
  OUTPOST_ASSERT_OK(d);
  const http::ServerOptions server_defaults;
  const http::ServerOptions o = HttpServerOptions(*d);
  EXPECT_EQ(o.host, "0.0.0.0");  // behind a login (auth_api.h)
  EXPECT_EQ(o.port, 8080);
  EXPECT_TRUE(o.tls_cert_file.empty());
  EXPECT_EQ(o.max_connections, server_defaults.max_connections);
  EXPECT_EQ(o.header_timeout_ms, server_defaults.header_timeout_ms);
  EXPECT_EQ(o.idle_timeout_ms, server_defaults.idle_timeout_ms);
  EXPECT_EQ(o.body_timeout_ms, server_defaults.body_timeout_ms);
  EXPECT_EQ(o.max_stream_buffer_bytes, 1024u * 1024);  // a commit's events go out at once

  auto c = config::Parse(
      "http:\n  listen: 127.0.0.1:0\n  max_connections: 7\n  header_timeout_ms: 900\n"
      "  idle_timeout_ms: 1100\n  stream_buffer_bytes: 65536\n",
      "gw.yaml");
  OUTPOST_ASSERT_OK(c);
  const http::ServerOptions h = HttpServerOptions(*c);
  EXPECT_EQ(h.host, "127.0.0.1");
  EXPECT_EQ(h.port, 0);
  EXPECT_EQ(h.max_connections, 7u);
  EXPECT_EQ(h.header_timeout_ms, 900);
  EXPECT_EQ(h.idle_timeout_ms, 1100);
  EXPECT_EQ(h.max_stream_buffer_bytes, 65536u);
}

}  // namespace
}  // namespace outpost::gateway::app
