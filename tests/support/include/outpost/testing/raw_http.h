// RawHttpConnection: one TCP connection to a loopback HTTP server that writes exactly the bytes
// it is given, for tests that must say things a real client never would (a request line without
// a newline, 10,000 headers, a gzip bomb, one header byte every 300 ms) and see exactly what the
// server answers: the status, the headers, the body, or a close.
//
//   OUTPOST_ASSERT_OK_AND_ASSIGN(auto c, RawHttpConnection::Connect(port));
//   OUTPOST_ASSERT_OK_AND_ASSIGN(RawHttpResponse r, c.Exchange("GET /healthz HTTP/1.1\r\n..."));
//
// Exchange() writes while it reads (non-blocking, poll(2)), so a server that answers before the
// request is complete (413 at the header of an endless body) is heard, and writing stops there.
// Ownership: owns the socket; closed by the destructor or Close().
// Thread: not thread-safe; one thread per connection (a loop may drive many from one thread
//   with SendSome() and closed()).
// Errors: kUnavailable (connect refused, or the peer closed or reset before a whole response;
//   the message says how many bytes were sent and received), kDeadlineExceeded (no whole
//   response within the timeout).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "outpost/base/status.h"

namespace outpost::testing {

struct RawHttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-cased names
  std::string body;                            // de-chunked when chunked
  std::size_t wire_bytes = 0;                  // status line + headers + body as received
  std::size_t bytes_sent = 0;                  // of the request, when the response was complete

  // The header's value, "" when absent. `name` lower-case.
  std::string Header(const std::string& name) const;
};

class RawHttpConnection {
 public:
  // Connects to 127.0.0.1:port (blocking, bounded by `timeout`).
  static Result<RawHttpConnection> Connect(
      std::uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  RawHttpConnection(RawHttpConnection&& other) noexcept;
  RawHttpConnection& operator=(RawHttpConnection&& other) noexcept;
  ~RawHttpConnection();

  // Writes `request` (whatever it holds) while reading, until one whole response is read (then
  // stops writing), or the peer closed, or `timeout`.
  Result<RawHttpResponse> Exchange(std::string_view request,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // The same with a request produced as it goes: `next` appends the next piece to its argument
  // and returns false when there is no more (an endless body: a generator with its own cap).
  Result<RawHttpResponse> Exchange(const std::function<bool(std::string*)>& next,
                                   std::chrono::milliseconds timeout);
  // Reads one response without writing anything more.
  Result<RawHttpResponse> Read(std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // Writes what the socket takes now of `data` without blocking; returns how many bytes, or -1
  // when the peer has closed or reset the connection.
  long SendSome(std::string_view data);
  // True once the peer has closed or reset the connection (reads and discards anything it sent
  // meanwhile, e.g. a 408). Does not block.
  bool closed();
  // Waits up to `timeout` for closed().
  bool WaitClosed(std::chrono::milliseconds timeout);
  void Close();
  int fd() const { return fd_; }
  // Everything received so far that no Read() consumed (e.g. what closed() drained).
  const std::string& received() const { return in_; }

 private:
  explicit RawHttpConnection(int fd) : fd_(fd) {}
  // Parses one whole response at the front of in_; false when incomplete.
  bool ParseResponse(RawHttpResponse* out, bool peer_closed);

  int fd_ = -1;
  bool peer_closed_ = false;
  std::string in_;
  // Of a chunked body at the front of in_: how far its chunks are known whole (from the body's
  // start), so a long answer's framing is scanned once, not again at every read.
  std::size_t chunks_whole_ = 0;
};

}  // namespace outpost::testing
