#include "service.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

namespace outpost::gateway::app {

Service::Service(asio::io_context& io, const Clock& clock) : io_(io), clock_(clock) {
  auto n = systemd::Notifier::FromEnvironment();
  if (!n.ok()) {
    spdlog::error("service manager notifications off: {}", n.status().message());
    n = systemd::Notifier::Open("");
  }
  notifier_ = std::move(n).value();
  if (!notifier_->enabled()) return;
  auto usec = systemd::ParseWatchdogUsec(std::getenv("WATCHDOG_USEC"), std::getenv("WATCHDOG_PID"),
                                         ::getpid());
  if (!usec.ok()) {
    spdlog::error("service watchdog off: {}", usec.status().message());
  } else {
    watchdog_usec_ = *usec;
  }
  spdlog::info(
      "service manager at {}; watchdog {}", notifier_->address(),
      watchdog_usec_ == 0 ? std::string("off") : std::to_string(watchdog_usec_ / 1000) + " ms");
}

Service::~Service() { StopWatchdog(); }

void Service::Send(const std::string& state) {
  if (Status s = notifier_->Notify(state); !s.ok()) {
    spdlog::warn("service manager: {}", s.message());
  }
}

void Service::OnSubscribed(const std::vector<std::uint8_t>& codes, std::string_view status) {
  const bool granted = !codes.empty() && std::all_of(codes.begin(), codes.end(),
                                                     [](std::uint8_t c) { return c < 0x80; });
  if (!granted) {
    spdlog::error("mqtt: the broker refused the subscription (a SUBACK code of 0x80 or more)");
    Send(systemd::StatusLine("the broker refused the subscription"));
    return;
  }
  if (ready_ || stopping_) return Send(systemd::StatusLine(status));
  ready_ = true;
  Send("READY=1\n" + systemd::StatusLine(status));
}

void Service::Reloading() {
  if (stopping_) return;
  // MONOTONIC_USEC: CLOCK_MONOTONIC, which the steady clock is on Linux (Type=notify-reload).
  Send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(clock_.steady_ms() * 1000));
}

void Service::Reloaded(std::string_view status) {
  if (stopping_) return;
  Send("READY=1\n" + systemd::StatusLine(status));
}

void Service::Stopping() {
  if (stopping_) return;
  stopping_ = true;
  Send("STOPPING=1\n" + systemd::StatusLine("draining"));
}

void Service::StartWatchdog(std::function<systemd::LoopProgress()> progress) {
  if (watchdog_usec_ == 0) return;
  progress_ = std::move(progress);
  policy_.emplace(watchdog_usec_);
  timer_ = std::make_unique<asio::steady_timer>(io_);
  // The first ping at once: the manager's interval runs from the start.
  Send("WATCHDOG=1");
  ScheduleWatchdog();
}

void Service::StopWatchdog() {
  if (timer_) timer_->cancel();
}

void Service::ScheduleWatchdog() {
  timer_->expires_after(std::chrono::milliseconds(policy_->ping_period_ms()));
  timer_->async_wait([this](const asio::error_code& ec) {
    if (ec) return;
    if (policy_->ShouldPing(clock_.steady_ms(), progress_())) {
      if (withholding_) spdlog::info("service watchdog: the store writer is making progress again");
      withholding_ = false;
      Send("WATCHDOG=1");
    } else if (!withholding_) {
      withholding_ = true;
      spdlog::error(
          "service watchdog: a store write has not returned for {} ms; withholding WATCHDOG=1 "
          "(the service manager restarts the gateway {} ms after the last ping)",
          policy_->stalled_ms(), watchdog_usec_ / 1000);
    }
    ScheduleWatchdog();
  });
}

std::function<void()> StallWriteFaultFromEnvironment() {
  const char* path = std::getenv("OUTPOST_FAULT_STALL_WRITE");
  if (path == nullptr || *path == '\0') return {};
  spdlog::warn("fault injection on: store writes stall while {} exists (OUTPOST_FAULT_STALL_WRITE)",
               path);
  return [p = std::string(path)] {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0 || !S_ISFIFO(st.st_mode)) return;
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);  // blocks until the test opens it
    if (fd < 0) return;
    char c = 0;
    while (::read(fd, &c, 1) > 0) {
    }
    ::close(fd);
  };
}

}  // namespace outpost::gateway::app
