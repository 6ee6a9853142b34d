#include "outpost/proto/device_reply.h"

#include <gtest/gtest.h>

#include <string>

namespace outpost::proto {
namespace {

class DeviceReplyTest : public ::testing::Test {
 protected:
  bool Parse(std::string_view payload) { return ParseDeviceReply(payload, &reply_, &reject_); }
  void Rejects(std::string_view payload, RejectReason reason) {
    EXPECT_FALSE(Parse(payload)) << payload;
    EXPECT_STREQ(RejectReasonName(reject_.reason), RejectReasonName(reason))
        << payload << " -> " << reject_.detail;
    EXPECT_FALSE(reject_.detail.empty());
  }
  DeviceReply reply_;
  Reject reject_;
};

TEST_F(DeviceReplyTest, WhatTheDeviceCoreSends) {
  ASSERT_TRUE(Parse(R"({"id":"c-17","ok":true})")) << reject_.detail;
  EXPECT_EQ(reply_.id, "c-17");
  EXPECT_TRUE(reply_.has_ok);
  EXPECT_TRUE(reply_.ok);
  EXPECT_TRUE(reply_.error.empty());
  ASSERT_TRUE(Parse(R"({"id":"c-18","ok":false,"error":"unknown command \"dance\""})"));
  EXPECT_FALSE(reply_.ok);
  EXPECT_FALSE(reply_.rejected);
  EXPECT_EQ(reply_.error, "unknown command \"dance\"");
  ASSERT_TRUE(Parse(R"({"id":"c-19","ok":true,"error":"duplicate","duplicate":true})"));
  EXPECT_TRUE(reply_.duplicate);
  ASSERT_TRUE(Parse(R"({"id":42,"ok":false,"rejected":true})"));
  EXPECT_EQ(reply_.id, "42");
  EXPECT_TRUE(reply_.rejected);
}

TEST_F(DeviceReplyTest, ProgressReport) {
  ASSERT_TRUE(Parse(R"({"id":"c-20","delivered":true,"extra":[1,{"a":2}]})")) << reject_.detail;
  EXPECT_FALSE(reply_.has_ok);
}

TEST_F(DeviceReplyTest, ErrorIsPrintableAndBounded) {
  ASSERT_TRUE(
      Parse(R"({"id":"a","ok":false,"error":"x\u0001y\u00e9)" + std::string(400, 'z') + "\"}"));
  EXPECT_EQ(reply_.error.substr(0, 3), "x?y");
  EXPECT_EQ(reply_.error.size(), kMaxReplyErrorBytes);
  for (char c : reply_.error) EXPECT_TRUE(c >= 0x20 && c < 0x7f);
}

// Certificate rotation (docs/adr/0011): a certRequest's reply carries the CSR, a certInstall's
// the new serial; anything else in those fields rejects the reply.
TEST_F(DeviceReplyTest, CertificateRotationFields) {
  ASSERT_TRUE(Parse(R"({"id":"r1","ok":true,"csr":"MIIBVDCB+wIBADAZ/Q=="})")) << reject_.detail;
  EXPECT_EQ(reply_.csr, "MIIBVDCB+wIBADAZ/Q==");
  EXPECT_TRUE(reply_.serial.empty());
  ASSERT_TRUE(Parse(R"({"id":"r2","ok":true,"serial":"5a0F"})")) << reject_.detail;
  EXPECT_EQ(reply_.serial, "5a0F");
  EXPECT_TRUE(reply_.csr.empty());
  for (const char* bad :
       {R"({"id":"r","ok":true,"csr":""})", R"({"id":"r","ok":true,"csr":"abc"})",
        R"({"id":"r","ok":true,"csr":"ab=c"})", R"({"id":"r","ok":true,"csr":"a==="})",
        R"({"id":"r","ok":true,"csr":"ab\"cd"})", R"({"id":"r","ok":true,"csr":5})",
        R"({"id":"r","ok":true,"serial":""})", R"({"id":"r","ok":true,"serial":"0x1"})",
        R"({"id":"r","ok":true,"serial":"12 34"})"}) {
    Rejects(bad, RejectReason::kWrongType);
  }
  Rejects(R"({"id":"r","ok":true,"serial":")" + std::string(41, 'A') + R"("})",
          RejectReason::kWrongType);
  ASSERT_TRUE(Parse(R"({"id":"r","ok":true,"serial":")" + std::string(40, 'A') + R"("})"))
      << reject_.detail;
}

TEST_F(DeviceReplyTest, BadInput) {
  Rejects(R"({"ok":true})", RejectReason::kWrongType);
  Rejects(R"({"id":"c1"})", RejectReason::kWrongType);
  Rejects(R"({"id":"c1","delivered":false})", RejectReason::kWrongType);
  Rejects(R"({"id":"bad id","ok":true})", RejectReason::kWrongType);
  Rejects(R"({"id":-1,"ok":true})", RejectReason::kWrongType);
  Rejects(R"({"id":[1],"ok":true})", RejectReason::kWrongType);
  Rejects(R"({"id":"c1","ok":"yes"})", RejectReason::kWrongType);
  Rejects(R"({"id":"c1","ok":true,"error":5})", RejectReason::kWrongType);
  Rejects(R"({"id":"c1","id":"c2","ok":true})", RejectReason::kDuplicateKey);
  Rejects(R"([1])", RejectReason::kNotObject);
  Rejects(R"({"id":"c1",)", RejectReason::kNotJson);
  Rejects(std::string(kMaxDeviceReplyBytes + 1, ' '), RejectReason::kTooLarge);
  Rejects("{\"id\":\"\xff\",\"ok\":true}", RejectReason::kBadUtf8);
  Rejects(R"({"id":"c1","ok":true,"x":[[[[[[[[[[1]]]]]]]]]]})", RejectReason::kTooDeep);
}

}  // namespace
}  // namespace outpost::proto
