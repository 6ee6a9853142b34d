#include "outpost/base/status.h"

#include <gtest/gtest.h>

namespace outpost {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgument("odd: " + std::to_string(x));
  return x / 2;
}

Status Chain(int x) {
  OUTPOST_RETURN_IF_ERROR(Half(x).status());
  return Status::Ok();
}

TEST(Status, OkAndErrorCarryCodeAndMessage) {
  EXPECT_TRUE(Status::Ok().ok());
  Status s = Unavailable("connect refused");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_EQ(s.ToString(), "kUnavailable: connect refused");
}

TEST(Result, HoldsValueOrStatus) {
  auto r = Half(8);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 4);
  auto e = Half(3);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(e.status().message(), "odd: 3");
}

TEST(Result, ReturnIfErrorPropagates) {
  EXPECT_TRUE(Chain(2).ok());
  EXPECT_EQ(Chain(5).code(), Code::kInvalidArgument);
}

TEST(CheckDeathTest, BrokenInvariantAborts) {
  EXPECT_DEATH(OUTPOST_CHECK(1 + 1 == 3), "OUTPOST_CHECK failed: 1 \\+ 1 == 3");
}

}  // namespace
}  // namespace outpost
