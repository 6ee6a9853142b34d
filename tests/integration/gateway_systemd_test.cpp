// outpost-gateway under a service manager, without one: the test owns NOTIFY_SOCKET (a real
// unix datagram socket) and reads what the real binary tells it. READY=1 comes only once the
// broker acknowledged the subscription; RELOADING=1 .. READY=1 around SIGHUP and around the
// MQTT `reload` command; STOPPING=1 on SIGTERM; WATCHDOG=1 at half of WATCHDOG_USEC, withheld while
// a store write hangs (the OUTPOST_FAULT_STALL_WRITE fault hook, service.h) and resumed when it
// returns. Synchronisation: datagrams are awaited with a deadline (poll), log lines with WaitUntil.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <string>

#include "gateway_harness.h"
#include "outpost/testing/cloud_process.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/wait_until.h"

namespace outpost::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

// The service manager's end: a bound datagram socket at a path.
class NotifySocket {
 public:
  explicit NotifySocket(std::string path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path_.c_str(), std::min(path_.size() + 1, sizeof sa.sun_path));
    bound_ = path_.size() < sizeof sa.sun_path &&
             ::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  }
  ~NotifySocket() {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  bool bound() const { return bound_; }
  const std::string& path() const { return path_; }

  // The next datagram within `timeout`, or kDeadlineExceeded.
  Result<std::string> Receive(milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) {
      return Status(Code::kDeadlineExceeded,
                    "no datagram within " + std::to_string(timeout.count()) + " ms");
    }
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) return Unavailable(std::string("recv: ") + std::strerror(errno));
    return std::string(buf, static_cast<std::size_t>(n));
  }
  // Datagrams until one contains `needle` (returned), all within `timeout`.
  Result<std::string> WaitFor(const std::string& needle, milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      const auto left =
          std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      auto d = Receive(left);
      if (!d.ok()) break;
      seen_ += *d + "|";
      if (d->find(needle) != std::string::npos) return d;
    }
    return Status(
        Code::kDeadlineExceeded,
        "no \"" + needle + "\" within " + std::to_string(timeout.count()) + " ms; seen: " + seen_);
  }
  // Everything already queued, without waiting.
  std::string Drain() {
    std::string all;
    while (true) {
      auto d = Receive(milliseconds(0));
      if (!d.ok()) return all;
      all += *d + "|";
    }
  }

 private:
  std::string path_;
  std::string seen_;
  int fd_ = -1;
  bool bound_ = false;
};

class GatewaySystemdTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure()) {
      h_.dir().Keep();
      std::printf("kept %s\ngateway log:\n%s\n", h_.dir().path().c_str(), h_.gateway_log().c_str());
    }
  }
  GatewayHarness h_;
  NotifySocket manager_{h_.dir().File("notify")};
};

TEST_F(GatewaySystemdTest, ready_only_after_the_suback_reloading_and_stopping) {
  ASSERT_TRUE(manager_.bound());
  // The first run's log file exists before the start, so JOURNAL_STREAM can name it, as the
  // service manager names the journal's stream.
  const std::string log = h_.dir().File("gateway-1.log");
  { std::ofstream create(log); }
  struct stat st {};
  ASSERT_EQ(::stat(log.c_str(), &st), 0);
  HarnessOptions o;
  o.gateway_env = {{"NOTIFY_SOCKET", manager_.path()},
                   {"JOURNAL_STREAM", std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino)}};
  OUTPOST_ASSERT_OK(h_.Start(o));
  auto ready = manager_.WaitFor("READY=1", std::chrono::seconds(10));
  OUTPOST_ASSERT_OK(ready);
  EXPECT_NE(ready->find("STATUS=running as gw_test, subscribed at 127.0.0.1:"), std::string::npos)
      << *ready;

  // Journal lines: the syslog priority first, no timestamp of our own.
  EXPECT_NE(h_.gateway_log().find("<6>info outpost-gateway "), std::string::npos);
  EXPECT_NE(h_.gateway_log().find("\n<4>warning first start: created the user"), std::string::npos)
      << h_.gateway_log();

  // A reload (SIGHUP): RELOADING=1, then READY=1 with its summary.
  ASSERT_EQ(::kill(h_.gateway_pid(), SIGHUP), 0);
  auto reloading = manager_.WaitFor("RELOADING=1", std::chrono::seconds(10));
  OUTPOST_ASSERT_OK(reloading);
  EXPECT_NE(reloading->find("MONOTONIC_USEC="), std::string::npos) << *reloading;
  auto reloaded = manager_.WaitFor("READY=1", std::chrono::seconds(10));
  OUTPOST_ASSERT_OK(reloaded);
  EXPECT_NE(reloaded->find("STATUS=reloaded "), std::string::npos) << *reloaded;

  // The MQTT `reload` command tells the service manager the same.
  OUTPOST_ASSERT_OK(
      h_.devices().Publish("gateway/commands", R"({"command":"reload","id":"r1"})", 1));
  OUTPOST_ASSERT_OK(manager_.WaitFor("RELOADING=1", std::chrono::seconds(10)));
  auto reloaded_by_command = manager_.WaitFor("READY=1", std::chrono::seconds(10));
  OUTPOST_ASSERT_OK(reloaded_by_command);
  EXPECT_NE(reloaded_by_command->find("STATUS=reloaded "), std::string::npos)
      << *reloaded_by_command;

  OUTPOST_ASSERT_OK(h_.StopGateway());
  OUTPOST_ASSERT_OK(manager_.WaitFor("STOPPING=1", std::chrono::seconds(1)));

  // Broker down: the store opens and the gateway runs, but without a subscription it is not
  // ready.
  OUTPOST_ASSERT_OK(h_.broker().Stop());
  OUTPOST_ASSERT_OK(h_.LaunchGateway());
  ASSERT_TRUE(WaitUntil("a failed connect in the log", std::chrono::seconds(10),
                        [&] { return h_.gateway_log().find("mqtt: ") != std::string::npos; }));
  EXPECT_EQ(manager_.Drain().find("READY=1"), std::string::npos);
  OUTPOST_ASSERT_OK(h_.broker().Restart());
  OUTPOST_ASSERT_OK(manager_.WaitFor("READY=1", std::chrono::seconds(15)));
  OUTPOST_ASSERT_OK(h_.StopGateway());
}

// A broken config: the process exits with status 2 at once, before any READY=1, and says why
// (systemctl start fails with that line in the journal).
TEST_F(GatewaySystemdTest, broken_config_fails_the_start_before_ready) {
  ASSERT_TRUE(manager_.bound());
  const std::string config = h_.dir().File("broken.yaml");
  {
    std::ofstream out(config);
    out << "mqtt:\n  port: seventy\n";
  }
  ChildProcessOptions o;
  o.argv = {GatewayBinary(), "--config", config};
  o.env = {{"NOTIFY_SOCKET", manager_.path()}};
  o.log_path = h_.dir().File("broken.log");
  auto child = ChildProcess::Start(o);
  OUTPOST_ASSERT_OK(child);
  auto code = (*child)->Wait(std::chrono::seconds(5));
  OUTPOST_ASSERT_OK(code);
  EXPECT_EQ(*code, 2);
  EXPECT_NE((*child)->log().find("mqtt.port"), std::string::npos) << (*child)->log();
  EXPECT_EQ(manager_.Drain(), "");
}

// outpost-cloud: READY=1 once its database is open and its listener bound (the port is in
// STATUS=), STOPPING=1 on SIGTERM, then a clean exit.
TEST_F(GatewaySystemdTest, cloud_ready_after_listening_and_stopping_on_term) {
  ASSERT_TRUE(manager_.bound());
  ChildProcessOptions o;
  o.argv = {DefaultCloudBinary(), "serve",      "--listen",
            "127.0.0.1:0",        "--database", "sqlite:" + h_.dir().File("cloud.db")};
  o.env = {{"NOTIFY_SOCKET", manager_.path()}};
  o.log_path = h_.dir().File("cloud.log");
  auto cloud = ChildProcess::Start(o);
  OUTPOST_ASSERT_OK(cloud);
  auto ready = manager_.WaitFor("READY=1", std::chrono::seconds(15));
  OUTPOST_ASSERT_OK(ready);
  ASSERT_TRUE(WaitUntil("the cloud's listening line", std::chrono::seconds(5), [&] {
    return (*cloud)->log().find("listening on http://127.0.0.1:") != std::string::npos;
  }));
  const std::string log = (*cloud)->log();
  const std::size_t at = log.find("listening on http://127.0.0.1:");
  const std::string port = log.substr(at + 30, log.find('\n', at) - at - 30);
  EXPECT_NE(ready->find("STATUS=listening on port " + port), std::string::npos)
      << *ready << " / port " << port;
  (*cloud)->Terminate();
  OUTPOST_ASSERT_OK(manager_.WaitFor("STOPPING=1", std::chrono::seconds(10)));
  auto code = (*cloud)->Wait(std::chrono::seconds(20));
  OUTPOST_ASSERT_OK(code);
  EXPECT_EQ(*code, 0) << (*cloud)->log();
}

TEST_F(GatewaySystemdTest, watchdog_pings_stop_while_a_store_write_hangs) {
  ASSERT_TRUE(manager_.bound());
  const std::string stall = h_.dir().File("stall-write");
  HarnessOptions o;
  o.gateway_env = {{"NOTIFY_SOCKET", manager_.path()},
                   {"WATCHDOG_USEC", "1000000"},  // pings every 500 ms
                   {"OUTPOST_FAULT_STALL_WRITE", stall}};
  OUTPOST_ASSERT_OK(h_.Start(o));
  OUTPOST_ASSERT_OK(manager_.WaitFor("READY=1", std::chrono::seconds(10)));
  for (int i = 0; i < 3; ++i) {
    OUTPOST_ASSERT_OK(manager_.WaitFor("WATCHDOG=1", std::chrono::seconds(2)));
  }

  // The next store write hangs (as in a stuck fsync) until the FIFO is opened for writing.
  ASSERT_EQ(::mkfifo(stall.c_str(), 0600), 0) << std::strerror(errno);
  const std::string reading =
      json{{"deviceId", "wd1"}, {"boot", 1}, {"seq", 1}, {"level", 7}}.dump();
  OUTPOST_ASSERT_OK(h_.devices().Publish("sensors/wd1/data", reading, 1));
  ASSERT_TRUE(WaitUntil("the watchdog withholding its ping", std::chrono::seconds(10), [&] {
    return h_.gateway_log().find("withholding WATCHDOG=1") != std::string::npos;
  }));
  (void)manager_.Drain();  // pings sent before the check that withheld
  // Twice the interval: the service manager would have killed it by now.
  auto ping = manager_.Receive(milliseconds(2000));
  EXPECT_FALSE(ping.ok()) << "a ping while the write hangs: " << *ping;

  // The write returns: pings resume and the reading is stored.
  const int fd = ::open(stall.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ::unlink(stall.c_str());
  ::close(fd);
  OUTPOST_ASSERT_OK(manager_.WaitFor("WATCHDOG=1", std::chrono::seconds(3)));
  auto s = h_.WaitStatus([](const json& j) { return j["ingest"]["stored"] == 1; });
  OUTPOST_ASSERT_OK(s);
  EXPECT_NE(h_.gateway_log().find("making progress again"), std::string::npos);
  OUTPOST_ASSERT_OK(h_.StopGateway());
}

}  // namespace
}  // namespace outpost::testing
