#include <fmt/format.h>
#include <simdjson.h>

#include <cmath>
#include <iterator>

#include "outpost/proto/batch.h"
#include "outpost/proto/topics.h"

namespace outpost::proto::batch {
namespace {

void AppendNumber(std::string* out, double v) {
  // Shortest round-trip form; integers print without a fraction.
  fmt::format_to(std::back_inserter(*out), "{}", v);
}

void AppendInt(std::string* out, std::int64_t v) {
  fmt::format_to(std::back_inserter(*out), "{}", v);
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

namespace {
// Cuts `s` to at most `max` bytes without splitting a UTF-8 sequence.
std::string_view CutUtf8(std::string_view s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}
}  // namespace

std::string EncodeReading(std::string_view device_id, bool has_seq, std::uint32_t boot,
                          std::uint64_t seq, std::int64_t ts_ms, bool ts_from_device,
                          const std::vector<Metric>& metrics) {
  std::string out;
  out.reserve(64 + metrics.size() * 24);
  out += "{\"device_id\":";
  AppendJsonString(&out, device_id);
  if (has_seq) {
    out += ",\"boot\":";
    AppendInt(&out, boot);
    out += ",\"seq\":";
    fmt::format_to(std::back_inserter(out), "{}", seq);
  }
  out += ",\"ts_ms\":";
  AppendInt(&out, ts_ms);
  out += ts_from_device ? ",\"ts_source\":\"device\"" : ",\"ts_source\":\"gateway\"";
  out += ",\"metrics\":{";
  bool first = true;
  for (const auto& m : metrics) {
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

namespace {

std::string AlertItemJson(const std::string& id, std::string_view device_id, std::string_view rule,
                          std::string_view state, std::string_view message, double value,
                          std::int64_t ts_ms) {
  std::string out = "{\"id\":";
  AppendJsonString(&out, id);
  if (!device_id.empty()) {
    out += ",\"device_id\":";
    AppendJsonString(&out, device_id);
  }
  out += ",\"rule\":";
  AppendJsonString(&out, CutUtf8(rule, kMaxTextBytes));
  out += ",\"state\":";
  AppendJsonString(&out, state);
  out += ",\"message\":";
  AppendJsonString(&out, CutUtf8(message, kMaxTextBytes));
  if (std::isfinite(value)) {
    out += ",\"value\":";
    AppendNumber(&out, value);
  }
  out += ",\"ts_ms\":";
  AppendInt(&out, ts_ms);
  out += '}';
  return out;
}

std::string RaiseId(std::string_view gateway_id, std::string_view alert_id,
                    std::int64_t raised_ms) {
  return std::string(gateway_id) + ":" + std::string(alert_id) + ":" + std::to_string(raised_ms);
}

}  // namespace

std::string EncodeAlert(std::string_view gateway_id, std::string_view alert_id,
                        std::string_view device_id, std::string_view rule, std::string_view message,
                        double value, std::int64_t raised_ms, std::int64_t cleared_ms) {
  const bool raised = cleared_ms == 0;
  std::string id = RaiseId(gateway_id, alert_id, raised_ms);
  if (!raised) id += ":cleared";
  return AlertItemJson(id, device_id, rule, raised ? "raised" : "cleared", message, value,
                       raised ? raised_ms : cleared_ms);
}

std::string EncodeAlertAck(std::string_view gateway_id, std::string_view alert_id,
                           std::string_view device_id, std::string_view rule, std::string_view user,
                           std::string_view comment, std::int64_t raised_ms,
                           std::int64_t acked_ms) {
  std::string message = "acknowledged by " + std::string(user);
  if (!comment.empty()) message += ": " + std::string(comment);
  return AlertItemJson(RaiseId(gateway_id, alert_id, raised_ms) + ":acked", device_id, rule,
                       "acked", message, std::nan(""), acked_ms);
}

std::string EncodeStatus(std::string_view device_id, std::string_view status, std::int64_t ts_ms) {
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
Status AppendSeedReading(std::string* out, const Item& e, simdjson::dom::parser& parser,
                         Body* body) {
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
      if (IsSeedReservedKey(field.key)) {
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
                       const std::vector<Item>& items, std::size_t max_body_bytes) {
  Body b;
  std::size_t total = 0;
  for (const auto& e : items) total += e.body.size() + 1;
  if (protocol == Protocol::kSeed) {
    b.json.reserve(std::min(total + total / 4 + 16, max_body_bytes));
    b.json = "{\"readings\":[";
    simdjson::dom::parser parser;
    std::string piece;
    for (const auto& e : items) {
      if (e.kind != ItemKind::kReading) {
        ++b.left_out;
        ++b.items_used;
        continue;
      }
      piece.clear();
      if (b.readings > 0) piece += ',';
      OUTPOST_RETURN_IF_ERROR(AppendSeedReading(&piece, e, parser, &b));
      // The flat seed object is larger than the stored item: the limit is on the body sent.
      if (b.readings > 0 && b.json.size() + piece.size() + 2 > max_body_bytes) break;
      b.json += piece;
      ++b.readings;
      ++b.items_used;
    }
    b.json += "]}";
    return b;
  }
  // Native: items are already in the wire shape; concatenate them per array. The body is the
  // fixed frame plus each item and its comma, so the prefix that fits is known beforehand.
  std::size_t size = 0;
  {
    std::string frame = "{\"gateway_id\":";
    AppendJsonString(&frame, gateway_id);
    size = frame.size() + std::string_view(R"(,"readings":[],"alerts":[],"statuses":[]})").size();
  }
  std::size_t used = 0;
  for (const auto& e : items) {
    if (used > 0 && size + e.body.size() + 1 > max_body_bytes) break;
    size += e.body.size() + 1;
    ++used;
  }
  b.items_used = used;
  b.json.reserve(size);
  b.json = "{\"gateway_id\":";
  AppendJsonString(&b.json, gateway_id);
  const struct {
    ItemKind kind;
    const char* name;
    std::int64_t* count;
  } arrays[] = {{ItemKind::kReading, "readings", &b.readings},
                {ItemKind::kAlert, "alerts", &b.alerts},
                {ItemKind::kStatus, "statuses", &b.statuses}};
  for (const auto& a : arrays) {
    b.json += ",\"";
    b.json += a.name;
    b.json += "\":[";
    bool first = true;
    for (std::size_t i = 0; i < used; ++i) {
      const Item& e = items[i];
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

namespace {
bool IsKeyChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '-';
}
}  // namespace

std::string MakeIdempotencyKey(std::string_view gateway_id, std::string_view boot_id,
                               std::int64_t seq) {
  std::string key = std::string(gateway_id.substr(0, 48)) + ":" +
                    std::string(boot_id.substr(0, 32)) + ":" + std::to_string(seq);
  for (char& c : key) {
    if (!IsKeyChar(c)) c = '_';
  }
  return key;
}

std::string SubBatchKey(std::string_view key, bool second_half) {
  // "<gw>:<boot>:<seq>" gets ".a"/".b"; a sub-batch key ("...:<seq>.ab") one more letter. So a
  // split as deep as 2^26 items keeps the key within kMaxIdempotencyKeyBytes.
  std::string out(key);
  const std::size_t colon = out.rfind(':');
  const bool split = colon != std::string::npos && out.find('.', colon) != std::string::npos;
  if (!split) out += '.';
  out += second_half ? 'b' : 'a';
  return out;
}

bool IsValidIdempotencyKey(std::string_view key) {
  if (key.empty() || key.size() > kMaxIdempotencyKeyBytes) return false;
  for (char c : key) {
    if (!IsKeyChar(c)) return false;
  }
  return true;
}

bool IsMetricNameByte(char c) { return c > 0x20 && c < 0x7f && c != '"' && c != '\\'; }

bool IsValidMetricName(std::string_view name, std::size_t max_bytes) {
  if (name.empty() || name.size() > std::min(max_bytes, kMaxMetricNameBytes)) return false;
  for (char c : name) {
    if (!IsMetricNameByte(c)) return false;
  }
  return true;
}

bool IsValidId(std::string_view id) { return proto::IsValidId(id); }

bool IsSeedReservedKey(std::string_view k) {
  static constexpr std::string_view kReserved[] = {"device_id", "deviceId",   "timestamp",  "ts_ms",
                                                   "boot",      "seq",        "ts_source",  "id",
                                                   "synced",    "created_at", "received_ms"};
  for (std::string_view r : kReserved) {
    if (k == r) return true;
  }
  return false;
}

Result<SplitBodies> SplitBody(Protocol protocol, std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::dom::object root;
  if (parser.parse(body.data(), body.size()).get_object().get(root) != simdjson::SUCCESS) {
    return DataLoss("batch body: not a JSON object");
  }
  // Items in body order across the arrays, re-serialised compactly (simdjson::minify keeps
  // every value as parsed; numbers print in their shortest round-trip form).
  struct Part {
    const char* array;
    std::string json;
  };
  std::vector<Part> parts;
  const char* const native_arrays[] = {"readings", "alerts", "statuses"};
  const char* const seed_arrays[] = {"readings"};
  const std::size_t n_arrays = protocol == Protocol::kNative ? 3 : 1;
  const char* const* arrays = protocol == Protocol::kNative ? native_arrays : seed_arrays;
  for (std::size_t a = 0; a < n_arrays; ++a) {
    simdjson::dom::array arr;
    if (root[arrays[a]].get_array().get(arr) != simdjson::SUCCESS) continue;
    for (auto e : arr) parts.push_back(Part{arrays[a], simdjson::minify(e)});
  }
  if (parts.size() < 2) return FailedPrecondition("batch body: fewer than two items to split");
  std::string_view gateway_id;
  const bool has_gw = root["gateway_id"].get_string().get(gateway_id) == simdjson::SUCCESS;
  auto build = [&](std::size_t from, std::size_t to, std::int64_t* count) {
    std::string out = "{";
    if (protocol == Protocol::kNative && has_gw) {
      out += "\"gateway_id\":";
      AppendJsonString(&out, gateway_id);
      out += ',';
    }
    for (std::size_t a = 0; a < n_arrays; ++a) {
      if (a > 0) out += ',';
      out += '"';
      out += arrays[a];
      out += "\":[";
      bool first = true;
      for (std::size_t i = from; i < to; ++i) {
        if (parts[i].array != arrays[a]) continue;
        if (!first) out += ',';
        first = false;
        out += parts[i].json;
      }
      out += ']';
    }
    out += '}';
    *count = static_cast<std::int64_t>(to - from);
    return out;
  };
  SplitBodies s;
  const std::size_t half = parts.size() / 2;
  s.first = build(0, half, &s.first_items);
  s.second = build(half, parts.size(), &s.second_items);
  return s;
}

void AppendRejected(std::string* out, const std::vector<ItemReject>& rejected) {
  *out += "\"rejected\":[";
  for (std::size_t i = 0; i < rejected.size(); ++i) {
    const ItemReject& r = rejected[i];
    if (i > 0) *out += ',';
    *out += "{\"array\":";
    AppendJsonString(out, r.array);
    *out += ",\"index\":";
    fmt::format_to(std::back_inserter(*out), "{}", r.index);
    *out += ",\"reason\":";
    AppendJsonString(out, r.reason);
    if (i < 100) {  // bounds the answer; every item still has its reason
      *out += ",\"error\":";
      AppendJsonString(out, CutUtf8(r.message, 300));
    }
    *out += '}';
  }
  *out += ']';
}

std::vector<std::string> ParseRejectedReasons(std::string_view answer) {
  std::vector<std::string> out;
  simdjson::dom::parser parser;
  simdjson::dom::object root;
  if (parser.parse(answer.data(), answer.size()).get_object().get(root) != simdjson::SUCCESS) {
    return out;
  }
  simdjson::dom::array rejected;
  if (root["rejected"].get_array().get(rejected) != simdjson::SUCCESS) return out;
  for (auto e : rejected) {
    std::string_view reason;
    if (e["reason"].get_string().get(reason) != simdjson::SUCCESS || reason.empty() ||
        reason.size() > 64) {
      reason = "unknown";
    }
    out.emplace_back(reason);
  }
  return out;
}

}  // namespace outpost::proto::batch
