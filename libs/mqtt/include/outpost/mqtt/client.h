// Client: the Asio transport for Session — one MQTT connection over TCP or TLS (OpenSSL), with
// reconnection (full-jitter exponential backoff), re-subscription on every connect, keepalive,
// coalesced writes (one async_write in flight, carrying everything queued meanwhile; calls made
// within one handler go out together after it returns) and read backpressure
// (PauseReading/ResumeReading). Many Clients can share one io_context.
//
// Thread: everything — construction, every method, every callback, destruction — runs on the
//   thread that runs the io_context. Not thread-safe; post() to the io_context from elsewhere.
//   Callbacks may call any method except destroying the Client.
// Ownership: borrows `io`, which must outlive the Client. Pending handlers hold only a shared
//   internal state, so destroying the Client (on the io thread) is safe at any time; it closes
//   the connection abruptly (use Stop() first for a clean DISCONNECT).
// Acknowledgement: received QoS 1 messages are never acknowledged automatically. Call
//   Ack(message.connection_id, message.packet_id) once the message is safe (e.g. committed);
//   an Ack for an earlier connection is ignored, because packet ids are per connection and the
//   broker redelivers unacknowledged messages on the next one. The same holds for an
//   OversizeMessage (a PUBLISH over max_packet_size, skipped; see session.h): Ack it through
//   on_oversize_message, or leave that callback unset and the Client acknowledges it itself.
// Errors: Start() returns kInvalidArgument for bad options or unreadable TLS files. Connection
//   failures are reported through on_disconnected with a Status (kUnavailable for network and
//   TLS errors such as "certificate verify failed", kDeadlineExceeded for timeouts,
//   kInvalidArgument for protocol violations, kCancelled after Stop/Abort) and retried.
// Format: MQTT 3.1.1 (see codec.h, session.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/base/backoff.h"
#include "outpost/base/status.h"
#include "outpost/mqtt/session.h"

namespace asio {
class io_context;
}  // namespace asio

namespace outpost::mqtt {

struct TlsOptions {
  bool enabled = false;
  std::string ca_file;    // PEM; empty: the system's default trust store
  std::string cert_file;  // PEM client certificate (chain); optional
  std::string key_file;   // PEM private key for cert_file
  bool verify_peer = true;
  bool verify_hostname = true;  // checked against server_name, else host (DNS name or IP)
  std::string server_name;      // SNI and verification name; empty: host
};

struct ClientOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 1883;
  TlsOptions tls;
  SessionOptions session;
  BackoffPolicy backoff;
  // Subscribed after every successful CONNACK (also when the broker kept the session).
  std::vector<Subscription> subscriptions;
  std::int64_t connect_timeout_ms = 10'000;  // resolve + TCP connect + TLS handshake
  std::uint64_t random_seed = 0;             // backoff jitter; 0: seeded from random_device
  bool reconnect = true;                     // false: stay down after the first failure
};

struct ClientCallbacks {
  std::function<void(bool session_present)> on_connected;
  // Every failed attempt and every lost connection, with the reason.
  std::function<void(const Status& reason)> on_disconnected;
  std::function<void(const Message& message)> on_message;
  // A PUBLISH over max_packet_size was skipped (never passed to on_message).
  std::function<void(const OversizeMessage& message)> on_oversize_message;
  std::function<void(std::uint16_t packet_id)> on_publish_acked;
  std::function<void(std::uint16_t packet_id, const std::vector<std::uint8_t>& codes)>
      on_subscribed;
};

struct ClientCounters {
  std::uint64_t connects = 0;          // successful CONNACKs
  std::uint64_t connect_failures = 0;  // attempts that ended before a CONNACK
  std::uint64_t disconnects = 0;       // established connections that ended
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t messages_in = 0;
  std::uint64_t oversize_in = 0;  // PUBLISHes over max_packet_size, skipped (not in messages_in)
  std::uint64_t stale_acks = 0;   // Ack() calls for an earlier connection (ignored)
};

class Client {
 public:
  Client(asio::io_context& io, ClientOptions options, ClientCallbacks callbacks);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Validates options, loads TLS files and begins connecting. Call once.
  Status Start();
  // Clean shutdown: DISCONNECT (the broker discards the will), close, no reconnect; `done` runs
  // on the io thread when the connection is closed (at most after a short write timeout).
  void Stop(std::function<void()> done);
  // Closes without DISCONNECT, as a crash would (the broker publishes the will), and stays down.
  void Abort();

  // See Session::Publish. QoS 1 messages survive reconnects while in flight.
  Result<std::uint16_t> Publish(std::string_view topic, std::string_view payload, int qos,
                                bool retain);
  void Ack(std::uint64_t connection_id, std::uint16_t packet_id);
  // Subscribes now (if connected) and on every later connect. Filters must be valid, QoS 0/1.
  // Returns the SUBSCRIBE's packet id (see on_subscribed), or 0 when not connected (it is sent
  // with the others on the next connect).
  Result<std::uint16_t> Subscribe(std::vector<Subscription> subscriptions);

  // Backpressure: after PauseReading() no further on_message (or other) callback runs and no
  // socket read is issued until ResumeReading(); bytes of a read already in flight are held.
  // Keep pauses well below the ping timeout: a PINGRESP is not read while paused.
  void PauseReading();
  void ResumeReading();

  bool connected() const;
  // Id of the current (or last) connection, unique in the process; stamped on
  // Message::connection_id.
  std::uint64_t connection_id() const;
  std::size_t inflight() const;
  const ClientCounters& counters() const;
  // Bytes queued or being written: a publisher's backpressure signal.
  std::size_t outbound_bytes() const;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace outpost::mqtt
