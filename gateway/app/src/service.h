// Service: the gateway's side of the service manager's protocol (libs/systemd; the unit is
// packaging/systemd/outpost-gateway.service, docs/deployment.md "Services"). READY=1 once the
// config is valid, the database open and the broker acknowledged the subscription (the first
// SUBACK); RELOADING=1 .. READY=1 around a reload; STOPPING=1 when the drain begins; STATUS=
// lines along the way; and WATCHDOG=1 at half of WATCHDOG_USEC while the store writer's loop
// makes progress (systemd::WatchdogPolicy), withheld while one of its operations hangs.
// Without NOTIFY_SOCKET every call does nothing.
// Ownership: borrows `io` and `clock`, which outlive it. Thread: the event loop (io's thread).
#pragma once

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/base/clock.h"
#include "outpost/systemd/notifier.h"
#include "outpost/systemd/watchdog.h"

namespace outpost::gateway::app {

class Service {
 public:
  // Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID; a bad value is logged and turns that
  // part off (the gateway still runs outside a service manager).
  Service(asio::io_context& io, const Clock& clock);
  ~Service();

  // The subscription's SUBACK: READY=1 on the first one that grants every filter (later ones,
  // after a reconnect, only update STATUS). A refused filter is logged and withholds READY=1,
  // so a start that never gets its subscription fails by the unit's start timeout.
  void OnSubscribed(const std::vector<std::uint8_t>& codes, std::string_view status);
  void Reloading();
  // After a reload, whatever its outcome (a refused reload keeps the running config).
  void Reloaded(std::string_view status);
  void Stopping();
  bool ready() const { return ready_; }

  // Pings while `progress` shows the writer's loop turning; no-op without a watchdog.
  void StartWatchdog(std::function<systemd::LoopProgress()> progress);
  void StopWatchdog();
  std::int64_t watchdog_interval_us() const { return watchdog_usec_; }

 private:
  void Send(const std::string& state);
  void ScheduleWatchdog();

  asio::io_context& io_;
  const Clock& clock_;
  std::unique_ptr<systemd::Notifier> notifier_;
  std::int64_t watchdog_usec_ = 0;
  std::optional<systemd::WatchdogPolicy> policy_;
  std::function<systemd::LoopProgress()> progress_;
  std::unique_ptr<asio::steady_timer> timer_;
  bool ready_ = false;
  bool stopping_ = false;
  bool withholding_ = false;  // the last check withheld the ping (logged once per stall)
};

// Test-only fault injection for the store writer (Writer::Options::before_write): with
// OUTPOST_FAULT_STALL_WRITE=<path> set, each store write first checks <path>; when it exists
// (a FIFO the test made) the write blocks until the test opens the FIFO for writing and closes
// it, as a hung fsync would. Empty (no hook) when the variable is unset.
std::function<void()> StallWriteFaultFromEnvironment();

}  // namespace outpost::gateway::app
