// The status report (status_report.h): its values from plain figures, and every key that
// docs/formats/topics.md#gateway-status promises.
#include "status_report.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "expiry.h"

namespace outpost::gateway::app {
namespace {

// The source tree, from ctest's environment (cmake/outpost.cmake).
std::string SourceDir() {
  const char* dir = std::getenv("OUTPOST_SOURCE_DIR");
  return dir ? dir : "(OUTPOST_SOURCE_DIR unset: run through ctest)";
}

using nlohmann::json;

StatusInputs Figures(const GatewayCounters& n) {
  StatusInputs in;
  in.periodic = true;
  in.gateway_id = "gw7";
  in.version = "1.2.3";
  in.now_ms = 1'700'000'010'000;
  ExpiryItem crl{"crl", "/etc/outpost/pki/broker/crl.pem", 1'700'000'010 + 40 * 86'400};
  ExpiryItem devices{"devices", "/etc/outpost/pki/devices.tsv", 1'700'000'010 + 20 * 86'400};
  devices.device_id = "n1";
  devices.devices = 3;
  devices.devices_soon = 1;
  in.pki = ExpiryJson({crl, devices}, 1'700'000'010, 30);
  in.uptime_ms = 5'500;
  in.latency_since_ms = 1'700'000'000'000;
  in.memory_usage_percent = 41.5;
  in.cpu_usage_percent = 3.25;
  in.rss_bytes = 9'000'000;
  in.devices = 6;
  in.online = 3;
  in.sleeping = 2;
  in.offline = 1;
  in.max_devices = 100;
  in.counters = &n;
  in.queue_depth = 17;
  in.queue_max = 20'000;
  in.paused = true;
  in.receive_to_commit = LatencySummary{4, 9, 120};
  in.store.readings = 1234;
  in.store.db_bytes = 4096;
  in.store.quarantine = 2;
  in.max_bytes = 1'000'000;
  in.max_bytes_auto = true;
  in.active_alerts = 1;
  in.mqtt_connected = true;
  in.mqtt_connects = 2;
  in.mqtt_inflight = 5;
  in.cloud_enabled = true;
  in.protocol = proto::batch::Protocol::kNative;
  in.endpoint = "http://127.0.0.1:1";
  in.quota_bytes = 1 << 20;
  in.when_full = model::WhenFull::kRejectNew;
  in.outbox.readings = 10;
  in.outbox.oldest_created_ms = 1'700'000'007'500;
  in.uplink.last_success_ms = 1'700'000'009'000;
  in.uplink.last_error = "HTTP 503";
  in.uplink.last_error_ms = 1'700'000'008'000;
  return in;
}

TEST(StatusReport, ValuesComeFromTheFigures) {
  GatewayCounters n;
  n.messages = 11;
  n.stored = 7;
  n.rejected = 2;
  n.rejected_by_reason = {{"bad_json", 1}, {"rate_limited", 1}};
  n.last_commit_ms = 1'700'000'009'500;
  const json j = StatusReport(Figures(n));
  EXPECT_EQ(j["gateway_id"], "gw7");
  EXPECT_EQ(j["timestamp"], 1'700'000'010.0);
  EXPECT_EQ(j["uptime"], 5.5);
  EXPECT_EQ(j["devices_count"], 6);
  EXPECT_EQ(j["local_db_records"], 1234);
  EXPECT_EQ(j["last_cloud_sync"], 1'700'000'009.0);
  EXPECT_EQ(j["trigger"], "interval");
  EXPECT_EQ(j["version"], "1.2.3");
  EXPECT_EQ(j["devices"]["sleeping"], 2);
  EXPECT_EQ(j["ingest"]["messages"], 11);
  EXPECT_EQ(j["ingest"]["rejected_by_reason"], (json{{"bad_json", 1}, {"rate_limited", 1}}));
  EXPECT_EQ(j["ingest"]["queue_depth"], 17);
  EXPECT_EQ(j["ingest"]["paused"], true);
  EXPECT_EQ(j["store"]["last_commit"], 1'700'000'009.5);
  EXPECT_EQ(j["store"]["latency_window_s"], 10.0);
  EXPECT_EQ(j["store"]["commit_latency_ms_p99"], 9);
  EXPECT_EQ(j["store"]["commit_latency_samples"], 120);
  EXPECT_EQ(j["store"]["device_to_commit_ms_p50"], -1);  // empty window
  EXPECT_EQ(j["store"]["state"], "ok");
  EXPECT_TRUE(j["store"]["full_since"].is_null());
  EXPECT_EQ(j["store"]["max_bytes_auto"], true);
  EXPECT_EQ(j["cloud"]["protocol"], "native");
  EXPECT_EQ(j["cloud"]["when_full"], "reject_new");
  EXPECT_EQ(j["cloud"]["backlog"]["oldest_age_s"], 2.5);
  EXPECT_EQ(j["cloud"]["last_error"],
            (json{{"ts_ms", 1'700'000'008'000}, {"message", "HTTP 503"}}));
  EXPECT_TRUE(j["cloud"]["in_flight_key"].is_null());
  EXPECT_TRUE(j["cloud"]["next_attempt_ms"].is_null());
}

TEST(StatusReport, FullDiskNeverSyncedAndOnCommand) {
  GatewayCounters n;
  StatusInputs in = Figures(n);
  in.periodic = false;
  in.full_since_ms = 1'700'000'001'000;
  in.uplink = uplink::UplinkStatus{};  // uplink off or nothing sent yet
  in.outbox = model::OutboxStats{};
  const json j = StatusReport(in);
  EXPECT_EQ(j["trigger"], "command");
  EXPECT_EQ(j["store"]["state"], "full");
  EXPECT_EQ(j["store"]["full_since"], 1'700'000'001.0);
  EXPECT_TRUE(j["last_cloud_sync"].is_null());
  EXPECT_TRUE(j["store"]["last_commit"].is_null());
  EXPECT_EQ(j["cloud"]["backlog"]["oldest_age_s"], 0.0);  // empty
  EXPECT_TRUE(j["cloud"]["last_error"].is_null());
  EXPECT_EQ(j["ingest"]["rejected_by_reason"], json::object());
}

TEST(LatencyHistogram, PercentilesAtMillisecondResolution) {
  LatencyHistogram h;
  EXPECT_EQ(Summarize(h).p50_ms, -1);
  for (int ms = 1; ms <= 100; ++ms) h.Add(ms);
  h.Add(50'000);  // beyond the last bucket: counted there
  const LatencySummary s = Summarize(h);
  EXPECT_EQ(s.samples, 101u);
  EXPECT_EQ(s.p50_ms, 51);
  EXPECT_EQ(s.p99_ms, 100);
  h.Reset();
  EXPECT_EQ(Summarize(h).samples, 0u);
}

// The field names of the "Gateway status" tables in docs/formats/topics.md, with the tables'
// shorthand expanded: "`a.b_p50`, `_p99`" is a.b_p99, "`a.b.c`, `.d`" is a.b.d.
std::vector<std::string> DocumentedKeys() {
  std::ifstream f(SourceDir() + "/docs/formats/topics.md");
  std::stringstream text;
  text << f.rdbuf();
  const std::string doc = text.str();
  const std::size_t begin = doc.find("## Gateway status");
  if (begin == std::string::npos) return {};
  const std::size_t end = doc.find("\n## ", begin + 1);
  std::istringstream section(doc.substr(begin, end - begin));
  std::vector<std::string> keys;
  std::string line;
  while (std::getline(section, line)) {
    if (line.rfind("| `", 0) != 0) continue;
    const std::string cell = line.substr(2, line.find(" | ", 2) - 2);
    std::string full;  // the last key spelled out in this cell
    for (std::size_t at = cell.find('`'); at != std::string::npos;
         at = cell.find('`', cell.find('`', at + 1) + 1)) {
      const std::size_t close = cell.find('`', at + 1);
      if (close == std::string::npos) break;
      std::string token = cell.substr(at + 1, close - at - 1);
      if ((token[0] == '_' || token[0] == '.') && !full.empty()) {
        token = full.substr(0, full.rfind(token[0])) + token;
      } else {
        full = token;
      }
      keys.push_back(token);
    }
  }
  return keys;
}

TEST(StatusReport, HasEveryKeyTheDocsPromise) {
  const std::vector<std::string> keys = DocumentedKeys();
  ASSERT_GT(keys.size(), 60u) << "docs/formats/topics.md: the Gateway status tables not found";
  GatewayCounters n;
  const json j = StatusReport(Figures(n));
  for (const std::string& key : keys) {
    const json* at = &j;
    std::size_t from = 0;
    bool found = true;
    while (found) {
      const std::size_t dot = key.find('.', from);
      const std::string part = key.substr(from, dot == std::string::npos ? dot : dot - from);
      found = at->is_object() && at->contains(part);
      if (found) at = &(*at)[part];
      if (dot == std::string::npos) break;
      from = dot + 1;
    }
    EXPECT_TRUE(found) << "docs/formats/topics.md promises gateway/status key " << key;
  }
}

TEST(RateMeter, GrowthPerSecondOverTheLastTenSeconds) {
  RateMeter m;
  EXPECT_FALSE(m.PerSecond(0, 0).has_value()) << "no sample yet";
  m.Sample(0, 0);
  m.Sample(400, 40);  // the same second: ignored
  EXPECT_FALSE(m.PerSecond(900, 90).has_value()) << "less than a second of history";
  for (std::int64_t s = 1; s <= 30; ++s) m.Sample(s * 1000, static_cast<std::uint64_t>(s * 100));
  // Steady 100/s: the oldest sample within 10 s is from 21 s (2,100); at 30.5 s the total is 3,050.
  ASSERT_TRUE(m.PerSecond(30'500, 3'050).has_value());
  EXPECT_NEAR(*m.PerSecond(30'500, 3'050), (3'050.0 - 2'100.0) / 9.5, 1e-9);
  // Nothing more stored: the rate falls as the window slides, to 0 after 10 s.
  for (std::int64_t s = 31; s <= 45; ++s) m.Sample(s * 1000, 3'000);
  EXPECT_DOUBLE_EQ(*m.PerSecond(45'000, 3'000), 0.0);
}

TEST(RateMeter, NoTickForTheWholeWindowGivesNoRate) {
  RateMeter m;
  m.Sample(0, 0);
  m.Sample(1'000, 10);
  EXPECT_FALSE(m.PerSecond(12'000, 10).has_value());
}

TEST(StatusReport, IngestRateIsRoundedOrNull) {
  GatewayCounters n;
  StatusInputs in;
  in.counters = &n;
  EXPECT_TRUE(StatusReport(in)["ingest"]["rate_per_s"].is_null());
  in.ingest_rate_per_s = 12.345;
  EXPECT_DOUBLE_EQ(StatusReport(in)["ingest"]["rate_per_s"].get<double>(), 12.3);
}

}  // namespace
}  // namespace outpost::gateway::app
