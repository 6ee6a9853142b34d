// Fuzzes proto::ParseDeviceReply (the replies native devices publish on devices/{id}/replies).
// Besides "never crash", it checks the documented invariants of every result; a broken one
// aborts.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "outpost/proto/device_reply.h"
#include "outpost/proto/topics.h"

namespace {

using namespace outpost::proto;

#define FUZZ_CHECK(cond)                                                         \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__); \
      std::abort();                                                              \
    }                                                                            \
  } while (0)

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view payload(reinterpret_cast<const char*>(data), size);
  DeviceReply reply;
  Reject reject;
  if (ParseDeviceReply(payload, &reply, &reject)) {
    FUZZ_CHECK(payload.size() <= kMaxDeviceReplyBytes);
    FUZZ_CHECK(IsValidId(reply.id));
    FUZZ_CHECK(reply.error.size() <= kMaxReplyErrorBytes);
    for (char c : reply.error) FUZZ_CHECK(c >= 0x20 && c < 0x7f);
    if (reply.ok) FUZZ_CHECK(!reply.rejected);
  } else {
    FUZZ_CHECK(reject.reason < RejectReason::kCount);
    FUZZ_CHECK(!reject.detail.empty());
    FUZZ_CHECK(reject.detail.size() <= 256);
    for (char c : reject.detail) FUZZ_CHECK(c >= 0x20 && c < 0x7f);
    if (payload.size() > kMaxDeviceReplyBytes) FUZZ_CHECK(reject.reason == RejectReason::kTooLarge);
  }
  return 0;
}
