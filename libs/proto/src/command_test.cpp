#include "outpost/proto/command.h"

#include <gtest/gtest.h>

#include <string>

namespace outpost::proto {
namespace {

class CommandTest : public ::testing::Test {
 protected:
  bool Parse(std::string_view payload) { return ParseCommand(payload, &command_, &reject_); }
  void Rejects(std::string_view payload, RejectReason reason) {
    EXPECT_FALSE(Parse(payload)) << payload;
    EXPECT_STREQ(RejectReasonName(reject_.reason), RejectReasonName(reason))
        << payload << " -> " << reject_.detail;
    EXPECT_FALSE(reject_.detail.empty());
  }
  Command command_;
  Reject reject_;
};

TEST_F(CommandTest, SeedCommands) {
  for (const char* name : {"get_status", "sync_cloud", "reboot"}) {
    ASSERT_TRUE(Parse(std::string(R"({"command":")") + name + "\"}")) << reject_.detail;
    EXPECT_EQ(command_.name, name);
    EXPECT_TRUE(command_.id.empty());
  }
}

TEST_F(CommandTest, NativeCommandsWithIds) {
  ASSERT_TRUE(Parse(R"({"command":"restart","id":"c-17"})"));
  EXPECT_EQ(command_.name, "restart");
  EXPECT_EQ(command_.id, "c-17");
  ASSERT_TRUE(Parse(R"({"id":42,"command":"reload","args":{"x":[1,2]}})"));
  EXPECT_EQ(command_.name, "reload");
  EXPECT_EQ(command_.id, "42");
  ASSERT_TRUE(Parse(R"({"command":"reload","id":18446744073709551615})"));
  EXPECT_EQ(command_.id, "18446744073709551615");
  ASSERT_TRUE(Parse(R"({"command":"reload","id":null})"));
  EXPECT_TRUE(command_.id.empty());
  ASSERT_TRUE(Parse(R"({"command":"get_status","id":"550e8400-e29b-41d4-a716-446655440000"})"));
}

TEST_F(CommandTest, Rejects) {
  Rejects(R"({})", RejectReason::kWrongType);
  Rejects(R"({"command":"format_disk"})", RejectReason::kWrongType);
  Rejects(R"({"command":"setSensorInterval","interval":1000})", RejectReason::kWrongType);
  Rejects(R"({"command":7})", RejectReason::kWrongType);
  Rejects(R"({"command":"reboot","id":1.5})", RejectReason::kWrongType);
  Rejects(R"({"command":"reboot","id":"has space"})", RejectReason::kWrongType);
  Rejects(R"({"command":"reboot","id":true})", RejectReason::kWrongType);
  Rejects(R"({"command":"reboot","command":"reload"})", RejectReason::kDuplicateKey);
  Rejects(R"(["reboot"])", RejectReason::kNotObject);
  Rejects("reboot", RejectReason::kNotJson);
  Rejects("", RejectReason::kNotJson);
  Rejects("{\"command\":\"reboot\",\"x\":\"\xc0\"}", RejectReason::kBadUtf8);
  Rejects(std::string(4097, ' '), RejectReason::kTooLarge);
  Rejects(std::string(20, '[') + std::string(20, ']'), RejectReason::kTooDeep);
}

TEST_F(CommandTest, KnownCommands) {
  EXPECT_TRUE(IsKnownGatewayCommand("sync_cloud"));
  EXPECT_FALSE(IsKnownGatewayCommand("led"));
  EXPECT_FALSE(IsKnownGatewayCommand(""));
}

}  // namespace
}  // namespace outpost::proto
