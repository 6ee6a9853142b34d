#include "outpost/gateway/config/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "outpost/testing/status_matchers.h"

namespace outpost::gateway::config {
namespace {

// The seed gateway's config.yaml, as its users have it.
constexpr const char* kSeedConfig = R"(
mqtt:
  host: localhost
  port: 1883
  username: gateway
  password: secret
cloud:
  api_endpoint: https://api.example.com/v1
  api_key: abc123
thresholds:
  temperature_max: 30
  battery_min: 15
features:
  motion_alerts: false
gateway:
  id: gateway_042
  start_time: 1700000000
)";

TEST(Config, SeedConfigWorksUnchanged) {
  auto c = Parse(kSeedConfig, "config.yaml");
  OUTPOST_ASSERT_OK(c);
  EXPECT_EQ(c->mqtt.host, "localhost");
  EXPECT_EQ(c->mqtt.port, 1883);
  EXPECT_EQ(c->mqtt.username, "gateway");
  EXPECT_EQ(c->mqtt.password, "secret");
  EXPECT_EQ(c->cloud.api_endpoint, "https://api.example.com/v1");
  EXPECT_EQ(c->cloud.api_key, "abc123");
  EXPECT_EQ(c->temperature_max, 30.0);
  EXPECT_EQ(c->battery_min, 15.0);
  EXPECT_FALSE(c->motion_alerts);
  EXPECT_EQ(c->gateway_id, "gateway_042");
  EXPECT_EQ(c->mqtt.client_id, "outpost-gateway-gateway_042");
  EXPECT_TRUE(c->warnings.empty()) << c->warnings.front();
}

TEST(Config, EmptyFileGivesDefaults) {
  auto c = Parse("", "empty.yaml");
  OUTPOST_ASSERT_OK(c);
  EXPECT_EQ(c->storage.synchronous, model::Synchronous::kFull);
  EXPECT_EQ(c->registry.offline_after_s, 300);
  EXPECT_EQ(c->status_interval_s, 30);
  EXPECT_EQ(EffectiveRules(*c).size(), 3u);
}

TEST(Config, BadValueNamesKeyAndProblem) {
  auto c = Parse("mqtt:\n  port: abc\n", "gw.yaml");
  OUTPOST_ASSERT_CODE(c, Code::kInvalidArgument);
  EXPECT_EQ(c.status().message(),
            "gw.yaml: mqtt.port: expected an integer in 1..65535, got \"abc\"");
  c = Parse("mqtt:\n  port: 70000\n", "gw.yaml");
  EXPECT_EQ(c.status().message(), "gw.yaml: mqtt.port: expected an integer in 1..65535, got 70000");
  c = Parse("storage:\n  synchronous: sometimes\n", "gw.yaml");
  EXPECT_EQ(c.status().message(),
            "gw.yaml: storage.synchronous: expected full, normal or off, got \"sometimes\"");
  c = Parse("thresholds:\n  temperature_max: hot\n", "gw.yaml");
  EXPECT_EQ(c.status().message(),
            "gw.yaml: thresholds.temperature_max: expected a number, got \"hot\"");
  c = Parse("mqtt: 5\n", "gw.yaml");
  EXPECT_EQ(c.status().message(), "gw.yaml: mqtt: expected a mapping of settings");
}

TEST(Config, MqttMaxPacketBytesIsBounded) {
  auto c = Parse("", "gw.yaml");
  OUTPOST_ASSERT_OK(c);
  EXPECT_EQ(c->mqtt.max_packet_bytes, 262'144u);
  c = Parse("mqtt:\n  max_packet_bytes: 65536\n", "gw.yaml");
  OUTPOST_ASSERT_OK(c);
  EXPECT_EQ(c->mqtt.max_packet_bytes, 65'536u);
  c = Parse("mqtt:\n  max_packet_bytes: 1000\n", "gw.yaml");
  OUTPOST_ASSERT_CODE(c, Code::kInvalidArgument);
  EXPECT_EQ(c.status().message(),
            "gw.yaml: mqtt.max_packet_bytes: expected an integer in 4096..268435455, got 1000");
}

TEST(Config, SyntaxErrorNamesLine) {
  auto c = Parse("mqtt:\n  host: [unclosed\n", "gw.yaml");
  OUTPOST_ASSERT_CODE(c, Code::kInvalidArgument);
  EXPECT_NE(c.status().message().find("gw.yaml: line "), std::string::npos) << c.status().message();
}

TEST(Config, UnknownKeysAreWarnedNotFatal) {
  auto c = Parse("storage:\n  pth: x.db\n", "gw.yaml");
  OUTPOST_ASSERT_OK(c);
  ASSERT_EQ(c->warnings.size(), 1u);
  EXPECT_EQ(c->warnings[0], "gw.yaml: unknown key storage.pth (ignored)");
}

TEST(Config, RulesParseAndValidate) {
  auto c = Parse(R"(
rules:
  - name: soil_dry
    metric: soil_moisture
    below: 20
    hysteresis: 2
    for_s: 60
    severity: critical
    devices: [a, b]
)",
                 "gw.yaml");
  OUTPOST_ASSERT_OK(c);
  ASSERT_EQ(c->rules.size(), 1u);
  const auto& r = c->rules[0];
  EXPECT_EQ(r.comparison, Comparison::kBelow);
  EXPECT_EQ(r.threshold, 20);
  EXPECT_EQ(r.hysteresis, 2);
  EXPECT_EQ(r.for_s, 60);
  EXPECT_EQ(r.devices, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(EffectiveRules(*c).back().name, "soil_dry");

  auto both = Parse("rules:\n  - {name: x, metric: t, above: 1, below: 0}\n", "gw.yaml");
  EXPECT_EQ(both.status().message(), "gw.yaml: rules[0].above: give exactly one of above or below");
  auto dup =
      Parse("rules:\n  - {name: x, metric: t, above: 1}\n  - {name: x, metric: u, above: 1}\n",
            "gw.yaml");
  EXPECT_EQ(dup.status().message(), "gw.yaml: rules[1].name: \"x\" is used twice");
  auto typo = Parse("rules:\n  - {name: x, metric: t, above: 1, hysterisis: 1}\n", "gw.yaml");
  EXPECT_EQ(typo.status().message(), "gw.yaml: unknown key rules[0].hysterisis");
}

TEST(Config, SizesWithUnits) {
  auto c = Parse("storage:\n  max_bytes: 2GiB\n", "gw.yaml");
  OUTPOST_ASSERT_OK(c);
  EXPECT_EQ(c->storage.max_bytes, 2LL * 1024 * 1024 * 1024);
  auto huge = Parse("storage:\n  max_bytes: 999999999999GiB\n", "gw.yaml");
  EXPECT_EQ(huge.status().message(), "gw.yaml: storage.max_bytes: size too large: 999999999999GiB");
  auto bad = Parse("storage:\n  max_bytes: lots\n", "gw.yaml");
  EXPECT_EQ(bad.status().message(),
            "gw.yaml: storage.max_bytes: expected a size such as 500MB or 2GiB, got \"lots\"");
  auto small = Parse("storage:\n  max_bytes: 1KB\n", "gw.yaml");
  EXPECT_EQ(small.status().message(),
            "gw.yaml: storage.max_bytes: must be auto, 0 (unbounded) or at least 1MB");
}

TEST(Config, ThresholdOffDisablesSeedRule) {
  auto c = Parse("thresholds:\n  battery_min: off\n", "gw.yaml");
  OUTPOST_ASSERT_OK(c);
  EXPECT_FALSE(c->battery_min.has_value());
  EXPECT_EQ(EffectiveRules(*c).size(), 2u);
}

}  // namespace
}  // namespace outpost::gateway::config

namespace outpost::gateway::config {
namespace {

// The documented example must stay complete and valid: every key known, values equal defaults.
TEST(Config, ExampleConfigIsValidAndMatchesDefaults) {
  const char* src = std::getenv("OUTPOST_SOURCE_DIR");
  ASSERT_NE(src, nullptr) << "run through ctest";
  auto c = LoadFile(std::string(src) + "/config/gateway.example.yaml");
  OUTPOST_ASSERT_OK(c);
  EXPECT_TRUE(c->warnings.empty()) << c->warnings.front();
  auto d = Parse("", "defaults");
  OUTPOST_ASSERT_OK(d);
  EXPECT_EQ(c->storage.queue_max_readings, d->storage.queue_max_readings);
  EXPECT_EQ(c->storage.max_bytes, d->storage.max_bytes);
  EXPECT_EQ(c->ingest.dedupe_window, d->ingest.dedupe_window);
  EXPECT_EQ(c->registry.offline_after_s, d->registry.offline_after_s);
  EXPECT_EQ(c->temperature_max, d->temperature_max);
  EXPECT_EQ(c->mqtt.client_id, d->mqtt.client_id);
  EXPECT_EQ(EffectiveRules(*c).size(), EffectiveRules(*d).size());
  EXPECT_EQ(c->ingest.device_backlog_max_s, d->ingest.device_backlog_max_s);
  EXPECT_EQ(c->ingest.status_rate_per_min, d->ingest.status_rate_per_min);
  EXPECT_EQ(c->ingest.status_burst, d->ingest.status_burst);
  EXPECT_EQ(c->ingest.max_seq_jump, d->ingest.max_seq_jump);
  EXPECT_EQ(c->registry.evict_after_s, d->registry.evict_after_s);
  EXPECT_EQ(c->restart_min_interval_s, d->restart_min_interval_s);
  EXPECT_EQ(c->http.listen, d->http.listen);
  EXPECT_EQ(c->http.max_connections, d->http.max_connections);
  EXPECT_EQ(c->http.header_timeout_ms, d->http.header_timeout_ms);
  EXPECT_EQ(c->http.idle_timeout_ms, d->http.idle_timeout_ms);
  EXPECT_EQ(c->http.tls_cert_file, d->http.tls_cert_file);
  EXPECT_EQ(c->auth.path, d->auth.path);
  EXPECT_EQ(c->auth.session_idle_s, d->auth.session_idle_s);
  EXPECT_EQ(c->auth.session_max_s, d->auth.session_max_s);
  EXPECT_EQ(c->auth.max_sessions, d->auth.max_sessions);
  EXPECT_EQ(c->auth.login_max_failures, d->auth.login_max_failures);
  EXPECT_EQ(c->auth.login_window_s, d->auth.login_window_s);
  EXPECT_EQ(c->auth.login_lockout_s, d->auth.login_lockout_s);
  EXPECT_EQ(c->auth.login_tracked_keys, d->auth.login_tracked_keys);
  EXPECT_EQ(c->auth.max_verifications, d->auth.max_verifications);
  EXPECT_EQ(c->auth.audit_max_rows, d->auth.audit_max_rows);
}

TEST(Config, HttpListenDefaultsParsesAndNamesTheKey) {
  auto d = Parse("", "gw.yaml");
  OUTPOST_ASSERT_OK(d);
  EXPECT_TRUE(d->http.enabled());
  EXPECT_EQ(d->http.listen, "0.0.0.0:8080");
  EXPECT_EQ(d->http.host, "0.0.0.0");
  EXPECT_EQ(d->http.port, 8080);

  auto c = Parse(
      "http:\n  listen: 127.0.0.1:0\n  max_connections: 16\n  header_timeout_ms: 500\n"
      "  idle_timeout_ms: 700\n",
      "gw.yaml");
  OUTPOST_ASSERT_OK(c);
  EXPECT_TRUE(c->warnings.empty());
  EXPECT_EQ(c->http.host, "127.0.0.1");
  EXPECT_EQ(c->http.port, 0);
  EXPECT_EQ(c->http.max_connections, 16u);
  EXPECT_EQ(c->http.header_timeout_ms, 500);
  EXPECT_EQ(c->http.idle_timeout_ms, 700);

  c = Parse("http:\n  listen: \"[::1]:9000\"\n", "gw.yaml");
  OUTPOST_ASSERT_OK(c);
  EXPECT_EQ(c->http.host, "::1");
  EXPECT_EQ(c->http.port, 9000);

  c = Parse("http:\n  listen: \"\"\n", "gw.yaml");
  OUTPOST_ASSERT_OK(c);
  EXPECT_FALSE(c->http.enabled());

  for (const char* bad : {"8080", "localhost:8080", "0.0.0.0:", "0.0.0.0:65536", "0.0.0.0:-1",
                          "[::1]8080", "[nope]:80", "1.2.3.4:80x"}) {
    c = Parse(std::string("http:\n  listen: \"") + bad + "\"\n", "gw.yaml");
    OUTPOST_ASSERT_CODE(c, Code::kInvalidArgument);
    EXPECT_NE(c.status().message().find("gw.yaml: http.listen: expected host:port"),
              std::string::npos)
        << bad << ": " << c.status().message();
  }
  for (const char* key : {"max_connections", "header_timeout_ms", "idle_timeout_ms"}) {
    c = Parse(std::string("http:\n  ") + key + ": 0\n", "gw.yaml");
    OUTPOST_ASSERT_CODE(c, Code::kInvalidArgument);
    EXPECT_NE(c.status().message().find(std::string("http.") + key), std::string::npos)
        << c.status().message();
  }
  c = Parse("http:\n  lisen: 1.2.3.4:80\n", "gw.yaml");
  OUTPOST_ASSERT_OK(c);
  ASSERT_EQ(c->warnings.size(), 1u);
  EXPECT_NE(c->warnings[0].find("http.lisen"), std::string::npos) << c->warnings[0];
}

TEST(Config, HostileInputLimitsParseAndNameTheKey) {
  auto c = Parse(
      "ingest:\n  device_backlog_max_s: 3600\n  status_rate_per_min: 2\n  status_burst: 3\n"
      "  max_seq_jump: 500\nregistry:\n  evict_after_s: 0\ncommands:\n"
      "  restart_min_interval_s: 0\n",
      "gw.yaml");
  OUTPOST_ASSERT_OK(c);
  EXPECT_TRUE(c->warnings.empty());
  EXPECT_EQ(c->ingest.device_backlog_max_s, 3600);
  EXPECT_EQ(c->ingest.status_rate_per_min, 2);
  EXPECT_EQ(c->ingest.status_burst, 3);
  EXPECT_EQ(c->ingest.max_seq_jump, 500u);
  EXPECT_EQ(c->registry.evict_after_s, 0);
  EXPECT_EQ(c->restart_min_interval_s, 0);
  c = Parse("commands:\n  restart_min_interval_s: -1\n", "gw.yaml");
  OUTPOST_ASSERT_CODE(c, Code::kInvalidArgument);
  EXPECT_NE(c.status().message().find("commands.restart_min_interval_s"), std::string::npos)
      << c.status().message();
  c = Parse(
      "commands:\n  queue_per_device: 4\n  history_per_device: 8\n  default_ttl_s: 60\n"
      "  max_ttl_s: 600\n  max_waiters: 2\n",
      "gw.yaml");
  OUTPOST_ASSERT_OK(c);
  EXPECT_EQ(c->commands.queue_per_device, 4);
  EXPECT_EQ(c->commands.history_per_device, 8);
  EXPECT_EQ(c->commands.default_ttl_s, 60);
  EXPECT_EQ(c->commands.max_ttl_s, 600);
  EXPECT_EQ(c->commands.max_waiters, 2);
  c = Parse("commands:\n  max_ttl_s: 600\n  default_ttl_s: 601\n", "gw.yaml");
  OUTPOST_ASSERT_CODE(c, Code::kInvalidArgument);
  EXPECT_NE(c.status().message().find("commands.default_ttl_s"), std::string::npos);
  c = Parse("commands:\n  queue_per_device: 20\n  history_per_device: 10\n", "gw.yaml");
  OUTPOST_ASSERT_CODE(c, Code::kInvalidArgument);
  EXPECT_NE(c.status().message().find("history_per_device"), std::string::npos);
  c = Parse("ingest:\n  max_seq_jump: 0\n", "gw.yaml");
  OUTPOST_ASSERT_CODE(c, Code::kInvalidArgument);
  EXPECT_NE(c.status().message().find("ingest.max_seq_jump"), std::string::npos);
}

TEST(Config, CloudDefaultsAndUplinkKeys) {
  auto d = Parse(kSeedConfig, "config.yaml");
  OUTPOST_ASSERT_OK(d);
  EXPECT_TRUE(d->cloud.enabled());
  EXPECT_EQ(d->cloud.protocol, proto::batch::Protocol::kSeed);
  EXPECT_EQ(d->cloud.batch_max_readings, 5000u);
  EXPECT_EQ(d->cloud.batch_max_bytes, 1 << 20);
  EXPECT_EQ(d->cloud.quota_bytes, 256ll << 20);
  EXPECT_EQ(d->cloud.when_full, model::WhenFull::kDropOldest);
  EXPECT_EQ(d->cloud.linger_ms(), 1000);
  auto c = Parse(R"(
cloud:
  api_endpoint: http://127.0.0.1:8080
  protocol: native
  ca_file: /etc/ssl/ca.pem
  sync_interval_s: 1
  batch_delay_ms: 5000
  batch_max_readings: 100
  batch_max_bytes: 64KiB
  quota_bytes: 10MB
  when_full: reject_new
  expire_after_s: 86400
  connect_timeout_ms: 100
  request_timeout_ms: 2000
  retry_base_ms: 10
  retry_cap_ms: 1000
)",
                 "gw.yaml");
  OUTPOST_ASSERT_OK(c);
  EXPECT_TRUE(c->warnings.empty()) << c->warnings.front();
  EXPECT_EQ(c->cloud.protocol, proto::batch::Protocol::kNative);
  EXPECT_EQ(c->cloud.linger_ms(), 1000);  // sync_interval_s caps the linger
  EXPECT_EQ(c->cloud.batch_max_bytes, 64 * 1024);
  EXPECT_EQ(c->cloud.quota_bytes, 10'000'000);
  EXPECT_EQ(c->cloud.when_full, model::WhenFull::kRejectNew);
  EXPECT_EQ(c->cloud.expire_after_s, 86400);
  EXPECT_EQ(c->cloud.retry_cap_ms, 1000);
  EXPECT_FALSE(Parse("", "x")->cloud.enabled());
}

// issue 9: cloud.protocol, cloud.when_full and storage.synchronous are parsed once, here, into
// their enums; the *Name() functions give back the config spelling (used by gateway/status).
TEST(Config, EnumSettingsParseOnceIntoTheirTypes) {
  for (auto [name, value] : {std::pair{"full", model::Synchronous::kFull},
                             std::pair{"normal", model::Synchronous::kNormal},
                             std::pair{"off", model::Synchronous::kOff}}) {
    OUTPOST_ASSERT_OK_AND_ASSIGN(Config c,
                                 Parse(std::string("storage:\n  synchronous: ") + name, "gw.yaml"));
    EXPECT_EQ(c.storage.synchronous, value) << name;
    EXPECT_STREQ(SynchronousName(value), name);
  }
  for (auto [name, value] : {std::pair{"drop_oldest", model::WhenFull::kDropOldest},
                             std::pair{"reject_new", model::WhenFull::kRejectNew}}) {
    OUTPOST_ASSERT_OK_AND_ASSIGN(Config c,
                                 Parse(std::string("cloud:\n  when_full: ") + name, "gw.yaml"));
    EXPECT_EQ(c.cloud.when_full, value) << name;
    EXPECT_STREQ(WhenFullName(value), name);
  }
  for (auto [name, value] : {std::pair{"seed", proto::batch::Protocol::kSeed},
                             std::pair{"native", proto::batch::Protocol::kNative}}) {
    OUTPOST_ASSERT_OK_AND_ASSIGN(Config c,
                                 Parse(std::string("cloud:\n  protocol: ") + name, "gw.yaml"));
    EXPECT_EQ(c.cloud.protocol, value) << name;
    EXPECT_STREQ(proto::batch::ProtocolName(value), name);
  }
  // Not a scalar: the same error as any other string setting.
  EXPECT_EQ(Parse("storage:\n  synchronous: [full]\n", "gw.yaml").status().message(),
            "gw.yaml: storage.synchronous: expected a string");
}

// issue 8: each of these passed the gateway and made the cloud refuse whole batches.
TEST(Config, config_refuses_what_the_cloud_would_reject) {
  auto bad = [](const std::string& yaml) { return Parse(yaml, "gw.yaml").status().message(); };
  EXPECT_EQ(bad("gateway:\n  id: my gateway\n"),
            "gw.yaml: gateway.id: expected 1..64 characters of [A-Za-z0-9_.:-] (the cloud refuses "
            "others), got \"my gateway\"");
  EXPECT_NE(bad("gateway:\n  id: " + std::string(65, 'g') + "\n").find("gateway.id"),
            std::string::npos);
  EXPECT_EQ(bad("ingest:\n  max_metrics: 300\n"),
            "gw.yaml: ingest.max_metrics: expected an integer in 1..256, got 300");
  EXPECT_NE(bad("rules:\n  - name: " + std::string(65, 'r') + "\n    metric: t\n    above: 1\n")
                .find("rules[0].name: longer than 64 bytes"),
            std::string::npos);
  OUTPOST_EXPECT_OK(Parse("gateway:\n  id: site-7.gw_2\ningest:\n  max_metrics: 256\n", "gw.yaml"));
  EXPECT_NE(bad("cloud:\n  batch_reading_share: 2\n").find("cloud.batch_reading_share"),
            std::string::npos);
}

TEST(Config, CloudErrorsNameTheKey) {
  auto bad = [](const char* yaml) { return Parse(yaml, "gw.yaml").status().message(); };
  EXPECT_EQ(bad("cloud:\n  protocol: mqtt\n"),
            "gw.yaml: cloud.protocol: expected seed or native, got \"mqtt\"");
  EXPECT_EQ(bad("cloud:\n  when_full: panic\n"),
            "gw.yaml: cloud.when_full: expected drop_oldest or reject_new, got \"panic\"");
  EXPECT_NE(bad("cloud:\n  api_endpoint: ftp://x\n").find("cloud.api_endpoint"), std::string::npos);
  EXPECT_NE(bad("cloud:\n  batch_max_bytes: 100MB\n").find("cloud.batch_max_bytes"),
            std::string::npos);
  EXPECT_NE(bad("cloud:\n  retry_base_ms: 100\n  retry_cap_ms: 10\n").find("cloud.retry_cap_ms"),
            std::string::npos);
  EXPECT_NE(bad("cloud:\n  batch_max_readings: 0\n").find("cloud.batch_max_readings"),
            std::string::npos);
}

TEST(Config, CloudTokenPrecedenceEnvThenFileThenKey) {
  CloudConfig c;
  c.api_key = "from-config";
  EXPECT_EQ(*ResolveCloudToken(c, nullptr), "from-config");
  std::string path = ::testing::TempDir() + "/outpost_token_test";
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("from-file\n", f);
    std::fclose(f);
  }
  c.api_key_file = path;
  EXPECT_EQ(*ResolveCloudToken(c, nullptr), "from-file");
  EXPECT_EQ(*ResolveCloudToken(c, ""), "from-file");
  EXPECT_EQ(*ResolveCloudToken(c, "from-env"), "from-env");
  c.api_key_file = path + ".missing";
  auto r = ResolveCloudToken(c, nullptr);
  OUTPOST_ASSERT_CODE(r, Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("cloud.api_key_file"), std::string::npos);
  std::remove(path.c_str());
}

// The config file and the token file are read bounded: a FIFO, a device or an oversize file is
// an error naming the path at once (a plain read waited for a FIFO's writer, or read /dev/zero
// until memory ran out).
TEST(Config, AConfigOrTokenPathThatIsNotASmallRegularFileIsAClearError) {
  const std::string dir = ::testing::TempDir() + "/outpost_config_files";
  ::mkdir(dir.c_str(), 0700);
  const std::string fifo = dir + "/pipe";
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (const std::string& path : {fifo, std::string("/dev/zero")}) {
    auto c = LoadFile(path);
    OUTPOST_ASSERT_CODE(c, Code::kInvalidArgument);
    EXPECT_NE(c.status().message().find("config file " + path + ": not a regular file"),
              std::string::npos)
        << c.status().message();
    CloudConfig cloud;
    cloud.api_key_file = path;
    auto t = ResolveCloudToken(cloud, nullptr);
    OUTPOST_ASSERT_CODE(t, Code::kInvalidArgument);
    EXPECT_NE(t.status().message().find("cloud.api_key_file: " + path + ": not a regular file"),
              std::string::npos)
        << t.status().message();
  }
  const std::string big = dir + "/big.yaml";
  {
    std::FILE* f = std::fopen(big.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
  }
  ASSERT_EQ(::truncate(big.c_str(), static_cast<off_t>(kMaxConfigBytes) + 1), 0);
  auto c = LoadFile(big);
  OUTPOST_ASSERT_CODE(c, Code::kInvalidArgument);
  EXPECT_NE(c.status().message().find("more than the 1048576 read here"), std::string::npos)
      << c.status().message();
  OUTPOST_EXPECT_CODE(LoadFile(dir + "/missing.yaml"), Code::kNotFound);
  ::unlink(fifo.c_str());
  ::unlink(big.c_str());
}

// Regression: storage.max_bytes defaulted to 0 (unbounded), so a flood filled the disk.
TEST(Config, StorageMaxBytesDefaultsToAShareOfTheFileSystem) {
  auto d = Parse("", "gw.yaml");
  OUTPOST_ASSERT_OK(d);
  EXPECT_EQ(d->storage.max_bytes, kMaxBytesAuto);
  auto a = Parse("storage:\n  max_bytes: auto\n", "gw.yaml");
  OUTPOST_ASSERT_OK(a);
  EXPECT_EQ(a->storage.max_bytes, kMaxBytesAuto);
  auto off = Parse("storage:\n  max_bytes: 0\n", "gw.yaml");
  OUTPOST_ASSERT_OK(off);
  EXPECT_EQ(off->storage.max_bytes, 0);  // unbounded stays possible, explicitly

  constexpr std::int64_t kGiB = 1LL << 30;
  // An empty 32 GiB card: 80% of it.
  EXPECT_EQ(AutoMaxBytes({32 * kGiB, 32 * kGiB, 0}), 32 * kGiB / 10 * 8);
  // The same card with 28 GiB used by something else: what is free (plus the database's own
  // files), minus a reserve of 10% of the size capped at 1 GiB.
  EXPECT_EQ(AutoMaxBytes({32 * kGiB, 4 * kGiB, kGiB}), 5 * kGiB - kGiB);
  // A 2 TB disk: the reserve is capped at 1 GiB, the share still applies.
  EXPECT_EQ(AutoMaxBytes({2000 * kGiB, 2000 * kGiB, 0}), 2000 * kGiB / 10 * 8);
  // A small file system: 10% reserve.
  EXPECT_EQ(AutoMaxBytes({10'000'000, 3'000'000, 1'000'000}), 3'000'000);
  // Nothing left: the store's minimum, never 0 (which would mean unbounded).
  EXPECT_EQ(AutoMaxBytes({10'000'000, 0, 0}), 1'000'000);

  StorageConfig sc;
  sc.path = "/tmp/outpost-config-test.db";
  bool chosen = false;
  auto eff = EffectiveMaxBytes(sc, &chosen);
  OUTPOST_ASSERT_OK(eff);
  EXPECT_TRUE(chosen);
  EXPECT_GE(*eff, 1'000'000);
  sc.max_bytes = 5'000'000;
  EXPECT_EQ(*EffectiveMaxBytes(sc, &chosen), 5'000'000);
  EXPECT_FALSE(chosen);
  sc.max_bytes = kMaxBytesAuto;
  sc.path = "/nonexistent-outpost-dir/x.db";
  auto missing = EffectiveMaxBytes(sc);
  OUTPOST_ASSERT_CODE(missing, Code::kUnavailable);
  EXPECT_NE(missing.status().message().find("/nonexistent-outpost-dir"), std::string::npos);
}

}  // namespace
}  // namespace outpost::gateway::config

namespace outpost::gateway::config {
namespace {

TEST(Config, AuthDefaultsBesideTheDatabaseAndLimits) {
  auto d = Parse("storage:\n  path: /var/lib/outpost/gateway.db\n", "gw.yaml");
  OUTPOST_ASSERT_OK(d);
  EXPECT_EQ(AuthPath(*d), "/var/lib/outpost/auth.sqlite");
  EXPECT_EQ(AdminPasswordPath(*d), "/var/lib/outpost/admin-password");
  EXPECT_EQ(d->auth.login_max_failures, 5);
  auto rel = Parse("", "gw.yaml");
  OUTPOST_ASSERT_OK(rel);
  EXPECT_EQ(AuthPath(*rel), "auth.sqlite");
  auto c = Parse(
      "auth:\n  path: /tmp/a.sqlite\n  max_sessions: 3\n  login_max_failures: 2\n"
      "  max_verifications: 1\n",
      "gw.yaml");
  OUTPOST_ASSERT_OK(c);
  EXPECT_EQ(AuthPath(*c), "/tmp/a.sqlite");
  EXPECT_EQ(c->auth.max_sessions, 3u);
  EXPECT_EQ(c->auth.login_max_failures, 2);
  EXPECT_EQ(c->auth.max_verifications, 1u);
  auto bad = Parse("auth:\n  max_verifications: 0\n", "gw.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("auth.max_verifications"), std::string::npos);
  auto half = Parse("http:\n  tls_cert_file: /x.pem\n", "gw.yaml");
  ASSERT_FALSE(half.ok());
  EXPECT_NE(half.status().message().find("http.tls_key_file"), std::string::npos);
}

}  // namespace
}  // namespace outpost::gateway::config

namespace outpost::gateway::config {
namespace {

TEST(CleartextWarnings, LoopbackHostsAreRecognised) {
  for (const char* h : {"localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]", "db.localhost"}) {
    EXPECT_TRUE(IsLoopbackHost(h)) << h;
  }
  for (const char* h : {"192.168.1.10", "broker.local", "::", "0.0.0.0", "128.0.0.1", "[fe80::1]",
                        "localhost.example.com", ""}) {
    EXPECT_FALSE(IsLoopbackHost(h)) << h;
  }
}

TEST(CleartextWarnings, OneLineEachForPlainMqttAndHttpBeyondLoopback) {
  auto c = Parse(
      "mqtt:\n  host: 192.168.1.10\ncloud:\n  api_endpoint: "
      "http://user@cloud.example.com:8080/v1\n",
      "gw.yaml");
  OUTPOST_ASSERT_OK(c);
  const auto w = CleartextWarnings(*c);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].rfind("mqtt.host 192.168.1.10 is beyond this machine and mqtt.tls.enabled", 0), 0u)
      << w[0];
  EXPECT_EQ(w[1].rfind("cloud.api_endpoint http://user@cloud.example.com:8080/v1 is plain", 0), 0u)
      << w[1];
}

TEST(CleartextWarnings, NoneForLoopbackTlsOrHttps) {
  for (const char* yaml :
       {"mqtt:\n  host: 127.0.0.1\ncloud:\n  api_endpoint: http://127.0.0.1:18080\n",
        "mqtt:\n  host: localhost\ncloud:\n  api_endpoint: http://[::1]:8080/base\n",
        "mqtt:\n  host: 10.0.0.2\n  tls:\n    enabled: true\ncloud:\n  api_endpoint: "
        "https://cloud.example.com\n"}) {
    auto c = Parse(yaml, "gw.yaml");
    OUTPOST_ASSERT_OK(c);
    const auto w = CleartextWarnings(*c);
    EXPECT_TRUE(w.empty()) << yaml << " -> " << w.front();
  }
}

}  // namespace
}  // namespace outpost::gateway::config
