// Reload (reload.h): every restart-only setting is reported and keeps its running value, every
// other setting applies; docs/configuration.md shows the same table.
#include "reload.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "outpost/testing/status_matchers.h"

namespace outpost::gateway::app {
namespace {

// The source tree, from ctest's environment (cmake/outpost.cmake).
std::string SourceDir() {
  const char* dir = std::getenv("OUTPOST_SOURCE_DIR");
  return dir ? dir : "(OUTPOST_SOURCE_DIR unset: run through ctest)";
}

using config::Config;
using Mutation = std::pair<std::string, std::function<void(Config&)>>;

Config Running() {
  auto c = config::Parse("cloud:\n  api_endpoint: http://127.0.0.1:9\n", "gw.yaml");
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return *c;
}

// One mutation per field of every restart-only setting, with the key the reply names.
std::vector<Mutation> RestartOnlyMutations() {
  return {
      {"mqtt.host/port", [](Config& c) { c.mqtt.host = "other"; }},
      {"mqtt.host/port", [](Config& c) { c.mqtt.port = 1884; }},
      {"mqtt.username/password", [](Config& c) { c.mqtt.username = "u2"; }},
      {"mqtt.username/password", [](Config& c) { c.mqtt.password = "p2"; }},
      {"mqtt.client_id", [](Config& c) { c.mqtt.client_id = "c2"; }},
      {"mqtt.keepalive_s", [](Config& c) { c.mqtt.keepalive_s = 5; }},
      {"mqtt.qos", [](Config& c) { c.mqtt.qos = 0; }},
      {"mqtt.max_packet_bytes", [](Config& c) { c.mqtt.max_packet_bytes = 8192; }},
      {"mqtt.reconnect_*", [](Config& c) { c.mqtt.reconnect_base_ms = 1; }},
      {"mqtt.reconnect_*", [](Config& c) { c.mqtt.reconnect_cap_ms = 2; }},
      {"mqtt.tls", [](Config& c) { c.mqtt.tls.enabled = true; }},
      {"mqtt.tls", [](Config& c) { c.mqtt.tls.ca_file = "/ca"; }},
      {"mqtt.tls", [](Config& c) { c.mqtt.tls.cert_file = "/cert"; }},
      {"mqtt.tls", [](Config& c) { c.mqtt.tls.key_file = "/key"; }},
      {"mqtt.tls", [](Config& c) { c.mqtt.tls.verify_peer = false; }},
      {"storage.path", [](Config& c) { c.storage.path = "/x.db"; }},
      {"storage.synchronous", [](Config& c) { c.storage.synchronous = model::Synchronous::kOff; }},
      {"storage.retention_days", [](Config& c) { c.storage.retention_days = 1; }},
      {"storage.max_bytes", [](Config& c) { c.storage.max_bytes = 5'000'000; }},
      {"storage.cache_bytes", [](Config& c) { c.storage.cache_bytes = 1 << 20; }},
      {"ingest.quarantine_*", [](Config& c) { c.ingest.quarantine_max_rows = 3; }},
      {"ingest.quarantine_*", [](Config& c) { c.ingest.quarantine_max_payload_bytes = 3; }},
      {"ingest.dedupe_window", [](Config& c) { c.ingest.dedupe_window = 3; }},
      {"ingest.max_seq_jump", [](Config& c) { c.ingest.max_seq_jump = 3; }},
      {"gateway.id", [](Config& c) { c.gateway_id = "gw2"; }},
      {"http.*", [](Config& c) { c.http.listen = "127.0.0.1:9"; }},
      {"http.*", [](Config& c) { c.http.port = 9; }},
      {"http.*", [](Config& c) { c.http.max_connections = 3; }},
      {"http.*", [](Config& c) { c.http.header_timeout_ms = 3; }},
      {"http.*", [](Config& c) { c.http.idle_timeout_ms = 3; }},
      {"http.*", [](Config& c) { c.http.tls_cert_file = "/cert.pem"; }},
      {"http.*", [](Config& c) { c.http.tls_key_file = "/key.pem"; }},
      {"auth.*", [](Config& c) { c.auth.path = "/other.sqlite"; }},
      {"auth.*", [](Config& c) { c.auth.session_idle_s = 61; }},
      {"auth.*", [](Config& c) { c.auth.session_max_s = 62; }},
      {"auth.*", [](Config& c) { c.auth.max_sessions = 3; }},
      {"auth.*", [](Config& c) { c.auth.login_max_failures = 3; }},
      {"auth.*", [](Config& c) { c.auth.login_window_s = 3; }},
      {"auth.*", [](Config& c) { c.auth.login_lockout_s = 3; }},
      {"auth.*", [](Config& c) { c.auth.login_tracked_keys = 3; }},
      {"auth.*", [](Config& c) { c.auth.max_verifications = 3; }},
      {"auth.*", [](Config& c) { c.auth.audit_max_rows = 3; }},
      {"cloud.*", [](Config& c) { c.cloud.api_endpoint = "http://127.0.0.1:10"; }},
      {"cloud.*", [](Config& c) { c.cloud.api_key = "k"; }},
      {"cloud.*", [](Config& c) { c.cloud.api_key_file = "/k"; }},
      {"cloud.*", [](Config& c) { c.cloud.protocol = proto::batch::Protocol::kNative; }},
      {"cloud.*", [](Config& c) { c.cloud.ca_file = "/ca"; }},
      {"cloud.*", [](Config& c) { c.cloud.sync_interval_s = 3; }},
      {"cloud.*", [](Config& c) { c.cloud.batch_delay_ms = 3; }},
      {"cloud.*", [](Config& c) { c.cloud.batch_max_readings = 3; }},
      {"cloud.*", [](Config& c) { c.cloud.batch_max_bytes = 4096; }},
      {"cloud.*", [](Config& c) { c.cloud.batch_reading_share = 0.75; }},
      {"cloud.*", [](Config& c) { c.cloud.quota_bytes = 4096; }},
      {"cloud.*", [](Config& c) { c.cloud.when_full = model::WhenFull::kRejectNew; }},
      {"cloud.*", [](Config& c) { c.cloud.expire_after_s = 3; }},
      {"cloud.*", [](Config& c) { c.cloud.connect_timeout_ms = 3; }},
      {"cloud.*", [](Config& c) { c.cloud.request_timeout_ms = 3; }},
      {"cloud.*", [](Config& c) { c.cloud.retry_base_ms = 3; }},
      {"cloud.*", [](Config& c) { c.cloud.retry_cap_ms = 3; }},
      {"commands.*", [](Config& c) { c.commands.queue_per_device = 3; }},
      {"commands.*", [](Config& c) { c.commands.history_per_device = 3; }},
      {"commands.*", [](Config& c) { c.commands.default_ttl_s = 3; }},
      {"commands.*", [](Config& c) { c.commands.max_ttl_s = 3; }},
      {"commands.*", [](Config& c) { c.commands.max_waiters = 3; }},
  };
}

TEST(Reload, EachRestartOnlySettingIsReportedAndKeepsItsRunningValue) {
  const Config running = Running();
  std::set<std::string> reported;
  for (const auto& [key, mutate] : RestartOnlyMutations()) {
    Config next = running;
    mutate(next);
    ReloadPlan plan = PlanReload(running, next);
    EXPECT_EQ(plan.need_restart, std::vector<std::string>{key});
    for (const RestartOnlySetting& s : RestartOnlySettings()) {
      EXPECT_FALSE(s.differs(plan.config, running)) << key << ": " << s.key << " was applied";
    }
    reported.insert(key);
  }
  // Every entry of the table is exercised above.
  std::set<std::string> table;
  for (const RestartOnlySetting& s : RestartOnlySettings()) table.insert(s.key);
  EXPECT_EQ(reported, table);
}

TEST(Reload, SeveralChangesAreReportedInTableOrder) {
  const Config running = Running();
  Config next = running;
  next.cloud.quota_bytes = 4096;
  next.mqtt.port = 1999;
  next.storage.synchronous = model::Synchronous::kNormal;
  EXPECT_EQ(PlanReload(running, next).need_restart,
            (std::vector<std::string>{"mqtt.host/port", "storage.synchronous", "cloud.*"}));
  EXPECT_TRUE(PlanReload(running, running).need_restart.empty());
}

TEST(Reload, ReloadableSettingsApply) {
  const Config running = Running();
  Config next = running;
  next.temperature_max = 40;
  next.battery_min.reset();
  next.motion_alerts = false;
  next.offline_alerts = false;
  next.rules.push_back(config::RuleConfig{"hot", "t"});
  next.ingest.max_payload_bytes = 1000;
  next.ingest.device_rate_per_s = 5;
  next.ingest.device_burst = 6;
  next.ingest.device_backlog_max_s = 7;
  next.ingest.status_rate_per_min = 8;
  next.ingest.status_burst = 9;
  next.registry.offline_after_s = 10;
  next.registry.max_devices = 11;
  next.registry.evict_after_s = 12;
  next.storage.queue_max_readings = 13;
  next.status_interval_s = 14;
  next.restart_min_interval_s = 15;
  next.log_level = "debug";
  ReloadPlan plan = PlanReload(running, next);
  EXPECT_TRUE(plan.need_restart.empty());
  const Config& c = plan.config;
  EXPECT_EQ(c.temperature_max, 40);
  EXPECT_FALSE(c.battery_min.has_value());
  EXPECT_FALSE(c.motion_alerts);
  EXPECT_FALSE(c.offline_alerts);
  ASSERT_EQ(c.rules.size(), 1u);
  EXPECT_EQ(c.rules[0].name, "hot");
  EXPECT_EQ(c.ingest.max_payload_bytes, 1000u);
  EXPECT_EQ(c.ingest.device_rate_per_s, 5);
  EXPECT_EQ(c.ingest.device_burst, 6);
  EXPECT_EQ(c.ingest.device_backlog_max_s, 7);
  EXPECT_EQ(c.ingest.status_rate_per_min, 8);
  EXPECT_EQ(c.ingest.status_burst, 9);
  EXPECT_EQ(c.registry.offline_after_s, 10);
  EXPECT_EQ(c.registry.max_devices, 11u);
  EXPECT_EQ(c.registry.evict_after_s, 12);
  EXPECT_EQ(c.storage.queue_max_readings, 13u);
  EXPECT_EQ(c.status_interval_s, 14);
  EXPECT_EQ(c.restart_min_interval_s, 15);
  EXPECT_EQ(c.log_level, "debug");
}

// docs/configuration.md carries the table between the markers. To regenerate it after changing
// the table: OUTPOST_UPDATE_DOCS=1 ctest --preset release -R gateway_app_test
TEST(Reload, DocsListTheRestartOnlySettings) {
  const std::string path = SourceDir() + "/docs/configuration.md";
  std::string doc;
  {
    std::ifstream f(path);
    ASSERT_TRUE(f) << "cannot read " << path;
    std::stringstream text;
    text << f.rdbuf();
    doc = text.str();
  }
  const std::size_t begin = doc.find(kRestartOnlyDocBegin);
  const std::size_t end = doc.find(kRestartOnlyDocEnd);
  ASSERT_NE(begin, std::string::npos) << path << ": no \"" << kRestartOnlyDocBegin << "\"";
  ASSERT_NE(end, std::string::npos) << path << ": no \"" << kRestartOnlyDocEnd << "\"";
  ASSERT_LT(begin, end);
  const std::size_t stop =
      doc.find('\n', end) == std::string::npos ? doc.size() : doc.find('\n', end) + 1;
  const std::string section = doc.substr(begin, stop - begin);
  const std::string want = RestartOnlyMarkdown();
  const char* update = std::getenv("OUTPOST_UPDATE_DOCS");
  if (update != nullptr && std::string(update) == "1" && section != want) {
    std::ofstream(path, std::ios::trunc) << doc.substr(0, begin) << want << doc.substr(stop);
    GTEST_SKIP() << "rewrote the restart-only section of " << path;
  }
  EXPECT_EQ(section, want) << path
                           << " differs from the table in gateway/app/src/reload.cpp; "
                              "regenerate it with OUTPOST_UPDATE_DOCS=1 (see reload_test.cpp)";
}

}  // namespace
}  // namespace outpost::gateway::app
