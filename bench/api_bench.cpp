// api_bench: the gateway's REST API and live stream on large stores, through the real
// outpost-gateway over loopback HTTP, each against a limit measured in the same run
// (docs/benchmarks.md, "API").
//
//   series   GET /api/v1/series, 24 h of one device in 1-minute buckets (1,440), on a store of
//            D devices x 24 h at one reading per interval (default 100 x 86,400 = 8.64M),
//            written directly with the store library (Store::Write + RunMaintenance, as the
//            gateway's writer does). Limits: the same number of GET /healthz on the same
//            keep-alive connection (the HTTP floor) and StoreReader::Buckets called directly.
//   year     one series at 1 Hz for --year-days (default 365: 31.5M samples), points = a
//            chart's width; p99 and the answer's size, as served and gzip'd (zlib level 1, the
//            gateway's level). Limit: StoreReader::Buckets directly.
//   export   a CSV export (raw=1&format=csv, no limit) of one series of --export-rows at 1 Hz,
//            read whole by one client: rows/s. Limit: StoreReader::Raw directly, in the
//            export's 4,096-row pages.
//   streams  --streams SSE clients on /api/v1/stream while outpost-bench-pub offers readings:
//            REST p99 of /api/v1/devices and /api/v1/series with the streams open vs none,
//            alternating, and the QoS 1 ingest rate (acknowledged = committed) with vs without.
//
// Every run is bounded by counts and a deadline; everything listens on 127.0.0.1.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_stats.h"
#include "outpost/gateway/store/store.h"
#include "outpost/gateway/store/store_reader.h"
#include "outpost/testing/child_process.h"
#include "outpost/testing/mosquitto_process.h"
#include "outpost/testing/raw_http.h"
#include "outpost/testing/temp_dir.h"

namespace {

namespace store = outpost::gateway::store;
namespace model = outpost::gateway::model;
using outpost::Status;
using outpost::bench::Median;
using outpost::bench::Percentile;
using outpost::testing::ChildProcess;
using outpost::testing::ChildProcessOptions;
using outpost::testing::MosquittoOptions;
using outpost::testing::MosquittoProcess;
using outpost::testing::RawHttpConnection;
using outpost::testing::RawHttpResponse;
using outpost::testing::TempDir;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct Options {
  std::vector<std::string> only;
  int devices = 100;
  double days = 1;
  int64_t interval_ms = 1000;
  int requests = 2000;
  double year_days = 365;
  int year_decimals = -1;
  std::vector<int> year_points = {1000, 2000};
  int year_requests = 100;
  int streams = 256;
  double stream_rate = 200;
  double stream_seconds = 10;
  int stream_requests = 2000;
  int ingest_count = 100'000;
  int64_t export_rows = 1'000'000;
  int repeat = 3;
  double timeout_s = 300;
  bool keep = false;
  std::string gateway = OUTPOST_GATEWAY_BIN;
  std::string bench_pub = OUTPOST_BENCH_PUB_BIN;
  std::string dir;  // where the stores are made (default $TMPDIR)
};

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "api_bench: %s\n", msg.c_str());
  std::exit(1);
}

void Check(const Status& s, const char* what) {
  if (!s.ok()) Die(std::string(what) + ": " + s.ToString());
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double PeakRssMb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

struct ProcMem {
  double hwm_mb = 0, rss_mb = 0;
};

ProcMem ReadProcMem(pid_t pid) {
  ProcMem m;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (status >> key) {
    if (key == "VmHWM:" || key == "VmRSS:") {
      double kb = 0;
      status >> kb;
      (key == "VmHWM:" ? m.hwm_mb : m.rss_mb) = kb / 1024.0;
    }
    status.ignore(1 << 20, '\n');
  }
  return m;
}

std::string DeviceId(int d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "esp32-%05d", d);
  return buf;
}

// --- making a store -------------------------------------------------------------------------

struct StoreSpec {
  std::string path;
  int devices = 100;
  int64_t per_device = 86'400;  // readings of each device
  int64_t interval_ms = 1000;
  int64_t t0_ms = 0;
  bool one_metric = false;  // only "temperature" (the year store); else the seed's five
  int decimals = -1;        // >= 0: temperatures rounded to this many decimals (a DHT22: 1)
};

struct StoreMade {
  double seconds = 0;
  int64_t readings = 0;
  int64_t file_bytes = 0;
};

// Device d's i-th reading is at t0 + i * interval + d * interval / devices; the devices arrive
// interleaved, as in the field. Batches of 10,000 readings, RunMaintenance after each (the
// gateway's writer compacts after its commits), synchronous=NORMAL (durability is not measured
// here; the layout on disk is the gateway's own).
StoreMade MakeStore(const StoreSpec& s) {
  store::Options so;
  so.path = s.path;
  so.synchronous = store::Synchronous::kNormal;
  auto opened = store::Store::Open(so);
  Check(opened.status(), "open the store");
  std::unique_ptr<store::Store> st = std::move(opened).value();
  const auto t_start = Clock::now();
  const int64_t total = s.per_device * s.devices;
  constexpr int64_t kBatch = 10'000;
  model::WriteSet b;
  std::vector<std::string> ids;
  for (int d = 0; d < s.devices; ++d) ids.push_back(DeviceId(d));
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> noise(-0.5, 0.5);
  for (int64_t first = 0; first < total; first += kBatch) {
    const int64_t count = std::min(kBatch, total - first);
    b.clear();
    b.readings.resize(static_cast<size_t>(count));
    for (int64_t k = 0; k < count; ++k) {
      const int64_t n = first + k;
      const int d = static_cast<int>(n % s.devices);
      const int64_t i = n / s.devices;
      model::ReadingRow& r = b.readings[static_cast<size_t>(k)];
      r.device_id = ids[static_cast<size_t>(d)];
      r.has_seq = true;
      r.boot = 1;
      r.seq = static_cast<uint64_t>(i);
      r.has_device_ts = true;
      r.device_ts_raw = i * s.interval_ms;
      r.ts_ms = s.t0_ms + i * s.interval_ms + d * s.interval_ms / s.devices;
      r.ts_from_device = true;
      r.received_ms = r.ts_ms + 2;
      const double t = static_cast<double>(i);
      double temp = 21 + 3 * std::sin(t / 500 + d) + noise(rng);
      if (s.decimals >= 0) {
        const double scale = std::pow(10.0, s.decimals);
        temp = std::round(temp * scale) / scale;
      }
      if (s.one_metric) {
        r.metrics.resize(1);
        r.metrics[0] = {"temperature", temp, false};
      } else {
        r.metrics.resize(5);
        r.metrics[0] = {"temperature", temp, false};
        r.metrics[1] = {"humidity", 55 + 10 * std::cos(t / 700 + d) + noise(rng), false};
        r.metrics[2] = {"motion", static_cast<double>((n / 7) % 2), true};
        r.metrics[3] = {"battery", 4.2 - t * 1e-6, false};
        r.metrics[4] = {"rssi", static_cast<double>(-60 - static_cast<int>(n % 20)), false};
      }
    }
    if (first + count >= total) {
      // The registry: every device, last seen at its last reading.
      for (int d = 0; d < s.devices; ++d) {
        model::DeviceRow row{};
        row.device_id = ids[static_cast<size_t>(d)];
        row.first_seen_ms = s.t0_ms;
        row.last_seen_ms = s.t0_ms + (s.per_device - 1) * s.interval_ms;
        row.status = "offline";
        row.status_changed_ms = row.last_seen_ms;
        row.last_reading_json = "{}";
        row.boot = 1;
        row.last_seq = static_cast<uint64_t>(s.per_device - 1);
        row.readings = static_cast<uint64_t>(s.per_device);
        row.native = true;
        b.devices.push_back(row);
      }
    }
    Check(st->Write(b), "Store::Write");
    Check(st->RunMaintenance(WallMs(), 50'000), "RunMaintenance");
  }
  // Compact what is left beyond the hot tail's resting size, as the writer would when idle.
  for (int i = 0; i < 200; ++i) Check(st->RunMaintenance(WallMs(), 50'000), "RunMaintenance");
  StoreMade m;
  m.readings = st->stats().readings;
  st.reset();
  m.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  std::error_code ec;
  m.file_bytes = static_cast<int64_t>(std::filesystem::file_size(s.path, ec));
  auto wal = std::filesystem::file_size(s.path + "-wal", ec);
  if (!ec) m.file_bytes += static_cast<int64_t>(wal);
  return m;
}

// --- measuring -------------------------------------------------------------------------------

// Bytes of `body` gzip'd at zlib level 1 (what the gateway's web::Gzip uses for its JSON).
size_t GzipBytes(const std::string& body) {
  z_stream z{};
  if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return 0;
  std::string out(deflateBound(&z, body.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  z.avail_in = static_cast<uInt>(body.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  const size_t n = z.total_out;
  deflateEnd(&z);
  return rc == Z_STREAM_END ? n : 0;
}

struct Latencies {
  std::vector<double> ms;
  size_t bytes = 0;       // body bytes of the last answer, as received
  size_t wire_bytes = 0;  // the last answer, headers included
  std::string body;       // the last answer's body
  std::string encoding;   // its Content-Encoding
  std::string Row() const {
    char buf[160];
    std::snprintf(buf, sizeof buf, "p50 %.3f  p99 %.3f  max %.3f ms  (%zu)", Median(ms),
                  Percentile(ms, 0.99), ms.empty() ? 0.0 : *std::max_element(ms.begin(), ms.end()),
                  ms.size());
    return buf;
  }
  double p50() const { return Median(ms); }
  double p99() const { return Percentile(ms, 0.99); }
};

// One keep-alive client connection to the gateway; every request carries the bearer token.
class Client {
 public:
  Client(uint16_t port, std::string token) : port_(port), token_(std::move(token)) {}
  // Sends GET `target` and returns the answer; dies on a transport error or a status != 200.
  RawHttpResponse Get(const std::string& target, bool gzip = false) {
    if (!conn_) {
      auto c = RawHttpConnection::Connect(port_);
      Check(c.status(), "connect to the gateway");
      conn_ = std::make_unique<RawHttpConnection>(std::move(c).value());
    }
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                      token_ + "\r\n" + (gzip ? "Accept-Encoding: gzip\r\n" : "") + "\r\n";
    auto r = conn_->Exchange(req, std::chrono::seconds(30));
    if (!r.ok() && r.status().code() == outpost::Code::kUnavailable) {
      // The server closed the idle keep-alive connection (a long direct run in between): once
      // more on a new one.
      auto c = RawHttpConnection::Connect(port_);
      Check(c.status(), "reconnect to the gateway");
      conn_ = std::make_unique<RawHttpConnection>(std::move(c).value());
      r = conn_->Exchange(req, std::chrono::seconds(30));
    }
    Check(r.status(), ("GET " + target).c_str());
    if (r->status != 200) Die("GET " + target + ": " + std::to_string(r->status) + " " + r->body);
    if (r->Header("connection") == "close") conn_.reset();
    return std::move(r).value();
  }
  // `count` requests of target(i), timed one by one (connect excluded); stops at `deadline`.
  Latencies Time(int count, const std::function<std::string(int)>& target,
                 Clock::time_point deadline, bool gzip = false) {
    Latencies l;
    Get(target(0), gzip);  // the connection is open before the clock starts
    for (int i = 0; i < count && Clock::now() < deadline; ++i) {
      const auto t = Clock::now();
      RawHttpResponse r = Get(target(i), gzip);
      l.ms.push_back(Ms(Clock::now() - t));
      if (i + 1 == count) {
        l.bytes = r.body.size();
        l.wire_bytes = r.wire_bytes;
        l.encoding = r.Header("content-encoding");
        l.body = std::move(r.body);
      }
    }
    return l;
  }

 private:
  uint16_t port_;
  std::string token_;
  std::unique_ptr<RawHttpConnection> conn_;
};

// The real gateway on `db` (made before: the store must be closed), with a broker of its own.
class Gateway {
 public:
  Gateway(const Options& o, const TempDir& dir, const std::string& db) {
    MosquittoOptions mo;
    mo.extra_config = {"max_inflight_messages 10000", "max_queued_messages 1000000"};
    auto b = MosquittoProcess::Start(mo);
    Check(b.status(), "start mosquitto");
    broker_ = std::move(b).value();
    auto port = outpost::testing::PickFreePort();
    Check(port.status(), "pick a port");
    http_port_ = *port;
    const std::string yaml = dir.File("gateway.yaml");
    {
      std::ofstream y(yaml);
      y << "gateway:\n  id: bench_gw\n  status_interval_s: 3600\n"
        << "mqtt:\n  host: 127.0.0.1\n  port: " << broker_->port() << "\n  qos: 1\n"
        << "storage:\n  path: " << db << "\n  synchronous: full\n  retention_days: 0\n"
        << "  max_bytes: 0\n"
        << "ingest:\n  device_rate_per_s: 0\n"
        << "registry:\n  max_devices: 100000\n"
        << "http:\n  listen: 127.0.0.1:" << http_port_ << "\n";
      if (!y) Die("cannot write " + yaml);
    }
    // A viewer token, as a dashboard script would use.
    const std::string cmd =
        "'" + o.gateway + "' --config '" + yaml + "' token create --role viewer --name bench 2>&1";
    std::FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) Die("popen " + cmd);
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int rc = ::pclose(p);
    std::smatch m;
    static const std::regex kToken("opt_[0-9a-f]{64}");
    if (rc != 0 || !std::regex_search(out, m, kToken)) Die("token create failed: " + out);
    token_ = m.str();
    ChildProcessOptions co;
    co.argv = {o.gateway, "--config", yaml};
    co.log_path = dir.File("gateway.log");
    const auto t = Clock::now();
    auto g = ChildProcess::Start(co);
    Check(g.status(), "start the gateway");
    proc_ = std::move(g).value();
    Status up = outpost::testing::WaitForPort(http_port_, std::chrono::seconds(120));
    if (!up.ok()) Die("the gateway's API did not come up: " + proc_->log());
    // Up = /healthz answers (the store is open).
    Client c(http_port_, token_);
    c.Get("/healthz");
    start_ms_ = Ms(Clock::now() - t);
  }
  ~Gateway() {
    if (proc_ && proc_->Running()) {
      Status s = proc_->Stop(SIGTERM, std::chrono::seconds(20));
      if (!s.ok()) std::fprintf(stderr, "  gateway stop: %s\n", s.ToString().c_str());
    }
  }
  uint16_t http_port() const { return http_port_; }
  uint16_t mqtt_port() const { return broker_->port(); }
  const std::string& token() const { return token_; }
  pid_t pid() const { return proc_->pid(); }
  double start_ms() const { return start_ms_; }
  bool running() { return proc_->Running(); }
  std::string log() const { return proc_->log(); }

 private:
  std::unique_ptr<MosquittoProcess> broker_;
  std::unique_ptr<ChildProcess> proc_;
  uint16_t http_port_ = 0;
  std::string token_;
  double start_ms_ = 0;
};

// Direct StoreReader::Buckets on the same file: the read path without HTTP.
Latencies DirectBuckets(const std::string& db, int count,
                        const std::function<std::string(int)>& device, int64_t from, int64_t to,
                        size_t points, Clock::time_point deadline) {
  store::ReaderOptions ro;
  ro.path = db;
  auto r = store::StoreReader::Open(ro);
  Check(r.status(), "open a StoreReader");
  Latencies l;
  Check((*r)->Buckets(device(0), "temperature", from, to, points).status(), "Buckets");  // warm
  for (int i = 0; i < count && Clock::now() < deadline; ++i) {
    const auto t = Clock::now();
    auto b = (*r)->Buckets(device(i), "temperature", from, to, points);
    l.ms.push_back(Ms(Clock::now() - t));
    Check(b.status(), "Buckets");
    if (b->t.empty()) Die("Buckets found no data for " + device(i));
  }
  // The blocks answered from their summaries and the blocks decoded, per query (warm-up included).
  const store::StoreReader::BlockCounts c = (*r)->block_counts();
  const double queries = static_cast<double>(l.ms.size() + 1);
  std::printf("  blocks per query: %.0f from summaries, %.0f decoded\n",
              static_cast<double>(c.summarized) / queries,
              static_cast<double>(c.decoded) / queries);
  return l;
}

std::string SeriesTarget(const std::string& device, int64_t from, int64_t to, size_t points) {
  return "/api/v1/series?device=" + device + "&metric=temperature&from=" + std::to_string(from) +
         "&to=" + std::to_string(to) + "&points=" + std::to_string(points);
}

std::string Load() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::string StoreDir(const Options& o, const TempDir& tmp) {
  return o.dir.empty() ? tmp.path() : o.dir;
}

// --- (1) series on an 8.6M-reading store ----------------------------------------------------

void RunSeries(const Options& o) {
  std::printf("\n== series: 24 h of one device in 1-minute buckets ==\n");
  TempDir dir("outpost-api-bench");
  if (o.keep) dir.Keep();
  StoreSpec s;
  s.path = StoreDir(o, dir) + "/series.db";
  s.devices = o.devices;
  s.interval_ms = o.interval_ms;
  s.per_device = static_cast<int64_t>(o.days * 86'400'000 / static_cast<double>(o.interval_ms));
  s.t0_ms = (WallMs() - static_cast<int64_t>(o.days * 86'400'000)) / 60'000 * 60'000 - 3'600'000;
  std::printf("making the store: %d devices x %" PRId64
              " readings (5 metrics each), one per %" PRId64 " ms ...\n",
              s.devices, s.per_device, s.interval_ms);
  std::fflush(stdout);
  StoreMade made = MakeStore(s);
  std::printf("store made: %" PRId64
              " readings in %.1f s (%.0f readings/s), %.1f MB on disk "
              "(%.1f bytes/reading), bench peak RSS %.0f MB\n",
              made.readings, made.seconds, static_cast<double>(made.readings) / made.seconds,
              static_cast<double>(made.file_bytes) / 1e6,
              static_cast<double>(made.file_bytes) / static_cast<double>(made.readings),
              PeakRssMb());
  const int64_t from = s.t0_ms, to = s.t0_ms + 86'400'000;
  const size_t points = 1440;
  auto device = [&](int i) { return DeviceId(static_cast<int>((i * 7919LL) % o.devices)); };
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(o.timeout_s));
  std::vector<double> d_p99, h_p99, s_p99, d_p50, h_p50, s_p50;
  size_t bytes = 0, gz = 0;
  ProcMem mem;
  double start_ms = 0;
  {
    Gateway gw(o, dir, s.path);
    start_ms = gw.start_ms();
    std::printf("gateway up in %.0f ms (load %s)\n", start_ms, Load().c_str());
    Client c(gw.http_port(), gw.token());
    for (int rep = 0; rep < o.repeat; ++rep) {
      Latencies h = c.Time(
          o.requests, [](int) { return std::string("/healthz"); }, deadline);
      Latencies d = DirectBuckets(s.path, o.requests, device, from, to, points, deadline);
      Latencies q = c.Time(
          o.requests, [&](int i) { return SeriesTarget(device(i), from, to, points); }, deadline);
      if (q.body.find("\"bucket_ms\":60000") == std::string::npos) Die("not 1-minute buckets");
      bytes = q.bytes;
      gz = GzipBytes(q.body);
      std::printf("run %d: /healthz      %s\n       Buckets direct %s\n       /series        %s\n",
                  rep + 1, h.Row().c_str(), d.Row().c_str(), q.Row().c_str());
      h_p99.push_back(h.p99());
      d_p99.push_back(d.p99());
      s_p99.push_back(q.p99());
      h_p50.push_back(h.p50());
      d_p50.push_back(d.p50());
      s_p50.push_back(q.p50());
    }
    mem = ReadProcMem(gw.pid());
  }
  std::printf("\nseries (medians of %d runs of %d requests; load %s):\n", o.repeat, o.requests,
              Load().c_str());
  std::printf("  (h) /healthz over HTTP        p50 %.3f  p99 %.3f ms\n", Median(h_p50),
              Median(h_p99));
  std::printf("  (d) StoreReader::Buckets      p50 %.3f  p99 %.3f ms\n", Median(d_p50),
              Median(d_p99));
  std::printf("  (s) /api/v1/series            p50 %.3f  p99 %.3f ms   target p99 <= 15 ms: %s\n",
              Median(s_p50), Median(s_p99), Median(s_p99) <= 15 ? "met" : "MISSED");
  std::printf("  p99 ratios: series/Buckets %.2f, series - healthz %.3f ms over Buckets %.3f ms\n",
              Median(s_p99) / Median(d_p99), Median(s_p99) - Median(h_p99), Median(d_p99));
  std::printf(
      "  answer %zu bytes (%zu gzip'd); gateway VmHWM %.1f MB, VmRSS %.1f MB, start %.0f ms\n",
      bytes, gz, mem.hwm_mb, mem.rss_mb, start_ms);
}

// --- (2) one year of 1 Hz data, one series --------------------------------------------------

// One device's "temperature" alone at 1 Hz, `readings` of it ending an hour before now.
StoreSpec OneSeriesAt1Hz(std::string path, int64_t readings) {
  StoreSpec s;
  s.path = std::move(path);
  s.devices = 1;
  s.interval_ms = 1000;
  s.one_metric = true;
  s.per_device = readings;
  s.t0_ms = (WallMs() - readings * 1000) / 1000 * 1000 - 3'600'000;
  return s;
}

void RunYear(const Options& o) {
  std::printf("\n== year: one series at 1 Hz for %.0f days ==\n", o.year_days);
  TempDir dir("outpost-api-bench");
  if (o.keep) dir.Keep();
  StoreSpec s =
      OneSeriesAt1Hz(StoreDir(o, dir) + "/year.db", static_cast<int64_t>(o.year_days * 86'400));
  s.decimals = o.year_decimals;
  std::printf(
      "making the store: %" PRId64 " readings of one metric (%s) ...\n", s.per_device,
      s.decimals < 0 ? "full precision" : (std::to_string(s.decimals) + " decimals").c_str());
  std::fflush(stdout);
  StoreMade made = MakeStore(s);
  std::printf("store made: %" PRId64
              " readings in %.1f s (%.0f readings/s), %.1f MB on disk "
              "(%.1f bytes/reading)\n",
              made.readings, made.seconds, static_cast<double>(made.readings) / made.seconds,
              static_cast<double>(made.file_bytes) / 1e6,
              static_cast<double>(made.file_bytes) / static_cast<double>(made.readings));
  const int64_t from = s.t0_ms, to = s.t0_ms + s.per_device * 1000;
  auto device = [](int) { return DeviceId(0); };
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(o.timeout_s));
  Gateway gw(o, dir, s.path);
  std::printf("gateway up in %.0f ms (load %s)\n", gw.start_ms(), Load().c_str());
  Client c(gw.http_port(), gw.token());
  for (int points : o.year_points) {
    std::vector<double> d_p99, s_p99, d_p50, s_p50;
    size_t bytes = 0, wire = 0, gz = 0;
    std::string enc;
    for (int rep = 0; rep < o.repeat; ++rep) {
      Latencies d = DirectBuckets(s.path, o.year_requests, device, from, to,
                                  static_cast<size_t>(points), deadline);
      Latencies q = c.Time(
          o.year_requests,
          [&](int) { return SeriesTarget(DeviceId(0), from, to, static_cast<size_t>(points)); },
          deadline, /*gzip=*/true);
      bytes = q.bytes;
      wire = q.wire_bytes;
      enc = q.encoding;
      gz = enc == "gzip" ? q.bytes : GzipBytes(q.body);
      std::printf("points=%d run %d: Buckets direct %s\n                 /series        %s\n",
                  points, rep + 1, d.Row().c_str(), q.Row().c_str());
      d_p99.push_back(d.p99());
      s_p99.push_back(q.p99());
      d_p50.push_back(d.p50());
      s_p50.push_back(q.p50());
    }
    std::printf("\nyear, points=%d (medians of %d runs of %d requests):\n", points, o.repeat,
                o.year_requests);
    std::printf("  (d) StoreReader::Buckets  p50 %.1f  p99 %.1f ms\n", Median(d_p50),
                Median(d_p99));
    std::printf(
        "  (s) /api/v1/series        p50 %.1f  p99 %.1f ms  (%.2fx Buckets)  target p99 <= "
        "100 ms: %s\n",
        Median(s_p50), Median(s_p99), Median(s_p99) / Median(d_p99),
        Median(s_p99) <= 100 ? "met" : "MISSED");
    std::printf(
        "  answer with Accept-Encoding: gzip: %zu body bytes (%zu on the wire), "
        "Content-Encoding \"%s\"; gzip'd it is %.1f KiB: target <= 50 KiB: %s\n",
        bytes, wire, enc.c_str(), static_cast<double>(gz) / 1024.0,
        enc == "gzip" && gz <= 50 * 1024 ? "met"
        : gz <= 50 * 1024                ? "MISSED (not compressed by the gateway)"
                                         : "MISSED");
  }
  ProcMem mem = ReadProcMem(gw.pid());
  std::printf("  gateway VmHWM %.1f MB, VmRSS %.1f MB; load %s\n", mem.hwm_mb, mem.rss_mb,
              Load().c_str());
}

// --- (3) a CSV export of one long series ---------------------------------------------------

// Direct StoreReader::Raw on the same file, in the export's pages: the rows the store can
// deliver per second without HTTP or CSV.
double DirectRawRowsPerS(const std::string& db, const std::string& device, int64_t from, int64_t to,
                         int64_t* rows) {
  store::ReaderOptions ro;
  ro.path = db;
  auto r = store::StoreReader::Open(ro);
  Check(r.status(), "open a StoreReader");
  constexpr size_t kPageRows = 4096;  // series::kExportPageRows
  const auto t = Clock::now();
  store::RawCursor c;
  *rows = 0;
  for (;;) {
    auto page = (*r)->Raw(device, "temperature", from, to, c, kPageRows);
    Check(page.status(), "Raw");
    *rows += static_cast<int64_t>(page->t.size());
    if (!page->more) break;
    c = page->next;
  }
  return static_cast<double>(*rows) / std::chrono::duration<double>(Clock::now() - t).count();
}

void RunExport(const Options& o) {
  std::printf("\n== export: every point of one series as CSV ==\n");
  TempDir dir("outpost-api-bench");
  if (o.keep) dir.Keep();
  StoreSpec s = OneSeriesAt1Hz(StoreDir(o, dir) + "/export.db", o.export_rows);
  std::printf("making the store: %" PRId64 " readings of one metric ...\n", s.per_device);
  std::fflush(stdout);
  StoreMade made = MakeStore(s);
  std::printf("store made: %" PRId64 " readings in %.1f s, %.1f MB on disk\n", made.readings,
              made.seconds, static_cast<double>(made.file_bytes) / 1e6);
  const int64_t from = s.t0_ms, to = s.t0_ms + s.per_device * 1000;
  const std::string target = "/api/v1/series?device=" + DeviceId(0) +
                             "&metric=temperature&raw=1&format=csv&from=" + std::to_string(from) +
                             "&to=" + std::to_string(to);
  Gateway gw(o, dir, s.path);
  std::printf("gateway up in %.0f ms (load %s)\n", gw.start_ms(), Load().c_str());
  Client c(gw.http_port(), gw.token());
  std::vector<double> direct, http, ratio;
  size_t bytes = 0;
  for (int rep = 0; rep < o.repeat; ++rep) {
    int64_t rows = 0;
    const double d = DirectRawRowsPerS(s.path, DeviceId(0), from, to, &rows);
    if (rows != made.readings) {
      Die("Raw paged " + std::to_string(rows) + " rows of " + std::to_string(made.readings));
    }
    const auto t = Clock::now();
    RawHttpResponse r = c.Get(target);
    const double secs = std::chrono::duration<double>(Clock::now() - t).count();
    const auto lines = std::count(r.body.begin(), r.body.end(), '\n');
    if (lines != made.readings + 1) {
      Die("the export has " + std::to_string(lines) + " lines for " +
          std::to_string(made.readings) + " rows");
    }
    bytes = r.body.size();
    const double h = static_cast<double>(made.readings) / secs;
    std::printf("run %d: Raw direct %.0f rows/s; export %.0f rows/s (%.1f MB/s, %.2f s), %.2fx\n",
                rep + 1, d, h, static_cast<double>(bytes) / secs / 1e6, secs, h / d);
    direct.push_back(d);
    http.push_back(h);
    ratio.push_back(h / d);
  }
  ProcMem mem = ReadProcMem(gw.pid());
  std::printf("\nexport of %" PRId64 " rows, %.1f MB of CSV (medians of %d runs; load %s):\n",
              made.readings, static_cast<double>(bytes) / 1e6, o.repeat, Load().c_str());
  std::printf("  (r) StoreReader::Raw, 4,096-row pages  %.0f rows/s\n", Median(direct));
  std::printf("  (x) GET ...&raw=1&format=csv           %.0f rows/s = %.2fx (r)\n", Median(http),
              Median(ratio));
  std::printf("  gateway VmHWM %.1f MB, VmRSS %.1f MB\n", mem.hwm_mb, mem.rss_mb);
}

// --- (4) concurrent SSE streams -------------------------------------------------------------

// `n` clients of GET /api/v1/stream on raw sockets, drained by one thread with poll(2), so the
// gateway never sees a slow reader from us. Counts bytes and `event: reading` lines.
class Streams {
 public:
  Streams(uint16_t port, const std::string& token, int n) {
    const std::string req =
        "GET /api/v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + token +
        "\r\nAccept: text/event-stream\r\n\r\n";
    for (int i = 0; i < n; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      if (fd < 0) Die("socket: " + std::string(std::strerror(errno)));
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(port);
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        Die("connect stream " + std::to_string(i) + ": " + std::strerror(errno));
      }
      if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
        Die("send stream request");
      }
      fds_.push_back(fd);
    }
    ok_.assign(fds_.size(), 0);
    tail_.assign(fds_.size(), std::string());
    thread_ = std::thread([this] { Loop(); });
  }
  ~Streams() {
    stop_ = true;
    thread_.join();
    for (int fd : fds_) ::close(fd);
  }
  // Every stream answered 200 (within `timeout`).
  bool WaitOpen(std::chrono::milliseconds timeout) {
    const auto end = Clock::now() + timeout;
    while (Clock::now() < end) {
      if (open_ == static_cast<int>(fds_.size())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling a condition
    }
    return false;
  }
  int open() const { return open_; }
  int closed() const { return closed_; }
  uint64_t readings() const { return readings_; }
  uint64_t bytes() const { return bytes_; }

 private:
  void Loop() {
    std::vector<pollfd> p(fds_.size());
    for (size_t i = 0; i < fds_.size(); ++i) p[i] = {fds_[i], POLLIN, 0};
    std::vector<char> buf(1 << 16);
    static const std::string kEvent = "event: reading";
    while (!stop_) {
      const int n = ::poll(p.data(), p.size(), 50);
      if (n <= 0) continue;
      for (size_t i = 0; i < p.size(); ++i) {
        if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        const ssize_t got = ::recv(p[i].fd, buf.data(), buf.size(), MSG_DONTWAIT);
        if (got <= 0) {
          if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
            p[i].fd = -1;
            ++closed_;
          }
          continue;
        }
        bytes_ += static_cast<uint64_t>(got);
        // Count events across reads: keep the last bytes of the previous read.
        std::string s = tail_[i];
        s.append(buf.data(), static_cast<size_t>(got));
        if (!ok_[i] && s.size() >= 12) {
          ok_[i] = s.compare(0, 12, "HTTP/1.1 200") == 0 ? 1 : 2;
          if (ok_[i] == 1) ++open_;
        }
        for (size_t at = s.find(kEvent); at != std::string::npos; at = s.find(kEvent, at + 1)) {
          ++readings_;
        }
        tail_[i] = s.size() >= kEvent.size() ? s.substr(s.size() - (kEvent.size() - 1)) : s;
      }
    }
  }
  std::vector<int> fds_;
  std::vector<int> ok_;
  std::vector<std::string> tail_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> open_{0}, closed_{0};
  std::atomic<uint64_t> readings_{0}, bytes_{0};
};

struct PubResult {
  uint64_t sent = 0, acked = 0;
  double rate = 0;
};

// outpost-bench-pub, QoS 1, 100 devices over 4 connections; waits for its summary.
class Pub {
 public:
  Pub(const Options& o, const TempDir& dir, uint16_t mqtt_port, int count, double rate,
      double duration_s, int seed) {
    ChildProcessOptions co;
    co.argv = {o.bench_pub,
               "--host",
               "127.0.0.1",
               "--port",
               std::to_string(mqtt_port),
               "--devices",
               "100",
               "--connections",
               "4",
               "--qos",
               "1",
               "--max-inflight",
               "1000",
               "--rate",
               std::to_string(rate),
               "--seed",
               std::to_string(seed),
               "--drain-timeout",
               "60",
               "--id-prefix",
               "pub-",
               "--json"};
    if (count > 0) co.argv.insert(co.argv.end(), {"--count", std::to_string(count)});
    if (duration_s > 0) co.argv.insert(co.argv.end(), {"--duration", std::to_string(duration_s)});
    co.log_path = dir.File("bench-pub-" + std::to_string(seed) + ".log");
    auto p = ChildProcess::Start(co);
    Check(p.status(), "start outpost-bench-pub");
    proc_ = std::move(p).value();
  }
  PubResult Finish() {
    auto code = proc_->Wait(std::chrono::seconds(180));
    if (!code.ok()) {
      proc_->Kill();
      Die("outpost-bench-pub did not finish: " + proc_->log());
    }
    std::istringstream lines(proc_->log());
    std::string line, last;
    while (std::getline(lines, line)) {
      if (!line.empty() && line[0] == '{') last = line;
    }
    json j = json::parse(last, nullptr, false);
    if (j.is_discarded()) Die("outpost-bench-pub printed no summary: " + proc_->log());
    PubResult r;
    r.sent = j.value("sent", uint64_t{0});
    r.acked = j.value("acked", uint64_t{0});
    r.rate = j.value("rate_per_s", 0.0);
    if (*code != 0)
      std::fprintf(stderr, "  outpost-bench-pub exited %d: %s\n", *code, last.c_str());
    return r;
  }

 private:
  std::unique_ptr<ChildProcess> proc_;
};

void RunStreams(const Options& o) {
  std::printf("\n== streams: %d SSE clients on /api/v1/stream while readings flow ==\n", o.streams);
  TempDir dir("outpost-api-bench");
  if (o.keep) dir.Keep();
  StoreSpec s;
  s.path = StoreDir(o, dir) + "/streams.db";
  s.devices = o.devices;
  s.interval_ms = 60'000;
  s.per_device = 1440;
  s.t0_ms = (WallMs() - 86'400'000) / 60'000 * 60'000 - 3'600'000;
  StoreMade made = MakeStore(s);
  std::printf("store: %" PRId64 " readings of %d devices in %.1f s\n", made.readings, s.devices,
              made.seconds);
  const int64_t from = s.t0_ms, to = s.t0_ms + 86'400'000;
  auto device = [&](int i) { return DeviceId(static_cast<int>((i * 7919LL) % o.devices)); };
  Gateway gw(o, dir, s.path);
  std::printf("gateway up in %.0f ms (load %s)\n", gw.start_ms(), Load().c_str());
  Client c(gw.http_port(), gw.token());
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(o.timeout_s));
  // REST while the publisher offers stream_rate readings/s for stream_seconds: alternate
  // requests of the two routes until the publisher is done or the count is reached.
  struct Rest {
    Latencies devices, series;
    uint64_t streamed = 0;
  };
  int seed = 1;
  auto rest_run = [&](Streams* st) {
    Rest r;
    const uint64_t before = st ? st->readings() : 0;
    Pub pub(o, dir, gw.mqtt_port(), 0, o.stream_rate, o.stream_seconds, seed++);
    const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(o.stream_seconds));
    const auto stop = std::min(end, deadline);
    int i = 0;
    for (; i < o.stream_requests && Clock::now() < stop; ++i) {
      auto t = Clock::now();
      c.Get("/api/v1/devices?limit=100");
      r.devices.ms.push_back(Ms(Clock::now() - t));
      t = Clock::now();
      c.Get(SeriesTarget(device(i), from, to, 1440));
      r.series.ms.push_back(Ms(Clock::now() - t));
    }
    PubResult p = pub.Finish();
    if (st) r.streamed = st->readings() - before;
    std::printf("  %-9s /devices %s\n            /series  %s\n            published %" PRIu64
                " (acked %" PRIu64 "), streamed readings %" PRIu64 "\n",
                st ? "streams" : "none", r.devices.Row().c_str(), r.series.Row().c_str(), p.sent,
                p.acked, r.streamed);
    return r;
  };
  auto dropped_slow = [&]() -> int64_t {
    json j = json::parse(c.Get("/api/v1/health").body, nullptr, false);
    if (!j.is_object() || !j.contains("stream")) Die("/api/v1/health has no stream figures");
    return j["stream"].value("dropped_slow", int64_t{-1});
  };
  int64_t dropped_in_floods = 0;
  auto ingest_run = [&](Streams* st) {
    const uint64_t before = st ? st->readings() : 0;
    const int64_t dropped_before = dropped_slow();
    Pub pub(o, dir, gw.mqtt_port(), o.ingest_count, 0, 0, seed++);
    PubResult p = pub.Finish();
    const int64_t dropped = dropped_slow() - dropped_before;
    dropped_in_floods += dropped;
    std::printf("  %-9s ingest %" PRIu64 " of %" PRIu64
                " acked, %.0f readings/s; streamed "
                "readings %" PRIu64 ", streams dropped as slow %" PRId64 "\n",
                st ? "streams" : "none", p.acked, p.sent, p.rate, st ? st->readings() - before : 0,
                dropped);
    return p.rate;
  };
  std::vector<double> dev_none, dev_st, ser_none, ser_st, ing_none, ing_st;
  ProcMem mem_none, mem_st;
  int open = 0;
  uint64_t st_closed = 0;
  c.Get("/api/v1/devices?limit=100");  // warm
  for (int rep = 0; rep < o.repeat && Clock::now() < deadline; ++rep) {
    std::printf("run %d (load %s):\n", rep + 1, Load().c_str());
    Rest none = rest_run(nullptr);
    dev_none.push_back(none.devices.p99());
    ser_none.push_back(none.series.p99());
    ing_none.push_back(ingest_run(nullptr));
    mem_none = ReadProcMem(gw.pid());
    {
      Streams st(gw.http_port(), gw.token(), o.streams);
      if (!st.WaitOpen(std::chrono::seconds(20))) {
        Die(std::to_string(st.open()) + " of " + std::to_string(o.streams) + " streams open");
      }
      open = st.open();
      Rest with = rest_run(&st);
      dev_st.push_back(with.devices.p99());
      ser_st.push_back(with.series.p99());
      mem_st = ReadProcMem(gw.pid());
      if (st.closed() > 0) Die(std::to_string(st.closed()) + " streams closed during the REST run");
      ing_st.push_back(ingest_run(&st));
      st_closed += static_cast<uint64_t>(st.closed());
    }
  }
  const ProcMem mem_end = ReadProcMem(gw.pid());
  std::printf("\nstreams (medians of %zu runs; %d of %d streams open; load %s):\n", dev_none.size(),
              open, o.streams, Load().c_str());
  std::printf(
      "  GET /api/v1/devices?limit=100 p99: none %.3f ms, %d streams %.3f ms: %.2fx "
      "(target <= 1.10x: %s)\n",
      Median(dev_none), o.streams, Median(dev_st), Median(dev_st) / Median(dev_none),
      Median(dev_st) <= 1.1 * Median(dev_none) ? "met" : "MISSED");
  std::printf(
      "  GET /api/v1/series (24 h, 1,440) p99: none %.3f ms, %d streams %.3f ms: %.2fx "
      "(target <= 1.10x: %s)\n",
      Median(ser_none), o.streams, Median(ser_st), Median(ser_st) / Median(ser_none),
      Median(ser_st) <= 1.1 * Median(ser_none) ? "met" : "MISSED");
  std::printf("  ingest (QoS 1, %d readings flat out): none %.0f/s, %d streams %.0f/s: %.2fx\n",
              o.ingest_count, Median(ing_none), o.streams, Median(ing_st),
              Median(ing_st) / Median(ing_none));
  std::printf(
      "  gateway VmRSS: %.1f MB without streams, %.1f MB with %d at %.0f readings/s, VmHWM %.1f MB "
      "after the floods; streams closed by the gateway %" PRIu64
      " (dropped as slow in the "
      "floods: %" PRId64 ")\n",
      mem_none.rss_mb, mem_st.rss_mb, o.streams, o.stream_rate, mem_end.hwm_mb, st_closed,
      dropped_in_floods);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "api_bench: the gateway's series API and live stream on large stores, against "
      "limits measured in the same run (docs/benchmarks.md)"};
  app.add_option("--only", o.only, "series, year, export or streams (repeatable; default all)")
      ->check(CLI::IsMember({"series", "year", "export", "streams"}));
  app.add_option("--devices", o.devices, "devices of the series and streams stores")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--days", o.days, "days of data in the series store")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 3650.0));
  app.add_option("--interval-ms", o.interval_ms, "one reading per device per interval")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{10}, int64_t{3'600'000}));
  app.add_option("--requests", o.requests, "requests per series run")
      ->capture_default_str()
      ->check(CLI::Range(10, 1'000'000));
  app.add_option("--year-days", o.year_days, "days of 1 Hz data in the year store")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 3650.0));
  app.add_option("--year-decimals", o.year_decimals,
                 "round the year's values to this many decimals, as a sensor reports them (a "
                 "DHT22: 1); -1 keeps full precision (the answer's worst case for size)")
      ->capture_default_str()
      ->check(CLI::Range(-1, 15));
  app.add_option("--year-points", o.year_points, "points= of the year's requests")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  app.add_option("--year-requests", o.year_requests, "requests per year run")
      ->capture_default_str()
      ->check(CLI::Range(10, 100000));
  app.add_option("--export-rows", o.export_rows, "readings of the exported series (1 Hz)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1000}, int64_t{100'000'000}));
  app.add_option("--streams", o.streams, "concurrent SSE clients")
      ->capture_default_str()
      ->check(CLI::Range(1, 900));
  app.add_option("--stream-rate", o.stream_rate, "readings/s offered during the REST runs")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 100000.0));
  app.add_option("--stream-seconds", o.stream_seconds, "length of each REST run")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 600.0));
  app.add_option("--stream-requests", o.stream_requests,
                 "at most this many request pairs per REST run")
      ->capture_default_str()
      ->check(CLI::Range(10, 1'000'000));
  app.add_option("--ingest-count", o.ingest_count, "readings per ingest run")
      ->capture_default_str()
      ->check(CLI::Range(1000, 10'000'000));
  app.add_option("--repeat", o.repeat, "runs of each measurement (medians shown)")
      ->capture_default_str()
      ->check(CLI::Range(1, 20));
  app.add_option("--timeout", o.timeout_s, "deadline of each part's measuring, seconds")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 3600.0));
  app.add_option("--dir", o.dir, "make the stores here (default: a temp dir)");
  app.add_flag("--keep", o.keep, "keep the temp dirs (stores, configs, logs)");
  app.add_option("--gateway", o.gateway, "outpost-gateway binary")->capture_default_str();
  app.add_option("--bench-pub", o.bench_pub, "outpost-bench-pub binary")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  auto want = [&](const char* part) {
    return o.only.empty() || std::find(o.only.begin(), o.only.end(), part) != o.only.end();
  };
  std::printf("api_bench: load %s, %u cores\n", Load().c_str(),
              std::thread::hardware_concurrency());
  const auto t = Clock::now();
  if (want("series")) RunSeries(o);
  if (want("year")) RunYear(o);
  if (want("export")) RunExport(o);
  if (want("streams")) RunStreams(o);
  std::printf("\ntotal %.0f s, load %s\n", std::chrono::duration<double>(Clock::now() - t).count(),
              Load().c_str());
  return 0;
}
