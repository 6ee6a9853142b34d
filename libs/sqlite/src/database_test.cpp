#include "outpost/sqlite/database.h"

#include <gtest/gtest.h>

#include <string>

#include "outpost/testing/status_matchers.h"
#include "outpost/testing/temp_dir.h"

namespace outpost::sqlite {
namespace {

class SqliteDatabase : public ::testing::Test {
 protected:
  void SetUp() override {
    OpenOptions o;
    o.pragmas = {"journal_mode=WAL"};
    OUTPOST_ASSERT_OK_AND_ASSIGN(db_, Database::Open(dir_.File("t.db"), o));
    OUTPOST_ASSERT_OK(db_.Exec("CREATE TABLE t(a INTEGER, b TEXT, c REAL, d BLOB)"));
  }
  testing::TempDir dir_{"outpost-sqlite"};
  Database db_;
};

TEST_F(SqliteDatabase, BindsAndTypedColumnsRoundTrip) {
  Statement ins;
  OUTPOST_ASSERT_OK(db_.Prepare(&ins, "INSERT INTO t VALUES (?1, ?2, ?3, ?4)"));
  const std::string blob("a\0b", 3);
  OUTPOST_ASSERT_OK(
      ins.Bind(1, std::int64_t{1} << 40).Bind(2, "text").Bind(3, 2.5).BindBlob(4, blob).Run());
  OUTPOST_ASSERT_OK(ins.Reset().Bind(1, 7).BindNull(2).Bind(3, -1.0).BindBlob(4, "").Run());
  Statement q;
  OUTPOST_ASSERT_OK(db_.Prepare(&q, "SELECT a, b, c, d, d IS NULL FROM t ORDER BY rowid"));
  Status s;
  ASSERT_TRUE(q.Step(&s));
  EXPECT_EQ(q.Int(0), std::int64_t{1} << 40);
  EXPECT_EQ(q.Text(1), "text");
  EXPECT_EQ(q.Double(2), 2.5);
  EXPECT_EQ(q.Text(3), blob);  // embedded NUL kept
  ASSERT_TRUE(q.Step(&s));
  EXPECT_TRUE(q.IsNull(1));
  EXPECT_EQ(q.Int(4), 0);  // an empty blob is a blob, not NULL
  EXPECT_FALSE(q.Step(&s));
  OUTPOST_EXPECT_OK(s);
}

TEST_F(SqliteDatabase, BindErrorIsReturnedByRunAndNothingExecutes) {
  Statement ins;
  OUTPOST_ASSERT_OK(db_.Prepare(&ins, "INSERT INTO t(a) VALUES (?1)"));
  Status s = ins.Bind(1, 5).Bind(2, 6).Run();  // there is no ?2
  ASSERT_FALSE(s.ok());
  OUTPOST_EXPECT_CODE(s, Code::kInternal) << s.ToString();
  EXPECT_NE(s.message().find("bind ?2"), std::string::npos) << s.message();
  EXPECT_FALSE(ins.bind_status().ok());
  auto n = db_.QueryInt("SELECT count(*) FROM t");
  OUTPOST_ASSERT_OK(n);
  EXPECT_EQ(*n, 0);
  // Reset() forgets it: the statement is usable again.
  OUTPOST_EXPECT_OK(ins.Reset().Bind(1, 5).Run());
  EXPECT_EQ(*db_.QueryInt("SELECT count(*) FROM t"), 1);
}

TEST_F(SqliteDatabase, TransactionRollsBackUnlessCommitted) {
  {
    auto tx = Transaction::Begin(db_.get());
    OUTPOST_ASSERT_OK(tx);
    OUTPOST_ASSERT_OK(db_.Exec("INSERT INTO t(a) VALUES (1)"));
    EXPECT_TRUE(db_.in_transaction());
  }  // no Commit()
  EXPECT_FALSE(db_.in_transaction());
  EXPECT_EQ(*db_.QueryInt("SELECT count(*) FROM t"), 0);
  {
    auto tx = Transaction::Begin(db_.get());
    OUTPOST_ASSERT_OK(tx);
    OUTPOST_ASSERT_OK(db_.Exec("INSERT INTO t(a) VALUES (2)"));
    OUTPOST_ASSERT_OK(tx->Commit());
    EXPECT_FALSE(tx->open());
    OUTPOST_EXPECT_CODE(tx->Commit(), Code::kFailedPrecondition);  // twice is a bug, reported
  }
  EXPECT_EQ(*db_.QueryInt("SELECT count(*) FROM t"), 1);
}

TEST_F(SqliteDatabase, BusyWriterIsUnavailableAfterTheTimeout) {
  OpenOptions o;
  o.busy_timeout_ms = 10;
  auto other = Database::Open(dir_.File("t.db"), o);
  OUTPOST_ASSERT_OK(other);
  auto tx = Transaction::Begin(db_.get());
  OUTPOST_ASSERT_OK(tx);
  auto tx2 = Transaction::Begin(other->get());
  ASSERT_FALSE(tx2.ok());
  OUTPOST_EXPECT_CODE(tx2, Code::kUnavailable) << tx2.status().ToString();
}

TEST_F(SqliteDatabase, OpenErrorsNameTheFileAndMapThroughTheOneMap) {
  OpenOptions o;
  o.flags = SQLITE_OPEN_READWRITE;  // no CREATE
  auto missing = Database::Open(dir_.File("missing/x.db"), o);
  ASSERT_FALSE(missing.ok());
  OUTPOST_EXPECT_CODE(missing, Code::kUnavailable);
  EXPECT_NE(missing.status().message().find("missing/x.db"), std::string::npos);

  Statement bad;
  Status s = db_.Prepare(&bad, "SELECT nope FROM t");
  OUTPOST_EXPECT_CODE(s, Code::kInternal) << s.ToString();
  EXPECT_NE(s.message().find("SELECT nope"), std::string::npos) << s.message();
}

TEST_F(SqliteDatabase, ConstraintViolationIsAlreadyExists) {
  OUTPOST_ASSERT_OK(db_.Exec("CREATE TABLE u(k TEXT PRIMARY KEY)"));
  OUTPOST_ASSERT_OK(db_.Exec("INSERT INTO u VALUES ('a')"));
  Status s = db_.Exec("INSERT INTO u VALUES ('a')");
  OUTPOST_EXPECT_CODE(s, Code::kAlreadyExists) << s.ToString();
}

}  // namespace
}  // namespace outpost::sqlite
