// The gateway <-> cloud batch contract, in one piece (ADR 0004): the limits both sides check,
// the item encoders and body builder the gateway uses, the parsers the cloud uses, the seed's
// reserved keys, the idempotency-key rule and the cloud's answer with per-item rejections.
//   seed:   POST {api_endpoint}/sensor-data/batch  {"readings":[{flat reading}, ...]}
//   native: POST {api_endpoint}/v1/batches         {"gateway_id":..,"readings":[..],
//                                                   "alerts":[..],"statuses":[..]}
// Everything EncodeReading/EncodeAlert/EncodeStatus + BuildBody produce, the parsers accept
// (batch_roundtrip_test.cpp, fuzz/batch_fuzz.cpp). The gateway's ingest and config validation
// call the same limit functions, so nothing the gateway accepts is refused by the cloud.
// Thread: pure functions, any thread (the parsers keep one simdjson parser per thread).
// Errors: the parsers never throw; see ParseError and ItemReject.
// Format: docs/formats/cloud.md, docs/formats/outbox.md
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "outpost/base/status.h"

namespace outpost::proto::batch {

// ---- The one set of names and sizes both sides check ----
inline constexpr std::size_t kMaxIdBytes = 64;             // device and gateway ids (IsValidId)
inline constexpr std::size_t kMaxMetricNameBytes = 128;    // IsValidMetricName
inline constexpr std::size_t kMaxMetricsPerReading = 256;  // metrics of one reading
inline constexpr std::size_t kMaxAlertIdBytes = 256;       // "{gateway}:{rule}:{device}:{ms}..."
inline constexpr std::size_t kMaxRuleNameBytes = 64;       // rule names (gateway config)
inline constexpr std::size_t kMaxTextBytes = 1024;         // alert rule, state, message
inline constexpr std::size_t kMaxStatusBytes = 32;         // device status words
inline constexpr std::size_t kMaxIdempotencyKeyBytes = 128;
inline constexpr std::int64_t kMaxTsMs = 253'402'300'799'999;  // year 9999

// A metric name: 1..max_bytes (<= kMaxMetricNameBytes) of printable ASCII other than space,
// '"' and '\' (so names never need JSON escaping). The gateway's reading parser uses it.
bool IsMetricNameByte(char c);
bool IsValidMetricName(std::string_view name, std::size_t max_bytes = kMaxMetricNameBytes);
// Device and gateway ids: 1..64 characters of [A-Za-z0-9_.:-] (proto::IsValidId).
bool IsValidId(std::string_view id);
// Keys of the seed's flat reading that are identity or bookkeeping, never metrics.
bool IsSeedReservedKey(std::string_view key);
// 1..128 characters of [A-Za-z0-9._:-].
bool IsValidIdempotencyKey(std::string_view key);
// "<gateway_id>:<boot_id>:<seq>", gateway id cut to 48 and boot id to 32 characters, characters
// outside [A-Za-z0-9._:-] replaced by '_': at most 102 characters, which leaves room for the
// split suffixes of SubBatchKey.
std::string MakeIdempotencyKey(std::string_view gateway_id, std::string_view boot_id,
                               std::int64_t seq);
// The key of one half of a batch split after a 413: key + ".a" (first half) or ".b".
std::string SubBatchKey(std::string_view key, bool second_half);

// ---- Domain types (what the cloud parses, what the gateway encodes) ----

// One reading. Identity: (gateway, device_id, boot, seq) when has_boot_seq, else
// (gateway, device_id, ts_ms).
struct Reading {
  std::string device_id;
  bool has_boot_seq = false;
  std::uint32_t boot = 0;
  std::uint64_t seq = 0;
  std::int64_t ts_ms = 0;
  std::string ts_source;  // "device", "gateway" or empty
  // Metric name -> value; booleans are stored as 0/1. Names are unique within a reading.
  std::vector<std::pair<std::string, double>> metrics;
};

// Identity: (gateway, id).
struct Alert {
  std::string id;
  std::string device_id;
  std::string rule;
  std::string state;  // "raised", "cleared", ...
  std::string message;
  std::optional<double> value;
  std::int64_t ts_ms = 0;
};

// Identity: (gateway, device_id, ts_ms, status).
struct StatusEvent {
  std::string device_id;
  std::string status;  // "online", "offline", "sleeping", ...
  std::int64_t ts_ms = 0;
};

// One item of a batch the cloud refused while storing the others.
struct ItemReject {
  std::string array;      // "readings", "alerts" or "statuses"
  std::size_t index = 0;  // position in that array of the body as sent
  std::string reason;     // e.g. "bad_metric_name" (docs/formats/cloud.md)
  std::string message;    // e.g. `readings[3].metrics: metric name must be ...`
};

struct Batch {
  std::optional<std::string> gateway_id;  // native only; must equal the token's gateway
  std::vector<Reading> readings;
  std::vector<Alert> alerts;
  std::vector<StatusEvent> statuses;
  std::vector<ItemReject> rejected;  // items left out of the vectors above, in body order
};

// ---- Encoding (the gateway) ----

enum class Protocol : std::uint8_t { kSeed, kNative };
const char* ProtocolName(Protocol p);  // "seed" / "native"
const char* ProtocolPath(Protocol p);  // "/sensor-data/batch" / "/v1/batches"

struct Metric {
  std::string_view name;
  double value = 0;  // booleans 0 or 1
  bool is_bool = false;
};

// {"device_id":"n1","boot":3,"seq":17,"ts_ms":1764201600123,"ts_source":"device",
//  "metrics":{"temperature":22.5,"motion":false}}   (boot/seq only when has_seq; non-finite
// values are left out, JSON has no NaN).
std::string EncodeReading(std::string_view device_id, bool has_seq, std::uint32_t boot,
                          std::uint64_t seq, std::int64_t ts_ms, bool ts_from_device,
                          const std::vector<Metric>& metrics);
// {"id":"gw1:temperature_max:n1:1764201600123","device_id":"n1","rule":"temperature_max",
//  "state":"raised","message":"...","value":36.2,"ts_ms":1764201600123}
// The id names the raise (a clear gets ":cleared"); rule and message are cut to kMaxTextBytes
// on a UTF-8 boundary.
std::string EncodeAlert(std::string_view gateway_id, std::string_view alert_id,
                        std::string_view device_id, std::string_view rule, std::string_view message,
                        double value, std::int64_t raised_ms, std::int64_t cleared_ms);
// The acknowledgement of that raise: {"id":"gw1:temperature_max:n1:1764201600123:acked",
//  "device_id":"n1","rule":"temperature_max","state":"acked",
//  "message":"acknowledged by alice: checked the fridge","ts_ms":<acked>}. One per raise: the
// cloud keeps the first item with an id, so a resent acknowledgement is stored once.
std::string EncodeAlertAck(std::string_view gateway_id, std::string_view alert_id,
                           std::string_view device_id, std::string_view rule, std::string_view user,
                           std::string_view comment, std::int64_t raised_ms, std::int64_t acked_ms);
// {"device_id":"n1","status":"online","ts_ms":1764201600123}
std::string EncodeStatus(std::string_view device_id, std::string_view status, std::int64_t ts_ms);

enum class ItemKind : std::uint8_t { kReading = 0, kAlert = 1, kStatus = 2 };
struct Item {
  ItemKind kind;
  std::int64_t id;        // for error messages (the outbox row)
  std::string_view body;  // one encoded item
};

struct Body {
  std::string json;
  std::size_t items_used = 0;  // the first items_used items went into this body (or left out)
  std::int64_t readings = 0, alerts = 0, statuses = 0;  // items carried
  std::int64_t left_out = 0;          // seed: alerts/statuses not sendable, dropped with it
  std::int64_t reserved_metrics = 0;  // seed: metrics named like a reserved key, skipped
};

// Builds the request body from items, in the order given, stopping before the item that would
// take the body over max_body_bytes (at least one item is always used). Fails with kDataLoss
// naming the item when an item is not the JSON object EncodeX wrote (corrupt row).
Result<Body> BuildBody(Protocol protocol, std::string_view gateway_id,
                       const std::vector<Item>& items, std::size_t max_body_bytes = SIZE_MAX);

// Splits a body built by BuildBody into two bodies of about half the items each, for a 413.
// kFailedPrecondition when it carries fewer than two items; kDataLoss when it is not valid.
struct SplitBodies {
  std::string first, second;
  std::int64_t first_items = 0, second_items = 0;
};
Result<SplitBodies> SplitBody(Protocol protocol, std::string_view body);

// Appends `s` as a JSON string literal (quotes and escapes).
void AppendJsonString(std::string* out, std::string_view s);

// ---- Parsing (the cloud) ----

struct ParseLimits {
  std::size_t max_items = 100'000;                  // readings + alerts + statuses per batch
  std::size_t max_metrics = kMaxMetricsPerReading;  // per reading (at most the contract's)
  std::size_t max_metric_name_bytes = kMaxMetricNameBytes;
  std::size_t max_text_bytes = kMaxTextBytes;  // alert message, rule, state
  std::size_t max_depth = 16;                  // nesting of ignored values
};

enum class ParseErrorKind {
  kBadJson,       // not JSON, or not the expected top-level shape -> 400 bad_json
  kInvalidField,  // a top-level field is missing, of the wrong type or out of range -> 400
  kTooLarge,      // more items than max_items -> 413 payload_too_large
};

struct ParseError {
  ParseErrorKind kind = ParseErrorKind::kInvalidField;
  std::string message;
};

// Both return false and fill *error when the body as a whole is unusable (*out is then
// unspecified). An invalid item does not fail the batch: it is left out and described in
// out->rejected (reason and message naming the field, e.g. `readings[3].device_id: expected a
// string, got number`). A seed reading whose `timestamp` is before 2020 (the seed's millis())
// takes its `created_at` (a SQLite julian day) instead, with ts_source "gateway".
bool ParseSeedBatch(std::string_view body, const ParseLimits& limits, Batch* out,
                    ParseError* error);
bool ParseNativeBatch(std::string_view body, const ParseLimits& limits, Batch* out,
                      ParseError* error);

// ---- The cloud's answer ----

// `"rejected":[{"array":"readings","index":3,"reason":"bad_metric_name","error":"..."}]`
// (without the braces around; the first 100 entries carry "error"), appended to *out.
void AppendRejected(std::string* out, const std::vector<ItemReject>& rejected);
// Reads the "rejected" array of a 2xx answer: one reason per refused item. An answer without
// it (the seed's cloud, an older outpost-cloud) means every item was accepted. Items of an
// unreadable answer are not counted as rejected (the answer was a success).
std::vector<std::string> ParseRejectedReasons(std::string_view answer);

}  // namespace outpost::proto::batch
