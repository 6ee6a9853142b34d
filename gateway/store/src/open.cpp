// Open and migrate: the writer lock, the connection and its pragmas, the schema migrations,
// transactions. See store_impl.h for the split; docs/formats/store.md for the schema.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "outpost/base/check.h"
#include "store_impl.h"

namespace outpost::gateway::store {

namespace {

// "OPST": marks the file as ours, so we never migrate somebody else's database.
constexpr int32_t kApplicationId = 0x4F505354;

// Schema migrations, applied in order; entry i brings user_version from i to i + 1.
// Never edit a shipped entry: append a new one. docs/formats/store.md describes the result.
const char* const kMigrations[] = {
    // 1: initial layout.
    R"sql(
CREATE TABLE state(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  next_reading_id INTEGER NOT NULL,
  readings INTEGER NOT NULL,
  deleted_by_age INTEGER NOT NULL,
  deleted_by_size INTEGER NOT NULL);
INSERT INTO state VALUES (1, 1, 0, 0, 0);
CREATE TABLE device_keys(
  device_key INTEGER PRIMARY KEY,
  device_id TEXT NOT NULL UNIQUE);
CREATE TABLE metric_keys(
  metric_key INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE);
CREATE TABLE hot(
  id INTEGER PRIMARY KEY,
  device_key INTEGER NOT NULL,
  ts_ms INTEGER NOT NULL,
  received_ms INTEGER NOT NULL,
  flags INTEGER NOT NULL,
  boot INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  device_ts INTEGER NOT NULL,
  metrics BLOB NOT NULL);
CREATE TABLE blocks(
  id INTEGER PRIMARY KEY,
  device_key INTEGER NOT NULL,
  start_ts INTEGER NOT NULL,
  end_ts INTEGER NOT NULL,
  pass INTEGER NOT NULL,
  n INTEGER NOT NULL,
  data BLOB NOT NULL);
CREATE INDEX blocks_by_series ON blocks(device_key, start_ts, end_ts);
CREATE INDEX blocks_by_end ON blocks(end_ts);
CREATE TABLE devices(
  device_key INTEGER PRIMARY KEY,
  first_seen_ms INTEGER NOT NULL,
  last_seen_ms INTEGER NOT NULL,
  status TEXT NOT NULL,
  status_changed_ms INTEGER NOT NULL,
  last_reading_json TEXT NOT NULL,
  firmware TEXT NOT NULL,
  boot INTEGER NOT NULL,
  last_seq INTEGER NOT NULL,
  readings INTEGER NOT NULL,
  duplicates INTEGER NOT NULL,
  seq_gaps INTEGER NOT NULL);
CREATE TABLE alerts(
  alert_id TEXT NOT NULL,
  raised_ms INTEGER NOT NULL,
  rule TEXT NOT NULL,
  device_id TEXT NOT NULL,
  metric TEXT NOT NULL,
  severity TEXT NOT NULL,
  message TEXT NOT NULL,
  value REAL,
  threshold REAL,
  cleared_ms INTEGER NOT NULL,
  PRIMARY KEY (alert_id, raised_ms));
CREATE INDEX alerts_active ON alerts(raised_ms) WHERE cleared_ms = 0;
CREATE INDEX alerts_by_raised ON alerts(raised_ms);
CREATE TABLE quarantine(
  id INTEGER PRIMARY KEY,
  received_ms INTEGER NOT NULL,
  topic TEXT NOT NULL,
  reason TEXT NOT NULL,
  detail TEXT NOT NULL,
  payload BLOB NOT NULL);
)sql",
    // 2: the registry with device ids and readable times, for the sqlite3 shell.
    R"sql(
CREATE VIEW device_status AS
  SELECT k.device_id, d.status, datetime(d.last_seen_ms / 1000, 'unixepoch') AS last_seen,
         datetime(d.first_seen_ms / 1000, 'unixepoch') AS first_seen, d.readings,
         d.duplicates, d.seq_gaps, d.boot, d.last_seq, d.firmware, d.last_reading_json
  FROM devices d JOIN device_keys k USING (device_key);
)sql",
    // 3: the outbox for the cloud uplink (docs/formats/outbox.md).
    R"sql(
CREATE TABLE outbox(
  id INTEGER PRIMARY KEY,
  prio INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  body BLOB NOT NULL);
CREATE INDEX outbox_urgent ON outbox(prio) WHERE prio = 0;
CREATE TABLE outbox_batch(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  key TEXT NOT NULL,
  seq INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  readings INTEGER NOT NULL,
  alerts INTEGER NOT NULL,
  statuses INTEGER NOT NULL,
  body BLOB NOT NULL);
CREATE TABLE outbox_state(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  readings INTEGER NOT NULL,
  alerts INTEGER NOT NULL,
  statuses INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  dropped_quota_oldest INTEGER NOT NULL,
  dropped_quota_rejected INTEGER NOT NULL,
  expired INTEGER NOT NULL,
  dead_letter INTEGER NOT NULL,
  sent_batches INTEGER NOT NULL,
  sent_items INTEGER NOT NULL,
  next_batch_seq INTEGER NOT NULL);
INSERT INTO outbox_state VALUES (1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1);
)sql",
    // 4: dead letters by reason (docs/formats/outbox.md).
    R"sql(
CREATE TABLE outbox_dead_letter(
  reason TEXT PRIMARY KEY,
  items INTEGER NOT NULL);
)sql",
    // 5: acknowledgements of alerts (docs/formats/store.md).
    R"sql(
ALTER TABLE alerts ADD COLUMN acked_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN acked_by TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN ack_comment TEXT NOT NULL DEFAULT '';
)sql",
    // 6: device commands and their life cycle (docs/formats/store.md).
    R"sql(
CREATE TABLE commands(
  id TEXT PRIMARY KEY,
  device_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  name TEXT NOT NULL,
  params TEXT NOT NULL,
  state TEXT NOT NULL,
  transport TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL,
  user TEXT NOT NULL,
  idempotency_key TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  reply TEXT NOT NULL,
  history TEXT NOT NULL);
CREATE INDEX commands_by_device ON commands(device_id, seq);
ALTER TABLE devices ADD COLUMN native INTEGER NOT NULL DEFAULT 0;
UPDATE devices SET native = 1 WHERE boot != 0 OR last_seq != 0;
)sql",
    // 7: per-block, per-metric aggregates for long-range series (docs/formats/store.md).
    R"sql(
CREATE TABLE block_summaries(
  block_id INTEGER NOT NULL,
  metric_key INTEGER NOT NULL,
  n INTEGER NOT NULL,
  min REAL NOT NULL,
  max REAL NOT NULL,
  sum REAL NOT NULL,
  PRIMARY KEY (block_id, metric_key)) WITHOUT ROWID;
CREATE TRIGGER blocks_drop_summaries AFTER DELETE ON blocks BEGIN
  DELETE FROM block_summaries WHERE block_id = old.id;
END;
)sql",
    // 8: the device certificate registry, written by outpost-provision (docs/formats/store.md).
    R"sql(
CREATE TABLE device_certificates(
  serial TEXT PRIMARY KEY,
  device_id TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  not_after_unix INTEGER NOT NULL,
  state TEXT NOT NULL,
  mode TEXT NOT NULL,
  updated_ms INTEGER NOT NULL);
CREATE INDEX device_certificates_by_device ON device_certificates(device_id);
)sql",
};
constexpr int kSchemaVersion = static_cast<int>(sizeof(kMigrations) / sizeof(kMigrations[0]));

const char* SynchronousPragma(Synchronous s) {
  switch (s) {
    case Synchronous::kFull:
      return "PRAGMA synchronous=FULL";
    case Synchronous::kNormal:
      return "PRAGMA synchronous=NORMAL";
    case Synchronous::kOff:
      return "PRAGMA synchronous=OFF";
  }
  return "PRAGMA synchronous=FULL";
}

}  // namespace

Connection::Handle::~Handle() {
  if (db != nullptr) {
    // Every statement is a member declared after the handle, so all are finalized by now; a
    // busy close would leak the connection, its file descriptors and its WAL.
    const int rc = sqlite3_close(db);
    OUTPOST_CHECK(rc == SQLITE_OK);
  }
  if (lock_fd >= 0) ::close(lock_fd);
}

Status Connection::Err(int rc, std::string_view what) const {
  return sqlite::Error(db(), rc, "store " + path + ": " + std::string(what));
}

Status Connection::Exec(const char* sql_text, std::string_view what) {
  char* msg = nullptr;
  const int rc = sqlite3_exec(db(), sql_text, nullptr, nullptr, &msg);
  sqlite3_free(msg);
  if (rc != SQLITE_OK) return Err(rc, what);
  return Status::Ok();
}

Status Connection::Prepare(Stmt* out, const char* sql_text) {
  return out->Prepare(db(), sql_text, "store " + path);
}

Status Connection::Run(const Stmt& s, std::string_view what) {
  const int rc = sqlite3_step(s.get());
  sqlite3_reset(s.get());
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) return Err(rc, what);
  return Status::Ok();
}

Result<int64_t> Connection::QueryInt(const char* sql_text, std::string_view what) {
  Stmt s;
  OUTPOST_RETURN_IF_ERROR(Prepare(&s, sql_text));
  const int rc = sqlite3_step(s.get());
  if (rc != SQLITE_ROW) return Err(rc == SQLITE_DONE ? SQLITE_ERROR : rc, what);
  return static_cast<int64_t>(sqlite3_column_int64(s.get(), 0));
}

Status Connection::PrepareStatements() {
  OUTPOST_RETURN_IF_ERROR(Prepare(&begin, "BEGIN IMMEDIATE"));
  OUTPOST_RETURN_IF_ERROR(Prepare(&commit, "COMMIT"));
  OUTPOST_RETURN_IF_ERROR(Prepare(&rollback, "ROLLBACK"));
  OUTPOST_RETURN_IF_ERROR(Prepare(&page_count, "PRAGMA page_count"));
  return Prepare(&freelist_count, "PRAGMA freelist_count");
}

void Connection::Rollback() {
  if (!sqlite3_get_autocommit(db())) {
    sqlite3_step(rollback.get());
    sqlite3_reset(rollback.get());
  }
}

Status Connection::UpdateBytes() {
  if (sqlite3_step(page_count.get()) != SQLITE_ROW) {
    const int rc = sqlite3_reset(page_count.get());
    return Err(rc, "page_count");
  }
  const int64_t pages = sqlite3_column_int64(page_count.get(), 0);
  sqlite3_reset(page_count.get());
  if (sqlite3_step(freelist_count.get()) != SQLITE_ROW) {
    const int rc = sqlite3_reset(freelist_count.get());
    return Err(rc, "freelist_count");
  }
  const int64_t free_pages = sqlite3_column_int64(freelist_count.get(), 0);
  sqlite3_reset(freelist_count.get());
  db_bytes = (pages - free_pages) * page_size;
  return Status::Ok();
}

Status Connection::Migrate(int from_version) {
  for (int v = from_version; v < kSchemaVersion; ++v) {
    const std::string what = "migration to schema version " + std::to_string(v + 1);
    auto tx = sqlite::Transaction::Begin(db(), sqlite::Transaction::Mode::kImmediate,
                                         "store " + path + ": " + what);
    if (!tx.ok()) return tx.status();
    OUTPOST_RETURN_IF_ERROR(Exec(kMigrations[v], what));
    const std::string pragmas = "PRAGMA user_version=" + std::to_string(v + 1) +
                                "; PRAGMA application_id=" + std::to_string(kApplicationId);
    OUTPOST_RETURN_IF_ERROR(Exec(pragmas.c_str(), what));
    OUTPOST_RETURN_IF_ERROR(tx->Commit());  // else the scope rolls the migration back
  }
  return Status::Ok();
}

Status Store::Impl::Abort(Status error) {
  conn.Rollback();
  need_reload = true;
  Status reload = Reload();
  (void)reload;  // if this fails too, the next call retries it and reports
  return error;
}

Result<std::unique_ptr<Store>> Store::Open(const Options& options) {
  if (options.path.empty()) return InvalidArgument("store: Options::path is empty");
  if (options.hot_max_rows == 0) {
    return InvalidArgument("store " + options.path + ": hot_max_rows must be > 0");
  }
  auto impl = std::make_unique<Impl>(options);
  Connection& c = impl->conn;
  // The store is the file's only writer: a second gateway would keep its own in-memory id
  // counters and dictionaries. An flock on "<path>.lock" keeps it out while leaving the file
  // readable by others in WAL mode (sqlite3, backups). O_CLOEXEC: a gateway that re-executes
  // itself must not inherit its own lock.
  const std::string lock_path = options.path + ".lock";
  c.handle.lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (c.handle.lock_fd < 0) {
    return Status(Code::kUnavailable, "store " + options.path + ": cannot open " + lock_path +
                                          ": " + std::strerror(errno) +
                                          " (does the parent directory exist?)");
  }
  if (::flock(c.handle.lock_fd, LOCK_EX | LOCK_NB) != 0) {
    return Status(Code::kUnavailable, "store " + options.path +
                                          ": locked by another process (is another gateway "
                                          "running on this file?)");
  }
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(options.path.c_str(), &c.handle.db, flags,
                           options.vfs.empty() ? nullptr : options.vfs.c_str());
  if (rc != SQLITE_OK) {
    Status st = c.Err(rc, "open (does the parent directory exist?)");
    return st;
  }
  sqlite3_extended_result_codes(c.db(), 1);
  sqlite3_busy_timeout(c.db(), 1000);
  if (sqlite3_db_readonly(c.db(), "main") == 1) {
    return Status(Code::kUnavailable, "store " + options.path + ": file is read-only");
  }

  // The first read tells us whether this is a database at all.
  Result<int64_t> app_id = c.QueryInt("PRAGMA application_id", "read header");
  if (!app_id.ok()) {
    if (app_id.status().code() == Code::kDataLoss) {
      return Status(Code::kDataLoss,
                    "store " + options.path +
                        ": not a SQLite database (or corrupt): " + app_id.status().message());
    }
    return app_id.status();
  }
  Result<int64_t> version = c.QueryInt("PRAGMA user_version", "read schema version");
  if (!version.ok()) return version.status();
  Result<int64_t> objects = c.QueryInt("SELECT count(*) FROM sqlite_schema", "read schema");
  if (!objects.ok()) return objects.status();
  if (*app_id != kApplicationId && (*app_id != 0 || *version != 0 || *objects != 0)) {
    return FailedPrecondition("store " + options.path +
                              ": not an Outpost gateway store (application_id " +
                              std::to_string(*app_id) + ", user_version " +
                              std::to_string(*version) + "); refusing to touch it");
  }
  if (*version > kSchemaVersion) {
    return FailedPrecondition("store " + options.path + ": schema version " +
                              std::to_string(*version) + " is newer than this binary's (" +
                              std::to_string(kSchemaVersion) +
                              "); upgrade outpost-gateway or use another file");
  }

  {
    Stmt s;
    OUTPOST_RETURN_IF_ERROR(c.Prepare(&s, "PRAGMA journal_mode=WAL"));
    rc = sqlite3_step(s.get());
    if (rc != SQLITE_ROW) return c.Err(rc, "set WAL mode");
    const std::string mode = sqlite::ColumnText(s.get(), 0);
    if (mode != "wal") {
      return Status(Code::kUnavailable,
                    "store " + options.path + ": cannot use WAL mode (got " + mode + ")");
    }
  }
  OUTPOST_RETURN_IF_ERROR(c.Exec(SynchronousPragma(options.synchronous), "set synchronous"));
  const std::string cache =
      "PRAGMA cache_size=-" + std::to_string(std::max<int64_t>(options.cache_bytes / 1024, 1024));
  OUTPOST_RETURN_IF_ERROR(c.Exec(cache.c_str(), "set cache size"));
  OUTPOST_RETURN_IF_ERROR(
      c.Exec("PRAGMA temp_store=MEMORY; PRAGMA journal_size_limit=67108864; "
             "PRAGMA wal_autocheckpoint=4096",
             "set pragmas"));

  OUTPOST_RETURN_IF_ERROR(c.Migrate(static_cast<int>(*version)));
  // Take the write lock now (held until close), so a second opener fails here, not later.
  OUTPOST_RETURN_IF_ERROR(
      c.Exec("BEGIN IMMEDIATE; COMMIT", "lock (is another gateway running on this file?)"));
  OUTPOST_RETURN_IF_ERROR(c.PrepareStatements());
  OUTPOST_RETURN_IF_ERROR(impl->readings.Prepare(c));
  OUTPOST_RETURN_IF_ERROR(impl->records.Prepare(c));
  OUTPOST_RETURN_IF_ERROR(impl->query.Prepare(c));
  OUTPOST_RETURN_IF_ERROR(impl->maintenance.Prepare(c));
  OUTPOST_RETURN_IF_ERROR(impl->outbox.Prepare(c));
  OUTPOST_RETURN_IF_ERROR(impl->Reload());
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

model::Outbox& Store::outbox() { return impl_->outbox; }

}  // namespace outpost::gateway::store
