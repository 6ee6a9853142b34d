// VerifyStore: checks a run against the gateway's SQLite store (read-only, after the run):
// every device that had readings acknowledged by the broker is in the registry, has at least as
// many readings stored as were acknowledged, has stored the last acknowledged seq of its current
// boot, and has zero seq gaps. Schema: docs/formats/store.md (the `device_status` view).
// Thread: any. Errors: kUnavailable when the file cannot be opened or queried (the gateway may
//   still hold an exclusive lock; stop it first).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/node/fleet/fleet.h"

namespace outpost::node::fleet {

struct VerifyReport {
  std::uint32_t devices_checked = 0;
  std::uint32_t devices_missing = 0;  // acknowledged readings, but not in the registry
  std::uint32_t devices_short = 0;    // fewer stored than acknowledged, or last seq missing
  std::uint32_t devices_with_gaps = 0;
  std::uint64_t acked = 0, stored = 0, seq_gaps = 0;
  std::vector<std::string> problems;  // the first few, for the summary
  bool ok() const { return devices_missing == 0 && devices_short == 0 && devices_with_gaps == 0; }
};

Result<VerifyReport> VerifyStore(const std::string& db_path,
                                 const std::vector<DeviceRecord>& records);

}  // namespace outpost::node::fleet
