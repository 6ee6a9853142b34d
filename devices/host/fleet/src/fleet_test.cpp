// The fleet in virtual time: the real device core with host bindings against the in-process
// broker. Deterministic (seeded, no real clock, no sleeps); a simulated day takes well under a
// second.
#include "outpost/node/fleet/fleet.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "outpost/node/fleet/virtual_backend.h"
#include "outpost/proto/reading.h"
#include "outpost/proto/topics.h"
#include "outpost/testing/status_matchers.h"

namespace outpost::node::fleet {
namespace {

constexpr std::int64_t kHour = 3'600'000;

struct Observed {
  std::vector<BrokerMessage> all;
  // device -> (boot, seq) of every reading received (dups included)
  std::map<std::string, std::vector<std::pair<std::uint32_t, std::uint64_t>>> readings;
  std::map<std::string, std::vector<std::int64_t>> reading_times;
  std::uint64_t rejected = 0;
  std::uint64_t digest = 1469598103934665603ULL;
};

class SimRun {
 public:
  explicit SimRun(FleetOptions o) : fleet_(std::move(o), vb_) {
    vb_.Attach(fleet_);
    vb_.on_publish = [this](const BrokerMessage& m) { Record(m); };
  }
  Status Start() {
    OUTPOST_RETURN_IF_ERROR(fleet_.Init());
    fleet_.Start();
    return Status::Ok();
  }
  void RunAll() { vb_.Run(); }

  Fleet& fleet() { return fleet_; }
  VirtualBackend& broker() { return vb_; }
  Observed& seen() { return seen_; }

 private:
  void Record(const BrokerMessage& m) {
    seen_.all.push_back(m);
    for (char c : m.topic + "|" + m.payload) {
      seen_.digest = (seen_.digest ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    }
    seen_.digest = (seen_.digest ^ static_cast<std::uint64_t>(m.t_ms)) * 1099511628211ULL;
    const proto::TopicInfo info = proto::ClassifyTopic(m.topic);
    if (info.kind != proto::TopicKind::kSensorData) return;
    proto::Reading r;
    proto::Reject reject;
    if (!parser_.Parse(m.payload, info.device_id, vb_.WallMs(), &r, &reject)) {
      ++seen_.rejected;
      if (std::getenv("FLEET_TEST_VERBOSE")) {
        std::fprintf(stderr, "rejected %s %s: %s\n", m.topic.c_str(), m.payload.c_str(),
                     reject.detail.c_str());
      }
      return;
    }
    seen_.readings[r.device_id].push_back({r.boot, r.seq});
    seen_.reading_times[r.device_id].push_back(m.t_ms);
  }

  VirtualBackend vb_;
  Fleet fleet_;
  Observed seen_;
  proto::ReadingParser parser_;
};

FleetOptions Small(std::uint32_t devices, std::uint32_t interval_ms, std::int64_t duration_ms) {
  FleetOptions o;
  o.devices = devices;
  o.interval_ms = interval_ms;
  o.duration_ms = duration_ms;
  o.seed = 7;
  return o;
}

// Every device's readings, per boot, are seq 0..n-1 without holes (duplicates allowed).
void ExpectContiguous(const Observed& seen, std::uint64_t* total_unique = nullptr) {
  std::uint64_t unique = 0;
  for (const auto& [id, list] : seen.readings) {
    std::map<std::uint32_t, std::set<std::uint64_t>> per_boot;
    for (const auto& [boot, seq] : list) per_boot[boot].insert(seq);
    for (const auto& [boot, seqs] : per_boot) {
      EXPECT_EQ(*seqs.begin(), 0u) << id << " boot " << boot;
      EXPECT_EQ(*seqs.rbegin() + 1, seqs.size()) << id << " boot " << boot << ": a seq gap";
      unique += seqs.size();
    }
  }
  if (total_unique) *total_unique = unique;
}

TEST(Fleet, SameSeedSameTrafficDifferentSeedDifferent) {
  std::uint64_t digests[3];
  for (int i = 0; i < 3; ++i) {
    FleetOptions o = Small(20, 1'000, 120'000);
    o.seed = i == 2 ? 8 : 7;
    SimRun run(o);
    OUTPOST_ASSERT_OK(run.Start());
    run.RunAll();
    digests[i] = run.seen().digest;
    EXPECT_GT(run.seen().all.size(), 20u * 100);
  }
  EXPECT_EQ(digests[0], digests[1]);
  EXPECT_NE(digests[0], digests[2]);
}

TEST(Fleet, SimulatedDayEveryReadingAcknowledgedAndStoredInOrder) {
  SimRun run(Small(20, 60'000, 24 * kHour));
  OUTPOST_ASSERT_OK(run.Start());
  run.RunAll();
  const Summary s = run.fleet().Summarize();
  EXPECT_TRUE(s.drained);
  EXPECT_EQ(s.ring_dropped, 0u);
  EXPECT_EQ(s.ack_order_errors, 0u);
  EXPECT_EQ(s.buffered, 0u);
  EXPECT_GE(s.sampled, 20u * 1430);
  EXPECT_EQ(s.acked, s.sampled);
  EXPECT_EQ(run.seen().rejected, 0u);
  std::uint64_t unique = 0;
  ExpectContiguous(run.seen(), &unique);
  EXPECT_EQ(unique, s.acked);
  // The broker's view matches the simulator's accounting per device.
  for (const DeviceRecord& r : run.fleet().records()) {
    EXPECT_EQ(run.seen().readings[r.id].size(), r.acked) << r.id;
  }
}

TEST(Fleet, OutageIsBufferedAndDeliveredAfterwards) {
  FleetOptions o = Small(50, 1'000, 120'000);
  o.ring_capacity = 64;
  auto sc = sim::ParseScenario("faults:\n  - {type: broker_outage, at_s: 30, duration_s: 20}\n");
  OUTPOST_ASSERT_OK(sc);
  o.scenario = *sc;
  SimRun run(o);
  OUTPOST_ASSERT_OK(run.Start());
  run.RunAll();
  const Summary s = run.fleet().Summarize();
  EXPECT_EQ(s.ring_dropped, 0u);
  EXPECT_GE(s.reconnects, 50u);
  EXPECT_TRUE(s.drained);
  EXPECT_EQ(s.acked, s.sampled);
  // Nothing reached the broker during the outage, and nothing is missing after it.
  for (const auto& m : run.seen().all) {
    EXPECT_FALSE(m.t_ms > 30'100 && m.t_ms < 50'000) << m.topic << " at " << m.t_ms;
  }
  ExpectContiguous(run.seen());
}

TEST(Fleet, OutageLongerThanTheRingDropsOldestAndFailsTheRun) {
  FleetOptions o = Small(5, 1'000, 90'000);
  o.ring_capacity = 8;
  auto sc = sim::ParseScenario("faults:\n  - {type: broker_outage, at_s: 10, duration_s: 30}\n");
  OUTPOST_ASSERT_OK(sc);
  o.scenario = *sc;
  SimRun run(o);
  OUTPOST_ASSERT_OK(run.Start());
  run.RunAll();
  const Summary s = run.fleet().Summarize();
  EXPECT_GT(s.ring_dropped, 5u * 15);  // ~30 readings per device, 8 kept
  EXPECT_EQ(s.ack_order_errors, 0u);   // the gaps are explained by the drops
}

TEST(Fleet, SetSensorIntervalChangesTheRateAndIsAcknowledged) {
  SimRun run(Small(3, 5'000, 200'000));
  OUTPOST_ASSERT_OK(run.Start());
  run.broker().Publish("devices/node-00001/commands",
                       R"({"command":"setSensorInterval","interval":2000,"id":"c-1"})", 1, false,
                       100'000);
  run.RunAll();
  const auto& t1 = run.seen().reading_times["node-00001"];
  const auto& t0 = run.seen().reading_times["node-00000"];
  auto count_in = [](const std::vector<std::int64_t>& ts, std::int64_t from, std::int64_t to) {
    int n = 0;
    for (auto t : ts) n += t >= from && t < to;
    return n;
  };
  EXPECT_NEAR(count_in(t1, 20'000, 100'000), 16, 1);   // every 5 s
  EXPECT_NEAR(count_in(t1, 101'000, 199'000), 49, 2);  // every 2 s
  EXPECT_NEAR(count_in(t0, 101'000, 199'000), 20, 1);  // the others unchanged
  bool replied = false;
  for (const auto& m : run.seen().all) {
    if (m.topic == "devices/node-00001/replies") {
      EXPECT_NE(m.payload.find("\"id\":\"c-1\""), std::string::npos) << m.payload;
      EXPECT_NE(m.payload.find("\"ok\":true"), std::string::npos) << m.payload;
      replied = true;
    }
  }
  EXPECT_TRUE(replied);
  EXPECT_EQ(run.fleet().Summarize().commands, 1u);
}

TEST(Fleet, LowBatteryAnnouncesSleepingRetainedAndSleeps) {
  FleetOptions o = Small(3, 1'000, 60'000);
  auto sc = sim::ParseScenario(
      "faults:\n  - {type: low_battery, devices: [node-00002], at_s: 20, battery_pct: 5}\n");
  OUTPOST_ASSERT_OK(sc);
  o.scenario = *sc;
  SimRun run(o);
  OUTPOST_ASSERT_OK(run.Start());
  run.RunAll();
  ASSERT_EQ(run.broker().retained().count("devices/node-00002/status"), 1u);
  EXPECT_EQ(run.broker().retained().at("devices/node-00002/status"), "sleeping");
  EXPECT_EQ(run.broker().retained().at("devices/node-00000/status"), "offline");  // stopped at end
  const Summary s = run.fleet().Summarize();
  EXPECT_EQ(s.sleeps, 1u);
  // It stopped publishing readings once asleep.
  for (auto t : run.seen().reading_times["node-00002"]) EXPECT_LT(t, 22'000);
}

TEST(Fleet, BatteryModelDrainReachesTheLowBatteryPath) {
  FleetOptions o = Small(2, 10'000, 3 * kHour);
  o.scenario.models.battery_drain_pct_per_hour = 60;  // 80..100 % -> below 10 % within 1.5 h
  SimRun run(o);
  OUTPOST_ASSERT_OK(run.Start());
  run.RunAll();
  EXPECT_GE(run.fleet().Summarize().sleeps, 2u);
  EXPECT_EQ(run.broker().retained().count("devices/node-00000/status"), 1u);
}

TEST(Fleet, RebootStormKeepsBootCounterAndLosesNothingAcknowledged) {
  FleetOptions o = Small(40, 1'000, 60'000);
  auto sc = sim::ParseScenario(
      "faults:\n  - {type: reboot_storm, at_s: 20, fraction: 0.5, "
      "spread_s: 5}\n");
  OUTPOST_ASSERT_OK(sc);
  o.scenario = *sc;
  SimRun run(o);
  OUTPOST_ASSERT_OK(run.Start());
  run.RunAll();
  const Summary s = run.fleet().Summarize();
  EXPECT_GT(s.restarts, 10u);
  EXPECT_LT(s.restarts, 30u);
  EXPECT_EQ(s.ack_order_errors, 0u);
  int rebooted = 0;
  for (const DeviceRecord& r : run.fleet().records()) {
    if (r.boots == 2) {
      ++rebooted;
      EXPECT_EQ(r.boot, 2u) << r.id;  // boot counter kept across the restart, +1
      std::set<std::uint32_t> boots;
      for (const auto& [b, seq] : run.seen().readings[r.id]) boots.insert(b);
      EXPECT_EQ(boots.size(), 2u) << r.id;
    }
  }
  EXPECT_EQ(static_cast<std::uint64_t>(rebooted), s.restarts);
  ExpectContiguous(run.seen());
}

TEST(Fleet, BlackholeIsDetectedByKeepaliveAndRecovered) {
  FleetOptions o = Small(20, 1'000, 120'000);
  o.keepalive_s = 10;
  o.ring_capacity = 64;
  auto sc = sim::ParseScenario(
      "faults:\n  - {type: blackhole, at_s: 20, duration_s: 30, fraction: 0.5}\n");
  OUTPOST_ASSERT_OK(sc);
  o.scenario = *sc;
  SimRun run(o);
  OUTPOST_ASSERT_OK(run.Start());
  run.RunAll();
  const Summary s = run.fleet().Summarize();
  EXPECT_GE(s.reconnects, 5u);
  EXPECT_EQ(s.ring_dropped, 0u);
  EXPECT_TRUE(s.drained);
  EXPECT_EQ(s.acked, s.sampled);
}

TEST(Fleet, SeedModeSpeaksTheSeedSketch) {
  FleetOptions o = Small(3, 5'000, 30'000);
  o.mode = Mode::kSeed;
  o.qos = 0;
  SimRun run(o);
  OUTPOST_ASSERT_OK(run.Start());
  run.RunAll();
  int readings = 0;
  for (const auto& m : run.seen().all) {
    if (m.topic == "sensors/data") {
      ++readings;
      for (const char* key : {"\"deviceId\":\"node-0000", "\"timestamp\":", "\"temperature\":",
                              "\"humidity\":", "\"motion\":", "\"battery\":", "\"rssi\":"}) {
        EXPECT_NE(m.payload.find(key), std::string::npos) << m.payload;
      }
      EXPECT_EQ(m.payload.find("\"seq\""), std::string::npos) << m.payload;
    } else {
      EXPECT_EQ(m.topic, "devices/status");
    }
  }
  EXPECT_GE(readings, 3 * 5);
  EXPECT_EQ(run.seen().rejected, 0u);
}

TEST(Fleet, MalformedPayloadsAtTheConfiguredRate) {
  FleetOptions o = Small(10, 1'000, 60'000);
  auto sc = sim::ParseScenario("faults:\n  - {type: malformed, rate_per_s: 2, at_s: 10}\n");
  OUTPOST_ASSERT_OK(sc);
  o.scenario = *sc;
  SimRun run(o);
  OUTPOST_ASSERT_OK(run.Start());
  run.RunAll();
  const Summary s = run.fleet().Summarize();
  EXPECT_NEAR(static_cast<double>(s.malformed_sent), 100, 3);
  EXPECT_EQ(run.seen().rejected, s.malformed_sent);
  ExpectContiguous(run.seen());  // the good readings are untouched
}

TEST(Fleet, ClockSkewShiftsDeviceTimestamps) {
  FleetOptions o = Small(10, 1'000, 20'000);
  auto sc = sim::ParseScenario("faults:\n  - {type: clock_skew, fraction: 1, max_skew_s: 600}\n");
  OUTPOST_ASSERT_OK(sc);
  o.scenario = *sc;
  SimRun run(o);
  OUTPOST_ASSERT_OK(run.Start());
  std::int64_t max_abs_skew = 0;
  proto::ReadingParser parser;
  run.broker().on_publish = [&](const BrokerMessage& m) {
    const proto::TopicInfo info = proto::ClassifyTopic(m.topic);
    if (info.kind != proto::TopicKind::kSensorData) return;
    proto::Reading r;
    proto::Reject rej;
    ASSERT_TRUE(parser.Parse(m.payload, info.device_id, run.broker().WallMs(), &r, &rej));
    max_abs_skew = std::max(max_abs_skew, std::abs(r.ts_ms - run.broker().WallMs()));
  };
  run.RunAll();
  EXPECT_GT(max_abs_skew, 60'000);
  EXPECT_LE(max_abs_skew, 600'000 + 100);
}

// Regression: a run bounded only by --count never ended when devices could not deliver.
TEST(Fleet, CountOnlyRunEndsAfterTheDrainEvenWithoutABroker) {
  FleetOptions o = Small(4, 1'000, 0);
  o.count = 3;
  o.drain_timeout_ms = 2'000;
  auto sc = sim::ParseScenario("faults:\n  - {type: broker_outage, duration_s: 100000}\n");
  OUTPOST_ASSERT_OK(sc);
  o.scenario = *sc;
  SimRun run(o);
  OUTPOST_ASSERT_OK(run.Start());
  run.RunAll();
  EXPECT_TRUE(run.fleet().finished());
  const Summary s = run.fleet().Summarize();
  EXPECT_EQ(s.acked, 0u);
  EXPECT_EQ(s.ever_connected, 0u);
  EXPECT_GE(s.buffered, 4u * 3);
  EXPECT_LT(s.elapsed_ms, 10'000);
}

TEST(Fleet, CountStopsEachDeviceAfterItsReadings) {
  FleetOptions o = Small(6, 1'000, 0);
  o.count = 5;
  SimRun run(o);
  OUTPOST_ASSERT_OK(run.Start());
  run.RunAll();
  const Summary s = run.fleet().Summarize();
  EXPECT_TRUE(s.drained);
  for (const DeviceRecord& r : run.fleet().records()) {
    EXPECT_GE(r.acked, 5u) << r.id;
    EXPECT_LE(r.acked, 6u) << r.id;
  }
}

TEST(Fleet, RejectsUnboundedRuns) {
  FleetOptions o = Small(1, 1'000, 0);
  VirtualBackend vb;
  Fleet f(o, vb);
  const Status st = f.Init();
  OUTPOST_EXPECT_CODE(st, Code::kInvalidArgument);
  EXPECT_NE(st.message().find("duration"), std::string::npos);
}

}  // namespace
}  // namespace outpost::node::fleet
