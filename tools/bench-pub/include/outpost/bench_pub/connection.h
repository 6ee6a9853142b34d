// Connection: one MQTT connection for load tools — a Session driven over a plain TCP socket on
// a shared io_context, without the reconnection and per-call flushing of mqtt::Client. The
// owner decides when bytes go out (Flush) and sees how many are waiting (backlog_bytes), which
// is what a flood publisher needs for backpressure; Client exposes neither.
//
// Loopback/LAN benchmark use only: no TLS, no reconnect (a lost connection is reported through
// on_closed and stays closed).
// Thread: everything runs on the io_context's thread. Ownership: borrows `io`; pending handlers
//   hold a shared_ptr to internal state, so the Connection may be destroyed at any time on the
//   io thread (it closes the socket).
// Errors: on_closed gets kUnavailable (network), kInvalidArgument (protocol), kDeadlineExceeded
//   (CONNACK/PINGRESP late), or OK after Close().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/mqtt/session.h"

namespace asio {
class io_context;
}  // namespace asio

namespace outpost::bench_pub {

struct ConnectionCallbacks {
  std::function<void(const mqtt::Event& event)> on_event;  // Connected, Message, PublishAcked...
  std::function<void()> on_drained;                        // a write completed; the backlog shrank
  std::function<void(const Status& why)> on_closed;
};

class Connection {
 public:
  Connection(asio::io_context& io, mqtt::SessionOptions options, ConnectionCallbacks callbacks);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Resolves, connects (TCP_NODELAY) and starts the MQTT session. Asynchronous.
  void Open(const std::string& host, std::uint16_t port);
  // Queues a PUBLISH in the session; call Flush() (once per batch) to send. See
  // Session::Publish for errors.
  Result<std::uint16_t> Publish(std::string_view topic, std::string_view payload, int qos);
  std::uint16_t Subscribe(std::vector<mqtt::Subscription> subscriptions);
  void Ack(std::uint16_t packet_id);
  // Starts a write of everything queued, unless one is in flight (then it follows it).
  void Flush();
  // DISCONNECT, then close once written. on_closed(OK) follows.
  void Close();
  // Keepalive: call about once a second.
  void Tick();

  mqtt::Session& session();
  bool connected() const;
  bool closed() const;
  // Bytes handed to the socket but not yet confirmed written, plus queued publishes not yet
  // handed over.
  std::size_t backlog_bytes() const;
  std::uint64_t bytes_out() const;

 private:
  struct State;
  std::shared_ptr<State> s_;
};

}  // namespace outpost::bench_pub
