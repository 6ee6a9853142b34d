// The service manager's watchdog (systemd.service(5) WatchdogSec=, sd_watchdog_enabled(3)):
// the settings it passes in the environment, and the policy that decides, at each ping period,
// whether the service is healthy enough to send WATCHDOG=1. Pure: no I/O, time is an input.
// Thread: WatchdogPolicy is owned by one thread (the gateway's event loop).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "outpost/base/status.h"

namespace outpost::systemd {

// The watchdog interval in microseconds from WATCHDOG_USEC and WATCHDOG_PID (either may be
// null: unset). 0 = no watchdog for this process: WATCHDOG_USEC unset, or WATCHDOG_PID names
// another process (a child that inherited the environment). kInvalidArgument for a value that
// is not a positive decimal integer (the message names the variable).
Result<std::int64_t> ParseWatchdogUsec(const char* watchdog_usec, const char* watchdog_pid,
                                       std::int64_t self_pid);

// What the store writer's commit loop is doing, as its owner thread last published it.
struct LoopProgress {
  std::uint64_t turns = 0;         // operations finished (commits, failed attempts, calls)
  bool busy = false;               // inside an operation now (false: waiting for work)
  std::int64_t busy_since_ms = 0;  // steady ms at which that operation started
};

// Pings at half the interval (as sd_watchdog_enabled(3) advises), and only while the loop
// makes progress: it finished an operation since the last check, is waiting for work, or its
// current operation is younger than a ping period. An operation that has run for a whole ping
// period (a hung fsync, a lock never released) withholds the ping, and the service manager
// kills the service one interval after the last ping it got. A loop that fails and retries
// (full disk, a busy database) is turning, not stalled: its own policy handles that.
class WatchdogPolicy {
 public:
  explicit WatchdogPolicy(std::int64_t interval_us);
  std::int64_t ping_period_ms() const { return period_ms_; }
  // Called once per ping period; true: send WATCHDOG=1.
  bool ShouldPing(std::int64_t now_ms, const LoopProgress& p);
  // How long the current operation has run when the last check withheld the ping, else 0.
  std::int64_t stalled_ms() const { return stalled_ms_; }
  std::uint64_t pings() const { return pings_; }
  std::uint64_t withheld() const { return withheld_; }

 private:
  std::int64_t period_ms_;
  bool first_ = true;
  std::uint64_t last_turns_ = 0;
  std::int64_t stalled_ms_ = 0;
  std::uint64_t pings_ = 0, withheld_ = 0;
};

// A STATUS=... line: the text on one line (newlines become spaces), at most 512 bytes.
std::string StatusLine(std::string_view text);

}  // namespace outpost::systemd
