// Fuzzes the scenario parser (a user-supplied YAML file): never crash, and an error always names
// something (a non-empty message).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "outpost/node/sim/scenario.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 8192) return 0;
  auto s = outpost::node::sim::ParseScenario(
      std::string_view(reinterpret_cast<const char*>(data), size));
  if (!s.ok() && s.status().message().empty()) std::abort();
  if (s.ok()) {
    for (const auto& f : s->faults) {
      if (f.at_ms < 0 || f.duration_ms < 0 || f.fraction < 0 || f.fraction > 1) std::abort();
    }
  }
  return 0;
}
