#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "outpost/gateway/uplink/sender.h"

namespace outpost::gateway::uplink {
namespace {

struct Endpoint {
  std::string scheme_host_port;  // "https://cloud.example.com:8443"
  std::string base_path;         // "/api" or ""
};

Result<Endpoint> ParseEndpoint(const std::string& url) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument("cloud.api_endpoint: " + why + ", got \"" + url + "\"");
  };
  std::size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return bad("expected an http:// or https:// URL");
  std::string scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") return bad("expected an http:// or https:// URL");
  std::size_t host_start = scheme_end + 3;
  std::size_t path_start = url.find('/', host_start);
  std::string authority = url.substr(
      host_start, path_start == std::string::npos ? std::string::npos : path_start - host_start);
  if (authority.empty()) return bad("no host");
  if (authority.find('@') != std::string::npos) {
    return bad("credentials in the URL are not supported (use cloud.api_key)");
  }
  Endpoint e;
  e.scheme_host_port = scheme + "://" + authority;
  if (path_start != std::string::npos) e.base_path = url.substr(path_start);
  while (!e.base_path.empty() && e.base_path.back() == '/') e.base_path.pop_back();
  return e;
}

class HttpSender final : public Sender {
 public:
  HttpSender(const HttpSenderOptions& o, Endpoint e)
      : options_(o), endpoint_(std::move(e)), client_(endpoint_.scheme_host_port) {
    client_.set_keep_alive(true);
    client_.set_tcp_nodelay(true);  // else ~40 ms per request (Nagle + delayed ACK)
    auto split = [](std::int64_t ms, auto set) {
      set(static_cast<time_t>(ms / 1000), static_cast<time_t>((ms % 1000) * 1000));
    };
    split(o.connect_timeout_ms,
          [&](time_t s, time_t us) { client_.set_connection_timeout(s, us); });
    split(o.request_timeout_ms, [&](time_t s, time_t us) { client_.set_read_timeout(s, us); });
    split(o.request_timeout_ms, [&](time_t s, time_t us) { client_.set_write_timeout(s, us); });
    if (!o.token.empty()) client_.set_bearer_token_auth(o.token);
    client_.enable_server_certificate_verification(true);
    if (!o.ca_file.empty()) client_.set_ca_cert_path(o.ca_file);
    watchdog_ = std::thread([this] { Watch(); });
  }

  ~HttpSender() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    watchdog_.join();
  }

  PostResult Post(const std::string& path, const std::string& key,
                  const std::string& body) override {
    PostResult out;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) {
        out.error = "stopped";
        return out;
      }
      deadline_ =
          std::chrono::steady_clock::now() +
          std::chrono::milliseconds(options_.connect_timeout_ms + options_.request_timeout_ms);
      active_ = true;
    }
    cv_.notify_all();
    httplib::Headers headers;
    if (!key.empty()) headers.emplace("Idempotency-Key", key);
    const auto started = std::chrono::steady_clock::now();
    auto res = client_.Post(endpoint_.base_path + path, headers, body, "application/json");
    const auto took_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - started)
                             .count();
    bool timed_out = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      active_ = false;
      timed_out = fired_;
      fired_ = false;
    }
    if (!res) {
      // httplib's per-operation timeouts report as Read/Write/Connection errors: say timeout
      // when that is what it was.
      const bool slow = timed_out || took_ms >= options_.request_timeout_ms;
      out.error = slow ? "request timed out after " + std::to_string(took_ms) + " ms (" +
                             httplib::to_string(res.error()) + ")"
                       : httplib::to_string(res.error());
      if (res.error() == httplib::Error::SSLServerVerification) {
        out.error += " (check cloud.ca_file and the server's certificate and name)";
      }
      return out;
    }
    out.status = res->status;
    out.retry_after = res->get_header_value("Retry-After");
    out.body = res->body.size() > 4096 ? res->body.substr(0, 4096) : res->body;
    return out;
  }

  void Stop() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopped_ = true;
    }
    client_.stop();  // thread-safe: shuts the socket of a request in flight
    cv_.notify_all();
  }

 private:
  // Bounds the whole request: read/write timeouts only bound each socket operation, so a
  // server trickling bytes could otherwise hold a request for ever.
  void Watch() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!quit_) {
      if (!active_) {
        cv_.wait(lock);
        continue;
      }
      if (cv_.wait_until(lock, deadline_, [&] { return quit_ || !active_; })) continue;
      fired_ = true;
      active_ = false;
      lock.unlock();
      client_.stop();
      lock.lock();
    }
  }

  HttpSenderOptions options_;
  Endpoint endpoint_;
  httplib::Client client_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool active_ = false, fired_ = false, stopped_ = false, quit_ = false;
  std::chrono::steady_clock::time_point deadline_;
  std::thread watchdog_;
};

}  // namespace

Result<std::unique_ptr<Sender>> MakeHttpSender(const HttpSenderOptions& options) {
  auto e = ParseEndpoint(options.endpoint);
  if (!e.ok()) return e.status();
  if (options.connect_timeout_ms <= 0 || options.request_timeout_ms <= 0) {
    return InvalidArgument("uplink: timeouts must be positive");
  }
  return std::unique_ptr<Sender>(new HttpSender(options, std::move(e).value()));
}

}  // namespace outpost::gateway::uplink
