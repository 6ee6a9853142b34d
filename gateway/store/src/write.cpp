// Write: the hot write path (readings, keyed by the device and metric dictionaries) and the
// device, alert and quarantine rows of a WriteSet, all in one transaction (Store::Write).
// See store_impl.h for the split; docs/formats/store.md for the tables.
#include <sqlite3.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "codec.h"
#include "store_impl.h"

namespace outpost::gateway::store {

Status Readings::Prepare(Connection& c) {
  OUTPOST_RETURN_IF_ERROR(c.Prepare(
      &insert_hot,
      "INSERT INTO hot(id, device_key, ts_ms, received_ms, flags, boot, seq, device_ts, metrics) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"));
  OUTPOST_RETURN_IF_ERROR(c.Prepare(
      &insert_device_key, "INSERT INTO device_keys(device_key, device_id) VALUES (?1, ?2)"));
  OUTPOST_RETURN_IF_ERROR(
      c.Prepare(&insert_metric_key, "INSERT INTO metric_keys(metric_key, name) VALUES (?1, ?2)"));
  return c.Prepare(
      &update_state,
      "UPDATE state SET next_reading_id=?1, readings=?2, deleted_by_age=?3, deleted_by_size=?4 "
      "WHERE id = 1");
}

Status Readings::SaveState(Connection& c) {
  sqlite3_stmt* s = update_state.get();
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 1, next_id));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 2, count));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 3, deleted_by_age));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 4, deleted_by_size));
  return c.Run(update_state, "update state");
}

Status Records::Prepare(Connection& c) {
  OUTPOST_RETURN_IF_ERROR(c.Prepare(
      &upsert_device,
      "INSERT OR REPLACE INTO devices(device_key, first_seen_ms, last_seen_ms, status, "
      "status_changed_ms, last_reading_json, firmware, boot, last_seq, readings, duplicates, "
      "seq_gaps, native) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"));
  OUTPOST_RETURN_IF_ERROR(c.Prepare(&delete_device, "DELETE FROM devices WHERE device_key = ?1"));
  OUTPOST_RETURN_IF_ERROR(c.Prepare(
      &upsert_alert,
      "INSERT INTO alerts(alert_id, raised_ms, rule, device_id, metric, severity, message, value, "
      "threshold, cleared_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
      "ON CONFLICT(alert_id, raised_ms) DO UPDATE SET rule=excluded.rule, "
      "device_id=excluded.device_id, metric=excluded.metric, severity=excluded.severity, "
      "message=excluded.message, value=excluded.value, threshold=excluded.threshold, "
      "cleared_ms=excluded.cleared_ms"));
  OUTPOST_RETURN_IF_ERROR(c.Prepare(&insert_quarantine,
                                    "INSERT INTO quarantine(received_ms, topic, reason, detail, "
                                    "payload) VALUES (?1, ?2, ?3, ?4, ?5)"));
  OUTPOST_RETURN_IF_ERROR(
      c.Prepare(&ack_alert,
                "UPDATE alerts SET acked_ms = ?3, acked_by = ?4, ack_comment = ?5 "
                "WHERE alert_id = ?1 AND raised_ms = ?2 AND acked_ms = 0"));
  OUTPOST_RETURN_IF_ERROR(
      c.Prepare(&read_alert,
                (std::string(kAlertColumns) + "WHERE alert_id = ?1 AND raised_ms = ?2").c_str()));
  return c.Prepare(&evict_quarantine,
                   "DELETE FROM quarantine WHERE id <= (SELECT max(id) FROM quarantine) - ?1");
}

Result<int64_t> Store::Impl::DeviceKey(const std::string& device_id) {
  Readings& r = readings;
  auto it = r.device_keys.find(device_id);
  if (it != r.device_keys.end()) return it->second;
  const int64_t key = static_cast<int64_t>(r.device_ids.size()) + 1;
  sqlite3_stmt* s = r.insert_device_key.get();
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 1, key));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 2, device_id));
  OUTPOST_RETURN_IF_ERROR(conn.Run(r.insert_device_key, "insert device key"));
  r.device_keys.emplace(device_id, key);
  r.device_ids.push_back(device_id);
  r.hot_index.emplace_back();
  records.registered.push_back(0);
  return key;
}

Result<int64_t> Store::Impl::MetricKey(const std::string& name) {
  Readings& r = readings;
  auto it = r.metric_keys.find(name);
  if (it != r.metric_keys.end()) return it->second;
  const int64_t key = static_cast<int64_t>(r.metric_keys.size()) + 1;
  sqlite3_stmt* s = r.insert_metric_key.get();
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 1, key));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 2, name));
  OUTPOST_RETURN_IF_ERROR(conn.Run(r.insert_metric_key, "insert metric key"));
  r.metric_keys.emplace(name, key);
  return key;
}

Status Store::Impl::InsertReading(const model::ReadingRow& r) {
  Readings& rd = readings;
  Result<int64_t> dkey = DeviceKey(r.device_id);
  if (!dkey.ok()) return dkey.status();
  rd.buf.clear();
  for (const model::MetricValue& m : r.metrics) {
    Result<int64_t> mkey = MetricKey(m.name);
    if (!mkey.ok()) return mkey.status();
    codec::AppendMetric(&rd.buf, *mkey, m.is_bool, m.value);
  }
  uint8_t flags = 0;
  if (r.ts_from_device) flags |= codec::kFlagTsFromDevice;
  if (r.has_seq) flags |= codec::kFlagHasSeq;
  if (r.has_device_ts) flags |= codec::kFlagHasDeviceTs;
  sqlite3_stmt* s = rd.insert_hot.get();
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 1, rd.next_id));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 2, *dkey));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 3, r.ts_ms));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 4, r.received_ms));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt(s, 5, flags));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 6, r.has_seq ? r.boot : 0));
  OUTPOST_RETURN_IF_ERROR(
      sqlite::BindInt64(s, 7, r.has_seq ? static_cast<sqlite3_int64>(r.seq) : 0));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 8, r.has_device_ts ? r.device_ts_raw : 0));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindBlob(s, 9, rd.buf));
  const int rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) return conn.Err(rc, "insert reading");
  rd.hot_index[static_cast<size_t>(*dkey - 1)].push_back({rd.next_id, r.ts_ms});
  ++rd.next_id;
  ++rd.count;
  ++rd.hot_rows;
  rd.hot_min_ts = std::min(rd.hot_min_ts, r.ts_ms);
  return Status::Ok();
}

Status Store::Impl::WriteInTx(const model::WriteSet& batch) {
  for (const model::ReadingRow& r : batch.readings) OUTPOST_RETURN_IF_ERROR(InsertReading(r));
  Records& rec = records;

  // Removals first: a device evicted and heard again in the same batch keeps its new row.
  for (const std::string& id : batch.removed_devices) {
    auto it = readings.device_keys.find(id);
    if (it == readings.device_keys.end()) continue;
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(rec.delete_device.get(), 1, it->second));
    OUTPOST_RETURN_IF_ERROR(conn.Run(rec.delete_device, "delete device"));
    uint8_t& reg = rec.registered[static_cast<size_t>(it->second - 1)];
    if (reg) {
      reg = 0;
      --rec.devices;
    }
  }

  for (const model::DeviceRow& d : batch.devices) {
    Result<int64_t> key = DeviceKey(d.device_id);
    if (!key.ok()) return key.status();
    sqlite3_stmt* s = rec.upsert_device.get();
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
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt(s, 13, d.native ? 1 : 0));
    OUTPOST_RETURN_IF_ERROR(conn.Run(rec.upsert_device, "upsert device"));
    uint8_t& reg = rec.registered[static_cast<size_t>(*key - 1)];
    if (!reg) {
      reg = 1;
      ++rec.devices;
    }
  }

  for (const model::AlertRow& a : batch.alerts) {
    sqlite3_stmt* s = rec.upsert_alert.get();
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
    OUTPOST_RETURN_IF_ERROR(conn.Run(rec.upsert_alert, "upsert alert"));
    rec.alerts_dirty = true;
  }

  if (opt.quarantine_max_rows > 0 && !batch.quarantine.empty()) {
    // Only the newest quarantine_max_rows of this batch can survive eviction.
    const size_t skip = batch.quarantine.size() > opt.quarantine_max_rows
                            ? batch.quarantine.size() - opt.quarantine_max_rows
                            : 0;
    for (size_t i = skip; i < batch.quarantine.size(); ++i) {
      const model::QuarantineRow& q = batch.quarantine[i];
      sqlite3_stmt* s = rec.insert_quarantine.get();
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 1, q.received_ms));
      OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 2, q.topic));
      OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 3, q.reason));
      OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 4, q.detail));
      const size_t n = std::min(q.payload.size(), opt.quarantine_max_payload_bytes);
      OUTPOST_RETURN_IF_ERROR(sqlite::BindBlob(s, 5, std::string_view(q.payload.data(), n)));
      OUTPOST_RETURN_IF_ERROR(conn.Run(rec.insert_quarantine, "insert quarantine"));
      ++rec.quarantine;
    }
    if (rec.quarantine > static_cast<int64_t>(opt.quarantine_max_rows)) {
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(rec.evict_quarantine.get(), 1,
                                                sqlite::ClampLimit(opt.quarantine_max_rows)));
      OUTPOST_RETURN_IF_ERROR(conn.Run(rec.evict_quarantine, "evict quarantine"));
      rec.quarantine -= sqlite3_changes(conn.db());
    }
  }

  if (!batch.readings.empty()) OUTPOST_RETURN_IF_ERROR(readings.SaveState(conn));
  if (opt.outbox.enabled && !batch.outbox.empty()) {
    OUTPOST_RETURN_IF_ERROR(outbox.Enqueue(batch.outbox));
  }
  return Status::Ok();
}

Status Store::Impl::AckInTx(const model::AlertAck& ack, const Store::AckItemFn& item,
                            model::AlertRow* row) {
  const std::string where = "alert " + ack.alert_id + ":" + std::to_string(ack.raised_ms);
  sqlite3_stmt* u = records.ack_alert.get();
  OUTPOST_RETURN_IF_ERROR(sqlite::BindText(u, 1, ack.alert_id));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(u, 2, ack.raised_ms));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(u, 3, std::max<int64_t>(ack.acked_ms, 1)));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindText(u, 4, ack.user));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindText(u, 5, ack.comment));
  OUTPOST_RETURN_IF_ERROR(conn.Run(records.ack_alert, "ack alert"));
  const bool changed = sqlite3_changes(conn.db()) == 1;
  sqlite3_stmt* r = records.read_alert.get();
  OUTPOST_RETURN_IF_ERROR(sqlite::BindText(r, 1, ack.alert_id));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(r, 2, ack.raised_ms));
  const int rc = sqlite3_step(r);
  if (rc == SQLITE_ROW) *row = ReadAlert(r);
  sqlite3_reset(r);
  if (rc == SQLITE_DONE) return Status(Code::kNotFound, where + ": no such alert");
  if (rc != SQLITE_ROW) return conn.Err(rc, "read alert");
  if (!changed) {
    return Status(Code::kFailedPrecondition, where + ": already acknowledged by " +
                                                 (row->acked_by.empty() ? "?" : row->acked_by));
  }
  if (!opt.outbox.enabled || !item) return Status::Ok();
  std::optional<model::OutboxItem> queued = item(*row);
  return queued ? outbox.Enqueue({*std::move(queued)}) : Status::Ok();
}

Result<model::AlertRow> Store::AckAlert(const model::AlertAck& ack, const AckItemFn& item) {
  Impl& m = *impl_;
  OUTPOST_RETURN_IF_ERROR(m.Ready());
  OUTPOST_RETURN_IF_ERROR(m.conn.Begin());
  model::AlertRow row;
  Status st = m.AckInTx(ack, item, &row);
  if (st.code() == Code::kNotFound || st.code() == Code::kFailedPrecondition) {
    m.conn.Rollback();  // a refusal: nothing was written
    return st;
  }
  if (st.ok()) st = m.conn.Commit();
  if (!st.ok()) return m.Abort(std::move(st));
  OUTPOST_RETURN_IF_ERROR(m.conn.UpdateBytes());
  return row;
}

Status Store::Write(const model::WriteSet& batch) {
  Impl& m = *impl_;
  OUTPOST_RETURN_IF_ERROR(m.Ready());
  if (batch.empty()) return Status::Ok();
  OUTPOST_RETURN_IF_ERROR(m.conn.Begin());
  Status st = m.WriteInTx(batch);
  if (st.ok()) st = m.conn.Commit();
  if (!st.ok()) return m.Abort(std::move(st));
  return m.conn.UpdateBytes();
}

}  // namespace outpost::gateway::store
