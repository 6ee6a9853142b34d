// Notifier sends the service manager's notify datagrams (sd_notify(3): READY=1, RELOADING=1,
// STOPPING=1, WATCHDOG=1, STATUS=...) to the unix datagram socket named by $NOTIFY_SOCKET, a
// path or, starting with '@', an abstract address. Without libsystemd: the protocol is one
// datagram of newline-separated assignments.
// Ownership: owns its socket. Thread: Notify() is thread-safe (one sendto per call).
// Errors: Open() kInvalidArgument for an address that is neither a path nor abstract, or too
// long; kUnavailable when no socket can be made. Notify() kUnavailable when the send fails
// (counted; a missing manager must never stop the service).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "outpost/base/status.h"

namespace outpost::systemd {

class Notifier {
 public:
  // `address` as in $NOTIFY_SOCKET; empty: a disabled notifier whose Notify() does nothing.
  static Result<std::unique_ptr<Notifier>> Open(std::string_view address);
  // Open(getenv("NOTIFY_SOCKET")).
  static Result<std::unique_ptr<Notifier>> FromEnvironment();
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  bool enabled() const { return fd_ >= 0; }
  const std::string& address() const { return address_; }
  // Sends `state` ("READY=1", "WATCHDOG=1\nSTATUS=...") as one datagram.
  Status Notify(std::string_view state);
  std::uint64_t sent() const { return sent_; }
  std::uint64_t failed() const { return failed_; }

 private:
  Notifier() = default;
  std::string address_;
  std::string sockaddr_;  // the bytes of a struct sockaddr_un, its used length
  int fd_ = -1;
  std::atomic<std::uint64_t> sent_{0}, failed_{0};
};

}  // namespace outpost::systemd
