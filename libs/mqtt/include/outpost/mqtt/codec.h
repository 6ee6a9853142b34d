// MQTT 3.1.1 packet codec, sans-I/O: packets to bytes (Encode) and bytes to packets (Decoder).
// Spec: OASIS MQTT Version 3.1.1. QoS 2 is not supported: PUBREC/PUBREL/PUBCOMP and QoS 2 in
// PUBLISH/SUBSCRIBE/SUBACK are rejected by the decoder with a message saying so.
//
// Ownership: every packet owns its strings (value types). Decoder owns its input buffer.
// Thread: no shared state; a Decoder is used by one thread at a time.
// Errors: the Decoder returns kInvalidArgument for malformed or unsupported input (reserved
//   flags, bad remaining length, QoS 3, QoS 2, packet id 0, truncated fields, invalid UTF-8,
//   wildcards in a PUBLISH topic, unknown packet types) and for non-PUBLISH packets larger than
//   its limit. A PUBLISH larger than the limit is not an error: the Decoder reads past its body
//   without buffering it and yields an OversizePublish (topic, flags, size and the payload's
//   first bytes), so one giant message cannot end a session. Decoder errors are sticky: the byte
//   stream has lost its framing and the connection must be dropped. Encode() takes valid packets
//   only (see ValidateTopicName/ValidateTopicFilter); encoding a string longer than 65535 bytes or
//   a packet over 256 MiB is a broken invariant.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/mqtt/wire.h"

namespace outpost::mqtt {

// Largest remaining length the variable-length encoding can express (MQTT 3.1.1 2.2.3).
inline constexpr std::size_t kMaxRemainingLength = wire::kMaxRemainingLength;
inline constexpr std::size_t kDefaultMaxPacketSize = 256 * 1024;
// Payload bytes an OversizePublish keeps by default (the rest of its body is skipped).
inline constexpr std::size_t kDefaultOversizeHeadBytes = 512;
// Largest head a Decoder accepts (bounds its buffer: topic + packet id + head).
inline constexpr std::size_t kMaxOversizeHeadBytes = 64 * 1024;

enum class PacketType : std::uint8_t {
  kConnect = 1,
  kConnAck = 2,
  kPublish = 3,
  kPubAck = 4,
  kPubRec = 5,
  kPubRel = 6,
  kPubComp = 7,
  kSubscribe = 8,
  kSubAck = 9,
  kUnsubscribe = 10,
  kUnsubAck = 11,
  kPingReq = 12,
  kPingResp = 13,
  kDisconnect = 14,
};

struct Will {
  std::string topic;
  std::string payload;
  std::uint8_t qos = 0;  // 0 or 1
  bool retain = false;
};

struct Connect {
  std::string client_id;
  bool clean_session = true;
  std::uint16_t keepalive_s = 60;
  std::optional<std::string> username;
  std::optional<std::string> password;  // binary data; requires username in 3.1.1
  std::optional<Will> will;
};

// CONNACK return codes (MQTT 3.1.1 3.2.2.3).
enum ConnAckCode : std::uint8_t {
  kConnectionAccepted = 0,
  kRefusedProtocolVersion = 1,
  kRefusedIdentifierRejected = 2,
  kRefusedServerUnavailable = 3,
  kRefusedBadUsernameOrPassword = 4,
  kRefusedNotAuthorized = 5,
};
const char* ConnAckCodeName(std::uint8_t code);

struct ConnAck {
  bool session_present = false;
  std::uint8_t return_code = kConnectionAccepted;
};

struct Publish {
  std::string topic;
  std::string payload;
  std::uint8_t qos = 0;  // 0 or 1
  bool retain = false;
  bool dup = false;             // only with qos 1
  std::uint16_t packet_id = 0;  // non-zero iff qos 1
};

struct PubAck {
  std::uint16_t packet_id = 0;
};

struct Subscription {
  std::string filter;
  std::uint8_t qos = 0;  // 0 or 1
};

struct Subscribe {
  std::uint16_t packet_id = 0;
  std::vector<Subscription> subscriptions;  // at least one
};

// SUBACK return code for a refused subscription.
inline constexpr std::uint8_t kSubAckFailure = 0x80;

struct SubAck {
  std::uint16_t packet_id = 0;
  std::vector<std::uint8_t> codes;  // granted QoS (0, 1) or kSubAckFailure, one per filter
};

struct Unsubscribe {
  std::uint16_t packet_id = 0;
  std::vector<std::string> filters;  // at least one
};

struct UnsubAck {
  std::uint16_t packet_id = 0;
};

struct PingReq {};
struct PingResp {};
struct Disconnect {};

// A PUBLISH over the Decoder's max_packet_size, read past without buffering its body. Only the
// Decoder produces it; it is not encodable. Its topic and flags were validated like a PUBLISH's.
struct OversizePublish {
  std::string topic;
  std::string head;  // the payload's first bytes (at most the Decoder's oversize_head_bytes)
  std::uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  std::uint16_t packet_id = 0;    // non-zero iff qos 1
  std::size_t packet_bytes = 0;   // the whole packet, fixed header included
  std::size_t payload_bytes = 0;  // the whole payload
};

using Packet = std::variant<Connect, ConnAck, Publish, PubAck, Subscribe, SubAck, Unsubscribe,
                            UnsubAck, PingReq, PingResp, Disconnect, OversizePublish>;

// "PUBLISH", "CONNACK", ... for logs and error messages.
const char* PacketName(const Packet& packet);

bool operator==(const Will& a, const Will& b);
bool operator==(const Connect& a, const Connect& b);
bool operator==(const ConnAck& a, const ConnAck& b);
bool operator==(const Publish& a, const Publish& b);
bool operator==(const PubAck& a, const PubAck& b);
bool operator==(const Subscription& a, const Subscription& b);
bool operator==(const Subscribe& a, const Subscribe& b);
bool operator==(const SubAck& a, const SubAck& b);
bool operator==(const Unsubscribe& a, const Unsubscribe& b);
bool operator==(const UnsubAck& a, const UnsubAck& b);
bool operator==(const OversizePublish& a, const OversizePublish& b);
inline bool operator==(const PingReq&, const PingReq&) { return true; }
inline bool operator==(const PingResp&, const PingResp&) { return true; }
inline bool operator==(const Disconnect&, const Disconnect&) { return true; }

// Appends the wire encoding of `packet` to `out`. Precondition: the packet is valid and not an
// OversizePublish.
void Encode(const Packet& packet, std::string& out);

// Size in bytes of the wire encoding of a PUBLISH with these fields (fixed header included).
std::size_t EncodedPublishSize(std::string_view topic, std::size_t payload_size, int qos);

// IsValidMqttUtf8(), the remaining-length and topic checks are shared with the allocation-free
// device layer and declared in wire.h.

// Topic names (PUBLISH) must be non-empty valid UTF-8, at most 65535 bytes, without U+0000 and
// without the wildcards '+' and '#'.
Status ValidateTopicName(std::string_view topic);
// Topic filters (SUBSCRIBE) are like names, but '+' may fill a whole level and '#' may fill
// the whole last level.
Status ValidateTopicFilter(std::string_view filter);
// True when `topic` matches `filter` (MQTT 3.1.1 4.7), including the rule that filters starting
// with a wildcard do not match topics starting with '$'. Inputs are assumed valid.
bool TopicMatchesFilter(std::string_view filter, std::string_view topic);

// Incremental decoder: Feed() bytes as they arrive, then call Next() until it returns nullopt
// (needs more bytes) or an error (sticky). Buffered bytes are consumed with an offset and
// compacted occasionally, so decoding is linear in the input size.
// Memory: at most one packet of max_packet_size is buffered (plus what one Feed() brings); of an
// oversize PUBLISH only its topic, packet id and oversize_head_bytes of payload are, its other
// bytes are counted down as they arrive and dropped.
class Decoder {
 public:
  // `max_packet_size`: largest whole packet (fixed header included) decoded in full.
  // `oversize_head_bytes`: payload bytes kept of a larger PUBLISH (<= kMaxOversizeHeadBytes).
  explicit Decoder(std::size_t max_packet_size = kDefaultMaxPacketSize,
                   std::size_t oversize_head_bytes = kDefaultOversizeHeadBytes);

  void Feed(std::string_view bytes);
  Result<std::optional<Packet>> Next();

  // Bytes fed but not yet decoded.
  std::size_t buffered() const { return buffer_.size() - offset_; }
  // Forget buffered bytes, a PUBLISH being skipped and any error (for a new connection).
  void Reset();

 private:
  // Next() for a PUBLISH of `header` + `remaining` bytes over the limit.
  Result<std::optional<Packet>> StartSkip(std::uint8_t flags, std::size_t header,
                                          std::size_t remaining);

  std::size_t max_packet_size_;
  std::size_t oversize_head_bytes_;
  std::string buffer_;
  std::size_t offset_ = 0;
  Status error_;
  // An oversize PUBLISH being skipped: body bytes still to drop (the buffer is empty meanwhile),
  // and the packet to yield once they are gone.
  std::size_t skip_remaining_ = 0;
  std::optional<OversizePublish> skipped_;
};

}  // namespace outpost::mqtt
