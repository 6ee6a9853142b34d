// ChildProcess: runs a program (fork + execve) with extra environment variables, its stdout and
// stderr appended to a log file, for integration tests. The child gets SIGKILL if the test
// process dies (PR_SET_PDEATHSIG), so no stray brokers or gateways outlive a crashed test.
// Ownership: owns the child; the destructor kills (SIGKILL) and reaps it if still running.
// Thread: not thread-safe; use from one test thread.
// Errors: Start returns kInvalidArgument (empty argv), kUnavailable (fork/exec/log file failure;
//   an exec failure shows up as exit status 127 and a line in the log).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "outpost/base/status.h"

namespace outpost::testing {

struct ChildProcessOptions {
  std::vector<std::string> argv;  // argv[0] is the program path (PATH is searched if no '/')
  std::vector<std::pair<std::string, std::string>> env;  // added to (or replacing in) ours
  std::string log_path;                                  // stdout+stderr appended here; required
  std::string working_dir;                               // empty: inherit
  std::string stdin_path;                                // empty: /dev/null
};

class ChildProcess {
 public:
  static Result<std::unique_ptr<ChildProcess>> Start(ChildProcessOptions options);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // True until the child has exited and been reaped (reaps it if it has exited).
  bool Running();
  void Terminate();  // SIGTERM
  void Kill();       // SIGKILL
  // Waits (bounded polling) for exit. Returns the exit code, or 128 + signal number when killed
  // by a signal; kDeadlineExceeded when still running after `timeout`.
  Result<int> Wait(std::chrono::milliseconds timeout);
  // Sends `signal` and waits up to `grace` for the exit; past it, SIGKILL (waited for) and
  // kDeadlineExceeded: the program did not shut down cleanly.
  Status Stop(int signal, std::chrono::milliseconds grace);
  // The log file's contents so far.
  std::string log() const;
  const std::string& log_path() const { return options_.log_path; }

 private:
  explicit ChildProcess(ChildProcessOptions options) : options_(std::move(options)) {}
  bool Reap(bool block);

  ChildProcessOptions options_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int exit_status_ = 0;
};

// A memory line of /proc/<pid>/status in KiB: `field` "VmRSS" (resident now) or "VmHWM" (the
// peak); -1 when unreadable (the process is gone).
long ProcStatusKib(pid_t pid, const std::string& field);

}  // namespace outpost::testing
