#include "outpost/proto/reading.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <utility>

#include "json.h"
#include "outpost/proto/batch.h"
#include "outpost/proto/topics.h"

namespace outpost::proto {
namespace {

namespace dom = simdjson::dom;
using internal::AppendQuoted;
using internal::SetReject;
using internal::SetWrongType;

constexpr std::int64_t kMaxExactInteger = std::int64_t{1} << 53;  // doubles are exact up to here
constexpr std::uint32_t kMaxFirmwareBytes = 64;

// A metric name byte: the batch contract's rule (printable ASCII except space, '"' and '\\'),
// so a name the gateway accepts is one the cloud accepts, and names never need JSON escaping.
bool IsNameByte(char c) { return batch::IsMetricNameByte(c); }
// Firmware text: printable ASCII, spaces included.
bool IsFirmwareByte(char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; }

bool IsNameSegment(std::string_view key) {
  if (key.empty()) return false;
  for (char c : key) {
    if (!IsNameByte(c)) return false;
  }
  return true;
}

std::int64_t SaturatingAdd(std::int64_t a, std::int64_t b) {
  if (b > 0 && a > std::numeric_limits<std::int64_t>::max() - b) {
    return std::numeric_limits<std::int64_t>::max();
  }
  if (b < 0 && a < std::numeric_limits<std::int64_t>::min() - b) {
    return std::numeric_limits<std::int64_t>::min();
  }
  return a + b;
}

// Floor and ceiling division by a positive divisor.
std::int64_t FloorDiv(std::int64_t a, std::int64_t d) {
  return a / d - ((a % d != 0) && (a < 0) ? 1 : 0);
}
std::int64_t CeilDiv(std::int64_t a, std::int64_t d) {
  return a / d + ((a % d != 0) && (a > 0) ? 1 : 0);
}

// |x| < 2^63, so the conversions below are defined.
constexpr double kInt64Bound = 9.2e18;

std::int64_t TruncateToInt64(double d) {
  if (d >= kInt64Bound) return std::numeric_limits<std::int64_t>::max();
  if (d <= -kInt64Bound) return std::numeric_limits<std::int64_t>::min();
  return static_cast<std::int64_t>(d);
}

enum class TsKind : std::uint8_t { kNone, kInt, kUint, kDouble };

}  // namespace

void Reading::Clear() {
  device_id.clear();
  has_seq = false;
  boot = 0;
  seq = 0;
  has_device_ts = false;
  device_ts_raw = 0;
  ts_ms = 0;
  ts_source = TimeSource::kGateway;
  firmware.clear();
  metrics.clear();
}

struct ReadingParser::Impl {
  explicit Impl(const Limits& l) : limits(l), json(l.max_payload_bytes, l.max_depth) {
    keys.reserve(64);
    name.reserve(l.max_payload_bytes);
  }

  bool Run(std::string_view payload, std::string_view topic_device_id, std::int64_t now_ms);
  bool WalkObject(dom::object object, std::size_t level, bool path_ok);
  bool Reserved(std::string_view key, dom::element value, bool* handled);
  bool AddMetric(std::string_view key, dom::element value, bool path_ok);
  void ResolveTime(std::int64_t now_ms);

  Limits limits;
  internal::JsonParser json;
  std::vector<std::string_view> keys;  // duplicate-key scratch
  std::string name;                    // flattened name of the current path

  // Per-Parse state.
  Reading* out = nullptr;
  Reject* reject = nullptr;
  std::string_view topic_device_id;
  std::size_t metric_count = 0;
  bool dotted_key = false;  // a key with '.' was seen: flattened names may collide
  bool has_device_id = false;
  bool has_boot = false;
  bool has_seq = false;
  TsKind ts_kind = TsKind::kNone;
  std::int64_t ts_int = 0;
  double ts_double = 0;
};

bool ReadingParser::Impl::Run(std::string_view payload, std::string_view topic_id,
                              std::int64_t now_ms) {
  out->device_id.clear();
  out->has_seq = false;
  out->boot = 0;
  out->seq = 0;
  out->has_device_ts = false;
  out->device_ts_raw = 0;
  out->ts_ms = now_ms;
  out->ts_source = TimeSource::kGateway;
  out->firmware.clear();
  topic_device_id = topic_id;
  keys.clear();
  metric_count = 0;
  dotted_key = false;
  has_device_id = false;
  has_boot = false;
  has_seq = false;
  ts_kind = TsKind::kNone;
  name.clear();

  dom::object object;
  if (!json.ParseObject(payload, &object, reject)) return false;
  if (!WalkObject(object, 1, true)) return false;

  if (!has_device_id && !internal::DeviceIdFromTopic(topic_device_id, &out->device_id, reject)) {
    return false;
  }
  if (has_boot != has_seq) {
    SetReject(reject, RejectReason::kBadSeq,
              has_boot ? "\"boot\" without \"seq\"" : "\"seq\" without \"boot\"");
    return false;
  }
  out->has_seq = has_seq;
  if (metric_count == 0) {
    SetReject(reject, RejectReason::kNoMetrics, "no numeric or boolean field");
    return false;
  }
  ResolveTime(now_ms);
  return true;
}

// Walks one object depth-first in payload order. Duplicate keys are checked when the object's
// members have been walked, using the keys collected on the way (one pass over the object).
bool ReadingParser::Impl::WalkObject(dom::object object, std::size_t level, bool path_ok) {
  const std::size_t base = name.size();
  const std::size_t first_key = keys.size();
  for (auto it = object.begin(), end = object.end(); it != end; ++it) {
    const std::string_view key = it.key();
    const dom::element value = it.value();
    // Built in place from its two words: copying a string_view spilled to the stack made a
    // store-forwarding stall per field (measured; this loop is the hot path).
    keys.emplace_back(key.data(), key.size());
    name.resize(base);
    if (level == 1) {
      bool handled = false;
      if (!Reserved(key, value, &handled)) return false;
      if (handled) continue;
    }
    switch (value.type()) {
      case dom::element_type::NULL_VALUE:
      case dom::element_type::STRING:
        continue;  // absent / a non-metric attribute
      case dom::element_type::ARRAY:
        if (base > 0) name.push_back('.');
        name.append(key);
        SetWrongType(reject, RejectReason::kWrongType, name,
                     "number, boolean, string, null or object", dom::element_type::ARRAY);
        return false;
      case dom::element_type::OBJECT: {
        if (key.find('.') != std::string_view::npos) dotted_key = true;
        if (base > 0) name.push_back('.');
        name.append(key);
        // The type was checked above.
        const dom::object child = value.get_object().value_unsafe();
        if (!WalkObject(child, level + 1, path_ok && IsNameSegment(key))) return false;
        continue;
      }
      default:
        if (!AddMetric(key, value, path_ok)) return false;
        continue;
    }
  }
  name.resize(base);
  if (!internal::CheckDuplicateKeys(keys.data() + first_key, keys.size() - first_key, reject)) {
    return false;
  }
  keys.resize(first_key);
  return true;
}

// Handles the top-level reserved fields. Sets *handled if `key` is one of them.
bool ReadingParser::Impl::Reserved(std::string_view key, dom::element value, bool* handled) {
  if (key.empty()) return true;
  const dom::element_type type = value.type();
  switch (key[0]) {
    case 'd':
      if (!internal::IsDeviceIdKey(key)) return true;
      *handled = true;
      if (type == dom::element_type::NULL_VALUE) return true;
      if (has_device_id) {
        SetReject(reject, RejectReason::kDuplicateKey,
                  "both \"deviceId\" and its alias \"device_id\" are present");
        return false;
      }
      has_device_id = true;
      return internal::CheckDeviceIdValue(value, key, topic_device_id, &out->device_id, reject);
    case 't': {
      if (key != "timestamp") return true;
      *handled = true;
      switch (type) {
        case dom::element_type::NULL_VALUE:
          return true;
        case dom::element_type::INT64:
          ts_kind = TsKind::kInt;
          ts_int = value.get_int64().value_unsafe();
          return true;
        case dom::element_type::UINT64:
          ts_kind = TsKind::kUint;
          return true;
        case dom::element_type::DOUBLE:
          ts_kind = TsKind::kDouble;
          ts_double = value.get_double().value_unsafe();
          return true;
        default:
          SetWrongType(reject, RejectReason::kBadTimestamp, key, "number", type);
          return false;
      }
    }
    case 'b':
    case 's': {
      const bool is_boot = key == "boot";
      if (!is_boot && key != "seq") return true;
      *handled = true;
      if (type == dom::element_type::NULL_VALUE) return true;
      std::int64_t v = -1;
      if (type == dom::element_type::INT64) v = value.get_int64().value_unsafe();
      const std::int64_t max =
          is_boot ? std::int64_t{0xffffffff} : std::numeric_limits<std::int64_t>::max();
      if (v < 0 || v > max) {
        reject->reason = RejectReason::kBadSeq;
        reject->detail.assign("field ");
        AppendQuoted(&reject->detail, key);
        reject->detail.append(is_boot ? ": expected an integer in [0, 2^32), got "
                                      : ": expected an integer in [0, 2^63), got ");
        if (type == dom::element_type::DOUBLE) {
          reject->detail.append("a number with a fraction or exponent");
        } else if (type == dom::element_type::INT64 || type == dom::element_type::UINT64) {
          reject->detail.append("an integer out of range");
        } else {
          reject->detail.append(internal::JsonTypeName(type));
        }
        return false;
      }
      if (is_boot) {
        has_boot = true;
        out->boot = static_cast<std::uint32_t>(v);
      } else {
        has_seq = true;
        out->seq = static_cast<std::uint64_t>(v);
      }
      return true;
    }
    case 'f': {
      if (key != "fw") return true;
      *handled = true;
      if (type == dom::element_type::NULL_VALUE) return true;
      std::string_view fw;
      if (value.get(fw) != simdjson::SUCCESS) {
        SetWrongType(reject, RejectReason::kWrongType, key, "string", type);
        return false;
      }
      bool ok = fw.size() <= kMaxFirmwareBytes;
      for (char c : fw) ok = ok && IsFirmwareByte(c);
      if (!ok) {
        reject->reason = RejectReason::kWrongType;
        reject->detail.assign("field \"fw\": ");
        AppendQuoted(&reject->detail, fw);
        reject->detail.append(" is not 0..64 printable ASCII characters");
        return false;
      }
      out->firmware.assign(fw.data(), fw.size());
      return true;
    }
    default:
      return true;
  }
}

bool ReadingParser::Impl::AddMetric(std::string_view key, dom::element value, bool path_ok) {
  const std::size_t base = name.size();
  if (key.find('.') != std::string_view::npos) dotted_key = true;
  // A top-level metric's name is its key: skip the copy into `name`.
  std::string_view full = key;
  if (base > 0) {
    name.push_back('.');
    name.append(key);
    full = name;
  }
  // Restore the path on every exit so the caller's loop sees its own prefix.
  struct Restore {
    std::string& s;
    std::size_t n;
    ~Restore() { s.resize(n); }
  } restore{name, base};

  if (!path_ok || !IsNameSegment(key)) {
    reject->reason = RejectReason::kBadFieldName;
    reject->detail.assign("metric name ");
    AppendQuoted(&reject->detail, full);
    reject->detail.append(
        ": every part must be 1+ printable ASCII characters other than space, '\"' and '\\'");
    return false;
  }
  if (full.size() > limits.max_name_bytes) {
    reject->reason = RejectReason::kBadFieldName;
    reject->detail.assign("metric name ");
    AppendQuoted(&reject->detail, full);
    reject->detail.append(" is " + std::to_string(full.size()) + " bytes; limit " +
                          std::to_string(limits.max_name_bytes));
    return false;
  }
  if (metric_count >= limits.max_metrics) {
    SetReject(reject, RejectReason::kTooManyFields,
              "more than " + std::to_string(limits.max_metrics) + " metrics");
    return false;
  }

  double number = 0;
  bool is_bool = false;
  switch (value.type()) {
    case dom::element_type::BOOL: {
      number = value.get_bool().value_unsafe() ? 1 : 0;
      is_bool = true;
      break;
    }
    case dom::element_type::INT64: {
      const std::int64_t i = value.get_int64().value_unsafe();
      if (i > kMaxExactInteger || i < -kMaxExactInteger) {
        reject->reason = RejectReason::kBadNumber;
        reject->detail.assign("field ");
        AppendQuoted(&reject->detail, full);
        reject->detail.append(": integer " + std::to_string(i) +
                              " is beyond 2^53 and would lose precision");
        return false;
      }
      number = static_cast<double>(i);
      break;
    }
    case dom::element_type::UINT64: {
      reject->reason = RejectReason::kBadNumber;
      reject->detail.assign("field ");
      AppendQuoted(&reject->detail, full);
      reject->detail.append(": integer is beyond 2^53 and would lose precision");
      return false;
    }
    case dom::element_type::DOUBLE: {
      number = value.get_double().value_unsafe();
      if (!std::isfinite(number)) {  // simdjson should never produce this; be sure
        reject->reason = RejectReason::kBadNumber;
        reject->detail.assign("field ");
        AppendQuoted(&reject->detail, full);
        reject->detail.append(": not a finite number");
        return false;
      }
      break;
    }
    default:
      SetWrongType(reject, RejectReason::kWrongType, full, "number or boolean", value.type());
      return false;
  }

  if (dotted_key) {
    // "a.b":1 and "a":{"b":2} flatten to the same name.
    for (std::size_t i = 0; i < metric_count; ++i) {
      if (out->metrics[i].name == full) {
        reject->reason = RejectReason::kDuplicateKey;
        reject->detail.assign("metric name ");
        AppendQuoted(&reject->detail, full);
        reject->detail.append(" appears twice after flattening nested objects");
        return false;
      }
    }
  }

  // Reuse the element (and its name's capacity) left from an earlier Parse.
  if (metric_count < out->metrics.size()) {
    Metric& m = out->metrics[metric_count];
    m.name.assign(full.data(), full.size());
    m.value = number;
    m.is_bool = is_bool;
  } else {
    out->metrics.push_back(Metric{std::string(full), number, is_bool});
  }
  ++metric_count;
  return true;
}

void ReadingParser::Impl::ResolveTime(std::int64_t now_ms) {
  out->ts_ms = now_ms;
  out->ts_source = TimeSource::kGateway;
  if (ts_kind == TsKind::kNone) return;
  out->has_device_ts = true;
  const std::int64_t lo = limits.min_plausible_ms;
  const std::int64_t hi = SaturatingAdd(now_ms, limits.max_future_skew_ms);
  // Seconds are believed only when recent: the seed's millis() reads as epoch seconds in 2020..now
  // after ~18 days of uptime, but as "the last week" only for ~10 minutes of every 49.7 days.
  const std::int64_t lo_seconds = std::max(lo, now_ms - limits.max_seconds_age_ms);
  switch (ts_kind) {
    case TsKind::kNone:
      return;
    case TsKind::kUint:
      // Above 2^63: no plausible epoch in either unit.
      out->device_ts_raw = std::numeric_limits<std::int64_t>::max();
      return;
    case TsKind::kInt: {
      const std::int64_t v = ts_int;
      out->device_ts_raw = v;
      if (v >= lo && v <= hi) {
        out->ts_ms = v;
        out->ts_source = TimeSource::kDevice;
      } else if (v >= CeilDiv(lo_seconds, 1000) && v <= FloorDiv(hi, 1000)) {
        out->ts_ms = v * 1000;
        out->ts_source = TimeSource::kDevice;
      }
      return;
    }
    case TsKind::kDouble: {
      const double d = ts_double;
      out->device_ts_raw = TruncateToInt64(d);
      const auto lo_d = static_cast<double>(lo);
      const auto hi_d = static_cast<double>(hi);
      double ms = d;
      double ms_lo = lo_d;
      if (!(ms >= lo_d && ms <= hi_d)) {
        ms = d * 1000;
        ms_lo = static_cast<double>(lo_seconds);
      }
      if (ms >= ms_lo && ms <= hi_d && std::fabs(ms) < kInt64Bound) {
        const auto rounded = static_cast<std::int64_t>(std::llround(ms));
        out->ts_ms = std::min(std::max(rounded, lo), hi);
        out->ts_source = TimeSource::kDevice;
      }
      return;
    }
  }
}

namespace {
// The gateway never accepts more than the cloud does (the batch contract's limits).
Limits WithinContract(Limits l) {
  l.max_metrics = std::min(l.max_metrics, batch::kMaxMetricsPerReading);
  l.max_name_bytes = std::min(l.max_name_bytes, batch::kMaxMetricNameBytes);
  return l;
}
}  // namespace

ReadingParser::ReadingParser(Limits limits)
    : limits_(WithinContract(limits)), impl_(std::make_unique<Impl>(limits_)) {}
ReadingParser::~ReadingParser() = default;
ReadingParser::ReadingParser(ReadingParser&&) noexcept = default;
ReadingParser& ReadingParser::operator=(ReadingParser&&) noexcept = default;

bool ReadingParser::Parse(std::string_view payload, std::string_view topic_device_id,
                          std::int64_t now_ms, Reading* out, Reject* reject) {
  Impl& impl = *impl_;
  impl.out = out;
  impl.reject = reject;
  const bool ok = impl.Run(payload, topic_device_id, now_ms);
  out->metrics.resize(impl.metric_count);
  return ok;
}

void AppendMetricsJson(const Reading& reading, std::string* out) {
  out->push_back('{');
  bool first = true;
  for (const Metric& m : reading.metrics) {
    if (!first) out->push_back(',');
    first = false;
    out->push_back('"');
    out->append(m.name);  // names never need escaping (see IsNameByte)
    out->append("\":");
    if (m.is_bool) {
      out->append(m.value != 0 ? "true" : "false");
    } else if (!std::isfinite(m.value)) {
      out->append("null");  // never from Parse; keeps hand-built readings valid JSON
    } else {
      char buf[32];
      // Large whole numbers print as long integers (1e20 -> "100000000000000000000") that many
      // JSON readers, simdjson included, refuse beyond 64 bits: keep those in exponent form.
      const auto res =
          std::fabs(m.value) >= 9007199254740992.0
              ? std::to_chars(buf, buf + sizeof(buf), m.value, std::chars_format::scientific)
              : std::to_chars(buf, buf + sizeof(buf), m.value);
      out->append(buf, res.ptr);
    }
  }
  out->push_back('}');
}

std::string MetricsJson(const Reading& reading) {
  std::string out;
  out.reserve(16 + reading.metrics.size() * 24);
  AppendMetricsJson(reading, &out);
  return out;
}

}  // namespace outpost::proto
