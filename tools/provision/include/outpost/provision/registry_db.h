// GatewayDb: the copy of the registry (DIR/devices.tsv) in the gateway's database, the table
// `device_certificates` of its store (schema 8, docs/formats/store.md). After every registry
// write `device add` and `revoke` make the table equal to the file in one transaction; the file
// stays the source of truth (docs/security.md#the-registry-in-the-gateways-database).
// The path: the site's `gateway_db` setting (site.conf, `init --gateway-db`), or a per-command
// override; none: nothing is synced.
// Ownership: holds paths and the first error only; every Sync opens and closes its connection.
// Thread: one call at a time. Errors (kept, not returned, so the ACL and CRL are still written
// after a failed sync): kUnavailable (the database missing, busy past the timeout, I/O),
// kFailedPrecondition (not a gateway store, or a schema older than 8), kDataLoss (a malformed
// registry line).
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "outpost/base/status.h"

namespace outpost::provision {

// How long a sync waits for a running gateway's write transaction.
inline constexpr int kGatewayDbBusyTimeoutMs = 5'000;
inline constexpr int kGatewayDbMinSchema = 8;

struct RegistrySyncStats {
  int rows = 0;     // in devices.tsv
  int written = 0;  // rows inserted or changed
  int deleted = 0;  // rows no longer in the file
};

// Makes `device_certificates` in `db_path` equal to the registry file `tsv_path` in one
// transaction. `now_ms` is stored as updated_ms of the rows it writes.
Result<RegistrySyncStats> SyncRegistryToGatewayDb(const std::string& db_path,
                                                  const std::string& tsv_path, std::int64_t now_ms);

// The site's gateway_db setting ("" when unset). kNotFound when DIR/site.conf is missing.
Result<std::string> SiteGatewayDb(const std::string& dir);
// Sets (or with "" removes) it in DIR/site.conf, keeping the other settings.
Status SetSiteGatewayDb(const std::string& dir, const std::string& db_path);

class GatewayDb {
 public:
  // Overrides the site's setting for this run ("" keeps the setting).
  void set_override(std::string db_path) { override_ = std::move(db_path); }
  // Called next to every registry write: syncs DIR/devices.tsv into the database, logs the
  // outcome; the first error is kept in status() (its message names the path, what to do, and
  // that devices.tsv was written).
  void Sync(const std::string& dir, std::int64_t now_unix, std::ostream& log);
  const Status& status() const { return status_; }

 private:
  std::string override_;
  Status status_;
};

}  // namespace outpost::provision
