// VerifyStore against a small SQLite file with the gateway's `device_status` view shape
// (docs/formats/store.md): missing devices, short devices and seq gaps are each reported.
#include "outpost/node/fleet/verify.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdio>
#include <string>

#include "outpost/testing/status_matchers.h"
#include "outpost/testing/temp_dir.h"

namespace outpost::node::fleet {
namespace {

class VerifyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.File("verify.db");
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db_), SQLITE_OK);
    Exec(
        "CREATE TABLE d(device_id TEXT, readings INT, seq_gaps INT, boot INT, last_seq INT);"
        "CREATE VIEW device_status AS SELECT device_id, 'online' AS status, readings, seq_gaps, "
        "boot, last_seq FROM d;");
  }
  void TearDown() override { sqlite3_close(db_); }
  void Exec(const std::string& sql) {
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << err;
  }
  static DeviceRecord Rec(const char* id, std::uint32_t boot, std::uint64_t acked,
                          std::int64_t last) {
    DeviceRecord r;
    r.id = id;
    r.boot = boot;
    r.acked = acked;
    r.last_acked_seq = last;
    return r;
  }
  outpost::testing::TempDir dir_{"outpost-verify"};
  std::string path_;
  sqlite3* db_ = nullptr;
};

TEST_F(VerifyStoreTest, AllStored) {
  Exec("INSERT INTO d VALUES ('a', 10, 0, 1, 9), ('b', 12, 0, 2, 5)");
  auto rep = VerifyStore(path_, {Rec("a", 1, 10, 9), Rec("b", 2, 12, 5), Rec("idle", 1, 0, -1)});
  OUTPOST_ASSERT_OK(rep);
  EXPECT_TRUE(rep->ok());
  EXPECT_EQ(rep->devices_checked, 2u);
  EXPECT_EQ(rep->acked, 22u);
  EXPECT_EQ(rep->stored, 22u);
}

TEST_F(VerifyStoreTest, MissingShortAndGapsAreReported) {
  Exec("INSERT INTO d VALUES ('short', 9, 0, 1, 8), ('gaps', 10, 2, 1, 9), ('tail', 10, 0, 1, 7)");
  auto rep = VerifyStore(path_, {Rec("missing", 1, 3, 2), Rec("short", 1, 10, 9),
                                 Rec("gaps", 1, 10, 9), Rec("tail", 1, 8, 9)});
  OUTPOST_ASSERT_OK(rep);
  EXPECT_FALSE(rep->ok());
  EXPECT_EQ(rep->devices_missing, 1u);
  EXPECT_EQ(rep->devices_short, 2u);  // fewer readings; last acknowledged seq not stored
  EXPECT_EQ(rep->devices_with_gaps, 1u);
  EXPECT_EQ(rep->seq_gaps, 2u);
  ASSERT_FALSE(rep->problems.empty());
  EXPECT_NE(rep->problems[0].find("missing"), std::string::npos);
}

TEST_F(VerifyStoreTest, NotAGatewayDatabase) {
  auto rep = VerifyStore("/nonexistent/dir/x.db", {});
  OUTPOST_EXPECT_CODE(rep, Code::kUnavailable);
  Exec("DROP VIEW device_status");
  auto rep2 = VerifyStore(path_, {});
  OUTPOST_EXPECT_CODE(rep2, Code::kFailedPrecondition);
  EXPECT_NE(rep2.status().message().find("outpost-gateway"), std::string::npos);
}

}  // namespace
}  // namespace outpost::node::fleet
