// Internal: the shared front end of every JSON codec in this library. Size, UTF-8 and syntax
// checks with precise reject reasons, duplicate-key detection, and safe text for details.
#pragma once

#include <simdjson.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/proto/reject.h"

namespace outpost::proto::internal {

// A simdjson DOM parser with a padded input buffer, both sized once for `max_bytes`.
// Not thread-safe. Elements returned by Parse live until the next Parse.
class JsonParser {
 public:
  // max_depth: how many containers may enclose a value (see Limits::max_depth).
  JsonParser(std::size_t max_bytes, std::size_t max_depth);

  // Checks, in order: size (kTooLarge), UTF-8 (kBadUtf8), then syntax (kNotJson, kBadNumber,
  // kTooDeep). Does not check that the root is an object.
  bool Parse(std::string_view payload, simdjson::dom::element* root, Reject* reject);
  // Parse, then kNotObject unless the root is an object.
  bool ParseObject(std::string_view payload, simdjson::dom::object* object, Reject* reject);

 private:
  std::size_t max_bytes_;
  std::size_t max_depth_;
  std::unique_ptr<char[]> buffer_;  // max_bytes_ + SIMDJSON_PADDING
  simdjson::dom::parser parser_;
};

// Fails with kDuplicateKey if two keys of `object` (after unescaping) are equal. `scratch` is
// reused between calls so that the check does not allocate in steady state.
bool CheckDuplicateKeys(simdjson::dom::object object, std::vector<std::string_view>* scratch,
                        Reject* reject);
// Same, over keys already collected; may reorder them.
bool CheckDuplicateKeys(std::string_view* keys, std::size_t n, Reject* reject);

// "string", "number", "boolean", "null", "array", "object".
const char* JsonTypeName(simdjson::dom::element_type type);

// Appends `text` quoted, with anything but printable ASCII (and '"', '\\') as \xNN, cut with
// "..." where the quoted form would pass `max_bytes`. Keeps reject details short and safe to log.
void AppendQuoted(std::string* out, std::string_view text, std::size_t max_bytes = 40);

// Fills *reject (reusing its capacity): reason, and detail = concatenation of the parts.
void SetReject(Reject* reject, RejectReason reason, std::string_view detail);

// detail: field "<name>": expected <what>, got <type>
void SetWrongType(Reject* reject, RejectReason reason, std::string_view field,
                  std::string_view expected, simdjson::dom::element_type got);

// Checks a device id value taken from the payload against the topic.
bool CheckDeviceIdValue(simdjson::dom::element value, std::string_view field,
                        std::string_view topic_device_id, std::string* device_id, Reject* reject);

// Finishes device id resolution when the payload had none.
bool DeviceIdFromTopic(std::string_view topic_device_id, std::string* device_id, Reject* reject);

inline bool IsDeviceIdKey(std::string_view key) { return key == "deviceId" || key == "device_id"; }

}  // namespace outpost::proto::internal
