// Device status messages on devices/status (seed) and devices/{device_id}/status (native):
// either the seed's JSON {"deviceId","status","timestamp"} or a bare word online|offline|sleeping
// (the retained per-device message and the MQTT last will).
// Format: docs/formats/topics.md. Thread-safe (no shared state); allocates per call.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "outpost/proto/reject.h"

namespace outpost::proto {

enum class DeviceState : std::uint8_t { kOnline, kSleeping, kOffline };

// "online", "sleeping", "offline". Stable wire words.
const char* DeviceStateName(DeviceState state);

struct StatusMessage {
  std::string device_id;
  DeviceState state = DeviceState::kOnline;
};

// topic_device_id: as for ReadingParser::Parse. A bare word needs it (else kMissingDeviceId).
// Rejects: kTooLarge (> 4096 bytes), kBadUtf8, kNotJson, kTooDeep, kNotObject, kDuplicateKey,
// kMissingDeviceId, kBadDeviceId, kDeviceIdMismatch, kWrongType (missing/unknown "status").
bool ParseStatus(std::string_view payload, std::string_view topic_device_id, StatusMessage* out,
                 Reject* reject);

}  // namespace outpost::proto
