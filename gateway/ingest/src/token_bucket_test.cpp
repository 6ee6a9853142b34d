// The per-device flood limit, driven by a FakeClock: a flood with any timestamps gets the rate,
// a backlog after a silence (the device's or the gateway's own) is stored in full.
#include "outpost/gateway/ingest/token_bucket.h"

#include <gtest/gtest.h>

#include <deque>
#include <vector>

#include "outpost/base/clock.h"

namespace outpost::gateway::ingest {
namespace {

constexpr std::int64_t kHourMs = 3'600'000;
constexpr std::int64_t kDayMs = 24 * kHourMs;

// Passes counted over every sliding window of `window_ms` (receive time).
class WindowCount {
 public:
  explicit WindowCount(std::int64_t window_ms) : window_ms_(window_ms) {}
  void Pass(std::int64_t now) {
    times_.push_back(now);
    while (times_.front() <= now - window_ms_) times_.pop_front();
    max_ = std::max(max_, times_.size());
  }
  std::size_t max() const { return max_; }

 private:
  std::int64_t window_ms_;
  std::deque<std::int64_t> times_;
  std::size_t max_ = 0;
};

// The gateway judges a reading by when it arrives, never by the timestamp in it: a device
// flooding 10,000 readings/s (whatever timestamps it writes) is held to its rate.
TEST(FloodLimit, forged_timestamps_do_not_bypass_flood_limit) {
  FakeClock clock;
  constexpr double kRate = 200, kBurst = 20'000;
  TokenBucket b(kRate, kBurst, kDayMs);
  WindowCount minute(60'000);
  std::uint64_t stored = 0, stored_after_first_minute = 0;
  WindowCount late_minute(60'000);
  for (int i = 0; i < 10'000 * 300; ++i) {  // 5 minutes at 10,000/s
    if (i % 10 == 0) clock.Advance(1);
    if (b.Take(clock.steady_ms())) {
      ++stored;
      if (clock.steady_ms() >= 60'000) {
        ++stored_after_first_minute;
        late_minute.Pass(clock.steady_ms());
      }
      minute.Pass(clock.steady_ms());
    }
  }
  // A new device starts with its burst; after that it gets the rate, over any minute.
  EXPECT_LE(minute.max(), static_cast<std::size_t>(kBurst + kRate * 60 + 1));
  EXPECT_LE(late_minute.max(), static_cast<std::size_t>(kRate * 60 + 1));
  EXPECT_GE(late_minute.max(), static_cast<std::size_t>(kRate * 60 - 1));
  EXPECT_LE(stored, static_cast<std::uint64_t>(kBurst + kRate * 300 + 1));
}

// A known device that was silent an hour and then floods gets what the hour justifies, once;
// then the rate, over any minute.
TEST(FloodLimit, flood_after_silence_gets_the_silence_once_then_the_rate) {
  FakeClock clock;
  constexpr double kRate = 10, kBurst = 100;
  TokenBucket b(kRate, kBurst, kDayMs);
  ASSERT_TRUE(b.Take(clock.steady_ms()));
  clock.Advance(kHourMs);
  const std::int64_t start = clock.steady_ms();
  std::uint64_t stored = 0;
  WindowCount late_minute(60'000);
  for (int i = 0; i < 10'000 * 600; ++i) {  // 10 minutes at 10,000/s
    if (i % 10 == 0) clock.Advance(1);
    if (b.Take(clock.steady_ms())) {
      ++stored;
      if (clock.steady_ms() - start >= 60'000) late_minute.Pass(clock.steady_ms());
    }
  }
  EXPECT_LE(stored, static_cast<std::uint64_t>(kBurst + kRate * 3600 + kRate * 600 + 1));
  EXPECT_LE(late_minute.max(), static_cast<std::size_t>(kRate * 60 + 1));
}

// Silences do not add up beyond the rate: flooding 1 s out of every 100 s for an hour stores
// no more than the rate over the hour plus one burst.
TEST(FloodLimit, repeated_silences_never_exceed_the_rate_plus_one_burst) {
  FakeClock clock;
  constexpr double kRate = 10, kBurst = 100;
  TokenBucket b(kRate, kBurst, kDayMs);
  std::uint64_t stored = 0;
  for (int cycle = 0; cycle < 36; ++cycle) {
    for (int i = 0; i < 10'000; ++i) {
      if (i % 10 == 0) clock.Advance(1);
      stored += b.Take(clock.steady_ms());
    }
    clock.Advance(99'000);
  }
  EXPECT_LE(stored, static_cast<std::uint64_t>(kBurst + kRate * 3600 + 1));
}

// A device buffered an hour at 1 reading/s (its broker link was down) and sends it at once.
TEST(FloodLimit, hour_backlog_is_stored_in_full) {
  FakeClock clock;
  TokenBucket b(/*rate_per_s=*/1, /*burst=*/10, kDayMs);
  for (int i = 0; i < 600; ++i) {  // ten minutes live, at its rate
    ASSERT_TRUE(b.Take(clock.steady_ms())) << i;
    clock.Advance(1000);
  }
  clock.Advance(kHourMs - 1000);
  for (int i = 0; i < 3600; ++i) {  // the backlog, at 10,000/s
    ASSERT_TRUE(b.Take(clock.steady_ms())) << "backlog reading " << i;
    if (i % 10 == 0) clock.Advance(1);
  }
  for (int i = 0; i < 600; ++i) {  // live again
    clock.Advance(1000);
    ASSERT_TRUE(b.Take(clock.steady_ms())) << i;
  }
}

// The gateway was down an hour; the broker replays the queue of 1,000 devices (1 reading/s
// each), interleaved, as fast as the gateway takes them. Restored devices count their silence
// from their persisted last-seen time (HeardAt).
TEST(FloodLimit, broker_replay_of_hour_outage_for_1000_devices_is_stored_in_full) {
  FakeClock clock;
  clock.Advance(kDayMs);
  constexpr int kDevices = 1000, kEach = 3600;
  std::vector<TokenBucket> buckets(kDevices, TokenBucket(1, 10, kDayMs));
  for (auto& b : buckets) b.HeardAt(clock.steady_ms() - kHourMs);
  std::uint64_t stored = 0;
  for (int n = 0; n < kEach; ++n) {
    for (int d = 0; d < kDevices; ++d) {
      stored += buckets[static_cast<std::size_t>(d)].Take(clock.steady_ms());
    }
    clock.Advance(20);  // 50,000 readings/s in all
  }
  EXPECT_EQ(stored, static_cast<std::uint64_t>(kDevices) * kEach);
}

// Credit not used within the silence that earned it is forfeited, and never beyond the cap.
TEST(FloodLimit, unused_credit_expires_and_is_capped) {
  FakeClock clock;
  TokenBucket b(1, 10, /*max_credit_ms=*/kHourMs);
  ASSERT_TRUE(b.Take(clock.steady_ms()));
  clock.Advance(kDayMs);
  ASSERT_TRUE(b.Take(clock.steady_ms()));
  EXPECT_LE(b.credit(clock.steady_ms()), 3600.0) << "a day of silence earns at most an hour";
  EXPECT_GE(b.credit(clock.steady_ms()), 3589.0);
  clock.Advance(kHourMs);
  ASSERT_TRUE(b.Take(clock.steady_ms()));  // the bucket refilled meanwhile: a new credit
  const double after = b.credit(clock.steady_ms());
  EXPECT_LE(after, 3600.0) << "the old credit is gone, not added";
  // Without credit (max_credit_ms 0) the bucket is a plain token bucket.
  TokenBucket plain(1, 10);
  ASSERT_TRUE(plain.Take(0));
  int passed = 0;
  for (int i = 0; i < 100; ++i) passed += plain.Take(kDayMs);
  EXPECT_EQ(passed, 10);
}

}  // namespace
}  // namespace outpost::gateway::ingest
