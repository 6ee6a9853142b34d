// Query: series of one metric of one device (blocks merged with the hot tail), the alert and
// quarantine lists, and the in-memory stats. See store_impl.h for the split.
#include <sqlite3.h>

#include <algorithm>
#include <utility>

#include "codec.h"
#include "store_impl.h"

namespace outpost::gateway::store {

Status SeriesQuery::Prepare(Connection& c) {
  OUTPOST_RETURN_IF_ERROR(
      c.Prepare(&blocks_in_range,
                "SELECT start_ts, data FROM blocks WHERE device_key = ?1 AND start_ts >= ?2 AND "
                "start_ts < ?3 AND end_ts >= ?4 ORDER BY start_ts"));
  return c.Prepare(&hot_by_id, "SELECT metrics FROM hot WHERE id = ?1");
}

Result<std::vector<Point>> Store::QuerySeries(std::string_view device_id, std::string_view metric,
                                              int64_t from_ms, int64_t to_ms, size_t limit) {
  Impl& m = *impl_;
  OUTPOST_RETURN_IF_ERROR(m.Ready());
  std::vector<Point> out;
  if (limit == 0 || from_ms >= to_ms) return out;
  auto dit = m.readings.device_keys.find(std::string(device_id));
  auto mit = m.readings.metric_keys.find(std::string(metric));
  if (dit == m.readings.device_keys.end() || mit == m.readings.metric_keys.end()) return out;
  const int64_t dkey = dit->second;
  const int64_t mkey = mit->second;

  std::vector<codec::TsValue> pts;
  std::vector<int64_t> ts_scratch;
  auto by_ts = [](const codec::TsValue& a, const codec::TsValue& b) { return a.ts_ms < b.ts_ms; };

  // Compacted blocks, in start order. Once `limit` points are known and the next block starts
  // after the last of them, no later block can contribute.
  sqlite3_stmt* s = m.query.blocks_in_range.get();
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
    return m.conn.Err(rc, "query blocks");
  }
  sqlite3_reset(s);

  // The hot tail, through the in-memory index: point lookups by rowid.
  s = m.query.hot_by_id.get();
  for (const HotRef& ref : m.readings.hot_index[static_cast<size_t>(dkey - 1)]) {
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
                 : m.conn.Err(rc, "query hot rows");
    }
  }
  std::stable_sort(pts.begin(), pts.end(), by_ts);
  if (pts.size() > limit) pts.resize(limit);
  out.reserve(pts.size());
  for (const auto& p : pts) out.push_back({p.ts_ms, p.value});
  return out;
}

Result<std::vector<model::AlertRow>> Store::ListAlerts(size_t limit) {
  Impl& m = *impl_;
  Stmt s;
  OUTPOST_RETURN_IF_ERROR(m.conn.Prepare(
      &s, (std::string(kAlertColumns) + "ORDER BY raised_ms DESC LIMIT ?1").c_str()));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s.get(), 1, sqlite::ClampLimit(limit)));
  std::vector<model::AlertRow> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) out.push_back(ReadAlert(s.get()));
  if (rc != SQLITE_DONE) return m.conn.Err(rc, "list alerts");
  return out;
}

Result<std::vector<model::QuarantineRow>> Store::ListQuarantine(size_t limit) {
  Impl& m = *impl_;
  Stmt s;
  OUTPOST_RETURN_IF_ERROR(m.conn.Prepare(&s,
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
  if (rc != SQLITE_DONE) return m.conn.Err(rc, "list quarantine");
  return out;
}

Stats Store::stats() const {
  const Impl& m = *impl_;
  return Stats{m.readings.count, m.records.devices,         m.records.quarantine,
               m.conn.db_bytes,  m.readings.deleted_by_age, m.readings.deleted_by_size,
               m.outbox.stats()};
}

}  // namespace outpost::gateway::store
