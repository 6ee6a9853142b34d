#include "outpost/gateway/app/system_stats.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace outpost::gateway::app {

double MemoryUsagePercent() {
  std::FILE* f = std::fopen("/proc/meminfo", "r");
  if (!f) return -1;
  char line[256];
  long long total = -1, available = -1;
  while (std::fgets(line, sizeof line, f)) {
    std::sscanf(line, "MemTotal: %lld kB", &total);
    std::sscanf(line, "MemAvailable: %lld kB", &available);
  }
  std::fclose(f);
  if (total <= 0 || available < 0) return -1;
  return 100.0 * static_cast<double>(total - available) / static_cast<double>(total);
}

std::int64_t ProcessRssBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return -1;
  long long pages_total = 0, pages_resident = 0;
  int n = std::fscanf(f, "%lld %lld", &pages_total, &pages_resident);
  std::fclose(f);
  if (n != 2) return -1;
  return pages_resident * sysconf(_SC_PAGESIZE);
}

double CpuUsage::Sample() {
  std::FILE* f = std::fopen("/proc/stat", "r");
  if (!f) return -1;
  unsigned long long v[8] = {};
  int n = std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                      &v[4], &v[5], &v[6], &v[7]);
  std::fclose(f);
  if (n < 4) return -1;
  std::uint64_t total = 0;
  for (unsigned long long x : v) total += x;
  std::uint64_t idle = v[3] + v[4];  // idle + iowait
  double pct = -1;
  if (last_total_ != 0 && total > last_total_) {
    pct = 100.0 *
          (1.0 - static_cast<double>(idle - last_idle_) / static_cast<double>(total - last_total_));
  }
  last_total_ = total;
  last_idle_ = idle;
  return pct;
}

std::int64_t DiskFreeBytes(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  struct statvfs fs {};
  if (::statvfs(dir.c_str(), &fs) != 0) return -1;
  return static_cast<std::int64_t>(fs.f_bavail) * static_cast<std::int64_t>(fs.f_frsize);
}

}  // namespace outpost::gateway::app
