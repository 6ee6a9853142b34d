// mqtt::Client against a real Mosquitto (tests/support), over TCP and TLS.
#include <gtest/gtest.h>

#include <asio.hpp>
#include <chrono>
#include <string>

#include "outpost/mqtt/client.h"
#include "outpost/testing/mosquitto_process.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/temp_dir.h"
#include "outpost/testing/test_mqtt.h"
#include "outpost/testing/test_pki.h"

namespace outpost::mqtt {
namespace {

using outpost::testing::MosquittoOptions;
using outpost::testing::MosquittoProcess;
using outpost::testing::TempDir;
using outpost::testing::TestMqtt;
using outpost::testing::TestMqttOptions;
using std::chrono::milliseconds;

std::unique_ptr<MosquittoProcess> StartBroker(MosquittoOptions options = {}) {
  auto broker = MosquittoProcess::Start(std::move(options));
  OUTPOST_EXPECT_OK(broker);
  return broker.ok() ? std::move(broker).value() : nullptr;
}

TEST(MqttClientIntegration, Qos0AndQos1PublishSubscribe) {
  auto broker = StartBroker();
  ASSERT_TRUE(broker);
  TestMqtt sub, pub;
  OUTPOST_ASSERT_OK(sub.Connect(broker->port()));
  OUTPOST_ASSERT_OK(sub.Subscribe("sensors/+/data", 1));
  OUTPOST_ASSERT_OK(pub.Connect(broker->port()));

  OUTPOST_ASSERT_OK(pub.Publish("sensors/n1/data", "qos0", 0));
  auto m0 = sub.WaitMessage("sensors/#");
  OUTPOST_ASSERT_OK(m0);
  EXPECT_EQ(m0->topic, "sensors/n1/data");
  EXPECT_EQ(m0->payload, "qos0");
  EXPECT_EQ(m0->qos, 0);

  OUTPOST_ASSERT_OK(
      pub.Publish("sensors/n2/data", std::string(100'000, 'b'), 1));  // waits for PUBACK
  auto m1 = sub.WaitMessage("sensors/n2/data");
  OUTPOST_ASSERT_OK(m1);
  EXPECT_EQ(m1->qos, 1);
  EXPECT_NE(m1->packet_id, 0);
  EXPECT_EQ(m1->payload.size(), 100'000u);

  // Retained message reaches a later subscriber.
  OUTPOST_ASSERT_OK(pub.Publish("devices/n1/status", "online", 1, /*retain=*/true));
  TestMqtt late;
  OUTPOST_ASSERT_OK(late.Connect(broker->port()));
  OUTPOST_ASSERT_OK(late.Subscribe("devices/+/status", 1));
  auto r = late.WaitMessage("devices/n1/status");
  OUTPOST_ASSERT_OK(r);
  EXPECT_TRUE(r->retain);
  EXPECT_EQ(r->payload, "online");
}

TEST(MqttClientIntegration, ManyQos1MessagesArriveInOrder) {
  auto broker = StartBroker();
  ASSERT_TRUE(broker);
  TestMqtt sub, pub;
  OUTPOST_ASSERT_OK(sub.Connect(broker->port()));
  OUTPOST_ASSERT_OK(sub.Subscribe("load/#", 1));
  OUTPOST_ASSERT_OK(pub.Connect(broker->port()));
  constexpr int kCount = 1'000;  // = default max_inflight
  // Pipelined: publish all without waiting, the client coalesces writes.
  pub.RunOnIo([&](Client& c) {
    for (int i = 0; i < kCount; ++i) {
      OUTPOST_ASSERT_OK(c.Publish("load/x", std::to_string(i), 1, false));
    }
  });
  for (int i = 0; i < kCount; ++i) {
    auto m = sub.WaitMessage("load/x");
    OUTPOST_ASSERT_OK(m) << i << ": ";
    ASSERT_EQ(m->payload, std::to_string(i));
  }
}

TEST(MqttClientIntegration, PersistentSessionRedeliversUnackedQos1) {
  auto broker = StartBroker();
  ASSERT_TRUE(broker);
  TestMqttOptions gw;
  gw.client_id = "gateway-1";
  gw.clean_session = false;
  gw.auto_ack = false;
  TestMqtt sub, pub;
  OUTPOST_ASSERT_OK(sub.Connect(broker->port(), gw));
  OUTPOST_ASSERT_OK(sub.Subscribe("sensors/+/data", 1));
  OUTPOST_ASSERT_OK(pub.Connect(broker->port()));
  OUTPOST_ASSERT_OK(pub.Publish("sensors/n1/data", "reading-1", 1));
  auto first = sub.WaitMessage("sensors/n1/data");
  OUTPOST_ASSERT_OK(first);
  EXPECT_FALSE(first->dup);

  // Not durable yet: drop the connection without acknowledging.
  sub.Abort();
  OUTPOST_ASSERT_OK(sub.Connect(broker->port(), gw));
  EXPECT_TRUE(sub.session_present());
  auto again = sub.WaitMessage("sensors/n1/data");
  OUTPOST_ASSERT_OK(again);
  EXPECT_EQ(again->payload, "reading-1");
  EXPECT_TRUE(again->dup);
  EXPECT_NE(again->connection_id, first->connection_id);

  // An ack carrying the previous connection's id is ignored: still redelivered next time.
  sub.Ack(*first);
  sub.Abort();
  OUTPOST_ASSERT_OK(sub.Connect(broker->port(), gw));
  auto third = sub.WaitMessage("sensors/n1/data");
  OUTPOST_ASSERT_OK(third);

  // Acked on the right connection: not redelivered; a marker published after proves it.
  sub.Ack(*third);
  OUTPOST_ASSERT_OK(sub.Disconnect());
  OUTPOST_ASSERT_OK(pub.Publish("sensors/marker/data", "marker", 1));
  OUTPOST_ASSERT_OK(sub.Connect(broker->port(), gw));
  auto next = sub.WaitMessage([](const Message&) { return true; });
  OUTPOST_ASSERT_OK(next);
  EXPECT_EQ(next->payload, "marker");
  sub.Ack(*next);
}

// Issue 8: a message over max_packet_size used to end the connection, and the broker
// redelivered it at every reconnect. A Client without on_oversize_message acknowledges it
// itself, counts it, and the session goes on.
TEST(MqttClientIntegration, OversizeMessageIsSkippedAckedAndNotRedelivered) {
  auto broker = StartBroker();
  ASSERT_TRUE(broker);
  TestMqttOptions gw;
  gw.client_id = "gateway-big";
  gw.clean_session = false;
  TestMqtt sub, pub;
  OUTPOST_ASSERT_OK(sub.Connect(broker->port(), gw));
  OUTPOST_ASSERT_OK(sub.Subscribe("sensors/+/data", 1));
  TestMqttOptions big;
  big.max_packet_size = 1024 * 1024;
  OUTPOST_ASSERT_OK(pub.Connect(broker->port(), big));
  OUTPOST_ASSERT_OK(pub.Publish("sensors/giant/data", std::string(300'000, 'g'), 1));
  OUTPOST_ASSERT_OK(pub.Publish("sensors/n1/data", "after", 1));
  auto m = sub.WaitMessage([](const Message&) { return true; });
  OUTPOST_ASSERT_OK(m);
  EXPECT_EQ(m->payload, "after");
  ClientCounters counters;
  sub.RunOnIo([&](Client& c) { counters = c.counters(); });
  EXPECT_EQ(counters.oversize_in, 1u);
  EXPECT_EQ(counters.messages_in, 1u);
  EXPECT_EQ(counters.disconnects, 0u);
  EXPECT_TRUE(sub.disconnect_reasons().empty());
  // Acknowledged: after a reconnect of the persistent session the next message is the marker.
  OUTPOST_ASSERT_OK(sub.Disconnect());
  OUTPOST_ASSERT_OK(pub.Publish("sensors/marker/data", "marker", 1));
  OUTPOST_ASSERT_OK(sub.Connect(broker->port(), gw));
  auto next = sub.WaitMessage([](const Message&) { return true; });
  OUTPOST_ASSERT_OK(next);
  EXPECT_EQ(next->payload, "marker");
  sub.RunOnIo([&](Client& c) { counters = c.counters(); });
  EXPECT_EQ(counters.oversize_in, 0u);
}

TEST(MqttClientIntegration, WillDeliveredOnAbruptClose) {
  auto broker = StartBroker();
  ASSERT_TRUE(broker);
  TestMqtt watcher, node, clean_node;
  OUTPOST_ASSERT_OK(watcher.Connect(broker->port()));
  OUTPOST_ASSERT_OK(watcher.Subscribe("devices/+/status", 1));

  TestMqttOptions o;
  o.client_id = "node-7";
  o.will = Will{"devices/node-7/status", "offline", 1, false};
  OUTPOST_ASSERT_OK(node.Connect(broker->port(), o));
  node.Abort();
  auto will = watcher.WaitMessage("devices/node-7/status");
  OUTPOST_ASSERT_OK(will);
  EXPECT_EQ(will->payload, "offline");

  // A clean DISCONNECT discards the will.
  o.client_id = "node-8";
  o.will = Will{"devices/node-8/status", "offline", 1, false};
  OUTPOST_ASSERT_OK(clean_node.Connect(broker->port(), o));
  OUTPOST_ASSERT_OK(clean_node.Disconnect());
  OUTPOST_ASSERT_OK(watcher.Subscribe("sync/#", 1));
  TestMqtt pub;
  OUTPOST_ASSERT_OK(pub.Connect(broker->port()));
  OUTPOST_ASSERT_OK(pub.Publish("sync/done", "x", 1));
  auto next = watcher.WaitMessage([](const Message&) { return true; });
  OUTPOST_ASSERT_OK(next);
  EXPECT_EQ(next->topic, "sync/done");
}

TEST(MqttClientIntegration, ReconnectsAfterBrokerRestartAndResubscribes) {
  auto broker = StartBroker();
  ASSERT_TRUE(broker);
  TestMqtt sub;
  OUTPOST_ASSERT_OK(sub.Connect(broker->port()));
  OUTPOST_ASSERT_OK(sub.Subscribe("cmd/#", 1));

  OUTPOST_ASSERT_OK(broker->Stop());
  OUTPOST_ASSERT_OK(broker->Restart());
  // A clean broker has no sessions: only the client's re-subscription makes this work.
  OUTPOST_ASSERT_OK(sub.WaitConnects(2, milliseconds(15'000)));
  EXPECT_FALSE(sub.session_present());
  TestMqtt pub;
  OUTPOST_ASSERT_OK(pub.Connect(broker->port()));
  // The SUBSCRIBE follows the CONNACK asynchronously: retry until it is in place.
  Result<Message> m = Status(Code::kDeadlineExceeded, "not yet");
  for (int i = 0; i < 50 && !m.ok(); ++i) {
    OUTPOST_ASSERT_OK(pub.Publish("cmd/reboot", "now", 1));
    m = sub.WaitMessage("cmd/reboot", milliseconds(200));
  }
  OUTPOST_ASSERT_OK(m);
  auto reasons = sub.disconnect_reasons();
  ASSERT_FALSE(reasons.empty());
  OUTPOST_EXPECT_CODE(reasons.front(), Code::kUnavailable) << reasons.front().ToString();
}

TEST(MqttClientIntegration, InflightQos1SurvivesBrokerRestartWithPersistence) {
  MosquittoOptions bo;
  bo.persistence = true;
  auto broker = StartBroker(bo);
  ASSERT_TRUE(broker);
  TestMqttOptions so;
  so.client_id = "sink";
  so.clean_session = false;
  TestMqtt sub;
  OUTPOST_ASSERT_OK(sub.Connect(broker->port(), so));
  OUTPOST_ASSERT_OK(sub.Subscribe("q/#", 1));
  OUTPOST_ASSERT_OK(sub.Disconnect());

  // Publisher queues QoS 1 while the broker is down; delivered after it is back.
  TestMqttOptions po;
  po.client_id = "source";
  TestMqtt pub;
  OUTPOST_ASSERT_OK(pub.Connect(broker->port(), po));
  OUTPOST_ASSERT_OK(broker->Stop());
  std::uint16_t id = 0;
  pub.RunOnIo([&](Client& c) {
    auto r = c.Publish("q/1", "while-down", 1, false);
    OUTPOST_ASSERT_OK(r);
    id = *r;
  });
  EXPECT_NE(id, 0);
  OUTPOST_ASSERT_OK(broker->Restart());
  OUTPOST_ASSERT_OK(pub.WaitConnects(2, milliseconds(15'000)));
  OUTPOST_ASSERT_OK(sub.Connect(broker->port(), so));
  EXPECT_TRUE(sub.session_present());
  auto m = sub.WaitMessage("q/1", milliseconds(10'000));
  OUTPOST_ASSERT_OK(m);
  EXPECT_EQ(m->payload, "while-down");
}

TEST(MqttClientIntegration, KeepalivePingsKeepAnIdleConnectionOpen) {
  auto broker = StartBroker();
  ASSERT_TRUE(broker);
  TestMqttOptions o;
  o.keepalive_s = 1;  // the broker drops us after 1.5 s without a packet
  TestMqtt idle;
  OUTPOST_ASSERT_OK(idle.Connect(broker->port(), o));
  // Nothing is published: this wait is 3 keepalive periods of pure idleness.
  EXPECT_FALSE(idle.WaitMessage("#", milliseconds(3'000)).ok());
  EXPECT_TRUE(idle.connected());
  EXPECT_EQ(idle.connects(), 1u);
  EXPECT_TRUE(idle.disconnect_reasons().empty());
}

class MqttTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = outpost::testing::GenerateTestPki(dir_.path());
    OUTPOST_ASSERT_OK(pki);
    pki_ = *pki;
    MosquittoOptions o;
    o.extra_config = {"cafile " + pki_.ca_cert, "certfile " + pki_.server_cert,
                      "keyfile " + pki_.server_key, "require_certificate true"};
    broker_ = StartBroker(o);
    ASSERT_TRUE(broker_);
  }

  TestMqttOptions Tls() {
    TestMqttOptions o;
    o.tls.enabled = true;
    o.tls.ca_file = pki_.ca_cert;
    o.tls.cert_file = pki_.client_cert;
    o.tls.key_file = pki_.client_key;
    o.reconnect = false;
    return o;
  }

  TempDir dir_{"outpost-pki"};
  outpost::testing::TestPki pki_;
  std::unique_ptr<MosquittoProcess> broker_;
};

TEST_F(MqttTlsTest, CaVerificationAndClientCertificate) {
  TestMqtt sub, pub;
  OUTPOST_ASSERT_OK(sub.Connect(broker_->port(), Tls()));
  OUTPOST_ASSERT_OK(sub.Subscribe("secure/#", 1));
  TestMqttOptions by_name = Tls();
  by_name.host = "localhost";  // verified against the DNS SAN instead of the IP SAN
  OUTPOST_ASSERT_OK(pub.Connect(broker_->port(), by_name));
  OUTPOST_ASSERT_OK(pub.Publish("secure/x", "over tls", 1));
  auto m = sub.WaitMessage("secure/x");
  OUTPOST_ASSERT_OK(m);
  EXPECT_EQ(m->payload, "over tls");
}

TEST_F(MqttTlsTest, WrongCaFailsWithClearError) {
  TestMqttOptions o = Tls();
  o.tls.ca_file = pki_.other_ca_cert;
  TestMqtt c;
  Status s = c.Connect(broker_->port(), o);
  OUTPOST_EXPECT_CODE(s, Code::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("TLS handshake"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("certificate verify failed"), std::string::npos) << s.ToString();
  EXPECT_FALSE(c.connected());
}

TEST_F(MqttTlsTest, HostnameMismatchFails) {
  TestMqttOptions o = Tls();
  o.tls.server_name = "gateway.example.com";
  TestMqtt c;
  Status s = c.Connect(broker_->port(), o);
  OUTPOST_EXPECT_CODE(s, Code::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("certificate verify failed"), std::string::npos) << s.ToString();
}

TEST_F(MqttTlsTest, MissingClientCertificateIsRejected) {
  TestMqttOptions o = Tls();
  o.tls.cert_file.clear();
  o.tls.key_file.clear();
  TestMqtt c;
  Status s = c.Connect(broker_->port(), o);
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(c.connected());
}

TEST_F(MqttTlsTest, UnreadableCaFileIsAStartError) {
  TestMqttOptions o = Tls();
  o.tls.ca_file = dir_.File("missing.pem");
  TestMqtt c;
  Status s = c.Connect(broker_->port(), o);
  OUTPOST_EXPECT_CODE(s, Code::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("missing.pem"), std::string::npos);
}

TEST(MqttClientIntegration, ConnectFailureIsReportedAndRetried) {
  auto port = outpost::testing::PickFreePort();  // nobody listens here
  OUTPOST_ASSERT_OK(port);
  asio::io_context io;
  ClientOptions o;
  o.port = *port;
  o.session.client_id = "retry";
  o.backoff = BackoffPolicy{10, 20};
  o.random_seed = 42;
  std::vector<Status> reasons;
  ClientCallbacks cb;
  std::unique_ptr<Client> client;
  cb.on_disconnected = [&](const Status& s) {
    reasons.push_back(s);
    if (reasons.size() == 3) client->Stop([&io] { io.stop(); });
  };
  client = std::make_unique<Client>(io, o, cb);
  OUTPOST_ASSERT_OK(client->Start());
  io.run_for(std::chrono::seconds(10));
  ASSERT_GE(reasons.size(), 3u);
  OUTPOST_EXPECT_CODE(reasons[0], Code::kUnavailable);
  EXPECT_NE(reasons[0].message().find("connect 127.0.0.1:"), std::string::npos);
  EXPECT_EQ(client->counters().connect_failures, 3u);
  EXPECT_EQ(client->counters().connects, 0u);
}

TEST(MqttClientIntegration, PauseReadingHoldsBackMessages) {
  auto broker = StartBroker();
  ASSERT_TRUE(broker);
  TestMqtt sub, pub;
  OUTPOST_ASSERT_OK(sub.Connect(broker->port()));
  OUTPOST_ASSERT_OK(sub.Subscribe("bp/#", 1));
  OUTPOST_ASSERT_OK(pub.Connect(broker->port()));
  sub.RunOnIo([](Client& c) { c.PauseReading(); });
  OUTPOST_ASSERT_OK(pub.Publish("bp/1", "held", 1));
  // The message is in the socket buffer, not delivered: a short wait must time out.
  EXPECT_FALSE(sub.WaitMessage("bp/1", milliseconds(300)).ok());
  sub.RunOnIo([](Client& c) { c.ResumeReading(); });
  auto m = sub.WaitMessage("bp/1");
  OUTPOST_ASSERT_OK(m);
  sub.RunOnIo([](Client& c) {
    EXPECT_GT(c.counters().bytes_in, 0u);
    EXPECT_GT(c.counters().bytes_out, 0u);
    EXPECT_EQ(c.counters().connects, 1u);
  });
}

}  // namespace
}  // namespace outpost::mqtt
