// The registry's copy in the gateway's database (registry_db.h) against a real store file made
// by the gateway's own Store::Open (schema 8), and the real Provisioner.
#include "outpost/provision/registry_db.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "outpost/gateway/store/store.h"
#include "outpost/provision/provisioner.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/temp_dir.h"

namespace outpost::provision {
namespace {

constexpr std::int64_t kNow = 1'800'000'000;

class RegistryDbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = tmp_.File("gateway.db");
    {
      gateway::store::Options o;
      o.path = db_;
      auto store = gateway::store::Store::Open(o);  // closed again: the gateway is stopped
      OUTPOST_ASSERT_OK(store.status());
    }
    std::ostringstream log;
    OUTPOST_ASSERT_OK(site_.Init(InitOptions{}, kNow, log));
  }

  std::string Query(const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(db_.c_str(), &db), SQLITE_OK);
    std::string out;
    sqlite3_exec(
        db, sql.c_str(),
        [](void* p, int n, char** v, char**) {
          auto* s = static_cast<std::string*>(p);
          for (int i = 0; i < n; ++i)
            *s += std::string(v[i] ? v[i] : "NULL") + (i + 1 < n ? "|" : "\n");
          return 0;
        },
        &out, nullptr);
    sqlite3_close(db);
    return out;
  }

  testing::TempDir tmp_{"outpost-registry-db"};
  std::string db_;
  std::string dir_ = tmp_.File("pki");
  Provisioner site_{dir_};
};

TEST_F(RegistryDbTest, DeviceAddFillsTheTableAndRevokeUpdatesTheState) {
  OUTPOST_ASSERT_OK(SetSiteGatewayDb(dir_, db_));
  EXPECT_EQ(*SiteGatewayDb(dir_), db_);
  std::ostringstream log;
  AddOptions add;
  add.ids = {"dev1", "dev2"};
  add.check = false;
  OUTPOST_ASSERT_OK(site_.AddDevices(add, kNow, log).status());
  OUTPOST_EXPECT_OK(site_.gateway_db().status());
  EXPECT_NE(log.str().find("device_certificates = devices.tsv (2 rows, 2 written, 0 deleted"),
            std::string::npos)
      << log.str();
  EXPECT_EQ(Query("SELECT device_id, state, mode, updated_ms FROM device_certificates ORDER BY "
                  "device_id"),
            "dev1|active|native|1800000000000\ndev2|active|native|1800000000000\n");
  auto records = site_.List();
  OUTPOST_ASSERT_OK(records.status());
  EXPECT_EQ(Query("SELECT serial, sha256, not_after_unix FROM device_certificates WHERE "
                  "device_id = 'dev1'"),
            (*records)[0].serial_hex + "|" + (*records)[0].sha256 + "|" +
                std::to_string((*records)[0].not_after_unix) + "\n");
  OUTPOST_ASSERT_OK(site_.Revoke("dev1", RevokeOptions{}, kNow + 10, log));
  EXPECT_EQ(Query("SELECT device_id, state, updated_ms FROM device_certificates ORDER BY "
                  "device_id"),
            "dev1|revoked|1800000010000\ndev2|active|1800000000000\n")
      << "only the changed row is written";
}

TEST_F(RegistryDbTest, TheTableFollowsTheFileWhateverItsStatesAndDropsWhatItNoLongerHas) {
  const std::string tsv = tmp_.File("devices.tsv");
  std::ofstream(tsv) << "# id\tserial\tsha256\tnot_after_unix\tstate\tmode\n"
                     << "a\t01\tAA\t100\tactive\tnative\n"
                     << "b\t02\tBB\t200\tactive\tseed\n";
  OUTPOST_ASSERT_OK(SyncRegistryToGatewayDb(db_, tsv, 1).status());
  std::ofstream(tsv) << "# id\tserial\tsha256\tnot_after_unix\tstate\tmode\n"
                     << "a\t01\tAA\t100\trevoked\tnative\n"
                     << "a\t03\tCC\t300\tpending\tnative\n";
  auto stats = SyncRegistryToGatewayDb(db_, tsv, 2);
  OUTPOST_ASSERT_OK(stats.status());
  EXPECT_EQ(stats->rows, 2);
  EXPECT_EQ(stats->written, 2);
  EXPECT_EQ(stats->deleted, 1);
  EXPECT_EQ(Query("SELECT serial, device_id, state, mode, updated_ms FROM device_certificates "
                  "ORDER BY serial"),
            "01|a|revoked|native|2\n03|a|pending|native|2\n");
  std::ofstream(tsv) << "a\t01\tAA\tnot-a-number\tactive\tnative\n";
  EXPECT_EQ(SyncRegistryToGatewayDb(db_, tsv, 3).status().code(), Code::kDataLoss);
  EXPECT_EQ(Query("SELECT count(*) FROM device_certificates"), "2\n") << "left as it was";
}

TEST_F(RegistryDbTest, AMissingDatabaseOrAnOldSchemaIsAClearErrorAndDevicesTsvIsStillWritten) {
  std::ostringstream log;
  AddOptions add;
  add.ids = {"dev1"};
  add.check = false;
  site_.gateway_db().set_override(tmp_.File("nowhere.db"));
  OUTPOST_ASSERT_OK(site_.AddDevices(add, kNow, log).status());
  EXPECT_EQ(site_.gateway_db().status().code(), Code::kUnavailable);
  EXPECT_NE(site_.gateway_db().status().message().find(tmp_.File("nowhere.db") +
                                                       " does not exist: start outpost-gateway"),
            std::string::npos)
      << site_.gateway_db().status().message();
  EXPECT_NE(site_.gateway_db().status().message().find("devices.tsv was written"),
            std::string::npos);
  EXPECT_NE(::access(tmp_.File("nowhere.db").c_str(), F_OK), 0) << "no empty database made";
  EXPECT_EQ(site_.List()->size(), 1u);

  Query("PRAGMA user_version=7");  // a gateway older than schema 8
  Provisioner again(dir_);
  again.gateway_db().set_override(db_);
  add.ids = {"dev2"};
  OUTPOST_ASSERT_OK(again.AddDevices(add, kNow, log).status());
  EXPECT_EQ(again.gateway_db().status().code(), Code::kFailedPrecondition);
  EXPECT_NE(again.gateway_db().status().message().find(db_ + " has schema version 7, older than 8"),
            std::string::npos)
      << again.gateway_db().status().message();
  EXPECT_EQ(site_.List()->size(), 2u);
}

// provision runs as root, the gateway as `outpost`: a -wal or -shm file SQLite makes as root
// belongs to the database file's owner, so the gateway can still write it.
TEST_F(RegistryDbTest, AsRootTheWalAndShmFilesBelongToTheDatabasesOwner) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  constexpr uid_t kNobody = 65534;
  ASSERT_EQ(::chown(db_.c_str(), kNobody, kNobody), 0);
  ASSERT_NE(::access((db_ + "-wal").c_str(), F_OK), 0) << "the store closed cleanly";
  // A connection kept open (as a running gateway's is) keeps both files while we look.
  sqlite3* held = nullptr;
  ASSERT_EQ(sqlite3_open(db_.c_str(), &held), SQLITE_OK);
  const std::string tsv = tmp_.File("devices.tsv");
  std::ofstream(tsv) << "a\t01\tAA\t100\tactive\tnative\n";
  OUTPOST_ASSERT_OK(SyncRegistryToGatewayDb(db_, tsv, 1).status());
  ASSERT_EQ(
      sqlite3_exec(held, "SELECT count(*) FROM device_certificates", nullptr, nullptr, nullptr),
      SQLITE_OK);
  for (const char* suffix : {"-wal", "-shm"}) {
    struct stat st {};
    ASSERT_EQ(::stat((db_ + suffix).c_str(), &st), 0) << suffix;
    EXPECT_EQ(st.st_uid, kNobody) << suffix;
    EXPECT_EQ(st.st_gid, kNobody) << suffix;
  }
  sqlite3_close(held);
}

}  // namespace
}  // namespace outpost::provision
