#include "outpost/provision/gateway_commands.h"

#include <nlohmann/json.hpp>

#include "outpost/http/url.h"

namespace outpost::provision {
namespace {

// Longer than the longest ?wait= the gateway allows (30 s).
constexpr std::int64_t kRequestTimeoutMs = 45'000;

std::string StringOr(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

bool GatewayCommand::Finished() const {
  return state == "succeeded" || state == "failed" || state == "rejected" || state == "expired" ||
         state == "canceled";
}

Result<GatewayCommands> GatewayCommands::Make(const std::string& url, const std::string& name,
                                              const std::string& token,
                                              const std::string& ca_file) {
  auto u = http::ParseUrl(url, name);
  if (!u.ok()) return u.status();
  if (token.empty()) return InvalidArgument("no API token (an operator's: docs/security.md)");
  http::ClientOptions o;
  o.host = u->host;
  o.port = u->port;
  o.tls = u->tls;
  o.ca_file = ca_file;
  o.ca_file_key = "--gateway-ca";
  o.request_timeout_ms = kRequestTimeoutMs;
  o.max_body_bytes = 64 * 1024;  // a command is at most a few KiB
  auto client = http::Client::Make(std::move(o));
  if (!client.ok()) return client.status();
  return GatewayCommands(std::move(*client), u->base_path, url, token);
}

Result<GatewayCommand> GatewayCommands::Send(const std::string& device,
                                             const std::string& body_json,
                                             const std::string& idempotency_key, int wait_s) {
  http::ClientRequest req;
  req.method = "POST";
  req.target = base_ + "/api/v1/devices/" + device + "/commands?wait=" + std::to_string(wait_s);
  req.headers = {{"Authorization", "Bearer " + token_},
                 {"Idempotency-Key", idempotency_key},
                 {"Content-Type", "application/json"}};
  req.body = body_json;
  auto res = client_->Send(req);
  if (!res.ok()) return Unavailable("the gateway at " + where_ + ": " + res.status().message());
  const auto body = nlohmann::json::parse(res->body, nullptr, false);
  if (res->status != 200 && res->status != 202) {
    std::string detail = body.is_object() ? StringOr(body, "detail") : "";
    if (detail.empty()) detail = res->body.substr(0, 200);
    const std::string what =
        "the gateway at " + where_ + " answered " + std::to_string(res->status) + ": " + detail;
    switch (res->status) {
      case 401:
      case 403:
        return InvalidArgument(what + " (the token needs the operator role)");
      case 404:
        return NotFound(what);
      case 409:
        return Status(Code::kAlreadyExists, what);
      case 429:
      case 503:
        return Unavailable(what);
      default:
        return res->status >= 500 ? Unavailable(what) : InvalidArgument(what);
    }
  }
  if (!body.is_object() || StringOr(body, "id").empty() || StringOr(body, "state").empty()) {
    return InvalidArgument("the gateway at " + where_ + " answered " + std::to_string(res->status) +
                           " without a command");
  }
  GatewayCommand c;
  c.id = StringOr(body, "id");
  c.state = StringOr(body, "state");
  c.transport = StringOr(body, "transport");
  auto reply = body.find("reply");
  if (reply != body.end() && reply->is_object()) {
    c.error = StringOr(*reply, "error");
    c.csr = StringOr(*reply, "csr");
    c.serial = StringOr(*reply, "serial");
  }
  return c;
}

}  // namespace outpost::provision
