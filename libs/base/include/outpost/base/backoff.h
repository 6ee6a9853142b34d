// Full-jitter exponential backoff, as a pure function (no clock, no global random source).
// delay = uniform(0, min(cap, base * 2^attempt)); `unit_random` is a draw in [0, 1).
// See "Exponential Backoff And Jitter" (AWS architecture blog) for why full jitter.
#pragma once

#include <cstdint>

namespace outpost {

struct BackoffPolicy {
  std::int64_t base_ms = 500;
  std::int64_t cap_ms = 30'000;
};

// attempt: 0 for the first retry. Returns a delay in [0, min(cap, base * 2^attempt)).
std::int64_t FullJitterDelayMs(const BackoffPolicy& policy, std::uint32_t attempt,
                               double unit_random);

}  // namespace outpost
