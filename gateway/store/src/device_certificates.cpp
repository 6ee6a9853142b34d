// The device certificate registry, read on a connection of its own (device_certificates.h).
#include "outpost/gateway/store/device_certificates.h"

#include "outpost/sqlite/database.h"

namespace outpost::gateway::store {

Result<std::vector<DeviceCertificate>> ReadDeviceCertificates(const std::string& path,
                                                              int busy_timeout_ms) {
  sqlite::OpenOptions o;
  o.flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX;
  o.busy_timeout_ms = busy_timeout_ms;
  o.label = "store " + path + ": device_certificates";
  auto db = sqlite::Database::Open(path, o);
  if (!db.ok()) return db.status();
  sqlite::Statement s;
  OUTPOST_RETURN_IF_ERROR(db->Prepare(&s,
                                      "SELECT serial, device_id, sha256, not_after_unix, state, "
                                      "mode, updated_ms FROM device_certificates"));
  std::vector<DeviceCertificate> out;
  Status st;
  while (s.Step(&st)) {
    out.push_back(DeviceCertificate{s.Text(0), s.Text(1), s.Text(2), s.Int(3), s.Text(4), s.Text(5),
                                    s.Int(6)});
  }
  OUTPOST_RETURN_IF_ERROR(st);
  return out;
}

}  // namespace outpost::gateway::store
