#include "outpost/sqlite/database.h"

#include <limits>
#include <utility>

namespace outpost::sqlite {

namespace {
// Statement text in messages: enough to recognise it, not a whole migration.
std::string Excerpt(std::string_view sql) {
  constexpr std::size_t kMax = 80;
  std::string out(sql.substr(0, kMax));
  for (char& c : out) {
    if (c == '\n') c = ' ';
  }
  if (sql.size() > kMax) out += "...";
  return out;
}
}  // namespace

Status Exec(sqlite3* db, std::string_view sql, std::string_view context) {
  const std::string text(sql);
  const int rc = sqlite3_exec(db, text.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return Error(db, rc, std::string(context) + ": " + Excerpt(sql));
  return Status::Ok();
}

// ---- binds and columns on raw statements ----

namespace {
Status BindResult(sqlite3_stmt* s, int rc, int i) {
  if (rc == SQLITE_OK) return Status::Ok();
  sqlite3* db = s != nullptr ? sqlite3_db_handle(s) : nullptr;
  const char* sql = s != nullptr ? sqlite3_sql(s) : nullptr;
  return Error(db, rc, "bind ?" + std::to_string(i) + " of " + Excerpt(sql ? sql : "(none)"));
}
}  // namespace

Status BindInt64(sqlite3_stmt* s, int i, std::int64_t v) {
  return BindResult(s, sqlite3_bind_int64(s, i, v), i);
}
Status BindInt(sqlite3_stmt* s, int i, int v) {
  return BindResult(s, sqlite3_bind_int(s, i, v), i);
}
Status BindDouble(sqlite3_stmt* s, int i, double v) {
  return BindResult(s, sqlite3_bind_double(s, i, v), i);
}
Status BindText(sqlite3_stmt* s, int i, std::string_view text) {
  // 64-bit length: a value beyond SQLite's limit is SQLITE_TOOBIG, never a truncated int.
  return BindResult(
      s, sqlite3_bind_text64(s, i, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8), i);
}
Status BindBlob(sqlite3_stmt* s, int i, std::string_view bytes) {
  // A zero-length blob is a blob, not NULL (a null pointer would bind NULL).
  static const char kEmpty = 0;
  return BindResult(s,
                    sqlite3_bind_blob64(s, i, bytes.empty() ? &kEmpty : bytes.data(), bytes.size(),
                                        SQLITE_STATIC),
                    i);
}
Status BindNull(sqlite3_stmt* s, int i) { return BindResult(s, sqlite3_bind_null(s, i), i); }

std::string_view ColumnView(sqlite3_stmt* s, int i) {
  const void* p = sqlite3_column_blob(s, i);
  const int n = sqlite3_column_bytes(s, i);
  return p != nullptr ? std::string_view(static_cast<const char*>(p), static_cast<size_t>(n))
                      : std::string_view();
}

std::int64_t ClampLimit(std::size_t n) {
  return n > static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max())
             ? -1
             : static_cast<std::int64_t>(n);
}

// ---- Statement ----

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_),
      stmt_(std::exchange(other.stmt_, nullptr)),
      context_(std::move(other.context_)),
      bind_status_(std::move(other.bind_status_)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    Finalize();
    db_ = other.db_;
    stmt_ = std::exchange(other.stmt_, nullptr);
    context_ = std::move(other.context_);
    bind_status_ = std::move(other.bind_status_);
  }
  return *this;
}

Status Statement::Prepare(sqlite3* db, std::string_view sql, std::string_view context) {
  Finalize();
  db_ = db;
  context_ = std::string(context) + ": " + Excerpt(sql);
  bind_status_ = Status::Ok();
  const int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                    SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
    return Error(db, rc, "prepare " + context_);
  }
  return Status::Ok();
}

void Statement::Finalize() {
  if (stmt_ != nullptr) sqlite3_finalize(stmt_);
  stmt_ = nullptr;
}

Statement& Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_status_ = Status::Ok();
  return *this;
}

void Statement::Remember(Status s) {
  if (bind_status_.ok() && !s.ok()) bind_status_ = std::move(s);
}

Statement& Statement::Bind(int i, std::int64_t v) {
  Remember(BindInt64(stmt_, i, v));
  return *this;
}

Statement& Statement::Bind(int i, double v) {
  Remember(BindDouble(stmt_, i, v));
  return *this;
}

Statement& Statement::Bind(int i, std::string_view text) {
  Remember(BindText(stmt_, i, text));
  return *this;
}

Statement& Statement::BindBlob(int i, std::string_view bytes) {
  Remember(sqlite::BindBlob(stmt_, i, bytes));
  return *this;
}

Statement& Statement::BindNull(int i) {
  Remember(sqlite::BindNull(stmt_, i));
  return *this;
}

Status Statement::StepError(int rc) const { return Error(db_, rc, context_); }

bool Statement::Step(Status* status) {
  if (!bind_status_.ok()) {
    *status = bind_status_;
    return false;
  }
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc != SQLITE_DONE) {
    *status = StepError(rc);
    sqlite3_reset(stmt_);
  }
  return false;
}

Status Statement::Run() {
  if (!bind_status_.ok()) return bind_status_;
  int rc;
  while ((rc = sqlite3_step(stmt_)) == SQLITE_ROW) {
  }
  Status s = rc == SQLITE_DONE ? Status::Ok() : StepError(rc);
  sqlite3_reset(stmt_);
  return s;
}

std::string_view Statement::View(int col) const { return ColumnView(stmt_, col); }

// ---- Database ----

Database::~Database() { Close(); }

Database::Database(Database&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), label_(std::move(other.label_)) {}

Database& Database::operator=(Database&& other) noexcept {
  if (this != &other) {
    Close();
    db_ = std::exchange(other.db_, nullptr);
    label_ = std::move(other.label_);
  }
  return *this;
}

void Database::Close() {
  if (db_ != nullptr) sqlite3_close(db_);
  db_ = nullptr;
}

Result<Database> Database::Open(const std::string& path, const OpenOptions& options) {
  Database d;
  d.label_ = options.label.empty() ? "sqlite " + path : options.label;
  const int rc = sqlite3_open_v2(path.c_str(), &d.db_, options.flags,
                                 options.vfs.empty() ? nullptr : options.vfs.c_str());
  if (rc != SQLITE_OK) {
    Status s = sqlite::Error(d.db_, rc, d.label_ + ": open");
    d.Close();
    return s;
  }
  sqlite3_extended_result_codes(d.db_, 1);
  sqlite3_busy_timeout(d.db_, options.busy_timeout_ms);
  for (const std::string& p : options.pragmas) {
    OUTPOST_RETURN_IF_ERROR(d.Exec("PRAGMA " + p));
  }
  return d;
}

Status Database::Error(int rc, std::string_view what) const {
  return sqlite::Error(db_, rc, label_ + ": " + std::string(what));
}

Result<std::int64_t> Database::QueryInt(std::string_view sql) const {
  Statement s;
  OUTPOST_RETURN_IF_ERROR(Prepare(&s, sql));
  Status st;
  if (s.Step(&st)) return s.Int(0);
  if (!st.ok()) return st;
  return Internal(label_ + ": " + Excerpt(sql) + ": no row");
}

// ---- Transaction ----

Result<Transaction> Transaction::Begin(sqlite3* db, Mode mode, std::string_view context) {
  OUTPOST_RETURN_IF_ERROR(
      Exec(db, mode == Mode::kImmediate ? "BEGIN IMMEDIATE" : "BEGIN", context));
  return Transaction(db, context);
}

Transaction::Transaction(Transaction&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), context_(std::move(other.context_)) {}

Status Transaction::Commit() {
  if (db_ == nullptr) return FailedPrecondition(context_ + ": commit: no open transaction");
  Status s = Exec(db_, "COMMIT", context_);
  if (s.ok()) db_ = nullptr;  // else ~Transaction rolls back what COMMIT left open
  return s;
}

void Transaction::Rollback() {
  if (db_ == nullptr) return;
  if (sqlite3_get_autocommit(db_) == 0) {
    (void)sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  db_ = nullptr;
}

}  // namespace outpost::sqlite
