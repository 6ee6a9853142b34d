#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "json.h"
#include "outpost/proto/batch.h"

namespace outpost::proto::batch {
namespace {

namespace dom = simdjson::dom;

// Bodies up to this size are parsed with a per-thread parser that keeps its buffers.
constexpr std::size_t kReusedParserMaxBytes = 2 * 1024 * 1024;

// A seed `timestamp` before this is not a wall time (the seed sends millis() since boot).
constexpr std::int64_t kMinPlausibleMs = 1'577'836'800'000;  // 2020-01-01T00:00:00Z
// The Unix epoch as a julian day (SQLite's julianday('1970-01-01')).
constexpr double kUnixEpochJulianDay = 2440587.5;

bool IsNumber(dom::element_type t) {
  return t == dom::element_type::INT64 || t == dom::element_type::UINT64 ||
         t == dom::element_type::DOUBLE;
}

// Where a value sits, e.g. readings[3].device_id; formatted only when an error is reported,
// so the success path does not allocate for it.
struct Where {
  std::string_view array;
  std::size_t index = 0;
  std::string_view field;
  std::string_view subfield;  // e.g. the metric name under "metrics"
  bool indexed = true;

  std::string str() const {
    std::string p(array);
    if (indexed) {
      p.push_back('[');
      p.append(std::to_string(index));
      p.push_back(']');
    }
    if (!field.empty()) {
      if (!p.empty()) p.push_back('.');
      p.append(field);
    }
    if (!subfield.empty()) {
      p.push_back('.');
      p.append(subfield);
    }
    return p;
  }
};

Where Top(std::string_view field) { return Where{"", 0, field, "", false}; }
Where At(std::string_view array, std::size_t i, std::string_view field = "") {
  return Where{array, i, field, "", true};
}
Where Sub(Where w, std::string_view subfield) {
  w.subfield = subfield;
  return w;
}

// Builds "<path>: <what>" messages.
class Ctx {
 public:
  Ctx(const ParseLimits& limits, ParseError* error) : limits_(limits), error_(error) {}

  bool Fail(ParseErrorKind kind, const Where& where, std::string_view what,
            std::string_view reason = "invalid_field") {
    error_->kind = kind;
    reason_ = reason;
    error_->message = where.str();
    error_->message.append(": ");
    error_->message.append(what);
    return false;
  }
  bool Invalid(const Where& where, std::string_view what,
               std::string_view reason = "invalid_field") {
    return Fail(ParseErrorKind::kInvalidField, where, what, reason);
  }
  bool WrongType(const Where& where, std::string_view expected, dom::element e) {
    std::string what = "expected ";
    what.append(expected);
    what.append(", got ");
    what.append(internal::JsonTypeName(e.type()));
    return Invalid(where, what, "wrong_type");
  }
  // The reason code of the last failure (docs/formats/cloud.md).
  std::string_view reason() const { return reason_; }
  ParseError* error() const { return error_; }
  const ParseLimits& limits() const { return limits_; }
  dom::parser& thread_parser() {
    thread_local dom::parser parser;
    return parser;
  }
  dom::parser& own_parser() {
    if (!own_parser_) own_parser_ = std::make_unique<dom::parser>();
    return *own_parser_;
  }

 private:
  std::unique_ptr<dom::parser> own_parser_;
  const ParseLimits& limits_;
  ParseError* error_;
  std::string_view reason_ = "invalid_field";
};

bool GetString(Ctx& ctx, dom::element e, const Where& where, std::string* out) {
  std::string_view s;
  if (e.get_string().get(s) != simdjson::SUCCESS) return ctx.WrongType(where, "a string", e);
  out->assign(s);
  return true;
}

bool GetId(Ctx& ctx, dom::element e, const Where& where, std::string* out) {
  if (!GetString(ctx, e, where, out)) return false;
  if (!IsValidId(*out)) {
    return ctx.Invalid(where, "must be 1..64 characters of [A-Za-z0-9_.:-]", "bad_id");
  }
  return true;
}

bool GetText(Ctx& ctx, dom::element e, const Where& where, std::string* out) {
  if (!GetString(ctx, e, where, out)) return false;
  if (out->size() > ctx.limits().max_text_bytes) {
    return ctx.Invalid(
        where, "longer than " + std::to_string(ctx.limits().max_text_bytes) + " bytes", "too_long");
  }
  return true;
}

bool GetInt64(Ctx& ctx, dom::element e, const Where& where, std::int64_t* out) {
  if (e.type() == dom::element_type::INT64) {
    *out = e.get_int64().value_unsafe();
    return true;
  }
  if (e.type() == dom::element_type::UINT64) {
    return ctx.Invalid(where, "integer out of range");
  }
  return ctx.WrongType(where, "an integer", e);
}

bool GetUint64(Ctx& ctx, dom::element e, const Where& where, std::uint64_t* out) {
  if (e.type() == dom::element_type::UINT64) {
    *out = e.get_uint64().value_unsafe();
    return true;
  }
  if (e.type() == dom::element_type::INT64) {
    const std::int64_t v = e.get_int64().value_unsafe();
    if (v < 0) return ctx.Invalid(where, "must not be negative");
    *out = static_cast<std::uint64_t>(v);
    return true;
  }
  return ctx.WrongType(where, "a non-negative integer", e);
}

bool GetTsMs(Ctx& ctx, dom::element e, const Where& where, std::int64_t* out) {
  if (!GetInt64(ctx, e, where, out)) return false;
  if (*out < 0 || *out > kMaxTsMs) {
    return ctx.Invalid(where, "milliseconds since the Unix epoch out of range", "bad_timestamp");
  }
  return true;
}

bool GetBoot(Ctx& ctx, dom::element e, const Where& where, std::uint32_t* out) {
  std::uint64_t v = 0;
  if (!GetUint64(ctx, e, where, &v)) return false;
  if (v > std::numeric_limits<std::uint32_t>::max()) {
    return ctx.Invalid(where, "must fit in 32 bits");
  }
  *out = static_cast<std::uint32_t>(v);
  return true;
}

bool GetTsSource(Ctx& ctx, dom::element e, const Where& where, std::string* out) {
  if (!GetString(ctx, e, where, out)) return false;
  if (*out != "device" && *out != "gateway") {
    return ctx.Invalid(where, "must be \"device\" or \"gateway\"");
  }
  return true;
}

// Adds a metric (number or boolean), checking its name and uniqueness.
bool AddMetric(Ctx& ctx, Reading* r, std::string_view name, dom::element value,
               const Where& where_prefix) {
  const std::size_t max_name = std::min(ctx.limits().max_metric_name_bytes, kMaxMetricNameBytes);
  if (!IsValidMetricName(name, max_name)) {
    return ctx.Invalid(where_prefix,
                       "metric name must be 1.." + std::to_string(max_name) +
                           " printable ASCII characters other than space, '\"' and '\\'",
                       "bad_metric_name");
  }
  double v = 0;
  if (value.type() == dom::element_type::BOOL) {
    v = value.get_bool().value_unsafe() ? 1.0 : 0.0;
  } else {
    v = value.get_double().value_unsafe();
    if (!std::isfinite(v)) {
      return ctx.Invalid(Sub(where_prefix, name), "not a finite number", "bad_value");
    }
  }
  for (const auto& m : r->metrics) {
    if (m.first == name) {
      return ctx.Invalid(Sub(where_prefix, name), "duplicate metric", "duplicate_metric");
    }
  }
  const std::size_t max_metrics = std::min(ctx.limits().max_metrics, kMaxMetricsPerReading);
  if (r->metrics.size() >= max_metrics) {
    return ctx.Invalid(where_prefix, "more than " + std::to_string(max_metrics) + " metrics",
                       "too_many_metrics");
  }
  r->metrics.emplace_back(std::string(name), v);
  return true;
}

bool ParseSeedReading(Ctx& ctx, dom::element e, std::size_t i, Reading* r) {
  dom::object obj;
  if (e.get_object().get(obj) != simdjson::SUCCESS) {
    return ctx.WrongType(At("readings", i), "an object", e);
  }
  bool have_device = false, have_ts_ms = false, have_timestamp = false;
  bool have_boot = false, have_seq = false, have_created_at = false;
  double timestamp_s = 0, created_at_jd = 0;
  const Where prefix = At("readings", i);
  for (auto field : obj) {
    const std::string_view key = field.key;
    const dom::element v = field.value;
    if (key == "device_id" || key == "deviceId") {
      if (have_device) return ctx.Invalid(At("readings", i, key), "device id given twice");
      if (!GetId(ctx, v, At("readings", i, key), &r->device_id)) return false;
      have_device = true;
    } else if (key == "timestamp") {
      if (!IsNumber(v.type())) return ctx.WrongType(At("readings", i, key), "a number", v);
      timestamp_s = v.get_double().value_unsafe();
      if (!(timestamp_s >= 0 && timestamp_s * 1000.0 <= static_cast<double>(kMaxTsMs))) {
        return ctx.Invalid(At("readings", i, key), "seconds since the Unix epoch out of range",
                           "bad_timestamp");
      }
      have_timestamp = true;
    } else if (key == "ts_ms") {
      if (!GetTsMs(ctx, v, At("readings", i, key), &r->ts_ms)) return false;
      have_ts_ms = true;
    } else if (key == "boot") {
      if (!GetBoot(ctx, v, At("readings", i, key), &r->boot)) return false;
      have_boot = true;
    } else if (key == "seq") {
      if (!GetUint64(ctx, v, At("readings", i, key), &r->seq)) return false;
      have_seq = true;
    } else if (key == "ts_source") {
      if (!GetTsSource(ctx, v, At("readings", i, key), &r->ts_source)) return false;
    } else if (key == "created_at") {
      // The seed gateway's row time, a SQLite julian day (REAL); anything else is ignored.
      if (IsNumber(v.type())) {
        created_at_jd = v.get_double().value_unsafe();
        have_created_at = std::isfinite(created_at_jd);
      }
    } else if (IsSeedReservedKey(key)) {
      continue;
    } else if (IsNumber(v.type()) || v.type() == dom::element_type::BOOL) {
      if (!AddMetric(ctx, r, key, v, prefix)) return false;
    }
    // Strings, nulls, arrays and objects are ignored (the seed sends a few such fields).
  }
  if (!have_device) return ctx.Invalid(At("readings", i, "device_id"), "missing", "missing_field");
  if (!have_ts_ms) {
    if (!have_timestamp)
      return ctx.Invalid(At("readings", i, "timestamp"), "missing", "missing_field");
    r->ts_ms = static_cast<std::int64_t>(std::llround(timestamp_s * 1000.0));
    // The seed's own gateway sends the node's millis() as `timestamp`: no wall time. Its row's
    // created_at is (the gateway's receive time), so use that, as our gateway uses its receive
    // time, and say so in ts_source.
    if (r->ts_ms < kMinPlausibleMs && have_created_at) {
      const double ms = (created_at_jd - kUnixEpochJulianDay) * 86'400'000.0;
      if (ms >= static_cast<double>(kMinPlausibleMs) && ms <= static_cast<double>(kMaxTsMs)) {
        r->ts_ms = static_cast<std::int64_t>(std::llround(ms));
        r->ts_source = "gateway";
      }
    }
  }
  r->has_boot_seq = have_boot && have_seq;
  return true;
}

bool ParseNativeReading(Ctx& ctx, dom::element e, std::size_t i, Reading* r) {
  dom::object obj;
  if (e.get_object().get(obj) != simdjson::SUCCESS) {
    return ctx.WrongType(At("readings", i), "an object", e);
  }
  bool have_device = false, have_ts = false, have_boot = false, have_seq = false;
  for (auto field : obj) {
    const std::string_view key = field.key;
    const dom::element v = field.value;
    if (key == "device_id") {
      if (!GetId(ctx, v, At("readings", i, key), &r->device_id)) return false;
      have_device = true;
    } else if (key == "ts_ms") {
      if (!GetTsMs(ctx, v, At("readings", i, key), &r->ts_ms)) return false;
      have_ts = true;
    } else if (key == "boot") {
      if (!GetBoot(ctx, v, At("readings", i, key), &r->boot)) return false;
      have_boot = true;
    } else if (key == "seq") {
      if (!GetUint64(ctx, v, At("readings", i, key), &r->seq)) return false;
      have_seq = true;
    } else if (key == "ts_source") {
      if (!GetTsSource(ctx, v, At("readings", i, key), &r->ts_source)) return false;
    } else if (key == "metrics") {
      dom::object metrics;
      const Where where = At("readings", i, "metrics");
      if (v.get_object().get(metrics) != simdjson::SUCCESS) {
        return ctx.WrongType(where, "an object", v);
      }
      for (auto m : metrics) {
        const dom::element mv = m.value;
        if (!IsNumber(mv.type()) && mv.type() != dom::element_type::BOOL) {
          return ctx.WrongType(Sub(where, m.key), "a number or boolean", mv);
        }
        if (!AddMetric(ctx, r, m.key, mv, where)) return false;
      }
    }
  }
  if (!have_device) return ctx.Invalid(At("readings", i, "device_id"), "missing", "missing_field");
  if (!have_ts) return ctx.Invalid(At("readings", i, "ts_ms"), "missing", "missing_field");
  r->has_boot_seq = have_boot && have_seq;
  return true;
}

bool ParseAlert(Ctx& ctx, dom::element e, std::size_t i, Alert* a) {
  dom::object obj;
  if (e.get_object().get(obj) != simdjson::SUCCESS) {
    return ctx.WrongType(At("alerts", i), "an object", e);
  }
  bool have_id = false, have_ts = false;
  for (auto field : obj) {
    const std::string_view key = field.key;
    const dom::element v = field.value;
    const Where where = At("alerts", i, key);
    if (key == "id") {
      if (!GetString(ctx, v, where, &a->id)) return false;
      if (a->id.empty() || a->id.size() > kMaxAlertIdBytes) {
        return ctx.Invalid(where, "must be 1.." + std::to_string(kMaxAlertIdBytes) + " bytes",
                           "bad_alert_id");
      }
      have_id = true;
    } else if (key == "device_id") {
      if (v.is_null()) continue;
      if (!GetId(ctx, v, where, &a->device_id)) return false;
    } else if (key == "rule") {
      if (!GetText(ctx, v, where, &a->rule)) return false;
    } else if (key == "state") {
      if (!GetText(ctx, v, where, &a->state)) return false;
    } else if (key == "message") {
      if (!GetText(ctx, v, where, &a->message)) return false;
    } else if (key == "value") {
      if (v.is_null()) continue;
      if (!IsNumber(v.type())) return ctx.WrongType(where, "a number", v);
      const double d = v.get_double().value_unsafe();
      if (!std::isfinite(d)) return ctx.Invalid(where, "not a finite number", "bad_value");
      a->value = d;
    } else if (key == "ts_ms") {
      if (!GetTsMs(ctx, v, where, &a->ts_ms)) return false;
      have_ts = true;
    }
  }
  if (!have_id) return ctx.Invalid(At("alerts", i, "id"), "missing", "missing_field");
  if (!have_ts) return ctx.Invalid(At("alerts", i, "ts_ms"), "missing", "missing_field");
  return true;
}

bool ParseStatus(Ctx& ctx, dom::element e, std::size_t i, StatusEvent* s) {
  dom::object obj;
  if (e.get_object().get(obj) != simdjson::SUCCESS) {
    return ctx.WrongType(At("statuses", i), "an object", e);
  }
  bool have_device = false, have_status = false, have_ts = false;
  for (auto field : obj) {
    const std::string_view key = field.key;
    const dom::element v = field.value;
    const Where where = At("statuses", i, key);
    if (key == "device_id") {
      if (!GetId(ctx, v, where, &s->device_id)) return false;
      have_device = true;
    } else if (key == "status") {
      if (!GetString(ctx, v, where, &s->status)) return false;
      if (s->status.empty() || s->status.size() > kMaxStatusBytes) {
        return ctx.Invalid(where, "must be 1..32 bytes", "bad_status");
      }
      for (char c : s->status) {
        if (!((c >= 'a' && c <= 'z') || c == '_')) {
          return ctx.Invalid(where, "must be lower-case letters and '_'", "bad_status");
        }
      }
      have_status = true;
    } else if (key == "ts_ms") {
      if (!GetTsMs(ctx, v, where, &s->ts_ms)) return false;
      have_ts = true;
    }
  }
  if (!have_device) return ctx.Invalid(At("statuses", i, "device_id"), "missing", "missing_field");
  if (!have_status) return ctx.Invalid(At("statuses", i, "status"), "missing", "missing_field");
  if (!have_ts) return ctx.Invalid(At("statuses", i, "ts_ms"), "missing", "missing_field");
  return true;
}

// Parses the body into *root (an object) with a per-thread parser reused across calls.
bool ParseRoot(Ctx& ctx, std::string_view body, dom::object* root) {
  // A parser's buffers grow to the largest document it has seen (about 4x its size) and are
  // kept for reuse: reuse one per thread for ordinary batches, and give a rare huge body a
  // parser of its own that is freed with the call, so idle memory stays bounded.
  // Note: `doc` points into the parser, so the one-off parser must outlive this call's use of
  // the document; it is owned by the caller's Ctx.
  dom::parser* parser = &ctx.thread_parser();
  if (body.size() > kReusedParserMaxBytes) parser = &ctx.own_parser();
  dom::element doc;
  const simdjson::error_code err = parser->parse(body.data(), body.size()).get(doc);
  if (err != simdjson::SUCCESS) {
    return ctx.Fail(ParseErrorKind::kBadJson, Top("body"),
                    std::string("not valid JSON: ") + simdjson::error_message(err));
  }
  if (doc.get_object().get(*root) != simdjson::SUCCESS) {
    return ctx.Fail(
        ParseErrorKind::kBadJson, Top("body"),
        std::string("expected a JSON object, got ") + internal::JsonTypeName(doc.type()));
  }
  return true;
}

bool GetArray(Ctx& ctx, dom::object root, std::string_view key, bool required, dom::array* out,
              bool* present) {
  dom::element e;
  *present = false;
  if (root.at_key(key).get(e) != simdjson::SUCCESS) {
    if (required) return ctx.Invalid(Top(key), "missing", "missing_field");
    return true;
  }
  if (e.is_null() && !required) return true;
  if (e.get_array().get(*out) != simdjson::SUCCESS) {
    return ctx.WrongType(Top(key), "an array", e);
  }
  *present = true;
  return true;
}

bool CheckCount(Ctx& ctx, std::size_t total) {
  if (total > ctx.limits().max_items) {
    return ctx.Fail(ParseErrorKind::kTooLarge, Top("body"),
                    std::to_string(total) + " items in one batch; limit " +
                        std::to_string(ctx.limits().max_items));
  }
  return true;
}

// Parses each element of `array` with `parse`; an element that fails is left out and recorded
// in *rejected with its reason, so one bad item does not cost the batch.
template <typename T, typename Fn>
void ParseItems(Ctx& ctx, dom::array array, std::string_view name, std::vector<T>* items,
                std::vector<ItemReject>* rejected, Fn parse) {
  items->reserve(array.size());
  std::size_t i = 0;
  for (dom::element e : array) {
    items->emplace_back();
    if (!parse(ctx, e, i, &items->back())) {
      items->pop_back();
      ItemReject r;
      r.array.assign(name);
      r.index = i;
      r.reason.assign(ctx.reason());
      r.message = std::move(ctx.error()->message);
      ctx.error()->message.clear();
      rejected->push_back(std::move(r));
    }
    ++i;
  }
}

}  // namespace

bool ParseSeedBatch(std::string_view body, const ParseLimits& limits, Batch* out,
                    ParseError* error) {
  Ctx ctx(limits, error);
  *out = Batch{};
  dom::object root;
  if (!ParseRoot(ctx, body, &root)) return false;
  dom::array readings;
  bool present = false;
  if (!GetArray(ctx, root, "readings", /*required=*/true, &readings, &present)) return false;
  if (!CheckCount(ctx, readings.size())) return false;
  ParseItems(ctx, readings, "readings", &out->readings, &out->rejected, ParseSeedReading);
  return true;
}

bool ParseNativeBatch(std::string_view body, const ParseLimits& limits, Batch* out,
                      ParseError* error) {
  Ctx ctx(limits, error);
  *out = Batch{};
  dom::object root;
  if (!ParseRoot(ctx, body, &root)) return false;
  dom::element gw;
  if (root.at_key("gateway_id").get(gw) == simdjson::SUCCESS && !gw.is_null()) {
    std::string id;
    if (!GetId(ctx, gw, Top("gateway_id"), &id)) return false;
    out->gateway_id = std::move(id);
  }
  dom::array readings, alerts, statuses;
  bool has_readings = false, has_alerts = false, has_statuses = false;
  if (!GetArray(ctx, root, "readings", false, &readings, &has_readings)) return false;
  if (!GetArray(ctx, root, "alerts", false, &alerts, &has_alerts)) return false;
  if (!GetArray(ctx, root, "statuses", false, &statuses, &has_statuses)) return false;
  const std::size_t total = (has_readings ? readings.size() : 0) +
                            (has_alerts ? alerts.size() : 0) + (has_statuses ? statuses.size() : 0);
  if (!CheckCount(ctx, total)) return false;
  if (has_readings) {
    ParseItems(ctx, readings, "readings", &out->readings, &out->rejected, ParseNativeReading);
  }
  if (has_alerts) ParseItems(ctx, alerts, "alerts", &out->alerts, &out->rejected, ParseAlert);
  if (has_statuses) {
    ParseItems(ctx, statuses, "statuses", &out->statuses, &out->rejected, ParseStatus);
  }
  return true;
}

}  // namespace outpost::proto::batch
