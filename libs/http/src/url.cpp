#include "outpost/http/url.h"

#include <cctype>
#include <cstdlib>

namespace outpost::http {

Result<Url> ParseUrl(const std::string& url, const std::string& name) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument(name + ": " + why + ", got \"" + url + "\"");
  };
  const std::size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return bad("expected an http:// or https:// URL");
  const std::string scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") return bad("expected an http:// or https:// URL");
  const std::size_t host_start = scheme_end + 3;
  const std::size_t path_start = url.find('/', host_start);
  const std::string authority = url.substr(
      host_start, path_start == std::string::npos ? std::string::npos : path_start - host_start);
  if (authority.empty()) return bad("no host");
  if (authority.find('@') != std::string::npos) {
    return bad("credentials in the URL are not supported (give a token instead)");
  }
  Url u;
  u.tls = scheme == "https";
  std::string port;
  if (authority.front() == '[') {  // an IPv6 literal
    const std::size_t close = authority.find(']');
    if (close == std::string::npos) return bad("unterminated [IPv6 address]");
    u.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return bad("expected ':' and a port after ']'");
      port = authority.substr(close + 2);
    }
  } else {
    const std::size_t colon = authority.find(':');
    u.host = authority.substr(0, colon);
    if (colon != std::string::npos) port = authority.substr(colon + 1);
  }
  if (u.host.empty()) return bad("no host");
  u.port = u.tls ? 443 : 80;
  if (!port.empty() || authority.back() == ':') {
    char* end = nullptr;
    const long n = port.empty() ? 0 : std::strtol(port.c_str(), &end, 10);
    if (port.empty() || *end != '\0' || n < 1 || n > 65535 ||
        !std::isdigit(static_cast<unsigned char>(port[0]))) {
      return bad("the port must be 1..65535");
    }
    u.port = static_cast<std::uint16_t>(n);
  }
  if (path_start != std::string::npos) u.base_path = url.substr(path_start);
  while (!u.base_path.empty() && u.base_path.back() == '/') u.base_path.pop_back();
  return u;
}

}  // namespace outpost::http
