// Commands to the gateway on gateway/commands and gateway/{gateway_id}/commands:
// {"command":"get_status"|"sync_cloud"|"restart"|"reload"|"reboot", "id": optional}.
// Other fields are ignored (command arguments, for future use).
// Format: docs/formats/topics.md. Thread-safe (no shared state); allocates per call.
#pragma once

#include <string>
#include <string_view>

#include "outpost/proto/reject.h"

namespace outpost::proto {

struct Command {
  std::string name;  // one of the command words above
  std::string id;    // "" when absent; else IsValidId() (a number is kept as its decimal text)
};

// True if `name` is a command the gateway understands.
bool IsKnownGatewayCommand(std::string_view name);

// Rejects: kTooLarge (> 4096 bytes), kBadUtf8, kNotJson, kTooDeep, kNotObject, kDuplicateKey,
// kWrongType (missing/unknown "command", bad "id").
bool ParseCommand(std::string_view payload, Command* out, Reject* reject);

}  // namespace outpost::proto
