#include "outpost/proto/command.h"

#include <array>

#include "json.h"
#include "outpost/proto/topics.h"

namespace outpost::proto {
namespace {

namespace dom = simdjson::dom;

constexpr std::size_t kMaxCommandBytes = 4096;
constexpr std::size_t kMaxCommandDepth = 8;  // room for structured arguments
constexpr std::array<std::string_view, 5> kGatewayCommands = {"get_status", "sync_cloud", "restart",
                                                              "reload", "reboot"};

}  // namespace

bool IsKnownGatewayCommand(std::string_view name) {
  for (std::string_view known : kGatewayCommands) {
    if (name == known) return true;
  }
  return false;
}

bool ParseCommand(std::string_view payload, Command* out, Reject* reject) {
  out->name.clear();
  out->id.clear();
  if (payload.size() > kMaxCommandBytes) {
    internal::SetReject(reject, RejectReason::kTooLarge,
                        "payload is " + std::to_string(payload.size()) + " bytes; limit " +
                            std::to_string(kMaxCommandBytes));
    return false;
  }
  internal::JsonParser json(payload.size(), kMaxCommandDepth);
  dom::object object;
  if (!json.ParseObject(payload, &object, reject)) return false;
  std::vector<std::string_view> keys;
  if (!internal::CheckDuplicateKeys(object, &keys, reject)) return false;
  bool has_name = false;
  for (dom::key_value_pair field : object) {
    if (field.key == "command") {
      std::string_view name;
      if (field.value.get(name) != simdjson::SUCCESS) {
        internal::SetWrongType(reject, RejectReason::kWrongType, field.key, "string",
                               field.value.type());
        return false;
      }
      if (!IsKnownGatewayCommand(name)) {
        reject->reason = RejectReason::kWrongType;
        reject->detail.assign("unknown command ");
        internal::AppendQuoted(&reject->detail, name);
        reject->detail.append("; expected get_status, sync_cloud, restart, reload or reboot");
        return false;
      }
      out->name.assign(name.data(), name.size());
      has_name = true;
    } else if (field.key == "id") {
      std::string_view id;
      std::int64_t i = 0;
      std::uint64_t u = 0;
      if (field.value.is_null()) continue;
      if (field.value.get(id) == simdjson::SUCCESS) {
        if (!id.empty() && !IsValidId(id)) {
          reject->reason = RejectReason::kWrongType;
          reject->detail.assign("field \"id\": ");
          internal::AppendQuoted(&reject->detail, id);
          reject->detail.append(" is not 1..64 characters of [A-Za-z0-9_.:-]");
          return false;
        }
        out->id.assign(id.data(), id.size());
      } else if (field.value.get(i) == simdjson::SUCCESS) {
        out->id = std::to_string(i);
      } else if (field.value.get(u) == simdjson::SUCCESS) {
        out->id = std::to_string(u);
      } else {
        internal::SetWrongType(reject, RejectReason::kWrongType, field.key, "string or integer",
                               field.value.type());
        return false;
      }
    }
    // Anything else is an argument for the command; ignored here.
  }
  if (!has_name) {
    internal::SetReject(reject, RejectReason::kWrongType, "missing field \"command\"");
    return false;
  }
  return true;
}

}  // namespace outpost::proto
