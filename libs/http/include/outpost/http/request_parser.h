// RequestParser: an incremental, sans-I/O HTTP/1.1 request parser with explicit limits. Bytes go
// in as they arrive (any split), complete Requests come out. Built on Boost.Beast's
// basic_parser (header-only; no Boost.Asio I/O), behind this interface so Boost stays out of
// every other header.
// Thread: none; one parser per connection, used by one thread.
// Errors: a request that breaks the syntax or a limit puts the parser in the error state with
//   the HTTP status to answer, the reason (counted in metrics) and a detail naming the limit;
//   the connection answers and closes. Nothing is allocated beyond the limits: the header block
//   is bounded before it is parsed, the body is counted as it arrives (Content-Length over the
//   limit is refused before any body byte is read), chunked bodies are bounded the same way.
//   A Content-Encoding other than identity is refused (415): bodies are never decompressed.
// Format: RFC 9112 (HTTP/1.1 message syntax).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "outpost/http/message.h"

namespace outpost::http {

struct Limits {
  std::size_t max_request_line_bytes = 8 * 1024;  // 414 beyond
  std::size_t max_header_line_bytes = 8 * 1024;   // one "name: value"; 431 beyond
  std::size_t max_header_count = 100;             // 431 beyond
  std::size_t max_header_bytes = 64 * 1024;       // request line + all headers; 431 beyond
  std::size_t max_body_bytes = 1024 * 1024;       // after de-chunking; 413 beyond
};

// Why a request was refused; each has a counter in ServerStats.
enum class ParseError {
  kNone,
  kBadRequest,            // 400: syntax (bad method, version, field, chunk framing, CL+TE)
  kRequestLineTooLong,    // 414
  kHeaderLineTooLong,     // 431
  kTooManyHeaders,        // 431
  kHeaderTooLarge,        // 431: the whole header block
  kBodyTooLarge,          // 413
  kUnsupportedEncoding,   // 415: Content-Encoding other than identity
  kUnsupportedTransfer,   // 501: Transfer-Encoding other than chunked
  kVersionNotSupported,   // 505: not HTTP/1.0 or HTTP/1.1
};

const char* ParseErrorName(ParseError e);  // "body_too_large", ... (metric label, problem code)
int ParseErrorStatus(ParseError e);        // 413, ...

class RequestParser {
 public:
  enum class State { kNeedMore, kComplete, kError };

  explicit RequestParser(Limits limits);
  ~RequestParser();
  RequestParser(RequestParser&&) noexcept;
  RequestParser& operator=(RequestParser&&) noexcept;

  // Consumes a prefix of `data` and returns how many bytes it took (possibly fewer than given:
  // the rest belongs to the next request, feed it again after Take()). Stops at the end of a
  // complete request or at the first error.
  std::size_t Feed(std::string_view data);
  State state() const;
  // True once the request line and headers are complete (before the body): a server may
  // answer "100 Continue" or refuse early.
  bool header_done() const;
  // The request so far: method, target and headers once header_done() (e.g. to see
  // "Expect: 100-continue"); the body as received.
  const Request& request() const;

  // kComplete: moves the request out and resets for the next one on the same connection.
  Request Take();
  // kError: why, and a detail naming the limit ("header line longer than 8192 bytes").
  ParseError error() const;
  const std::string& error_detail() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace outpost::http
