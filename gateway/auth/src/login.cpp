#include <nlohmann/json.hpp>

#include "outpost/gateway/auth/auth.h"
#include "outpost/gateway/auth/secrets.h"

namespace outpost::gateway::auth {

std::string CookieValue(std::string_view header, std::string_view name) {
  std::size_t pos = 0;
  while (pos < header.size()) {
    std::size_t end = header.find(';', pos);
    if (end == std::string_view::npos) end = header.size();
    std::string_view pair = header.substr(pos, end - pos);
    while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
    if (pair.size() > name.size() && pair.substr(0, name.size()) == name &&
        pair[name.size()] == '=') {
      return std::string(pair.substr(name.size() + 1));
    }
    pos = end + 1;
  }
  return "";
}

Result<LoginRequest> ParseLogin(std::string_view body) {
  if (body.size() > kMaxLoginBodyBytes) {
    return ResourceExhausted("a login body is at most " + std::to_string(kMaxLoginBodyBytes) +
                             " bytes: {\"user\":\"...\",\"password\":\"...\"}");
  }
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return InvalidArgument("expected a JSON object {\"user\":\"...\",\"password\":\"...\"}");
  }
  auto u = j.find("user"), p = j.find("password");
  if (u == j.end() || !u->is_string() || p == j.end() || !p->is_string()) {
    return InvalidArgument("user and password: expected two strings");
  }
  LoginRequest out{u->get<std::string>(), p->get<std::string>()};
  if (out.user.empty() || out.user.size() > 64 || out.password.size() > kMaxPasswordBytes) {
    return InvalidArgument("user: 1..64 bytes, password: at most " +
                           std::to_string(kMaxPasswordBytes) + " bytes");
  }
  return out;
}

}  // namespace outpost::gateway::auth
