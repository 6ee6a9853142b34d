// The gateway's store-and-forward uplink against the real parts: a real Mosquitto, the real
// outpost-gateway, the real outpost-cloud and a fault-injecting proxy between gateway and cloud
// (tests/support/fault_proxy.h). Every test runs against both cloud backends: SQLite in a temp
// dir and PostgreSQL on a throwaway server started here. Readings are published with QoS 1 in
// the native payload with boot/seq, so what arrived in the cloud is checked reading by reading:
// every one exactly once, and per device in seq order of arrival.
// Promise mapping: docs/guarantees.md ("Store-and-forward").
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <regex>
#include <set>
#include <string>
#include <thread>

#include "gateway_harness.h"
#include "outpost/sqlite/database.h"
#include "outpost/testing/cloud_process.h"
#include "outpost/testing/fault_proxy.h"
#include "outpost/testing/postgres_process.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/temp_dir.h"
#include "outpost/testing/wait_until.h"

namespace outpost::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::string Native(const std::string& device, int boot, int seq, double temperature) {
  return json{{"deviceId", device},         {"boot", boot},     {"seq", seq},
              {"temperature", temperature}, {"humidity", 40.0}, {"battery", 90.0}}
      .dump();
}

struct CloudRow {
  std::string device_id;
  std::int64_t boot, seq;
};

// Reads what the cloud stored, straight from its database (schema: cloud/storage, docs/cloud.md;
// readings are keyed by a device dictionary). One implementation per backend; every error
// (open, prepare, step, connect, query) is returned, never an empty result.
class CloudDb {
 public:
  virtual ~CloudDb() = default;
  // Readings of `gateway` in the order the cloud stored them.
  virtual Result<std::vector<CloudRow>> Readings(const std::string& gateway) = 0;
  // Rows of `table` (a fixed name from the test, not input, optionally with a WHERE clause).
  virtual Result<std::int64_t> Count(const std::string& table) = 0;
  // The first reading as {"device", "src" (ts_source), "ts" (ts_ms), "m" (metrics object)}.
  virtual Result<json> FirstReading() = 0;
};

class SqliteCloudDb : public CloudDb {
 public:
  explicit SqliteCloudDb(std::string path) : path_(std::move(path)) {}

  Result<std::vector<CloudRow>> Readings(const std::string& gateway) override {
    std::vector<CloudRow> out;
    Status s =
        Run("SELECT d.device_id, r.id_a, r.id_b FROM readings r JOIN devices d ON "
            "d.id = r.device_key WHERE d.gateway_id = ?1 ORDER BY r.id",
            gateway, [&](const sqlite::Statement& st) {
              out.push_back(CloudRow{st.Text(0), st.Int(1), st.Int(2)});
            });
    if (!s.ok()) return s;
    return out;
  }

  Result<std::int64_t> Count(const std::string& table) override {
    std::vector<std::int64_t> n;
    Status s = Run("SELECT count(*) FROM " + table, "",
                   [&](const sqlite::Statement& st) { n.push_back(st.Int(0)); });
    if (!s.ok()) return s;
    if (n.size() != 1) return Internal("count(*) of " + table + " returned no row");
    return n[0];
  }

  Result<json> FirstReading() override {
    std::vector<std::string> rows;
    Status s =
        Run("SELECT json_object('device', d.device_id, 'src', r.ts_source, 'ts', r.ts_ms, 'm', "
            "json(r.metrics)) "
            "FROM readings r JOIN devices d ON d.id = r.device_key ORDER BY r.id LIMIT 1",
            "", [&](const sqlite::Statement& st) { rows.push_back(st.Text(0)); });
    if (!s.ok()) return s;
    if (rows.empty()) return Status(Code::kNotFound, "no reading in the cloud");
    return json::parse(rows[0]);
  }

 private:
  // Runs `sql` with an optional text parameter ?1, calling `row` for each result row.
  Status Run(const std::string& sql, const std::string& param,
             const std::function<void(const sqlite::Statement&)>& row) {
    sqlite::OpenOptions o;
    o.flags = SQLITE_OPEN_READONLY;
    o.busy_timeout_ms = 2000;
    auto db = sqlite::Database::Open(path_, o);
    if (!db.ok()) return db.status();
    sqlite::Statement st;
    Status s = db->Prepare(&st, sql);
    if (!s.ok()) return Status(s.code(), "cloud schema changed? " + s.message());
    if (!param.empty()) st.Bind(1, param);
    while (st.Step(&s)) row(st);
    return s;
  }

  std::string path_;
};

class PostgresCloudDb : public CloudDb {
 public:
  explicit PostgresCloudDb(std::string uri) : uri_(std::move(uri)) {}

  Result<std::vector<CloudRow>> Readings(const std::string& gateway) override {
    // PostgreSQL's readings have no arrival id: received_ms orders the batches, and ctid (the
    // heap position; readings are insert-only) the rows of one batch as the cloud inserted them.
    auto r = Exec(
        "SELECT d.device_id, r.id_a, r.id_b FROM readings r JOIN devices d ON "
        "d.id = r.device_key WHERE d.gateway_id = $1 ORDER BY r.received_ms, r.ctid",
        gateway);
    if (!r.ok()) return r.status();
    std::vector<CloudRow> out;
    for (const auto& row : *r) {
      out.push_back(
          CloudRow{row[0].as<std::string>(), row[1].as<std::int64_t>(), row[2].as<std::int64_t>()});
    }
    return out;
  }

  Result<std::int64_t> Count(const std::string& table) override {
    auto r = Exec("SELECT count(*) FROM " + table);
    if (!r.ok()) return r.status();
    if (r->size() != 1) return Internal("count(*) of " + table + " returned no row");
    return (*r)[0][0].as<std::int64_t>();
  }

  Result<json> FirstReading() override {
    auto r = Exec(
        "SELECT json_build_object('device', d.device_id, 'src', r.ts_source, 'ts', r.ts_ms, 'm', "
        "r.metrics) "
        "FROM readings r JOIN devices d ON d.id = r.device_key "
        "ORDER BY r.received_ms, r.ctid LIMIT 1");
    if (!r.ok()) return r.status();
    if (r->empty()) return Status(Code::kNotFound, "no reading in the cloud");
    return json::parse((*r)[0][0].as<std::string>());
  }

 private:
  // libpqxx throws; the exceptions stop here and become a Status.
  template <typename... Params>
  Result<pqxx::result> Exec(const std::string& sql, const Params&... params) {
    try {
      if (!conn_) conn_ = std::make_unique<pqxx::connection>(uri_);
      pqxx::nontransaction tx(*conn_);
      return tx.exec_params(sql, params...);
    } catch (const pqxx::broken_connection& e) {
      conn_.reset();
      return Unavailable("connect " + uri_ + ": " + e.what());
    } catch (const std::exception& e) {
      return Internal("cloud schema changed? '" + sql + "': " + e.what());
    }
  }

  std::string uri_;
  std::unique_ptr<pqxx::connection> conn_;
};

// A real outpost-cloud on a free port with its own database: a SQLite file, or `postgres_uri`
// (a fresh database on the shared throwaway server).
class Cloud {
 public:
  Status Start(const std::string& postgres_uri = "") {
    std::string database;
    if (postgres_uri.empty()) {
      const std::string path = dir_.File("cloud.db");
      database = "sqlite:" + path;
      db_ = std::make_unique<SqliteCloudDb>(path);
    } else {
      database = postgres_uri;
      db_ = std::make_unique<PostgresCloudDb>(postgres_uri);
    }
    auto token = CreateCloudToken(database, kGatewayId, dir_.path());
    if (!token.ok()) return token.status();
    token_ = std::move(token).value();
    CloudOptions o;
    o.database = database;
    o.log_dir = dir_.path();
    auto cloud = CloudProcess::Start(std::move(o));
    if (!cloud.ok()) return cloud.status();
    process_ = std::move(cloud).value();
    return Status::Ok();
  }
  CloudDb& db() { return *db_; }
  const std::string& token() const { return token_; }
  std::uint16_t port() const { return process_ ? process_->port() : 0; }
  std::string log() const { return process_ ? process_->log() : ""; }

 private:
  TempDir dir_{"outpost-uplink-cloud"};
  std::string token_;
  std::unique_ptr<CloudDb> db_;
  std::unique_ptr<CloudProcess> process_;
};

// The suite runs once per cloud backend (the parameter: "sqlite" or "postgresql").
class UplinkTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(DefaultCloudBinary())) {
      GTEST_SKIP() << "outpost-cloud not built at " << DefaultCloudBinary();
    }
    std::string postgres_uri;
    if (GetParam() == "postgresql") {
      OUTPOST_ASSERT_OK_AND_ASSIGN(postgres_uri, FreshPostgresDatabase("uplink"));
    }
    OUTPOST_ASSERT_OK(cloud_.Start(postgres_uri)) << cloud_.log();
    OUTPOST_ASSERT_OK_AND_ASSIGN(proxy_, FaultProxy::Start("127.0.0.1", cloud_.port()));
  }

  // Starts broker + gateway with the uplink pointed at the proxy; `overrides` replace or add
  // keys under cloud: (YAML keys must be unique, so they are merged here).
  Status StartGateway(const std::map<std::string, std::string>& overrides = {}) {
    std::map<std::string, std::string> keys = {
        {"api_endpoint", proxy_->url()}, {"api_key", cloud_.token()},
        {"batch_delay_ms", "50"},        {"retry_base_ms", "50"},
        {"retry_cap_ms", "400"},         {"request_timeout_ms", "3000"},
        {"connect_timeout_ms", "500"}};
    for (const auto& [k, v] : overrides) keys[k] = v;
    std::string yaml = "cloud:\n";
    for (const auto& [k, v] : keys) yaml += "  " + k + ": " + v + "\n";
    return h_.Start(yaml);
  }

  void Publish(const std::string& device, int boot, int from, int to) {
    for (int seq = from; seq <= to; ++seq) {
      OUTPOST_ASSERT_OK(
          h_.devices().Publish("sensors/" + device + "/data", Native(device, boot, seq, 20.0), 1));
    }
  }

  // Readings of our gateway in the cloud, in stored order; a failed read fails the test.
  std::vector<CloudRow> Readings() {
    auto rows = cloud_.db().Readings(kGatewayId);
    if (!rows.ok()) {
      ADD_FAILURE() << "reading the cloud's database: " << rows.status().ToString();
      return {};
    }
    return std::move(rows).value();
  }

  // Rows in the cloud's `table`; a failed read fails the test (and returns -1).
  std::int64_t Count(const std::string& table) {
    auto n = cloud_.db().Count(table);
    if (!n.ok()) {
      ADD_FAILURE() << "counting " << table << ": " << n.status().ToString();
      return -1;
    }
    return *n;
  }

  // Waits until the cloud holds `n` readings of ours (or the deadline passes, or a read fails).
  std::vector<CloudRow> WaitCloud(std::size_t n, std::chrono::milliseconds timeout = 60s) {
    std::vector<CloudRow> rows;
    // A timeout is not a failure here: the caller checks the rows it got.
    (void)WaitUntil("the cloud holds the readings", timeout, [&] {
      auto read = cloud_.db().Readings(kGatewayId);
      if (!read.ok()) {
        ADD_FAILURE() << "reading the cloud's database: " << read.status().ToString();
        return true;
      }
      rows = std::move(read).value();
      return rows.size() >= n;
    });
    return rows;
  }

  // Every (device, boot, seq) of `expected` exactly once, and per device in increasing seq.
  void ExpectExactlyOnceInOrder(const std::vector<CloudRow>& rows,
                                const std::map<std::string, std::pair<int, int>>& expected) {
    std::map<std::string, std::int64_t> last;
    std::set<std::tuple<std::string, std::int64_t, std::int64_t>> seen;
    std::size_t want = 0;
    for (const auto& [dev, range] : expected) want += range.second - range.first + 1;
    for (const auto& r : rows) {
      EXPECT_TRUE(seen.emplace(r.device_id, r.boot, r.seq).second)
          << "duplicate " << r.device_id << " " << r.seq;
      auto it = last.find(r.device_id);
      if (it != last.end()) {
        EXPECT_GT(r.seq, it->second) << "out of order for " << r.device_id;
      }
      last[r.device_id] = r.seq;
    }
    EXPECT_EQ(rows.size(), want);
    for (const auto& [dev, range] : expected) {
      for (int s = range.first; s <= range.second; ++s) {
        EXPECT_TRUE(seen.count({dev, 1, s})) << "missing " << dev << " seq " << s;
      }
    }
  }

  Result<json> WaitCloudStatus(const std::function<bool(const json&)>& pred,
                               std::chrono::milliseconds timeout = 30s) {
    return h_.WaitStatus([&](const json& j) { return j.contains("cloud") && pred(j["cloud"]); },
                         timeout);
  }

  std::int64_t Backlog(const json& cloud) {
    return cloud["backlog"]["readings"].get<std::int64_t>();
  }

  Cloud cloud_;
  std::unique_ptr<FaultProxy> proxy_;
  GatewayHarness h_;
};

TEST_P(UplinkTest, uplink_delivers_backlog_after_cloud_outage_exactly_once_in_order) {
  OUTPOST_ASSERT_OK(proxy_->SetMode(FaultMode::kDown));
  OUTPOST_ASSERT_OK(StartGateway()) << h_.gateway_log();
  Publish("n1", 1, 1, 150);
  Publish("n2", 1, 1, 150);
  Publish("n3", 1, 1, 100);
  // While the cloud is away the backlog and the last error are visible.
  auto st = WaitCloudStatus([&](const json& c) {
    return Backlog(c) == 400 && !c["last_error"].is_null() && c["retries"].get<int>() > 0;
  });
  OUTPOST_ASSERT_OK(st);
  const json& cl = (*st)["cloud"];
  EXPECT_TRUE(cl["enabled"].get<bool>());
  EXPECT_EQ(cl["protocol"], "seed");
  EXPECT_GT(cl["backlog"]["bytes"].get<std::int64_t>(), 400 * 50);
  EXPECT_GE(cl["backlog"]["oldest_age_s"].get<double>(), 0.0);
  EXPECT_TRUE(cl["last_success_ms"].is_null());
  EXPECT_TRUE((*st)["last_cloud_sync"].is_null());
  EXPECT_TRUE(Readings().empty());

  OUTPOST_ASSERT_OK(proxy_->SetMode(FaultMode::kPass));
  auto rows = WaitCloud(400);
  ExpectExactlyOnceInOrder(rows, {{"n1", {1, 150}}, {"n2", {1, 150}}, {"n3", {1, 100}}});
  // The outbox empties when the last batch commits, and the uplink records its success just
  // after: a report can fall between the two, so wait for both (a success never recorded fails).
  st = WaitCloudStatus([&](const json& c) {
    return Backlog(c) == 0 && c["in_flight_key"].is_null() && !c["last_success_ms"].is_null() &&
           c["sent"]["readings"].get<int>() == 400;
  });
  OUTPOST_ASSERT_OK(st);
  EXPECT_TRUE((*st)["last_cloud_sync"].is_number());
  EXPECT_EQ((*st)["cloud"]["dropped"]["quota_oldest"], 0);
  OUTPOST_ASSERT_OK(h_.StopGateway());
}

TEST_P(UplinkTest, uplink_retries_after_500) {
  OUTPOST_ASSERT_OK(StartGateway()) << h_.gateway_log();
  proxy_->FailNext(FaultMode::kError500, 4);
  Publish("n1", 1, 1, 60);
  Publish("n2", 1, 1, 60);
  auto rows = WaitCloud(120);
  ExpectExactlyOnceInOrder(rows, {{"n1", {1, 60}}, {"n2", {1, 60}}});
  EXPECT_EQ(proxy_->counts()[FaultMode::kError500], 4);
  // The retries carried the key of the batch that failed.
  auto reqs = proxy_->requests();
  ASSERT_GE(reqs.size(), 5u);
  for (int i = 1; i < 5; ++i) EXPECT_EQ(reqs[i].idempotency_key, reqs[0].idempotency_key);
  auto st = WaitCloudStatus([&](const json& c) { return Backlog(c) == 0; });
  OUTPOST_ASSERT_OK(st);
  EXPECT_GE((*st)["cloud"]["retries"].get<int>(), 4);
  EXPECT_NE((*st)["cloud"]["last_error"]["message"].get<std::string>().find("HTTP 500"),
            std::string::npos);
}

TEST_P(UplinkTest, uplink_honours_retry_after_on_429) {
  OUTPOST_ASSERT_OK(StartGateway()) << h_.gateway_log();
  proxy_->FailNext(FaultMode::kTooMany429, 2, /*retry_after_s=*/1);
  Publish("n1", 1, 1, 40);
  auto rows = WaitCloud(40);
  ExpectExactlyOnceInOrder(rows, {{"n1", {1, 40}}});
  auto reqs = proxy_->requests();
  ASSERT_GE(reqs.size(), 3u);
  ASSERT_EQ(reqs[0].mode, FaultMode::kTooMany429);
  // retry_cap_ms is 400 ms: only Retry-After explains a wait of a second.
  EXPECT_GE(reqs[1].at_ms - reqs[0].at_ms, 950);
  EXPECT_GE(reqs[2].at_ms - reqs[1].at_ms, 950);
  EXPECT_EQ(reqs[1].idempotency_key, reqs[0].idempotency_key);
}

TEST_P(UplinkTest, uplink_survives_slow_cloud) {
  // Slow answers within the timeout, then answers slower than cloud.request_timeout_ms: the
  // gateway gives up on those (the cloud stored them anyway) and retries with the same key.
  OUTPOST_ASSERT_OK(StartGateway({{"request_timeout_ms", "500"}})) << h_.gateway_log();
  OUTPOST_ASSERT_OK(proxy_->SetMode(FaultMode::kDelay, 200));
  Publish("n1", 1, 1, 30);
  auto rows = WaitCloud(30);
  ExpectExactlyOnceInOrder(rows, {{"n1", {1, 30}}});
  proxy_->FailNext(FaultMode::kDelay, 2, 1500);
  Publish("n1", 1, 31, 60);
  rows = WaitCloud(60);
  auto st = WaitCloudStatus([&](const json& c) { return Backlog(c) == 0; });
  OUTPOST_ASSERT_OK(st);
  rows = Readings();
  ExpectExactlyOnceInOrder(rows, {{"n1", {1, 60}}});
  EXPECT_NE((*st)["cloud"]["last_error"]["message"].get<std::string>().find("timed out"),
            std::string::npos)
      << (*st)["cloud"].dump();
}

TEST_P(UplinkTest, uplink_dropped_connection_before_store_is_retried) {
  OUTPOST_ASSERT_OK(StartGateway()) << h_.gateway_log();
  proxy_->FailNext(FaultMode::kDropBeforeForward, 3);
  Publish("n1", 1, 1, 50);
  auto rows = WaitCloud(50);
  ExpectExactlyOnceInOrder(rows, {{"n1", {1, 50}}});
  EXPECT_EQ(proxy_->counts()[FaultMode::kDropBeforeForward], 3);
}

TEST_P(UplinkTest, uplink_dropped_connection_after_store_no_duplicate) {
  OUTPOST_ASSERT_OK(StartGateway()) << h_.gateway_log();
  proxy_->FailNext(FaultMode::kDropAfterForward, 3);
  Publish("n1", 1, 1, 50);
  Publish("n2", 1, 1, 50);
  auto rows = WaitCloud(100);
  auto st = WaitCloudStatus([&](const json& c) { return Backlog(c) == 0; });
  OUTPOST_ASSERT_OK(st);
  rows = Readings();
  ExpectExactlyOnceInOrder(rows, {{"n1", {1, 50}}, {"n2", {1, 50}}});
  EXPECT_EQ(proxy_->counts()[FaultMode::kDropAfterForward], 3);
  // The cloud stored the first attempt; the retry with the same key was a replay.
  EXPECT_GE((*st)["cloud"]["sent"]["replayed"].get<int>(), 1);
}

TEST_P(UplinkTest, uplink_sigkill_mid_upload_no_duplicate) {
  OUTPOST_ASSERT_OK(StartGateway()) << h_.gateway_log();
  // Slow cloud: the batch is persisted and on the wire when the gateway dies.
  OUTPOST_ASSERT_OK(proxy_->SetMode(FaultMode::kDelay, 1500));
  Publish("n1", 1, 1, 80);
  Publish("n2", 1, 1, 80);
  ASSERT_TRUE(
      WaitUntil("a request at the proxy", 20s, [&] { return !proxy_->requests().empty(); }));
  const std::string key = proxy_->requests().front().idempotency_key;
  h_.KillGateway();
  OUTPOST_ASSERT_OK(proxy_->SetMode(FaultMode::kPass));
  OUTPOST_ASSERT_OK(h_.StartGateway()) << h_.gateway_log();
  auto rows = WaitCloud(160);
  auto st = WaitCloudStatus([&](const json& c) { return Backlog(c) == 0; });
  OUTPOST_ASSERT_OK(st);
  rows = Readings();
  ExpectExactlyOnceInOrder(rows, {{"n1", {1, 80}}, {"n2", {1, 80}}});
  // After the restart the persisted batch went again under its key.
  bool resent = false;
  auto reqs = proxy_->requests();
  for (std::size_t i = 1; i < reqs.size(); ++i) resent |= reqs[i].idempotency_key == key;
  EXPECT_TRUE(resent) << "key " << key << " not resent";
}

TEST_P(UplinkTest, uplink_quota_drop_oldest_counts_every_drop) {
  OUTPOST_ASSERT_OK(proxy_->SetMode(FaultMode::kDown));
  // ~200 bytes per queued reading: 8 KiB holds about 40.
  OUTPOST_ASSERT_OK(StartGateway({{"quota_bytes", "8KiB"}})) << h_.gateway_log();
  Publish("n1", 1, 1, 200);
  auto st = WaitCloudStatus([&](const json& c) {
    return Backlog(c) + c["dropped"]["quota_oldest"].get<std::int64_t>() == 200;
  });
  OUTPOST_ASSERT_OK(st);
  const json c = (*st)["cloud"];
  const std::int64_t kept = Backlog(c);
  const std::int64_t dropped = c["dropped"]["quota_oldest"].get<std::int64_t>();
  EXPECT_GT(dropped, 100);
  EXPECT_GT(kept, 10);
  EXPECT_LE(c["backlog"]["bytes"].get<std::int64_t>(), 8 * 1024);
  EXPECT_EQ(c["dropped"]["quota_rejected"], 0);
  OUTPOST_ASSERT_OK(proxy_->SetMode(FaultMode::kPass));
  auto rows = WaitCloud(static_cast<std::size_t>(kept));
  // Exactly the survivors, each once, in order: the batch that was in flight when the quota
  // hit (never dropped: a prefix) and the newest readings; every other one counted as dropped.
  ASSERT_EQ(static_cast<std::int64_t>(rows.size()), kept);
  std::int64_t prev = 0;
  for (const auto& r : rows) {
    EXPECT_GT(r.seq, prev);
    prev = r.seq;
  }
  EXPECT_EQ(rows.back().seq, 200);
  std::int64_t gaps = 0;  // the dropped run sits between the prefix and the suffix
  for (std::size_t i = 1; i < rows.size(); ++i) gaps += rows[i].seq != rows[i - 1].seq + 1;
  EXPECT_LE(gaps, 1);
  auto end = WaitCloudStatus([&](const json& cj) { return Backlog(cj) == 0; });
  OUTPOST_ASSERT_OK(end);
  EXPECT_EQ((*end)["cloud"]["sent"]["readings"].get<std::int64_t>() +
                (*end)["cloud"]["dropped"]["quota_oldest"].get<std::int64_t>(),
            200);
}

TEST_P(UplinkTest, uplink_quota_reject_new_counts) {
  OUTPOST_ASSERT_OK(proxy_->SetMode(FaultMode::kDown));
  OUTPOST_ASSERT_OK(StartGateway({{"quota_bytes", "8KiB"}, {"when_full", "reject_new"}}))
      << h_.gateway_log();
  Publish("n1", 1, 1, 200);
  auto st = WaitCloudStatus([&](const json& c) {
    return Backlog(c) + c["dropped"]["quota_rejected"].get<std::int64_t>() == 200;
  });
  OUTPOST_ASSERT_OK(st);
  const std::int64_t kept = Backlog((*st)["cloud"]);
  EXPECT_EQ((*st)["cloud"]["dropped"]["quota_oldest"], 0);
  EXPECT_EQ((*st)["ingest"]["stored"], 200);  // stored locally all the same
  OUTPOST_ASSERT_OK(proxy_->SetMode(FaultMode::kPass));
  auto rows = WaitCloud(static_cast<std::size_t>(kept));
  ExpectExactlyOnceInOrder(rows, {{"n1", {1, static_cast<int>(kept)}}});  // the oldest kept
}

TEST_P(UplinkTest, uplink_seed_protocol_body) {
  OUTPOST_ASSERT_OK(StartGateway()) << h_.gateway_log();
  // The seed ESP32's payload (uptime timestamp: the gateway's time is used and said so).
  OUTPOST_ASSERT_OK(h_.devices().Publish(
      "sensors/data",
      R"({"deviceId":"esp32_sensor_001","timestamp":123456,"temperature":22.5,)"
      R"("humidity":45.2,"motion":false,"battery":87.5,"rssi":-65})",
      1));
  (void)WaitUntil("a reading in the cloud", 30s,
                  [&] { return Count("readings") >= 1 || HasFailure(); });
  ASSERT_EQ(Count("readings"), 1);
  // The cloud stores before it answers: the proxy records the status once the answer is back.
  ASSERT_TRUE(WaitUntil("the proxy has the cloud's answer", 10s, [&] {
    auto r = proxy_->requests();
    return !r.empty() && r[0].status != 0;
  }));
  auto reqs = proxy_->requests();
  EXPECT_EQ(reqs[0].path, "/sensor-data/batch");
  EXPECT_EQ(reqs[0].status, 200);
  // Every metric of the flat seed object arrived (booleans as 0/1), with the gateway's time.
  auto first = cloud_.db().FirstReading();
  OUTPOST_ASSERT_OK(first);
  const json& row = *first;
  EXPECT_EQ(row["device"], "esp32_sensor_001");
  EXPECT_EQ(row["src"], "gateway");  // the seed's millis() uptime was replaced
  EXPECT_DOUBLE_EQ(row["m"]["temperature"].get<double>(), 22.5);
  EXPECT_DOUBLE_EQ(row["m"]["humidity"].get<double>(), 45.2);
  EXPECT_DOUBLE_EQ(row["m"]["battery"].get<double>(), 87.5);
  EXPECT_DOUBLE_EQ(row["m"]["rssi"].get<double>(), -65);
  EXPECT_DOUBLE_EQ(row["m"]["motion"].get<double>(), 0);
}

TEST_P(UplinkTest, uplink_native_protocol_carries_alerts_and_statuses) {
  OUTPOST_ASSERT_OK(StartGateway({{"protocol", "native"}})) << h_.gateway_log();
  OUTPOST_ASSERT_OK(h_.devices().Publish("devices/n9/status", "online", 1));
  Publish("n9", 1, 1, 5);
  OUTPOST_ASSERT_OK(
      h_.devices().Publish("sensors/n9/data", Native("n9", 1, 6, 41.0), 1));  // > 35 °C
  (void)WaitUntil("readings, an alert and a status in the cloud", 30s, [&] {
    return (Count("readings") >= 6 && Count("alerts") >= 1 && Count("statuses") >= 1) ||
           HasFailure();
  });
  EXPECT_EQ(Count("readings"), 6);
  EXPECT_GE(Count("alerts"), 1);
  EXPECT_GE(Count("statuses"), 1);
  auto reqs = proxy_->requests();
  ASSERT_FALSE(reqs.empty());
  EXPECT_EQ(reqs[0].path, "/v1/batches");
  ExpectExactlyOnceInOrder(Readings(), {{"n9", {1, 6}}});
}

// An acknowledgement made in the API while the cloud is unreachable waits in the outbox and
// reaches the cloud once, also when the connection drops after the cloud stored it.
TEST_P(UplinkTest, alert_ack_made_while_the_cloud_is_down_reaches_it_once) {
  OUTPOST_ASSERT_OK(proxy_->SetMode(FaultMode::kDown));
  OUTPOST_ASSERT_OK(StartGateway({{"protocol", "native"}})) << h_.gateway_log();
  OUTPOST_ASSERT_OK(
      h_.devices().Publish("sensors/n9/data", Native("n9", 1, 1, 41.0), 1));  // > 35 °C
  httplib::Client api("127.0.0.1", h_.http_port());
  api.set_bearer_token_auth(h_.token());
  std::string id;
  ASSERT_TRUE(WaitUntil("the alert is listed", 20s, [&] {
    auto r = api.Get("/api/v1/alerts?state=active");
    if (!r || r->status != 200) return false;
    json j = json::parse(r->body, nullptr, false);
    if (j.is_discarded() || j["alerts"].empty()) return false;
    id = j["alerts"][0]["id"].get<std::string>();
    return true;
  }));
  auto ack =
      api.Post("/api/v1/alerts/" + id + "/ack", R"({"comment":"on my way"})", "application/json");
  ASSERT_TRUE(ack);
  ASSERT_EQ(ack->status, 200) << ack->body;
  auto again = api.Post("/api/v1/alerts/" + id + "/ack", "", "application/json");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 409) << again->body;

  proxy_->FailNext(FaultMode::kDropAfterForward, 2);
  OUTPOST_ASSERT_OK(proxy_->SetMode(FaultMode::kPass));
  auto st = WaitCloudStatus([&](const json& c) {
    return c["backlog"]["alerts"] == 0 && c["in_flight_key"].is_null() &&
           !c["last_success_ms"].is_null();
  });
  OUTPOST_ASSERT_OK(st) << h_.gateway_log();
  EXPECT_EQ(Count("alerts WHERE state = 'raised'"), 1);
  EXPECT_EQ(Count("alerts WHERE state = 'acked'"), 1);
  EXPECT_EQ(
      Count("alerts WHERE state = 'acked' AND message = 'acknowledged by token:test-harness: on my way'"),
      1);
  EXPECT_EQ(proxy_->counts()[FaultMode::kDropAfterForward], 2);
}

TEST_P(UplinkTest, uplink_sync_cloud_drains_now) {
  // A long linger: without sync_cloud nothing would go for a minute.
  OUTPOST_ASSERT_OK(StartGateway({{"batch_delay_ms", "60000"}, {"sync_interval_s", "60"}}))
      << h_.gateway_log();
  Publish("n1", 1, 1, 10);
  auto st = WaitCloudStatus([&](const json& c) { return Backlog(c) == 10; });
  OUTPOST_ASSERT_OK(st);
  EXPECT_TRUE(Readings().empty());
  OUTPOST_ASSERT_OK(
      h_.devices().Publish("gateway/commands", R"({"command":"sync_cloud","id":"s1"})", 1));
  auto rows = WaitCloud(10, 10s);
  ExpectExactlyOnceInOrder(rows, {{"n1", {1, 10}}});
}

// issue 8: a metric name with a space passed the gateway; the cloud answered 400 for the whole
// batch and the gateway dead-lettered every reading in it.
TEST_P(UplinkTest, one_bad_metric_name_does_not_poison_the_batch) {
  OUTPOST_ASSERT_OK(StartGateway({{"protocol", "native"}, {"batch_delay_ms", "2000"}}))
      << h_.gateway_log();
  Publish("n1", 1, 1, 10);
  OUTPOST_ASSERT_OK(h_.devices().Publish(
      "sensors/n2/data", R"({"deviceId":"n2","boot":1,"seq":1,"soil moisture":0.3})", 1));
  Publish("n1", 1, 11, 20);
  auto rows = WaitCloud(20);
  ExpectExactlyOnceInOrder(rows, {{"n1", {1, 20}}});
  auto st = WaitCloudStatus([&](const json& c) { return Backlog(c) == 0; });
  OUTPOST_ASSERT_OK(st);
  EXPECT_EQ((*st)["cloud"]["dropped"]["dead_letter"], 0);
  // Refused at the edge, with its reason, like any bad reading.
  EXPECT_EQ((*st)["ingest"]["rejected_by_reason"]["bad_field_name"], 1) << st->dump();
}

// issue 8: a 404 from a misrouted reverse proxy was a permanent refusal: the backlog was
// dead-lettered batch after batch.
TEST_P(UplinkTest, proxy_404_is_retried_and_alerted_not_dropped) {
  OUTPOST_ASSERT_OK(proxy_->SetMode(FaultMode::kStatus, 404));
  OUTPOST_ASSERT_OK(StartGateway()) << h_.gateway_log();
  OUTPOST_ASSERT_OK(h_.devices().Subscribe("gateway/alerts"));
  Publish("n1", 1, 1, 10);
  auto st = WaitCloudStatus([&](const json& c) { return c["retries"].get<int>() >= 3; });
  OUTPOST_ASSERT_OK(st);
  const json& c = (*st)["cloud"];
  EXPECT_EQ(Backlog(c), 10);
  EXPECT_EQ(c["dropped"]["dead_letter"], 0);
  ASSERT_TRUE(c["alert"].is_object()) << c.dump();
  EXPECT_NE(c["alert"]["message"].get<std::string>().find("HTTP 404"), std::string::npos);
  auto raised = h_.devices().WaitMessage(
      [](const mqtt::Message& m) {
        return m.topic == "gateway/alerts" &&
               m.payload.find("\"state\":\"raised\"") != std::string::npos &&
               m.payload.find("cloud_uplink") != std::string::npos;
      },
      10s);
  OUTPOST_ASSERT_OK(raised);
  OUTPOST_ASSERT_OK(proxy_->SetMode(FaultMode::kStatus, 415));  // another proxy refusal
  st = WaitCloudStatus([&](const json& j) { return j["retries"].get<int>() >= 6; });
  OUTPOST_ASSERT_OK(st);
  EXPECT_EQ((*st)["cloud"]["dropped"]["dead_letter"], 0);
  OUTPOST_ASSERT_OK(proxy_->SetMode(FaultMode::kPass));  // the route is fixed
  ExpectExactlyOnceInOrder(WaitCloud(10), {{"n1", {1, 10}}});
  auto cleared = h_.devices().WaitMessage(
      [](const mqtt::Message& m) {
        return m.topic == "gateway/alerts" &&
               m.payload.find("\"state\":\"cleared\"") != std::string::npos &&
               m.payload.find("cloud_uplink") != std::string::npos;
      },
      10s);
  OUTPOST_EXPECT_OK(cleared);
  st = WaitCloudStatus([&](const json& j) { return j["alert"].is_null(); });
  OUTPOST_EXPECT_OK(st);
}

// issue 8: a 413 (a proxy's body limit) dropped the whole batch as a dead letter.
TEST_P(UplinkTest, cloud_413_splits_the_batch) {
  // About 120 bytes per native reading: a 30-reading batch is ~3.6 KB, the proxy takes 1 KB.
  OUTPOST_ASSERT_OK(proxy_->SetMode(FaultMode::kBodyLimit413, 1000));
  OUTPOST_ASSERT_OK(StartGateway({{"protocol", "native"},
                                  {"batch_delay_ms", "60000"},
                                  {"sync_interval_s", "60"},
                                  {"batch_max_readings", "30"}}))
      << h_.gateway_log();
  Publish("n1", 1, 1, 30);  // a full batch goes at once
  auto rows = WaitCloud(30);
  ExpectExactlyOnceInOrder(rows, {{"n1", {1, 30}}});
  auto st = WaitCloudStatus([&](const json& c) { return Backlog(c) == 0; });
  OUTPOST_ASSERT_OK(st);
  EXPECT_EQ((*st)["cloud"]["dropped"]["dead_letter"], 0);
  EXPECT_GE((*st)["cloud"]["splits_this_run"].get<int>(), 2);
  int too_large = 0;
  for (const auto& r : proxy_->requests()) {
    if (r.status == 413) ++too_large;
    if (r.status == 200) {
      EXPECT_LE(r.body_bytes, 1000u);
    }
  }
  EXPECT_GE(too_large, 3);
  // One reading larger than the limit on its own: a dead letter "too_large", nothing else lost.
  OUTPOST_ASSERT_OK(proxy_->SetMode(FaultMode::kBodyLimit413, 100));
  Publish("n1", 1, 31, 31);
  st = WaitCloudStatus([&](const json& c) { return Backlog(c) == 1; });  // queued, then sync
  OUTPOST_ASSERT_OK(st);
  OUTPOST_ASSERT_OK(
      h_.devices().Publish("gateway/commands", R"({"command":"sync_cloud","id":"s1"})", 1));
  st = WaitCloudStatus([&](const json& c) { return c["dropped"]["dead_letter"].get<int>() == 1; });
  OUTPOST_ASSERT_OK(st);
  EXPECT_EQ((*st)["cloud"]["dropped"]["dead_letter_reasons"]["too_large"], 1);
  EXPECT_EQ(Backlog((*st)["cloud"]), 0);
}

// issue 8: the seed body is larger than the items it is built from and outgrew the limit.
TEST_P(UplinkTest, seed_body_stays_within_batch_max_bytes) {
  OUTPOST_ASSERT_OK(StartGateway({{"batch_max_bytes", "1KiB"}, {"batch_delay_ms", "2000"}}))
      << h_.gateway_log();
  Publish("n1", 1, 1, 30);
  ExpectExactlyOnceInOrder(WaitCloud(30), {{"n1", {1, 30}}});
  auto reqs = proxy_->requests();
  ASSERT_GT(reqs.size(), 2u);
  for (const auto& r : reqs) EXPECT_LE(r.body_bytes, 1024u) << r.idempotency_key;
}

// issue 8 section 5: sync_cloud drained at once, skipping a Retry-After the cloud asked for.
TEST_P(UplinkTest, sync_cloud_does_not_skip_retry_after) {
  OUTPOST_ASSERT_OK(StartGateway({{"batch_delay_ms", "60000"}, {"sync_interval_s", "60"}}))
      << h_.gateway_log();
  Publish("n1", 1, 1, 5);
  auto st = WaitCloudStatus([&](const json& c) { return Backlog(c) == 5; });
  OUTPOST_ASSERT_OK(st);
  proxy_->FailNext(FaultMode::kTooMany429, 1, /*retry_after_s=*/3);
  OUTPOST_ASSERT_OK(
      h_.devices().Publish("gateway/commands", R"({"command":"sync_cloud","id":"s1"})", 1));
  st = WaitCloudStatus([&](const json& c) { return c["retries"].get<int>() == 1; });
  OUTPOST_ASSERT_OK(st);
  // Asked again at once: the cloud's pause still holds.
  OUTPOST_ASSERT_OK(
      h_.devices().Publish("gateway/commands", R"({"command":"sync_cloud","id":"s2"})", 1));
  ExpectExactlyOnceInOrder(WaitCloud(5), {{"n1", {1, 5}}});
  auto reqs = proxy_->requests();
  ASSERT_GE(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].status, 429);
  EXPECT_GE(reqs[1].at_ms - reqs[0].at_ms, 2900) << "sent before the Retry-After";
}

// issue 8 section 6: the seed's own gateway sends millis() as `timestamp` and a julian-day
// created_at; the cloud stored 1970 times. It uses created_at and says so in the stored row.
TEST_P(UplinkTest, seed_gateway_rows_take_created_at_and_say_so) {
  httplib::Client client("127.0.0.1", cloud_.port());
  const std::string body =
      R"({"readings":[{"id":1,"device_id":"esp32_sensor_001","timestamp":50000,)"
      R"("temperature":22.5,"humidity":45.2,"motion":0,"battery":87.5,"rssi":-65,"synced":0,)"
      R"("created_at":2461006.75}]})";
  auto res = client.Post("/sensor-data/batch", {{"Authorization", "Bearer " + cloud_.token()}},
                         body, "application/json");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  ASSERT_EQ(res->status, 200) << res->body;
  auto first = cloud_.db().FirstReading();
  OUTPOST_ASSERT_OK(first);
  EXPECT_EQ((*first)["device"], "esp32_sensor_001");
  EXPECT_EQ((*first)["src"], "gateway");
  EXPECT_EQ((*first)["ts"], 1764223200000);  // 2025-11-27T06:00:00Z, not 1970
}

TEST_P(UplinkTest, uplink_sigterm_does_not_wait_for_a_slow_cloud) {
  OUTPOST_ASSERT_OK(StartGateway({{"request_timeout_ms", "60000"}})) << h_.gateway_log();
  OUTPOST_ASSERT_OK(proxy_->SetMode(FaultMode::kDelay, 30'000));  // a cloud that hangs
  Publish("n1", 1, 1, 5);
  ASSERT_TRUE(
      WaitUntil("a request at the proxy", 20s, [&] { return !proxy_->requests().empty(); }));
  auto t0 = std::chrono::steady_clock::now();
  OUTPOST_ASSERT_OK(h_.StopGateway(10s)) << h_.gateway_log();  // exit 0, long before 30 s
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  // The batch stays persisted for the next run: nothing was lost by stopping.
  auto store = h_.OpenStore();
  OUTPOST_ASSERT_OK(store);
  EXPECT_EQ((*store)->stats().outbox.readings, 5);
  EXPECT_FALSE((*store)->stats().outbox.in_flight_key.empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, UplinkTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
}  // namespace outpost::testing
