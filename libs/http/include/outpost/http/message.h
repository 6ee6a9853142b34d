// Request and Response: HTTP/1.1 messages as handlers see them, without the transport.
// Plain values; no sockets, no threads. Header names are stored lower-cased.
// Errors: Problem() builds the RFC 9457 `application/problem+json` response every error the
//   server produces itself carries (and handlers may use): {"type","title","status","detail"}
//   plus "error":{"code","message"}, the shape Outpost's APIs have always answered.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace outpost::http {

struct Request {
  std::string method;                          // "GET", "POST", ... as sent (case-sensitive)
  std::string target;                          // as sent: path and query
  std::string path;                            // target without the query, percent-decoded
  std::map<std::string, std::string> params;   // query parameters (first value of each)
  std::map<std::string, std::string> headers;  // lower-cased names; repeated ones joined ", "
  std::string body;                            // identity-coded; chunked bodies de-chunked
  std::string remote;                          // "ip:port" of the peer
  int version_minor = 1;                       // HTTP/1.<minor>
  bool keep_alive = true;                      // after this request (version and Connection)

  // The header's value, or "" when absent. `name` lower-case.
  const std::string& Header(const std::string& name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers, written as given
};

// An error response: application/problem+json with `status`, a stable snake_case `code` and a
// human `detail` that names what was wrong.
Response Problem(int status, std::string_view code, std::string_view detail);

// The reason phrase for a status code ("Not Found"), "Unknown" for codes it does not know.
const char* ReasonPhrase(int status);

}  // namespace outpost::http
