#include "outpost/provision/acl.h"

#include <gtest/gtest.h>

#include "outpost/base/status.h"
#include "outpost/provision/provisioner.h"

namespace outpost::provision {
namespace {

AclInput Site() { return AclInput{"outpost-gateway-gw1", "gw1", "outpost-admin", {}}; }

TEST(AclTest, ADeviceGetsOnlyItsOwnTopics) {
  AclInput in = Site();
  in.devices = {{"n1", false}};
  const std::string acl = BuildAcl(in);
  const std::string block = acl.substr(acl.find("user n1\n"));
  EXPECT_EQ(block,
            "user n1\ntopic write sensors/n1/data\ntopic write devices/n1/status\n"
            "topic write devices/n1/replies\ntopic read devices/n1/commands\n");
}

TEST(AclTest, FlatSeedTopicsOnlyForSeedDevices) {
  AclInput in = Site();
  in.devices = {{"n1", false}, {"s1", true}};
  const std::string acl = BuildAcl(in);
  const std::string n1 =
      acl.substr(acl.find("user n1\n"), acl.find("user s1\n") - acl.find("user n1\n"));
  const std::string s1 = acl.substr(acl.find("user s1\n"));
  EXPECT_EQ(n1.find("sensors/data"), std::string::npos);
  EXPECT_NE(s1.find("topic write sensors/data\n"), std::string::npos);
  EXPECT_NE(s1.find("topic read devices/commands\n"), std::string::npos);
}

TEST(AclTest, OnlyTheGatewayCommandsDevicesAndOnlyTheAdminCommandsTheGateway) {
  const std::string acl = BuildAcl(Site());
  const std::string gw =
      acl.substr(acl.find("user outpost-gateway-gw1\n"),
                 acl.find("user outpost-admin\n") - acl.find("user outpost-gateway-gw1\n"));
  const std::string admin = acl.substr(acl.find("user outpost-admin\n"));
  EXPECT_NE(gw.find("topic write devices/+/commands\n"), std::string::npos);
  EXPECT_EQ(gw.find("topic write gateway/commands"), std::string::npos);
  EXPECT_EQ(gw.find("topic write gateway/+/commands"), std::string::npos);
  EXPECT_NE(admin.find("topic write gateway/commands\n"), std::string::npos);
  EXPECT_NE(admin.find("topic write gateway/+/commands\n"), std::string::npos);
  EXPECT_EQ(admin.find("devices/"), std::string::npos);
}

TEST(AclTest, DeviceIdsFollowTheGatewayRuleAndCannotTakeTheSiteIdentities) {
  EXPECT_TRUE(CheckDeviceId("esp32_sensor_001", "outpost-gateway-gw1", "outpost-admin").ok());
  for (const char* bad : {"", "a/b", "a+", "#", "a b", "outpost-admin", "outpost-control",
                          "outpost-gateway-gw1", "outpost-gateway-x"}) {
    Status s = CheckDeviceId(bad, "outpost-gateway-gw1", "outpost-admin");
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(CheckDeviceId(std::string(65, 'a'), "g", "a").ok());
}

}  // namespace
}  // namespace outpost::provision
