#include "outpost/mqtt/wire.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <variant>
#include <vector>

#include "outpost/mqtt/codec.h"

namespace outpost::mqtt::wire {
namespace {

std::string Bytes(const std::uint8_t* p, std::size_t n) {
  return std::string(reinterpret_cast<const char*>(p), n);
}

TEST(WireTest, ConnectMatchesTheCodecByteForByte) {
  ConnectFields c;
  c.client_id = "node-1";
  c.keepalive_s = 30;
  c.has_will = true;
  c.will_topic = "devices/node-1/status";
  c.will_payload = "offline";
  c.will_qos = 1;
  c.will_retain = true;
  c.has_username = true;
  c.username = "u";
  c.has_password = true;
  c.password = "p";
  std::uint8_t buf[128];
  Encoded e = EncodeConnect(c, buf, sizeof buf);
  ASSERT_TRUE(e.ok());

  Connect ref;
  ref.client_id = "node-1";
  ref.keepalive_s = 30;
  ref.username = "u";
  ref.password = "p";
  ref.will = Will{"devices/node-1/status", "offline", 1, true};
  std::string want;
  Encode(ref, want);
  EXPECT_EQ(Bytes(buf, e.size), want);
}

TEST(WireTest, PublishMatchesTheCodecAndParsesBack) {
  std::string payload(300, 'x');  // two-byte remaining length
  PublishFields p{"sensors/n/data", payload, 1, false, true, 77};
  std::uint8_t buf[512];
  Encoded e = EncodePublish(p, buf, sizeof buf);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e.size, PublishSize(p.topic, payload.size(), 1));
  std::string want;
  Encode(Publish{"sensors/n/data", payload, 1, false, true, 77}, want);
  EXPECT_EQ(Bytes(buf, e.size), want);

  ParseResult r = ParseFrame(buf, e.size, sizeof buf);
  ASSERT_EQ(r.status, ParseStatus::kPacket);
  EXPECT_EQ(r.consumed, e.size);
  EXPECT_EQ(r.packet.kind, PacketKind::kPublish);
  EXPECT_EQ(r.packet.topic, "sensors/n/data");
  EXPECT_EQ(r.packet.payload, payload);
  EXPECT_TRUE(r.packet.dup);
  EXPECT_EQ(r.packet.packet_id, 77);
  // The view points into the buffer (zero copy).
  EXPECT_GE(reinterpret_cast<const std::uint8_t*>(r.packet.payload.data()), buf);
  EXPECT_LT(reinterpret_cast<const std::uint8_t*>(r.packet.payload.data()), buf + e.size);
}

TEST(WireTest, SmallBufferIsAnErrorNotAnOverflow) {
  std::uint8_t buf[16];
  PublishFields p{"sensors/n/data", "0123456789", 1, false, false, 1};
  Encoded e = EncodePublish(p, buf, sizeof buf);
  EXPECT_EQ(e.error, WireError::kBufferTooSmall);
  EXPECT_EQ(e.size, 0u);
  EXPECT_EQ(EncodePingReq(buf, 1).error, WireError::kBufferTooSmall);
}

TEST(WireTest, RejectsBadArguments) {
  std::uint8_t buf[64];
  EXPECT_EQ(EncodePublish({"a/+", "x", 0, false, false, 0}, buf, 64).error, WireError::kBadTopic);
  EXPECT_EQ(EncodePublish({"a", "x", 1, false, false, 0}, buf, 64).error, WireError::kBadArgument);
  EXPECT_EQ(EncodePublish({"a", "x", 0, false, true, 0}, buf, 64).error, WireError::kBadArgument);
  EXPECT_EQ(EncodeSubscribe(1, "a/#/b", 1, buf, 64).error, WireError::kBadTopic);
  ConnectFields c;
  c.client_id = "x";
  c.has_password = true;
  EXPECT_EQ(EncodeConnect(c, buf, 64).error, WireError::kBadArgument);
}

TEST(WireTest, SmallPacketsMatchTheCodec) {
  std::uint8_t buf[64];
  std::string want;
  Encode(PubAck{513}, want);
  Encoded e = EncodePubAck(513, buf, 64);
  EXPECT_EQ(Bytes(buf, e.size), want);
  want.clear();
  Encode(Subscribe{9, {{"devices/n/commands", 1}}}, want);
  e = EncodeSubscribe(9, "devices/n/commands", 1, buf, 64);
  EXPECT_EQ(Bytes(buf, e.size), want);
  want.clear();
  Encode(PingReq{}, want);
  e = EncodePingReq(buf, 64);
  EXPECT_EQ(Bytes(buf, e.size), want);
  want.clear();
  Encode(Disconnect{}, want);
  e = EncodeDisconnect(buf, 64);
  EXPECT_EQ(Bytes(buf, e.size), want);
}

TEST(WireTest, ParsesBrokerPacketsAndWaitsForMore) {
  std::string s;
  Encode(ConnAck{true, 0}, s);
  Encode(SubAck{4, {1}}, s);
  Encode(PingResp{}, s);
  Encode(PubAck{5}, s);
  const auto* p = reinterpret_cast<const std::uint8_t*>(s.data());
  std::size_t pos = 0;
  PacketKind kinds[4];
  for (int i = 0; i < 4; ++i) {
    // Every strict prefix of the packet needs more bytes.
    ParseResult whole = ParseFrame(p + pos, s.size() - pos, 64);
    ASSERT_EQ(whole.status, ParseStatus::kPacket);
    for (std::size_t n = 0; n < whole.consumed; ++n) {
      EXPECT_EQ(ParseFrame(p + pos, n, 64).status, ParseStatus::kNeedMore);
    }
    kinds[i] = whole.packet.kind;
    if (i == 0) {
      EXPECT_TRUE(whole.packet.session_present);
    } else if (i == 1) {
      EXPECT_EQ(whole.packet.suback_code, 1);
    } else if (i == 3) {
      EXPECT_EQ(whole.packet.packet_id, 5);
    }
    pos += whole.consumed;
  }
  EXPECT_EQ(pos, s.size());
  EXPECT_EQ(kinds[0], PacketKind::kConnAck);
  EXPECT_EQ(kinds[1], PacketKind::kSubAck);
  EXPECT_EQ(kinds[2], PacketKind::kPingResp);
  EXPECT_EQ(kinds[3], PacketKind::kPubAck);
}

TEST(WireTest, RejectsMalformedAndUnsupported) {
  auto parse = [](std::string s) {
    return ParseFrame(reinterpret_cast<const std::uint8_t*>(s.data()), s.size(), 64);
  };
  EXPECT_EQ(parse(std::string("\x34\x05\x00\x01"
                              "a\x00\x01",
                              7))
                .error,
            WireError::kUnsupported);
  EXPECT_EQ(parse(std::string("\x36\x05\x00\x01"
                              "a\x00\x01",
                              7))
                .error,
            WireError::kMalformed);
  EXPECT_EQ(parse(std::string("\x40\x82\x00", 3)).error, WireError::kMalformed);  // not minimal
  EXPECT_EQ(parse(std::string("\x40\x03\x00\x01\x00", 5)).error, WireError::kMalformed);
  EXPECT_EQ(parse(std::string("\x40\x02\x00\x00", 4)).error, WireError::kMalformed);  // id 0
  EXPECT_EQ(parse(std::string("\x90\x03\x00\x01\x02", 5)).error, WireError::kUnsupported);
  EXPECT_EQ(parse(std::string("\x10\x00", 2)).error, WireError::kUnsupported);  // CONNECT
  EXPECT_EQ(parse(std::string("\x00\x00", 2)).error, WireError::kMalformed);
  std::string big;
  Encode(SubAck{1, std::vector<std::uint8_t>(100, 0)}, big);
  ParseResult r = parse(big.substr(0, 3));  // size is known from the header: fail early
  EXPECT_EQ(r.error, WireError::kTooLarge);
  // An oversize PUBLISH is skipped (below), unless its topic alone does not fit the buffer.
  std::string long_topic;
  Encode(Publish{std::string(70, 't'), "x", 0, false, false, 0}, long_topic);
  EXPECT_EQ(parse(long_topic.substr(0, 4)).error, WireError::kTooLarge);
  EXPECT_EQ(parse(std::string("\x30\x04\x00\x03"
                              "a+",
                              6))
                .error,
            WireError::kMalformed);
  EXPECT_EQ(parse(std::string("\x30\x05\x00\x03"
                              "a/+",
                              7))
                .error,
            WireError::kMalformed);
}

// Issue 8: a PUBLISH over the caller's buffer is reported as kOversize (topic, flags, packet id,
// the head in the buffer) with the bytes to skip, at every split of the stream; the packets
// around it parse as before.
TEST(WireTest, OversizePublishIsSkippedAtEveryBoundary) {
  constexpr std::size_t kBuf = 64;
  for (std::uint8_t qos : {0, 1}) {
    std::string stream;
    Encode(PubAck{3}, stream);
    const std::string payload(300, 'p');
    Encode(Publish{"cmd", payload, qos, true, false, static_cast<std::uint16_t>(qos ? 9 : 0)},
           stream);
    const std::size_t giant_end = stream.size();
    Encode(PubAck{4}, stream);
    for (std::size_t cut = 1; cut < stream.size(); ++cut) {
      SCOPED_TRACE("qos " + std::to_string(qos) + ", cut " + std::to_string(cut));
      // The node's loop: a fixed buffer, refilled from the stream, skipping as told.
      std::uint8_t buf[kBuf];
      std::size_t len = 0, skip = 0, fed = 0;
      std::vector<std::string> seen;
      auto feed = [&](std::size_t upto) {
        while (fed < upto) {
          if (skip > 0) {
            const std::size_t k = std::min(skip, upto - fed);
            skip -= k;
            fed += k;
            if (skip == 0) seen.push_back("end");
            continue;
          }
          const std::size_t k = std::min(kBuf - len, upto - fed);
          std::memcpy(buf + len, stream.data() + fed, k);
          len += k;
          fed += k;
          std::size_t pos = 0;
          while (pos < len) {
            ParseResult r = ParseFrame(buf + pos, len - pos, kBuf);
            ASSERT_NE(r.status, ParseStatus::kError) << r.detail;
            if (r.status == ParseStatus::kNeedMore) break;
            if (r.status == ParseStatus::kOversize) {
              EXPECT_EQ(r.packet.topic, "cmd");
              EXPECT_EQ(r.packet.qos, qos);
              EXPECT_TRUE(r.packet.retain);
              EXPECT_EQ(r.packet.packet_id, qos ? 9 : 0);
              EXPECT_EQ(r.total, giant_end - 4);
              EXPECT_EQ(r.packet.payload, payload.substr(0, r.packet.payload.size()));
              seen.push_back("oversize");
              pos += r.consumed;
              skip = r.skip;
              if (skip == 0) seen.push_back("end");
              continue;
            }
            seen.push_back("puback " + std::to_string(r.packet.packet_id));
            pos += r.consumed;
          }
          std::memmove(buf, buf + pos, len - pos);
          len -= pos;
        }
      };
      feed(cut);
      feed(stream.size());
      EXPECT_EQ(seen, (std::vector<std::string>{"puback 3", "oversize", "end", "puback 4"}));
    }
  }
}

TEST(WireTest, RemainingLengthRoundTripsAtTheBoundaries) {
  for (std::size_t v : std::initializer_list<std::size_t>{0, 127, 128, 16'383, 16'384, 2'097'151,
                                                          2'097'152, kMaxRemainingLength}) {
    std::uint8_t b[4];
    std::size_t n = PutRemainingLength(v, b);
    EXPECT_EQ(n, RemainingLengthSize(v));
    std::size_t got = 0, used = 0;
    ASSERT_EQ(GetRemainingLength(b, n, got, used), LengthStatus::kOk);
    EXPECT_EQ(got, v);
    EXPECT_EQ(used, n);
    EXPECT_EQ(GetRemainingLength(b, n - 1, got, used), LengthStatus::kNeedMore);
  }
  const std::uint8_t five[] = {0xff, 0xff, 0xff, 0xff, 0x01};
  std::size_t got = 0, used = 0;
  EXPECT_EQ(GetRemainingLength(five, 5, got, used), LengthStatus::kTooLong);
}

}  // namespace
}  // namespace outpost::mqtt::wire
