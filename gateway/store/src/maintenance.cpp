// Maintenance: bounded background work, each step in its own transaction: retention by age and
// by size, the alert history bound, outbox expiry, and compaction of the oldest hot rows into
// per-device blocks (Store::RunMaintenance). See store_impl.h for the split;
// docs/formats/store.md for the block format.
#include <sqlite3.h>

#include <algorithm>
#include <limits>
#include <utility>

#include "codec.h"
#include "store_impl.h"

namespace outpost::gateway::store {

namespace {

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

Status Maintenance::Prepare(Connection& c) {
  OUTPOST_RETURN_IF_ERROR(c.Prepare(
      &hot_oldest,
      "SELECT id, device_key, ts_ms, received_ms, flags, boot, seq, device_ts, metrics FROM hot "
      "ORDER BY id LIMIT ?1"));
  OUTPOST_RETURN_IF_ERROR(c.Prepare(&insert_block,
                                    "INSERT INTO blocks(device_key, start_ts, end_ts, pass, n, "
                                    "data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
  OUTPOST_RETURN_IF_ERROR(c.Prepare(&insert_summary,
                                    "INSERT INTO block_summaries(block_id, metric_key, n, min, "
                                    "max, sum) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
  OUTPOST_RETURN_IF_ERROR(c.Prepare(&delete_hot_upto, "DELETE FROM hot WHERE id <= ?1"));
  OUTPOST_RETURN_IF_ERROR(c.Prepare(
      &blocks_older, "SELECT id, n FROM blocks WHERE end_ts < ?1 ORDER BY end_ts LIMIT ?2"));
  OUTPOST_RETURN_IF_ERROR(c.Prepare(&delete_block, "DELETE FROM blocks WHERE id = ?1"));
  OUTPOST_RETURN_IF_ERROR(
      c.Prepare(&delete_hot_older,
                "DELETE FROM hot WHERE id IN (SELECT id FROM hot WHERE ts_ms < ?1 LIMIT ?2)"));
  OUTPOST_RETURN_IF_ERROR(c.Prepare(
      &delete_hot_oldest, "DELETE FROM hot WHERE id IN (SELECT id FROM hot ORDER BY id LIMIT ?1)"));
  return c.Prepare(
      &trim_alerts,
      "DELETE FROM alerts WHERE cleared_ms != 0 AND raised_ms <= (SELECT raised_ms FROM alerts "
      "WHERE cleared_ms != 0 ORDER BY raised_ms DESC LIMIT 1 OFFSET ?1)");
}

Result<int64_t> Store::Impl::DeleteBlocks(const std::vector<std::pair<int64_t, int64_t>>& blocks) {
  int64_t n = 0;
  for (const auto& [id, count] : blocks) {
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(maintenance.delete_block.get(), 1, id));
    OUTPOST_RETURN_IF_ERROR(conn.Run(maintenance.delete_block, "delete block"));
    n += count;
  }
  return n;
}

Status Store::Impl::RetainByAge(int64_t now_ms, size_t budget) {
  if (opt.retention_ms <= 0) return Status::Ok();
  const int64_t cutoff = SatSub(now_ms, opt.retention_ms);
  std::vector<std::pair<int64_t, int64_t>> old;
  {
    sqlite3_stmt* s = maintenance.blocks_older.get();
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 1, cutoff));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 2, sqlite::ClampLimit(budget)));
    size_t rows = 0;
    int rc;
    while (rows < budget && (rc = sqlite3_step(s)) == SQLITE_ROW) {
      old.emplace_back(sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1));
      rows += static_cast<size_t>(old.back().second);
    }
    rc = sqlite3_reset(s);
    if (rc != SQLITE_OK) return conn.Err(rc, "select old blocks");
  }
  const bool hot_old = readings.hot_min_ts < cutoff;
  if (old.empty() && !hot_old) return Status::Ok();

  OUTPOST_RETURN_IF_ERROR(conn.Begin());
  bool hot_deleted = false;
  Status st = [&]() -> Status {
    Result<int64_t> n = DeleteBlocks(old);
    if (!n.ok()) return n.status();
    int64_t deleted = *n;
    if (hot_old) {
      const size_t hot_budget = std::max<size_t>(budget, 1000);
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(maintenance.delete_hot_older.get(), 1, cutoff));
      OUTPOST_RETURN_IF_ERROR(
          sqlite::BindInt64(maintenance.delete_hot_older.get(), 2, sqlite::ClampLimit(hot_budget)));
      OUTPOST_RETURN_IF_ERROR(conn.Run(maintenance.delete_hot_older, "delete old hot rows"));
      const int64_t changed = sqlite3_changes(conn.db());
      deleted += changed;
      hot_deleted = changed > 0;
    }
    readings.count -= deleted;
    readings.deleted_by_age += deleted;
    OUTPOST_RETURN_IF_ERROR(readings.SaveState(conn));
    return conn.Commit();
  }();
  if (!st.ok()) return Abort(std::move(st));
  // Rare (hot rows are normally compacted long before they age out): rebuild the hot index.
  if (hot_deleted) OUTPOST_RETURN_IF_ERROR(LoadHotIndex());
  if (hot_old && !hot_deleted)
    readings.hot_min_ts = std::max(readings.hot_min_ts, cutoff);  // none were old
  return conn.UpdateBytes();
}

Status Store::Impl::RetainBySize(size_t budget) {
  if (opt.max_bytes <= 0 || conn.db_bytes <= opt.max_bytes) return Status::Ok();
  bool hot_deleted = false;
  OUTPOST_RETURN_IF_ERROR(conn.Begin());
  Status st = [&]() -> Status {
    int64_t deleted = 0;
    std::vector<std::pair<int64_t, int64_t>> old;
    while (conn.db_bytes > opt.max_bytes && static_cast<size_t>(deleted) < budget) {
      // Oldest blocks first (by their newest reading), a few at a time, re-measuring between.
      old.clear();
      sqlite3_stmt* s = maintenance.blocks_older.get();
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 1, std::numeric_limits<int64_t>::max()));
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 2, 16));
      int rc;
      while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        old.emplace_back(sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1));
      }
      rc = sqlite3_reset(s);
      if (rc != SQLITE_OK) return conn.Err(rc, "select oldest blocks");
      if (!old.empty()) {
        Result<int64_t> n = DeleteBlocks(old);
        if (!n.ok()) return n.status();
        deleted += *n;
      } else if (readings.hot_rows > 0) {
        OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(maintenance.delete_hot_oldest.get(), 1, 1000));
        OUTPOST_RETURN_IF_ERROR(conn.Run(maintenance.delete_hot_oldest, "delete oldest hot rows"));
        const int64_t changed = sqlite3_changes(conn.db());
        deleted += changed;
        readings.hot_rows -= changed;
        hot_deleted = true;
      } else {
        break;  // nothing left to delete: the rest is registry, alerts, quarantine
      }
      OUTPOST_RETURN_IF_ERROR(conn.UpdateBytes());
    }
    readings.count -= deleted;
    readings.deleted_by_size += deleted;
    OUTPOST_RETURN_IF_ERROR(readings.SaveState(conn));
    return conn.Commit();
  }();
  if (!st.ok()) return Abort(std::move(st));
  if (hot_deleted) OUTPOST_RETURN_IF_ERROR(LoadHotIndex());
  return conn.UpdateBytes();
}

Status Store::Impl::Compact(size_t budget) {
  Readings& rd = readings;
  bool& compacting = maintenance.compacting;
  const int64_t high = static_cast<int64_t>(opt.hot_max_rows);
  if (!compacting && rd.hot_rows > high) compacting = true;
  if (!compacting) return Status::Ok();
  const int64_t low = high / 4;
  const int64_t want = std::min<int64_t>(rd.hot_rows - low, sqlite::ClampLimit(budget));
  if (want <= 0) {
    compacting = false;
    return Status::Ok();
  }

  int64_t compacted_upto = 0;
  OUTPOST_RETURN_IF_ERROR(conn.Begin());
  Status st = [&]() -> Status {
    std::vector<HotRow> rows;
    rows.reserve(static_cast<size_t>(want));
    std::string arena;
    arena.reserve(static_cast<size_t>(want) * 48);
    sqlite3_stmt* s = maintenance.hot_oldest.get();
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
    if (rc != SQLITE_DONE) return conn.Err(rc, "read hot rows");
    if (rows.empty()) return conn.Commit();
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
    std::vector<codec::MetricSummary> summaries;
    auto flush = [&](int64_t device_key) -> Status {
      if (block.empty()) return Status::Ok();
      codec::EncodeBlock(block, &scratch, &data);
      sqlite3_stmt* ins = maintenance.insert_block.get();
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(ins, 1, device_key));
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(ins, 2, block.front().ts_ms));
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(ins, 3, block.back().ts_ms));
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(ins, 4, pass));
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(ins, 5, static_cast<sqlite3_int64>(block.size())));
      OUTPOST_RETURN_IF_ERROR(sqlite::BindBlob(ins, 6, data));
      OUTPOST_RETURN_IF_ERROR(conn.Run(maintenance.insert_block, "insert block"));
      // The block's summaries: metric key 0 is the block itself (n readings), the mark that its
      // metrics are summarized; blocks from before schema 7 have none and are decoded.
      const int64_t block_id = sqlite3_last_insert_rowid(conn.db());
      if (!codec::SummarizeBlock(block, &summaries)) {
        return Status(Code::kDataLoss, "store " + opt.path + ": corrupt metrics in a hot row");
      }
      summaries.insert(summaries.begin(),
                       codec::MetricSummary{0, static_cast<int64_t>(block.size()), 0, 0, 0});
      for (const codec::MetricSummary& m : summaries) {
        sqlite3_stmt* sum = maintenance.insert_summary.get();
        OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(sum, 1, block_id));
        OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(sum, 2, m.metric_key));
        OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(sum, 3, m.n));
        OUTPOST_RETURN_IF_ERROR(sqlite::BindDouble(sum, 4, m.min));
        OUTPOST_RETURN_IF_ERROR(sqlite::BindDouble(sum, 5, m.max));
        OUTPOST_RETURN_IF_ERROR(sqlite::BindDouble(sum, 6, m.sum));
        OUTPOST_RETURN_IF_ERROR(conn.Run(maintenance.insert_summary, "insert block summary"));
      }
      block.clear();
      return Status::Ok();
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

    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(maintenance.delete_hot_upto.get(), 1, last_id));
    OUTPOST_RETURN_IF_ERROR(conn.Run(maintenance.delete_hot_upto, "delete compacted hot rows"));
    const int64_t moved = sqlite3_changes(conn.db());
    if (moved != static_cast<int64_t>(rows.size())) {
      return Status(Code::kInternal, "store " + opt.path + ": compaction moved " +
                                         std::to_string(rows.size()) + " rows but deleted " +
                                         std::to_string(moved));
    }
    rd.hot_rows -= moved;
    return conn.Commit();
  }();
  if (!st.ok()) return Abort(std::move(st));
  // Compaction takes the oldest ids, so per device the compacted rows are a prefix.
  for (auto& refs : rd.hot_index) {
    auto end = std::upper_bound(refs.begin(), refs.end(), compacted_upto,
                                [](int64_t id, const HotRef& r) { return id < r.id; });
    refs.erase(refs.begin(), end);
  }
  rd.hot_min_ts = std::numeric_limits<int64_t>::max();
  for (const auto& refs : rd.hot_index) {
    for (const HotRef& r : refs) rd.hot_min_ts = std::min(rd.hot_min_ts, r.ts_ms);
  }
  if (rd.hot_rows <= low) compacting = false;
  return conn.UpdateBytes();
}

Status Store::Impl::TrimAlerts() {
  if (!records.alerts_dirty) return Status::Ok();
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(maintenance.trim_alerts.get(), 1,
                                            sqlite::ClampLimit(opt.alert_history_max_rows)));
  OUTPOST_RETURN_IF_ERROR(conn.Run(maintenance.trim_alerts, "trim alert history"));
  records.alerts_dirty = false;
  return Status::Ok();
}

Status Store::RunMaintenance(int64_t now_ms, size_t max_rows_per_call) {
  Impl& m = *impl_;
  OUTPOST_RETURN_IF_ERROR(m.Ready());
  if (max_rows_per_call == 0) return Status::Ok();
  OUTPOST_RETURN_IF_ERROR(m.RetainByAge(now_ms, max_rows_per_call));
  OUTPOST_RETURN_IF_ERROR(m.RetainBySize(max_rows_per_call));
  OUTPOST_RETURN_IF_ERROR(m.TrimAlerts());
  const int64_t oldest = m.outbox.queue_oldest_ms();
  if (m.opt.outbox.expire_after_ms > 0 && oldest != 0 &&
      oldest < SatSub(now_ms, m.opt.outbox.expire_after_ms)) {
    OUTPOST_RETURN_IF_ERROR(m.conn.Begin());
    Status st = m.outbox.Expire(now_ms, max_rows_per_call);
    if (st.ok()) st = m.conn.Commit();
    if (!st.ok()) return m.Abort(std::move(st));
  }
  return m.Compact(max_rows_per_call);
}

}  // namespace outpost::gateway::store
