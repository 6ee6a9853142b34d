#include "outpost/proto/topics.h"

#include <gtest/gtest.h>

#include <string>

namespace outpost::proto {
namespace {

TEST(TopicsTest, SeedFlatTopics) {
  struct Case {
    const char* topic;
    TopicKind kind;
  } cases[] = {
      {"sensors/data", TopicKind::kSensorData},
      {"devices/status", TopicKind::kDeviceStatus},
      {"devices/commands", TopicKind::kDeviceCommands},
      {"gateway/alerts", TopicKind::kGatewayAlerts},
      {"gateway/status", TopicKind::kGatewayStatus},
      {"gateway/commands", TopicKind::kGatewayCommands},
  };
  for (const Case& c : cases) {
    const TopicInfo info = ClassifyTopic(c.topic);
    EXPECT_EQ(info.kind, c.kind) << c.topic;
    EXPECT_TRUE(info.device_id.empty()) << c.topic;
    EXPECT_TRUE(info.gateway_id.empty()) << c.topic;
  }
}

TEST(TopicsTest, SeedConstantsClassify) {
  EXPECT_EQ(ClassifyTopic(kSeedSensorDataTopic).kind, TopicKind::kSensorData);
  EXPECT_EQ(ClassifyTopic(kSeedDeviceStatusTopic).kind, TopicKind::kDeviceStatus);
  EXPECT_EQ(ClassifyTopic(kSeedDeviceCommandsTopic).kind, TopicKind::kDeviceCommands);
  EXPECT_EQ(ClassifyTopic(kSeedGatewayAlertsTopic).kind, TopicKind::kGatewayAlerts);
  EXPECT_EQ(ClassifyTopic(kSeedGatewayStatusTopic).kind, TopicKind::kGatewayStatus);
  EXPECT_EQ(ClassifyTopic(kSeedGatewayCommandsTopic).kind, TopicKind::kGatewayCommands);
}

TEST(TopicsTest, PerDeviceTopics) {
  TopicInfo info = ClassifyTopic("sensors/esp32_sensor_001/data");
  EXPECT_EQ(info.kind, TopicKind::kSensorData);
  EXPECT_EQ(info.device_id, "esp32_sensor_001");
  EXPECT_TRUE(info.gateway_id.empty());

  info = ClassifyTopic("devices/node-7/status");
  EXPECT_EQ(info.kind, TopicKind::kDeviceStatus);
  EXPECT_EQ(info.device_id, "node-7");

  info = ClassifyTopic("devices/a.b:c/commands");
  EXPECT_EQ(info.kind, TopicKind::kDeviceCommands);
  EXPECT_EQ(info.device_id, "a.b:c");

  info = ClassifyTopic("devices/X/replies");
  EXPECT_EQ(info.kind, TopicKind::kDeviceReplies);
  EXPECT_EQ(info.device_id, "X");
}

TEST(TopicsTest, GatewayTopics) {
  for (const char* leaf : {"alerts", "status", "commands"}) {
    const std::string topic = GatewayTopic("gw-1", leaf);
    const TopicInfo info = ClassifyTopic(topic);
    EXPECT_NE(info.kind, TopicKind::kUnknown) << topic;
    EXPECT_EQ(info.gateway_id, "gw-1");
    EXPECT_TRUE(info.device_id.empty());
  }
  EXPECT_EQ(ClassifyTopic("gateway/gw-1/alerts").kind, TopicKind::kGatewayAlerts);
  EXPECT_EQ(ClassifyTopic("gateway/gw-1/status").kind, TopicKind::kGatewayStatus);
  EXPECT_EQ(ClassifyTopic("gateway/gw-1/commands").kind, TopicKind::kGatewayCommands);
}

TEST(TopicsTest, UnknownShapes) {
  for (const char* topic : {"",
                            "/",
                            "sensors",
                            "sensors/",
                            "/sensors/data",
                            "sensors/data/",
                            "sensors//data",
                            "sensors/a/b/data",
                            "sensors/bad id/data",
                            "sensors/+/data",
                            "sensors/#",
                            "sensors/a/status",
                            "devices/replies",
                            "devices/a/data",
                            "gateway/gw/replies",
                            "gateway/bad/id/status",
                            "gateway/+/status",
                            "Sensors/data",
                            "sensors/data ",
                            "other/topic",
                            "sensors/a/data/extra"}) {
    const TopicInfo info = ClassifyTopic(topic);
    EXPECT_EQ(info.kind, TopicKind::kUnknown) << '"' << topic << '"';
    EXPECT_TRUE(info.device_id.empty()) << topic;
    EXPECT_TRUE(info.gateway_id.empty()) << topic;
  }
  const std::string long_id(65, 'a');
  EXPECT_EQ(ClassifyTopic("sensors/" + long_id + "/data").kind, TopicKind::kUnknown);
  const std::string max_id(64, 'a');
  EXPECT_EQ(ClassifyTopic("sensors/" + max_id + "/data").device_id, max_id);
}

TEST(TopicsTest, ValidIds) {
  EXPECT_TRUE(IsValidId("esp32_sensor_001"));
  EXPECT_TRUE(IsValidId("a"));
  EXPECT_TRUE(IsValidId("A-Z_a.z:0-9"));
  EXPECT_TRUE(IsValidId(std::string(64, 'x')));
  EXPECT_FALSE(IsValidId(""));
  EXPECT_FALSE(IsValidId(std::string(65, 'x')));
  for (const char* bad :
       {"a b", "a/b", "a+b", "a#b", "a\"b", "a\\b", "caf\xc3\xa9", "a\nb", "a,b", "a*b", "a$b"}) {
    EXPECT_FALSE(IsValidId(bad)) << bad;
  }
  EXPECT_FALSE(IsValidId(std::string_view("a\0b", 3)));
}

TEST(TopicsTest, Builders) {
  EXPECT_EQ(SensorDataTopic("d1"), "sensors/d1/data");
  EXPECT_EQ(DeviceStatusTopic("d1"), "devices/d1/status");
  EXPECT_EQ(DeviceCommandsTopic("d1"), "devices/d1/commands");
  EXPECT_EQ(DeviceRepliesTopic("d1"), "devices/d1/replies");
  EXPECT_EQ(GatewayTopic("gw", "alerts"), "gateway/gw/alerts");
  // Round trip.
  EXPECT_EQ(ClassifyTopic(SensorDataTopic("d1")).device_id, "d1");
  EXPECT_EQ(ClassifyTopic(DeviceRepliesTopic("d1")).kind, TopicKind::kDeviceReplies);
}

TEST(TopicsTest, KindNames) {
  EXPECT_STREQ(TopicKindName(TopicKind::kSensorData), "sensor_data");
  EXPECT_STREQ(TopicKindName(TopicKind::kGatewayStatus), "gateway_status");
  EXPECT_STREQ(TopicKindName(TopicKind::kUnknown), "unknown");
}

}  // namespace
}  // namespace outpost::proto
