// The device certificate registry in the store file (table device_certificates, schema 8),
// which outpost-provision writes and the gateway only reads: docs/formats/store.md.
// ReadDeviceCertificates opens its own read-only connection (no writer lock; WAL lets it read
// while the Store writes), reads every row and closes it: for the hourly days-left check.
// Thread: any (no shared state). Errors: kUnavailable (no file, busy, I/O), kInternal (no such
// table: a schema older than 8), with the file's name.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "outpost/base/status.h"

namespace outpost::gateway::store {

struct DeviceCertificate {
  std::string serial, device_id, sha256;
  std::int64_t not_after_unix = 0;
  std::string state;  // as the registry has it: active, revoked, pending
  std::string mode;   // native, seed
  std::int64_t updated_ms = 0;
};

Result<std::vector<DeviceCertificate>> ReadDeviceCertificates(const std::string& path,
                                                              int busy_timeout_ms = 1000);

}  // namespace outpost::gateway::store
