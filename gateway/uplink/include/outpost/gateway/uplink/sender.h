// Sender is the uplink's port to the cloud: one blocking POST at a time.
// HttpSender implements it with outpost::http::Client (libs/http/client.h: keep-alive,
// TCP_NODELAY, TLS with CA verification and hostname check, a connect timeout and one deadline
// for the whole request, and every response bounded: its header block by
// max_response_header_bytes, its body by max_response_body_bytes, so a broken proxy or a hostile
// server cannot make the gateway allocate without bound).
// Thread: Post() from the uplink thread only; Stop() from any thread (aborts a Post in flight,
// which then returns a network error; later Posts fail at once).
// Errors: Post never throws; no response is status 0 with `error` saying why (e.g. "request
// timed out after 30001 ms", "response header larger than 65536 bytes", "response body larger
// than 1048576 bytes", "stopped").
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "outpost/base/status.h"

namespace outpost::gateway::uplink {

struct PostResult {
  int status = 0;           // 0 = no response
  std::string error;        // when status == 0: what failed
  std::string retry_after;  // the Retry-After header, if any
  std::string body;
};

class Sender {
 public:
  virtual ~Sender() = default;
  // POSTs `body` (application/json) to `path` (relative to the endpoint's base path) with
  // Authorization: Bearer and Idempotency-Key: `key` (omitted when empty).
  virtual PostResult Post(const std::string& path, const std::string& key,
                          const std::string& body) = 0;
  virtual void Stop() = 0;
};

struct HttpSenderOptions {
  std::string endpoint;  // "http(s)://host[:port][/base/path]"
  std::string token;     // Bearer token; empty = no Authorization header
  std::string ca_file;   // PEM bundle for https; empty = the system's CAs
  std::int64_t connect_timeout_ms = 5'000;
  std::int64_t request_timeout_ms = 30'000;  // the whole request, send to last byte received
  std::size_t max_response_header_bytes = 64 * 1024;  // status line and header fields
  std::size_t max_response_body_bytes = 1 << 20;      // the body, de-chunked
};

// kInvalidArgument naming the endpoint when it is not an http(s) URL.
Result<std::unique_ptr<Sender>> MakeHttpSender(const HttpSenderOptions& options);

}  // namespace outpost::gateway::uplink
