// The Server against raw loopback clients: routing, keep-alive, pipelining, answers from other
// threads, every limit and timeout answered with its problem+json and counted, max_connections,
// streams (and a client too slow for one), TLS, and Stop() with work in flight.
#include "outpost/http/server.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "outpost/testing/raw_http.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/temp_dir.h"
#include "outpost/testing/test_pki.h"
#include "outpost/testing/wait_until.h"

namespace outpost::http {
namespace {

using namespace std::chrono_literals;
using outpost::testing::RawHttpConnection;
using outpost::testing::RawHttpResponse;
using outpost::testing::WaitUntil;

std::string Get(const std::string& target, const std::string& extra = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: t\r\n" + extra + "\r\n";
}

// One loop on its own thread, and a Server on it.
class ServerTest : public ::testing::Test {
 protected:
  ServerTest() : guard_(asio::make_work_guard(loop_)) {
    thread_ = std::thread([this] { loop_.run(); });
    router_.Add("GET", "/hello", [](Request req, Responder r) {
      Response resp;
      resp.content_type = "text/plain";
      resp.body = "hello " + req.Header("x-name");
      r.Send(std::move(resp));
    });
    router_.Add("POST", "/echo", [this](Request req, Responder r) {
      bodies_seen_++;
      Response resp;
      resp.content_type = "application/octet-stream";
      resp.body = std::move(req.body);
      r.Send(std::move(resp));
    });
    router_.Add("GET", "/later", [](Request, Responder r) {
      std::thread([r = std::move(r)]() mutable {
        std::this_thread::sleep_for(20ms);  // an answer computed elsewhere, after the handler
        Response resp;
        resp.body = "{\"later\":true}";
        r.Send(std::move(resp));
      }).detach();
    });
    router_.Add("GET", "/forgotten", [](Request, Responder) {});
    router_.Add("GET", "/files/*", [](Request req, Responder r) {
      Response resp;
      resp.content_type = "text/plain";
      resp.body = "file " + req.path;
      r.Send(std::move(resp));
    });
    router_.Add("GET", "/events", [this](Request, Responder r) {
      Response head;
      head.content_type = "text/event-stream";
      auto s = r.StartStream(std::move(head));
      std::lock_guard<std::mutex> lock(mu_);
      streams_.push_back(s);
    });
  }

  ~ServerTest() override {
    server_.reset();
    guard_.reset();
    loop_.stop();
    thread_.join();
  }

  std::uint16_t StartServer(ServerOptions o = {}) {
    o.port = 0;
    server_ =
        std::make_unique<Server>(std::vector<asio::io_context*>{&loop_}, o, std::ref(router_));
    auto port = server_->Start();
    EXPECT_TRUE(port.ok()) << port.status().ToString();
    return port.ok() ? *port : 0;
  }

  std::vector<std::shared_ptr<Stream>> Streams() {
    std::lock_guard<std::mutex> lock(mu_);
    return streams_;
  }

  // Starts a /events stream on `c` with a 4 KiB receive buffer (a client that reads slowly, if
  // at all); null (and a failure) when it does not start.
  std::shared_ptr<Stream> OpenSlowStream(RawHttpConnection* c) {
    int small = 4096;
    setsockopt(c->fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    const std::size_t before = Streams().size();
    std::string req = Get("/events");
    if (c->SendSome(req) != static_cast<long>(req.size()) ||
        !WaitUntil("the stream started", 5s, [&] { return Streams().size() == before + 1; })) {
      ADD_FAILURE() << "the stream did not start";
      return nullptr;
    }
    return Streams().back();
  }

  asio::io_context loop_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::thread thread_;
  Router router_;
  std::unique_ptr<Server> server_;
  std::atomic<int> bodies_seen_{0};
  std::mutex mu_;
  std::vector<std::shared_ptr<Stream>> streams_;
};

TEST_F(ServerTest, AnswersAndKeepsTheConnection) {
  std::uint16_t port = StartServer();
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto c, RawHttpConnection::Connect(port));
  for (int i = 0; i < 3; ++i) {
    OUTPOST_ASSERT_OK_AND_ASSIGN(
        RawHttpResponse r, c.Exchange(Get("/hello", "X-Name: n" + std::to_string(i) + "\r\n")));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "hello n" + std::to_string(i));
    EXPECT_EQ(r.Header("content-type"), "text/plain");
    EXPECT_EQ(r.Header("connection"), "keep-alive");
  }
  EXPECT_EQ(server_->stats().connections_accepted.load(), 1u);
  EXPECT_EQ(server_->stats().requests.load(), 3u);
  EXPECT_EQ(server_->stats().responses_by_class[2].load(), 3u);
}

TEST_F(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
  std::uint16_t port = StartServer();
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto c, RawHttpConnection::Connect(port));
  std::string three = Get("/later") + Get("/hello", "X-Name: b\r\n") + Get("/files/c");
  ASSERT_EQ(c.SendSome(three), static_cast<long>(three.size()));
  OUTPOST_ASSERT_OK_AND_ASSIGN(RawHttpResponse a, c.Read());
  OUTPOST_ASSERT_OK_AND_ASSIGN(RawHttpResponse b, c.Read());
  OUTPOST_ASSERT_OK_AND_ASSIGN(RawHttpResponse d, c.Read());
  EXPECT_EQ(a.body, "{\"later\":true}");
  EXPECT_EQ(b.body, "hello b");
  EXPECT_EQ(d.body, "file /files/c");
}

TEST_F(ServerTest, RoutesUnknownPathsTo404AndOtherMethodsTo405) {
  std::uint16_t port = StartServer();
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto c, RawHttpConnection::Connect(port));
  OUTPOST_ASSERT_OK_AND_ASSIGN(RawHttpResponse r, c.Exchange(Get("/nope")));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.Header("content-type"), "application/problem+json");
  EXPECT_NE(r.body.find("\"code\":\"not_found\""), std::string::npos) << r.body;
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      r, c.Exchange("DELETE /hello HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.Header("allow"), "GET");
  // HEAD falls back to GET and sends the head only.
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto h, RawHttpConnection::Connect(port));
  ASSERT_GT(h.SendSome("HEAD /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"), 0);
  ASSERT_TRUE(h.WaitClosed(5s));
  const std::string& head = h.received();
  EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << head;
  EXPECT_NE(head.find("Content-Length: 6\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n") << head;
}

TEST_F(ServerTest, AnUnansweredRequestGets500) {
  std::uint16_t port = StartServer();
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto c, RawHttpConnection::Connect(port));
  OUTPOST_ASSERT_OK_AND_ASSIGN(RawHttpResponse r, c.Exchange(Get("/forgotten")));
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("no_response"), std::string::npos);
}

TEST_F(ServerTest, EchoesBodiesChunkedOrNotAndAnswersExpectContinue) {
  std::uint16_t port = StartServer();
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto c, RawHttpConnection::Connect(port));
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      RawHttpResponse r,
      c.Exchange("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "abcde");
  // Expect: 100-continue: the header alone is answered 100 before any body byte is sent.
  std::string head =
      "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
  ASSERT_EQ(c.SendSome(head), static_cast<long>(head.size()));
  ASSERT_TRUE(WaitUntil("100 Continue", 5s, [&] {
    c.closed();  // reads what has arrived
    return c.received().find("HTTP/1.1 100 Continue\r\n\r\n") != std::string::npos;
  }));
  OUTPOST_ASSERT_OK_AND_ASSIGN(r, c.Exchange("wxyz"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "wxyz");
}

struct Refusal {
  std::string name;
  std::string request;
  int status;
  std::string code;
  ParseError counter;
};

TEST_F(ServerTest, EveryLimitIsAnsweredWithItsCodeCountedAndClosed) {
  ServerOptions o;
  o.limits.max_request_line_bytes = 256;
  o.limits.max_header_line_bytes = 256;
  o.limits.max_header_count = 10;
  o.limits.max_header_bytes = 1024;
  o.limits.max_body_bytes = 1000;
  std::uint16_t port = StartServer(o);
  std::string many;
  for (int i = 0; i < 11; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  std::vector<Refusal> cases = {
      {"request line", "GET /" + std::string(300, 'a') + " HTTP/1.1\r\n\r\n", 414,
       "request_line_too_long", ParseError::kRequestLineTooLong},
      {"header line", Get("/hello", "X-Big: " + std::string(300, 'b') + "\r\n"), 431,
       "header_line_too_long", ParseError::kHeaderLineTooLong},
      {"header count", Get("/hello", many), 431, "too_many_headers", ParseError::kTooManyHeaders},
      {"content-length", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n", 413,
       "body_too_large", ParseError::kBodyTooLarge},
      {"gzip",
       "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Encoding: gzip\r\nContent-Length: 1\r\n\r\nx",
       415, "unsupported_content_encoding", ParseError::kUnsupportedEncoding},
      {"syntax", "GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400, "bad_request",
       ParseError::kBadRequest},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(k.name);
    OUTPOST_ASSERT_OK_AND_ASSIGN(auto c, RawHttpConnection::Connect(port));
    OUTPOST_ASSERT_OK_AND_ASSIGN(RawHttpResponse r, c.Exchange(k.request));
    EXPECT_EQ(r.status, k.status);
    EXPECT_EQ(r.Header("content-type"), "application/problem+json");
    EXPECT_EQ(r.Header("connection"), "close");
    EXPECT_NE(r.body.find("\"code\":\"" + k.code + "\""), std::string::npos) << r.body;
    EXPECT_TRUE(c.WaitClosed(5s));
    EXPECT_EQ(server_->stats().refused[static_cast<int>(k.counter)].load(), 1u);
  }
  EXPECT_EQ(bodies_seen_.load(), 0);
}

TEST_F(ServerTest, AnEndlessChunkedBodyIsCutAtTheLimit) {
  ServerOptions o;
  o.limits.max_body_bytes = 64 * 1024;
  std::uint16_t port = StartServer(o);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto c, RawHttpConnection::Connect(port));
  bool head_sent = false;
  std::size_t sent = 0;
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      RawHttpResponse r,
      c.Exchange(
          [&](std::string* out) {
            if (!head_sent) {
              head_sent = true;
              *out += "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
            }
            if (sent > 64u * 1024 * 1024) return false;  // the test's own cap: 64 MiB
            *out += "1000\r\n" + std::string(4096, 'x') + "\r\n";
            sent += 4096;
            return true;
          },
          20s));
  EXPECT_EQ(r.status, 413);
  EXPECT_LT(sent, 8u * 1024 * 1024);  // refused near the limit, not at the test's cap
  EXPECT_EQ(bodies_seen_.load(), 0);
}

TEST_F(ServerTest, AHeaderTooSlowGets408AndASilentConnectionIsClosed) {
  ServerOptions o;
  o.header_timeout_ms = 300;
  std::uint16_t port = StartServer(o);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto slow, RawHttpConnection::Connect(port));
  ASSERT_GT(slow.SendSome("GET /hello HTTP/1.1\r\nX-A: "), 0);
  OUTPOST_ASSERT_OK_AND_ASSIGN(RawHttpResponse r, slow.Read(5s));
  EXPECT_EQ(r.status, 408);
  EXPECT_NE(r.body.find("header_timeout"), std::string::npos);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto silent, RawHttpConnection::Connect(port));
  EXPECT_TRUE(silent.WaitClosed(5s));
  EXPECT_TRUE(silent.received().empty());
  EXPECT_EQ(server_->stats().header_timeouts.load(), 2u);
}

TEST_F(ServerTest, AnIdleKeepAliveConnectionIsClosed) {
  ServerOptions o;
  o.idle_timeout_ms = 200;
  std::uint16_t port = StartServer(o);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto c, RawHttpConnection::Connect(port));
  OUTPOST_ASSERT_OK_AND_ASSIGN(RawHttpResponse r, c.Exchange(Get("/hello")));
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(c.WaitClosed(5s));
  EXPECT_EQ(server_->stats().idle_timeouts.load(), 1u);
  EXPECT_TRUE(WaitUntil("no connection open", 5s,
                        [&] { return server_->stats().connections_open.load() == 0; }));
}

TEST_F(ServerTest, OneConnectionOverTheMaximumGets503AndTheOthersKeepWorking) {
  ServerOptions o;
  o.max_connections = 4;
  std::uint16_t port = StartServer(o);
  std::vector<RawHttpConnection> held;
  for (int i = 0; i < 4; ++i) {
    OUTPOST_ASSERT_OK_AND_ASSIGN(auto c, RawHttpConnection::Connect(port));
    OUTPOST_ASSERT_OK_AND_ASSIGN(RawHttpResponse r, c.Exchange(Get("/hello")));
    EXPECT_EQ(r.status, 200);
    held.push_back(std::move(c));
  }
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto extra, RawHttpConnection::Connect(port));
  OUTPOST_ASSERT_OK_AND_ASSIGN(RawHttpResponse r, extra.Exchange(Get("/hello")));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.Header("retry-after"), "1");
  EXPECT_NE(r.body.find("server_full"), std::string::npos);
  EXPECT_EQ(server_->stats().connections_rejected_full.load(), 1u);
  OUTPOST_ASSERT_OK_AND_ASSIGN(r, held[0].Exchange(Get("/hello")));
  EXPECT_EQ(r.status, 200);
  held[1].Close();
  ASSERT_TRUE(WaitUntil("a slot is free", 5s,
                        [&] { return server_->stats().connections_open.load() == 3; }));
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto again, RawHttpConnection::Connect(port));
  OUTPOST_ASSERT_OK_AND_ASSIGN(r, again.Exchange(Get("/hello")));
  EXPECT_EQ(r.status, 200);
}

TEST_F(ServerTest, ARangeHeaderIsIgnoredAndCounted) {
  std::uint16_t port = StartServer();
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto c, RawHttpConnection::Connect(port));
  OUTPOST_ASSERT_OK_AND_ASSIGN(RawHttpResponse r,
                               c.Exchange(Get("/hello", "Range: bytes=0-0,1-1,2-2\r\n")));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello ");
  EXPECT_EQ(server_->stats().ranges_ignored.load(), 1u);
}

TEST_F(ServerTest, AStreamSendsChunksUntilClosedThenTheConnectionServesAgain) {
  std::uint16_t port = StartServer();
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto c, RawHttpConnection::Connect(port));
  std::string req = Get("/events");
  ASSERT_EQ(c.SendSome(req), static_cast<long>(req.size()));
  ASSERT_TRUE(WaitUntil("the stream started", 5s, [&] { return Streams().size() == 1; }));
  auto s = Streams()[0];
  EXPECT_TRUE(s->Write("data: 1\n\n"));
  EXPECT_TRUE(s->Write("data: 2\n\n"));
  ASSERT_TRUE(WaitUntil("streams_open is 1", 5s,
                        [&] { return server_->stats().streams_open.load() == 1; }));
  s->Close();
  EXPECT_FALSE(s->Write("data: 3\n\n"));
  OUTPOST_ASSERT_OK_AND_ASSIGN(RawHttpResponse r, c.Read());
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("content-type"), "text/event-stream");
  EXPECT_EQ(r.body, "data: 1\n\ndata: 2\n\n");
  OUTPOST_ASSERT_OK_AND_ASSIGN(r, c.Exchange(Get("/hello")));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(server_->stats().streams_open.load(), 0);
}

TEST_F(ServerTest, AStreamClientThatDoesNotReadIsDropped) {
  ServerOptions o;
  o.max_stream_buffer_bytes = 64 * 1024;
  std::uint16_t port = StartServer(o);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto c, RawHttpConnection::Connect(port));
  auto s = OpenSlowStream(&c);
  ASSERT_NE(s, nullptr);
  std::string event = "data: " + std::string(1000, 'e') + "\n\n";
  int written = 0;
  while (written < 100000 && s->Write(event)) written++;  // bounded: 100 MB at most
  EXPECT_LT(written, 100000);
  ASSERT_TRUE(WaitUntil("the slow client was dropped", 5s,
                        [&] { return server_->stats().streams_dropped_slow.load() == 1; }));
  EXPECT_TRUE(s->closed());
  EXPECT_TRUE(WaitUntil("streams_open is 0", 5s,
                        [&] { return server_->stats().streams_open.load() == 0; }));
  // Reset, not a FIN queued behind the unread bytes (which a peer that never reads never
  // gets, while the server's kernel holds the buffers): the client's socket is closed at once,
  // without reading anything.
  EXPECT_TRUE(WaitUntil("the dropped client is reset", 5s, [&] {
    tcp_info info{};
    socklen_t len = sizeof info;
    return ::getsockopt(c.fd(), IPPROTO_TCP, TCP_INFO, &info, &len) == 0 &&
           info.tcpi_state == TCP_CLOSE;
  }));
}

// A producer that waits for WhenDrained before each write is never dropped, however slowly its
// client reads: the queue stays under the bound, and every byte arrives.
TEST_F(ServerTest, AProducerPacedByWhenDrainedIsNotDroppedBySlowReading) {
  ServerOptions o;
  o.max_stream_buffer_bytes = 64 * 1024;
  std::uint16_t port = StartServer(o);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto c, RawHttpConnection::Connect(port));
  auto s = OpenSlowStream(&c);
  ASSERT_NE(s, nullptr);
  constexpr int kChunks = 400;  // 400 KB: several times the bound and the socket buffers
  const std::string chunk(1000, 'x');
  std::atomic<int> written{0};
  std::atomic<int> waits{0};
  // Writes up to 32 KB, then asks to be called back once at most 16 KB are queued.
  std::function<void()> produce = [&] {
    for (int i = 0; i < 32 && written < kChunks; ++i, ++written) {
      if (!s->Write(chunk)) return;
    }
    if (written == kChunks) return s->Close();
    ++waits;
    s->WhenDrained(16 * 1024, produce);
  };
  produce();
  OUTPOST_ASSERT_OK_AND_ASSIGN(RawHttpResponse r, c.Read(20s));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), static_cast<std::size_t>(kChunks) * chunk.size());
  EXPECT_EQ(server_->stats().streams_dropped_slow.load(), 0u);
  EXPECT_GT(waits.load(), 1) << "the client never held the producer back";
}

// WhenDrained's callback also runs when the stream ends (here: Abort), so a producer waiting on
// it learns the stream is over; the client sees the body cut short and the connection closed.
TEST_F(ServerTest, AbortCutsTheBodyShortAndWakesAWaitingProducer) {
  ServerOptions o;
  std::uint16_t port = StartServer(o);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto c, RawHttpConnection::Connect(port));
  auto s = OpenSlowStream(&c);
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(s->Write(std::string(1000, 'a')));
  std::atomic<bool> woken{false};
  s->WhenDrained(0, [&] { woken = true; });
  s->Abort();
  EXPECT_TRUE(s->closed());
  EXPECT_TRUE(WaitUntil("the waiting producer was woken", 5s, [&] { return woken.load(); }));
  auto r = c.Read(5s);
  EXPECT_FALSE(r.ok()) << "a whole response arrived: " << r->body.size() << " bytes";
  EXPECT_TRUE(c.WaitClosed(5s));
  EXPECT_EQ(server_->stats().streams_dropped_slow.load(), 0u);
}

TEST_F(ServerTest, StopEndsOpenStreamsAndConnections) {
  std::uint16_t port = StartServer();
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto c, RawHttpConnection::Connect(port));
  std::string req = Get("/events");
  ASSERT_EQ(c.SendSome(req), static_cast<long>(req.size()));
  ASSERT_TRUE(WaitUntil("the stream started", 5s, [&] { return Streams().size() == 1; }));
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto idle, RawHttpConnection::Connect(port));
  server_->Stop();
  EXPECT_TRUE(Streams()[0]->closed());
  EXPECT_FALSE(Streams()[0]->Write("data: late\n\n"));
  EXPECT_TRUE(c.WaitClosed(5s));
  EXPECT_TRUE(idle.WaitClosed(5s));
  EXPECT_FALSE(RawHttpConnection::Connect(port, 1s).ok());
  server_->Stop();  // idempotent
}

TEST_F(ServerTest, StopWithGraceLetsAnAnswerInFlightFinishAndClosesTheIdle) {
  std::uint16_t port = StartServer();
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto idle, RawHttpConnection::Connect(port));
  OUTPOST_ASSERT_OK_AND_ASSIGN(RawHttpResponse r, idle.Exchange(Get("/hello")));
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto busy, RawHttpConnection::Connect(port));
  std::string req = Get("/later");  // answered from another thread 20 ms after the handler ran
  ASSERT_EQ(busy.SendSome(req), static_cast<long>(req.size()));
  ASSERT_TRUE(WaitUntil("the request reached its handler", 5s,
                        [&] { return server_->stats().requests.load() == 2; }));
  server_->Stop(5s);
  OUTPOST_ASSERT_OK_AND_ASSIGN(r, busy.Read(5s));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{\"later\":true}");
  EXPECT_EQ(r.Header("connection"), "close");
  EXPECT_TRUE(idle.WaitClosed(5s));
  EXPECT_TRUE(busy.WaitClosed(5s));
}

TEST_F(ServerTest, StartRefusesBadOptionsAndABusyPort) {
  ServerOptions o;
  o.max_connections = 0;
  Server bad({&loop_}, o, std::ref(router_));
  OUTPOST_EXPECT_CODE(bad.Start(), Code::kInvalidArgument);
  o = {};
  o.tls_cert_file = "/nonexistent/cert.pem";
  o.tls_key_file = "/nonexistent/key.pem";
  Server no_tls({&loop_}, o, std::ref(router_));
  OUTPOST_EXPECT_CODE(no_tls.Start(), Code::kInvalidArgument);
  std::uint16_t port = StartServer();
  o = {};
  o.port = port;
  Server busy({&loop_}, o, std::ref(router_));
  OUTPOST_EXPECT_CODE(busy.Start(), Code::kUnavailable);
}

TEST_F(ServerTest, RendersItsCountersForPrometheus) {
  std::uint16_t port = StartServer();
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto c, RawHttpConnection::Connect(port));
  OUTPOST_ASSERT_OK_AND_ASSIGN(RawHttpResponse r, c.Exchange(Get("/hello")));
  std::string text = server_->stats().RenderPrometheus("outpost_test_http_");
  EXPECT_NE(text.find("outpost_test_http_requests_total 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("outpost_test_http_responses_total{class=\"2xx\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("outpost_test_http_requests_refused_total{reason=\"body_too_large\"} 0\n"),
            std::string::npos);
}

TEST_F(ServerTest, AccessLogSeesEveryResponse) {
  std::mutex mu;
  std::vector<AccessLogEntry> log;
  ServerOptions o;
  o.access_log = [&](const AccessLogEntry& e) {
    std::lock_guard<std::mutex> lock(mu);
    log.push_back(e);
  };
  std::uint16_t port = StartServer(o);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto c, RawHttpConnection::Connect(port));
  OUTPOST_ASSERT_OK_AND_ASSIGN(RawHttpResponse r, c.Exchange(Get("/hello?x=1")));
  OUTPOST_ASSERT_OK_AND_ASSIGN(r, c.Exchange(Get("/nope")));
  ASSERT_TRUE(WaitUntil("two log entries", 5s, [&] {
    std::lock_guard<std::mutex> lock(mu);
    return log.size() == 2;
  }));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(log[0].method, "GET");
  EXPECT_EQ(log[0].target, "/hello?x=1");
  EXPECT_EQ(log[0].status, 200);
  EXPECT_GT(log[0].bytes_sent, 0u);
  EXPECT_EQ(log[1].status, 404);
  EXPECT_EQ(log[0].remote.rfind("127.0.0.1:", 0), 0u) << log[0].remote;
}

// TLS: a client on Asio's ssl stream (the cloud's HTTPS option).
TEST_F(ServerTest, ServesHttpsWithTheGivenCertificate) {
  outpost::testing::TempDir dir;
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto pki, outpost::testing::GenerateTestPki(dir.path()));
  ServerOptions o;
  o.tls_cert_file = pki.server_cert;
  o.tls_key_file = pki.server_key;
  std::uint16_t port = StartServer(o);

  asio::io_context client_loop;
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  ctx.load_verify_file(pki.ca_cert);
  ctx.set_verify_mode(asio::ssl::verify_peer);
  asio::ssl::stream<asio::ip::tcp::socket> tls(client_loop, ctx);
  SSL_set_tlsext_host_name(tls.native_handle(), "localhost");
  tls.next_layer().connect({asio::ip::make_address("127.0.0.1"), port});
  asio::error_code ec;
  tls.handshake(asio::ssl::stream_base::client, ec);
  ASSERT_FALSE(ec) << ec.message();
  std::string req = "GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  asio::write(tls, asio::buffer(req), ec);
  ASSERT_FALSE(ec) << ec.message();
  std::string got;
  char buf[4096];
  for (;;) {
    std::size_t n = tls.read_some(asio::buffer(buf), ec);
    got.append(buf, n);
    if (ec) break;
  }
  EXPECT_EQ(got.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << got;
  EXPECT_NE(got.find("\r\n\r\nhello "), std::string::npos) << got;

  // A plain-text client on the TLS port gets nothing and costs a counted handshake failure.
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto plain, RawHttpConnection::Connect(port));
  EXPECT_FALSE(plain.Exchange(Get("/hello"), 5s).ok());
  EXPECT_TRUE(WaitUntil("a handshake failure is counted", 5s,
                        [&] { return server_->stats().tls_handshake_failures.load() == 1; }));
}

}  // namespace
}  // namespace outpost::http
