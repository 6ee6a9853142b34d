// outpost-node against a real Mosquitto and the real outpost-gateway (issue 3): every reading of
// 1,000 virtual devices stored with zero seq gaps; a broker restart mid-run loses nothing;
// setSensorInterval changes a device's observed rate in the store; a device driven to low
// battery announces `sleeping`. Synchronisation is by polling conditions with deadlines.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "gateway_harness.h"
#include "outpost/testing/raw_http.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/temp_dir.h"
#include "outpost/testing/test_pki.h"
#include "outpost/testing/wait_until.h"

namespace outpost::testing {
namespace {

using nlohmann::json;

std::string NodeBinary() {
  const char* dir = std::getenv("OUTPOST_BINARY_DIR");
  return std::string(dir ? dir : ".") + "/devices/host/outpost-node";
}

Result<std::unique_ptr<ChildProcess>> StartNode(GatewayHarness& h, std::vector<std::string> args,
                                                const std::string& log_name) {
  ChildProcessOptions o;
  o.argv = {NodeBinary(), "--broker",   "127.0.0.1:" + std::to_string(h.broker().port()),
            "--json",     "--progress", "5"};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.log_path = h.dir().File(log_name);
  return ChildProcess::Start(o);
}

// Waits for the simulator to exit; returns its JSON summary (the last line starting with '{').
Result<json> FinishNode(ChildProcess& node, std::chrono::seconds timeout, int* exit_code) {
  auto rc = node.Wait(timeout);
  if (!rc.ok()) {
    node.Kill();
    return Status(Code::kDeadlineExceeded, "outpost-node still running:\n" + node.log());
  }
  *exit_code = *rc;
  std::istringstream lines(node.log());
  std::string line, last;
  while (std::getline(lines, line)) {
    if (!line.empty() && line[0] == '{') last = line;
  }
  if (last.empty()) return Internal("no JSON summary in the log:\n" + node.log());
  return json::parse(last, nullptr, false);
}

std::map<std::string, gateway::model::DeviceRow> LoadDevices(GatewayHarness& h) {
  std::map<std::string, gateway::model::DeviceRow> out;
  auto store = h.OpenStore();
  OUTPOST_EXPECT_OK(store);
  if (!store.ok()) return out;
  auto rows = (*store)->LoadDevices();
  OUTPOST_EXPECT_OK(rows);
  if (!rows.ok()) return out;
  for (auto& r : *rows) out[r.device_id] = r;
  return out;
}

TEST(NodeIntegration, ThousandDevicesEveryReadingStoredZeroSeqGaps) {
  GatewayHarness h;
  OUTPOST_ASSERT_OK(h.Start());
  auto node =
      StartNode(h,
                {"--devices", "1000", "--interval", "1", "--duration", "60", "--ramp", "1000",
                 "--seed", "11", "--verify-store", h.db_path(), "--verify-wait", "60"},
                "node.log");
  OUTPOST_ASSERT_OK(node);
  int rc = -1;
  auto summary = FinishNode(**node, std::chrono::seconds(240), &rc);
  OUTPOST_ASSERT_OK(summary);
  const json& j = *summary;
  EXPECT_EQ(rc, 0) << j.dump() << "\n" << (*node)->log();
  EXPECT_EQ(j["ever_connected"], 1000);
  EXPECT_GE(j["acked"].get<std::uint64_t>(), 1000u * 55);
  EXPECT_EQ(j["acked"], j["sampled"]);
  EXPECT_EQ(j["dropped"], 0);
  EXPECT_EQ(j["buffered"], 0);
  EXPECT_TRUE(j["verify"]["ok"].get<bool>()) << j["verify"].dump();
  EXPECT_EQ(j["verify"]["devices_checked"], 1000);

  // And read the store ourselves, with the gateway stopped.
  OUTPOST_ASSERT_OK(h.StopGateway());
  auto devices = LoadDevices(h);
  std::uint64_t stored = 0, gaps = 0, nodes = 0;
  for (const auto& [id, row] : devices) {
    if (id.rfind("node-", 0) != 0) continue;
    ++nodes;
    stored += row.readings;
    gaps += row.seq_gaps;
  }
  EXPECT_EQ(nodes, 1000u);
  EXPECT_EQ(stored, j["acked"].get<std::uint64_t>());
  EXPECT_EQ(gaps, 0u);
}

TEST(NodeIntegration, BrokerRestartMidRunLosesNothing) {
  GatewayHarness h;
  HarnessOptions ho;
  ho.persistent_broker = true;
  OUTPOST_ASSERT_OK(h.Start(ho));
  auto node = StartNode(h,
                        {"--devices", "300", "--interval", "1", "--duration", "40", "--ring", "64",
                         "--seed", "12", "--verify-store", h.db_path(), "--verify-wait", "60"},
                        "node.log");
  OUTPOST_ASSERT_OK(node);
  auto before = h.WaitStatus(
      [](const json& s) { return s["ingest"]["stored"].get<std::uint64_t>() >= 300 * 5; },
      std::chrono::seconds(60));
  OUTPOST_ASSERT_OK(before);
  // Stop (SIGTERM: the broker saves its state) and start again on the same port.
  OUTPOST_ASSERT_OK(h.broker().Restart()) << h.broker().log();

  int rc = -1;
  auto summary = FinishNode(**node, std::chrono::seconds(180), &rc);
  OUTPOST_ASSERT_OK(summary);
  const json& j = *summary;
  EXPECT_EQ(rc, 0) << j.dump() << "\n" << (*node)->log();
  EXPECT_GE(j["reconnects"].get<std::uint64_t>(), 300u);  // every device came back
  EXPECT_EQ(j["dropped"], 0);
  EXPECT_EQ(j["acked"], j["sampled"]);
  EXPECT_TRUE(j["verify"]["ok"].get<bool>()) << j["verify"].dump();
  EXPECT_EQ(j["verify"]["seq_gaps"], 0);
  EXPECT_GE(j["verify"]["stored"].get<std::uint64_t>(), j["acked"].get<std::uint64_t>());
}

TEST(NodeIntegration, SetSensorIntervalChangesTheObservedRate) {
  GatewayHarness h;
  OUTPOST_ASSERT_OK(h.Start());
  OUTPOST_ASSERT_OK(h.devices().Subscribe("devices/node-00002/replies", 1));
  auto node = StartNode(
      h, {"--devices", "5", "--interval", "1", "--duration", "30", "--seed", "13"}, "node.log");
  OUTPOST_ASSERT_OK(node);
  auto warm = h.WaitStatus(
      [](const json& s) { return s["ingest"]["stored"].get<std::uint64_t>() >= 5 * 5; },
      std::chrono::seconds(30));
  OUTPOST_ASSERT_OK(warm);
  const std::int64_t command_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count();
  OUTPOST_ASSERT_OK(
      h.devices().Publish("devices/node-00002/commands",
                          R"({"command":"setSensorInterval","interval":3000,"id":"int-1"})", 1));
  auto reply = h.devices().WaitMessage("devices/node-00002/replies", std::chrono::seconds(10));
  OUTPOST_ASSERT_OK(reply);
  EXPECT_NE(reply->payload.find("\"id\":\"int-1\""), std::string::npos) << reply->payload;
  EXPECT_NE(reply->payload.find("\"ok\":true"), std::string::npos) << reply->payload;

  int rc = -1;
  auto summary = FinishNode(**node, std::chrono::seconds(90), &rc);
  OUTPOST_ASSERT_OK(summary);
  EXPECT_EQ(rc, 0) << summary->dump();
  EXPECT_EQ((*summary)["commands"], 1);
  // Wait until the gateway stored everything the broker acknowledged, then read the store.
  const auto acked = (*summary)["acked"].get<std::uint64_t>();
  OUTPOST_ASSERT_OK(h.WaitStatus(
      [&](const json& s) { return s["ingest"]["stored"].get<std::uint64_t>() >= acked; }));
  OUTPOST_ASSERT_OK(h.StopGateway());
  auto store = h.OpenStore();
  OUTPOST_ASSERT_OK(store);
  auto median_gap = [&](const std::string& id) -> std::int64_t {
    auto pts = (*store)->QuerySeries(id, "temperature", command_ms + 1'500, INT64_MAX, 10'000);
    OUTPOST_EXPECT_OK(pts);
    if (!pts.ok() || pts->size() < 3) return -1;
    std::vector<std::int64_t> gaps;
    for (std::size_t i = 1; i < pts->size(); ++i)
      gaps.push_back((*pts)[i].ts_ms - (*pts)[i - 1].ts_ms);
    std::nth_element(gaps.begin(), gaps.begin() + gaps.size() / 2, gaps.end());
    return gaps[gaps.size() / 2];
  };
  EXPECT_NEAR(median_gap("node-00002"), 3'000, 100);
  EXPECT_NEAR(median_gap("node-00001"), 1'000, 100);
}

TEST(NodeIntegration, LowBatteryDeviceAnnouncesSleeping) {
  GatewayHarness h;
  OUTPOST_ASSERT_OK(h.Start());
  const std::string scenario = h.dir().File("scenario.yaml");
  {
    std::ofstream out(scenario);
    out << "faults:\n  - {type: low_battery, devices: [node-00001], at_s: 3, battery_pct: 4}\n";
  }
  OUTPOST_ASSERT_OK(h.devices().Subscribe("devices/node-00001/status", 1));
  auto node = StartNode(h,
                        {"--devices", "3", "--interval", "1", "--duration", "15", "--seed", "14",
                         "--scenario", scenario},
                        "node.log");
  OUTPOST_ASSERT_OK(node);
  auto sleeping = h.devices().WaitMessage(
      [](const mqtt::Message& m) {
        return m.topic == "devices/node-00001/status" && m.payload == "sleeping";
      },
      std::chrono::seconds(30));
  OUTPOST_ASSERT_OK(sleeping) << "\n" << (*node)->log();
  auto registry =
      h.WaitStatus([](const json& s) { return s["devices"]["sleeping"].get<int>() >= 1; },
                   std::chrono::seconds(20));
  // The registry takes any reading for a sign of life, so this also checks that "sleeping" is
  // the node's last word (regression: the core announced it before its last reading).
  OUTPOST_ASSERT_OK(registry);

  int rc = -1;
  auto summary = FinishNode(**node, std::chrono::seconds(60), &rc);
  OUTPOST_ASSERT_OK(summary);
  EXPECT_EQ(rc, 0) << summary->dump();
  EXPECT_EQ((*summary)["sleeps"], 1);
  // The retained status stays "sleeping" (a clean DISCONNECT: no will).
  TestMqtt late;
  OUTPOST_ASSERT_OK(late.Connect(h.broker().port()));
  OUTPOST_ASSERT_OK(late.Subscribe("devices/node-00001/status", 1));
  auto retained = late.WaitMessage("devices/node-00001/status", std::chrono::seconds(5));
  OUTPOST_ASSERT_OK(retained);
  EXPECT_TRUE(retained->retain);
  EXPECT_EQ(retained->payload, "sleeping");
  OUTPOST_ASSERT_OK(h.StopGateway());
  auto devices = LoadDevices(h);
  ASSERT_EQ(devices.count("node-00001"), 1u);
  EXPECT_EQ(devices["node-00001"].status, "sleeping");
}

// Scenario faults against the real gateway: malformed payloads are rejected and counted by the
// gateway, a reboot storm and a blackhole lose nothing acknowledged.
TEST(NodeIntegration, ScenarioFaultsAgainstTheGateway) {
  GatewayHarness h;
  OUTPOST_ASSERT_OK(h.Start());
  const std::string scenario = h.dir().File("scenario.yaml");
  {
    std::ofstream out(scenario);
    out << "faults:\n"
           "  - {type: malformed, rate_per_s: 5, at_s: 2, duration_s: 10}\n"
           "  - {type: reboot_storm, at_s: 5, fraction: 0.3, spread_s: 2}\n"
           "  - {type: blackhole, at_s: 8, duration_s: 4, fraction: 0.2}\n";
  }
  auto node = StartNode(
      h,
      {"--devices", "50", "--interval", "1", "--duration", "20", "--seed", "15", "--keepalive", "3",
       "--scenario", scenario, "--verify-store", h.db_path(), "--verify-wait", "30"},
      "node.log");
  OUTPOST_ASSERT_OK(node);
  int rc = -1;
  auto summary = FinishNode(**node, std::chrono::seconds(120), &rc);
  OUTPOST_ASSERT_OK(summary);
  const json& j = *summary;
  EXPECT_EQ(rc, 0) << j.dump() << "\n" << (*node)->log();
  EXPECT_NEAR(j["malformed_sent"].get<double>(), 50, 3);
  EXPECT_GE(j["restarts"].get<int>(), 5);
  EXPECT_TRUE(j["verify"]["ok"].get<bool>()) << j["verify"].dump();
  // Malformed payloads go out at QoS 0: one written just before a reboot-storm power cut may
  // never leave the host, so the gateway sees at most that many, and nearly all of them.
  const auto malformed = j["malformed_sent"].get<std::uint64_t>();
  auto st = h.WaitStatus([&](const json& s) {
    return s["ingest"]["rejected"].get<std::uint64_t>() * 10 >= malformed * 9;
  });
  OUTPOST_ASSERT_OK(st);
  EXPECT_LE((*st)["ingest"]["rejected"].get<std::uint64_t>(), malformed);
  EXPECT_EQ((*st)["ingest"]["seq_gaps"], 0);
}

// TLS with a client certificate (the broker requires one), and the seed mode's topics.
// A TLS file given as a FIFO (or any non-regular file) stops outpost-node at start with the
// path in its error, for the shared --ca, --cert, --key and each --cert-dir file alike; before,
// OpenSSL's fopen() waited forever for a writer.
TEST(NodeIntegration, AFifoAsATlsFileIsAStartErrorNotAHang) {
  TempDir dir("outpost-node-fifo");
  auto pki = GenerateTestPki(dir.path());
  OUTPOST_ASSERT_OK(pki);
  const std::string fifo = dir.File("pipe.pem");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  const std::string device_dir = dir.File("certs/node-00000");
  ASSERT_EQ(::mkdir(dir.File("certs").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir(device_dir.c_str(), 0700), 0);
  ASSERT_EQ(::mkfifo((device_dir + "/device.crt").c_str(), 0600), 0);
  ASSERT_EQ(::symlink(pki->client_key.c_str(), (device_dir + "/device.key").c_str()), 0);
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--ca", fifo}, "ca: " + fifo + ": not a regular file"},
      {{"--ca", pki->ca_cert, "--cert", fifo, "--key", pki->client_key},
       "cert: " + fifo + ": not a regular file"},
      {{"--ca", pki->ca_cert, "--cert", pki->client_cert, "--key", fifo},
       "key: " + fifo + ": not a regular file"},
      {{"--ca", pki->ca_cert, "--cert-dir", dir.File("certs")},
       device_dir + "/device.crt: not a regular file"},
  };
  int i = 0;
  for (const auto& [args, expected] : cases) {
    ChildProcessOptions o;
    o.argv = {NodeBinary(), "--broker", "127.0.0.1:9", "--tls", "--devices", "1"};
    o.argv.insert(o.argv.end(), args.begin(), args.end());
    o.log_path = dir.File("node-" + std::to_string(++i) + ".log");
    auto p = ChildProcess::Start(o);
    OUTPOST_ASSERT_OK(p);
    auto rc = (*p)->Wait(std::chrono::seconds(30));  // a hang never ends at all
    OUTPOST_ASSERT_OK(rc) << "outpost-node did not exit: " << (*p)->log();
    EXPECT_NE(*rc, 0) << (*p)->log();
    EXPECT_NE((*p)->log().find(expected), std::string::npos) << (*p)->log();
  }
}

TEST(NodeIntegration, TlsWithClientCertificateAndSeedMode) {
  TempDir dir("outpost-node-tls");
  auto pki = GenerateTestPki(dir.path());
  OUTPOST_ASSERT_OK(pki);
  MosquittoOptions mo;
  mo.extra_config = {"cafile " + pki->ca_cert, "certfile " + pki->server_cert,
                     "keyfile " + pki->server_key, "require_certificate true"};
  auto broker = MosquittoProcess::Start(mo);
  OUTPOST_ASSERT_OK(broker);
  const std::string address = "127.0.0.1:" + std::to_string((*broker)->port());
  auto run = [&](std::vector<std::string> extra, const std::string& log) {
    ChildProcessOptions o;
    o.argv = {NodeBinary(), "--broker", address,      "--tls", "--ca",    pki->ca_cert,
              "--devices",  "5",        "--interval", "0.5",   "--count", "4",
              "--duration", "0",        "--json",     "-q"};
    o.argv.insert(o.argv.end(), extra.begin(), extra.end());
    o.log_path = dir.File(log);
    auto p = ChildProcess::Start(o);
    OUTPOST_EXPECT_OK(p);
    int rc = -1;
    auto j = FinishNode(**p, std::chrono::seconds(60), &rc);
    OUTPOST_EXPECT_OK(j);
    return std::make_pair(rc, j.ok() ? *j : json());
  };
  // With the client certificate: every reading acknowledged, seed payloads on sensors/data.
  TestMqttOptions to;
  to.tls.enabled = true;
  to.tls.ca_file = pki->ca_cert;
  to.tls.cert_file = pki->client_cert;
  to.tls.key_file = pki->client_key;
  TestMqtt sub;
  OUTPOST_ASSERT_OK(sub.Connect((*broker)->port(), to));
  OUTPOST_ASSERT_OK(sub.Subscribe("sensors/data", 0));
  auto [rc, j] =
      run({"--cert", pki->client_cert, "--key", pki->client_key, "--mode", "seed"}, "ok.log");
  EXPECT_EQ(rc, 0) << j.dump();
  EXPECT_EQ(j["acked"], 20);
  auto m = sub.WaitMessage("sensors/data");
  OUTPOST_ASSERT_OK(m);
  EXPECT_NE(m->payload.find("\"deviceId\":\"node-0000"), std::string::npos) << m->payload;
  // Without it the broker refuses every handshake: nothing sampled is acknowledged, and the run
  // ends after its drain with the readings still buffered.
  auto [rc2, j2] = run({"--drain-timeout", "2"}, "refused.log");
  EXPECT_EQ(j2["ever_connected"], 0) << j2.dump();
  EXPECT_EQ(j2["acked"], 0);
  EXPECT_GT(j2.value("connect_failures", 0), 0);
}

// A command through the gateway's API reaches a real node (the device core), which carries it
// out and replies: the API's ?wait answers with the outcome; an unknown command fails with the
// node's reason.
TEST(NodeIntegration, ApiCommandsAreCarriedOutAndRepliedByTheNode) {
  GatewayHarness h;
  OUTPOST_ASSERT_OK(h.Start());
  auto node = StartNode(h, {"--devices", "1", "--interval", "1", "--duration", "25", "--seed", "5"},
                        "node.log");
  OUTPOST_ASSERT_OK(node);
  auto post = [&](const std::string& body) {
    auto c = RawHttpConnection::Connect(h.http_port());
    if (!c.ok()) return Result<RawHttpResponse>(c.status());
    return c->Exchange("POST /api/v1/devices/node-00000/commands?wait=10 HTTP/1.1\r\nHost: x\r\n" +
                           h.auth_header() + "Content-Type: application/json\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body,
                       std::chrono::seconds(20));
  };
  ASSERT_TRUE(WaitUntil("node-00000 online", std::chrono::seconds(20), [&] {
    auto c = RawHttpConnection::Connect(h.http_port());
    if (!c.ok()) return false;
    auto r = c->Exchange("GET /api/v1/devices/node-00000 HTTP/1.1\r\nHost: x\r\n" +
                         h.auth_header() + "Connection: close\r\n\r\n");
    return r.ok() && r->status == 200 &&
           json::parse(r->body, nullptr, false).value("status", "") == "online";
  }));
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      auto ok, post(R"({"command":"setSensorInterval","params":{"interval":3000}})"));
  ASSERT_EQ(ok.status, 200) << ok.body;
  json done = json::parse(ok.body);
  EXPECT_EQ(done["state"], "succeeded") << done.dump();
  EXPECT_EQ(done["transport"], "native");
  EXPECT_EQ(done["reply"]["ok"], true);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto bad, post(R"({"command":"dance"})"));
  ASSERT_EQ(bad.status, 200) << bad.body;
  json refused = json::parse(bad.body);
  EXPECT_EQ(refused["state"], "rejected") << refused.dump();
  EXPECT_NE(refused["reply"]["error"].get<std::string>().find("unknown command"),
            std::string::npos);
  int rc = -1;
  auto summary = FinishNode(**node, std::chrono::seconds(60), &rc);
  OUTPOST_ASSERT_OK(summary);
  EXPECT_EQ(rc, 0) << summary->dump();
}

}  // namespace
}  // namespace outpost::testing
