// The JSON of a command (docs/api.md#commands: the API's, the stream's `command` event), its
// MQTT payload for a device, and its store row. Pure. Errors: FromRow returns kDataLoss for a
// row this code did not write (unknown state, bad history).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "outpost/base/status.h"
#include "outpost/gateway/commands/book.h"
#include "outpost/gateway/model/rows.h"

namespace outpost::gateway::commands {

// {"id","device","command","params","state","transport","created_ms","updated_ms",
//  "expires_ms","user","reply":null|{..},"history":[{"state","at_ms","user"}]}
nlohmann::json CommandJson(const Command& c);
// What the device gets: native {"id":..,"command":..,...params}; seed {"command":..,...params}
// (the seed sketch knows no ids). Params named "id" or "command" never override those.
std::string DevicePayload(const Command& c);

model::CommandRow ToRow(const Command& c);
Result<Command> FromRow(const model::CommandRow& row);

}  // namespace outpost::gateway::commands
