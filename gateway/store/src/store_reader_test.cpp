#include "outpost/gateway/store/store_reader.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <future>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <thread>

#include "outpost/gateway/store/store.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/temp_dir.h"

namespace outpost::gateway::store {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;
constexpr int64_t kMinute = 60'000;
constexpr int64_t kDay = 24 * 60 * kMinute;

model::ReadingRow Reading(const std::string& device, int64_t ts, uint64_t seq, double temp) {
  model::ReadingRow r;
  r.device_id = device;
  r.has_seq = true;
  r.boot = 1;
  r.seq = seq;
  r.ts_ms = ts;
  r.received_ms = ts;
  r.metrics = {{"temperature", temp, false}, {"motion", static_cast<double>(seq % 2), true}};
  return r;
}

// ---- Bucketer (pure) ----

TEST(BucketerTest, OneSampleSpikeSurvivesEveryPointCount) {
  // 24 h at one sample a minute, flat 20.0 but for one spike of 99 and one dip of -40.
  constexpr int kSamples = 1440;
  for (size_t points : {1, 2, 3, 7, 10, 100, 499, 500, 1000, 1439, 1440, 1441, 5000, 10000}) {
    Bucketer b(kT0, kT0 + kDay, points);
    for (int i = 0; i < kSamples; ++i) {
      double v = i == 777 ? 99.0 : i == 1200 ? -40.0 : 20.0;
      b.Add(kT0 + i * kMinute, v);
    }
    SeriesBuckets s = b.Finish();
    SCOPED_TRACE(points);
    EXPECT_LE(s.t.size(), points);
    EXPECT_EQ(s.bucket_ms,
              (kDay + static_cast<int64_t>(points) - 1) / static_cast<int64_t>(points));
    ASSERT_FALSE(s.t.empty());
    EXPECT_EQ(*std::max_element(s.max.begin(), s.max.end()), 99.0);
    EXPECT_EQ(*std::min_element(s.min.begin(), s.min.end()), -40.0);
    int64_t total = 0;
    for (size_t i = 0; i < s.t.size(); ++i) {
      total += s.n[i];
      EXPECT_LE(s.min[i], s.avg[i]);
      EXPECT_LE(s.avg[i], s.max[i]);
      if (i > 0) {
        EXPECT_GE(s.t[i] - s.t[i - 1], s.bucket_ms);
      }
      EXPECT_EQ((s.t[i] - kT0) % s.bucket_ms, 0);
    }
    EXPECT_EQ(total, kSamples);
  }
}

TEST(BucketerTest, AveragesAndIgnoresOutOfRange) {
  Bucketer b(0, 100, 2);  // buckets [0,50) and [50,100)
  b.Add(-1, 1000);
  b.Add(100, 1000);
  b.Add(0, 1);
  b.Add(49, 3);
  b.Add(99, 10);
  SeriesBuckets s = b.Finish();
  ASSERT_EQ(s.t, (std::vector<int64_t>{0, 50}));
  EXPECT_EQ(s.avg, (std::vector<double>{2, 10}));
  EXPECT_EQ(s.n, (std::vector<int64_t>{2, 1}));
}

TEST(BucketerTest, AddWholeOnlyWhenEverySampleFallsInOneBucket) {
  Bucketer b(0, 100, 2);  // [0,50) and [50,100)
  EXPECT_TRUE(b.AddWhole(10, 49, 3, 1, 5, 9));
  EXPECT_FALSE(b.AddWhole(40, 50, 2, 1, 1, 2)) << "straddles two buckets";
  EXPECT_FALSE(b.AddWhole(-1, 10, 2, 1, 1, 2)) << "starts before from";
  EXPECT_FALSE(b.AddWhole(60, 100, 2, 1, 1, 2)) << "ends at to (exclusive)";
  EXPECT_FALSE(b.AddWhole(60, 70, 0, 0, 0, 0)) << "no samples";
  b.Add(20, 7);
  EXPECT_TRUE(b.AddWhole(50, 99, 1, -2, -2, -2));
  SeriesBuckets s = b.Finish();
  ASSERT_EQ(s.t, (std::vector<int64_t>{0, 50}));
  EXPECT_EQ(s.n, (std::vector<int64_t>{4, 1}));
  EXPECT_EQ(s.min, (std::vector<double>{1, -2}));
  EXPECT_EQ(s.max, (std::vector<double>{7, -2}));
  EXPECT_EQ(s.avg, (std::vector<double>{4, -2}));
}

TEST(BucketerTest, WholeInt64RangeDoesNotOverflow) {
  Bucketer b(std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(), 10);
  b.Add(std::numeric_limits<int64_t>::min(), 1);
  b.Add(0, 2);
  b.Add(std::numeric_limits<int64_t>::max() - 1, 3);
  SeriesBuckets s = b.Finish();
  EXPECT_LE(s.t.size(), 10u);
  EXPECT_EQ(s.t.size(), 3u);
  EXPECT_EQ(s.t.front(), std::numeric_limits<int64_t>::min());
}

// AddRuns is Add in one pass per run: the same buckets for sorted input (a decoded block), for
// any other order (a corrupt or two-column block), for samples outside [from, to), and at the
// edges of the int64 range. Integer values keep every sum exact whatever the order.
TEST(BucketerTest, AddRunsGivesWhatAddGivesInAnyOrder) {
  struct Range {
    int64_t from, to;
    size_t points;
  };
  const int64_t lo = std::numeric_limits<int64_t>::min(), hi = std::numeric_limits<int64_t>::max();
  std::mt19937_64 rng(7);
  for (const Range& r : {Range{0, 1000, 7}, Range{-500, 500, 1000}, Range{0, 1000, 1},
                         Range{100, 103, 5}, Range{lo, hi, 10}}) {
    std::vector<int64_t> ts;
    std::vector<double> values;
    const uint64_t span = static_cast<uint64_t>(r.to) - static_cast<uint64_t>(r.from);
    for (int i = 0; i < 3000; ++i) {
      // Mostly inside, some just outside on either side (where the range allows it).
      const uint64_t off = rng() % (span == 0 ? 1 : span);
      int64_t t = static_cast<int64_t>(static_cast<uint64_t>(r.from) + off);
      if (i % 50 == 0 && r.from > lo + 10) t = r.from - 1 - static_cast<int64_t>(rng() % 10);
      if (i % 50 == 1 && r.to < hi - 10) t = r.to + static_cast<int64_t>(rng() % 10);
      ts.push_back(t);
      values.push_back(static_cast<double>(static_cast<int>(rng() % 2001) - 1000));
    }
    ts.push_back(r.to - 1);  // the last bucket's last instant
    values.push_back(5000);
    std::vector<size_t> order(ts.size());
    std::iota(order.begin(), order.end(), 0);
    std::vector<std::vector<size_t>> orders;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ts[a] < ts[b]; });
    orders.push_back(order);
    orders.emplace_back(order.rbegin(), order.rend());
    std::shuffle(order.begin(), order.end(), rng);
    orders.push_back(order);
    for (const auto& o : orders) {
      Bucketer one(r.from, r.to, r.points), runs(r.from, r.to, r.points);
      std::vector<int64_t> t2;
      std::vector<double> v2;
      for (size_t i : o) {
        one.Add(ts[i], values[i]);
        t2.push_back(ts[i]);
        v2.push_back(values[i]);
      }
      runs.AddRuns(t2.data(), v2.data(), t2.size());
      const SeriesBuckets a = one.Finish(), b = runs.Finish();
      ASSERT_EQ(a.t, b.t) << r.from << " " << r.to << " " << r.points;
      EXPECT_EQ(a.n, b.n);
      EXPECT_EQ(a.min, b.min);
      EXPECT_EQ(a.max, b.max);
      EXPECT_EQ(a.avg, b.avg);
    }
  }
}

// ---- StoreReader on a real file ----

class StoreReaderTest : public ::testing::Test {
 protected:
  Options Opts() const {
    Options o;
    o.path = dir_.File("gateway.db");
    o.synchronous = Synchronous::kNormal;
    o.hot_max_rows = 400;  // compaction in these small tests
    return o;
  }
  std::unique_ptr<StoreReader> ReaderOk() {
    auto r = StoreReader::Open(ReaderOptions{dir_.File("gateway.db")});
    OUTPOST_EXPECT_OK(r);
    return r.ok() ? std::move(r).value() : nullptr;
  }
  outpost::testing::TempDir dir_{"outpost-reader"};
};

TEST_F(StoreReaderTest, MatchesStoreQueryAcrossBlocksAndHotTail) {
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto store, Store::Open(Opts()));
  model::WriteSet b;
  for (int i = 0; i < 3000; ++i) {
    for (int d = 0; d < 3; ++d) {
      b.readings.push_back(Reading("dev-" + std::to_string(d), kT0 + i * 1000, i, d * 1e4 + i));
    }
    if (b.readings.size() >= 300) {
      OUTPOST_ASSERT_OK(store->Write(b));
      b.clear();
      OUTPOST_ASSERT_OK(store->RunMaintenance(kT0, 1000));
    }
  }
  OUTPOST_ASSERT_OK(store->Write(b));
  auto reader = ReaderOk();
  ASSERT_NE(reader, nullptr);
  const int64_t from = kT0 + 123'000, to = kT0 + 2'900'500;
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto want,
                               store->QuerySeries("dev-1", "temperature", from, to, 1'000'000));
  ASSERT_EQ(want.size(), 2778u);
  // One bucket per second: every sample its own bucket.
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto s, reader->Buckets("dev-1", "temperature", from, to, 10000));
  ASSERT_EQ(s.bucket_ms, 278);
  ASSERT_EQ(s.t.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(s.n[i], 1);
    EXPECT_EQ(s.min[i], want[i].value);
    EXPECT_LE(s.t[i], want[i].ts_ms);
  }
  // Raw pages of 100 concatenate to the same points.
  std::vector<Point> got;
  RawCursor c{};
  for (int page = 0; page < 100; ++page) {
    OUTPOST_ASSERT_OK_AND_ASSIGN(auto p, reader->Raw("dev-1", "temperature", from, to, c, 100));
    for (size_t i = 0; i < p.t.size(); ++i) got.push_back({p.t[i], p.v[i]});
    if (!p.more) break;
    c = p.next;
  }
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].ts_ms, want[i].ts_ms);
    EXPECT_EQ(got[i].value, want[i].value);
  }
  // Booleans as 0/1.
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto motion, reader->Buckets("dev-0", "motion", kT0, kT0 + 4000, 4));
  EXPECT_EQ(motion.max, (std::vector<double>{0, 1, 0, 1}));
}

// The first column of the first row of `sql` on the file, by a connection of its own; -1 when none.
int64_t CountRows(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &s, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  const int64_t n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
  sqlite3_finalize(s);
  sqlite3_close(db);
  return n;
}

// The buckets of `points` over the store's raw points, by a Bucketer fed one sample at a time.
SeriesBuckets Reference(Store& store, const std::string& device, const std::string& metric,
                        int64_t from, int64_t to, size_t points) {
  Bucketer ref(from, to, points);
  auto all = store.QuerySeries(device, metric, from, to, 1'000'000);
  EXPECT_TRUE(all.ok()) << all.status().message();
  if (all.ok()) {
    for (const Point& p : *all) ref.Add(p.ts_ms, p.value);
  }
  return ref.Finish();
}

void ExpectSameBuckets(const SeriesBuckets& want, const SeriesBuckets& got) {
  ASSERT_EQ(got.t, want.t);
  EXPECT_EQ(got.n, want.n);
  EXPECT_EQ(got.min, want.min);
  EXPECT_EQ(got.max, want.max);
  ASSERT_EQ(got.avg.size(), want.avg.size());
  for (size_t i = 0; i < want.avg.size(); ++i) {
    EXPECT_NEAR(got.avg[i], want.avg[i], 1e-9 * std::max(1.0, std::abs(want.avg[i]))) << i;
  }
}

// A block whose samples all fall in one bucket is answered from its summary without decoding;
// the others are decoded. Either way the buckets are those of the raw points, a one-sample
// spike included. A store without summaries (from before schema 7) is decoded: same answer.
TEST_F(StoreReaderTest, BlockSummariesGiveTheSameBucketsAsDecoding) {
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto store, Store::Open(Opts()));
  model::WriteSet b;
  constexpr int kReadings = 6000;  // one a second; blocks of ~300 (a compaction every 300)
  for (int i = 0; i < kReadings; ++i) {
    const double t = i == 4321 ? 99.9 : i == 777 ? -40.5 : 20.0 + (i % 17) * 0.1;
    b.readings.push_back(Reading("dev-0", kT0 + i * 1000, i, t));
    if (b.readings.size() >= 300) {
      OUTPOST_ASSERT_OK(store->Write(b));
      b.clear();
      OUTPOST_ASSERT_OK(store->RunMaintenance(kT0, 1000));
    }
  }
  auto reader = ReaderOk();
  ASSERT_NE(reader, nullptr);
  const std::vector<std::pair<int64_t, int64_t>> ranges = {
      {kT0, kT0 + kReadings * 1000}, {kT0 + 123'400, kT0 + 5'000'700}, {kT0 - kDay, kT0 + kDay}};
  auto check_all = [&](StoreReader& r) {
    for (const auto& [from, to] : ranges) {
      for (size_t points : {1, 3, 7, 20, 100, 1000, 10000}) {
        SCOPED_TRACE(std::to_string(from - kT0) + ".." + std::to_string(to - kT0) + " points " +
                     std::to_string(points));
        OUTPOST_ASSERT_OK_AND_ASSIGN(auto got, r.Buckets("dev-0", "temperature", from, to, points));
        ExpectSameBuckets(Reference(*store, "dev-0", "temperature", from, to, points), got);
        if (from == kT0 - kDay) {
          EXPECT_EQ(*std::max_element(got.max.begin(), got.max.end()), 99.9);
          EXPECT_EQ(*std::min_element(got.min.begin(), got.min.end()), -40.5);
        }
      }
    }
    OUTPOST_ASSERT_OK_AND_ASSIGN(auto motion, r.Buckets("dev-0", "motion", kT0, kT0 + kDay, 1));
    ASSERT_EQ(motion.n.size(), 1u);
    EXPECT_EQ(motion.n[0], kReadings);
    EXPECT_EQ(motion.min[0], 0);
    EXPECT_EQ(motion.max[0], 1);
    EXPECT_EQ(motion.avg[0], 0.5);
  };
  check_all(*reader);
  const StoreReader::BlockCounts with = reader->block_counts();
  EXPECT_GT(with.summarized, 0u);
  EXPECT_GT(with.decoded, 0u) << "10,000 points over 100 minutes split every block";
  // A whole-day bucket holds every block: none is decoded.
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto day,
                               reader->Buckets("dev-0", "temperature", kT0 - kDay, kT0 + kDay, 2));
  ExpectSameBuckets(Reference(*store, "dev-0", "temperature", kT0 - kDay, kT0 + kDay, 2), day);
  EXPECT_EQ(reader->block_counts().decoded, with.decoded);
  const int64_t blocks = CountRows(dir_.File("gateway.db"), "SELECT COUNT(*) FROM blocks");
  ASSERT_GT(blocks, 5);
  EXPECT_EQ(reader->block_counts().summarized - with.summarized, static_cast<uint64_t>(blocks));

  // Without summaries: everything decoded, the same buckets.
  reader.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.File("gateway.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "DELETE FROM block_summaries", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  reader = ReaderOk();
  ASSERT_NE(reader, nullptr);
  check_all(*reader);
  EXPECT_EQ(reader->block_counts().summarized, 0u);
  EXPECT_GT(reader->block_counts().decoded, 0u);
}

// Retention deletes a block's summaries with it (a trigger): none is left without its block.
TEST_F(StoreReaderTest, RetentionDeletesTheSummariesWithTheirBlocks) {
  Options o = Opts();
  o.retention_ms = kDay;
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto store, Store::Open(o));
  model::WriteSet b;
  for (int i = 0; i < 3000; ++i) {
    b.readings.push_back(Reading("dev-0", kT0 + i * 60'000, i, 20));
    if (b.readings.size() >= 300) {
      OUTPOST_ASSERT_OK(store->Write(b));
      b.clear();
      OUTPOST_ASSERT_OK(store->RunMaintenance(kT0, 1000));
    }
  }
  auto count = [&](const char* sql) { return CountRows(dir_.File("gateway.db"), sql); };
  const int64_t blocks = count("SELECT COUNT(*) FROM blocks");
  ASSERT_GT(blocks, 5);
  // One summary row for the block itself, one per metric (temperature, motion).
  EXPECT_EQ(count("SELECT COUNT(*) FROM block_summaries"), 3 * blocks);
  // 50 hours of readings; the last day is kept.
  for (int i = 0; i < 10; ++i) OUTPOST_ASSERT_OK(store->RunMaintenance(kT0 + 3000 * 60'000, 1000));
  const int64_t kept = count("SELECT COUNT(*) FROM blocks");
  EXPECT_LT(kept, blocks);
  EXPECT_EQ(count("SELECT COUNT(*) FROM block_summaries"), 3 * kept);
  EXPECT_EQ(count("SELECT COUNT(*) FROM block_summaries WHERE block_id NOT IN "
                  "(SELECT id FROM blocks)"),
            0);
}

TEST_F(StoreReaderTest, UnknownDeviceIsNotFoundUnknownMetricIsEmpty) {
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto store, Store::Open(Opts()));
  model::WriteSet b;
  b.readings.push_back(Reading("dev-0", kT0, 1, 20));
  OUTPOST_ASSERT_OK(store->Write(b));
  auto reader = ReaderOk();
  ASSERT_NE(reader, nullptr);
  auto none = reader->Buckets("nope", "temperature", kT0, kT0 + 1, 10);
  EXPECT_EQ(none.status().code(), Code::kNotFound);
  EXPECT_EQ(reader->Raw("nope", "temperature", kT0, kT0 + 1, {}, 10).status().code(),
            Code::kNotFound);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto empty, reader->Buckets("dev-0", "nope", kT0, kT0 + 1, 10));
  EXPECT_TRUE(empty.t.empty());
  EXPECT_EQ(reader->Buckets("dev-0", "temperature", kT0, kT0, 10).status().code(),
            Code::kInvalidArgument);
}

TEST_F(StoreReaderTest, RawCursorPagesThroughEqualTimestampsOnce) {
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto store, Store::Open(Opts()));
  model::WriteSet b;
  for (int i = 0; i < 7; ++i) b.readings.push_back(Reading("dev-0", kT0 + (i < 5 ? 0 : 1), i, i));
  OUTPOST_ASSERT_OK(store->Write(b));
  auto reader = ReaderOk();
  ASSERT_NE(reader, nullptr);
  std::vector<double> seen;
  RawCursor c{};
  for (int page = 0; page < 20; ++page) {
    OUTPOST_ASSERT_OK_AND_ASSIGN(auto p, reader->Raw("dev-0", "temperature", kT0, kT0 + 10, c, 2));
    seen.insert(seen.end(), p.v.begin(), p.v.end());
    if (!p.more) break;
    c = p.next;
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<double>{0, 1, 2, 3, 4, 5, 6}));
}

// Pages of the hot tail alone (no compaction), written out of time order, with runs of equal
// timestamps and rows that lack the metric: every page size gives every point once, in time
// order (the limited hot scan reads the earliest rows first and stands in for rows without a
// value).
TEST_F(StoreReaderTest, RawPagesOfAnUnorderedHotTailGiveEveryPointOnceInOrder) {
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto store, Store::Open(Opts()));
  std::mt19937 rng(7);
  model::WriteSet b;
  std::vector<std::pair<int64_t, double>> want;
  for (int i = 0; i < 2000; ++i) {
    const int64_t ts = kT0 + static_cast<int64_t>(rng() % 500) * 10;  // ~4 per timestamp
    model::ReadingRow r = Reading("dev-0", ts, i, i);
    if (i % 7 == 3) {
      r.metrics = {{"humidity", 1.0, false}};  // no temperature: skipped
    } else {
      want.emplace_back(ts, i);
    }
    b.readings.push_back(std::move(r));
  }
  OUTPOST_ASSERT_OK(store->Write(b));
  std::sort(want.begin(), want.end());
  auto reader = ReaderOk();
  ASSERT_NE(reader, nullptr);
  for (size_t limit : {1, 3, 64, 1000, 5000}) {
    SCOPED_TRACE(limit);
    std::vector<std::pair<int64_t, double>> got;
    RawCursor c{};
    for (int page = 0; page < 3000; ++page) {
      OUTPOST_ASSERT_OK_AND_ASSIGN(
          auto p, reader->Raw("dev-0", "temperature", kT0, kT0 + 10'000, c, limit));
      ASSERT_LE(p.t.size(), limit);
      for (size_t i = 0; i < p.t.size(); ++i) got.emplace_back(p.t[i], p.v[i]);
      if (!p.more) break;
      ASSERT_EQ(p.t.size(), limit) << "a short page that says more follows";
      c = p.next;
    }
    ASSERT_TRUE(std::is_sorted(got.begin(), got.end(),
                               [](const auto& x, const auto& y) { return x.first < y.first; }));
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, want);
  }
}

// The writer writes and compacts on its own thread while the reader counts one device's
// readings: every count is one the writer committed (a snapshot: a compaction pass is never
// seen half done, no reading twice or missing), never decreasing.
TEST_F(StoreReaderTest, SnapshotsStayConsistentWhileWriterWritesAndCompacts) {
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto store, Store::Open(Opts()));
  model::WriteSet first;
  first.readings.push_back(Reading("dev-0", kT0, 0, 0));
  OUTPOST_ASSERT_OK(store->Write(first));
  auto reader = ReaderOk();
  ASSERT_NE(reader, nullptr);
  constexpr int kBatches = 300, kPerBatch = 40;  // 20 per device per batch, 2 devices
  std::atomic<int64_t> committed{1};             // dev-0 readings durable
  std::atomic<int64_t> started{1};               // ... plus those of the batch being written
  std::atomic<bool> writer_ok{true};
  std::thread writer([&] {
    for (int k = 0; k < kBatches && writer_ok; ++k) {
      model::WriteSet b;
      for (int i = 0; i < kPerBatch; ++i) {
        const int64_t seq = k * kPerBatch + i + 1;
        b.readings.push_back(Reading(i % 2 ? "dev-1" : "dev-0", kT0 + seq * 10, seq, 1));
      }
      started += kPerBatch / 2;
      if (!store->Write(b).ok()) writer_ok = false;
      committed += kPerBatch / 2;
      if (!store->RunMaintenance(kT0, 100).ok()) writer_ok = false;
    }
  });
  int64_t last = 0;
  int queries = 0;
  std::string failure;
  while (queries < 20000 && failure.empty()) {
    const int64_t before = committed.load();
    auto s = reader->Buckets("dev-0", "temperature", kT0, kT0 + kDay, 1);
    const int64_t after = started.load();
    ++queries;
    if (!s.ok()) {
      failure = s.status().ToString();
      break;
    }
    const int64_t n = s->n.empty() ? 0 : s->n[0];
    if (n < before || n > after || (n - 1) % (kPerBatch / 2) != 0 || n < last) {
      failure = "count " + std::to_string(n) + " outside [" + std::to_string(before) + ", " +
                std::to_string(after) + "] or torn or below " + std::to_string(last);
    }
    last = n;
    if (before == 1 + kBatches * kPerBatch / 2) break;
  }
  writer_ok = writer_ok && failure.empty();
  writer.join();
  EXPECT_EQ(failure, "");
  EXPECT_TRUE(writer_ok);
  EXPECT_GT(queries, 1);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto end,
                               reader->Buckets("dev-0", "temperature", kT0, kT0 + kDay, 1));
  EXPECT_EQ(end.n[0], 1 + kBatches * kPerBatch / 2);
}

// The reader's hot index follows rows leaving `hot` between its queries: compacted into blocks
// (the oldest ids) and deleted by retention (any id, by age).
TEST_F(StoreReaderTest, HotIndexFollowsCompactionAndRetentionBetweenQueries) {
  Options o = Opts();
  o.retention_ms = 3600'000;
  o.hot_max_rows = 1'000'000;  // no compaction until asked for below
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto store, Store::Open(o));
  model::WriteSet b;
  // Arrival order is not time order: every other reading is 2 h old.
  for (int i = 0; i < 200; ++i) {
    const int64_t ts = i % 2 ? kT0 - 2 * 3600'000 + i : kT0 + i;
    b.readings.push_back(Reading("dev-0", ts, i, i));
  }
  OUTPOST_ASSERT_OK(store->Write(b));
  auto reader = ReaderOk();
  ASSERT_NE(reader, nullptr);
  auto count = [&]() -> int64_t {
    auto s = reader->Buckets("dev-0", "temperature", kT0 - kDay, kT0 + kDay, 1);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() && !s->n.empty() ? s->n[0] : 0;
  };
  EXPECT_EQ(count(), 200);
  OUTPOST_ASSERT_OK(store->RunMaintenance(kT0 + 1000, 1000));  // retention: the 100 old ones
  EXPECT_EQ(count(), 100);
  b.clear();
  for (int i = 200; i < 300; ++i) b.readings.push_back(Reading("dev-0", kT0 + i, i, i));
  OUTPOST_ASSERT_OK(store->Write(b));
  EXPECT_EQ(count(), 200);
  store.reset();
  o.hot_max_rows = 10;  // now compact nearly everything
  OUTPOST_ASSERT_OK_AND_ASSIGN(store, Store::Open(o));
  for (int k = 0; k < 10; ++k) OUTPOST_ASSERT_OK(store->RunMaintenance(kT0 + 1000, 1000));
  EXPECT_EQ(count(), 200);
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      auto want, store->QuerySeries("dev-0", "temperature", kT0 - kDay, kT0 + kDay, 1000));
  EXPECT_EQ(want.size(), 200u);
}

// Filters combine; pages walk the list newest first without repeats, also across equal raise
// times.
TEST_F(StoreReaderTest, AlertsFilterAndPageNewestFirst) {
  auto s = Store::Open(Opts());
  OUTPOST_ASSERT_OK(s);
  model::WriteSet b;
  // 12 alerts, raise times in pairs (equal times test the cursor's tie-break): even i cleared,
  // device d0 for i < 6 else d1.
  for (int i = 0; i < 12; ++i) {
    b.alerts.push_back({"r:" + std::to_string(i), "r", i < 6 ? "d0" : "d1", "m", "warning", "", 1,
                        2, kT0 + i / 2, i % 2 == 0 ? kT0 + 100 : 0});
  }
  OUTPOST_ASSERT_OK((*s)->Write(b));
  OUTPOST_ASSERT_OK((*s)->AckAlert({"r:3", kT0 + 1, kT0 + 200, "alice", ""}, nullptr));
  auto r = ReaderOk();
  ASSERT_TRUE(r);

  AlertFilter f;
  std::vector<std::string> seen;
  for (int page = 0; page < 10; ++page) {
    OUTPOST_ASSERT_OK_AND_ASSIGN(auto rows, r->Alerts(f, 5));
    for (const auto& a : rows) seen.push_back(a.alert_id);
    if (rows.size() < 5) break;
    f.before_raised_ms = rows.back().raised_ms;
    f.before_alert_id = rows.back().alert_id;
  }
  ASSERT_EQ(seen.size(), 12u);
  EXPECT_EQ(seen.front(), "r:11");  // newest raise; among equal times the larger id first
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 12u);

  AlertFilter active;
  active.state = AlertFilter::State::kActive;
  active.device_id = "d0";
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto rows, r->Alerts(active, 100));
  ASSERT_EQ(rows.size(), 3u);  // r:1, r:3, r:5
  AlertFilter acked;
  acked.acked = AlertFilter::Acked::kYes;
  OUTPOST_ASSERT_OK_AND_ASSIGN(rows, r->Alerts(acked, 100));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].acked_by, "alice");
  AlertFilter cleared_unacked;
  cleared_unacked.state = AlertFilter::State::kCleared;
  cleared_unacked.acked = AlertFilter::Acked::kNo;
  OUTPOST_ASSERT_OK_AND_ASSIGN(rows, r->Alerts(cleared_unacked, 100));
  EXPECT_EQ(rows.size(), 6u);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto one, r->Alert("r:3", kT0 + 1));
  EXPECT_EQ(one.acked_ms, kT0 + 200);
  EXPECT_EQ(r->Alert("r:3", kT0).status().code(), Code::kNotFound);
  EXPECT_EQ(r->Alerts(f, 0).status().code(), Code::kInvalidArgument);
}

TEST_F(StoreReaderTest, ReaderThreadRejectsWhenItsQueueIsFull) {
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto store, Store::Open(Opts()));
  ReaderThread t(ReaderOk(), 2);
  std::promise<void> started, release;
  std::shared_future<void> gate = release.get_future().share();
  ASSERT_TRUE(t.TryPost([&](StoreReader&) {
    started.set_value();
    gate.wait();
  }));
  started.get_future().wait();  // the worker is busy; the queue is empty
  std::atomic<int> ran{0};
  EXPECT_TRUE(t.TryPost([&](StoreReader&) { ++ran; }));
  EXPECT_TRUE(t.TryPost([&](StoreReader&) { ++ran; }));
  EXPECT_FALSE(t.TryPost([&](StoreReader&) { ++ran; }));
  EXPECT_EQ(t.rejected_full(), 1u);
  release.set_value();
  // Poll with a bound; then the queue has room again.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (t.completed() < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  EXPECT_EQ(t.completed(), 3u);
  EXPECT_EQ(ran.load(), 2);
  EXPECT_TRUE(t.TryPost([&](StoreReader&) { ++ran; }));
  t.Stop();
  EXPECT_FALSE(t.TryPost([&](StoreReader&) { ++ran; }));
}

}  // namespace
}  // namespace outpost::gateway::store
