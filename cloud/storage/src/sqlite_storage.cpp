#include "outpost/cloud/storage/sqlite_storage.h"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common.h"
#include "outpost/sqlite/database.h"

namespace outpost::cloud::storage {
namespace {

// Each entry is one schema version, applied in its own transaction and recorded in
// schema_migrations. Append only: never edit a released migration.
const char* const kMigrations[] = {
    // 1: the initial schema (docs/formats/cloud.md, "Storage").
    R"sql(
CREATE TABLE tokens(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  gateway_id TEXT NOT NULL,
  token_sha256 TEXT NOT NULL UNIQUE,
  admin INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL,
  revoked_ms INTEGER);
CREATE INDEX tokens_gateway ON tokens(gateway_id);
CREATE TABLE gateways(
  gateway_id TEXT PRIMARY KEY,
  first_seen_ms INTEGER NOT NULL,
  last_seen_ms INTEGER NOT NULL,
  batches INTEGER NOT NULL DEFAULT 0,
  readings INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE devices(
  id INTEGER PRIMARY KEY,
  gateway_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT '',
  status_ts_ms INTEGER NOT NULL DEFAULT 0,
  last_seen_ms INTEGER NOT NULL DEFAULT 0,
  readings INTEGER NOT NULL DEFAULT 0,
  UNIQUE(gateway_id, device_id));
CREATE TABLE readings(
  id INTEGER PRIMARY KEY,
  device_key INTEGER NOT NULL,
  id_kind INTEGER NOT NULL,
  id_a INTEGER NOT NULL,
  id_b INTEGER NOT NULL,
  ts_ms INTEGER NOT NULL,
  ts_source TEXT NOT NULL,
  metrics TEXT NOT NULL,
  received_ms INTEGER NOT NULL);
CREATE UNIQUE INDEX readings_identity ON readings(device_key, id_kind, id_a, id_b);
CREATE INDEX readings_series ON readings(device_key, ts_ms);
CREATE TABLE alerts(
  gateway_id TEXT NOT NULL,
  alert_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  rule TEXT NOT NULL,
  state TEXT NOT NULL,
  message TEXT NOT NULL,
  value REAL,
  ts_ms INTEGER NOT NULL,
  received_ms INTEGER NOT NULL,
  PRIMARY KEY(gateway_id, alert_id));
CREATE INDEX alerts_time ON alerts(gateway_id, ts_ms);
CREATE TABLE statuses(
  gateway_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  ts_ms INTEGER NOT NULL,
  status TEXT NOT NULL,
  received_ms INTEGER NOT NULL,
  PRIMARY KEY(gateway_id, device_id, ts_ms, status)) WITHOUT ROWID;
CREATE TABLE idempotency(
  gateway_id TEXT NOT NULL,
  key TEXT NOT NULL,
  body_sha256 TEXT NOT NULL,
  http_status INTEGER NOT NULL,
  response TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  PRIMARY KEY(gateway_id, key)) WITHOUT ROWID;
CREATE INDEX idempotency_created ON idempotency(created_ms);
)sql",
};

using Stmt = sqlite::Statement;
using sqlite::Exec;

Result<sqlite::Database> OpenConnection(const std::string& path, bool sync_full) {
  sqlite::OpenOptions o;
  o.busy_timeout_ms = 5000;
  // A large page cache keeps the per-device index pages of a 1,000-device batch in memory.
  o.pragmas = {"journal_mode=WAL", "foreign_keys=ON", "cache_size=-65536",
               "wal_autocheckpoint=16384", sync_full ? "synchronous=FULL" : "synchronous=NORMAL"};
  return sqlite::Database::Open(path, o);
}

}  // namespace

struct SqliteStorage::Impl {
  std::string path;
  StorageOptions options;

  std::timed_mutex write_mu;  // guards writer and its statements
  sqlite::Database writer;
  struct WriterStatements {
    Stmt find_key, insert_reading, upsert_device_readings, insert_alert, insert_status,
        upsert_device_status, upsert_gateway, insert_key, ensure_device, find_device;
    // (gateway_id + '\n' + device_id) -> devices.id. Cleared when a transaction rolls back,
    // since the rows it points to may have been rolled back with it.
    std::unordered_map<std::string, std::int64_t> device_keys;
  };
  std::unique_ptr<WriterStatements> w;  // prepared on first write

  std::mutex pool_mu;  // guards readers
  std::vector<sqlite::Database> readers;

  ~Impl() {
    w.reset();  // statements are finalised before their connection closes
    readers.clear();
    writer.Close();
  }

  Status PrepareWriter() {
    if (w) return Status::Ok();
    auto stmts = std::make_unique<WriterStatements>();
    auto& [find_key, insert_reading, upsert_device_readings, insert_alert, insert_status,
           upsert_device_status, upsert_gateway, insert_key, ensure_device, find_device,
           device_keys] = *stmts;
    OUTPOST_RETURN_IF_ERROR(find_key.Prepare(
        writer.get(),
        "SELECT body_sha256, http_status, response FROM idempotency WHERE gateway_id=? AND key=?"));
    OUTPOST_RETURN_IF_ERROR(insert_reading.Prepare(
        writer.get(),
        "INSERT OR IGNORE INTO readings(device_key, id_kind, id_a, id_b, ts_ms, "
        "ts_source, metrics, received_ms) VALUES(?,?,?,?,?,?,?,?)"));
    OUTPOST_RETURN_IF_ERROR(ensure_device.Prepare(
        writer.get(), "INSERT OR IGNORE INTO devices(gateway_id, device_id) VALUES(?,?)"));
    OUTPOST_RETURN_IF_ERROR(find_device.Prepare(
        writer.get(), "SELECT id FROM devices WHERE gateway_id=? AND device_id=?"));
    OUTPOST_RETURN_IF_ERROR(upsert_device_readings.Prepare(
        writer.get(),
        "UPDATE devices SET last_seen_ms=max(last_seen_ms, ?2), readings=readings+?3 "
        "WHERE id=?1"));
    OUTPOST_RETURN_IF_ERROR(insert_alert.Prepare(
        writer.get(),
        "INSERT OR IGNORE INTO alerts(gateway_id, alert_id, device_id, rule, state, message, "
        "value, ts_ms, received_ms) VALUES(?,?,?,?,?,?,?,?,?)"));
    OUTPOST_RETURN_IF_ERROR(insert_status.Prepare(
        writer.get(),
        "INSERT OR IGNORE INTO statuses(gateway_id, device_id, ts_ms, status, received_ms) "
        "VALUES(?,?,?,?,?)"));
    OUTPOST_RETURN_IF_ERROR(upsert_device_status.Prepare(
        writer.get(),
        "INSERT INTO devices(gateway_id, device_id, status, status_ts_ms) VALUES(?,?,?,?) "
        "ON CONFLICT(gateway_id, device_id) DO UPDATE SET "
        "status=CASE WHEN excluded.status_ts_ms>=status_ts_ms THEN excluded.status ELSE status END,"
        "status_ts_ms=max(status_ts_ms, excluded.status_ts_ms)"));
    OUTPOST_RETURN_IF_ERROR(upsert_gateway.Prepare(
        writer.get(),
        "INSERT INTO gateways(gateway_id, first_seen_ms, last_seen_ms, batches, readings) "
        "VALUES(?,?,?,1,?) ON CONFLICT(gateway_id) DO UPDATE SET "
        "last_seen_ms=excluded.last_seen_ms, batches=batches+1, "
        "readings=readings+excluded.readings"));
    OUTPOST_RETURN_IF_ERROR(insert_key.Prepare(
        writer.get(),
        "INSERT INTO idempotency(gateway_id, key, body_sha256, http_status, response, "
        "created_ms) VALUES(?,?,?,?,?,?)"));
    w = std::move(stmts);
    return Status::Ok();
  }

  // Borrows a reader connection (opening one if the pool is empty).
  Result<sqlite::Database> Acquire() {
    {
      std::lock_guard<std::mutex> lock(pool_mu);
      if (!readers.empty()) {
        sqlite::Database db = std::move(readers.back());
        readers.pop_back();
        return db;
      }
    }
    return OpenConnection(path, options.sqlite_sync_full);
  }
  void Release(sqlite::Database db) {
    std::lock_guard<std::mutex> lock(pool_mu);
    if (readers.size() < static_cast<std::size_t>(std::max(1, options.pool_size))) {
      readers.push_back(std::move(db));
    }  // else closed here
  }

  // Runs fn(db) on a borrowed reader connection.
  template <typename Fn>
  auto WithReader(Fn fn) -> decltype(fn(static_cast<sqlite3*>(nullptr))) {
    Result<sqlite::Database> db = Acquire();
    if (!db.ok()) return db.status();
    auto result = fn(db->get());
    Release(std::move(db).value());
    return result;
  }
};

SqliteStorage::SqliteStorage(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteStorage::~SqliteStorage() = default;

Result<std::unique_ptr<SqliteStorage>> SqliteStorage::Open(const std::string& path,
                                                           const StorageOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->options = options;
  Result<sqlite::Database> db = OpenConnection(path, options.sqlite_sync_full);
  if (!db.ok()) return db.status();
  impl->writer = std::move(db).value();
  return std::unique_ptr<SqliteStorage>(new SqliteStorage(std::move(impl)));
}

Status SqliteStorage::Migrate() {
  std::lock_guard<std::timed_mutex> lock(impl_->write_mu);
  sqlite3* db = impl_->writer.get();
  OUTPOST_RETURN_IF_ERROR(Exec(db,
                               "CREATE TABLE IF NOT EXISTS schema_migrations("
                               "version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)"));
  const int count = static_cast<int>(sizeof kMigrations / sizeof kMigrations[0]);
  for (int version = 1; version <= count; ++version) {
    OUTPOST_RETURN_IF_ERROR(Exec(db, "BEGIN IMMEDIATE"));
    Stmt q;
    Status s = q.Prepare(db, "SELECT 1 FROM schema_migrations WHERE version=?");
    bool applied = false;
    if (s.ok()) applied = q.Reset().Bind(1, static_cast<std::int64_t>(version)).Step(&s);
    if (s.ok() && !applied) {
      s = Exec(db, kMigrations[version - 1]);
      if (s.ok()) {
        Stmt ins;
        s = ins.Prepare(db,
                        "INSERT INTO schema_migrations(version, applied_ms) "
                        "VALUES(?, CAST(strftime('%s','now') AS INTEGER)*1000)");
        if (s.ok()) s = ins.Reset().Bind(1, static_cast<std::int64_t>(version)).Run();
      }
    }
    if (s.ok()) s = Exec(db, "COMMIT");
    if (!s.ok()) {
      (void)Exec(db, "ROLLBACK");
      return Status(s.code(), "migration " + std::to_string(version) + ": " + s.message());
    }
  }
  return Status::Ok();
}

Result<std::optional<IdempotencyRecord>> SqliteStorage::FindIdempotency(
    const std::string& gateway_id, const std::string& key) {
  return impl_->WithReader([&](sqlite3* db) -> Result<std::optional<IdempotencyRecord>> {
    Stmt q;
    OUTPOST_RETURN_IF_ERROR(q.Prepare(
        db,
        "SELECT body_sha256, http_status, response FROM idempotency WHERE gateway_id=? AND key=?"));
    Status s;
    if (q.Bind(1, gateway_id).Bind(2, key).Step(&s)) {
      return std::optional<IdempotencyRecord>(
          IdempotencyRecord{q.Text(0), static_cast<int>(q.Int(1)), q.Text(2)});
    }
    if (!s.ok()) return s;
    return std::optional<IdempotencyRecord>();
  });
}

Result<WriteResult> SqliteStorage::WriteBatch(const std::string& gateway_id,
                                              const std::optional<std::string>& key,
                                              const std::string& body_sha256, const Batch& batch,
                                              std::int64_t now_ms,
                                              const ResponseBuilder& build_response) {
  // Bounded wait for the single writer: a backlog of batches gets 503 + Retry-After instead of
  // piling up threads.
  std::unique_lock<std::timed_mutex> lock(impl_->write_mu, std::defer_lock);
  if (!lock.try_lock_for(std::chrono::milliseconds(impl_->options.acquire_timeout_ms))) {
    return Unavailable("sqlite: the writer stayed busy for " +
                       std::to_string(impl_->options.acquire_timeout_ms) + " ms");
  }
  OUTPOST_RETURN_IF_ERROR(impl_->PrepareWriter());
  Impl::WriterStatements& m = *impl_->w;
  sqlite3* const writer = impl_->writer.get();
  auto tx = sqlite::Transaction::Begin(writer);
  if (!tx.ok()) return tx.status();
  WriteResult out;
  Status s;
  auto fail = [&](Status st) -> Result<WriteResult> {
    tx->Rollback();
    return st;
  };

  if (key) {
    if (m.find_key.Reset().Bind(1, gateway_id).Bind(2, *key).Step(&s)) {
      out.record = {m.find_key.Text(0), static_cast<int>(m.find_key.Int(1)), m.find_key.Text(2)};
      out.kind = out.record.body_sha256 == body_sha256 ? WriteResult::Kind::kReplayed
                                                       : WriteResult::Kind::kKeyReused;
      m.find_key.Reset();
      tx->Rollback();
      return out;
    }
    if (!s.ok()) return fail(s);
  }

  // The device's integer key: every reading row and index entry carries it instead of the two
  // id strings (smaller indexes, cheaper comparisons on the hot path).
  std::string cache_key;
  auto device_key = [&](const std::string& device, std::int64_t* out_key) -> Status {
    cache_key.assign(gateway_id);
    cache_key.push_back('\n');
    cache_key.append(device);
    auto it = m.device_keys.find(cache_key);
    if (it != m.device_keys.end()) {
      *out_key = it->second;
      return Status::Ok();
    }
    Status st = m.ensure_device.Reset().Bind(1, gateway_id).Bind(2, device).Run();
    if (!st.ok()) return st;
    if (!m.find_device.Reset().Bind(1, gateway_id).Bind(2, device).Step(&st)) {
      return st.ok() ? Internal("device row missing after insert") : st;
    }
    *out_key = m.find_device.Int(0);
    m.find_device.Reset();
    if (m.device_keys.size() >= 100'000) m.device_keys.clear();  // bounded
    m.device_keys.emplace(cache_key, *out_key);
    return Status::Ok();
  };
  auto fail_uncached = [&](Status st) {
    m.device_keys.clear();  // the rolled-back transaction may have created some of them
    return fail(std::move(st));
  };

  struct DeviceAgg {
    std::int64_t count = 0;
    std::int64_t last_ts = 0;
  };
  std::unordered_map<std::int64_t, DeviceAgg> devices;
  std::string metrics;
  for (const Reading& r : batch.readings) {
    const internal::Identity id = internal::IdentityOf(r);
    std::int64_t dkey = 0;
    s = device_key(r.device_id, &dkey);
    if (!s.ok()) return fail_uncached(s);
    metrics.clear();
    internal::AppendMetricsJson(r, &metrics);
    s = m.insert_reading.Reset()
            .Bind(1, dkey)
            .Bind(2, static_cast<std::int64_t>(id.kind))
            .Bind(3, id.a)
            .Bind(4, id.b)
            .Bind(5, r.ts_ms)
            .Bind(6, r.ts_source)
            .Bind(7, metrics)
            .Bind(8, now_ms)
            .Run();
    if (!s.ok()) return fail_uncached(s);
    if (sqlite3_changes(writer) == 1) {
      ++out.counts.readings;
      DeviceAgg& agg = devices[dkey];
      ++agg.count;
      agg.last_ts = std::max(agg.last_ts, r.ts_ms);
    } else {
      ++out.counts.duplicates;
    }
  }
  for (const auto& [dkey, agg] : devices) {
    s = m.upsert_device_readings.Reset()
            .Bind(1, dkey)
            .Bind(2, agg.last_ts)
            .Bind(3, agg.count)
            .Run();
    if (!s.ok()) return fail_uncached(s);
  }
  for (const Alert& a : batch.alerts) {
    Stmt& st = m.insert_alert.Reset();
    st.Bind(1, gateway_id)
        .Bind(2, a.id)
        .Bind(3, a.device_id)
        .Bind(4, a.rule)
        .Bind(5, a.state)
        .Bind(6, a.message)
        .Bind(8, a.ts_ms)
        .Bind(9, now_ms);
    if (a.value) {
      st.Bind(7, *a.value);
    } else {
      st.BindNull(7);
    }
    s = st.Run();
    if (!s.ok()) return fail_uncached(s);
    if (sqlite3_changes(writer) == 1) {
      ++out.counts.alerts;
    } else {
      ++out.counts.duplicates;
    }
  }
  for (const StatusEvent& e : batch.statuses) {
    s = m.insert_status.Reset()
            .Bind(1, gateway_id)
            .Bind(2, e.device_id)
            .Bind(3, e.ts_ms)
            .Bind(4, e.status)
            .Bind(5, now_ms)
            .Run();
    if (!s.ok()) return fail_uncached(s);
    if (sqlite3_changes(writer) != 1) {
      ++out.counts.duplicates;
      continue;
    }
    ++out.counts.statuses;
    s = m.upsert_device_status.Reset()
            .Bind(1, gateway_id)
            .Bind(2, e.device_id)
            .Bind(3, e.status)
            .Bind(4, e.ts_ms)
            .Run();
    if (!s.ok()) return fail_uncached(s);
  }
  s = m.upsert_gateway.Reset()
          .Bind(1, gateway_id)
          .Bind(2, now_ms)
          .Bind(3, now_ms)
          .Bind(4, out.counts.readings)
          .Run();
  if (!s.ok()) return fail_uncached(s);
  if (key) {
    out.record = {body_sha256, 200, build_response(out.counts)};
    s = m.insert_key.Reset()
            .Bind(1, gateway_id)
            .Bind(2, *key)
            .Bind(3, body_sha256)
            .Bind(4, static_cast<std::int64_t>(200))
            .Bind(5, out.record.response)
            .Bind(6, now_ms)
            .Run();
    if (!s.ok()) return fail_uncached(s);
  } else {
    out.record = {body_sha256, 200, build_response(out.counts)};
  }
  // The code is the one map's: a full disk is kResourceExhausted (503 + Retry-After), a
  // failed fsync kDataLoss.
  s = tx->Commit();
  if (!s.ok()) return fail_uncached(Status(s.code(), "commit: " + s.message()));
  out.kind = WriteResult::Kind::kStored;
  return out;
}

Result<std::int64_t> SqliteStorage::PurgeIdempotency(std::int64_t before_ms) {
  std::lock_guard<std::timed_mutex> lock(impl_->write_mu);
  Stmt q;
  OUTPOST_RETURN_IF_ERROR(
      q.Prepare(impl_->writer.get(), "DELETE FROM idempotency WHERE created_ms<?"));
  OUTPOST_RETURN_IF_ERROR(q.Bind(1, before_ms).Run());
  return static_cast<std::int64_t>(sqlite3_changes(impl_->writer.get()));
}

Result<TokenRecord> SqliteStorage::CreateToken(const std::string& gateway_id, bool admin,
                                               const std::string& token_sha256,
                                               std::int64_t now_ms) {
  std::lock_guard<std::timed_mutex> lock(impl_->write_mu);
  Stmt q;
  OUTPOST_RETURN_IF_ERROR(
      q.Prepare(impl_->writer.get(),
                "INSERT INTO tokens(gateway_id, token_sha256, admin, created_ms) VALUES(?,?,?,?)"));
  OUTPOST_RETURN_IF_ERROR(q.Bind(1, gateway_id)
                              .Bind(2, token_sha256)
                              .Bind(3, static_cast<std::int64_t>(admin ? 1 : 0))
                              .Bind(4, now_ms)
                              .Run());
  TokenRecord t;
  t.id = sqlite3_last_insert_rowid(impl_->writer.get());
  t.gateway_id = gateway_id;
  t.admin = admin;
  t.created_ms = now_ms;
  return t;
}

Result<Principal> SqliteStorage::Authenticate(const std::string& token_sha256) {
  return impl_->WithReader([&](sqlite3* db) -> Result<Principal> {
    Stmt q;
    OUTPOST_RETURN_IF_ERROR(q.Prepare(
        db,
        "SELECT id, gateway_id, admin FROM tokens WHERE token_sha256=? AND revoked_ms IS NULL"));
    Status s;
    if (q.Bind(1, token_sha256).Step(&s)) return Principal{q.Int(0), q.Text(1), q.Int(2) != 0};
    if (!s.ok()) return s;
    return NotFound("no live token with this hash");
  });
}

Result<std::int64_t> SqliteStorage::RevokeGatewayTokens(const std::string& gateway_id,
                                                        std::int64_t now_ms) {
  std::lock_guard<std::timed_mutex> lock(impl_->write_mu);
  Stmt q;
  OUTPOST_RETURN_IF_ERROR(
      q.Prepare(impl_->writer.get(),
                "UPDATE tokens SET revoked_ms=? WHERE gateway_id=? AND revoked_ms IS NULL"));
  OUTPOST_RETURN_IF_ERROR(q.Bind(1, now_ms).Bind(2, gateway_id).Run());
  return static_cast<std::int64_t>(sqlite3_changes(impl_->writer.get()));
}

Result<std::int64_t> SqliteStorage::RevokeToken(std::int64_t token_id, std::int64_t now_ms) {
  std::lock_guard<std::timed_mutex> lock(impl_->write_mu);
  Stmt q;
  OUTPOST_RETURN_IF_ERROR(q.Prepare(
      impl_->writer.get(), "UPDATE tokens SET revoked_ms=? WHERE id=? AND revoked_ms IS NULL"));
  OUTPOST_RETURN_IF_ERROR(q.Bind(1, now_ms).Bind(2, token_id).Run());
  return static_cast<std::int64_t>(sqlite3_changes(impl_->writer.get()));
}

Result<std::vector<TokenRecord>> SqliteStorage::ListTokens() {
  return impl_->WithReader([&](sqlite3* db) -> Result<std::vector<TokenRecord>> {
    Stmt q;
    OUTPOST_RETURN_IF_ERROR(q.Prepare(
        db, "SELECT id, gateway_id, admin, created_ms, revoked_ms FROM tokens ORDER BY id"));
    std::vector<TokenRecord> out;
    Status s;
    while (q.Step(&s)) {
      TokenRecord t{q.Int(0), q.Text(1), q.Int(2) != 0, q.Int(3), std::nullopt};
      if (!q.IsNull(4)) t.revoked_ms = q.Int(4);
      out.push_back(std::move(t));
    }
    if (!s.ok()) return s;
    return out;
  });
}

Result<std::vector<GatewayInfo>> SqliteStorage::ListGateways(const std::string& gateway_id) {
  return impl_->WithReader([&](sqlite3* db) -> Result<std::vector<GatewayInfo>> {
    Stmt q;
    OUTPOST_RETURN_IF_ERROR(
        q.Prepare(db,
                  "SELECT gateway_id, first_seen_ms, last_seen_ms, batches, readings FROM gateways "
                  "WHERE ?1='' OR gateway_id=?1 ORDER BY gateway_id"));
    q.Bind(1, gateway_id);
    std::vector<GatewayInfo> out;
    Status s;
    while (q.Step(&s)) out.push_back({q.Text(0), q.Int(1), q.Int(2), q.Int(3), q.Int(4)});
    if (!s.ok()) return s;
    return out;
  });
}

Result<std::vector<DeviceInfo>> SqliteStorage::ListDevices(const std::string& gateway_id) {
  return impl_->WithReader([&](sqlite3* db) -> Result<std::vector<DeviceInfo>> {
    Stmt q;
    OUTPOST_RETURN_IF_ERROR(q.Prepare(
        db,
        "SELECT gateway_id, device_id, status, status_ts_ms, last_seen_ms, readings FROM devices "
        "WHERE ?1='' OR gateway_id=?1 ORDER BY gateway_id, device_id"));
    q.Bind(1, gateway_id);
    std::vector<DeviceInfo> out;
    Status s;
    while (q.Step(&s)) {
      out.push_back({q.Text(0), q.Text(1), q.Text(2), q.Int(3), q.Int(4), q.Int(5)});
    }
    if (!s.ok()) return s;
    return out;
  });
}

namespace {
std::string JsonPath(const std::string& metric) { return "$.\"" + metric + "\""; }
}  // namespace

Result<std::vector<Point>> SqliteStorage::QueryPoints(const ReadingsQuery& query) {
  return impl_->WithReader([&](sqlite3* db) -> Result<std::vector<Point>> {
    Stmt q;
    OUTPOST_RETURN_IF_ERROR(q.Prepare(
        db,
        "SELECT ts_ms, v FROM (SELECT ts_ms, json_extract(metrics, ?1) AS v FROM readings "
        "WHERE device_key=(SELECT id FROM devices WHERE gateway_id=?2 AND device_id=?3) "
        "AND ts_ms>=?4 AND ts_ms<?5) "
        "WHERE v IS NOT NULL ORDER BY ts_ms LIMIT ?6"));
    const std::string path = JsonPath(query.metric);
    q.Bind(1, path)
        .Bind(2, query.gateway_id)
        .Bind(3, query.device_id)
        .Bind(4, query.from_ms)
        .Bind(5, query.to_ms)
        .Bind(6, query.limit);
    std::vector<Point> out;
    Status s;
    while (q.Step(&s)) out.push_back({q.Int(0), q.Double(1)});
    if (!s.ok()) return s;
    return out;
  });
}

Result<std::vector<Bucket>> SqliteStorage::QueryBuckets(const ReadingsQuery& query) {
  return impl_->WithReader([&](sqlite3* db) -> Result<std::vector<Bucket>> {
    Stmt q;
    OUTPOST_RETURN_IF_ERROR(
        q.Prepare(db,
                  "SELECT (ts_ms-?4)/?6 AS b, min(v), max(v), avg(v), count(v) FROM "
                  "(SELECT ts_ms, json_extract(metrics, ?1) AS v FROM readings WHERE "
                  "device_key=(SELECT id FROM devices WHERE gateway_id=?2 AND device_id=?3) "
                  "AND ts_ms>=?4 AND ts_ms<?5) "
                  "WHERE v IS NOT NULL GROUP BY b ORDER BY b LIMIT ?7"));
    const std::string path = JsonPath(query.metric);
    q.Bind(1, path)
        .Bind(2, query.gateway_id)
        .Bind(3, query.device_id)
        .Bind(4, query.from_ms)
        .Bind(5, query.to_ms)
        .Bind(6, query.step_ms)
        .Bind(7, query.limit);
    std::vector<Bucket> out;
    Status s;
    while (q.Step(&s)) {
      out.push_back({query.from_ms + q.Int(0) * query.step_ms, q.Double(1), q.Double(2),
                     q.Double(3), q.Int(4)});
    }
    if (!s.ok()) return s;
    return out;
  });
}

Result<std::vector<StoredAlert>> SqliteStorage::QueryAlerts(const AlertsQuery& query) {
  return impl_->WithReader([&](sqlite3* db) -> Result<std::vector<StoredAlert>> {
    Stmt q;
    OUTPOST_RETURN_IF_ERROR(q.Prepare(
        db,
        "SELECT gateway_id, alert_id, device_id, rule, state, message, value, ts_ms FROM alerts "
        "WHERE (?1='' OR gateway_id=?1) AND (?2='' OR device_id=?2) AND ts_ms>=?3 AND ts_ms<?4 "
        "ORDER BY ts_ms, gateway_id, alert_id LIMIT ?5"));
    q.Bind(1, query.gateway_id)
        .Bind(2, query.device_id)
        .Bind(3, query.from_ms)
        .Bind(4, query.to_ms)
        .Bind(5, query.limit);
    std::vector<StoredAlert> out;
    Status s;
    while (q.Step(&s)) {
      StoredAlert a;
      a.gateway_id = q.Text(0);
      a.alert.id = q.Text(1);
      a.alert.device_id = q.Text(2);
      a.alert.rule = q.Text(3);
      a.alert.state = q.Text(4);
      a.alert.message = q.Text(5);
      if (!q.IsNull(6)) a.alert.value = q.Double(6);
      a.alert.ts_ms = q.Int(7);
      out.push_back(std::move(a));
    }
    if (!s.ok()) return s;
    return out;
  });
}

Status SqliteStorage::Ping() {
  Result<int> r = impl_->WithReader([&](sqlite3* db) -> Result<int> {
    Stmt q;
    OUTPOST_RETURN_IF_ERROR(q.Prepare(db, "SELECT count(*) FROM schema_migrations"));
    Status s;
    if (q.Step(&s)) return static_cast<int>(q.Int(0));
    if (!s.ok()) return s;
    return Internal("ping: no row");
  });
  return r.status();
}

}  // namespace outpost::cloud::storage
