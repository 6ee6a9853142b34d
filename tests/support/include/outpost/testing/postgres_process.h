// PostgresProcess: a throwaway PostgreSQL server for integration tests. initdb into a private
// temp dir, `postgres` on a free 127.0.0.1 port (Unix socket in the temp dir too), one database
// created, everything stopped and deleted on destruction.
//
//   OUTPOST_ASSERT_OK_AND_ASSIGN(auto pg, PostgresProcess::Start());
//   std::string url = pg->uri();  // postgresql://postgres@127.0.0.1:PORT/outpost
// Most tests need no server of their own: FreshPostgresDatabase (below) gives a database on the
// shared one.
//
// PostgreSQL refuses to run as root: when the effective uid is 0, initdb and postgres run as the
// `postgres` system user (setpriv), and the temp dir is chowned to it. Binaries: the newest
// /usr/lib/postgresql/*/bin unless `bin_dir` is set. Durability is off (fsync=off): tests
// measure behaviour, not disks.
// Ownership: owns the server and the temp dir. Thread: not thread-safe; use from one thread.
// Errors: Start returns kUnavailable (no binaries, initdb failed, the server did not accept
//   connections within start_timeout; the message carries the log's tail).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/testing/child_process.h"
#include "outpost/testing/temp_dir.h"

namespace outpost::testing {

struct PostgresOptions {
  std::string bin_dir;  // empty: the newest /usr/lib/postgresql/*/bin
  std::string database = "outpost";
  std::vector<std::string> extra_settings;  // "name=value", passed as -c name=value
  bool durable = false;                     // false: fsync=off, synchronous_commit=off
  std::chrono::milliseconds start_timeout{60'000};
};

class PostgresProcess {
 public:
  static Result<std::unique_ptr<PostgresProcess>> Start(PostgresOptions options = {});
  ~PostgresProcess();
  PostgresProcess(const PostgresProcess&) = delete;
  PostgresProcess& operator=(const PostgresProcess&) = delete;

  std::uint16_t port() const { return port_; }
  // libpq URI of the created database (trust authentication, user "postgres").
  std::string uri() const;
  // The same server, another database (created with CreateDatabase).
  std::string uri(const std::string& database) const;
  Status CreateDatabase(const std::string& name);
  const std::string& dir() const { return dir_.path(); }
  std::string log() const;
  bool running();
  // SIGINT (fast shutdown: clients are disconnected) and wait; SIGKILL after 10 s.
  Status Stop();
  // Starts the server again on the same port and data directory (stops it first if running).
  Status Restart();

  // The newest /usr/lib/postgresql/*/bin that has `postgres`, or "" when none.
  static std::string FindBinDir();

 private:
  explicit PostgresProcess(PostgresOptions options) : options_(std::move(options)) {}
  Status InitDb();
  Status Launch();
  // argv prefix that runs a PostgreSQL binary as the right user.
  std::vector<std::string> As(const std::string& program) const;

  PostgresOptions options_;
  TempDir dir_{"outpost-postgres"};
  std::uint16_t port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

// The test process's one throwaway PostgreSQL server (default options), started on first use and
// stopped at exit; tests share it and each takes a database of its own:
//   OUTPOST_ASSERT_OK_AND_ASSIGN(std::string uri, FreshPostgresDatabase("uplink"));
// A failed start is remembered: every later call returns the same error at once (no second wait).
// Thread: call from the test thread.
Result<PostgresProcess*> SharedPostgres();
// Creates "<prefix>_<n>" (n counts up within the process) on SharedPostgres(); returns its URI.
Result<std::string> FreshPostgresDatabase(std::string_view prefix);

}  // namespace outpost::testing
