// HttpServer on real loopback sockets over a FakeStorage whose Authenticate the test can hold:
// with every database thread busy and the queue full, the next request is answered at once by
// the event loop with 503 overloaded (the loops never wait for the database), and the held
// requests are answered once the database moves again.
#include "outpost/cloud/api/http_server.h"

#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "fake_storage.h"
#include "outpost/cloud/crypto.h"
#include "outpost/testing/raw_http.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/wait_until.h"

namespace outpost::cloud::api {
namespace {

using namespace std::chrono_literals;
using outpost::testing::RawHttpConnection;
using outpost::testing::WaitUntil;

constexpr const char* kGateways =
    "GET /v1/gateways HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer secret\r\n\r\n";

bool HasLine(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

TEST(HttpServer, full_database_pool_is_answered_503_overloaded_at_once) {
  FakeStorage storage;
  OUTPOST_ASSERT_OK(storage.CreateToken("gw1", false, Sha256Hex("secret"), 0));
  SystemClock clock;
  Service service(storage, clock, ServiceOptions{});
  HttpServerOptions o;
  o.port = 0;
  o.http_threads = 1;
  o.db_threads = 1;
  o.db_queue = 1;
  HttpServer server(service, o);
  OUTPOST_ASSERT_OK_AND_ASSIGN(int port, server.Bind());
  std::thread run([&] { OUTPOST_EXPECT_OK(server.Run()); });

  storage.CloseGate();
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto running, RawHttpConnection::Connect(port));
  ASSERT_GT(running.SendSome(kGateways), 0);
  ASSERT_TRUE(
      WaitUntil("the one database thread is held", 5s, [&] { return storage.held() == 1; }));
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto queued, RawHttpConnection::Connect(port));
  ASSERT_GT(queued.SendSome(kGateways), 0);
  ASSERT_TRUE(WaitUntil("one request waits in the queue", 5s, [&] {
    return HasLine(server.RenderMetrics(), "outpost_cloud_db_pool_queued 1");
  }));

  OUTPOST_ASSERT_OK_AND_ASSIGN(auto over, RawHttpConnection::Connect(port));
  const auto start = std::chrono::steady_clock::now();
  auto r = over.Exchange("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 5s);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 503) << r->body;
  EXPECT_EQ(r->Header("content-type"), "application/problem+json");
  EXPECT_EQ(r->Header("retry-after"), "1");
  const auto body = nlohmann::json::parse(r->body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << r->body;
  EXPECT_EQ(body["error"].value("code", ""), "overloaded") << r->body;
  EXPECT_LT(took, 1s) << "the refusal waited for the database";
  EXPECT_TRUE(HasLine(server.RenderMetrics(), "outpost_cloud_db_pool_rejected_full_total 1"));

  storage.OpenGate();
  auto first = running.Read(5s);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->status, 200) << first->body;
  auto second = queued.Read(5s);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->status, 200) << second->body;
  // Counted by endpoint like every answer, and the HTTP layer's counters are on /metrics.
  const std::string metrics = service.metrics().Render();
  EXPECT_NE(metrics.find(R"(outpost_cloud_http_requests_total{endpoint="healthz",status="503"} 1)"),
            std::string::npos)
      << metrics;
  auto page = running.Exchange(
      "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer secret\r\n\r\n", 5s);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_NE(page->body.find("outpost_cloud_http_server_requests_total "), std::string::npos);
  EXPECT_NE(page->body.find("outpost_cloud_db_pool_rejected_full_total 1\n"), std::string::npos);

  server.Stop();
  run.join();
}

TEST(HttpServer, stop_lets_a_request_with_the_database_finish_and_answer) {
  FakeStorage storage;
  OUTPOST_ASSERT_OK(storage.CreateToken("gw1", false, Sha256Hex("secret"), 0));
  SystemClock clock;
  Service service(storage, clock, ServiceOptions{});
  HttpServerOptions o;
  o.port = 0;
  HttpServer server(service, o);
  OUTPOST_ASSERT_OK_AND_ASSIGN(int port, server.Bind());
  std::thread run([&] { OUTPOST_EXPECT_OK(server.Run()); });
  storage.CloseGate();
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto c, RawHttpConnection::Connect(port));
  ASSERT_GT(c.SendSome(kGateways), 0);
  ASSERT_TRUE(
      WaitUntil("the request is with the database", 5s, [&] { return storage.held() == 1; }));
  server.Stop();  // Run() now drains the pool before closing connections
  storage.OpenGate();
  auto r = c.Read(5s);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200) << r->body;
  run.join();
}

TEST(HttpServer, bind_fails_on_a_port_in_use) {
  FakeStorage storage;
  SystemClock clock;
  Service service(storage, clock, ServiceOptions{});
  HttpServerOptions o;
  o.port = 0;
  HttpServer first(service, o);
  OUTPOST_ASSERT_OK_AND_ASSIGN(int port, first.Bind());
  Service other(storage, clock, ServiceOptions{});
  HttpServerOptions o2;
  o2.port = port;
  HttpServer second(other, o2);
  auto r = second.Bind();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().ToString();
}

}  // namespace
}  // namespace outpost::cloud::api
