// MQTT topic names: the seed's flat topics and the native per-device scheme.
// Pure functions, no allocation except in the *Topic builders. Thread-safe.
// Format: docs/formats/topics.md
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace outpost::proto {

enum class TopicKind : std::uint8_t {
  kSensorData,       // sensors/data, sensors/{device_id}/data
  kDeviceStatus,     // devices/status, devices/{device_id}/status
  kDeviceCommands,   // devices/commands, devices/{device_id}/commands
  kDeviceReplies,    // devices/{device_id}/replies
  kGatewayCommands,  // gateway/commands, gateway/{gateway_id}/commands
  kGatewayAlerts,    // gateway/alerts, gateway/{gateway_id}/alerts
  kGatewayStatus,    // gateway/status, gateway/{gateway_id}/status
  kUnknown,
};

// "sensor_data", "device_status", ... "unknown". Stable; usable as a counter key.
const char* TopicKindName(TopicKind kind);

struct TopicInfo {
  TopicKind kind = TopicKind::kUnknown;
  std::string_view device_id;   // set for per-device topics; empty for flat seed topics
  std::string_view gateway_id;  // set for gateway/{gateway_id}/... topics
};

// Classifies a concrete topic (no wildcards). The views point into `topic`, so they live as
// long as it does. A segment that should be an id but is not IsValidId() -> kUnknown, as is any
// other shape (extra or empty segments, leading or trailing '/').
TopicInfo ClassifyTopic(std::string_view topic);

// A device or gateway id: 1..64 bytes, each one of [A-Za-z0-9_.:-]. Such an id is safe as an MQTT
// topic segment (no '/', '+', '#'), in file names and URLs, and needs no JSON escaping.
inline constexpr std::size_t kMaxIdBytes = 64;
bool IsValidId(std::string_view id);

// Seed (flat) topics, exactly as the seed's ESP32 sketch and Python gateway use them.
inline constexpr std::string_view kSeedSensorDataTopic = "sensors/data";
inline constexpr std::string_view kSeedDeviceStatusTopic = "devices/status";
inline constexpr std::string_view kSeedDeviceCommandsTopic = "devices/commands";
inline constexpr std::string_view kSeedGatewayAlertsTopic = "gateway/alerts";
inline constexpr std::string_view kSeedGatewayStatusTopic = "gateway/status";
inline constexpr std::string_view kSeedGatewayCommandsTopic = "gateway/commands";

// Subscription filters for the native per-device topics.
inline constexpr std::string_view kSensorDataFilter = "sensors/+/data";
inline constexpr std::string_view kDeviceStatusFilter = "devices/+/status";
inline constexpr std::string_view kDeviceRepliesFilter = "devices/+/replies";

// Builders for native topics. Precondition (not checked): ids satisfy IsValidId(); `leaf` is
// "alerts", "status" or "commands".
std::string SensorDataTopic(std::string_view device_id);      // sensors/{device_id}/data
std::string DeviceStatusTopic(std::string_view device_id);    // devices/{device_id}/status
std::string DeviceCommandsTopic(std::string_view device_id);  // devices/{device_id}/commands
std::string DeviceRepliesTopic(std::string_view device_id);   // devices/{device_id}/replies
std::string GatewayTopic(std::string_view gateway_id,
                         std::string_view leaf);  // gateway/{id}/{leaf}

}  // namespace outpost::proto
