// libFuzzer target for the allocation-free frame parser (wire.h): arbitrary broker bytes must
// never crash or read out of bounds, and the parser must agree with the heap-based Decoder on
// every packet a client accepts (a differential check between the two layers).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "outpost/base/check.h"
#include "outpost/mqtt/codec.h"
#include "outpost/mqtt/wire.h"

using namespace outpost::mqtt;  // NOLINT: test-only brevity

namespace {

constexpr std::size_t kMaxPacket = 4096;

void CheckSame(const wire::PacketView& v, const Packet& p) {
  switch (v.kind) {
    case wire::PacketKind::kConnAck: {
      const auto& c = std::get<ConnAck>(p);
      OUTPOST_CHECK(c.session_present == v.session_present && c.return_code == v.return_code);
      break;
    }
    case wire::PacketKind::kPublish: {
      const auto& m = std::get<Publish>(p);
      OUTPOST_CHECK(m.topic == v.topic && m.payload == v.payload && m.qos == v.qos &&
                    m.retain == v.retain && m.dup == v.dup && m.packet_id == v.packet_id);
      // Re-encode through the wire encoder: the bytes must decode to the same message.
      std::uint8_t buf[kMaxPacket + 16];
      wire::PublishFields f{v.topic, v.payload, v.qos, v.retain, v.dup, v.packet_id};
      wire::Encoded e = wire::EncodePublish(f, buf, sizeof buf);
      OUTPOST_CHECK(e.ok());
      wire::ParseResult again = wire::ParseFrame(buf, e.size, sizeof buf);
      OUTPOST_CHECK(again.status == wire::ParseStatus::kPacket && again.consumed == e.size);
      OUTPOST_CHECK(again.packet.topic == v.topic && again.packet.payload == v.payload);
      break;
    }
    case wire::PacketKind::kPubAck:
      OUTPOST_CHECK(std::get<PubAck>(p).packet_id == v.packet_id);
      break;
    case wire::PacketKind::kUnsubAck:
      OUTPOST_CHECK(std::get<UnsubAck>(p).packet_id == v.packet_id);
      break;
    case wire::PacketKind::kSubAck: {
      const auto& s = std::get<SubAck>(p);
      OUTPOST_CHECK(s.packet_id == v.packet_id && s.codes.size() == v.suback_count &&
                    s.codes[0] == v.suback_code);
      break;
    }
    case wire::PacketKind::kPingResp:
      OUTPOST_CHECK(std::holds_alternative<PingResp>(p));
      break;
    case wire::PacketKind::kNone:
      OUTPOST_CHECK(false);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Decoder decoder(kMaxPacket);
  decoder.Feed(std::string_view(reinterpret_cast<const char*>(data), size));
  std::size_t pos = 0;
  while (pos <= size) {
    wire::ParseResult r = wire::ParseFrame(data + pos, size - pos, kMaxPacket);
    auto d = decoder.Next();
    if (r.status == wire::ParseStatus::kNeedMore) {
      OUTPOST_CHECK(!d.ok() || !d->has_value());  // the Decoder cannot have a whole packet
      break;
    }
    if (r.status == wire::ParseStatus::kError) {
      // Packets a device never accepts (CONNECT, SUBSCRIBE...) may still be valid for the Decoder,
      // and so may an oversize PUBLISH whose topic is longer than the device's buffer.
      const bool publish = (data[pos] >> 4) == 3;
      if (r.error != wire::WireError::kUnsupported &&
          !(publish && r.error == wire::WireError::kTooLarge)) {
        OUTPOST_CHECK(!d.ok());
      }
      break;
    }
    if (r.status == wire::ParseStatus::kOversize) {
      // Both skip it; the Decoder yields it once its last byte is in.
      OUTPOST_CHECK(r.total > kMaxPacket && r.consumed + r.skip <= r.total);
      OUTPOST_CHECK(r.consumed <= size - pos);
      OUTPOST_CHECK(d.ok());
      if (r.skip > 0) {
        OUTPOST_CHECK(!d->has_value());
        break;
      }
      OUTPOST_CHECK(d->has_value());
      const auto& o = std::get<OversizePublish>(**d);
      const wire::PacketView& v = r.packet;
      OUTPOST_CHECK(o.topic == v.topic && o.qos == v.qos && o.retain == v.retain &&
                    o.dup == v.dup && o.packet_id == v.packet_id && o.packet_bytes == r.total);
      OUTPOST_CHECK(v.payload.substr(0, o.head.size()) == o.head);
      pos += r.consumed;
      continue;
    }
    OUTPOST_CHECK(r.consumed > 0 && r.consumed <= size - pos);
    OUTPOST_CHECK(d.ok() && d->has_value());
    CheckSame(r.packet, **d);
    pos += r.consumed;
  }
  return 0;
}
