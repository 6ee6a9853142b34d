#include "outpost/gateway/rules/rule_engine.h"

#include <gtest/gtest.h>

namespace outpost::gateway::rules {
namespace {

using config::Comparison;
using config::RuleConfig;

RuleConfig Above(std::string name, std::string metric, double threshold, double hysteresis = 0,
                 std::int64_t for_s = 0) {
  RuleConfig r;
  r.name = std::move(name);
  r.metric = std::move(metric);
  r.comparison = Comparison::kAbove;
  r.threshold = threshold;
  r.hysteresis = hysteresis;
  r.for_s = for_s;
  return r;
}

std::vector<Transition> Feed(RuleEngine& e, std::string_view dev, std::string_view metric, double v,
                             std::int64_t now) {
  std::vector<Transition> out;
  e.Evaluate(dev, {{metric, v}}, now, &out);
  return out;
}

TEST(RuleEngine, RaisedOnceAndClearedOnceWithHysteresis) {
  RuleEngine e({Above("hot", "temperature", 30, 1)});
  EXPECT_TRUE(Feed(e, "a", "temperature", 29, 0).empty());
  auto up = Feed(e, "a", "temperature", 31, 1);
  ASSERT_EQ(up.size(), 1u);
  EXPECT_TRUE(up[0].raised);
  EXPECT_EQ(up[0].alert_id, "hot:a");
  EXPECT_EQ(up[0].value, 31);
  for (double v : {32.0, 35.0, 30.5, 29.5}) {
    EXPECT_TRUE(Feed(e, "a", "temperature", v, 2).empty()) << "no repeat at " << v;
  }
  EXPECT_EQ(e.active_count(), 1u);
  auto down = Feed(e, "a", "temperature", 29, 3);
  ASSERT_EQ(down.size(), 1u);
  EXPECT_FALSE(down[0].raised);
  EXPECT_EQ(e.active_count(), 0u);
  EXPECT_TRUE(Feed(e, "a", "temperature", 28, 4).empty());
}

TEST(RuleEngine, BelowRuleAndDeviceFilter) {
  RuleConfig low;
  low.name = "dry";
  low.metric = "soil";
  low.comparison = Comparison::kBelow;
  low.threshold = 20;
  low.hysteresis = 2;
  low.devices = {"field1"};
  RuleEngine e({low});
  EXPECT_TRUE(Feed(e, "field2", "soil", 5, 0).empty()) << "other devices are not watched";
  EXPECT_EQ(Feed(e, "field1", "soil", 19, 0).size(), 1u);
  EXPECT_TRUE(Feed(e, "field1", "soil", 21, 1).empty()) << "inside hysteresis";
  EXPECT_EQ(Feed(e, "field1", "soil", 22, 2).size(), 1u);
}

TEST(RuleEngine, DurationMustHoldBeforeRaising) {
  RuleEngine e({Above("hot", "t", 30, 0, 60)});
  EXPECT_TRUE(Feed(e, "a", "t", 31, 0).empty());
  EXPECT_TRUE(Feed(e, "a", "t", 31, 59'999).empty());
  EXPECT_EQ(Feed(e, "a", "t", 31, 60'000).size(), 1u);
  // A dip resets the timer.
  RuleEngine f({Above("hot", "t", 30, 0, 60)});
  Feed(f, "a", "t", 31, 0);
  Feed(f, "a", "t", 29, 30'000);
  EXPECT_TRUE(Feed(f, "a", "t", 31, 61'000).empty());
  // Tick raises without a new reading.
  std::vector<Transition> out;
  f.Tick(120'999, &out);
  EXPECT_TRUE(out.empty());
  f.Tick(121'000, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].value, 31);
}

TEST(RuleEngine, SeedMessagesAreKept) {
  config::Config c;
  RuleEngine e(config::EffectiveRules(c));
  std::vector<Transition> out;
  e.Evaluate("esp32_sensor_001", {{"temperature", 36.5}, {"battery", 8}, {"motion", 1}}, 0, &out);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].message, "High temperature alert: 36.5°C from esp32_sensor_001");
  EXPECT_EQ(out[1].message, "Low battery alert: 8% on esp32_sensor_001");
  EXPECT_EQ(out[2].message, "Motion detected by esp32_sensor_001");
  for (const auto& t : out) EXPECT_EQ(t.severity, "warning");
}

TEST(RuleEngine, OfflineRaisedOnceClearedOnce) {
  RuleEngine e({});
  std::vector<Transition> out;
  e.DeviceOffline("a", 0, &out);
  e.DeviceOffline("a", 1, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].alert_id, "device_offline:a");
  e.DeviceOnline("a", 2, &out);
  e.DeviceOnline("a", 3, &out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_FALSE(out[1].raised);
  RuleEngine quiet({}, /*offline_alerts=*/false);
  quiet.DeviceOffline("a", 0, &out);
  EXPECT_EQ(out.size(), 2u);
}

TEST(RuleEngine, RestoredAlertIsNotRaisedAgain) {
  RuleEngine e({Above("hot", "t", 30)});
  std::vector<Transition> out;
  e.RestoreActive("hot", "a", "t", 35, 7, 10, &out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(e.active_count(), 1u);
  EXPECT_TRUE(Feed(e, "a", "t", 36, 11).empty());
  auto clear = Feed(e, "a", "t", 20, 12);
  ASSERT_EQ(clear.size(), 1u);
  EXPECT_EQ(clear[0].raised_ms, 7) << "the clear names the raise it ends";
}

// Regression: a clear must carry its raise time, or the stored raise stays active forever.
TEST(RuleEngine, ClearCarriesTheRaiseTime) {
  RuleEngine e({Above("hot", "t", 30)});
  auto up = Feed(e, "a", "t", 31, 100);
  ASSERT_EQ(up.size(), 1u);
  EXPECT_EQ(up[0].raised_ms, 100);
  auto down = Feed(e, "a", "t", 20, 250);
  ASSERT_EQ(down.size(), 1u);
  EXPECT_EQ(down[0].raised_ms, 100);
  EXPECT_EQ(down[0].at_ms, 250);
  std::vector<Transition> out;
  e.DeviceOffline("a", 300, &out);
  e.DeviceOnline("a", 400, &out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].raised_ms, 300);
  EXPECT_EQ(out[1].at_ms, 400);
}

TEST(RuleEngine, RestoredAlertOfAGoneRuleIsCleared) {
  RuleEngine e({Above("hot", "t", 30)});
  std::vector<Transition> out;
  e.RestoreActive("wet", "a", "h", 90, 5, 10, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].raised);
  EXPECT_EQ(out[0].alert_id, "wet:a");
  EXPECT_EQ(out[0].raised_ms, 5);
  EXPECT_EQ(e.active_count(), 0u);
}

TEST(RuleEngine, ReloadClearsAlertsOfAChangedRule) {
  RuleConfig r = Above("hot", "t", 30);
  RuleEngine e({r});
  Feed(e, "a", "t", 31, 0);
  r.devices = {"b"};  // same name, no longer watches a
  std::vector<Transition> out;
  e.Reload({r}, true, 5, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].raised);
  EXPECT_EQ(e.active_count(), 0u);
}

TEST(RuleEngine, ReloadKeepsSurvivorsAndClearsRemoved) {
  RuleEngine e({Above("hot", "t", 30), Above("wet", "h", 80)});
  Feed(e, "a", "t", 31, 0);
  Feed(e, "a", "h", 90, 0);
  std::vector<Transition> out;
  e.Reload({Above("hot", "t", 30)}, true, 5, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].alert_id, "wet:a");
  EXPECT_FALSE(out[0].raised);
  EXPECT_EQ(e.active_count(), 1u);
  EXPECT_TRUE(Feed(e, "a", "t", 32, 6).empty()) << "still active, not raised again";
}

TEST(FormatMessage, FillsPlaceholdersAndLeavesOthers) {
  EXPECT_EQ(FormatMessage("{rule}: {metric}={value} > {threshold} on {device} {other}", "r", "d",
                          "m", 1.5, 2),
            "r: m=1.5 > 2 on d {other}");
}

}  // namespace
}  // namespace outpost::gateway::rules
