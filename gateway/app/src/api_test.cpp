// The pure parts of the HTTP API (api.h): device JSON, status and reason, pages and cursors,
// limits, ETags, and the Prometheus text of the status report.
#include "api.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "outpost/testing/status_matchers.h"

namespace outpost::gateway::app::api {
namespace {

using nlohmann::json;
using registry::Device;
using registry::Reason;
using registry::State;

Device MakeDevice(const std::string& id) {
  Device d;
  d.id = id;
  d.first_seen_ms = 1000;
  d.last_seen_ms = 5000;
  d.state_changed_ms = 2000;
  d.state = State::kOnline;
  d.reason = Reason::kReading;
  d.last_reading_json = R"({"temperature":22.5,"motion":true})";
  d.firmware = "1.2.0";
  d.boot = 7;
  d.last_seq = 42;
  d.readings = 40;
  d.duplicates = 2;
  d.seq_gaps = 1;
  return d;
}

TEST(ApiJson, DeviceHasEveryDocumentedField) {
  const json j = DeviceJson(MakeDevice("d1"));
  EXPECT_EQ(j["id"], "d1");
  EXPECT_EQ(j["status"], "online");
  EXPECT_EQ(j["reason"], "reading");
  EXPECT_EQ(j["last_seen_ms"], 5000);
  EXPECT_EQ(j["first_seen_ms"], 1000);
  EXPECT_EQ(j["status_changed_ms"], 2000);
  EXPECT_EQ(j["last_reading"], json::parse(R"({"temperature":22.5,"motion":true})"));
  EXPECT_EQ(j["firmware"], "1.2.0");
  EXPECT_EQ(j["boot"], 7);
  EXPECT_EQ(j["last_seq"], 42);
  EXPECT_EQ(j["counters"], (json{{"readings", 40}, {"duplicates", 2}, {"seq_gaps", 1}}));
}

TEST(ApiJson, StatusAndReasonFromTheRegistry) {
  Device d = MakeDevice("d");
  d.state = State::kSleeping;
  d.reason = Reason::kStatus;
  EXPECT_STREQ(DeviceStatus(d), "sleeping");
  EXPECT_STREQ(DeviceReason(d), "announced_sleep");
  d.state = State::kOffline;
  EXPECT_STREQ(DeviceStatus(d), "offline");
  EXPECT_STREQ(DeviceReason(d), "last_will");
  d.reason = Reason::kSilence;
  EXPECT_STREQ(DeviceReason(d), "silence");
  d.state = State::kOnline;
  d.reason = Reason::kStatus;
  EXPECT_STREQ(DeviceReason(d), "announced_online");
  d.reason = Reason::kRestored;
  EXPECT_STREQ(DeviceReason(d), "restored");

  // Known only from an offline status (e.g. a retained last will): never seen.
  Device ghost;
  ghost.id = "ghost";
  ghost.state = State::kOffline;
  ghost.reason = Reason::kStatus;
  EXPECT_STREQ(DeviceStatus(ghost), "never_seen");
  const json j = DeviceJson(ghost);
  EXPECT_TRUE(j["last_seen_ms"].is_null());
  EXPECT_TRUE(j["last_reading"].is_null());
  EXPECT_TRUE(j["firmware"].is_null());
  ghost.state = State::kOnline;  // its own "online": the registry's word
  EXPECT_STREQ(DeviceStatus(ghost), "online");
}

TEST(ApiJson, PagesCoverEveryDeviceOnceInIdOrder) {
  std::unordered_map<std::string, Device> devices;
  for (int i = 0; i < 25; ++i) {
    std::string id = "dev" + std::to_string(1000 + (i * 7) % 25);  // not in insertion order
    devices.emplace(id, MakeDevice(id));
  }
  std::vector<std::string> seen;
  std::string after;
  int pages = 0;
  while (true) {
    const json page = DevicesPage(devices, after, 10);
    ++pages;
    EXPECT_EQ(page["total"], 25);
    EXPECT_EQ(page["count"], page["devices"].size());
    for (const auto& d : page["devices"]) seen.push_back(d["id"]);
    if (page["next_cursor"].is_null()) break;
    auto decoded = DecodeCursor(page["next_cursor"].get<std::string>());
    OUTPOST_ASSERT_OK(decoded);
    after = *decoded;
    ASSERT_LT(pages, 10);
  }
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(seen.size(), 25u);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 25u);

  // Exactly a page: no next cursor.
  const json all = DevicesPage(devices, "", 25);
  EXPECT_EQ(all["count"], 25);
  EXPECT_TRUE(all["next_cursor"].is_null());
  const json none = DevicesPage({}, "", 10);
  EXPECT_EQ(none["devices"], json::array());
  EXPECT_TRUE(none["next_cursor"].is_null());
}

TEST(ApiJson, CursorRoundTripsAndRejectsForgeries) {
  for (const std::string id : {"a", "esp32_sensor_001", "x:y.z-1"}) {
    auto back = DecodeCursor(EncodeCursor(id));
    OUTPOST_ASSERT_OK(back);
    EXPECT_EQ(*back, id);
  }
  for (const char* bad : {"", "d1", "d1a", "d1zz", "x161", "D161", "d1GG", "d1616"}) {
    auto r = DecodeCursor(bad);
    OUTPOST_EXPECT_CODE(r, Code::kInvalidArgument);
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("cursor"), std::string::npos);
    }
  }
}

TEST(ApiJson, LimitDefaultsAndBounds) {
  auto d = ParseLimit({});
  OUTPOST_ASSERT_OK(d);
  EXPECT_EQ(*d, kDefaultLimit);
  auto one = ParseLimit({{"limit", "1"}});
  OUTPOST_ASSERT_OK(one);
  EXPECT_EQ(*one, 1u);
  auto max = ParseLimit({{"limit", std::to_string(kMaxLimit)}});
  OUTPOST_ASSERT_OK(max);
  EXPECT_EQ(*max, kMaxLimit);
  for (const char* bad : {"", "0", "-1", "1001", "abc", "10x", "99999999999999", " 5"}) {
    auto r = ParseLimit({{"limit", bad}});
    OUTPOST_EXPECT_CODE(r, Code::kInvalidArgument);
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("limit: expected an integer in 1..1000"),
                std::string::npos)
          << r.status().message();
    }
  }
}

TEST(ApiJson, ETagChangesWithTheBodyAndIfNoneMatchCompares) {
  const std::string a = ETag("{\"x\":1}");
  EXPECT_EQ(a, ETag("{\"x\":1}"));
  EXPECT_NE(a, ETag("{\"x\":2}"));
  EXPECT_EQ(a.size(), 18u);
  EXPECT_EQ(a.front(), '"');
  EXPECT_TRUE(IfNoneMatch(a, a));
  EXPECT_TRUE(IfNoneMatch("W/" + a, a));
  EXPECT_TRUE(IfNoneMatch("\"zzz\", " + a, a));
  EXPECT_TRUE(IfNoneMatch("*", a));
  EXPECT_FALSE(IfNoneMatch("\"zzz\"", a));
  EXPECT_FALSE(IfNoneMatch("", a));
}

TEST(ApiJson, PrometheusTextOfTheStatusReport) {
  const json status = {
      {"gateway_id", "gw"},
      {"uptime", 12.5},
      {"rss_bytes", 1024},
      {"last_cloud_sync", nullptr},
      {"ingest",
       {{"stored", 7},
        {"paused", false},
        {"rejected_by_reason", {{"bad_json", 3}, {"too_large", 1}}}}},
      {"mqtt", {{"connected", true}}},
      {"cloud", {{"dropped", {{"dead_letter_reasons", {{"http 400", 2}}}}}}},
  };
  const std::string text = StatusPrometheus(status, "outpost_gateway_");
  EXPECT_NE(text.find("outpost_gateway_uptime 12.5\n"), std::string::npos) << text;
  EXPECT_NE(text.find("outpost_gateway_rss_bytes 1024\n"), std::string::npos) << text;
  EXPECT_NE(text.find("outpost_gateway_ingest_stored 7\n"), std::string::npos) << text;
  EXPECT_NE(text.find("outpost_gateway_ingest_paused 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("outpost_gateway_mqtt_connected 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("outpost_gateway_ingest_rejected_by_reason{reason=\"bad_json\"} 3\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("outpost_gateway_cloud_dropped_dead_letter_reasons{reason=\"http 400\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("gateway_id"), std::string::npos) << "strings are left out";
  EXPECT_EQ(text.find("last_cloud_sync"), std::string::npos) << "nulls are left out";
}

}  // namespace
}  // namespace outpost::gateway::app::api
