// Server: HTTP/1.1 (and HTTPS with OpenSSL) on the program's Asio event loops. Connections are
// spread round-robin over the given io_contexts (the gateway passes its one loop; the cloud a
// pool, one thread each) and never block a thread: a handler answers at once or later from any
// thread, and a stream (Server-Sent Events) is a connection with a buffer, not a worker.
//
// Per connection: one request at a time (pipelined requests wait in the socket), keep-alive,
// a RequestParser with ServerOptions::limits, a deadline for each request's header (slowloris),
// one for its body, an idle timeout between requests, a write timeout, and no Range support
// (a Range header is ignored and counted: every answer is the whole 200). Errors the server
// produces itself (limits, syntax, timeouts it can still answer, a full server) are
// application/problem+json (message.h) followed by a close.
//
// Ownership: borrows the io_contexts, which must outlive the Server and keep running until Stop()
//   has returned. The handler is copied and called on the connection's loop.
// Thread: Start() and Stop() from any one thread; Responder and Stream methods from any thread
//   (they post to the connection's loop; Send on that loop writes at once); stats() from any
//   thread.
// Errors: Start() returns kUnavailable when it cannot listen and kInvalidArgument for bad
//   options or unreadable TLS files. Nothing a client sends can throw out of the loop.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/http/message.h"
#include "outpost/http/request_parser.h"

namespace asio {
class io_context;
}  // namespace asio

namespace outpost::http {

struct AccessLogEntry {
  std::string remote;  // "ip:port"
  std::string method;  // "" when the request was refused before its request line was read
  std::string target;
  int status = 0;
  std::uint64_t bytes_received = 0;  // request line, headers and body
  std::uint64_t bytes_sent = 0;      // the whole response (a stream: everything it sent)
  double seconds = 0;                // first byte received to last byte sent
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;  // 0: any free port (Start() returns it)
  Limits limits;
  std::size_t max_connections = 1024;       // one more is answered 503 and closed
  std::int64_t header_timeout_ms = 10'000;  // first byte of a request to the end of its header
  std::int64_t body_timeout_ms = 30'000;    // end of the header to the end of the body
  std::int64_t idle_timeout_ms = 30'000;    // between requests on a keep-alive connection
  std::int64_t write_timeout_ms = 30'000;   // a peer that does not read its response
  std::size_t max_stream_buffer_bytes = 256 * 1024;  // a stream client further behind is dropped
  std::string tls_cert_file;                         // both set: HTTPS only (PEM chain and key)
  std::string tls_key_file;
  // Called on the connection's loop after each response (streams: when they end).
  std::function<void(const AccessLogEntry&)> access_log;
};

// Counters and gauges, each in /metrics (RenderPrometheus). Thread-safe.
struct ServerStats {
  std::atomic<std::uint64_t> connections_accepted{0};
  std::atomic<std::uint64_t> connections_rejected_full{0};  // answered 503 at max_connections
  std::atomic<std::int64_t> connections_open{0};
  std::atomic<std::uint64_t> requests{0};              // complete requests handed to the handler
  std::atomic<std::uint64_t> responses_by_class[6]{};  // [1..5]: 1xx..5xx
  std::atomic<std::uint64_t> refused[10]{};            // by ParseError (index = enum value)
  std::atomic<std::uint64_t> header_timeouts{0};
  std::atomic<std::uint64_t> body_timeouts{0};
  std::atomic<std::uint64_t> idle_timeouts{0};
  std::atomic<std::uint64_t> write_timeouts{0};
  std::atomic<std::uint64_t> tls_handshake_failures{0};
  std::atomic<std::uint64_t> ranges_ignored{0};
  std::atomic<std::int64_t> streams_open{0};
  std::atomic<std::uint64_t> streams_dropped_slow{0};  // over max_stream_buffer_bytes

  // Prometheus text, metric names prefixed (e.g. "outpost_cloud_http_").
  std::string RenderPrometheus(std::string_view prefix) const;
};

// A Server-Sent Events (or any chunked) response in progress. Thread-safe; hold it as long as
// the stream should live. Writes are queued on the connection's loop.
class Stream {
 public:
  virtual ~Stream() = default;
  // Queues `data` (e.g. "data: {...}\n\n"). False when the stream has ended: the client left,
  // was too slow (dropped), or the server stopped; stop writing then.
  virtual bool Write(std::string data) = 0;
  // Ends the response (terminating chunk); the connection may serve another request.
  virtual void Close() = 0;
  // Ends the response without its terminating chunk and closes the connection: the client sees
  // the body cut short (for a producer that failed half-way).
  virtual void Abort() = 0;
  virtual bool closed() const = 0;
  // Calls `f` once, when at most `bytes` of what was written are still queued (now, on this
  // thread, if that holds already; else on the connection's loop), or when the stream ends.
  // For a producer that paces itself to its client instead of being dropped as slow; one `f`
  // at a time (a second call replaces the first, which is then not called).
  virtual void WhenDrained(std::size_t bytes, std::function<void()> f) = 0;
};

// The one answer to one request. Move-only. Call exactly one of Send or StartStream, from any
// thread, now or later; destroyed without either, the client gets 500.
class Responder {
 public:
  struct State;
  explicit Responder(std::shared_ptr<State> state);
  Responder(Responder&&) noexcept;
  Responder& operator=(Responder&&) noexcept;
  ~Responder();

  void Send(Response response);
  // Starts a chunked response with `head`'s status, content type and headers (its body is sent
  // first, if any). For SSE: content_type "text/event-stream".
  std::shared_ptr<Stream> StartStream(Response head);

 private:
  std::shared_ptr<State> state_;
};

using Handler = std::function<void(Request request, Responder responder)>;

// Routes by method and path: exact paths, or a prefix when the pattern ends in '*'
// ("/api/devices/*"). Unknown path: 404; known path, other method: 405 with Allow.
class Router {
 public:
  void Add(std::string method, std::string pattern, Handler handler);
  void operator()(Request request, Responder responder) const;

 private:
  struct Route {
    std::string method;
    std::string pattern;
    Handler handler;
  };
  std::vector<Route> routes_;
};

class Server {
 public:
  // `loops` non-empty; the acceptor runs on loops[0].
  Server(std::vector<asio::io_context*> loops, ServerOptions options, Handler handler);
  ~Server();  // Stop()s if needed
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts accepting. Returns the bound port.
  Result<std::uint16_t> Start();
  // Closes the listener and every connection (open streams end); returns once nothing of the
  // Server runs on the loops any more. Idempotent. With a `grace`, idle connections and streams
  // close at once, while answers being computed or written may finish within it (then their
  // connections close); what is still open after it is closed. Called on one of the Server's
  // own loops, it does not wait (and gives no grace).
  void Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(0));

  const ServerStats& stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace outpost::http
