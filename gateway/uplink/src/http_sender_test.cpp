// HttpSender against a hostile HTTP server on loopback (raw sockets): a broken proxy or a hostile
// cloud must not make the gateway allocate without bound or hang. Each test: the first
// connection gets the hostile response, Post returns a specific error within its timeout, the
// process's peak memory (VmHWM, reset before the Post) grows by less than kMaxGrowthKb, and the
// next Post, on a new connection that gets a healthy answer, works.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "outpost/gateway/uplink/sender.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/wait_until.h"

namespace outpost::gateway::uplink {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr long kMaxGrowthKb = 4 * 1024;
// Every hostile response is bounded in bytes and time (the server's own load loop).
constexpr std::size_t kMaxHostileBytes = std::size_t{512} << 20;
constexpr auto kMaxHostileTime = 20s;

long VmHwmKb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// Resets VmHWM to the current RSS (Linux >= 4.0), so that each test measures its own peak.
void ResetHwm() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
}

// One connection of the hostile server: writes what the script says, bounded by a deadline.
class Peer {
 public:
  Peer(int fd, Clock::time_point deadline) : fd_(fd), deadline_(deadline) {}
  // Writes all of `data`; false when the client closed or reset, or at the deadline.
  bool Send(const std::string& data) {
    std::size_t off = 0;
    while (off < data.size()) {
      if (!WaitFor(POLLOUT)) return false;
      ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) return false;
      off += static_cast<std::size_t>(n);
      sent_ += static_cast<std::size_t>(n);
    }
    return true;
  }
  // Waits until the client closes (or the deadline): a stalled server.
  void WaitClosed() {
    char buf[4096];
    while (WaitFor(POLLIN)) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return;
    }
  }
  std::size_t sent() const { return sent_; }

 private:
  bool WaitFor(short events) {
    while (true) {
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{fd_, events, 0};
      int r = ::poll(&p, 1, static_cast<int>(std::min<long>(left, 100)));
      if (r < 0 && errno != EINTR) return false;
      if (r > 0) {
        if (p.revents & (POLLERR | POLLNVAL)) return false;
        if ((p.revents & POLLHUP) && !(events & POLLIN)) return false;
        return true;
      }
    }
  }
  int fd_;
  Clock::time_point deadline_;
  std::size_t sent_ = 0;
};

// Serves loopback connections in order: the first one runs `hostile`, every later one gets a
// healthy 200 {"accepted":1} (keep-alive) to each request.
class HostileServer {
 public:
  explicit HostileServer(std::function<void(Peer&)> hostile) : hostile_(std::move(hostile)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    OUTPOST_CHECK(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    OUTPOST_CHECK(::listen(listen_fd_, 16) == 0);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::fcntl(listen_fd_, F_SETFL, O_NONBLOCK);
    thread_ = std::thread([this] { Run(); });
  }
  ~HostileServer() {
    quit_ = true;
    thread_.join();
    ::close(listen_fd_);
  }
  int port() const { return port_; }
  int connections() const { return connections_; }
  std::size_t hostile_bytes_sent() const { return hostile_sent_; }

 private:
  void Run() {
    while (!quit_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      ::fcntl(fd, F_SETFL, O_NONBLOCK);
      const int index = connections_++;
      Peer peer(fd, Clock::now() + kMaxHostileTime);
      if (index == 0) {
        if (ReadRequest(fd)) hostile_(peer);
        hostile_sent_ = peer.sent();
      } else {
        while (!quit_ && ReadRequest(fd)) {
          if (!peer.Send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         "Content-Length: 14\r\n\r\n{\"accepted\":1}")) {
            break;
          }
        }
      }
      ::close(fd);
    }
  }
  // Reads one request (header, then Content-Length bytes); false on close, error or timeout.
  bool ReadRequest(int fd) {
    std::string in;
    const auto deadline = Clock::now() + 10s;
    std::size_t need = std::string::npos;
    while (Clock::now() < deadline && !quit_) {
      std::size_t end = in.find("\r\n\r\n");
      if (end != std::string::npos && need == std::string::npos) {
        std::size_t cl = 0;
        std::size_t at = in.find("Content-Length: ");
        if (at != std::string::npos && at < end) cl = std::stoul(in.substr(at + 16));
        need = end + 4 + cl;
      }
      if (need != std::string::npos && in.size() >= need) return true;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      char buf[8192];
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n == 0) return false;
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        return false;
      }
      in.append(buf, static_cast<std::size_t>(n));
    }
    return false;
  }

  std::function<void(Peer&)> hostile_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<int> connections_{0};
  std::atomic<std::size_t> hostile_sent_{0};
  std::atomic<bool> quit_{false};
  std::thread thread_;
};

// Sends `piece` until the client stops reading or the cap.
void Repeat(Peer& p, const std::string& piece) {
  while (p.sent() < kMaxHostileBytes && p.Send(piece)) {
  }
}

struct Outcome {
  PostResult first, second;
  std::chrono::milliseconds took{0};
  long growth_kb = 0;
};

// Posts to a HostileServer running `hostile`, then once more (the healthy server).
Outcome PostTwice(const std::function<void(Peer&)>& hostile, std::int64_t request_timeout_ms) {
  HostileServer server(hostile);
  HttpSenderOptions o;
  o.endpoint = "http://127.0.0.1:" + std::to_string(server.port()) + "/api";
  o.token = "t";
  o.connect_timeout_ms = 2000;
  o.request_timeout_ms = request_timeout_ms;
  auto s = MakeHttpSender(o);
  OUTPOST_CHECK(s.ok());
  Outcome out;
  ResetHwm();
  const long before = VmHwmKb();
  const auto t0 = Clock::now();
  out.first = (*s)->Post("/sensor-data/batch", "k1", "{\"readings\":[]}");
  out.took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  out.growth_kb = VmHwmKb() - before;
  out.second = (*s)->Post("/sensor-data/batch", "k2", "{\"readings\":[]}");
  std::printf("first: status %d error \"%s\" in %lld ms, VmHWM +%ld kB, hostile bytes sent %zu\n",
              out.first.status, out.first.error.c_str(), static_cast<long long>(out.took.count()),
              out.growth_kb, server.hostile_bytes_sent());
  return out;
}

void ExpectBoundedAndRecovered(const Outcome& o, const std::string& error,
                               std::chrono::milliseconds within) {
  EXPECT_EQ(o.first.status, 0);
  EXPECT_NE(o.first.error.find(error), std::string::npos) << o.first.error;
  EXPECT_LT(o.took, within);
  EXPECT_LT(o.growth_kb, kMaxGrowthKb) << "VmHWM grew by " << o.growth_kb << " kB";
  EXPECT_EQ(o.second.status, 200) << o.second.error;
  EXPECT_EQ(o.second.body, "{\"accepted\":1}");
}

TEST(HttpSenderBoundsTest, endless_response_header_line_is_bounded) {
  Outcome o = PostTwice(
      [](Peer& p) {
        if (!p.Send("HTTP/1.1 200 OK\r\nX-Endless: ")) return;
        Repeat(p, std::string(64 * 1024, 'a'));
      },
      5000);
  ExpectBoundedAndRecovered(o, "response header larger than 65536 bytes", 5s);
}

TEST(HttpSenderBoundsTest, ten_thousand_response_headers_are_bounded) {
  Outcome o = PostTwice(
      [](Peer& p) {
        std::string r = "HTTP/1.1 200 OK\r\n";
        char line[64];
        for (int i = 0; i < 10'000; ++i) {
          std::snprintf(line, sizeof line, "X-Header-%05d: value\r\n", i);
          r += line;
        }
        r += "Content-Length: 14\r\n\r\n{\"accepted\":1}";
        if (p.Send(r)) p.WaitClosed();
      },
      5000);
  ExpectBoundedAndRecovered(o, "response header larger than 65536 bytes", 5s);
}

TEST(HttpSenderBoundsTest, huge_content_length_response_body_is_bounded) {
  Outcome o = PostTwice(
      [](Peer& p) {
        if (!p.Send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    "Content-Length: 104857600\r\n\r\n")) {
          return;
        }
        const std::string piece(64 * 1024, 'x');
        for (int i = 0; i < 1600 && p.Send(piece); ++i) {  // 100 MiB
        }
      },
      5000);
  ExpectBoundedAndRecovered(o, "response body larger than 1048576 bytes", 5s);
}

TEST(HttpSenderBoundsTest, endless_chunked_response_body_is_bounded) {
  Outcome o = PostTwice(
      [](Peer& p) {
        if (!p.Send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n")) {
          return;
        }
        Repeat(p, "10000\r\n" + std::string(0x10000, 'x') + "\r\n");
      },
      5000);
  ExpectBoundedAndRecovered(o, "response body larger than 1048576 bytes", 5s);
}

TEST(HttpSenderBoundsTest, stalled_response_times_out) {
  Outcome o = PostTwice(
      [](Peer& p) {
        if (p.Send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                   "Content-Length: 14\r\n\r\n{\"acc")) {
          p.WaitClosed();
        }
      },
      1000);
  ExpectBoundedAndRecovered(o, "request timed out after", 2500ms);
}

// One byte every 100 ms: every read makes progress, only the whole-request deadline ends it.
TEST(HttpSenderBoundsTest, trickled_response_is_bounded_by_the_request_timeout) {
  Outcome o = PostTwice(
      [](Peer& p) {
        if (!p.Send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    "Content-Length: 100\r\n\r\n")) {
          return;
        }
        for (int i = 0; i < 100; ++i) {
          // The server's behaviour under test (a trickling proxy), not test synchronisation.
          std::this_thread::sleep_for(100ms);
          if (!p.Send("x")) return;
        }
      },
      1000);
  ExpectBoundedAndRecovered(o, "request timed out after", 2500ms);
}

// The endpoint is split into host and port for the client: every malformed port names the key.
TEST(HttpSenderEndpointTest, ports_and_ipv6_literals_are_parsed_and_checked) {
  for (const char* bad : {"http://h:0", "http://h:65536", "http://h:8a", "http://h:", "http://:80",
                          "http://[::1", "http://[::1]x", "https://h:-1/api"}) {
    HttpSenderOptions o;
    o.endpoint = bad;
    auto s = MakeHttpSender(o);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_NE(s.status().message().find("cloud.api_endpoint"), std::string::npos) << bad;
  }
  for (const char* good :
       {"http://[::1]:8080/api", "https://[::1]", "http://h:65535/", "https://cloud.example.com"}) {
    HttpSenderOptions o;
    o.endpoint = good;
    OUTPOST_EXPECT_OK(MakeHttpSender(o)) << good;
  }
}

}  // namespace
}  // namespace outpost::gateway::uplink
