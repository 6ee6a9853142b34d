#include "outpost/systemd/watchdog.h"

#include <gtest/gtest.h>

#include "outpost/base/clock.h"

namespace outpost::systemd {
namespace {

TEST(ParseWatchdogUsec, unset_means_off) {
  auto r = ParseWatchdogUsec(nullptr, nullptr, 42);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 0);
}

TEST(ParseWatchdogUsec, reads_the_interval_for_this_process) {
  auto r = ParseWatchdogUsec("30000000", "42", 42);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 30'000'000);
  auto no_pid = ParseWatchdogUsec("2000000", nullptr, 42);
  ASSERT_TRUE(no_pid.ok());
  EXPECT_EQ(*no_pid, 2'000'000);
}

TEST(ParseWatchdogUsec, another_processes_watchdog_is_off) {
  auto r = ParseWatchdogUsec("30000000", "41", 42);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 0);
}

TEST(ParseWatchdogUsec, malformed_values_name_the_variable) {
  for (const char* bad : {"", "0", "-5", "12x", "abc", "99999999999999999999999"}) {
    auto r = ParseWatchdogUsec(bad, nullptr, 42);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find("WATCHDOG_USEC"), std::string::npos);
  }
  auto pid = ParseWatchdogUsec("1000000", "me", 42);
  ASSERT_FALSE(pid.ok());
  EXPECT_NE(pid.status().message().find("WATCHDOG_PID"), std::string::npos);
}

TEST(WatchdogPolicy, pings_at_half_the_interval) {
  EXPECT_EQ(WatchdogPolicy(30'000'000).ping_period_ms(), 15'000);
  EXPECT_EQ(WatchdogPolicy(1'000).ping_period_ms(), 1);  // never a zero period
}

TEST(WatchdogPolicy, idle_loop_is_healthy) {
  FakeClock clock;
  WatchdogPolicy p(2'000'000);
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(p.ShouldPing(clock.steady_ms(), LoopProgress{7, false, 0}));
    clock.Advance(p.ping_period_ms());
  }
  EXPECT_EQ(p.pings(), 5u);
  EXPECT_EQ(p.withheld(), 0u);
}

TEST(WatchdogPolicy, turning_loop_is_healthy_even_when_always_busy) {
  FakeClock clock;
  WatchdogPolicy p(2'000'000);
  std::uint64_t turns = 0;
  EXPECT_TRUE(p.ShouldPing(clock.steady_ms(), LoopProgress{turns, true, clock.steady_ms()}));
  for (int i = 0; i < 5; ++i) {
    // Busy at every check, with an operation that started long ago, but operations finished.
    const std::int64_t began = clock.steady_ms();
    clock.Advance(p.ping_period_ms() * 2);
    turns += 3;
    EXPECT_TRUE(p.ShouldPing(clock.steady_ms(), LoopProgress{turns, true, began}));
  }
}

TEST(WatchdogPolicy, young_operation_is_healthy) {
  FakeClock clock;
  WatchdogPolicy p(2'000'000);
  EXPECT_TRUE(p.ShouldPing(clock.steady_ms(), LoopProgress{1, false, 0}));
  clock.Advance(1000);
  EXPECT_TRUE(p.ShouldPing(clock.steady_ms(), LoopProgress{1, true, clock.steady_ms() - 999}));
}

TEST(WatchdogPolicy, stalled_operation_withholds_the_ping_until_it_ends) {
  FakeClock clock;
  WatchdogPolicy p(2'000'000);  // checks every 1000 ms
  EXPECT_TRUE(p.ShouldPing(clock.steady_ms(), LoopProgress{4, false, 0}));
  const std::int64_t stuck_since = clock.steady_ms() + 10;
  clock.Advance(1000);
  // 990 ms into the write: still younger than a period.
  EXPECT_TRUE(p.ShouldPing(clock.steady_ms(), LoopProgress{4, true, stuck_since}));
  clock.Advance(1000);
  EXPECT_FALSE(p.ShouldPing(clock.steady_ms(), LoopProgress{4, true, stuck_since}));
  EXPECT_EQ(p.stalled_ms(), 1990);
  clock.Advance(1000);
  EXPECT_FALSE(p.ShouldPing(clock.steady_ms(), LoopProgress{4, true, stuck_since}));
  EXPECT_EQ(p.withheld(), 2u);
  // The write returns: the loop turned.
  clock.Advance(1000);
  EXPECT_TRUE(p.ShouldPing(clock.steady_ms(), LoopProgress{5, false, 0}));
  EXPECT_EQ(p.stalled_ms(), 0);
  EXPECT_EQ(p.pings(), 3u);
}

TEST(WatchdogPolicy, first_check_of_a_stalled_loop_withholds) {
  FakeClock clock;
  clock.Advance(10'000);
  WatchdogPolicy p(2'000'000);
  EXPECT_FALSE(p.ShouldPing(clock.steady_ms(), LoopProgress{9, true, 0}));
}

TEST(StatusLine, one_line_and_bounded) {
  EXPECT_EQ(StatusLine("ready: 3 devices"), "STATUS=ready: 3 devices");
  EXPECT_EQ(StatusLine("a\nb"), "STATUS=a b");
  EXPECT_EQ(StatusLine(std::string(2000, 'x')).size(), 7u + 512u);
}

}  // namespace
}  // namespace outpost::systemd
