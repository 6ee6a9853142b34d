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

TEST(CommandTest, CertRequestAndCertInstall) {
  CommandView v;
  ASSERT_EQ(Parse(R"({"id":"r-1","command":"certRequest"})", &v), CommandError::kOk);
  EXPECT_EQ(v.kind, CommandKind::kCertRequest);
  EXPECT_FALSE(v.has_cert);
  ASSERT_EQ(Parse(R"({"id":"r-2","command":"certInstall","cert":"MIIB+/9a"})", &v),
            CommandError::kOk);
  EXPECT_EQ(v.kind, CommandKind::kCertInstall);
  ASSERT_TRUE(v.has_cert);
  EXPECT_EQ(v.cert, "MIIB+/9a");
  ASSERT_EQ(Parse(R"({"command":"certInstall","cert":"MIIBAA=="})", &v), CommandError::kOk);
  EXPECT_EQ(v.cert, "MIIBAA==");
  const std::string longest(kMaxCertBase64Bytes, 'A');
  ASSERT_EQ(Parse(R"({"command":"certInstall","cert":")" + longest + R"("})", &v),
            CommandError::kOk);
  EXPECT_EQ(v.cert.size(), kMaxCertBase64Bytes);
}

TEST(CommandTest, BadCertIsAFieldErrorAndKeepsTheId) {
  const std::string too_long(kMaxCertBase64Bytes + 4, 'A');
  for (const std::string& cert :
       {std::string(R"("")"), std::string(R"("MIIB AA=")"), std::string(R"("MIIBA")"),
        std::string(R"("MII=AAAA")"), std::string(R"("MIIBA===")"), std::string(R"("MII\u0041")"),
        std::string(R"("MIIB-_AA")"), std::string("42"), std::string("null"),
        std::string(R"(["MIIB"])"), "\"" + too_long + "\""}) {
    SCOPED_TRACE(cert);
    CommandView v;
    const char* detail = nullptr;
    const std::string json = R"({"id":"c-9","command":"certInstall","cert":)" + cert + "}";
    ASSERT_EQ(Parse(json, &v, &detail), CommandError::kBadCert);
    EXPECT_EQ(std::string(detail),
              "field \"cert\": expected the base64 of a DER certificate (at most 1024 "
              "characters)");
    EXPECT_EQ(v.id, "c-9");
  }
  CommandView v;
  EXPECT_EQ(Parse(R"({"command":"certInstall","cert":"AAAA","cert":"AAAA"})", &v),
            CommandError::kDuplicateKey);
  EXPECT_EQ(std::string(CommandErrorName(CommandError::kBadCert)), "bad_cert");
}

}  // namespace
}  // namespace outpost::device
