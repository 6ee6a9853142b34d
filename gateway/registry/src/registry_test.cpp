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

TEST(Registry, ReasonFollowsWhatDecidedTheState) {
  Registry r(Opts());
  Device* d = r.FindOrAdd("a", 0, 0);
  (void)r.Seen(*d, 0, 0);
  EXPECT_EQ(d->reason, Reason::kReading);
  (void)r.SetState(*d, State::kSleeping, 10);
  EXPECT_EQ(d->reason, Reason::kStatus);
  (void)r.SetState(*d, State::kOffline, 20);  // a last will
  EXPECT_EQ(d->reason, Reason::kStatus);
  (void)r.Seen(*d, 30, 30);
  EXPECT_EQ(d->reason, Reason::kReading);
  std::vector<Change> changes;
  r.Sweep(1030, 1030, &changes);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(d->reason, Reason::kSilence);
  Device restored;
  restored.id = "b";
  restored.state = State::kOffline;
  r.Restore(restored, 2000, 2000);
  EXPECT_EQ(r.devices().at("b").reason, Reason::kRestored);
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
  r.Restore(d, /*wall_ms=*/5, /*mono_ms=*/10'000);
  std::vector<Change> changes;
  r.Sweep(0, 10'999, &changes);
  EXPECT_TRUE(changes.empty());
  r.Sweep(0, 11'000, &changes);
  EXPECT_EQ(changes.size(), 1u);
}

// Regression test: readings under fake device ids filled the registry (max_devices) for good;
// every new real device was refused from then on. Now a new device evicts the one idle longest
// (no valid reading for evict_after_ms); known devices are never refused.
TEST(Registry, fake_device_ids_cannot_lock_out_real_devices) {
  Options o = Opts();  // 3 devices
  o.evict_after_ms = 10'000;
  Registry r(o);
  auto any = [](const Device&) { return true; };
  Device* real = r.FindOrAdd("real", 0, 0);
  ASSERT_NE(real, nullptr);
  ASSERT_NE(r.FindOrAdd("fake1", 0, 0), nullptr);
  ASSERT_NE(r.FindOrAdd("fake2", 100, 100), nullptr);
  // Full, and nobody idle long enough: the new device is refused, the known ones pass.
  EXPECT_EQ(r.FindOrAdd("new", 5'000, 5'000), nullptr);
  EXPECT_FALSE(r.EvictIdle(5'000, any).has_value());
  EXPECT_NE(r.FindOrAdd("real", 5'000, 5'000), nullptr);
  r.Valid(*r.FindOrAdd("real", 19'000, 19'000), 19'000);  // the real device keeps reporting
  // Later the fakes (silent since 0 and 100) go first, oldest first; the real one stays.
  auto gone = r.EvictIdle(20'000, any);
  ASSERT_TRUE(gone.has_value());
  EXPECT_EQ(*gone, "fake1");
  EXPECT_NE(r.FindOrAdd("new", 20'000, 20'000), nullptr);
  EXPECT_EQ(r.FindOrAdd("new2", 20'000, 20'000), nullptr);
  // The caller can veto (e.g. a row not yet written): fake2 stays then.
  EXPECT_FALSE(r.EvictIdle(20'000, [](const Device&) { return false; }).has_value());
  gone = r.EvictIdle(20'000, any);
  ASSERT_TRUE(gone.has_value());
  EXPECT_EQ(*gone, "fake2");
  EXPECT_NE(r.FindOrAdd("new2", 20'000, 20'000), nullptr);
  // Now everyone is recent: nothing goes until one has been idle 10 s.
  EXPECT_FALSE(r.EvictIdle(25'000, any).has_value());
  EXPECT_EQ(r.size(), 3u);
  EXPECT_NE(r.devices().count("real"), 0u);
  // 0 turns eviction off.
  o.evict_after_ms = 0;
  r.set_options(o);
  EXPECT_FALSE(r.EvictIdle(1'000'000, any).has_value());
}

// A restored device is as idle as its last_seen says, so a full registry at start-up can
// still make room.
TEST(Registry, RestoredDeviceIsIdleSinceItsLastSeen) {
  Options o = Opts();
  o.max_devices = 1;
  o.evict_after_ms = 10'000;
  Registry r(o);
  Device d;
  d.id = "old";
  d.last_seen_ms = 1'000'000;
  r.Restore(d, /*wall_ms=*/1'020'000, /*mono_ms=*/500);  // last seen 20 s before start
  auto gone = r.EvictIdle(600, [](const Device&) { return true; });
  ASSERT_TRUE(gone.has_value());
  EXPECT_EQ(*gone, "old");
}

TEST(Registry, StateNamesRoundTrip) {
  for (State s : {State::kOnline, State::kSleeping, State::kOffline}) {
    EXPECT_EQ(StateFromName(StateName(s)), s);
  }
  EXPECT_FALSE(StateFromName("asleep").has_value());
}

}  // namespace
}  // namespace outpost::gateway::registry
