#include "outpost/gateway/app/writer.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "outpost/base/backoff.h"

namespace outpost::gateway::app {

void Pending::UpsertDevice(store::DeviceRow row) {
  auto [it, added] = device_slot.emplace(row.device_id, batch.devices.size());
  if (added) {
    batch.devices.push_back(std::move(row));
  } else {
    batch.devices[it->second] = std::move(row);
  }
}

void Pending::clear() {
  batch.clear();
  device_slot.clear();
  acks.clear();
  publish_ms.clear();
}

Writer::Writer(std::unique_ptr<store::Store> store, Options options, const Clock& clock,
               OnCommitted on_committed)
    : store_(std::move(store)),
      options_(options),
      clock_(clock),
      on_committed_(std::move(on_committed)) {}

Writer::~Writer() { Stop(); }

void Writer::Start() { thread_ = std::thread([this] { Run(); }); }

std::size_t Writer::pending_readings() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_readings_;
}

bool Writer::Quiescent(std::uint64_t reported) const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_.empty() && batches_taken_ == reported;
}

void Writer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

// Takes everything pending into *out.
// Returns false when stopping with nothing left.
bool Writer::TakeBatch(Pending* out) {
  std::unique_lock<std::mutex> lock(mu_);
  auto wait_for = std::chrono::milliseconds(options_.maintenance_every_ms);
  cv_.wait_for(lock, wait_for, [&] { return stopping_ || !pending_.empty(); });
  if (pending_.empty()) return !stopping_;
  // The whole pending batch goes: its size is bounded by the loop, which stops reading from
  // the broker while storage.queue_max_readings are pending.
  std::swap(*out, pending_);
  pending_.clear();
  ++batches_taken_;
  pending_readings_ = pending_.batch.readings.size();
  return true;
}

void Writer::Run() {
  Pending work;
  std::int64_t last_maintenance = clock_.steady_ms();
  std::uint32_t failures = 0;
  std::uint64_t jitter_state = 0x9E3779B97F4A7C15ull;
  while (true) {
    if (work.empty() && !TakeBatch(&work)) break;
    if (!work.empty()) {
      auto started = std::chrono::steady_clock::now();
      Status s = store_->Write(work.batch);
      Committed c;
      c.status = s;
      c.commit_duration_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                 std::chrono::steady_clock::now() - started)
                                 .count();
      c.committed_wall_ms = clock_.wall_ms();
      if (s.ok()) {
        failures = 0;
        c.readings = work.batch.readings.size();
        c.acks = std::move(work.acks);
        c.alerts = std::move(work.batch.alerts);
        c.publish_ms = std::move(work.publish_ms);
        c.stats = store_->stats();
        work.clear();
        on_committed_(std::move(c));
      } else {
        // Keep `work` and retry it; nothing in it has been acknowledged.
        spdlog::error("store write failed (attempt {}): {}", failures + 1, s.ToString());
        c.stats = store_->stats();
        on_committed_(std::move(c));
        jitter_state = jitter_state * 6364136223846793005ull + 1442695040888963407ull;
        double r = static_cast<double>(jitter_state >> 11) / 9007199254740992.0;
        std::int64_t delay = FullJitterDelayMs(BackoffPolicy{50, 5000}, failures++, r);
        std::unique_lock<std::mutex> lock(mu_);
        if (stopping_ && failures > 20) {
          spdlog::critical("giving up on {} uncommitted readings at shutdown; the broker keeps "
                           "the unacknowledged ones", work.batch.readings.size());
          break;
        }
        cv_.wait_for(lock, std::chrono::milliseconds(delay));
        continue;
      }
    }
    std::int64_t now = clock_.steady_ms();
    if (now - last_maintenance >= options_.maintenance_every_ms) {
      last_maintenance = now;
      Status m = store_->RunMaintenance(clock_.wall_ms(), options_.maintenance_rows);
      if (!m.ok()) spdlog::warn("store maintenance: {}", m.ToString());
    }
  }
}

}  // namespace outpost::gateway::app
