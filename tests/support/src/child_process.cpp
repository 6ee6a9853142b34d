#include "outpost/testing/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "outpost/testing/wait_until.h"

extern char** environ;

namespace outpost::testing {

Result<std::unique_ptr<ChildProcess>> ChildProcess::Start(ChildProcessOptions options) {
  if (options.argv.empty()) return InvalidArgument("ChildProcess: empty argv");
  if (options.log_path.empty()) return InvalidArgument("ChildProcess: log_path is required");

  // Everything the child needs is built before fork(): only async-signal-safe calls after it.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    std::string key = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto& [k, v] : options.env) replaced = replaced || k == key;
    if (!replaced) env_strings.push_back(std::move(entry));
  }
  for (const auto& [k, v] : options.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<char*> argv;
  for (auto& s : options.argv) argv.push_back(s.data());
  argv.push_back(nullptr);
  // A cross-compiled test runs under qemu-user, which cannot exec another target binary (no
  // binfmt): the kernel refuses it with ENOEXEC. CMake passes the emulator command
  // (OUTPOST_TEST_EMULATOR, words separated by spaces) so such a program runs through it; host
  // programs (mosquitto, bash) still exec directly.
  std::vector<std::string> emulator_words;
  if (const char* emu = std::getenv("OUTPOST_TEST_EMULATOR"); emu != nullptr) {
    std::istringstream words(emu);
    for (std::string w; words >> w;) emulator_words.push_back(w);
  }
  std::vector<char*> emulated_argv;
  if (!emulator_words.empty()) {
    for (auto& w : emulator_words) emulated_argv.push_back(w.data());
    for (char* a : argv) emulated_argv.push_back(a);  // ends with argv's nullptr
  }

  const int log_fd =
      ::open(options.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return Unavailable("ChildProcess: open " + options.log_path + ": " + std::strerror(errno));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(log_fd);
    return Unavailable(std::string("ChildProcess: fork: ") + std::strerror(err));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    const char* in = options.stdin_path.empty() ? "/dev/null" : options.stdin_path.c_str();
    const int in_fd = ::open(in, O_RDONLY);
    if (in_fd < 0) ::_exit(127);
    ::dup2(in_fd, STDIN_FILENO);
    if (!options.working_dir.empty() && ::chdir(options.working_dir.c_str()) != 0) ::_exit(127);
    if (std::strchr(argv[0], '/') != nullptr) {
      ::execve(argv[0], argv.data(), envp.data());
    } else {
      ::execvpe(argv[0], argv.data(), envp.data());
    }
    if (errno == ENOEXEC && !emulated_argv.empty()) {
      ::execvpe(emulated_argv[0], emulated_argv.data(), envp.data());
    }
    const char msg[] = "ChildProcess: exec failed\n";
    [[maybe_unused]] ssize_t w = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    ::_exit(127);
  }
  ::close(log_fd);
  std::unique_ptr<ChildProcess> child(new ChildProcess(std::move(options)));
  child->pid_ = pid;
  return child;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exited_) {
    ::kill(pid_, SIGKILL);
    Reap(/*block=*/true);
  }
}

bool ChildProcess::Reap(bool block) {
  if (exited_) return true;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r != pid_) return false;
  exited_ = true;
  exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return true;
}

bool ChildProcess::Running() { return !Reap(/*block=*/false); }

void ChildProcess::Terminate() {
  if (!exited_) ::kill(pid_, SIGTERM);
}

void ChildProcess::Kill() {
  if (!exited_) ::kill(pid_, SIGKILL);
}

Status ChildProcess::Stop(int signal, std::chrono::milliseconds grace) {
  if (!exited_) ::kill(pid_, signal);
  Result<int> r = Wait(grace);
  if (r.ok()) return Status::Ok();
  Kill();
  (void)Wait(std::chrono::seconds(5));
  return r.status();
}

Result<int> ChildProcess::Wait(std::chrono::milliseconds timeout) {
  // Bounded polling for process exit (waitpid has no timeout).
  if (!WaitUntil("process exit", timeout, [&] { return Reap(/*block=*/false); })) {
    return Status(Code::kDeadlineExceeded, "ChildProcess " + options_.argv[0] + " (pid " +
                                               std::to_string(pid_) + ") still running after " +
                                               std::to_string(timeout.count()) + " ms");
  }
  return exit_status_;
}

std::string ChildProcess::log() const {
  std::ifstream in(options_.log_path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

long ProcStatusKib(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  const std::string prefix = field + ":";
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) return std::stol(line.substr(prefix.size()));
  }
  return -1;
}

}  // namespace outpost::testing
