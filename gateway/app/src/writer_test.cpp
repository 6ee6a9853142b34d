// The store writer against a real SQLite file on a real, full file system (a tmpfs the test
// mounts; root only, CI runs as root).
#include "outpost/gateway/app/writer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "outpost/base/clock.h"
#include "outpost/testing/temp_dir.h"
#include "outpost/testing/tmpfs_mount.h"

namespace outpost::gateway::app {
namespace {

using testing::TmpfsMount;

model::ReadingRow Reading(std::uint64_t seq) {
  return model::ReadingRow{"d1",
                           true,
                           1,
                           seq,
                           false,
                           0,
                           1'700'000'000'000 + static_cast<std::int64_t>(seq),
                           false,
                           1'700'000'000'000,
                           {{"level", static_cast<double>(seq), false}}};
}

// Collects what the writer reports (on its thread) for the test thread.
struct Reports {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Committed> all;
  void Add(Committed c) {
    std::lock_guard<std::mutex> lock(mu);
    all.push_back(std::move(c));
    cv.notify_all();
  }
  template <typename Pred>
  bool WaitFor(Pred pred, std::chrono::seconds timeout) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, timeout, [&] { return pred(all); });
  }
};

// Regression: a full disk counted towards Writer::Options::max_failures, so after ~2 minutes the
// writer declared the store dead (Committed::fatal) and the gateway exited into a crash loop.
TEST(Writer, FullDiskIsRetriedPastMaxFailuresAndNeverFatal) {
  if (!TmpfsMount::Supported()) GTEST_SKIP() << TmpfsMount::kSkipReason;
  testing::TempDir dir("outpost-writer-test");
  auto fs = TmpfsMount::Mount(dir.File("fs"), 2 << 20);
  ASSERT_TRUE(fs.ok()) << fs.status().ToString();
  store::Options so;
  so.path = (*fs)->path() + "/gateway.db";
  auto opened = store::Store::Open(so);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();

  SystemClock clock;
  Reports reports;
  Writer::Options wo;
  wo.max_failures = 2;  // any other failure would be fatal at the second attempt
  wo.full_retry_cap_ms = 20;
  Writer w(std::move(opened).value(), wo, clock, [&](Committed c) { reports.Add(std::move(c)); });
  w.Start();

  ASSERT_TRUE((*fs)->FillWithBallast("ballast", 4 << 20).ok());
  Pending p;
  for (std::uint64_t i = 1; i <= 2000; ++i) p.batch.readings.push_back(Reading(i));
  w.Submit(std::move(p));
  ASSERT_TRUE(reports.WaitFor(
      [](const std::vector<Committed>& all) {
        return all.size() >= 5 || (!all.empty() && (all.back().fatal || all.back().done));
      },
      std::chrono::seconds(30)));
  {
    std::lock_guard<std::mutex> lock(reports.mu);
    ASSERT_GE(reports.all.size(), 5u) << reports.all.back().status.ToString();
    for (const Committed& c : reports.all) {
      EXPECT_FALSE(c.fatal) << c.status.ToString();
      EXPECT_FALSE(c.done);
      EXPECT_TRUE(c.disk_full) << c.status.ToString();
      EXPECT_EQ(c.status.code(), Code::kResourceExhausted) << c.status.ToString();
    }
  }
  // Outbox calls are served while the batch waits for space.
  Status call = w.Call([](store::Store& s) { return s.outbox().Peek(10, 1 << 20).status(); });
  EXPECT_TRUE(call.ok()) << call.ToString();

  ASSERT_TRUE((*fs)->RemoveBallast("ballast").ok());
  ASSERT_TRUE(reports.WaitFor(
      [](const std::vector<Committed>& all) { return !all.empty() && all.back().done; },
      std::chrono::seconds(30)));
  {
    std::lock_guard<std::mutex> lock(reports.mu);
    EXPECT_TRUE(reports.all.back().status.ok()) << reports.all.back().status.ToString();
    EXPECT_EQ(reports.all.back().batch.batch.readings.size(), 2000u);
  }
  EXPECT_EQ(w.LatestStats().readings, 2000);
  w.Stop();
}

}  // namespace
}  // namespace outpost::gateway::app
