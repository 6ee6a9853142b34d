#include "outpost/node/fleet/verify.h"

#include <sqlite3.h>

#include <unordered_map>

namespace outpost::node::fleet {
namespace {

struct Row {
  std::int64_t readings = 0, seq_gaps = 0, boot = 0, last_seq = -1;
};

}  // namespace

Result<VerifyReport> VerifyStore(const std::string& db_path,
                                 const std::vector<DeviceRecord>& records) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return Unavailable("verify-store " + db_path + ": " + msg);
  }
  sqlite3_busy_timeout(db, 5'000);
  sqlite3_stmt* stmt = nullptr;
  const char* sql =
      "SELECT device_id, readings, seq_gaps, boot, COALESCE(last_seq, -1) FROM device_status";
  if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) != SQLITE_OK) {
    std::string msg = sqlite3_errmsg(db);
    sqlite3_close(db);
    return Unavailable("verify-store " + db_path + ": " + msg +
                       " (is this an outpost-gateway database?)");
  }
  std::unordered_map<std::string, Row> rows;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    Row r;
    r.readings = sqlite3_column_int64(stmt, 1);
    r.seq_gaps = sqlite3_column_int64(stmt, 2);
    r.boot = sqlite3_column_int64(stmt, 3);
    r.last_seq = sqlite3_column_int64(stmt, 4);
    rows[reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0))] = r;
  }
  sqlite3_finalize(stmt);
  const std::string err = rc == SQLITE_DONE ? "" : sqlite3_errmsg(db);
  sqlite3_close(db);
  if (!err.empty()) return Unavailable("verify-store " + db_path + ": " + err);

  VerifyReport rep;
  auto note = [&rep](std::string p) {
    if (rep.problems.size() < 10) rep.problems.push_back(std::move(p));
  };
  for (const DeviceRecord& rec : records) {
    if (rec.acked == 0) continue;
    ++rep.devices_checked;
    rep.acked += rec.acked;
    auto it = rows.find(rec.id);
    if (it == rows.end()) {
      ++rep.devices_missing;
      note(rec.id + ": " + std::to_string(rec.acked) + " acknowledged, device not in the store");
      continue;
    }
    const Row& r = it->second;
    rep.stored += static_cast<std::uint64_t>(r.readings);
    rep.seq_gaps += static_cast<std::uint64_t>(r.seq_gaps);
    if (r.seq_gaps > 0) {
      ++rep.devices_with_gaps;
      note(rec.id + ": " + std::to_string(r.seq_gaps) + " seq gaps");
    }
    const bool last_missing =
        r.boot == rec.boot && rec.last_acked_seq >= 0 && r.last_seq < rec.last_acked_seq;
    if (static_cast<std::uint64_t>(r.readings) < rec.acked || last_missing || r.boot < rec.boot) {
      ++rep.devices_short;
      note(rec.id + ": acknowledged " + std::to_string(rec.acked) + " (boot " +
           std::to_string(rec.boot) + ", last seq " + std::to_string(rec.last_acked_seq) +
           "), stored " + std::to_string(r.readings) + " (boot " + std::to_string(r.boot) +
           ", last seq " + std::to_string(r.last_seq) + ")");
    }
  }
  return rep;
}

}  // namespace outpost::node::fleet
