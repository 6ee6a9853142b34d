// Session: the client side of one MQTT 3.1.1 session, sans-I/O. It turns application calls and
// received bytes into bytes to send and events; it owns no socket, no thread and no clock.
// Time is passed in (`now_ms`, any monotonic origin).
//
// Driving it (see client.h for the Asio binding):
//   Start(now)                 when a byte stream is up; queues CONNECT
//   OnBytes(bytes, now)        for everything read; then drain PollEvent()
//   TakeOutbound()             after every call; write the bytes in order
//   OnTick(now)                at or after NextDeadlineMs(); keepalive and response timeouts
//   OnConnectionLost()         when the stream breaks; then Start() again on a new one
//
// Delivery: outgoing QoS 1 messages stay in flight (bounded by max_inflight) until PUBACK, across
// connections: after a reconnect they are re-sent with DUP=1 when the broker kept the session
// (session_present), else re-sent as new messages with the same packet ids. Incoming QoS 1
// messages are acknowledged only when the application calls Ack(); PUBACKs go out in the order
// the messages were received, as MQTT 3.1.1 4.6 requires, so an Ack() for a later message waits
// for the earlier ones. Subscriptions are not carried across connections (re-subscribe on every
// Connected event; Client does).
//
// Oversize messages: a received PUBLISH larger than max_packet_size does not end the session.
// Its body is skipped without being buffered and an OversizeMessage event (topic, flags, size,
// the payload's first oversize_head_bytes) is queued instead of a Message. A QoS 1 one takes its
// place in the in-order acknowledgement like any message: the application calls Ack() for it
// (so the broker forgets it) once it has recorded it.
//
// Ownership: value type; owns its buffers. Thread: not thread-safe; one owner thread.
// Errors: OnBytes returns kInvalidArgument for malformed input or protocol violations by the
//   broker (PUBLISH before CONNACK, duplicate CONNACK, PUBACK/SUBACK for unknown ids, packets a
//   broker must not send) and kUnavailable when the broker refuses the connection (a
//   ConnectRefused event is queued first); OnTick returns kDeadlineExceeded when CONNACK or
//   PINGRESP is late. After any error the connection must be dropped (OnConnectionLost()).
//   Publish returns kInvalidArgument (bad topic/QoS, too large), kResourceExhausted (in-flight
//   window full), kFailedPrecondition (QoS 0 while not connected).
#pragma once

#include <cstdint>
#include <deque>
#include <limits>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/mqtt/codec.h"

namespace outpost::mqtt {

struct SessionOptions {
  std::string client_id;
  bool clean_session = true;
  std::uint16_t keepalive_s = 60;  // 0 disables keepalive pings
  std::optional<std::string> username;
  std::optional<std::string> password;
  std::optional<Will> will;
  std::size_t max_inflight = 1000;                      // outgoing QoS 1 messages awaiting PUBACK
  std::size_t max_packet_size = kDefaultMaxPacketSize;  // both directions
  // Payload bytes kept of a received PUBLISH over max_packet_size (see OversizeMessage).
  std::size_t oversize_head_bytes = kDefaultOversizeHeadBytes;
  std::int64_t connack_timeout_ms = 10'000;
  std::int64_t ping_timeout_ms = 10'000;  // PINGREQ sent -> PINGRESP expected
};

// Checks client id, will topic, credentials and limits. Session's constructor requires this OK.
Status ValidateSessionOptions(const SessionOptions& options);

// ---- events ----
struct Connected {
  bool session_present = false;
};
struct ConnectRefused {
  std::uint8_t return_code = 0;  // ConnAckCode
};
struct Message {
  std::string topic;
  std::string payload;
  std::uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  std::uint16_t packet_id = 0;      // 0 for QoS 0; pass to Ack() for QoS 1
  std::uint64_t connection_id = 0;  // Session::connection_id() when it was received
};
// A received PUBLISH over max_packet_size, skipped. QoS 1: pass packet_id to Ack() as for a
// Message.
struct OversizeMessage {
  std::string topic;
  std::string head;  // the payload's first bytes (at most oversize_head_bytes)
  std::uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  std::uint16_t packet_id = 0;      // 0 for QoS 0
  std::size_t packet_bytes = 0;     // the whole PUBLISH as the broker sent it
  std::size_t payload_bytes = 0;    // its whole payload
  std::uint64_t connection_id = 0;  // Session::connection_id() when it was received
};
struct PublishAcked {
  std::uint16_t packet_id = 0;
};
struct Subscribed {
  std::uint16_t packet_id = 0;
  std::vector<std::uint8_t> codes;  // granted QoS or kSubAckFailure, one per filter
};
struct Unsubscribed {
  std::uint16_t packet_id = 0;
};
using Event = std::variant<Connected, ConnectRefused, Message, PublishAcked, Subscribed,
                           Unsubscribed, OversizeMessage>;

class Session {
 public:
  enum class State { kDisconnected, kConnecting, kConnected };

  explicit Session(SessionOptions options);

  // Begins a connection on a fresh byte stream: queues CONNECT. Precondition: disconnected.
  void Start(std::int64_t now_ms);
  // Feeds received bytes; queues events and replies. Non-OK: drop the connection.
  Status OnBytes(std::string_view bytes, std::int64_t now_ms);
  std::optional<Event> PollEvent();

  // QoS 0: sent at once (needs a connection), returns 0. QoS 1: assigns a packet id and keeps
  // the message until PUBACK; while not connected it waits for the next connection.
  Result<std::uint16_t> Publish(std::string_view topic, std::string_view payload, int qos,
                                bool retain);
  // Acknowledges a received QoS 1 message of the current connection. Unknown or already acked
  // ids are ignored (e.g. a message of an earlier connection; the broker redelivers it).
  void Ack(std::uint16_t packet_id);
  // Filters must be valid (ValidateTopicFilter) with QoS 0 or 1. Sent now if connected, else at
  // the next CONNACK. Returns the packet id of the SUBSCRIBE.
  std::uint16_t Subscribe(std::vector<Subscription> subscriptions);
  std::uint16_t Unsubscribe(std::vector<std::string> filters);
  // Queues DISCONNECT (clean close: the broker discards the will) and moves to disconnected.
  // Write the outbound bytes, then close the stream. In-flight messages are kept.
  void Disconnect();
  // Keepalive and timeouts. Returns kDeadlineExceeded when CONNACK or PINGRESP is late.
  Status OnTick(std::int64_t now_ms);
  // When OnTick should next run; INT64_MAX when nothing is pending.
  std::int64_t NextDeadlineMs() const;
  // Bytes to write, in order. Empties the outbound buffer.
  std::string TakeOutbound();
  bool has_outbound() const { return !outbound_.empty(); }
  std::size_t outbound_bytes() const { return outbound_.size(); }
  // The stream broke: back to disconnected. In-flight QoS 1 messages are kept; unacked received
  // messages, pending subscriptions and unsent bytes are dropped.
  void OnConnectionLost();

  State state() const { return state_; }
  bool connected() const { return state_ == State::kConnected; }
  // A new process-wide unique value on every Start(); stamped on received messages.
  std::uint64_t connection_id() const { return connection_id_; }
  std::size_t inflight() const { return inflight_.size(); }
  // Received QoS 1 messages whose PUBACK has not been sent yet.
  std::size_t unacked_incoming() const { return incoming_.size(); }
  const SessionOptions& options() const { return options_; }

 private:
  struct Outgoing {
    mqtt::Publish publish;
    bool sent = false;  // written on some connection at least once
  };
  struct Incoming {
    std::uint16_t packet_id;
    bool acked;
  };

  Status HandlePacket(Packet&& packet, std::int64_t now_ms);
  Status OnConnAck(const ConnAck& ack);
  // Takes a received QoS 1 packet id into the in-order acknowledgement.
  void TrackIncoming(std::uint8_t qos, std::uint16_t packet_id);
  void Send(const Packet& packet);
  void SendOrDefer(Packet packet);  // now when connected, else after the CONNACK
  void SendPublish(Outgoing& entry, bool dup);
  std::uint16_t NextPacketId();
  void FlushAcks();

  SessionOptions options_;
  State state_ = State::kDisconnected;
  Decoder decoder_;
  std::string outbound_;
  std::deque<Event> events_;
  std::uint64_t connection_id_ = 0;
  std::uint16_t last_packet_id_ = 0;

  // Outgoing QoS 1 in the order they were published, and an index by packet id.
  std::list<Outgoing> inflight_order_;
  std::unordered_map<std::uint16_t, std::list<Outgoing>::iterator> inflight_;
  // Received QoS 1 in arrival order (PUBACKs must follow it), and packet id -> sequence number
  // (position in incoming_ is sequence - incoming_front_seq_), so Ack() is O(1).
  std::deque<Incoming> incoming_;
  std::unordered_map<std::uint16_t, std::uint64_t> incoming_seq_;
  std::uint64_t incoming_front_seq_ = 0;
  // SUBSCRIBE awaiting SUBACK: packet id -> number of filters. UNSUBSCRIBE awaiting UNSUBACK.
  std::unordered_map<std::uint16_t, std::size_t> pending_subscribe_;
  std::unordered_set<std::uint16_t> pending_unsubscribe_;
  std::vector<Packet> deferred_;  // SUBSCRIBE/UNSUBSCRIBE made before CONNACK

  // Keepalive: latest time seen, and when we last queued bytes. Calls without a `now` (Publish,
  // Ack, ...) use the latest time seen, a lower bound, so pings are at worst early.
  std::int64_t now_ms_ = 0;
  std::int64_t last_send_ms_ = 0;
  std::int64_t connack_deadline_ms_ = 0;
  std::optional<std::int64_t> ping_sent_ms_;
};

}  // namespace outpost::mqtt
