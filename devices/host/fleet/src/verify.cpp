#include "outpost/node/fleet/verify.h"

#include <unordered_map>

#include "outpost/sqlite/database.h"

namespace outpost::node::fleet {
namespace {

struct Row {
  std::int64_t readings = 0, seq_gaps = 0, boot = 0, last_seq = -1;
};

}  // namespace

Result<VerifyReport> VerifyStore(const std::string& db_path,
                                 const std::vector<DeviceRecord>& records) {
  sqlite::OpenOptions o;
  o.flags = SQLITE_OPEN_READONLY;
  o.busy_timeout_ms = 5'000;
  o.label = "verify-store " + db_path;
  auto db = sqlite::Database::Open(db_path, o);
  if (!db.ok()) return db.status();
  sqlite::Statement stmt;
  Status st = db->Prepare(
      &stmt,
      "SELECT device_id, readings, seq_gaps, boot, COALESCE(last_seq, -1) FROM device_status");
  if (!st.ok()) {
    // No device_status view (SQLITE_ERROR): somebody else's file, not a transient failure.
    const Code code = st.code() == Code::kInternal ? Code::kFailedPrecondition : st.code();
    return Status(code, st.message() + " (is this an outpost-gateway database?)");
  }
  std::unordered_map<std::string, Row> rows;
  while (stmt.Step(&st)) {
    Row r;
    r.readings = stmt.Int(1);
    r.seq_gaps = stmt.Int(2);
    r.boot = stmt.Int(3);
    r.last_seq = stmt.Int(4);
    rows[stmt.Text(0)] = r;
  }
  if (!st.ok()) return st;

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
