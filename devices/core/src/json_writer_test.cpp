#include "outpost/device/json_writer.h"

#include <gtest/gtest.h>

#include <string>

namespace outpost::device {
namespace {

std::string Fixed(std::int64_t v, unsigned d) {
  char buf[40];
  std::size_t n = FormatFixed(v, d, buf, sizeof buf);
  return std::string(buf, n);
}

TEST(FormatFixedTest, TwoDecimalsWithoutTrailingZeros) {
  EXPECT_EQ(Fixed(2250, 2), "22.5");
  EXPECT_EQ(Fixed(2125, 2), "21.25");
  EXPECT_EQ(Fixed(2200, 2), "22");
  EXPECT_EQ(Fixed(0, 2), "0");
  EXPECT_EQ(Fixed(5, 2), "0.05");
  EXPECT_EQ(Fixed(-5, 2), "-0.05");
  EXPECT_EQ(Fixed(-1050, 2), "-10.5");
  EXPECT_EQ(Fixed(100, 2), "1");
  EXPECT_EQ(Fixed(101, 2), "1.01");
  EXPECT_EQ(Fixed(123456789, 3), "123456.789");
  EXPECT_EQ(Fixed(42, 0), "42");
  EXPECT_EQ(Fixed(INT64_MIN, 2), "-92233720368547758.08");
  EXPECT_EQ(Fixed(INT64_MAX, 0), "9223372036854775807");
}

TEST(FormatFixedTest, TooSmallBufferWritesNothing) {
  char buf[4] = {'x', 'x', 'x', 'x'};
  EXPECT_EQ(FormatFixed(12345, 2, buf, 4), 0u);  // "123.45" needs 6
  EXPECT_EQ(buf[0], 'x');
  EXPECT_EQ(FormatFixed(12, 2, buf, 4), 4u);  // "0.12"
}

TEST(ScaleToFixedTest, RoundsHalfAwayFromZero) {
  EXPECT_EQ(ScaleToFixed(22.5f, 2), 2250);
  EXPECT_EQ(ScaleToFixed(45.2f, 2), 4520);  // 45.2f is 45.200000762..., not 45.19
  EXPECT_EQ(ScaleToFixed(-0.0051f, 2), -1);
  EXPECT_EQ(ScaleToFixed(0.004f, 2), 0);
  EXPECT_EQ(ScaleToFixed(87.49999f, 2), 8750);
  EXPECT_EQ(ScaleToFixed(1e30f, 2), 9007199254740992);
  EXPECT_EQ(ScaleToFixed(__builtin_nanf(""), 2), 0);
}

TEST(FormatIntTest, Extremes) {
  char buf[24];
  EXPECT_EQ(std::string(buf, FormatInt(INT64_MIN, buf, sizeof buf)), "-9223372036854775808");
  EXPECT_EQ(std::string(buf, FormatUint(UINT64_MAX, buf, sizeof buf)), "18446744073709551615");
  EXPECT_EQ(std::string(buf, FormatInt(-7, buf, sizeof buf)), "-7");
  EXPECT_EQ(FormatInt(-7, buf, 1), 0u);
}

TEST(JsonWriterTest, WritesAnObject) {
  char buf[128];
  JsonWriter w(buf, sizeof buf);
  w.BeginObject();
  w.Key("a");
  w.Int(-1);
  w.Key("b");
  w.Fixed(2250, 2);
  w.Key("c");
  w.Bool(false);
  w.Key("d");
  w.String("x");
  w.Key("e");
  w.StringSanitized("q\"\\\n\xc3\xa9");
  w.Key("f");
  w.BeginObject();
  w.Key("g");
  w.Uint(1);
  w.EndObject();
  w.EndObject();
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w.view(), R"({"a":-1,"b":22.5,"c":false,"d":"x","e":"q\"\\???","f":{"g":1}})");
  EXPECT_EQ(buf[w.size()], '\0');
}

TEST(JsonWriterTest, OverflowIsStickyAndNeverWritesPastTheBuffer) {
  char buf[12];
  buf[11] = '#';
  JsonWriter w(buf, 11);
  w.BeginObject();
  w.Key("temperature");
  w.Fixed(2250, 2);
  w.EndObject();
  EXPECT_FALSE(w.ok());
  EXPECT_LE(w.size(), 10u);
  EXPECT_EQ(buf[11], '#');
}

}  // namespace
}  // namespace outpost::device
