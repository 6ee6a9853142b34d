// Uplink: the store-and-forward loop from the outbox to the cloud.
//
// One batch in flight at a time (so per-device order is the outbox order without any
// bookkeeping): take the persisted in-flight batch, or form a new one when the backlog fills a
// batch (batch_max_items / batch_max_bytes), its oldest item has waited `linger_ms`, or a
// sync was requested; persist it (key + exact body) BEFORE the first send; POST; on 2xx delete
// it, counting the items the cloud's answer lists as rejected as dead letters by reason; on 413
// send it in halves (keys SubBatchKey, recomputed identically on every retry) until a single
// item still too large is a dead letter `too_large`; on 400/409/422 count its items as dead
// letters and delete it; otherwise retry the identical body with the identical key after
// full-jitter backoff (honouring Retry-After, which sync_cloud does not cut short), raising
// status().alert for a 4xx until a batch goes through.
// Design: docs/adr/0002-outbox-in-the-store.md; formats: docs/formats/outbox.md.
//
// Ownership: borrows the OutboxPort, the Sender and the Clock, which must outlive it.
// Thread: Step() is the whole engine, called by the uplink thread Start() creates (or by a
// test, with a FakeClock). Notify(), SyncNow(), Stop() and status() are thread-safe.
// Errors: outbox and network failures are recorded (status().last_error), counted and retried;
// nothing here is fatal.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "outpost/base/clock.h"
#include "outpost/base/status.h"
#include "outpost/gateway/model/outbox.h"
#include "outpost/gateway/uplink/codec.h"
#include "outpost/gateway/uplink/retry.h"
#include "outpost/gateway/uplink/sender.h"

namespace outpost::gateway::uplink {

// The uplink's port to the outbox (model::Outbox, implemented by the store), which belongs to
// another thread (the gateway's store writer). The uplink never sees the store itself.
class OutboxPort {
 public:
  virtual ~OutboxPort() = default;
  // Runs `fn` with the outbox on its owner thread and returns its Status once it ran.
  // kCancelled when the owner is shutting down (fn did not run).
  virtual Status Run(const std::function<Status(model::Outbox&)>& fn) = 0;
  // The latest outbox statistics (cheap, no round trip).
  virtual model::OutboxStats LatestStats() = 0;
};

struct Options {
  Protocol protocol = Protocol::kSeed;
  std::string gateway_id;
  std::string boot_id;  // random per process start; part of every key made in this run
  std::size_t batch_max_items = 5'000;
  std::int64_t batch_max_bytes = 1 << 20;  // of the request body, either protocol
  // When readings wait, at least this share of a batch's items and bytes is kept for them
  // (alerts and statuses go first, but cannot starve readings).
  double reading_share = 0.5;
  std::int64_t linger_ms = 1'000;  // the oldest item waits at most this long for company
  RetryPolicy retry;
  std::uint64_t jitter_seed = 0x9E3779B97F4A7C15ull;
  std::int64_t idle_poll_ms = 1'000;  // re-check (expiry, clock) when nothing happens
};

struct UplinkStatus {
  std::uint64_t sent_batches = 0;  // this run
  std::uint64_t sent_items = 0;
  std::uint64_t retries = 0;
  std::uint64_t replayed = 0;  // 2xx answers saying "replayed": true
  std::uint64_t left_out = 0;  // seed: alerts/statuses dropped when forming batches
  std::uint64_t reserved_metrics = 0;
  std::int64_t last_success_ms = 0;  // wall ms, 0 = never (this run)
  std::int64_t last_error_ms = 0;
  std::string last_error;
  std::string in_flight_key;
  std::uint32_t attempt = 0;         // consecutive failures of the in-flight batch
  std::int64_t next_attempt_ms = 0;  // wall ms of the next retry, 0 = not waiting
  std::uint64_t splits = 0;          // 413 answers that split a batch (this run)
  std::uint64_t rejected_items = 0;  // items the cloud refused in accepted batches (this run)
  // Raised when the cloud (or a proxy in front of it) answers a 4xx that is retried (404, 415,
  // 401...): the backlog is kept, someone must fix the route or the token. Cleared by the next
  // batch that goes through. Empty = not raised.
  std::string alert;
  std::int64_t alert_since_ms = 0;
};

// Whether TakeBatch waits for a batch to fill or its linger to end (kWhenDue), or takes what is
// queued now (kNow: a sync was requested).
enum class Take : std::uint8_t { kWhenDue, kNow };

// Forms (or returns the persisted) batch, on the outbox's owner thread. Exposed for tests.
struct TakeResult {
  std::optional<model::OutboxBatch> batch;
  std::int64_t due_ms = 0;  // when nothing is ready: wall ms at which the linger expires (0 =
                            // nothing queued)
  std::int64_t left_out = 0, reserved_metrics = 0;
};
Result<TakeResult> TakeBatch(model::Outbox& outbox, const Options& options, Take take,
                             std::int64_t now_wall_ms);

class Uplink {
 public:
  Uplink(Options options, OutboxPort& outbox, Sender& sender, const Clock& clock);
  ~Uplink();  // Stop()
  Uplink(const Uplink&) = delete;
  Uplink& operator=(const Uplink&) = delete;

  // One step of the engine; returns how long (ms) to wait before the next step unless woken.
  std::int64_t Step();

  void Start();
  // Wakes the loop: new items were committed.
  void Notify();
  // Drain now: sends what is queued without waiting for the linger and forgets the backoff.
  void SyncNow();
  // Aborts a request in flight (Sender::Stop) and joins the thread: bounded by the time the
  // store's owner takes to run one operation, never by a network timeout.
  void Stop();

  UplinkStatus status() const;

 private:
  struct Sent {
    bool retry = false;      // stopped at an answer to retry later (resp)
    bool delivered = false;  // at least one part was accepted
    bool replayed = false;
    PostResult resp;                           // the answer that stopped it, or the last one
    std::map<std::string, std::int64_t> dead;  // reason -> items
  };
  // POSTs `body` under `key`; a 413 splits it (recursively) as described above.
  Sent Send(const std::string& key, const std::string& body, std::int64_t items);
  void Run();
  void Fail(const std::string& message, std::optional<std::int64_t> retry_after_ms);
  double NextRandom();

  Options options_;
  OutboxPort& outbox_;
  Sender& sender_;
  const Clock& clock_;

  std::uint64_t rng_;
  std::int64_t retry_at_steady_ = 0;
  // Not before this, whatever sync_cloud asks: the cloud's Retry-After (steady ms).
  std::int64_t retry_after_until_steady_ = 0;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool woken_ = false;
  bool sync_ = false;
  UplinkStatus status_;
  std::thread thread_;
};

}  // namespace outpost::gateway::uplink
