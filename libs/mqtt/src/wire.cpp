// Freestanding on purpose: no <string>, <vector>, exceptions or heap (see wire.h).
#include "outpost/mqtt/wire.h"

namespace outpost::mqtt {

bool IsValidMqttUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) {
      if (c == 0) return false;
      ++i;
      continue;
    }
    std::size_t len;
    std::uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) {
      return false;  // overlong
    }
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

namespace wire {

const char* WireErrorName(WireError e) {
  switch (e) {
    case WireError::kOk:
      return "ok";
    case WireError::kBufferTooSmall:
      return "buffer_too_small";
    case WireError::kBadTopic:
      return "bad_topic";
    case WireError::kBadString:
      return "bad_string";
    case WireError::kBadArgument:
      return "bad_argument";
    case WireError::kMalformed:
      return "malformed";
    case WireError::kTooLarge:
      return "too_large";
    case WireError::kUnsupported:
      return "unsupported";
  }
  return "unknown";
}

std::size_t RemainingLengthSize(std::size_t v) {
  if (v < 128) return 1;
  if (v < 16'384) return 2;
  if (v < 2'097'152) return 3;
  return 4;
}

std::size_t PutRemainingLength(std::size_t remaining, std::uint8_t* out) {
  std::size_t n = 0;
  do {
    std::uint8_t byte = remaining % 128;
    remaining /= 128;
    if (remaining > 0) byte |= 0x80;
    out[n++] = byte;
  } while (remaining > 0);
  return n;
}

LengthStatus GetRemainingLength(const std::uint8_t* p, std::size_t avail, std::size_t& value,
                                std::size_t& used) {
  std::size_t v = 0;
  for (std::size_t i = 0;; ++i) {
    if (i >= avail) return LengthStatus::kNeedMore;  // length continues in later bytes
    const std::uint8_t b = p[i];
    v |= static_cast<std::size_t>(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) {
      // A multi-byte encoding must not end in a zero byte (non-minimal, 2.2.3).
      if (i > 0 && b == 0) return LengthStatus::kNotMinimal;
      value = v;
      used = i + 1;
      return LengthStatus::kOk;
    }
    if (i == 3) return LengthStatus::kTooLong;
  }
}

namespace {

TopicCheck CheckCommon(std::string_view s) {
  if (s.empty()) return TopicCheck::kEmpty;
  if (s.size() > 0xffff) return TopicCheck::kTooLong;
  if (!IsValidMqttUtf8(s)) return TopicCheck::kBadUtf8;
  return TopicCheck::kOk;
}

bool HasWildcard(std::string_view s) {
  for (char c : s) {
    if (c == '+' || c == '#') return true;
  }
  return false;
}

}  // namespace

TopicCheck CheckTopicName(std::string_view topic) {
  TopicCheck c = CheckCommon(topic);
  if (c != TopicCheck::kOk) return c;
  if (HasWildcard(topic)) return TopicCheck::kWildcardInName;
  return TopicCheck::kOk;
}

TopicCheck CheckTopicFilter(std::string_view filter) {
  TopicCheck c = CheckCommon(filter);
  if (c != TopicCheck::kOk) return c;
  std::size_t level_start = 0;
  for (std::size_t i = 0; i <= filter.size(); ++i) {
    if (i < filter.size() && filter[i] != '/') continue;
    std::string_view level = filter.substr(level_start, i - level_start);
    if (level.size() > 1 && HasWildcard(level)) return TopicCheck::kPartialWildcard;
    if (level == "#" && i != filter.size()) return TopicCheck::kHashNotLast;
    level_start = i + 1;
  }
  return TopicCheck::kOk;
}

// ---- encoding ----

namespace {

constexpr std::uint8_t kConnect = 1, kPublish = 3, kPubAck = 4, kSubscribe = 8, kPingReq = 12,
                       kDisconnect = 14;

// Bounds-checked appender; the first overflow sticks.
class Out {
 public:
  Out(std::uint8_t* buf, std::size_t cap) : buf_(buf), cap_(cap) {}
  bool Header(std::uint8_t type, std::uint8_t flags, std::size_t remaining) {
    if (remaining > kMaxRemainingLength) return overflow_ = true, false;
    if (1 + RemainingLengthSize(remaining) + remaining > cap_) return overflow_ = true, false;
    buf_[len_++] = static_cast<std::uint8_t>(type << 4 | flags);
    len_ += PutRemainingLength(remaining, buf_ + len_);
    return true;
  }
  void U8(std::uint8_t v) {
    if (len_ + 1 > cap_) {
      overflow_ = true;
      return;
    }
    buf_[len_++] = v;
  }
  void U16(std::uint16_t v) {
    U8(static_cast<std::uint8_t>(v >> 8));
    U8(static_cast<std::uint8_t>(v & 0xff));
  }
  void Bytes(std::string_view s) {
    if (len_ + s.size() > cap_) {
      overflow_ = true;
      return;
    }
    for (char c : s) buf_[len_++] = static_cast<std::uint8_t>(c);
  }
  void String(std::string_view s) {
    U16(static_cast<std::uint16_t>(s.size()));
    Bytes(s);
  }
  Encoded Done() const {
    if (overflow_) return {0, WireError::kBufferTooSmall};
    return {len_, WireError::kOk};
  }

 private:
  std::uint8_t* buf_;
  std::size_t cap_;
  std::size_t len_ = 0;
  bool overflow_ = false;
};

Encoded Fail(WireError e) { return {0, e}; }

bool StringOk(std::string_view s, bool utf8) {
  return s.size() <= 0xffff && (!utf8 || IsValidMqttUtf8(s));
}

}  // namespace

Encoded EncodeConnect(const ConnectFields& c, std::uint8_t* out, std::size_t capacity) {
  if (!StringOk(c.client_id, true)) return Fail(WireError::kBadString);
  if (c.has_password && !c.has_username) return Fail(WireError::kBadArgument);
  if (c.has_username && !StringOk(c.username, true)) return Fail(WireError::kBadString);
  if (c.has_password && !StringOk(c.password, false)) return Fail(WireError::kBadString);
  std::size_t len = 2 + 4 + 1 + 1 + 2 + 2 + c.client_id.size();
  std::uint8_t flags = 0;
  if (c.clean_session) flags |= 0x02;
  if (c.has_will) {
    if (CheckTopicName(c.will_topic) != TopicCheck::kOk) return Fail(WireError::kBadTopic);
    if (c.will_qos > 1) return Fail(WireError::kBadArgument);
    if (!StringOk(c.will_payload, false)) return Fail(WireError::kBadString);
    flags |= 0x04 | static_cast<std::uint8_t>(c.will_qos << 3);
    if (c.will_retain) flags |= 0x20;
    len += 2 + c.will_topic.size() + 2 + c.will_payload.size();
  }
  if (c.has_password) {
    flags |= 0x40;
    len += 2 + c.password.size();
  }
  if (c.has_username) {
    flags |= 0x80;
    len += 2 + c.username.size();
  }
  Out o(out, capacity);
  if (o.Header(kConnect, 0, len)) {
    o.String("MQTT");
    o.U8(4);  // protocol level 3.1.1
    o.U8(flags);
    o.U16(c.keepalive_s);
    o.String(c.client_id);
    if (c.has_will) {
      o.String(c.will_topic);
      o.String(c.will_payload);
    }
    if (c.has_username) o.String(c.username);
    if (c.has_password) o.String(c.password);
  }
  return o.Done();
}

std::size_t PublishSize(std::string_view topic, std::size_t payload_size, std::uint8_t qos) {
  std::size_t remaining = 2 + topic.size() + (qos > 0 ? 2 : 0) + payload_size;
  return 1 + RemainingLengthSize(remaining) + remaining;
}

Encoded EncodePublish(const PublishFields& p, std::uint8_t* out, std::size_t capacity) {
  if (CheckTopicName(p.topic) != TopicCheck::kOk) return Fail(WireError::kBadTopic);
  if (p.qos > 1) return Fail(WireError::kBadArgument);
  if ((p.qos == 1) != (p.packet_id != 0)) return Fail(WireError::kBadArgument);
  if (p.qos == 0 && p.dup) return Fail(WireError::kBadArgument);
  std::size_t len = 2 + p.topic.size() + (p.qos > 0 ? 2 : 0) + p.payload.size();
  std::uint8_t flags = static_cast<std::uint8_t>(p.qos << 1);
  if (p.dup) flags |= 0x08;
  if (p.retain) flags |= 0x01;
  Out o(out, capacity);
  if (o.Header(kPublish, flags, len)) {
    o.String(p.topic);
    if (p.qos > 0) o.U16(p.packet_id);
    o.Bytes(p.payload);
  }
  return o.Done();
}

Encoded EncodePubAck(std::uint16_t packet_id, std::uint8_t* out, std::size_t capacity) {
  if (packet_id == 0) return Fail(WireError::kBadArgument);
  Out o(out, capacity);
  if (o.Header(kPubAck, 0, 2)) o.U16(packet_id);
  return o.Done();
}

Encoded EncodeSubscribe(std::uint16_t packet_id, std::string_view filter, std::uint8_t qos,
                        std::uint8_t* out, std::size_t capacity) {
  if (packet_id == 0 || qos > 1) return Fail(WireError::kBadArgument);
  if (CheckTopicFilter(filter) != TopicCheck::kOk) return Fail(WireError::kBadTopic);
  Out o(out, capacity);
  if (o.Header(kSubscribe, 0x02, 2 + 2 + filter.size() + 1)) {
    o.U16(packet_id);
    o.String(filter);
    o.U8(qos);
  }
  return o.Done();
}

Encoded EncodePingReq(std::uint8_t* out, std::size_t capacity) {
  Out o(out, capacity);
  o.Header(kPingReq, 0, 0);
  return o.Done();
}

Encoded EncodeDisconnect(std::uint8_t* out, std::size_t capacity) {
  Out o(out, capacity);
  o.Header(kDisconnect, 0, 0);
  return o.Done();
}

// ---- parsing ----

namespace {

ParseResult Error(WireError e, const char* detail) {
  ParseResult r;
  r.status = ParseStatus::kError;
  r.error = e;
  r.detail = detail;
  return r;
}

std::uint16_t U16At(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }

// PUBLISH flags, topic and packet id from `body`, of which `avail` bytes of `remaining` are
// present (avail >= the topic and packet id); the payload is what of it is present.
ParseResult ParsePublish(std::uint8_t flags, const std::uint8_t* body, std::size_t remaining,
                         std::size_t avail) {
  ParseResult r;
  PacketView& v = r.packet;
  v.kind = PacketKind::kPublish;
  v.retain = flags & 0x01;
  v.qos = (flags >> 1) & 0x03;
  v.dup = flags & 0x08;
  const std::size_t topic_len = U16At(body);
  v.topic = std::string_view(reinterpret_cast<const char*>(body + 2), topic_len);
  if (CheckTopicName(v.topic) != TopicCheck::kOk) {
    return Error(WireError::kMalformed, "PUBLISH: invalid topic name");
  }
  std::size_t pos = 2 + topic_len;
  if (v.qos > 0) {
    if (remaining < pos + 2) return Error(WireError::kMalformed, "PUBLISH: truncated packet id");
    v.packet_id = U16At(body + pos);
    if (v.packet_id == 0) return Error(WireError::kMalformed, "PUBLISH: packet id 0");
    pos += 2;
  }
  v.payload = std::string_view(reinterpret_cast<const char*>(body + pos), avail - pos);
  return r;
}

// Flag checks and the bytes needed before the topic and packet id can be read: 0 on an error.
ParseResult CheckPublishStart(std::uint8_t flags, const std::uint8_t* body, std::size_t remaining,
                              std::size_t avail, std::size_t& id_end) {
  const std::uint8_t qos = (flags >> 1) & 0x03;
  if (qos == 3) return Error(WireError::kMalformed, "PUBLISH: QoS 3 is invalid");
  if (qos == 2) return Error(WireError::kUnsupported, "PUBLISH: QoS 2 is not supported");
  if (qos == 0 && (flags & 0x08)) {
    return Error(WireError::kMalformed, "PUBLISH: DUP flag set on a QoS 0 message");
  }
  if (remaining < 2) return Error(WireError::kMalformed, "PUBLISH: truncated topic");
  id_end = 0;
  if (avail < 2) return ParseResult{};  // kNeedMore
  const std::size_t topic_len = U16At(body);
  if (remaining < 2 + topic_len) return Error(WireError::kMalformed, "PUBLISH: truncated topic");
  id_end = 2 + topic_len + (qos > 0 ? 2 : 0);
  return ParseResult{};
}

}  // namespace

ParseResult ParseFrame(const std::uint8_t* data, std::size_t size, std::size_t max_packet_size) {
  ParseResult need_more;
  if (size < 2) return need_more;
  const std::uint8_t type = data[0] >> 4;
  const std::uint8_t flags = data[0] & 0x0f;
  if (type == 0 || type == 15) return Error(WireError::kMalformed, "unknown packet type");
  std::size_t remaining = 0, used = 0;
  switch (GetRemainingLength(data + 1, size - 1, remaining, used)) {
    case LengthStatus::kNeedMore:
      return need_more;
    case LengthStatus::kNotMinimal:
      return Error(WireError::kMalformed, "remaining length is not minimally encoded");
    case LengthStatus::kTooLong:
      return Error(WireError::kMalformed, "remaining length longer than 4 bytes");
    case LengthStatus::kOk:
      break;
  }
  const std::size_t header = 1 + used;
  if (header + remaining > max_packet_size) {
    if (type != 3) return Error(WireError::kTooLarge, "packet exceeds the size limit");
    // An oversize PUBLISH is skipped, not fatal (issue 8): read its topic and packet id, then
    // the caller drops the rest unread.
    std::size_t id_end = 0;
    ParseResult start = CheckPublishStart(flags, data + header, remaining, size - header, id_end);
    if (start.status == ParseStatus::kError) return start;
    if (id_end > 0 && header + id_end > max_packet_size) {
      return Error(WireError::kTooLarge, "PUBLISH: topic longer than the receive buffer");
    }
    if (id_end == 0 || size < header + id_end) return need_more;
    const std::size_t avail = size - header < remaining ? size - header : remaining;
    ParseResult r = ParsePublish(flags, data + header, remaining, avail);
    if (r.status == ParseStatus::kError) return r;
    r.status = ParseStatus::kOversize;
    r.total = header + remaining;
    r.consumed = header + avail;
    r.skip = remaining - avail;
    return r;
  }
  if (size < header + remaining) return need_more;
  const std::uint8_t* body = data + header;
  ParseResult r;
  r.status = ParseStatus::kPacket;
  r.consumed = header + remaining;
  r.total = r.consumed;
  PacketView& v = r.packet;
  switch (type) {
    case 2: {  // CONNACK
      if (flags != 0) return Error(WireError::kMalformed, "CONNACK: reserved flags set");
      if (remaining != 2) return Error(WireError::kMalformed, "CONNACK: length is not 2");
      if (body[0] & 0xfe) {
        return Error(WireError::kMalformed, "CONNACK: reserved acknowledge flags are set");
      }
      v.kind = PacketKind::kConnAck;
      v.session_present = body[0] & 0x01;
      v.return_code = body[1];
      if (v.return_code > 5) return Error(WireError::kMalformed, "CONNACK: unknown return code");
      if (v.return_code != 0 && v.session_present) {
        return Error(WireError::kMalformed, "CONNACK: session present on a refused connection");
      }
      return r;
    }
    case 3: {  // PUBLISH
      std::size_t id_end = 0;
      ParseResult start = CheckPublishStart(flags, body, remaining, remaining, id_end);
      if (start.status == ParseStatus::kError) return start;
      ParseResult p = ParsePublish(flags, body, remaining, remaining);
      if (p.status == ParseStatus::kError) return p;
      r.packet = p.packet;
      return r;
    }
    case 4:     // PUBACK
    case 11: {  // UNSUBACK
      if (flags != 0) return Error(WireError::kMalformed, "PUBACK/UNSUBACK: reserved flags set");
      if (remaining != 2) return Error(WireError::kMalformed, "PUBACK/UNSUBACK: length is not 2");
      v.kind = type == 4 ? PacketKind::kPubAck : PacketKind::kUnsubAck;
      v.packet_id = U16At(body);
      if (v.packet_id == 0) return Error(WireError::kMalformed, "PUBACK/UNSUBACK: packet id 0");
      return r;
    }
    case 9: {  // SUBACK
      if (flags != 0) return Error(WireError::kMalformed, "SUBACK: reserved flags set");
      if (remaining < 3) return Error(WireError::kMalformed, "SUBACK: no return codes");
      v.kind = PacketKind::kSubAck;
      v.packet_id = U16At(body);
      if (v.packet_id == 0) return Error(WireError::kMalformed, "SUBACK: packet id 0");
      for (std::size_t i = 2; i < remaining; ++i) {
        const std::uint8_t c = body[i];
        if (c == 2) return Error(WireError::kUnsupported, "SUBACK: granted QoS 2 is not supported");
        if (c != 0 && c != 1 && c != 0x80) {
          return Error(WireError::kMalformed, "SUBACK: invalid return code");
        }
      }
      v.suback_code = body[2];
      v.suback_count = static_cast<std::uint16_t>(remaining - 2 > 0xffff ? 0xffff : remaining - 2);
      return r;
    }
    case 13: {  // PINGRESP
      if (flags != 0 || remaining != 0) return Error(WireError::kMalformed, "PINGRESP: malformed");
      v.kind = PacketKind::kPingResp;
      return r;
    }
    case 5:
    case 6:
    case 7:
      return Error(WireError::kUnsupported, "QoS 2 flow is not supported");
    default:
      return Error(WireError::kUnsupported, "packet type a broker does not send to a client");
  }
}

}  // namespace wire
}  // namespace outpost::mqtt
