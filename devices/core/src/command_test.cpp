#include "outpost/device/command.h"

#include <gtest/gtest.h>

#include <string>

namespace outpost::device {
namespace {

CommandError Parse(std::string_view json, CommandView* out = nullptr,
                   const char** detail = nullptr) {
  CommandView v;
  CommandError e = ParseCommand(json, v, detail);
  if (out) *out = v;
  return e;
}

TEST(CommandTest, SeedShapes) {
  CommandView v;
  ASSERT_EQ(Parse(R"({"command":"setSensorInterval","interval":10000})", &v), CommandError::kOk);
  EXPECT_EQ(v.kind, CommandKind::kSetSensorInterval);
  EXPECT_TRUE(v.has_interval);
  EXPECT_EQ(v.interval_ms, 10000u);
  EXPECT_FALSE(v.has_id);
  ASSERT_EQ(Parse(R"({"command":"reboot"})", &v), CommandError::kOk);
  EXPECT_EQ(v.kind, CommandKind::kReboot);
  ASSERT_EQ(Parse(" {\n\"command\" : \"led\" , \"state\" : false }\r\n", &v), CommandError::kOk);
  EXPECT_EQ(v.kind, CommandKind::kLed);
  EXPECT_TRUE(v.has_state);
  EXPECT_FALSE(v.state);
}

TEST(CommandTest, IdsAndIgnoredMembers) {
  CommandView v;
  ASSERT_EQ(
      Parse(R"({"id":"c-17","x":[1,{"y":null}],"command":"led","state":true,"z":-1.5e3})", &v),
      CommandError::kOk);
  EXPECT_EQ(v.id, "c-17");
  EXPECT_FALSE(v.id_is_number);
  ASSERT_EQ(Parse(R"({"command":"reboot","id":42})", &v), CommandError::kOk);
  EXPECT_EQ(v.id, "42");
  EXPECT_TRUE(v.id_is_number);
  ASSERT_EQ(Parse(R"({"command":"reboot","id":null})", &v), CommandError::kOk);
  EXPECT_FALSE(v.has_id);
  ASSERT_EQ(Parse(R"({"command":"dance"})", &v), CommandError::kOk);
  EXPECT_EQ(v.kind, CommandKind::kUnknown);
  EXPECT_EQ(v.name, "dance");
}

TEST(CommandTest, RejectsNameTheField) {
  const char* detail = nullptr;
  CommandView v;
  EXPECT_EQ(Parse(R"({"command":"setSensorInterval","interval":"10s","id":"a"})", &v, &detail),
            CommandError::kBadInterval);
  EXPECT_NE(std::string(detail).find("\"interval\""), std::string::npos);
  EXPECT_EQ(v.id, "a");  // kept so the error reply can echo it
  EXPECT_EQ(Parse(R"({"command":"setSensorInterval","interval":-1})"), CommandError::kBadInterval);
  EXPECT_EQ(Parse(R"({"command":"setSensorInterval","interval":1.5})"), CommandError::kBadInterval);
  EXPECT_EQ(Parse(R"({"command":"setSensorInterval","interval":4294967296})"),
            CommandError::kBadInterval);
  EXPECT_EQ(Parse(R"({"command":"led","state":1})", nullptr, &detail), CommandError::kBadState);
  EXPECT_NE(std::string(detail).find("\"state\""), std::string::npos);
  EXPECT_EQ(Parse(R"({"command":"led","id":"bad id"})"), CommandError::kBadId);
  EXPECT_EQ(Parse(R"({"command":"led","id":true})"), CommandError::kBadId);
  EXPECT_EQ(Parse(R"({"command":1})"), CommandError::kBadCommand);
  EXPECT_EQ(Parse(R"({"interval":1})"), CommandError::kMissingCommand);
  EXPECT_EQ(Parse(R"({"command":"a","command":"b"})"), CommandError::kDuplicateKey);
  EXPECT_EQ(Parse(R"(["command"])"), CommandError::kNotObject);
}

TEST(CommandTest, RejectsBrokenJson) {
  for (const char* bad :
       {"", "{", "{\"command\":\"led\"", "{\"command\":\"led\"}x", "{\"command\":\"le\nd\"}",
        "{\"command\":\"\\q\"}", "{\"command\" \"led\"}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":tru}",
        "{\"a\":[1,]}", "{,}", "{\"a\":\"\\u12\"}", "nul", "-"}) {
    EXPECT_EQ(Parse(bad), CommandError::kNotJson) << bad;
  }
  std::string deep = "{\"a\":" + std::string(20, '[') + std::string(20, ']') + "}";
  EXPECT_EQ(Parse(deep), CommandError::kTooDeep);
  std::string ok_depth =
      "{\"command\":\"x\",\"a\":" + std::string(7, '[') + std::string(7, ']') + "}";
  EXPECT_EQ(Parse(ok_depth), CommandError::kOk);
}

TEST(CommandTest, IdHashIsStableAndNeverZero) {
  EXPECT_EQ(CommandIdHash("c-1"), CommandIdHash("c-1"));
  EXPECT_NE(CommandIdHash("c-1"), CommandIdHash("c-2"));
  EXPECT_NE(CommandIdHash(""), 0u);
}

}  // namespace
}  // namespace outpost::device
