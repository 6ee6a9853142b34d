#include "outpost/base/backoff.h"

#include <algorithm>

namespace outpost {

std::int64_t FullJitterDelayMs(const BackoffPolicy& policy, std::uint32_t attempt,
                               double unit_random) {
  // Saturate the exponent well before base * 2^attempt could overflow.
  std::int64_t ceiling = policy.base_ms;
  for (std::uint32_t i = 0; i < attempt && ceiling < policy.cap_ms; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, policy.cap_ms);
  double r = std::clamp(unit_random, 0.0, 1.0);
  auto delay = static_cast<std::int64_t>(r * static_cast<double>(ceiling));
  return std::min(delay, ceiling > 0 ? ceiling - 1 : 0);
}

}  // namespace outpost
