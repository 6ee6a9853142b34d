#include "outpost/systemd/notifier.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace outpost::systemd {

Result<std::unique_ptr<Notifier>> Notifier::Open(std::string_view address) {
  std::unique_ptr<Notifier> n(new Notifier());
  n->address_ = std::string(address);
  if (address.empty()) return n;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (address[0] != '/' && address[0] != '@') {
    return InvalidArgument("NOTIFY_SOCKET \"" + std::string(address.substr(0, 64)) +
                           "\": neither a path (/...) nor an abstract address (@...)");
  }
  if (address.size() > sizeof(sa.sun_path) - (address[0] == '/' ? 1 : 0)) {
    return InvalidArgument("NOTIFY_SOCKET is longer than a unix socket address (" +
                           std::to_string(sizeof(sa.sun_path)) + " bytes)");
  }
  std::memcpy(sa.sun_path, address.data(), address.size());
  if (address[0] == '@') sa.sun_path[0] = '\0';  // abstract: no terminating NUL either
  const std::size_t len =
      offsetof(sockaddr_un, sun_path) + address.size() + (address[0] == '/' ? 1 : 0);
  n->sockaddr_.assign(reinterpret_cast<const char*>(&sa), len);
  n->fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (n->fd_ < 0) {
    return Unavailable(std::string("NOTIFY_SOCKET: socket: ") + std::strerror(errno));
  }
  return n;
}

Result<std::unique_ptr<Notifier>> Notifier::FromEnvironment() {
  const char* a = std::getenv("NOTIFY_SOCKET");
  return Open(a == nullptr ? "" : a);
}

Notifier::~Notifier() {
  if (fd_ >= 0) ::close(fd_);
}

Status Notifier::Notify(std::string_view state) {
  if (fd_ < 0) return Status::Ok();
  const ssize_t n = ::sendto(fd_, state.data(), state.size(), MSG_NOSIGNAL,
                             reinterpret_cast<const sockaddr*>(sockaddr_.data()),
                             static_cast<socklen_t>(sockaddr_.size()));
  if (n != static_cast<ssize_t>(state.size())) {
    ++failed_;
    return Unavailable("NOTIFY_SOCKET " + address_ +
                       ": sendto: " + (n < 0 ? std::strerror(errno) : "short datagram"));
  }
  ++sent_;
  return Status::Ok();
}

}  // namespace outpost::systemd
