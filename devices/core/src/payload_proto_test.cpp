// The gateway's parser (libs/proto) must accept every payload the device core writes.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "outpost/device/payload.h"
#include "outpost/proto/device_reply.h"
#include "outpost/proto/device_status.h"
#include "outpost/proto/reading.h"

namespace outpost::device {
namespace {

constexpr std::int64_t kNow = 1'748'736'000'000;  // 2025-06-01T00:00:00Z

std::string Write(const PayloadIdentity& id, const Reading& r) {
  char buf[512];
  std::size_t n = WriteReadingJson(id, r, buf, sizeof buf);
  EXPECT_GT(n, 0u);
  return std::string(buf, n);
}

TEST(PayloadProtoTest, NativePayloadParsesWithIdentityTimeAndFirmware) {
  PayloadIdentity id{"node-7", 7, "1.4.0", TopicScheme::kNative};
  Reading r;
  r.seq = 1042;
  r.timestamp_ms = 1'748'735'990'000;
  r.temperature_centi = 2125;
  r.humidity_centi = 4520;
  r.battery_centi = 8750;
  r.rssi_dbm = -65;
  r.motion = true;
  std::string json = Write(id, r);
  EXPECT_EQ(
      json,
      R"({"deviceId":"node-7","boot":7,"seq":1042,"timestamp":1748735990000,"fw":"1.4.0","temperature":21.25,"humidity":45.2,"motion":true,"battery":87.5,"rssi":-65})");
  proto::ReadingParser parser;
  proto::Reading out;
  proto::Reject reject;
  ASSERT_TRUE(parser.Parse(json, "node-7", kNow, &out, &reject)) << reject.detail;
  EXPECT_EQ(out.device_id, "node-7");
  EXPECT_TRUE(out.has_seq);
  EXPECT_EQ(out.boot, 7u);
  EXPECT_EQ(out.seq, 1042u);
  EXPECT_EQ(out.ts_ms, 1'748'735'990'000);
  EXPECT_EQ(out.ts_source, proto::TimeSource::kDevice);
  EXPECT_EQ(out.firmware, "1.4.0");
  ASSERT_EQ(out.metrics.size(), 5u);
  EXPECT_EQ(out.metrics[0].name, "temperature");
  EXPECT_DOUBLE_EQ(out.metrics[0].value, 21.25);
  EXPECT_DOUBLE_EQ(out.metrics[1].value, 45.2);
  EXPECT_TRUE(out.metrics[2].is_bool);
  EXPECT_DOUBLE_EQ(out.metrics[4].value, -65);
}

TEST(PayloadProtoTest, UptimeTimestampFallsBackToGatewayTime) {
  PayloadIdentity id{"node-7", 1, "1.4.0", TopicScheme::kNative};
  Reading r;
  r.timestamp_ms = 123'456;
  proto::ReadingParser parser;
  proto::Reading out;
  proto::Reject reject;
  ASSERT_TRUE(parser.Parse(Write(id, r), "node-7", kNow, &out, &reject)) << reject.detail;
  EXPECT_EQ(out.ts_source, proto::TimeSource::kGateway);
  EXPECT_EQ(out.device_ts_raw, 123'456);
}

TEST(PayloadProtoTest, SeedPayloadParsesOnTheFlatTopic) {
  PayloadIdentity id{"esp32_sensor_001", 1, "x", TopicScheme::kSeed};
  Reading r;
  r.timestamp_ms = 123'456;
  r.temperature_centi = 2250;
  r.humidity_centi = 4520;
  r.battery_centi = 8750;
  r.rssi_dbm = -65;
  std::string json = Write(id, r);
  EXPECT_EQ(
      json,
      R"({"deviceId":"esp32_sensor_001","timestamp":123456,"temperature":22.5,"humidity":45.2,"motion":false,"battery":87.5,"rssi":-65})");
  proto::ReadingParser parser;
  proto::Reading out;
  proto::Reject reject;
  ASSERT_TRUE(parser.Parse(json, "", kNow, &out, &reject)) << reject.detail;
  EXPECT_EQ(out.device_id, "esp32_sensor_001");
  EXPECT_FALSE(out.has_seq);
}

TEST(PayloadProtoTest, ExtremeValuesStillParse) {
  // Random and extreme field values, both schemes: the parser accepts every one.
  std::mt19937 rng(42);
  proto::ReadingParser parser;
  proto::Reading out;
  proto::Reject reject;
  for (int i = 0; i < 2'000; ++i) {
    PayloadIdentity id{"n-1", static_cast<std::uint32_t>(rng()), "1.0.0",
                       i % 2 ? TopicScheme::kSeed : TopicScheme::kNative};
    Reading r;
    r.seq = static_cast<std::uint32_t>(rng());
    r.timestamp_ms = i % 3 == 0 ? static_cast<std::int64_t>(rng()) : kNow - (rng() % 100'000);
    r.temperature_centi = static_cast<std::int32_t>(rng());
    r.humidity_centi = static_cast<std::int32_t>(rng());
    r.battery_centi = static_cast<std::int32_t>(rng() % 10'001);
    r.rssi_dbm = static_cast<std::int16_t>(-static_cast<int>(rng() % 32'768));
    r.motion = rng() & 1;
    std::string json = Write(id, r);
    ASSERT_TRUE(parser.Parse(json, i % 2 ? "" : "n-1", kNow, &out, &reject))
        << json << ": " << reject.detail;
  }
}

TEST(PayloadProtoTest, StatusAndRepliesAreWhatTheGatewayExpects) {
  char buf[160];
  std::size_t n = WriteSeedStatusJson("esp32_sensor_001", "sleeping", 5, buf, sizeof buf);
  proto::StatusMessage status;
  proto::Reject reject;
  ASSERT_TRUE(proto::ParseStatus(std::string_view(buf, n), "", &status, &reject));
  EXPECT_EQ(status.state, proto::DeviceState::kSleeping);
  EXPECT_EQ(status.device_id, "esp32_sensor_001");
  // The native status is a bare word on the per-device topic.
  ASSERT_TRUE(proto::ParseStatus("sleeping", "node-1", &status, &reject));
  n = WriteReplyJson("c-18", false, "unknown command \"dance\"", false, buf, sizeof buf);
  EXPECT_EQ(std::string(buf, n),
            R"({"id":"c-18","ok":false,"error":"unknown command \"dance\"","rejected":true})");
  // The gateway reads it as a rejected command (devices/{id}/replies).
  proto::DeviceReply reply;
  ASSERT_TRUE(proto::ParseDeviceReply(std::string_view(buf, n), &reply, &reject)) << reject.detail;
  EXPECT_EQ(reply.id, "c-18");
  EXPECT_TRUE(reply.has_ok);
  EXPECT_FALSE(reply.ok);
  EXPECT_EQ(reply.error, "unknown command \"dance\"");
  EXPECT_TRUE(reply.rejected);
  n = WriteReplyJson("c3f9a0c1d2e3b4a5f", true, "", true, buf, sizeof buf);
  ASSERT_TRUE(proto::ParseDeviceReply(std::string_view(buf, n), &reply, &reject)) << reject.detail;
  EXPECT_TRUE(reply.ok);
  EXPECT_TRUE(reply.duplicate);
}

TEST(PayloadProtoTest, ALongEscapedErrorIsCutNotLost) {
  // Regression (found by device_command_fuzz): a 64-character id and an error full of quotes
  // used to overflow the reply buffer, and the node published an empty reply.
  char buf[288];
  const std::string id(64, 'i');
  const std::string error(96, '"');
  std::size_t n = WriteReplyJson(id, false, error, true, buf, sizeof buf);
  ASSERT_GT(n, 0u);
  const std::string json(buf, n);
  EXPECT_EQ(json.rfind("{\"id\":\"" + id + "\",\"ok\":false,\"error\":\"", 0), 0u) << json;
  EXPECT_NE(json.find("\"duplicate\":true}"), std::string::npos) << json;
}

}  // namespace
}  // namespace outpost::device
