#include <cstdint>
#include <utility>

#include "outpost/gateway/uplink/sender.h"
#include "outpost/http/client.h"
#include "outpost/http/url.h"

namespace outpost::gateway::uplink {
namespace {

class HttpSender final : public Sender {
 public:
  HttpSender(const HttpSenderOptions& o, http::Url e, std::unique_ptr<http::Client> client)
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
  http::Url endpoint_;
  std::string authorization_;
  std::unique_ptr<http::Client> client_;
};

}  // namespace

Result<std::unique_ptr<Sender>> MakeHttpSender(const HttpSenderOptions& options) {
  auto e = http::ParseUrl(options.endpoint, "cloud.api_endpoint");
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
