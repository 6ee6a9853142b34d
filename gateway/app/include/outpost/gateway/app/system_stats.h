// Host figures for gateway/status, read from /proc (Linux). Thread: any. Errors: a figure that
// cannot be read is reported as -1.
#pragma once

#include <cstdint>
#include <string>

namespace outpost::gateway::app {

// System memory in use, percent (the seed's psutil.virtual_memory().percent).
double MemoryUsagePercent();
// Resident set size of this process, bytes.
std::int64_t ProcessRssBytes();

// Bytes free for an unprivileged writer on the file system holding the file `path` (statvfs of
// its directory).
std::int64_t DiskFreeBytes(const std::string& path);

// System CPU busy percent between successive Sample() calls (the seed's psutil.cpu_percent).
class CpuUsage {
 public:
  double Sample();

 private:
  std::uint64_t last_total_ = 0, last_idle_ = 0;
};

}  // namespace outpost::gateway::app
