// MqttTlsSession: one small blocking MQTT 3.1.1 connection over TLS with a client certificate,
// for what outpost-provision does against the site's broker: check that a certificate is refused,
// cut a revoked device's open session (a CONNECT with its client id on the broker's loopback
// control listener makes the broker close the old connection: session takeover), and the
// self-check of `device add` (SUBSCRIBE, PUBLISH QoS 1, read PUBLISH). Packets are libs/mqtt's
// codec; this file only moves its bytes. Not a general client: no keepalive, no reconnection, QoS
// 0 and 1 only, one call at a time.
// Bounds: every call takes a deadline (the socket's timeouts are set to what is left of it before
// each read and write); a packet from the broker over kMaxPacketBytes is skipped, not buffered.
// Ownership: owns its socket and TLS objects (move-only; the destructor closes without a
// DISCONNECT). Thread: one thread at a time.
// Errors: kNotFound (nothing listens at host:port: the connection was refused), kUnavailable
// (resolve, TCP, TLS, or the broker closed the connection), kFailedPrecondition (a CONNACK
// refusing the connection), kDeadlineExceeded (no answer before the deadline), kInvalidArgument
// (unreadable TLS files, or bytes from the broker that are not MQTT).
// Format: MQTT 3.1.1 (libs/mqtt/include/outpost/mqtt/codec.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "outpost/base/status.h"
#include "outpost/mqtt/codec.h"

namespace outpost::provision {

struct TlsIdentity {
  std::string ca_file, cert_file, key_file;
};

class MqttTlsSession {
 public:
  using Deadline = std::chrono::steady_clock::time_point;
  static constexpr std::size_t kMaxPacketBytes = 64 * 1024;
  static constexpr std::size_t kMaxPending = 256;

  // TCP connect, TLS handshake (the broker's certificate verified against identity.ca_file),
  // CONNECT (clean session) and its CONNACK.
  static Result<MqttTlsSession> Connect(const std::string& host, std::uint16_t port,
                                        const TlsIdentity& identity, const std::string& client_id,
                                        Deadline deadline);

  MqttTlsSession(MqttTlsSession&&) noexcept;
  MqttTlsSession& operator=(MqttTlsSession&&) noexcept;
  ~MqttTlsSession();

  // SUBSCRIBE to one filter at QoS 1 and wait for its SUBACK. Mosquitto 2.0.11 grants a 3.1.1
  // subscription the ACL denies (it then delivers nothing), so a grant proves nothing.
  Status Subscribe(const std::string& filter, Deadline deadline);
  // PUBLISH at QoS 1 and wait for its PUBACK (which a denied publish also gets: the broker has
  // handled it, and queued it to subscribers if it was allowed, before it answers).
  Status Publish(const std::string& topic, const std::string& payload, Deadline deadline);
  // The next PUBLISH from the broker, acknowledged (QoS 1) when read. Those read while Subscribe
  // or Publish waited for their answer come first (the latest kMaxPending are kept). Other
  // packets are dropped.
  Result<mqtt::Publish> NextMessage(Deadline deadline);
  // DISCONNECT and close the TLS session.
  void Disconnect();

 private:
  struct Conn;
  explicit MqttTlsSession(std::unique_ptr<Conn> conn);
  Status Send(const mqtt::Packet& packet, Deadline deadline);
  Result<mqtt::Packet> Receive(Deadline deadline);
  // One packet: a PUBLISH acknowledged and returned (an oversize one dropped), any other packet
  // put in `*other` (and nullopt returned).
  Result<std::optional<mqtt::Publish>> ReceiveAcked(Deadline deadline, mqtt::Packet* other);
  // The next packet that is not a PUBLISH; PUBLISHes read meanwhile go to pending_.
  Result<mqtt::Packet> AwaitReply(Deadline deadline);
  std::uint16_t NextPacketId();

  std::unique_ptr<Conn> conn_;
  std::deque<mqtt::Publish> pending_;
  std::uint16_t next_packet_id_ = 1;
};

// Connect, then DISCONNECT: OK when the broker accepts `identity` with `client_id` within
// `timeout_ms`. Errors as MqttTlsSession::Connect, except that a refused TCP connection is
// kUnavailable like every other network failure.
Status MqttTlsConnect(const std::string& host, std::uint16_t port, const TlsIdentity& identity,
                      const std::string& client_id, int timeout_ms);

}  // namespace outpost::provision
