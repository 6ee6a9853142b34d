// outpost-provision against a real Mosquitto 2.0.11 loading the generated conf.d file the way
// Debian's package does (a top-level mosquitto.conf with include_dir), with real certificates:
// every forbidden publish and subscribe is tried kAttempts times and 0 messages leak; the
// broker's own log counts the denials (ACL denials are silent to a publisher: it gets its PUBACK).
// Threats and rules: docs/security.md
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "outpost/testing/child_process.h"
#include "outpost/testing/mosquitto_process.h"
#include "outpost/testing/raw_http.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/temp_dir.h"
#include "outpost/testing/test_mqtt.h"
#include "outpost/testing/wait_until.h"

namespace outpost::testing {
namespace {

using namespace std::chrono_literals;

constexpr int kAttempts = 1000;

std::string ProvisionBinary() {
  const char* dir = std::getenv("OUTPOST_BINARY_DIR");
  return std::string(dir != nullptr ? dir : ".") + "/tools/provision/outpost-provision";
}

std::size_t CountOf(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = haystack.find(needle); p != std::string::npos; p = haystack.find(needle, p + 1)) {
    ++n;
  }
  return n;
}

class ProvisionBrokerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    suite_tmp = new TempDir("outpost-provision");
    // Mosquitto started as root drops to the `mosquitto` user, as the Debian service does: it
    // must be able to walk to the broker's files (root:mosquitto 0750) like in /etc.
    ::chmod(suite_tmp->path().c_str(), 0755);
    pki_dir = suite_tmp->File("pki");
    auto port = PickFreePort();
    ASSERT_TRUE(port.ok());
    broker_port = *port;
    auto control_port = PickFreePort();
    ASSERT_TRUE(control_port.ok());
    while (*control_port == broker_port) control_port = PickFreePort();
    control_listener_port = *control_port;
    ASSERT_EQ(Provision({"init", "--port", std::to_string(broker_port), "--control-port",
                         std::to_string(*control_port), "--gateway-id", "gw1"}),
              0);
    ASSERT_EQ(Provision({"device", "add", "devA"}), 0);
    ASSERT_EQ(Provision({"device", "add", "devB"}), 0);
    ASSERT_EQ(Provision({"device", "add", "devR"}), 0);
    ASSERT_EQ(Provision({"device", "add", "seed1", "--seed"}), 0);
    // outpost-node's ids: sim-00000, sim-00001, sim-00002.
    ASSERT_EQ(Provision({"device", "add", "--count", "3", "--prefix", "sim-", "--first", "0",
                         "--digits", "5"}),
              0);
    const long now = static_cast<long>(::time(nullptr));
    ASSERT_EQ(
        Provision({"device", "add", "devExpired", "--not-before", std::to_string(now - 2 * 86400),
                   "--not-after", std::to_string(now - 86400)}),
        0);
    ::mkdir(suite_tmp->File("conf.d").c_str(), 0755);
    ASSERT_EQ(::symlink((pki_dir + "/broker/outpost.conf").c_str(),
                        suite_tmp->File("conf.d/outpost.conf").c_str()),
              0);
    // Debian's /etc/mosquitto/mosquitto.conf, with the log on stderr (unbuffered: every denial
    // is in it when counted), no persistence, and $SYS every second so the $SYS test is quick.
    std::ofstream(suite_tmp->File("mosquitto.conf"))
        << "persistence false\nlog_dest stderr\nlog_type all\nsys_interval 1\n"
        << "include_dir " << suite_tmp->File("conf.d") << "\n";
    auto broker = ChildProcess::Start(
        ChildProcessOptions{{"/usr/sbin/mosquitto", "-c", suite_tmp->File("mosquitto.conf")},
                            {},
                            suite_tmp->File("broker.log"),
                            ""});
    ASSERT_TRUE(broker.ok()) << broker.status().message();
    broker_process = broker->release();
    ASSERT_TRUE(WaitForPort(broker_port, 10s).ok()) << broker_process->log();
  }
  static void TearDownTestSuite() {
    delete broker_process;
    delete suite_tmp;
  }

  static int Provision(std::vector<std::string> args) {
    args.insert(args.begin(), {ProvisionBinary(), "--dir", pki_dir});
    auto p =
        ChildProcess::Start(ChildProcessOptions{args, {}, suite_tmp->File("provision.log"), ""});
    if (!p.ok()) return -1;
    auto rc = (*p)->Wait(60s);
    return rc.ok() ? *rc : -1;
  }

  // One run of outpost-provision (`--dir dir` prepended): its exit code and its output.
  static std::pair<int, std::string> ProvisionRun(std::vector<std::string> args,
                                                  const std::string& dir = pki_dir) {
    static int runs = 0;
    args.insert(args.begin(), {ProvisionBinary(), "--dir", dir});
    auto p = ChildProcess::Start(ChildProcessOptions{
        args, {}, suite_tmp->File("provision-run-" + std::to_string(++runs) + ".log"), ""});
    if (!p.ok()) return {-1, p.status().message()};
    auto rc = (*p)->Wait(60s);
    return {rc.ok() ? *rc : -1, (*p)->log()};
  }

  // A second site in `name`, on free ports nothing listens on yet.
  static std::string NewSite(const std::string& name, std::uint16_t* port,
                             std::uint16_t* control_port) {
    const std::string dir = suite_tmp->File(name);
    auto p = PickFreePort();
    auto c = PickFreePort();
    while (c.ok() && p.ok() && *c == *p) c = PickFreePort();
    EXPECT_TRUE(p.ok() && c.ok());
    *port = p.ok() ? *p : 0;
    *control_port = c.ok() ? *c : 0;
    EXPECT_EQ(ProvisionRun({"init", "--port", std::to_string(*port), "--control-port",
                            std::to_string(*control_port)},
                           dir)
                  .first,
              0);
    return dir;
  }

  // outpost-node's command line for `devices` of the site's devices PREFIX00000.., each with its
  // own certificate from the site folder (--cert-dir), one reading every 0.2 s; then `extra`.
  static std::vector<std::string> NodeArgs(const std::string& prefix, const std::string& devices,
                                           const std::vector<std::string>& extra) {
    const char* bin_dir = std::getenv("OUTPOST_BINARY_DIR");
    std::vector<std::string> argv = {
        std::string(bin_dir != nullptr ? bin_dir : ".") + "/devices/host/outpost-node",
        "--broker",
        "127.0.0.1:" + std::to_string(broker_port),
        "--tls",
        "--ca",
        pki_dir + "/broker/ca.crt",
        "--cert-dir",
        pki_dir + "/devices",
        "--id-prefix",
        prefix,
        "--devices",
        devices,
        "--interval",
        "0.2",
        "--json",
        "-q"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  static TestMqttOptions Identity(const std::string& who, const std::string& client_id = "") {
    TestMqttOptions o;
    o.client_id = client_id.empty() ? who + "-client" : client_id;
    o.reconnect = false;
    o.timeout = 5s;
    o.tls.enabled = true;
    o.tls.ca_file = pki_dir + "/broker/ca.crt";
    if (who == "gateway" || who == "admin" || who == "control") {
      o.tls.cert_file = pki_dir + "/" + who + "/" + who + ".crt";
      o.tls.key_file = pki_dir + "/" + who + "/" + who + ".key";
    } else {
      o.tls.cert_file = pki_dir + "/devices/" + who + "/device.crt";
      o.tls.key_file = pki_dir + "/devices/" + who + "/device.key";
    }
    return o;
  }

  // The client sees an alert or a reset (TLS 1.3 sends the refusal after the handshake), so the
  // broker's log is where each refusal is counted.
  static void ExpectVerifyFailuresLogged(const std::string& log_before) {
    std::size_t failed = 0;
    EXPECT_TRUE(WaitUntil("every refusal in the broker's log", 10s, [&] {
      failed =
          CountOf(broker_process->log().substr(log_before.size()), "certificate verify failed");
      return failed >= static_cast<std::size_t>(kAttempts);
    })) << failed;
  }

  static TempDir* suite_tmp;
  static std::string pki_dir;
  static std::uint16_t broker_port;
  static std::uint16_t control_listener_port;
  static ChildProcess* broker_process;
};
TempDir* ProvisionBrokerTest::suite_tmp = nullptr;
std::string ProvisionBrokerTest::pki_dir;
std::uint16_t ProvisionBrokerTest::broker_port = 0;
std::uint16_t ProvisionBrokerTest::control_listener_port = 0;
ChildProcess* ProvisionBrokerTest::broker_process = nullptr;

TEST_F(ProvisionBrokerTest,
       ADeviceCannotPublishToAnotherDevicesTopicsOrTheGatewaysAndAllowedOnesArrive) {
  TestMqtt gateway, admin, b, a;
  OUTPOST_ASSERT_OK(gateway.Connect(broker_port, Identity("gateway")));
  for (const char* f : {"sensors/+/data", "devices/+/status", "devices/+/replies", "sensors/data",
                        "gateway/commands", "gateway/gw1/commands"}) {
    OUTPOST_ASSERT_OK(gateway.Subscribe(f));
  }
  OUTPOST_ASSERT_OK(admin.Connect(broker_port, Identity("admin")));
  OUTPOST_ASSERT_OK(admin.Subscribe("gateway/#"));
  OUTPOST_ASSERT_OK(b.Connect(broker_port, Identity("devB")));
  OUTPOST_ASSERT_OK(b.Subscribe("devices/devB/commands"));
  // The self-check's subscriber, which reads the reserved outpost/selfcheck/ space.
  TestMqtt control;
  OUTPOST_ASSERT_OK(
      control.Connect(control_listener_port, Identity("control", "outpost-control-test")));
  OUTPOST_ASSERT_OK(control.Subscribe("outpost/selfcheck/#"));
  OUTPOST_ASSERT_OK(a.Connect(broker_port, Identity("devA")));
  const std::string log_before = broker_process->log();

  // The gateway's commands, the seed's flat topics, and another device's self-check topic, from
  // a (non-seed) device identity too.
  const std::vector<std::string> forbidden = {
      "sensors/devB/data", "devices/devB/status",   "devices/devB/replies", "devices/devB/commands",
      "gateway/commands",  "gateway/gw1/commands",  "gateway/gw1/status",   "sensors/data",
      "devices/commands",  "outpost/selfcheck/devB"};
  for (int i = 0; i < kAttempts; ++i) {
    for (const std::string& t : forbidden) OUTPOST_ASSERT_OK(a.Publish(t, "leak", 1));
    OUTPOST_ASSERT_OK(a.Publish("sensors/devA/data", "ok" + std::to_string(i), 1));
  }
  // Fences: after A's last PUBACK the broker has handled every earlier publish of A.
  OUTPOST_ASSERT_OK(gateway.Publish("devices/devB/commands", "fence", 1));
  OUTPOST_ASSERT_OK(
      b.WaitMessage([](const mqtt::Message& m) { return m.payload == "fence"; }, 10s).status());
  OUTPOST_ASSERT_OK(admin.Publish("gateway/gw1/commands", "fence", 1));
  OUTPOST_ASSERT_OK(
      admin.WaitMessage([](const mqtt::Message& m) { return m.payload == "fence"; }, 10s).status());
  OUTPOST_ASSERT_OK(control.Publish("outpost/selfcheck/devB/fence", "fence", 1));
  OUTPOST_ASSERT_OK(
      control.WaitMessage([](const mqtt::Message& m) { return m.payload == "fence"; }, 10s)
          .status());
  int allowed = 0, leaked = 0;
  for (int i = 0; i < kAttempts; ++i) {
    auto m = gateway.WaitMessage("sensors/+/data", 10s);
    OUTPOST_ASSERT_OK(m.status());
    if (m->topic == "sensors/devA/data" && m->payload == "ok" + std::to_string(allowed)) ++allowed;
  }
  EXPECT_EQ(allowed, kAttempts) << "allowed publishes arrive, in order";
  auto drain = [&](TestMqtt& c) {
    while (c.pending_messages() > 0) {
      auto m = c.WaitMessage("#", 1s);
      if (m.ok() && m->payload == "leak") ++leaked;
    }
  };
  drain(gateway);
  drain(admin);
  drain(b);
  drain(control);
  EXPECT_EQ(leaked, 0);
  // Denials are visible only in the broker's log (log_type all or debug).
  const std::size_t expected = kAttempts * forbidden.size();
  std::size_t denied = 0;
  EXPECT_TRUE(WaitUntil("every denial in the broker's log", 10s,
                        [&] {
                          denied = CountOf(broker_process->log().substr(log_before.size()),
                                           "Denied PUBLISH from devA");
                          return denied >= expected;
                        }))
      << denied << " of " << expected;
}

TEST_F(ProvisionBrokerTest, ADeviceCannotSubscribeToAnotherDevicesCommandsOrSys) {
  TestMqtt gateway, admin, a;
  OUTPOST_ASSERT_OK(admin.Connect(broker_port, Identity("admin")));
  OUTPOST_ASSERT_OK(admin.Subscribe("gateway/#"));
  OUTPOST_ASSERT_OK(a.Connect(broker_port, Identity("devA")));
  int refused = 0;
  for (int i = 0; i < kAttempts; ++i) {
    const char* f = i % 2 == 0 ? "devices/devB/commands" : "$SYS/#";
    if (!a.Subscribe(f).ok()) ++refused;
  }
  OUTPOST_ASSERT_OK(gateway.Connect(broker_port, Identity("gateway")));
  for (int i = 0; i < kAttempts; ++i) {
    OUTPOST_ASSERT_OK(gateway.Publish("devices/devB/commands", "cmd", 1));
  }
  // The admin may read gateway/# and $SYS/#: its fence shows the broker handled the gateway's
  // publishes, and a $SYS message (sys_interval 1) went out after A's subscriptions.
  OUTPOST_ASSERT_OK(gateway.Publish("gateway/gw1/status", "fence", 1));
  OUTPOST_ASSERT_OK(admin.WaitMessage("gateway/gw1/status", 10s).status());
  OUTPOST_ASSERT_OK(admin.Subscribe("$SYS/broker/uptime"));
  OUTPOST_ASSERT_OK(admin.WaitMessage("$SYS/broker/uptime", 5s).status());
  OUTPOST_ASSERT_OK(admin.WaitMessage("$SYS/broker/uptime", 5s).status());
  EXPECT_EQ(a.pending_messages(), 0u) << "A received another device's commands or $SYS";
  // Mosquitto 2.0.11 grants a denied 3.1.1 subscription in its SUBACK and filters delivery.
  std::cout << "subscriptions refused in SUBACK: " << refused << " of " << kAttempts << "\n";
}

TEST_F(ProvisionBrokerTest, ACertificateWithAnotherDevicesClientIdNeverBecomesItNorDropsIt) {
  TestMqtt b, gateway;
  auto bo = Identity("devB", "devB");
  bo.clean_session = false;
  OUTPOST_ASSERT_OK(b.Connect(broker_port, bo));
  OUTPOST_ASSERT_OK(b.Subscribe("devices/devB/commands"));
  OUTPOST_ASSERT_OK(gateway.Connect(broker_port, Identity("gateway")));
  for (int i = 0; i < kAttempts; ++i) {
    TestMqtt a;
    auto ao = Identity("devA", "devB");
    ao.clean_session = false;
    OUTPOST_ASSERT_OK(a.Connect(broker_port, ao));
    (void)a.Subscribe("devices/devB/commands");  // refused by the ACL; must not matter
    if (i % 100 == 0) {
      OUTPOST_ASSERT_OK(gateway.Publish("devices/devB/commands", "c" + std::to_string(i), 1));
      OUTPOST_ASSERT_OK(b.WaitMessage("devices/devB/commands", 10s).status());
      EXPECT_EQ(a.pending_messages(), 0u);
    }
    a.Abort();
  }
  EXPECT_TRUE(b.connected());
  EXPECT_EQ(b.connects(), 1u) << "B's session was never taken over";
  EXPECT_TRUE(b.disconnect_reasons().empty());
}

// The control listener keeps the client id a client sends, so it must admit only the control
// identity: a device certificate there is refused and cannot take another device's session.
TEST_F(ProvisionBrokerTest, TheControlListenerRefusesDeviceCertificates) {
  TestMqtt b;
  OUTPOST_ASSERT_OK(b.Connect(broker_port, Identity("devB", "devB")));
  const std::string log_before = broker_process->log();
  for (int i = 0; i < kAttempts; ++i) {
    TestMqtt a;
    ASSERT_FALSE(a.Connect(control_listener_port, Identity("devA", "devB")).ok()) << i;
  }
  ExpectVerifyFailuresLogged(log_before);
  EXPECT_TRUE(b.connected());
  EXPECT_EQ(b.connects(), 1u);
}

TEST_F(ProvisionBrokerTest, AnExpiredCertificateIsRefused) {
  const std::string log_before = broker_process->log();
  for (int i = 0; i < kAttempts; ++i) {
    TestMqtt e;
    Status s = e.Connect(broker_port, Identity("devExpired"));
    ASSERT_FALSE(s.ok()) << "attempt " << i;
  }
  ExpectVerifyFailuresLogged(log_before);
}

TEST_F(ProvisionBrokerTest, AClientWithoutACertificateIsRefused) {
  for (int i = 0; i < kAttempts; ++i) {
    TestMqtt anonymous;
    auto o = Identity("devA");
    o.tls.cert_file.clear();
    o.tls.key_file.clear();
    if (i % 2 == 1) o.tls = mqtt::TlsOptions{};  // plain MQTT on the TLS port
    ASSERT_FALSE(anonymous.Connect(broker_port, o).ok()) << "attempt " << i;
  }
}

TEST_F(ProvisionBrokerTest, ARevokedDeviceIsCutAndRefusedOnNewConnectionsWithin10s) {
  TestMqtt r, b;
  OUTPOST_ASSERT_OK(r.Connect(broker_port, Identity("devR")));
  OUTPOST_ASSERT_OK(r.Subscribe("devices/devR/commands"));
  OUTPOST_ASSERT_OK(b.Connect(broker_port, Identity("devB")));
  const auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(Provision({"device", "revoke", "devR", "--reload-pid",
                       std::to_string(broker_process->pid()), "--cut"}),
            0);
  const std::string log_before = broker_process->log();
  ASSERT_TRUE(WaitUntil("devR's open session cut", 10s, [&] { return !r.connected(); }));
  const auto cut_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - start)
                          .count();
  EXPECT_LE(cut_ms, 10'000);
  std::cout << "revoke to open session cut: " << cut_ms << " ms\n";
  ASSERT_TRUE(WaitUntil("devR refused", 10s, [&] {
    TestMqtt again;
    return !again.Connect(broker_port, Identity("devR")).ok();
  }));
  for (int i = 0; i < kAttempts; ++i) {
    TestMqtt again;
    Status s = again.Connect(broker_port, Identity("devR"));
    ASSERT_FALSE(s.ok()) << "attempt " << i;
  }
  ExpectVerifyFailuresLogged(log_before);
  EXPECT_TRUE(b.connected()) << "other sessions stay up across the reload";
  // Revoked devices are also dropped from the ACL.
  std::ifstream acl(pki_dir + "/broker/acl");
  std::string text((std::istreambuf_iterator<char>(acl)), {});
  EXPECT_EQ(text.find("user devR\n"), std::string::npos);
  EXPECT_NE(text.find("user devB\n"), std::string::npos);
}

TEST_F(ProvisionBrokerTest, OnlySeedDevicesMayUseTheFlatTopics) {
  TestMqtt gateway, seed;
  OUTPOST_ASSERT_OK(gateway.Connect(broker_port, Identity("gateway")));
  OUTPOST_ASSERT_OK(gateway.Subscribe("sensors/data"));
  OUTPOST_ASSERT_OK(seed.Connect(broker_port, Identity("seed1")));
  OUTPOST_ASSERT_OK(seed.Publish("sensors/data", "{\"deviceId\":\"seed1\"}", 1));
  auto m = gateway.WaitMessage("sensors/data", 10s);
  OUTPOST_ASSERT_OK(m.status());
  EXPECT_EQ(m->payload, "{\"deviceId\":\"seed1\"}");
}

// The ACL fits the real gateway: with its generated certificate it connects, subscribes, stores
// a device's reading and answers the admin's get_status on its own topics.
TEST_F(ProvisionBrokerTest, TheGatewayWithItsCertificateStoresAReadingAndAnswersTheAdmin) {
  const char* bin_dir = std::getenv("OUTPOST_BINARY_DIR");
  ASSERT_NE(bin_dir, nullptr);
  const std::string config = suite_tmp->File("gateway.yaml");
  std::ofstream(config) << "gateway:\n  id: gw1\nmqtt:\n  host: 127.0.0.1\n  port: " << broker_port
                        << "\n  tls:\n    enabled: true\n    ca_file: " << pki_dir
                        << "/broker/ca.crt\n    cert_file: " << pki_dir
                        << "/gateway/gateway.crt\n    key_file: " << pki_dir
                        << "/gateway/gateway.key\n    crl_file: " << pki_dir
                        << "/broker/crl.pem\n    registry_file: " << pki_dir
                        << "/devices.tsv\nstorage:\n  path: " << suite_tmp->File("gateway.db")
                        << "\nhttp:\n  listen: 127.0.0.1:0\n";
  TestMqtt admin, device;
  OUTPOST_ASSERT_OK(admin.Connect(broker_port, Identity("admin")));
  OUTPOST_ASSERT_OK(admin.Subscribe("gateway/#"));
  auto gateway = ChildProcess::Start(
      ChildProcessOptions{{std::string(bin_dir) + "/gateway/outpost-gateway", "--config", config},
                          {},
                          suite_tmp->File("gateway.log"),
                          ""});
  OUTPOST_ASSERT_OK(gateway.status());
  auto online = admin.WaitMessage(
      [](const mqtt::Message& m) {
        return m.topic == "gateway/gw1/state" && m.payload == "online";
      },
      20s);
  OUTPOST_ASSERT_OK(online.status()) << (*gateway)->log();
  OUTPOST_ASSERT_OK(device.Connect(broker_port, Identity("devA")));
  OUTPOST_ASSERT_OK(device.Publish(
      "sensors/devA/data", "{\"deviceId\":\"devA\",\"boot\":7,\"seq\":0,\"temperature\":21.5}", 1));
  bool stored = false;
  nlohmann::json status;
  EXPECT_TRUE(WaitUntil("the reading stored", 20s, [&] {
    if (!admin.Publish("gateway/commands", "{\"command\":\"get_status\"}", 1).ok()) return false;
    auto m = admin.WaitMessage("gateway/gw1/status", 2s);
    if (!m.ok()) return false;
    auto j = nlohmann::json::parse(m->payload, nullptr, false);
    stored = j.is_object() && j["ingest"]["stored"] == 1;
    if (stored) status = j;
    return stored;
  })) << (*gateway)->log();
  // Days left (docs/security.md#days-left): devExpired's certificate lapsed a day ago.
  // Whole days rounded down: N - 1 once a second has passed since the site was made, N within
  // that second (the test run alone can reach the gateway that fast).
  auto days_left = [&](const char* item, int issued_days) {
    const int d = status["pki"][item]["days_left"].get<int>();
    EXPECT_TRUE(d == issued_days - 1 || d == issued_days) << item << ": " << status["pki"].dump();
  };
  days_left("crl", 3650);
  days_left("certificate", 825);
  days_left("ca", 7300);
  EXPECT_EQ(status["pki"]["devices"]["first"], "devExpired");
  // Whole days rounded down: a day and a few seconds past is -2.
  EXPECT_EQ(status["pki"]["devices"]["days_left"], -2);
  EXPECT_GE(status["pki"]["devices"]["expiring"], 1);
  EXPECT_EQ(status["alerts"]["active"], 1) << "only the devices' alert";
  auto alert = admin.WaitMessage(
      [](const mqtt::Message& m) {
        auto a = nlohmann::json::parse(m.payload, nullptr, false);
        return m.topic == "gateway/alerts" && a.is_object() && a["rule"] == "pki_expiry";
      },
      20s);
  OUTPOST_ASSERT_OK(alert.status()) << (*gateway)->log();
  const auto a = nlohmann::json::parse(alert->payload);
  EXPECT_EQ(a["alert_id"], "pki_expiry:gw1:devices");
  EXPECT_EQ(a["severity"], "critical");
  EXPECT_EQ(a["state"], "raised");
  EXPECT_NE(a["message"].get<std::string>().find("devExpired"), std::string::npos) << a.dump();
  OUTPOST_EXPECT_OK((*gateway)->Stop(SIGTERM, 20s));
}

TEST_F(ProvisionBrokerTest, AProvisionRunIsIdempotentAndRejectsBadIds) {
  EXPECT_EQ(Provision({"init", "--port", std::to_string(broker_port)}), 0);
  EXPECT_EQ(Provision({"device", "add", "devA"}), 0);
  EXPECT_EQ(Provision({"device", "add", "bad/id"}), 2);
  EXPECT_EQ(Provision({"device", "add", "outpost-admin"}), 2);
  EXPECT_EQ(Provision({"device", "revoke", "nobody"}), 3);
  const std::string log = suite_tmp->File("provision.log");
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(text.find("kept the existing Outpost site CA"), std::string::npos);
  EXPECT_NE(text.find("kept devA (already provisioned"), std::string::npos);
  EXPECT_NE(text.find("bad device id 'bad/id'"), std::string::npos);
}

// The self-check of `device add` (docs/security.md "The self-check"): with --reload-pid the
// broker reads the new ACL, the device's allowed publish arrives at the control identity and its
// forbidden one is denied, which the broker's own log shows.
TEST_F(ProvisionBrokerTest, DeviceAddWithReloadPassesTheSelfCheckAgainstTheBroker) {
  const std::string log_before = broker_process->log();
  auto [rc, out] = ProvisionRun(
      {"device", "add", "devCheck", "--reload-pid", std::to_string(broker_process->pid())});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("self-check passed against the broker at 127.0.0.1:" +
                     std::to_string(broker_port) + " for 1 device"),
            std::string::npos)
      << out;
  // The forbidden half was really tried, and refused by the broker (its PUBACK says nothing).
  EXPECT_TRUE(WaitUntil("the forbidden publish denied in the broker's log", 10s, [&] {
    return broker_process->log()
               .substr(log_before.size())
               .find(
                   "Denied PUBLISH from devCheck (d0, q1, r0, m1, "
                   "'outpost/selfcheck/devCheck/denied'") != std::string::npos;
  })) << broker_process->log().substr(log_before.size());
}

// The same batch as the issue's limit: 100 new devices, every one checked, within 30 s in all.
TEST_F(ProvisionBrokerTest, DeviceAddCount100ChecksEveryDeviceWithin30s) {
  const auto start = std::chrono::steady_clock::now();
  auto [rc, out] = ProvisionRun({"device", "add", "--count", "100", "--prefix", "chk-",
                                 "--reload-pid", std::to_string(broker_process->pid())});
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("for 100 devices in "), std::string::npos) << out;
  EXPECT_LE(ms, 30'000);
  std::cout << "device add --count 100 with the self-check: " << ms << " ms (limit 30000)\n";
}

// Without a reload the broker's ACL lacks the new device: its allowed publish is denied, so the
// check fails with exit 5, says which half and what to do; the device is provisioned all the same.
TEST_F(ProvisionBrokerTest, TheSelfCheckFailsWithExit5WhenTheBrokerWasNotReloaded) {
  auto [rc, out] = ProvisionRun({"device", "add", "devNoReload"});
  EXPECT_EQ(rc, 5) << out;
  EXPECT_NE(out.find("self-check failed: the allowed half failed: devNoReload's publish to "
                     "outpost/selfcheck/devNoReload did not arrive"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("pass --reload-pid PID or run `systemctl reload mosquitto`"),
            std::string::npos)
      << out;
  struct stat st {};
  EXPECT_EQ(::stat((pki_dir + "/devices/devNoReload/device.crt").c_str(), &st), 0);
}

// A broker that loads the certificates but not the ACL lets the forbidden publish through: the
// check's other half fails, with exit 5.
TEST_F(ProvisionBrokerTest, TheSelfCheckFailsWithExit5WhenTheBrokerIgnoresTheAcl) {
  std::uint16_t port = 0, control_port = 0;
  const std::string dir = NewSite("pki-no-acl", &port, &control_port);
  std::ifstream in(dir + "/broker/outpost.conf");
  std::string conf((std::istreambuf_iterator<char>(in)), {}), line;
  std::istringstream lines(conf);
  std::ofstream out_conf(suite_tmp->File("no-acl.conf"));
  out_conf << "persistence false\nlog_dest stderr\nlog_type all\n";
  while (std::getline(lines, line)) {
    if (line.rfind("acl_file ", 0) != 0) out_conf << line << "\n";
  }
  out_conf.close();
  auto broker = ChildProcess::Start(
      ChildProcessOptions{{"/usr/sbin/mosquitto", "-c", suite_tmp->File("no-acl.conf")},
                          {},
                          suite_tmp->File("no-acl-broker.log"),
                          ""});
  ASSERT_TRUE(broker.ok()) << broker.status().message();
  ASSERT_TRUE(WaitForPort(control_port, 10s).ok()) << (*broker)->log();
  auto [rc, out] = ProvisionRun({"device", "add", "devOpen"}, dir);
  EXPECT_EQ(rc, 5) << out;
  EXPECT_NE(out.find("self-check failed: the forbidden half failed: the broker delivered "
                     "devOpen's publish to outpost/selfcheck/devOpen/denied"),
            std::string::npos)
      << out;
  // `device check` on the same broker finds the same hole, for a device provisioned earlier.
  auto [check_rc, check_out] = ProvisionRun({"device", "check", "devOpen"}, dir);
  EXPECT_EQ(check_rc, 5) << check_out;
  EXPECT_NE(check_out.find("self-check failed: the forbidden half failed"), std::string::npos)
      << check_out;
}

// `device check` re-runs the self-check for devices provisioned earlier, named or all of them;
// an id not in the registry or revoked is an error (exit 3) before anything connects.
TEST_F(ProvisionBrokerTest, DeviceCheckPassesForProvisionedDevicesAndRefusesUnknownOrRevokedIds) {
  auto [rc, out] = ProvisionRun({"device", "check", "devA", "devB"});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("self-check passed against the broker at 127.0.0.1:" +
                     std::to_string(broker_port) + " for 2 devices"),
            std::string::npos)
      << out;
  auto [unknown_rc, unknown_out] = ProvisionRun({"device", "check", "devNobody"});
  EXPECT_EQ(unknown_rc, 3) << unknown_out;
  EXPECT_NE(unknown_out.find("devNobody: not in "), std::string::npos) << unknown_out;
  ASSERT_EQ(Provision({"device", "add", "devGone", "--no-check"}), 0);
  ASSERT_EQ(Provision({"device", "revoke", "devGone"}), 0);
  const std::string log_before = broker_process->log();
  auto [revoked_rc, revoked_out] = ProvisionRun({"device", "check", "devGone"});
  EXPECT_EQ(revoked_rc, 3) << revoked_out;
  EXPECT_NE(revoked_out.find("devGone: revoked"), std::string::npos) << revoked_out;
  auto [expired_rc, expired_out] = ProvisionRun({"device", "check", "devExpired"});
  EXPECT_EQ(expired_rc, 3) << expired_out;
  EXPECT_NE(expired_out.find("devExpired: its certificate expired on "), std::string::npos)
      << expired_out;
  // Every active device with its key here, the reload first (the revoke above changed the ACL).
  auto [all_rc, all_out] =
      ProvisionRun({"device", "check", "--reload-pid", std::to_string(broker_process->pid())});
  EXPECT_EQ(all_rc, 0) << all_out;
  EXPECT_NE(all_out.find("self-check passed"), std::string::npos) << all_out;
  EXPECT_EQ(broker_process->log()
                .substr(log_before.size())
                .find("New client connected from "
                      "127.0.0.1 as devGone"),
            std::string::npos)
      << "the revoked device was not among those checked";
  EXPECT_EQ(broker_process->log().substr(log_before.size()).find("devExpired"), std::string::npos)
      << "nor the expired one";
}

TEST_F(ProvisionBrokerTest, WithNoBrokerListeningTheSelfCheckIsSkippedAndAddSucceeds) {
  std::uint16_t port = 0, control_port = 0;
  const std::string dir = NewSite("pki-no-broker", &port, &control_port);
  auto [rc, out] = ProvisionRun({"device", "add", "devAlone"}, dir);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("self-check skipped: no broker is listening at 127.0.0.1:" +
                     std::to_string(control_port)),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("added 1,"), std::string::npos) << out;
  // An explicit check that cannot run is a failure to check, not a pass.
  auto [check_rc, check_out] = ProvisionRun({"device", "check", "devAlone"}, dir);
  EXPECT_EQ(check_rc, 1) << check_out;
  EXPECT_NE(check_out.find("nothing checked: no broker is listening"), std::string::npos)
      << check_out;
}

// --no-check against a broker that was not reloaded (where the check fails: above) succeeds and
// never connects as the device.
TEST_F(ProvisionBrokerTest, NoCheckSkipsTheSelfCheck) {
  auto [rc, out] = ProvisionRun({"device", "add", "devNoCheck", "--no-check"});
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("self-check: not run (--no-check)"), std::string::npos) << out;
  EXPECT_EQ(out.find("self-check passed"), std::string::npos) << out;
  // A fence through the broker: had the device connected, its CONNECT would be logged by now.
  TestMqtt gateway;
  OUTPOST_ASSERT_OK(gateway.Connect(broker_port, Identity("gateway")));
  EXPECT_EQ(broker_process->log().find("devNoCheck"), std::string::npos);
}

// outpost-node --cert-dir: every virtual device presents its own certificate, so the broker
// (use_identity_as_username + the ACL) lets each publish only on its own topics; the readings of
// all three arrive there. Were they sharing one certificate, two of the three would be denied.
TEST_F(ProvisionBrokerTest, TheSimulatorPresentsEachDevicesOwnCertificate) {
  TestMqtt gateway;
  OUTPOST_ASSERT_OK(gateway.Connect(broker_port, Identity("gateway")));
  OUTPOST_ASSERT_OK(gateway.Subscribe("sensors/+/data"));
  auto run = [&](const std::string& devices, const std::string& log) {
    ChildProcessOptions o;
    o.argv = NodeArgs("sim-", devices, {"--count", "3", "--duration", "0"});
    o.log_path = suite_tmp->File(log);
    auto p = ChildProcess::Start(o);
    EXPECT_TRUE(p.ok());
    if (!p.ok()) return std::make_pair(-1, std::string());
    auto rc = (*p)->Wait(60s);
    return std::make_pair(rc.ok() ? *rc : -1, (*p)->log());
  };
  auto [rc, out] = run("3", "sim.log");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("\"acked\":9"), std::string::npos) << out;
  std::map<std::string, int> per_topic;
  for (int i = 0; i < 9; ++i) {
    auto m = gateway.WaitMessage("sensors/+/data", 10s);
    OUTPOST_ASSERT_OK(m.status());
    ++per_topic[m->topic];
  }
  EXPECT_EQ(per_topic, (std::map<std::string, int>{{"sensors/sim-00000/data", 3},
                                                   {"sensors/sim-00001/data", 3},
                                                   {"sensors/sim-00002/data", 3}}));
  // A device without credentials in the folder: a configuration error naming the file.
  auto [rc2, out2] = run("4", "sim-missing.log");
  EXPECT_EQ(rc2, 2) << out2;
  EXPECT_NE(out2.find("sim-00003/device.crt: No such file or directory"), std::string::npos)
      << out2;
}

// device rotate end to end (ADR 0011): the real gateway relays certRequest and certInstall to
// outpost-node, which makes its own next key; outpost-provision signs its CSR and revokes the old
// serial only once the node answers from its new session. Every reading reaches the gateway in
// one boot with no seq gap, and the broker refuses the old certificate afterwards.
TEST_F(ProvisionBrokerTest, DeviceRotateGivesTheNodeItsNextCertificateWithNoGapAndRevokesTheOld) {
  const char* bin_dir = std::getenv("OUTPOST_BINARY_DIR");
  ASSERT_NE(bin_dir, nullptr);
  const std::string gateway_bin = std::string(bin_dir) + "/gateway/outpost-gateway";
  const std::string broker_pid = std::to_string(broker_process->pid());
  ASSERT_EQ(Provision({"device", "add", "--count", "1", "--prefix", "rot-", "--first", "0",
                       "--digits", "5", "--reload-pid", broker_pid}),
            0);
  const std::string dev = pki_dir + "/devices/rot-00000";
  std::filesystem::copy_file(dev + "/device.crt", suite_tmp->File("rot-old.crt"));
  std::filesystem::copy_file(dev + "/device.key", suite_tmp->File("rot-old.key"));
  // The registry's rows for rot-00000, "state serial" each.
  auto rows = [&] {
    std::vector<std::string> out;
    std::ifstream in(pki_dir + "/devices.tsv");
    for (std::string line; std::getline(in, line);) {
      std::vector<std::string> f;
      std::istringstream fields(line);
      for (std::string x; std::getline(fields, x, '\t');) f.push_back(x);
      if (f.size() == 6 && f[0] == "rot-00000") out.push_back(f[4] + " " + f[1]);
    }
    return out;
  };
  const std::vector<std::string> before = rows();
  ASSERT_EQ(before.size(), 1u);
  const std::string old_serial = before[0].substr(before[0].find(' ') + 1);

  auto http = PickFreePort();
  ASSERT_TRUE(http.ok());
  const std::string config = suite_tmp->File("rotate-gateway.yaml");
  std::ofstream(config) << "gateway:\n  id: gw1\nmqtt:\n  host: 127.0.0.1\n  port: " << broker_port
                        << "\n  tls:\n    enabled: true\n    ca_file: " << pki_dir
                        << "/broker/ca.crt\n    cert_file: " << pki_dir
                        << "/gateway/gateway.crt\n    key_file: " << pki_dir
                        << "/gateway/gateway.key\nstorage:\n  path: "
                        << suite_tmp->File("rotate-gateway.db")
                        << "\nhttp:\n  listen: 127.0.0.1:" << *http << "\n";
  auto cli = ChildProcess::Start(ChildProcessOptions{
      {gateway_bin, "--config", config, "token", "create", "--role", "operator", "--name", "rot"},
      {},
      suite_tmp->File("rotate-token.log"),
      ""});
  OUTPOST_ASSERT_OK(cli.status());
  auto cli_rc = (*cli)->Wait(60s);
  ASSERT_TRUE(cli_rc.ok() && *cli_rc == 0) << (*cli)->log();
  std::smatch token;
  const std::string cli_log = (*cli)->log();
  ASSERT_TRUE(std::regex_search(cli_log, token, std::regex("opt_[0-9a-f]{64}"))) << cli_log;
  const std::string token_file = suite_tmp->File("rotate-token");
  std::ofstream(token_file) << token.str() << "\n";
  ::chmod(token_file.c_str(), 0600);

  TestMqtt admin;
  OUTPOST_ASSERT_OK(admin.Connect(broker_port, Identity("admin")));
  OUTPOST_ASSERT_OK(admin.Subscribe("gateway/gw1/state"));
  auto gateway = ChildProcess::Start(ChildProcessOptions{
      {gateway_bin, "--config", config}, {}, suite_tmp->File("rotate-gateway.log"), ""});
  OUTPOST_ASSERT_OK(gateway.status());
  OUTPOST_ASSERT_OK(admin
                        .WaitMessage(
                            [](const mqtt::Message& m) {
                              return m.topic == "gateway/gw1/state" && m.payload == "online";
                            },
                            20s)
                        .status())
      << (*gateway)->log();
  // The gateway's view of rot-00000 (GET /api/v1/devices/rot-00000), null until it answers.
  auto device = [&]() -> nlohmann::json {
    auto c = RawHttpConnection::Connect(*http);
    if (!c.ok()) return nullptr;
    auto r = c->Exchange(
        "GET /api/v1/devices/rot-00000 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Authorization: Bearer " +
        token.str() + "\r\nConnection: close\r\n\r\n");
    if (!r.ok() || r->status != 200) return nullptr;
    return nlohmann::json::parse(r->body, nullptr, false);
  };
  auto readings = [&] {
    const nlohmann::json d = device();
    return d.is_object() ? d["counters"]["readings"].get<std::int64_t>() : 0;
  };

  ChildProcessOptions node_o;
  node_o.argv = NodeArgs("rot-", "1", {"--duration", "300", "--drain-timeout", "10"});
  node_o.log_path = suite_tmp->File("rotate-node.log");
  auto node = ChildProcess::Start(node_o);
  OUTPOST_ASSERT_OK(node.status());
  ASSERT_TRUE(WaitUntil("rot-00000's readings at the gateway", 20s, [&] { return readings() > 0; }))
      << (*node)->log() << (*gateway)->log();

  auto [rc, out] = ProvisionRun({"device", "rotate", "rot-00000", "--gateway",
                                 "http://127.0.0.1:" + std::to_string(*http), "--token-file",
                                 token_file, "--reload-pid", broker_pid, "--timeout-s", "60"});
  ASSERT_EQ(rc, 0) << out << (*node)->log();
  const std::vector<std::string> after = rows();
  ASSERT_EQ(after.size(), 2u) << out;
  EXPECT_EQ(after[0], "revoked " + old_serial);
  ASSERT_EQ(after[1].rfind("active ", 0), 0u) << after[1];
  const std::string new_serial = after[1].substr(7);
  EXPECT_NE(new_serial, old_serial);
  EXPECT_NE(out.find("rotated rot-00000: serial " + old_serial + " -> " + new_serial),
            std::string::npos)
      << out;
  // The folder's copy is the node's new pair (the simulator shares the folder); no pending key.
  EXPECT_FALSE(std::filesystem::exists(dev + "/next.crt"));
  EXPECT_FALSE(std::filesystem::exists(dev + "/device.pending.key"));
  // The broker read the new CRL: the old pair is refused (at most 10 s, as revoke promises).
  TestMqttOptions old_identity = Identity("rot-00000");
  old_identity.tls.cert_file = suite_tmp->File("rot-old.crt");
  old_identity.tls.key_file = suite_tmp->File("rot-old.key");
  old_identity.client_id = "rot-00000";
  EXPECT_TRUE(WaitUntil("the old certificate refused", 10s, [&] {
    TestMqtt old;
    return !old.Connect(broker_port, old_identity).ok();
  }));

  // Readings go on with the new certificate; then every one the node had acknowledged is stored,
  // in one boot with no seq gap.
  const std::int64_t at_rotation = readings();
  ASSERT_TRUE(WaitUntil("readings after the rotation", 20s,
                        [&] { return readings() >= at_rotation + 10; }));
  (*node)->Terminate();
  auto node_rc = (*node)->Wait(30s);
  ASSERT_TRUE(node_rc.ok() && *node_rc == 0) << (*node)->log();
  const std::string node_log = (*node)->log();
  EXPECT_NE(node_log.find("\"cert_rotations\":1"), std::string::npos) << node_log;
  std::smatch acked;
  ASSERT_TRUE(std::regex_search(node_log, acked, std::regex("\"acked\":([0-9]+)"))) << node_log;
  const std::int64_t n = std::stoll(acked[1].str());
  EXPECT_TRUE(WaitUntil("every acknowledged reading stored", 10s, [&] { return readings() >= n; }))
      << readings() << " of " << n;
  const nlohmann::json d = device();
  ASSERT_TRUE(d.is_object());
  EXPECT_EQ(d["counters"]["seq_gaps"], 0) << d.dump();
  EXPECT_EQ(d["counters"]["readings"], n) << d.dump();
  std::smatch took;
  std::regex_search(out, took, std::regex("after ([0-9]+) ms"));
  std::printf("rot-00000: %lld readings, 0 seq gaps, across the rotation %s -> %s (%s ms)\n",
              static_cast<long long>(n), old_serial.c_str(), new_serial.c_str(),
              took.size() > 1 ? took[1].str().c_str() : "?");

  // Again, with the device offline: rotate gives up after --timeout-s (exit 4) with its
  // certRequest queued in the gateway; run again once the node is back, it resumes that same
  // command (no second certRequest) and rotates from the new serial.
  const std::string url = "http://127.0.0.1:" + std::to_string(*http);
  const std::vector<std::string> again = {"device",   "rotate",       "rot-00000", "--gateway",
                                          url,        "--token-file", token_file,  "--reload-pid",
                                          broker_pid, "--timeout-s"};
  auto with_timeout = [&](const char* s) {
    std::vector<std::string> a = again;
    a.emplace_back(s);
    return a;
  };
  auto offline = ProvisionRun(with_timeout("1"));
  EXPECT_EQ(offline.first, 4) << offline.second;
  EXPECT_NE(offline.second.find("run the same rotate again"), std::string::npos) << offline.second;
  node_o.log_path = suite_tmp->File("rotate-node-2.log");
  auto node2 = ChildProcess::Start(node_o);
  OUTPOST_ASSERT_OK(node2.status());
  auto resumed = ProvisionRun(with_timeout("60"));
  ASSERT_EQ(resumed.first, 0) << resumed.second << (*node2)->log();
  const std::vector<std::string> third = rows();
  ASSERT_EQ(third.size(), 3u) << resumed.second;
  EXPECT_EQ(third[1], "revoked " + new_serial);
  EXPECT_EQ(third[2].rfind("active ", 0), 0u) << third[2];
  auto history = RawHttpConnection::Connect(*http);
  OUTPOST_ASSERT_OK(history.status());
  auto listed = history->Exchange(
      "GET /api/v1/devices/rot-00000/commands HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Authorization: Bearer " +
      token.str() + "\r\nConnection: close\r\n\r\n");
  OUTPOST_ASSERT_OK(listed.status());
  int requests = 0;
  const nlohmann::json commands = nlohmann::json::parse(listed->body, nullptr, false);
  ASSERT_TRUE(commands.is_object()) << listed->body;
  for (const auto& c : commands["commands"]) {
    requests += c["command"] == "certRequest" ? 1 : 0;
  }
  EXPECT_EQ(requests, 2) << "one per rotation: the resumed run sent none of its own"
                         << listed->body;
  (*node2)->Terminate();
  auto node2_rc = (*node2)->Wait(30s);
  ASSERT_TRUE(node2_rc.ok() && *node2_rc == 0) << (*node2)->log();

  // What rotate refuses, before anything is sent: a seed device, an unknown id, a bad token.
  auto seed = ProvisionRun({"device", "rotate", "seed1", "--token-file", token_file});
  EXPECT_EQ(seed.first, 3) << seed.second;
  EXPECT_NE(seed.second.find("seed"), std::string::npos) << seed.second;
  EXPECT_EQ(ProvisionRun({"device", "rotate", "nobody", "--token-file", token_file}).first, 3);
  const std::string bad_token = suite_tmp->File("rotate-bad-token");
  std::ofstream(bad_token) << "opt_" << std::string(64, '0') << "\n";
  auto denied =
      ProvisionRun({"device", "rotate", "rot-00000", "--gateway", url, "--token-file", bad_token});
  EXPECT_EQ(denied.first, 2) << denied.second;
  EXPECT_NE(denied.second.find("401"), std::string::npos) << denied.second;
  EXPECT_EQ(rows().size(), 3u) << "a refused rotate changes nothing";
  OUTPOST_EXPECT_OK((*gateway)->Stop(SIGTERM, 20s));
}

// The registry in the gateway's database (docs/security.md#the-registry-in-the-gateways-database):
// device add and revoke with --gateway-db copy devices.tsv into the running gateway's store, and
// a gateway with no registry_file reports the devices' days left from it; a missing database or
// an old schema is exit 1 with a clear message, devices.tsv still written.
TEST_F(ProvisionBrokerTest, DeviceAddWithGatewayDbFillsItsTableAndTheGatewayReportsItsDaysLeft) {
  const char* bin_dir = std::getenv("OUTPOST_BINARY_DIR");
  ASSERT_NE(bin_dir, nullptr);
  const std::string db = suite_tmp->File("gateway-registry.db");
  const std::string config = suite_tmp->File("gateway-registry.yaml");
  std::ofstream(config) << "gateway:\n  id: gw1\nmqtt:\n  host: 127.0.0.1\n  port: " << broker_port
                        << "\n  tls:\n    enabled: true\n    ca_file: " << pki_dir
                        << "/broker/ca.crt\n    cert_file: " << pki_dir
                        << "/gateway/gateway.crt\n    key_file: " << pki_dir
                        << "/gateway/gateway.key\nstorage:\n  path: " << db
                        << "\nhttp:\n  listen: 127.0.0.1:0\n";
  auto start_gateway = [&](const std::string& log) {
    return ChildProcess::Start(
        ChildProcessOptions{{std::string(bin_dir) + "/gateway/outpost-gateway", "--config", config},
                            {},
                            suite_tmp->File(log),
                            ""});
  };
  // The gateway's status once `fresh` holds: a status retained from a gateway before (another
  // test's has a crl_file) must not pass for this one's.
  TestMqtt admin;
  OUTPOST_ASSERT_OK(admin.Connect(broker_port, Identity("admin")));
  OUTPOST_ASSERT_OK(admin.Subscribe("gateway/#"));
  auto status_of_gateway = [&](nlohmann::json* status, auto fresh) {
    return static_cast<bool>(WaitUntil("the gateway's status", 20s, [&] {
      if (!admin.Publish("gateway/commands", "{\"command\":\"get_status\"}", 1).ok()) return false;
      auto m = admin.WaitMessage("gateway/gw1/status", 2s);
      if (!m.ok()) return false;
      *status = nlohmann::json::parse(m->payload, nullptr, false);
      return status->is_object() && status->contains("pki") && !(*status)["pki"].contains("crl") &&
             fresh(*status);
    }));
  };
  auto gateway = start_gateway("gateway-registry-1.log");
  OUTPOST_ASSERT_OK(gateway.status());
  nlohmann::json status;
  ASSERT_TRUE(status_of_gateway(&status, [](const nlohmann::json&) { return true; }))
      << (*gateway)->log();
  EXPECT_FALSE(status["pki"].contains("devices")) << "an empty table and no registry_file";

  // While the gateway runs on it (busy_timeout), add and revoke sync the table.
  const std::string pid = std::to_string(broker_process->pid());
  auto [rc, out] =
      ProvisionRun({"device", "add", "devDb", "--gateway-db", db, "--reload-pid", pid});
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("gateway database " + db + ": device_certificates = devices.tsv"),
            std::string::npos)
      << out;
  auto [rc2, out2] = ProvisionRun({"device", "revoke", "devDb", "--gateway-db", db});
  EXPECT_EQ(rc2, 0) << out2;
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  std::string rows;
  sqlite3_exec(
      h,
      "SELECT device_id || ':' || state FROM device_certificates WHERE device_id IN ('devDb', "
      "'devA', 'devExpired') ORDER BY device_id",
      [](void* p, int, char** v, char**) {
        *static_cast<std::string*>(p) += std::string(v[0]) + " ";
        return 0;
      },
      &rows, nullptr);
  sqlite3_close(h);
  EXPECT_EQ(rows, "devA:active devDb:revoked devExpired:active ");
  OUTPOST_EXPECT_OK((*gateway)->Stop(SIGTERM, 20s));

  // A gateway started on that database reports the days left without registry_file.
  auto again = start_gateway("gateway-registry-2.log");
  OUTPOST_ASSERT_OK(again.status());
  ASSERT_TRUE(status_of_gateway(&status, [](const nlohmann::json& j) {
    return j["pki"].contains("devices");
  })) << (*again)->log();
  EXPECT_EQ(status["pki"]["devices"]["path"], db) << status["pki"].dump();
  EXPECT_EQ(status["pki"]["devices"]["first"], "devExpired");
  // Lapsed a day ago: -1 within the same second as the add, -2 after (whole days, rounded down).
  EXPECT_LE(status["pki"]["devices"]["days_left"], -1);
  EXPECT_GE(status["pki"]["devices"]["days_left"], -2);
  EXPECT_GE(status["pki"]["devices"]["expiring"], 1);
  OUTPOST_EXPECT_OK((*again)->Stop(SIGTERM, 20s));

  // A path that does not exist, and a schema older than 8.
  const std::string missing = suite_tmp->File("no-such-gateway.db");
  auto [rc3, out3] =
      ProvisionRun({"device", "add", "devDb2", "--gateway-db", missing, "--no-check"});
  EXPECT_EQ(rc3, 1) << out3;
  EXPECT_NE(out3.find(missing + " does not exist: start outpost-gateway once"), std::string::npos)
      << out3;
  EXPECT_NE(out3.find("devices.tsv was written"), std::string::npos) << out3;
  const std::string old = suite_tmp->File("old-gateway.db");
  ASSERT_EQ(sqlite3_open(old.c_str(), &h), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(h, "PRAGMA application_id=1330664276; PRAGMA user_version=7", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(h);
  auto [rc4, out4] = ProvisionRun({"device", "revoke", "devDb2", "--gateway-db", old});
  EXPECT_EQ(rc4, 1) << out4;
  EXPECT_NE(out4.find(old + " has schema version 7, older than 8"), std::string::npos) << out4;
  auto [rc5, list] = ProvisionRun({"list"});
  EXPECT_NE(list.find("devDb2\trevoked"), std::string::npos) << list;
}

}  // namespace
}  // namespace outpost::testing
