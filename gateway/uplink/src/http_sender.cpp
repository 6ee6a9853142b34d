#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <utility>

#include "outpost/gateway/uplink/sender.h"
#include "outpost/http/client.h"

namespace outpost::gateway::uplink {
namespace {

struct Endpoint {
  bool tls = false;
  std::string host;        // "cloud.example.com", "127.0.0.1", "::1"
  std::uint16_t port = 0;  // 443 / 80 when the URL has none
  std::string base_path;   // "/api" or ""
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
  e.tls = scheme == "https";
  std::string port;
  if (authority.front() == '[') {  // an IPv6 literal
    std::size_t close = authority.find(']');
    if (close == std::string::npos) return bad("unterminated [IPv6 address]");
    e.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return bad("expected ':' and a port after ']'");
      port = authority.substr(close + 2);
    }
  } else {
    std::size_t colon = authority.find(':');
    e.host = authority.substr(0, colon);
    if (colon != std::string::npos) port = authority.substr(colon + 1);
  }
  if (e.host.empty()) return bad("no host");
  e.port = e.tls ? 443 : 80;
  if (!port.empty() || authority.back() == ':') {
    char* end = nullptr;
    const long n = port.empty() ? 0 : std::strtol(port.c_str(), &end, 10);
    if (port.empty() || *end != '\0' || n < 1 || n > 65535 || !std::isdigit(port[0])) {
      return bad("the port must be 1..65535");
    }
    e.port = static_cast<std::uint16_t>(n);
  }
  if (path_start != std::string::npos) e.base_path = url.substr(path_start);
  while (!e.base_path.empty() && e.base_path.back() == '/') e.base_path.pop_back();
  return e;
}

class HttpSender final : public Sender {
 public:
  HttpSender(const HttpSenderOptions& o, Endpoint e, std::unique_ptr<http::Client> client)
      : endpoint_(std::move(e)), client_(std::move(client)) {
    if (!o.token.empty()) authorization_ = "Bearer " + o.token;
  }

  PostResult Post(const std::string& path, const std::string& key,
                  const std::string& body) override {
    http::ClientRequest req;
    req.method = "POST";
    req.target = endpoint_.base_path + path;
    if (!authorization_.empty()) req.headers.emplace_back("Authorization", authorization_);
    if (!key.empty()) req.headers.emplace_back("Idempotency-Key", key);
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = body;
    PostResult out;
    auto res = client_->Send(req);
    if (!res.ok()) {
      out.error = res.status().message();
      return out;
    }
    out.status = res->status;
    out.retry_after = res->Header("retry-after");
    out.body = res->body.size() > 4096 ? res->body.substr(0, 4096) : std::move(res->body);
    return out;
  }

  void Stop() override { client_->Stop(); }  // thread-safe: aborts a request in flight

 private:
  Endpoint endpoint_;
  std::string authorization_;
  std::unique_ptr<http::Client> client_;
};

}  // namespace

Result<std::unique_ptr<Sender>> MakeHttpSender(const HttpSenderOptions& options) {
  auto e = ParseEndpoint(options.endpoint);
  if (!e.ok()) return e.status();
  if (options.connect_timeout_ms <= 0 || options.request_timeout_ms <= 0) {
    return InvalidArgument("uplink: timeouts must be positive");
  }
  http::ClientOptions co;
  co.host = e->host;
  co.port = e->port;
  co.tls = e->tls;
  co.ca_file = options.ca_file;
  co.ca_file_key = "cloud.ca_file";
  co.connect_timeout_ms = options.connect_timeout_ms;
  co.request_timeout_ms = options.request_timeout_ms;
  co.max_header_bytes = options.max_response_header_bytes;
  co.max_body_bytes = options.max_response_body_bytes;
  auto client = http::Client::Make(std::move(co));
  if (!client.ok()) return client.status();
  return std::unique_ptr<Sender>(
      new HttpSender(options, std::move(e).value(), std::move(client).value()));
}

}  // namespace outpost::gateway::uplink
