// Pacer: a drift-free publishing schedule. Reading k (0-based) is due at start + k / rate, an
// absolute time computed from the start, so timer lateness or a slow burst never accumulates:
// a late loop publishes everything that became due and is back on schedule.
// rate == 0 means "as fast as possible": everything is due at once.
// Pure (time is an argument). Ownership: value type. Thread: not thread-safe.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

namespace outpost::bench_pub {

class Pacer {
 public:
  // `rate_per_s` >= 0; `limit`: total readings (UINT64_MAX: unbounded, e.g. with a duration).
  Pacer(double rate_per_s, std::uint64_t limit) : rate_(rate_per_s), limit_(limit) {}

  // How many readings should have been published `elapsed_ns` after the start.
  std::uint64_t DueBy(std::int64_t elapsed_ns) const {
    if (rate_ <= 0) return limit_;
    if (elapsed_ns < 0) return 0;
    double due = static_cast<double>(elapsed_ns) * rate_ / 1e9;
    if (due >= static_cast<double>(limit_)) return limit_;
    // Reading 0 is due at the start.
    return static_cast<std::uint64_t>(due) + 1 > limit_ ? limit_
                                                        : static_cast<std::uint64_t>(due) + 1;
  }
  // When reading `k` is due, in ns after the start (0 when unpaced).
  std::int64_t DueAtNs(std::uint64_t k) const {
    if (rate_ <= 0) return 0;
    // Rounded up, plus 1 ns, so that DueBy(DueAtNs(k)) > k despite floating-point rounding.
    return static_cast<std::int64_t>(std::ceil(static_cast<double>(k) * 1e9 / rate_)) + 1;
  }
  bool paced() const { return rate_ > 0; }
  std::uint64_t limit() const { return limit_; }

 private:
  double rate_;
  std::uint64_t limit_;
};

}  // namespace outpost::bench_pub
