// http_bench: libs/http's Server against cpp-httplib 0.11.4's server (what outpost-cloud served
// from before issue 10), measured in the same run. Not a test (CI never runs it);
// docs/benchmarks.md has the method, the command and the numbers.
//
// Every server runs in a child process (this binary, re-executed with --serve), so its RSS is
// its own and nothing of one measurement carries over to the next. All traffic is loopback.
//   (1) keep-alive: small JSON answers (100 bytes) under wrk (Debian's wrk 4.1, one thread,
//       --connections keep-alive connections): requests/s and p99 latency. libs/http runs on ONE
//       event-loop thread; httplib with the cloud's settings (a pool of 8 threads, keep-alive
//       max count 1000, read timeout 30 s, TCP_NODELAY). Twice: the handler answering at once,
//       and answering from a pool of 4 other threads (the cloud's database pool shape; httplib's
//       worker waits for the pool's answer).
//   (2) SSE: --streams concurrent streams on libs/http's one loop thread, the clients in THIS
//       process (one asio thread, epoll), the server publishing --event-rate events/s, each
//       carrying its publish time (steady clock, same machine). Memory per stream =
//       (server VmRSS with the streams - VmRSS before them) / streams; delay = the last client's
//       receive time - publish time, p99 over the events of the measured window.
//   (3) slowloris: --slowloris sockets each sending a request line and then one header byte
//       every 2 s; while they are held, --probes normal requests on fresh connections, one
//       after the other, each capped at --probe-timeout. libs/http, and httplib for contrast.
// Every measurement is repeated --repeat times; the table shows medians and ratios.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_stats.h"
#include "outpost/http/server.h"
#include "outpost/testing/child_process.h"
#include "outpost/testing/temp_dir.h"

#ifndef OUTPOST_WRK_BIN
#define OUTPOST_WRK_BIN "wrk"
#endif

namespace {

using outpost::testing::ChildProcess;
using outpost::testing::ChildProcessOptions;
using outpost::testing::TempDir;
using Clock = std::chrono::steady_clock;

// 100 bytes: the size of a small API answer (a device's latest reading).
constexpr std::string_view kJson =
    R"({"device_id":"bench-device-0001","ts_ms":1700000000000,"temperature_c":21.5,"ok":true,"n":123456789})";
static_assert(kJson.size() == 100);

std::int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

using outpost::bench::Median;
using outpost::bench::Percentile;

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "http_bench: %s\n", why.c_str());
  std::exit(1);
}

void RaiseFdLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }
}

double RssKb(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      double kb = 0;
      status >> kb;
      return kb;
    }
    status.ignore(1 << 20, '\n');
  }
  return 0;
}

std::string LoadAverage() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

// ---- the server side (child process, --serve) ----

struct ServeOptions {
  std::string kind;                // "outpost" or "httplib"
  std::string handler = "inline";  // or "pool"
  int pool_threads = 4;
  int httplib_threads = 8;
  double event_rate = 100;          // SSE events/s published to every open stream (outpost only)
  std::size_t max_connections = 0;  // outpost: 0 = ServerOptions' default
};

// A fixed pool of threads taking tasks from one queue: the shape of the cloud's database pool.
// The queue is bounded by the load (wrk's connections), so it needs no limit here.
class WorkPool {
 public:
  explicit WorkPool(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
  }
  ~WorkPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void Post(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

 private:
  void Run() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
        if (tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// SIGTERM/SIGINT are blocked in every thread (the mask is inherited) and taken by sigwait.
sigset_t BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

void WaitForStopSignal(const sigset_t& set) {
  int sig = 0;
  sigwait(&set, &sig);
}

int ServeOutpost(const ServeOptions& so) {
  namespace http = outpost::http;
  sigset_t stop_set = BlockStopSignals();
  asio::io_context loop;
  auto guard = asio::make_work_guard(loop);
  std::unique_ptr<WorkPool> pool;
  if (so.handler == "pool") pool = std::make_unique<WorkPool>(so.pool_threads);

  // Open streams, touched only on the loop thread (handlers and the publish timer run there).
  std::vector<std::shared_ptr<http::Stream>> streams;
  std::uint64_t seq = 0;
  std::unique_ptr<http::Server> server;

  http::Router router;
  router.Add("GET", "/json", [&pool](http::Request, http::Responder responder) {
    http::Response r;
    r.body = std::string(kJson);
    if (!pool) {
      responder.Send(std::move(r));
      return;
    }
    auto shared = std::make_shared<http::Responder>(std::move(responder));
    pool->Post([shared, r = std::move(r)]() mutable { shared->Send(std::move(r)); });
  });
  router.Add("GET", "/events", [&streams](http::Request, http::Responder responder) {
    http::Response head;
    head.content_type = "text/event-stream";
    head.headers.emplace_back("Cache-Control", "no-store");
    streams.push_back(responder.StartStream(std::move(head)));
  });
  router.Add("GET", "/stats", [&server, &streams](http::Request, http::Responder responder) {
    const http::ServerStats& s = server->stats();
    std::size_t live = 0;
    for (auto& st : streams) live += st->closed() ? 0 : 1;
    http::Response r;
    r.body = "{\"streams_open\":" + std::to_string(s.streams_open.load()) +
             ",\"streams_live\":" + std::to_string(live) +
             ",\"streams_dropped_slow\":" + std::to_string(s.streams_dropped_slow.load()) +
             ",\"connections_open\":" + std::to_string(s.connections_open.load()) +
             ",\"requests\":" + std::to_string(s.requests.load()) + "}";
    responder.Send(std::move(r));
  });

  http::ServerOptions opts;
  opts.port = 0;
  // Only the SSE part raises it (--streams above the default); the rest runs on the defaults.
  if (so.max_connections > 0) opts.max_connections = so.max_connections;
  server =
      std::make_unique<http::Server>(std::vector<asio::io_context*>{&loop}, opts, std::ref(router));
  auto port = server->Start();
  if (!port.ok()) Die("libs/http server: " + port.status().ToString());

  // The publisher: every 1/rate s, one event to every open stream, stamped just before the
  // first Write (the steady clock is the machine's CLOCK_MONOTONIC, shared with the clients).
  asio::steady_timer timer(loop);
  const auto period = std::chrono::nanoseconds(static_cast<std::int64_t>(1e9 / so.event_rate));
  auto next = Clock::now() + period;
  std::function<void()> publish = [&] {
    timer.expires_at(next);
    timer.async_wait([&](const asio::error_code& ec) {
      if (ec) return;
      next += period;
      if (!streams.empty()) {
        ++seq;
        std::string event = "data: " + std::to_string(seq) + " " + std::to_string(NowNs()) + "\n\n";
        std::size_t kept = 0;
        for (auto& st : streams) {
          if (st->Write(event)) streams[kept++] = std::move(st);
        }
        streams.resize(kept);
      }
      publish();
    });
  };
  publish();

  std::thread loop_thread([&] { loop.run(); });
  std::printf("port %u\n", static_cast<unsigned>(*port));
  std::fflush(stdout);
  WaitForStopSignal(stop_set);
  asio::post(loop, [&] {
    timer.cancel();
    for (auto& st : streams) st->Close();
    streams.clear();
  });
  server->Stop();
  guard.reset();
  loop.stop();
  loop_thread.join();
  pool.reset();
  return 0;
}

int ServeHttplib(const ServeOptions& so) {
  sigset_t stop_set = BlockStopSignals();
  std::unique_ptr<WorkPool> pool;
  if (so.handler == "pool") pool = std::make_unique<WorkPool>(so.pool_threads);
  httplib::Server s;
  const int threads = so.httplib_threads;
  // The cloud's settings (cloud/api/src/http_server.cpp).
  s.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  s.set_tcp_nodelay(true);
  s.set_keep_alive_max_count(1000);
  s.set_read_timeout(30, 0);
  s.Get("/json", [&pool](const httplib::Request&, httplib::Response& res) {
    if (!pool) {
      res.set_content(std::string(kJson), "application/json");
      return;
    }
    // The worker waits for the pool's answer: one thread held per request in flight.
    std::promise<std::string> answer;
    pool->Post([&answer] { answer.set_value(std::string(kJson)); });
    res.set_content(answer.get_future().get(), "application/json");
  });
  int port = s.bind_to_any_port("127.0.0.1");
  if (port <= 0) Die("httplib: cannot bind");
  std::thread listener([&] { s.listen_after_bind(); });
  std::printf("port %d\n", port);
  std::fflush(stdout);
  WaitForStopSignal(stop_set);
  s.stop();
  listener.join();
  pool.reset();
  return 0;
}

// ---- the bench side ----

struct Options {
  int repeat = 3;
  std::vector<int> connections = {8, 64};
  double seconds = 5;
  double warmup_seconds = 1;
  int streams = 1000;
  double event_rate = 100;
  double sse_seconds = 10;
  int slowloris = 500;
  int probes = 5;
  double probe_timeout_s = 5;
  std::string wrk = OUTPOST_WRK_BIN;
  std::vector<std::string> only;  // keepalive, sse, slowloris; empty: all
  bool keep = false;
};

class ServerProcess {
 public:
  ServerProcess(const TempDir& dir, const std::string& self, const std::string& kind,
                const std::string& handler, const Options& o, std::size_t max_connections = 0) {
    static int n = 0;
    ChildProcessOptions co;
    co.argv = {
        self, "--serve", kind, "--handler", handler, "--event-rate", std::to_string(o.event_rate)};
    if (max_connections > 0) {
      co.argv.push_back("--max-connections");
      co.argv.push_back(std::to_string(max_connections));
    }
    co.log_path = dir.File("server-" + kind + "-" + handler + "-" + std::to_string(++n) + ".log");
    auto p = ChildProcess::Start(co);
    if (!p.ok()) Die(kind + " server: " + p.status().ToString());
    proc_ = std::move(p).value();
    auto deadline = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < deadline) {
      std::string log = proc_->log();
      auto at = log.find("port ");
      if (at != std::string::npos && log.find('\n', at) != std::string::npos) {
        port_ = static_cast<std::uint16_t>(std::stoi(log.substr(at + 5)));
        return;
      }
      if (!proc_->Running()) break;
      SleepMs(10);
    }
    Die(kind + " server did not start: " + proc_->log());
  }
  ~ServerProcess() {
    if (!proc_->Stop(SIGTERM, std::chrono::seconds(10)).ok()) {
      std::fprintf(stderr, "  server did not stop within 10 s: %s\n", proc_->log().c_str());
    }
  }
  std::uint16_t port() const { return port_; }
  pid_t pid() const { return proc_->pid(); }
  double rss_kb() const { return RssKb(proc_->pid()); }

 private:
  std::unique_ptr<ChildProcess> proc_;
  std::uint16_t port_ = 0;
};

// A blocking request on a fresh connection with a deadline for the whole exchange (connect,
// send, the complete response). Reads until Content-Length bytes of body are in.
struct GetResult {
  bool ok = false;
  int status = 0;
  std::string body;
  double seconds = 0;
  std::string error;
};

GetResult TimedGet(std::uint16_t port, const std::string& path, double timeout_s) {
  GetResult r;
  auto t0 = Clock::now();
  auto deadline = t0 + std::chrono::microseconds(static_cast<std::int64_t>(timeout_s * 1e6));
  auto left_ms = [&] {
    auto d = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    return static_cast<int>(std::max<std::int64_t>(0, d.count()));
  };
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    r.error = "socket";
    return r;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  std::string in;
  std::size_t sent = 0;
  bool connected = false;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    connected = true;
  } else if (errno != EINPROGRESS) {
    r.error = std::string("connect: ") + std::strerror(errno);
    close(fd);
    return r;
  }
  for (;;) {
    pollfd p{fd, static_cast<short>(!connected || sent < req.size() ? POLLOUT : POLLIN), 0};
    int n = poll(&p, 1, left_ms());
    if (n == 0) {
      r.error = connected ? "no complete answer in time" : "connect timed out";
      break;
    }
    if (n < 0 && errno == EINTR) continue;
    if (!connected) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        r.error = std::string("connect: ") + std::strerror(err);
        break;
      }
      connected = true;
      continue;
    }
    if (sent < req.size()) {
      ssize_t w = send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
      if (w < 0 && errno != EAGAIN) {
        r.error = std::string("send: ") + std::strerror(errno);
        break;
      }
      if (w > 0) sent += static_cast<std::size_t>(w);
      continue;
    }
    char buf[4096];
    ssize_t got = recv(fd, buf, sizeof buf, 0);
    if (got < 0 && errno == EAGAIN) continue;
    if (got > 0) in.append(buf, static_cast<std::size_t>(got));
    auto head_end = in.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      std::string head = in.substr(0, head_end);
      for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      auto cl = head.find("content-length:");
      std::size_t want = cl == std::string::npos
                             ? std::string::npos
                             : static_cast<std::size_t>(std::stoul(head.substr(cl + 15)));
      std::size_t have = in.size() - head_end - 4;
      if ((want != std::string::npos && have >= want) || got == 0) {
        r.ok = in.rfind("HTTP/1.", 0) == 0;
        if (r.ok) r.status = std::atoi(in.c_str() + 9);
        r.body = in.substr(head_end + 4);
        break;
      }
    }
    if (got <= 0) {
      r.error = "connection closed before a complete answer";
      break;
    }
  }
  close(fd);
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return r;
}

// ---- (1) keep-alive under wrk ----

struct WrkResult {
  double rps = 0, p99_ms = 0, p50_ms = 0;
  std::uint64_t non2xx = 0, socket_errors = 0;
  double rss_kb = 0;
};

double ParseDurationMs(const std::string& s) {
  double v = std::atof(s.c_str());
  if (s.find("us") != std::string::npos) return v / 1000;
  if (s.find("ms") != std::string::npos) return v;
  if (s.find('s') != std::string::npos) return v * 1000;
  return v;
}

WrkResult RunWrk(const Options& o, const TempDir& dir, std::uint16_t port, int connections,
                 double seconds, const std::string& tag) {
  ChildProcessOptions co;
  co.argv = {o.wrk,
             "-t1",
             "-c" + std::to_string(connections),
             "-d" + std::to_string(static_cast<int>(seconds + 0.5)) + "s",
             "--timeout",
             "5s",
             "--latency",
             "http://127.0.0.1:" + std::to_string(port) + "/json"};
  co.log_path = dir.File("wrk-" + tag + ".log");
  auto p = ChildProcess::Start(co);
  if (!p.ok()) Die("wrk: " + p.status().ToString());
  auto code =
      (*p)->Wait(std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000) + 15'000));
  std::string log = (*p)->log();
  if (!code.ok() || *code != 0) Die("wrk failed: " + log);
  WrkResult r;
  std::istringstream lines(log);
  std::string line;
  bool distribution = false;
  while (std::getline(lines, line)) {
    std::istringstream w(line);
    std::string first;
    w >> first;
    if (first == "Requests/sec:") w >> r.rps;
    if (line.find("Latency Distribution") != std::string::npos) distribution = true;
    if (distribution && (first == "50%" || first == "99%")) {
      std::string v;
      w >> v;
      (first == "50%" ? r.p50_ms : r.p99_ms) = ParseDurationMs(v);
    }
    if (line.find("Non-2xx or 3xx responses:") != std::string::npos) {
      r.non2xx = std::strtoull(line.substr(line.find(':') + 1).c_str(), nullptr, 10);
    }
    if (first == "Socket") {  // "Socket errors: connect 0, read 0, write 0, timeout 0"
      std::string word;
      while (w >> word) {
        if (!word.empty() && std::isdigit(static_cast<unsigned char>(word[0]))) {
          r.socket_errors += std::strtoull(word.c_str(), nullptr, 10);
        }
      }
    }
  }
  if (r.rps <= 0) Die("no Requests/sec in wrk's output: " + log);
  return r;
}

WrkResult MeasureKeepAlive(const Options& o, const TempDir& dir, const std::string& self,
                           const std::string& kind, const std::string& handler, int connections,
                           int run) {
  ServerProcess server(dir, self, kind, handler, o);
  std::string tag =
      kind + "-" + handler + "-c" + std::to_string(connections) + "-" + std::to_string(run);
  if (o.warmup_seconds >= 0.5) {
    (void)RunWrk(o, dir, server.port(), connections, o.warmup_seconds, tag + "-warmup");
  }
  WrkResult r = RunWrk(o, dir, server.port(), connections, o.seconds, tag);
  r.rss_kb = server.rss_kb();
  return r;
}

// ---- (2) SSE streams ----

struct SseResult {
  double kib_per_stream = 0, p99_ms = 0, p50_ms = 0, max_ms = 0;
  int connected = 0;
  std::size_t events = 0, incomplete = 0;
  double rss_before_kb = 0, rss_with_kb = 0;
  std::string stats;
};

// The stream clients: one asio thread, one socket each. Every "data: <seq> <ns>" line is an
// event; per event, how many clients got it and when the last one did.
class SseClients {
 public:
  SseClients(std::uint16_t port, int n) : n_(n), events_(kMaxEvents) {
    for (int i = 0; i < n; ++i) clients_.push_back(std::make_unique<Client>(io_));
    asio::ip::tcp::endpoint ep(asio::ip::address_v4::loopback(), port);
    for (auto& c : clients_) Start(*c, ep);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~SseClients() { Stop(); }
  void Stop() {
    if (!thread_.joinable()) return;
    asio::post(io_, [this] {
      for (auto& c : clients_) {
        asio::error_code ignored;
        c->socket.close(ignored);
      }
    });
    io_.stop();
    thread_.join();
  }
  int streaming() const { return streaming_.load(); }
  int failed() const { return failed_.load(); }

  struct Event {
    std::int64_t publish_ns = 0, last_ns = 0;
    int count = 0;
  };
  // After Stop(): the events published in [from_ns, to_ns].
  std::vector<Event> EventsBetween(std::int64_t from_ns, std::int64_t to_ns) const {
    std::vector<Event> out;
    for (const Event& e : events_) {
      if (e.count > 0 && e.publish_ns >= from_ns && e.publish_ns <= to_ns) out.push_back(e);
    }
    return out;
  }

 private:
  static constexpr std::size_t kMaxEvents = 1'000'000;
  struct Client {
    explicit Client(asio::io_context& io) : socket(io) {}
    asio::ip::tcp::socket socket;
    std::array<char, 4096> buf{};
    std::string pending;
    bool head_seen = false;
  };

  void Start(Client& c, const asio::ip::tcp::endpoint& ep) {
    c.socket.async_connect(ep, [this, &c](const asio::error_code& ec) {
      if (ec) return Fail();
      static const std::string kReq =
          "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n";
      asio::async_write(c.socket, asio::buffer(kReq),
                        [this, &c](const asio::error_code& ec2, std::size_t) {
                          if (ec2) return Fail();
                          Read(c);
                        });
    });
  }
  void Fail() { failed_.fetch_add(1); }
  void Read(Client& c) {
    c.socket.async_read_some(
        asio::buffer(c.buf), [this, &c](const asio::error_code& ec, std::size_t n) {
          if (ec) {
            if (c.head_seen) streaming_.fetch_sub(1);
            return Fail();
          }
          std::int64_t now = NowNs();
          c.pending.append(c.buf.data(), n);
          if (!c.head_seen) {
            auto end = c.pending.find("\r\n\r\n");
            if (end == std::string::npos) return Read(c);
            if (c.pending.rfind("HTTP/1.1 200", 0) != 0) return Fail();
            c.head_seen = true;
            streaming_.fetch_add(1);
            c.pending.erase(0, end + 4);
          }
          // Chunk-size lines are hex digits; an event is "data: <seq> <ns>\n\n" inside one chunk.
          std::size_t pos = 0, keep_from = 0;
          for (;;) {
            auto d = c.pending.find("data: ", pos);
            auto nl = d == std::string::npos ? d : c.pending.find('\n', d);
            if (nl == std::string::npos) {
              // Keep an event cut by the read, or a tail that may be the start of "data: ".
              keep_from = d != std::string::npos
                              ? d
                              : std::max(pos, c.pending.size() > 5 ? c.pending.size() - 5 : 0);
              break;
            }
            char* end = nullptr;
            std::uint64_t seq = std::strtoull(c.pending.c_str() + d + 6, &end, 10);
            std::int64_t ns = std::strtoll(end, nullptr, 10);
            if (seq < kMaxEvents) {
              Event& e = events_[seq];
              e.publish_ns = ns;
              e.last_ns = std::max(e.last_ns, now);
              ++e.count;
            }
            pos = nl + 1;
          }
          c.pending.erase(0, keep_from);
          Read(c);
        });
  }

  int n_;
  asio::io_context io_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::vector<Event> events_;  // by seq; only the io thread touches it until Stop()
  std::atomic<int> streaming_{0}, failed_{0};
  std::thread thread_;
};

SseResult MeasureSse(const Options& o, const TempDir& dir, const std::string& self) {
  ServerProcess server(dir, self, "outpost", "inline", o,
                       std::max<std::size_t>(1024, static_cast<std::size_t>(o.streams) + 16));
  SseResult r;
  // One request first, so that what every server allocates once is in "before".
  (void)TimedGet(server.port(), "/json", 2);
  SleepMs(200);
  r.rss_before_kb = server.rss_kb();
  SseClients clients(server.port(), o.streams);
  auto deadline = Clock::now() + std::chrono::seconds(30);
  while (clients.streaming() + clients.failed() < o.streams && Clock::now() < deadline) SleepMs(10);
  r.connected = clients.streaming();
  if (r.connected < o.streams) {
    std::fprintf(stderr, "  only %d of %d streams connected (%d failed)\n", r.connected, o.streams,
                 clients.failed());
  }
  std::int64_t from = NowNs() + static_cast<std::int64_t>(o.warmup_seconds * 1e9);
  std::int64_t to = from + static_cast<std::int64_t>(o.sse_seconds * 1e9);
  SleepMs(static_cast<int>((o.warmup_seconds + o.sse_seconds) * 1000) + 300);
  r.rss_with_kb = server.rss_kb();
  GetResult stats = TimedGet(server.port(), "/stats", 2);
  r.stats = stats.ok ? stats.body : "(no /stats: " + stats.error + ")";
  clients.Stop();
  r.kib_per_stream =
      r.connected > 0 ? (r.rss_with_kb - r.rss_before_kb) / static_cast<double>(r.connected) : 0;
  std::vector<double> delays;
  for (const auto& e : clients.EventsBetween(from, to)) {
    ++r.events;
    if (e.count < r.connected) {
      ++r.incomplete;
      continue;
    }
    delays.push_back(static_cast<double>(e.last_ns - e.publish_ns) / 1e6);
  }
  r.p50_ms = Percentile(delays, 0.5);
  r.p99_ms = Percentile(delays, 0.99);
  r.max_ms = delays.empty() ? 0 : *std::max_element(delays.begin(), delays.end());
  return r;
}

// ---- (3) slowloris ----

struct SlowlorisResult {
  int opened = 0, held_at_end = 0;
  int answered = 0, probes = 0;
  double median_s = 0, max_s = 0;
  std::string first_error;
};

SlowlorisResult MeasureSlowloris(const Options& o, const TempDir& dir, const std::string& self,
                                 const std::string& kind) {
  ServerProcess server(dir, self, kind, "inline", o);
  SlowlorisResult r;
  std::vector<int> fds;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(server.port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const std::string start = "GET /json HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
  for (int i = 0; i < o.slowloris; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) break;
    timeval tv{2, 0};  // a connect that waits longer for a full backlog is given up
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        send(fd, start.data(), start.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(start.size())) {
      close(fd);
      continue;
    }
    fds.push_back(fd);
  }
  r.opened = static_cast<int>(fds.size());
  // One header byte every 2 s on each socket, from its own thread, until the probes are done.
  std::atomic<bool> stop{false};
  std::vector<char> alive(fds.size(), 1);
  std::thread trickle([&] {
    auto next = Clock::now();
    while (!stop.load()) {
      if (Clock::now() >= next) {
        next += std::chrono::seconds(2);
        for (std::size_t i = 0; i < fds.size(); ++i) {
          if (alive[i] && send(fds[i], "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
              errno != EAGAIN) {
            alive[i] = 0;
          }
        }
      }
      SleepMs(20);
    }
  });
  SleepMs(1000);  // let the server accept (and httplib's workers pick up) the slow sockets
  std::vector<double> times;
  for (int i = 0; i < o.probes; ++i) {
    GetResult g = TimedGet(server.port(), "/json", o.probe_timeout_s);
    ++r.probes;
    if (!g.ok || g.status != 200) {
      r.first_error = g.ok ? "status " + std::to_string(g.status) : g.error;
      times.push_back(o.probe_timeout_s);
      break;  // the rest would wait the same; keep the measurement bounded
    }
    ++r.answered;
    times.push_back(g.seconds);
  }
  stop = true;
  trickle.join();
  // Still open = the server has not closed it (a peek would read EOF or an error then).
  for (std::size_t i = 0; i < fds.size(); ++i) {
    char c;
    ssize_t n = recv(fds[i], &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (alive[i] && n < 0 && errno == EAGAIN) ++r.held_at_end;
  }
  for (int fd : fds) close(fd);
  r.median_s = Median(times);
  r.max_s = times.empty() ? 0 : *std::max_element(times.begin(), times.end());
  return r;
}

// ---- report ----

std::string Fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string Conns(const std::vector<int>& v) {
  std::string s;
  for (int c : v) s += (s.empty() ? "" : ",") + std::to_string(c);
  return s;
}

std::string Runs(const std::vector<double>& v, const char* f) {
  std::string s;
  for (double x : v) s += (s.empty() ? "" : " ") + Fmt(f, x);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  ServeOptions so;
  CLI::App app{
      "http_bench: libs/http's Server against cpp-httplib's in the same run: keep-alive "
      "requests/s and p99 under wrk, memory and publish->last-client delay of SSE streams on one "
      "loop thread, and a normal request's answer time under slowloris. Loopback only; every "
      "server is a child process. See docs/benchmarks.md.",
      "http_bench"};
  app.add_option("--repeat", o.repeat, "runs of each measurement (the table shows medians)")
      ->capture_default_str()
      ->check(CLI::Range(1, 20));
  app.add_option("--connections", o.connections,
                 "(1) wrk's keep-alive connections; each count is one measurement")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--seconds", o.seconds, "(1) length of each wrk run")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 120.0));
  app.add_option("--warmup", o.warmup_seconds, "(1) wrk warm-up; (2) wait before the window")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 30.0));
  app.add_option("--streams", o.streams, "(2) concurrent SSE streams")
      ->capture_default_str()
      ->check(CLI::Range(1, 10'000));
  app.add_option("--event-rate", o.event_rate, "(2) events/s published to every stream")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 10'000.0));
  app.add_option("--sse-seconds", o.sse_seconds, "(2) measured window")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 120.0));
  app.add_option("--slowloris", o.slowloris, "(3) slow sockets held open")
      ->capture_default_str()
      ->check(CLI::Range(0, 10'000));
  app.add_option("--probes", o.probes, "(3) normal requests while they are held")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_option("--probe-timeout", o.probe_timeout_s, "(3) cap on each probe, seconds")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 60.0));
  app.add_option("--wrk", o.wrk, "wrk binary")->capture_default_str();
  app.add_option("--only", o.only, "run only these parts: keepalive sse slowloris")
      ->check(CLI::IsMember({"keepalive", "sse", "slowloris"}));
  app.add_flag("--keep", o.keep, "keep the temp dir (server and wrk logs)");
  auto* serve = app.add_option("--serve", so.kind, "(internal) run one server: outpost|httplib")
                    ->check(CLI::IsMember({"outpost", "httplib"}))
                    ->group("");
  app.add_option("--max-connections", so.max_connections, "(internal)")->group("");
  app.add_option("--handler", so.handler, "(internal) inline|pool")
      ->check(CLI::IsMember({"inline", "pool"}))
      ->group("");
  CLI11_PARSE(app, argc, argv);
  RaiseFdLimit();
  so.event_rate = o.event_rate;
  if (serve->count() > 0) return so.kind == "outpost" ? ServeOutpost(so) : ServeHttplib(so);

  const std::string self = "/proc/self/exe";
  char exe[4096];
  ssize_t len = readlink(self.c_str(), exe, sizeof exe - 1);
  if (len <= 0) Die("cannot read /proc/self/exe");
  const std::string self_path(exe, static_cast<std::size_t>(len));

  TempDir dir("outpost-http-bench");
  if (o.keep) {
    dir.Keep();
    std::printf("logs in %s\n", dir.path().c_str());
  }
  auto wants = [&](const char* part) {
    return o.only.empty() || std::find(o.only.begin(), o.only.end(), part) != o.only.end();
  };
  std::printf(
      "http_bench: %d runs; %ld CPUs; (1) wrk -t1 -c%s, %.0f s; (2) %d streams at %.0f "
      "events/s, %.0f s; (3) %d slowloris sockets, %d probes\n",
      o.repeat, sysconf(_SC_NPROCESSORS_ONLN), Conns(o.connections).c_str(), o.seconds, o.streams,
      o.event_rate, o.sse_seconds, o.slowloris, o.probes);
  std::fflush(stdout);
  const std::string load_before = LoadAverage();
  auto start = Clock::now();

  struct KaSeries {
    std::vector<double> rps, p99, rss;
  };
  // [connection count][handler inline/pool][outpost/httplib]
  std::vector<std::array<std::array<KaSeries, 2>, 2>> ka(o.connections.size());
  constexpr const char* kHandlers[2] = {"inline", "pool"};
  constexpr const char* kKinds[2] = {"outpost", "httplib"};
  std::vector<double> sse_kib, sse_p99, sse_p50, sse_max, sse_incomplete;
  std::vector<double> sl_time[2], sl_answered[2];
  for (int run = 1; run <= o.repeat; ++run) {
    auto say = [&](const std::string& what) {
      std::printf("[run %d/%d, %5.0f s] %s ...", run, o.repeat,
                  std::chrono::duration<double>(Clock::now() - start).count(), what.c_str());
      std::fflush(stdout);
    };
    if (wants("keepalive")) {
      for (std::size_t c = 0; c < o.connections.size(); ++c) {
        for (int h = 0; h < 2; ++h) {
          for (int k = 0; k < 2; ++k) {
            say(std::string("keep-alive ") + kKinds[k] + ", handler " + kHandlers[h] + ", " +
                std::to_string(o.connections[c]) + " connections");
            WrkResult w =
                MeasureKeepAlive(o, dir, self_path, kKinds[k], kHandlers[h], o.connections[c], run);
            std::printf(" %.0f req/s, p50 %.2f ms, p99 %.2f ms, RSS %.1f MB", w.rps, w.p50_ms,
                        w.p99_ms, w.rss_kb / 1024);
            if (w.non2xx || w.socket_errors) {
              std::printf(" (%" PRIu64 " non-2xx, %" PRIu64 " socket errors)", w.non2xx,
                          w.socket_errors);
            }
            std::printf("\n");
            ka[c][h][k].rps.push_back(w.rps);
            ka[c][h][k].p99.push_back(w.p99_ms);
            ka[c][h][k].rss.push_back(w.rss_kb / 1024);
          }
        }
      }
    }
    if (wants("sse")) {
      say(std::to_string(o.streams) + " SSE streams on one loop thread");
      SseResult s = MeasureSse(o, dir, self_path);
      std::printf(
          " %d connected; RSS %.1f -> %.1f MB = %.1f KiB/stream; publish->last client p50 %.1f "
          "p99 %.1f max %.1f ms over %zu events (%zu not received by every stream); server %s\n",
          s.connected, s.rss_before_kb / 1024, s.rss_with_kb / 1024, s.kib_per_stream, s.p50_ms,
          s.p99_ms, s.max_ms, s.events, s.incomplete, s.stats.c_str());
      sse_kib.push_back(s.kib_per_stream);
      sse_p99.push_back(s.p99_ms);
      sse_p50.push_back(s.p50_ms);
      sse_max.push_back(s.max_ms);
      sse_incomplete.push_back(static_cast<double>(s.incomplete));
    }
    if (wants("slowloris")) {
      for (int k = 0; k < 2; ++k) {
        say(std::string("slowloris ") + kKinds[k]);
        SlowlorisResult s = MeasureSlowloris(o, dir, self_path, kKinds[k]);
        std::printf(
            " %d slow sockets opened, %d still open after the probes; %d of %d probes "
            "answered, median %.3f s, max %.3f s%s%s\n",
            s.opened, s.held_at_end, s.answered, s.probes, s.median_s, s.max_s,
            s.first_error.empty() ? "" : "; ", s.first_error.c_str());
        sl_time[k].push_back(s.answered == s.probes ? s.max_s : o.probe_timeout_s);
        sl_answered[k].push_back(static_cast<double>(s.answered) / s.probes);
      }
    }
  }

  auto ratio = [](double a, double b) { return b > 0 ? Fmt("%.2f", a / b) : std::string("-"); };
  auto verdict = [](bool met) { return std::string(met ? "met" : "MISSED"); };
  std::printf("\nResults: medians of %d runs (each run's values under \"runs\")\n\n", o.repeat);
  auto row = [&](const std::string& name, const std::string& value, const std::string& vs,
                 const std::string& target, const std::string& met, const std::string& runs) {
    std::printf("| %-64s | %-13s | %-5s | %-16s | %-6s | %s |\n", name.c_str(), value.c_str(),
                vs.c_str(), target.c_str(), met.c_str(), runs.c_str());
  };
  row("measurement", "median", "ratio", "target", "", "runs");
  std::printf("|%s|%s|%s|%s|%s|%s|\n", std::string(66, '-').c_str(), std::string(15, '-').c_str(),
              std::string(7, '-').c_str(), std::string(18, '-').c_str(),
              std::string(8, '-').c_str(), std::string(8, '-').c_str());
  for (std::size_t c = 0; c < ka.size() && wants("keepalive"); ++c) {
    for (int h = 0; h < 2; ++h) {
      const auto& out_s = ka[c][h][0];
      const auto& lib_s = ka[c][h][1];
      const std::string how = std::to_string(o.connections[c]) + " conns, " +
                              (h == 0 ? "answer at once" : "answer from a pool of 4");
      double out = Median(out_s.rps), lib = Median(lib_s.rps);
      row("(1) httplib (8 threads), " + how, Fmt("%.0f/s", lib), "1", "", "",
          Runs(lib_s.rps, "%.0f"));
      // The target is for the handler answering at once; answering from the pool, both servers
      // wait for the same pool of 4 threads, so that row shows what the hand-off costs.
      row("(1) libs/http (1 loop thread), " + how, Fmt("%.0f/s", out), ratio(out, lib),
          h == 0 ? ">= 1.5 x httplib" : "(comparison)",
          h == 0 ? verdict(lib > 0 && out / lib >= 1.5) : "", Runs(out_s.rps, "%.0f"));
      double out99 = Median(out_s.p99), lib99 = Median(lib_s.p99);
      row("    httplib p99 latency", Fmt("%.2f ms", lib99), "1", "", "", Runs(lib_s.p99, "%.2f"));
      row("    libs/http p99 latency", Fmt("%.2f ms", out99),
          lib99 > 0 ? Fmt("%.3g", out99 / lib99) : "-", "(lower)", "", Runs(out_s.p99, "%.2f"));
      row("    server VmRSS after the run: httplib / libs/http",
          Fmt("%.1f", Median(lib_s.rss)) + Fmt(" / %.1f MB", Median(out_s.rss)), "", "", "", "");
    }
  }
  if (!sse_kib.empty()) {
    std::string n = std::to_string(o.streams);
    row("(2) memory per stream, " + n + " streams, 1 loop thread", Fmt("%.1f KiB", Median(sse_kib)),
        "", "<= 16 KiB", verdict(Median(sse_kib) <= 16), Runs(sse_kib, "%.1f"));
    row("(2) publish -> last client p99, " + Fmt("%.0f events/s", o.event_rate),
        Fmt("%.1f ms", Median(sse_p99)), "", "<= 50 ms",
        verdict(Median(sse_p99) <= 50 && Median(sse_incomplete) == 0), Runs(sse_p99, "%.1f"));
    row("    publish -> last client p50", Fmt("%.1f ms", Median(sse_p50)), "", "", "",
        Runs(sse_p50, "%.1f"));
    row("    publish -> last client max", Fmt("%.1f ms", Median(sse_max)), "", "", "",
        Runs(sse_max, "%.1f"));
    row("    events not received by every stream", Fmt("%.0f", Median(sse_incomplete)), "", "0", "",
        Runs(sse_incomplete, "%.0f"));
  }
  if (!sl_time[0].empty()) {
    std::string n = std::to_string(o.slowloris);
    row("(3) libs/http: slowest probe, " + n + " slowloris sockets",
        Fmt("%.1f ms", Median(sl_time[0]) * 1000), "", "<= 1 s",
        verdict(Median(sl_time[0]) <= 1 && Median(sl_answered[0]) == 1), Runs(sl_time[0], "%.4f"));
    row("(3) httplib: slowest probe (a miss = the cap), " + n + " sockets",
        Fmt("%.1f ms", Median(sl_time[1]) * 1000), "", "(contrast)", "", Runs(sl_time[1], "%.4f"));
    row("    share of probes answered: libs/http / httplib",
        Fmt("%.2f", Median(sl_answered[0])) + Fmt(" / %.2f", Median(sl_answered[1])), "", "", "",
        "");
  }
  std::printf(
      "\nTotal %.0f s; load average before: %s, after: %s.\n"
      "(1) wrk -t1 -c%s against one server at a time; libs/http on ONE event-loop thread, httplib "
      "with the cloud's 8 worker threads. (2) clients in the bench process (one asio thread), "
      "server in a child. (3) probes on fresh connections, capped at %.1f s; a probe not "
      "answered counts as the cap.\n",
      std::chrono::duration<double>(Clock::now() - start).count(), load_before.c_str(),
      LoadAverage().c_str(), Conns(o.connections).c_str(), o.probe_timeout_s);
  return 0;
}
