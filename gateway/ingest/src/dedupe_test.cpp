#include "outpost/gateway/ingest/dedupe.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "outpost/gateway/ingest/token_bucket.h"

namespace outpost::gateway::ingest {
namespace {

// Several devices, as the gateway keeps them: one DeviceDedupe each.
class Deduplicator {
 public:
  explicit Deduplicator(std::uint64_t window = 1'000'000) : window_(window) {}
  Verdict Check(const std::string& device, const Identity& id) {
    return devices_.try_emplace(device, window_).first->second.Check(id);
  }

 private:
  std::uint64_t window_;
  std::map<std::string, DeviceDedupe> devices_;
};

Identity Seq(std::uint32_t boot, std::uint64_t seq) {
  Identity id;
  id.has_seq = true;
  id.boot = boot;
  id.seq = seq;
  return id;
}

Identity Ts(std::int64_t ts) {
  Identity id;
  id.has_device_ts = true;
  id.device_ts_raw = ts;
  return id;
}

TEST(Deduplicator, SameSeqTwiceIsDuplicate) {
  Deduplicator d(128);
  EXPECT_FALSE(d.Check("a", Seq(1, 1)).duplicate);
  EXPECT_FALSE(d.Check("a", Seq(1, 2)).duplicate);
  EXPECT_TRUE(d.Check("a", Seq(1, 1)).duplicate);
  EXPECT_TRUE(d.Check("a", Seq(1, 2)).duplicate);
  EXPECT_FALSE(d.Check("b", Seq(1, 1)).duplicate) << "devices are independent";
}

TEST(Deduplicator, GapsAreCountedAndLateReadingsFillThem) {
  Deduplicator d(128);
  EXPECT_EQ(d.Check("a", Seq(1, 10)).new_gaps, 0u);
  auto v = d.Check("a", Seq(1, 14));
  EXPECT_EQ(v.new_gaps, 3u);
  auto late = d.Check("a", Seq(1, 12));
  EXPECT_FALSE(late.duplicate);
  EXPECT_TRUE(late.filled_gap);
  EXPECT_TRUE(d.Check("a", Seq(1, 12)).duplicate);
}

TEST(Deduplicator, SeqsOlderThanTheWindowAreAcceptedUnchecked) {
  DeviceDedupe d(100);
  for (std::uint64_t s = 1; s <= 50; ++s) ASSERT_FALSE(d.Check(Seq(1, s)).duplicate);
  EXPECT_EQ(d.Check(Seq(1, 300)).new_gaps, 249u);
  auto late = d.Check(Seq(1, 250));
  EXPECT_TRUE(late.filled_gap);
  EXPECT_FALSE(late.duplicate);
  EXPECT_TRUE(d.Check(Seq(1, 250)).duplicate);
  auto old = d.Check(Seq(1, 150));  // 150 below the newest: forgotten
  EXPECT_TRUE(old.beyond_window);
  EXPECT_FALSE(old.duplicate);
  EXPECT_TRUE(d.Check(Seq(1, 10)).beyond_window);
}

TEST(Deduplicator, TooManyGapsForgetTheOldestRanges) {
  DeviceDedupe d;
  for (std::uint64_t s = 2; s <= 2 * (DeviceDedupe::kMaxRanges + 10); s += 2) d.Check(Seq(1, s));
  EXPECT_TRUE(d.Check(Seq(1, 2)).beyond_window);
  EXPECT_TRUE(d.Check(Seq(1, 2 * (DeviceDedupe::kMaxRanges + 10))).duplicate);
}

// Regression: Mosquitto processes acknowledgements lazily while it floods a reconnecting client,
// so after a crash it may redeliver tens of thousands of readings the gateway had committed and
// acknowledged. All of them must be recognised (a 1,024-seq window stored 22,220 twice).
TEST(Deduplicator, LargeRedeliveryIsRecognised) {
  DeviceDedupe d;
  for (std::uint64_t s = 1; s <= 60'000; ++s) ASSERT_FALSE(d.Check(Seq(3, s)).duplicate);
  for (std::uint64_t s = 1; s <= 60'000; ++s) ASSERT_TRUE(d.Check(Seq(3, s)).duplicate) << s;
}

TEST(Deduplicator, NewBootStartsFreshAndPreviousBootIsStillChecked) {
  Deduplicator d(128);
  d.Check("a", Seq(1, 5));
  auto v = d.Check("a", Seq(2, 0));
  EXPECT_TRUE(v.new_boot);
  EXPECT_EQ(v.new_gaps, 0u);
  EXPECT_FALSE(d.Check("a", Seq(2, 1)).duplicate);
  EXPECT_TRUE(d.Check("a", Seq(1, 5)).duplicate) << "redelivery from the boot before";
  EXPECT_FALSE(d.Check("a", Seq(1, 6)).duplicate);
  EXPECT_TRUE(d.Check("a", Seq(2, 1)).duplicate);
}

// Regression: a straggler from two boots ago must not become the current boot.
TEST(Deduplicator, StragglerFromAnOlderBootDoesNotBecomeCurrent) {
  DeviceDedupe d(128);
  d.Check(Seq(1, 10));
  d.Check(Seq(2, 10));
  d.Check(Seq(3, 10));
  auto v = d.Check(Seq(1, 11));
  EXPECT_TRUE(v.beyond_window);
  EXPECT_FALSE(v.new_boot);
  EXPECT_TRUE(d.Check(Seq(3, 10)).duplicate) << "boot 3 is still current";
  EXPECT_EQ(d.Check(Seq(3, 12)).new_gaps, 1u);
}

TEST(Deduplicator, SeedTimestampsIdentifyReadings) {
  Deduplicator d;
  EXPECT_FALSE(d.Check("esp", Ts(5000)).duplicate);
  EXPECT_FALSE(d.Check("esp", Ts(10000)).duplicate);
  EXPECT_TRUE(d.Check("esp", Ts(5000)).duplicate);
  EXPECT_FALSE(d.Check("other", Ts(5000)).duplicate);
}

TEST(Deduplicator, TimestampRingForgetsTheOldest) {
  DeviceDedupe d;
  for (std::int64_t t = 0; t < 64; ++t) ASSERT_FALSE(d.Check(Ts(t)).duplicate);
  EXPECT_TRUE(d.Check(Ts(0)).duplicate);
  EXPECT_FALSE(d.Check(Ts(64)).duplicate);  // replaces 0
  EXPECT_FALSE(d.Check(Ts(0)).duplicate) << "0 fell out of the ring";
  EXPECT_TRUE(d.Check(Ts(63)).duplicate);
}

TEST(Deduplicator, NoIdentityIsAlwaysNew) {
  Deduplicator d;
  EXPECT_FALSE(d.Check("x", Identity{}).duplicate);
  EXPECT_FALSE(d.Check("x", Identity{}).duplicate);
}

// Regression test: a forged seq of 2^63 - 1 counted 2^63 seqs as lost, and the next ones
// wrapped the gateway's uint64 gap counter. A jump beyond max_jump is flagged, not counted.
TEST(DeviceDedupe, huge_seq_jump_does_not_wrap_gap_counter) {
  DeviceDedupe d(/*window=*/1'000'000, /*max_jump=*/1'000'000);
  std::uint64_t gaps = 0;
  for (std::uint64_t s = 1; s <= 10; ++s) gaps += d.Check(Seq(1, s)).new_gaps;
  Verdict v = d.Check(Seq(1, (std::uint64_t{1} << 63) - 1));
  EXPECT_TRUE(v.seq_jump);
  EXPECT_FALSE(v.duplicate);
  gaps += v.new_gaps;
  EXPECT_EQ(gaps, 0u);
  // The real device goes on: stored (below the window, unchecked), never swallowed.
  for (std::uint64_t s = 11; s <= 20; ++s) {
    Verdict r = d.Check(Seq(1, s));
    EXPECT_FALSE(r.duplicate) << s;
    gaps += r.new_gaps;
  }
  EXPECT_EQ(gaps, 0u);
  // A jump within the bound is a gap, counted as loss.
  DeviceDedupe e(1'000'000, 1'000'000);
  (void)e.Check(Seq(1, 1));
  EXPECT_EQ(e.Check(Seq(1, 1'000'002)).new_gaps, 1'000'000u);
  EXPECT_TRUE(e.Check(Seq(1, 3'000'003)).seq_jump);
}

// Regression test: a forged reading with the next boot number became the device's current
// boot; the real device kept sending its old boot (checked as "the boot before"), and when it
// really restarted, its new boot's readings were taken for duplicates of the forged ones.
TEST(DeviceDedupe, forged_next_boot_does_not_swallow_real_boot) {
  DeviceDedupe d;
  for (std::uint64_t s = 1; s <= 100; ++s) ASSERT_FALSE(d.Check(Seq(5, s)).duplicate);
  for (std::uint64_t s = 1; s <= 50; ++s) ASSERT_FALSE(d.Check(Seq(6, s)).duplicate);  // forged
  int conflicts = 0;
  for (std::uint64_t s = 101; s <= 120; ++s) {  // the real device goes on with its boot
    Verdict r = d.Check(Seq(5, s));
    EXPECT_FALSE(r.duplicate);
    EXPECT_EQ(r.new_gaps, 0u);
    conflicts += r.boot_conflict;
  }
  EXPECT_EQ(conflicts, 1);
  EXPECT_TRUE(d.Check(Seq(5, 105)).duplicate) << "the live boot is still checked";
  // It restarts for real: boot 6 from seq 1 is new, reading by reading.
  Verdict first = d.Check(Seq(6, 1));
  EXPECT_TRUE(first.new_boot);
  EXPECT_FALSE(first.duplicate);
  for (std::uint64_t s = 2; s <= 50; ++s) EXPECT_FALSE(d.Check(Seq(6, s)).duplicate) << s;
  EXPECT_TRUE(d.Check(Seq(6, 7)).duplicate);
  // Late readings of boot 5 below its newest after a real restart change nothing.
  Verdict late = d.Check(Seq(5, 3));
  EXPECT_TRUE(late.duplicate);
  EXPECT_FALSE(late.boot_conflict);
}

TEST(TokenBucket, BurstThenRate) {
  TokenBucket b(10, 3);  // 10/s, burst 3
  EXPECT_TRUE(b.Take(0));
  EXPECT_TRUE(b.Take(0));
  EXPECT_TRUE(b.Take(0));
  EXPECT_FALSE(b.Take(0));
  EXPECT_FALSE(b.Take(50));  // half a token
  EXPECT_TRUE(b.Take(100));
  EXPECT_FALSE(b.Take(100));
  EXPECT_TRUE(b.Take(10'000));  // refill is capped at the burst
  EXPECT_TRUE(b.Take(10'000));
  EXPECT_TRUE(b.Take(10'000));
  EXPECT_FALSE(b.Take(10'000));
}

TEST(TokenBucket, ZeroRateIsUnlimitedAndClockGoingBackIsHarmless) {
  TokenBucket unlimited(0, 1);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(unlimited.Take(0));
  TokenBucket b(1, 1);
  EXPECT_TRUE(b.Take(5000));
  EXPECT_FALSE(b.Take(1000));  // earlier time: no refill, no underflow
  EXPECT_TRUE(b.Take(6000));
}

}  // namespace
}  // namespace outpost::gateway::ingest
