// Regression tests of issue 8, section 2: one oversize MQTT message stopped ingest for good. The
// gateway dropped its connection on it ("packet of 2000086 bytes exceeds the limit of 262144"),
// the broker redelivered it on every reconnect, and every other device's readings stopped.
// Real Mosquitto (whose message_size_limit lets the giant through), real outpost-gateway binary,
// real SQLite file.
#include <gtest/gtest.h>

#include <string>

#include "gateway_harness.h"
#include "outpost/mqtt/codec.h"
#include "outpost/testing/status_matchers.h"

namespace outpost::testing {
namespace {

using nlohmann::json;

constexpr std::size_t kGiantPayloadBytes = 2'000'000;
constexpr std::size_t kGatewayHeadBytes = 512;  // ingest.quarantine_max_payload_bytes default

std::string Native(const std::string& device, int seq) {
  return json{{"deviceId", device}, {"boot", 1}, {"seq", seq}, {"temperature", 20.0 + seq}}.dump();
}

std::string Giant(const std::string& device) {
  std::string head = R"({"deviceId":")" + device + R"(","pad":")";
  std::string tail = R"("})";
  return head + std::string(kGiantPayloadBytes - head.size() - tail.size(), 'a') + tail;
}

std::uint64_t TooLarge(const json& status) {
  return status["ingest"]["rejected_by_reason"].value("too_large", std::uint64_t{0});
}

class GatewayOversizeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HarnessOptions o;
    // The broker lets the giant through, as one configured without message_size_limit would:
    // the gateway must survive anything the broker delivers.
    o.broker_config.push_back("message_size_limit 4194304");
    Status started = h_.Start(o);
    OUTPOST_ASSERT_OK(started);
    TestMqttOptions big;
    big.max_packet_size = 4 * 1024 * 1024;
    OUTPOST_ASSERT_OK(giant_sender_.Connect(h_.broker().port(), big));
  }
  void TearDown() override {
    if (HasFailure()) {
      h_.dir().Keep();
      std::string log = h_.gateway_log();
      if (log.size() > 20'000) log = "..." + log.substr(log.size() - 20'000);
      std::printf("kept %s\ngateway log (tail):\n%s\n", h_.dir().path().c_str(), log.c_str());
    }
  }

  // Publishes `n` normal readings each from devices "a" and "b", starting at `seq`.
  void PublishNormal(int seq, int n) {
    for (int i = seq; i < seq + n; ++i) {
      OUTPOST_ASSERT_OK(h_.devices().Publish("sensors/a/data", Native("a", i), 1));
      OUTPOST_ASSERT_OK(h_.devices().Publish("sensors/b/data", Native("b", i), 1));
    }
  }

  // The gateway stored `stored` readings and counted `too_large` giants on one connection.
  void ExpectIngestWentOn(std::uint64_t stored, std::uint64_t too_large) {
    auto s = h_.WaitStatus(
        [&](const json& j) { return j["ingest"]["stored"] == stored && TooLarge(j) == too_large; });
    OUTPOST_ASSERT_OK(s);
    EXPECT_EQ((*s)["mqtt"]["connects"], 1) << "the gateway reconnected: " << (*s)["mqtt"].dump();
    EXPECT_EQ((*s)["mqtt"]["connect_failures"], 0);
    EXPECT_TRUE((*s)["mqtt"]["connected"].get<bool>());
    EXPECT_EQ((*s)["ingest"]["rejected"], too_large);
    EXPECT_EQ((*s)["mqtt"]["oversize"], too_large);
  }

  // The quarantine holds the giant's head (topic, reason, first bytes, size in the detail).
  void ExpectQuarantinedHead(const std::string& topic, const std::string& giant, int qos) {
    auto store = h_.OpenStore();
    OUTPOST_ASSERT_OK(store);
    auto q = (*store)->ListQuarantine(10);
    OUTPOST_ASSERT_OK(q);
    ASSERT_EQ(q->size(), 1u);
    const auto& row = (*q)[0];
    EXPECT_EQ(row.topic, topic);
    EXPECT_EQ(row.reason, "too_large");
    EXPECT_EQ(row.payload, giant.substr(0, kGatewayHeadBytes));
    const std::string size = std::to_string(mqtt::EncodedPublishSize(topic, giant.size(), qos));
    EXPECT_NE(row.detail.find(size), std::string::npos) << row.detail;
  }

  GatewayHarness h_;
  TestMqtt giant_sender_;
};

TEST_F(GatewayOversizeTest, OversizeQos1PublishIsAckedQuarantinedAndIngestGoesOn) {
  const std::string giant = Giant("giant");
  OUTPOST_ASSERT_OK(giant_sender_.Publish("sensors/giant/data", giant, 1));
  PublishNormal(1, 3);
  ExpectIngestWentOn(6, 1);
  OUTPOST_ASSERT_OK(h_.StopGateway());
  ExpectQuarantinedHead("sensors/giant/data", giant, 1);

  // Acknowledged: the broker forgot it, so the restarted gateway does not get it again (it would
  // arrive before the reading published now, which is queued behind it).
  OUTPOST_ASSERT_OK(h_.StartGateway());
  PublishNormal(4, 1);
  ExpectIngestWentOn(2, 0);
}

TEST_F(GatewayOversizeTest, OversizeQos0PublishIsSkippedAndIngestGoesOn) {
  const std::string giant = Giant("giant0");
  OUTPOST_ASSERT_OK(giant_sender_.Publish("sensors/giant0/data", giant, 0));
  PublishNormal(1, 3);
  ExpectIngestWentOn(6, 1);
  OUTPOST_ASSERT_OK(h_.StopGateway());
  ExpectQuarantinedHead("sensors/giant0/data", giant, 0);
}

TEST_F(GatewayOversizeTest, OversizeRetainedPublishIsSkippedAtEverySubscription) {
  const std::string giant = Giant("giantr");
  OUTPOST_ASSERT_OK(giant_sender_.Publish("sensors/giantr/data", giant, 1, /*retain=*/true));
  PublishNormal(1, 2);
  ExpectIngestWentOn(4, 1);
  // The broker sends a retained message again at every subscription; each time it is skipped.
  OUTPOST_ASSERT_OK(h_.StopGateway());
  OUTPOST_ASSERT_OK(h_.StartGateway());
  PublishNormal(3, 1);
  ExpectIngestWentOn(2, 1);
  OUTPOST_ASSERT_OK(giant_sender_.Publish("sensors/giantr/data", "", 1, true));  // clear it
}

// The broker setting scripts/run-local.sh writes (docs/broker.md): Mosquitto drops a giant
// itself (completing the publisher's QoS 1 flow), so the gateway never sees it.
TEST(GatewayBrokerLimit, RunLocalMessageSizeLimitRefusesGiantsBeforeTheGateway) {
  GatewayHarness h;
  HarnessOptions o;
  o.broker_config.push_back("message_size_limit 65536");
  Status started = h.Start(o);
  OUTPOST_ASSERT_OK(started);
  TestMqttOptions big;
  big.max_packet_size = 4 * 1024 * 1024;
  TestMqtt sender;
  OUTPOST_ASSERT_OK(sender.Connect(h.broker().port(), big));
  OUTPOST_ASSERT_OK(sender.Publish("sensors/giant/data", Giant("giant"), 1));  // PUBACKed
  OUTPOST_ASSERT_OK(sender.Publish("sensors/fits/data", Native("fits", 1), 1));
  auto s = h.WaitStatus([](const json& j) { return j["ingest"]["stored"] == 1; });
  OUTPOST_ASSERT_OK(s);
  EXPECT_EQ((*s)["ingest"]["rejected"], 0);  // the giant, published first, never arrived
  EXPECT_EQ((*s)["mqtt"]["oversize"], 0);
  EXPECT_EQ(TooLarge(*s), 0u);
}

}  // namespace
}  // namespace outpost::testing
