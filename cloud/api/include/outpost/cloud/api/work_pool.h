// WorkPool: a fixed set of threads running tasks from a bounded queue. The cloud's HTTP loops
// hand every request to it, so database calls (which block) never run on an event loop, and the
// number of requests waiting for the database is bounded: past max_queued, Submit() refuses and
// the caller answers 503 at once instead of letting the wait grow.
// Ownership: owns its threads and the queued tasks. Thread: Submit, WaitIdle and stats() from
//   any thread; Stop() from one thread (also the destructor's), not from a task.
// Errors: Submit() returns false (counted in stats().rejected_full) when the queue is full or the
//   pool has stopped; the task is then destroyed without running.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace outpost::cloud::api {

struct WorkPoolOptions {
  int threads = 4;               // --db-threads
  std::size_t max_queued = 256;  // --db-queue: tasks waiting for a thread (not counting running)
};

struct WorkPoolStats {
  std::atomic<std::uint64_t> submitted{0};      // accepted by Submit
  std::atomic<std::uint64_t> rejected_full{0};  // refused: queue full (or stopped)
  std::atomic<std::uint64_t> completed{0};
  std::atomic<std::int64_t> queued{0};  // gauge: waiting for a thread
  std::atomic<std::int64_t> busy{0};    // gauge: running
};

class WorkPool {
 public:
  explicit WorkPool(WorkPoolOptions options);
  ~WorkPool();  // Stop()
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  // Queues `task` for a pool thread; false when max_queued tasks already wait or after Stop().
  bool Submit(std::function<void()> task);
  // Waits until nothing is queued or running, at most `timeout`; true when idle.
  bool WaitIdle(std::chrono::milliseconds timeout);
  // Runs what is already queued, then joins the threads; later Submits are refused. Idempotent.
  void Stop();

  const WorkPoolStats& stats() const { return stats_; }
  const WorkPoolOptions& options() const { return options_; }
  // Prometheus text: <prefix>tasks_total, rejected_full_total, queued, busy, threads,
  // queue_capacity (e.g. prefix "outpost_cloud_db_pool_").
  std::string RenderPrometheus(std::string_view prefix) const;

 private:
  void Work();

  WorkPoolOptions options_;
  WorkPoolStats stats_;
  std::mutex mu_;
  std::condition_variable work_cv_;          // a task was queued, or stopping
  std::condition_variable idle_cv_;          // a task finished
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  std::size_t running_ = 0;                  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace outpost::cloud::api
