// MosquittoProcess: a real Mosquitto broker for integration tests, on a free loopback port,
// with a generated config file and its log in a private temp dir.
//
//   MosquittoOptions options;
//   options.extra_config = {"max_inflight_messages 10"};
//   OUTPOST_ASSERT_OK_AND_ASSIGN(auto broker, MosquittoProcess::Start(options));
//   client.Connect(broker->port());
//
// The generated config has one listener on 127.0.0.1:<port>, allow_anonymous true and, when
// running as root, `user root` (else Mosquitto would drop to a user who cannot read the temp
// dir). `extra_config` lines come after the listener line, so listener settings such as
// `cafile`, `certfile`, `keyfile`, `require_certificate true` apply to it.
// Ownership: owns the process and the temp dir; the destructor kills the broker and removes it.
// Thread: not thread-safe; use from one test thread.
// Errors: Start/Restart return kUnavailable (with the broker's log) when it exits or does not
//   accept connections within `start_timeout`.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/testing/child_process.h"
#include "outpost/testing/temp_dir.h"

namespace outpost::testing {

struct MosquittoOptions {
  std::vector<std::string> extra_config;
  // Keep sessions and retained messages across Stop()/Restart() (in the temp dir).
  bool persistence = false;
  std::string binary = "/usr/sbin/mosquitto";
  std::chrono::milliseconds start_timeout{10'000};
};

class MosquittoProcess {
 public:
  static Result<std::unique_ptr<MosquittoProcess>> Start(MosquittoOptions options = {});
  ~MosquittoProcess();

  std::uint16_t port() const { return port_; }
  const std::string& dir() const { return dir_.path(); }
  std::string config_path() const { return dir_.File("mosquitto.conf"); }
  // The broker's log (all runs).
  std::string log() const;
  bool running();

  // SIGTERM and wait (a persistent broker saves its database); SIGKILL after 5 s.
  Status Stop();
  // SIGKILL: nothing saved.
  void Kill();
  // Starts again on the same port with the same config (stops it first if running).
  Status Restart();

 private:
  explicit MosquittoProcess(MosquittoOptions options) : options_(std::move(options)) {}
  Status Launch();

  MosquittoOptions options_;
  TempDir dir_{"outpost-mosquitto"};
  std::uint16_t port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

// A free TCP port on 127.0.0.1 below the ephemeral range, so a server that stops and binds it
// again is not beaten to it by an outgoing connection (bound then released; another process
// could still take it first).
Result<std::uint16_t> PickFreePort();
// Bounded polling until 127.0.0.1:port accepts a TCP connection.
Status WaitForPort(std::uint16_t port, std::chrono::milliseconds timeout);

}  // namespace outpost::testing
