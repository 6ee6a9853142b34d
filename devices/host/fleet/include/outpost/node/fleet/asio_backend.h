// AsioBackend: runs a Fleet against a real broker. One asio::io_context on the calling thread;
// per device one TCP (or TLS) socket, one steady_timer and small read/write buffers — no thread
// per device. TLS: one SSL_CTX for all (CA, verification, buffer modes), one SSL object per
// connection with the device's own certificate and key when `cert_dir` is set. Writes from the core
// go into a per-connection buffer flushed with async_write (one write in flight, everything queued
// meanwhile goes in the next); TCP_NODELAY is set.
//
//   AsioOptions net{.host = "127.0.0.1", .port = 1883};
//   AsioBackend backend(net);
//   Fleet fleet(options, backend);
//   backend.Attach(fleet);
//   OUTPOST_RETURN_IF_ERROR(fleet.Init());
//   OUTPOST_RETURN_IF_ERROR(backend.Run());   // returns when the fleet finished
//
// Memory per device: see docs/simulator.md ("Memory"); read buffer `read_buffer_bytes`, write
// buffer bounded by `max_write_buffer_bytes` (Write() accepts less when full; the core retries).
// Ownership: borrows the Fleet. Thread: Run() on one thread; RequestStop() is async-signal-safe.
// Errors: Run() returns kInvalidArgument (TLS files unreadable, a device without its certificate
//   or key in cert_dir, a key that does not match its certificate) or kUnavailable (the broker host
//   does not resolve). Connection failures are the devices' business (reconnect with backoff).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "outpost/node/fleet/fleet.h"

namespace outpost::node::fleet {

struct AsioOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 1883;
  bool tls = false;
  std::string ca_file, cert_file, key_file;  // PEM; ca empty: system trust store
  // Per-device client certificates: DIR/<device id>/device.crt and device.key (the layout of
  // `outpost-provision device add`), loaded once at Run(); replaces cert_file/key_file. With
  // tls, each device also gets the Credentials port (certificate rotation, docs/adr/0011).
  std::string cert_dir;
  bool verify_peer = true;
  std::size_t read_buffer_bytes = 512;
  std::size_t max_write_buffer_bytes = 4096;
};

class AsioBackend final : public Backend {
 public:
  explicit AsioBackend(AsioOptions options);
  ~AsioBackend() override;

  void Attach(Fleet& fleet);
  // Starts the fleet and runs the loop until it finishes. Checks `stop_flag` (set by a signal
  // handler) every 100 ms: when set, the fleet stops sampling and drains.
  Status Run(const std::atomic<bool>* stop_flag = nullptr);

  std::int64_t NowMs() override;
  std::int64_t WallMs() override;
  void Connect(std::uint32_t device) override;
  std::size_t Write(std::uint32_t device, const std::uint8_t* data, std::size_t size) override;
  void Close(std::uint32_t device) override;
  void ScheduleWake(std::uint32_t device, std::int64_t at_ms) override;
  void ScheduleTick(std::int64_t at_ms) override;
  void Stop() override;
  // With --tls --cert-dir: each device's FileCredentials (valid once Run() loaded them).
  bool ProvidesCredentials() const override;
  device::Credentials* CredentialsFor(std::uint32_t device) override;

 private:
  class Impl;
  bool options_tls_cert_dir_;
  std::unique_ptr<Impl> impl_;
};

// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.
std::uint64_t RaiseFileLimit();
// Resident set size of this process in bytes (/proc/self/statm), 0 if unknown.
std::uint64_t ResidentBytes();

}  // namespace outpost::node::fleet
