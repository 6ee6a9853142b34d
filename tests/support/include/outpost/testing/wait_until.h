// WaitUntil: the one bounded poll of the test suite. Tests that wait for another process (a
// broker, the gateway, the cloud) poll a condition with it instead of sleeping a guessed time:
//   ASSERT_TRUE(WaitUntil("100 readings stored", 10s, [&] { return Count(db) >= 100; }));
// The condition is checked at once, then with a poll interval growing from 1 ms to 50 ms, and
// once more at the deadline. On timeout the failure names `what` and the time waited.
// Thread: the condition runs on the calling thread.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string_view>

namespace outpost::testing {

::testing::AssertionResult WaitUntil(std::string_view what, std::chrono::milliseconds timeout,
                                     const std::function<bool()>& condition);

}  // namespace outpost::testing
