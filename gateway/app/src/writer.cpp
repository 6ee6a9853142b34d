#include "outpost/gateway/app/writer.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "outpost/base/backoff.h"
#include "outpost/base/check.h"

namespace outpost::gateway::app {

Writer::Writer(std::unique_ptr<store::Store> store, Options options, const Clock& clock,
               OnCommitted on_committed)
    : store_(std::move(store)),
      options_(options),
      clock_(clock),
      on_committed_(std::move(on_committed)) {
  latest_stats_ = store_->stats();
}

Status Writer::Call(const std::function<Status(store::Store&)>& fn) {
  std::lock_guard<std::mutex> one(call_mu_);
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_ || !thread_.joinable()) return Status(Code::kCancelled, "store writer stopping");
  call_ = &fn;
  call_result_.reset();
  cv_.notify_one();
  call_cv_.wait(lock, [&] { return call_result_.has_value() || dead_; });
  call_ = nullptr;
  if (!call_result_) return Status(Code::kUnavailable, "store writer failed");
  Status s = std::move(*call_result_);
  call_result_.reset();
  return s;
}

void Writer::Mark(bool busy) {
  if (busy) busy_since_ms_.store(clock_.steady_ms(), std::memory_order_relaxed);
  busy_.store(busy, std::memory_order_relaxed);
  turns_.fetch_add(1, std::memory_order_release);
}

Writer::Progress Writer::progress() const {
  Progress p;
  p.turns = turns_.load(std::memory_order_acquire);
  p.busy = busy_.load(std::memory_order_relaxed);
  p.busy_since_ms = busy_since_ms_.load(std::memory_order_relaxed);
  return p;
}

void Writer::RunCall() {
  const std::function<Status(store::Store&)>* fn = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (call_ == nullptr || call_result_.has_value()) return;
    fn = call_;
  }
  Mark(true);
  Status s = (*fn)(*store_);
  PublishStats();
  {
    std::lock_guard<std::mutex> lock(mu_);
    call_result_ = std::move(s);
  }
  call_cv_.notify_all();
}

void Writer::PublishStats() {
  std::lock_guard<std::mutex> lock(stats_mu_);
  latest_stats_ = store_->stats();
}

store::Stats Writer::LatestStats() const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  return latest_stats_;
}

Writer::~Writer() { Stop(); }

void Writer::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Writer::Submit(Pending batch) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    OUTPOST_CHECK(!slot_.has_value());
    slot_.emplace(std::move(batch));
  }
  cv_.notify_one();
}

void Writer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void Writer::Run() {
  constexpr std::uint32_t kGiveUpAtShutdown = 10;
  std::uint64_t jitter = 0x9E3779B97F4A7C15ull;
  auto call_pending = [&] { return call_ != nullptr && !call_result_.has_value(); };
  while (true) {
    std::optional<Pending> work;
    Mark(false);
    {
      std::unique_lock<std::mutex> lock(mu_);
      bool woke = cv_.wait_for(lock, std::chrono::milliseconds(options_.idle_maintenance_ms),
                               [&] { return stopping_ || slot_.has_value() || call_pending(); });
      if (slot_) {
        work = std::move(slot_);
        slot_.reset();
      } else if (call_pending()) {
        lock.unlock();
        RunCall();
        continue;
      } else if (stopping_) {
        return;
      } else if (!woke) {
        lock.unlock();
        Mark(true);
        Status m = store_->RunMaintenance(clock_.wall_ms(), options_.maintenance_min_rows);
        if (!m.ok()) spdlog::warn("store maintenance: {}", m.ToString());
        PublishStats();
        continue;
      }
    }

    std::uint32_t failures = 0;  // in a row, disk-full attempts not counted
    for (std::uint32_t attempt = 0;; ++attempt) {
      Mark(true);
      if (options_.before_write) options_.before_write();
      Status s = store_->Write(work->batch);
      Committed c;
      c.status = s;
      c.disk_full = s.code() == Code::kResourceExhausted;
      if (!s.ok() && !c.disk_full) ++failures;
      c.committed_wall_ms = clock_.wall_ms();
      c.stats = store_->stats();
      PublishStats();
      bool give_up = false;
      if (!s.ok()) {
        if (s.code() == Code::kDataLoss || failures >= options_.max_failures) {
          spdlog::critical("store write failed (attempt {}), giving up: {}", attempt + 1,
                           s.ToString());
          c.fatal = true;
          on_committed_(std::move(c));
          std::unique_lock<std::mutex> lock(mu_);
          dead_ = true;
          call_cv_.notify_all();
          cv_.wait(lock, [&] { return stopping_; });
          return;
        }
        std::lock_guard<std::mutex> lock(mu_);
        give_up = stopping_ && attempt + 1 >= kGiveUpAtShutdown;
      }
      if (s.ok() || give_up) {
        if (give_up) {
          spdlog::critical(
              "giving up on {} uncommitted readings at shutdown: {}; the broker "
              "keeps what was not acknowledged",
              work->batch.readings.size(), s.ToString());
        }
        std::size_t readings = work->batch.readings.size();
        c.done = true;
        c.batch = std::move(*work);
        on_committed_(std::move(c));
        if (s.ok()) {
          Mark(true);  // maintenance is an operation of its own
          std::size_t rows = std::max(options_.maintenance_min_rows,
                                      readings * options_.maintenance_rows_per_reading);
          Status m = store_->RunMaintenance(clock_.wall_ms(), rows);
          if (!m.ok()) spdlog::warn("store maintenance: {}", m.ToString());
        }
        RunCall();  // an outbox call waiting behind a busy stream of batches gets its turn
        break;
      }
      if (c.disk_full) {
        spdlog::error(
            "store write failed (attempt {}): the disk is full; nothing of the batch is "
            "acknowledged, retrying until space is freed: {}",
            attempt + 1, s.ToString());
      } else {
        spdlog::error("store write failed (attempt {}): {}", attempt + 1, s.ToString());
      }
      const bool full = c.disk_full;
      on_committed_(std::move(c));
      jitter = jitter * 6364136223846793005ull + 1442695040888963407ull;
      double r = static_cast<double>(jitter >> 11) / 9007199254740992.0;
      std::int64_t delay = FullJitterDelayMs(
          BackoffPolicy{50, full ? options_.full_retry_cap_ms : options_.retry_cap_ms}, attempt, r);
      // Between attempts the outbox calls still run (the uplink must not hang on a full disk,
      // and delivering a batch frees pages).
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay);
      Mark(false);
      std::unique_lock<std::mutex> lock(mu_);
      while (!stopping_) {
        if (call_pending()) {
          lock.unlock();
          RunCall();
          Mark(false);
          lock.lock();
          continue;
        }
        if (!cv_.wait_until(lock, until, [&] { return stopping_ || call_pending(); })) break;
      }
    }
  }
}

}  // namespace outpost::gateway::app
