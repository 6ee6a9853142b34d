// CloudProcess: the real outpost-cloud binary for integration tests and benchmarks, the one
// launcher of the suite. `Start` runs `outpost-cloud serve --listen 127.0.0.1:<port>` on a
// database and waits for its "listening" line; `RunCloudCli` runs a one-shot command (token,
// migrate, --help) to completion.
//
//   OUTPOST_ASSERT_OK_AND_ASSIGN(std::string token, CreateCloudToken(database, "gw1", dir));
//   CloudOptions options;
//   options.database = database;  // "sqlite:PATH" or a postgresql:// URI
//   OUTPOST_ASSERT_OK_AND_ASSIGN(auto cloud, CloudProcess::Start(options));
//   httplib::Client client("127.0.0.1", cloud->port());
//
// Binary: options.binary, else $OUTPOST_BINARY_DIR/cloud/outpost-cloud (set by ctest).
// Ownership: owns the server process; the destructor kills it (SIGKILL) if still running. Logs go
//   to options.log_dir (e.g. the test's TempDir, kept on failure) or to a temp dir of its own.
// Thread: not thread-safe; use from one test thread.
// Errors: Start/Restart return kUnavailable (the binary could not run, or it exited before
//   listening) or kDeadlineExceeded (no "listening" line within start_timeout), with the log.
//   Stop returns kInternal with the log when the exit was not clean (status != 0).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/testing/child_process.h"
#include "outpost/testing/temp_dir.h"

namespace outpost::testing {

// $OUTPOST_BINARY_DIR/cloud/outpost-cloud (./cloud/outpost-cloud when unset).
std::string DefaultCloudBinary();

struct CloudOptions {
  std::string binary;                   // empty: DefaultCloudBinary()
  std::string database;                 // --database; required
  std::vector<std::string> extra_args;  // appended to `serve ...` (e.g. "--threads", "4")
  std::uint16_t port = 0;               // 0: a port the cloud picks (127.0.0.1:0)
  std::string log_dir;                  // serve-N.log here; empty: a temp dir of its own
  std::chrono::milliseconds start_timeout{30'000};
};

class CloudProcess {
 public:
  static Result<std::unique_ptr<CloudProcess>> Start(CloudOptions options);
  ~CloudProcess();
  CloudProcess(const CloudProcess&) = delete;
  CloudProcess& operator=(const CloudProcess&) = delete;

  // The port it listens on (the one it was given, or the one it picked).
  std::uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // The server's process id (-1 when not started), e.g. to read /proc/<pid>/status.
  pid_t pid() const { return process_ ? process_->pid() : -1; }
  // The log of the current (latest) run.
  std::string log() const;
  bool Running();
  // SIGTERM and wait up to `grace` for exit status 0; SIGKILL past it.
  Status Stop(std::chrono::milliseconds grace = std::chrono::seconds(20));
  // Starts again on the same port and database (stops it first if running).
  Status Restart();

 private:
  explicit CloudProcess(CloudOptions options);
  Status Launch();

  CloudOptions options_;
  std::optional<TempDir> own_log_dir_;
  std::uint16_t port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

struct CloudCliRun {
  int exit_code = 0;
  std::string output;  // stdout and stderr
};
// Runs `outpost-cloud ARGS...` to completion (bounded by `timeout`), its output in a new
// cli-N.log in `log_dir`. Errors: kUnavailable (could not run), kDeadlineExceeded (still running
// at `timeout`; killed). A non-zero exit is not an error: it is in exit_code.
Result<CloudCliRun> RunCloudCli(const std::vector<std::string>& args, const std::string& log_dir,
                                const std::string& binary = "",
                                std::chrono::milliseconds timeout = std::chrono::seconds(30));
// `outpost-cloud token create --gateway GATEWAY --database DATABASE [--admin]`: the token it
// printed (opt_ and 64 hex digits). Errors: kInternal (non-zero exit or no token, with the output).
Result<std::string> CreateCloudToken(const std::string& database, const std::string& gateway,
                                     const std::string& log_dir, bool admin = false,
                                     const std::string& binary = "");

}  // namespace outpost::testing
