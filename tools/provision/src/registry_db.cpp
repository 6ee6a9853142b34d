// The registry's copy in the gateway's database (registry_db.h).
#include "outpost/provision/registry_db.h"

#include <sys/stat.h>

#include <chrono>
#include <map>
#include <sstream>
#include <tuple>
#include <vector>

#include "outpost/base/file.h"
#include "outpost/provision/pki.h"
#include "outpost/provision/provisioner.h"
#include "outpost/sqlite/database.h"

namespace outpost::provision {
namespace {

// "OPST", the gateway store's application_id (gateway/store/src/open.cpp).
constexpr std::int64_t kStoreApplicationId = 0x4F505354;

struct Row {
  std::string device_id, sha256, state, mode;
  std::int64_t not_after_unix = 0;
  bool operator==(const Row& o) const {
    return std::tie(device_id, sha256, state, mode, not_after_unix) ==
           std::tie(o.device_id, o.sha256, o.state, o.mode, o.not_after_unix);
  }
};

// devices.tsv by serial (ReadRegistry: kDataLoss for a malformed line or an unknown state).
Result<std::map<std::string, Row>> ReadRows(const std::string& path, int* lines) {
  auto records = ReadRegistry(path);
  if (!records.ok()) return records.status();
  std::map<std::string, Row> out;
  for (const DeviceRecord& r : *records) {
    out[r.serial_hex] =
        Row{r.id, r.sha256, StateName(r), r.seed ? "seed" : "native", r.not_after_unix};
    ++*lines;
  }
  return out;
}

}  // namespace

Result<RegistrySyncStats> SyncRegistryToGatewayDb(const std::string& db_path,
                                                  const std::string& tsv_path,
                                                  std::int64_t now_ms) {
  RegistrySyncStats stats;
  auto rows = ReadRows(tsv_path, &stats.rows);
  if (!rows.ok()) return rows.status();
  struct stat st {};
  if (::stat(db_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Unavailable("the gateway database " + db_path +
                       " does not exist: start outpost-gateway once with storage.path " + db_path +
                       " (it creates it), or give the right path (--gateway-db)");
  }
  // No SQLITE_OPEN_CREATE: a wrong path must not leave an empty database behind. The journal
  // mode stays the store's (WAL). As root, SQLite gives a -wal or -shm file it creates the
  // database file's owner, so the gateway's user can still write them
  // (docs/security.md#the-registry-in-the-gateways-database).
  sqlite::OpenOptions o;
  o.flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  o.busy_timeout_ms = kGatewayDbBusyTimeoutMs;
  o.label = "gateway database " + db_path;
  auto db = sqlite::Database::Open(db_path, o);
  if (!db.ok()) return db.status();
  auto app_id = db->QueryInt("PRAGMA application_id");
  if (!app_id.ok()) return app_id.status();
  auto version = db->QueryInt("PRAGMA user_version");
  if (!version.ok()) return version.status();
  if (*app_id != kStoreApplicationId) {
    return FailedPrecondition("the gateway database " + db_path +
                              " is not an Outpost gateway store (yet): start outpost-gateway "
                              "once with storage.path " +
                              db_path + ", or give the right path (--gateway-db)");
  }
  if (*version < kGatewayDbMinSchema) {
    return FailedPrecondition(
        "the gateway database " + db_path + " has schema version " + std::to_string(*version) +
        ", older than " + std::to_string(kGatewayDbMinSchema) +
        " (no device_certificates table): upgrade outpost-gateway and start it once so it "
        "migrates the file");
  }
  auto tx = sqlite::Transaction::Begin(db->get(), sqlite::Transaction::Mode::kImmediate,
                                       o.label + ": sync");
  if (!tx.ok()) return tx.status();
  std::map<std::string, Row> in_db;
  {
    sqlite::Statement sel;
    OUTPOST_RETURN_IF_ERROR(db->Prepare(
        &sel,
        "SELECT serial, device_id, sha256, not_after_unix, state, mode FROM device_certificates"));
    Status s;
    while (sel.Step(&s)) {
      in_db[sel.Text(0)] = Row{sel.Text(1), sel.Text(2), sel.Text(4), sel.Text(5), sel.Int(3)};
    }
    OUTPOST_RETURN_IF_ERROR(s);
  }
  sqlite::Statement up, del;
  OUTPOST_RETURN_IF_ERROR(db->Prepare(
      &up,
      "INSERT INTO device_certificates(serial, device_id, sha256, not_after_unix, state, mode, "
      "updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(serial) DO UPDATE SET "
      "device_id = excluded.device_id, sha256 = excluded.sha256, not_after_unix = "
      "excluded.not_after_unix, state = excluded.state, mode = excluded.mode, updated_ms = "
      "excluded.updated_ms"));
  OUTPOST_RETURN_IF_ERROR(db->Prepare(&del, "DELETE FROM device_certificates WHERE serial = ?1"));
  for (const auto& [serial, row] : *rows) {
    auto it = in_db.find(serial);
    if (it != in_db.end() && it->second == row) continue;  // unchanged: keeps its updated_ms
    OUTPOST_RETURN_IF_ERROR(up.Reset()
                                .Bind(1, serial)
                                .Bind(2, row.device_id)
                                .Bind(3, row.sha256)
                                .Bind(4, row.not_after_unix)
                                .Bind(5, row.state)
                                .Bind(6, row.mode)
                                .Bind(7, now_ms)
                                .Run());
    ++stats.written;
  }
  for (const auto& [serial, row] : in_db) {
    if (rows->count(serial) != 0) continue;
    OUTPOST_RETURN_IF_ERROR(del.Reset().Bind(1, serial).Run());
    ++stats.deleted;
  }
  OUTPOST_RETURN_IF_ERROR(tx->Commit());
  return stats;
}

Result<std::string> SiteGatewayDb(const std::string& dir) {
  auto text = ReadFile(dir + "/site.conf");
  if (!text.ok()) return NotFound(dir + "/site.conf: " + text.status().message());
  std::istringstream in(*text);
  std::string line, value;
  while (std::getline(in, line)) {
    if (line.rfind("gateway_db=", 0) == 0) value = line.substr(11);
  }
  return value;
}

Status SetSiteGatewayDb(const std::string& dir, const std::string& db_path) {
  if (db_path.find('\n') != std::string::npos) {
    return InvalidArgument("--gateway-db: a path without a newline");
  }
  auto text = ReadFile(dir + "/site.conf");
  if (!text.ok()) return text.status();
  std::istringstream in(*text);
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.rfind("gateway_db=", 0) != 0) out += line + "\n";
  }
  if (!db_path.empty()) out += "gateway_db=" + db_path + "\n";
  return WriteFileAtomic(dir + "/site.conf", out, 0644);
}

void GatewayDb::Sync(const std::string& dir, std::int64_t now_unix, std::ostream& log) {
  std::string path = override_;
  if (path.empty()) {
    auto site = SiteGatewayDb(dir);
    if (site.ok()) path = *site;
  }
  if (path.empty()) return;  // provisioning for a gateway on another machine
  const auto start = std::chrono::steady_clock::now();
  auto stats = SyncRegistryToGatewayDb(path, dir + "/devices.tsv", now_unix * 1000);
  if (!stats.ok()) {
    log << "the gateway database " << path << " was not updated\n";
    if (status_.ok()) {
      status_ =
          Status(stats.status().code(), stats.status().message() + "; " + dir +
                                            "/devices.tsv was written: once fixed, copy it in with "
                                            "`outpost-provision --dir " +
                                            dir + " sync`");
    }
    return;
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  log << "gateway database " << path << ": device_certificates = devices.tsv (" << stats->rows
      << " rows, " << stats->written << " written, " << stats->deleted << " deleted, " << ms
      << " ms)\n";
}

}  // namespace outpost::provision
