#include "outpost/gateway/uplink/codec.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <cmath>
#include <iterator>

namespace outpost::gateway::uplink {
namespace {

void AppendNumber(std::string* out, double v) {
  // Shortest round-trip form; integers print without a fraction.
  fmt::format_to(std::back_inserter(*out), "{}", v);
}

void AppendInt(std::string* out, std::int64_t v) {
  fmt::format_to(std::back_inserter(*out), "{}", v);
}

// Keys of a seed reading the cloud treats as identity or ignores: a metric by such a name
// would be misread, so it is skipped (and counted).
bool ReservedSeedKey(std::string_view k) {
  static constexpr std::string_view kReserved[] = {"device_id", "deviceId",   "timestamp",  "ts_ms",
                                                   "boot",      "seq",        "ts_source",  "id",
                                                   "synced",    "created_at", "received_ms"};
  for (std::string_view r : kReserved) {
    if (k == r) return true;
  }
  return false;
}

}  // namespace

const char* ProtocolName(Protocol p) { return p == Protocol::kNative ? "native" : "seed"; }
const char* ProtocolPath(Protocol p) {
  return p == Protocol::kNative ? "/v1/batches" : "/sensor-data/batch";
}

void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      default:
        if (c < 0x20) {
          fmt::format_to(std::back_inserter(*out), "\\u{:04x}", c);
        } else {
          out->push_back(ch);
        }
    }
  }
  out->push_back('"');
}

std::string EncodeReadingItem(const store::ReadingRow& r) {
  std::string out;
  out.reserve(64 + r.metrics.size() * 24);
  out += "{\"device_id\":";
  AppendJsonString(&out, r.device_id);
  if (r.has_seq) {
    out += ",\"boot\":";
    AppendInt(&out, r.boot);
    out += ",\"seq\":";
    fmt::format_to(std::back_inserter(out), "{}", r.seq);
  }
  out += ",\"ts_ms\":";
  AppendInt(&out, r.ts_ms);
  out += r.ts_from_device ? ",\"ts_source\":\"device\"" : ",\"ts_source\":\"gateway\"";
  out += ",\"metrics\":{";
  bool first = true;
  for (const auto& m : r.metrics) {
    if (!m.is_bool && !std::isfinite(m.value)) continue;
    if (!first) out += ',';
    first = false;
    AppendJsonString(&out, m.name);
    out += ':';
    if (m.is_bool) {
      out += m.value != 0 ? "true" : "false";
    } else {
      AppendNumber(&out, m.value);
    }
  }
  out += "}}";
  return out;
}

std::string EncodeAlertItem(const store::AlertRow& a, std::string_view gateway_id) {
  const bool raised = a.cleared_ms == 0;
  std::string out = "{\"id\":";
  std::string id = std::string(gateway_id) + ":" + a.alert_id + ":" + std::to_string(a.raised_ms);
  if (!raised) id += ":cleared";
  AppendJsonString(&out, id);
  out += ",\"device_id\":";
  AppendJsonString(&out, a.device_id);
  out += ",\"rule\":";
  AppendJsonString(&out, a.rule);
  out += raised ? ",\"state\":\"raised\"" : ",\"state\":\"cleared\"";
  out += ",\"message\":";
  AppendJsonString(&out, a.message);
  if (std::isfinite(a.value)) {
    out += ",\"value\":";
    AppendNumber(&out, a.value);
  }
  out += ",\"ts_ms\":";
  AppendInt(&out, raised ? a.raised_ms : a.cleared_ms);
  out += '}';
  return out;
}

std::string EncodeStatusItem(std::string_view device_id, std::string_view status,
                             std::int64_t ts_ms) {
  std::string out = "{\"device_id\":";
  AppendJsonString(&out, device_id);
  out += ",\"status\":";
  AppendJsonString(&out, status);
  out += ",\"ts_ms\":";
  AppendInt(&out, ts_ms);
  out += '}';
  return out;
}

namespace {

// One native reading item -> the seed's flat object. Items were written by this module, but
// they come back from a file: parsed as untrusted (simdjson DOM: ~10x nlohmann, which made the
// seed conversion the largest cost of draining a backlog), re-emitted field by field.
Status AppendSeedReading(std::string* out, const store::OutboxEntry& e,
                         simdjson::dom::parser& parser, Body* body) {
  auto bad = [&](const char* what) {
    return DataLoss("outbox item " + std::to_string(e.id) + ": " + what);
  };
  simdjson::dom::object obj;
  if (parser.parse(e.body.data(), e.body.size()).get_object().get(obj) != simdjson::SUCCESS) {
    return bad("not a JSON object");
  }
  std::string_view dev;
  std::int64_t ts_ms = 0;
  if (obj["device_id"].get_string().get(dev) != simdjson::SUCCESS) {
    return bad("device_id: expected a string");
  }
  if (obj["ts_ms"].get_int64().get(ts_ms) != simdjson::SUCCESS) {
    return bad("ts_ms: expected an integer");
  }
  *out += "{\"device_id\":";
  AppendJsonString(out, dev);
  *out += ",\"timestamp\":";
  // Seconds with the milliseconds exact: "1764201600.123".
  const std::int64_t sec = ts_ms >= 0 ? ts_ms / 1000 : -((-ts_ms + 999) / 1000);
  const std::int64_t ms = ts_ms - sec * 1000;
  fmt::format_to(std::back_inserter(*out), "{}.{:03d}", sec, ms);
  *out += ",\"ts_ms\":";
  AppendInt(out, ts_ms);
  std::string_view src;
  if (obj["ts_source"].get_string().get(src) == simdjson::SUCCESS) {
    *out += ",\"ts_source\":";
    AppendJsonString(out, src);
  }
  for (const char* k : {"boot", "seq"}) {
    std::uint64_t v = 0;
    if (obj[k].get_uint64().get(v) == simdjson::SUCCESS) {
      *out += ",\"";
      *out += k;
      *out += "\":";
      fmt::format_to(std::back_inserter(*out), "{}", v);
    }
  }
  simdjson::dom::object metrics;
  if (obj["metrics"].get_object().get(metrics) == simdjson::SUCCESS) {
    for (auto field : metrics) {
      if (ReservedSeedKey(field.key)) {
        ++body->reserved_metrics;
        continue;
      }
      bool b = false;
      double d = 0;
      if (field.value.get_bool().get(b) == simdjson::SUCCESS) {
        *out += ',';
        AppendJsonString(out, field.key);
        *out += b ? ":true" : ":false";
      } else if (field.value.get_double().get(d) == simdjson::SUCCESS && std::isfinite(d)) {
        *out += ',';
        AppendJsonString(out, field.key);
        *out += ':';
        AppendNumber(out, d);
      }
    }
  }
  *out += '}';
  return Status::Ok();
}

}  // namespace

Result<Body> BuildBody(Protocol protocol, std::string_view gateway_id,
                       const std::vector<store::OutboxEntry>& items) {
  Body b;
  std::size_t total = 0;
  for (const auto& e : items) total += e.body.size() + 1;
  if (protocol == Protocol::kSeed) {
    b.json.reserve(total + total / 4 + 16);
    b.json = "{\"readings\":[";
    simdjson::dom::parser parser;
    bool first = true;
    for (const auto& e : items) {
      if (e.kind != store::OutboxKind::kReading) {
        ++b.left_out;
        continue;
      }
      if (!first) b.json += ',';
      first = false;
      OUTPOST_RETURN_IF_ERROR(AppendSeedReading(&b.json, e, parser, &b));
      ++b.readings;
    }
    b.json += "]}";
    return b;
  }
  // Native: items are already in the wire shape; concatenate them per array.
  b.json.reserve(total + gateway_id.size() + 64);
  b.json = "{\"gateway_id\":";
  AppendJsonString(&b.json, gateway_id);
  const struct {
    store::OutboxKind kind;
    const char* name;
    std::int64_t* count;
  } arrays[] = {{store::OutboxKind::kReading, "readings", &b.readings},
                {store::OutboxKind::kAlert, "alerts", &b.alerts},
                {store::OutboxKind::kStatus, "statuses", &b.statuses}};
  for (const auto& a : arrays) {
    b.json += ",\"";
    b.json += a.name;
    b.json += "\":[";
    bool first = true;
    for (const auto& e : items) {
      if (e.kind != a.kind) continue;
      if (e.body.empty() || e.body.front() != '{' || e.body.back() != '}') {
        return DataLoss("outbox item " + std::to_string(e.id) + ": not a JSON object");
      }
      if (!first) b.json += ',';
      first = false;
      b.json += e.body;
      ++*a.count;
    }
    b.json += ']';
  }
  b.json += '}';
  return b;
}

std::string MakeIdempotencyKey(std::string_view gateway_id, std::string_view boot_id,
                               std::int64_t seq) {
  std::string key = std::string(gateway_id.substr(0, 64)) + ":" +
                    std::string(boot_id.substr(0, 32)) + ":" + std::to_string(seq);
  for (char& c : key) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) c = '_';
  }
  return key;
}

}  // namespace outpost::gateway::uplink
