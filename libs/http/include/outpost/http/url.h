// ParseUrl: an http:// or https:// URL split into what Client needs (host, port, TLS) and the
// path prefix requests go under. For configuration values and command-line options, so every
// error names the setting (`name`) and quotes the URL.
// Accepted: scheme http|https, a host name, an IPv4 literal or a [bracketed IPv6] literal, an
// optional :port (1..65535; default 80 or 443), an optional path (trailing '/' removed). Refused
// (kInvalidArgument): any other scheme, no host, user:password@ (credentials go in headers, not
// URLs), a bad port.
#pragma once

#include <cstdint>
#include <string>

#include "outpost/base/status.h"

namespace outpost::http {

struct Url {
  bool tls = false;
  std::string host;        // "cloud.example.com", "127.0.0.1", "::1"
  std::uint16_t port = 0;  // 443 / 80 when the URL has none
  std::string base_path;   // "/api" or ""
};

Result<Url> ParseUrl(const std::string& url, const std::string& name);

}  // namespace outpost::http
