// Allocation-free reader for device commands (docs/formats/topics.md "Device commands"):
//   {"command":"setSensorInterval","interval":10000}
//   {"command":"reboot"}
//   {"command":"led","state":true}
//   {"command":"certRequest"}
//   {"command":"certInstall","cert":"MIIB..."}   (docs/adr/0011)
// plus an optional "id" (a valid id string, or an integer) that native devices echo in their
// reply. Other members are skipped. Untrusted input: never reads out of bounds, never recurses
// deeper than kMaxCommandDepth, and has a libFuzzer target (devices/core/fuzz).
// Ownership: the CommandView's string_views point into the parsed payload.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "outpost/device/ports.h"

namespace outpost::device {

inline constexpr int kMaxCommandDepth = 8;

enum class CommandKind : std::uint8_t {
  kUnknown,
  kSetSensorInterval,
  kReboot,
  kLed,
  kCertRequest,
  kCertInstall,
};

enum class CommandError : std::uint8_t {
  kOk = 0,
  kNotJson,         // syntax error, bad escape, bytes after the value
  kTooDeep,         // nesting deeper than kMaxCommandDepth
  kNotObject,       // top level is not an object
  kDuplicateKey,    // "command", "id", "interval", "state" or "cert" twice
  kMissingCommand,  // no "command"
  kBadCommand,      // "command" not a string
  kBadId,           // "id" neither a valid id string nor a non-negative integer
  kBadInterval,     // "interval" not an integer in [0, 2^32)
  kBadState,        // "state" not a boolean
  kBadCert,         // "cert" not a string of 4..kMaxCertBase64Bytes base64 characters
                    // ([A-Za-z0-9+/], a multiple of 4, at most two '=' at the end)
};

struct CommandView {
  CommandKind kind = CommandKind::kUnknown;
  std::string_view name;  // "command" as written (JSON-escaped content, without quotes)
  bool has_id = false;
  std::string_view id;  // the id's text (string content, or the integer's digits)
  bool id_is_number = false;
  bool has_interval = false;
  std::uint32_t interval_ms = 0;
  bool has_state = false;
  bool state = false;
  bool has_cert = false;
  std::string_view cert;  // base64 text (needs no unescaping: base64 has no JSON escapes)
};

// Parses `json`. On an error, `detail` (if not null) receives static text naming the field,
// e.g. "field \"interval\": expected an integer in [0, 2^32)". `out` is partially filled on
// error (an id found before the error is kept, so the reply can still echo it).
CommandError ParseCommand(std::string_view json, CommandView& out, const char** detail);

const char* CommandErrorName(CommandError e);

// FNV-1a of the id text, never 0 (0 marks an empty slot in RtcState).
std::uint32_t CommandIdHash(std::string_view id);

}  // namespace outpost::device
