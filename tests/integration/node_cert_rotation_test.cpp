// outpost-node --tls --cert-dir rotates a device's certificate over the command channel
// (ADR 0011) against a real TLS Mosquitto loading a site made by outpost-provision. The test
// plays the gateway (its identity): certRequest, signs the CSR with the site's CA, certInstall,
// and checks the reply's serial, the files, the readings' seq across the reconnect and a restart
// with the new identity. Waits on messages with deadlines, never sleeps.
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "outpost/provision/pki.h"
#include "outpost/testing/child_process.h"
#include "outpost/testing/mosquitto_process.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/temp_dir.h"
#include "outpost/testing/test_mqtt.h"

namespace outpost::testing {
namespace {

using namespace std::chrono_literals;
namespace pv = outpost::provision;

std::string Bin(const std::string& rel) {
  const char* dir = std::getenv("OUTPOST_BINARY_DIR");
  return std::string(dir != nullptr ? dir : ".") + "/" + rel;
}

std::string LowerSerial(X509* cert) {
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
  char* hex = BN_bn2hex(bn);
  std::string s(hex);
  OPENSSL_free(hex);
  BN_free(bn);
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s.size() % 2 == 1) s = "0" + s;
  return s;
}

class NodeCertRotationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::chmod(tmp_.path().c_str(), 0755);  // Mosquitto as root drops to `mosquitto`
    pki_ = tmp_.File("pki");
    auto port = PickFreePort();
    ASSERT_TRUE(port.ok());
    port_ = *port;
    auto control = PickFreePort();
    ASSERT_TRUE(control.ok());
    while (*control == port_) control = PickFreePort();
    ASSERT_EQ(Run({Bin("tools/provision/outpost-provision"), "--dir", pki_, "init", "--port",
                   std::to_string(port_), "--control-port", std::to_string(*control),
                   "--gateway-id", "gw1"}),
              0);
    ASSERT_EQ(Run({Bin("tools/provision/outpost-provision"), "--dir", pki_, "device", "add",
                   "--count", "2", "--prefix", "rot-", "--first", "0", "--digits", "5"}),
              0);
    ::mkdir(tmp_.File("conf.d").c_str(), 0755);
    ASSERT_EQ(::symlink((pki_ + "/broker/outpost.conf").c_str(),
                        tmp_.File("conf.d/outpost.conf").c_str()),
              0);
    std::ofstream(tmp_.File("mosquitto.conf"))
        << "persistence false\nlog_dest stderr\nlog_type all\n"
        << "include_dir " << tmp_.File("conf.d") << "\n";
    auto broker = ChildProcess::Start(
        ChildProcessOptions{{"/usr/sbin/mosquitto", "-c", tmp_.File("mosquitto.conf")},
                            {},
                            tmp_.File("broker.log"),
                            ""});
    ASSERT_TRUE(broker.ok()) << broker.status().message();
    broker_ = std::move(*broker);
    ASSERT_TRUE(WaitForPort(port_, 10s).ok()) << broker_->log();
  }

  int Run(std::vector<std::string> argv) {
    auto p = ChildProcess::Start(ChildProcessOptions{argv, {}, tmp_.File("run.log"), ""});
    if (!p.ok()) return -1;
    auto rc = (*p)->Wait(60s);
    return rc.ok() ? *rc : -1;
  }

  std::unique_ptr<ChildProcess> StartNode(const std::vector<std::string>& extra,
                                          const std::string& log) {
    ChildProcessOptions o;
    o.argv = {Bin("devices/host/outpost-node"),
              "--broker",
              "127.0.0.1:" + std::to_string(port_),
              "--tls",
              "--ca",
              pki_ + "/broker/ca.crt",
              "--cert-dir",
              pki_ + "/devices",
              "--id-prefix",
              "rot-",
              "--devices",
              "2",
              "--interval",
              "0.2",
              "--json",
              "-q"};
    o.argv.insert(o.argv.end(), extra.begin(), extra.end());
    o.log_path = tmp_.File(log);
    auto p = ChildProcess::Start(o);
    EXPECT_TRUE(p.ok());
    return p.ok() ? std::move(*p) : nullptr;
  }

  TestMqttOptions Gateway() {
    TestMqttOptions o;
    o.client_id = "gw1-test";
    o.timeout = 5s;
    o.tls.enabled = true;
    o.tls.ca_file = pki_ + "/broker/ca.crt";
    o.tls.cert_file = pki_ + "/gateway/gateway.crt";
    o.tls.key_file = pki_ + "/gateway/gateway.key";
    return o;
  }

  // The reply to command `id` of rot-00000.
  nlohmann::json WaitReply(TestMqtt& gw, const std::string& id, std::chrono::milliseconds t) {
    auto m = gw.WaitMessage(
        [&](const mqtt::Message& msg) {
          if (msg.topic != "devices/rot-00000/replies") return false;
          auto j = nlohmann::json::parse(msg.payload, nullptr, false);
          return j.is_object() && j.value("id", "") == id;
        },
        t);
    EXPECT_TRUE(m.ok()) << "no reply to " << id;
    return m.ok() ? nlohmann::json::parse(m->payload) : nlohmann::json();
  }

  TempDir tmp_{"outpost-rotation"};
  std::string pki_;
  std::uint16_t port_ = 0;
  std::unique_ptr<ChildProcess> broker_;
};

TEST_F(NodeCertRotationTest, RotatesOverTheCommandChannelWithNoSeqGapAndRestartsWithTheNewOne) {
  TestMqtt gw;
  OUTPOST_ASSERT_OK(gw.Connect(port_, Gateway()));
  OUTPOST_ASSERT_OK(gw.Subscribe("devices/+/replies"));
  OUTPOST_ASSERT_OK(gw.Subscribe("sensors/rot-00000/data"));
  auto node = StartNode({"--duration", "300", "--drain-timeout", "10"}, "node1.log");
  ASSERT_NE(node, nullptr);
  std::map<std::int64_t, std::set<std::int64_t>> seqs;  // boot -> seqs seen
  auto take_reading = [&](std::chrono::milliseconds t) {
    auto m = gw.WaitMessage("sensors/rot-00000/data", t);
    if (!m.ok()) return false;
    auto j = nlohmann::json::parse(m->payload, nullptr, false);
    if (j.is_object() && j.contains("seq")) {
      seqs[j.value("boot", std::int64_t{0})].insert(j["seq"].get<std::int64_t>());
    }
    return true;
  };
  ASSERT_TRUE(take_reading(20s)) << node->log();
  auto old_cert = pv::LoadCert(pki_ + "/devices/rot-00000/device.crt");
  ASSERT_TRUE(old_cert.ok());
  const std::string old_serial = pv::SerialHex(old_cert->get());
  for (const char* f : {"device.crt", "device.key"}) {
    std::ifstream in(pki_ + "/devices/rot-00000/" + f);
    std::ofstream(tmp_.File(std::string("old-") + f)) << in.rdbuf();
  }

  OUTPOST_ASSERT_OK(
      gw.Publish("devices/rot-00000/commands", R"({"id":"C1","command":"certRequest"})", 1));
  const nlohmann::json r1 = WaitReply(gw, "C1", 15s);
  ASSERT_TRUE(r1.value("ok", false)) << r1.dump();
  auto decoded = pv::Base64Decode(r1.value("csr", ""), 4096);
  ASSERT_TRUE(decoded.ok()) << r1.dump();
  const std::string der_csr = *decoded;
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der_csr.data());
  std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> req(
      d2i_X509_REQ(nullptr, &p, static_cast<long>(der_csr.size())), X509_REQ_free);
  ASSERT_NE(req, nullptr);
  pv::Key pub(X509_REQ_get_pubkey(req.get()));
  ASSERT_EQ(X509_REQ_verify(req.get(), pub.get()), 1);
  // `device add --csr` keeps an id that exists, so the test signs with the site's CA itself.
  auto ca = pv::LoadCert(pki_ + "/ca/ca.crt");
  auto ca_key = pv::LoadKey(pki_ + "/ca/ca.key");
  ASSERT_TRUE(ca.ok() && ca_key.ok());
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  auto next = pv::IssueCert(
      pv::CertRequest{"rot-00000", pv::CertKind::kClient, {}, {}, now - 60, now + 86400}, pub.get(),
      ca_key->get(), ca->get());
  ASSERT_TRUE(next.ok());
  const std::string der = pv::CertDer(next->get());
  ASSERT_FALSE(der.empty());
  OUTPOST_ASSERT_OK(gw.Publish(
      "devices/rot-00000/commands",
      R"({"id":"C2","command":"certInstall","cert":")" + pv::Base64Encode(der) + R"("})", 1));
  const nlohmann::json r2 = WaitReply(gw, "C2", 30s);
  ASSERT_TRUE(r2.value("ok", false)) << r2.dump() << node->log();
  EXPECT_EQ(r2.value("serial", ""), LowerSerial(next->get()));
  auto on_disk = pv::LoadCert(pki_ + "/devices/rot-00000/device.crt");
  ASSERT_TRUE(on_disk.ok());
  EXPECT_EQ(X509_cmp(on_disk->get(), next->get()), 0);
  struct stat st {};
  EXPECT_NE(::stat((pki_ + "/devices/rot-00000/device.pending.key").c_str(), &st), 0);

  // Readings after the reconnect, then every reading queued so far: one boot, no seq gap.
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(take_reading(10s)) << node->log();
  while (gw.pending_messages() > 0 && take_reading(100ms)) {
  }
  ASSERT_EQ(seqs.size(), 1u);
  const auto& s = seqs.begin()->second;
  EXPECT_EQ(static_cast<std::int64_t>(s.size()), *s.rbegin() - *s.begin() + 1)
      << "gap in " << s.size() << " seqs from " << *s.begin() << " to " << *s.rbegin();
  std::printf("rot-00000: %zu readings seen, seq %lld..%lld in one boot, across the rotation\n",
              s.size(), static_cast<long long>(*s.begin()), static_cast<long long>(*s.rbegin()));

  node->Terminate();
  auto rc = node->Wait(30s);
  ASSERT_TRUE(rc.ok());
  EXPECT_EQ(*rc, 0) << node->log();
  EXPECT_NE(node->log().find("\"cert_rotations\":1"), std::string::npos) << node->log();
  EXPECT_NE(node->log().find("\"ack_order_errors\":0"), std::string::npos) << node->log();

  // What `device rotate` does after the reply: revoke the old serial (a CRL signed by the site's
  // CA), reload the broker. The old identity is refused from then on...
  auto crl = pv::MakeCrlPem(ca->get(), ca_key->get(), {old_serial}, now - 60, now + 86400);
  ASSERT_TRUE(crl.ok());
  std::ofstream(pki_ + "/broker/crl.pem", std::ios::trunc) << *crl;
  broker_->Terminate();
  ASSERT_TRUE(broker_->Wait(10s).ok());
  auto broker = ChildProcess::Start(ChildProcessOptions{
      {"/usr/sbin/mosquitto", "-c", tmp_.File("mosquitto.conf")}, {}, tmp_.File("broker.log"), ""});
  ASSERT_TRUE(broker.ok());
  broker_ = std::move(*broker);
  ASSERT_TRUE(WaitForPort(port_, 10s).ok()) << broker_->log();
  {
    TestMqttOptions o = Gateway();
    o.client_id = "rot-00000";
    o.reconnect = false;
    o.tls.cert_file = tmp_.File("old-device.crt");
    o.tls.key_file = tmp_.File("old-device.key");
    TestMqtt old;
    EXPECT_FALSE(old.Connect(port_, o).ok()) << "the revoked identity connected";
  }
  // ...so a restart that acks its readings loads and presents the new pair: 3 readings each.
  auto again = StartNode({"--count", "3", "--duration", "0"}, "node2.log");
  ASSERT_NE(again, nullptr);
  auto rc2 = again->Wait(60s);
  ASSERT_TRUE(rc2.ok());
  EXPECT_EQ(*rc2, 0) << again->log();
  EXPECT_NE(again->log().find("\"acked\":6"), std::string::npos) << again->log();
}

}  // namespace
}  // namespace outpost::testing
