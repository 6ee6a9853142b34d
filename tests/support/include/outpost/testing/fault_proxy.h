// FaultProxy: an HTTP/1.1 proxy for integration tests that sits between the gateway and the
// cloud and injects the faults a real uplink meets: 500s, 429 with Retry-After, slow answers,
// connections dropped before the request reaches the cloud or after the cloud stored it (the
// response never arrives: what idempotency keys exist for), and a closed port.
// It speaks plain HTTP/1.1 on raw sockets (so it can drop a connection at any point), with
// keep-alive, and forwards with a cpp-httplib client.
//
//   auto proxy = FaultProxy::Start("127.0.0.1", cloud_port);
//   proxy->FailNext(FaultMode::kError500, 3);   // the next 3 requests get a 500, then pass
//   proxy->SetMode(FaultMode::kDown);           // the port is closed (connection refused)
//
// Ownership: owns its threads and sockets; the destructor stops everything.
// Thread: all methods are thread-safe.
// Errors: Start returns kUnavailable when the port cannot be bound.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "outpost/base/status.h"

namespace outpost::testing {

enum class FaultMode : std::uint8_t {
  kPass,               // forward, relay the answer
  kError500,           // answer 500 without forwarding
  kTooMany429,         // answer 429 with Retry-After: <param> seconds, without forwarding
  kDelay,              // wait <param> ms, then forward
  kDropBeforeForward,  // close the connection without forwarding or answering
  kDropAfterForward,   // forward (the cloud stores it), then close without answering
  kDown,               // the listening port is closed
  kStatus,             // answer HTTP <param> (text/html, like a proxy's error page), no forward
  kBodyLimit413,       // a proxy with a body limit: 413 when the body exceeds <param> bytes
};
const char* FaultModeName(FaultMode m);

struct ProxiedRequest {
  std::string method, path, idempotency_key;
  FaultMode mode;
  int status;          // what the client got; 0 = nothing (dropped) or not yet answered
  std::int64_t at_ms;  // steady clock, when the request had been read
  std::size_t body_bytes = 0;
};

class FaultProxy {
 public:
  static Result<std::unique_ptr<FaultProxy>> Start(std::string upstream_host,
                                                   std::uint16_t upstream_port);
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  std::uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // The standing mode (param: Retry-After seconds for 429, delay ms for kDelay). Entering
  // kDown closes the port (and open connections); leaving it reopens the same port.
  Status SetMode(FaultMode mode, std::int64_t param = 0);
  // The next `count` requests get `mode`, then the standing mode applies again.
  void FailNext(FaultMode mode, int count, std::int64_t param = 0);

  std::vector<ProxiedRequest> requests() const;
  // Requests per mode applied.
  std::map<FaultMode, int> counts() const;

 private:
  FaultProxy(std::string host, std::uint16_t upstream_port);
  Status Listen();
  void CloseListener();
  void AcceptLoop(int listen_fd);
  void Serve(int fd);

  std::string upstream_host_;
  std::uint16_t upstream_port_;
  std::uint16_t port_ = 0;

  mutable std::mutex mu_;
  FaultMode mode_ = FaultMode::kPass;
  std::int64_t param_ = 0;
  FaultMode next_mode_ = FaultMode::kPass;
  int next_count_ = 0;
  std::int64_t next_param_ = 0;
  std::vector<ProxiedRequest> requests_;
  std::vector<int> conns_;
  std::atomic<bool> stopping_{false};
  int listen_fd_ = -1;
  std::thread accept_thread_;
  std::vector<std::thread> conn_threads_;
};

}  // namespace outpost::testing
