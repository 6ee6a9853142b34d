// outpost::http::Client against a scripted raw-socket server on loopback (exact bytes: keep-alive,
// close, chunked, 100 Continue, limits, stalls) and an Asio TLS server (verification).
#include "outpost/http/client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "outpost/testing/status_matchers.h"
#include "outpost/testing/temp_dir.h"
#include "outpost/testing/test_pki.h"
#include "outpost/testing/wait_until.h"

namespace outpost::http {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using outpost::testing::WaitUntil;

constexpr const char* kClose = "<close>";  // script step: close the connection
// Script step prefixes: send the rest of the step, then
const std::string kStall = "<stall>";           // wait until the client closes
const std::string kFlood = "<flood>";           // 'a' until the client closes (≤ 64 MiB)
const std::string kThenClose = "<then-close>";  // close
// (and read only the request's header first) shut down writing, then read nothing more
const std::string kEarly = "<early>";

// Connection i runs script[i]: for each step it reads one request (recorded), then writes the
// step's bytes (or closes, stalls, floods). After its last step it waits for the client to
// close. Connections beyond the script are closed at once. Every wait is bounded (10 s).
class ScriptedServer {
 public:
  explicit ScriptedServer(std::vector<std::vector<std::string>> script,
                          const char* address = "127.0.0.1")
      : script_(std::move(script)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    ::inet_pton(AF_INET, address, &a.sin_addr);
    OUTPOST_CHECK(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    OUTPOST_CHECK(::listen(fd_, 16) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::fcntl(fd_, F_SETFL, O_NONBLOCK);
    thread_ = std::thread([this] { Run(); });
  }
  ~ScriptedServer() {
    quit_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::uint16_t port() const { return port_; }
  int connections() const { return connections_; }
  int closed() const { return closed_; }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void Run() {
    while (!quit_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      ::fcntl(c, F_SETFL, O_NONBLOCK);
      const std::size_t index = static_cast<std::size_t>(connections_++);
      if (index < script_.size()) Serve(c, script_[index]);
      ::close(c);
      ++closed_;
    }
  }
  void Serve(int c, const std::vector<std::string>& steps) {
    std::string in;
    for (const std::string& step : steps) {
      if (step.rfind(kEarly, 0) == 0) {
        if (!ReadRequest(c, &in, /*header_only=*/true)) return;
        Send(c, step.substr(kEarly.size()));
        ::shutdown(c, SHUT_WR);
        WaitPeerShutdown(c);
        return;
      }
      if (!ReadRequest(c, &in)) return;
      if (step == kClose) return;
      if (step.rfind(kStall, 0) == 0) {
        Send(c, step.substr(kStall.size()));
        break;
      }
      if (step.rfind(kFlood, 0) == 0) {
        if (!Send(c, step.substr(kFlood.size()))) return;
        const std::string piece(64 * 1024, 'a');
        for (int i = 0; i < 1024 && Send(c, piece); ++i) {
        }
        break;
      }
      if (step.rfind(kThenClose, 0) == 0) {
        Send(c, step.substr(kThenClose.size()));
        return;
      }
      if (!Send(c, step)) return;
    }
    WaitClosed(c);
  }
  bool Wait(int c, short events, Clock::time_point deadline) {
    while (!quit_ && Clock::now() < deadline) {
      pollfd p{c, events, 0};
      int r = ::poll(&p, 1, 20);
      if (r > 0) return !(p.revents & (POLLERR | POLLNVAL));
    }
    return false;
  }
  bool Send(int c, const std::string& data) {
    std::size_t off = 0;
    const auto deadline = Clock::now() + 10s;
    while (off < data.size()) {
      if (!Wait(c, POLLOUT, deadline)) return false;
      ssize_t n = ::send(c, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) return false;
      off += static_cast<std::size_t>(n);
    }
    return true;
  }
  void WaitClosed(int c) {
    const auto deadline = Clock::now() + 10s;
    char buf[4096];
    while (Wait(c, POLLIN, deadline)) {
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return;
    }
  }
  // Until the client closes or shuts down writing, or opens its next connection, reading
  // nothing (a FIN queued behind unsent bytes never comes); bounded: 10 s.
  void WaitPeerShutdown(int c) {
    const auto deadline = Clock::now() + 10s;
    while (!quit_ && Clock::now() < deadline) {
      pollfd p[2] = {{c, POLLRDHUP, 0}, {fd_, POLLIN, 0}};
      if (::poll(p, 2, 20) <= 0) continue;
      if ((p[0].revents & (POLLRDHUP | POLLHUP | POLLERR)) || (p[1].revents & POLLIN)) return;
    }
  }
  // One request (header, then Content-Length bytes) from `in` and the socket; recorded.
  bool ReadRequest(int c, std::string* in, bool header_only = false) {
    const auto deadline = Clock::now() + 10s;
    while (true) {
      std::size_t end = in->find("\r\n\r\n");
      if (end != std::string::npos) {
        std::size_t cl = 0;
        std::size_t at = in->find("Content-Length: ");
        if (at != std::string::npos && at < end) cl = std::stoul(in->substr(at + 16));
        if (header_only) cl = 0;
        if (in->size() >= end + 4 + cl) {
          std::lock_guard<std::mutex> lock(mu_);
          requests_.push_back(in->substr(0, end + 4 + cl));
          in->erase(0, end + 4 + cl);
          return true;
        }
      }
      if (!Wait(c, POLLIN, deadline)) return false;
      char buf[8192];
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n == 0) return false;
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        return false;
      }
      in->append(buf, static_cast<std::size_t>(n));
    }
  }

  std::vector<std::vector<std::string>> script_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<int> connections_{0};
  std::atomic<int> closed_{0};
  std::atomic<bool> quit_{false};
  std::mutex mu_;  // requests_: written by the server thread, read by the test
  std::vector<std::string> requests_;
  std::thread thread_;
};

std::unique_ptr<Client> MakeClient(std::uint16_t port, std::int64_t request_timeout_ms = 5000) {
  ClientOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  o.connect_timeout_ms = 2000;
  o.request_timeout_ms = request_timeout_ms;
  auto c = Client::Make(o);
  OUTPOST_CHECK(c.ok());
  return std::move(c).value();
}

ClientRequest Post(std::string body) {
  ClientRequest r;
  r.method = "POST";
  r.target = "/api/x?y=1";
  r.headers = {{"Authorization", "Bearer t"}, {"Content-Type", "application/json"}};
  r.body = std::move(body);
  return r;
}

const std::string kOk =
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Twice: a\r\nx-twice: b\r\n\r\nok";

TEST(ClientTest, keeps_the_connection_alive_and_replaces_one_the_server_closed) {
  ScriptedServer server({{kOk, kThenClose + "HTTP/1.1 201 Created\r\nConnection: close\r\n\r\nbye"},
                         {kThenClose + kOk},
                         {kOk, kClose},
                         {kOk}});
  auto c = MakeClient(server.port());
  OUTPOST_ASSERT_OK_AND_ASSIGN(ClientResponse r, c->Send(Post("{}")));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok");
  EXPECT_EQ(r.Header("x-twice"), "a, b");
  // Reused; Connection: close with a body delimited by the close.
  OUTPOST_ASSERT_OK_AND_ASSIGN(r, c->Send(Post("second")));
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body, "bye");
  OUTPOST_ASSERT_OK_AND_ASSIGN(r, c->Send(Post("third")));  // a new connection
  EXPECT_EQ(r.status, 200);
  // The server closed that kept-alive connection while it was idle: found closed before the
  // next request, which goes on a new connection instead of failing.
  ASSERT_TRUE(
      WaitUntil("the server closed two connections", 5s, [&] { return server.closed() == 2; }));
  OUTPOST_ASSERT_OK_AND_ASSIGN(r, c->Send(Post("fourth")));
  EXPECT_EQ(r.status, 200);
  // A server that closes instead of answering: a network error, and the next request works.
  auto fifth = c->Send(Post("fifth"));
  ASSERT_FALSE(fifth.ok());
  EXPECT_EQ(fifth.status().code(), Code::kUnavailable);
  EXPECT_NE(fifth.status().message().find("before a whole response"), std::string::npos)
      << fifth.status().message();
  OUTPOST_ASSERT_OK_AND_ASSIGN(r, c->Send(Post("sixth")));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(server.connections(), 4);
  const ClientCounters n = c->counters();
  EXPECT_EQ(n.requests, 6u);
  EXPECT_EQ(n.connects, 4u);
  EXPECT_EQ(n.reused, 2u);
  EXPECT_EQ(n.responses, 5u);
  EXPECT_EQ(n.network_errors, 1u);
  const auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 6u);
  EXPECT_EQ(reqs[0],
            "POST /api/x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(server.port()) +
                "\r\nAuthorization: Bearer t\r\nContent-Type: application/json\r\n"
                "Content-Length: 2\r\n\r\n{}");
}

TEST(ClientTest, reads_chunked_bodies_and_skips_100_continue) {
  ScriptedServer server(
      {{std::string("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n!\r\n"
                    "0\r\nX-Trailer: t\r\n\r\n"),
        "HTTP/1.1 204 No Content\r\n\r\n"}});
  auto c = MakeClient(server.port());
  OUTPOST_ASSERT_OK_AND_ASSIGN(ClientResponse r, c->Send(Post("{}")));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello!");
  OUTPOST_ASSERT_OK_AND_ASSIGN(r, c->Send(Post("{}")));
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(c->counters().connects, 1u);
}

TEST(ClientTest, limits_are_configurable_specific_and_counted) {
  ScriptedServer server({{"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n01234567890"},
                         {"HTTP/1.1 200 OK\r\nX-Long: " + std::string(200, 'v') + "\r\n\r\n"},
                         {kFlood + "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;"},
                         {"HTTP/1.1 abc\r\n\r\n"},
                         {kOk}});
  ClientOptions o;
  o.host = "127.0.0.1";
  o.port = server.port();
  o.max_header_bytes = 128;
  o.max_body_bytes = 10;
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto c, Client::Make(o));
  auto r = c->Send(Post("{}"));
  EXPECT_EQ(r.status().code(), Code::kResourceExhausted);
  EXPECT_EQ(r.status().message(), "response body larger than 10 bytes");
  r = c->Send(Post("{}"));
  EXPECT_EQ(r.status().message(), "response header larger than 128 bytes");
  // An endless chunk-extension line (Beast waits for its end): bounded by max_header_bytes.
  r = c->Send(Post("{}"));
  EXPECT_EQ(r.status().message(), "response chunk line larger than 128 bytes");
  r = c->Send(Post("{}"));
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("bad response from 127.0.0.1:"), std::string::npos)
      << r.status().message();
  OUTPOST_ASSERT_OK_AND_ASSIGN(ClientResponse ok, c->Send(Post("{}")));
  EXPECT_EQ(ok.status, 200);
  const ClientCounters n = c->counters();
  EXPECT_EQ(n.body_too_large, 1u);
  EXPECT_EQ(n.header_too_large, 2u);
  EXPECT_EQ(n.bad_responses, 1u);
  EXPECT_EQ(n.connects, 5u);

  ClientRequest bad = Post("{}");
  bad.headers.emplace_back("X-Injected", "a\r\nEvil: 1");
  EXPECT_EQ(c->Send(bad).status().code(), Code::kInvalidArgument);
}

TEST(ClientTest, an_answer_before_the_whole_request_is_written_is_read) {
  // 413 at the header of a 64 MiB body, which the server never reads: heard while writing.
  ScriptedServer server(
      {{kEarly + "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\n\r\nbig"}, {kOk}});
  auto c = MakeClient(server.port(), /*request_timeout_ms=*/10'000);
  const auto t0 = Clock::now();
  OUTPOST_ASSERT_OK_AND_ASSIGN(ClientResponse r, c->Send(Post(std::string(64 << 20, 'x'))));
  EXPECT_LT(Clock::now() - t0, 5s);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.body, "big");
  OUTPOST_ASSERT_OK_AND_ASSIGN(r, c->Send(Post("{}")));  // on a new connection
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(c->counters().connects, 2u);
}

TEST(ClientTest, stop_aborts_a_request_in_flight_from_another_thread) {
  ScriptedServer server({{kStall}});
  auto c = MakeClient(server.port(), /*request_timeout_ms=*/60'000);
  std::atomic<bool> done{false};
  Status got;
  Clock::time_point returned;
  std::thread sender([&] {
    got = c->Send(Post("{}")).status();
    returned = Clock::now();
    done = true;
  });
  ASSERT_TRUE(WaitUntil("the request reaches the server", 5s,
                        [&] { return server.requests().size() == 1; }));
  const auto t0 = Clock::now();
  c->Stop();
  sender.join();
  EXPECT_LT(returned - t0, 1s);
  EXPECT_EQ(got.code(), Code::kCancelled) << got.ToString();
  EXPECT_EQ(c->Send(Post("{}")).status().code(), Code::kCancelled);  // stopped for good
  EXPECT_EQ(c->counters().cancelled, 2u);
}

TEST(ClientTest, request_and_connect_deadlines) {
  ScriptedServer server({{kStall + "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"}});
  auto c = MakeClient(server.port(), /*request_timeout_ms=*/300);
  const auto t0 = Clock::now();
  auto r = c->Send(Post("{}"));
  EXPECT_LT(Clock::now() - t0, 1500ms);
  EXPECT_EQ(r.status().code(), Code::kDeadlineExceeded);
  EXPECT_EQ(r.status().message().rfind("request timed out after ", 0), 0u) << r.status().message();

  // A server that accepts but never answers the TLS handshake: the connect deadline.
  ScriptedServer silent({{kStall}});
  ClientOptions o;
  o.host = "127.0.0.1";
  o.port = silent.port();
  o.tls = true;
  o.connect_timeout_ms = 300;
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto t, Client::Make(o));
  const auto t1 = Clock::now();
  r = t->Send(Post("{}"));
  EXPECT_LT(Clock::now() - t1, 1500ms);
  EXPECT_EQ(r.status().code(), Code::kDeadlineExceeded);
  EXPECT_EQ(r.status().message().rfind("connect to 127.0.0.1:", 0), 0u) << r.status().message();
  EXPECT_EQ(t->counters().timeouts, 1u);
}

// A one-shot Asio TLS server answering one request per connection with 200 "tls".
class TlsServer {
 public:
  TlsServer(const outpost::testing::TestPki& pki, const char* address)
      : ssl_(asio::ssl::context::tls_server),
        acceptor_(io_, asio::ip::tcp::endpoint(asio::ip::make_address(address), 0)) {
    ssl_.use_certificate_chain_file(pki.server_cert);
    ssl_.use_private_key_file(pki.server_key, asio::ssl::context::pem);
    Accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~TlsServer() {
    io_.stop();
    thread_.join();
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  using Stream = asio::ssl::stream<asio::ip::tcp::socket>;
  void Accept() {
    acceptor_.async_accept([this](const asio::error_code& ec, asio::ip::tcp::socket s) {
      if (ec) return;
      auto stream = std::make_shared<Stream>(std::move(s), ssl_);
      stream->async_handshake(Stream::server, [stream](const asio::error_code& hec) {
        if (hec) return;
        auto buf = std::make_shared<std::string>();
        asio::async_read_until(
            *stream, asio::dynamic_buffer(*buf), "\r\n\r\n",
            [stream, buf](const asio::error_code& rec, std::size_t) {
              if (rec) return;
              static const std::string kAnswer =
                  "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\ntls";
              asio::async_write(*stream, asio::buffer(kAnswer),
                                [stream](const asio::error_code&, std::size_t) {});
            });
      });
      Accept();
    });
  }
  asio::io_context io_;
  asio::ssl::context ssl_;
  asio::ip::tcp::acceptor acceptor_;
  std::thread thread_;
};

TEST(ClientTlsTest, verifies_the_certificate_and_the_name_or_ip) {
  outpost::testing::TempDir dir("outpost-http-client-tls");
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto pki, outpost::testing::GenerateTestPki(dir.path()));
  TlsServer server(pki, "127.0.0.1");
  auto send = [&](const std::string& host, const std::string& ca, std::uint16_t port) {
    ClientOptions o;
    o.host = host;
    o.port = port;
    o.tls = true;
    o.ca_file = ca;
    o.ca_file_key = "cloud.ca_file";
    auto c = Client::Make(o);
    OUTPOST_CHECK(c.ok());
    ClientRequest r;
    return (*c)->Send(r);
  };
  auto ok = send("127.0.0.1", pki.ca_cert, server.port());  // the certificate's IP SAN
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->body, "tls");
  auto by_name = send("localhost", pki.ca_cert, server.port());  // its DNS SAN
  ASSERT_TRUE(by_name.ok()) << by_name.status().ToString();

  auto wrong_ca = send("127.0.0.1", pki.other_ca_cert, server.port());
  ASSERT_FALSE(wrong_ca.ok());
  EXPECT_EQ(wrong_ca.status().code(), Code::kUnavailable);
  EXPECT_NE(wrong_ca.status().message().find("did not verify"), std::string::npos);
  EXPECT_NE(wrong_ca.status().message().find("cloud.ca_file"), std::string::npos)
      << wrong_ca.status().message();

  // 127.0.0.2 is loopback too, but not in the certificate.
  TlsServer other(pki, "127.0.0.2");
  auto wrong_ip = send("127.0.0.2", pki.ca_cert, other.port());
  ASSERT_FALSE(wrong_ip.ok());
  EXPECT_NE(wrong_ip.status().message().find("IP address mismatch"), std::string::npos)
      << wrong_ip.status().message();

  ClientOptions missing;
  missing.host = "127.0.0.1";
  missing.port = 1;
  missing.tls = true;
  missing.ca_file = dir.path() + "/no-such.pem";
  missing.ca_file_key = "cloud.ca_file";
  auto m = Client::Make(missing);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("cloud.ca_file"), std::string::npos);
}

}  // namespace
}  // namespace outpost::http
