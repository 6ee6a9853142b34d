// Config: the gateway's settings, read from YAML.
// The seed's config.yaml (keys mqtt.*, cloud.*, thresholds.*, features.motion_alerts, gateway.id)
// works unchanged; every other setting has a default. Reference: docs/configuration.md and
// config/gateway.example.yaml.
// Errors: Load/Parse return kInvalidArgument naming the file, the key and what is wrong
// ("gateway.yaml: mqtt.port: expected an integer in 1..65535, got \"abc\"").
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/gateway/model/outbox.h"
#include "outpost/gateway/model/synchronous.h"
#include "outpost/proto/batch.h"

namespace outpost::gateway::config {

struct TlsConfig {
  bool enabled = false;
  std::string ca_file;    // PEM CA bundle used to verify the broker; empty = system default
  std::string cert_file;  // client certificate (PEM), optional
  std::string key_file;   // client private key (PEM), optional
  bool verify_peer = true;
  // Days left (docs/security.md#days-left): the broker's CRL and outpost-provision's registry of
  // device certificates (DIR/broker/crl.pem, DIR/devices.tsv), optional; with cert_file and
  // ca_file they are read at start and hourly, and an alert is raised under this many days.
  std::string crl_file;
  std::string registry_file;
  int expiry_alert_days = 30;
};

struct MqttConfig {
  std::string host = "localhost";
  std::uint16_t port = 1883;
  std::string username;
  std::string password;
  std::string client_id;  // default: "outpost-gateway-" + gateway.id
  std::uint16_t keepalive_s = 60;
  std::uint8_t qos = 1;  // subscription QoS for device topics
  TlsConfig tls;
  std::int64_t reconnect_base_ms = 500;
  std::int64_t reconnect_cap_ms = 30'000;
  // Largest MQTT packet read in full; a larger PUBLISH is skipped unread (too_large).
  std::size_t max_packet_bytes = 256 * 1024;
};

// The store-and-forward uplink to the cloud (docs/configuration.md, docs/formats/outbox.md).
// An empty api_endpoint turns the uplink off (nothing is queued).
struct CloudConfig {
  std::string api_endpoint;  // "https://cloud.example.com[/base]"; seed key
  std::string api_key;       // Bearer token; seed key
  std::string api_key_file;  // file holding the token (first line)
  proto::batch::Protocol protocol = proto::batch::Protocol::kSeed;  // seed | native
  std::string ca_file;                 // PEM bundle for https; empty = system CAs
  std::int64_t sync_interval_s = 60;   // the seed's sync period: here the longest linger
  std::int64_t batch_delay_ms = 1000;  // linger: the oldest queued item waits at most this
  std::size_t batch_max_readings = 5000;
  std::int64_t batch_max_bytes = 1 << 20;
  double batch_reading_share = 0.5;        // of each batch kept for readings when they wait
  std::int64_t quota_bytes = 256ll << 20;  // outbox disk quota (exact bytes)
  model::WhenFull when_full = model::WhenFull::kDropOldest;  // drop_oldest | reject_new
  std::int64_t expire_after_s = 0;                           // 0 = never
  std::int64_t connect_timeout_ms = 5000;
  std::int64_t request_timeout_ms = 30'000;
  std::int64_t retry_base_ms = 500;
  std::int64_t retry_cap_ms = 60'000;
  bool enabled() const { return !api_endpoint.empty(); }
  // min(batch_delay_ms, sync_interval_s)
  std::int64_t linger_ms() const;
};

// The cloud token, by precedence: the environment variable OUTPOST_CLOUD_API_KEY (pass its
// value, or nullptr when unset), then cloud.api_key_file, then cloud.api_key.
// kInvalidArgument naming cloud.api_key_file when the file cannot be read, is empty, or is not a
// regular file of at most kMaxTokenFileBytes (its first line is the token).
inline constexpr std::size_t kMaxTokenFileBytes = 4096;
Result<std::string> ResolveCloudToken(const CloudConfig& cloud, const char* env_value);

inline constexpr std::int64_t kMaxBytesAuto = -1;

struct StorageConfig {
  std::string path = "gateway.db";
  model::Synchronous synchronous = model::Synchronous::kFull;  // full | normal | off
  std::int64_t retention_days = 30;                            // 0 = keep forever
  // kMaxBytesAuto ("auto", the default): a share of the file system, see EffectiveMaxBytes().
  // 0 = unbounded (a flood can fill the disk). Else bytes of used pages, oldest readings go
  // first (retention by size, docs/formats/store.md).
  std::int64_t max_bytes = -1;
  std::int64_t cache_bytes = 8 << 20;       // SQLite page cache (the OS caches the file as well)
  std::size_t queue_max_readings = 20'000;  // messages in the filling batch; reading pauses beyond
};

struct IngestConfig {
  std::size_t max_payload_bytes = 4096;
  std::size_t max_depth = 4;
  std::size_t max_metrics = 64;
  double device_rate_per_s = 200;  // token bucket per device; 0 = unlimited
  double device_burst = 20'000;    // an outage backlog replayed by the broker must fit
  // Silence credited to a device's flood limit as backlog (token_bucket.h); 0 = none.
  std::int64_t device_backlog_max_s = 86'400;
  // Status messages per device: a token bucket in receive time; 0 = unlimited.
  double status_rate_per_min = 6;
  double status_burst = 10;
  // A seq more than this above the newest of its boot is a suspicious jump: counted
  // (seq_jumps), never added to the loss counter.
  std::uint64_t max_seq_jump = 1'000'000;
  std::size_t quarantine_max_rows = 1000;
  std::size_t quarantine_max_payload_bytes = 512;
  std::uint64_t dedupe_window = 1'000'000;  // per device: seqs remembered below the newest
};

struct RegistryConfig {
  std::int64_t offline_after_s = 300;    // the seed's 5 minutes of silence
  std::int64_t sleeping_grace_s = 3600;  // a device that said "sleeping" gets this long
  std::size_t max_devices = 10'000;      // readings from further new devices are rejected
  // When full, a new device evicts the one whose last valid reading is oldest, if that is
  // older than this; else the new device is refused (too_many_devices). 0 = never evict.
  std::int64_t evict_after_s = 86'400;
};

// The gateway's HTTP API (docs/api.md) on its event loop. The defaults of the limits are
// http::ServerOptions' (gateway_app_test checks that they agree; this target does not link
// libs/http). Every key is restart-only (the server is bound at start).
struct HttpConfig {
  // "host:port" ("[v6]:port"), host a numeric address; port 0 = any free port (the log says
  // which). Empty: no HTTP server.
  // Every interface: the API needs a login (auth.*). Beyond loopback without TLS the gateway
  // warns at start: passwords and cookies would cross the network in clear.
  std::string listen = "0.0.0.0:8080";
  std::string host = "0.0.0.0";             // parsed from listen
  std::uint16_t port = 8080;                // parsed from listen
  std::size_t max_connections = 1024;       // one more is answered 503 and closed
  std::int64_t header_timeout_ms = 10'000;  // first byte of a request to the end of its header
  std::int64_t idle_timeout_ms = 30'000;    // between requests on a keep-alive connection
  // /api/v1/stream: the events kept in memory for a client resuming with Last-Event-ID.
  std::size_t stream_replay_events = 10'000;
  // A stream's unsent bytes; a client further behind is dropped. The events of one commit go
  // out together, so this must hold a commit's worth (libs/http's default is 256 KiB).
  std::size_t stream_buffer_bytes = 1024 * 1024;
  // Both set: HTTPS only (PEM chain and key); the session cookie is then `Secure`.
  std::string tls_cert_file;
  std::string tls_key_file;
  bool enabled() const { return !listen.empty(); }
  bool tls() const { return !tls_cert_file.empty(); }
};

// Users, sessions and API tokens (docs/api.md "Authentication"). Restart-only.
struct AuthConfig {
  std::string path;  // the users, tokens and audit file; "" = auth.sqlite next to storage.path
  std::int64_t session_idle_s = 8 * 3600;   // a session unused this long ends
  std::int64_t session_max_s = 7 * 86'400;  // and any session after this long
  std::size_t max_sessions = 1000;          // more logins evict the least recently used
  std::int64_t login_max_failures = 5;      // per user name and per source address ...
  std::int64_t login_window_s = 300;        // ... within this long, then
  std::int64_t login_lockout_s = 300;       // 429 for this long after the last failure
  std::size_t login_tracked_keys = 10'000;  // names and addresses the limiter remembers
  std::size_t max_verifications = 2;        // Argon2id checks in flight (503 busy beyond)
  std::int64_t audit_max_rows = 100'000;    // the audit log keeps the newest this many
};

// "host:port" or "[v6]:port" with a numeric host (IPv4 or IPv6) and a port in 0..65535; the
// error says what is wrong (without the key). Pure.
Result<std::pair<std::string, std::uint16_t>> ParseListen(std::string_view listen);

enum class Comparison : std::uint8_t { kAbove, kBelow };

struct RuleConfig {
  std::string name;  // unique; becomes part of the alert id
  std::string metric;
  Comparison comparison = Comparison::kAbove;
  double threshold = 0;
  double hysteresis = 0;   // clear only when back past threshold -/+ hysteresis
  std::int64_t for_s = 0;  // condition must hold this long before raising
  std::string severity = "warning";
  std::vector<std::string> devices;  // empty = all devices
  std::string message;               // optional template: {device} {metric} {value} {threshold}
};

struct Config {
  std::string source;  // file name, for messages
  std::string gateway_id = "gateway_001";
  MqttConfig mqtt;
  CloudConfig cloud;
  // Seed thresholds and features, turned into built-in rules.
  std::optional<double> temperature_max = 35.0;
  std::optional<double> battery_min = 20.0;
  bool motion_alerts = true;
  std::vector<RuleConfig> rules;
  bool offline_alerts = true;
  StorageConfig storage;
  IngestConfig ingest;
  RegistryConfig registry;
  HttpConfig http;
  AuthConfig auth;
  std::int64_t status_interval_s = 30;
  // commands.restart_min_interval_s: restart/reboot commands are refused while the gateway has
  // run less than this (so at most one restart per interval, whatever sends them); 0 = no limit.
  std::int64_t restart_min_interval_s = 60;
  // Device commands (docs/api.md#commands): open commands per device (queued, or sent and not
  // answered; one more is 429 queue_full), finished ones kept per device, TTL default and limit,
  // the ?wait= requests waiting at once (one more is 503 busy). Restart-only.
  struct Commands {
    std::int64_t queue_per_device = 16;
    std::int64_t history_per_device = 100;
    std::int64_t default_ttl_s = 300;
    std::int64_t max_ttl_s = 86'400;
    std::int64_t max_waiters = 256;
  } commands;
  std::string log_level = "info";
  std::vector<std::string> warnings;  // unknown keys and other non-fatal findings
};

// auth.path, or auth.sqlite in the directory of storage.path.
std::string AuthPath(const Config& config);
// The file the first start writes the generated admin password to: admin-password in the
// directory of storage.path.
std::string AdminPasswordPath(const Config& config);
// The live stream's replay ring, written at a clean stop and read (then removed) at the next
// start: stream-ring in the directory of storage.path.
std::string StreamRingPath(const Config& config);

// The space of the file system holding the database, as statvfs and stat see it at start.
struct FileSystemSpace {
  std::int64_t size_bytes = 0;       // the file system's size
  std::int64_t available_bytes = 0;  // free for an unprivileged writer
  std::int64_t db_bytes = 0;         // the database file and its -wal, already ours
};
// storage.max_bytes "auto": 80% of the file system's size, but never more than what leaves a
// reserve free (10% of the size, at most 1GiB) counting what is free now plus the database's
// own files; at least 1MB (the store's minimum). Pure.
std::int64_t AutoMaxBytes(const FileSystemSpace& space);
// The value the store runs with: storage.max_bytes, or AutoMaxBytes() of the file system
// holding storage.path (statvfs on its directory). kUnavailable naming the directory when it
// cannot be read. `auto_chosen` (optional): set to whether the value is the auto one.
Result<std::int64_t> EffectiveMaxBytes(const StorageConfig& storage, bool* auto_chosen = nullptr);

// The config spelling of each enum, as parsed from YAML and shown in gateway/status:
// "seed"/"native" (proto::batch::ProtocolName), "drop_oldest"/"reject_new", "full"/"normal"/"off".
const char* WhenFullName(model::WhenFull when_full);
const char* SynchronousName(model::Synchronous synchronous);

// Parses YAML text. `source` names it in error messages.
Result<Config> Parse(std::string_view yaml_text, std::string_view source);
// Reads and parses a file: a regular file of at most kMaxConfigBytes (kNotFound when missing,
// kInvalidArgument for a larger one, a FIFO or a device).
inline constexpr std::size_t kMaxConfigBytes = 1 << 20;
Result<Config> LoadFile(const std::string& path);
// The built-in seed rules (temperature_max, battery_min, motion) followed by config rules.
std::vector<RuleConfig> EffectiveRules(const Config& config);

// Whether `host` (a name or a numeric address, IPv6 with or without brackets) stays on this
// machine: localhost, 127.0.0.0/8, ::1.
bool IsLoopbackHost(std::string_view host);
// The start-up warnings for transports that cross the network in clear: MQTT without TLS to a
// broker beyond loopback (mqtt.tls.enabled), a plain http:// cloud.api_endpoint beyond loopback.
// One line each, naming the key; none for loopback. (http.listen has its own, where it binds.)
std::vector<std::string> CleartextWarnings(const Config& config);

}  // namespace outpost::gateway::config
