#include "outpost/gateway/config/config.h"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

#include "outpost/base/file.h"
#include "outpost/proto/batch.h"

namespace outpost::gateway::config {
namespace {

// The one spelling of each enum setting: parsed here, printed by the *Name() functions.
using proto::batch::Protocol;
constexpr std::array<std::pair<const char*, Protocol>, 2> kProtocols{
    {{"seed", Protocol::kSeed}, {"native", Protocol::kNative}}};
constexpr std::array<std::pair<const char*, model::WhenFull>, 2> kWhenFull{
    {{"drop_oldest", model::WhenFull::kDropOldest}, {"reject_new", model::WhenFull::kRejectNew}}};
constexpr std::array<std::pair<const char*, model::Synchronous>, 3> kSynchronous{
    {{"full", model::Synchronous::kFull},
     {"normal", model::Synchronous::kNormal},
     {"off", model::Synchronous::kOff}}};

template <typename E, std::size_t N>
const char* NameOf(const std::array<std::pair<const char*, E>, N>& names, E value) {
  for (const auto& [name, v] : names) {
    if (v == value) return name;
  }
  return "?";
}

// Walks one YAML mapping, remembering which keys were read so the rest can be reported as
// unknown. Every getter returns a Status naming the full key path.
class Section {
 public:
  Section(const YAML::Node& node, std::string path, const std::string& source)
      : node_(node), path_(std::move(path)), source_(source) {}

  bool has(const char* key) {
    seen_.insert(key);
    return node_.IsMap() && node_[key] && !node_[key].IsNull();
  }

  Status Error(const char* key, const std::string& what) const {
    return InvalidArgument(source_ + ": " + Key(key) + ": " + what);
  }
  std::string Key(const char* key) const { return path_.empty() ? key : path_ + "." + key; }

  Status String(const char* key, std::string* out) {
    if (!has(key)) return Status::Ok();
    const YAML::Node& n = node_[key];
    if (!n.IsScalar()) return Error(key, "expected a string");
    *out = n.Scalar();
    return Status::Ok();
  }

  // A string that must be one of `names` (in the order the error lists them).
  template <typename E, std::size_t N>
  Status Enum(const char* key, const std::array<std::pair<const char*, E>, N>& names, E* out) {
    std::string text;
    OUTPOST_RETURN_IF_ERROR(String(key, &text));
    if (!has(key)) return Status::Ok();
    for (const auto& [name, value] : names) {
      if (text == name) {
        *out = value;
        return Status::Ok();
      }
    }
    std::string expected;  // "a or b", "a, b or c"
    for (std::size_t i = 0; i < N; ++i) {
      if (i > 0) expected += i + 1 == N ? " or " : ", ";
      expected += names[i].first;
    }
    return Error(key, "expected " + expected + ", got \"" + text + "\"");
  }

  Status Bool(const char* key, bool* out) {
    if (!has(key)) return Status::Ok();
    const YAML::Node& n = node_[key];
    bool v = false;
    if (!n.IsScalar() || !YAML::convert<bool>::decode(n, v)) {
      return Error(key, "expected true or false, got " + Show(n));
    }
    *out = v;
    return Status::Ok();
  }

  Status Double(const char* key, double* out, double lo, double hi) {
    if (!has(key)) return Status::Ok();
    const YAML::Node& n = node_[key];
    double v = 0;
    if (!n.IsScalar() || !YAML::convert<double>::decode(n, v) || !std::isfinite(v)) {
      return Error(key, "expected a number, got " + Show(n));
    }
    if (v < lo || v > hi) return Error(key, RangeText(lo, hi) + ", got " + n.Scalar());
    *out = v;
    return Status::Ok();
  }

  template <typename Int>
  Status Integer(const char* key, Int* out, std::int64_t lo, std::int64_t hi) {
    if (!has(key)) return Status::Ok();
    const YAML::Node& n = node_[key];
    std::int64_t v = 0;
    if (!n.IsScalar() || !YAML::convert<std::int64_t>::decode(n, v)) {
      return Error(key, "expected an integer in " + std::to_string(lo) + ".." + std::to_string(hi) +
                            ", got " + Show(n));
    }
    if (v < lo || v > hi) {
      return Error(key, "expected an integer in " + std::to_string(lo) + ".." + std::to_string(hi) +
                            ", got " + n.Scalar());
    }
    *out = static_cast<Int>(v);
    return Status::Ok();
  }

  // Byte sizes: a plain integer or one with a unit (KB, MB, GB; KiB, MiB, GiB).
  Status Bytes(const char* key, std::int64_t* out) {
    if (!has(key)) return Status::Ok();
    const YAML::Node& n = node_[key];
    if (!n.IsScalar()) return Error(key, "expected a size such as 500MB");
    std::string s = n.Scalar();
    std::size_t i = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    std::string unit = s.substr(i);
    while (!unit.empty() && unit.front() == ' ') unit.erase(unit.begin());
    std::int64_t mult = 0;
    if (unit.empty() || unit == "B")
      mult = 1;
    else if (unit == "KB")
      mult = 1000;
    else if (unit == "MB")
      mult = 1000 * 1000;
    else if (unit == "GB")
      mult = 1000LL * 1000 * 1000;
    else if (unit == "KiB")
      mult = 1024;
    else if (unit == "MiB")
      mult = 1024 * 1024;
    else if (unit == "GiB")
      mult = 1024LL * 1024 * 1024;
    if (i == 0 || i > 12 || mult == 0) {
      return Error(key, "expected a size such as 500MB or 2GiB, got " + Show(n));
    }
    std::int64_t count = std::stoll(s.substr(0, i));
    if (count > std::numeric_limits<std::int64_t>::max() / mult) {
      return Error(key, "size too large: " + s);
    }
    *out = count * mult;
    return Status::Ok();
  }

  Section Child(const char* key) {
    seen_.insert(key);
    return Section(node_.IsMap() ? node_[key] : YAML::Node(), Key(key), source_);
  }

  const YAML::Node& node() const { return node_; }
  const std::string& path() const { return path_; }

  // A present key that is not a mapping.
  Status RequireMapOrAbsent() const {
    if (node_ && !node_.IsNull() && !node_.IsMap()) {
      return InvalidArgument(source_ + ": " + path_ + ": expected a mapping of settings");
    }
    return Status::Ok();
  }

  void ReportUnknown(std::vector<std::string>* warnings) const {
    if (!node_.IsMap()) return;
    for (const auto& kv : node_) {
      std::string k = kv.first.as<std::string>("?");
      if (!seen_.count(k))
        warnings->push_back(source_ + ": unknown key " + Key(k.c_str()) + " (ignored)");
    }
  }

 private:
  static std::string Show(const YAML::Node& n) {
    if (n.IsScalar()) return "\"" + n.Scalar() + "\"";
    if (n.IsSequence()) return "a list";
    if (n.IsMap()) return "a mapping";
    return "nothing";
  }
  static std::string RangeText(double lo, double hi) {
    std::ostringstream os;
    os << "expected a number in " << lo << ".." << hi;
    return os.str();
  }

  YAML::Node node_;
  std::string path_;
  const std::string& source_;
  std::set<std::string> seen_;
};

constexpr double kHuge = 1e15;
constexpr std::int64_t kDay = 86'400;

Status ParseRule(const YAML::Node& node, std::size_t index, const std::string& source,
                 RuleConfig* rule) {
  Section r(node, "rules[" + std::to_string(index) + "]", source);
  if (!node.IsMap()) return InvalidArgument(source + ": " + r.path() + ": expected a mapping");
  OUTPOST_RETURN_IF_ERROR(r.String("name", &rule->name));
  OUTPOST_RETURN_IF_ERROR(r.String("metric", &rule->metric));
  if (rule->name.empty()) return r.Error("name", "required");
  if (rule->name.size() > proto::batch::kMaxRuleNameBytes) {  // it is part of every alert id
    return r.Error("name", "longer than " + std::to_string(proto::batch::kMaxRuleNameBytes) +
                               " bytes (the cloud's alert id limit)");
  }
  if (rule->metric.empty()) return r.Error("metric", "required");
  bool above = r.has("above"), below = r.has("below");
  if (above == below) return r.Error("above", "give exactly one of above or below");
  if (above) {
    rule->comparison = Comparison::kAbove;
    OUTPOST_RETURN_IF_ERROR(r.Double("above", &rule->threshold, -kHuge, kHuge));
  } else {
    rule->comparison = Comparison::kBelow;
    OUTPOST_RETURN_IF_ERROR(r.Double("below", &rule->threshold, -kHuge, kHuge));
  }
  OUTPOST_RETURN_IF_ERROR(r.Double("hysteresis", &rule->hysteresis, 0, kHuge));
  OUTPOST_RETURN_IF_ERROR(r.Integer("for_s", &rule->for_s, 0, 7 * kDay));
  OUTPOST_RETURN_IF_ERROR(r.String("severity", &rule->severity));
  if (rule->severity != "info" && rule->severity != "warning" && rule->severity != "critical") {
    return r.Error("severity",
                   "expected info, warning or critical, got \"" + rule->severity + "\"");
  }
  OUTPOST_RETURN_IF_ERROR(r.String("message", &rule->message));
  if (r.has("devices")) {
    const YAML::Node& d = node["devices"];
    if (!d.IsSequence()) return r.Error("devices", "expected a list of device ids");
    for (const auto& item : d) {
      if (!item.IsScalar()) return r.Error("devices", "expected a list of device ids");
      rule->devices.push_back(item.Scalar());
    }
  }
  std::vector<std::string> unknown;
  r.ReportUnknown(&unknown);
  if (!unknown.empty()) {  // a typo in a rule would silently change it: refuse instead
    std::string m = unknown.front();
    return InvalidArgument(m.substr(0, m.rfind(" (ignored)")));
  }
  return Status::Ok();
}

Status ParseRoot(const YAML::Node& root, Config* c) {
  Section top(root, "", c->source);
  if (!root.IsMap())
    return InvalidArgument(c->source + ": expected a mapping of sections at the top");

  Section gw = top.Child("gateway");
  OUTPOST_RETURN_IF_ERROR(gw.RequireMapOrAbsent());
  OUTPOST_RETURN_IF_ERROR(gw.String("id", &c->gateway_id));
  if (!proto::batch::IsValidId(c->gateway_id)) {  // in topics, idempotency keys, alert ids
    return gw.Error("id", "expected 1.." + std::to_string(proto::batch::kMaxIdBytes) +
                              " characters of [A-Za-z0-9_.:-] (the cloud refuses others), got \"" +
                              c->gateway_id + "\"");
  }
  gw.has("start_time");  // the seed's key; uptime is measured, not configured
  OUTPOST_RETURN_IF_ERROR(gw.Integer("status_interval_s", &c->status_interval_s, 1, kDay));
  OUTPOST_RETURN_IF_ERROR(gw.String("log_level", &c->log_level));
  gw.ReportUnknown(&c->warnings);

  Section m = top.Child("mqtt");
  OUTPOST_RETURN_IF_ERROR(m.RequireMapOrAbsent());
  OUTPOST_RETURN_IF_ERROR(m.String("host", &c->mqtt.host));
  OUTPOST_RETURN_IF_ERROR(m.Integer("port", &c->mqtt.port, 1, 65535));
  OUTPOST_RETURN_IF_ERROR(m.String("username", &c->mqtt.username));
  OUTPOST_RETURN_IF_ERROR(m.String("password", &c->mqtt.password));
  OUTPOST_RETURN_IF_ERROR(m.String("client_id", &c->mqtt.client_id));
  OUTPOST_RETURN_IF_ERROR(m.Integer("keepalive_s", &c->mqtt.keepalive_s, 0, 65535));
  OUTPOST_RETURN_IF_ERROR(m.Integer("qos", &c->mqtt.qos, 0, 1));
  OUTPOST_RETURN_IF_ERROR(m.Integer("reconnect_base_ms", &c->mqtt.reconnect_base_ms, 1, 60'000));
  OUTPOST_RETURN_IF_ERROR(m.Integer("reconnect_cap_ms", &c->mqtt.reconnect_cap_ms, 1, 3'600'000));
  OUTPOST_RETURN_IF_ERROR(
      m.Integer("max_packet_bytes", &c->mqtt.max_packet_bytes, 4096, 268'435'455));
  Section tls = m.Child("tls");
  OUTPOST_RETURN_IF_ERROR(tls.RequireMapOrAbsent());
  OUTPOST_RETURN_IF_ERROR(tls.Bool("enabled", &c->mqtt.tls.enabled));
  OUTPOST_RETURN_IF_ERROR(tls.String("ca_file", &c->mqtt.tls.ca_file));
  OUTPOST_RETURN_IF_ERROR(tls.String("cert_file", &c->mqtt.tls.cert_file));
  OUTPOST_RETURN_IF_ERROR(tls.String("key_file", &c->mqtt.tls.key_file));
  OUTPOST_RETURN_IF_ERROR(tls.Bool("verify_peer", &c->mqtt.tls.verify_peer));
  OUTPOST_RETURN_IF_ERROR(tls.String("crl_file", &c->mqtt.tls.crl_file));
  OUTPOST_RETURN_IF_ERROR(tls.String("registry_file", &c->mqtt.tls.registry_file));
  OUTPOST_RETURN_IF_ERROR(
      tls.Integer("expiry_alert_days", &c->mqtt.tls.expiry_alert_days, 1, 3650));
  if (c->mqtt.tls.cert_file.empty() != c->mqtt.tls.key_file.empty()) {
    return tls.Error("cert_file", "cert_file and key_file go together");
  }
  tls.ReportUnknown(&c->warnings);
  m.ReportUnknown(&c->warnings);
  if (c->mqtt.client_id.empty()) c->mqtt.client_id = "outpost-gateway-" + c->gateway_id;

  Section cl = top.Child("cloud");
  OUTPOST_RETURN_IF_ERROR(cl.RequireMapOrAbsent());
  OUTPOST_RETURN_IF_ERROR(cl.String("api_endpoint", &c->cloud.api_endpoint));
  OUTPOST_RETURN_IF_ERROR(cl.String("api_key", &c->cloud.api_key));
  OUTPOST_RETURN_IF_ERROR(cl.String("api_key_file", &c->cloud.api_key_file));
  OUTPOST_RETURN_IF_ERROR(cl.Enum("protocol", kProtocols, &c->cloud.protocol));
  if (!c->cloud.api_endpoint.empty() && c->cloud.api_endpoint.rfind("http://", 0) != 0 &&
      c->cloud.api_endpoint.rfind("https://", 0) != 0) {
    return cl.Error("api_endpoint",
                    "expected an http:// or https:// URL, got \"" + c->cloud.api_endpoint + "\"");
  }
  OUTPOST_RETURN_IF_ERROR(cl.String("ca_file", &c->cloud.ca_file));
  OUTPOST_RETURN_IF_ERROR(cl.Integer("sync_interval_s", &c->cloud.sync_interval_s, 1, kDay));
  OUTPOST_RETURN_IF_ERROR(cl.Integer("batch_delay_ms", &c->cloud.batch_delay_ms, 0, 3'600'000));
  OUTPOST_RETURN_IF_ERROR(
      cl.Integer("batch_max_readings", &c->cloud.batch_max_readings, 1, 100'000));
  OUTPOST_RETURN_IF_ERROR(cl.Bytes("batch_max_bytes", &c->cloud.batch_max_bytes));
  if (c->cloud.batch_max_bytes < 1024 || c->cloud.batch_max_bytes > (16 << 20)) {
    return cl.Error("batch_max_bytes", "must be between 1KiB and 16MiB (the cloud's limit)");
  }
  OUTPOST_RETURN_IF_ERROR(cl.Double("batch_reading_share", &c->cloud.batch_reading_share, 0, 1));
  OUTPOST_RETURN_IF_ERROR(cl.Bytes("quota_bytes", &c->cloud.quota_bytes));
  if (c->cloud.quota_bytes < 1024) return cl.Error("quota_bytes", "must be at least 1KiB");
  OUTPOST_RETURN_IF_ERROR(cl.Enum("when_full", kWhenFull, &c->cloud.when_full));
  OUTPOST_RETURN_IF_ERROR(cl.Integer("expire_after_s", &c->cloud.expire_after_s, 0, 3650 * kDay));
  OUTPOST_RETURN_IF_ERROR(
      cl.Integer("connect_timeout_ms", &c->cloud.connect_timeout_ms, 1, 600'000));
  OUTPOST_RETURN_IF_ERROR(
      cl.Integer("request_timeout_ms", &c->cloud.request_timeout_ms, 1, 3'600'000));
  OUTPOST_RETURN_IF_ERROR(cl.Integer("retry_base_ms", &c->cloud.retry_base_ms, 1, 3'600'000));
  OUTPOST_RETURN_IF_ERROR(cl.Integer("retry_cap_ms", &c->cloud.retry_cap_ms, 1, 86'400'000));
  if (c->cloud.retry_cap_ms < c->cloud.retry_base_ms) {
    return cl.Error("retry_cap_ms", "must be at least cloud.retry_base_ms");
  }
  cl.ReportUnknown(&c->warnings);

  Section th = top.Child("thresholds");
  OUTPOST_RETURN_IF_ERROR(th.RequireMapOrAbsent());
  for (auto [key, slot] : {std::pair{"temperature_max", &c->temperature_max},
                           std::pair{"battery_min", &c->battery_min}}) {
    if (th.has(key)) {
      if (th.node()[key].IsScalar() && th.node()[key].Scalar() == "off") {
        slot->reset();
      } else {
        double v = 0;
        OUTPOST_RETURN_IF_ERROR(th.Double(key, &v, -kHuge, kHuge));
        *slot = v;
      }
    }
  }
  th.ReportUnknown(&c->warnings);

  Section f = top.Child("features");
  OUTPOST_RETURN_IF_ERROR(f.RequireMapOrAbsent());
  OUTPOST_RETURN_IF_ERROR(f.Bool("motion_alerts", &c->motion_alerts));
  OUTPOST_RETURN_IF_ERROR(f.Bool("offline_alerts", &c->offline_alerts));
  f.ReportUnknown(&c->warnings);

  Section s = top.Child("storage");
  OUTPOST_RETURN_IF_ERROR(s.RequireMapOrAbsent());
  OUTPOST_RETURN_IF_ERROR(s.String("path", &c->storage.path));
  if (c->storage.path.empty()) return s.Error("path", "must not be empty");
  OUTPOST_RETURN_IF_ERROR(s.Enum("synchronous", kSynchronous, &c->storage.synchronous));
  OUTPOST_RETURN_IF_ERROR(s.Integer("retention_days", &c->storage.retention_days, 0, 36500));
  if (s.has("max_bytes") && s.node()["max_bytes"].IsScalar() &&
      s.node()["max_bytes"].Scalar() == "auto") {
    c->storage.max_bytes = kMaxBytesAuto;
  } else {
    OUTPOST_RETURN_IF_ERROR(s.Bytes("max_bytes", &c->storage.max_bytes));
    if (c->storage.max_bytes != kMaxBytesAuto && c->storage.max_bytes != 0 &&
        c->storage.max_bytes < 1'000'000) {
      return s.Error("max_bytes", "must be auto, 0 (unbounded) or at least 1MB");
    }
  }
  OUTPOST_RETURN_IF_ERROR(s.Bytes("cache_bytes", &c->storage.cache_bytes));
  if (c->storage.cache_bytes < (1 << 20)) return s.Error("cache_bytes", "must be at least 1MiB");
  OUTPOST_RETURN_IF_ERROR(
      s.Integer("queue_max_readings", &c->storage.queue_max_readings, 1, 10'000'000));
  s.ReportUnknown(&c->warnings);

  Section in = top.Child("ingest");
  OUTPOST_RETURN_IF_ERROR(in.RequireMapOrAbsent());
  OUTPOST_RETURN_IF_ERROR(
      in.Integer("max_payload_bytes", &c->ingest.max_payload_bytes, 64, 1 << 20));
  OUTPOST_RETURN_IF_ERROR(in.Integer("max_depth", &c->ingest.max_depth, 1, 32));
  OUTPOST_RETURN_IF_ERROR(
      in.Integer("max_metrics", &c->ingest.max_metrics, 1,
                 static_cast<std::int64_t>(proto::batch::kMaxMetricsPerReading)));
  OUTPOST_RETURN_IF_ERROR(in.Double("device_rate_per_s", &c->ingest.device_rate_per_s, 0, 1e6));
  OUTPOST_RETURN_IF_ERROR(in.Double("device_burst", &c->ingest.device_burst, 1, 1e7));
  OUTPOST_RETURN_IF_ERROR(
      in.Integer("device_backlog_max_s", &c->ingest.device_backlog_max_s, 0, 30 * kDay));
  OUTPOST_RETURN_IF_ERROR(
      in.Double("status_rate_per_min", &c->ingest.status_rate_per_min, 0, 60'000));
  OUTPOST_RETURN_IF_ERROR(in.Double("status_burst", &c->ingest.status_burst, 1, 1e6));
  OUTPOST_RETURN_IF_ERROR(
      in.Integer("max_seq_jump", &c->ingest.max_seq_jump, 1, std::int64_t{1} << 62));
  OUTPOST_RETURN_IF_ERROR(
      in.Integer("quarantine_max_rows", &c->ingest.quarantine_max_rows, 0, 1'000'000));
  OUTPOST_RETURN_IF_ERROR(in.Integer("quarantine_max_payload_bytes",
                                     &c->ingest.quarantine_max_payload_bytes, 0, 1 << 20));
  OUTPOST_RETURN_IF_ERROR(
      in.Integer("dedupe_window", &c->ingest.dedupe_window, 64, std::int64_t{1} << 40));
  in.ReportUnknown(&c->warnings);

  Section cmd = top.Child("commands");
  OUTPOST_RETURN_IF_ERROR(cmd.RequireMapOrAbsent());
  OUTPOST_RETURN_IF_ERROR(
      cmd.Integer("restart_min_interval_s", &c->restart_min_interval_s, 0, kDay));
  OUTPOST_RETURN_IF_ERROR(
      cmd.Integer("queue_per_device", &c->commands.queue_per_device, 1, 10'000));
  OUTPOST_RETURN_IF_ERROR(
      cmd.Integer("history_per_device", &c->commands.history_per_device, 1, 100'000));
  OUTPOST_RETURN_IF_ERROR(cmd.Integer("max_ttl_s", &c->commands.max_ttl_s, 1, 30 * kDay));
  OUTPOST_RETURN_IF_ERROR(
      cmd.Integer("default_ttl_s", &c->commands.default_ttl_s, 1, c->commands.max_ttl_s));
  OUTPOST_RETURN_IF_ERROR(cmd.Integer("max_waiters", &c->commands.max_waiters, 0, 100'000));
  if (c->commands.history_per_device < c->commands.queue_per_device) {
    return InvalidArgument(c->source + ": commands.history_per_device (" +
                           std::to_string(c->commands.history_per_device) +
                           ") must be at least commands.queue_per_device (" +
                           std::to_string(c->commands.queue_per_device) + ")");
  }
  cmd.ReportUnknown(&c->warnings);

  Section reg = top.Child("registry");
  OUTPOST_RETURN_IF_ERROR(reg.RequireMapOrAbsent());
  OUTPOST_RETURN_IF_ERROR(
      reg.Integer("offline_after_s", &c->registry.offline_after_s, 1, 30 * kDay));
  OUTPOST_RETURN_IF_ERROR(
      reg.Integer("sleeping_grace_s", &c->registry.sleeping_grace_s, 1, 30 * kDay));
  OUTPOST_RETURN_IF_ERROR(reg.Integer("max_devices", &c->registry.max_devices, 1, 1'000'000));
  OUTPOST_RETURN_IF_ERROR(reg.Integer("evict_after_s", &c->registry.evict_after_s, 0, 365 * kDay));
  reg.ReportUnknown(&c->warnings);

  Section http = top.Child("http");
  OUTPOST_RETURN_IF_ERROR(http.RequireMapOrAbsent());
  OUTPOST_RETURN_IF_ERROR(http.String("listen", &c->http.listen));
  if (!c->http.listen.empty()) {
    auto listen = ParseListen(c->http.listen);
    if (!listen.ok()) return http.Error("listen", listen.status().message());
    c->http.host = listen->first;
    c->http.port = listen->second;
  }
  OUTPOST_RETURN_IF_ERROR(http.Integer("max_connections", &c->http.max_connections, 1, 1'000'000));
  OUTPOST_RETURN_IF_ERROR(
      http.Integer("header_timeout_ms", &c->http.header_timeout_ms, 1, 3'600'000));
  OUTPOST_RETURN_IF_ERROR(http.Integer("idle_timeout_ms", &c->http.idle_timeout_ms, 1, 3'600'000));
  OUTPOST_RETURN_IF_ERROR(
      http.Integer("stream_replay_events", &c->http.stream_replay_events, 1, 1'000'000));
  OUTPOST_RETURN_IF_ERROR(
      http.Integer("stream_buffer_bytes", &c->http.stream_buffer_bytes, 4096, 1LL << 30));
  OUTPOST_RETURN_IF_ERROR(http.String("tls_cert_file", &c->http.tls_cert_file));
  OUTPOST_RETURN_IF_ERROR(http.String("tls_key_file", &c->http.tls_key_file));
  if (c->http.tls_cert_file.empty() != c->http.tls_key_file.empty()) {
    return http.Error(c->http.tls_cert_file.empty() ? "tls_cert_file" : "tls_key_file",
                      "set both http.tls_cert_file and http.tls_key_file, or neither");
  }
  http.ReportUnknown(&c->warnings);

  Section auth = top.Child("auth");
  OUTPOST_RETURN_IF_ERROR(auth.RequireMapOrAbsent());
  OUTPOST_RETURN_IF_ERROR(auth.String("path", &c->auth.path));
  OUTPOST_RETURN_IF_ERROR(auth.Integer("session_idle_s", &c->auth.session_idle_s, 60, 30 * kDay));
  OUTPOST_RETURN_IF_ERROR(auth.Integer("session_max_s", &c->auth.session_max_s, 60, 365 * kDay));
  OUTPOST_RETURN_IF_ERROR(auth.Integer("max_sessions", &c->auth.max_sessions, 1, 1'000'000));
  OUTPOST_RETURN_IF_ERROR(
      auth.Integer("login_max_failures", &c->auth.login_max_failures, 1, 1'000'000));
  OUTPOST_RETURN_IF_ERROR(auth.Integer("login_window_s", &c->auth.login_window_s, 1, kDay));
  OUTPOST_RETURN_IF_ERROR(auth.Integer("login_lockout_s", &c->auth.login_lockout_s, 1, kDay));
  OUTPOST_RETURN_IF_ERROR(
      auth.Integer("login_tracked_keys", &c->auth.login_tracked_keys, 1, 10'000'000));
  OUTPOST_RETURN_IF_ERROR(auth.Integer("max_verifications", &c->auth.max_verifications, 1, 64));
  OUTPOST_RETURN_IF_ERROR(
      auth.Integer("audit_max_rows", &c->auth.audit_max_rows, 1, std::int64_t{1} << 40));
  auth.ReportUnknown(&c->warnings);

  if (top.has("rules")) {
    const YAML::Node& rules = root["rules"];
    if (!rules.IsSequence()) return top.Error("rules", "expected a list of rules");
    std::set<std::string> names;
    for (std::size_t i = 0; i < rules.size(); ++i) {
      RuleConfig rule;
      OUTPOST_RETURN_IF_ERROR(ParseRule(rules[i], i, c->source, &rule));
      if (!names.insert(rule.name).second) {
        return InvalidArgument(c->source + ": rules[" + std::to_string(i) + "].name: \"" +
                               rule.name + "\" is used twice");
      }
      c->rules.push_back(std::move(rule));
    }
  }
  top.ReportUnknown(&c->warnings);
  return Status::Ok();
}

}  // namespace

Result<std::pair<std::string, std::uint16_t>> ParseListen(std::string_view listen) {
  const std::string text(listen);
  const std::string expected =
      "expected host:port with a numeric host (e.g. 0.0.0.0:8080, "
      "127.0.0.1:0, [::]:8080; \"\" disables the API), got \"" +
      text + "\"";
  std::string host, port;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return InvalidArgument(expected);
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    in6_addr a6{};
    if (::inet_pton(AF_INET6, host.c_str(), &a6) != 1) return InvalidArgument(expected);
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string::npos) return InvalidArgument(expected);
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    in_addr a4{};
    if (::inet_pton(AF_INET, host.c_str(), &a4) != 1) return InvalidArgument(expected);
  }
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char ch) {
        return std::isdigit(static_cast<unsigned char>(ch));
      })) {
    return InvalidArgument(expected);
  }
  const long p = std::stol(port);
  if (p > 65535) return InvalidArgument(expected);
  return std::make_pair(host, static_cast<std::uint16_t>(p));
}

Result<Config> Parse(std::string_view yaml_text, std::string_view source) {
  Config c;
  c.source = std::string(source);
  try {
    YAML::Node root = YAML::Load(std::string(yaml_text));
    if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);  // empty file: all defaults
    Status s = ParseRoot(root, &c);
    if (!s.ok()) return s;
  } catch (const YAML::Exception& e) {
    return InvalidArgument(c.source + ": line " + std::to_string(e.mark.line + 1) + ", column " +
                           std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  if (c.mqtt.reconnect_cap_ms < c.mqtt.reconnect_base_ms) {
    return InvalidArgument(c.source + ": mqtt.reconnect_cap_ms: must be >= mqtt.reconnect_base_ms");
  }
  return c;
}

Result<Config> LoadFile(const std::string& path) {
  // Bounded: a FIFO, /dev/zero or a huge file given as --config is an error, not a hang.
  auto text = ReadFile(path, kMaxConfigBytes);
  if (!text.ok()) {
    if (text.status().code() == Code::kNotFound) {
      return NotFound(text.status().message() + " (the config file)");
    }
    return InvalidArgument("config file " + text.status().message());
  }
  return Parse(*text, path);
}

std::vector<RuleConfig> EffectiveRules(const Config& config) {
  auto seed_rule = [](const char* name, const char* metric, Comparison comparison, double threshold,
                      double hysteresis, const char* message) {
    RuleConfig r;
    r.name = name;
    r.metric = metric;
    r.comparison = comparison;
    r.threshold = threshold;
    r.hysteresis = hysteresis;
    r.message = message;
    return r;
  };
  std::vector<RuleConfig> rules;
  if (config.temperature_max) {
    rules.push_back(seed_rule("temperature_max", "temperature", Comparison::kAbove,
                              *config.temperature_max, 0.5,
                              "High temperature alert: {value}°C from {device}"));
  }
  if (config.battery_min) {
    rules.push_back(seed_rule("battery_min", "battery", Comparison::kBelow, *config.battery_min, 2,
                              "Low battery alert: {value}% on {device}"));
  }
  if (config.motion_alerts) {  // booleans are 0/1: above 0.5 is "true"
    rules.push_back(
        seed_rule("motion", "motion", Comparison::kAbove, 0.5, 0, "Motion detected by {device}"));
  }
  for (const auto& r : config.rules) rules.push_back(r);
  return rules;
}

const char* WhenFullName(model::WhenFull when_full) { return NameOf(kWhenFull, when_full); }
const char* SynchronousName(model::Synchronous synchronous) {
  return NameOf(kSynchronous, synchronous);
}

std::int64_t CloudConfig::linger_ms() const {
  return std::min<std::int64_t>(batch_delay_ms, sync_interval_s * 1000);
}

Result<std::string> ResolveCloudToken(const CloudConfig& cloud, const char* env_value) {
  auto trim = [](std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
  };
  if (env_value != nullptr && *env_value != '\0') return trim(env_value);
  if (!cloud.api_key_file.empty()) {
    auto text = ReadFile(cloud.api_key_file, kMaxTokenFileBytes);
    if (!text.ok()) return InvalidArgument("cloud.api_key_file: " + text.status().message());
    std::string line = trim(text->substr(0, text->find('\n')));
    if (line.empty())
      return InvalidArgument("cloud.api_key_file: " + cloud.api_key_file + " is empty");
    return line;
  }
  return cloud.api_key;
}

std::int64_t AutoMaxBytes(const FileSystemSpace& space) {
  constexpr std::int64_t kMinimum = 1'000'000;
  constexpr std::int64_t kReserveCap = 1LL << 30;
  const std::int64_t share = space.size_bytes / 10 * 8;
  const std::int64_t reserve = std::min(space.size_bytes / 10, kReserveCap);
  const std::int64_t room = space.available_bytes + space.db_bytes - reserve;
  return std::max(kMinimum, std::min(share, room));
}

Result<std::int64_t> EffectiveMaxBytes(const StorageConfig& storage, bool* auto_chosen) {
  if (auto_chosen != nullptr) *auto_chosen = storage.max_bytes == kMaxBytesAuto;
  if (storage.max_bytes != kMaxBytesAuto) return storage.max_bytes;
  const std::string& path = storage.path;
  const std::size_t slash = path.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  struct statvfs fs {};
  if (::statvfs(dir.c_str(), &fs) != 0) {
    return Unavailable("storage.max_bytes auto: statvfs " + dir + ": " + std::strerror(errno) +
                       " (does the directory of storage.path exist?)");
  }
  FileSystemSpace space;
  space.size_bytes =
      static_cast<std::int64_t>(fs.f_blocks) * static_cast<std::int64_t>(fs.f_frsize);
  space.available_bytes =
      static_cast<std::int64_t>(fs.f_bavail) * static_cast<std::int64_t>(fs.f_frsize);
  for (const std::string& f : {path, path + "-wal"}) {
    struct stat st {};
    if (::stat(f.c_str(), &st) == 0) space.db_bytes += static_cast<std::int64_t>(st.st_size);
  }
  return AutoMaxBytes(space);
}

}  // namespace outpost::gateway::config

namespace outpost::gateway::config {

namespace {
std::string BesideDatabase(const Config& config, std::string_view name) {
  const std::string& db = config.storage.path;
  const std::size_t slash = db.rfind('/');
  return slash == std::string::npos ? std::string(name)
                                    : db.substr(0, slash + 1) + std::string(name);
}
}  // namespace

std::string AuthPath(const Config& config) {
  return config.auth.path.empty() ? BesideDatabase(config, "auth.sqlite") : config.auth.path;
}

std::string AdminPasswordPath(const Config& config) {
  return BesideDatabase(config, "admin-password");
}

std::string StreamRingPath(const Config& config) { return BesideDatabase(config, "stream-ring"); }

bool IsLoopbackHost(std::string_view host) {
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost" || host == "localhost." || host == "::1" || host == "0:0:0:0:0:0:0:1") {
    return true;
  }
  if (host.size() > 10 && host.substr(host.size() - 10) == ".localhost") return true;
  const std::string h(host);
  in_addr v4{};
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  return inet_pton(AF_INET6, h.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

std::vector<std::string> CleartextWarnings(const Config& config) {
  std::vector<std::string> out;
  if (!config.mqtt.tls.enabled && !IsLoopbackHost(config.mqtt.host)) {
    out.push_back("mqtt.host " + config.mqtt.host +
                  " is beyond this machine and mqtt.tls.enabled is false: readings, commands "
                  "and any mqtt.password cross the network in clear (set mqtt.tls.enabled with "
                  "mqtt.tls.ca_file, cert_file and key_file; docs/security.md)");
  }
  constexpr std::string_view kHttp = "http://";
  const std::string& e = config.cloud.api_endpoint;
  if (e.size() > kHttp.size() && e.compare(0, kHttp.size(), kHttp) == 0) {
    std::string_view rest = std::string_view(e).substr(kHttp.size());
    rest = rest.substr(0, rest.find_first_of("/?#"));
    if (const auto at = rest.rfind('@'); at != std::string_view::npos) rest = rest.substr(at + 1);
    std::string_view host = rest;
    if (!rest.empty() && rest.front() == '[') {
      host = rest.substr(0, rest.find(']') + 1);
    } else if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
      host = rest.substr(0, colon);
    }
    if (!IsLoopbackHost(host)) {
      out.push_back("cloud.api_endpoint " + e +
                    " is plain http:// beyond this machine: the cloud API key and every reading "
                    "cross the network in clear (use an https:// endpoint)");
    }
  }
  return out;
}

}  // namespace outpost::gateway::config
