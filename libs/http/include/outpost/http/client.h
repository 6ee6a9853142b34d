// Client: a blocking HTTP/1.1 client for one origin (the gateway's uplink to the cloud), with
// every response bounded: the status line and headers by max_header_bytes, the de-chunked body
// by max_body_bytes (a Content-Length above it is refused before a body byte is read), and
// every framing line (chunk sizes, trailers) by max_header_bytes too; so a broken proxy or a
// hostile server costs at most those bytes, never an allocation without bound.
// Boost.Beast's response_parser (sans-I/O, fed from a buffer) over standalone Asio sockets;
// TCP_NODELAY; one keep-alive connection, reused while the server keeps it open (a connection
// found closed or readable before a request is replaced, never written to); TLS 1.2+ with the
// server's certificate verified against ca_file (or the system's CAs) and its name (or IP)
// checked, SNI for names.
// Deadlines: connect_timeout_ms bounds resolve + TCP connect + TLS handshake;
//   request_timeout_ms bounds the whole request, from its first byte written to the last byte of
//   the response read (a server trickling bytes cannot hold it longer).
// Ownership: owns its io_context, sockets and buffers; the caller owns the Client.
// Thread: Send() from one thread at a time (it runs the client's own io_context on the calling
//   thread until the response or the error); Stop() and counters() from any thread.
// Errors (Send): kCancelled "stopped" (after Stop(), also for every later Send);
//   kDeadlineExceeded "connect to HOST:PORT timed out after N ms" or "request timed out after
//   N ms"; kResourceExhausted "response header larger than 65536 bytes" or "response body larger
//   than 1048576 bytes" (the configured limits; also "response chunk line larger than ...");
//   kUnavailable for the network (resolve, connect refused, reset, closed before a whole
//   response, TLS handshake; a certificate that does not verify says why and names
//   ca_file_key); kInvalidArgument for a malformed response ("bad response from HOST:PORT: ...")
//   or a request header holding CR or LF. Any error closes the connection; the next Send opens
//   a new one. Send never throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "outpost/base/status.h"

namespace outpost::http {

struct ClientOptions {
  std::string host;  // a name or an IP literal (IPv6 without brackets)
  std::uint16_t port = 0;
  bool tls = false;
  std::string ca_file;                  // PEM bundle (tls only); empty = the system's CAs
  std::string ca_file_key = "ca_file";  // how errors name ca_file ("cloud.ca_file")
  std::int64_t connect_timeout_ms = 5'000;
  std::int64_t request_timeout_ms = 30'000;
  std::size_t max_header_bytes = 64 * 1024;  // status line + header fields of a response
  std::size_t max_body_bytes = 1 << 20;      // a response's body, de-chunked
};

struct ClientRequest {
  std::string method = "GET";
  std::string target = "/";                                  // path and query, as sent
  std::vector<std::pair<std::string, std::string>> headers;  // written as given, after Host
  std::string body;  // Content-Length is sent when non-empty or the method is POST/PUT/PATCH
};

struct ClientResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-cased names; repeated ones joined ", "
  std::string body;                            // identity; chunked bodies de-chunked

  // The header's value, or "" when absent. `name` lower-case.
  const std::string& Header(const std::string& name) const;
};

// Totals since construction, by outcome (a snapshot; each counter is read atomically).
struct ClientCounters {
  std::uint64_t requests = 0;          // Send() calls
  std::uint64_t responses = 0;         // whole responses returned
  std::uint64_t connects = 0;          // connections opened (TLS: handshakes completed)
  std::uint64_t reused = 0;            // requests sent on a kept-alive connection
  std::uint64_t header_too_large = 0;  // responses refused at max_header_bytes
  std::uint64_t body_too_large = 0;    // responses refused at max_body_bytes
  std::uint64_t bad_responses = 0;     // malformed responses
  std::uint64_t timeouts = 0;          // connect or request deadline reached
  std::uint64_t network_errors = 0;    // resolve, connect, TLS, reset, early close
  std::uint64_t cancelled = 0;         // aborted or refused by Stop()
};

class Client {
 public:
  // kInvalidArgument when host is empty, port 0, a timeout or limit not positive, or ca_file
  // cannot be loaded (the message names ca_file_key and the path).
  static Result<std::unique_ptr<Client>> Make(ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // One request, blocking until its response or an error (see the header comment).
  Result<ClientResponse> Send(const ClientRequest& request);
  // Aborts a Send in flight (it returns kCancelled at once) and refuses every later one.
  void Stop();
  ClientCounters counters() const;

 private:
  class Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace outpost::http
