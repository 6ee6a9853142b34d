#include "outpost/cloud/api/work_pool.h"

#include <utility>

namespace outpost::cloud::api {

WorkPool::WorkPool(WorkPoolOptions options) : options_(options) {
  if (options_.threads < 1) options_.threads = 1;
  threads_.reserve(static_cast<std::size_t>(options_.threads));
  for (int i = 0; i < options_.threads; ++i) threads_.emplace_back([this] { Work(); });
}

WorkPool::~WorkPool() { Stop(); }

bool WorkPool::Submit(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_ && queue_.size() < options_.max_queued) {
      queue_.push_back(std::move(task));
      stats_.submitted++;
      stats_.queued++;
      work_cv_.notify_one();
      return true;
    }
  }
  stats_.rejected_full++;
  return false;  // `task` is destroyed here, outside the lock
}

bool WorkPool::WaitIdle(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_cv_.wait_for(lock, timeout, [&] { return queue_.empty() && running_ == 0; });
}

void WorkPool::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void WorkPool::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything queued has run
    std::function<void()> task = std::move(queue_.front());
    queue_.pop_front();
    ++running_;
    stats_.queued--;
    stats_.busy++;
    lock.unlock();
    try {
      task();
    } catch (...) {
      // A task answers its own errors; an exception must not take the thread down.
    }
    task = nullptr;  // its captures (e.g. a Responder) go before the task counts as done
    stats_.busy--;
    stats_.completed++;
    lock.lock();
    --running_;
    idle_cv_.notify_all();
  }
}

std::string WorkPool::RenderPrometheus(std::string_view prefix) const {
  const std::string p(prefix);
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, auto value) {
    out += "# HELP " + p + name + " " + help + "\n# TYPE " + p + name + " " + type + "\n" + p +
           name + " " + std::to_string(value) + "\n";
  };
  metric("tasks_total", "counter", "Requests handed to the database pool.",
         stats_.submitted.load());
  metric("rejected_full_total", "counter",
         "Requests answered 503 because the database pool's queue was full (--db-queue).",
         stats_.rejected_full.load());
  metric("queued", "gauge", "Requests waiting for a database pool thread.", stats_.queued.load());
  metric("busy", "gauge", "Database pool threads running a request.", stats_.busy.load());
  metric("threads", "gauge", "Database pool threads (--db-threads).", options_.threads);
  metric("queue_capacity", "gauge", "Most requests that may wait (--db-queue).",
         options_.max_queued);
  return out;
}

}  // namespace outpost::cloud::api
