// HttpServer: serves a Service over HTTP with cpp-httplib (thread pool, keep-alive,
// TCP_NODELAY, request body limit answered with a JSON 413).
// Ownership: borrows `service`, which must outlive it. Thread: Bind and Run on one thread;
//   Stop may be called from any thread (e.g. after a signal flag was seen).
// Errors: Bind returns kUnavailable (address in use, bad host).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "outpost/base/status.h"
#include "outpost/cloud/api/service.h"

namespace outpost::cloud::api {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: pick a free port
  int threads = 8;
  int keep_alive_max_count = 1000;
  int read_timeout_s = 30;
};

class HttpServer {
 public:
  HttpServer(Service& service, HttpServerOptions options);
  ~HttpServer();

  // Binds the listening socket; returns the bound port.
  Result<int> Bind();
  // Serves until Stop(). Returns when the server has stopped.
  Status Run();
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace outpost::cloud::api
