#include "json.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "outpost/base/check.h"
#include "outpost/proto/topics.h"

namespace outpost::proto::internal {
namespace {

namespace dom = simdjson::dom;

// simdjson's depth limit counts the root container too; ours counts the containers that
// enclose a value (see Limits::max_depth). Capped so that hostile limits stay cheap.
constexpr std::size_t kMaxSupportedDepth = 1024;
// simdjson never sizes a parser below 32 bytes; asking for less fails with CAPACITY.
constexpr std::size_t kMinCapacity = 64;

bool IsJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// True if the number text at s[*pos] matches the JSON grammar and ends at a delimiter.
// Advances *pos past it.
bool ScanJsonNumber(std::string_view s, std::size_t* pos) {
  std::size_t i = *pos;
  const std::size_t n = s.size();
  if (i < n && s[i] == '-') ++i;
  if (i >= n || !IsDigit(s[i])) return false;
  if (s[i] == '0') {
    ++i;
  } else {
    while (i < n && IsDigit(s[i])) ++i;
  }
  if (i < n && s[i] == '.') {
    ++i;
    if (i >= n || !IsDigit(s[i])) return false;
    while (i < n && IsDigit(s[i])) ++i;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    if (i >= n || !IsDigit(s[i])) return false;
    while (i < n && IsDigit(s[i])) ++i;
  }
  *pos = i;
  return i == n || IsJsonSpace(s[i]) || s[i] == ',' || s[i] == ']' || s[i] == '}';
}

// simdjson reports both malformed and out-of-range numbers as NUMBER_ERROR. If every number
// token outside strings is well-formed, the problem is range (e.g. 1e400, or an integer beyond
// 64 bits): that is kBadNumber, not kNotJson. Runs only on that error path.
bool AllNumbersWellFormed(std::string_view s) {
  bool in_string = false;
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\') {
        i += 2;
        continue;
      }
      if (c == '"') in_string = false;
      ++i;
    } else if (c == '"') {
      in_string = true;
      ++i;
    } else if (c == '-' || IsDigit(c)) {
      if (!ScanJsonNumber(s, &i)) return false;
    } else {
      ++i;
    }
  }
  return true;
}

}  // namespace

JsonParser::JsonParser(std::size_t max_bytes, std::size_t max_depth)
    : max_bytes_(max_bytes),
      max_depth_(std::min(max_depth, kMaxSupportedDepth)),
      buffer_(new char[max_bytes + simdjson::SIMDJSON_PADDING]),
      parser_(std::max(max_bytes, kMinCapacity)) {
  const std::size_t capacity = std::max(max_bytes, kMinCapacity);
  OUTPOST_CHECK(parser_.allocate(capacity, max_depth_ + 1) == simdjson::SUCCESS);
  // simdjson sizes its document on the first parse, for that parse's length. Parse blanks of
  // the maximum length now so that no later Parse allocates.
  std::memset(buffer_.get(), ' ', max_bytes + simdjson::SIMDJSON_PADDING);
  simdjson::dom::element ignored;
  const auto err = parser_.parse(buffer_.get(), max_bytes, false).get(ignored);
  OUTPOST_CHECK(err == simdjson::EMPTY || err == simdjson::SUCCESS);
}

bool JsonParser::ParseObject(std::string_view payload, dom::object* object, Reject* reject) {
  dom::element root;
  if (!Parse(payload, &root, reject)) return false;
  if (root.get(*object) != simdjson::SUCCESS) {
    reject->reason = RejectReason::kNotObject;
    reject->detail.assign("top level is ");
    reject->detail.append(JsonTypeName(root.type()));
    reject->detail.append("; expected an object");
    return false;
  }
  return true;
}

bool JsonParser::Parse(std::string_view payload, dom::element* root, Reject* reject) {
  if (payload.size() > max_bytes_) {
    std::string detail = "payload is " + std::to_string(payload.size()) + " bytes; limit " +
                         std::to_string(max_bytes_);
    SetReject(reject, RejectReason::kTooLarge, detail);
    return false;
  }
  if (!payload.empty()) std::memcpy(buffer_.get(), payload.data(), payload.size());
  std::memset(buffer_.get() + payload.size(), 0, simdjson::SIMDJSON_PADDING);
  const auto err = parser_.parse(buffer_.get(), payload.size(), false).get(*root);
  if (err == simdjson::SUCCESS) return true;  // simdjson has validated the UTF-8 too
  // Invalid UTF-8 wins over every syntax error, wherever simdjson happened to stop.
  if (!simdjson::validate_utf8(payload.data(), payload.size())) {
    SetReject(reject, RejectReason::kBadUtf8, "payload is not valid UTF-8");
    return false;
  }
  switch (err) {
    case simdjson::DEPTH_ERROR: {
      std::string detail = "nested deeper than " + std::to_string(max_depth_) + " levels";
      SetReject(reject, RejectReason::kTooDeep, detail);
      return false;
    }
    case simdjson::UTF8_ERROR:
      SetReject(reject, RejectReason::kBadUtf8, "payload is not valid UTF-8");
      return false;
    case simdjson::NUMBER_ERROR:
      if (AllNumbersWellFormed(payload)) {
        SetReject(reject, RejectReason::kBadNumber,
                  "a number is out of range (not a finite double, or an integer beyond 64 bits)");
      } else {
        SetReject(reject, RejectReason::kNotJson, "malformed number");
      }
      return false;
    case simdjson::EMPTY:
      SetReject(reject, RejectReason::kNotJson, "empty payload");
      return false;
    case simdjson::STRING_ERROR:
      SetReject(reject, RejectReason::kNotJson, "malformed string escape");
      return false;
    case simdjson::UNESCAPED_CHARS:
      SetReject(reject, RejectReason::kNotJson, "unescaped control character in a string");
      return false;
    case simdjson::UNCLOSED_STRING:
      SetReject(reject, RejectReason::kNotJson, "unclosed string");
      return false;
    case simdjson::T_ATOM_ERROR:
    case simdjson::F_ATOM_ERROR:
    case simdjson::N_ATOM_ERROR:
      SetReject(reject, RejectReason::kNotJson, "malformed literal (true, false or null)");
      return false;
    case simdjson::TAPE_ERROR:
      SetReject(reject, RejectReason::kNotJson,
                "malformed structure (commas, colons, brackets, or bytes after the value)");
      return false;
    case simdjson::CAPACITY:
      SetReject(reject, RejectReason::kTooLarge, "payload exceeds parser capacity");
      return false;
    default:
      SetReject(reject, RejectReason::kNotJson, simdjson::error_message(err));
      return false;
  }
}

bool CheckDuplicateKeys(std::string_view* keys, std::size_t n, Reject* reject) {
  if (n < 2) return true;
  const std::string_view* dup = nullptr;
  if (n <= 16) {
    // Typical readings have 5..10 keys: pairwise is faster than sorting.
    for (std::size_t i = 1; i < n && dup == nullptr; ++i) {
      for (std::size_t j = 0; j < i; ++j) {
        if (keys[i].size() == keys[j].size() && keys[i] == keys[j]) {
          dup = &keys[i];
          break;
        }
      }
    }
  } else {
    std::sort(keys, keys + n);
    const auto it = std::adjacent_find(keys, keys + n);
    if (it != keys + n) dup = it;
  }
  if (dup == nullptr) return true;
  reject->reason = RejectReason::kDuplicateKey;
  reject->detail.assign("duplicate key ");
  AppendQuoted(&reject->detail, *dup);
  return false;
}

bool CheckDuplicateKeys(dom::object object, std::vector<std::string_view>* scratch,
                        Reject* reject) {
  scratch->clear();
  for (dom::key_value_pair field : object) scratch->push_back(field.key);
  return CheckDuplicateKeys(scratch->data(), scratch->size(), reject);
}

const char* JsonTypeName(dom::element_type type) {
  switch (type) {
    case dom::element_type::ARRAY:
      return "array";
    case dom::element_type::OBJECT:
      return "object";
    case dom::element_type::INT64:
    case dom::element_type::UINT64:
    case dom::element_type::DOUBLE:
      return "number";
    case dom::element_type::STRING:
      return "string";
    case dom::element_type::BOOL:
      return "boolean";
    case dom::element_type::NULL_VALUE:
      return "null";
  }
  return "unknown";
}

void AppendQuoted(std::string* out, std::string_view text, std::size_t max_bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  std::size_t written = 0;  // bytes of the quoted form, so escapes cannot blow the bound up 4x
  std::size_t i = 0;
  for (; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    const bool plain = c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
    const std::size_t width = plain ? 1 : 4;
    if (written + width > max_bytes) break;
    written += width;
    if (plain) {
      out->push_back(static_cast<char>(c));
    } else {
      out->append("\\x");
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 0xf]);
    }
  }
  if (i < text.size()) out->append("...");
  out->push_back('"');
}

void SetReject(Reject* reject, RejectReason reason, std::string_view detail) {
  reject->reason = reason;
  reject->detail.assign(detail.data(), detail.size());
}

void SetWrongType(Reject* reject, RejectReason reason, std::string_view field,
                  std::string_view expected, dom::element_type got) {
  reject->reason = reason;
  reject->detail.assign("field ");
  AppendQuoted(&reject->detail, field);
  reject->detail.append(": expected ");
  reject->detail.append(expected);
  reject->detail.append(", got ");
  reject->detail.append(JsonTypeName(got));
}

bool CheckDeviceIdValue(dom::element value, std::string_view field,
                        std::string_view topic_device_id, std::string* device_id, Reject* reject) {
  std::string_view id;
  if (value.get(id) != simdjson::SUCCESS) {
    SetWrongType(reject, RejectReason::kBadDeviceId, field, "string", value.type());
    return false;
  }
  if (!IsValidId(id)) {
    reject->reason = RejectReason::kBadDeviceId;
    reject->detail.assign("field ");
    AppendQuoted(&reject->detail, field);
    reject->detail.append(": ");
    AppendQuoted(&reject->detail, id);
    reject->detail.append(" is not 1..64 characters of [A-Za-z0-9_.:-]");
    return false;
  }
  if (!topic_device_id.empty() && id != topic_device_id) {
    reject->reason = RejectReason::kDeviceIdMismatch;
    reject->detail.assign("field ");
    AppendQuoted(&reject->detail, field);
    reject->detail.append(" is ");
    AppendQuoted(&reject->detail, id);
    reject->detail.append(" but the topic is for device ");
    AppendQuoted(&reject->detail, topic_device_id);
    return false;
  }
  device_id->assign(id.data(), id.size());
  return true;
}

bool DeviceIdFromTopic(std::string_view topic_device_id, std::string* device_id, Reject* reject) {
  if (topic_device_id.empty()) {
    SetReject(reject, RejectReason::kMissingDeviceId,
              "no \"deviceId\" (or \"device_id\") on a topic without a device id");
    return false;
  }
  if (!IsValidId(topic_device_id)) {
    reject->reason = RejectReason::kBadDeviceId;
    reject->detail.assign("topic device id ");
    AppendQuoted(&reject->detail, topic_device_id);
    reject->detail.append(" is not 1..64 characters of [A-Za-z0-9_.:-]");
    return false;
  }
  device_id->assign(topic_device_id.data(), topic_device_id.size());
  return true;
}

}  // namespace outpost::proto::internal
