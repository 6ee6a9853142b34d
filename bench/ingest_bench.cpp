// ingest_bench: the gateway's durable ingest rate against the broker's own delivery rate,
// measured in the same run, plus publish-to-commit latency and RSS. Not a test (CI never runs
// it); docs/benchmarks.md has the method, the command and the numbers.
//
// Each measurement starts its own Mosquitto on a free loopback port (max_inflight_messages
// 10000, max_queued_messages 1000000: the gateway's recommended settings) so no session or
// queue carries over, and drives it with outpost-bench-pub (1,000 devices by default):
//   (a) limit:   the broker's delivery rate of the readings to ONE plain subscriber (Session
//                based, acks QoS 1 at once), publisher flat out; QoS 0 and QoS 1.
//   (b) ingest:  outpost-gateway (ingest.device_rate_per_s 0) from the first publish until it
//                has committed all N readings (its status: ingest.stored, store.last_commit);
//                QoS 0 and QoS 1 with storage.synchronous full, and QoS 1 with normal.
//   (c) latency: at a fixed offered load (10,000 readings/s, QoS 1, full) the gateway's
//                receive->commit p50/p99 from its status, sampled while the load runs, and
//                publish->receive from the stored rows (ts_ms is the publish time).
//   (d) RSS:     VmHWM / VmRSS of the gateway from /proc.
//   (e) disk:    bytes the gateway wrote to storage (/proc/PID/io write_bytes) and the size of
//                its database + WAL at the end, per reading, against the mean payload size.
// --json adds one machine-readable line per gateway run (bench/arm_bench.sh reads them).
// Every measurement is repeated --repeat times; the table shows medians and ratios.
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_stats.h"
#include "outpost/bench_pub/connection.h"
#include "outpost/bench_pub/readings.h"
#include "outpost/sqlite/database.h"
#include "outpost/testing/child_process.h"
#include "outpost/testing/mosquitto_process.h"
#include "outpost/testing/temp_dir.h"

#ifndef OUTPOST_GATEWAY_BIN
#define OUTPOST_GATEWAY_BIN "outpost-gateway"
#endif
#ifndef OUTPOST_BENCH_PUB_BIN
#define OUTPOST_BENCH_PUB_BIN "outpost-bench-pub"
#endif

namespace {

namespace sqlite = outpost::sqlite;
using outpost::Status;
using outpost::bench_pub::Connection;
using outpost::bench_pub::ConnectionCallbacks;
using outpost::testing::ChildProcess;
using outpost::testing::ChildProcessOptions;
using outpost::testing::MosquittoOptions;
using outpost::testing::MosquittoProcess;
using outpost::testing::TempDir;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

std::int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

using outpost::bench::Median;
using outpost::bench::Percentile;

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "ingest_bench: %s\n", why.c_str());
  std::exit(1);
}

struct Options {
  std::uint64_t readings = 300'000;
  int repeat = 3;
  std::size_t devices = 1000;
  std::size_t connections = 8;
  double latency_rate = 10'000;
  double latency_seconds = 10;
  double warmup_seconds = 2;
  std::string gateway = OUTPOST_GATEWAY_BIN;
  std::string bench_pub = OUTPOST_BENCH_PUB_BIN;
  std::string mosquitto = "/usr/sbin/mosquitto";
  bool skip_normal = false;
  std::vector<std::string> only;  // limit, ingest, latency; empty: all
  bool keep = false;
  bool json = false;       // one "RESULT {...}" line per gateway run
  double timeout_s = 120;  // per measurement
};

// ---- the event loop shared by the bench's own MQTT clients ----

class IoThread {
 public:
  IoThread() : guard_(asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}
  ~IoThread() {
    guard_.reset();
    io_.stop();
    thread_.join();
  }
  asio::io_context& io() { return io_; }
  // Runs `f` on the io thread and waits for it.
  template <typename F>
  void Call(F&& f) {
    std::promise<void> done;
    asio::post(io_, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::thread thread_;
};

// A bench-side MQTT connection: subscribes to `filters` and hands messages to `on_message` on
// the io thread; QoS 1 messages are acknowledged at once.
class Subscriber {
 public:
  Subscriber(IoThread& io, std::uint16_t port, std::string client_id,
             std::vector<outpost::mqtt::Subscription> filters,
             std::function<void(const outpost::mqtt::Message&)> on_message)
      : io_(io), on_message_(std::move(on_message)) {
    io_.Call([&] {
      outpost::mqtt::SessionOptions so;
      so.client_id = std::move(client_id);
      so.keepalive_s = 60;
      ConnectionCallbacks cb;
      cb.on_event = [this, filters](const outpost::mqtt::Event& e) {
        if (std::holds_alternative<outpost::mqtt::Connected>(e)) {
          conn_->Subscribe(filters);
        } else if (std::holds_alternative<outpost::mqtt::Subscribed>(e)) {
          subscribed_ = true;
        } else if (auto* m = std::get_if<outpost::mqtt::Message>(&e)) {
          if (m->qos == 1) conn_->Ack(m->packet_id);
          on_message_(*m);
        }
      };
      cb.on_closed = [this](const Status& why) {
        if (!why.ok()) error_ = why.ToString();
        closed_ = true;
      };
      conn_ = std::make_unique<Connection>(io_.io(), std::move(so), std::move(cb));
      conn_->Open("127.0.0.1", port);
    });
  }
  ~Subscriber() {
    io_.Call([&] { conn_.reset(); });
  }

  // Waits (bounded) for the SUBACK.
  void WaitSubscribed() {
    for (int i = 0; i < 500 && !subscribed_; ++i) {
      if (closed_) break;
      SleepMs(20);
    }
    if (!subscribed_) Die("bench subscriber could not subscribe: " + error());
  }
  void Publish(const std::string& topic, const std::string& payload) {
    io_.Call([&] {
      (void)conn_->Publish(topic, payload, 0);
      conn_->Flush();
    });
  }
  std::string error() {
    std::string e;
    io_.Call([&] { e = error_; });
    return e;
  }

 private:
  IoThread& io_;
  std::function<void(const outpost::mqtt::Message&)> on_message_;
  std::unique_ptr<Connection> conn_;
  std::atomic<bool> subscribed_{false};
  std::atomic<bool> closed_{false};
  std::string error_;
};

// (a): counts deliveries and remembers when the first and last arrived.
class CountingSubscriber {
 public:
  CountingSubscriber(IoThread& io, std::uint16_t port)
      : sub_(io, port, "ingest-bench-limit", {{"sensors/+/data", 1}, {"sensors/data", 1}},
             [this](const outpost::mqtt::Message&) {
               std::int64_t now = WallMs();
               if (count_.load(std::memory_order_relaxed) == 0) first_ms_ = now;
               last_ms_.store(now, std::memory_order_relaxed);
               count_.fetch_add(1, std::memory_order_relaxed);
             }) {
    sub_.WaitSubscribed();
  }
  std::uint64_t count() const { return count_.load(); }
  std::int64_t last_ms() const { return last_ms_.load(); }

 private:
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::int64_t> first_ms_{0}, last_ms_{0};
  Subscriber sub_;  // last: its callbacks use the counters
};

// The gateway's status (gateway/status), fetched with {"command":"get_status"}.
struct GatewayStatus {
  std::uint64_t stored = 0, received = 0, rejected = 0, duplicates = 0, queue_depth = 0;
  std::int64_t last_commit_ms = 0;
  double commit_p50_ms = 0, commit_p99_ms = 0;
  // Device timestamp (= the publisher's clock at publish) -> commit, over the status window.
  double publish_p50_ms = -1, publish_p99_ms = -1;
  std::uint64_t publish_samples = 0;
  bool periodic = false;  // "trigger": "interval": one whole latency window
  std::int64_t local_db_records = 0;
  std::string raw;
};

class StatusProbe {
 public:
  StatusProbe(IoThread& io, std::uint16_t port)
      : sub_(io, port, "ingest-bench-status", {{"gateway/status", 0}},
             [this](const outpost::mqtt::Message& m) { OnStatus(m.payload); }) {
    sub_.WaitSubscribed();
  }

  // Asks for a status and waits for it (bounded). nullopt on timeout.
  std::optional<GatewayStatus> Get(int timeout_ms = 3000) {
    std::uint64_t seen = version_.load();
    sub_.Publish("gateway/commands", R"({"command":"get_status"})");
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (Clock::now() < deadline) {
      if (version_.load() > seen) {
        std::lock_guard<std::mutex> lock(mu_);
        return latest_;
      }
      SleepMs(5);
    }
    return std::nullopt;
  }

 private:
  void OnStatus(const std::string& payload) {
    json j = json::parse(payload, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return;
    GatewayStatus s;
    try {
      const json& in = j.at("ingest");
      const json& st = j.at("store");
      s.stored = in.value("stored", std::uint64_t{0});
      s.received = in.value("received", std::uint64_t{0});
      s.rejected = in.value("rejected", std::uint64_t{0});
      s.duplicates = in.value("duplicates", std::uint64_t{0});
      s.queue_depth = in.value("queue_depth", std::uint64_t{0});
      if (st.contains("last_commit") && st["last_commit"].is_number()) {
        s.last_commit_ms = static_cast<std::int64_t>(st["last_commit"].get<double>() * 1000 + 0.5);
      }
      s.commit_p50_ms = st.value("commit_latency_ms_p50", 0.0);
      s.commit_p99_ms = st.value("commit_latency_ms_p99", 0.0);
      s.publish_p50_ms = st.value("device_to_commit_ms_p50", -1.0);
      s.publish_p99_ms = st.value("device_to_commit_ms_p99", -1.0);
      s.publish_samples = st.value("device_to_commit_samples", std::uint64_t{0});
      s.periodic = j.value("trigger", "") == "interval";
      s.local_db_records = j.value("local_db_records", std::int64_t{0});
      s.raw = payload;
    } catch (const std::exception&) {
      return;  // not the status shape we know; ignore
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (s.periodic) windows_.push_back(s);
    latest_ = std::move(s);
    version_.fetch_add(1);
  }

 public:
  // The periodic statuses received so far, each one whole latency window, oldest first.
  std::vector<GatewayStatus> TakeWindows() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::move(windows_);
  }

 private:
  std::vector<GatewayStatus> windows_;

  std::mutex mu_;
  GatewayStatus latest_;
  std::atomic<std::uint64_t> version_{0};
  Subscriber sub_;
};

// ---- processes ----

std::unique_ptr<MosquittoProcess> StartBroker(const Options& o) {
  MosquittoOptions mo;
  mo.binary = o.mosquitto;
  mo.extra_config = {"max_inflight_messages 10000", "max_queued_messages 1000000"};
  auto broker = MosquittoProcess::Start(mo);
  if (!broker.ok()) Die("mosquitto: " + broker.status().ToString());
  return std::move(broker).value();
}

struct PubResult {
  std::uint64_t sent = 0, acked = 0;
  std::int64_t first_publish_ms = 0, done_ms = 0;
  double rate = 0, max_lag_ms = 0;
  bool ok = false;
};

class PubRun {
 public:
  PubRun(const Options& o, const TempDir& dir, std::uint16_t port, int qos, std::uint64_t count,
         double rate, int seed) {
    log_ = dir.File("bench-pub-" + std::to_string(seed) + "-" + std::to_string(qos) + ".log");
    ChildProcessOptions co;
    co.argv = {o.bench_pub,
               "--host",
               "127.0.0.1",
               "--port",
               std::to_string(port),
               "--devices",
               std::to_string(o.devices),
               "--connections",
               std::to_string(std::min(o.connections, o.devices)),
               "--count",
               std::to_string(count),
               "--qos",
               std::to_string(qos),
               "--rate",
               std::to_string(rate),
               "--seed",
               std::to_string(seed),
               "--max-inflight",
               "1000",
               "--drain-timeout",
               std::to_string(static_cast<int>(o.timeout_s)),
               "--json"};
    co.log_path = log_;
    auto p = ChildProcess::Start(co);
    if (!p.ok()) Die("bench-pub: " + p.status().ToString());
    proc_ = std::move(p).value();
  }
  bool Running() { return proc_->Running(); }
  // Waits for the publisher and parses its JSON summary.
  PubResult Finish(double timeout_s) {
    auto code = proc_->Wait(std::chrono::milliseconds(static_cast<std::int64_t>(timeout_s * 1000)));
    if (!code.ok()) {
      proc_->Kill();
      Die("bench-pub did not finish: " + proc_->log());
    }
    std::string log = proc_->log();
    std::istringstream lines(log);
    std::string line, last_json;
    while (std::getline(lines, line)) {
      if (!line.empty() && line[0] == '{') last_json = line;
    }
    json j = json::parse(last_json, nullptr, false);
    if (j.is_discarded()) Die("bench-pub printed no summary: " + log);
    PubResult r;
    r.sent = j.value("sent", std::uint64_t{0});
    r.acked = j.value("acked", std::uint64_t{0});
    r.first_publish_ms = j.value("first_publish_ms", std::int64_t{0});
    r.done_ms = j.value("done_ms", std::int64_t{0});
    r.rate = j.value("rate_per_s", 0.0);
    r.max_lag_ms = j.value("max_lag_ms", 0.0);
    r.ok = *code == 0;
    if (!r.ok) std::fprintf(stderr, "  bench-pub exited %d: %s\n", *code, last_json.c_str());
    return r;
  }

 private:
  std::string log_;
  std::unique_ptr<ChildProcess> proc_;
};

struct ProcMem {
  double hwm_mb = 0, rss_mb = 0, cpu_s = 0;
  // Bytes the process caused to be sent to storage (page-granular: a page dirtied again before
  // writeback counts once), from /proc/PID/io; it counts under qemu-user as natively.
  std::uint64_t write_bytes = 0;
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
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields after the ")" that ends the command name: state is field 3; utime 14, stime 15.
  auto close = content.rfind(')');
  if (close != std::string::npos) {
    std::istringstream rest(content.substr(close + 2));
    std::vector<std::string> f;
    std::string tok;
    while (rest >> tok) f.push_back(tok);
    if (f.size() > 13) {
      double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
      m.cpu_s = (std::stod(f[11]) + std::stod(f[12])) / ticks;
    }
  }
  std::ifstream io("/proc/" + std::to_string(pid) + "/io");
  while (io >> key) {
    if (key == "write_bytes:") io >> m.write_bytes;
    io.ignore(1 << 20, '\n');
  }
  return m;
}

std::uint64_t FileBytes(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

// Mean size of the payloads outpost-bench-pub sends (same generator, devices and format), from
// 10,000 of them: the reference for the disk bytes per reading.
double MeanPayloadBytes(std::size_t devices) {
  outpost::bench_pub::ReadingGenerator gen(devices, outpost::bench_pub::Format::kNative, 1,
                                           static_cast<std::uint64_t>(WallMs()));
  std::string out;
  std::uint64_t total = 0;
  constexpr int kSamples = 10'000;
  for (int i = 0; i < kSamples; ++i) {
    gen.Next(static_cast<std::size_t>(i) % devices, WallMs(), i, &out);
    total += out.size();
  }
  return static_cast<double>(total) / kSamples;
}

// ---- measurements ----

struct LimitResult {
  double rate = 0;
  std::uint64_t delivered = 0, sent = 0;
};

LimitResult MeasureLimit(const Options& o, IoThread& io, const TempDir& dir, int qos, int seed) {
  auto broker = StartBroker(o);
  LimitResult r;
  {
    CountingSubscriber sub(io, broker->port());
    PubRun pub(o, dir, broker->port(), qos, o.readings, 0, seed);
    PubResult p = pub.Finish(o.timeout_s);
    r.sent = p.sent;
    // Deliveries trail the publisher a little; wait until all arrived or none for 2 s.
    std::uint64_t last = sub.count();
    auto idle_since = Clock::now();
    while (sub.count() < p.sent && Clock::now() - idle_since < std::chrono::seconds(2)) {
      SleepMs(10);
      if (sub.count() != last) {
        last = sub.count();
        idle_since = Clock::now();
      }
    }
    r.delivered = sub.count();
    double secs = static_cast<double>(sub.last_ms() - p.first_publish_ms) / 1000.0;
    r.rate = secs > 0 ? static_cast<double>(r.delivered) / secs : 0;
  }
  return r;
}

struct GatewayResult {
  double rate = 0;
  std::uint64_t stored = 0, rejected = 0, sent = 0;
  double seconds = 0;
  ProcMem mem;
  std::uint64_t db_bytes = 0;  // database + WAL file sizes before the gateway stops
  // Latency runs.
  std::vector<double> p50_windows, p99_windows;  // publish -> commit, one per 1 s window
  std::vector<double> publish_to_receive_ms;
  std::vector<double> r2c_p99_windows;  // receive -> commit p99, same windows
  double pub_max_lag_ms = 0;
};

std::string GatewayYaml(std::uint16_t port, const std::string& db, const std::string& sync,
                        int status_interval_s) {
  std::ostringstream y;
  y << "gateway:\n  id: bench_gw\n  status_interval_s: " << status_interval_s
    << "\n  log_level: warn\n"
    << "mqtt:\n  host: 127.0.0.1\n  port: " << port << "\n  qos: 1\n"
    << "storage:\n  path: " << db << "\n  synchronous: " << sync << "\n"
    << "ingest:\n  device_rate_per_s: 0\n"
    << "registry:\n  max_devices: 100000\n"
    << "http:\n  listen: 127.0.0.1:0\n";  // a free port: nothing may bind the default 8080
  return y.str();
}

// Reads (received_ms - ts_ms) of the readings still in the store's hot table.
std::vector<double> PublishToReceive(const std::string& db_path) {
  std::vector<double> out;
  sqlite::OpenOptions so;
  so.flags = SQLITE_OPEN_READONLY;
  auto db = sqlite::Database::Open(db_path, so);
  sqlite::Statement st;
  Status s = db.ok() ? db->Prepare(&st, "SELECT received_ms - ts_ms FROM hot") : db.status();
  while (s.ok() && st.Step(&s)) out.push_back(st.Double(0));
  if (!s.ok()) std::fprintf(stderr, "  cannot read the hot table: %s\n", s.ToString().c_str());
  return out;
}

GatewayResult MeasureGateway(const Options& o, IoThread& io, int qos, const std::string& sync,
                             double rate, int seed) {
  TempDir dir("outpost-ingest-bench");
  if (o.keep) dir.Keep();
  auto broker = StartBroker(o);
  std::string db = dir.File("gateway.db");
  {
    std::ofstream y(dir.File("gateway.yaml"));
    // Latency runs: a periodic status every second is one latency window of the gateway's own
    // histograms (device timestamp -> commit and receive -> commit).
    y << GatewayYaml(broker->port(), db, sync, rate > 0 ? 1 : 3600);
  }
  ChildProcessOptions co;
  co.argv = {o.gateway, "--config", dir.File("gateway.yaml")};
  co.log_path = dir.File("gateway.log");
  auto started = ChildProcess::Start(co);
  if (!started.ok()) Die("gateway: " + started.status().ToString());
  std::unique_ptr<ChildProcess> gw = std::move(started).value();

  GatewayResult r;
  StatusProbe probe(io, broker->port());
  // Up when it answers (it subscribes to every topic in one SUBSCRIBE).
  std::optional<GatewayStatus> s;
  for (int i = 0; i < 50 && !s; ++i) {
    if (!gw->Running()) Die("gateway exited: " + gw->log());
    s = probe.Get(200);
  }
  if (!s) Die("gateway does not answer get_status: " + gw->log());

  std::uint64_t n = o.readings;
  if (rate > 0) n = static_cast<std::uint64_t>(rate * o.latency_seconds);
  PubRun pub(o, dir, broker->port(), qos, n, rate, seed);
  auto t0 = Clock::now();
  auto deadline = t0 + std::chrono::milliseconds(static_cast<std::int64_t>(o.timeout_s * 1000));
  std::uint64_t last_stored = 0;
  auto idle_since = Clock::now();
  bool pub_done = false;
  PubResult p;
  while (Clock::now() < deadline) {
    if (!pub_done && !pub.Running()) {
      p = pub.Finish(5);
      pub_done = true;
      n = p.sent;
    }
    // During a flood the request queues at the broker behind the readings, so an answer can
    // take a while; keep the last one and ask again.
    std::optional<GatewayStatus> fresh = probe.Get(1000);
    if (!fresh) {
      if (!gw->Running()) Die("gateway exited: " + gw->log());
      continue;
    }
    s = std::move(fresh);
    if (s->stored >= n && pub_done) break;
    if (s->stored != last_stored) {
      last_stored = s->stored;
      idle_since = Clock::now();
    } else if (pub_done && Clock::now() - idle_since > std::chrono::seconds(5)) {
      std::fprintf(stderr, "  gateway stalled at %" PRIu64 " of %" PRIu64 " stored\n", s->stored,
                   n);
      break;
    }
    SleepMs(rate > 0 ? 50 : 100);
  }
  if (!pub_done) {
    p = pub.Finish(o.timeout_s);
    n = p.sent;
  }
  if (rate > 0) {
    // Whole windows after the warm-up, while readings flowed.
    auto windows = probe.TakeWindows();
    auto skip = static_cast<std::size_t>(std::ceil(o.warmup_seconds));
    for (std::size_t i = skip; i < windows.size(); ++i) {
      if (windows[i].publish_samples < 100) continue;  // the tail after the publisher stopped
      r.p50_windows.push_back(windows[i].publish_p50_ms);
      r.p99_windows.push_back(windows[i].publish_p99_ms);
      r.r2c_p99_windows.push_back(windows[i].commit_p99_ms);
    }
  }
  r.sent = n;
  r.stored = s ? s->stored : 0;
  r.rejected = s ? s->rejected : 0;
  r.pub_max_lag_ms = p.max_lag_ms;
  if (s && s->stored >= n && s->last_commit_ms > p.first_publish_ms) {
    r.seconds = static_cast<double>(s->last_commit_ms - p.first_publish_ms) / 1000.0;
    r.rate = static_cast<double>(n) / r.seconds;
  }
  if (s && s->rejected > 0) std::fprintf(stderr, "  gateway rejected: %s\n", s->raw.c_str());
  r.mem = ReadProcMem(gw->pid());
  r.db_bytes = FileBytes(db) + FileBytes(db + "-wal");
  gw->Terminate();
  auto code = gw->Wait(std::chrono::seconds(30));
  if (!code.ok()) {
    gw->Kill();
    std::fprintf(stderr, "  gateway did not stop within 30 s\n");
  }
  if (rate > 0) r.publish_to_receive_ms = PublishToReceive(db);
  return r;
}

// ---- report ----

std::string Fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string LoadAverage() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

// The --json line of one gateway run.
void PrintJson(const char* part, int qos, const std::string& sync, const GatewayResult& g,
               double payload_bytes) {
  json j = {{"part", part},
            {"qos", qos},
            {"sync", sync},
            {"sent", g.sent},
            {"stored", g.stored},
            {"cpu_s", g.mem.cpu_s},
            {"hwm_mb", g.mem.hwm_mb},
            {"rss_mb", g.mem.rss_mb},
            {"write_bytes", g.mem.write_bytes},
            {"db_bytes", g.db_bytes},
            {"payload_bytes", payload_bytes}};
  std::printf("RESULT %s\n", j.dump().c_str());
  std::fflush(stdout);
}

std::string Runs(const std::vector<double>& v, const char* f) {
  std::string s;
  for (double x : v) s += (s.empty() ? "" : " ") + Fmt(f, x);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "ingest_bench: outpost-gateway's durable ingest rate against the broker's own "
      "delivery rate in the same run, publish-to-commit latency at a fixed load, and "
      "RSS. Starts its own Mosquitto on free loopback ports. See docs/benchmarks.md.",
      "ingest_bench"};
  app.add_option("--readings", o.readings, "readings per rate measurement")->capture_default_str();
  app.add_option("--repeat", o.repeat, "runs of each measurement (the table shows medians)")
      ->capture_default_str()
      ->check(CLI::Range(1, 50));
  app.add_option("--devices", o.devices, "virtual devices")->capture_default_str();
  app.add_option("--connections", o.connections, "publisher connections")->capture_default_str();
  app.add_option("--latency-rate", o.latency_rate, "offered load for the latency run, readings/s")
      ->capture_default_str();
  app.add_option("--latency-seconds", o.latency_seconds, "length of the latency run")
      ->capture_default_str();
  app.add_option("--gateway", o.gateway, "outpost-gateway binary")->capture_default_str();
  app.add_option("--bench-pub", o.bench_pub, "outpost-bench-pub binary")->capture_default_str();
  app.add_option("--mosquitto", o.mosquitto, "mosquitto binary")->capture_default_str();
  app.add_option("--timeout", o.timeout_s, "cap on each measurement, seconds")
      ->capture_default_str();
  app.add_option("--only", o.only, "run only these parts: limit ingest latency (e.g. to profile)")
      ->check(CLI::IsMember({"limit", "ingest", "latency"}));
  app.add_flag("--skip-normal", o.skip_normal, "skip QoS 1 with synchronous=normal");
  app.add_flag("--keep", o.keep, "keep the gateways' temp dirs (database, log, config)");
  app.add_flag("--json", o.json,
               "also print one line \"RESULT {json}\" per gateway run (CPU, memory, disk bytes)");
  CLI11_PARSE(app, argc, argv);

  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }

  std::printf("ingest_bench: %" PRIu64
              " readings, %zu devices over %zu connections, %d runs; "
              "%ld CPUs\n",
              o.readings, o.devices, std::min(o.connections, o.devices), o.repeat,
              sysconf(_SC_NPROCESSORS_ONLN));
  std::fflush(stdout);
  IoThread io;
  TempDir logs("outpost-ingest-bench-logs");
  if (o.keep) logs.Keep();

  auto wants = [&](const char* part) {
    return o.only.empty() || std::find(o.only.begin(), o.only.end(), part) != o.only.end();
  };
  std::vector<double> lim0, lim1, gw0, gw1, gw1n, p50, p99med, p99max, p2r50, p2r99, hwm_flood,
      hwm_lat, rss_lat, cpu_per_100k, wb_lat, db_lat;
  const double payload_bytes = MeanPayloadBytes(o.devices);
  const std::string load_before = LoadAverage();
  auto start = Clock::now();
  for (int run = 1; run <= o.repeat; ++run) {
    int seed = run * 10;
    auto say = [&](const char* what) {
      std::printf("[run %d/%d, %5.0f s] %s ...", run, o.repeat,
                  std::chrono::duration<double>(Clock::now() - start).count(), what);
      std::fflush(stdout);
    };
    if (wants("limit")) {
      say("limit QoS 0");
      LimitResult l0 = MeasureLimit(o, io, logs, 0, seed + 1);
      std::printf(" %.0f/s (%" PRIu64 " of %" PRIu64 " delivered)\n", l0.rate, l0.delivered,
                  l0.sent);
      lim0.push_back(l0.rate);
      say("limit QoS 1");
      LimitResult l1 = MeasureLimit(o, io, logs, 1, seed + 2);
      std::printf(" %.0f/s (%" PRIu64 " of %" PRIu64 " delivered)\n", l1.rate, l1.delivered,
                  l1.sent);
      lim1.push_back(l1.rate);
    }
    auto gateway = [&](const char* what, int qos, const char* sync, int s,
                       std::vector<double>* out) {
      say(what);
      GatewayResult g = MeasureGateway(o, io, qos, sync, 0, seed + s);
      std::printf(" %.0f/s (%" PRIu64 " of %" PRIu64
                  " stored in %.2f s; HWM %.1f MB, "
                  "CPU %.2f s)\n",
                  g.rate, g.stored, g.sent, g.seconds, g.mem.hwm_mb, g.mem.cpu_s);
      if (o.json) PrintJson("ingest", qos, sync, g, payload_bytes);
      out->push_back(g.rate);
      hwm_flood.push_back(g.mem.hwm_mb);
      if (g.sent > 0) {
        cpu_per_100k.push_back(g.mem.cpu_s * 100'000.0 / static_cast<double>(g.sent));
      }
    };
    if (wants("ingest")) {
      gateway("gateway QoS 0, full", 0, "full", 3, &gw0);
      gateway("gateway QoS 1, full", 1, "full", 4, &gw1);
      if (!o.skip_normal) gateway("gateway QoS 1, normal", 1, "normal", 5, &gw1n);
    }
    if (wants("latency")) {
      say("latency at fixed load");
      GatewayResult lat = MeasureGateway(o, io, 1, "full", o.latency_rate, seed + 6);
      double w50 = Median(lat.p50_windows), w99 = Median(lat.p99_windows);
      double w99max = lat.p99_windows.empty()
                          ? 0
                          : *std::max_element(lat.p99_windows.begin(), lat.p99_windows.end());
      double r50 = Percentile(lat.publish_to_receive_ms, 0.5);
      double r99 = Percentile(lat.publish_to_receive_ms, 0.99);
      std::printf(
          " publish->commit p50 %.0f ms, p99 %.0f ms (median of %zu 1-s windows: %s; "
          "receive->commit p99 median %.0f ms); "
          "publish->receive p50 %.0f p99 %.0f ms over %zu rows; publisher max lag "
          "%.1f ms; %" PRIu64 " of %" PRIu64 " stored; HWM %.1f MB, RSS %.1f MB\n",
          w50, w99, lat.p99_windows.size(), Runs(lat.p99_windows, "%.0f").c_str(),
          Median(lat.r2c_p99_windows), r50, r99, lat.publish_to_receive_ms.size(),
          lat.pub_max_lag_ms, lat.stored, lat.sent, lat.mem.hwm_mb, lat.mem.rss_mb);
      if (lat.p99_windows.empty()) std::printf("  (no latency window: the run was too short)\n");
      p50.push_back(w50);
      p99med.push_back(w99);
      p99max.push_back(w99max);
      p2r50.push_back(r50);
      p2r99.push_back(r99);
      hwm_lat.push_back(lat.mem.hwm_mb);
      rss_lat.push_back(lat.mem.rss_mb);
      if (lat.stored > 0) {
        auto n = static_cast<double>(lat.stored);
        wb_lat.push_back(static_cast<double>(lat.mem.write_bytes) / n);
        db_lat.push_back(static_cast<double>(lat.db_bytes) / n);
      }
      if (o.json) PrintJson("latency", 1, "full", lat, payload_bytes);
    }
  }

  double l0 = Median(lim0), l1 = Median(lim1);
  auto ratio = [](double a, double b) { return b > 0 ? Fmt("%.2f", a / b) : std::string("-"); };
  auto verdict = [](bool met) { return std::string(met ? "met" : "MISSED"); };
  std::printf(
      "\nResults: medians of %d runs (each run's values under \"runs\"), %zu devices over "
      "%zu connections, %" PRIu64 " readings per rate run\n\n",
      o.repeat, o.devices, std::min(o.connections, o.devices), o.readings);
  auto row = [&](const std::string& name, const std::string& value, const std::string& vs,
                 const std::string& target, const std::string& met, const std::string& runs) {
    std::printf("| %-46s | %-10s | %-8s | %-24s | %-6s | %s |\n", name.c_str(), value.c_str(),
                vs.c_str(), target.c_str(), met.c_str(), runs.c_str());
  };
  row("measurement", "median", "vs limit", "target", "", "runs");
  std::printf("|%s|%s|%s|%s|%s|%s|\n", std::string(48, '-').c_str(), std::string(12, '-').c_str(),
              std::string(10, '-').c_str(), std::string(26, '-').c_str(),
              std::string(8, '-').c_str(), std::string(8, '-').c_str());
  if (!lim0.empty()) {
    row("(a) limit: broker -> 1 subscriber, QoS 0", Fmt("%.0f/s", l0), "1", "", "",
        Runs(lim0, "%.0f"));
    row("(a) limit: broker -> 1 subscriber, QoS 1", Fmt("%.0f/s", l1), "1", "", "",
        Runs(lim1, "%.0f"));
  }
  if (!gw0.empty()) {
    double g0 = Median(gw0), g1 = Median(gw1);
    row("(b) gateway committed, QoS 0, sync full", Fmt("%.0f/s", g0), ratio(g0, l0),
        ">= 0.85 x QoS 0 limit", l0 > 0 ? verdict(g0 / l0 >= 0.85) : "", Runs(gw0, "%.0f"));
    row("(b) gateway committed, QoS 1, sync full", Fmt("%.0f/s", g1), ratio(g1, l1),
        ">= 0.50 x QoS 1 limit", l1 > 0 ? verdict(g1 / l1 >= 0.50) : "", Runs(gw1, "%.0f"));
    if (!gw1n.empty()) {
      double g1n = Median(gw1n);
      row("(b) gateway committed, QoS 1, sync normal", Fmt("%.0f/s", g1n), ratio(g1n, l1),
          "(comparison)", "", Runs(gw1n, "%.0f"));
    }
    row("(d) gateway VmHWM in the (b) floods, max",
        Fmt("%.1f MB", *std::max_element(hwm_flood.begin(), hwm_flood.end())), "", "", "",
        Runs(hwm_flood, "%.1f"));
    row("    gateway CPU s per 100k readings in (b)", Fmt("%.2f s", Median(cpu_per_100k)), "", "",
        "", Runs(cpu_per_100k, "%.2f"));
  }
  if (!p50.empty()) {
    std::string at = Fmt("%.0f/s", o.latency_rate);
    row("(c) publish->commit p50 at " + at, Fmt("%.0f ms", Median(p50)), "", "", "",
        Runs(p50, "%.0f"));
    row("(c) publish->commit p99 at " + at + ", median 1-s win", Fmt("%.0f ms", Median(p99med)), "",
        "<= 20 ms (p99)", verdict(Median(p99med) <= 20), Runs(p99med, "%.0f"));
    row("(c) publish->commit p99 at " + at + ", worst 1-s win", Fmt("%.0f ms", Median(p99max)), "",
        "", "", Runs(p99max, "%.0f"));
    row("(c) publish->receive p50 (stored rows)", Fmt("%.0f ms", Median(p2r50)), "", "", "",
        Runs(p2r50, "%.0f"));
    row("(c) publish->receive p99 (stored rows)", Fmt("%.0f ms", Median(p2r99)), "", "", "",
        Runs(p2r99, "%.0f"));
    row("(d) gateway VmHWM, " + std::to_string(o.devices) + " devices at " + at,
        Fmt("%.1f MB", Median(hwm_lat)), "", "<= 30 MB", verdict(Median(hwm_lat) <= 30),
        Runs(hwm_lat, "%.1f"));
    row("(d) gateway VmRSS at the end of that run", Fmt("%.1f MB", Median(rss_lat)), "", "", "",
        Runs(rss_lat, "%.1f"));
    if (!wb_lat.empty()) {
      std::string payload = Fmt("payload %.0f B", payload_bytes);
      row("(e) disk writes per reading (write_bytes)", Fmt("%.0f B", Median(wb_lat)),
          ratio(Median(wb_lat), payload_bytes), payload, "", Runs(wb_lat, "%.0f"));
      row("(e) database + WAL size per reading", Fmt("%.0f B", Median(db_lat)),
          ratio(Median(db_lat), payload_bytes), payload, "", Runs(db_lat, "%.0f"));
    }
  }
  std::printf(
      "\nTotal %.0f s; load average before: %s, after: %s.\n"
      "Publish->commit is the gateway's own histogram of (commit time - the reading's device "
      "timestamp), which the publisher sets to its clock at publish (same machine), one "
      "window per periodic status (1 s), after a %.0f s warm-up.\n",
      std::chrono::duration<double>(Clock::now() - start).count(), load_before.c_str(),
      LoadAverage().c_str(), o.warmup_seconds);
  return 0;
}
