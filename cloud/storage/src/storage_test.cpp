// The Storage contract, one suite run against both adapters: SqliteStorage on a real SQLite file
// in a temp dir, PostgresStorage on a fresh database of the shared throwaway PostgreSQL
// (tests/support). (tests/integration/cloud_test.cpp runs the HTTP contract through the binary.)
#include <gtest/gtest.h>

#include <string>

#include "outpost/cloud/storage/open.h"
#include "outpost/testing/postgres_process.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/temp_dir.h"

namespace outpost::cloud::storage {
namespace {

Reading R(const std::string& device, std::int64_t ts_ms, double t, int boot = -1, int seq = 0) {
  Reading r;
  r.device_id = device;
  r.ts_ms = ts_ms;
  r.ts_source = "device";
  if (boot >= 0) {
    r.has_boot_seq = true;
    r.boot = static_cast<std::uint32_t>(boot);
    r.seq = static_cast<std::uint64_t>(seq);
  }
  r.metrics = {{"temperature", t}, {"motion", 1.0}};
  return r;
}

std::string Echo(const WriteCounts& c) {
  return "{\"readings\":" + std::to_string(c.readings) +
         ",\"duplicates\":" + std::to_string(c.duplicates) + ",\"replayed\":false}";
}

// The parameter is the backend: "sqlite" or "postgresql".
class StorageContractTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string url = "sqlite:" + dir_.File("cloud.db");
    if (GetParam() == "postgresql") {
      OUTPOST_ASSERT_OK_AND_ASSIGN(url, outpost::testing::FreshPostgresDatabase("storage"));
    }
    OUTPOST_ASSERT_OK_AND_ASSIGN(storage_, OpenStorage(url));
    OUTPOST_ASSERT_OK(storage_->Migrate());
  }

  WriteResult Write(const Batch& b, std::optional<std::string> key = std::nullopt,
                    const std::string& sha = "sha-a", const std::string& gw = "gw1") {
    auto r = storage_->WriteBatch(gw, key, sha, b, 1'000, Echo);
    OUTPOST_EXPECT_OK(r);
    return r.ok() ? *r : WriteResult{};
  }

  outpost::testing::TempDir dir_{"cloud-storage-test"};
  std::unique_ptr<Storage> storage_;
};

TEST_P(StorageContractTest, MigrateIsIdempotentAndPingWorks) {
  OUTPOST_EXPECT_OK(storage_->Migrate());
  OUTPOST_EXPECT_OK(storage_->Ping());
  EXPECT_EQ(storage_->backend(), GetParam());
}

TEST(DatabaseUrl, Forms) {
  std::string target;
  EXPECT_EQ(ParseDatabaseUrl("sqlite:/tmp/a.db", &target), "sqlite");
  EXPECT_EQ(target, "/tmp/a.db");
  EXPECT_EQ(ParseDatabaseUrl("data/cloud.db", &target), "sqlite");
  EXPECT_EQ(target, "data/cloud.db");
  EXPECT_EQ(ParseDatabaseUrl("postgresql://u@h/db", &target), "postgresql");
  EXPECT_EQ(ParseDatabaseUrl("postgres://u@h/db", &target), "postgresql");
  EXPECT_EQ(ParseDatabaseUrl("mysql://x", &target), "");
  EXPECT_EQ(ParseDatabaseUrl("sqlite:", &target), "");
  auto bad = OpenStorage("mysql://x");
  ASSERT_FALSE(bad.ok());
  OUTPOST_EXPECT_CODE(bad, Code::kInvalidArgument);
}

TEST(DatabaseUrl, PasswordsAreRedactedForLogsAndErrors) {
  EXPECT_EQ(RedactDatabaseUrl("postgresql://outpost:s3cr%40t@db:5432/outpost"),
            "postgresql://outpost:***@db:5432/outpost");
  EXPECT_EQ(RedactDatabaseUrl("postgres://u@db/x?sslmode=require&password=hunter2&x=1"),
            "postgres://u@db/x?sslmode=require&password=***&x=1");
  EXPECT_EQ(RedactDatabaseUrl("postgresql://u:a@db/x?password=b"),
            "postgresql://u:***@db/x?password=***");
  EXPECT_EQ(RedactDatabaseUrl("postgresql://u@db/x"), "postgresql://u@db/x");
  EXPECT_EQ(RedactDatabaseUrl("sqlite:/tmp/a.db"), "sqlite:/tmp/a.db");
  EXPECT_TRUE(DatabaseUrlHasPassword("postgresql://u:p@db/x"));
  EXPECT_TRUE(DatabaseUrlHasPassword("postgresql://u@db/x?password=p"));
  EXPECT_FALSE(DatabaseUrlHasPassword("postgresql://u@db/x"));
  EXPECT_FALSE(DatabaseUrlHasPassword("data/cloud.db"));
  auto bad = OpenStorage("postgresq://u:topsecret@db/x");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().find("topsecret"), std::string::npos) << bad.status().message();
}

TEST_P(StorageContractTest, ReadingIdentityDeduplicates) {
  Batch b;
  b.readings = {R("n1", 100, 1.0, 3, 1), R("n1", 200, 2.0, 3, 2), R("n2", 100, 5.0)};
  WriteResult first = Write(b);
  EXPECT_EQ(first.kind, WriteResult::Kind::kStored);
  EXPECT_EQ(first.counts.readings, 3);
  EXPECT_EQ(first.counts.duplicates, 0);
  // Same (boot, seq) with another timestamp is the same reading; same ts without boot/seq too.
  Batch again;
  again.readings = {R("n1", 999, 9.0, 3, 2), R("n2", 100, 6.0), R("n1", 300, 3.0, 4, 2)};
  WriteResult second = Write(again);
  EXPECT_EQ(second.counts.readings, 1);
  EXPECT_EQ(second.counts.duplicates, 2);
  // Identity is per gateway.
  WriteResult other = Write(b, std::nullopt, "sha", "gw2");
  EXPECT_EQ(other.counts.readings, 3);

  auto devices = storage_->ListDevices("gw1");
  OUTPOST_ASSERT_OK(devices);
  ASSERT_EQ(devices->size(), 2u);
  EXPECT_EQ((*devices)[0].device_id, "n1");
  EXPECT_EQ((*devices)[0].readings, 3);
  EXPECT_EQ((*devices)[0].last_seen_ms, 300);
  auto all = storage_->ListDevices("");
  OUTPOST_ASSERT_OK(all);
  EXPECT_EQ(all->size(), 4u);
}

TEST_P(StorageContractTest, IdempotencyKeyReplaysOrConflicts) {
  Batch b;
  b.readings = {R("n1", 100, 1.0)};
  WriteResult first = Write(b, "k1", "sha-a");
  ASSERT_EQ(first.kind, WriteResult::Kind::kStored);
  EXPECT_EQ(first.record.response, "{\"readings\":1,\"duplicates\":0,\"replayed\":false}");

  Batch more;
  more.readings = {R("n1", 200, 2.0)};
  WriteResult replay = Write(more, "k1", "sha-a");  // same hash: answered from the record
  EXPECT_EQ(replay.kind, WriteResult::Kind::kReplayed);
  EXPECT_EQ(replay.record.response, first.record.response);
  WriteResult reused = Write(more, "k1", "sha-b");
  EXPECT_EQ(reused.kind, WriteResult::Kind::kKeyReused);
  auto devices = storage_->ListDevices("gw1");
  OUTPOST_ASSERT_OK(devices);
  EXPECT_EQ((*devices)[0].readings, 1) << "neither the replay nor the conflict stored anything";

  auto found = storage_->FindIdempotency("gw1", "k1");
  OUTPOST_ASSERT_OK(found);
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->body_sha256, "sha-a");
  auto missing = storage_->FindIdempotency("gw2", "k1");
  OUTPOST_ASSERT_OK(missing);
  EXPECT_FALSE(missing->has_value());

  auto purged = storage_->PurgeIdempotency(1'001);
  OUTPOST_ASSERT_OK(purged);
  EXPECT_EQ(*purged, 1);
  auto gone = storage_->FindIdempotency("gw1", "k1");
  OUTPOST_ASSERT_OK(gone);
  EXPECT_FALSE(gone->has_value());
}

TEST_P(StorageContractTest, AlertsAndStatuses) {
  Batch b;
  Alert a;
  a.id = "gw1:a:1";
  a.device_id = "n1";
  a.rule = "temperature_max";
  a.state = "raised";
  a.message = "hot";
  a.value = 36.2;
  a.ts_ms = 500;
  b.alerts = {a};
  b.statuses = {{"n1", "online", 600}, {"n1", "offline", 400}};
  WriteResult w = Write(b);
  EXPECT_EQ(w.counts.alerts, 1);
  EXPECT_EQ(w.counts.statuses, 2);
  WriteResult again = Write(b);
  EXPECT_EQ(again.counts.duplicates, 3);

  auto devices = storage_->ListDevices("gw1");
  OUTPOST_ASSERT_OK(devices);
  ASSERT_EQ(devices->size(), 1u);
  EXPECT_EQ((*devices)[0].status, "online") << "an older status does not override a newer one";
  EXPECT_EQ((*devices)[0].status_ts_ms, 600);

  AlertsQuery q;
  q.gateway_id = "gw1";
  auto alerts = storage_->QueryAlerts(q);
  OUTPOST_ASSERT_OK(alerts);
  ASSERT_EQ(alerts->size(), 1u);
  EXPECT_EQ((*alerts)[0].alert.message, "hot");
  ASSERT_TRUE((*alerts)[0].alert.value.has_value());
  EXPECT_EQ(*(*alerts)[0].alert.value, 36.2);
  q.from_ms = 501;
  alerts = storage_->QueryAlerts(q);
  OUTPOST_ASSERT_OK(alerts);
  EXPECT_TRUE(alerts->empty());
}

TEST_P(StorageContractTest, PointsAndBuckets) {
  Batch b;
  b.readings = {R("n1", 1000, 1.0), R("n1", 1500, 3.0), R("n1", 2000, 10.0), R("n1", 3999, 20.0),
                R("n2", 1000, 100.0)};
  Reading no_temp = R("n1", 2500, 0.0);
  no_temp.metrics = {{"humidity", 50.0}};
  b.readings.push_back(no_temp);
  Write(b);

  ReadingsQuery q;
  q.gateway_id = "gw1";
  q.device_id = "n1";
  q.metric = "temperature";
  q.from_ms = 1000;
  q.to_ms = 4000;
  auto points = storage_->QueryPoints(q);
  OUTPOST_ASSERT_OK(points);
  ASSERT_EQ(points->size(), 4u) << "the reading without the metric is not a point";
  EXPECT_EQ((*points)[3].ts_ms, 3999);
  EXPECT_EQ((*points)[3].value, 20.0);

  q.step_ms = 1000;
  auto buckets = storage_->QueryBuckets(q);
  OUTPOST_ASSERT_OK(buckets);
  ASSERT_EQ(buckets->size(), 3u);
  EXPECT_EQ((*buckets)[0].ts_ms, 1000);
  EXPECT_EQ((*buckets)[0].min, 1.0);
  EXPECT_EQ((*buckets)[0].max, 3.0);
  EXPECT_EQ((*buckets)[0].avg, 2.0);
  EXPECT_EQ((*buckets)[0].count, 2);
  EXPECT_EQ((*buckets)[1].ts_ms, 2000);
  EXPECT_EQ((*buckets)[1].avg, 10.0);
  EXPECT_EQ((*buckets)[2].ts_ms, 3000);
  EXPECT_EQ((*buckets)[2].count, 1);
  // Buckets are aligned to from_ms: [0, 2000) and [2000, 4000).
  q.from_ms = 0;
  q.step_ms = 2000;
  buckets = storage_->QueryBuckets(q);
  OUTPOST_ASSERT_OK(buckets);
  ASSERT_EQ(buckets->size(), 2u);
  EXPECT_EQ((*buckets)[1].ts_ms, 2000);
  EXPECT_EQ((*buckets)[1].avg, 15.0);

  q.metric = "motion";
  q.step_ms = 0;
  points = storage_->QueryPoints(q);
  OUTPOST_ASSERT_OK(points);
  EXPECT_EQ(points->size(), 4u);
}

TEST_P(StorageContractTest, TokensStoredHashedAndRevocable) {
  auto t1 = storage_->CreateToken("gw1", false, "hash1", 10);
  auto t2 = storage_->CreateToken("gw1", false, "hash2", 11);
  auto t3 = storage_->CreateToken("ops", true, "hash3", 12);
  OUTPOST_ASSERT_OK(t1);
  OUTPOST_ASSERT_OK(t2);
  OUTPOST_ASSERT_OK(t3);
  auto who = storage_->Authenticate("hash3");
  OUTPOST_ASSERT_OK(who);
  EXPECT_EQ(who->gateway_id, "ops");
  EXPECT_TRUE(who->admin);
  OUTPOST_EXPECT_CODE(storage_->Authenticate("nope"), Code::kNotFound);

  auto n = storage_->RevokeToken(t2->id, 20);
  OUTPOST_ASSERT_OK(n);
  EXPECT_EQ(*n, 1);
  EXPECT_FALSE(storage_->Authenticate("hash2").ok());
  OUTPOST_EXPECT_OK(storage_->Authenticate("hash1"));
  n = storage_->RevokeGatewayTokens("gw1", 21);
  OUTPOST_ASSERT_OK(n);
  EXPECT_EQ(*n, 1);
  EXPECT_FALSE(storage_->Authenticate("hash1").ok());

  auto list = storage_->ListTokens();
  OUTPOST_ASSERT_OK(list);
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[1].revoked_ms.value_or(0), 20);
  EXPECT_FALSE((*list)[2].revoked_ms.has_value());
}

TEST_P(StorageContractTest, GatewaysCountBatches) {
  Batch b;
  b.readings = {R("n1", 1, 1.0)};
  Write(b, "k1");
  Write(b, "k2");
  auto gws = storage_->ListGateways("");
  OUTPOST_ASSERT_OK(gws);
  ASSERT_EQ(gws->size(), 1u);
  EXPECT_EQ((*gws)[0].batches, 2);
  EXPECT_EQ((*gws)[0].readings, 1);
}

TEST(SqliteStorageOpen, UnwritablePathIsUnavailable) {
  auto s = OpenStorage("sqlite:/nonexistent-dir/x/cloud.db");
  ASSERT_FALSE(s.ok());
  OUTPOST_EXPECT_CODE(s, Code::kUnavailable);
  EXPECT_NE(s.status().message().find("/nonexistent-dir/x/cloud.db"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Backends, StorageContractTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
}  // namespace outpost::cloud::storage
