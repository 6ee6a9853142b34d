// The store writer against a real SQLite file: on the fault-injecting VFS (tests/support
// FaultVfs: failed writes, a full disk, failed or held fsyncs), and on a real, full file system
// (a tmpfs the test mounts; root only, CI runs as root).
#include "outpost/gateway/app/writer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "outpost/base/clock.h"
#include "outpost/testing/fault_vfs.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/temp_dir.h"
#include "outpost/testing/tmpfs_mount.h"
#include "outpost/testing/wait_until.h"

namespace outpost::gateway::app {
namespace {

using testing::FaultVfs;
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

Pending Batch(std::uint64_t first_seq, std::uint64_t count) {
  Pending p;
  for (std::uint64_t i = first_seq; i < first_seq + count; ++i) {
    p.batch.readings.push_back(Reading(i));
    p.acks.push_back(AckToken{1, static_cast<std::uint16_t>(i)});
    p.received_ms.push_back(1'700'000'000'000);
  }
  return p;
}

// The writer on the fault-injecting VFS, synchronous=FULL (a commit syncs the WAL).
class WriterFaultTest : public ::testing::Test {
 protected:
  void TearDown() override { FaultVfs::Reset(); }
  std::unique_ptr<store::Store> Open() {
    store::Options so;
    so.path = dir_.File("gateway.db");
    so.synchronous = store::Synchronous::kFull;
    so.vfs = FaultVfs::Register();
    auto opened = store::Store::Open(so);
    EXPECT_TRUE(opened.ok()) << opened.status().ToString();
    return opened.ok() ? std::move(opened).value() : nullptr;
  }
  static Writer::Options FastRetries() {
    Writer::Options wo;
    wo.retry_cap_ms = 20;
    wo.full_retry_cap_ms = 20;
    wo.idle_maintenance_ms = 60'000;  // no idle maintenance during a test
    return wo;
  }
  // The reports so far, copied under the lock.
  std::vector<Committed> Seen() {
    std::lock_guard<std::mutex> lock(reports_.mu);
    return reports_.all;
  }
  bool WaitReports(std::size_t n) {
    return reports_.WaitFor([n](const std::vector<Committed>& all) { return all.size() >= n; },
                            std::chrono::seconds(30));
  }
  bool WaitDone() {
    return reports_.WaitFor(
        [](const std::vector<Committed>& all) {
          return !all.empty() && (all.back().done || all.back().fatal);
        },
        std::chrono::seconds(30));
  }
  Writer::OnCommitted Collect() {
    return [this](Committed c) { reports_.Add(std::move(c)); };
  }

  testing::TempDir dir_{"outpost-writer-test"};
  SystemClock clock_;
  Reports reports_;
};

// Group commit: a batch is reported (acks, stats) only once its commit and fsync are done;
// the loop fills the next one meanwhile and hands it over when the first is reported.
TEST_F(WriterFaultTest, BatchIsReportedOnlyAfterItsFsyncAndTheNextFollowsInOrder) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Writer w(std::move(store), FastRetries(), clock_, Collect());
  w.Start();

  FaultVfs::HoldSyncs();
  w.Submit(Batch(1, 100));
  ASSERT_TRUE(testing::WaitUntil("the commit waits in its fsync", std::chrono::seconds(10),
                                 [] { return FaultVfs::syncs_held() >= 1; }));
  Pending next = Batch(101, 50);  // the loop fills the next batch while the first commits
  EXPECT_TRUE(Seen().empty()) << "nothing is reported durable before its fsync";
  EXPECT_EQ(w.LatestStats().readings, 0);
  FaultVfs::ReleaseSyncs();
  ASSERT_TRUE(WaitDone());
  {
    std::vector<Committed> seen = Seen();
    ASSERT_EQ(seen.size(), 1u);
    OUTPOST_EXPECT_OK(seen[0].status);
    EXPECT_TRUE(seen[0].done);
    EXPECT_FALSE(seen[0].fatal);
    EXPECT_EQ(seen[0].batch.acks.size(), 100u) << "the acks come back with the batch";
    EXPECT_EQ(seen[0].batch.acks.front().packet_id, 1);
    EXPECT_EQ(seen[0].stats.readings, 100);
  }
  w.Submit(std::move(next));
  ASSERT_TRUE(WaitReports(2));
  {
    std::vector<Committed> seen = Seen();
    ASSERT_EQ(seen.size(), 2u);
    OUTPOST_EXPECT_OK(seen[1].status);
    EXPECT_TRUE(seen[1].done);
    EXPECT_EQ(seen[1].batch.acks.front().packet_id, 101);
    EXPECT_EQ(seen[1].stats.readings, 150);
  }
  EXPECT_EQ(w.LatestStats().readings, 150);
  w.Stop();
}

// The service watchdog's view (service.h): a commit held in its fsync is one operation that
// stays busy since it began; once it returns the loop has turned and waits again.
TEST_F(WriterFaultTest, ProgressShowsAHeldFsyncAsOneBusyOperation) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Writer w(std::move(store), FastRetries(), clock_, Collect());
  w.Start();
  ASSERT_TRUE(testing::WaitUntil("the writer waits for work", std::chrono::seconds(10),
                                 [&] { return !w.progress().busy; }));
  const Writer::Progress idle = w.progress();

  FaultVfs::HoldSyncs();
  w.Submit(Batch(1, 10));
  ASSERT_TRUE(testing::WaitUntil("the commit waits in its fsync", std::chrono::seconds(10),
                                 [] { return FaultVfs::syncs_held() >= 1; }));
  const Writer::Progress held = w.progress();
  EXPECT_TRUE(held.busy);
  EXPECT_GT(held.turns, idle.turns);
  EXPECT_LE(held.busy_since_ms, clock_.steady_ms());
  const Writer::Progress still = w.progress();
  EXPECT_EQ(still.turns, held.turns) << "no operation finished while the fsync is held";
  EXPECT_EQ(still.busy_since_ms, held.busy_since_ms);

  FaultVfs::ReleaseSyncs();
  ASSERT_TRUE(WaitDone());
  ASSERT_TRUE(testing::WaitUntil("the writer waits for work again", std::chrono::seconds(10),
                                 [&] { return !w.progress().busy; }));
  EXPECT_GT(w.progress().turns, held.turns);
  w.Stop();
}

// An I/O error is retried with backoff; nothing of the batch is reported done until it commits.
TEST_F(WriterFaultTest, FailedWriteIsRetriedUntilItCommits) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Writer::Options wo = FastRetries();
  wo.max_failures = 1000;
  Writer w(std::move(store), wo, clock_, Collect());
  w.Start();
  FaultVfs::FailWrites(true);
  w.Submit(Batch(1, 20));
  ASSERT_TRUE(WaitReports(3));
  FaultVfs::FailWrites(false);
  ASSERT_TRUE(WaitDone());
  std::vector<Committed> seen = Seen();
  ASSERT_GE(seen.size(), 4u);
  for (std::size_t i = 0; i + 1 < seen.size(); ++i) {
    EXPECT_FALSE(seen[i].done);
    EXPECT_FALSE(seen[i].fatal);
    EXPECT_FALSE(seen[i].disk_full);
    EXPECT_EQ(seen[i].status.code(), Code::kUnavailable) << seen[i].status.ToString();
  }
  OUTPOST_EXPECT_OK(seen.back().status);
  EXPECT_TRUE(seen.back().done);
  EXPECT_EQ(seen.back().batch.batch.readings.size(), 20u);
  EXPECT_EQ(w.LatestStats().readings, 20);
  w.Stop();
}

// Other failures in a row up to Options::max_failures are retried; then the store is dead.
TEST_F(WriterFaultTest, FailingWritesBecomeFatalAtMaxFailures) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Writer::Options wo = FastRetries();
  wo.max_failures = 3;
  Writer w(std::move(store), wo, clock_, Collect());
  w.Start();
  FaultVfs::FailWrites(true);
  w.Submit(Batch(1, 5));
  ASSERT_TRUE(WaitDone());
  std::vector<Committed> seen = Seen();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_FALSE(seen[0].fatal);
  EXPECT_FALSE(seen[1].fatal);
  EXPECT_TRUE(seen[2].fatal);
  EXPECT_FALSE(seen[2].done) << "nothing of it is acknowledged";
  OUTPOST_EXPECT_CODE(w.Call([](store::Store&) { return Status::Ok(); }), Code::kUnavailable);
  FaultVfs::Reset();
  w.Stop();
}

// A full disk is retried past max_failures and never fatal; outbox calls are served meanwhile.
TEST_F(WriterFaultTest, FullDiskIsRetriedPastMaxFailuresUntilSpaceReturns) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Writer::Options wo = FastRetries();
  wo.max_failures = 2;
  Writer w(std::move(store), wo, clock_, Collect());
  w.Start();
  FaultVfs::DiskFull(true);
  w.Submit(Batch(1, 30));
  ASSERT_TRUE(WaitReports(5));
  bool called = false;
  OUTPOST_EXPECT_OK(w.Call([&](store::Store& s) {
    called = true;
    return s.outbox().Peek(10, 1 << 20).status();
  }));
  EXPECT_TRUE(called);
  FaultVfs::DiskFull(false);
  ASSERT_TRUE(WaitDone());
  std::vector<Committed> seen = Seen();
  ASSERT_GE(seen.size(), 6u);
  for (std::size_t i = 0; i + 1 < seen.size(); ++i) {
    EXPECT_FALSE(seen[i].fatal) << i;
    EXPECT_FALSE(seen[i].done) << i;
    EXPECT_TRUE(seen[i].disk_full) << i;
    EXPECT_EQ(seen[i].status.code(), Code::kResourceExhausted) << seen[i].status.ToString();
  }
  OUTPOST_EXPECT_OK(seen.back().status);
  EXPECT_TRUE(seen.back().done);
  EXPECT_EQ(w.LatestStats().readings, 30);
  w.Stop();
}

// A failed fsync leaves the file's state unknown (kDataLoss): fatal at once, never retried.
TEST_F(WriterFaultTest, FailedFsyncIsFatalAtOnce) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Writer::Options wo = FastRetries();
  wo.max_failures = 1000;
  Writer w(std::move(store), wo, clock_, Collect());
  w.Start();
  FaultVfs::FailSyncs(true);
  w.Submit(Batch(1, 10));
  ASSERT_TRUE(WaitDone());
  std::vector<Committed> seen = Seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_TRUE(seen[0].fatal);
  EXPECT_FALSE(seen[0].done);
  EXPECT_EQ(seen[0].status.code(), Code::kDataLoss) << seen[0].status.ToString();
  OUTPOST_EXPECT_CODE(w.Call([](store::Store&) { return Status::Ok(); }), Code::kUnavailable);
  FaultVfs::Reset();
  w.Stop();
  EXPECT_EQ(Seen().size(), 1u) << "a dead writer commits nothing more";
}

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
