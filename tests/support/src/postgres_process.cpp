#include "outpost/testing/postgres_process.h"

#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "outpost/testing/mosquitto_process.h"  // PickFreePort, WaitForPort
#include "outpost/testing/wait_until.h"

namespace outpost::testing {
namespace {

std::string Tail(const std::string& s, std::size_t n) {
  return s.size() <= n ? s : "..." + s.substr(s.size() - n);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Runs a program to completion; its output goes to `log_path`.
Status RunToCompletion(std::vector<std::string> argv, const std::string& log_path,
                       const std::string& working_dir, std::chrono::milliseconds timeout) {
  ChildProcessOptions o;
  o.argv = std::move(argv);
  o.log_path = log_path;
  o.working_dir = working_dir;
  const std::string name = o.argv.back();
  auto child = ChildProcess::Start(std::move(o));
  if (!child.ok()) return child.status();
  Result<int> rc = (*child)->Wait(timeout);
  if (!rc.ok()) return rc.status();
  if (*rc != 0) {
    return Unavailable("exit status " + std::to_string(*rc) +
                       "; log: " + Tail(ReadFile(log_path), 2000));
  }
  return Status::Ok();
}

}  // namespace

std::string PostgresProcess::FindBinDir() {
  namespace fs = std::filesystem;
  std::error_code ec;
  int best = -1;
  std::string best_dir;
  for (const auto& e : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string name = e.path().filename().string();
    int version = 0;
    try {
      version = std::stoi(name);
    } catch (...) {
      continue;
    }
    if (version > best && fs::exists(e.path() / "bin" / "postgres", ec)) {
      best = version;
      best_dir = (e.path() / "bin").string();
    }
  }
  return best_dir;
}

std::vector<std::string> PostgresProcess::As(const std::string& program) const {
  const std::string path = options_.bin_dir + "/" + program;
  if (::geteuid() != 0) return {path};
  // setpriv execs the program directly (no intermediate process), so signals reach it.
  return {"/usr/bin/setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", path};
}

Result<std::unique_ptr<PostgresProcess>> PostgresProcess::Start(PostgresOptions options) {
  if (options.bin_dir.empty()) options.bin_dir = FindBinDir();
  if (options.bin_dir.empty()) {
    return Unavailable(
        "PostgresProcess: no /usr/lib/postgresql/*/bin/postgres (install postgresql)");
  }
  std::unique_ptr<PostgresProcess> pg(new PostgresProcess(std::move(options)));
  if (::geteuid() == 0) {
    const passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) return Unavailable("PostgresProcess: running as root and no postgres user");
    if (::chown(pg->dir().c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      return Unavailable("PostgresProcess: chown " + pg->dir() + " to postgres failed");
    }
  }
  OUTPOST_RETURN_IF_ERROR(pg->InitDb());
  Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {  // retry a lost race for the free port
    Result<std::uint16_t> port = PickFreePort();
    if (!port.ok()) return port.status();
    pg->port_ = *port;
    last = pg->Launch();
    if (last.ok()) break;
    if (last.message().find("already in use") == std::string::npos) return last;
  }
  if (!last.ok()) return last;
  OUTPOST_RETURN_IF_ERROR(pg->CreateDatabase(pg->options_.database));
  return pg;
}

Status PostgresProcess::InitDb() {
  std::vector<std::string> argv = As("initdb");
  for (const char* a : {"-D", "", "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C",
                        "--no-sync", "--no-instructions"}) {
    argv.emplace_back(a);
  }
  argv[argv.size() - 10] = dir_.File("data");
  Status s = RunToCompletion(argv, dir_.File("initdb.log"), dir_.path(),
                             std::chrono::milliseconds(120'000));
  if (!s.ok()) return Unavailable("PostgresProcess: initdb: " + s.message());
  return Status::Ok();
}

Status PostgresProcess::Launch() {
  std::vector<std::string> argv = As("postgres");
  auto add = [&](const std::string& a) { argv.push_back(a); };
  add("-D");
  add(dir_.File("data"));
  add("-p");
  add(std::to_string(port_));
  add("-k");
  add(dir_.path());
  add("-c");
  add("listen_addresses=127.0.0.1");
  add("-c");
  add("max_connections=100");
  if (!options_.durable) {
    for (const char* setting : {"fsync=off", "synchronous_commit=off", "full_page_writes=off"}) {
      add("-c");
      add(setting);
    }
  }
  for (const auto& s : options_.extra_settings) {
    add("-c");
    add(s);
  }
  ChildProcessOptions o;
  o.argv = std::move(argv);
  o.log_path = dir_.File("postgres.log");
  o.working_dir = dir_.path();
  auto started = ChildProcess::Start(std::move(o));
  if (!started.ok()) return started.status();
  process_ = std::move(started).value();

  // Accepting TCP is not enough (the server answers "starting up" for a while): wait until
  // pg_isready says it accepts connections.
  bool ready = false;
  (void)WaitUntil("postgres ready", options_.start_timeout, [&] {
    if (!process_->Running()) return true;
    ready = WaitForPort(port_, std::chrono::milliseconds(0)).ok() &&
            RunToCompletion({options_.bin_dir + "/pg_isready", "-q", "-h", "127.0.0.1", "-p",
                             std::to_string(port_), "-U", "postgres"},
                            dir_.File("pg_isready.log"), "", std::chrono::milliseconds(10'000))
                .ok();
    return ready;
  });
  if (ready) return Status::Ok();
  if (!process_->Running()) {
    process_.reset();
    return Unavailable("postgres exited during start on port " + std::to_string(port_) +
                       "; log: " + Tail(log(), 2000));
  }
  return Unavailable("postgres not ready on port " + std::to_string(port_) +
                     "; log: " + Tail(log(), 2000));
}

Status PostgresProcess::CreateDatabase(const std::string& name) {
  Status s = RunToCompletion({options_.bin_dir + "/createdb", "-h", "127.0.0.1", "-p",
                              std::to_string(port_), "-U", "postgres", name},
                             dir_.File("createdb.log"), "", std::chrono::milliseconds(30'000));
  if (!s.ok()) return Unavailable("PostgresProcess: createdb " + name + ": " + s.message());
  return Status::Ok();
}

std::string PostgresProcess::uri() const { return uri(options_.database); }

std::string PostgresProcess::uri(const std::string& database) const {
  return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + database;
}

std::string PostgresProcess::log() const { return ReadFile(dir_.File("postgres.log")); }

bool PostgresProcess::running() { return process_ && process_->Running(); }

Status PostgresProcess::Stop() {
  if (!process_) return Status::Ok();
  // SIGINT is PostgreSQL's "fast" shutdown: it disconnects clients (SIGTERM would wait for
  // them) and still shuts down cleanly.
  Status s = process_->Stop(SIGINT, std::chrono::seconds(10));
  process_.reset();
  return s;
}

Status PostgresProcess::Restart() {
  if (process_) OUTPOST_RETURN_IF_ERROR(Stop());
  return Launch();
}

PostgresProcess::~PostgresProcess() { (void)Stop(); }

Result<PostgresProcess*> SharedPostgres() {
  static std::unique_ptr<PostgresProcess> server;
  static Status failed;
  if (!server && failed.ok()) {
    auto started = PostgresProcess::Start();
    if (started.ok()) {
      server = std::move(started).value();
    } else {
      failed = Unavailable("the shared PostgreSQL did not start: " + started.status().message());
    }
  }
  if (!server) return failed;
  return server.get();
}

Result<std::string> FreshPostgresDatabase(std::string_view prefix) {
  static int databases = 0;
  auto server = SharedPostgres();
  if (!server.ok()) return server.status();
  const std::string name = std::string(prefix) + "_" + std::to_string(databases++);
  OUTPOST_RETURN_IF_ERROR((*server)->CreateDatabase(name));
  return (*server)->uri(name);
}

}  // namespace outpost::testing
