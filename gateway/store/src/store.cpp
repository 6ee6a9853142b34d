#include "outpost/gateway/store/store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_map>
#include <utility>

#include "codec.h"
#include "outpost/sqlite/database.h"

namespace outpost::gateway::store {

namespace {

using Stmt = sqlite::Statement;

// "OPST": marks the file as ours, so we never migrate somebody else's database.
constexpr int32_t kApplicationId = 0x4F505354;

// Blocks never span more than this, so a query for [from, to) only looks at blocks that start
// in [from - kMaxBlockSpanMs, to): the (device_key, start_ts) index bounds both ends.
constexpr int64_t kMaxBlockSpanMs = 6 * 3600 * 1000;
constexpr size_t kMaxBlockReadings = 4096;

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

int64_t SatSub(int64_t a, int64_t b) {
  if (b > 0 && a < std::numeric_limits<int64_t>::min() + b)
    return std::numeric_limits<int64_t>::min();
  return a - b;
}

// Doubles go through SQLite REAL columns only in alerts; NaN would be stored as NULL.
double ColumnDouble(sqlite3_stmt* s, int i) {
  return sqlite3_column_type(s, i) == SQLITE_NULL ? std::nan("") : sqlite3_column_double(s, i);
}

// In-memory index of the hot tail: per device, (id, ts) of its hot rows in id order. The hot
// table itself has no secondary index (that would cap inserts), so queries find a device's hot
// rows here and fetch them by rowid. Bounded by the hot tail: 16 bytes per hot row.
struct HotRef {
  int64_t id;
  int64_t ts_ms;
};

struct HotRow {
  int64_t id;
  int64_t device_key;
  int64_t ts_ms;
  int64_t received_ms;
  uint8_t flags;
  uint32_t boot;
  uint64_t seq;
  int64_t device_ts;
  size_t metrics_offset;
  size_t metrics_size;
};

}  // namespace

struct Store::Impl {
  Options opt;
  sqlite3* db = nullptr;
  int lock_fd = -1;  // flock'd "<path>.lock": one writer per file

  Stmt begin, commit, rollback;
  Stmt ins_hot, ins_device_key, ins_metric_key, upsert_device, upsert_alert;
  Stmt ins_quarantine, evict_quarantine, update_state;
  Stmt page_count, freelist_count;
  Stmt q_blocks;
  Stmt sel_hot_oldest, ins_block, del_hot_upto, sel_hot_by_id;
  Stmt sel_blocks_old, del_block, del_hot_old, del_hot_oldest;
  Stmt trim_alerts;
  Stmt ins_outbox, sel_outbox_prio, del_outbox_upto, save_outbox, sel_oldest_prio;
  Stmt expire_outbox;
  Stmt del_device;

  // Dictionaries, mirrored in memory (they are small: devices and metric names).
  std::unordered_map<std::string, int64_t> device_keys;
  std::vector<std::string> device_ids;         // [key - 1]
  std::vector<uint8_t> registered;             // [key - 1]: has a row in `devices`
  std::vector<std::vector<HotRef>> hot_index;  // [key - 1]
  std::unordered_map<std::string, int64_t> metric_keys;

  // Counters mirrored from the DB; reloaded after a failed transaction.
  int64_t next_id = 1;
  int64_t readings = 0;
  int64_t deleted_by_age = 0;
  int64_t deleted_by_size = 0;
  int64_t hot_rows = 0;
  int64_t hot_min_ts = std::numeric_limits<int64_t>::min();  // a lower bound
  int64_t devices = 0;
  int64_t quarantine = 0;
  int64_t db_bytes = 0;
  int64_t page_size = 4096;
  bool compacting = false;
  bool alerts_dirty = true;
  bool need_reload = false;

  // Outbox mirrors (queue only; the in-flight batch separately). Reloaded after a failure.
  model::OutboxStats ob;               // counters; readings/alerts/statuses/bytes of the queue only
  int64_t queue_oldest_ms = 0;  // 0 = queue empty
  std::optional<model::OutboxBatch> in_flight;
  bool outbox_dirty = false;

  std::string buf;  // reused encoding buffer

  ~Impl() {
    // Statements must be finalized before the connection closes.
    Stmt* all[] = {
        &begin,           &commit,         &rollback,        &ins_hot,        &ins_device_key,
        &ins_metric_key,  &upsert_device,  &upsert_alert,    &ins_quarantine, &evict_quarantine,
        &update_state,    &page_count,     &freelist_count,  &q_blocks,       &sel_hot_oldest,
        &ins_block,       &del_hot_upto,   &sel_hot_by_id,   &sel_blocks_old, &del_block,
        &del_hot_old,     &del_hot_oldest, &trim_alerts,     &ins_outbox,     &sel_outbox_prio,
        &del_outbox_upto, &save_outbox,    &sel_oldest_prio, &expire_outbox};
    for (Stmt* s : all) s->Finalize();
    if (db != nullptr) sqlite3_close(db);
    if (lock_fd >= 0) ::close(lock_fd);
  }

  // "store <path>: <what>: <sqlite message> (...)", coded by the one map (libs/sqlite).
  Status Err(int rc, std::string_view what) const {
    return sqlite::Error(db, rc, "store " + opt.path + ": " + std::string(what));
  }

  Status Exec(const char* sql_text, std::string_view what) {
    char* msg = nullptr;
    const int rc = sqlite3_exec(db, sql_text, nullptr, nullptr, &msg);
    sqlite3_free(msg);
    if (rc != SQLITE_OK) return Err(rc, what);
    return Status::Ok();
  }

  Status Prepare(Stmt* out, const char* sql_text) {
    return out->Prepare(db, sql_text, "store " + opt.path);
  }

  // Runs a statement that returns no rows (or ignores them) and resets it.
  Status Run(const Stmt& s, std::string_view what) {
    const int rc = sqlite3_step(s.get());
    sqlite3_reset(s.get());
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return Err(rc, what);
    return Status::Ok();
  }

  Result<int64_t> QueryInt(const char* sql_text, std::string_view what) {
    Stmt s;
    OUTPOST_RETURN_IF_ERROR(Prepare(&s, sql_text));
    const int rc = sqlite3_step(s.get());
    if (rc != SQLITE_ROW) return Err(rc == SQLITE_DONE ? SQLITE_ERROR : rc, what);
    return static_cast<int64_t>(sqlite3_column_int64(s.get(), 0));
  }

  Status Begin() { return Run(begin, "begin"); }
  Status Commit() { return Run(commit, "commit"); }
  // After any failure inside a transaction: roll back and re-read the in-memory mirrors.
  Status Abort(Status error) {
    if (!sqlite3_get_autocommit(db)) {
      sqlite3_step(rollback.get());
      sqlite3_reset(rollback.get());
    }
    need_reload = true;
    Status reload = Reload();
    (void)reload;  // if this fails too, the next call retries it and reports
    return error;
  }

  Status UpdateBytes() {
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

  Status Reload();
  Status LoadHotIndex();
  Status PrepareAll();
  Status Migrate(int from_version);

  Result<int64_t> DeviceKey(const std::string& device_id) {
    auto it = device_keys.find(device_id);
    if (it != device_keys.end()) return it->second;
    const int64_t key = static_cast<int64_t>(device_ids.size()) + 1;
    sqlite3_stmt* s = ins_device_key.get();
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 1, key));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 2, device_id));
    OUTPOST_RETURN_IF_ERROR(Run(ins_device_key, "insert device key"));
    device_keys.emplace(device_id, key);
    device_ids.push_back(device_id);
    registered.push_back(0);
    hot_index.emplace_back();
    return key;
  }

  Result<int64_t> MetricKey(const std::string& name) {
    auto it = metric_keys.find(name);
    if (it != metric_keys.end()) return it->second;
    const int64_t key = static_cast<int64_t>(metric_keys.size()) + 1;
    sqlite3_stmt* s = ins_metric_key.get();
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 1, key));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 2, name));
    OUTPOST_RETURN_IF_ERROR(Run(ins_metric_key, "insert metric key"));
    metric_keys.emplace(name, key);
    return key;
  }

  Status SaveState() {
    sqlite3_stmt* s = update_state.get();
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 1, next_id));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 2, readings));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 3, deleted_by_age));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 4, deleted_by_size));
    return Run(update_state, "update state");
  }

  Status WriteInTx(const model::WriteSet& batch);
  // Outbox helpers (inside a transaction unless noted).
  Status LoadOutbox();  // outside a transaction
  Status SaveOutbox();
  Status RefreshOutboxOldest();
  Status EnqueueOutbox(const std::vector<model::OutboxItem>& items);
  Status DropOldest(int64_t excess);
  Status ExpireOutbox(int64_t now_ms, size_t budget);
  int64_t InFlightBytes() const {
    return in_flight ? static_cast<int64_t>(in_flight->body.size()) : 0;
  }
  void CountKind(model::OutboxKind kind, int64_t delta) {
    switch (kind) {
      case model::OutboxKind::kReading:
        ob.readings += delta;
        break;
      case model::OutboxKind::kAlert:
        ob.alerts += delta;
        break;
      case model::OutboxKind::kStatus:
        ob.statuses += delta;
        break;
    }
  }
  Status InsertReading(const model::ReadingRow& r);
  Status RetainByAge(int64_t now_ms, size_t budget);
  Status RetainBySize(size_t budget);
  Status Compact(size_t budget);
  Status TrimAlerts();
  // Deletes the given blocks; returns the number of readings they held.
  Result<int64_t> DeleteBlocks(const std::vector<std::pair<int64_t, int64_t>>& blocks);
};

Status Store::Impl::Migrate(int from_version) {
  for (int v = from_version; v < kSchemaVersion; ++v) {
    const std::string what = "migration to schema version " + std::to_string(v + 1);
    auto tx = sqlite::Transaction::Begin(db, sqlite::Transaction::Mode::kImmediate,
                                         "store " + opt.path + ": " + what);
    if (!tx.ok()) return tx.status();
    OUTPOST_RETURN_IF_ERROR(Exec(kMigrations[v], what));
    const std::string pragmas = "PRAGMA user_version=" + std::to_string(v + 1) +
                                "; PRAGMA application_id=" + std::to_string(kApplicationId);
    OUTPOST_RETURN_IF_ERROR(Exec(pragmas.c_str(), what));
    OUTPOST_RETURN_IF_ERROR(tx->Commit());  // else the scope rolls the migration back
  }
  return Status::Ok();
}

Status Store::Impl::PrepareAll() {
  struct {
    Stmt* stmt;
    const char* text;
  } const list[] = {
      {&begin, "BEGIN IMMEDIATE"},
      {&commit, "COMMIT"},
      {&rollback, "ROLLBACK"},
      {&ins_hot,
       "INSERT INTO hot(id, device_key, ts_ms, received_ms, flags, boot, seq, device_ts, metrics) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"},
      {&ins_device_key, "INSERT INTO device_keys(device_key, device_id) VALUES (?1, ?2)"},
      {&ins_metric_key, "INSERT INTO metric_keys(metric_key, name) VALUES (?1, ?2)"},
      {&upsert_device,
       "INSERT OR REPLACE INTO devices(device_key, first_seen_ms, last_seen_ms, status, "
       "status_changed_ms, last_reading_json, firmware, boot, last_seq, readings, duplicates, "
       "seq_gaps) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"},
      {&del_device, "DELETE FROM devices WHERE device_key = ?1"},
      {&upsert_alert,
       "INSERT INTO alerts(alert_id, raised_ms, rule, device_id, metric, severity, message, value, "
       "threshold, cleared_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
       "ON CONFLICT(alert_id, raised_ms) DO UPDATE SET rule=excluded.rule, "
       "device_id=excluded.device_id, metric=excluded.metric, severity=excluded.severity, "
       "message=excluded.message, value=excluded.value, threshold=excluded.threshold, "
       "cleared_ms=excluded.cleared_ms"},
      {&ins_quarantine,
       "INSERT INTO quarantine(received_ms, topic, reason, detail, payload) "
       "VALUES (?1, ?2, ?3, ?4, ?5)"},
      {&evict_quarantine,
       "DELETE FROM quarantine WHERE id <= (SELECT max(id) FROM quarantine) - ?1"},
      {&update_state,
       "UPDATE state SET next_reading_id=?1, readings=?2, deleted_by_age=?3, deleted_by_size=?4 "
       "WHERE id = 1"},
      {&page_count, "PRAGMA page_count"},
      {&freelist_count, "PRAGMA freelist_count"},
      {&q_blocks,
       "SELECT start_ts, data FROM blocks WHERE device_key = ?1 AND start_ts >= ?2 AND "
       "start_ts < ?3 AND end_ts >= ?4 ORDER BY start_ts"},
      {&sel_hot_oldest,
       "SELECT id, device_key, ts_ms, received_ms, flags, boot, seq, device_ts, metrics FROM hot "
       "ORDER BY id LIMIT ?1"},
      {&ins_block,
       "INSERT INTO blocks(device_key, start_ts, end_ts, pass, n, data) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"},
      {&del_hot_upto, "DELETE FROM hot WHERE id <= ?1"},
      {&sel_hot_by_id, "SELECT metrics FROM hot WHERE id = ?1"},
      {&sel_blocks_old, "SELECT id, n FROM blocks WHERE end_ts < ?1 ORDER BY end_ts LIMIT ?2"},
      {&del_block, "DELETE FROM blocks WHERE id = ?1"},
      {&del_hot_old, "DELETE FROM hot WHERE id IN (SELECT id FROM hot WHERE ts_ms < ?1 LIMIT ?2)"},
      {&del_hot_oldest, "DELETE FROM hot WHERE id IN (SELECT id FROM hot ORDER BY id LIMIT ?1)"},
      {&ins_outbox, "INSERT INTO outbox(prio, kind, created_ms, body) VALUES (?1, ?2, ?3, ?4)"},
      {&sel_outbox_prio,
       "SELECT id, kind, created_ms, body FROM outbox WHERE prio = ?1 ORDER BY id LIMIT ?2"},
      {&del_outbox_upto, "DELETE FROM outbox WHERE prio = ?1 AND id <= ?2"},
      {&save_outbox,
       "UPDATE outbox_state SET readings=?1, alerts=?2, statuses=?3, bytes=?4, "
       "dropped_quota_oldest=?5, dropped_quota_rejected=?6, expired=?7, dead_letter=?8, "
       "sent_batches=?9, sent_items=?10, next_batch_seq=?11 WHERE id = 1"},
      {&sel_oldest_prio, "SELECT created_ms FROM outbox WHERE prio = ?1 ORDER BY id LIMIT 1"},
      {&expire_outbox,
       "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE created_ms < ?1 ORDER BY id "
       "LIMIT ?2) RETURNING kind, length(body)"},
      {&trim_alerts,
       "DELETE FROM alerts WHERE cleared_ms != 0 AND raised_ms <= (SELECT raised_ms FROM alerts "
       "WHERE cleared_ms != 0 ORDER BY raised_ms DESC LIMIT 1 OFFSET ?1)"},
  };
  for (const auto& p : list) OUTPOST_RETURN_IF_ERROR(Prepare(p.stmt, p.text));
  return Status::Ok();
}

Status Store::Impl::Reload() {
  device_keys.clear();
  device_ids.clear();
  registered.clear();
  metric_keys.clear();
  {
    Stmt s;
    OUTPOST_RETURN_IF_ERROR(
        Prepare(&s, "SELECT device_key, device_id FROM device_keys ORDER BY device_key"));
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      const int64_t key = sqlite3_column_int64(s.get(), 0);
      if (key != static_cast<int64_t>(device_ids.size()) + 1) {
        return Status(Code::kDataLoss, "store " + opt.path + ": device keys are not dense");
      }
      std::string id = sqlite::ColumnText(s.get(), 1);
      device_keys.emplace(id, key);
      device_ids.push_back(std::move(id));
    }
    if (rc != SQLITE_DONE) return Err(rc, "load device keys");
    registered.assign(device_ids.size(), 0);
  }
  {
    Stmt s;
    OUTPOST_RETURN_IF_ERROR(Prepare(&s, "SELECT metric_key, name FROM metric_keys"));
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      metric_keys.emplace(sqlite::ColumnText(s.get(), 1), sqlite3_column_int64(s.get(), 0));
    }
    if (rc != SQLITE_DONE) return Err(rc, "load metric keys");
  }
  {
    Stmt s;
    OUTPOST_RETURN_IF_ERROR(Prepare(&s, "SELECT device_key FROM devices"));
    int rc;
    devices = 0;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      const int64_t key = sqlite3_column_int64(s.get(), 0);
      if (key < 1 || key > static_cast<int64_t>(registered.size())) {
        return Status(Code::kDataLoss, "store " + opt.path + ": device without a key");
      }
      registered[static_cast<size_t>(key - 1)] = 1;
      ++devices;
    }
    if (rc != SQLITE_DONE) return Err(rc, "load devices");
  }
  {
    Stmt s;
    OUTPOST_RETURN_IF_ERROR(Prepare(
        &s, "SELECT next_reading_id, readings, deleted_by_age, deleted_by_size FROM state"));
    const int rc = sqlite3_step(s.get());
    if (rc != SQLITE_ROW) return Err(rc == SQLITE_DONE ? SQLITE_CORRUPT : rc, "load state");
    next_id = sqlite3_column_int64(s.get(), 0);
    readings = sqlite3_column_int64(s.get(), 1);
    deleted_by_age = sqlite3_column_int64(s.get(), 2);
    deleted_by_size = sqlite3_column_int64(s.get(), 3);
  }
  OUTPOST_RETURN_IF_ERROR(LoadHotIndex());
  OUTPOST_RETURN_IF_ERROR(LoadOutbox());
  Result<int64_t> q = QueryInt("SELECT count(*) FROM quarantine", "count quarantine");
  if (!q.ok()) return q.status();
  quarantine = *q;
  Result<int64_t> ps = QueryInt("PRAGMA page_size", "page_size");
  if (!ps.ok()) return ps.status();
  page_size = *ps;
  OUTPOST_RETURN_IF_ERROR(UpdateBytes());
  compacting = hot_rows > static_cast<int64_t>(opt.hot_max_rows);
  alerts_dirty = true;
  need_reload = false;
  return Status::Ok();
}

// The hot tail is bounded by compaction, so this scan is cheap.
Status Store::Impl::LoadHotIndex() {
  hot_index.assign(device_ids.size(), {});
  hot_rows = 0;
  hot_min_ts = std::numeric_limits<int64_t>::max();
  Stmt s;
  OUTPOST_RETURN_IF_ERROR(Prepare(&s, "SELECT id, device_key, ts_ms FROM hot ORDER BY id"));
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    const int64_t key = sqlite3_column_int64(s.get(), 1);
    if (key < 1 || key > static_cast<int64_t>(hot_index.size())) {
      return Status(Code::kDataLoss, "store " + opt.path + ": reading with unknown device key");
    }
    const int64_t ts = sqlite3_column_int64(s.get(), 2);
    hot_index[static_cast<size_t>(key - 1)].push_back({sqlite3_column_int64(s.get(), 0), ts});
    hot_min_ts = std::min(hot_min_ts, ts);
    ++hot_rows;
  }
  if (rc != SQLITE_DONE) return Err(rc, "load hot index");
  return Status::Ok();
}

Result<std::unique_ptr<Store>> Store::Open(const Options& options) {
  if (options.path.empty()) return InvalidArgument("store: Options::path is empty");
  if (options.hot_max_rows == 0) {
    return InvalidArgument("store " + options.path + ": hot_max_rows must be > 0");
  }
  auto impl = std::make_unique<Impl>();
  impl->opt = options;
  // The store is the file's only writer: a second gateway would keep its own in-memory id
  // counters and dictionaries. An flock on "<path>.lock" keeps it out while leaving the file
  // readable by others in WAL mode (sqlite3, backups). O_CLOEXEC: a gateway that re-executes
  // itself must not inherit its own lock.
  const std::string lock_path = options.path + ".lock";
  impl->lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (impl->lock_fd < 0) {
    return Status(Code::kUnavailable, "store " + options.path + ": cannot open " + lock_path +
                                          ": " + std::strerror(errno) +
                                          " (does the parent directory exist?)");
  }
  if (::flock(impl->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    return Status(Code::kUnavailable, "store " + options.path +
                                          ": locked by another process (is another gateway "
                                          "running on this file?)");
  }
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(options.path.c_str(), &impl->db, flags,
                           options.vfs.empty() ? nullptr : options.vfs.c_str());
  if (rc != SQLITE_OK) {
    Status st = impl->Err(rc, "open (does the parent directory exist?)");
    return st;
  }
  sqlite3_extended_result_codes(impl->db, 1);
  sqlite3_busy_timeout(impl->db, 1000);
  if (sqlite3_db_readonly(impl->db, "main") == 1) {
    return Status(Code::kUnavailable, "store " + options.path + ": file is read-only");
  }

  // The first read tells us whether this is a database at all.
  Result<int64_t> app_id = impl->QueryInt("PRAGMA application_id", "read header");
  if (!app_id.ok()) {
    if (app_id.status().code() == Code::kDataLoss) {
      return Status(Code::kDataLoss,
                    "store " + options.path +
                        ": not a SQLite database (or corrupt): " + app_id.status().message());
    }
    return app_id.status();
  }
  Result<int64_t> version = impl->QueryInt("PRAGMA user_version", "read schema version");
  if (!version.ok()) return version.status();
  Result<int64_t> objects = impl->QueryInt("SELECT count(*) FROM sqlite_schema", "read schema");
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
    OUTPOST_RETURN_IF_ERROR(impl->Prepare(&s, "PRAGMA journal_mode=WAL"));
    rc = sqlite3_step(s.get());
    if (rc != SQLITE_ROW) return impl->Err(rc, "set WAL mode");
    const std::string mode = sqlite::ColumnText(s.get(), 0);
    if (mode != "wal") {
      return Status(Code::kUnavailable,
                    "store " + options.path + ": cannot use WAL mode (got " + mode + ")");
    }
  }
  OUTPOST_RETURN_IF_ERROR(impl->Exec(SynchronousPragma(options.synchronous), "set synchronous"));
  const std::string cache =
      "PRAGMA cache_size=-" + std::to_string(std::max<int64_t>(options.cache_bytes / 1024, 1024));
  OUTPOST_RETURN_IF_ERROR(impl->Exec(cache.c_str(), "set cache size"));
  OUTPOST_RETURN_IF_ERROR(
      impl->Exec("PRAGMA temp_store=MEMORY; PRAGMA journal_size_limit=67108864; "
                 "PRAGMA wal_autocheckpoint=4096",
                 "set pragmas"));

  OUTPOST_RETURN_IF_ERROR(impl->Migrate(static_cast<int>(*version)));
  // Take the write lock now (held until close), so a second opener fails here, not later.
  OUTPOST_RETURN_IF_ERROR(
      impl->Exec("BEGIN IMMEDIATE; COMMIT", "lock (is another gateway running on this file?)"));
  OUTPOST_RETURN_IF_ERROR(impl->PrepareAll());
  OUTPOST_RETURN_IF_ERROR(impl->Reload());
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

Status Store::Impl::InsertReading(const model::ReadingRow& r) {
  Result<int64_t> dkey = DeviceKey(r.device_id);
  if (!dkey.ok()) return dkey.status();
  buf.clear();
  for (const model::MetricValue& m : r.metrics) {
    Result<int64_t> mkey = MetricKey(m.name);
    if (!mkey.ok()) return mkey.status();
    codec::AppendMetric(&buf, *mkey, m.is_bool, m.value);
  }
  uint8_t flags = 0;
  if (r.ts_from_device) flags |= codec::kFlagTsFromDevice;
  if (r.has_seq) flags |= codec::kFlagHasSeq;
  if (r.has_device_ts) flags |= codec::kFlagHasDeviceTs;
  sqlite3_stmt* s = ins_hot.get();
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 1, next_id));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 2, *dkey));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 3, r.ts_ms));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 4, r.received_ms));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt(s, 5, flags));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 6, r.has_seq ? r.boot : 0));
  OUTPOST_RETURN_IF_ERROR(
      sqlite::BindInt64(s, 7, r.has_seq ? static_cast<sqlite3_int64>(r.seq) : 0));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 8, r.has_device_ts ? r.device_ts_raw : 0));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindBlob(s, 9, buf));
  const int rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) return Err(rc, "insert reading");
  hot_index[static_cast<size_t>(*dkey - 1)].push_back({next_id, r.ts_ms});
  ++next_id;
  ++readings;
  ++hot_rows;
  hot_min_ts = std::min(hot_min_ts, r.ts_ms);
  return Status::Ok();
}

Status Store::Impl::WriteInTx(const model::WriteSet& batch) {
  for (const model::ReadingRow& r : batch.readings) OUTPOST_RETURN_IF_ERROR(InsertReading(r));

  // Removals first: a device evicted and heard again in the same batch keeps its new row.
  for (const std::string& id : batch.removed_devices) {
    auto it = device_keys.find(id);
    if (it == device_keys.end()) continue;
    sqlite3_bind_int64(del_device.get(), 1, it->second);
    OUTPOST_RETURN_IF_ERROR(Run(del_device, "delete device"));
    uint8_t& reg = registered[static_cast<size_t>(it->second - 1)];
    if (reg) {
      reg = 0;
      --devices;
    }
  }

  for (const model::DeviceRow& d : batch.devices) {
    Result<int64_t> key = DeviceKey(d.device_id);
    if (!key.ok()) return key.status();
    sqlite3_stmt* s = upsert_device.get();
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 1, *key));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 2, d.first_seen_ms));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 3, d.last_seen_ms));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 4, d.status));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 5, d.status_changed_ms));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 6, d.last_reading_json));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 7, d.firmware));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 8, d.boot));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 9, static_cast<sqlite3_int64>(d.last_seq)));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 10, static_cast<sqlite3_int64>(d.readings)));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 11, static_cast<sqlite3_int64>(d.duplicates)));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 12, static_cast<sqlite3_int64>(d.seq_gaps)));
    OUTPOST_RETURN_IF_ERROR(Run(upsert_device, "upsert device"));
    uint8_t& reg = registered[static_cast<size_t>(*key - 1)];
    if (!reg) {
      reg = 1;
      ++devices;
    }
  }

  for (const model::AlertRow& a : batch.alerts) {
    sqlite3_stmt* s = upsert_alert.get();
    OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 1, a.alert_id));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 2, a.raised_ms));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 3, a.rule));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 4, a.device_id));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 5, a.metric));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 6, a.severity));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 7, a.message));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindDouble(s, 8, a.value));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindDouble(s, 9, a.threshold));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 10, a.cleared_ms));
    OUTPOST_RETURN_IF_ERROR(Run(upsert_alert, "upsert alert"));
    alerts_dirty = true;
  }

  if (opt.quarantine_max_rows > 0 && !batch.quarantine.empty()) {
    // Only the newest quarantine_max_rows of this batch can survive eviction.
    const size_t skip = batch.quarantine.size() > opt.quarantine_max_rows
                            ? batch.quarantine.size() - opt.quarantine_max_rows
                            : 0;
    for (size_t i = skip; i < batch.quarantine.size(); ++i) {
      const model::QuarantineRow& q = batch.quarantine[i];
      sqlite3_stmt* s = ins_quarantine.get();
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 1, q.received_ms));
      OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 2, q.topic));
      OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 3, q.reason));
      OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 4, q.detail));
      const size_t n = std::min(q.payload.size(), opt.quarantine_max_payload_bytes);
      OUTPOST_RETURN_IF_ERROR(sqlite::BindBlob(s, 5, std::string_view(q.payload.data(), n)));
      OUTPOST_RETURN_IF_ERROR(Run(ins_quarantine, "insert quarantine"));
      ++quarantine;
    }
    if (quarantine > static_cast<int64_t>(opt.quarantine_max_rows)) {
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(evict_quarantine.get(), 1,
                                                sqlite::ClampLimit(opt.quarantine_max_rows)));
      OUTPOST_RETURN_IF_ERROR(Run(evict_quarantine, "evict quarantine"));
      quarantine -= sqlite3_changes(db);
    }
  }

  if (!batch.readings.empty()) OUTPOST_RETURN_IF_ERROR(SaveState());
  if (opt.outbox.enabled && !batch.outbox.empty()) {
    OUTPOST_RETURN_IF_ERROR(EnqueueOutbox(batch.outbox));
  }
  return Status::Ok();
}

Status Store::Write(const model::WriteSet& batch) {
  Impl& m = *impl_;
  if (m.need_reload) OUTPOST_RETURN_IF_ERROR(m.Reload());
  if (batch.empty()) return Status::Ok();
  OUTPOST_RETURN_IF_ERROR(m.Begin());
  Status st = m.WriteInTx(batch);
  if (st.ok()) st = m.Commit();
  if (!st.ok()) return m.Abort(std::move(st));
  return m.UpdateBytes();
}

Result<std::vector<Point>> Store::QuerySeries(std::string_view device_id, std::string_view metric,
                                              int64_t from_ms, int64_t to_ms, size_t limit) {
  Impl& m = *impl_;
  if (m.need_reload) OUTPOST_RETURN_IF_ERROR(m.Reload());
  std::vector<Point> out;
  if (limit == 0 || from_ms >= to_ms) return out;
  auto dit = m.device_keys.find(std::string(device_id));
  auto mit = m.metric_keys.find(std::string(metric));
  if (dit == m.device_keys.end() || mit == m.metric_keys.end()) return out;
  const int64_t dkey = dit->second;
  const int64_t mkey = mit->second;

  std::vector<codec::TsValue> pts;
  std::vector<int64_t> ts_scratch;
  auto by_ts = [](const codec::TsValue& a, const codec::TsValue& b) { return a.ts_ms < b.ts_ms; };

  // Compacted blocks, in start order. Once `limit` points are known and the next block starts
  // after the last of them, no later block can contribute.
  sqlite3_stmt* s = m.q_blocks.get();
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 1, dkey));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 2, SatSub(from_ms, kMaxBlockSpanMs)));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 3, to_ms));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 4, from_ms));
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const int64_t start = sqlite3_column_int64(s, 0);
    if (pts.size() >= limit) {
      std::stable_sort(pts.begin(), pts.end(), by_ts);
      pts.resize(limit);
      if (start > pts.back().ts_ms) break;
    }
    if (!codec::DecodeBlockSeries(sqlite::ColumnView(s, 1), mkey, from_ms, to_ms, &ts_scratch,
                                  &pts)) {
      sqlite3_reset(s);
      return Status(Code::kDataLoss, "store " + m.opt.path + ": corrupt block");
    }
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    sqlite3_reset(s);
    return m.Err(rc, "query blocks");
  }
  sqlite3_reset(s);

  // The hot tail, through the in-memory index: point lookups by rowid.
  s = m.sel_hot_by_id.get();
  for (const HotRef& ref : m.hot_index[static_cast<size_t>(dkey - 1)]) {
    if (ref.ts_ms < from_ms || ref.ts_ms >= to_ms) continue;
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 1, ref.id));
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
      codec::MetricReader reader(sqlite::ColumnView(s, 0));
      codec::PackedMetric pm;
      while (reader.Next(&pm)) {
        if (pm.key == mkey) {
          pts.push_back({ref.ts_ms, pm.value});
          break;
        }
      }
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW) {
      return rc == SQLITE_DONE
                 ? Status(Code::kInternal, "store " + m.opt.path + ": hot index out of date")
                 : m.Err(rc, "query hot rows");
    }
  }
  std::stable_sort(pts.begin(), pts.end(), by_ts);
  if (pts.size() > limit) pts.resize(limit);
  out.reserve(pts.size());
  for (const auto& p : pts) out.push_back({p.ts_ms, p.value});
  return out;
}

Result<std::vector<model::DeviceRow>> Store::LoadDevices() {
  Impl& m = *impl_;
  Stmt s;
  OUTPOST_RETURN_IF_ERROR(m.Prepare(
      &s,
      "SELECT k.device_id, d.first_seen_ms, d.last_seen_ms, d.status, d.status_changed_ms, "
      "d.last_reading_json, d.firmware, d.boot, d.last_seq, d.readings, d.duplicates, d.seq_gaps "
      "FROM devices d JOIN device_keys k ON k.device_key = d.device_key ORDER BY k.device_id"));
  std::vector<model::DeviceRow> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    sqlite3_stmt* r = s.get();
    model::DeviceRow d;
    d.device_id = sqlite::ColumnText(r, 0);
    d.first_seen_ms = sqlite3_column_int64(r, 1);
    d.last_seen_ms = sqlite3_column_int64(r, 2);
    d.status = sqlite::ColumnText(r, 3);
    d.status_changed_ms = sqlite3_column_int64(r, 4);
    d.last_reading_json = sqlite::ColumnText(r, 5);
    d.firmware = sqlite::ColumnText(r, 6);
    d.boot = static_cast<uint32_t>(sqlite3_column_int64(r, 7));
    d.last_seq = static_cast<uint64_t>(sqlite3_column_int64(r, 8));
    d.readings = static_cast<uint64_t>(sqlite3_column_int64(r, 9));
    d.duplicates = static_cast<uint64_t>(sqlite3_column_int64(r, 10));
    d.seq_gaps = static_cast<uint64_t>(sqlite3_column_int64(r, 11));
    out.push_back(std::move(d));
  }
  if (rc != SQLITE_DONE) return m.Err(rc, "load devices");
  return out;
}

namespace {
const char kAlertColumns[] =
    "SELECT alert_id, rule, device_id, metric, severity, message, value, threshold, raised_ms, "
    "cleared_ms FROM alerts ";

model::AlertRow ReadAlert(sqlite3_stmt* r) {
  model::AlertRow a;
  a.alert_id = sqlite::ColumnText(r, 0);
  a.rule = sqlite::ColumnText(r, 1);
  a.device_id = sqlite::ColumnText(r, 2);
  a.metric = sqlite::ColumnText(r, 3);
  a.severity = sqlite::ColumnText(r, 4);
  a.message = sqlite::ColumnText(r, 5);
  a.value = ColumnDouble(r, 6);
  a.threshold = ColumnDouble(r, 7);
  a.raised_ms = sqlite3_column_int64(r, 8);
  a.cleared_ms = sqlite3_column_int64(r, 9);
  return a;
}
}  // namespace

Result<std::vector<model::AlertRow>> Store::LoadActiveAlerts() {
  Impl& m = *impl_;
  Stmt s;
  OUTPOST_RETURN_IF_ERROR(m.Prepare(
      &s, (std::string(kAlertColumns) + "WHERE cleared_ms = 0 ORDER BY raised_ms").c_str()));
  std::vector<model::AlertRow> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) out.push_back(ReadAlert(s.get()));
  if (rc != SQLITE_DONE) return m.Err(rc, "load active alerts");
  return out;
}

Result<std::vector<model::AlertRow>> Store::ListAlerts(size_t limit) {
  Impl& m = *impl_;
  Stmt s;
  OUTPOST_RETURN_IF_ERROR(
      m.Prepare(&s, (std::string(kAlertColumns) + "ORDER BY raised_ms DESC LIMIT ?1").c_str()));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s.get(), 1, sqlite::ClampLimit(limit)));
  std::vector<model::AlertRow> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) out.push_back(ReadAlert(s.get()));
  if (rc != SQLITE_DONE) return m.Err(rc, "list alerts");
  return out;
}

Result<std::vector<model::QuarantineRow>> Store::ListQuarantine(size_t limit) {
  Impl& m = *impl_;
  Stmt s;
  OUTPOST_RETURN_IF_ERROR(m.Prepare(&s,
                                    "SELECT received_ms, topic, reason, detail, payload FROM "
                                    "quarantine ORDER BY id DESC LIMIT ?1"));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s.get(), 1, sqlite::ClampLimit(limit)));
  std::vector<model::QuarantineRow> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    model::QuarantineRow q;
    q.received_ms = sqlite3_column_int64(s.get(), 0);
    q.topic = sqlite::ColumnText(s.get(), 1);
    q.reason = sqlite::ColumnText(s.get(), 2);
    q.detail = sqlite::ColumnText(s.get(), 3);
    q.payload = sqlite::ColumnText(s.get(), 4);
    out.push_back(std::move(q));
  }
  if (rc != SQLITE_DONE) return m.Err(rc, "list quarantine");
  return out;
}

Result<std::vector<model::RecentIdentity>> Store::LoadRecentIdentities(size_t max_rows) {
  Impl& m = *impl_;
  if (m.need_reload) OUTPOST_RETURN_IF_ERROR(m.Reload());
  struct Item {
    int64_t id;
    int64_t device_key;
    codec::BlockIdentity ident;
  };
  std::vector<Item> items;
  if (max_rows == 0) return std::vector<model::RecentIdentity>();
  {
    Stmt s;
    OUTPOST_RETURN_IF_ERROR(m.Prepare(
        &s,
        "SELECT id, device_key, flags, boot, seq, device_ts FROM hot ORDER BY id DESC LIMIT ?1"));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s.get(), 1, sqlite::ClampLimit(max_rows)));
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      sqlite3_stmt* r = s.get();
      codec::BlockIdentity id{};
      id.id = sqlite3_column_int64(r, 0);
      id.flags = static_cast<uint8_t>(sqlite3_column_int(r, 2));
      id.boot = static_cast<uint32_t>(sqlite3_column_int64(r, 3));
      id.seq = static_cast<uint64_t>(sqlite3_column_int64(r, 4));
      id.device_ts = sqlite3_column_int64(r, 5);
      items.push_back({id.id, sqlite3_column_int64(r, 1), id});
    }
    if (rc != SQLITE_DONE) return m.Err(rc, "load recent hot identities");
  }
  if (items.size() < max_rows) {
    // Older readings are in blocks. Every reading of a compaction pass has a smaller id than
    // those of later passes, so reading whole passes, newest first, is exact.
    Stmt s;
    OUTPOST_RETURN_IF_ERROR(
        m.Prepare(&s, "SELECT device_key, pass, data FROM blocks ORDER BY id DESC"));
    std::vector<codec::BlockIdentity> decoded;
    int64_t current_pass = -1;
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      const int64_t pass = sqlite3_column_int64(s.get(), 1);
      if (pass != current_pass && items.size() >= max_rows) break;
      current_pass = pass;
      decoded.clear();
      if (!codec::DecodeBlockIdentities(sqlite::ColumnView(s.get(), 2), &decoded)) {
        return Status(Code::kDataLoss, "store " + m.opt.path + ": corrupt block");
      }
      const int64_t dkey = sqlite3_column_int64(s.get(), 0);
      for (const auto& id : decoded) items.push_back({id.id, dkey, id});
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return m.Err(rc, "load recent block identities");
  }
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.id > b.id; });
  if (items.size() > max_rows) items.resize(max_rows);
  std::vector<model::RecentIdentity> out;
  out.reserve(items.size());
  for (auto it = items.rbegin(); it != items.rend(); ++it) {
    model::RecentIdentity r;
    if (it->device_key < 1 || it->device_key > static_cast<int64_t>(m.device_ids.size())) {
      return Status(Code::kDataLoss, "store " + m.opt.path + ": reading with unknown device");
    }
    r.device_id = m.device_ids[static_cast<size_t>(it->device_key - 1)];
    r.has_seq = (it->ident.flags & codec::kFlagHasSeq) != 0;
    r.boot = r.has_seq ? it->ident.boot : 0;
    r.seq = r.has_seq ? it->ident.seq : 0;
    r.has_device_ts = (it->ident.flags & codec::kFlagHasDeviceTs) != 0;
    r.device_ts_raw = r.has_device_ts ? it->ident.device_ts : 0;
    out.push_back(std::move(r));
  }
  return out;
}

Result<int64_t> Store::Impl::DeleteBlocks(const std::vector<std::pair<int64_t, int64_t>>& blocks) {
  int64_t n = 0;
  for (const auto& [id, count] : blocks) {
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(del_block.get(), 1, id));
    OUTPOST_RETURN_IF_ERROR(Run(del_block, "delete block"));
    n += count;
  }
  return n;
}

Status Store::Impl::RetainByAge(int64_t now_ms, size_t budget) {
  if (opt.retention_ms <= 0) return Status::Ok();
  const int64_t cutoff = SatSub(now_ms, opt.retention_ms);
  std::vector<std::pair<int64_t, int64_t>> old;
  {
    sqlite3_stmt* s = sel_blocks_old.get();
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 1, cutoff));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 2, sqlite::ClampLimit(budget)));
    size_t rows = 0;
    int rc;
    while (rows < budget && (rc = sqlite3_step(s)) == SQLITE_ROW) {
      old.emplace_back(sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1));
      rows += static_cast<size_t>(old.back().second);
    }
    rc = sqlite3_reset(s);
    if (rc != SQLITE_OK) return Err(rc, "select old blocks");
  }
  const bool hot_old = hot_min_ts < cutoff;
  if (old.empty() && !hot_old) return Status::Ok();

  OUTPOST_RETURN_IF_ERROR(Begin());
  bool hot_deleted = false;
  Status st = [&]() -> Status {
    Result<int64_t> n = DeleteBlocks(old);
    if (!n.ok()) return n.status();
    int64_t deleted = *n;
    if (hot_old) {
      const size_t hot_budget = std::max<size_t>(budget, 1000);
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(del_hot_old.get(), 1, cutoff));
      OUTPOST_RETURN_IF_ERROR(
          sqlite::BindInt64(del_hot_old.get(), 2, sqlite::ClampLimit(hot_budget)));
      OUTPOST_RETURN_IF_ERROR(Run(del_hot_old, "delete old hot rows"));
      const int64_t changed = sqlite3_changes(db);
      deleted += changed;
      hot_deleted = changed > 0;
    }
    readings -= deleted;
    deleted_by_age += deleted;
    OUTPOST_RETURN_IF_ERROR(SaveState());
    return Commit();
  }();
  if (!st.ok()) return Abort(std::move(st));
  // Rare (hot rows are normally compacted long before they age out): rebuild the hot index.
  if (hot_deleted) OUTPOST_RETURN_IF_ERROR(LoadHotIndex());
  if (hot_old && !hot_deleted) hot_min_ts = std::max(hot_min_ts, cutoff);  // none were old
  return UpdateBytes();
}

Status Store::Impl::RetainBySize(size_t budget) {
  if (opt.max_bytes <= 0 || db_bytes <= opt.max_bytes) return Status::Ok();
  bool hot_deleted = false;
  OUTPOST_RETURN_IF_ERROR(Begin());
  Status st = [&]() -> Status {
    int64_t deleted = 0;
    std::vector<std::pair<int64_t, int64_t>> old;
    while (db_bytes > opt.max_bytes && static_cast<size_t>(deleted) < budget) {
      // Oldest blocks first (by their newest reading), a few at a time, re-measuring between.
      old.clear();
      sqlite3_stmt* s = sel_blocks_old.get();
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 1, std::numeric_limits<int64_t>::max()));
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 2, 16));
      int rc;
      while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        old.emplace_back(sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1));
      }
      rc = sqlite3_reset(s);
      if (rc != SQLITE_OK) return Err(rc, "select oldest blocks");
      if (!old.empty()) {
        Result<int64_t> n = DeleteBlocks(old);
        if (!n.ok()) return n.status();
        deleted += *n;
      } else if (hot_rows > 0) {
        OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(del_hot_oldest.get(), 1, 1000));
        OUTPOST_RETURN_IF_ERROR(Run(del_hot_oldest, "delete oldest hot rows"));
        const int64_t changed = sqlite3_changes(db);
        deleted += changed;
        hot_rows -= changed;
        hot_deleted = true;
      } else {
        break;  // nothing left to delete: the rest is registry, alerts, quarantine
      }
      OUTPOST_RETURN_IF_ERROR(UpdateBytes());
    }
    readings -= deleted;
    deleted_by_size += deleted;
    OUTPOST_RETURN_IF_ERROR(SaveState());
    return Commit();
  }();
  if (!st.ok()) return Abort(std::move(st));
  if (hot_deleted) OUTPOST_RETURN_IF_ERROR(LoadHotIndex());
  return UpdateBytes();
}

Status Store::Impl::Compact(size_t budget) {
  const int64_t high = static_cast<int64_t>(opt.hot_max_rows);
  if (!compacting && hot_rows > high) compacting = true;
  if (!compacting) return Status::Ok();
  const int64_t low = high / 4;
  const int64_t want = std::min<int64_t>(hot_rows - low, sqlite::ClampLimit(budget));
  if (want <= 0) {
    compacting = false;
    return Status::Ok();
  }

  int64_t compacted_upto = 0;
  OUTPOST_RETURN_IF_ERROR(Begin());
  Status st = [&]() -> Status {
    std::vector<HotRow> rows;
    rows.reserve(static_cast<size_t>(want));
    std::string arena;
    arena.reserve(static_cast<size_t>(want) * 48);
    sqlite3_stmt* s = sel_hot_oldest.get();
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 1, want));
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      HotRow r;
      r.id = sqlite3_column_int64(s, 0);
      r.device_key = sqlite3_column_int64(s, 1);
      r.ts_ms = sqlite3_column_int64(s, 2);
      r.received_ms = sqlite3_column_int64(s, 3);
      r.flags = static_cast<uint8_t>(sqlite3_column_int(s, 4));
      r.boot = static_cast<uint32_t>(sqlite3_column_int64(s, 5));
      r.seq = static_cast<uint64_t>(sqlite3_column_int64(s, 6));
      r.device_ts = sqlite3_column_int64(s, 7);
      std::string_view blob = sqlite::ColumnView(s, 8);
      r.metrics_offset = arena.size();
      r.metrics_size = blob.size();
      arena.append(blob);
      rows.push_back(r);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) return Err(rc, "read hot rows");
    if (rows.empty()) return Commit();
    const int64_t pass = rows.front().id;
    const int64_t last_id = rows.back().id;
    compacted_upto = last_id;

    std::sort(rows.begin(), rows.end(), [](const HotRow& a, const HotRow& b) {
      if (a.device_key != b.device_key) return a.device_key < b.device_key;
      if (a.ts_ms != b.ts_ms) return a.ts_ms < b.ts_ms;
      return a.id < b.id;
    });
    std::vector<codec::BlockReading> block;
    codec::BlockScratch scratch;
    std::string data;
    auto flush = [&](int64_t device_key) -> Status {
      if (block.empty()) return Status::Ok();
      codec::EncodeBlock(block, &scratch, &data);
      sqlite3_stmt* ins = ins_block.get();
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(ins, 1, device_key));
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(ins, 2, block.front().ts_ms));
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(ins, 3, block.back().ts_ms));
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(ins, 4, pass));
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(ins, 5, static_cast<sqlite3_int64>(block.size())));
      OUTPOST_RETURN_IF_ERROR(sqlite::BindBlob(ins, 6, data));
      block.clear();
      return Run(ins_block, "insert block");
    };
    for (size_t i = 0; i < rows.size(); ++i) {
      const HotRow& r = rows[i];
      if (!block.empty() &&
          (r.device_key != rows[i - 1].device_key || block.size() >= kMaxBlockReadings ||
           r.ts_ms - block.front().ts_ms > kMaxBlockSpanMs)) {
        OUTPOST_RETURN_IF_ERROR(flush(rows[i - 1].device_key));
      }
      block.push_back({r.id, r.ts_ms, r.received_ms, r.flags, r.boot, r.seq, r.device_ts,
                       std::string_view(arena).substr(r.metrics_offset, r.metrics_size)});
    }
    OUTPOST_RETURN_IF_ERROR(flush(rows.back().device_key));

    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(del_hot_upto.get(), 1, last_id));
    OUTPOST_RETURN_IF_ERROR(Run(del_hot_upto, "delete compacted hot rows"));
    const int64_t moved = sqlite3_changes(db);
    if (moved != static_cast<int64_t>(rows.size())) {
      return Status(Code::kInternal, "store " + opt.path + ": compaction moved " +
                                         std::to_string(rows.size()) + " rows but deleted " +
                                         std::to_string(moved));
    }
    hot_rows -= moved;
    return Commit();
  }();
  if (!st.ok()) return Abort(std::move(st));
  // Compaction takes the oldest ids, so per device the compacted rows are a prefix.
  for (auto& refs : hot_index) {
    auto end = std::upper_bound(refs.begin(), refs.end(), compacted_upto,
                                [](int64_t id, const HotRef& r) { return id < r.id; });
    refs.erase(refs.begin(), end);
  }
  hot_min_ts = std::numeric_limits<int64_t>::max();
  for (const auto& refs : hot_index) {
    for (const HotRef& r : refs) hot_min_ts = std::min(hot_min_ts, r.ts_ms);
  }
  if (hot_rows <= low) compacting = false;
  return UpdateBytes();
}

Status Store::Impl::TrimAlerts() {
  if (!alerts_dirty) return Status::Ok();
  OUTPOST_RETURN_IF_ERROR(
      sqlite::BindInt64(trim_alerts.get(), 1, sqlite::ClampLimit(opt.alert_history_max_rows)));
  OUTPOST_RETURN_IF_ERROR(Run(trim_alerts, "trim alert history"));
  alerts_dirty = false;
  return Status::Ok();
}

Status Store::RunMaintenance(int64_t now_ms, size_t max_rows_per_call) {
  Impl& m = *impl_;
  if (m.need_reload) OUTPOST_RETURN_IF_ERROR(m.Reload());
  if (max_rows_per_call == 0) return Status::Ok();
  OUTPOST_RETURN_IF_ERROR(m.RetainByAge(now_ms, max_rows_per_call));
  OUTPOST_RETURN_IF_ERROR(m.RetainBySize(max_rows_per_call));
  OUTPOST_RETURN_IF_ERROR(m.TrimAlerts());
  if (m.opt.outbox.expire_after_ms > 0 && m.queue_oldest_ms != 0 &&
      m.queue_oldest_ms < SatSub(now_ms, m.opt.outbox.expire_after_ms)) {
    OUTPOST_RETURN_IF_ERROR(m.Begin());
    Status st = m.ExpireOutbox(now_ms, max_rows_per_call);
    if (st.ok()) st = m.Commit();
    if (!st.ok()) return m.Abort(std::move(st));
  }
  return m.Compact(max_rows_per_call);
}

Stats Store::stats() const {
  const Impl& m = *impl_;
  Stats s{m.readings,       m.devices,         m.quarantine, m.db_bytes,
          m.deleted_by_age, m.deleted_by_size, m.ob};
  s.outbox.oldest_created_ms = m.queue_oldest_ms;
  if (m.in_flight) {
    s.outbox.readings += m.in_flight->readings;
    s.outbox.alerts += m.in_flight->alerts;
    s.outbox.statuses += m.in_flight->statuses;
    s.outbox.bytes += m.InFlightBytes();
    s.outbox.in_flight_key = m.in_flight->key;
    if (s.outbox.oldest_created_ms == 0 || m.in_flight->created_ms < s.outbox.oldest_created_ms) {
      s.outbox.oldest_created_ms = m.in_flight->created_ms;
    }
  }
  return s;
}

// ---- outbox ----

namespace {
int Prio(model::OutboxKind k) { return k == model::OutboxKind::kReading ? 1 : 0; }
}  // namespace

Status Store::Impl::LoadOutbox() {
  {
    Stmt s;
    OUTPOST_RETURN_IF_ERROR(Prepare(
        &s,
        "SELECT readings, alerts, statuses, bytes, dropped_quota_oldest, dropped_quota_rejected, "
        "expired, dead_letter, sent_batches, sent_items, next_batch_seq FROM outbox_state"));
    const int rc = sqlite3_step(s.get());
    if (rc != SQLITE_ROW) return Err(rc == SQLITE_DONE ? SQLITE_CORRUPT : rc, "load outbox state");
    auto col = [&](int i) { return static_cast<int64_t>(sqlite3_column_int64(s.get(), i)); };
    ob = model::OutboxStats{};
    ob.readings = col(0);
    ob.alerts = col(1);
    ob.statuses = col(2);
    ob.bytes = col(3);
    ob.dropped_quota_oldest = col(4);
    ob.dropped_quota_rejected = col(5);
    ob.expired = col(6);
    ob.dead_letter = col(7);
    ob.sent_batches = col(8);
    ob.sent_items = col(9);
    ob.next_batch_seq = col(10);
  }
  {
    Stmt s;
    OUTPOST_RETURN_IF_ERROR(Prepare(&s, "SELECT reason, items FROM outbox_dead_letter"));
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      ob.dead_letter_reasons[sqlite::ColumnText(s.get(), 0)] = sqlite3_column_int64(s.get(), 1);
    }
    if (rc != SQLITE_DONE) return Err(rc, "load outbox dead letters");
  }
  in_flight.reset();
  {
    Stmt s;
    OUTPOST_RETURN_IF_ERROR(Prepare(&s,
                                    "SELECT key, seq, created_ms, readings, alerts, statuses, "
                                    "body FROM outbox_batch WHERE id = 1"));
    const int rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) {
      model::OutboxBatch b;
      b.key = sqlite::ColumnText(s.get(), 0);
      b.seq = sqlite3_column_int64(s.get(), 1);
      b.created_ms = sqlite3_column_int64(s.get(), 2);
      b.readings = sqlite3_column_int64(s.get(), 3);
      b.alerts = sqlite3_column_int64(s.get(), 4);
      b.statuses = sqlite3_column_int64(s.get(), 5);
      b.body = sqlite::ColumnText(s.get(), 6);
      in_flight = std::move(b);
    } else if (rc != SQLITE_DONE) {
      return Err(rc, "load outbox batch");
    }
  }
  outbox_dirty = false;
  return RefreshOutboxOldest();
}

Status Store::Impl::SaveOutbox() {
  sqlite3_stmt* s = save_outbox.get();
  const int64_t v[] = {ob.readings,
                       ob.alerts,
                       ob.statuses,
                       ob.bytes,
                       ob.dropped_quota_oldest,
                       ob.dropped_quota_rejected,
                       ob.expired,
                       ob.dead_letter,
                       ob.sent_batches,
                       ob.sent_items,
                       ob.next_batch_seq};
  for (int i = 0; i < 11; ++i) OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, i + 1, v[i]));
  OUTPOST_RETURN_IF_ERROR(Run(save_outbox, "update outbox state"));
  outbox_dirty = false;
  return Status::Ok();
}

Status Store::Impl::RefreshOutboxOldest() {
  queue_oldest_ms = 0;
  for (int prio : {0, 1}) {
    sqlite3_stmt* s = sel_oldest_prio.get();
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt(s, 1, prio));
    const int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
      const int64_t t = sqlite3_column_int64(s, 0);
      if (queue_oldest_ms == 0 || t < queue_oldest_ms) queue_oldest_ms = t;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Err(rc, "outbox oldest");
  }
  return Status::Ok();
}

Status Store::Impl::EnqueueOutbox(const std::vector<model::OutboxItem>& items) {
  const int64_t quota = opt.outbox.quota_bytes;
  const bool reject_new = opt.outbox.when_full == model::WhenFull::kRejectNew;
  bool inserted = false;
  for (const model::OutboxItem& item : items) {
    const auto size = static_cast<int64_t>(item.body.size());
    // An item that can never fit (larger than what the in-flight batch leaves of the quota) is
    // refused under either policy: dropping everything else would not make room.
    const bool never_fits = quota > 0 && size > quota - InFlightBytes();
    const bool full = quota > 0 && ob.bytes + InFlightBytes() + size > quota;
    if (never_fits || (reject_new && full)) {
      ++ob.dropped_quota_rejected;
      outbox_dirty = true;
      continue;
    }
    sqlite3_stmt* s = ins_outbox.get();
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt(s, 1, Prio(item.kind)));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt(s, 2, static_cast<int>(item.kind)));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 3, item.created_ms));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindBlob(s, 4, item.body));
    OUTPOST_RETURN_IF_ERROR(Run(ins_outbox, "insert outbox item"));
    CountKind(item.kind, 1);
    ob.bytes += size;
    if (queue_oldest_ms == 0 || item.created_ms < queue_oldest_ms)
      queue_oldest_ms = item.created_ms;
    inserted = true;
    outbox_dirty = true;
  }
  if (inserted && quota > 0 && ob.bytes + InFlightBytes() > quota) {
    OUTPOST_RETURN_IF_ERROR(DropOldest(ob.bytes + InFlightBytes() - quota));
  }
  if (outbox_dirty) OUTPOST_RETURN_IF_ERROR(SaveOutbox());
  return Status::Ok();
}

// Deletes whole items from the front of the queue, readings first, until `excess` bytes are
// freed. Reads the sizes first so the counters stay exact.
Status Store::Impl::DropOldest(int64_t excess) {
  for (int prio : {1, 0}) {
    while (excess > 0) {
      sqlite3_stmt* s = sel_outbox_prio.get();
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt(s, 1, prio));
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 2, 1024));
      int64_t last_id = -1, freed = 0, n = 0;
      int64_t by_kind[3] = {0, 0, 0};
      int rc;
      while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        last_id = sqlite3_column_int64(s, 0);
        const int kind = sqlite3_column_int(s, 1);
        freed += sqlite3_column_bytes(s, 3);
        ++n;
        if (kind >= 0 && kind < 3) ++by_kind[kind];
        if (freed >= excess) break;
      }
      sqlite3_reset(s);
      if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Err(rc, "select oldest outbox items");
      if (n == 0) break;
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt(del_outbox_upto.get(), 1, prio));
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(del_outbox_upto.get(), 2, last_id));
      OUTPOST_RETURN_IF_ERROR(Run(del_outbox_upto, "drop oldest outbox items"));
      ob.readings -= by_kind[0];
      ob.alerts -= by_kind[1];
      ob.statuses -= by_kind[2];
      ob.bytes -= freed;
      ob.dropped_quota_oldest += n;
      excess -= freed;
      outbox_dirty = true;
    }
  }
  return RefreshOutboxOldest();
}

Status Store::Impl::ExpireOutbox(int64_t now_ms, size_t budget) {
  sqlite3_stmt* s = expire_outbox.get();
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 1, SatSub(now_ms, opt.outbox.expire_after_ms)));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 2, sqlite::ClampLimit(budget)));
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    CountKind(static_cast<model::OutboxKind>(sqlite3_column_int(s, 0)), -1);
    ob.bytes -= sqlite3_column_int64(s, 1);
    ++ob.expired;
  }
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) return Err(rc, "expire outbox items");
  OUTPOST_RETURN_IF_ERROR(SaveOutbox());
  return RefreshOutboxOldest();
}

Result<std::optional<model::OutboxBatch>> Store::InFlightOutboxBatch() {
  Impl& m = *impl_;
  if (m.need_reload) OUTPOST_RETURN_IF_ERROR(m.Reload());
  return m.in_flight;
}

Result<std::vector<model::OutboxEntry>> Store::PeekOutbox(size_t max_items, int64_t max_bytes,
                                                   double reading_share) {
  Impl& m = *impl_;
  if (m.need_reload) OUTPOST_RETURN_IF_ERROR(m.Reload());
  std::vector<model::OutboxEntry> out;
  int64_t bytes = 0;
  bool full = false;
  // What urgent items may take when readings wait (the rest is kept for readings).
  size_t urgent_items = max_items;
  int64_t urgent_bytes = max_bytes;
  if (reading_share > 0 && m.ob.readings > 0) {
    const double keep = std::min(reading_share, 1.0);
    urgent_items = std::max<size_t>(
        1, max_items - static_cast<size_t>(std::ceil(keep * static_cast<double>(max_items))));
    urgent_bytes = static_cast<int64_t>(static_cast<double>(max_bytes) * (1.0 - keep));
  }
  for (int prio : {0, 1}) {
    if (full || out.size() >= max_items) break;
    const size_t cap_items = prio == 0 ? std::min(urgent_items, max_items) : max_items;
    const int64_t cap_bytes = prio == 0 ? urgent_bytes : max_bytes;
    sqlite3_stmt* s = m.sel_outbox_prio.get();
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt(s, 1, prio));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 2, sqlite::ClampLimit(cap_items - out.size())));
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      const int64_t size = sqlite3_column_bytes(s, 3);
      if (!out.empty() && bytes + size > cap_bytes) {
        full = prio == 1;  // urgent items over their share leave room for readings
        break;
      }
      bytes += size;
      out.push_back(model::OutboxEntry{sqlite3_column_int64(s, 0),
                                static_cast<model::OutboxKind>(sqlite3_column_int(s, 1)),
                                sqlite3_column_int64(s, 2), sqlite::ColumnText(s, 3)});
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return m.Err(rc, "peek outbox");
  }
  return out;
}

Status Store::CommitOutboxBatch(const model::OutboxBatch& batch, const std::vector<model::OutboxEntry>& items) {
  Impl& m = *impl_;
  if (m.need_reload) OUTPOST_RETURN_IF_ERROR(m.Reload());
  if (m.in_flight) {
    return FailedPrecondition("store " + m.opt.path + ": outbox batch " + m.in_flight->key +
                              " is still in flight");
  }
  // PeekOutbox returns the first items of each priority in id order, so each priority's part
  // is "every item of that priority up to its last id": one range delete each, checked by
  // the number of rows it removed.
  int64_t last_id[2] = {-1, -1}, count[2] = {0, 0}, bytes = 0, by_kind[3] = {0, 0, 0};
  for (const model::OutboxEntry& e : items) {
    const int p = Prio(e.kind);
    last_id[p] = std::max(last_id[p], e.id);
    ++count[p];
    bytes += static_cast<int64_t>(e.body.size());
    ++by_kind[static_cast<int>(e.kind) % 3];
  }
  OUTPOST_RETURN_IF_ERROR(m.Begin());
  Status st = [&]() -> Status {
    for (int p : {0, 1}) {
      if (count[p] == 0) continue;
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt(m.del_outbox_upto.get(), 1, p));
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(m.del_outbox_upto.get(), 2, last_id[p]));
      OUTPOST_RETURN_IF_ERROR(m.Run(m.del_outbox_upto, "take outbox items"));
      if (sqlite3_changes(m.db) != count[p]) {
        return FailedPrecondition("store " + m.opt.path +
                                  ": the items to send are not the head of the outbox");
      }
    }
    m.ob.readings -= by_kind[0];
    m.ob.alerts -= by_kind[1];
    m.ob.statuses -= by_kind[2];
    m.ob.bytes -= bytes;
    Stmt s;
    OUTPOST_RETURN_IF_ERROR(m.Prepare(&s,
                                      "INSERT INTO outbox_batch(id, key, seq, created_ms, "
                                      "readings, alerts, statuses, body) VALUES "
                                      "(1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s.get(), 1, batch.key));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s.get(), 2, batch.seq));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s.get(), 3, batch.created_ms));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s.get(), 4, batch.readings));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s.get(), 5, batch.alerts));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s.get(), 6, batch.statuses));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindBlob(s.get(), 7, batch.body));
    const int rc = sqlite3_step(s.get());
    if (rc != SQLITE_DONE) return m.Err(rc, "insert outbox batch");
    m.ob.next_batch_seq = std::max(m.ob.next_batch_seq, batch.seq + 1);
    OUTPOST_RETURN_IF_ERROR(m.SaveOutbox());
    return m.RefreshOutboxOldest();
  }();
  if (st.ok()) st = m.Commit();
  if (!st.ok()) return m.Abort(std::move(st));
  m.in_flight = batch;
  return m.UpdateBytes();
}

Status Store::FinishOutboxBatch(const std::string& key, bool delivered,
                                const std::map<std::string, int64_t>& dead_letters) {
  Impl& m = *impl_;
  if (m.need_reload) OUTPOST_RETURN_IF_ERROR(m.Reload());
  if (!m.in_flight || m.in_flight->key != key) {
    return NotFound("store " + m.opt.path + ": outbox batch " + key + " is not in flight");
  }
  const int64_t items = m.in_flight->readings + m.in_flight->alerts + m.in_flight->statuses;
  // Dead letters by reason, never more than the batch holds; a refused batch's remainder is
  // "refused". Distinct reasons are bounded (they come from the cloud's answer).
  std::map<std::string, int64_t> dead;
  int64_t n_dead = 0;
  for (const auto& [reason, n] : dead_letters) {
    const int64_t take = std::min(std::max<int64_t>(n, 0), items - n_dead);
    if (take <= 0) continue;
    const bool known = m.ob.dead_letter_reasons.count(reason) > 0 || dead.count(reason) > 0;
    const bool room = m.ob.dead_letter_reasons.size() + dead.size() < model::kMaxDeadLetterReasons;
    dead[known || room ? reason : "other"] += take;
    n_dead += take;
  }
  if (!delivered && n_dead < items) {
    dead["refused"] += items - n_dead;
    n_dead = items;
  }
  OUTPOST_RETURN_IF_ERROR(m.Begin());
  if (delivered) {
    ++m.ob.sent_batches;
    m.ob.sent_items += items - n_dead;
  }
  m.ob.dead_letter += n_dead;
  Status st = m.Exec("DELETE FROM outbox_batch", "delete outbox batch");
  for (const auto& [reason, n] : dead) {
    if (!st.ok()) break;
    Stmt s;
    st = m.Prepare(&s,
                   "INSERT INTO outbox_dead_letter(reason, items) VALUES (?1, ?2) "
                   "ON CONFLICT(reason) DO UPDATE SET items = items + excluded.items");
    if (!st.ok()) break;
    st = sqlite::BindText(s.get(), 1, reason);
    if (st.ok()) st = sqlite::BindInt64(s.get(), 2, n);
    if (!st.ok()) break;
    const int rc = sqlite3_step(s.get());
    if (rc != SQLITE_DONE) st = m.Err(rc, "count outbox dead letters");
  }
  if (st.ok()) st = m.SaveOutbox();
  if (st.ok()) st = m.Commit();
  if (!st.ok()) return m.Abort(std::move(st));
  for (const auto& [reason, n] : dead) m.ob.dead_letter_reasons[reason] += n;
  m.in_flight.reset();
  return m.UpdateBytes();
}

}  // namespace outpost::gateway::store
