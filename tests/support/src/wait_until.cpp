#include "outpost/testing/wait_until.h"

#include <algorithm>
#include <thread>

namespace outpost::testing {

::testing::AssertionResult WaitUntil(std::string_view what, std::chrono::milliseconds timeout,
                                     const std::function<bool()>& condition) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto deadline = start + timeout;
  auto interval = std::chrono::milliseconds(1);
  while (!condition()) {
    const auto now = Clock::now();
    if (now >= deadline) {
      return ::testing::AssertionFailure()
             << "timed out after "
             << std::chrono::duration_cast<std::chrono::milliseconds>(now - start).count()
             << " ms waiting for: " << what;
    }
    // Poll interval of a bounded wait, not a guess at how long something takes.
    std::this_thread::sleep_for(std::min<Clock::duration>(interval, deadline - now));
    interval = std::min(interval * 2, std::chrono::milliseconds(50));
  }
  return ::testing::AssertionSuccess();
}

}  // namespace outpost::testing
