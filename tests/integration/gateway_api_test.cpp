// The gateway's HTTP API (docs/api.md) against the real binary: a real Mosquitto, real SQLite,
// raw loopback HTTP requests (tests/support RawHttpConnection).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>

#include "gateway_harness.h"
#include "outpost/testing/raw_http.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/wait_until.h"

namespace outpost::testing {
namespace {

using nlohmann::json;

Result<RawHttpResponse> Get(std::uint16_t port, const std::string& target,
                            const std::string& headers = "") {
  auto c = RawHttpConnection::Connect(port);
  if (!c.ok()) return c.status();
  return c->Exchange("GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers +
                     "Connection: close\r\n\r\n");
}

TEST(GatewayApi, ServesOnAFreePortItLogs) {
  GatewayHarness h;
  OUTPOST_ASSERT_OK(h.Start());
  ASSERT_NE(h.http_port(), 0);
  EXPECT_NE(h.gateway_log().find("http api listening on http://127.0.0.1:" +
                                 std::to_string(h.http_port())),
            std::string::npos)
      << h.gateway_log();
  auto r = Get(h.http_port(), "/no/such/path");
  OUTPOST_ASSERT_OK(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->Header("content-type"), "application/problem+json");
  OUTPOST_EXPECT_OK(h.StopGateway());
}

TEST(GatewayApi, EmptyListenRunsWithoutTheApi) {
  GatewayHarness h;
  HarnessOptions o;
  o.http_yaml = "  listen: \"\"\n";
  OUTPOST_ASSERT_OK(h.Start(o));
  EXPECT_EQ(h.http_port(), 0);
  EXPECT_NE(h.gateway_log().find("http api off"), std::string::npos) << h.gateway_log();
  OUTPOST_EXPECT_OK(h.StopGateway());
}

// An address that cannot be bound stops the start (exit 1) with a message naming http.listen.
TEST(GatewayApi, ListenAddressInUseStopsTheStartNamingTheKey) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const std::string listen = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));

  TempDir dir;
  const std::string path = dir.File("gw.yaml");
  {
    std::ofstream(path) << "storage:\n  path: " << dir.File("gateway.db")
                        << "\n  synchronous: off\nhttp:\n  listen: " << listen << "\n";
  }
  ChildProcessOptions o;
  o.argv = {GatewayBinary(), "--config", path};
  o.log_path = dir.File("out.log");
  auto p = ChildProcess::Start(o);
  OUTPOST_ASSERT_OK(p);
  auto code = (*p)->Wait(std::chrono::seconds(20));
  ::close(fd);
  OUTPOST_ASSERT_OK(code);
  EXPECT_EQ(*code, 1) << (*p)->log();
  EXPECT_NE((*p)->log().find("http.listen " + listen + ": "), std::string::npos) << (*p)->log();
}

}  // namespace
}  // namespace outpost::testing
