#include "outpost/sqlite/error.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <string>

#include "outpost/sqlite/database.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/temp_dir.h"
#include "outpost/testing/tmpfs_mount.h"

namespace outpost::sqlite {
namespace {

TEST(SqliteErrorMap, DiskFullIsResourceExhaustedNotDataLossNorUnavailable) {
  EXPECT_EQ(MapCode(SQLITE_FULL), Code::kResourceExhausted);
  EXPECT_EQ(MapCode(SQLITE_IOERR_WRITE, ENOSPC), Code::kResourceExhausted);
  EXPECT_EQ(MapCode(SQLITE_IOERR_SHMSIZE, ENOSPC), Code::kResourceExhausted);
  EXPECT_EQ(MapCode(SQLITE_IOERR_TRUNCATE, EDQUOT), Code::kResourceExhausted);
}

TEST(SqliteErrorMap, FsyncFailureAndCorruptionAreDataLoss) {
  EXPECT_EQ(MapCode(SQLITE_IOERR_FSYNC), Code::kDataLoss);
  EXPECT_EQ(MapCode(SQLITE_IOERR_FSYNC, ENOSPC), Code::kDataLoss);  // fsync stays fatal
  EXPECT_EQ(MapCode(SQLITE_IOERR_DIR_FSYNC), Code::kDataLoss);
  EXPECT_EQ(MapCode(SQLITE_CORRUPT), Code::kDataLoss);
  EXPECT_EQ(MapCode(SQLITE_CORRUPT_INDEX), Code::kDataLoss);
  EXPECT_EQ(MapCode(SQLITE_NOTADB), Code::kDataLoss);
}

TEST(SqliteErrorMap, TransientFailuresAreUnavailable) {
  EXPECT_EQ(MapCode(SQLITE_BUSY), Code::kUnavailable);
  EXPECT_EQ(MapCode(SQLITE_BUSY_SNAPSHOT), Code::kUnavailable);
  EXPECT_EQ(MapCode(SQLITE_LOCKED), Code::kUnavailable);
  EXPECT_EQ(MapCode(SQLITE_IOERR_WRITE, EIO), Code::kUnavailable);
  EXPECT_EQ(MapCode(SQLITE_IOERR_READ), Code::kUnavailable);
  EXPECT_EQ(MapCode(SQLITE_CANTOPEN), Code::kUnavailable);
  EXPECT_EQ(MapCode(SQLITE_READONLY), Code::kUnavailable);
  EXPECT_EQ(MapCode(SQLITE_NOMEM), Code::kUnavailable);
}

TEST(SqliteErrorMap, MisuseIsInternalAndTheRestIsSpecific) {
  EXPECT_EQ(MapCode(SQLITE_ERROR), Code::kInternal);
  EXPECT_EQ(MapCode(SQLITE_MISUSE), Code::kInternal);
  EXPECT_EQ(MapCode(SQLITE_RANGE), Code::kInternal);
  EXPECT_EQ(MapCode(SQLITE_MISMATCH), Code::kInternal);
  EXPECT_EQ(MapCode(SQLITE_CONSTRAINT_UNIQUE), Code::kAlreadyExists);
  EXPECT_EQ(MapCode(SQLITE_TOOBIG), Code::kInvalidArgument);
  EXPECT_EQ(MapCode(SQLITE_INTERRUPT), Code::kCancelled);
}

TEST(SqliteErrorMap, MessageNamesContextCodeAndErrno) {
  Status s = Error(nullptr, SQLITE_FULL, "store /x.db: commit");
  OUTPOST_EXPECT_CODE(s, Code::kResourceExhausted);
  EXPECT_NE(s.message().find("store /x.db: commit: "), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("rc 13"), std::string::npos) << s.message();
}

// The map on a real full file system: whatever SQLite reports when a tmpfs runs out (SQLITE_FULL
// or an I/O error with ENOSPC, from the WAL, the -shm or the database file), the caller sees
// kResourceExhausted; and when space comes back the same connection works again.
TEST(SqliteErrorMap, RealFullFileSystemIsDiskFullAndRecovers) {
  if (!testing::TmpfsMount::Supported()) GTEST_SKIP() << testing::TmpfsMount::kSkipReason;
  testing::TempDir dir("outpost-sqlite-full");
  auto fs = testing::TmpfsMount::Mount(dir.File("fs"), 512 << 10);
  OUTPOST_ASSERT_OK(fs);
  OpenOptions o;
  o.pragmas = {"journal_mode=WAL", "synchronous=FULL"};
  auto db = Database::Open((*fs)->path() + "/t.db", o);
  OUTPOST_ASSERT_OK(db);
  OUTPOST_ASSERT_OK(db->Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB NOT NULL)"));
  Statement ins;
  OUTPOST_ASSERT_OK(db->Prepare(&ins, "INSERT INTO t(b) VALUES (?1)"));
  const std::string blob(4000, 'x');
  Status failed;
  int committed = 0;
  for (int i = 0; i < 1000 && failed.ok(); ++i) {  // 4 MB at most: far beyond 512 KiB
    auto tx = Transaction::Begin(db->get());
    if (!tx.ok()) {
      failed = tx.status();
      break;
    }
    failed = ins.Reset().BindBlob(1, blob).Run();
    if (failed.ok()) failed = tx->Commit();
    if (failed.ok()) ++committed;
  }
  ASSERT_FALSE(failed.ok()) << "the 512 KiB file system never filled up";
  OUTPOST_EXPECT_CODE(failed, Code::kResourceExhausted) << failed.ToString();
  EXPECT_TRUE(IsDiskFull(failed));
  EXPECT_GT(committed, 10);
  EXPECT_FALSE(db->in_transaction());  // the scope rolled the failed transaction back

  OUTPOST_ASSERT_OK((*fs)->Resize(8 << 20));
  auto tx = Transaction::Begin(db->get());
  OUTPOST_ASSERT_OK(tx);
  OUTPOST_ASSERT_OK(ins.Reset().BindBlob(1, blob).Run());
  OUTPOST_ASSERT_OK(tx->Commit());
  auto n = db->QueryInt("SELECT count(*) FROM t");
  OUTPOST_ASSERT_OK(n);
  EXPECT_EQ(*n, committed + 1);
}

}  // namespace
}  // namespace outpost::sqlite
