// libFuzzer target for the device command reader: untrusted bytes from the broker must never
// crash it or make it read outside the payload, and any view it returns must lie inside it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "outpost/base/check.h"
#include "outpost/device/command.h"
#include "outpost/device/payload.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view json(reinterpret_cast<const char*>(data), size);
  outpost::device::CommandView v;
  const char* detail = nullptr;
  auto e = outpost::device::ParseCommand(json, v, &detail);
  OUTPOST_CHECK(detail != nullptr);
  auto inside = [&](std::string_view s) {
    return s.empty() || (s.data() >= json.data() && s.data() + s.size() <= json.data() + size);
  };
  OUTPOST_CHECK(inside(v.name) && inside(v.id));
  if (e == outpost::device::CommandError::kOk) OUTPOST_CHECK(v.name.data() != nullptr);
  // The reply to it always fits its buffer and is JSON-safe.
  char reply[288];  // the Node's reply buffer
  std::size_t n = outpost::device::WriteReplyJson(v.id.substr(0, 64), false, detail, false, reply,
                                                  sizeof reply);
  OUTPOST_CHECK(n > 0 && n < sizeof reply);
  return 0;
}
