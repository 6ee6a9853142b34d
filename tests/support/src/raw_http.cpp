#include "outpost/testing/raw_http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace outpost::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return s;
}

std::string Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<std::int64_t>(0, std::min<std::int64_t>(left.count(), 50)));
}

// Walks the chunked body in `data` from `*at` (the start of a chunk-size line) and appends each
// whole chunk to `body` (when given), leaving `*at` at the first chunk not yet whole; returns
// the bytes the body takes with its last chunk and trailers, or 0 while incomplete. A caller
// that keeps `*at` between calls scans each byte once however the body arrives.
std::size_t Dechunk(std::string_view data, std::string* body, std::size_t* at) {
  for (;;) {
    std::size_t eol = data.find("\r\n", *at);
    if (eol == std::string_view::npos) return 0;
    std::size_t size = std::strtoull(std::string(data.substr(*at, eol - *at)).c_str(), nullptr, 16);
    std::size_t next = eol + 2;
    if (size == 0) {
      std::size_t end = data.find("\r\n", next);  // no trailers expected; skip any
      while (end != std::string_view::npos && end != next) {
        next = end + 2;
        end = data.find("\r\n", next);
      }
      return end == std::string_view::npos ? 0 : end + 2;
    }
    if (data.size() < next + size + 2) return 0;
    if (body != nullptr) body->append(data.substr(next, size));
    *at = next + size + 2;
  }
}

}  // namespace

std::string RawHttpResponse::Header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? "" : it->second;
}

Result<RawHttpConnection> RawHttpConnection::Connect(std::uint16_t port,
                                                     std::chrono::milliseconds timeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Unavailable(std::string("socket: ") + std::strerror(errno));
  RawHttpConnection c(fd);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS) {
      return Unavailable("connect 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(errno));
    }
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) {
      return Status(Code::kDeadlineExceeded, "connect 127.0.0.1:" + std::to_string(port) +
                                                 ": no answer within " +
                                                 std::to_string(timeout.count()) + " ms");
    }
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      return Unavailable("connect 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(err));
    }
  }
  return c;
}

RawHttpConnection::RawHttpConnection(RawHttpConnection&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      peer_closed_(other.peer_closed_),
      in_(std::move(other.in_)),
      chunks_whole_(std::exchange(other.chunks_whole_, 0)) {}

RawHttpConnection& RawHttpConnection::operator=(RawHttpConnection&& other) noexcept {
  if (this != &other) {
    Close();
    fd_ = std::exchange(other.fd_, -1);
    peer_closed_ = other.peer_closed_;
    in_ = std::move(other.in_);
    chunks_whole_ = std::exchange(other.chunks_whole_, 0);
  }
  return *this;
}

RawHttpConnection::~RawHttpConnection() { Close(); }

void RawHttpConnection::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

long RawHttpConnection::SendSome(std::string_view data) {
  if (fd_ < 0 || peer_closed_) return -1;
  ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n >= 0) return n;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
  return -1;  // EPIPE, ECONNRESET: the peer is gone
}

bool RawHttpConnection::closed() {
  if (fd_ < 0) return true;
  char buf[16 * 1024];
  while (!peer_closed_) {
    ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      if (in_.size() < 64 * 1024 * 1024) in_.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) break;
    peer_closed_ = true;  // 0: orderly close; ECONNRESET etc.: reset
  }
  return peer_closed_;
}

bool RawHttpConnection::WaitClosed(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!closed()) {
    if (Clock::now() >= deadline) return false;
    pollfd p{fd_, POLLIN, 0};
    ::poll(&p, 1, RemainingMs(deadline));
  }
  return true;
}

bool RawHttpConnection::ParseResponse(RawHttpResponse* out, bool peer_closed) {
  for (;;) {
    std::size_t head_end = in_.find("\r\n\r\n");
    if (head_end == std::string::npos) return false;
    RawHttpResponse r;
    std::string_view head(in_.data(), head_end);
    std::size_t eol = head.find("\r\n");
    std::string_view status_line = head.substr(0, eol);
    if (status_line.size() < 12 || status_line.substr(0, 5) != "HTTP/") {
      r.status = -1;  // not HTTP: report what came, as the body
      r.body = in_;
      *out = std::move(r);
      return true;
    }
    r.status = std::atoi(std::string(status_line.substr(9, 3)).c_str());
    while (eol != std::string_view::npos) {
      std::size_t start = eol + 2;
      eol = head.find("\r\n", start);
      std::string_view line = head.substr(start, eol == std::string_view::npos ? eol : eol - start);
      std::size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      std::string name = Lower(std::string(line.substr(0, colon)));
      std::string value = Trim(line.substr(colon + 1));
      auto [it, fresh] = r.headers.emplace(name, value);
      if (!fresh) it->second += ", " + value;
    }
    const std::size_t body_at = head_end + 4;
    std::size_t end = 0;
    if (r.status >= 100 && r.status < 200) {  // 100 Continue: skip, the real answer follows
      in_.erase(0, body_at);
      continue;
    }
    if (Lower(r.Header("transfer-encoding")).find("chunked") != std::string::npos) {
      // Framing first, resumed where the last call stopped; the copy once it is whole.
      const std::string_view chunked = std::string_view(in_).substr(body_at);
      std::size_t took = Dechunk(chunked, nullptr, &chunks_whole_);
      if (took == 0) return false;
      std::size_t from = 0;
      Dechunk(chunked, &r.body, &from);
      end = body_at + took;
    } else if (!r.Header("content-length").empty()) {
      std::size_t length = std::strtoull(r.Header("content-length").c_str(), nullptr, 10);
      if (in_.size() < body_at + length) return false;
      r.body = in_.substr(body_at, length);
      end = body_at + length;
    } else if (r.status == 204 || r.status == 304) {
      end = body_at;
    } else {
      if (!peer_closed) return false;  // body until the close
      r.body = in_.substr(body_at);
      end = in_.size();
    }
    r.wire_bytes = end;
    in_.erase(0, end);
    chunks_whole_ = 0;
    *out = std::move(r);
    return true;
  }
}

Result<RawHttpResponse> RawHttpConnection::Exchange(std::string_view request,
                                                    std::chrono::milliseconds timeout) {
  bool given = false;
  return Exchange(
      [&](std::string* out) {
        if (!given) out->append(request);
        given = true;
        return false;
      },
      timeout);
}

Result<RawHttpResponse> RawHttpConnection::Read(std::chrono::milliseconds timeout) {
  return Exchange([](std::string*) { return false; }, timeout);
}

Result<RawHttpResponse> RawHttpConnection::Exchange(const std::function<bool(std::string*)>& next,
                                                    std::chrono::milliseconds timeout) {
  if (fd_ < 0) return Unavailable("connection closed");
  const auto deadline = Clock::now() + timeout;
  std::string out;
  std::size_t out_at = 0;
  std::size_t sent = 0;
  bool more = true;
  bool can_write = true;
  RawHttpResponse response;
  for (;;) {
    if (ParseResponse(&response, peer_closed_)) {
      response.bytes_sent = sent;
      return response;
    }
    if (peer_closed_) {
      return Unavailable("peer closed the connection after " + std::to_string(sent) +
                         " bytes sent, " + std::to_string(in_.size()) +
                         " bytes received and no whole response: " + in_.substr(0, 200));
    }
    if (Clock::now() >= deadline) {
      return Status(Code::kDeadlineExceeded, "no whole response within " +
                                                 std::to_string(timeout.count()) + " ms (" +
                                                 std::to_string(sent) + " bytes sent, " +
                                                 std::to_string(in_.size()) + " received)");
    }
    if (can_write && out_at == out.size() && more) {
      out.clear();
      out_at = 0;
      more = next(&out);
    }
    const bool pending = can_write && out_at < out.size();
    pollfd p{fd_, static_cast<short>(POLLIN | (pending ? POLLOUT : 0)), 0};
    ::poll(&p, 1, RemainingMs(deadline));
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) closed();  // reads what is there
    if (pending && (p.revents & POLLOUT)) {
      long n = SendSome(std::string_view(out).substr(out_at));
      if (n < 0) {
        can_write = false;  // reset while writing: what it answered may still be readable
      } else {
        out_at += static_cast<std::size_t>(n);
        sent += static_cast<std::size_t>(n);
      }
    }
  }
}

}  // namespace outpost::testing
