// StoreReader: series queries on a read-only connection of their own (see store_reader.h), and
// the worker thread that owns one.
#include "outpost/gateway/store/store_reader.h"

#include <sqlite3.h>

#include <algorithm>
#include <iterator>
#include <limits>
#include <optional>
#include <unordered_map>
#include <utility>

#include "codec.h"
#include "outpost/base/check.h"
#include "outpost/sqlite/database.h"
#include "store_impl.h"

namespace outpost::gateway::store {

// ---- Bucketer ---------------------------------------------------------------------------------

Bucketer::Bucketer(int64_t from_ms, int64_t to_ms, size_t points)
    : from_ms_(from_ms), to_ms_(to_ms) {
  OUTPOST_CHECK(from_ms < to_ms && points >= 1);
  // The span may exceed int64 (e.g. from = INT64_MIN): compute in unsigned.
  const uint64_t span = static_cast<uint64_t>(to_ms) - static_cast<uint64_t>(from_ms);
  uint64_t b = span / points + (span % points != 0 ? 1 : 0);
  bucket_ms_ = static_cast<int64_t>(std::min<uint64_t>(
      std::max<uint64_t>(b, 1), static_cast<uint64_t>(std::numeric_limits<int64_t>::max())));
  const uint64_t count = span / static_cast<uint64_t>(bucket_ms_) +
                         (span % static_cast<uint64_t>(bucket_ms_) != 0 ? 1 : 0);
  min_.assign(count, 0);
  max_.assign(count, 0);
  sum_.assign(count, 0);
  n_.assign(count, 0);
}

size_t Bucketer::Index(int64_t ts_ms) const {
  return static_cast<size_t>((static_cast<uint64_t>(ts_ms) - static_cast<uint64_t>(from_ms_)) /
                             static_cast<uint64_t>(bucket_ms_));
}

bool Bucketer::AddWhole(int64_t start_ms, int64_t end_ms, int64_t n, double min, double max,
                        double sum) {
  if (n <= 0 || start_ms < from_ms_ || end_ms >= to_ms_ || start_ms > end_ms) return false;
  const size_t i = Index(start_ms);
  if (Index(end_ms) != i) return false;
  Merge(i, n, min, max, sum);
  return true;
}

void Bucketer::Add(int64_t ts_ms, double value) {
  if (ts_ms < from_ms_ || ts_ms >= to_ms_) return;
  const size_t i = Index(ts_ms);
  if (n_[i] == 0) {
    min_[i] = max_[i] = value;
  } else {
    min_[i] = std::min(min_[i], value);
    max_[i] = std::max(max_[i], value);
  }
  sum_[i] += value;
  ++n_[i];
}

void Bucketer::AddRuns(const int64_t* ts, const double* values, size_t n) {
  const auto w = static_cast<uint64_t>(bucket_ms_);
  size_t k = 0;
  while (k < n) {
    if (ts[k] < from_ms_ || ts[k] >= to_ms_) {
      ++k;
      continue;
    }
    // Offsets from from_ms in unsigned (the span may exceed int64): bucket i is [lo, hi).
    const size_t i = Index(ts[k]);
    const uint64_t lo = static_cast<uint64_t>(i) * w;
    const uint64_t hi = i + 1 == n_.size()
                            ? static_cast<uint64_t>(to_ms_) - static_cast<uint64_t>(from_ms_)
                            : lo + w;
    double mn = values[k], mx = values[k], sum = 0;
    int64_t count = 0;
    for (; k < n; ++k) {
      // A sample before from_ms wraps to an offset past every bucket: it ends the run too.
      const uint64_t off = static_cast<uint64_t>(ts[k]) - static_cast<uint64_t>(from_ms_);
      if (off < lo || off >= hi) break;
      mn = std::min(mn, values[k]);
      mx = std::max(mx, values[k]);
      sum += values[k];
      ++count;
    }
    Merge(i, count, mn, mx, sum);
  }
}

void Bucketer::Merge(size_t i, int64_t n, double min, double max, double sum) {
  if (n_[i] == 0) {
    min_[i] = min;
    max_[i] = max;
  } else {
    min_[i] = std::min(min_[i], min);
    max_[i] = std::max(max_[i], max);
  }
  sum_[i] += sum;
  n_[i] += n;
}

SeriesBuckets Bucketer::Finish() const {
  SeriesBuckets b;
  b.from_ms = from_ms_;
  b.to_ms = to_ms_;
  b.bucket_ms = bucket_ms_;
  for (size_t i = 0; i < n_.size(); ++i) {
    if (n_[i] == 0) continue;
    b.t.push_back(
        static_cast<int64_t>(static_cast<uint64_t>(from_ms_) +
                             static_cast<uint64_t>(i) * static_cast<uint64_t>(bucket_ms_)));
    b.min.push_back(min_[i]);
    b.max.push_back(max_[i]);
    b.avg.push_back(sum_[i] / static_cast<double>(n_[i]));
    b.n.push_back(n_[i]);
  }
  return b;
}

// ---- StoreReader ------------------------------------------------------------------------------

struct StoreReader::Impl {
  std::string path;
  sqlite::Database db;  // declared first: the statements below are finalized before it closes
  sqlite::Statement begin, commit, rollback, device_key, metric_key, blocks_in_range,
      summaries_in_range, block_by_id, hot_min_id, hot_after, hot_by_id, alerts, alert_by_key;
  // Blocks Buckets() took from their summaries or decoded, since the reader opened.
  uint64_t blocks_summarized = 0, blocks_decoded = 0;

  // The reader's own index of the hot tail, like the writer's (store_impl.h HotRef): per device
  // key, (id, ts) of its hot rows in id order. Hot ids only grow, so each snapshot adds the rows
  // after `hot_seen` and drops those below the smallest id still in `hot` (compacted or
  // retention-deleted); a row deleted from the middle (retention by age) is skipped at lookup.
  std::unordered_map<int64_t, std::vector<HotRef>> hot_index;
  int64_t hot_seen = 0;   // largest hot id indexed
  int64_t hot_floor = 0;  // smallest hot id at the last refresh

  // Brings hot_index up to the current snapshot (inside the read transaction).
  Status RefreshHot() {
    Status st;
    int64_t floor = hot_seen + 1;  // `hot` is empty: everything indexed has left it
    if (hot_min_id.Reset().Step(&st) && !hot_min_id.IsNull(0)) floor = hot_min_id.Int(0);
    hot_min_id.Reset();
    if (!st.ok()) return st;
    if (floor > hot_floor) {
      for (auto it = hot_index.begin(); it != hot_index.end();) {
        auto& refs = it->second;
        refs.erase(refs.begin(),
                   std::lower_bound(refs.begin(), refs.end(), floor,
                                    [](const HotRef& r, int64_t id) { return r.id < id; }));
        it = refs.empty() ? hot_index.erase(it) : std::next(it);
      }
      hot_floor = floor;
    }
    hot_after.Reset().Bind(1, hot_seen);
    while (hot_after.Step(&st)) {
      const int64_t id = hot_after.Int(0);
      hot_index[hot_after.Int(1)].push_back({id, hot_after.Int(2)});
      hot_seen = std::max(hot_seen, id);
    }
    hot_after.Reset();
    return st;
  }

  Status Err(const Status& s) const {
    return Status(s.code(), "store reader " + path + ": " + s.message());
  }

  // Device and metric keys; kNotFound for a device, *metric = 0 for an unknown metric.
  Status Keys(std::string_view device_id, std::string_view metric, int64_t* dkey, int64_t* mkey) {
    Status st;
    device_key.Reset().Bind(1, device_id);
    if (!device_key.Step(&st)) {
      if (!st.ok()) return st;
      return Status(Code::kNotFound, "no readings stored from device \"" +
                                         std::string(device_id.substr(0, 128)) + "\"");
    }
    *dkey = device_key.Int(0);
    device_key.Reset();
    metric_key.Reset().Bind(1, metric);
    *mkey = metric_key.Step(&st) ? metric_key.Int(0) : 0;
    metric_key.Reset();
    return st;
  }

  // Binds ?1..?4 of a blocks query: the device's blocks that may hold samples in [from, to)
  // (a block starts at most kMaxBlockSpanMs before its end).
  static sqlite::Statement& BindBlockRange(sqlite::Statement& s, int64_t dkey, int64_t from_ms,
                                           int64_t to_ms) {
    return s.Reset()
        .Bind(1, dkey)
        .Bind(2, SatSub(from_ms, kMaxBlockSpanMs))
        .Bind(3, to_ms)
        .Bind(4, from_ms);
  }

  // Calls fn(ts, value) for every point of the series in [from, to): the blocks first (in
  // start order; `stop(block_start)` returning true ends them early), then the earliest
  // `max_hot` hot rows. The caller runs it inside one read transaction.
  template <typename Fn, typename Stop>
  Status Scan(int64_t dkey, int64_t mkey, int64_t from_ms, int64_t to_ms, Fn&& fn, Stop&& stop,
              size_t max_hot) {
    std::vector<int64_t> ts_scratch;
    std::vector<codec::TsValue> pts;
    Status st;
    BindBlockRange(blocks_in_range, dkey, from_ms, to_ms);
    while (blocks_in_range.Step(&st)) {
      if (stop(blocks_in_range.Int(0))) break;
      pts.clear();
      if (!codec::DecodeBlockSeries(blocks_in_range.View(1), mkey, from_ms, to_ms, &ts_scratch,
                                    &pts)) {
        blocks_in_range.Reset();
        return Status(Code::kDataLoss, "corrupt block");
      }
      for (const auto& p : pts) fn(p.ts_ms, p.value);
    }
    blocks_in_range.Reset();
    if (!st.ok()) return st;
    return ScanHot(dkey, mkey, from_ms, to_ms, fn, max_hot);
  }

  // Into `b`: a block whose samples all fall in one bucket is added from its summary without
  // reading its data; the others (and blocks from before schema 7, which have no summary) are
  // decoded; then the hot rows.
  Status ScanBuckets(int64_t dkey, int64_t mkey, int64_t from_ms, int64_t to_ms, Bucketer* b) {
    std::vector<int64_t> ts_scratch, ts;
    std::vector<double> values;
    Status st;
    BindBlockRange(summaries_in_range, dkey, from_ms, to_ms).Bind(5, mkey);
    sqlite::Statement& s = summaries_in_range;
    while (s.Step(&st)) {
      const bool summarized = !s.IsNull(3);
      if (summarized && s.IsNull(4)) continue;  // no sample of this metric in the block
      if (summarized &&
          b->AddWhole(s.Int(1), s.Int(2), s.Int(4), s.Double(5), s.Double(6), s.Double(7))) {
        ++blocks_summarized;
        continue;
      }
      ++blocks_decoded;
      block_by_id.Reset().Bind(1, s.Int(0));
      if (!block_by_id.Step(&st)) {
        s.Reset();
        if (!st.ok()) return st;
        return Status(Code::kDataLoss, "block listed but not found");
      }
      ts.clear();
      values.clear();
      const bool ok =
          codec::DecodeBlockColumn(block_by_id.View(0), mkey, &ts_scratch, &ts, &values);
      block_by_id.Reset();
      if (!ok) {
        s.Reset();
        return Status(Code::kDataLoss, "corrupt block");
      }
      b->AddRuns(ts.data(), values.data(), ts.size());
    }
    s.Reset();
    if (!st.ok()) return st;
    return ScanHot(dkey, mkey, from_ms, to_ms, [b](int64_t t, double v) { b->Add(t, v); });
  }

  // The hot rows of the device with from <= ts < to, each value of `mkey` to fn(ts, value): the
  // earliest `max_values` by (ts, id), in that order; with no limit, all of them in id order. A
  // limited scan reads only the rows it returns (and those without a value, or deleted since
  // indexed), so each page of a long export costs what it returns, not the whole tail.
  template <typename Fn>
  Status ScanHot(int64_t dkey, int64_t mkey, int64_t from_ms, int64_t to_ms, Fn&& fn,
                 size_t max_values = std::numeric_limits<size_t>::max()) {
    OUTPOST_RETURN_IF_ERROR(RefreshHot());
    auto refs = hot_index.find(dkey);
    if (refs == hot_index.end()) return Status::Ok();
    auto in = [&](const HotRef& ref) { return ref.ts_ms >= from_ms && ref.ts_ms < to_ms; };
    Status st;
    // One row's value to fn; false when it has none of `mkey` or was deleted by retention since
    // it was indexed.
    auto read = [&](const HotRef& ref) -> Result<bool> {
      hot_by_id.Reset().Bind(1, ref.id);
      if (!hot_by_id.Step(&st)) {
        hot_by_id.Reset();
        if (!st.ok()) return st;
        return false;
      }
      codec::MetricReader reader(hot_by_id.View(0));
      codec::PackedMetric pm;
      bool given = false;
      while (!given && reader.Next(&pm)) {
        if (pm.key == mkey) {
          fn(ref.ts_ms, pm.value);
          given = true;
        }
      }
      const bool corrupt = reader.corrupt();
      hot_by_id.Reset();
      if (corrupt) return Status(Code::kDataLoss, "corrupt hot row");
      return given;
    };
    if (max_values == std::numeric_limits<size_t>::max()) {  // no copy of the index
      for (const HotRef& ref : refs->second) {
        if (in(ref)) OUTPOST_RETURN_IF_ERROR(read(ref).status());
      }
      return Status::Ok();
    }
    std::vector<HotRef> in_range;
    std::copy_if(refs->second.begin(), refs->second.end(), std::back_inserter(in_range), in);
    if (in_range.size() <= max_values) {
      for (const HotRef& ref : in_range) OUTPOST_RETURN_IF_ERROR(read(ref).status());
      return Status::Ok();
    }
    // The earliest `max_values` first; more only to stand in for rows without a value.
    auto by_ts = [](const HotRef& a, const HotRef& b) {
      return a.ts_ms != b.ts_ms ? a.ts_ms < b.ts_ms : a.id < b.id;
    };
    size_t found = 0;
    for (auto first = in_range.begin(); found < max_values && first != in_range.end();) {
      const auto left = static_cast<size_t>(in_range.end() - first);
      const auto last = first + static_cast<std::ptrdiff_t>(std::min(max_values - found, left));
      std::nth_element(first, last, in_range.end(), by_ts);
      std::sort(first, last, by_ts);
      for (; first != last; ++first) {
        auto r = read(*first);
        if (!r.ok()) return r.status();
        found += *r ? 1 : 0;
      }
    }
    return Status::Ok();
  }

  // Runs body() in one read transaction (one snapshot of blocks and hot).
  template <typename Body>
  Status InSnapshot(Body&& body) {
    OUTPOST_RETURN_IF_ERROR(begin.Run());
    Status st = body();
    if (st.ok()) {
      st = commit.Run();
    }
    if (!st.ok() && db.in_transaction()) (void)rollback.Run();
    return st;
  }
};

StoreReader::StoreReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StoreReader::~StoreReader() = default;

Result<std::unique_ptr<StoreReader>> StoreReader::Open(const ReaderOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->path = options.path;
  sqlite::OpenOptions o;
  o.flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX;
  o.busy_timeout_ms = options.busy_timeout_ms;
  o.label = "store reader " + options.path;
  o.pragmas = {"query_only=1", "cache_size=-" + std::to_string(options.cache_bytes / 1024)};
  auto db = sqlite::Database::Open(options.path, o);
  if (!db.ok()) return db.status();
  impl->db = std::move(db).value();
  Impl& m = *impl;
  OUTPOST_RETURN_IF_ERROR(m.db.Prepare(&m.begin, "BEGIN"));
  OUTPOST_RETURN_IF_ERROR(m.db.Prepare(&m.commit, "COMMIT"));
  OUTPOST_RETURN_IF_ERROR(m.db.Prepare(&m.rollback, "ROLLBACK"));
  OUTPOST_RETURN_IF_ERROR(
      m.db.Prepare(&m.device_key, "SELECT device_key FROM device_keys WHERE device_id = ?1"));
  OUTPOST_RETURN_IF_ERROR(
      m.db.Prepare(&m.metric_key, "SELECT metric_key FROM metric_keys WHERE name = ?1"));
  OUTPOST_RETURN_IF_ERROR(
      m.db.Prepare(&m.blocks_in_range,
                   "SELECT start_ts, data FROM blocks WHERE device_key = ?1 AND start_ts >= ?2 "
                   "AND start_ts < ?3 AND end_ts >= ?4 ORDER BY start_ts"));
  // The blocks of a range with their summary of ?5, from the index and the summaries alone:
  // id, start, end, the block's own summary row (NULL: none, decode it), then the metric's
  // n, min, max, sum (NULL: the block has no sample of it).
  OUTPOST_RETURN_IF_ERROR(m.db.Prepare(
      &m.summaries_in_range,
      "SELECT b.id, b.start_ts, b.end_ts, w.n, s.n, s.min, s.max, s.sum FROM blocks b "
      "LEFT JOIN block_summaries w ON w.block_id = b.id AND w.metric_key = 0 "
      "LEFT JOIN block_summaries s ON s.block_id = b.id AND s.metric_key = ?5 "
      "WHERE b.device_key = ?1 AND b.start_ts >= ?2 AND b.start_ts < ?3 AND b.end_ts >= ?4 "
      "ORDER BY b.start_ts"));
  OUTPOST_RETURN_IF_ERROR(m.db.Prepare(&m.block_by_id, "SELECT data FROM blocks WHERE id = ?1"));
  OUTPOST_RETURN_IF_ERROR(m.db.Prepare(&m.hot_min_id, "SELECT MIN(id) FROM hot"));
  OUTPOST_RETURN_IF_ERROR(m.db.Prepare(
      &m.hot_after, "SELECT id, device_key, ts_ms FROM hot WHERE id > ?1 ORDER BY id"));
  OUTPOST_RETURN_IF_ERROR(m.db.Prepare(&m.hot_by_id, "SELECT metrics FROM hot WHERE id = ?1"));
  // ?1 state (0 any, 1 active, 2 cleared), ?2 acked (0 any, 1 yes, 2 no), ?3 device or "",
  // ?4/?5 the cursor (raised_ms, alert_id; ?4 < 0 = none), ?6 limit.
  OUTPOST_RETURN_IF_ERROR(m.db.Prepare(
      &m.alerts, std::string(kAlertColumns) +
                     "WHERE (?1 = 0 OR (?1 = 1) = (cleared_ms = 0)) "
                     "AND (?2 = 0 OR (?2 = 1) = (acked_ms != 0)) "
                     "AND (?3 = '' OR device_id = ?3) "
                     "AND (?4 < 0 OR raised_ms < ?4 OR (raised_ms = ?4 AND alert_id < ?5)) "
                     "ORDER BY raised_ms DESC, alert_id DESC LIMIT ?6"));
  OUTPOST_RETURN_IF_ERROR(m.db.Prepare(
      &m.alert_by_key, std::string(kAlertColumns) + "WHERE alert_id = ?1 AND raised_ms = ?2"));
  return std::unique_ptr<StoreReader>(new StoreReader(std::move(impl)));
}

StoreReader::BlockCounts StoreReader::block_counts() const {
  return {impl_->blocks_summarized, impl_->blocks_decoded};
}

Result<SeriesBuckets> StoreReader::Buckets(std::string_view device_id, std::string_view metric,
                                           int64_t from_ms, int64_t to_ms, size_t points) {
  Impl& m = *impl_;
  if (from_ms >= to_ms || points == 0) {
    return Status(Code::kInvalidArgument, "need from < to and points >= 1");
  }
  Bucketer bucketer(from_ms, to_ms, points);
  Status st = m.InSnapshot([&]() -> Status {
    int64_t dkey = 0, mkey = 0;
    OUTPOST_RETURN_IF_ERROR(m.Keys(device_id, metric, &dkey, &mkey));
    if (mkey == 0) return Status::Ok();
    return m.ScanBuckets(dkey, mkey, from_ms, to_ms, &bucketer);
  });
  if (!st.ok()) return st.code() == Code::kNotFound ? st : m.Err(st);
  return bucketer.Finish();
}

Result<RawPage> StoreReader::Raw(std::string_view device_id, std::string_view metric,
                                 int64_t from_ms, int64_t to_ms, const RawCursor& after,
                                 size_t limit) {
  Impl& m = *impl_;
  if (from_ms >= to_ms || limit == 0) {
    return Status(Code::kInvalidArgument, "need from < to and limit >= 1");
  }
  const int64_t start = std::max(from_ms, after.ts_ms);
  const int64_t skip = std::max<int64_t>(after.skip, 0);
  RawPage page;
  if (start >= to_ms) return page;
  // Enough points to drop `skip`, return `limit` and see whether one more follows.
  const size_t want = limit + 1 + static_cast<size_t>(skip);
  std::vector<codec::TsValue> pts;
  auto by_ts = [](const codec::TsValue& a, const codec::TsValue& b) { return a.ts_ms < b.ts_ms; };
  Status st = m.InSnapshot([&]() -> Status {
    int64_t dkey = 0, mkey = 0;
    OUTPOST_RETURN_IF_ERROR(m.Keys(device_id, metric, &dkey, &mkey));
    if (mkey == 0) return Status::Ok();
    return m.Scan(
        dkey, mkey, start, to_ms,
        [&](int64_t t, double v) {
          pts.push_back({t, v});
        },
        [&](int64_t block_start) {
          // Blocks come in start order: once `want` points are known and this block starts
          // after the last of them, no later block can contribute.
          if (pts.size() < want) return false;
          std::stable_sort(pts.begin(), pts.end(), by_ts);
          pts.resize(want);
          return block_start > pts.back().ts_ms;
        },
        want);
  });
  if (!st.ok()) return st.code() == Code::kNotFound ? st : m.Err(st);
  std::stable_sort(pts.begin(), pts.end(), by_ts);
  size_t first = 0;
  while (first < pts.size() && static_cast<int64_t>(first) < skip &&
         pts[first].ts_ms == after.ts_ms) {
    ++first;
  }
  const size_t end = std::min(pts.size(), first + limit);
  for (size_t i = first; i < end; ++i) {
    page.t.push_back(pts[i].ts_ms);
    page.v.push_back(pts[i].value);
  }
  if (end < pts.size()) {
    page.more = true;
    page.next.ts_ms = pts[end].ts_ms;
    int64_t same = 0;
    for (size_t i = first; i < end; ++i) same += pts[i].ts_ms == page.next.ts_ms ? 1 : 0;
    if (page.next.ts_ms == after.ts_ms) same += static_cast<int64_t>(first);
    page.next.skip = same;
  }
  return page;
}

// ---- ReaderThread -----------------------------------------------------------------------------

ReaderThread::ReaderThread(std::unique_ptr<StoreReader> reader, size_t max_queued)
    : reader_(std::move(reader)), max_queued_(max_queued) {
  OUTPOST_CHECK(reader_ != nullptr);
  thread_ = std::thread([this] { Loop(); });
}

ReaderThread::~ReaderThread() { Stop(); }

bool ReaderThread::TryPost(Job job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || queue_.size() >= max_queued_) {
      ++rejected_full_;
      return false;
    }
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
  return true;
}

bool ReaderThread::Post(Job job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return false;
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
  return true;
}

void ReaderThread::Stop() {
  std::deque<Job> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    dropped.swap(queue_);
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  dropped.clear();  // outside the lock: a job's destructor may answer a client
}

uint64_t ReaderThread::rejected_full() const {
  std::lock_guard<std::mutex> lock(mu_);
  return rejected_full_;
}

uint64_t ReaderThread::completed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return completed_;
}

void ReaderThread::Loop() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job(*reader_);
    job = nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    ++completed_;
  }
}

Result<std::vector<model::AlertRow>> StoreReader::Alerts(const AlertFilter& filter, size_t limit) {
  Impl& m = *impl_;
  if (limit == 0) return InvalidArgument("alerts: limit must be at least 1");
  m.alerts.Reset()
      .Bind(1, static_cast<int>(filter.state))
      .Bind(2, static_cast<int>(filter.acked))
      .Bind(3, filter.device_id)
      .Bind(4, filter.before_raised_ms)
      .Bind(5, filter.before_alert_id)
      .Bind(6, static_cast<int64_t>(std::min<size_t>(limit, 1'000'000)));
  std::vector<model::AlertRow> out;
  Status st;
  while (m.alerts.Step(&st)) out.push_back(ReadAlert(m.alerts.get()));
  m.alerts.Reset();
  if (!st.ok()) return m.Err(st);
  return out;
}

Result<model::AlertRow> StoreReader::Alert(std::string_view alert_id, int64_t raised_ms) {
  Impl& m = *impl_;
  m.alert_by_key.Reset().Bind(1, alert_id).Bind(2, raised_ms);
  Status st;
  std::optional<model::AlertRow> row;
  if (m.alert_by_key.Step(&st)) row = ReadAlert(m.alert_by_key.get());
  m.alert_by_key.Reset();
  if (!st.ok()) return m.Err(st);
  if (!row) {
    return Status(Code::kNotFound, "alert " + std::string(alert_id) + ":" +
                                       std::to_string(raised_ms) + " not found");
  }
  return *std::move(row);
}

}  // namespace outpost::gateway::store
