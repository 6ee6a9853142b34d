#include "outpost/proto/device_reply.h"

#include "json.h"
#include "outpost/proto/topics.h"

namespace outpost::proto {

namespace {
namespace dom = simdjson::dom;
constexpr std::size_t kMaxReplyDepth = 8;

bool IsBase64(std::string_view s) {
  if (s.empty() || s.size() % 4 != 0) return false;
  std::size_t pad = 0;
  for (char c : s) {
    const bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (c == '=') {
      ++pad;
    } else if (pad != 0 || !(alnum || c == '+' || c == '/')) {
      return false;  // a character after the padding, or outside the alphabet
    }
  }
  return pad <= 2;
}

bool IsHex(std::string_view s) {
  if (s.empty() || s.size() > kMaxReplySerialChars) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}
}  // namespace

bool ParseDeviceReply(std::string_view payload, DeviceReply* out, Reject* reject) {
  *out = DeviceReply{};
  internal::JsonParser json(kMaxDeviceReplyBytes, kMaxReplyDepth);
  dom::object object;
  if (!json.ParseObject(payload, &object, reject)) return false;
  std::vector<std::string_view> keys;
  if (!internal::CheckDuplicateKeys(object, &keys, reject)) return false;
  bool has_id = false, delivered = false;
  for (dom::key_value_pair field : object) {
    const std::string_view key = field.key;
    auto boolean = [&](bool* dst) {
      if (field.value.get(*dst) == simdjson::SUCCESS) return true;
      internal::SetWrongType(reject, RejectReason::kWrongType, key, "boolean", field.value.type());
      return false;
    };
    if (key == "id") {
      std::string_view id;
      std::uint64_t u = 0;
      if (field.value.get(id) == simdjson::SUCCESS) {
        if (!IsValidId(id)) {
          reject->reason = RejectReason::kWrongType;
          reject->detail.assign("field \"id\": ");
          internal::AppendQuoted(&reject->detail, id);
          reject->detail.append(" is not 1..64 characters of [A-Za-z0-9_.:-]");
          return false;
        }
        out->id.assign(id.data(), id.size());
      } else if (field.value.get(u) == simdjson::SUCCESS) {
        out->id = std::to_string(u);
      } else {
        internal::SetWrongType(reject, RejectReason::kWrongType, key, "string or integer",
                               field.value.type());
        return false;
      }
      has_id = true;
    } else if (key == "ok") {
      if (!boolean(&out->ok)) return false;
      out->has_ok = true;
    } else if (key == "rejected") {
      if (!boolean(&out->rejected)) return false;
    } else if (key == "duplicate") {
      if (!boolean(&out->duplicate)) return false;
    } else if (key == "delivered") {
      if (!boolean(&delivered)) return false;
    } else if (key == "csr" || key == "serial") {
      std::string_view text;
      if (field.value.get(text) != simdjson::SUCCESS) {
        internal::SetWrongType(reject, RejectReason::kWrongType, key, "string", field.value.type());
        return false;
      }
      const bool csr = key == "csr";
      if (csr ? !IsBase64(text) : !IsHex(text)) {
        internal::SetReject(reject, RejectReason::kWrongType,
                            csr ? "field \"csr\": expected base64 (the DER of a CSR)"
                                : "field \"serial\": expected 1..40 hex digits");
        return false;
      }
      (csr ? out->csr : out->serial).assign(text.data(), text.size());
    } else if (key == "error") {
      std::string_view error;
      if (field.value.is_null()) continue;
      if (field.value.get(error) != simdjson::SUCCESS) {
        internal::SetWrongType(reject, RejectReason::kWrongType, key, "string", field.value.type());
        return false;
      }
      // Printable ASCII only (it is shown and logged), cut to the limit.
      for (char c : error) {
        if (out->error.size() >= kMaxReplyErrorBytes) break;
        out->error += (c >= 0x20 && c < 0x7f) ? c : '?';
      }
    }
  }
  if (!has_id) {
    internal::SetReject(reject, RejectReason::kWrongType, "missing field \"id\"");
    return false;
  }
  if (!out->has_ok && !delivered) {
    internal::SetReject(reject, RejectReason::kWrongType,
                        "expected field \"ok\" (an outcome) or \"delivered\":true");
    return false;
  }
  if (out->ok) out->rejected = false;
  return true;
}

}  // namespace outpost::proto
