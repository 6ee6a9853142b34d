#include "outpost/proto/reading.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>

namespace outpost::proto {
namespace {

constexpr std::int64_t kNowMs = 1'748'736'000'000;  // 2025-06-01T00:00:00Z
constexpr const char* kSeedPayload =
    R"({"deviceId":"esp32_sensor_001","timestamp":123456,"temperature":22.5,"humidity":45.2,)"
    R"("motion":false,"battery":87.5,"rssi":-65})";

class ReadingTest : public ::testing::Test {
 protected:
  bool Parse(std::string_view payload, std::string_view topic_id = "") {
    return parser_.Parse(payload, topic_id, kNowMs, &reading_, &reject_);
  }
  // Expects a reject with `reason`; returns its detail.
  std::string Rejects(std::string_view payload, RejectReason reason,
                      std::string_view topic_id = "") {
    EXPECT_FALSE(Parse(payload, topic_id)) << payload;
    EXPECT_EQ(RejectReasonName(reject_.reason), std::string(RejectReasonName(reason)))
        << payload << " -> " << reject_.detail;
    EXPECT_FALSE(reject_.detail.empty());
    return reject_.detail;
  }
  const Metric* Find(std::string_view name) const {
    for (const Metric& m : reading_.metrics) {
      if (m.name == name) return &m;
    }
    return nullptr;
  }

  ReadingParser parser_;
  Reading reading_;
  Reject reject_;
};

TEST_F(ReadingTest, SeedPayloadExact) {
  ASSERT_TRUE(Parse(kSeedPayload)) << reject_.detail;
  EXPECT_EQ(reading_.device_id, "esp32_sensor_001");
  EXPECT_FALSE(reading_.has_seq);
  EXPECT_TRUE(reading_.has_device_ts);
  EXPECT_EQ(reading_.device_ts_raw, 123456);
  EXPECT_EQ(reading_.ts_ms, kNowMs);  // millis() since boot is not a time
  EXPECT_EQ(reading_.ts_source, TimeSource::kGateway);
  EXPECT_TRUE(reading_.firmware.empty());
  ASSERT_EQ(reading_.metrics.size(), 5u);
  const char* names[] = {"temperature", "humidity", "motion", "battery", "rssi"};
  const double values[] = {22.5, 45.2, 0, 87.5, -65};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(reading_.metrics[i].name, names[i]);
    EXPECT_EQ(reading_.metrics[i].value, values[i]);
    EXPECT_EQ(reading_.metrics[i].is_bool, i == 2);
  }
  EXPECT_EQ(MetricsJson(reading_),
            R"({"temperature":22.5,"humidity":45.2,"motion":false,"battery":87.5,"rssi":-65})");
}

TEST_F(ReadingTest, SeedPayloadOnPerDeviceTopic) {
  ASSERT_TRUE(Parse(kSeedPayload, "esp32_sensor_001")) << reject_.detail;
  EXPECT_EQ(reading_.device_id, "esp32_sensor_001");
}

TEST_F(ReadingTest, NativePayloadWithBootSeqFw) {
  ASSERT_TRUE(Parse(
      R"({"boot":7,"seq":1042,"timestamp":1748735990000,"fw":"1.4.0","temperature":21.25,"door":true})",
      "node-1"))
      << reject_.detail;
  EXPECT_EQ(reading_.device_id, "node-1");
  EXPECT_TRUE(reading_.has_seq);
  EXPECT_EQ(reading_.boot, 7u);
  EXPECT_EQ(reading_.seq, 1042u);
  EXPECT_EQ(reading_.firmware, "1.4.0");
  EXPECT_EQ(reading_.ts_ms, 1748735990000);
  EXPECT_EQ(reading_.ts_source, TimeSource::kDevice);
  EXPECT_EQ(MetricsJson(reading_), R"({"temperature":21.25,"door":true})");
}

TEST_F(ReadingTest, DeviceIdAlias) {
  ASSERT_TRUE(Parse(R"({"device_id":"dev_2","t":1})")) << reject_.detail;
  EXPECT_EQ(reading_.device_id, "dev_2");
  ASSERT_TRUE(Parse(R"({"device_id":"dev_2","t":1})", "dev_2"));
  Rejects(R"({"deviceId":"a","device_id":"a","t":1})", RejectReason::kDuplicateKey);
  // null counts as absent, so the alias is used.
  ASSERT_TRUE(Parse(R"({"deviceId":null,"device_id":"b","t":1})")) << reject_.detail;
  EXPECT_EQ(reading_.device_id, "b");
}

TEST_F(ReadingTest, TopicDeviceId) {
  ASSERT_TRUE(Parse(R"({"t":1})", "from_topic")) << reject_.detail;
  EXPECT_EQ(reading_.device_id, "from_topic");
  const std::string detail =
      Rejects(R"({"deviceId":"other","t":1})", RejectReason::kDeviceIdMismatch, "from_topic");
  EXPECT_NE(detail.find("other"), std::string::npos) << detail;
  Rejects(R"({"device_id":"other","t":1})", RejectReason::kDeviceIdMismatch, "from_topic");
  Rejects(R"({"t":1})", RejectReason::kMissingDeviceId);
  Rejects(R"({"deviceId":null,"t":1})", RejectReason::kMissingDeviceId);
  Rejects(R"({"t":1})", RejectReason::kBadDeviceId, "bad topic id");
}

TEST_F(ReadingTest, BadDeviceId) {
  Rejects(R"({"deviceId":"","t":1})", RejectReason::kBadDeviceId);
  Rejects(R"({"deviceId":"a b","t":1})", RejectReason::kBadDeviceId);
  Rejects(R"({"deviceId":"a/b","t":1})", RejectReason::kBadDeviceId);
  Rejects(R"({"deviceId":42,"t":1})", RejectReason::kBadDeviceId);
  Rejects(R"({"deviceId":{"x":1},"t":1})", RejectReason::kBadDeviceId);
  Rejects(R"({"deviceId":")" + std::string(65, 'a') + R"(","t":1})", RejectReason::kBadDeviceId);
  ASSERT_TRUE(Parse(R"({"deviceId":")" + std::string(64, 'a') + R"(","t":1})"));
}

TEST_F(ReadingTest, MetricsAreOpenEnded) {
  ASSERT_TRUE(
      Parse(R"({"deviceId":"d","co2_ppm":412,"soil_moisture":0.31,"relay":true,"x-y:z":-1e-3})"))
      << reject_.detail;
  ASSERT_EQ(reading_.metrics.size(), 4u);
  EXPECT_EQ(Find("co2_ppm")->value, 412);
  EXPECT_EQ(Find("soil_moisture")->value, 0.31);
  EXPECT_TRUE(Find("relay")->is_bool);
  EXPECT_EQ(Find("relay")->value, 1);
  EXPECT_EQ(Find("x-y:z")->value, -0.001);
}

TEST_F(ReadingTest, StringsAndNullsAreIgnored) {
  ASSERT_TRUE(Parse(R"({"deviceId":"d","location":"greenhouse 2","unit":"C","t":20,"gone":null})"))
      << reject_.detail;
  ASSERT_EQ(reading_.metrics.size(), 1u);
  EXPECT_EQ(reading_.metrics[0].name, "t");
  // A non-metric string field's name is not validated.
  ASSERT_TRUE(Parse(R"({"deviceId":"d","caf\u00e9":"x","t":1})")) << reject_.detail;
}

TEST_F(ReadingTest, NestedObjectsAreFlattened) {
  ASSERT_TRUE(Parse(
      R"({"deviceId":"d","env":{"temperature":20.5,"humidity":40,"meta":{"ok":true},"label":"x"},"rssi":-70})"))
      << reject_.detail;
  ASSERT_EQ(reading_.metrics.size(), 4u);
  EXPECT_EQ(reading_.metrics[0].name, "env.temperature");
  EXPECT_EQ(reading_.metrics[1].name, "env.humidity");
  EXPECT_EQ(reading_.metrics[2].name, "env.meta.ok");
  EXPECT_EQ(reading_.metrics[3].name, "rssi");
  EXPECT_EQ(MetricsJson(reading_),
            R"({"env.temperature":20.5,"env.humidity":40,"env.meta.ok":true,"rssi":-70})");
  // Reserved names are reserved at the top level only.
  ASSERT_TRUE(Parse(R"({"deviceId":"d","gps":{"timestamp":5,"seq":"x","fw":1}})"))
      << reject_.detail;
  EXPECT_EQ(MetricsJson(reading_), R"({"gps.timestamp":5,"gps.fw":1})");
  EXPECT_FALSE(reading_.has_device_ts);
  // Empty nested objects contribute nothing.
  Rejects(R"({"deviceId":"d","env":{}})", RejectReason::kNoMetrics);
}

TEST_F(ReadingTest, FlattenedNameCollision) {
  Rejects(R"({"deviceId":"d","a.b":1,"a":{"b":2}})", RejectReason::kDuplicateKey);
  Rejects(R"({"deviceId":"d","a":{"b":2},"a.b":1})", RejectReason::kDuplicateKey);
  Rejects(R"({"deviceId":"d","a":{"b.c":2},"a.b":{"c":1}})", RejectReason::kDuplicateKey);
  ASSERT_TRUE(Parse(R"({"deviceId":"d","a.b":1,"a":{"c":2}})")) << reject_.detail;
}

TEST_F(ReadingTest, DepthBoundary) {
  // Default max_depth 4: a value may sit inside 4 objects.
  ASSERT_TRUE(Parse(R"({"deviceId":"d","a":{"b":{"c":{"d":1}}}})")) << reject_.detail;
  EXPECT_EQ(reading_.metrics[0].name, "a.b.c.d");
  Rejects(R"({"deviceId":"d","a":{"b":{"c":{"d":{"e":1}}}}})", RejectReason::kTooDeep);
  Rejects(R"({"deviceId":"d","a":{"b":{"c":{"d":[1]}}}})", RejectReason::kTooDeep);
  // Too deep is a property of the whole document, reported before field problems.
  Rejects(R"({"x":[1],"a":{"b":{"c":{"d":{"e":1}}}}})", RejectReason::kTooDeep);
  Rejects(std::string(1000, '[') + std::string(1000, ']'), RejectReason::kTooDeep);

  Limits shallow;
  shallow.max_depth = 1;
  ReadingParser flat(shallow);
  EXPECT_TRUE(flat.Parse(R"({"deviceId":"d","t":1})", "", kNowMs, &reading_, &reject_));
  EXPECT_FALSE(flat.Parse(R"({"deviceId":"d","a":{"b":1}})", "", kNowMs, &reading_, &reject_));
  EXPECT_EQ(reject_.reason, RejectReason::kTooDeep);
}

TEST_F(ReadingTest, SizeBoundary) {
  const std::string head = R"({"deviceId":"d","t":1,"pad":")";
  const std::string tail = R"("})";
  std::string exact = head + std::string(4096 - head.size() - tail.size(), 'p') + tail;
  ASSERT_EQ(exact.size(), 4096u);
  ASSERT_TRUE(Parse(exact)) << reject_.detail;
  std::string over = head + std::string(4097 - head.size() - tail.size(), 'p') + tail;
  const std::string detail = Rejects(over, RejectReason::kTooLarge);
  EXPECT_EQ(detail, "payload is 4097 bytes; limit 4096");
  // Size is checked before anything else.
  Rejects(std::string(5000, '\xff'), RejectReason::kTooLarge);
}

TEST_F(ReadingTest, ArraysAreWrongType) {
  const std::string detail =
      Rejects(R"({"deviceId":"d","samples":[1,2,3]})", RejectReason::kWrongType);
  EXPECT_NE(detail.find("\"samples\""), std::string::npos) << detail;
  EXPECT_EQ(Rejects(R"({"deviceId":"d","env":{"xs":[]}})", RejectReason::kWrongType),
            "field \"env.xs\": expected number, boolean, string, null or object, got array");
  Rejects(R"({"deviceId":"d","fw":2,"t":1})", RejectReason::kWrongType);
  Rejects(R"({"deviceId":"d","fw":"bad\nfw","t":1})", RejectReason::kWrongType);
}

TEST_F(ReadingTest, NotJson) {
  for (const char* bad :
       {"", "   ", "{", "{\"deviceId\":\"d\",\"t\":1", "{\"deviceId\":\"d\",\"t\":1}x",
        "{\"deviceId\":\"d\",\"t\":1}{}", "{deviceId:\"d\"}", "{\"t\":NaN}", "{\"t\":Infinity}",
        "{\"t\":-Infinity}", "{\"t\":01}", "{\"t\":1.}", "{\"t\":-}", "{\"t\":1x}", "{\"t\":tru}",
        "{\"t\":\"\\x\"}", "{\"t\":\"a\nb\"}", "{\"t\":1,}", "online"}) {
    Rejects(bad, RejectReason::kNotJson);
  }
}

TEST_F(ReadingTest, BadUtf8) {
  Rejects("{\"deviceId\":\"d\",\"t\":1,\"s\":\"\xc3\x28\"}", RejectReason::kBadUtf8);
  Rejects("{\"deviceId\":\"d\",\"\xff\":1}", RejectReason::kBadUtf8);
  Rejects("\xef\xbb\xbf{}", RejectReason::kNotJson);  // a BOM is valid UTF-8 but not JSON
}

TEST_F(ReadingTest, NotObject) {
  for (const char* bad : {"[]", "[1,2]", "42", "\"text\"", "true", "null"}) {
    Rejects(bad, RejectReason::kNotObject);
  }
}

TEST_F(ReadingTest, DuplicateKeys) {
  Rejects(R"({"deviceId":"d","t":1,"t":2})", RejectReason::kDuplicateKey);
  Rejects(R"({"deviceId":"d","deviceId":"d","t":1})", RejectReason::kDuplicateKey);
  Rejects(R"({"deviceId":"d","env":{"t":1,"t":1}})", RejectReason::kDuplicateKey);
  Rejects(R"({"deviceId":"d","t":1,"note":"a","note":"b"})", RejectReason::kDuplicateKey);
  // Keys compare after unescaping.
  Rejects(R"({"deviceId":"d","t":1,"\u0074":2})", RejectReason::kDuplicateKey);
  // Many keys (sorted path).
  std::string many = R"({"deviceId":"d")";
  for (int i = 0; i < 30; ++i) many += ",\"k" + std::to_string(i) + "\":1";
  ASSERT_TRUE(Parse(many + "}")) << reject_.detail;
  Rejects(many + ",\"k17\":2}", RejectReason::kDuplicateKey);
}

TEST_F(ReadingTest, BadNumber) {
  Rejects(R"({"deviceId":"d","t":1e400})", RejectReason::kBadNumber);
  Rejects(R"({"deviceId":"d","t":-1e400})", RejectReason::kBadNumber);
  Rejects(R"({"deviceId":"d","t":123456789012345678901234567890})", RejectReason::kBadNumber);
  Rejects(R"({"deviceId":"d","t":9007199254740993})", RejectReason::kBadNumber);
  Rejects(R"({"deviceId":"d","t":-9007199254740993})", RejectReason::kBadNumber);
  Rejects(R"({"deviceId":"d","t":18446744073709551615})", RejectReason::kBadNumber);
  ASSERT_TRUE(Parse(R"({"deviceId":"d","t":9007199254740992,"u":-9007199254740992})"));
  EXPECT_EQ(reading_.metrics[0].value, 9007199254740992.0);
  // Tiny numbers underflow to zero, which is finite: accepted.
  ASSERT_TRUE(Parse(R"({"deviceId":"d","t":1e-400,"big":1.7e308})"));
  EXPECT_EQ(reading_.metrics[0].value, 0.0);
}

TEST_F(ReadingTest, TooManyFields) {
  std::string payload = R"({"deviceId":"d")";
  for (int i = 0; i < 64; ++i) payload += ",\"m" + std::to_string(i) + "\":" + std::to_string(i);
  ASSERT_TRUE(Parse(payload + "}")) << reject_.detail;
  EXPECT_EQ(reading_.metrics.size(), 64u);
  Rejects(payload + ",\"m64\":1}", RejectReason::kTooManyFields);
  // Ignored fields do not count.
  ASSERT_TRUE(Parse(payload + ",\"s\":\"x\",\"n\":null}")) << reject_.detail;
}

TEST_F(ReadingTest, BadFieldName) {
  Rejects(R"({"deviceId":"d","":1})", RejectReason::kBadFieldName);
  Rejects(R"({"deviceId":"d","a\"b":1})", RejectReason::kBadFieldName);
  Rejects(R"({"deviceId":"d","a\\b":1})", RejectReason::kBadFieldName);
  Rejects(R"({"deviceId":"d","a\nb":1})", RejectReason::kBadFieldName);
  Rejects(R"({"deviceId":"d","tempé":1})", RejectReason::kBadFieldName);
  Rejects(R"({"deviceId":"d","env":{"":1}})", RejectReason::kBadFieldName);
  Rejects(R"({"deviceId":"d","":{"x":1}})", RejectReason::kBadFieldName);
  Rejects(R"({"deviceId":"d","\t":{"x":1}})", RejectReason::kBadFieldName);
  const std::string max_name(64, 'n');
  ASSERT_TRUE(Parse(R"({"deviceId":"d",")" + max_name + R"(":1})")) << reject_.detail;
  const std::string detail =
      Rejects(R"({"deviceId":"d",")" + max_name + R"(n":1})", RejectReason::kBadFieldName);
  EXPECT_LT(detail.size(), 160u) << detail;  // the name is truncated in the detail
  // The limit applies to the flattened name.
  Rejects(R"({"deviceId":"d","env":{")" + std::string(61, 'n') + R"(":1}})",
          RejectReason::kBadFieldName);
  ASSERT_TRUE(Parse(R"({"deviceId":"d","env":{")" + std::string(60, 'n') + R"(":1}})"));
}

TEST_F(ReadingTest, NoMetrics) {
  Rejects(R"({"deviceId":"d"})", RejectReason::kNoMetrics);
  Rejects(R"({"deviceId":"d","timestamp":1748736000000,"boot":1,"seq":2,"fw":"1"})",
          RejectReason::kNoMetrics);
  Rejects(R"({"deviceId":"d","note":"hello","x":null})", RejectReason::kNoMetrics);
}

TEST_F(ReadingTest, BootAndSeq) {
  ASSERT_TRUE(Parse(R"({"deviceId":"d","boot":0,"seq":0,"t":1})"));
  EXPECT_TRUE(reading_.has_seq);
  ASSERT_TRUE(Parse(R"({"deviceId":"d","boot":4294967295,"seq":9223372036854775807,"t":1})"));
  EXPECT_EQ(reading_.boot, 4294967295u);
  EXPECT_EQ(reading_.seq, 9223372036854775807u);
  Rejects(R"({"deviceId":"d","boot":4294967296,"seq":1,"t":1})", RejectReason::kBadSeq);
  Rejects(R"({"deviceId":"d","boot":1,"seq":9223372036854775808,"t":1})", RejectReason::kBadSeq);
  Rejects(R"({"deviceId":"d","boot":-1,"seq":1,"t":1})", RejectReason::kBadSeq);
  Rejects(R"({"deviceId":"d","boot":1,"seq":-5,"t":1})", RejectReason::kBadSeq);
  Rejects(R"({"deviceId":"d","boot":1,"seq":1.5,"t":1})", RejectReason::kBadSeq);
  Rejects(R"({"deviceId":"d","boot":1,"seq":2.0,"t":1})", RejectReason::kBadSeq);
  Rejects(R"({"deviceId":"d","boot":"1","seq":1,"t":1})", RejectReason::kBadSeq);
  Rejects(R"({"deviceId":"d","boot":true,"seq":1,"t":1})", RejectReason::kBadSeq);
  EXPECT_EQ(Rejects(R"({"deviceId":"d","seq":1,"t":1})", RejectReason::kBadSeq),
            "\"seq\" without \"boot\"");
  EXPECT_EQ(Rejects(R"({"deviceId":"d","boot":1,"t":1})", RejectReason::kBadSeq),
            "\"boot\" without \"seq\"");
  // null is absent.
  ASSERT_TRUE(Parse(R"({"deviceId":"d","boot":null,"seq":null,"t":1})"));
  EXPECT_FALSE(reading_.has_seq);
}

TEST_F(ReadingTest, TimestampEpochMilliseconds) {
  ASSERT_TRUE(Parse(R"({"deviceId":"d","timestamp":1748700000123,"t":1})"));
  EXPECT_EQ(reading_.ts_ms, 1748700000123);
  EXPECT_EQ(reading_.device_ts_raw, 1748700000123);
  EXPECT_EQ(reading_.ts_source, TimeSource::kDevice);
  // Boundaries: min_plausible_ms and now + 24 h are both accepted.
  ASSERT_TRUE(Parse(R"({"deviceId":"d","timestamp":1577836800000,"t":1})"));
  EXPECT_EQ(reading_.ts_source, TimeSource::kDevice);
  ASSERT_TRUE(Parse(R"({"deviceId":"d","timestamp":1748822400000,"t":1})"));
  EXPECT_EQ(reading_.ts_source, TimeSource::kDevice);
  ASSERT_TRUE(Parse(R"({"deviceId":"d","timestamp":1748822400001,"t":1})"));
  EXPECT_EQ(reading_.ts_source, TimeSource::kGateway);
  EXPECT_EQ(reading_.ts_ms, kNowMs);
  EXPECT_EQ(reading_.device_ts_raw, 1748822400001);
  ASSERT_TRUE(Parse(R"({"deviceId":"d","timestamp":1577836799999,"t":1})"));
  EXPECT_EQ(reading_.ts_source, TimeSource::kGateway);
  // Fractional milliseconds are rounded.
  ASSERT_TRUE(Parse(R"({"deviceId":"d","timestamp":1748700000123.6,"t":1})"));
  EXPECT_EQ(reading_.ts_ms, 1748700000124);
  EXPECT_EQ(reading_.device_ts_raw, 1748700000123);
}

TEST_F(ReadingTest, TimestampEpochSeconds) {
  ASSERT_TRUE(Parse(R"({"deviceId":"d","timestamp":1748700000,"t":1})"));
  EXPECT_EQ(reading_.ts_ms, 1748700000000);
  EXPECT_EQ(reading_.device_ts_raw, 1748700000);
  EXPECT_EQ(reading_.ts_source, TimeSource::kDevice);
  ASSERT_TRUE(Parse(R"({"deviceId":"d","timestamp":1748700000.25,"t":1})"));
  EXPECT_EQ(reading_.ts_ms, 1748700000250);
  EXPECT_EQ(reading_.device_ts_raw, 1748700000);
  EXPECT_EQ(reading_.ts_source, TimeSource::kDevice);
  ASSERT_TRUE(Parse(R"({"deviceId":"d","timestamp":1.7487e9,"t":1})"));
  EXPECT_EQ(reading_.ts_ms, 1748700000000);
  // Seconds boundaries: at most 7 days old (now is 1748736000).
  ASSERT_TRUE(Parse(R"({"deviceId":"d","timestamp":1748131200,"t":1})"));
  EXPECT_EQ(reading_.ts_source, TimeSource::kDevice);
  ASSERT_TRUE(Parse(R"({"deviceId":"d","timestamp":1748131199,"t":1})"));
  EXPECT_EQ(reading_.ts_source, TimeSource::kGateway);
  ASSERT_TRUE(Parse(R"({"deviceId":"d","timestamp":1748131199.5,"t":1})"));
  EXPECT_EQ(reading_.ts_source, TimeSource::kGateway);
  ASSERT_TRUE(Parse(R"({"deviceId":"d","timestamp":1577836800,"t":1})"));
  EXPECT_EQ(reading_.ts_source, TimeSource::kGateway);
  ASSERT_TRUE(Parse(R"({"deviceId":"d","timestamp":1748822400,"t":1})"));
  EXPECT_EQ(reading_.ts_source, TimeSource::kDevice);
  ASSERT_TRUE(Parse(R"({"deviceId":"d","timestamp":1748822401,"t":1})"));
  EXPECT_EQ(reading_.ts_source, TimeSource::kGateway);
}

// Regression: a seed device up ~19 days sends millis() = 1,641,600,000, which reads as epoch
// seconds in January 2022; it must get the receive time, not a date in the past.
TEST_F(ReadingTest, SeedMillisAfterWeeksOfUptimeIsNotMistakenForSeconds) {
  ASSERT_TRUE(Parse(R"({"deviceId":"d","timestamp":1641600000,"t":1})"));
  EXPECT_EQ(reading_.ts_source, TimeSource::kGateway);
  EXPECT_EQ(reading_.ts_ms, kNowMs);
  EXPECT_EQ(reading_.device_ts_raw, 1641600000);
}

TEST_F(ReadingTest, TimestampUptimeOrImplausibleUsesGatewayTime) {
  for (const char* ts : {"0", "5000", "123456", "4294967295", "-1", "1e15", "9223372036854775807",
                         "18446744073709551615", "-1.5", "3.5e18"}) {
    const std::string payload = std::string(R"({"deviceId":"d","t":1,"timestamp":)") + ts + "}";
    ASSERT_TRUE(Parse(payload)) << payload << ": " << reject_.detail;
    EXPECT_EQ(reading_.ts_ms, kNowMs) << ts;
    EXPECT_EQ(reading_.ts_source, TimeSource::kGateway) << ts;
    EXPECT_TRUE(reading_.has_device_ts) << ts;
  }
  ASSERT_TRUE(Parse(R"({"deviceId":"d","t":1,"timestamp":18446744073709551615})"));
  EXPECT_EQ(reading_.device_ts_raw, INT64_MAX);
  ASSERT_TRUE(Parse(R"({"deviceId":"d","t":1})"));
  EXPECT_FALSE(reading_.has_device_ts);
  EXPECT_EQ(reading_.ts_source, TimeSource::kGateway);
  ASSERT_TRUE(Parse(R"({"deviceId":"d","t":1,"timestamp":null})"));
  EXPECT_FALSE(reading_.has_device_ts);
}

TEST_F(ReadingTest, BadTimestamp) {
  Rejects(R"({"deviceId":"d","t":1,"timestamp":"2025-06-01T00:00:00Z"})",
          RejectReason::kBadTimestamp);
  Rejects(R"({"deviceId":"d","t":1,"timestamp":true})", RejectReason::kBadTimestamp);
  Rejects(R"({"deviceId":"d","t":1,"timestamp":{"s":1}})", RejectReason::kBadTimestamp);
  Rejects(R"({"deviceId":"d","t":1,"timestamp":[1]})", RejectReason::kBadTimestamp);
}

TEST_F(ReadingTest, EveryReasonHasAStableName) {
  std::set<std::string> names;
  for (int i = 0; i < static_cast<int>(RejectReason::kCount); ++i) {
    const std::string name = RejectReasonName(static_cast<RejectReason>(i));
    EXPECT_NE(name, "unknown");
    EXPECT_EQ(name.find_first_not_of("abcdefghijklmnopqrstuvwxyz_0123456789"), std::string::npos);
    names.insert(name);
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(RejectReason::kCount));
  EXPECT_STREQ(RejectReasonName(RejectReason::kNotJson), "not_json");
  EXPECT_STREQ(RejectReasonName(RejectReason::kDeviceIdMismatch), "device_id_mismatch");
  EXPECT_STREQ(RejectReasonName(RejectReason::kBadTimestamp), "bad_timestamp");
  EXPECT_STREQ(RejectReasonName(RejectReason::kCount), "unknown");
}

TEST_F(ReadingTest, DetailsAreShortAndPrintable) {
  const std::string long_key(1000, '\x01');
  std::string payload = R"({"deviceId":"d","bad\u0001)" + std::string(500, 'k') + R"(":1})";
  Rejects(payload, RejectReason::kBadFieldName);
  EXPECT_LT(reject_.detail.size(), 200u);
  for (char c : reject_.detail) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << reject_.detail;
}

TEST_F(ReadingTest, ReuseAcrossParses) {
  ASSERT_TRUE(Parse(R"({"deviceId":"d","a_long_metric_name_here":1,"b":2,"c":3})"));
  ASSERT_TRUE(Parse(R"({"deviceId":"e","x":9})"));
  ASSERT_EQ(reading_.metrics.size(), 1u);
  EXPECT_EQ(reading_.metrics[0].name, "x");
  EXPECT_EQ(reading_.device_id, "e");
  // A failed parse followed by a good one leaves no residue.
  EXPECT_FALSE(Parse(R"({"deviceId":"f","boot":1,"seq":2,"fw":"9","y":1,"z":[1]})"));
  ASSERT_TRUE(Parse(R"({"deviceId":"g","z":1})"));
  EXPECT_FALSE(reading_.has_seq);
  EXPECT_TRUE(reading_.firmware.empty());
  EXPECT_EQ(MetricsJson(reading_), R"({"z":1})");
  reading_.Clear();
  EXPECT_TRUE(reading_.metrics.empty());
  EXPECT_TRUE(reading_.device_id.empty());
}

TEST_F(ReadingTest, MetricsJsonRoundTripsDoubles) {
  ASSERT_TRUE(Parse(R"({"deviceId":"d","a":0.1,"b":-0.0,"c":1e21,"d":5e-324,"e":123456789.125})"));
  EXPECT_EQ(MetricsJson(reading_), R"({"a":0.1,"b":-0,"c":1e+21,"d":5e-324,"e":123456789.125})");
  ASSERT_TRUE(Parse(R"({"deviceId":"d","a":92233720368547758045.2,"b":9007199254740992.0})"));
  EXPECT_EQ(MetricsJson(reading_), R"({"a":9.223372036854776e+19,"b":9.007199254740992e+15})");
  Reading built;
  built.metrics.push_back({"nan", std::nan(""), false});
  EXPECT_EQ(MetricsJson(built), R"({"nan":null})");
  EXPECT_EQ(MetricsJson(Reading{}), "{}");
}

TEST_F(ReadingTest, MovedParserStillWorks) {
  ReadingParser moved = std::move(parser_);
  EXPECT_TRUE(moved.Parse(kSeedPayload, "", kNowMs, &reading_, &reject_));
}

// Fuzzing found it: a name of unprintable bytes is quoted as \xNN, four bytes each, and the
// quote's bound counted input bytes, so the detail passed its 256-byte limit.
TEST_F(ReadingTest, escaped_metric_name_keeps_the_detail_bounded) {
  const std::string name(200, '\x7f');
  ASSERT_FALSE(Parse(R"({"deviceId":"d","temperature":1,")" + name + R"(":2})"));
  EXPECT_EQ(reject_.reason, RejectReason::kBadFieldName);
  EXPECT_LE(reject_.detail.size(), 256u) << reject_.detail;
  EXPECT_NE(reject_.detail.find("\\x7f"), std::string::npos) << reject_.detail;
}

}  // namespace
}  // namespace outpost::proto
