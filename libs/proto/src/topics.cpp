#include "outpost/proto/topics.h"

namespace outpost::proto {
namespace {

bool IsIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == ':' || c == '-';
}

// Splits `topic` into at most 3 '/'-separated segments. Returns the segment count, or 0 when
// there are more than 3 (no topic of ours has more).
std::size_t Split(std::string_view topic, std::string_view (&seg)[3]) {
  std::size_t count = 0;
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = topic.find('/', start);
    if (count == 3) return 0;
    if (slash == std::string_view::npos) {
      seg[count++] = topic.substr(start);
      return count;
    }
    seg[count++] = topic.substr(start, slash - start);
    start = slash + 1;
  }
}

TopicKind GatewayLeaf(std::string_view leaf) {
  if (leaf == "alerts") return TopicKind::kGatewayAlerts;
  if (leaf == "status") return TopicKind::kGatewayStatus;
  if (leaf == "commands") return TopicKind::kGatewayCommands;
  return TopicKind::kUnknown;
}

std::string Join3(std::string_view a, std::string_view b, std::string_view c) {
  std::string out;
  out.reserve(a.size() + b.size() + c.size() + 2);
  out.append(a).append("/").append(b).append("/").append(c);
  return out;
}

}  // namespace

const char* TopicKindName(TopicKind kind) {
  switch (kind) {
    case TopicKind::kSensorData:
      return "sensor_data";
    case TopicKind::kDeviceStatus:
      return "device_status";
    case TopicKind::kDeviceCommands:
      return "device_commands";
    case TopicKind::kDeviceReplies:
      return "device_replies";
    case TopicKind::kGatewayCommands:
      return "gateway_commands";
    case TopicKind::kGatewayAlerts:
      return "gateway_alerts";
    case TopicKind::kGatewayStatus:
      return "gateway_status";
    case TopicKind::kUnknown:
      return "unknown";
  }
  return "unknown";
}

bool IsValidId(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdBytes) return false;
  for (char c : id) {
    if (!IsIdChar(c)) return false;
  }
  return true;
}

TopicInfo ClassifyTopic(std::string_view topic) {
  std::string_view seg[3];
  const std::size_t n = Split(topic, seg);
  TopicInfo info;
  if (n == 2) {
    if (seg[0] == "sensors" && seg[1] == "data") {
      info.kind = TopicKind::kSensorData;
    } else if (seg[0] == "devices") {
      if (seg[1] == "status") info.kind = TopicKind::kDeviceStatus;
      if (seg[1] == "commands") info.kind = TopicKind::kDeviceCommands;
    } else if (seg[0] == "gateway") {
      info.kind = GatewayLeaf(seg[1]);
    }
    return info;
  }
  if (n != 3 || !IsValidId(seg[1])) return info;
  if (seg[0] == "sensors") {
    if (seg[2] == "data") info.kind = TopicKind::kSensorData;
  } else if (seg[0] == "devices") {
    if (seg[2] == "status") info.kind = TopicKind::kDeviceStatus;
    if (seg[2] == "commands") info.kind = TopicKind::kDeviceCommands;
    if (seg[2] == "replies") info.kind = TopicKind::kDeviceReplies;
  } else if (seg[0] == "gateway") {
    info.kind = GatewayLeaf(seg[2]);
    if (info.kind != TopicKind::kUnknown) info.gateway_id = seg[1];
    return info;
  }
  if (info.kind != TopicKind::kUnknown) info.device_id = seg[1];
  return info;
}

std::string SensorDataTopic(std::string_view device_id) {
  return Join3("sensors", device_id, "data");
}
std::string DeviceStatusTopic(std::string_view device_id) {
  return Join3("devices", device_id, "status");
}
std::string DeviceCommandsTopic(std::string_view device_id) {
  return Join3("devices", device_id, "commands");
}
std::string DeviceRepliesTopic(std::string_view device_id) {
  return Join3("devices", device_id, "replies");
}
std::string GatewayTopic(std::string_view gateway_id, std::string_view leaf) {
  return Join3("gateway", gateway_id, leaf);
}

}  // namespace outpost::proto
