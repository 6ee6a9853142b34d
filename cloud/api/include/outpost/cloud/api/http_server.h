// HttpServer: serves a Service over HTTP/1.1 (HTTPS with --tls-cert/--tls-key) with libs/http's
// Server on a pool of Asio event loops. The loops only move bytes: every complete request is
// handed to a bounded WorkPool (the database threads), which runs Service::Handle and answers
// through the request's Responder. A full pool is answered at once with 503 `overloaded` and
// Retry-After, so a slow database never stalls a connection and waiting work stays bounded.
// Errors the HTTP layer produces itself (limits, syntax, timeouts, max_connections) are
// libs/http's application/problem+json answers. One access log line per request (spdlog info).
// Ownership: borrows `service`, which must outlive it; owns the loops, their threads, the pool.
// Thread: Bind() then Run() on one thread; Stop() from any thread (e.g. a signal thread).
// Errors: Bind returns kUnavailable (address in use, bad host) or kInvalidArgument (bad options,
//   unreadable TLS files).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "outpost/base/status.h"
#include "outpost/cloud/api/service.h"

namespace outpost::cloud::api {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                                // 0: pick a free port
  int http_threads = 2;                           // --http-threads: event loops, one thread each
  int db_threads = 4;                             // --db-threads: WorkPool threads
  std::size_t db_queue = 256;                     // --db-queue: requests waiting for a db thread
  std::size_t max_connections = 1024;             // --max-connections: one more gets 503
  std::size_t max_body_bytes = 16 * 1024 * 1024;  // --max-body-bytes: 413 body_too_large
  std::int64_t header_timeout_ms = 10'000;        // --header-timeout
  std::int64_t body_timeout_ms = 30'000;          // --body-timeout
  std::int64_t idle_timeout_ms = 30'000;          // --idle-timeout
  std::string tls_cert_file;                      // --tls-cert, --tls-key: both or neither
  std::string tls_key_file;
  std::int64_t retry_after_s = 1;          // Retry-After of the 503 for a full pool
  std::int64_t drain_timeout_ms = 10'000;  // Run(): how long queued requests may finish
};

class HttpServer {
 public:
  HttpServer(Service& service, HttpServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Starts the loops and listens; returns the bound port.
  Result<int> Bind();
  // Serves until Stop(); then lets requests already with the pool finish (drain_timeout_ms),
  // closes every connection and joins the threads.
  Status Run();
  void Stop();

  // The HTTP layer's and the pool's metrics in Prometheus text ("outpost_cloud_http_server_*",
  // "outpost_cloud_db_pool_*"); /metrics appends it to the Service's own.
  std::string RenderMetrics() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace outpost::cloud::api
