// Pure parsing and validation of the two batch request bodies (untrusted input, hot path):
//   seed:   POST /sensor-data/batch  {"readings":[{flat reading}, ...]}
//   native: POST /v1/batches {"gateway_id":..,"readings":[..],"alerts":[..],"statuses":[..]}
// A batch is all-or-nothing: the first invalid item fails the whole parse, and the message names
// the field, e.g. `readings[3].device_id: expected a string, got number`.
// Thread: safe to call from many threads (one simdjson parser per thread, reused).
// Errors: ParseError (kBadJson, kInvalidField, kTooLarge). No exception escapes.
// Format: docs/formats/cloud.md
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "outpost/cloud/model.h"

namespace outpost::cloud {

struct ParseLimits {
  std::size_t max_items = 100'000;  // readings + alerts + statuses per batch
  std::size_t max_metrics = 256;    // per reading
  std::size_t max_metric_name_bytes = 128;
  std::size_t max_text_bytes = 1024;  // alert message, rule, state
  std::size_t max_depth = 16;         // nesting of ignored values
};

enum class ParseErrorKind {
  kBadJson,       // not JSON, or not the expected top-level shape -> 400 bad_json
  kInvalidField,  // a field is missing, of the wrong type or out of range -> 400 invalid_field
  kTooLarge,      // more items than max_items -> 413 payload_too_large
};

struct ParseError {
  ParseErrorKind kind = ParseErrorKind::kInvalidField;
  std::string message;
};

// Both return false and fill *error on failure; *out is then unspecified.
bool ParseSeedBatch(std::string_view body, const ParseLimits& limits, Batch* out,
                    ParseError* error);
bool ParseNativeBatch(std::string_view body, const ParseLimits& limits, Batch* out,
                      ParseError* error);

// Keys of the seed's flat reading that are not metrics even when numeric or boolean.
bool IsSeedReservedKey(std::string_view key);

// A device or gateway id: 1..64 bytes of [A-Za-z0-9_.:-] (same rule as libs/proto).
bool IsValidCloudId(std::string_view id);
// A metric name: 1..max bytes of printable ASCII other than '"' and '\'.
bool IsValidMetricName(std::string_view name, std::size_t max_bytes);

}  // namespace outpost::cloud
