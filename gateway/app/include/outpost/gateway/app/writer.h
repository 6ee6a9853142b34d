// Writer is the store's owner thread: it group-commits what the event loop appends, and tells
// the loop what became durable so the loop can acknowledge it to the broker.
//
// Group commit: the loop appends to `Pending` under a mutex; the writer swaps the whole pending
// batch out when it is free, writes it in one transaction, and reports back. While one commit
// (and its fsync) runs, the next batch fills, so batches grow with load and latency stays about
// one commit.
// Ownership: owns the Store. Thread: Append/pending_readings from the loop thread; the
// `on_committed` callback runs on the writer thread and must only post to the loop.
// Errors: a failed Write() is logged, counted and retried with backoff; nothing of that batch
// is acknowledged until it commits.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "outpost/base/clock.h"
#include "outpost/gateway/store/store.h"

namespace outpost::gateway::app {

// A QoS 1 delivery to acknowledge once everything appended before it is durable.
struct AckToken {
  std::uint64_t connection_id;
  std::uint16_t packet_id;
};

struct Pending {
  store::Batch batch;
  std::unordered_map<std::string, std::size_t> device_slot;  // device id -> index in batch.devices
  std::vector<AckToken> acks;
  std::vector<std::int64_t> publish_ms;  // receive times of the readings, for commit latency

  void UpsertDevice(store::DeviceRow row);
  bool empty() const { return batch.empty() && acks.empty(); }
  void clear();
};

struct Committed {
  Status status;                      // OK, or the error of a failed attempt (will retry)
  std::size_t readings = 0;
  std::vector<AckToken> acks;
  std::vector<store::AlertRow> alerts;  // now durable: publish them
  std::vector<std::int64_t> publish_ms;
  std::int64_t committed_wall_ms = 0;
  std::int64_t commit_duration_us = 0;
  store::Stats stats{};
};

class Writer {
 public:
  struct Options {
    std::int64_t maintenance_every_ms = 250;  // compaction keeps pace with ~200k readings/s
    std::size_t maintenance_rows = 50'000;
  };
  using OnCommitted = std::function<void(Committed)>;

  Writer(std::unique_ptr<store::Store> store, Options options, const Clock& clock,
         OnCommitted on_committed);
  ~Writer();  // stops (after draining) if still running

  void Start();
  // Appends under the lock. `fill` must be quick: it runs while the writer may be waiting.
  template <typename F>
  void Append(F&& fill) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      fill(pending_);
      pending_readings_ = pending_.batch.readings.size();
    }
    cv_.notify_one();
  }
  std::size_t pending_readings() const;
  // True when nothing is pending and every batch taken so far has been reported committed:
  // `reported` is the number of successful Committed the caller has processed.
  bool Quiescent(std::uint64_t reported) const;
  // Commits everything appended so far, then stops the thread. Blocks until done.
  void Stop();

 private:
  void Run();
  bool TakeBatch(Pending* out);

  std::unique_ptr<store::Store> store_;
  Options options_;
  const Clock& clock_;
  OnCommitted on_committed_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  Pending pending_;
  std::size_t pending_readings_ = 0;
  std::uint64_t batches_taken_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace outpost::gateway::app
