#include "outpost/gateway/registry/registry.h"

#include <gtest/gtest.h>

namespace outpost::gateway::registry {
namespace {

Options Opts() { return Options{1000, 5000, 3}; }

TEST(Registry, NewDeviceIsOnlineAndFirstSeen) {
  Registry r(Opts());
  bool added = false;
  Device* d = r.FindOrAdd("a", 100, 100, &added);
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(added);
  EXPECT_EQ(d->state, State::kOnline);
  EXPECT_EQ(d->first_seen_ms, 100);
  EXPECT_EQ(r.FindOrAdd("a", 200, 200, &added), d);
  EXPECT_FALSE(added);
}

TEST(Registry, FullRegistryRefusesNewDevices) {
  Registry r(Opts());
  for (const char* id : {"a", "b", "c"}) ASSERT_NE(r.FindOrAdd(id, 0, 0), nullptr);
  EXPECT_EQ(r.FindOrAdd("d", 0, 0), nullptr);
  EXPECT_NE(r.FindOrAdd("a", 0, 0), nullptr) << "known devices still pass";
}

TEST(Registry, SilenceMakesOfflineOnceAndActivityBringsBack) {
  Registry r(Opts());
  Device* d = r.FindOrAdd("a", 0, 0);
  std::vector<Change> changes;
  r.Sweep(999, 999, &changes);
  EXPECT_TRUE(changes.empty());
  r.Sweep(1000, 1000, &changes);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].to, State::kOffline);
  r.Sweep(5000, 5000, &changes);
  EXPECT_EQ(changes.size(), 1u) << "offline is reported once";
  auto back = r.Seen(*d, 6000, 6000);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->from, State::kOffline);
  EXPECT_EQ(back->to, State::kOnline);
  EXPECT_FALSE(r.Seen(*d, 6001, 6001).has_value());
}

TEST(Registry, SleepingDeviceGetsTheLongerGrace) {
  Registry r(Opts());
  Device* d = r.FindOrAdd("a", 0, 0);
  ASSERT_TRUE(r.SetState(*d, State::kSleeping, 0).has_value());
  std::vector<Change> changes;
  r.Sweep(4999, 4999, &changes);
  EXPECT_TRUE(changes.empty());
  r.Sweep(5000, 5000, &changes);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].from, State::kSleeping);
  EXPECT_EQ(r.count(State::kOffline), 1u);
}

// Regression: a Pi without an RTC boots, then NTP steps the wall clock forward by days. Silence
// is measured on the monotonic clock, so nobody goes offline because of the step.
TEST(Registry, WallClockStepDoesNotMakeDevicesOffline) {
  Registry r(Opts());
  Device* d = r.FindOrAdd("a", 1'000, 0);
  std::vector<Change> changes;
  r.Sweep(1'000 + 2 * 86'400'000LL, 500, &changes);
  EXPECT_TRUE(changes.empty());
  r.Seen(*d, 2 * 86'400'000LL, 600);
  r.Sweep(2 * 86'400'000LL, 1'600, &changes);
  ASSERT_EQ(changes.size(), 1u) << "a real second of silence still counts";
}

TEST(Registry, RestoredDeviceGetsAFullSilencePeriodFromStartUp) {
  Registry r(Opts());
  Device d;
  d.id = "old";
  d.last_seen_ms = 5;
  r.Restore(d, 10'000);
  std::vector<Change> changes;
  r.Sweep(0, 10'999, &changes);
  EXPECT_TRUE(changes.empty());
  r.Sweep(0, 11'000, &changes);
  EXPECT_EQ(changes.size(), 1u);
}

TEST(Registry, StateNamesRoundTrip) {
  for (State s : {State::kOnline, State::kSleeping, State::kOffline}) {
    EXPECT_EQ(StateFromName(StateName(s)), s);
  }
  EXPECT_FALSE(StateFromName("asleep").has_value());
}

}  // namespace
}  // namespace outpost::gateway::registry
