// StoreReader answers read-only series and alert queries from the gateway's store file on a
// connection of its own, so an API query neither blocks the event loop nor waits for (or delays)
// the writer: SQLite's WAL lets one writer and any number of readers work at once, each reader on a
// snapshot. It decodes the same per-device blocks and hot rows the Store writes
// (docs/formats/store.md) and reads both inside one read transaction, so a compaction pass that
// moves rows from `hot` into `blocks` is seen entirely or not at all (no row twice, none lost).
//
// The hot tail has no per-device index on disk (the Store keeps one in memory, which a reader
// cannot share): the reader keeps its own, (id, ts) per hot row (16 bytes each, bounded by the
// hot tail), brought up to date at each query by reading only the rows added since the last one
// (hot ids only grow) and dropping those that left it; the rows in range are fetched by rowid.
//
// Ownership: owns its read-only SQLite connection (SQLITE_OPEN_READONLY; it takes no writer
//   lock). The file must exist (the Store creates it).
// Thread: NOT thread-safe; one thread owns it (ReaderThread below runs one on a worker).
// Errors: kNotFound (device never stored a reading), kInvalidArgument (from >= to, points or
//   limit 0), kDataLoss (a corrupt block), kUnavailable (I/O, busy), with the file's name.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/gateway/model/rows.h"

namespace outpost::gateway::store {

// Aggregated buckets of one series over [from_ms, to_ms): bucket i covers
// [from + i * bucket_ms, from + (i + 1) * bucket_ms), bucket_ms = ceil((to - from) / points),
// so there are at most `points` of them. Only non-empty buckets are listed; min and max are the
// raw extrema of the samples in the bucket (a one-sample spike survives every zoom).
struct SeriesBuckets {
  int64_t from_ms = 0;
  int64_t to_ms = 0;
  int64_t bucket_ms = 1;
  std::vector<int64_t> t;  // bucket start
  std::vector<double> min, max, avg;
  std::vector<int64_t> n;
};

// Pure bucketing (no I/O), fed in any order. Memory: O(points).
class Bucketer {
 public:
  // Requires from_ms < to_ms and points >= 1.
  Bucketer(int64_t from_ms, int64_t to_ms, size_t points);
  void Add(int64_t ts_ms, double value);  // ignored outside [from, to)
  // n samples from start_ms to end_ms (inclusive) with these extrema and sum, added whole when
  // they all fall in one bucket; false (nothing added) when they do not.
  bool AddWhole(int64_t start_ms, int64_t end_ms, int64_t n, double min, double max, double sum);
  // Add() for each (ts[i], values[i]), i < n, in one pass that finds a bucket once per run of
  // samples in it: for a decoded block (ts ascending), one bucket lookup per bucket it spans.
  // Any order is correct; sorted input is the fast one.
  void AddRuns(const int64_t* ts, const double* values, size_t n);
  SeriesBuckets Finish() const;
  int64_t bucket_ms() const { return bucket_ms_; }

 private:
  size_t Index(int64_t ts_ms) const;  // requires from <= ts < to
  // n >= 1 samples with these extrema and sum into bucket i.
  void Merge(size_t i, int64_t n, double min, double max, double sum);
  int64_t from_ms_, to_ms_, bucket_ms_;
  std::vector<double> min_, max_, sum_;
  std::vector<int64_t> n_;
};

// A page of raw points, ts ascending. `next` is where the next page starts (valid when `more`):
// the timestamp of its first point and how many points with that timestamp this page (and the
// ones before it) already returned.
struct RawCursor {
  int64_t ts_ms = 0;
  int64_t skip = 0;
};
struct RawPage {
  std::vector<int64_t> t;
  std::vector<double> v;
  bool more = false;
  RawCursor next;
};

// Which alerts StoreReader::Alerts lists, newest raise first (ties by alert id, descending).
struct AlertFilter {
  enum class State { kAny, kActive, kCleared };
  enum class Acked { kAny, kYes, kNo };
  State state = State::kAny;
  Acked acked = Acked::kAny;
  std::string device_id;  // "" = every device
  // Keyset cursor: only alerts listed after (before_raised_ms, before_alert_id) in that order;
  // before_raised_ms < 0 = from the newest.
  int64_t before_raised_ms = -1;
  std::string before_alert_id;
};

struct ReaderOptions {
  std::string path;               // the Store's file
  int busy_timeout_ms = 1000;     // waits for a checkpoint's lock at most this long
  int64_t cache_bytes = 4 << 20;  // the reader connection's page cache
};

class StoreReader {
 public:
  static Result<std::unique_ptr<StoreReader>> Open(const ReaderOptions& options);
  ~StoreReader();
  StoreReader(const StoreReader&) = delete;
  StoreReader& operator=(const StoreReader&) = delete;

  // Buckets of `metric` of `device_id` in [from, to), at most `points`. Unknown device:
  // kNotFound; unknown metric: no buckets. Booleans read as 0/1.
  Result<SeriesBuckets> Buckets(std::string_view device_id, std::string_view metric,
                                int64_t from_ms, int64_t to_ms, size_t points);
  // Raw points in [max(from, after.ts), to), skipping the first `after.skip` points at
  // after.ts, at most `limit`. Points with the same timestamp keep one order within a snapshot;
  // a compaction between two pages may reorder points that share a timestamp.
  Result<RawPage> Raw(std::string_view device_id, std::string_view metric, int64_t from_ms,
                      int64_t to_ms, const RawCursor& after, size_t limit);
  // Alerts matching `filter`, at most `limit` (0: kInvalidArgument), as the Store keeps them
  // (the active ones and the newest cleared ones; store.h alert_history_max_rows).
  Result<std::vector<model::AlertRow>> Alerts(const AlertFilter& filter, size_t limit);
  // One alert by its key; kNotFound when there is none.
  Result<model::AlertRow> Alert(std::string_view alert_id, int64_t raised_ms);

  // Blocks Buckets() answered from their summaries without reading them, and blocks it
  // decoded, since Open(). On the reader's own thread, like every call.
  struct BlockCounts {
    uint64_t summarized = 0, decoded = 0;
  };
  BlockCounts block_counts() const;

 private:
  struct Impl;
  explicit StoreReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One worker thread that owns a StoreReader and runs posted jobs in order, with a bounded
// queue. Thread: TryPost() and stats from any thread. A job runs on the worker and answers
// however it likes (e.g. an http::Responder, which may be used from any thread).
// Stop() (also the destructor) lets the running job finish, drops the queued ones (destroying
// them: an http::Responder then answers 500) and joins.
class ReaderThread {
 public:
  using Job = std::function<void(StoreReader&)>;
  ReaderThread(std::unique_ptr<StoreReader> reader, size_t max_queued);
  ~ReaderThread();
  ReaderThread(const ReaderThread&) = delete;
  ReaderThread& operator=(const ReaderThread&) = delete;

  // False (and counted) when max_queued jobs are waiting, or after Stop(); the job is not run.
  bool TryPost(Job job);
  // Queues `job` even when max_queued are waiting: for a job already admitted that goes on with
  // its work (the caller bounds how many such jobs there can be). False after Stop().
  bool Post(Job job);
  void Stop();
  uint64_t rejected_full() const;
  uint64_t completed() const;

 private:
  void Loop();
  std::unique_ptr<StoreReader> reader_;
  const size_t max_queued_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  uint64_t rejected_full_ = 0, completed_ = 0;
  std::thread thread_;
};

}  // namespace outpost::gateway::store
