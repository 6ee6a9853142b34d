// The SQLite toolkit: an RAII connection, a prepared statement whose binds are checked, and a
// transaction scope. Errors go through the one map in error.h.
//
//   auto db = sqlite::Database::Open(path, {});
//   sqlite::Statement ins;
//   OUTPOST_RETURN_IF_ERROR(ins.Prepare(db->get(), "INSERT INTO t(a, b) VALUES (?1, ?2)"));
//   auto tx = sqlite::Transaction::Begin(db->get());
//   OUTPOST_RETURN_IF_ERROR(ins.Reset().Bind(1, a).Bind(2, b).Run());
//   OUTPOST_RETURN_IF_ERROR(tx->Commit());  // else the destructor rolls back
//
// Ownership: Database owns its sqlite3 connection; a Statement borrows the connection it was
// prepared on, which must outlive it; a Transaction borrows its connection.
// Thread: none is thread-safe; one thread uses a connection and its statements at a time
// (connections are opened with SQLITE_OPEN_NOMUTEX by default).
// Errors: see error.h. A failed Bind() is not lost: the statement remembers the first one and
// its next Step()/Run() returns it without executing.
#pragma once

#include <sqlite3.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/sqlite/error.h"

namespace outpost::sqlite {

struct OpenOptions {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  std::string vfs;                   // a registered sqlite3_vfs name; empty = SQLite's default
  int busy_timeout_ms = 1000;        // how long a statement waits for another connection's lock
  std::vector<std::string> pragmas;  // run in order after opening, e.g. "journal_mode=WAL"
  // Prefix of every error message; empty = "sqlite <path>".
  std::string label;
};

// Runs `sql` (one or more statements, no results). Errors: Error(db, rc, "<context>: <sql>").
Status Exec(sqlite3* db, std::string_view sql, std::string_view context = "sqlite");

// Checked binds on a raw statement (the Statement methods use them): "bind ?<i> of <sql>" with
// the code from the one map. Text and blobs are not copied (SQLITE_STATIC).
Status BindInt64(sqlite3_stmt* s, int i, std::int64_t v);
Status BindInt(sqlite3_stmt* s, int i, int v);
Status BindDouble(sqlite3_stmt* s, int i, double v);
Status BindText(sqlite3_stmt* s, int i, std::string_view text);
Status BindBlob(sqlite3_stmt* s, int i, std::string_view bytes);  // empty = zero-length blob
Status BindNull(sqlite3_stmt* s, int i);

// Column `i` as bytes (text or blob, embedded NULs kept); the view is valid until the next
// step or reset.
std::string_view ColumnView(sqlite3_stmt* s, int i);
inline std::string ColumnText(sqlite3_stmt* s, int i) { return std::string(ColumnView(s, i)); }
// A size_t count as a LIMIT parameter: beyond int64, -1 (no limit).
std::int64_t ClampLimit(std::size_t n);

class Statement {
 public:
  Statement() = default;
  ~Statement() { Finalize(); }
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Prepares `sql` on `db` (persistent: kept for many uses). `context` prefixes errors.
  Status Prepare(sqlite3* db, std::string_view sql, std::string_view context = "sqlite");
  // Finalizes now (a statement must be finalized before its connection closes).
  void Finalize();

  // Ready for the next use: resets the statement, clears its bindings and a remembered bind
  // error.
  Statement& Reset();
  // Binds parameter `i` (1-based). Text and blobs are NOT copied: they must stay valid until the
  // statement is reset. The first failure is remembered and returned by Step()/Run().
  Statement& Bind(int i, std::int64_t v);
  Statement& Bind(int i, int v) { return Bind(i, static_cast<std::int64_t>(v)); }
  Statement& Bind(int i, double v);
  Statement& Bind(int i, std::string_view text);
  Statement& Bind(int i, const std::string& text) { return Bind(i, std::string_view(text)); }
  Statement& Bind(int i, const char* text) { return Bind(i, std::string_view(text)); }
  Statement& BindBlob(int i, std::string_view bytes);
  Statement& BindNull(int i);
  // The first bind error since the last Reset(), OK if none.
  const Status& bind_status() const { return bind_status_; }

  // One step: true = a row is ready, false = done (or an error in *status, which is then
  // non-OK; *status is left untouched on success).
  bool Step(Status* status);
  // Steps until done, ignoring rows, then resets (bindings kept). Returns the error, if any.
  Status Run();

  std::int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  double Double(int col) const { return sqlite3_column_double(stmt_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  int Bytes(int col) const { return sqlite3_column_bytes(stmt_, col); }
  // Text or blob, byte-exact (embedded NULs kept).
  std::string Text(int col) const { return std::string(View(col)); }
  // Valid until the next Step()/Reset().
  std::string_view View(int col) const;

  sqlite3_stmt* get() const { return stmt_; }
  explicit operator bool() const { return stmt_ != nullptr; }

 private:
  void Remember(Status s);
  Status StepError(int rc) const;

  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  std::string context_;
  Status bind_status_;
};

class Database {
 public:
  Database() = default;
  ~Database();
  Database(Database&& other) noexcept;
  Database& operator=(Database&& other) noexcept;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Opens `path` with extended result codes on, the busy timeout and the pragmas. A failed
  // open closes the handle again.
  static Result<Database> Open(const std::string& path, const OpenOptions& options);

  sqlite3* get() const { return db_; }
  const std::string& label() const { return label_; }
  // "<label>: <what>" with the code from the one map.
  Status Error(int rc, std::string_view what) const;
  Status Exec(std::string_view sql) const { return sqlite::Exec(db_, sql, label_); }
  Status Prepare(Statement* out, std::string_view sql) const {
    return out->Prepare(db_, sql, label_);
  }
  // The first column of the first row of `sql`; kInternal if it returns no row.
  Result<std::int64_t> QueryInt(std::string_view sql) const;
  std::int64_t changes() const { return sqlite3_changes64(db_); }
  bool in_transaction() const { return db_ != nullptr && sqlite3_get_autocommit(db_) == 0; }
  // Closes now (finalize every Statement first). Idempotent.
  void Close();

 private:
  sqlite3* db_ = nullptr;
  std::string label_;
};

// A transaction scope: BEGIN on Begin(), checked COMMIT on Commit(), ROLLBACK on destruction
// unless committed (also after a failed COMMIT, which leaves SQLite's transaction open).
class Transaction {
 public:
  enum class Mode { kDeferred, kImmediate };
  static Result<Transaction> Begin(sqlite3* db, Mode mode = Mode::kImmediate,
                                   std::string_view context = "sqlite");
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() { Rollback(); }

  Status Commit();
  // Rolls back now if still open (idempotent; errors are moot: SQLite rolls back anyway when
  // the statement journal cannot be replayed).
  void Rollback();
  bool open() const { return db_ != nullptr; }

 private:
  Transaction(sqlite3* db, std::string_view context) : db_(db), context_(context) {}
  sqlite3* db_;
  std::string context_;
};

}  // namespace outpost::sqlite
