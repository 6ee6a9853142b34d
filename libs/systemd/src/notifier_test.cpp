// The notifier against a real unix datagram socket the test owns, as the service manager's.
#include "outpost/systemd/notifier.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

namespace outpost::systemd {
namespace {

// A bound datagram socket: a path in a fresh directory, or an abstract address.
class ManagerSocket {
 public:
  explicit ManagerSocket(bool abstract) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    socklen_t len = 0;
    if (abstract) {
      address_ = "@outpost-notify-test-" + std::to_string(::getpid());
      std::memcpy(sa.sun_path, address_.data(), address_.size());
      sa.sun_path[0] = '\0';
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size());
    } else {
      char tmpl[] = "/tmp/outpost-notify-XXXXXX";
      dir_ = ::mkdtemp(tmpl);
      address_ = dir_ + "/notify";
      std::memcpy(sa.sun_path, address_.c_str(), address_.size() + 1);
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size() + 1);
    }
    bound_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&sa), len) == 0;
  }
  ~ManagerSocket() {
    ::close(fd_);
    if (!dir_.empty()) {
      ::unlink(address_.c_str());
      ::rmdir(dir_.c_str());
    }
  }
  bool bound() const { return bound_; }
  const std::string& address() const { return address_; }
  // The next datagram, or "" when none arrives within `timeout_ms`.
  std::string Receive(int timeout_ms = 2000) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) != 1) return "";
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
  }

 private:
  int fd_ = -1;
  bool bound_ = false;
  std::string dir_, address_;
};

TEST(Notifier, sends_datagrams_to_a_path) {
  ManagerSocket manager(/*abstract=*/false);
  ASSERT_TRUE(manager.bound());
  auto n = Notifier::Open(manager.address());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_TRUE((*n)->enabled());
  ASSERT_TRUE((*n)->Notify("READY=1\nSTATUS=running").ok());
  EXPECT_EQ(manager.Receive(), "READY=1\nSTATUS=running");
  ASSERT_TRUE((*n)->Notify("WATCHDOG=1").ok());
  EXPECT_EQ(manager.Receive(), "WATCHDOG=1");
  EXPECT_EQ((*n)->sent(), 2u);
}

TEST(Notifier, sends_datagrams_to_an_abstract_address) {
  ManagerSocket manager(/*abstract=*/true);
  ASSERT_TRUE(manager.bound());
  auto n = Notifier::Open(manager.address());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  ASSERT_TRUE((*n)->Notify("STOPPING=1").ok());
  EXPECT_EQ(manager.Receive(), "STOPPING=1");
}

TEST(Notifier, reads_notify_socket_from_the_environment) {
  ManagerSocket manager(/*abstract=*/false);
  ASSERT_TRUE(manager.bound());
  ::setenv("NOTIFY_SOCKET", manager.address().c_str(), 1);
  auto n = Notifier::FromEnvironment();
  ::unsetenv("NOTIFY_SOCKET");
  ASSERT_TRUE(n.ok());
  ASSERT_TRUE((*n)->Notify("RELOADING=1").ok());
  EXPECT_EQ(manager.Receive(), "RELOADING=1");
}

TEST(Notifier, without_a_manager_it_does_nothing) {
  ::unsetenv("NOTIFY_SOCKET");
  auto n = Notifier::FromEnvironment();
  ASSERT_TRUE(n.ok());
  EXPECT_FALSE((*n)->enabled());
  EXPECT_TRUE((*n)->Notify("READY=1").ok());
  EXPECT_EQ((*n)->sent(), 0u);
}

TEST(Notifier, a_vanished_manager_is_a_counted_error) {
  std::string address;
  {
    ManagerSocket manager(/*abstract=*/false);
    address = manager.address();
  }
  auto n = Notifier::Open(address);
  ASSERT_TRUE(n.ok());
  Status s = (*n)->Notify("WATCHDOG=1");
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_NE(s.message().find(address), std::string::npos);
  EXPECT_EQ((*n)->failed(), 1u);
}

TEST(Notifier, rejects_bad_addresses) {
  for (const std::string& bad :
       {std::string("relative/path"), std::string("vsock:2:1234"), "/" + std::string(200, 'x')}) {
    auto n = Notifier::Open(bad);
    ASSERT_FALSE(n.ok()) << bad;
    EXPECT_EQ(n.status().code(), Code::kInvalidArgument);
  }
}

}  // namespace
}  // namespace outpost::systemd
