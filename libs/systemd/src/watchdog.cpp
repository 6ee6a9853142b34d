#include "outpost/systemd/watchdog.h"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace outpost::systemd {
namespace {

constexpr std::size_t kMaxStatusBytes = 512;

Result<std::int64_t> PositiveInt(const char* name, const char* value) {
  const char* end = value + std::strlen(value);
  std::int64_t v = 0;
  auto [ptr, ec] = std::from_chars(value, end, v);
  if (ec != std::errc() || ptr != end || v <= 0) {
    return InvalidArgument(std::string(name) + "=\"" + std::string(value).substr(0, 32) +
                           "\" is not a positive integer");
  }
  return v;
}

}  // namespace

Result<std::int64_t> ParseWatchdogUsec(const char* watchdog_usec, const char* watchdog_pid,
                                       std::int64_t self_pid) {
  if (watchdog_usec == nullptr) return std::int64_t{0};
  if (watchdog_pid != nullptr) {
    auto pid = PositiveInt("WATCHDOG_PID", watchdog_pid);
    if (!pid.ok()) return pid.status();
    if (*pid != self_pid) return std::int64_t{0};
  }
  return PositiveInt("WATCHDOG_USEC", watchdog_usec);
}

WatchdogPolicy::WatchdogPolicy(std::int64_t interval_us)
    : period_ms_(std::max<std::int64_t>(1, interval_us / 2000)) {}

bool WatchdogPolicy::ShouldPing(std::int64_t now_ms, const LoopProgress& p) {
  const bool turned = !first_ && p.turns != last_turns_;
  first_ = false;
  last_turns_ = p.turns;
  const std::int64_t running_ms = p.busy ? now_ms - p.busy_since_ms : 0;
  if (turned || !p.busy || running_ms < period_ms_) {
    stalled_ms_ = 0;
    ++pings_;
    return true;
  }
  stalled_ms_ = running_ms;
  ++withheld_;
  return false;
}

std::string StatusLine(std::string_view text) {
  std::string out(text.substr(0, kMaxStatusBytes));
  std::replace(out.begin(), out.end(), '\n', ' ');
  return "STATUS=" + out;
}

}  // namespace outpost::systemd
