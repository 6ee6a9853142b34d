#include "outpost/proto/device_status.h"

#include <gtest/gtest.h>

#include <string>

namespace outpost::proto {
namespace {

class StatusTest : public ::testing::Test {
 protected:
  bool Parse(std::string_view payload, std::string_view topic_id = "") {
    return ParseStatus(payload, topic_id, &status_, &reject_);
  }
  void Rejects(std::string_view payload, RejectReason reason, std::string_view topic_id = "") {
    EXPECT_FALSE(Parse(payload, topic_id)) << payload;
    EXPECT_STREQ(RejectReasonName(reject_.reason), RejectReasonName(reason))
        << payload << " -> " << reject_.detail;
    EXPECT_FALSE(reject_.detail.empty());
  }
  StatusMessage status_;
  Reject reject_;
};

TEST_F(StatusTest, SeedJson) {
  ASSERT_TRUE(Parse(R"({"deviceId":"esp32_sensor_001","status":"online","timestamp":1234})"))
      << reject_.detail;
  EXPECT_EQ(status_.device_id, "esp32_sensor_001");
  EXPECT_EQ(status_.state, DeviceState::kOnline);
  ASSERT_TRUE(Parse(R"({"deviceId":"esp32_sensor_001","status":"sleeping","timestamp":99})"));
  EXPECT_EQ(status_.state, DeviceState::kSleeping);
  ASSERT_TRUE(Parse(R"({"device_id":"n1","status":"offline"})"));
  EXPECT_EQ(status_.device_id, "n1");
  EXPECT_EQ(status_.state, DeviceState::kOffline);
}

TEST_F(StatusTest, BareWordsOnPerDeviceTopic) {
  struct Case {
    const char* payload;
    DeviceState state;
  } cases[] = {{"online", DeviceState::kOnline},
               {"offline", DeviceState::kOffline},
               {"sleeping", DeviceState::kSleeping},
               {" online\n", DeviceState::kOnline},
               {"\"sleeping\"", DeviceState::kSleeping}};
  for (const Case& c : cases) {
    ASSERT_TRUE(Parse(c.payload, "node-9")) << c.payload << ": " << reject_.detail;
    EXPECT_EQ(status_.state, c.state);
    EXPECT_EQ(status_.device_id, "node-9");
  }
}

TEST_F(StatusTest, BareWordNeedsTopicId) { Rejects("offline", RejectReason::kMissingDeviceId); }

TEST_F(StatusTest, JsonOnPerDeviceTopic) {
  ASSERT_TRUE(Parse(R"({"status":"online"})", "n2"));
  EXPECT_EQ(status_.device_id, "n2");
  ASSERT_TRUE(Parse(R"({"deviceId":"n2","status":"online"})", "n2"));
  Rejects(R"({"deviceId":"n3","status":"online"})", RejectReason::kDeviceIdMismatch, "n2");
}

TEST_F(StatusTest, Rejects) {
  Rejects("Online", RejectReason::kNotJson, "n");
  Rejects("awake", RejectReason::kNotJson, "n");
  Rejects("", RejectReason::kNotJson, "n");
  Rejects("\"awake\"", RejectReason::kWrongType, "n");
  Rejects("[\"online\"]", RejectReason::kNotObject, "n");
  Rejects(R"({"deviceId":"d"})", RejectReason::kWrongType);
  Rejects(R"({"deviceId":"d","status":"awake"})", RejectReason::kWrongType);
  Rejects(R"({"deviceId":"d","status":1})", RejectReason::kWrongType);
  Rejects(R"({"status":"online"})", RejectReason::kMissingDeviceId);
  Rejects(R"({"deviceId":"bad id","status":"online"})", RejectReason::kBadDeviceId);
  Rejects(R"({"deviceId":"d","status":"online","status":"offline"})", RejectReason::kDuplicateKey);
  Rejects(R"({"deviceId":"d","device_id":"d","status":"online"})", RejectReason::kDuplicateKey);
  Rejects("{\"deviceId\":\"d\",\"status\":\"online\",\"x\":\"\xff\"}", RejectReason::kBadUtf8);
  Rejects(R"({"deviceId":"d","status":"online","x":{"a":{"b":{"c":{"d":1}}}}})",
          RejectReason::kTooDeep);
  Rejects(std::string(4097, ' '), RejectReason::kTooLarge, "n");
}

TEST_F(StatusTest, StateNames) {
  EXPECT_STREQ(DeviceStateName(DeviceState::kOnline), "online");
  EXPECT_STREQ(DeviceStateName(DeviceState::kSleeping), "sleeping");
  EXPECT_STREQ(DeviceStateName(DeviceState::kOffline), "offline");
}

}  // namespace
}  // namespace outpost::proto
