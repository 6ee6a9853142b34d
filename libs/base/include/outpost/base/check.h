// OUTPOST_CHECK: crash loudly, with context, when an invariant is broken.
// For the world's errors (bad input, I/O) return a Status instead.
#pragma once

namespace outpost::detail {
[[noreturn]] void CheckFailed(const char* expr, const char* file, int line);
}  // namespace outpost::detail

#define OUTPOST_CHECK(cond)                                                 \
  do {                                                                      \
    if (!(cond)) ::outpost::detail::CheckFailed(#cond, __FILE__, __LINE__); \
  } while (0)
