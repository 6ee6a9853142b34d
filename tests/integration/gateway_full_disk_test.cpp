// outpost-gateway on a file system that fills up: a real Mosquitto, the real binary, its
// database on a small tmpfs the test mounts (root only; CI runs as root), filled by a ballast
// file as another program on the device would fill it.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <limits>
#include <set>
#include <string>

#include "gateway_harness.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/tmpfs_mount.h"

namespace outpost::testing {
namespace {

using nlohmann::json;
constexpr std::int64_t kFsBytes = 8 << 20;
constexpr int kRound = 100;      // readings published between checks
constexpr int kMaxRounds = 100;  // bound: 10,000 readings (the disk fills after a few hundred)

std::string Reading(int seq) {
  return json{{"deviceId", "full1"}, {"boot", 1}, {"seq", seq}, {"level", seq}}.dump();
}

bool IsAlert(const mqtt::Message& m, const char* state) {
  if (m.topic != "gateway/alerts") return false;
  json j = json::parse(m.payload, nullptr, false);
  return j.is_object() && j.value("rule", "") == "storage_full" && j.value("state", "") == state;
}

class GatewayFullDiskTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure()) {
      h_.dir().Keep();
      std::printf("kept %s\ngateway log:\n%s\n", h_.dir().path().c_str(), h_.gateway_log().c_str());
    }
    h_.KillGateway();  // before the tmpfs goes
  }

  // Publishes QoS 1 readings (seq from *next) until the gateway raises storage_full; false if
  // it never does within the bound.
  bool PublishUntilFull(int* next) {
    for (int round = 0; round < kMaxRounds; ++round) {
      for (int i = 0; i < kRound; ++i) {
        if (!h_.devices().Publish("sensors/full1/data", Reading((*next)++), 1).ok()) return false;
      }
      auto alert =
          h_.observer().WaitMessage([](const mqtt::Message& m) { return IsAlert(m, "raised"); },
                                    std::chrono::milliseconds(500));
      if (alert.ok()) return true;
    }
    return false;
  }

  GatewayHarness h_;
};

// Regression: a full disk made every commit fail; after ~2 minutes of retries the writer gave
// up (kUnavailable counted as a failure, the cloud even mapped it to kDataLoss) and the gateway
// exited, to be restarted into the same full disk: a crash loop. Now it stays up, stops
// acknowledging, alerts, reports "full", and resumes by itself when space returns.
TEST_F(GatewayFullDiskTest, full_disk_stops_acks_alerts_and_resumes) {
  if (!TmpfsMount::Supported()) GTEST_SKIP() << TmpfsMount::kSkipReason;
  auto fs = TmpfsMount::Mount(h_.dir().File("fs"), kFsBytes);
  OUTPOST_ASSERT_OK(fs);
  HarnessOptions o;
  o.storage_dir = (*fs)->path();
  o.persistent_broker = false;
  OUTPOST_ASSERT_OK(h_.Start(o));

  int next = 1;
  for (int i = 0; i < 50; ++i) {
    OUTPOST_ASSERT_OK(h_.devices().Publish("sensors/full1/data", Reading(next++), 1));
  }
  auto s = h_.WaitStatus([](const json& j) { return j["ingest"]["stored"] == 50; });
  OUTPOST_ASSERT_OK(s);
  EXPECT_EQ((*s)["store"]["state"], "ok");
  EXPECT_EQ((*s)["store"]["max_bytes_auto"], true);
  // auto: 80% of 8 MiB (the tmpfs is empty but for the database).
  EXPECT_EQ((*s)["store"]["max_bytes"], kFsBytes / 10 * 8);

  // Another program fills the disk.
  auto ballast = (*fs)->FillWithBallast("ballast", kFsBytes);
  OUTPOST_ASSERT_OK(ballast);
  ASSERT_GT(*ballast, 4 << 20);
  ASSERT_TRUE(PublishUntilFull(&next)) << "no storage_full alert after " << next - 1 << " readings";
  const int published = next - 1;
  std::printf("disk full after %d readings (ballast %lld bytes)\n", published,
              static_cast<long long>(*ballast));

  // Alive, saying so, and acknowledging nothing it could not store.
  ASSERT_TRUE(h_.gateway_running());
  s = h_.WaitStatus([](const json& j) { return j["store"]["state"] == "full"; });
  OUTPOST_ASSERT_OK(s);
  EXPECT_EQ((*s)["store"]["full_events"], 1);
  EXPECT_GE((*s)["store"]["full_attempts"].get<int>(), 1);
  EXPECT_LT((*s)["ingest"]["stored"].get<int>(), published);
  EXPECT_GT((*s)["ingest"]["queue_depth"].get<int>(), 0);
  EXPECT_TRUE((*s)["store"]["full_since"].is_number());

  // Space returns: the gateway resumes by itself and clears the alert.
  OUTPOST_ASSERT_OK((*fs)->RemoveBallast("ballast"));
  auto cleared = h_.observer().WaitMessage(
      [](const mqtt::Message& m) { return IsAlert(m, "cleared"); }, std::chrono::seconds(30));
  OUTPOST_ASSERT_OK(cleared) << "no storage_full clear: ";
  s = h_.WaitStatus([&](const json& j) {
    return j["ingest"]["stored"] == published && j["store"]["state"] == "ok";
  });
  OUTPOST_ASSERT_OK(s);

  // Full again, and this time the gateway dies while full (power cut, OOM kill): what it did
  // not acknowledge is still with the broker and arrives after the restart.
  ballast = (*fs)->FillWithBallast("ballast", kFsBytes);
  OUTPOST_ASSERT_OK(ballast);
  ASSERT_TRUE(PublishUntilFull(&next)) << "no second storage_full alert";
  const int total = next - 1;
  std::printf("full again after %d readings in all\n", total);
  h_.KillGateway();
  OUTPOST_ASSERT_OK((*fs)->RemoveBallast("ballast"));
  OUTPOST_ASSERT_OK(h_.StartGateway());
  s = h_.WaitStatus([&](const json& j) { return j["local_db_records"] == total; },
                    std::chrono::seconds(30));
  OUTPOST_ASSERT_OK(s);
  OUTPOST_ASSERT_OK(h_.StopGateway());

  // Every published reading exactly once.
  auto store = h_.OpenStore();
  OUTPOST_ASSERT_OK(store);
  auto points = (*store)->QuerySeries("full1", "level", 0, std::numeric_limits<std::int64_t>::max(),
                                      1'000'000);
  OUTPOST_ASSERT_OK(points);
  std::set<int> seqs;
  for (const auto& p : *points) seqs.insert(static_cast<int>(p.value));
  EXPECT_EQ(points->size(), static_cast<std::size_t>(total));
  EXPECT_EQ(seqs.size(), static_cast<std::size_t>(total));
  EXPECT_EQ(*seqs.begin(), 1);
  EXPECT_EQ(*seqs.rbegin(), total);
  if (getenv("OUTPOST_KEEP_LOGS")) {
    h_.dir().Keep();
    std::printf("kept %s\n", h_.dir().path().c_str());
  }
}

}  // namespace
}  // namespace outpost::testing
