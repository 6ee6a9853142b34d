// A native device's acknowledgement of a command on devices/{device_id}/replies
// (docs/formats/topics.md "Device command replies"):
//   {"id":"c-17","ok":true}
//   {"id":"c-18","ok":false,"error":"unknown command \"dance\"","rejected":true}
//   {"id":"c-19","ok":true,"duplicate":true}
//   {"id":"c-20","delivered":true}            (received, outcome to follow)
//   {"id":"c-21","ok":true,"csr":"MIIB..."}   (certRequest: the base64 DER of a CSR)
//   {"id":"c-22","ok":true,"serial":"5A0F"}   (certInstall: the new certificate's serial)
// `id` (a valid id string, or a non-negative integer kept as its decimal text) is required;
// without `ok` the reply only says the command arrived. Other members are ignored.
// Untrusted input: bounded (kMaxDeviceReplyBytes, depth 8), fuzzed (libs/proto/fuzz).
// Thread-safe (no shared state); allocates per call.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "outpost/proto/reject.h"

namespace outpost::proto {

inline constexpr std::size_t kMaxDeviceReplyBytes = 1024;
inline constexpr std::size_t kMaxReplyErrorBytes = 256;  // longer errors are cut
inline constexpr std::size_t kMaxReplySerialChars = 40;  // 20 bytes: RFC 5280's longest serial

struct DeviceReply {
  std::string id;
  bool has_ok = false;  // false: a progress report ("delivered")
  bool ok = false;
  bool rejected = false;   // ok false because the device refused the command (not a failure)
  bool duplicate = false;  // a resend of a command the device had already carried out
  std::string error;       // "" when absent; printable text, at most kMaxReplyErrorBytes
  // Certificate rotation (docs/adr/0011): "" when absent.
  std::string csr;     // base64 ([A-Za-z0-9+/], '=' padding), bounded by the payload's size
  std::string serial;  // hex digits, 1..kMaxReplySerialChars
};

// Rejects: kTooLarge, kBadUtf8, kNotJson, kTooDeep, kNotObject, kDuplicateKey, kWrongType
// (missing or bad "id", "ok"/"rejected"/"duplicate"/"delivered" not booleans, "error" not a
// string, "csr" not base64, "serial" not 1..40 hex digits, neither "ok" nor "delivered":true).
bool ParseDeviceReply(std::string_view payload, DeviceReply* out, Reject* reject);

}  // namespace outpost::proto
