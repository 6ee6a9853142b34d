#include "outpost/cloud/storage/postgres_storage.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <pqxx/pqxx>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "common.h"

namespace outpost::cloud::storage {
namespace {

// Each entry is one schema version, applied in its own transaction under an advisory lock
// (several servers may start at once) and recorded in schema_migrations. Append only.
const char* const kMigrations[] = {
    // 1: the initial schema (docs/formats/cloud.md, "Storage").
    R"sql(
CREATE TABLE tokens(
  id BIGSERIAL PRIMARY KEY,
  gateway_id TEXT NOT NULL,
  token_sha256 TEXT NOT NULL UNIQUE,
  admin BOOLEAN NOT NULL DEFAULT false,
  created_ms BIGINT NOT NULL,
  revoked_ms BIGINT);
CREATE INDEX tokens_gateway ON tokens(gateway_id);
CREATE TABLE gateways(
  gateway_id TEXT PRIMARY KEY,
  first_seen_ms BIGINT NOT NULL,
  last_seen_ms BIGINT NOT NULL,
  batches BIGINT NOT NULL DEFAULT 0,
  readings BIGINT NOT NULL DEFAULT 0);
CREATE TABLE devices(
  id BIGSERIAL NOT NULL UNIQUE,
  gateway_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT '',
  status_ts_ms BIGINT NOT NULL DEFAULT 0,
  last_seen_ms BIGINT NOT NULL DEFAULT 0,
  readings BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY(gateway_id, device_id));
CREATE TABLE readings(
  device_key BIGINT NOT NULL,
  id_kind SMALLINT NOT NULL,
  id_a BIGINT NOT NULL,
  id_b BIGINT NOT NULL,
  ts_ms BIGINT NOT NULL,
  ts_source TEXT NOT NULL,
  metrics JSONB NOT NULL,
  received_ms BIGINT NOT NULL,
  PRIMARY KEY(device_key, id_kind, id_a, id_b));
CREATE INDEX readings_series ON readings(device_key, ts_ms);
CREATE TABLE alerts(
  gateway_id TEXT NOT NULL,
  alert_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  rule TEXT NOT NULL,
  state TEXT NOT NULL,
  message TEXT NOT NULL,
  value DOUBLE PRECISION,
  ts_ms BIGINT NOT NULL,
  received_ms BIGINT NOT NULL,
  PRIMARY KEY(gateway_id, alert_id));
CREATE INDEX alerts_time ON alerts(gateway_id, ts_ms);
CREATE TABLE statuses(
  gateway_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  ts_ms BIGINT NOT NULL,
  status TEXT NOT NULL,
  received_ms BIGINT NOT NULL,
  PRIMARY KEY(gateway_id, device_id, ts_ms, status));
CREATE TABLE idempotency(
  gateway_id TEXT NOT NULL,
  key TEXT NOT NULL,
  body_sha256 TEXT NOT NULL,
  http_status INTEGER NOT NULL,
  response TEXT NOT NULL,
  created_ms BIGINT NOT NULL,
  PRIMARY KEY(gateway_id, key));
CREATE INDEX idempotency_created ON idempotency(created_ms);
)sql",
};

constexpr long kMigrationLock = 0x6f7574706f7374;  // "outpost"

// Per-connection setup: the COPY staging table and the hot-path prepared statements.
void SetUpConnection(pqxx::connection& c) {
  c.prepare("find_key",
            "SELECT body_sha256, http_status, response FROM idempotency "
            "WHERE gateway_id=$1 AND key=$2");
  c.prepare("claim_key",
            "INSERT INTO idempotency(gateway_id, key, body_sha256, http_status, response, "
            "created_ms) VALUES($1,$2,$3,200,'',$4) ON CONFLICT DO NOTHING");
  c.prepare("set_key_response",
            "UPDATE idempotency SET response=$3 WHERE gateway_id=$1 AND key=$2");
  // Readings carry the device's integer key (smaller indexes than two id strings): create the
  // batch's new devices first, then move the staged rows joined to their keys.
  c.prepare("ensure_devices",
            "INSERT INTO devices(gateway_id, device_id) SELECT DISTINCT $1::text, device_id "
            "FROM staging_readings ORDER BY device_id ON CONFLICT DO NOTHING");
  c.prepare("move_readings",
            "WITH ins AS (INSERT INTO readings(device_key, id_kind, id_a, id_b, ts_ms, "
            "ts_source, metrics, received_ms) SELECT d.id, s.id_kind, s.id_a, s.id_b, s.ts_ms, "
            "s.ts_source, s.metrics::jsonb, $2 FROM staging_readings s JOIN devices d "
            "ON d.gateway_id=$1::text AND d.device_id=s.device_id "
            "ON CONFLICT DO NOTHING RETURNING device_key, ts_ms), "
            "agg AS (SELECT device_key, max(ts_ms) AS last_ts, count(*) AS n FROM ins "
            "GROUP BY device_key), "
            "up AS (UPDATE devices SET last_seen_ms=GREATEST(devices.last_seen_ms, agg.last_ts), "
            "readings=devices.readings+agg.n FROM agg WHERE devices.id=agg.device_key "
            "RETURNING 1) "
            "SELECT COALESCE(sum(n), 0)::bigint FROM agg");
  c.prepare("insert_alert",
            "INSERT INTO alerts(gateway_id, alert_id, device_id, rule, state, message, value, "
            "ts_ms, received_ms) VALUES($1,$2,$3,$4,$5,$6,NULLIF($7,'')::double precision,$8,$9) "
            "ON CONFLICT DO NOTHING");
  c.prepare("insert_status",
            "INSERT INTO statuses(gateway_id, device_id, ts_ms, status, received_ms) "
            "VALUES($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING");
  c.prepare("upsert_device_status",
            "INSERT INTO devices(gateway_id, device_id, status, status_ts_ms) VALUES($1,$2,$3,$4) "
            "ON CONFLICT (gateway_id, device_id) DO UPDATE SET "
            "status=CASE WHEN EXCLUDED.status_ts_ms>=devices.status_ts_ms THEN EXCLUDED.status "
            "ELSE devices.status END, "
            "status_ts_ms=GREATEST(devices.status_ts_ms, EXCLUDED.status_ts_ms)");
  c.prepare("upsert_gateway",
            "INSERT INTO gateways(gateway_id, first_seen_ms, last_seen_ms, batches, readings) "
            "VALUES($1,$2,$2,1,$3) ON CONFLICT (gateway_id) DO UPDATE SET "
            "last_seen_ms=EXCLUDED.last_seen_ms, batches=gateways.batches+1, "
            "readings=gateways.readings+EXCLUDED.readings");
  c.prepare(
      "authenticate",
      "SELECT id, gateway_id, admin FROM tokens WHERE token_sha256=$1 AND revoked_ms IS NULL");
}

Status FromException(const std::string& what_op) {
  try {
    throw;
  } catch (const pqxx::broken_connection& e) {
    return Unavailable("postgresql " + what_op + ": no connection: " + e.what());
  } catch (const pqxx::in_doubt_error& e) {
    return Unavailable("postgresql " + what_op + ": commit in doubt: " + e.what());
  } catch (const pqxx::sql_error& e) {
    const std::string state = e.sqlstate();
    // 40xxx: serialization failure / deadlock; 53xxx: insufficient resources;
    // 57Pxx: server shutting down; 08xxx: connection exceptions. All retryable.
    if (state.rfind("40", 0) == 0 || state.rfind("53", 0) == 0 || state.rfind("57P", 0) == 0 ||
        state.rfind("08", 0) == 0) {
      return Unavailable("postgresql " + what_op + ": " + e.what());
    }
    return Internal("postgresql " + what_op + " (" + state + "): " + e.what());
  } catch (const std::exception& e) {
    return Internal("postgresql " + what_op + ": " + e.what());
  }
}

}  // namespace

struct PostgresStorage::Impl {
  std::string uri;
  StorageOptions options;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::unique_ptr<pqxx::connection>> idle;
  int open = 0;  // connections in existence (idle + borrowed)

  Result<std::unique_ptr<pqxx::connection>> Connect() {
    try {
      auto c = std::make_unique<pqxx::connection>(uri);
      return c;
    } catch (...) {
      return FromException("connect");
    }
  }

  // Borrows a connection, opening one if under pool_size; waits otherwise.
  Result<std::unique_ptr<pqxx::connection>> Acquire() {
    {
      std::unique_lock<std::mutex> lock(mu);
      // Bounded wait: when every connection stays busy, answer "unavailable" (a 503 with
      // Retry-After) rather than queueing requests without limit.
      const bool got =
          cv.wait_for(lock, std::chrono::milliseconds(options.acquire_timeout_ms),
                      [&] { return !idle.empty() || open < std::max(1, options.pool_size); });
      if (!got) {
        return Unavailable("postgresql: all " + std::to_string(options.pool_size) +
                           " connections busy for " + std::to_string(options.acquire_timeout_ms) +
                           " ms");
      }
      if (!idle.empty()) {
        auto c = std::move(idle.back());
        idle.pop_back();
        return c;
      }
      ++open;
    }
    auto c = Connect();
    if (!c.ok()) {
      std::lock_guard<std::mutex> lock(mu);
      --open;
      cv.notify_one();
    }
    return c;
  }

  // Returns a connection to the pool, or drops it when broken.
  void Release(std::unique_ptr<pqxx::connection> c) {
    std::lock_guard<std::mutex> lock(mu);
    if (c && c->is_open()) {
      idle.push_back(std::move(c));
    } else {
      ready.erase(c.get());
      --open;
    }
    cv.notify_one();
  }

  // Connections whose session state (staging table, prepared statements) is set up.
  std::set<const pqxx::connection*> ready;

  // Sets up the session state a connection needs for the hot path, once (after migrations,
  // since statements refer to the tables).
  void Ready(pqxx::connection& c) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (ready.count(&c)) return;
    }
    {
      pqxx::nontransaction tx(c);
      tx.exec0(
          "CREATE TEMP TABLE IF NOT EXISTS staging_readings(device_id TEXT, id_kind SMALLINT, "
          "id_a BIGINT, id_b BIGINT, ts_ms BIGINT, ts_source TEXT, metrics TEXT) "
          "ON COMMIT DELETE ROWS");
    }
    SetUpConnection(c);
    std::lock_guard<std::mutex> lock(mu);
    ready.insert(&c);
  }

  // Runs fn on a borrowed connection. Any exception becomes a Status, and the connection is
  // dropped rather than reused: its session state (staging table, transaction) is suspect.
  template <typename T, typename Fn>
  Result<T> With(const std::string& op, Fn fn) {
    auto c = Acquire();
    if (!c.ok()) return c.status();
    std::unique_ptr<pqxx::connection> conn = std::move(c).value();
    Result<T> out = Status(Code::kInternal, "unset");
    try {
      out = fn(*conn);
    } catch (...) {
      out = FromException(op);
      Drop(std::move(conn));
      return out;
    }
    Release(std::move(conn));
    return out;
  }

  void Drop(std::unique_ptr<pqxx::connection> c) {
    std::lock_guard<std::mutex> lock(mu);
    ready.erase(c.get());
    --open;
    cv.notify_one();
  }
};

PostgresStorage::PostgresStorage(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PostgresStorage::~PostgresStorage() = default;

Result<std::unique_ptr<PostgresStorage>> PostgresStorage::Open(const std::string& uri,
                                                               const StorageOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->uri = uri;
  impl->options = options;
  auto c = impl->Connect();  // fail early with a clear error when the server is unreachable
  if (!c.ok()) return c.status();
  impl->open = 1;
  impl->idle.push_back(std::move(c).value());
  return std::unique_ptr<PostgresStorage>(new PostgresStorage(std::move(impl)));
}

Status PostgresStorage::Migrate() {
  Result<int> r = impl_->With<int>("migrate", [&](pqxx::connection& c) -> Result<int> {
    const int count = static_cast<int>(sizeof kMigrations / sizeof kMigrations[0]);
    {
      pqxx::work tx(c);
      tx.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kMigrationLock) + ")");
      tx.exec0(
          "CREATE TABLE IF NOT EXISTS schema_migrations(version INTEGER PRIMARY KEY, "
          "applied_ms BIGINT NOT NULL)");
      tx.commit();
    }
    for (int version = 1; version <= count; ++version) {
      pqxx::work tx(c);
      tx.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kMigrationLock) + ")");
      pqxx::result done =
          tx.exec_params("SELECT 1 FROM schema_migrations WHERE version=$1", version);
      if (done.empty()) {
        tx.exec0(kMigrations[version - 1]);
        tx.exec_params(
            "INSERT INTO schema_migrations(version, applied_ms) VALUES($1, "
            "(extract(epoch from now())*1000)::bigint)",
            version);
      }
      tx.commit();
    }
    return count;
  });
  return r.status();
}

Result<std::optional<IdempotencyRecord>> PostgresStorage::FindIdempotency(
    const std::string& gateway_id, const std::string& key) {
  return impl_->With<std::optional<IdempotencyRecord>>(
      "find key", [&](pqxx::connection& c) -> Result<std::optional<IdempotencyRecord>> {
        impl_->Ready(c);
        pqxx::nontransaction tx(c);
        pqxx::result r = tx.exec_prepared("find_key", gateway_id, key);
        if (r.empty()) return std::optional<IdempotencyRecord>();
        return std::optional<IdempotencyRecord>(IdempotencyRecord{
            r[0][0].as<std::string>(), r[0][1].as<int>(), r[0][2].as<std::string>()});
      });
}

Result<WriteResult> PostgresStorage::WriteBatch(const std::string& gateway_id,
                                                const std::optional<std::string>& key,
                                                const std::string& body_sha256, const Batch& batch,
                                                std::int64_t now_ms,
                                                const ResponseBuilder& build_response) {
  return impl_->With<WriteResult>("write batch", [&](pqxx::connection& c) -> Result<WriteResult> {
    impl_->Ready(c);
    WriteResult out;
    pqxx::work tx(c);
    if (key) {
      // Claiming the key first makes a concurrent duplicate wait for this transaction.
      pqxx::result claimed = tx.exec_prepared("claim_key", gateway_id, *key, body_sha256, now_ms);
      if (claimed.affected_rows() == 0) {
        pqxx::result r = tx.exec_prepared("find_key", gateway_id, *key);
        if (r.empty()) return Unavailable("idempotency key vanished during a purge; retry");
        out.record = {r[0][0].as<std::string>(), r[0][1].as<int>(), r[0][2].as<std::string>()};
        out.kind = out.record.body_sha256 == body_sha256 ? WriteResult::Kind::kReplayed
                                                         : WriteResult::Kind::kKeyReused;
        return out;  // tx aborts on destruction: nothing written
      }
    }
    if (!batch.readings.empty()) {
      {
        pqxx::stream_to copy(tx, "staging_readings",
                             std::vector<std::string>{"device_id", "id_kind", "id_a", "id_b",
                                                      "ts_ms", "ts_source", "metrics"});
        std::string metrics;
        for (const Reading& r : batch.readings) {
          const internal::Identity id = internal::IdentityOf(r);
          metrics.clear();
          internal::AppendMetricsJson(r, &metrics);
          copy << std::make_tuple(r.device_id, id.kind, id.a, id.b, r.ts_ms, r.ts_source, metrics);
        }
        copy.complete();
      }
      tx.exec_prepared("ensure_devices", gateway_id);
      pqxx::result moved = tx.exec_prepared("move_readings", gateway_id, now_ms);
      out.counts.readings = moved[0][0].as<std::int64_t>();
      out.counts.duplicates +=
          static_cast<std::int64_t>(batch.readings.size()) - out.counts.readings;
    }
    for (const Alert& a : batch.alerts) {
      std::string value;
      if (a.value) internal::AppendDouble(&value, *a.value);
      pqxx::result r = tx.exec_prepared("insert_alert", gateway_id, a.id, a.device_id, a.rule,
                                        a.state, a.message, value, a.ts_ms, now_ms);
      if (r.affected_rows() == 1) {
        ++out.counts.alerts;
      } else {
        ++out.counts.duplicates;
      }
    }
    for (const StatusEvent& e : batch.statuses) {
      pqxx::result r =
          tx.exec_prepared("insert_status", gateway_id, e.device_id, e.ts_ms, e.status, now_ms);
      if (r.affected_rows() != 1) {
        ++out.counts.duplicates;
        continue;
      }
      ++out.counts.statuses;
      tx.exec_prepared("upsert_device_status", gateway_id, e.device_id, e.status, e.ts_ms);
    }
    tx.exec_prepared("upsert_gateway", gateway_id, now_ms, out.counts.readings);
    out.record = {body_sha256, 200, build_response(out.counts)};
    if (key) tx.exec_prepared("set_key_response", gateway_id, *key, out.record.response);
    tx.commit();
    out.kind = WriteResult::Kind::kStored;
    return out;
  });
}

Result<std::int64_t> PostgresStorage::PurgeIdempotency(std::int64_t before_ms) {
  return impl_->With<std::int64_t>("purge keys", [&](pqxx::connection& c) -> Result<std::int64_t> {
    pqxx::work tx(c);
    pqxx::result r = tx.exec_params("DELETE FROM idempotency WHERE created_ms<$1", before_ms);
    tx.commit();
    return static_cast<std::int64_t>(r.affected_rows());
  });
}

Result<TokenRecord> PostgresStorage::CreateToken(const std::string& gateway_id, bool admin,
                                                 const std::string& token_sha256,
                                                 std::int64_t now_ms) {
  return impl_->With<TokenRecord>("create token", [&](pqxx::connection& c) -> Result<TokenRecord> {
    pqxx::work tx(c);
    pqxx::result r = tx.exec_params(
        "INSERT INTO tokens(gateway_id, token_sha256, admin, created_ms) VALUES($1,$2,$3,$4) "
        "RETURNING id",
        gateway_id, token_sha256, admin, now_ms);
    tx.commit();
    return TokenRecord{r[0][0].as<std::int64_t>(), gateway_id, admin, now_ms, std::nullopt};
  });
}

Result<Principal> PostgresStorage::Authenticate(const std::string& token_sha256) {
  return impl_->With<Principal>("authenticate", [&](pqxx::connection& c) -> Result<Principal> {
    impl_->Ready(c);
    pqxx::nontransaction tx(c);
    pqxx::result r = tx.exec_prepared("authenticate", token_sha256);
    if (r.empty()) return NotFound("no live token with this hash");
    return Principal{r[0][0].as<std::int64_t>(), r[0][1].as<std::string>(), r[0][2].as<bool>()};
  });
}

Result<std::int64_t> PostgresStorage::RevokeGatewayTokens(const std::string& gateway_id,
                                                          std::int64_t now_ms) {
  return impl_->With<std::int64_t>("revoke", [&](pqxx::connection& c) -> Result<std::int64_t> {
    pqxx::work tx(c);
    pqxx::result r =
        tx.exec_params("UPDATE tokens SET revoked_ms=$1 WHERE gateway_id=$2 AND revoked_ms IS NULL",
                       now_ms, gateway_id);
    tx.commit();
    return static_cast<std::int64_t>(r.affected_rows());
  });
}

Result<std::int64_t> PostgresStorage::RevokeToken(std::int64_t token_id, std::int64_t now_ms) {
  return impl_->With<std::int64_t>("revoke", [&](pqxx::connection& c) -> Result<std::int64_t> {
    pqxx::work tx(c);
    pqxx::result r = tx.exec_params(
        "UPDATE tokens SET revoked_ms=$1 WHERE id=$2 AND revoked_ms IS NULL", now_ms, token_id);
    tx.commit();
    return static_cast<std::int64_t>(r.affected_rows());
  });
}

Result<std::vector<TokenRecord>> PostgresStorage::ListTokens() {
  return impl_->With<std::vector<TokenRecord>>(
      "list tokens", [&](pqxx::connection& c) -> Result<std::vector<TokenRecord>> {
        pqxx::nontransaction tx(c);
        pqxx::result r =
            tx.exec("SELECT id, gateway_id, admin, created_ms, revoked_ms FROM tokens ORDER BY id");
        std::vector<TokenRecord> out;
        for (const auto& row : r) {
          TokenRecord t{row[0].as<std::int64_t>(), row[1].as<std::string>(), row[2].as<bool>(),
                        row[3].as<std::int64_t>(), std::nullopt};
          if (!row[4].is_null()) t.revoked_ms = row[4].as<std::int64_t>();
          out.push_back(std::move(t));
        }
        return out;
      });
}

Result<std::vector<GatewayInfo>> PostgresStorage::ListGateways(const std::string& gateway_id) {
  return impl_->With<std::vector<GatewayInfo>>(
      "list gateways", [&](pqxx::connection& c) -> Result<std::vector<GatewayInfo>> {
        pqxx::nontransaction tx(c);
        pqxx::result r = tx.exec_params(
            "SELECT gateway_id, first_seen_ms, last_seen_ms, batches, readings FROM gateways "
            "WHERE $1::text='' OR gateway_id=$1::text ORDER BY gateway_id",
            gateway_id);
        std::vector<GatewayInfo> out;
        for (const auto& row : r) {
          out.push_back({row[0].as<std::string>(), row[1].as<std::int64_t>(),
                         row[2].as<std::int64_t>(), row[3].as<std::int64_t>(),
                         row[4].as<std::int64_t>()});
        }
        return out;
      });
}

Result<std::vector<DeviceInfo>> PostgresStorage::ListDevices(const std::string& gateway_id) {
  return impl_->With<std::vector<DeviceInfo>>(
      "list devices", [&](pqxx::connection& c) -> Result<std::vector<DeviceInfo>> {
        pqxx::nontransaction tx(c);
        pqxx::result r = tx.exec_params(
            "SELECT gateway_id, device_id, status, status_ts_ms, last_seen_ms, readings "
            "FROM devices WHERE $1::text='' OR gateway_id=$1::text "
            "ORDER BY gateway_id, device_id",
            gateway_id);
        std::vector<DeviceInfo> out;
        for (const auto& row : r) {
          out.push_back({row[0].as<std::string>(), row[1].as<std::string>(),
                         row[2].as<std::string>(), row[3].as<std::int64_t>(),
                         row[4].as<std::int64_t>(), row[5].as<std::int64_t>()});
        }
        return out;
      });
}

Result<std::vector<Point>> PostgresStorage::QueryPoints(const ReadingsQuery& q) {
  return impl_->With<std::vector<Point>>(
      "query readings", [&](pqxx::connection& c) -> Result<std::vector<Point>> {
        pqxx::nontransaction tx(c);
        pqxx::result r = tx.exec_params(
            "SELECT ts_ms, (metrics->>$3::text)::double precision FROM readings "
            "WHERE device_key=(SELECT id FROM devices WHERE gateway_id=$1 AND device_id=$2) "
            "AND ts_ms>=$4 AND ts_ms<$5 "
            "AND metrics ? $3::text ORDER BY ts_ms LIMIT $6",
            q.gateway_id, q.device_id, q.metric, q.from_ms, q.to_ms, q.limit);
        std::vector<Point> out;
        for (const auto& row : r) out.push_back({row[0].as<std::int64_t>(), row[1].as<double>()});
        return out;
      });
}

Result<std::vector<Bucket>> PostgresStorage::QueryBuckets(const ReadingsQuery& q) {
  return impl_->With<std::vector<Bucket>>(
      "query buckets", [&](pqxx::connection& c) -> Result<std::vector<Bucket>> {
        pqxx::nontransaction tx(c);
        pqxx::result r = tx.exec_params(
            "SELECT (ts_ms-$4::bigint)/$6::bigint AS b, min(v), max(v), avg(v), count(*) FROM "
            "(SELECT ts_ms, (metrics->>$3::text)::double precision AS v FROM readings "
            "WHERE device_key=(SELECT id FROM devices WHERE gateway_id=$1 AND device_id=$2) "
            "AND ts_ms>=$4::bigint AND ts_ms<$5 "
            "AND metrics ? $3::text) s GROUP BY b ORDER BY b LIMIT $7",
            q.gateway_id, q.device_id, q.metric, q.from_ms, q.to_ms, q.step_ms, q.limit);
        std::vector<Bucket> out;
        for (const auto& row : r) {
          out.push_back({q.from_ms + row[0].as<std::int64_t>() * q.step_ms, row[1].as<double>(),
                         row[2].as<double>(), row[3].as<double>(), row[4].as<std::int64_t>()});
        }
        return out;
      });
}

Result<std::vector<StoredAlert>> PostgresStorage::QueryAlerts(const AlertsQuery& q) {
  return impl_->With<std::vector<StoredAlert>>(
      "query alerts", [&](pqxx::connection& c) -> Result<std::vector<StoredAlert>> {
        pqxx::nontransaction tx(c);
        pqxx::result r = tx.exec_params(
            "SELECT gateway_id, alert_id, device_id, rule, state, message, value, ts_ms "
            "FROM alerts WHERE ($1::text='' OR gateway_id=$1::text) "
            "AND ($2::text='' OR device_id=$2::text) AND ts_ms>=$3 AND ts_ms<$4 "
            "ORDER BY ts_ms, gateway_id, alert_id LIMIT $5",
            q.gateway_id, q.device_id, q.from_ms, q.to_ms, q.limit);
        std::vector<StoredAlert> out;
        for (const auto& row : r) {
          StoredAlert a;
          a.gateway_id = row[0].as<std::string>();
          a.alert.id = row[1].as<std::string>();
          a.alert.device_id = row[2].as<std::string>();
          a.alert.rule = row[3].as<std::string>();
          a.alert.state = row[4].as<std::string>();
          a.alert.message = row[5].as<std::string>();
          if (!row[6].is_null()) a.alert.value = row[6].as<double>();
          a.alert.ts_ms = row[7].as<std::int64_t>();
          out.push_back(std::move(a));
        }
        return out;
      });
}

Status PostgresStorage::Ping() {
  Result<int> r = impl_->With<int>("ping", [&](pqxx::connection& c) -> Result<int> {
    pqxx::nontransaction tx(c);
    pqxx::result res = tx.exec("SELECT count(*) FROM schema_migrations");
    return res[0][0].as<int>();
  });
  return r.status();
}

}  // namespace outpost::cloud::storage
