// The real outpost-gateway warns at start, one line each naming the key, when MQTT without TLS
// or a plain http:// cloud endpoint leaves this machine; a loopback configuration (the local
// stack's) gets no such warning. docs/security.md ("Cleartext warnings").
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <string>

#include "gateway_harness.h"
#include "outpost/testing/child_process.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/temp_dir.h"
#include "outpost/testing/wait_until.h"

namespace outpost::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kMqttWarning =
    "mqtt.host 192.0.2.1 is beyond this machine and "
    "mqtt.tls.enabled is false";
constexpr const char* kCloudWarning = "cloud.api_endpoint http://192.0.2.2:9/v1 is plain http://";

std::size_t CountOf(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = haystack.find(needle); p != std::string::npos; p = haystack.find(needle, p + 1)) {
    ++n;
  }
  return n;
}

TEST(GatewayCleartextWarnings, PlainMqttAndHttpBeyondLoopbackAreWarnedOnceEach) {
  TempDir dir("outpost-cleartext");
  // 192.0.2.0/24 is TEST-NET-1: never routed, so nothing is sent anywhere; the gateway keeps
  // retrying the broker in the background while it runs.
  std::ofstream(dir.File("gateway.yaml"))
      << "gateway:\n  id: gw_cleartext\nmqtt:\n  host: 192.0.2.1\n  port: 1883\n"
      << "storage:\n  path: " << dir.File("gateway.db") << "\n"
      << "http:\n  listen: 127.0.0.1:0\n"
      << "cloud:\n  api_endpoint: http://192.0.2.2:9/v1\n  api_key: not-a-real-token\n";
  auto p = ChildProcess::Start(ChildProcessOptions{
      {GatewayBinary(), "--config", dir.File("gateway.yaml")}, {}, dir.File("gateway.log"), ""});
  OUTPOST_ASSERT_OK(p);
  ASSERT_TRUE(WaitUntil("the gateway is running", 20s, [&] {
    return (*p)->log().find("running as gw_cleartext") != std::string::npos;
  })) << (*p)->log();
  const std::string log = (*p)->log();
  EXPECT_EQ(CountOf(log, kMqttWarning), 1u) << log;
  EXPECT_EQ(CountOf(log, kCloudWarning), 1u) << log;
  EXPECT_NE(log.find("warning " + std::string(kMqttWarning)), std::string::npos) << log;
  OUTPOST_EXPECT_OK((*p)->Stop(SIGTERM, 20s));
}

TEST(GatewayCleartextWarnings, LoopbackConfigurationGetsNone) {
  GatewayHarness h;
  OUTPOST_ASSERT_OK(h.Start("cloud:\n  api_endpoint: http://127.0.0.1:9/v1\n  api_key: t\n"));
  ASSERT_TRUE(WaitUntil("the gateway is running", 20s, [&] {
    return h.gateway_log().find("running as") != std::string::npos;
  })) << h.gateway_log();
  const std::string log = h.gateway_log();
  EXPECT_EQ(log.find("in clear"), std::string::npos) << log;
  EXPECT_EQ(log.find("mqtt.tls.enabled is false"), std::string::npos) << log;
}

}  // namespace
}  // namespace outpost::testing
