// The pure parts of /api/v1/alerts (alerts_api.h): ids, filters, cursors, bodies and JSON.
#include "alerts_api.h"

#include <gtest/gtest.h>

#include <cmath>

#include "outpost/testing/status_matchers.h"

namespace outpost::gateway::app::alerts {
namespace {

constexpr std::int64_t kT0 = 1'700'000'000'000;

model::AlertRow Row() {
  return {"temperature_max:n1",
          "temperature_max",
          "n1",
          "temperature",
          "critical",
          "hot",
          36.2,
          35,
          kT0,
          0};
}

TEST(AlertsApiTest, ApiIdRoundTripsThroughTheLastColon) {
  const std::string id = ApiId(Row());
  EXPECT_EQ(id, "temperature_max:n1:1700000000000");
  OUTPOST_ASSERT_OK_AND_ASSIGN(model::AlertAck key, ParseApiId(id));
  EXPECT_EQ(key.alert_id, "temperature_max:n1");
  EXPECT_EQ(key.raised_ms, kT0);
  for (const char* bad :
       {"", "temperature_max", ":17", "a:", "a:-1", "a:12x", "a:1234567890123456789"}) {
    auto k = ParseApiId(bad);
    EXPECT_FALSE(k.ok()) << bad;
    EXPECT_EQ(k.status().message().rfind("id: ", 0), 0u) << k.status().message();
  }
  // Longer than any alert id: refused, and the message quotes only its start.
  auto k = ParseApiId(std::string(6000, 'x') + ":1");
  EXPECT_FALSE(k.ok());
  EXPECT_LT(k.status().message().size(), 200u);
}

TEST(AlertsApiTest, FilterParsesEachParameterAndNamesTheBadOne) {
  std::size_t limit = 0;
  std::string bad;
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto f, ParseFilter({}, &limit, &bad));
  EXPECT_EQ(limit, 100u);
  EXPECT_EQ(f.state, store::AlertFilter::State::kAny);
  EXPECT_EQ(f.acked, store::AlertFilter::Acked::kAny);
  EXPECT_LT(f.before_raised_ms, 0);
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      f, ParseFilter({{"state", "active"}, {"acked", "false"}, {"device", "n1"}, {"limit", "7"}},
                     &limit, &bad));
  EXPECT_EQ(f.state, store::AlertFilter::State::kActive);
  EXPECT_EQ(f.acked, store::AlertFilter::Acked::kNo);
  EXPECT_EQ(f.device_id, "n1");
  EXPECT_EQ(limit, 7u);
  const std::map<std::string, std::map<std::string, std::string>> cases = {
      {"state", {{"state", "open"}}},
      {"acked", {{"acked", "1"}}},
      {"limit", {{"limit", "0"}}},
      {"cursor", {{"cursor", "zz"}}},
      {"cursor",
       {{"cursor",
         "d1"
         "6162"}}},  // a device cursor ("ab"): no "<ms>:" in it
  };
  for (const auto& [name, params] : cases) {
    bad.clear();
    EXPECT_FALSE(ParseFilter(params, &limit, &bad).ok()) << name;
    EXPECT_EQ(bad, name);
  }
}

TEST(AlertsApiTest, CursorNamesTheLastAlertOfThePage) {
  model::AlertRow last = Row();
  std::size_t limit = 0;
  std::string bad;
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto f, ParseFilter({{"cursor", EncodeCursor(last)}}, &limit, &bad));
  EXPECT_EQ(f.before_raised_ms, kT0);
  EXPECT_EQ(f.before_alert_id, "temperature_max:n1");
}

TEST(AlertsApiTest, JsonShowsStateAndAck) {
  model::AlertRow a = Row();
  a.threshold = std::nan("");
  nlohmann::json j = AlertJson(a);
  EXPECT_EQ(j["id"], "temperature_max:n1:1700000000000");
  EXPECT_EQ(j["state"], "active");
  EXPECT_TRUE(j["cleared_ms"].is_null());
  EXPECT_TRUE(j["ack"].is_null());
  EXPECT_TRUE(j["threshold"].is_null());  // NaN is not JSON
  a.cleared_ms = kT0 + 5;
  a.acked_ms = kT0 + 9;
  a.acked_by = "alice";
  a.ack_comment = "ok";
  j = AlertJson(a);
  EXPECT_EQ(j["state"], "cleared");
  EXPECT_EQ(j["cleared_ms"], kT0 + 5);
  EXPECT_EQ(j["ack"]["user"], "alice");
  EXPECT_EQ(j["ack"]["ms"], kT0 + 9);
}

TEST(AlertsApiTest, AckBodiesAreCheckedFieldByField) {
  std::string bad;
  OUTPOST_ASSERT_OK_AND_ASSIGN(AckBody b, ParseAckBody("", /*bulk=*/false, &bad));
  EXPECT_EQ(b.comment, "");
  OUTPOST_ASSERT_OK_AND_ASSIGN(b, ParseAckBody(R"({"comment":"fixed"})", false, &bad));
  EXPECT_EQ(b.comment, "fixed");
  OUTPOST_ASSERT_OK_AND_ASSIGN(b,
                               ParseAckBody(R"({"ids":["a:1","b:2"],"comment":null})", true, &bad));
  EXPECT_EQ(b.ids.size(), 2u);
  const std::vector<std::tuple<std::string, bool, std::string>> cases = {
      {"{", false, "body"},
      {"[]", false, "body"},
      {R"({"comment":5})", false, "comment"},
      {"{\"comment\":\"" + std::string(kMaxCommentBytes + 1, 'x') + "\"}", false, "comment"},
      {"", true, "body"},
      {R"({"ids":[]})", true, "ids"},
      {R"({"ids":"a:1"})", true, "ids"},
      {R"({"ids":[1]})", true, "ids"},
  };
  for (const auto& [body, bulk, field] : cases) {
    bad.clear();
    EXPECT_FALSE(ParseAckBody(body, bulk, &bad).ok()) << body;
    EXPECT_EQ(bad, field) << body;
  }
  std::string many = R"({"ids":[)";
  for (std::size_t i = 0; i <= kMaxBulkIds; ++i)
    many += (i ? ",\"a:" : "\"a:") + std::to_string(i) + "\"";
  many += "]}";
  bad.clear();
  EXPECT_FALSE(ParseAckBody(many, true, &bad).ok());
  EXPECT_EQ(bad, "ids");
}

}  // namespace
}  // namespace outpost::gateway::app::alerts
