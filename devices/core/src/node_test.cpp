#include "outpost/device/node.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "fakes_test.h"

namespace outpost::device::testing {
namespace {

NodeConfig TestConfig() {
  NodeConfig c;
  c.device_id = "node-1";
  c.firmware_version = "1.2.3";
  c.interval_ms = 1'000;
  c.min_interval_ms = 1'000;
  c.boot_delay_max_ms = 0;
  c.ring_capacity = 10;
  c.max_inflight = 4;
  c.keepalive_s = 0;
  c.max_poll_interval_ms = 0;
  c.backoff = {50, 400};  // reconnects land between two samples
  return c;
}

std::vector<std::uint64_t> SeqsOf(const std::vector<mqtt::Publish>& ps) {
  std::vector<std::uint64_t> out;
  for (const auto& p : ps) {
    auto at = p.payload.find("\"seq\":");
    if (at == std::string::npos) continue;
    out.push_back(std::stoull(p.payload.substr(at + 6)));
  }
  return out;
}

TEST(NodeTest, ConnectsWithWillSubscribesAndAnnouncesOnline) {
  Rig rig(TestConfig());
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(1'500);
  ASSERT_GE(rig.received.size(), 3u);
  const auto& connect = std::get<mqtt::Connect>(rig.received[0]);
  EXPECT_EQ(connect.client_id, "node-1");
  ASSERT_TRUE(connect.will.has_value());
  EXPECT_EQ(connect.will->topic, "devices/node-1/status");
  EXPECT_EQ(connect.will->payload, "offline");
  EXPECT_TRUE(connect.will->retain);
  EXPECT_EQ(connect.will->qos, 1);
  const auto& sub = std::get<mqtt::Subscribe>(rig.received[1]);
  EXPECT_EQ(sub.subscriptions[0].filter, "devices/node-1/commands");
  auto status = rig.PublishesOn("devices/node-1/status");
  ASSERT_EQ(status.size(), 1u);
  EXPECT_EQ(status[0].payload, "online");
  EXPECT_TRUE(status[0].retain);
  EXPECT_EQ(status[0].qos, 1);
  EXPECT_EQ(rig.node->state(), NodeState::kOnline);
  EXPECT_EQ(rig.node->stats().connects, 1u);
}

TEST(NodeTest, ScheduleIsDriftFreeOverManyPeriodsEvenWhenTheLoopIsLate) {
  NodeConfig c = TestConfig();
  c.interval_ms = 5'000;
  c.ring_capacity = 64;
  Rig rig(c);
  rig.poll_jitter_ms = 700;  // the binding wakes up to 0.7 s late, every time
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  const std::int64_t start = rig.now;
  const int periods = 2'000;
  rig.RunUntil(start + std::int64_t{periods} * 5'000 + 1);
  const auto& reads = rig.ports.sensors.climate_reads;
  ASSERT_EQ(reads.size(), static_cast<std::size_t>(periods));
  for (int k = 0; k < periods; ++k) {
    const std::int64_t grid = start + std::int64_t{k + 1} * 5'000;
    ASSERT_GE(reads[k], grid) << k;
    ASSERT_LE(reads[k], grid + 700) << k;  // late by the loop only, never accumulating
  }
  EXPECT_EQ(rig.node->stats().acked, static_cast<std::uint64_t>(periods));
}

TEST(NodeTest, StalledLoopSkipsWholePeriodsAndStaysOnTheGrid) {
  Rig rig(TestConfig());
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(3'000);  // samples at 2000, 3000
  rig.now = 7'500;      // the loop was blocked for 4.5 s
  rig.Step();
  rig.RunUntil(9'000);
  const auto& r = rig.ports.sensors.climate_reads;
  EXPECT_EQ(r, (std::vector<std::int64_t>{2'000, 3'000, 7'500, 8'000, 9'000}));
}

TEST(NodeTest, BootDelayIsRandomAndBounded) {
  std::set<std::int64_t> first_connects;
  for (std::uint32_t seed = 1; seed <= 50; ++seed) {
    NodeConfig c = TestConfig();
    c.boot_delay_max_ms = 5'000;
    Rig rig(c, seed);
    ASSERT_EQ(rig.Begin(), DeviceError::kOk);
    rig.RunUntil(10'000);
    ASSERT_GE(rig.ports.transport.connect_times.size(), 1u);
    const std::int64_t t = rig.ports.transport.connect_times[0];
    EXPECT_LE(t - 1'000, 5'000);
    first_connects.insert(t);
  }
  EXPECT_GT(first_connects.size(), 40u);  // a fleet does not reconnect in lockstep
}

// Regression: boot_delay_max_ms = UINT32_MAX made `Next() % (max + 1u)` a division by zero.
TEST(NodeTest, BootDelayMaxOfUint32MaxDoesNotDivideByZero) {
  NodeConfig c = TestConfig();
  c.boot_delay_max_ms = UINT32_MAX;
  Rig rig(c);
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  EXPECT_EQ(rig.node->state(), NodeState::kBootDelay);
  const std::int64_t wake = rig.node->Poll(rig.now);
  EXPECT_GT(wake, rig.now);
}

TEST(NodeTest, ReconnectBackoffIsFullJitterAndBounded) {
  NodeConfig c = TestConfig();
  c.backoff = {1'000, 16'000};
  c.interval_ms = 3'600'000;  // no samples in the way
  c.max_interval_ms = 3'600'000;
  std::vector<std::vector<std::int64_t>> delays_by_attempt(8);
  for (std::uint32_t seed = 1; seed <= 40; ++seed) {
    Rig rig(c, seed);
    rig.broker_up = false;
    ASSERT_EQ(rig.Begin(), DeviceError::kOk);
    rig.RunUntil(200'000);
    std::vector<std::int64_t> attempts = rig.ports.transport.connect_times;
    ASSERT_GE(attempts.size(), 9u);
    attempts.resize(9);
    for (std::size_t k = 0; k + 1 < attempts.size(); ++k) {
      const std::int64_t delay = attempts[k + 1] - attempts[k];
      const std::int64_t ceiling = std::min<std::int64_t>(16'000, 1'000LL << k);
      EXPECT_LE(delay, ceiling) << "attempt " << k;  // bounded by min(cap, base * 2^k)
      delays_by_attempt[k].push_back(delay);
    }
  }
  // Full jitter: delays spread over [0, ceiling), not clustered at the ceiling.
  for (std::size_t k = 0; k < delays_by_attempt.size(); ++k) {
    auto& d = delays_by_attempt[k];
    const std::int64_t ceiling = std::min<std::int64_t>(16'000, 1'000LL << k);
    std::sort(d.begin(), d.end());
    EXPECT_LT(d.front(), ceiling / 4) << k;
    EXPECT_GT(d.back(), ceiling * 3 / 4) << k;
  }
}

TEST(NodeTest, OfflineBufferKeepsEverythingUpToCapacityAndDrainsInOrder) {
  Rig rig(TestConfig());
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(3'500);  // seq 0, 1 online
  rig.BrokerDown();
  rig.RunUntil(11'500);  // 8 readings while away (capacity 10)
  EXPECT_EQ(rig.node->stats().ring_depth, 8u);
  EXPECT_EQ(rig.node->stats().ring_dropped, 0u);
  rig.BrokerUp();
  rig.RunUntil(80'000);
  auto seqs = SeqsOf(rig.PublishesOn("sensors/node-1/data"));
  std::vector<std::uint64_t> want(seqs.size());
  for (std::size_t i = 0; i < want.size(); ++i) want[i] = i;
  EXPECT_EQ(seqs, want);  // every reading once, in order
  EXPECT_EQ(rig.node->stats().ring_depth, 0u);
  EXPECT_EQ(rig.node->stats().acked, rig.node->stats().sampled);
  EXPECT_GE(rig.node->stats().reconnects, 1u);
}

TEST(NodeTest, OfflineBufferDropsExactlyTheOldestBeyondCapacity) {
  Rig rig(TestConfig());
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(2'500);  // seq 0 acked
  rig.BrokerDown();
  rig.RunUntil(17'500);  // seq 1..15 taken offline: 15 readings, capacity 10
  EXPECT_EQ(rig.node->stats().ring_dropped, 5u);
  EXPECT_EQ(rig.ports.observer.dropped, (std::vector<std::uint32_t>{1, 2, 3, 4, 5}));
  rig.BrokerUp();
  rig.RunUntil(60'000);
  auto seqs = SeqsOf(rig.PublishesOn("sensors/node-1/data"));
  ASSERT_GE(seqs.size(), 11u);
  EXPECT_EQ(seqs[0], 0u);
  for (std::size_t i = 1; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], i + 5) << i;
}

TEST(NodeTest, ReadingIsReleasedOnlyOnPubAckAndResentWithDupAfterReconnect) {
  NodeConfig c = TestConfig();
  c.max_inflight = 2;
  Rig rig(c);
  rig.auto_puback = false;
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(5'500);  // 4 readings, window of 2
  auto data = rig.PublishesOn("sensors/node-1/data");
  ASSERT_EQ(data.size(), 2u);  // the window holds the rest back
  EXPECT_EQ(rig.node->stats().ring_depth, 4u);
  EXPECT_EQ(rig.node->stats().acked, 0u);
  const std::uint16_t first_id = data[0].packet_id;

  rig.BrokerDown();
  rig.BrokerUp();
  rig.publishes.clear();
  rig.unacked_ids.clear();
  rig.RunUntil(5'950);  // reconnected (backoff < 400 ms), no new sample yet
  data = rig.PublishesOn("sensors/node-1/data");
  ASSERT_GE(data.size(), 2u);
  EXPECT_TRUE(data[0].dup);
  EXPECT_EQ(data[0].packet_id, first_id);  // same id, DUP set
  EXPECT_TRUE(data[1].dup);
  EXPECT_EQ(rig.node->stats().resent, 2u);
  EXPECT_EQ(rig.node->stats().acked, 0u);  // still nothing released

  rig.auto_puback = true;
  rig.AckAll();
  rig.RunUntil(rig.now + 1);
  EXPECT_GE(rig.node->stats().acked, 4u);
  ASSERT_FALSE(rig.ports.observer.acks.empty());
  EXPECT_EQ(rig.ports.observer.acks[0].seq, 0u);
  EXPECT_EQ(rig.ports.observer.acks[0].publish_ms, 2'000);  // first PUBLISH, not the resend
}

TEST(NodeTest, PartialWritesKeepTheStreamIntact) {
  Rig rig(TestConfig());
  rig.ports.transport.max_accept = 7;
  rig.ports.transport.refuse_every = 3;
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(30'500);  // the Rig fails the test if the broker ever sees invalid MQTT
  auto seqs = SeqsOf(rig.PublishesOn("sensors/node-1/data"));
  ASSERT_EQ(seqs.size(), 29u);
  for (std::size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], i);
  EXPECT_EQ(rig.node->stats().ring_dropped, 0u);
}

// Regression: a control message (reply/status) got its packet id before it was encoded; when
// the tx buffer was full the encode failed, and the first real transmission went out with DUP
// set, as if it were a resend.
TEST(NodeTest, ControlMessageDeferredByAFullTxBufferIsFirstSentWithoutDup) {
  Rig rig(TestConfig());
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(1'100);
  rig.ports.transport.refuse_every = 1;  // the socket accepts nothing: tx fills up
  rig.RunUntil(5'500);                   // readings fill the window
  for (int i = 0; i < 7; ++i) {          // 7: one reply no longer fits; every PUBACK still does
    rig.SendCommand("devices/node-1/commands",
                    R"({"command":"led","state":true,"id":"c-)" + std::to_string(i) + R"("})",
                    static_cast<std::uint16_t>(100 + i));
  }
  rig.ports.transport.refuse_every = 0;
  rig.RunUntil(8'000);
  auto replies = rig.PublishesOn("devices/node-1/replies");
  ASSERT_FALSE(replies.empty());
  EXPECT_EQ(rig.node->stats().disconnects, 0u);
  for (const auto& r : replies) EXPECT_FALSE(r.dup) << r.payload;
}

TEST(NodeTest, UnknownPubAckIsCountedAsStale) {
  Rig rig(TestConfig());
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(1'100);
  rig.Send(mqtt::PubAck{4242});
  EXPECT_EQ(rig.node->stats().stale_acks, 1u);
  EXPECT_EQ(rig.node->state(), NodeState::kOnline);
}

TEST(NodeTest, MalformedBrokerBytesDropTheConnection) {
  Rig rig(TestConfig());
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(1'100);
  const std::uint8_t garbage[] = {0x34, 0x05, 0x00, 0x01, 'a', 0x00, 0x01};  // QoS 2
  rig.node->OnBytes(garbage, sizeof garbage, rig.now);
  EXPECT_EQ(rig.node->stats().protocol_errors, 1u);
  EXPECT_EQ(rig.node->state(), NodeState::kBackoff);
  EXPECT_EQ(rig.ports.transport.closes, 1);
}

TEST(NodeTest, CommandsAreAcknowledgedByIdAndDeduplicatedAcrossReboots) {
  Rig rig(TestConfig());
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(1'100);
  rig.SendCommand("devices/node-1/commands", R"({"command":"led","state":true,"id":"c-1"})", 5);
  EXPECT_TRUE(rig.ports.led.on);
  rig.RunUntil(1'200);
  auto replies = rig.PublishesOn("devices/node-1/replies");
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].payload, R"({"id":"c-1","ok":true})");
  EXPECT_EQ(replies[0].qos, 1);
  // The command's own PUBLISH was acknowledged.
  bool acked_5 = false;
  for (const auto& p : rig.received) {
    if (auto* a = std::get_if<mqtt::PubAck>(&p)) acked_5 = acked_5 || a->packet_id == 5;
  }
  EXPECT_TRUE(acked_5);

  // Redelivery: not executed again, acknowledged again.
  rig.ports.led.on = false;
  rig.SendCommand("devices/node-1/commands", R"({"command":"led","state":true,"id":"c-1"})", 6);
  rig.RunUntil(1'300);
  EXPECT_FALSE(rig.ports.led.on);
  EXPECT_EQ(rig.node->stats().commands_duplicate, 1u);
  replies = rig.PublishesOn("devices/node-1/replies");
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[1].payload, R"({"id":"c-1","ok":true,"duplicate":true})");

  // The recent ids live in RTC memory: still a duplicate after a deep-sleep wake / reboot.
  ASSERT_EQ(rig.Reboot(), DeviceError::kOk);
  rig.RunUntil(rig.now + 100);
  rig.SendCommand("devices/node-1/commands", R"({"id":"c-1","command":"led","state":true})", 7);
  EXPECT_FALSE(rig.ports.led.on);
  EXPECT_EQ(rig.node->stats().commands_duplicate, 1u);
  EXPECT_EQ(rig.ports.led.sets, 1);
}

TEST(NodeTest, UnknownAndMalformedCommandsGetErrorReplies) {
  Rig rig(TestConfig());
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(1'100);
  rig.SendCommand("devices/node-1/commands", R"({"command":"dance","id":17})", 1);
  rig.SendCommand("devices/node-1/commands", R"({"command":"led","state":"on","id":"c-2"})", 2);
  rig.SendCommand("devices/node-1/commands", R"({"command":"led","state":true)", 3);  // no id
  rig.RunUntil(1'200);
  auto replies = rig.PublishesOn("devices/node-1/replies");
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[0].payload,
            R"({"id":"17","ok":false,"error":"unknown command \"dance\"","rejected":true})");
  EXPECT_EQ(
      replies[1].payload,
      R"({"id":"c-2","ok":false,"error":"field \"state\": expected true or false","rejected":true})");
  EXPECT_EQ(rig.node->stats().commands_rejected, 3u);
  EXPECT_EQ(rig.ports.led.sets, 0);
}

TEST(NodeTest, SetSensorIntervalIsBoundedPersistedAndChangesTheRate) {
  NodeConfig c = TestConfig();
  c.interval_ms = 5'000;
  c.min_interval_ms = 2'000;
  c.max_interval_ms = 60'000;
  Rig rig(c);
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(6'500);  // sample at 6000
  rig.SendCommand("devices/node-1/commands",
                  R"({"command":"setSensorInterval","interval":1000,"id":"a"})", 1);
  rig.SendCommand("devices/node-1/commands",
                  R"({"command":"setSensorInterval","interval":600000,"id":"b"})", 2);
  EXPECT_EQ(rig.node->stats().interval_ms, 5'000u);
  rig.SendCommand("devices/node-1/commands",
                  R"({"command":"setSensorInterval","interval":2000,"id":"c"})", 3);
  EXPECT_EQ(rig.node->stats().interval_ms, 2'000u);
  EXPECT_EQ(rig.ports.settings.values["interval_ms"], 2'000u);
  rig.RunUntil(20'500);
  auto replies = rig.PublishesOn("devices/node-1/replies");
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_EQ(
      replies[0].payload,
      R"({"id":"a","ok":false,"error":"field \"interval\": 1000 ms is outside [2000, 60000]","rejected":true})");
  EXPECT_EQ(replies[2].payload, R"({"id":"c","ok":true})");
  // From the last grid point (6000): 8000, 10000, ... 20000.
  const auto& r = rig.ports.sensors.climate_reads;
  EXPECT_EQ(std::vector<std::int64_t>(r.begin() + 1, r.end()),
            (std::vector<std::int64_t>{8'000, 10'000, 12'000, 14'000, 16'000, 18'000, 20'000}));
  // Persisted: the next boot samples every 2 s.
  ASSERT_EQ(rig.Reboot(), DeviceError::kOk);
  EXPECT_EQ(rig.node->stats().interval_ms, 2'000u);
}

TEST(NodeTest, RebootIsAcknowledgedFirstThenRestarts) {
  Rig rig(TestConfig());
  rig.auto_puback = false;
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(1'100);
  rig.AckAll();  // "online"
  rig.SendCommand("devices/node-1/commands", R"({"command":"reboot","id":"r-1"})", 9);
  rig.RunUntil(1'200);
  auto replies = rig.PublishesOn("devices/node-1/replies");
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].payload, R"({"id":"r-1","ok":true})");
  EXPECT_EQ(rig.ports.power.restarts, 0);  // not before the reply is acknowledged
  EXPECT_EQ(rig.node->state(), NodeState::kRebootPending);
  rig.Send(mqtt::PubAck{replies[0].packet_id});
  EXPECT_EQ(rig.ports.power.restarts, 1);
  EXPECT_EQ(rig.node->state(), NodeState::kRestarting);
  // A clean DISCONNECT: the broker keeps the retained "online" instead of the will.
  EXPECT_TRUE(std::holds_alternative<mqtt::Disconnect>(rig.received.back()));
}

TEST(NodeTest, RebootRestartsAfterTheTimeoutWhenTheReplyIsNeverAcknowledged) {
  Rig rig(TestConfig());
  rig.auto_puback = false;
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(1'100);
  rig.SendCommand("devices/node-1/commands", R"({"command":"reboot","id":"r-2"})", 9);
  rig.RunUntil(1'100 + 4'900);
  EXPECT_EQ(rig.ports.power.restarts, 0);
  rig.RunUntil(1'100 + 5'001);
  EXPECT_EQ(rig.ports.power.restarts, 1);
}

TEST(NodeTest, BootCounterIncrementsAndSeqRestarts) {
  Rig rig(TestConfig());
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  EXPECT_EQ(rig.node->stats().boot, 1u);
  rig.RunUntil(3'500);
  ASSERT_EQ(rig.Reboot(), DeviceError::kOk);
  EXPECT_EQ(rig.node->stats().boot, 2u);
  ASSERT_EQ(rig.Reboot(), DeviceError::kOk);
  EXPECT_EQ(rig.node->stats().boot, 3u);
  EXPECT_EQ(rig.ports.settings.values["boot"], 3u);
  rig.publishes.clear();
  rig.RunUntil(rig.now + 1'500);
  auto data = rig.PublishesOn("sensors/node-1/data");
  ASSERT_EQ(data.size(), 1u);
  EXPECT_NE(data[0].payload.find("\"boot\":3,\"seq\":0,"), std::string::npos) << data[0].payload;
}

TEST(NodeTest, LowBatterySleepsWithHysteresis) {
  Rig rig(TestConfig());
  rig.ports.sensors.battery = 9.5f;
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(2'100);  // first sample at 2000 sees 9.5 %
  auto status = rig.PublishesOn("devices/node-1/status");
  ASSERT_EQ(status.size(), 2u);
  EXPECT_EQ(status[1].payload, "sleeping");
  EXPECT_TRUE(status[1].retain);
  EXPECT_EQ(rig.ports.power.sleeps, 1);
  EXPECT_EQ(rig.ports.power.last_sleep_ms, 30u * 60u * 1000u);
  EXPECT_TRUE(rig.ports.power.last_wake_on_motion);
  EXPECT_EQ(rig.node->state(), NodeState::kAsleep);
  EXPECT_EQ(rig.ports.rtc.state.low_battery_latched, 1u);
  // The reading taken with it went out before sleeping.
  EXPECT_EQ(rig.PublishesOn("sensors/node-1/data").size(), 1u);
  EXPECT_EQ(rig.node->stats().ring_dropped, 0u);
  EXPECT_TRUE(std::holds_alternative<mqtt::Disconnect>(rig.received.back()));

  // Wake at 12 %: above the low threshold but not recovered (< 15 %): one reading, sleep again.
  rig.now += 30 * 60 * 1000;
  rig.ports.sensors.battery = 12.0f;
  ASSERT_EQ(rig.Reboot(), DeviceError::kOk);
  rig.RunUntil(rig.now + 1'100);
  EXPECT_EQ(rig.ports.power.sleeps, 2);

  // Wake at 16 %: recovered, the latch clears and it stays awake...
  rig.now += 30 * 60 * 1000;
  rig.ports.sensors.battery = 16.0f;
  ASSERT_EQ(rig.Reboot(), DeviceError::kOk);
  rig.RunUntil(rig.now + 5'500);
  EXPECT_EQ(rig.ports.power.sleeps, 2);
  EXPECT_EQ(rig.ports.rtc.state.low_battery_latched, 0u);
  // ...also at 12 % (no flapping around 10 %)...
  rig.ports.sensors.battery = 12.0f;
  rig.RunUntil(rig.now + 5'000);
  EXPECT_EQ(rig.ports.power.sleeps, 2);
  EXPECT_EQ(rig.node->state(), NodeState::kOnline);
  // ...until it falls below 10 % again.
  rig.ports.sensors.battery = 9.0f;
  rig.RunUntil(rig.now + 1'100);
  EXPECT_EQ(rig.ports.power.sleeps, 3);
}

TEST(NodeTest, SleepFollowsThePubAckOfSleepingAtOnce) {
  Rig rig(TestConfig());
  rig.auto_puback = false;
  rig.ports.sensors.battery = 9.0f;
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(2'100);
  EXPECT_EQ(rig.node->state(), NodeState::kSleepPending);
  EXPECT_EQ(rig.ports.power.sleeps, 0);  // waits for the PUBACKs (reading, then "sleeping")
  auto ack_all = [&rig] {
    std::string acks;
    for (auto id : rig.unacked_ids) mqtt::Encode(mqtt::PubAck{id}, acks);
    rig.unacked_ids.clear();
    return rig.node->OnBytes(reinterpret_cast<const std::uint8_t*>(acks.data()), acks.size(),
                             rig.now);
  };
  ack_all();  // the reading: "sleeping" goes out at the next run
  rig.RunUntil(rig.now + 1);
  EXPECT_EQ(rig.PublishesOn("devices/node-1/status").back().payload, "sleeping");
  EXPECT_EQ(rig.ports.power.sleeps, 0);
  const std::int64_t wake = ack_all();
  EXPECT_EQ(wake, rig.now + 1);  // the binding is told to come back at once
  rig.node->Poll(wake);
  EXPECT_EQ(rig.ports.power.sleeps, 1);
  EXPECT_EQ(rig.node->stats().ring_dropped, 0u);
}

TEST(NodeTest, LowBatteryWithoutABrokerSleepsAfterTheTimeout) {
  Rig rig(TestConfig());
  rig.broker_up = false;
  rig.ports.sensors.battery = 5.0f;
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(2'000 + 15'000 + 4'900);  // connect_timeout + sleep_ack_timeout
  EXPECT_EQ(rig.ports.power.sleeps, 0);
  rig.RunUntil(2'000 + 20'001);
  EXPECT_EQ(rig.ports.power.sleeps, 1);
  EXPECT_EQ(rig.node->stats().ring_dropped, 1u);  // the unsent reading is lost and counted
}

// Regression: low battery while offline queued "sleeping" first; the CONNACK then queued
// "online" in a later slot, so "online" was published (retained) after "sleeping" and the
// broker kept announcing a sleeping device as online.
TEST(NodeTest, SleepingAnnouncedWhileOfflineIsNotOverriddenByOnlineAtConnect) {
  Rig rig(TestConfig());
  rig.broker_up = false;
  rig.ports.sensors.battery = 5.0f;
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(2'100);  // the sample at 2000 latches low battery while offline
  EXPECT_EQ(rig.ports.power.sleeps, 0);
  rig.BrokerUp();
  rig.RunUntil(4'000);
  EXPECT_EQ(rig.ports.power.sleeps, 1);
  auto status = rig.PublishesOn("devices/node-1/status");
  ASSERT_FALSE(status.empty());
  EXPECT_EQ(status.back().payload, "sleeping");  // the retained word the broker keeps
  for (const auto& p : status) EXPECT_NE(p.payload, "online");
  EXPECT_EQ(rig.node->stats().ring_dropped, 0u);  // the reading went out before sleeping
}

// Regression: "sleeping" was published before the reading taken with it, so the gateway saw a
// reading after the announcement and showed the sleeping node as online (the simulator's
// low-battery integration test against the real gateway found it).
TEST(NodeTest, SleepingIsPublishedAfterTheLastReading) {
  Rig rig(TestConfig());
  rig.ports.sensors.battery = 9.5f;
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(2'100);
  ASSERT_EQ(rig.ports.power.sleeps, 1);
  std::vector<std::string> topics;
  for (const auto& p : rig.publishes) {
    if (p.topic != "devices/node-1/status" || p.payload == "sleeping") topics.push_back(p.topic);
  }
  ASSERT_GE(topics.size(), 2u);
  EXPECT_EQ(topics[topics.size() - 2], "sensors/node-1/data");
  EXPECT_EQ(topics.back(), "devices/node-1/status");  // "sleeping", last
}

// Without a PUBACK for the last reading, "sleeping" still goes out at the sleep deadline.
TEST(NodeTest, SleepingIsAnnouncedAtTheDeadlineWhenTheRingDoesNotDrain) {
  Rig rig(TestConfig());
  rig.auto_puback = false;
  rig.ports.sensors.battery = 9.0f;
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(2'100);
  EXPECT_TRUE(rig.PublishesOn("devices/node-1/status").back().payload != "sleeping");
  rig.RunUntil(2'000 + 5'001);  // sleep_ack_timeout
  EXPECT_EQ(rig.ports.power.sleeps, 1);
  EXPECT_EQ(rig.PublishesOn("devices/node-1/status").back().payload, "sleeping");
}

// Regression: a battery gauge returning NaN latched low-power mode (NaN compares false with
// the thresholds) and sent the node to sleep for 30 minutes, reporting "battery":0.
TEST(NodeTest, UnreadableBatteryDecidesNothingAndIsLeftOutOfTheReading) {
  Rig rig(TestConfig());
  rig.ports.sensors.battery = __builtin_nanf("");
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(6'100);
  EXPECT_EQ(rig.ports.power.sleeps, 0);
  EXPECT_EQ(rig.node->state(), NodeState::kOnline);
  EXPECT_EQ(rig.ports.rtc.state.low_battery_latched, 0u);
  auto data = rig.PublishesOn("sensors/node-1/data");
  ASSERT_FALSE(data.empty());
  EXPECT_EQ(data[0].payload.find("battery"), std::string::npos) << data[0].payload;
  EXPECT_NE(data[0].payload.find("\"temperature\""), std::string::npos) << data[0].payload;
}

// Regression: max_packet_bytes (the JSON scratch buffer) was accepted at 256 even when the
// longest reading of this device id and firmware needs more; WriteReadingJson then returned 0
// and the node published an empty payload, which the broker acknowledged: the reading was lost.
TEST(NodeTest, MaxPacketBytesTooSmallForTheLongestReadingIsAConfigError) {
  const std::string id(64, 'd');
  const std::string fw(32, 'f');
  NodeConfig c = TestConfig();
  c.device_id = id.c_str();
  c.firmware_version = fw.c_str();
  c.max_packet_bytes = 256;
  {
    Rig rig(c);
    EXPECT_EQ(rig.Begin(), DeviceError::kInvalidConfig);
    EXPECT_STREQ(rig.node->config_error_field(), "max_packet_bytes");
  }
  c.max_packet_bytes = 320;
  Rig rig(c);
  rig.ports.sensors.temperature = -2.0e7f;
  rig.ports.sensors.humidity = -2.0e7f;
  rig.ports.sensors.rssi = -40'000;
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(3'500);
  auto data = rig.PublishesOn("sensors/" + id + "/data");
  ASSERT_FALSE(data.empty());
  for (const auto& p : data) EXPECT_FALSE(p.payload.empty());
}

TEST(NodeTest, FailedSensorReadsUseNoSequenceNumber) {
  Rig rig(TestConfig());
  rig.ports.sensors.fail_reads = 2;
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(5'500);
  EXPECT_EQ(rig.node->stats().read_errors, 2u);
  EXPECT_EQ(SeqsOf(rig.PublishesOn("sensors/node-1/data")), (std::vector<std::uint64_t>{0, 1}));
}

TEST(NodeTest, TimestampIsUptimeUntilTheWallClockIsSynced) {
  Rig rig(TestConfig());
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(2'100);
  rig.ports.wall.wall_ms = 1'748'735'990'000;
  rig.RunUntil(3'100);
  auto data = rig.PublishesOn("sensors/node-1/data");
  ASSERT_EQ(data.size(), 2u);
  EXPECT_NE(data[0].payload.find("\"timestamp\":1000,"), std::string::npos) << data[0].payload;
  EXPECT_NE(data[1].payload.find("\"timestamp\":1748735990000,"), std::string::npos);
}

TEST(NodeTest, SeedModeSpeaksTheSeedSketchExactly) {
  NodeConfig c = TestConfig();
  c.device_id = "esp32_sensor_001";
  c.scheme = TopicScheme::kSeed;
  c.qos = 0;
  c.interval_ms = 5'000;
  Rig rig(c);
  rig.ports.sensors.temperature = 22.5f;
  rig.ports.sensors.humidity = 45.2f;
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(6'000);
  const auto& connect = std::get<mqtt::Connect>(rig.received[0]);
  EXPECT_FALSE(connect.will.has_value());
  EXPECT_EQ(std::get<mqtt::Subscribe>(rig.received[1]).subscriptions[0].filter, "devices/commands");
  auto status = rig.PublishesOn("devices/status");
  ASSERT_EQ(status.size(), 1u);
  EXPECT_EQ(status[0].payload,
            R"({"deviceId":"esp32_sensor_001","status":"online","timestamp":0})");
  auto data = rig.PublishesOn("sensors/data");
  ASSERT_EQ(data.size(), 1u);
  EXPECT_EQ(data[0].qos, 0);
  EXPECT_EQ(
      data[0].payload,
      R"({"deviceId":"esp32_sensor_001","timestamp":5000,"temperature":22.5,"humidity":45.2,"motion":false,"battery":87.5,"rssi":-65})");
  // Seed commands have no id and get no reply; reboot restarts at once.
  rig.SendCommand("devices/commands", R"({"command":"reboot"})", 0);
  EXPECT_EQ(rig.ports.power.restarts, 1);
}

TEST(NodeTest, KeepalivePingsAndDropsADeadLink) {
  NodeConfig c = TestConfig();
  c.keepalive_s = 10;
  c.interval_ms = 60'000;
  c.max_interval_ms = 60'000;
  Rig rig(c);
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(12'000);
  int pings = 0;
  for (const auto& p : rig.received) pings += std::holds_alternative<mqtt::PingReq>(p) ? 1 : 0;
  EXPECT_EQ(pings, 1);
  // A silent broker: the PINGREQ goes unanswered and the link is dropped.
  const auto connects = rig.ports.transport.connects;
  rig.ports.transport.open = false;  // bytes vanish
  rig.RunUntil(40'000);
  EXPECT_EQ(rig.node->stats().disconnects, 1u);
  EXPECT_GT(rig.ports.transport.connects, connects);
}

TEST(NodeTest, WatchdogIsFedFromPollAndPollIsCappedForIt) {
  NodeConfig c = TestConfig();
  c.interval_ms = 60'000;
  c.max_interval_ms = 60'000;
  c.max_poll_interval_ms = 1'000;
  Rig rig(c);
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(1'100);
  EXPECT_LE(rig.node->Poll(rig.now), rig.now + 1'000);
  const int before = rig.ports.watchdog.feeds;
  rig.RunUntil(31'100);
  EXPECT_GE(rig.ports.watchdog.feeds - before, 30);
}

TEST(NodeTest, InvalidConfigNamesTheField) {
  NodeConfig c = TestConfig();
  c.device_id = "bad id";
  Rig rig(c);
  EXPECT_EQ(rig.Begin(), DeviceError::kInvalidConfig);
  EXPECT_STREQ(rig.node->config_error_field(), "device_id");
  NodeConfig d = TestConfig();
  d.max_inflight = 20;
  Rig rig2(d);
  EXPECT_EQ(rig2.Begin(), DeviceError::kInvalidConfig);
  EXPECT_STREQ(rig2.node->config_error_field(), "max_inflight");
}

TEST(NodeTest, CallerStorageMeansNoAllocation) {
  NodeConfig c = TestConfig();
  Ports ports(1);
  Node node(c, ports.Get());
  std::vector<std::uint64_t> storage(Node::StorageBytes(c) / 8 + 1);
  EXPECT_EQ(node.Begin(0, storage.data(), 16), DeviceError::kNoMemory);
  EXPECT_EQ(node.Begin(0, storage.data(), storage.size() * 8), DeviceError::kOk);
  EXPECT_LT(Node::StorageBytes(c), 8u * 1024u);
}

std::vector<std::uint16_t> PubAcksOf(const std::vector<mqtt::Packet>& packets) {
  std::vector<std::uint16_t> out;
  for (const auto& p : packets) {
    if (auto* a = std::get_if<mqtt::PubAck>(&p)) out.push_back(a->packet_id);
  }
  return out;
}

// Regression (issue 8, section 5): the core ignored the retain flag, so a retained "reboot" on
// devices/commands rebooted every seed device at every connect, forever.
TEST(NodeTest, RetainedRebootDoesNotRebootNode) {
  NodeConfig c = TestConfig();
  c.scheme = TopicScheme::kSeed;
  Rig rig(c);
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(1'500);
  // As the broker sends it at subscription: retain set. Acknowledged, counted, not run.
  rig.Send(mqtt::Publish{"devices/commands", R"({"command":"reboot"})", 1, true, false, 41});
  EXPECT_EQ(rig.ports.power.restarts, 0);
  EXPECT_EQ(rig.node->stats().commands_retained, 1u);
  EXPECT_EQ(rig.node->stats().commands_handled, 0u);
  EXPECT_EQ(PubAcksOf(rig.received), (std::vector<std::uint16_t>{41}));
  EXPECT_EQ(rig.node->state(), NodeState::kOnline);
  // A live command (the broker clears retain on an established subscription) still runs.
  rig.Send(mqtt::Publish{"devices/commands", R"({"command":"reboot"})", 1, false, false, 42});
  EXPECT_EQ(rig.ports.power.restarts, 1);
}

TEST(NodeTest, RetainedNativeCommandIsIgnoredWithoutReply) {
  Rig rig(TestConfig());
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(1'500);
  rig.Send(mqtt::Publish{"devices/node-1/commands", R"({"command":"led","state":true,"id":"x"})", 1,
                         true, false, 7});
  EXPECT_EQ(rig.ports.led.sets, 0);
  EXPECT_EQ(rig.node->stats().commands_retained, 1u);
  EXPECT_TRUE(rig.PublishesOn("devices/node-1/replies").empty());
}

// Regression (issue 8, section 2, device half): a command or retained message larger than the
// receive buffer was a protocol error: the node dropped the connection, and a persistent
// session or a retained giant brought it back at every connect. Now it is skipped unread, counted
// and acknowledged, and the session goes on, however the bytes are split.
TEST(NodeTest, OversizeCommandIsSkippedAckedAndTheSessionGoesOn) {
  NodeConfig c = TestConfig();
  c.max_packet_bytes = 256;
  std::string giant_payload =
      R"({"command":"led","state":true,"pad":")" + std::string(600, 'x') + R"("})";
  std::string bytes;
  mqtt::Encode(mqtt::Publish{"devices/node-1/commands", giant_payload, 1, false, false, 9}, bytes);
  std::string qos0;  // retained, as the broker replays it at subscription
  mqtt::Encode(mqtt::Publish{"devices/node-1/commands", giant_payload, 0, true, false, 0}, qos0);
  std::string after;
  mqtt::Encode(mqtt::Publish{"devices/node-1/commands", R"({"command":"led","state":true})", 1,
                             false, false, 10},
               after);
  const std::string stream = bytes + qos0 + after;
  // Two pieces split at every boundary, and a few fixed chunk sizes.
  std::vector<std::pair<std::size_t, std::size_t>> splits;  // (first piece, chunk after it)
  for (std::size_t cut = 1; cut < stream.size(); ++cut) splits.push_back({cut, stream.size()});
  for (std::size_t chunk : {1u, 7u, 255u, 256u, 257u}) splits.push_back({chunk, chunk});
  for (const auto& [first, chunk] : splits) {
    SCOPED_TRACE("first piece " + std::to_string(first) + ", then chunks of " +
                 std::to_string(chunk));
    Rig rig(c);
    ASSERT_EQ(rig.Begin(), DeviceError::kOk);
    rig.RunUntil(1'500);
    const std::size_t before = rig.received.size();
    rig.SendBytes(stream.substr(0, first), first);
    rig.SendBytes(stream.substr(first), chunk);
    const auto& st = rig.node->stats();
    ASSERT_EQ(st.rx_oversize, 2u);
    ASSERT_EQ(st.protocol_errors, 0u);
    ASSERT_EQ(st.disconnects, 0u);
    ASSERT_EQ(rig.ports.led.sets, 1);  // only the normal command ran
    std::vector<mqtt::Packet> sent(rig.received.begin() + before, rig.received.end());
    ASSERT_EQ(PubAcksOf(sent), (std::vector<std::uint16_t>{9, 10}));  // in order
  }
}

TEST(NodeTest, OversizeNonPublishIsStillAProtocolError) {
  NodeConfig c = TestConfig();
  c.max_packet_bytes = 256;
  Rig rig(c);
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(1'500);
  std::string suback;
  mqtt::Encode(mqtt::SubAck{1, std::vector<std::uint8_t>(400, 0)}, suback);
  rig.SendBytes(suback, suback.size());
  EXPECT_EQ(rig.node->stats().protocol_errors, 1u);
  EXPECT_EQ(rig.node->stats().rx_oversize, 0u);
  EXPECT_EQ(rig.node->stats().disconnects, 1u);
}

// setSensorInterval is bounded above by max_interval_ms, which defaults to and may not exceed
// kMaxIntervalMs (24 h).
TEST(NodeTest, SetSensorIntervalAbove24HoursIsRejected) {
  NodeConfig c = TestConfig();
  c.max_interval_ms = NodeConfig{}.max_interval_ms;
  EXPECT_EQ(c.max_interval_ms, kMaxIntervalMs);
  Rig rig(c);
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(1'500);
  rig.SendCommand("devices/node-1/commands",
                  R"({"command":"setSensorInterval","interval":86400001,"id":"big"})", 1);
  EXPECT_EQ(rig.node->stats().interval_ms, 1'000u);
  rig.SendCommand("devices/node-1/commands",
                  R"({"command":"setSensorInterval","interval":86400000,"id":"day"})", 2);
  EXPECT_EQ(rig.node->stats().interval_ms, 86'400'000u);
  rig.RunUntil(2'000);
  auto replies = rig.PublishesOn("devices/node-1/replies");
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(
      replies[0].payload,
      R"({"id":"big","ok":false,"error":"field \"interval\": 86400001 ms is outside [1000, 86400000]","rejected":true})");
  EXPECT_EQ(replies[1].payload, R"({"id":"day","ok":true})");

  NodeConfig d = TestConfig();
  d.max_interval_ms = kMaxIntervalMs + 1;
  Rig rig2(d);
  EXPECT_EQ(rig2.Begin(), DeviceError::kInvalidConfig);
  EXPECT_STREQ(rig2.node->config_error_field(), "max_interval_ms");
}

// ---- certificate rotation (docs/adr/0011) ----

NodeConfig RotationConfig() {
  NodeConfig c = TestConfig();
  c.max_packet_bytes = 1024;  // a certInstall is about 730 bytes
  return c;
}

constexpr const char* kCommands = "devices/node-1/commands";
constexpr const char* kReplies = "devices/node-1/replies";

// Index in `packets` of the n-th (0-based) CONNECT, or -1.
int NthConnect(const std::vector<mqtt::Packet>& packets, int n) {
  for (std::size_t i = 0; i < packets.size(); ++i) {
    if (std::holds_alternative<mqtt::Connect>(packets[i]) && n-- == 0) return static_cast<int>(i);
  }
  return -1;
}

int IndexOfPublish(const std::vector<mqtt::Packet>& packets, const std::string& payload) {
  for (std::size_t i = 0; i < packets.size(); ++i) {
    auto* p = std::get_if<mqtt::Publish>(&packets[i]);
    if (p != nullptr && p->payload == payload) return static_cast<int>(i);
  }
  return -1;
}

void ExpectSeqsWithoutGap(const std::vector<mqtt::Publish>& data, std::uint64_t count) {
  auto seqs = SeqsOf(data);
  std::set<std::uint64_t> unique(seqs.begin(), seqs.end());
  ASSERT_EQ(unique.size(), count);
  EXPECT_EQ(*unique.begin(), 0u);
  EXPECT_EQ(*unique.rbegin(), count - 1);
}

TEST(NodeTest, CertRotationRequestInstallAndCommitReplyOnTheNewSession) {
  Rig rig(RotationConfig());
  rig.UseCredentials();
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  EXPECT_EQ(rig.ports.credentials.abandons, 1);  // Begin: nothing staged survives a boot
  rig.RunUntil(1'100);
  rig.SendCommand(kCommands, R"({"id":"r-1","command":"certRequest"})", 3);
  EXPECT_EQ(rig.ports.credentials.last_device_id, "node-1");
  rig.RunUntil(3'500);  // readings 0 and 1 acknowledged
  auto replies = rig.PublishesOn(kReplies);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].payload, R"({"id":"r-1","ok":true,"csr":"MIIBCSRnode1AAAA"})");

  rig.auto_puback = false;
  rig.RunUntil(5'500);  // readings 2 and 3 in flight when the rotation starts
  EXPECT_EQ(rig.node->stats().inflight, 2u);
  const std::size_t before = rig.received.size();
  const int closes = rig.ports.transport.closes;
  rig.SendCommand(kCommands, R"({"id":"i-1","command":"certInstall","cert":"Y2VydC1uZXc="})", 9);
  EXPECT_EQ(rig.ports.credentials.stages, 1);
  EXPECT_EQ(rig.ports.transport.closes, closes + 1);
  // The certInstall's PUBACK, a clean DISCONNECT, then at once (no backoff) a new CONNECT
  // presenting the staged certificate.
  std::vector<mqtt::Packet> sent(rig.received.begin() + static_cast<long>(before),
                                 rig.received.end());
  ASSERT_GE(sent.size(), 3u);
  ASSERT_TRUE(std::holds_alternative<mqtt::PubAck>(sent[0]));
  EXPECT_EQ(std::get<mqtt::PubAck>(sent[0]).packet_id, 9);
  EXPECT_TRUE(std::holds_alternative<mqtt::Disconnect>(sent[1]));
  EXPECT_TRUE(std::holds_alternative<mqtt::Connect>(sent[2]));
  EXPECT_EQ(rig.ports.transport.connect_times.back(), rig.now);
  EXPECT_EQ(rig.ports.transport.identities, (std::vector<std::string>{"cert-old", "Y2VydC1uZXc="}));
  EXPECT_EQ(rig.ports.credentials.commits, 1);
  EXPECT_EQ(rig.ports.credentials.current, "Y2VydC1uZXc=");
  EXPECT_EQ(rig.node->state(), NodeState::kOnline);
  // The reply comes on the new session, after its CONNECT.
  const std::string serial_reply = R"({"id":"i-1","ok":true,"serial":"4f1a"})";
  const int reply_at = IndexOfPublish(rig.received, serial_reply);
  ASSERT_GE(reply_at, 0);
  EXPECT_GT(reply_at, NthConnect(rig.received, 1));
  EXPECT_EQ(rig.node->stats().cert_rotations, 1u);
  EXPECT_EQ(rig.node->stats().cert_rotation_failures, 0u);
  EXPECT_EQ(rig.node->stats().disconnects, 0u);  // a planned reconnect, not a lost session

  rig.auto_puback = true;
  rig.AckAll();
  rig.RunUntil(10'500);
  // Readings keep their seq across the reconnect: the two in flight were resent, none is lost.
  EXPECT_GE(rig.node->stats().resent, 2u);
  EXPECT_EQ(rig.node->stats().ring_dropped, 0u);
  EXPECT_EQ(rig.node->stats().ring_depth, 0u);
  ExpectSeqsWithoutGap(rig.PublishesOn("sensors/node-1/data"), 9);
  EXPECT_EQ(rig.node->stats().acked, 9u);
  std::set<std::uint32_t> acked;
  for (const auto& a : rig.ports.observer.acks) acked.insert(a.seq);
  EXPECT_EQ(acked.size(), 9u);
  EXPECT_EQ(rig.ports.credentials.abandons, 1);  // only Begin's
}

TEST(NodeTest, CertInstallTheCredentialsRejectIsRefusedAtOnce) {
  Rig rig(RotationConfig());
  rig.UseCredentials();
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(1'100);
  rig.ports.credentials.stage_error = "certificate does not match the pending key";
  rig.SendCommand(kCommands, R"({"id":"i-2","command":"certInstall","cert":"QUJDRA=="})", 4);
  rig.RunUntil(1'200);
  auto replies = rig.PublishesOn(kReplies);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(
      replies[0].payload,
      R"({"id":"i-2","ok":false,"error":"certificate does not match the pending key","rejected":true})");
  EXPECT_EQ(rig.ports.transport.connects, 1);  // no reconnect
  EXPECT_EQ(rig.node->stats().commands_rejected, 1u);
  EXPECT_EQ(rig.node->stats().cert_rotation_failures, 0u);
  // A certificate that is not base64 never reaches the port.
  rig.SendCommand(kCommands, R"({"id":"i-3","command":"certInstall","cert":"not base64!"})", 5);
  rig.SendCommand(kCommands, R"({"id":"i-4","command":"certInstall"})", 6);
  rig.RunUntil(1'300);
  replies = rig.PublishesOn(kReplies);
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_EQ(replies[1].payload,
            R"({"id":"i-3","ok":false,"error":"field \"cert\": expected the base64 of a DER )"
            R"x(certificate (at most 1024 characters)","rejected":true})x");
  EXPECT_EQ(replies[2].payload,
            R"({"id":"i-4","ok":false,"error":"field \"cert\" is required","rejected":true})");
  EXPECT_EQ(rig.ports.credentials.stages, 1);
}

TEST(NodeTest, CertRotationRefusedThreeTimesIsAbandonedAndTheNodeGoesOn) {
  Rig rig(RotationConfig());
  rig.UseCredentials();
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(1'100);
  rig.SendCommand(kCommands, R"({"id":"r-1","command":"certRequest"})", 3);
  rig.refuse_identity = "Y2VydC1uZXc=";
  rig.SendCommand(kCommands, R"({"id":"i-1","command":"certInstall","cert":"Y2VydC1uZXc="})", 4);
  rig.RunUntil(6'500);
  EXPECT_EQ(rig.ports.transport.identities,
            (std::vector<std::string>{"cert-old",
                                      "Y2VydC1uZXc=", "Y2VydC1uZXc=", "Y2VydC1uZXc=", "cert-old"}));
  EXPECT_EQ(rig.ports.credentials.commits, 0);
  EXPECT_EQ(rig.ports.credentials.abandons, 2);  // Begin, then the third refusal
  EXPECT_EQ(rig.ports.credentials.current, "cert-old");
  EXPECT_EQ(rig.node->state(), NodeState::kOnline);
  const auto& st = rig.node->stats();
  EXPECT_EQ(st.cert_rotations, 0u);
  EXPECT_EQ(st.cert_rotation_failures, 1u);
  EXPECT_EQ(st.connect_failures, 3u);
  auto replies = rig.PublishesOn(kReplies);
  ASSERT_EQ(replies.size(), 2u);
  // Not "rejected": the device tried and failed, it did not refuse.
  EXPECT_EQ(replies[1].payload,
            R"({"id":"i-1","ok":false,"error":"3 connects with the new certificate failed )"
            R"((last: refused); kept the current one"})");
  // Then normal operation: every reading arrives, and a later connect uses the current identity.
  rig.RunUntil(9'500);
  ExpectSeqsWithoutGap(rig.PublishesOn("sensors/node-1/data"), 8);
  EXPECT_EQ(rig.node->stats().ring_dropped, 0u);
  rig.BrokerDown();
  rig.BrokerUp();
  rig.RunUntil(10'000);
  EXPECT_EQ(rig.ports.transport.identities.back(), "cert-old");
  EXPECT_EQ(rig.node->state(), NodeState::kOnline);
  // A duplicate of the failed certInstall reports its outcome, and does not try again.
  rig.SendCommand(kCommands, R"({"id":"i-1","command":"certInstall","cert":"Y2VydC1uZXc="})", 5);
  rig.RunUntil(10'100);
  replies = rig.PublishesOn(kReplies);
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_EQ(replies[2].payload,
            R"({"id":"i-1","ok":false,"error":"duplicate of a command that failed",)"
            R"("rejected":true,"duplicate":true})");
  EXPECT_EQ(rig.ports.credentials.stages, 1);
}

TEST(NodeTest, CertCommandsWithoutACredentialsPortAreRejected) {
  Rig rig(TestConfig());
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(1'100);
  rig.SendCommand(kCommands, R"({"id":"r-1","command":"certRequest"})", 3);
  rig.SendCommand(kCommands, R"({"id":"i-1","command":"certInstall","cert":"QUJDRA=="})", 4);
  rig.RunUntil(1'200);
  auto replies = rig.PublishesOn(kReplies);
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[0].payload,
            R"({"id":"r-1","ok":false,"error":"certificate rotation is not supported by this )"
            R"(device","rejected":true})");
  EXPECT_EQ(replies[1].payload,
            R"({"id":"i-1","ok":false,"error":"certificate rotation is not supported by this )"
            R"(device","rejected":true})");
  EXPECT_EQ(rig.node->stats().commands_rejected, 2u);
  EXPECT_EQ(rig.ports.transport.connects, 1);
}

TEST(NodeTest, DuplicateCertCommandsAreNotRunAgain) {
  Rig rig(RotationConfig());
  rig.UseCredentials();
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(1'100);
  rig.SendCommand(kCommands, R"({"id":"r-1","command":"certRequest"})", 3);
  rig.SendCommand(kCommands, R"({"id":"r-1","command":"certRequest"})", 4);
  EXPECT_EQ(rig.ports.credentials.makes, 1);  // the pending key is not replaced
  rig.SendCommand(kCommands, R"({"id":"i-1","command":"certInstall","cert":"Y2VydC1uZXc="})", 5);
  rig.RunUntil(1'300);
  // Redelivered after the reconnect (a persistent session would do that): reported, not rerun.
  rig.SendCommand(kCommands, R"({"id":"i-1","command":"certInstall","cert":"Y2VydC1uZXc="})", 6);
  rig.RunUntil(1'400);
  EXPECT_EQ(rig.ports.credentials.stages, 1);
  EXPECT_EQ(rig.ports.transport.connects, 2);
  auto replies = rig.PublishesOn(kReplies);
  ASSERT_EQ(replies.size(), 4u);
  EXPECT_EQ(replies[1].payload, R"({"id":"r-1","ok":true,"duplicate":true})");
  EXPECT_EQ(replies[2].payload, R"({"id":"i-1","ok":true,"serial":"4f1a"})");
  EXPECT_EQ(replies[3].payload, R"({"id":"i-1","ok":true,"duplicate":true})");
  EXPECT_EQ(rig.node->stats().commands_duplicate, 2u);
  EXPECT_EQ(rig.node->stats().cert_rotations, 1u);
}

TEST(NodeTest, CredentialsPortNeedsMaxPacketBytesOf1024) {
  NodeConfig c = TestConfig();
  c.max_packet_bytes = 1023;
  Rig rig(c);
  rig.UseCredentials();
  ASSERT_EQ(rig.Begin(), DeviceError::kInvalidConfig);
  EXPECT_STREQ(rig.node->config_error_field(), "max_packet_bytes");
  EXPECT_EQ(rig.ports.credentials.abandons, 0);
}

TEST(NodeTest, OversizeCertInstallIsSkippedAndCountedInRxOversize) {
  // A node without rotation keeps its 512-byte buffer: a certInstall is skipped unread.
  NodeConfig c = TestConfig();
  Rig rig(c);
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(1'100);
  const std::string cert(668, 'A');
  rig.SendCommand(kCommands, R"({"id":"i-1","command":"certInstall","cert":")" + cert + R"("})", 7);
  rig.RunUntil(1'200);
  EXPECT_EQ(rig.node->stats().rx_oversize, 1u);
  EXPECT_EQ(PubAcksOf(rig.received), (std::vector<std::uint16_t>{7}));
  EXPECT_TRUE(rig.PublishesOn(kReplies).empty());
  EXPECT_EQ(rig.node->state(), NodeState::kOnline);
  // With rotation (1024 bytes), the longest certificate the parser takes does not fit either.
  Rig big(RotationConfig());
  big.UseCredentials();
  ASSERT_EQ(big.Begin(), DeviceError::kOk);
  big.RunUntil(1'100);
  const std::string longest(kMaxCertBase64Bytes, 'A');
  big.SendCommand(kCommands, R"({"id":"i-1","command":"certInstall","cert":")" + longest + R"("})",
                  8);
  EXPECT_EQ(big.node->stats().rx_oversize, 1u);
  EXPECT_EQ(big.ports.credentials.stages, 0);
  // A realistic one (668 base64 characters) fits.
  big.SendCommand(kCommands, R"({"id":"i-2","command":"certInstall","cert":")" + cert + R"("})", 9);
  EXPECT_EQ(big.ports.credentials.stages, 1);
}

TEST(NodeTest, RebootWhileStagedComesBackWithTheCurrentIdentity) {
  Rig rig(RotationConfig());
  rig.UseCredentials();
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(1'100);
  rig.SendCommand(kCommands, R"({"id":"r-1","command":"certRequest"})", 3);
  rig.BrokerDown();  // the reconnect with the staged identity cannot complete
  rig.BrokerUp();
  rig.RunUntil(1'500);
  rig.broker_up = false;
  rig.SendCommand(kCommands, R"({"id":"i-1","command":"certInstall","cert":"Y2VydC1uZXc="})", 4);
  EXPECT_EQ(rig.ports.credentials.staged, "Y2VydC1uZXc=");
  ASSERT_EQ(rig.Reboot(), DeviceError::kOk);  // e.g. the watchdog, before any CONNACK
  EXPECT_EQ(rig.ports.credentials.staged, "");
  EXPECT_EQ(rig.ports.credentials.abandons, 2);
  rig.broker_up = true;
  rig.RunUntil(rig.now + 500);
  EXPECT_EQ(rig.node->state(), NodeState::kOnline);
  EXPECT_EQ(rig.ports.transport.identities.back(), "cert-old");
  EXPECT_EQ(rig.ports.credentials.commits, 0);
  EXPECT_EQ(rig.node->stats().cert_rotations, 0u);
  // No reply: the gateway's command expires and the operator runs rotate again.
  for (const auto& r : rig.PublishesOn(kReplies))
    EXPECT_EQ(r.payload.find("i-1"), std::string::npos);
}

TEST(NodeTest, ANewerCertRequestReplacesTheUnacknowledgedOlderCsrReply) {
  Rig rig(RotationConfig());
  rig.UseCredentials();
  ASSERT_EQ(rig.Begin(), DeviceError::kOk);
  rig.RunUntil(1'100);
  rig.auto_puback = false;
  rig.SendCommand(kCommands, R"({"id":"r-1","command":"certRequest"})", 3);
  rig.ports.credentials.csr = "MIIBbmV3ZXI=";
  rig.SendCommand(kCommands, R"({"id":"r-2","command":"certRequest"})", 4);
  EXPECT_EQ(rig.node->stats().control_dropped, 1u);  // r-1's CSR is for a replaced key
  rig.BrokerDown();
  rig.BrokerUp();
  rig.publishes.clear();
  rig.auto_puback = true;
  rig.RunUntil(1'600);
  auto replies = rig.PublishesOn(kReplies);
  ASSERT_EQ(replies.size(), 1u);  // only r-2's is resent
  EXPECT_EQ(replies[0].payload, R"({"id":"r-2","ok":true,"csr":"MIIBbmV3ZXI="})");
}

}  // namespace
}  // namespace outpost::device::testing
