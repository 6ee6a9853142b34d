// The real outpost-gateway, started with a TLS file path that is a FIFO no one writes (a typo for
// a named pipe, or a path an attacker on the box swapped), exits at once with the key and the
// path in its error, instead of hanging in open() before it ever signals READY. The same holds for
// every TLS file it reads: the MQTT CA, certificate and key, the HTTP API's certificate and key,
// and the cloud uplink's CA. A FIFO stands for every non-regular file (/dev/zero, a directory);
// outpost::ReadFile's unit tests cover those kinds one by one.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <string>

#include "gateway_harness.h"
#include "outpost/testing/child_process.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/temp_dir.h"
#include "outpost/testing/test_pki.h"

namespace outpost::testing {
namespace {

using namespace std::chrono_literals;

struct Case {
  const char* name;
  const char* expected;  // in the log: the key's text before the path
  // The YAML sections, given the FIFO's path and the test PKI.
  std::string (*yaml)(const std::string& fifo, const TestPki& pki);
};

std::string MqttTls(const std::string& ca, const std::string& cert, const std::string& key) {
  std::string y =
      "mqtt:\n  host: 127.0.0.1\n  port: 9\n  tls:\n    enabled: true\n    ca_file: " + ca + "\n";
  if (!cert.empty()) y += "    cert_file: " + cert + "\n    key_file: " + key + "\n";
  return y;
}

const Case kCases[] = {
    {"mqtt_ca", "TLS ca_file ",
     [](const std::string& f, const TestPki&) { return MqttTls(f, "", ""); }},
    {"mqtt_cert", "TLS cert_file ",
     [](const std::string& f, const TestPki& p) { return MqttTls(p.ca_cert, f, p.client_key); }},
    {"mqtt_key", "TLS key_file ",
     [](const std::string& f, const TestPki& p) { return MqttTls(p.ca_cert, p.client_cert, f); }},
    {"http_cert", "TLS cert file ",
     [](const std::string& f, const TestPki& p) {
       return "http:\n  listen: 127.0.0.1:0\n  tls_cert_file: " + f +
              "\n  tls_key_file: " + p.server_key + "\n";
     }},
    {"http_key", "TLS key file ",
     [](const std::string& f, const TestPki& p) {
       return "http:\n  listen: 127.0.0.1:0\n  tls_cert_file: " + p.server_cert +
              "\n  tls_key_file: " + f + "\n";
     }},
    {"cloud_ca", "cloud.ca_file ",
     [](const std::string& f, const TestPki&) {
       return "cloud:\n  api_endpoint: https://127.0.0.1:9/v1\n  api_key: t\n  ca_file: " + f +
              "\n";
     }},
};

class GatewayTlsFilesTest : public ::testing::TestWithParam<Case> {};

TEST_P(GatewayTlsFilesTest, AFifoPathIsAStartErrorNotAHang) {
  const Case& c = GetParam();
  TempDir dir("outpost-tls-files");
  auto pki = GenerateTestPki(dir.path());
  OUTPOST_ASSERT_OK(pki);
  const std::string fifo = dir.File("pipe.pem");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  std::string yaml = "gateway:\n  id: gw_tls_files\nstorage:\n  path: " + dir.File("gateway.db") +
                     "\n" + c.yaml(fifo, *pki);
  if (yaml.find("\nmqtt:") == std::string::npos) yaml += "mqtt:\n  host: 127.0.0.1\n  port: 9\n";
  if (yaml.find("\nhttp:") == std::string::npos) yaml += "http:\n  listen: 127.0.0.1:0\n";
  std::ofstream(dir.File("gateway.yaml")) << yaml;
  auto p = ChildProcess::Start(ChildProcessOptions{
      {GatewayBinary(), "--config", dir.File("gateway.yaml")}, {}, dir.File("gateway.log"), ""});
  OUTPOST_ASSERT_OK(p);
  // Generous for a loaded machine or an emulator; a hang in open() never ends at all.
  auto status = (*p)->Wait(30s);
  OUTPOST_ASSERT_OK(status) << "the gateway did not exit: " << (*p)->log();
  EXPECT_NE(*status, 0) << (*p)->log();
  const std::string log = (*p)->log();
  EXPECT_NE(log.find(std::string(c.expected) + fifo + ": not a regular file"), std::string::npos)
      << log;
}

INSTANTIATE_TEST_SUITE_P(EachTlsFile, GatewayTlsFilesTest, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace outpost::testing
