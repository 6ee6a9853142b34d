// Allocation-free MQTT 3.1.1 wire layer for devices: encode the packets a client sends into a
// caller-provided buffer, and parse the packets a broker sends from a caller-provided buffer
// without copying (the result points into that buffer).
//
// Freestanding: only <cstddef>, <cstdint>, <string_view>; no heap, no exceptions, no RTTI. It is
// compiled for arm-none-eabi by devices/mcu/check_size.sh. The heap-based codec (codec.h) uses the
// shared primitives below (remaining length, UTF-8 and topic checks), so both agree on the wire.
//
// Ownership: nothing is owned. PacketView's string_views borrow the parsed buffer and are valid
//   until the caller changes or reuses it.
// Thread: pure functions, no shared state.
// Errors: WireError values; Encode* return size 0 plus an error, ParseFrame returns kError plus a
//   static, human-readable `detail`. A parse error means the byte stream has lost its framing: the
//   caller must drop the connection.
// Spec: OASIS MQTT Version 3.1.1. QoS 2 is not supported (rejected with a message saying so).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace outpost::mqtt {

// Well-formed UTF-8 per RFC 3629 (no surrogates, overlong forms or code points above U+10FFFF)
// and without U+0000, as MQTT 3.1.1 1.5.3 requires of its strings.
bool IsValidMqttUtf8(std::string_view s);

namespace wire {

// Largest remaining length the variable-length encoding can express (MQTT 3.1.1 2.2.3).
inline constexpr std::size_t kMaxRemainingLength = 268'435'455;

enum class WireError : std::uint8_t {
  kOk = 0,
  kBufferTooSmall,  // encode: the output buffer cannot hold the packet
  kBadTopic,        // empty, > 65535 bytes, invalid UTF-8, or a wildcard where none is allowed
  kBadString,       // a string field is > 65535 bytes or invalid UTF-8
  kBadArgument,     // packet id 0 with QoS 1, QoS > 1, password without user name, ...
  kMalformed,       // parse: the bytes are not a valid packet
  kTooLarge,        // parse: the packet is larger than the caller's limit
  kUnsupported,     // parse: a valid packet a device client does not accept (QoS 2, SUBSCRIBE..)
};
const char* WireErrorName(WireError e);

// ---- shared primitives ----

// Bytes needed to encode `remaining` as a variable-length integer (1..4). Precondition:
// remaining <= kMaxRemainingLength.
std::size_t RemainingLengthSize(std::size_t remaining);
// Writes the variable-length encoding of `remaining` to `out` (room for 4 bytes); returns bytes
// written. Precondition: remaining <= kMaxRemainingLength.
std::size_t PutRemainingLength(std::size_t remaining, std::uint8_t* out);

enum class LengthStatus : std::uint8_t { kOk, kNeedMore, kNotMinimal, kTooLong };
// Decodes the remaining length that starts at `p[0]` (the byte after the packet's first byte),
// `avail` bytes available. On kOk sets `value` and `used` (1..4).
LengthStatus GetRemainingLength(const std::uint8_t* p, std::size_t avail, std::size_t& value,
                                std::size_t& used);

enum class TopicCheck : std::uint8_t {
  kOk,
  kEmpty,
  kTooLong,
  kBadUtf8,
  kWildcardInName,   // '+' or '#' in a topic name
  kPartialWildcard,  // a filter level like "a+" or "#b"
  kHashNotLast,      // a filter with '#' before its last level
};
// Topic names (PUBLISH): non-empty valid UTF-8, <= 65535 bytes, no '+' or '#'.
TopicCheck CheckTopicName(std::string_view topic);
// Topic filters (SUBSCRIBE): like names, but '+' may fill a whole level and '#' the last level.
TopicCheck CheckTopicFilter(std::string_view filter);

// ---- encoding (client -> broker) ----

struct Encoded {
  std::size_t size = 0;  // bytes written; 0 on error
  WireError error = WireError::kOk;
  bool ok() const { return error == WireError::kOk; }
};

struct ConnectFields {
  std::string_view client_id;
  bool clean_session = true;
  std::uint16_t keepalive_s = 60;
  bool has_will = false;
  std::string_view will_topic;
  std::string_view will_payload;
  std::uint8_t will_qos = 0;  // 0 or 1
  bool will_retain = false;
  bool has_username = false;
  std::string_view username;
  bool has_password = false;  // requires has_username (3.1.1)
  std::string_view password;
};

struct PublishFields {
  std::string_view topic;
  std::string_view payload;
  std::uint8_t qos = 0;  // 0 or 1
  bool retain = false;
  bool dup = false;             // only with qos 1
  std::uint16_t packet_id = 0;  // non-zero iff qos 1
};

Encoded EncodeConnect(const ConnectFields& c, std::uint8_t* out, std::size_t capacity);
Encoded EncodePublish(const PublishFields& p, std::uint8_t* out, std::size_t capacity);
// Size of the PUBLISH EncodePublish would write (no validation).
std::size_t PublishSize(std::string_view topic, std::size_t payload_size, std::uint8_t qos);
Encoded EncodePubAck(std::uint16_t packet_id, std::uint8_t* out, std::size_t capacity);
// One filter per SUBSCRIBE is all a device needs.
Encoded EncodeSubscribe(std::uint16_t packet_id, std::string_view filter, std::uint8_t qos,
                        std::uint8_t* out, std::size_t capacity);
Encoded EncodePingReq(std::uint8_t* out, std::size_t capacity);
Encoded EncodeDisconnect(std::uint8_t* out, std::size_t capacity);

// ---- parsing (broker -> client) ----

enum class PacketKind : std::uint8_t {
  kNone = 0,
  kConnAck = 2,
  kPublish = 3,
  kPubAck = 4,
  kSubAck = 9,
  kUnsubAck = 11,
  kPingResp = 13,
};

// One parsed packet; string_views point into the parsed buffer.
struct PacketView {
  PacketKind kind = PacketKind::kNone;
  // CONNACK
  bool session_present = false;
  std::uint8_t return_code = 0;  // 0 accepted, 1..5 refused (MQTT 3.1.1 3.2.2.3)
  // PUBLISH
  std::string_view topic;
  std::string_view payload;
  std::uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  // PUBLISH (qos 1), PUBACK, SUBACK, UNSUBACK
  std::uint16_t packet_id = 0;
  // SUBACK: the first return code (0, 1 or 0x80 failure) and how many there were
  std::uint8_t suback_code = 0;
  std::uint16_t suback_count = 0;
};

enum class ParseStatus : std::uint8_t {
  kPacket,
  kNeedMore,
  kError,
  // A PUBLISH over max_packet_size: `packet` has its topic, flags and packet id, and as payload
  // the part of it in the buffer (a head). Drop `consumed` bytes now and the next `skip` bytes
  // of the stream as they arrive; then the packet is over (acknowledge it if QoS 1).
  kOversize,
};

struct ParseResult {
  ParseStatus status = ParseStatus::kNeedMore;
  std::size_t consumed = 0;  // kPacket: bytes of this packet; kOversize: bytes to drop now
  std::size_t skip = 0;      // kOversize: bytes of the packet still to come, to drop unread
  std::size_t total = 0;     // kPacket, kOversize: the whole packet (fixed header included)
  PacketView packet;
  WireError error = WireError::kOk;  // kError only
  const char* detail = "";           // kError only: static text, e.g. "PUBLISH: QoS 2 ..."
};

// Parses the first packet in `data[0..size)`. kNeedMore when the packet is not complete yet
// (nothing consumed); kOversize for a PUBLISH over `max_packet_size` once its topic and packet
// id are in the buffer (skip it, see above); kError when the bytes are malformed, a packet other
// than PUBLISH is over `max_packet_size` (or a PUBLISH whose topic alone does not fit in it:
// kTooLarge), or it is a packet a client never receives (CONNECT, SUBSCRIBE, PINGREQ, ...) or
// QoS 2. `max_packet_size` is the caller's buffer size: never more than that is needed.
ParseResult ParseFrame(const std::uint8_t* data, std::size_t size, std::size_t max_packet_size);

}  // namespace wire
}  // namespace outpost::mqtt
