// Fuzzes the uplink's parsers of data it did not produce in this process: the Retry-After
// header of a (possibly hostile) server, and outbox rows read back from the file (a corrupt or
// tampered row) turned into seed and native bodies. Never crash; bodies stay JSON objects.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "outpost/gateway/uplink/codec.h"
#include "outpost/gateway/uplink/retry.h"

using namespace outpost::gateway;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto ra = uplink::ParseRetryAfterMs(in, 1'764'201'600'000);
  if (ra && *ra < 0) std::abort();
  std::vector<model::OutboxEntry> items;
  items.push_back(model::OutboxEntry{1, model::OutboxKind::kReading, 0, std::string(in)});
  items.push_back(model::OutboxEntry{2, model::OutboxKind::kAlert, 0, std::string(in)});
  for (auto p : {uplink::Protocol::kSeed, uplink::Protocol::kNative}) {
    auto body = uplink::BuildBody(p, "gw\"1", items);
    if (body.ok() && p == uplink::Protocol::kSeed) {
      // What the seed path emits must be valid JSON whatever the stored row held.
      auto j = nlohmann::json::parse(body->json, nullptr, false);
      if (j.is_discarded() || !j.is_object()) {
        std::fprintf(stderr, "invalid seed body: %s\n", body->json.c_str());
        std::abort();
      }
    }
  }
  return 0;
}
