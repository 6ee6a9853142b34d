#include "outpost/node/sim/scenario.h"

#include <gtest/gtest.h>

#include <fstream>

#include "outpost/testing/status_matchers.h"

namespace outpost::node::sim {
namespace {

TEST(Scenario, EmptyIsDefaults) {
  auto s = ParseScenario("");
  OUTPOST_ASSERT_OK(s);
  EXPECT_TRUE(s->faults.empty());
  EXPECT_EQ(s->models.temperature_mean_c, ModelParams{}.temperature_mean_c);
}

TEST(Scenario, ParsesEveryFault) {
  auto s = ParseScenario(R"(
models:
  temperature: {mean_c: 18, daily_amplitude_c: 4}
  battery: {drain_pct_per_hour: 30}
  read_errors: {rate: 0.01}
faults:
  - {type: broker_outage, at_s: 30, duration_s: 10}
  - {type: blackhole, at_s: 60, duration_s: 20, fraction: 0.25}
  - {type: clock_skew, fraction: 0.1, max_skew_s: 120}
  - {type: reboot_storm, at_s: 90, fraction: 0.5, spread_s: 5}
  - {type: malformed, rate_per_s: 2}
  - {type: low_battery, devices: [node-00003], at_s: 10, battery_pct: 4}
)");
  OUTPOST_ASSERT_OK(s);
  EXPECT_EQ(s->models.temperature_mean_c, 18);
  EXPECT_EQ(s->models.battery_drain_pct_per_hour, 30);
  EXPECT_EQ(s->models.read_error_rate, 0.01);
  ASSERT_EQ(s->faults.size(), 6u);
  EXPECT_EQ(s->faults[0].kind, FaultKind::kBrokerOutage);
  EXPECT_EQ(s->faults[0].at_ms, 30'000);
  EXPECT_EQ(s->faults[0].duration_ms, 10'000);
  EXPECT_TRUE(s->faults[0].ActiveAt(30'000));
  EXPECT_FALSE(s->faults[0].ActiveAt(40'000));
  EXPECT_EQ(s->faults[1].fraction, 0.25);
  EXPECT_EQ(s->faults[2].max_skew_ms, 120'000);
  EXPECT_EQ(s->faults[3].spread_ms, 5'000);
  EXPECT_EQ(s->faults[4].rate_per_s, 2);
  EXPECT_TRUE(s->faults[4].ActiveAt(1'000'000));
  EXPECT_EQ(s->faults[5].devices, std::vector<std::string>{"node-00003"});
  EXPECT_TRUE(FaultAffects(s->faults[5], 5, 1, 3, "node-00003"));
  EXPECT_FALSE(FaultAffects(s->faults[5], 5, 1, 4, "node-00004"));
}

TEST(Scenario, FractionPicksAboutThatShareDeterministically) {
  Fault f;
  f.kind = FaultKind::kBlackhole;
  f.fraction = 0.25;
  int hit = 0;
  for (std::uint32_t i = 0; i < 10000; ++i) {
    const bool a = FaultAffects(f, 1, 42, i, "x");
    EXPECT_EQ(a, FaultAffects(f, 1, 42, i, "x"));
    hit += a;
  }
  EXPECT_NEAR(hit / 10000.0, 0.25, 0.02);
}

void ExpectError(const char* yaml, const std::string& fragment) {
  auto s = ParseScenario(yaml);
  ASSERT_FALSE(s.ok()) << yaml;
  OUTPOST_EXPECT_CODE(s, Code::kInvalidArgument);
  EXPECT_NE(s.status().message().find(fragment), std::string::npos)
      << "message: " << s.status().message() << "\nexpected: " << fragment;
}

TEST(Scenario, ErrorsNameTheKey) {
  ExpectError("faults:\n  - {type: broker_outage, at_s: 3}", "faults[0].duration_s: required");
  ExpectError("faults:\n  - {type: blackhole, duration_s: ten}", "faults[0].duration_s: expected");
  ExpectError("faults:\n  - {type: dance}", "faults[0].type: unknown fault \"dance\"");
  ExpectError("faults:\n  - {at_s: 1}", "faults[0].type: required");
  ExpectError("faults:\n  - {type: blackhole, duration_s: 1, fraction: 2}",
              "faults[0].fraction: expected a number in [0, 1]");
  ExpectError("faults:\n  - {type: broker_outage, duration_s: 1, fraction: 0.5}",
              "faults[0].fraction: unknown key");
  ExpectError("models:\n  temperature: {mean: 3}", "models.temperature.mean: unknown key");
  ExpectError("models:\n  read_errors: {rate: 1.5}", "models.read_errors.rate: expected");
  ExpectError("modles: {}", "modles: unknown key");
  ExpectError("faults: 3", "faults: expected a list");
  ExpectError("faults:\n  - {type: clock_skew}", "faults[0].max_skew_s: required");
  ExpectError("faults:\n  - {type: malformed}", "faults[0].rate_per_s: required");
  ExpectError("faults:\n  - {type: low_battery, devices: node-1}", "faults[0].devices: expected");
  ExpectError("faults: [", "not valid YAML");
  ExpectError("- 1", "expected a map at the top level");
}

TEST(Scenario, LoadNamesTheFile) {
  auto missing = LoadScenario("/nonexistent/scenario.yaml");
  ASSERT_FALSE(missing.ok());
  OUTPOST_EXPECT_CODE(missing, Code::kNotFound);
  EXPECT_NE(missing.status().message().find("/nonexistent/scenario.yaml"), std::string::npos);
  // A device that never ends (or a FIFO: ReadFile's own tests) is refused, not read forever.
  auto endless = LoadScenario("/dev/zero");
  OUTPOST_EXPECT_CODE(endless, Code::kInvalidArgument);
  EXPECT_NE(endless.status().message().find("scenario file /dev/zero: not a regular file"),
            std::string::npos)
      << endless.status().message();
}

TEST(Scenario, ExampleFileParses) {
  const char* src = std::getenv("OUTPOST_SOURCE_DIR");
  if (src == nullptr) GTEST_SKIP() << "OUTPOST_SOURCE_DIR not set";
  auto s = LoadScenario(std::string(src) + "/config/scenario.example.yaml");
  OUTPOST_ASSERT_OK(s);
  EXPECT_FALSE(s->faults.empty());
}

}  // namespace
}  // namespace outpost::node::sim
