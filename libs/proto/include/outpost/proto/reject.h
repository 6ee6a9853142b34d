// Why a message from the wire was refused. One closed set shared by readings, device status
// messages and gateway commands, so the gateway can count rejects per reason.
// Format and the full reason table: docs/formats/readings.md
#pragma once

#include <cstdint>
#include <string>

namespace outpost::proto {

enum class RejectReason : std::uint8_t {
  kNotJson,           // not a JSON text (syntax, empty, NaN/Infinity literals, trailing bytes)
  kBadUtf8,           // payload bytes are not valid UTF-8
  kTooLarge,          // payload longer than Limits::max_payload_bytes (checked before parsing)
  kTooDeep,           // nested deeper than Limits::max_depth
  kNotObject,         // top level is not a JSON object
  kDuplicateKey,      // a key repeated in one object, deviceId + device_id, or a flattened clash
  kMissingDeviceId,   // no device id in the payload and none in the topic
  kBadDeviceId,       // device id is not a string, or not a valid id (IsValidId)
  kDeviceIdMismatch,  // payload device id differs from the topic's device id
  kWrongType,         // a value of a type the field does not accept (arrays, unknown words)
  kBadNumber,         // a number that is not a finite double, or an integer beyond 2^53
  kTooManyFields,     // more than Limits::max_metrics metrics
  kBadFieldName,      // a metric name that is empty, too long or has forbidden characters
  kNoMetrics,         // a reading with no numeric or boolean field
  kBadSeq,            // boot/seq malformed, out of range, or one without the other
  kBadTimestamp,      // "timestamp" present but not a number
  kCount,             // number of reasons; not a reason
};

// Stable snake_case name ("not_json", "bad_utf8", ...): used as metric/counter keys and in the
// quarantine, so never rename one. Returns "unknown" for values outside the enum.
const char* RejectReasonName(RejectReason reason);

struct Reject {
  RejectReason reason = RejectReason::kNotJson;
  // Short, specific, printable ASCII (untrusted text is escaped and truncated), e.g.
  // `field "temperature": expected number or boolean, got array`.
  std::string detail;
};

}  // namespace outpost::proto
