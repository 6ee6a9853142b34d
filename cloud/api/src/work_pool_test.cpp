// WorkPool: the bounded queue in front of the database threads. Blocking tasks are held on a
// latch the test opens; waits are polled conditions with deadlines.
#include "outpost/cloud/api/work_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>

#include "outpost/testing/wait_until.h"

namespace outpost::cloud::api {
namespace {

using namespace std::chrono_literals;
using outpost::testing::WaitUntil;

TEST(WorkPool, full_queue_is_refused_at_once_and_counted) {
  WorkPool pool(WorkPoolOptions{1, 2});
  std::promise<void> open;
  std::shared_future<void> latch = open.get_future().share();
  std::atomic<int> ran{0};
  auto blocked = [&, latch] {
    latch.wait();
    ++ran;
  };
  ASSERT_TRUE(pool.Submit(blocked));
  ASSERT_TRUE(WaitUntil("the one thread is busy", 5s, [&] { return pool.stats().busy == 1; }));
  EXPECT_TRUE(pool.Submit(blocked));
  EXPECT_TRUE(pool.Submit(blocked));
  EXPECT_EQ(pool.stats().queued.load(), 2);
  bool destroyed_unrun = false;
  struct Flag {
    bool* f;
    ~Flag() { *f = true; }
  };
  auto flag = std::make_shared<Flag>(Flag{&destroyed_unrun});
  EXPECT_FALSE(pool.Submit([flag, &ran] { ++ran; }));  // the third waiting one: refused
  flag.reset();
  EXPECT_TRUE(destroyed_unrun) << "a refused task is dropped, not kept";
  EXPECT_EQ(pool.stats().rejected_full.load(), 1u);
  EXPECT_FALSE(pool.WaitIdle(10ms));
  open.set_value();
  EXPECT_TRUE(pool.WaitIdle(5s));
  EXPECT_EQ(ran.load(), 3);
  EXPECT_EQ(pool.stats().completed.load(), 3u);
  EXPECT_EQ(pool.stats().submitted.load(), 3u);
  EXPECT_EQ(pool.stats().queued.load(), 0);
  EXPECT_EQ(pool.stats().busy.load(), 0);
}

TEST(WorkPool, tasks_run_on_pool_threads_not_the_caller) {
  WorkPool pool(WorkPoolOptions{2, 8});
  std::promise<std::thread::id> where;
  ASSERT_TRUE(pool.Submit([&] { where.set_value(std::this_thread::get_id()); }));
  auto f = where.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_NE(f.get(), std::this_thread::get_id());
}

TEST(WorkPool, stop_runs_what_is_queued_then_refuses) {
  WorkPool pool(WorkPoolOptions{1, 16});
  std::atomic<int> ran{0};
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(pool.Submit([&] { ++ran; }));
  pool.Stop();
  EXPECT_EQ(ran.load(), 10);
  EXPECT_FALSE(pool.Submit([&] { ++ran; }));
  EXPECT_EQ(pool.stats().rejected_full.load(), 1u);
  pool.Stop();  // idempotent
}

TEST(WorkPool, a_throwing_task_does_not_kill_its_thread) {
  WorkPool pool(WorkPoolOptions{1, 4});
  ASSERT_TRUE(pool.Submit([] { throw std::runtime_error("boom"); }));
  std::atomic<bool> after{false};
  ASSERT_TRUE(pool.Submit([&] { after = true; }));
  EXPECT_TRUE(pool.WaitIdle(5s));
  EXPECT_TRUE(after);
}

TEST(WorkPool, metrics_name_the_pool_counters) {
  WorkPool pool(WorkPoolOptions{3, 7});
  const std::string text = pool.RenderPrometheus("outpost_cloud_db_pool_");
  for (const char* line :
       {"outpost_cloud_db_pool_tasks_total 0\n", "outpost_cloud_db_pool_rejected_full_total 0\n",
        "outpost_cloud_db_pool_queued 0\n", "outpost_cloud_db_pool_busy 0\n",
        "outpost_cloud_db_pool_threads 3\n", "outpost_cloud_db_pool_queue_capacity 7\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << " in\n" << text;
  }
}

}  // namespace
}  // namespace outpost::cloud::api
