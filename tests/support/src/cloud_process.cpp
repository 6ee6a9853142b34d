#include "outpost/testing/cloud_process.h"

#include <atomic>
#include <cstdlib>
#include <regex>
#include <utility>

#include "outpost/testing/wait_until.h"

namespace outpost::testing {
namespace {

std::string Binary(const std::string& binary) {
  return binary.empty() ? DefaultCloudBinary() : binary;
}

}  // namespace

std::string DefaultCloudBinary() {
  const char* dir = std::getenv("OUTPOST_BINARY_DIR");
  return std::string(dir ? dir : ".") + "/cloud/outpost-cloud";
}

CloudProcess::CloudProcess(CloudOptions options) : options_(std::move(options)) {
  options_.binary = Binary(options_.binary);
  if (options_.log_dir.empty()) {
    own_log_dir_.emplace("outpost-cloud");
    options_.log_dir = own_log_dir_->path();
  }
  port_ = options_.port;
}

CloudProcess::~CloudProcess() = default;  // ChildProcess's destructor kills and reaps

Result<std::unique_ptr<CloudProcess>> CloudProcess::Start(CloudOptions options) {
  if (options.database.empty()) return InvalidArgument("CloudProcess: database is required");
  std::unique_ptr<CloudProcess> cloud(new CloudProcess(std::move(options)));
  OUTPOST_RETURN_IF_ERROR(cloud->Launch());
  return cloud;
}

Status CloudProcess::Launch() {
  ChildProcessOptions o;
  o.argv = {options_.binary, "serve",          "--listen", "127.0.0.1:" + std::to_string(port_),
            "--database",    options_.database};
  o.argv.insert(o.argv.end(), options_.extra_args.begin(), options_.extra_args.end());
  static std::atomic<int> runs{0};  // unique names: several clouds may share a log_dir
  o.log_path = options_.log_dir + "/serve-" + std::to_string(++runs) + ".log";
  auto child = ChildProcess::Start(std::move(o));
  if (!child.ok()) return child.status();
  process_ = std::move(child).value();

  const std::regex listening("outpost-cloud listening on http://127\\.0\\.0\\.1:([0-9]+)");
  std::smatch m;
  std::string log;
  const bool settled = WaitUntil("outpost-cloud listening", options_.start_timeout, [&] {
    log = process_->log();
    return std::regex_search(log, m, listening) || !process_->Running();
  });
  if (!m.empty()) {
    port_ = static_cast<std::uint16_t>(std::stoi(m[1].str()));
    return Status::Ok();
  }
  if (!settled) {
    return Status(Code::kDeadlineExceeded, "outpost-cloud did not listen within " +
                                               std::to_string(options_.start_timeout.count()) +
                                               " ms: " + log);
  }
  return Unavailable("outpost-cloud exited before listening: " + log);
}

std::string CloudProcess::log() const { return process_ ? process_->log() : ""; }

bool CloudProcess::Running() { return process_ && process_->Running(); }

Status CloudProcess::Stop(std::chrono::milliseconds grace) {
  if (!process_) return Status::Ok();
  process_->Terminate();
  Result<int> rc = process_->Wait(grace);
  if (!rc.ok()) {
    process_->Kill();
    (void)process_->Wait(std::chrono::seconds(5));
    return Internal("outpost-cloud did not exit within " + std::to_string(grace.count()) +
                    " ms of SIGTERM: " + process_->log());
  }
  if (*rc != 0) {
    return Internal("outpost-cloud exited with status " + std::to_string(*rc) + ": " +
                    process_->log());
  }
  return Status::Ok();
}

Status CloudProcess::Restart() {
  if (Running()) OUTPOST_RETURN_IF_ERROR(Stop());
  return Launch();
}

Result<CloudCliRun> RunCloudCli(const std::vector<std::string>& args, const std::string& log_dir,
                                const std::string& binary, std::chrono::milliseconds timeout) {
  static std::atomic<int> runs{0};
  ChildProcessOptions o;
  o.argv = {Binary(binary)};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.log_path = log_dir + "/cli-" + std::to_string(runs++) + ".log";
  auto child = ChildProcess::Start(std::move(o));
  if (!child.ok()) return child.status();
  Result<int> rc = (*child)->Wait(timeout);
  if (!rc.ok()) return Status(rc.status().code(), rc.status().message() + ": " + (*child)->log());
  return CloudCliRun{*rc, (*child)->log()};
}

Result<std::string> CreateCloudToken(const std::string& database, const std::string& gateway,
                                     const std::string& log_dir, bool admin,
                                     const std::string& binary) {
  std::vector<std::string> args = {"token", "create", "--gateway", gateway, "--database", database};
  if (admin) args.emplace_back("--admin");
  auto run = RunCloudCli(args, log_dir, binary);
  if (!run.ok()) return run.status();
  if (run->exit_code != 0) {
    return Internal("token create exited with " + std::to_string(run->exit_code) + ": " +
                    run->output);
  }
  std::smatch m;
  if (!std::regex_search(run->output, m, std::regex("opt_[0-9a-f]{64}"))) {
    return Internal("no token in: " + run->output);
  }
  return m.str();
}

}  // namespace outpost::testing
