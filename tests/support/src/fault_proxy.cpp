#include "outpost/testing/fault_proxy.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "outpost/testing/mosquitto_process.h"  // PickFreePort

namespace outpost::testing {

const char* FaultModeName(FaultMode m) {
  switch (m) {
    case FaultMode::kPass:
      return "pass";
    case FaultMode::kError500:
      return "500";
    case FaultMode::kTooMany429:
      return "429";
    case FaultMode::kDelay:
      return "delay";
    case FaultMode::kDropBeforeForward:
      return "drop_before";
    case FaultMode::kDropAfterForward:
      return "drop_after";
    case FaultMode::kDown:
      return "down";
    case FaultMode::kStatus:
      return "status";
    case FaultMode::kBodyLimit413:
      return "body_limit_413";
  }
  return "?";
}

namespace {

bool WriteAll(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
    off += static_cast<std::size_t>(n);
  }
  return true;
}

struct Request {
  std::string method, path;
  httplib::Headers headers;
  std::string body;
};

// Reads one request from `fd` into `req`, using `buf` for bytes already read. False on EOF,
// error, or a malformed request.
bool ReadRequest(int fd, std::string* buf, Request* req, const std::atomic<bool>& stopping) {
  std::size_t header_end;
  auto fill = [&]() {
    char tmp[65536];
    while (!stopping) {
      pollfd p{fd, POLLIN, 0};
      int r = ::poll(&p, 1, 100);
      if (r < 0 && errno != EINTR) return false;
      if (r <= 0) continue;
      ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
      if (n <= 0) return false;
      buf->append(tmp, static_cast<std::size_t>(n));
      return true;
    }
    return false;
  };
  while ((header_end = buf->find("\r\n\r\n")) == std::string::npos) {
    if (buf->size() > (1 << 20) || !fill()) return false;
  }
  std::string head = buf->substr(0, header_end);
  std::size_t line_end = head.find("\r\n");
  std::string first = head.substr(0, line_end);
  std::size_t sp1 = first.find(' '), sp2 = first.rfind(' ');
  if (sp1 == std::string::npos || sp2 == sp1) return false;
  req->method = first.substr(0, sp1);
  req->path = first.substr(sp1 + 1, sp2 - sp1 - 1);
  req->headers.clear();
  std::size_t content_length = 0;
  std::size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    std::size_t e = head.find("\r\n", pos);
    if (e == std::string::npos) e = head.size();
    std::string line = head.substr(pos, e - pos);
    pos = e + 2;
    std::size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(value.begin());
    if (strcasecmp(name.c_str(), "Content-Length") == 0) content_length = std::stoul(value);
    req->headers.emplace(name, value);
  }
  const std::size_t total = header_end + 4 + content_length;
  while (buf->size() < total) {
    if (!fill()) return false;
  }
  req->body = buf->substr(header_end + 4, content_length);
  buf->erase(0, total);
  return true;
}

std::string Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    default:
      return "Status";
  }
}

std::string Response(int status, const std::string& content_type, const std::string& body,
                     const httplib::Headers& extra) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) + "\r\n";
  out += "Content-Type: " + content_type + "\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  for (const auto& [k, v] : extra) out += k + ": " + v + "\r\n";
  out += "\r\n";
  out += body;
  return out;
}

}  // namespace

FaultProxy::FaultProxy(std::string host, std::uint16_t upstream_port)
    : upstream_host_(std::move(host)), upstream_port_(upstream_port) {}

Result<std::unique_ptr<FaultProxy>> FaultProxy::Start(std::string upstream_host,
                                                      std::uint16_t upstream_port) {
  std::unique_ptr<FaultProxy> p(new FaultProxy(std::move(upstream_host), upstream_port));
  // A port outside the ephemeral range: kDown releases it and kPass must bind it again.
  Status listening = Unavailable("no free port");
  for (int attempt = 0; attempt < 5 && !listening.ok(); ++attempt) {
    Result<std::uint16_t> port = PickFreePort();
    if (!port.ok()) return port.status();
    p->port_ = *port;
    listening = p->Listen();
  }
  OUTPOST_RETURN_IF_ERROR(listening);
  return p;
}

FaultProxy::~FaultProxy() {
  stopping_ = true;
  CloseListener();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : conns_) ::shutdown(fd, SHUT_RDWR);
  }
  for (auto& t : conn_threads_) t.join();
}

Status FaultProxy::Listen() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Unavailable(std::string("proxy socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port_);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(fd, 64) != 0) {
    ::close(fd);
    return Unavailable("proxy bind 127.0.0.1:" + std::to_string(port_) + ": " +
                       std::strerror(errno));
  }
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  listen_fd_ = fd;
  accept_thread_ = std::thread([this, fd] { AcceptLoop(fd); });
  return Status::Ok();
}

void FaultProxy::CloseListener() {
  int fd;
  {
    std::lock_guard<std::mutex> lock(mu_);
    fd = listen_fd_;
    listen_fd_ = -1;
  }
  if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
  if (accept_thread_.joinable()) accept_thread_.join();
  if (fd >= 0) ::close(fd);
}

void FaultProxy::AcceptLoop(int listen_fd) {
  while (!stopping_) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (listen_fd_ != listen_fd) return;
    }
    pollfd p{listen_fd, POLLIN, 0};
    int r = ::poll(&p, 1, 100);
    if (r <= 0) continue;
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::lock_guard<std::mutex> lock(mu_);
    conns_.push_back(fd);
    conn_threads_.emplace_back([this, fd] { Serve(fd); });
  }
}

void FaultProxy::Serve(int fd) {
  httplib::Client upstream(upstream_host_, upstream_port_);
  upstream.set_tcp_nodelay(true);
  upstream.set_keep_alive(true);
  upstream.set_read_timeout(120, 0);
  std::string buf;
  Request req;
  while (!stopping_ && ReadRequest(fd, &buf, &req, stopping_)) {
    FaultMode mode;
    std::int64_t param;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (next_count_ > 0) {
        --next_count_;
        mode = next_mode_;
        param = next_param_;
      } else {
        mode = mode_;
        param = param_;
      }
    }
    ProxiedRequest rec{req.method,
                       req.path,
                       "",
                       mode,
                       0,
                       std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now().time_since_epoch())
                           .count()};
    rec.body_bytes = req.body.size();
    auto key = req.headers.find("Idempotency-Key");
    if (key != req.headers.end()) rec.idempotency_key = key->second;
    // Recorded on arrival (a test may act while the request is held), status filled in below.
    std::size_t index;
    {
      std::lock_guard<std::mutex> lock(mu_);
      index = requests_.size();
      requests_.push_back(rec);
    }
    bool keep = true;
    std::string out;
    auto forward = [&]() -> bool {
      httplib::Headers h;
      std::string type = "application/json";
      for (const auto& [k, v] : req.headers) {
        if (strcasecmp(k.c_str(), "Authorization") == 0 ||
            strcasecmp(k.c_str(), "Idempotency-Key") == 0) {
          h.emplace(k, v);
        }
        if (strcasecmp(k.c_str(), "Content-Type") == 0) type = v;
      }
      httplib::Result res = req.method == "POST" ? upstream.Post(req.path, h, req.body, type)
                                                 : upstream.Get(req.path, h);
      if (!res) {
        rec.status = 502;
        out = Response(502, "application/json",
                       "{\"error\":{\"code\":\"bad_gateway\",\"message\":\"proxy: upstream " +
                           httplib::to_string(res.error()) + "\"}}",
                       {});
        return true;
      }
      httplib::Headers extra;
      std::string rtype = res->get_header_value("Content-Type");
      if (res->has_header("Retry-After")) {
        extra.emplace("Retry-After", res->get_header_value("Retry-After"));
      }
      rec.status = res->status;
      out = Response(res->status, rtype.empty() ? "application/json" : rtype, res->body, extra);
      return true;
    };
    switch (mode) {
      case FaultMode::kPass:
      case FaultMode::kDown:  // a connection accepted just before the port closed
        forward();
        break;
      case FaultMode::kError500:
        rec.status = 500;
        out = Response(500, "application/json",
                       "{\"error\":{\"code\":\"internal\",\"message\":\"injected by the proxy\"}}",
                       {});
        break;
      case FaultMode::kTooMany429:
        rec.status = 429;
        out = Response(429, "application/json",
                       "{\"error\":{\"code\":\"too_many_requests\",\"message\":\"injected\"}}",
                       {{"Retry-After", std::to_string(param)}});
        break;
      case FaultMode::kDelay: {
        // The cloud's behaviour under test (slow), not test synchronisation; cut short when
        // the proxy stops so a test never waits for it.
        auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(param);
        while (!stopping_ && std::chrono::steady_clock::now() < until) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
      }
        if (stopping_) {
          keep = false;
          break;
        }
        forward();
        break;
      case FaultMode::kDropBeforeForward:
        keep = false;
        break;
      case FaultMode::kDropAfterForward:
        forward();
        rec.status = 0;
        keep = false;
        break;
      case FaultMode::kStatus:
        rec.status = static_cast<int>(param);
        out = Response(rec.status, "text/html",
                       "<html><body><h1>" + std::to_string(param) + "</h1>injected</body></html>",
                       {});
        break;
      case FaultMode::kBodyLimit413:
        if (static_cast<std::int64_t>(req.body.size()) > param) {
          rec.status = 413;
          out = Response(413, "text/html",
                         "<html><body><h1>413 Request Entity Too Large</h1></body></html>", {});
        } else {
          forward();
        }
        break;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_[index].status = rec.status;
    }
    if (!keep || !WriteAll(fd, out)) break;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = conns_.begin(); it != conns_.end(); ++it) {
      if (*it == fd) {
        conns_.erase(it);
        break;
      }
    }
  }
  ::close(fd);
}

Status FaultProxy::SetMode(FaultMode mode, std::int64_t param) {
  FaultMode old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    old = mode_;
    mode_ = mode;
    param_ = param;
  }
  if (mode == FaultMode::kDown && old != FaultMode::kDown) {
    CloseListener();
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : conns_) ::shutdown(fd, SHUT_RDWR);  // and every open connection
  } else if (mode != FaultMode::kDown && old == FaultMode::kDown) {
    return Listen();
  }
  return Status::Ok();
}

void FaultProxy::FailNext(FaultMode mode, int count, std::int64_t param) {
  std::lock_guard<std::mutex> lock(mu_);
  next_mode_ = mode;
  next_count_ = count;
  next_param_ = param;
}

std::vector<ProxiedRequest> FaultProxy::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

std::map<FaultMode, int> FaultProxy::counts() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<FaultMode, int> out;
  for (const auto& r : requests_) ++out[r.mode];
  return out;
}

}  // namespace outpost::testing
