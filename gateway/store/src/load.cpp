// Load: the restore of every in-memory mirror from the file, at Open and after a failed
// transaction (Impl::Reload), and the loads the gateway makes at start (devices, active
// alerts, recent identities). See store_impl.h for the split.
#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "codec.h"
#include "store_impl.h"

namespace outpost::gateway::store {

namespace {
// Doubles go through SQLite REAL columns only in alerts; NaN would be stored as NULL.
double ColumnDouble(sqlite3_stmt* s, int i) {
  return sqlite3_column_type(s, i) == SQLITE_NULL ? std::nan("") : sqlite3_column_double(s, i);
}
}  // namespace

const char kAlertColumns[] =
    "SELECT alert_id, rule, device_id, metric, severity, message, value, threshold, raised_ms, "
    "cleared_ms, acked_ms, acked_by, ack_comment FROM alerts ";

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
  a.acked_ms = sqlite3_column_int64(r, 10);
  a.acked_by = sqlite::ColumnText(r, 11);
  a.ack_comment = sqlite::ColumnText(r, 12);
  return a;
}

Status Store::Impl::Reload() {
  Readings& rd = readings;
  Records& rec = records;
  rd.device_keys.clear();
  rd.device_ids.clear();
  rec.registered.clear();
  rd.metric_keys.clear();
  {
    Stmt s;
    OUTPOST_RETURN_IF_ERROR(
        conn.Prepare(&s, "SELECT device_key, device_id FROM device_keys ORDER BY device_key"));
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      const int64_t key = sqlite3_column_int64(s.get(), 0);
      if (key != static_cast<int64_t>(rd.device_ids.size()) + 1) {
        return Status(Code::kDataLoss, "store " + opt.path + ": device keys are not dense");
      }
      std::string id = sqlite::ColumnText(s.get(), 1);
      rd.device_keys.emplace(id, key);
      rd.device_ids.push_back(std::move(id));
    }
    if (rc != SQLITE_DONE) return conn.Err(rc, "load device keys");
    rec.registered.assign(rd.device_ids.size(), 0);
  }
  {
    Stmt s;
    OUTPOST_RETURN_IF_ERROR(conn.Prepare(&s, "SELECT metric_key, name FROM metric_keys"));
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      rd.metric_keys.emplace(sqlite::ColumnText(s.get(), 1), sqlite3_column_int64(s.get(), 0));
    }
    if (rc != SQLITE_DONE) return conn.Err(rc, "load metric keys");
  }
  {
    Stmt s;
    OUTPOST_RETURN_IF_ERROR(conn.Prepare(&s, "SELECT device_key FROM devices"));
    int rc;
    rec.devices = 0;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      const int64_t key = sqlite3_column_int64(s.get(), 0);
      if (key < 1 || key > static_cast<int64_t>(rec.registered.size())) {
        return Status(Code::kDataLoss, "store " + opt.path + ": device without a key");
      }
      rec.registered[static_cast<size_t>(key - 1)] = 1;
      ++rec.devices;
    }
    if (rc != SQLITE_DONE) return conn.Err(rc, "load devices");
  }
  {
    Stmt s;
    OUTPOST_RETURN_IF_ERROR(conn.Prepare(
        &s, "SELECT next_reading_id, readings, deleted_by_age, deleted_by_size FROM state"));
    const int rc = sqlite3_step(s.get());
    if (rc != SQLITE_ROW) return conn.Err(rc == SQLITE_DONE ? SQLITE_CORRUPT : rc, "load state");
    rd.next_id = sqlite3_column_int64(s.get(), 0);
    rd.count = sqlite3_column_int64(s.get(), 1);
    rd.deleted_by_age = sqlite3_column_int64(s.get(), 2);
    rd.deleted_by_size = sqlite3_column_int64(s.get(), 3);
  }
  OUTPOST_RETURN_IF_ERROR(LoadHotIndex());
  OUTPOST_RETURN_IF_ERROR(outbox.Load());
  Result<int64_t> q = conn.QueryInt("SELECT count(*) FROM quarantine", "count quarantine");
  if (!q.ok()) return q.status();
  rec.quarantine = *q;
  Result<int64_t> ps = conn.QueryInt("PRAGMA page_size", "page_size");
  if (!ps.ok()) return ps.status();
  conn.page_size = *ps;
  OUTPOST_RETURN_IF_ERROR(conn.UpdateBytes());
  maintenance.compacting = rd.hot_rows > static_cast<int64_t>(opt.hot_max_rows);
  rec.alerts_dirty = true;
  need_reload = false;
  return Status::Ok();
}

// The hot tail is bounded by compaction, so this scan is cheap.
Status Store::Impl::LoadHotIndex() {
  Readings& rd = readings;
  rd.hot_index.assign(rd.device_ids.size(), {});
  rd.hot_rows = 0;
  rd.hot_min_ts = std::numeric_limits<int64_t>::max();
  Stmt s;
  OUTPOST_RETURN_IF_ERROR(conn.Prepare(&s, "SELECT id, device_key, ts_ms FROM hot ORDER BY id"));
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    const int64_t key = sqlite3_column_int64(s.get(), 1);
    if (key < 1 || key > static_cast<int64_t>(rd.hot_index.size())) {
      return Status(Code::kDataLoss, "store " + opt.path + ": reading with unknown device key");
    }
    const int64_t ts = sqlite3_column_int64(s.get(), 2);
    rd.hot_index[static_cast<size_t>(key - 1)].push_back({sqlite3_column_int64(s.get(), 0), ts});
    rd.hot_min_ts = std::min(rd.hot_min_ts, ts);
    ++rd.hot_rows;
  }
  if (rc != SQLITE_DONE) return conn.Err(rc, "load hot index");
  return Status::Ok();
}

Result<std::vector<model::DeviceRow>> Store::LoadDevices() {
  Impl& m = *impl_;
  Stmt s;
  OUTPOST_RETURN_IF_ERROR(m.conn.Prepare(
      &s,
      "SELECT k.device_id, d.first_seen_ms, d.last_seen_ms, d.status, d.status_changed_ms, "
      "d.last_reading_json, d.firmware, d.boot, d.last_seq, d.readings, d.duplicates, d.seq_gaps, "
      "d.native FROM devices d JOIN device_keys k ON k.device_key = d.device_key ORDER BY "
      "k.device_id"));
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
    d.native = sqlite3_column_int64(r, 12) != 0;
    out.push_back(std::move(d));
  }
  if (rc != SQLITE_DONE) return m.conn.Err(rc, "load devices");
  return out;
}

Result<std::vector<model::AlertRow>> Store::LoadActiveAlerts() {
  Impl& m = *impl_;
  Stmt s;
  OUTPOST_RETURN_IF_ERROR(m.conn.Prepare(
      &s, (std::string(kAlertColumns) + "WHERE cleared_ms = 0 ORDER BY raised_ms").c_str()));
  std::vector<model::AlertRow> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) out.push_back(ReadAlert(s.get()));
  if (rc != SQLITE_DONE) return m.conn.Err(rc, "load active alerts");
  return out;
}

Result<std::vector<model::RecentIdentity>> Store::LoadRecentIdentities(size_t max_rows) {
  Impl& m = *impl_;
  OUTPOST_RETURN_IF_ERROR(m.Ready());
  struct Item {
    int64_t id;
    int64_t device_key;
    codec::BlockIdentity ident;
  };
  std::vector<Item> items;
  if (max_rows == 0) return std::vector<model::RecentIdentity>();
  {
    Stmt s;
    OUTPOST_RETURN_IF_ERROR(m.conn.Prepare(
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
    if (rc != SQLITE_DONE) return m.conn.Err(rc, "load recent hot identities");
  }
  if (items.size() < max_rows) {
    // Older readings are in blocks. Every reading of a compaction pass has a smaller id than
    // those of later passes, so reading whole passes, newest first, is exact.
    Stmt s;
    OUTPOST_RETURN_IF_ERROR(
        m.conn.Prepare(&s, "SELECT device_key, pass, data FROM blocks ORDER BY id DESC"));
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
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
      return m.conn.Err(rc, "load recent block identities");
  }
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.id > b.id; });
  if (items.size() > max_rows) items.resize(max_rows);
  std::vector<model::RecentIdentity> out;
  out.reserve(items.size());
  for (auto it = items.rbegin(); it != items.rend(); ++it) {
    model::RecentIdentity r;
    if (it->device_key < 1 || it->device_key > static_cast<int64_t>(m.readings.device_ids.size())) {
      return Status(Code::kDataLoss, "store " + m.opt.path + ": reading with unknown device");
    }
    r.device_id = m.readings.device_ids[static_cast<size_t>(it->device_key - 1)];
    r.has_seq = (it->ident.flags & codec::kFlagHasSeq) != 0;
    r.boot = r.has_seq ? it->ident.boot : 0;
    r.seq = r.has_seq ? it->ident.seq : 0;
    r.has_device_ts = (it->ident.flags & codec::kFlagHasDeviceTs) != 0;
    r.device_ts_raw = r.has_device_ts ? it->ident.device_ts : 0;
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace outpost::gateway::store
