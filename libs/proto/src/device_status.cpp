#include "outpost/proto/device_status.h"

#include "json.h"

namespace outpost::proto {
namespace {

namespace dom = simdjson::dom;

constexpr std::size_t kMaxStatusBytes = 4096;
constexpr std::size_t kMaxStatusDepth = 4;

bool StateFromWord(std::string_view word, DeviceState* state) {
  if (word == "online") {
    *state = DeviceState::kOnline;
  } else if (word == "offline") {
    *state = DeviceState::kOffline;
  } else if (word == "sleeping") {
    *state = DeviceState::kSleeping;
  } else {
    return false;
  }
  return true;
}

std::string_view TrimAsciiSpace(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

void SetUnknownState(Reject* reject, std::string_view word) {
  reject->reason = RejectReason::kWrongType;
  reject->detail.assign("field \"status\": expected online, offline or sleeping, got ");
  internal::AppendQuoted(&reject->detail, word);
}

}  // namespace

const char* DeviceStateName(DeviceState state) {
  switch (state) {
    case DeviceState::kOnline:
      return "online";
    case DeviceState::kSleeping:
      return "sleeping";
    case DeviceState::kOffline:
      return "offline";
  }
  return "unknown";
}

bool ParseStatus(std::string_view payload, std::string_view topic_device_id, StatusMessage* out,
                 Reject* reject) {
  if (payload.size() <= kMaxStatusBytes && StateFromWord(TrimAsciiSpace(payload), &out->state)) {
    return internal::DeviceIdFromTopic(topic_device_id, &out->device_id, reject);
  }
  if (payload.size() > kMaxStatusBytes) {
    internal::SetReject(reject, RejectReason::kTooLarge,
                        "payload is " + std::to_string(payload.size()) + " bytes; limit " +
                            std::to_string(kMaxStatusBytes));
    return false;
  }
  internal::JsonParser json(payload.size(), kMaxStatusDepth);
  dom::element root;
  if (!json.Parse(payload, &root, reject)) return false;
  std::string_view word;
  if (root.get(word) == simdjson::SUCCESS) {  // "online" as a JSON string
    if (!StateFromWord(word, &out->state)) {
      SetUnknownState(reject, word);
      return false;
    }
    return internal::DeviceIdFromTopic(topic_device_id, &out->device_id, reject);
  }
  dom::object object;
  if (root.get(object) != simdjson::SUCCESS) {
    reject->reason = RejectReason::kNotObject;
    reject->detail.assign("top level is ");
    reject->detail.append(internal::JsonTypeName(root.type()));
    reject->detail.append("; expected an object or a status word");
    return false;
  }
  std::vector<std::string_view> keys;
  if (!internal::CheckDuplicateKeys(object, &keys, reject)) return false;
  bool has_device_id = false;
  bool has_state = false;
  for (dom::key_value_pair field : object) {
    if (internal::IsDeviceIdKey(field.key)) {
      if (field.value.is_null()) continue;
      if (has_device_id) {
        internal::SetReject(reject, RejectReason::kDuplicateKey,
                            "both \"deviceId\" and its alias \"device_id\" are present");
        return false;
      }
      has_device_id = true;
      if (!internal::CheckDeviceIdValue(field.value, field.key, topic_device_id, &out->device_id,
                                        reject)) {
        return false;
      }
    } else if (field.key == "status") {
      if (field.value.get(word) != simdjson::SUCCESS) {
        internal::SetWrongType(reject, RejectReason::kWrongType, field.key, "string",
                               field.value.type());
        return false;
      }
      if (!StateFromWord(word, &out->state)) {
        SetUnknownState(reject, word);
        return false;
      }
      has_state = true;
    }
    // "timestamp" (the device's millis()) and anything else: informational, ignored.
  }
  if (!has_device_id && !internal::DeviceIdFromTopic(topic_device_id, &out->device_id, reject)) {
    return false;
  }
  if (!has_state) {
    internal::SetReject(reject, RejectReason::kWrongType, "missing field \"status\"");
    return false;
  }
  return true;
}

}  // namespace outpost::proto
