#include "outpost/mqtt/codec.h"

#include <algorithm>
#include <tuple>

#include "outpost/base/check.h"

namespace outpost::mqtt {
namespace {

constexpr std::string_view kProtocolName = "MQTT";
constexpr std::uint8_t kProtocolLevel = 4;  // 3.1.1

// ---- encoding ----

void PutU8(std::string& out, std::uint8_t v) { out.push_back(static_cast<char>(v)); }

void PutU16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}

void PutString(std::string& out, std::string_view s) {
  OUTPOST_CHECK(s.size() <= 0xffff);
  PutU16(out, static_cast<std::uint16_t>(s.size()));
  out.append(s.data(), s.size());
}

void PutFixedHeader(std::string& out, PacketType type, std::uint8_t flags, std::size_t remaining) {
  OUTPOST_CHECK(remaining <= kMaxRemainingLength);
  PutU8(out, static_cast<std::uint8_t>(static_cast<std::uint8_t>(type) << 4 | flags));
  std::uint8_t length[4];
  out.append(reinterpret_cast<const char*>(length), wire::PutRemainingLength(remaining, length));
}

struct Encoder {
  std::string& out;

  void operator()(const Connect& p) {
    std::size_t len = 2 + kProtocolName.size() + 1 + 1 + 2 + 2 + p.client_id.size();
    std::uint8_t flags = 0;
    if (p.clean_session) flags |= 0x02;
    if (p.will) {
      flags |= 0x04 | static_cast<std::uint8_t>(p.will->qos << 3);
      if (p.will->retain) flags |= 0x20;
      len += 2 + p.will->topic.size() + 2 + p.will->payload.size();
    }
    if (p.password) {
      flags |= 0x40;
      len += 2 + p.password->size();
    }
    if (p.username) {
      flags |= 0x80;
      len += 2 + p.username->size();
    }
    PutFixedHeader(out, PacketType::kConnect, 0, len);
    PutString(out, kProtocolName);
    PutU8(out, kProtocolLevel);
    PutU8(out, flags);
    PutU16(out, p.keepalive_s);
    PutString(out, p.client_id);
    if (p.will) {
      PutString(out, p.will->topic);
      PutString(out, p.will->payload);
    }
    if (p.username) PutString(out, *p.username);
    if (p.password) PutString(out, *p.password);
  }
  void operator()(const ConnAck& p) {
    PutFixedHeader(out, PacketType::kConnAck, 0, 2);
    PutU8(out, p.session_present ? 1 : 0);
    PutU8(out, p.return_code);
  }
  void operator()(const Publish& p) {
    std::size_t len = 2 + p.topic.size() + (p.qos > 0 ? 2 : 0) + p.payload.size();
    std::uint8_t flags = static_cast<std::uint8_t>(p.qos << 1);
    if (p.dup) flags |= 0x08;
    if (p.retain) flags |= 0x01;
    out.reserve(out.size() + len + 5);
    PutFixedHeader(out, PacketType::kPublish, flags, len);
    PutString(out, p.topic);
    if (p.qos > 0) PutU16(out, p.packet_id);
    out.append(p.payload);
  }
  void operator()(const PubAck& p) {
    PutFixedHeader(out, PacketType::kPubAck, 0, 2);
    PutU16(out, p.packet_id);
  }
  void operator()(const Subscribe& p) {
    std::size_t len = 2;
    for (const auto& s : p.subscriptions) len += 2 + s.filter.size() + 1;
    PutFixedHeader(out, PacketType::kSubscribe, 0x02, len);
    PutU16(out, p.packet_id);
    for (const auto& s : p.subscriptions) {
      PutString(out, s.filter);
      PutU8(out, s.qos);
    }
  }
  void operator()(const SubAck& p) {
    PutFixedHeader(out, PacketType::kSubAck, 0, 2 + p.codes.size());
    PutU16(out, p.packet_id);
    for (std::uint8_t c : p.codes) PutU8(out, c);
  }
  void operator()(const Unsubscribe& p) {
    std::size_t len = 2;
    for (const auto& f : p.filters) len += 2 + f.size();
    PutFixedHeader(out, PacketType::kUnsubscribe, 0x02, len);
    PutU16(out, p.packet_id);
    for (const auto& f : p.filters) PutString(out, f);
  }
  void operator()(const UnsubAck& p) {
    PutFixedHeader(out, PacketType::kUnsubAck, 0, 2);
    PutU16(out, p.packet_id);
  }
  void operator()(const PingReq&) { PutFixedHeader(out, PacketType::kPingReq, 0, 0); }
  void operator()(const PingResp&) { PutFixedHeader(out, PacketType::kPingResp, 0, 0); }
  void operator()(const Disconnect&) { PutFixedHeader(out, PacketType::kDisconnect, 0, 0); }
  void operator()(const OversizePublish&) {
    OUTPOST_CHECK(false && "an OversizePublish is decoded, never encoded");
  }
};

// ---- decoding ----

// Reads fields from one packet's body; every read checks the bounds.
class Reader {
 public:
  Reader(std::string_view data, const char* packet) : data_(data), packet_(packet) {}

  bool empty() const { return pos_ == data_.size(); }
  std::size_t remaining() const { return data_.size() - pos_; }

  Status U8(std::uint8_t& v, const char* field) {
    if (remaining() < 1) return Truncated(field);
    v = static_cast<std::uint8_t>(data_[pos_++]);
    return Status::Ok();
  }
  Status U16(std::uint16_t& v, const char* field) {
    if (remaining() < 2) return Truncated(field);
    v = static_cast<std::uint16_t>(static_cast<std::uint8_t>(data_[pos_]) << 8 |
                                   static_cast<std::uint8_t>(data_[pos_ + 1]));
    pos_ += 2;
    return Status::Ok();
  }
  Status PacketId(std::uint16_t& v) {
    OUTPOST_RETURN_IF_ERROR(U16(v, "packet id"));
    if (v == 0) return Error("packet id 0 is not allowed");
    return Status::Ok();
  }
  // A length-prefixed field. `utf8`: must be valid MQTT UTF-8.
  Status Bytes(std::string& v, const char* field, bool utf8) {
    std::uint16_t len = 0;
    OUTPOST_RETURN_IF_ERROR(U16(len, field));
    if (remaining() < len) return Truncated(field);
    std::string_view s = data_.substr(pos_, len);
    if (utf8 && !IsValidMqttUtf8(s)) return Error(std::string(field) + " is not valid UTF-8");
    v.assign(s.data(), s.size());
    pos_ += len;
    return Status::Ok();
  }
  std::string_view Rest() {
    std::string_view r = data_.substr(pos_);
    pos_ = data_.size();
    return r;
  }
  Status ExpectEnd() {
    if (!empty()) {
      return Error(std::to_string(remaining()) + " unexpected trailing bytes");
    }
    return Status::Ok();
  }
  Status Error(const std::string& what) const {
    return InvalidArgument(std::string("MQTT ") + packet_ + ": " + what);
  }

 private:
  Status Truncated(const char* field) const { return Error(std::string("truncated ") + field); }

  std::string_view data_;
  std::size_t pos_ = 0;
  const char* packet_;
};

Status DecodeConnect(Reader& r, Connect& p) {
  std::string name;
  OUTPOST_RETURN_IF_ERROR(r.Bytes(name, "protocol name", true));
  if (name != kProtocolName) return r.Error("protocol name is not \"MQTT\"");
  std::uint8_t level = 0, flags = 0;
  OUTPOST_RETURN_IF_ERROR(r.U8(level, "protocol level"));
  if (level != kProtocolLevel) {
    return r.Error("unsupported protocol level " + std::to_string(level) + " (want 4)");
  }
  OUTPOST_RETURN_IF_ERROR(r.U8(flags, "connect flags"));
  if (flags & 0x01) return r.Error("reserved connect flag is set");
  OUTPOST_RETURN_IF_ERROR(r.U16(p.keepalive_s, "keepalive"));
  p.clean_session = flags & 0x02;
  const bool will = flags & 0x04;
  const std::uint8_t will_qos = (flags >> 3) & 0x03;
  const bool will_retain = flags & 0x20;
  const bool has_password = flags & 0x40;
  const bool has_username = flags & 0x80;
  if (!will && (will_qos != 0 || will_retain)) {
    return r.Error("will QoS/retain set without will flag");
  }
  if (will_qos == 3) return r.Error("will QoS 3 is invalid");
  if (will_qos == 2) return r.Error("will QoS 2 is not supported");
  if (has_password && !has_username) return r.Error("password flag without username flag");
  OUTPOST_RETURN_IF_ERROR(r.Bytes(p.client_id, "client id", true));
  if (will) {
    Will w;
    w.qos = will_qos;
    w.retain = will_retain;
    OUTPOST_RETURN_IF_ERROR(r.Bytes(w.topic, "will topic", true));
    Status s = ValidateTopicName(w.topic);
    if (!s.ok()) return r.Error("will " + s.message());
    OUTPOST_RETURN_IF_ERROR(r.Bytes(w.payload, "will payload", false));
    p.will = std::move(w);
  }
  if (has_username) {
    p.username.emplace();
    OUTPOST_RETURN_IF_ERROR(r.Bytes(*p.username, "username", true));
  }
  if (has_password) {
    p.password.emplace();
    OUTPOST_RETURN_IF_ERROR(r.Bytes(*p.password, "password", false));
  }
  return r.ExpectEnd();
}

Status DecodeConnAck(Reader& r, ConnAck& p) {
  std::uint8_t ack_flags = 0;
  OUTPOST_RETURN_IF_ERROR(r.U8(ack_flags, "acknowledge flags"));
  if (ack_flags & 0xfe) return r.Error("reserved acknowledge flags are set");
  p.session_present = ack_flags & 0x01;
  OUTPOST_RETURN_IF_ERROR(r.U8(p.return_code, "return code"));
  if (p.return_code > kRefusedNotAuthorized) {
    return r.Error("unknown return code " + std::to_string(p.return_code));
  }
  if (p.return_code != kConnectionAccepted && p.session_present) {
    return r.Error("session present set on a refused connection");
  }
  return r.ExpectEnd();
}

Status DecodePublishFlags(const Reader& r, std::uint8_t flags, Publish& p) {
  p.retain = flags & 0x01;
  p.qos = (flags >> 1) & 0x03;
  p.dup = flags & 0x08;
  if (p.qos == 3) return r.Error("QoS 3 is invalid");
  if (p.qos == 2) return r.Error("QoS 2 is not supported");
  if (p.qos == 0 && p.dup) return r.Error("DUP flag set on a QoS 0 message");
  return Status::Ok();
}

Status DecodePublish(Reader& r, std::uint8_t flags, Publish& p) {
  OUTPOST_RETURN_IF_ERROR(DecodePublishFlags(r, flags, p));
  OUTPOST_RETURN_IF_ERROR(r.Bytes(p.topic, "topic", true));
  Status s = ValidateTopicName(p.topic);
  if (!s.ok()) return r.Error(s.message());
  if (p.qos > 0) OUTPOST_RETURN_IF_ERROR(r.PacketId(p.packet_id));
  std::string_view payload = r.Rest();
  p.payload.assign(payload.data(), payload.size());
  return Status::Ok();
}

Status DecodePacketIdOnly(Reader& r, std::uint16_t& id) {
  OUTPOST_RETURN_IF_ERROR(r.PacketId(id));
  return r.ExpectEnd();
}

Status DecodeSubscribe(Reader& r, Subscribe& p) {
  OUTPOST_RETURN_IF_ERROR(r.PacketId(p.packet_id));
  if (r.empty()) return r.Error("no topic filters");
  while (!r.empty()) {
    Subscription s;
    OUTPOST_RETURN_IF_ERROR(r.Bytes(s.filter, "topic filter", true));
    Status v = ValidateTopicFilter(s.filter);
    if (!v.ok()) return r.Error(v.message());
    OUTPOST_RETURN_IF_ERROR(r.U8(s.qos, "requested QoS"));
    if (s.qos & 0xfc) return r.Error("reserved bits set in requested QoS");
    if (s.qos == 3) return r.Error("requested QoS 3 is invalid");
    if (s.qos == 2) return r.Error("requested QoS 2 is not supported");
    p.subscriptions.push_back(std::move(s));
  }
  return Status::Ok();
}

Status DecodeSubAck(Reader& r, SubAck& p) {
  OUTPOST_RETURN_IF_ERROR(r.PacketId(p.packet_id));
  if (r.empty()) return r.Error("no return codes");
  std::string_view codes = r.Rest();
  p.codes.reserve(codes.size());
  for (char ch : codes) {
    auto c = static_cast<std::uint8_t>(ch);
    if (c == 2) return r.Error("granted QoS 2 is not supported");
    if (c != 0 && c != 1 && c != kSubAckFailure) {
      return r.Error("invalid return code " + std::to_string(c));
    }
    p.codes.push_back(c);
  }
  return Status::Ok();
}

Status DecodeUnsubscribe(Reader& r, Unsubscribe& p) {
  OUTPOST_RETURN_IF_ERROR(r.PacketId(p.packet_id));
  if (r.empty()) return r.Error("no topic filters");
  while (!r.empty()) {
    std::string f;
    OUTPOST_RETURN_IF_ERROR(r.Bytes(f, "topic filter", true));
    Status v = ValidateTopicFilter(f);
    if (!v.ok()) return r.Error(v.message());
    p.filters.push_back(std::move(f));
  }
  return Status::Ok();
}

const char* TypeName(std::uint8_t type) {
  static const char* const kNames[] = {"reserved(0)", "CONNECT",  "CONNACK",     "PUBLISH",
                                       "PUBACK",      "PUBREC",   "PUBREL",      "PUBCOMP",
                                       "SUBSCRIBE",   "SUBACK",   "UNSUBSCRIBE", "UNSUBACK",
                                       "PINGREQ",     "PINGRESP", "DISCONNECT",  "reserved(15)"};
  return kNames[type & 0x0f];
}

Result<Packet> DecodeBody(std::uint8_t type, std::uint8_t flags, std::string_view body) {
  Reader r(body, TypeName(type));
  auto expect_flags = [&](std::uint8_t want) -> Status {
    if (flags != want) {
      return r.Error("reserved fixed-header flags are " + std::to_string(flags) + ", must be " +
                     std::to_string(want));
    }
    return Status::Ok();
  };
  switch (static_cast<PacketType>(type)) {
    case PacketType::kConnect: {
      OUTPOST_RETURN_IF_ERROR(expect_flags(0));
      Connect p;
      OUTPOST_RETURN_IF_ERROR(DecodeConnect(r, p));
      return Packet(std::move(p));
    }
    case PacketType::kConnAck: {
      OUTPOST_RETURN_IF_ERROR(expect_flags(0));
      ConnAck p;
      OUTPOST_RETURN_IF_ERROR(DecodeConnAck(r, p));
      return Packet(p);
    }
    case PacketType::kPublish: {
      Publish p;
      OUTPOST_RETURN_IF_ERROR(DecodePublish(r, flags, p));
      return Packet(std::move(p));
    }
    case PacketType::kPubAck: {
      OUTPOST_RETURN_IF_ERROR(expect_flags(0));
      PubAck p;
      OUTPOST_RETURN_IF_ERROR(DecodePacketIdOnly(r, p.packet_id));
      return Packet(p);
    }
    case PacketType::kPubRec:
    case PacketType::kPubRel:
    case PacketType::kPubComp:
      return r.Error("QoS 2 flow is not supported");
    case PacketType::kSubscribe: {
      OUTPOST_RETURN_IF_ERROR(expect_flags(2));
      Subscribe p;
      OUTPOST_RETURN_IF_ERROR(DecodeSubscribe(r, p));
      return Packet(std::move(p));
    }
    case PacketType::kSubAck: {
      OUTPOST_RETURN_IF_ERROR(expect_flags(0));
      SubAck p;
      OUTPOST_RETURN_IF_ERROR(DecodeSubAck(r, p));
      return Packet(std::move(p));
    }
    case PacketType::kUnsubscribe: {
      OUTPOST_RETURN_IF_ERROR(expect_flags(2));
      Unsubscribe p;
      OUTPOST_RETURN_IF_ERROR(DecodeUnsubscribe(r, p));
      return Packet(std::move(p));
    }
    case PacketType::kUnsubAck: {
      OUTPOST_RETURN_IF_ERROR(expect_flags(0));
      UnsubAck p;
      OUTPOST_RETURN_IF_ERROR(DecodePacketIdOnly(r, p.packet_id));
      return Packet(p);
    }
    case PacketType::kPingReq:
    case PacketType::kPingResp:
    case PacketType::kDisconnect: {
      OUTPOST_RETURN_IF_ERROR(expect_flags(0));
      OUTPOST_RETURN_IF_ERROR(r.ExpectEnd());
      if (type == static_cast<std::uint8_t>(PacketType::kPingReq)) return Packet(PingReq{});
      if (type == static_cast<std::uint8_t>(PacketType::kPingResp)) return Packet(PingResp{});
      return Packet(Disconnect{});
    }
  }
  return InvalidArgument("MQTT: unknown packet type " + std::to_string(type));
}

Status TopicStatus(wire::TopicCheck check, const char* what) {
  switch (check) {
    case wire::TopicCheck::kOk:
      return Status::Ok();
    case wire::TopicCheck::kEmpty:
      return InvalidArgument(std::string(what) + " is empty");
    case wire::TopicCheck::kTooLong:
      return InvalidArgument(std::string(what) + " is longer than 65535 bytes");
    case wire::TopicCheck::kBadUtf8:
      return InvalidArgument(std::string(what) + " is not valid UTF-8 (or contains U+0000)");
    case wire::TopicCheck::kWildcardInName:
      return InvalidArgument("topic name contains a wildcard ('+' or '#')");
    case wire::TopicCheck::kPartialWildcard:
      return InvalidArgument("topic filter has a wildcard that is not a whole level");
    case wire::TopicCheck::kHashNotLast:
      return InvalidArgument("topic filter has '#' before the last level");
  }
  return InvalidArgument(std::string(what) + " is invalid");
}

}  // namespace

const char* ConnAckCodeName(std::uint8_t code) {
  switch (code) {
    case kConnectionAccepted:
      return "accepted";
    case kRefusedProtocolVersion:
      return "unacceptable protocol version";
    case kRefusedIdentifierRejected:
      return "identifier rejected";
    case kRefusedServerUnavailable:
      return "server unavailable";
    case kRefusedBadUsernameOrPassword:
      return "bad user name or password";
    case kRefusedNotAuthorized:
      return "not authorized";
    default:
      return "unknown return code";
  }
}

const char* PacketName(const Packet& packet) {
  if (std::holds_alternative<OversizePublish>(packet)) return "PUBLISH";
  return TypeName(static_cast<std::uint8_t>(packet.index() + 1 + (packet.index() >= 4 ? 3 : 0)));
}

bool operator==(const Will& a, const Will& b) {
  return std::tie(a.topic, a.payload, a.qos, a.retain) ==
         std::tie(b.topic, b.payload, b.qos, b.retain);
}
bool operator==(const Connect& a, const Connect& b) {
  return std::tie(a.client_id, a.clean_session, a.keepalive_s, a.username, a.password, a.will) ==
         std::tie(b.client_id, b.clean_session, b.keepalive_s, b.username, b.password, b.will);
}
bool operator==(const ConnAck& a, const ConnAck& b) {
  return a.session_present == b.session_present && a.return_code == b.return_code;
}
bool operator==(const Publish& a, const Publish& b) {
  return std::tie(a.topic, a.payload, a.qos, a.retain, a.dup, a.packet_id) ==
         std::tie(b.topic, b.payload, b.qos, b.retain, b.dup, b.packet_id);
}
bool operator==(const PubAck& a, const PubAck& b) { return a.packet_id == b.packet_id; }
bool operator==(const Subscription& a, const Subscription& b) {
  return a.filter == b.filter && a.qos == b.qos;
}
bool operator==(const Subscribe& a, const Subscribe& b) {
  return a.packet_id == b.packet_id && a.subscriptions == b.subscriptions;
}
bool operator==(const SubAck& a, const SubAck& b) {
  return a.packet_id == b.packet_id && a.codes == b.codes;
}
bool operator==(const Unsubscribe& a, const Unsubscribe& b) {
  return a.packet_id == b.packet_id && a.filters == b.filters;
}
bool operator==(const UnsubAck& a, const UnsubAck& b) { return a.packet_id == b.packet_id; }
bool operator==(const OversizePublish& a, const OversizePublish& b) {
  return std::tie(a.topic, a.head, a.qos, a.retain, a.dup, a.packet_id, a.packet_bytes,
                  a.payload_bytes) == std::tie(b.topic, b.head, b.qos, b.retain, b.dup, b.packet_id,
                                               b.packet_bytes, b.payload_bytes);
}

void Encode(const Packet& packet, std::string& out) { std::visit(Encoder{out}, packet); }

std::size_t EncodedPublishSize(std::string_view topic, std::size_t payload_size, int qos) {
  std::size_t remaining = 2 + topic.size() + (qos > 0 ? 2 : 0) + payload_size;
  return 1 + wire::RemainingLengthSize(remaining) + remaining;
}

Status ValidateTopicName(std::string_view topic) {
  return TopicStatus(wire::CheckTopicName(topic), "topic name");
}

Status ValidateTopicFilter(std::string_view filter) {
  return TopicStatus(wire::CheckTopicFilter(filter), "topic filter");
}

bool TopicMatchesFilter(std::string_view filter, std::string_view topic) {
  if (!topic.empty() && topic[0] == '$' && !filter.empty() &&
      (filter[0] == '+' || filter[0] == '#')) {
    return false;
  }
  std::size_t f = 0, t = 0;
  while (true) {
    std::size_t f_end = filter.find('/', f);
    std::string_view f_level =
        filter.substr(f, f_end == std::string_view::npos ? std::string_view::npos : f_end - f);
    if (f_level == "#") return true;  // matches the parent level too ("a/#" matches "a")
    if (t > topic.size()) return false;
    std::size_t t_end = topic.find('/', t);
    std::string_view t_level =
        topic.substr(t, t_end == std::string_view::npos ? std::string_view::npos : t_end - t);
    if (f_level != "+" && f_level != t_level) return false;
    const bool f_last = f_end == std::string_view::npos;
    const bool t_last = t_end == std::string_view::npos;
    if (f_last && t_last) return true;
    if (f_last) return false;
    f = f_end + 1;
    if (t_last) {
      // Topic exhausted: only a trailing "#" can still match.
      return filter.substr(f) == "#";
    }
    t = t_end + 1;
  }
}

Decoder::Decoder(std::size_t max_packet_size, std::size_t oversize_head_bytes)
    : max_packet_size_(max_packet_size), oversize_head_bytes_(oversize_head_bytes) {
  OUTPOST_CHECK(oversize_head_bytes_ <= kMaxOversizeHeadBytes);
}

void Decoder::Feed(std::string_view bytes) {
  if (!error_.ok()) return;
  if (skip_remaining_ > 0) {
    // The buffer is empty while skipping: drop the oversize body as it streams in.
    const std::size_t n = std::min(skip_remaining_, bytes.size());
    skip_remaining_ -= n;
    bytes.remove_prefix(n);
  }
  // Compact when the consumed prefix dominates: amortised O(1) per byte.
  if (offset_ > 0 && (offset_ == buffer_.size() || offset_ >= buffer_.size() / 2)) {
    buffer_.erase(0, offset_);
    offset_ = 0;
  }
  buffer_.append(bytes.data(), bytes.size());
}

void Decoder::Reset() {
  buffer_.clear();
  offset_ = 0;
  error_ = Status::Ok();
  skip_remaining_ = 0;
  skipped_.reset();
}

Result<std::optional<Packet>> Decoder::StartSkip(std::uint8_t flags, std::size_t header,
                                                 std::size_t remaining) {
  const std::size_t avail = buffer_.size() - offset_;
  const std::string_view body(buffer_.data() + offset_ + header, avail - header);
  // Checked as early as the bytes allow, as for a PUBLISH within the limit (and as the device
  // layer does): flags, then the topic and packet id, then the head is waited for.
  auto fail = [&](Status s) -> Result<std::optional<Packet>> {
    error_ = std::move(s);
    return error_;
  };
  Publish pub;
  if (Status s = DecodePublishFlags(Reader(body, "PUBLISH"), flags, pub); !s.ok()) return fail(s);
  if (body.size() < 2) return std::optional<Packet>();
  const std::size_t topic_len = static_cast<std::size_t>(static_cast<std::uint8_t>(body[0]) << 8 |
                                                         static_cast<std::uint8_t>(body[1]));
  if (remaining < 2 + topic_len) return fail(InvalidArgument("MQTT PUBLISH: truncated topic"));
  const std::size_t id_end = std::min(remaining, 2 + topic_len + (pub.qos > 0 ? 2 : 0));
  if (body.size() < id_end) return std::optional<Packet>();
  Reader fields(body.substr(0, id_end), "PUBLISH");
  if (Status s = DecodePublish(fields, flags, pub); !s.ok()) return fail(s);
  // The head: the payload's first bytes, the same whatever the chunking of the stream.
  const std::size_t prefix = std::min(remaining, id_end + oversize_head_bytes_);
  if (body.size() < prefix) return std::optional<Packet>();
  pub.payload.assign(body.data() + id_end, prefix - id_end);
  OversizePublish o;
  o.topic = std::move(pub.topic);
  o.head = std::move(pub.payload);
  o.qos = pub.qos;
  o.retain = pub.retain;
  o.dup = pub.dup;
  o.packet_id = pub.packet_id;
  o.packet_bytes = header + remaining;
  o.payload_bytes = remaining - (prefix - o.head.size());
  // Drop what of the body is buffered already; Feed() drops the rest as it arrives.
  const std::size_t body_left = remaining - prefix;
  const std::size_t buffered_body = avail - header - prefix;
  const std::size_t drop = std::min(body_left, buffered_body);
  offset_ += header + prefix + drop;
  skip_remaining_ = body_left - drop;
  if (offset_ == buffer_.size()) {
    buffer_.clear();
    offset_ = 0;
  }
  if (skip_remaining_ > 0) {
    skipped_ = std::move(o);
    return std::optional<Packet>();
  }
  return std::optional<Packet>(Packet(std::move(o)));
}

Result<std::optional<Packet>> Decoder::Next() {
  if (!error_.ok()) return error_;
  if (skip_remaining_ > 0) return std::optional<Packet>();
  if (skipped_) {
    Packet done(std::move(*skipped_));
    skipped_.reset();
    return std::optional<Packet>(std::move(done));
  }
  const std::size_t avail = buffer_.size() - offset_;
  if (avail < 2) return std::optional<Packet>();
  const auto* p = reinterpret_cast<const std::uint8_t*>(buffer_.data() + offset_);
  const std::uint8_t type = p[0] >> 4;
  const std::uint8_t flags = p[0] & 0x0f;
  if (type == 0 || type == 15) {
    error_ = InvalidArgument("MQTT: unknown packet type " + std::to_string(type));
    return error_;
  }
  std::size_t remaining = 0;
  std::size_t used = 0;
  switch (wire::GetRemainingLength(p + 1, avail - 1, remaining, used)) {
    case wire::LengthStatus::kNeedMore:
      return std::optional<Packet>();  // length continues in later bytes
    case wire::LengthStatus::kNotMinimal:
      error_ = InvalidArgument(std::string("MQTT ") + TypeName(type) +
                               ": remaining length is not minimally encoded");
      return error_;
    case wire::LengthStatus::kTooLong:
      error_ = InvalidArgument(std::string("MQTT ") + TypeName(type) +
                               ": remaining length longer than 4 bytes");
      return error_;
    case wire::LengthStatus::kOk:
      break;
  }
  const std::size_t header = 1 + used;
  if (header + remaining > max_packet_size_) {
    // A giant message is skipped, not fatal: the session goes on (issue 8). Any other packet
    // this large is a broken peer.
    if (type == static_cast<std::uint8_t>(PacketType::kPublish)) {
      return StartSkip(flags, header, remaining);
    }
    error_ = InvalidArgument(std::string("MQTT ") + TypeName(type) + ": packet of " +
                             std::to_string(header + remaining) + " bytes exceeds the limit of " +
                             std::to_string(max_packet_size_));
    return error_;
  }
  if (avail < header + remaining) return std::optional<Packet>();
  std::string_view body(buffer_.data() + offset_ + header, remaining);
  Result<Packet> packet = DecodeBody(type, flags, body);
  if (!packet.ok()) {
    error_ = packet.status();
    return error_;
  }
  offset_ += header + remaining;
  if (offset_ == buffer_.size()) {
    buffer_.clear();
    offset_ = 0;
  }
  return std::optional<Packet>(std::move(packet).value());
}

}  // namespace outpost::mqtt
