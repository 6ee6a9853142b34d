// store_bench: the gateway store's write rate against SQLite's own batched-insert ceiling
// measured in the same run, and its query latency.
//
//   (a)  raw ceiling: batched INSERTs of the same readings into a bare table (one column per
//        metric, no index), WAL, same synchronous mode, same batch size
//   (a') the same with a (device_id, ts_ms) index: the layout the store avoids
//   (b)  Store::Write with the devices interleaved; also with RunMaintenance() after every
//        batch (compaction included), which is what the gateway sustains
//   (c)  QuerySeries latency, p50/p99, for 24 h of one device after all the rows
//   (d)  StoreReader::Buckets (GET /api/v1/series' read path: its own read-only connection)
//        for the same windows in 1-minute buckets (1,440 points), p50/p99, and its ratio to (c)
//
// Usage: store_bench [--readings N] [--devices D] [--batch B] [--sync full|normal|off]
//                    [--interval-ms MS] [--maintenance-rows R] [--queries Q] [--dir DIR]
//                    [--skip-index-baseline]
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "outpost/gateway/store/store.h"
#include "outpost/gateway/store/store_reader.h"
#include "outpost/sqlite/database.h"

namespace {

namespace store = outpost::gateway::store;
namespace model = outpost::gateway::model;
namespace sqlite = outpost::sqlite;
using outpost::Status;
using Clock = std::chrono::steady_clock;

struct Args {
  int64_t readings = 1'000'000;
  int devices = 1000;
  int batch = 1000;
  store::Synchronous sync = store::Synchronous::kFull;
  int64_t interval_ms = 0;  // 0: spread the data over two days
  size_t maintenance_rows = 50'000;
  int queries = 1000;
  std::string dir;
  bool index_baseline = true;
};

[[noreturn]] void Usage(const char* msg) {
  std::fprintf(stderr,
               "store_bench: %s\nusage: store_bench [--readings N] [--devices D] [--batch B] "
               "[--sync full|normal|off] [--interval-ms MS] [--maintenance-rows R] "
               "[--queries Q] [--dir DIR] [--skip-index-baseline]\n",
               msg);
  std::exit(2);
}

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) Usage(("missing value for " + k).c_str());
      return argv[++i];
    };
    if (k == "--readings") {
      a.readings = std::stoll(val());
    } else if (k == "--devices") {
      a.devices = std::stoi(val());
    } else if (k == "--batch") {
      a.batch = std::stoi(val());
    } else if (k == "--interval-ms") {
      a.interval_ms = std::stoll(val());
    } else if (k == "--maintenance-rows") {
      a.maintenance_rows = std::stoull(val());
    } else if (k == "--queries") {
      a.queries = std::stoi(val());
    } else if (k == "--dir") {
      a.dir = val();
    } else if (k == "--skip-index-baseline") {
      a.index_baseline = false;
    } else if (k == "--sync") {
      const std::string v = val();
      if (v == "full") {
        a.sync = store::Synchronous::kFull;
      } else if (v == "normal") {
        a.sync = store::Synchronous::kNormal;
      } else if (v == "off") {
        a.sync = store::Synchronous::kOff;
      } else {
        Usage("--sync must be full, normal or off");
      }
    } else if (k == "--help" || k == "-h") {
      Usage("help");
    } else {
      Usage(("unknown option " + k).c_str());
    }
  }
  if (a.readings <= 0 || a.devices <= 0 || a.batch <= 0) Usage("counts must be > 0");
  if (a.interval_ms <= 0) {
    const int64_t per_device = std::max<int64_t>(1, a.readings / a.devices);
    a.interval_ms = std::max<int64_t>(1, 2 * 86'400'000 / per_device);
  }
  return a;
}

const char* SyncName(store::Synchronous s) {
  switch (s) {
    case store::Synchronous::kFull:
      return "FULL";
    case store::Synchronous::kNormal:
      return "NORMAL";
    case store::Synchronous::kOff:
      return "OFF";
  }
  return "?";
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

constexpr int64_t kT0 = 1'700'000'000'000;

// Deterministic readings: device d's i-th reading at kT0 + i * interval + d's phase, arriving
// round-robin over the devices (the interleaving that defeats a per-device index).
class Generator {
 public:
  explicit Generator(const Args& a) : a_(a), rng_(42) {
    for (int d = 0; d < a.devices; ++d) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "esp32-%05d", d);
      ids_.emplace_back(buf);
    }
  }
  const std::string& id(int d) const { return ids_[static_cast<size_t>(d)]; }
  int64_t Ts(int64_t n) const {
    const int64_t round = n / a_.devices;
    const int64_t d = n % a_.devices;
    return kT0 + round * a_.interval_ms + d * a_.interval_ms / a_.devices;
  }
  // Fills `b` with readings [first, first + count), reusing its storage.
  void Fill(model::WriteSet* b, int64_t first, int64_t count) {
    b->readings.resize(static_cast<size_t>(count));
    std::uniform_real_distribution<double> noise(-0.5, 0.5);
    for (int64_t k = 0; k < count; ++k) {
      const int64_t n = first + k;
      const int d = static_cast<int>(n % a_.devices);
      model::ReadingRow& r = b->readings[static_cast<size_t>(k)];
      r.device_id = ids_[static_cast<size_t>(d)];
      r.has_seq = true;
      r.boot = 1;
      r.seq = static_cast<uint64_t>(n / a_.devices);
      r.has_device_ts = true;
      r.device_ts_raw = static_cast<int64_t>(r.seq) * a_.interval_ms;
      r.ts_ms = Ts(n);
      r.ts_from_device = false;
      r.received_ms = r.ts_ms + 2;
      r.metrics.resize(5);
      const double t = static_cast<double>(r.seq);
      r.metrics[0] = {"temperature", 21 + 3 * std::sin(t / 500 + d) + noise(rng_), false};
      r.metrics[1] = {"humidity", 55 + 10 * std::cos(t / 700 + d) + noise(rng_), false};
      r.metrics[2] = {"motion", static_cast<double>((n / 7) % 2), true};
      r.metrics[3] = {"battery", 4.2 - t * 1e-5, false};
      r.metrics[4] = {"rssi", static_cast<double>(-60 - static_cast<int>(n % 20)), false};
    }
  }

 private:
  const Args& a_;
  std::mt19937_64 rng_;
  std::vector<std::string> ids_;
};

void Check(const Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "store_bench: %s\n", s.ToString().c_str());
    std::exit(1);
  }
}

// (a): the same rows into a bare table; returns rows/s.
double RawInsert(const Args& a, const std::string& path, bool with_index) {
  sqlite::OpenOptions o;
  o.pragmas = {"journal_mode=WAL", std::string("synchronous=") + SyncName(a.sync),
               "cache_size=-32768", "wal_autocheckpoint=4096"};
  auto db = sqlite::Database::Open(path, o);
  Check(db.status());
  Check(db->Exec(
      "CREATE TABLE raw(device_id TEXT, ts_ms INTEGER, received_ms INTEGER, boot INTEGER, seq "
      "INTEGER, device_ts INTEGER, temperature REAL, humidity REAL, motion INTEGER, battery "
      "REAL, rssi REAL)"));
  if (with_index) Check(db->Exec("CREATE INDEX raw_series ON raw(device_id, ts_ms)"));
  sqlite::Statement ins;
  Check(db->Prepare(&ins, "INSERT INTO raw VALUES (?,?,?,?,?,?,?,?,?,?,?)"));
  Generator gen(a);
  model::WriteSet b;
  Clock::duration spent{};
  for (int64_t first = 0; first < a.readings; first += a.batch) {
    const int64_t count = std::min<int64_t>(a.batch, a.readings - first);
    gen.Fill(&b, first, count);
    const auto t0 = Clock::now();
    auto tx = sqlite::Transaction::Begin(db->get());
    Check(tx.status());
    for (const model::ReadingRow& r : b.readings) {
      ins.Reset()
          .Bind(1, r.device_id)
          .Bind(2, r.ts_ms)
          .Bind(3, r.received_ms)
          .Bind(4, static_cast<int64_t>(r.boot))
          .Bind(5, static_cast<int64_t>(r.seq))
          .Bind(6, r.device_ts_raw);
      for (int m = 0; m < 5; ++m) ins.Bind(7 + m, r.metrics[m].value);
      Check(ins.Run());
    }
    Check(tx->Commit());
    spent += Clock::now() - t0;
  }
  return static_cast<double>(a.readings) / Seconds(spent);
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

long PeakRssKb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = Parse(argc, argv);
  std::string dir = a.dir;
  bool remove_dir = false;
  if (dir.empty()) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "store_bench_XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    dir = tmpl;
    remove_dir = true;
  }
  std::printf("store_bench: %" PRId64
              " readings, %d devices interleaved, 5 metrics, batch %d, synchronous=%s, "
              "interval %" PRId64 " ms/device, dir %s\n",
              a.readings, a.devices, a.batch, SyncName(a.sync), a.interval_ms, dir.c_str());

  const double raw = RawInsert(a, dir + "/raw.db", false);
  std::printf("(a)  raw ceiling, bare table, no index        %10.0f rows/s\n", raw);
  double indexed = 0;
  if (a.index_baseline) {
    indexed = RawInsert(a, dir + "/raw_indexed.db", true);
    std::printf("(a') bare table + (device_id, ts) index       %10.0f rows/s  (%.2f x a)\n",
                indexed, indexed / raw);
  }

  store::Options o;
  o.path = dir + "/gateway.db";
  o.synchronous = a.sync;
  auto opened = store::Store::Open(o);
  if (!opened.ok()) {
    std::fprintf(stderr, "store_bench: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<store::Store> s = std::move(opened).value();
  Generator gen(a);
  model::WriteSet b;
  Clock::duration write_time{}, maint_time{}, worst_write{}, worst_maint{};
  for (int64_t first = 0; first < a.readings; first += a.batch) {
    const int64_t count = std::min<int64_t>(a.batch, a.readings - first);
    gen.Fill(&b, first, count);
    const auto t0 = Clock::now();
    outpost::Status st = s->Write(b);
    const auto t1 = Clock::now();
    if (!st.ok()) {
      std::fprintf(stderr, "store_bench: write: %s\n", st.ToString().c_str());
      return 1;
    }
    st = s->RunMaintenance(gen.Ts(first + count), a.maintenance_rows);
    const auto t2 = Clock::now();
    if (!st.ok()) {
      std::fprintf(stderr, "store_bench: maintenance: %s\n", st.ToString().c_str());
      return 1;
    }
    write_time += t1 - t0;
    maint_time += t2 - t1;
    worst_write = std::max(worst_write, t1 - t0);
    worst_maint = std::max(worst_maint, t2 - t1);
  }
  const double write_rate = static_cast<double>(a.readings) / Seconds(write_time);
  const double sustained = static_cast<double>(a.readings) / Seconds(write_time + maint_time);
  std::printf("(b)  Store::Write only                        %10.0f rows/s  (%.2f x a)\n",
              write_rate, write_rate / raw);
  std::printf("(b') Store::Write + RunMaintenance(%zu)    %10.0f rows/s  (%.2f x a)\n",
              a.maintenance_rows, sustained, sustained / raw);
  std::printf("     worst Write() %.1f ms, worst RunMaintenance() %.1f ms\n",
              Seconds(worst_write) * 1e3, Seconds(worst_maint) * 1e3);
  const store::Stats stats = s->stats();
  std::printf("     stored %" PRId64 " readings, %.1f MB used (%.1f bytes/reading)\n",
              stats.readings, static_cast<double>(stats.db_bytes) / 1e6,
              static_cast<double>(stats.db_bytes) / static_cast<double>(stats.readings));

  // (c): 24 h of one device, random device and window inside the data.
  const int64_t span = gen.Ts(a.readings - 1) - kT0;
  const int64_t day = 86'400'000;
  std::mt19937_64 rng(7);
  std::vector<double> lat_ms;
  size_t points = 0;
  for (int q = 0; q < a.queries; ++q) {
    const int d = static_cast<int>(rng() % static_cast<uint64_t>(a.devices));
    const int64_t from =
        kT0 + (span > day ? static_cast<int64_t>(rng() % static_cast<uint64_t>(span - day)) : 0);
    const auto t0 = Clock::now();
    auto pts = s->QuerySeries(gen.id(d), "temperature", from, from + day, 100'000);
    lat_ms.push_back(Seconds(Clock::now() - t0) * 1e3);
    if (!pts.ok()) {
      std::fprintf(stderr, "store_bench: query: %s\n", pts.status().ToString().c_str());
      return 1;
    }
    points += pts->size();
  }
  std::printf(
      "(c)  QuerySeries 24 h of one device: p50 %.2f ms, p99 %.2f ms, max %.2f ms "
      "(%zu points/query avg, %d queries)\n",
      Percentile(lat_ms, 0.5), Percentile(lat_ms, 0.99), Percentile(lat_ms, 1.0),
      a.queries > 0 ? points / static_cast<size_t>(a.queries) : 0, a.queries);
  // (d): the same windows through the API's read path, 1-minute buckets.
  auto reader = store::StoreReader::Open(store::ReaderOptions{o.path});
  if (!reader.ok()) {
    std::fprintf(stderr, "store_bench: reader: %s\n", reader.status().ToString().c_str());
    return 1;
  }
  std::mt19937_64 rng_d(7);  // the same devices and windows as (c)
  std::vector<double> bucket_ms;
  size_t buckets = 0;
  int64_t samples = 0;
  for (int q = 0; q < a.queries; ++q) {
    const int d = static_cast<int>(rng_d() % static_cast<uint64_t>(a.devices));
    const int64_t from =
        kT0 + (span > day ? static_cast<int64_t>(rng_d() % static_cast<uint64_t>(span - day)) : 0);
    const auto t0 = Clock::now();
    auto got = (*reader)->Buckets(gen.id(d), "temperature", from, from + day, 1440);
    bucket_ms.push_back(Seconds(Clock::now() - t0) * 1e3);
    if (!got.ok()) {
      std::fprintf(stderr, "store_bench: buckets: %s\n", got.status().ToString().c_str());
      return 1;
    }
    buckets += got->t.size();
    for (int64_t n : got->n) samples += n;
  }
  std::printf(
      "(d)  StoreReader::Buckets 24 h, 1-min buckets: p50 %.2f ms, p99 %.2f ms, max %.2f ms "
      "(%zu buckets/query avg, %" PRId64 " samples/query avg; p99 %.2f x c)\n",
      Percentile(bucket_ms, 0.5), Percentile(bucket_ms, 0.99), Percentile(bucket_ms, 1.0),
      a.queries > 0 ? buckets / static_cast<size_t>(a.queries) : 0,
      a.queries > 0 ? samples / a.queries : 0,
      Percentile(bucket_ms, 0.99) / std::max(Percentile(lat_ms, 0.99), 1e-9));
  reader->reset();
  std::printf("     ratio (b)/(a) = %.2f, (b')/(a) = %.2f; peak RSS %.1f MB\n", write_rate / raw,
              sustained / raw, static_cast<double>(PeakRssKb()) / 1024);
  s.reset();
  if (remove_dir) std::filesystem::remove_all(dir);
  return 0;
}
