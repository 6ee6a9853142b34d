#include "outpost/provision/acl.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

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
            "topic write devices/n1/replies\ntopic read devices/n1/commands\n"
            "topic write outpost/selfcheck/n1\n");
}

// The self-check's topics: a device writes only its own selfcheck topic, nobody writes the
// forbidden one, and the control identity reads the reserved space and writes only fences.
TEST(AclTest, TheSelfCheckTopicsAreReservedAndOnlyTheControlIdentityReadsThem) {
  AclInput in = Site();
  in.devices = {{"n1", false}, {"n2", true}};
  const std::string acl = BuildAcl(in);
  EXPECT_EQ(SelfCheckTopic("n1"), "outpost/selfcheck/n1");
  EXPECT_EQ(SelfCheckDeniedTopic("n1"), "outpost/selfcheck/n1/denied");
  EXPECT_EQ(SelfCheckFenceTopic("n1"), "outpost/selfcheck/n1/fence");
  const auto control_at = acl.find("user outpost-control\n");
  ASSERT_NE(control_at, std::string::npos);
  const std::string control = acl.substr(control_at, acl.find("\n\n", control_at) - control_at);
  EXPECT_EQ(control,
            "user outpost-control\ntopic read outpost/selfcheck/#\n"
            "topic write outpost/selfcheck/+/fence");
  // Every selfcheck rule, and who holds it.
  std::vector<std::string> rules;
  std::string user;
  for (std::size_t at = 0; at < acl.size();) {
    const std::size_t end = acl.find('\n', at);
    const std::string line = acl.substr(at, end - at);
    at = end + 1;
    if (line.rfind("user ", 0) == 0) user = line.substr(5);
    if (line.find("outpost/selfcheck") != std::string::npos) rules.push_back(user + ": " + line);
  }
  EXPECT_EQ(rules, (std::vector<std::string>{
                       "outpost-control: topic read outpost/selfcheck/#",
                       "outpost-control: topic write outpost/selfcheck/+/fence",
                       "n1: topic write outpost/selfcheck/n1",
                       "n2: topic write outpost/selfcheck/n2",
                   }));
  EXPECT_EQ(acl.find("outpost/selfcheck/n1/"), std::string::npos) << "nobody may write .../denied";
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
