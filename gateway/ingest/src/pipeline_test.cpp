// The ingest pipeline's decisions, with time as plain values (FakeClock): the same decisions
// tests/integration/gateway_test.cpp and gateway_crash_test.cpp check through the binary, a
// broker and SQLite, here in milliseconds.
#include "outpost/gateway/ingest/pipeline.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "outpost/base/clock.h"

namespace outpost::gateway::ingest {
namespace {

using registry::State;

// The seed ESP32 sketch's payloads, byte for byte as ArduinoJson writes them.
constexpr const char* kSeedReading =
    R"({"deviceId":"esp32_sensor_001","timestamp":123456,"temperature":22.5,"humidity":45.2,"motion":false,"battery":87.5,"rssi":-65})";
constexpr std::int64_t kWall0 = 1'764'201'600'000;

std::string Native(const std::string& device, std::uint32_t boot, std::uint64_t seq,
                   double temperature = 20) {
  return R"({"deviceId":")" + device + R"(","boot":)" + std::to_string(boot) + R"(,"seq":)" +
         std::to_string(seq) + R"(,"temperature":)" + std::to_string(temperature) +
         R"(,"humidity":40.0})";
}

std::string NativeAt(const std::string& device, std::uint32_t boot, std::uint64_t seq,
                     std::int64_t ts_ms) {
  return R"({"deviceId":")" + device + R"(","boot":)" + std::to_string(boot) + R"(,"seq":)" +
         std::to_string(seq) + R"(,"timestamp":)" + std::to_string(ts_ms) +
         R"(,"temperature":20.0})";
}

std::string StatusOf(const std::string& device, const char* state) {
  return R"({"deviceId":")" + device + R"(","status":")" + state + R"("})";
}

// The gateway's defaults (config::Config), as gateway/app maps them.
Options DefaultOptions() {
  config::Config c;
  Options o;
  o.gateway_id = "gw1";
  o.parser.max_payload_bytes = c.ingest.max_payload_bytes;
  o.parser.max_depth = c.ingest.max_depth;
  o.parser.max_metrics = c.ingest.max_metrics;
  o.ingest = c.ingest;
  o.registry =
      registry::Options{c.registry.offline_after_s * 1000, c.registry.sleeping_grace_s * 1000,
                        c.registry.max_devices, c.registry.evict_after_s * 1000};
  o.rules = config::EffectiveRules(c);
  o.offline_alerts = c.offline_alerts;
  o.max_packet_bytes = c.mqtt.max_packet_bytes;
  return o;
}

std::uint64_t Reason(const Pipeline& p, std::string_view reason) {
  auto it = p.counters().rejected_by_reason.find(reason);
  return it == p.counters().rejected_by_reason.end() ? 0 : it->second;
}

const model::DeviceRow* Row(const Pending& b, std::string_view id) {
  for (const auto& d : b.batch.devices) {
    if (d.device_id == id) return &d;
  }
  return nullptr;
}

class PipelineTest : public ::testing::Test {
 protected:
  Instant Now() const { return Instant{clock_.wall_ms(), clock_.steady_ms()}; }
  // Delivers one message; QoS 1 messages get packet ids 1, 2, 3... in order.
  std::optional<proto::Command> Send(Pipeline& p, const std::string& topic,
                                     const std::string& payload, std::uint8_t qos = 1,
                                     bool retain = false) {
    AckToken ack{7, qos == 1 ? ++packet_id_ : std::uint16_t{0}};
    return p.OnMessage(Message{topic, payload, qos, retain, ack}, Now());
  }
  void SendReadings(Pipeline& p, const std::string& device, std::uint32_t boot,
                    std::vector<std::uint64_t> seqs) {
    for (std::uint64_t seq : seqs)
      Send(p, "sensors/" + device + "/data", Native(device, boot, seq));
  }

  FakeClock clock_{kWall0};
  std::uint16_t packet_id_ = 0;
};

TEST_F(PipelineTest, SeedPayloadsOnBothTopicSchemesGoIntoOneBatchWithAcksInArrivalOrder) {
  Pipeline p(DefaultOptions());
  Send(p, "sensors/data", kSeedReading);
  std::string per_device = kSeedReading;
  per_device.replace(per_device.find("esp32_sensor_001"), 16, "esp32_sensor_002");
  Send(p, "sensors/esp32_sensor_002/data", per_device);
  std::string qos0 = kSeedReading;
  qos0.replace(qos0.find("123456"), 6, "128456");
  Send(p, "sensors/data", qos0, /*qos=*/0);  // the seed's QoS 0 works too, with no ack

  EXPECT_EQ(p.counters().messages, 3u);
  EXPECT_EQ(p.counters().readings_received, 3u);
  EXPECT_EQ(p.pending_messages(), 3u);
  EXPECT_EQ(p.pending_readings(), 3u);
  ASSERT_TRUE(p.HasWork());
  Pending b = p.TakeBatch();
  EXPECT_EQ(p.pending_messages(), 0u);
  EXPECT_FALSE(p.HasWork());

  ASSERT_EQ(b.batch.readings.size(), 3u);
  const model::ReadingRow& r = b.batch.readings[0];
  EXPECT_EQ(r.device_id, "esp32_sensor_001");
  EXPECT_FALSE(r.ts_from_device) << "millis() since boot is replaced by the receive time";
  EXPECT_EQ(r.ts_ms, kWall0);
  EXPECT_EQ(r.received_ms, kWall0);
  EXPECT_TRUE(r.has_device_ts);
  EXPECT_EQ(r.device_ts_raw, 123456);
  EXPECT_EQ(r.metrics.size(), 5u);
  EXPECT_EQ(b.batch.readings[1].device_id, "esp32_sensor_002");
  EXPECT_EQ(b.received_ms, (std::vector<std::int64_t>{kWall0, kWall0, kWall0}));

  ASSERT_EQ(b.acks.size(), 2u);
  EXPECT_EQ(b.acks[0].packet_id, 1);
  EXPECT_EQ(b.acks[1].packet_id, 2);
  EXPECT_EQ(b.acks[0].connection_id, 7u);

  ASSERT_EQ(b.batch.devices.size(), 2u);  // one row per device per batch
  const model::DeviceRow* d = Row(b, "esp32_sensor_001");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->readings, 2u);
  EXPECT_EQ(d->status, "online");
  EXPECT_EQ(d->last_reading_json,
            R"({"temperature":22.5,"humidity":45.2,"motion":false,"battery":87.5,"rssi":-65})");
  EXPECT_TRUE(b.batch.outbox.empty()) << "no cloud configured";
  EXPECT_TRUE(b.batch.alerts.empty());
  EXPECT_EQ(p.registry().size(), 2u);
}

TEST_F(PipelineTest, DuplicatesAreDroppedAndSeqGapsCounted) {
  Pipeline p(DefaultOptions());
  SendReadings(p, "d", 7, {1, 2, 2, 5, 3, 1});
  Pending b = p.TakeBatch();
  EXPECT_EQ(b.batch.readings.size(), 4u);  // 1, 2, 5, 3
  EXPECT_EQ(b.acks.size(), 6u) << "duplicates are acknowledged too";
  EXPECT_EQ(p.counters().duplicates, 2u);
  EXPECT_EQ(p.counters().seq_gaps, 1u) << "3 and 4 missing when 5 came; 3 came late";
  const model::DeviceRow* d = Row(b, "d");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->readings, 4u);
  EXPECT_EQ(d->duplicates, 2u);
  EXPECT_EQ(d->seq_gaps, 1u);
  EXPECT_EQ(d->boot, 7u);
  EXPECT_EQ(d->last_seq, 5u);
}

TEST_F(PipelineTest, SeedIdentityIsTheDeviceTimestamp) {
  Pipeline p(DefaultOptions());
  Send(p, "sensors/data", kSeedReading);
  clock_.Advance(1000);
  Send(p, "sensors/data", kSeedReading);  // the same millis() again: a redelivery
  std::string next = kSeedReading;
  next.replace(next.find("123456"), 6, "133456");
  Send(p, "sensors/data", next);
  EXPECT_EQ(p.TakeBatch().batch.readings.size(), 2u);
  EXPECT_EQ(p.counters().duplicates, 1u);
}

TEST_F(PipelineTest, HugeSeqJumpIsCountedAsAJumpNotAsLoss) {
  Pipeline p(DefaultOptions());
  SendReadings(p, "j", 1, {1, 2, 3, std::uint64_t{1} << 62, 5});
  EXPECT_EQ(p.TakeBatch().batch.readings.size(), 5u);
  EXPECT_EQ(p.counters().seq_gaps, 0u);
  EXPECT_EQ(p.counters().seq_jumps, 1u);
  EXPECT_EQ(p.counters().duplicates, 0u);
}

TEST_F(PipelineTest, ForgedNextBootDoesNotSwallowTheRealBoot) {
  Pipeline p(DefaultOptions());
  auto range = [](std::uint64_t from, std::uint64_t to) {
    std::vector<std::uint64_t> v;
    for (std::uint64_t s = from; s <= to; ++s) v.push_back(s);
    return v;
  };
  SendReadings(p, "b", 5, range(1, 20));
  SendReadings(p, "b", 6, range(1, 10));  // forged
  SendReadings(p, "b", 5, range(21, 40));
  SendReadings(p, "b", 6, range(1, 10));  // the real restart
  EXPECT_EQ(p.TakeBatch().batch.readings.size(), 60u);
  EXPECT_EQ(p.counters().duplicates, 0u);
  EXPECT_EQ(p.counters().boot_conflicts, 1u);
}

TEST_F(PipelineTest, MalformedInputIsRejectedByReasonQuarantinedAndAcknowledged) {
  Options o = DefaultOptions();
  o.parser.max_payload_bytes = 512;
  o.ingest.quarantine_max_payload_bytes = 100;
  Pipeline p(o);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"not_json", "temperature=22"},
      {"not_json", R"({"deviceId":"x","temperature":22.5)"},
      {"not_json", R"({"deviceId":"x","temperature":NaN})"},
      {"too_large", R"({"deviceId":"x","pad":")" + std::string(600, 'a') + R"(","t":1})"},
      {"too_deep", R"({"deviceId":"x","a":{"b":{"c":{"d":{"e":{"f":1}}}}}})"},
      {"wrong_type", R"({"deviceId":"x","temperature":[1,2]})"},
      {"bad_number", R"({"deviceId":"x","temperature":1e400})"},
      {"duplicate_key", R"({"deviceId":"x","temperature":1,"temperature":2})"},
      {"bad_utf8", std::string(R"({"deviceId":"x","note":")") + "\xff\xfe" + R"(","t":1})"},
      {"bad_device_id", R"({"deviceId":"bad id/with+wildcards","t":1})"},
      {"missing_device_id", R"({"temperature":1})"},
      {"not_object", R"([1,2,3])"},
      {"no_metrics", R"({"deviceId":"x","name":"only strings"})"},
  };
  std::map<std::string, std::uint64_t> expected;
  std::uint64_t valid = 0;
  for (const auto& [reason, payload] : bad) {
    Send(p, "sensors/data", payload);
    ++expected[reason];
    SendReadings(p, "v", 1, {++valid});  // valid traffic flows in between
  }
  Send(p, "sensors/v/data", Native("w", 1, 1));  // deviceId contradicts the topic
  ++expected["device_id_mismatch"];
  Send(p, "somewhere/else", "{}");
  ++expected["bad_topic"];
  Send(p, "devices/s/status", "dancing");
  ++expected["status_not_json"];

  EXPECT_EQ(p.counters().rejected, bad.size() + 3);
  for (const auto& [reason, count] : expected) EXPECT_EQ(Reason(p, reason), count) << reason;
  EXPECT_EQ(p.counters().quarantined, bad.size() + 3);
  Pending b = p.TakeBatch();
  EXPECT_EQ(b.batch.readings.size(), valid);
  ASSERT_EQ(b.batch.quarantine.size(), bad.size() + 3);
  for (const auto& q : b.batch.quarantine) {
    EXPECT_LE(q.payload.size(), 100u) << "kept truncated";
    EXPECT_FALSE(q.detail.empty()) << q.reason;
    EXPECT_EQ(q.received_ms, kWall0);
  }
  EXPECT_EQ(b.batch.quarantine[0].reason, "not_json");
  EXPECT_EQ(b.batch.quarantine[0].topic, "sensors/data");
  EXPECT_EQ(b.acks.size(), 2 * bad.size() + 3) << "every QoS 1 message is acknowledged";
  EXPECT_EQ(p.registry().size(), 1u) << "a rejected message changes nothing else";
}

TEST_F(PipelineTest, QuarantineIsSampledPerSecondAndCanBeTurnedOff) {
  Pipeline p(DefaultOptions());
  for (int i = 0; i < kQuarantinePerSecond + 50; ++i) Send(p, "sensors/data", "garbage");
  EXPECT_EQ(p.TakeBatch().batch.quarantine.size(), static_cast<std::size_t>(kQuarantinePerSecond));
  clock_.Advance(1000);
  Send(p, "sensors/data", "garbage");
  EXPECT_EQ(p.TakeBatch().batch.quarantine.size(), 1u) << "a new second, a new sample";
  EXPECT_EQ(p.counters().rejected, static_cast<std::uint64_t>(kQuarantinePerSecond + 51));
  EXPECT_EQ(p.counters().quarantined, static_cast<std::uint64_t>(kQuarantinePerSecond + 1));

  Options off = DefaultOptions();
  off.ingest.quarantine_max_rows = 0;
  Pipeline q(off);
  Send(q, "sensors/data", "garbage");
  EXPECT_TRUE(q.TakeBatch().batch.quarantine.empty());
  EXPECT_EQ(q.counters().rejected, 1u);
  EXPECT_EQ(q.counters().quarantined, 0u);
}

TEST_F(PipelineTest, OversizeMessagesAreRejectedByTopicKindAndAcknowledged) {
  Options o = DefaultOptions();
  o.max_packet_bytes = 1000;
  Pipeline p(o);
  const std::string head(50, 'x');
  std::uint16_t id = 0;
  for (const char* topic : {"sensors/d/data", "devices/d/status", "gateway/commands"}) {
    p.OnOversizeMessage(OversizeMessage{topic, head, 1, false, {3, ++id}, 5000, 4980}, Now());
  }
  p.OnOversizeMessage(OversizeMessage{"sensors/data", head, 0, true, {3, 0}, 5000, 4980}, Now());
  EXPECT_EQ(p.counters().messages, 4u);
  EXPECT_EQ(Reason(p, "too_large"), 2u);
  EXPECT_EQ(Reason(p, "status_too_large"), 1u);
  EXPECT_EQ(Reason(p, "command_too_large"), 1u);
  EXPECT_EQ(p.pending_messages(), 4u);
  Pending b = p.TakeBatch();
  ASSERT_EQ(b.batch.quarantine.size(), 4u);
  EXPECT_EQ(b.batch.quarantine[0].payload, head);
  EXPECT_EQ(b.batch.quarantine[0].detail,
            "MQTT message of 5000 bytes (payload 4980) exceeds the gateway's packet limit of "
            "1000 bytes; skipped");
  ASSERT_EQ(b.acks.size(), 3u) << "QoS 1 oversize messages are acknowledged in order";
  EXPECT_EQ(b.acks[2].packet_id, 3);
  EXPECT_TRUE(b.batch.readings.empty());
}

// Replies on devices/{id}/replies go to the caller, acknowledged; bad ones are rejected with a
// reply_ reason; a device heard on its own topic is native, one on the flat topics is not.
TEST_F(PipelineTest, DeviceRepliesAreHandedBackAndDevicesKnowTheirScheme) {
  Pipeline p(DefaultOptions());
  std::optional<DeviceReplyMessage> reply;
  p.OnMessage(
      Message{"devices/n1/replies", R"({"id":"c1","ok":false,"rejected":true})", 1, false, {3, 1}},
      Now(), &reply);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->device_id, "n1");
  EXPECT_EQ(reply->reply.id, "c1");
  EXPECT_TRUE(reply->reply.rejected);
  reply.reset();
  p.OnMessage(Message{"devices/n1/replies", R"({"ok":true})", 1, false, {3, 2}}, Now(), &reply);
  EXPECT_FALSE(reply.has_value());
  EXPECT_EQ(Reason(p, "reply_wrong_type"), 1u);
  EXPECT_EQ(p.counters().replies, 1u);
  p.OnMessage(Message{"sensors/n2/data", R"({"temperature":20})", 1, false, {3, 3}}, Now());
  p.OnMessage(
      Message{
          "sensors/data", R"({"deviceId":"s1","timestamp":5,"temperature":20})", 1, false, {3, 4}},
      Now());
  EXPECT_TRUE(p.registry().devices().at("n2").native);
  EXPECT_FALSE(p.registry().devices().at("s1").native);
  Pending b = p.TakeBatch();
  EXPECT_EQ(b.acks.size(), 4u) << "replies are acknowledged, good or bad";
  bool row_native = false;
  for (const auto& d : b.batch.devices) {
    if (d.device_id == "n2") row_native = d.native;
  }
  EXPECT_TRUE(row_native) << "persisted with the device row";
}

TEST_F(PipelineTest, FloodFromOneDeviceIsLimitedAndOthersFlow) {
  Options o = DefaultOptions();
  o.ingest.device_rate_per_s = 1;
  o.ingest.device_burst = 5;
  Pipeline p(o);
  for (std::uint64_t i = 1; i <= 50; ++i) Send(p, "sensors/noisy/data", Native("noisy", 1, i), 0);
  SendReadings(p, "calm", 1, {1});
  EXPECT_EQ(Reason(p, "rate_limited"), 45u);
  Pending b = p.TakeBatch();
  EXPECT_EQ(b.batch.readings.size(), 6u);
  EXPECT_EQ(b.batch.readings.back().device_id, "calm");
  EXPECT_TRUE(b.batch.quarantine.size() <= static_cast<std::size_t>(kQuarantinePerSecond));
  // One more a second after that, whatever the payload's timestamps say.
  clock_.Advance(1000);
  for (std::uint64_t i = 51; i <= 60; ++i) {
    Send(p, "sensors/noisy/data", NativeAt("noisy", 1, i, kWall0 - 3'600'000 + i * 1000));
  }
  EXPECT_EQ(p.TakeBatch().batch.readings.size(), 1u);
}

TEST_F(PipelineTest, DuplicatesTakeNoRateTokens) {
  Options o = DefaultOptions();
  o.ingest.device_rate_per_s = 1;
  o.ingest.device_burst = 3;
  Pipeline p(o);
  SendReadings(p, "d", 1, {1, 1, 1, 1, 1, 2, 3});
  EXPECT_EQ(p.TakeBatch().batch.readings.size(), 3u);
  EXPECT_EQ(p.counters().duplicates, 4u);
  EXPECT_EQ(Reason(p, "rate_limited"), 0u);
}

TEST_F(PipelineTest, HourBacklogAfterSilenceIsStoredInFull) {
  Options o = DefaultOptions();
  o.ingest.device_rate_per_s = 1;
  o.ingest.device_burst = 5;
  Pipeline p(o);
  SendReadings(p, "buf", 1, {1});
  clock_.Advance(3'600'000);  // an hour of silence, buffered at 1/s on the device
  for (std::uint64_t i = 2; i <= 3601; ++i) {
    Send(p, "sensors/buf/data",
         NativeAt("buf", 1, i, kWall0 + static_cast<std::int64_t>(i) * 1000));
  }
  EXPECT_EQ(p.TakeBatch().batch.readings.size(), 3601u);
  EXPECT_EQ(Reason(p, "rate_limited"), 0u);
}

// gateway_crash_test BacklogQueuedWhileTheGatewayWasDownIsNotRateLimited: a restored device's
// silence includes the gateway's downtime.
TEST_F(PipelineTest, RestoredDeviceIsCreditedForTheGatewaysDowntime) {
  Options o = DefaultOptions();
  o.ingest.device_rate_per_s = 1;
  o.ingest.device_burst = 5;
  model::DeviceRow row{"r",
                       kWall0 - 7'200'000,
                       kWall0 - 3'600'000,
                       "online",
                       kWall0 - 7'200'000,
                       "{}",
                       "",
                       1,
                       10,
                       10,
                       0,
                       0};
  Pipeline p(o);
  p.Restore({row}, {}, {}, Now());
  for (std::uint64_t i = 11; i <= 3000; ++i) Send(p, "sensors/r/data", Native("r", 1, i), 0);
  EXPECT_EQ(p.TakeBatch().batch.readings.size(), 2990u);
  EXPECT_EQ(Reason(p, "rate_limited"), 0u);

  Pipeline fresh(o);  // the same device never heard of: its burst only
  for (std::uint64_t i = 11; i <= 3000; ++i) Send(fresh, "sensors/r/data", Native("r", 1, i), 0);
  EXPECT_EQ(fresh.TakeBatch().batch.readings.size(), 5u);
}

TEST_F(PipelineTest, StatusFloodIsRateLimitedAndDoesNotFloodAlerts) {
  Pipeline p(DefaultOptions());  // 6 statuses a minute per device, burst 10
  constexpr int kCount = 200;
  for (int i = 0; i < kCount; ++i) {
    Send(p, "devices/flappy/status", StatusOf("flappy", i % 2 ? "online" : "offline"));
  }
  EXPECT_EQ(p.counters().status_messages, static_cast<std::uint64_t>(kCount));
  EXPECT_EQ(Reason(p, "status_rate_limited"), static_cast<std::uint64_t>(kCount - 10));
  EXPECT_LE(p.counters().alerts_raised + p.counters().alerts_cleared, 10u);
  Pending b = p.TakeBatch();
  EXPECT_EQ(b.acks.size(), static_cast<std::size_t>(kCount));
  // Another device's statuses are not affected.
  Send(p, "devices/calm/status", StatusOf("calm", "online"));
  EXPECT_EQ(p.registry().size(), 2u);
  EXPECT_EQ(Reason(p, "status_rate_limited"), static_cast<std::uint64_t>(kCount - 10));
  // A token comes back every 10 s.
  clock_.Advance(10'000);
  Send(p, "devices/flappy/status", StatusOf("flappy", "online"));
  EXPECT_EQ(Reason(p, "status_rate_limited"), static_cast<std::uint64_t>(kCount - 10));
}

TEST_F(PipelineTest, RetainedStatusesAreHistoryAndNeverWakeAnOfflineDevice) {
  Pipeline p(DefaultOptions());
  // A retained status of a device never seen counts as live: it is added in that state.
  Send(p, "devices/n2/status", "sleeping", 1, /*retain=*/true);
  const auto& devices = p.registry().devices();
  EXPECT_EQ(devices.at("n2").state, State::kSleeping);
  // A known device: a retained "offline" is believed, a retained "online" does not wake it.
  SendReadings(p, "n3", 1, {1});
  Send(p, "devices/n3/status", "offline", 1, /*retain=*/true);
  EXPECT_EQ(devices.at("n3").state, State::kOffline);
  EXPECT_EQ(p.counters().alerts_raised, 1u) << "device_offline";
  Send(p, "devices/n3/status", "online", 1, /*retain=*/true);
  EXPECT_EQ(devices.at("n3").state, State::kOffline);
  EXPECT_EQ(p.counters().alerts_cleared, 0u);
  // Its own live word wakes it, and clears the alert.
  Send(p, "devices/n3/status", "online");
  EXPECT_EQ(devices.at("n3").state, State::kOnline);
  EXPECT_EQ(p.counters().alerts_cleared, 1u);
  // A last will (live "offline", published by the broker).
  Send(p, "devices/n3/status", "offline");
  EXPECT_EQ(devices.at("n3").state, State::kOffline);
  EXPECT_EQ(p.registry().count(State::kOffline), 1u);
  EXPECT_EQ(p.registry().count(State::kSleeping), 1u);
}

TEST_F(PipelineTest, CommandsAreReturnedRetainedOnesRejectedOtherGatewaysIgnored) {
  Pipeline p(DefaultOptions());
  auto cmd = Send(p, "gateway/commands", R"({"command":"get_status","id":"42"})");
  ASSERT_TRUE(cmd.has_value());
  EXPECT_EQ(cmd->name, "get_status");
  EXPECT_EQ(cmd->id, "42");
  cmd = Send(p, "gateway/gw1/commands", R"({"command":"sync_cloud"})");
  ASSERT_TRUE(cmd.has_value());
  EXPECT_EQ(cmd->name, "sync_cloud");
  EXPECT_FALSE(Send(p, "gateway/other/commands", R"({"command":"restart"})").has_value());
  EXPECT_FALSE(Send(p, "gateway/commands", R"({"command":"restart"})", 1, true).has_value());
  EXPECT_EQ(Reason(p, "command_retained"), 1u);
  EXPECT_FALSE(Send(p, "gateway/commands", "restart now").has_value());
  EXPECT_EQ(Reason(p, "command_not_json"), 1u);
  EXPECT_EQ(p.counters().commands, 3u) << "this gateway's, parsed or not";
  Pending b = p.TakeBatch();
  EXPECT_EQ(b.acks.size(), 5u) << "every one acknowledged, in order";
  EXPECT_EQ(b.batch.quarantine.size(), 2u);
}

TEST_F(PipelineTest, FullRegistryRefusesNewDevicesUntilOneIsIdleLongEnough) {
  Options o = DefaultOptions();
  o.registry.max_devices = 3;
  o.registry.evict_after_ms = 5000;
  Pipeline p(o);
  SendReadings(p, "real", 1, {1});
  SendReadings(p, "fake_0", 1, {1});
  SendReadings(p, "fake_1", 1, {1});
  SendReadings(p, "newcomer", 1, {1});
  EXPECT_EQ(Reason(p, "too_many_devices"), 1u);
  EXPECT_EQ(p.counters().devices_refused, 1u);
  Send(p, "devices/other/status", StatusOf("other", "online"));
  EXPECT_EQ(Reason(p, "too_many_devices"), 2u) << "statuses too";
  (void)p.TakeBatch();

  std::uint64_t real_seq = 1;
  clock_.Advance(3000);
  SendReadings(p, "real", 1, {++real_seq});
  clock_.Advance(2000);  // the fakes are idle for 5 s; the real device for 2 s
  SendReadings(p, "real", 1, {++real_seq});
  (void)p.TakeBatch();
  SendReadings(p, "newcomer", 1, {2});
  EXPECT_EQ(p.counters().devices_evicted, 1u);
  EXPECT_EQ(p.registry().size(), 3u);
  EXPECT_EQ(p.registry().devices().count("real"), 1u) << "a known device is never evicted";
  EXPECT_EQ(p.registry().devices().count("newcomer"), 1u);
  Pending b = p.TakeBatch();
  ASSERT_EQ(b.batch.removed_devices.size(), 1u);
  EXPECT_TRUE(b.batch.removed_devices[0] == "fake_0" || b.batch.removed_devices[0] == "fake_1");
  EXPECT_EQ(b.batch.readings.size(), 1u);
  // The known device is never refused.
  SendReadings(p, "real", 1, {++real_seq});
  EXPECT_EQ(p.TakeBatch().batch.readings.size(), 1u);
}

TEST_F(PipelineTest, DeviceWhoseRowIsPendingIsNeverEvicted) {
  Options o = DefaultOptions();
  o.registry.max_devices = 1;
  o.registry.evict_after_ms = 1000;
  Pipeline p(o);
  SendReadings(p, "a", 1, {1});
  clock_.Advance(2000);
  SendReadings(p, "b", 1, {1});  // "a" is idle long enough, but its row waits for the batch
  EXPECT_EQ(Reason(p, "too_many_devices"), 1u);
  (void)p.TakeBatch();
  SendReadings(p, "b", 1, {1});
  EXPECT_EQ(p.counters().devices_evicted, 1u);
}

TEST_F(PipelineTest, SeedProtocolQueuesReadingsOnly) {
  Options o = DefaultOptions();
  o.cloud = proto::batch::Protocol::kSeed;
  Pipeline p(o);
  Send(p, "devices/n1/status", StatusOf("n1", "online"));
  SendReadings(p, "n1", 1, {1});
  Send(p, "sensors/n1/data", Native("n1", 1, 2, 40));  // raises temperature_max
  Pending b = p.TakeBatch();
  ASSERT_EQ(b.batch.alerts.size(), 1u);
  ASSERT_EQ(b.batch.outbox.size(), 2u);
  for (const auto& item : b.batch.outbox) {
    EXPECT_EQ(item.kind, model::OutboxKind::kReading);
    EXPECT_EQ(item.created_ms, kWall0);
    EXPECT_NE(item.body.find(R"("device_id":"n1")"), std::string::npos) << item.body;
  }
}

TEST_F(PipelineTest, NativeProtocolQueuesStatusesAlertsAndReadingsInThatOrder) {
  Options o = DefaultOptions();
  o.cloud = proto::batch::Protocol::kNative;
  Pipeline p(o);
  Send(p, "devices/n1/status", StatusOf("n1", "online"));  // new device: no change, an event
  SendReadings(p, "n1", 1, {1});
  clock_.Advance(10);
  Send(p, "sensors/n1/data", Native("n1", 1, 2, 40));
  Send(p, "devices/n1/status", StatusOf("n1", "sleeping"));  // a change
  Pending b = p.TakeBatch();
  std::vector<model::OutboxKind> kinds;
  for (const auto& item : b.batch.outbox) kinds.push_back(item.kind);
  using K = model::OutboxKind;
  EXPECT_EQ(kinds, (std::vector<K>{K::kStatus, K::kStatus, K::kAlert, K::kReading, K::kReading}));
  EXPECT_NE(b.batch.outbox[0].body.find(R"("status":"online")"), std::string::npos);
  EXPECT_NE(b.batch.outbox[1].body.find(R"("status":"sleeping")"), std::string::npos);
  EXPECT_NE(b.batch.outbox[2].body.find("temperature_max"), std::string::npos);
  EXPECT_EQ(b.batch.outbox[2].created_ms, kWall0 + 10);
  EXPECT_EQ(b.batch.outbox[3].created_ms, kWall0);
}

TEST_F(PipelineTest, ThresholdAlertIsRaisedOnceAndClearedOnce) {
  Options o = DefaultOptions();
  o.rules = [] {
    config::Config c;
    c.temperature_max = 30;
    return config::EffectiveRules(c);
  }();
  Pipeline p(o);
  std::uint64_t seq = 0;
  for (double t : {25.0, 31.0, 32.0, 35.0, 30.8, 29.0, 28.0, 31.5}) {
    Send(p, "sensors/n1/data", Native("n1", 1, ++seq, t));
  }
  Pending b = p.TakeBatch();
  ASSERT_EQ(b.batch.alerts.size(), 3u);
  const model::AlertRow& a = b.batch.alerts[0];
  EXPECT_EQ(a.cleared_ms, 0);
  EXPECT_EQ(a.value, 31.0);
  EXPECT_EQ(a.message, "High temperature alert: 31°C from n1");
  EXPECT_EQ(a.severity, "warning");
  EXPECT_EQ(a.alert_id, "temperature_max:n1");
  EXPECT_NE(b.batch.alerts[1].cleared_ms, 0) << "30.8 is inside the 0.5 hysteresis; 29 clears";
  EXPECT_EQ(b.batch.alerts[1].value, 29.0);
  EXPECT_EQ(b.batch.alerts[2].cleared_ms, 0);
  EXPECT_EQ(p.counters().alerts_raised, 2u);
  EXPECT_EQ(p.counters().alerts_cleared, 1u);
  EXPECT_EQ(p.rules().active_count(), 1u);
}

TEST_F(PipelineTest, SilentDeviceGoesOfflineOnTickAndComesBack) {
  Options o = DefaultOptions();
  o.registry.offline_after_ms = 1000;
  Pipeline p(o);
  SendReadings(p, "quiet", 1, {1});
  (void)p.TakeBatch();
  clock_.Advance(999);
  p.Tick(Now());
  EXPECT_FALSE(p.HasWork());
  clock_.Advance(2);
  p.Tick(Now());
  ASSERT_TRUE(p.HasWork());
  Pending b = p.TakeBatch();
  ASSERT_EQ(b.batch.alerts.size(), 1u);
  EXPECT_EQ(b.batch.alerts[0].alert_id, "device_offline:quiet");
  ASSERT_NE(Row(b, "quiet"), nullptr);
  EXPECT_EQ(Row(b, "quiet")->status, "offline");

  SendReadings(p, "quiet", 1, {2});
  b = p.TakeBatch();
  ASSERT_EQ(b.batch.alerts.size(), 1u);
  EXPECT_NE(b.batch.alerts[0].cleared_ms, 0);
  EXPECT_EQ(Row(b, "quiet")->status, "online");
}

TEST_F(PipelineTest, WallClockStepDoesNotMarkTheSiteOffline) {
  Options o = DefaultOptions();
  o.registry.offline_after_ms = 1000;
  Pipeline p(o);
  SendReadings(p, "d", 1, {1});
  clock_.SetWall(kWall0 + 86'400'000);  // NTP after a power cut; no monotonic time passed
  p.Tick(Now());
  EXPECT_EQ(p.registry().count(State::kOnline), 1u);
}

TEST_F(PipelineTest, RestoreKeepsActiveAlertsDedupeAndClearsAlertsOfRemovedRules) {
  Options o = DefaultOptions();
  model::DeviceRow row{
      "n1", kWall0 - 60'000, kWall0 - 1000, "online", kWall0 - 60'000, "{}", "fw1", 3, 20, 20, 0,
      0};
  model::AlertRow hot{"temperature_max:n1",
                      "temperature_max",
                      "n1",
                      "temperature",
                      "warning",
                      "hot",
                      40,
                      35,
                      kWall0 - 5000,
                      0};
  model::AlertRow gone{"vanished:n1", "vanished", "n1", "x",           "warning",
                       "?",           1,          0,    kWall0 - 5000, 0};
  std::vector<model::RecentIdentity> recent;
  for (std::uint64_t s = 1; s <= 20; ++s) recent.push_back({"n1", true, 3, s, false, 0});
  recent.push_back({"unknown", true, 1, 1, false, 0});  // not in the registry: skipped
  Pipeline p(o);
  p.Restore({row}, {hot, gone}, recent, Now());
  EXPECT_EQ(p.registry().size(), 1u);
  EXPECT_EQ(p.rules().active_count(), 1u);
  ASSERT_TRUE(p.HasWork()) << "the clear of the removed rule's alert";
  Pending first = p.TakeBatch();
  ASSERT_EQ(first.batch.alerts.size(), 1u);
  EXPECT_EQ(first.batch.alerts[0].alert_id, "vanished:n1");
  EXPECT_NE(first.batch.alerts[0].cleared_ms, 0);

  SendReadings(p, "n1", 3, {19, 20});   // redeliveries of what was stored
  for (std::uint64_t seq : {21, 22}) {  // still hot: not raised again
    Send(p, "sensors/n1/data", Native("n1", 3, seq, 41));
  }
  Pending b = p.TakeBatch();
  EXPECT_EQ(b.batch.readings.size(), 2u);
  EXPECT_EQ(p.counters().duplicates, 2u);
  EXPECT_TRUE(b.batch.alerts.empty());
  const model::DeviceRow* d = Row(b, "n1");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->readings, 22u);
  EXPECT_EQ(d->firmware, "fw1");
  EXPECT_EQ(d->first_seen_ms, kWall0 - 60'000);
}

TEST_F(PipelineTest, GatewayAlertsAreCountedAndStoredWithTheNextBatch) {
  Options o = DefaultOptions();
  o.cloud = proto::batch::Protocol::kNative;
  Pipeline p(o);
  model::AlertRow raised{
      "storage_full:gw1", "storage_full", "gw1", "", "critical", "full", 0, 0, kWall0, 0};
  p.CountAlert(raised);  // published at once, cannot be stored
  EXPECT_FALSE(p.HasWork());
  model::AlertRow cleared = raised;
  cleared.cleared_ms = kWall0 + 1000;
  p.AddAlert(cleared);
  EXPECT_EQ(p.counters().alerts_raised, 1u);
  EXPECT_EQ(p.counters().alerts_cleared, 1u);
  Pending b = p.TakeBatch();
  ASSERT_EQ(b.batch.alerts.size(), 1u);
  ASSERT_EQ(b.batch.outbox.size(), 1u);
  EXPECT_EQ(b.batch.outbox[0].kind, model::OutboxKind::kAlert);
  EXPECT_EQ(b.batch.outbox[0].created_ms, kWall0 + 1000);
}

TEST_F(PipelineTest, ReloadAppliesNewThresholdsAndRatesToKnownDevices) {
  Options o = DefaultOptions();
  o.ingest.device_rate_per_s = 0;  // unlimited
  Pipeline p(o);
  SendReadings(p, "r", 1, {1});
  Send(p, "sensors/r/data", Native("r", 1, 2, 40));  // over the default 35
  EXPECT_EQ(p.counters().alerts_raised, 1u);
  (void)p.TakeBatch();

  Options next = o;
  next.rules = [] {
    config::Config c;
    c.temperature_max = 50;
    return config::EffectiveRules(c);
  }();
  next.ingest.device_rate_per_s = 1;
  next.ingest.device_burst = 2;
  p.Reload(next, Now());
  Pending b = p.TakeBatch();
  ASSERT_EQ(b.batch.alerts.size(), 1u) << "the changed rule's alert is cleared";
  EXPECT_NE(b.batch.alerts[0].cleared_ms, 0);
  SendReadings(p, "r", 1, {3, 4, 5, 6});
  EXPECT_EQ(p.TakeBatch().batch.readings.size(), 2u) << "the new rate, on a known device";
  EXPECT_EQ(Reason(p, "rate_limited"), 2u);
}

}  // namespace
}  // namespace outpost::gateway::ingest
