// Writer is the store's owner thread: it commits the batches the event loop hands it and tells
// the loop what became durable, so the loop can acknowledge it to the broker.
//
// Group commit: the loop (ingest::Pipeline) fills a Pending batch while the writer commits the
// previous one, and hands the next over as soon as the writer reports back. Batches grow with load;
// at low load a batch is one event-loop turn of messages and latency is about one commit.
// Ownership: owns the Store. Thread: Submit() from the loop thread, one batch at a time (the loop
// waits for the batch's final Committed before submitting the next). `on_committed` runs on the
// writer thread and must only post to the loop.
// Store calls for other threads: Call() runs a function with the Store on the writer thread,
// between batches, and waits for it (the uplink's outbox operations; one caller at a time, so
// the queue is bounded at one). LatestStats() is the store's stats after the last operation.
// Errors: a failed Write() is reported (Committed::done == false), retried with backoff, and
// nothing of that batch is acknowledged until it commits. kDataLoss (corrupt file, failed fsync)
// or Options::max_failures other failures in a row are fatal (Committed::fatal): the gateway
// stops without acknowledging, and a restart lets Store::Open diagnose the file. A full disk
// (kResourceExhausted) is never fatal: the batch is retried (backoff up to
// Options::full_retry_cap_ms) until space returns, Call()s are still served between attempts,
// and every attempt is reported (Committed::disk_full) so the loop can alert and report it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "outpost/base/clock.h"
#include "outpost/gateway/ingest/pending.h"
#include "outpost/gateway/store/store.h"

namespace outpost::gateway::app {

// The batch the ingest pipeline filled (ingest/pending.h).
using ingest::AckToken;
using ingest::Pending;

struct Committed {
  bool done = false;       // true: the batch is durable (status OK) or abandoned at shutdown
  bool fatal = false;      // true: the store cannot commit (kDataLoss, or failing too long); stop
  bool disk_full = false;  // this attempt failed because the disk is full (kResourceExhausted)
  Status status;           // the outcome of this attempt
  Pending batch;           // when done: the batch, for its acks and alerts
  std::int64_t committed_wall_ms = 0;
  store::Stats stats{};
};

class Writer {
 public:
  struct Options {
    // Compaction and retention run after each commit, bounded to this many rows per reading
    // committed (at least maintenance_min_rows), so they keep pace with ingest without stalling
    // a commit for long.
    std::size_t maintenance_rows_per_reading = 2;
    std::size_t maintenance_min_rows = 2000;
    std::int64_t idle_maintenance_ms = 1000;  // and this often when idle
    std::uint32_t max_failures = 30;          // about 2 minutes of retries with backoff
    std::int64_t retry_cap_ms = 5000;         // backoff cap between attempts
    std::int64_t full_retry_cap_ms = 5000;    // backoff cap while the disk is full
    // Test-only fault injection: runs on the writer thread before each store write (service.h,
    // OUTPOST_FAULT_STALL_WRITE). Empty in production.
    std::function<void()> before_write;
  };
  // What the writer thread is doing, for the service watchdog (libs/systemd watchdog.h).
  struct Progress {
    std::uint64_t turns = 0;         // operations finished: write attempts, calls, maintenance
    bool busy = false;               // inside one now (false: waiting for work or a retry)
    std::int64_t busy_since_ms = 0;  // steady ms at which it started
  };
  using OnCommitted = std::function<void(Committed)>;

  Writer(std::unique_ptr<store::Store> store, Options options, const Clock& clock,
         OnCommitted on_committed);
  ~Writer();  // Stop()

  void Start();
  // Hands a batch over. Precondition: the previous one was reported done.
  void Submit(Pending batch);
  // Finishes the submitted batch (giving up after repeated failures), then stops the thread.
  void Stop();

  // Runs `fn` on the writer thread and returns its Status; kCancelled (fn not run) once
  // stopping. Thread-safe; concurrent callers are served one at a time.
  Status Call(const std::function<Status(store::Store&)>& fn);
  store::Stats LatestStats() const;
  // Thread-safe.
  Progress progress() const;

 private:
  // Publishes that the writer thread starts an operation (true) or waits (false); either ends
  // the previous operation.
  void Mark(bool busy);
  void Run();
  // Runs the pending Call() function, if any (writer thread, mu_ not held).
  void RunCall();
  void PublishStats();

  std::unique_ptr<store::Store> store_;
  Options options_;
  const Clock& clock_;
  OnCommitted on_committed_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Pending> slot_;
  bool stopping_ = false;
  bool dead_ = false;   // a fatal store failure: no more calls are served
  std::mutex call_mu_;  // one Call() at a time
  const std::function<Status(store::Store&)>* call_ = nullptr;
  std::optional<Status> call_result_;
  std::condition_variable call_cv_;
  mutable std::mutex stats_mu_;
  store::Stats latest_stats_{};
  std::atomic<std::uint64_t> turns_{0};
  std::atomic<bool> busy_{false};
  std::atomic<std::int64_t> busy_since_ms_{0};
  std::thread thread_;
};

}  // namespace outpost::gateway::app
