#include "outpost/mqtt/session.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "outpost/testing/status_matchers.h"

namespace outpost::mqtt {
namespace {

// Plays the broker: decodes what the session sends, encodes what a broker would answer.
class SessionTest : public ::testing::Test {
 protected:
  SessionOptions Options() {
    SessionOptions o;
    o.client_id = "gw";
    o.keepalive_s = 10;
    o.connack_timeout_ms = 3'000;
    o.ping_timeout_ms = 2'000;
    return o;
  }

  // Packets the session has queued for the broker since the last call.
  std::vector<Packet> Sent(Session& s) {
    broker_in_.Feed(s.TakeOutbound());
    std::vector<Packet> out;
    while (true) {
      auto r = broker_in_.Next();
      OUTPOST_EXPECT_OK(r);
      if (!r.ok() || !r->has_value()) break;
      out.push_back(std::move(**r));
    }
    return out;
  }

  Status Receive(Session& s, const Packet& p) {
    std::string bytes;
    Encode(p, bytes);
    return s.OnBytes(bytes, now_);
  }

  void Connect(Session& s, bool session_present = false) {
    broker_in_.Reset();
    s.Start(now_);
    auto sent = Sent(s);
    ASSERT_EQ(sent.size(), 1u);
    ASSERT_TRUE(std::holds_alternative<mqtt::Connect>(sent[0]));
    OUTPOST_ASSERT_OK(Receive(s, ConnAck{session_present, 0}));
    auto e = s.PollEvent();
    ASSERT_TRUE(e && std::holds_alternative<Connected>(*e));
    EXPECT_EQ(std::get<Connected>(*e).session_present, session_present);
  }

  std::vector<Event> Events(Session& s) {
    std::vector<Event> out;
    while (auto e = s.PollEvent()) out.push_back(std::move(*e));
    return out;
  }

  std::int64_t now_ = 1'000;
  Decoder broker_in_;
};

TEST_F(SessionTest, ConnectCarriesOptions) {
  SessionOptions o = Options();
  o.clean_session = false;
  o.username = "u";
  o.password = "p";
  o.will = Will{"devices/gw/status", "offline", 1, true};
  Session s(o);
  s.Start(now_);
  auto sent = Sent(s);
  ASSERT_EQ(sent.size(), 1u);
  const auto& c = std::get<mqtt::Connect>(sent[0]);
  EXPECT_EQ(c.client_id, "gw");
  EXPECT_FALSE(c.clean_session);
  EXPECT_EQ(c.keepalive_s, 10);
  EXPECT_EQ(c.username, "u");
  EXPECT_EQ(c.password, "p");
  ASSERT_TRUE(c.will.has_value());
  EXPECT_EQ(c.will->topic, "devices/gw/status");
  EXPECT_EQ(s.state(), Session::State::kConnecting);
}

TEST_F(SessionTest, RefusedConnackGivesEventAndError) {
  Session s(Options());
  s.Start(now_);
  Status st = Receive(s, ConnAck{false, kRefusedNotAuthorized});
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_NE(st.message().find("not authorized"), std::string::npos);
  auto e = s.PollEvent();
  ASSERT_TRUE(e && std::holds_alternative<ConnectRefused>(*e));
  EXPECT_EQ(std::get<ConnectRefused>(*e).return_code, kRefusedNotAuthorized);
  EXPECT_EQ(s.state(), Session::State::kDisconnected);
}

TEST_F(SessionTest, ConnackTimeout) {
  Session s(Options());
  s.Start(now_);
  EXPECT_EQ(s.NextDeadlineMs(), now_ + 3'000);
  OUTPOST_EXPECT_OK(s.OnTick(now_ + 2'999));
  Status st = s.OnTick(now_ + 3'000);
  EXPECT_EQ(st.code(), Code::kDeadlineExceeded);
  EXPECT_NE(st.message().find("no CONNACK"), std::string::npos);
}

TEST_F(SessionTest, KeepalivePingAndPingTimeout) {
  Session s(Options());
  Connect(s);
  EXPECT_EQ(s.NextDeadlineMs(), now_ + 10'000);
  OUTPOST_EXPECT_OK(s.OnTick(now_ + 9'999));
  EXPECT_TRUE(Sent(s).empty());
  now_ += 10'000;
  OUTPOST_EXPECT_OK(s.OnTick(now_));
  auto sent = Sent(s);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<PingReq>(sent[0]));
  EXPECT_EQ(s.NextDeadlineMs(), now_ + 2'000);
  // PINGRESP in time: the next ping is one keepalive after the last send.
  OUTPOST_ASSERT_OK(Receive(s, PingResp{}));
  EXPECT_EQ(s.NextDeadlineMs(), now_ + 10'000);
  now_ += 10'000;
  OUTPOST_EXPECT_OK(s.OnTick(now_));
  ASSERT_EQ(Sent(s).size(), 1u);
  // No PINGRESP this time.
  OUTPOST_EXPECT_OK(s.OnTick(now_ + 1'999));
  Status st = s.OnTick(now_ + 2'000);
  EXPECT_EQ(st.code(), Code::kDeadlineExceeded);
  EXPECT_NE(st.message().find("PINGRESP"), std::string::npos);
}

TEST_F(SessionTest, TrafficPostponesPing) {
  Session s(Options());
  Connect(s);
  now_ += 6'000;
  OUTPOST_ASSERT_OK(s.OnTick(now_));  // tells the session the time
  OUTPOST_ASSERT_OK(s.Publish("t", "x", 0, false));
  Sent(s);
  EXPECT_EQ(s.NextDeadlineMs(), now_ + 10'000);
  OUTPOST_EXPECT_OK(s.OnTick(now_ + 9'000));
  EXPECT_TRUE(Sent(s).empty());
}

TEST_F(SessionTest, Qos1PublishInflightUntilPuback) {
  Session s(Options());
  Connect(s);
  auto id = s.Publish("sensors/gw/data", "1", 1, false);
  OUTPOST_ASSERT_OK(id);
  EXPECT_NE(*id, 0);
  auto sent = Sent(s);
  ASSERT_EQ(sent.size(), 1u);
  const auto& p = std::get<mqtt::Publish>(sent[0]);
  EXPECT_EQ(p.packet_id, *id);
  EXPECT_EQ(p.qos, 1);
  EXPECT_FALSE(p.dup);
  EXPECT_EQ(s.inflight(), 1u);
  OUTPOST_ASSERT_OK(Receive(s, PubAck{*id}));
  auto events = Events(s);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(std::get<PublishAcked>(events[0]).packet_id, *id);
  EXPECT_EQ(s.inflight(), 0u);
  // QoS 0 returns 0 and has nothing in flight.
  auto zero = s.Publish("t", "x", 0, false);
  OUTPOST_ASSERT_OK(zero);
  EXPECT_EQ(*zero, 0);
}

TEST_F(SessionTest, PublishErrors) {
  SessionOptions o = Options();
  o.max_inflight = 2;
  o.max_packet_size = 100;
  Session s(o);
  EXPECT_EQ(s.Publish("t", "x", 0, false).status().code(), Code::kFailedPrecondition);
  Connect(s);
  EXPECT_EQ(s.Publish("a/+", "x", 1, false).status().code(), Code::kInvalidArgument);
  EXPECT_NE(s.Publish("t", "x", 2, false).status().message().find("QoS 2"), std::string::npos);
  EXPECT_EQ(s.Publish("t", std::string(200, 'x'), 1, false).status().code(),
            Code::kInvalidArgument);
  OUTPOST_ASSERT_OK(s.Publish("t", "1", 1, false));
  OUTPOST_ASSERT_OK(s.Publish("t", "2", 1, false));
  EXPECT_EQ(s.Publish("t", "3", 1, false).status().code(), Code::kResourceExhausted);
}

TEST_F(SessionTest, InflightResentWithDupWhenSessionPresent) {
  SessionOptions o = Options();
  o.clean_session = false;
  Session s(o);
  Connect(s);
  auto a = s.Publish("t/a", "a", 1, false);
  auto b = s.Publish("t/b", "b", 1, true);
  ASSERT_TRUE(a.ok() && b.ok());
  Sent(s);
  OUTPOST_ASSERT_OK(Receive(s, PubAck{*a}));
  Events(s);
  s.OnConnectionLost();
  // Published while down: kept, sent first time on the next connection (no DUP).
  auto c = s.Publish("t/c", "c", 1, false);
  OUTPOST_ASSERT_OK(c);
  EXPECT_EQ(s.inflight(), 2u);
  Connect(s, /*session_present=*/true);
  auto sent = Sent(s);
  ASSERT_EQ(sent.size(), 2u);
  const auto& rb = std::get<mqtt::Publish>(sent[0]);
  EXPECT_EQ(rb.packet_id, *b);
  EXPECT_TRUE(rb.dup);
  EXPECT_TRUE(rb.retain);
  const auto& rc = std::get<mqtt::Publish>(sent[1]);
  EXPECT_EQ(rc.packet_id, *c);
  EXPECT_FALSE(rc.dup);
}

TEST_F(SessionTest, InflightResentFreshWithoutSession) {
  Session s(Options());
  Connect(s);
  auto a = s.Publish("t/a", "a", 1, false);
  OUTPOST_ASSERT_OK(a);
  Sent(s);
  s.OnConnectionLost();
  Connect(s, /*session_present=*/false);
  auto sent = Sent(s);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_FALSE(std::get<mqtt::Publish>(sent[0]).dup);
  EXPECT_EQ(std::get<mqtt::Publish>(sent[0]).packet_id, *a);
}

TEST_F(SessionTest, IncomingQos1IsNeverAckedAutomatically) {
  Session s(Options());
  Connect(s);
  OUTPOST_ASSERT_OK(Receive(s, mqtt::Publish{"sensors/n1/data", "{}", 1, false, false, 11}));
  auto events = Events(s);
  ASSERT_EQ(events.size(), 1u);
  const auto& m = std::get<Message>(events[0]);
  EXPECT_EQ(m.topic, "sensors/n1/data");
  EXPECT_EQ(m.packet_id, 11);
  EXPECT_EQ(m.connection_id, s.connection_id());
  now_ += 5'000;
  OUTPOST_EXPECT_OK(s.OnTick(now_));
  EXPECT_TRUE(Sent(s).empty());
  EXPECT_EQ(s.unacked_incoming(), 1u);
  s.Ack(11);
  auto sent = Sent(s);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(std::get<PubAck>(sent[0]).packet_id, 11);
  s.Ack(11);  // twice: ignored
  s.Ack(99);  // unknown: ignored
  EXPECT_TRUE(Sent(s).empty());
}

TEST_F(SessionTest, AcksGoOutInReceiveOrder) {
  Session s(Options());
  Connect(s);
  for (std::uint16_t id : {5, 6, 7}) {
    OUTPOST_ASSERT_OK(Receive(s, mqtt::Publish{"t", "x", 1, false, false, id}));
  }
  Events(s);
  s.Ack(7);
  s.Ack(6);
  EXPECT_TRUE(Sent(s).empty());  // 5 is not durable yet: nothing may be acked after it
  s.Ack(5);
  auto sent = Sent(s);
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(std::get<PubAck>(sent[0]).packet_id, 5);
  EXPECT_EQ(std::get<PubAck>(sent[1]).packet_id, 6);
  EXPECT_EQ(std::get<PubAck>(sent[2]).packet_id, 7);
  EXPECT_EQ(s.unacked_incoming(), 0u);
}

TEST_F(SessionTest, AckAfterReconnectIsIgnored) {
  Session s(Options());
  Connect(s);
  OUTPOST_ASSERT_OK(Receive(s, mqtt::Publish{"t", "x", 1, false, false, 3}));
  Events(s);
  s.OnConnectionLost();
  Connect(s, true);
  Sent(s);
  s.Ack(3);  // belongs to the previous connection
  EXPECT_TRUE(Sent(s).empty());
}

TEST_F(SessionTest, SubscribeAndSuback) {
  Session s(Options());
  // Before CONNACK: deferred until connected.
  std::uint16_t id = s.Subscribe({{"sensors/+/data", 1}, {"devices/#", 0}});
  Connect(s);
  auto sent = Sent(s);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(std::get<mqtt::Subscribe>(sent[0]).packet_id, id);
  EXPECT_EQ(Receive(s, SubAck{id, {1}}).code(), Code::kInvalidArgument);  // wrong count
  s.OnConnectionLost();
  Connect(s);
  id = s.Subscribe({{"sensors/+/data", 1}, {"devices/#", 0}});
  Sent(s);
  OUTPOST_ASSERT_OK(Receive(s, SubAck{id, {1, kSubAckFailure}}));
  auto events = Events(s);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(std::get<Subscribed>(events[0]).codes, (std::vector<std::uint8_t>{1, 0x80}));
  std::uint16_t uid = s.Unsubscribe({"devices/#"});
  Sent(s);
  OUTPOST_ASSERT_OK(Receive(s, UnsubAck{uid}));
  EXPECT_TRUE(std::holds_alternative<Unsubscribed>(*s.PollEvent()));
}

TEST_F(SessionTest, ProtocolViolationsAreErrors) {
  {
    Session s(Options());
    s.Start(now_);
    Status st = Receive(s, mqtt::Publish{"t", "x", 0, false, false, 0});
    EXPECT_EQ(st.code(), Code::kInvalidArgument);
    EXPECT_NE(st.message().find("PUBLISH before CONNACK"), std::string::npos);
  }
  {
    Session s(Options());
    Connect(s);
    Status st = Receive(s, ConnAck{false, 0});
    EXPECT_NE(st.message().find("duplicate CONNACK"), std::string::npos);
  }
  {
    Session s(Options());
    Connect(s);
    Status st = Receive(s, PubAck{77});
    EXPECT_NE(st.message().find("PUBACK for unknown packet id 77"), std::string::npos);
  }
  {
    Session s(Options());
    Connect(s);
    EXPECT_NE(Receive(s, SubAck{5, {0}}).message().find("SUBACK for unknown"), std::string::npos);
  }
  {
    Session s(Options());
    Connect(s);
    EXPECT_NE(Receive(s, PingReq{}).message().find("only clients send"), std::string::npos);
  }
  {
    Session s(Options());
    Connect(s);
    EXPECT_NE(s.OnBytes(std::string("\x50\x02\x00\x01", 4), now_).message().find("QoS 2"),
              std::string::npos);
  }
  {
    Session s(Options());
    EXPECT_EQ(s.OnBytes("x", now_).code(), Code::kFailedPrecondition);
  }
}

// Issue 8: a PUBLISH over max_packet_size is an OversizeMessage, not a session error, and a
// QoS 1 one takes its place in the in-order acknowledgement.
TEST_F(SessionTest, OversizeMessageIsReportedAndAckedInOrder) {
  SessionOptions o = Options();
  o.max_packet_size = 1'024;
  o.oversize_head_bytes = 8;
  Session s(o);
  Connect(s);
  OUTPOST_ASSERT_OK(Receive(s, mqtt::Publish{"sensors/a/data", "1", 1, false, false, 1}));
  const std::string big(5'000, 'g');
  OUTPOST_ASSERT_OK(Receive(s, mqtt::Publish{"sensors/x/data", big, 1, true, true, 2}));
  OUTPOST_ASSERT_OK(Receive(s, mqtt::Publish{"sensors/b/data", "3", 1, false, false, 3}));
  ASSERT_TRUE(s.connected());
  auto events = Events(s);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(std::get<Message>(events[0]).packet_id, 1);
  const auto& m = std::get<OversizeMessage>(events[1]);
  EXPECT_EQ(m.topic, "sensors/x/data");
  EXPECT_EQ(m.head, "gggggggg");
  EXPECT_EQ(m.qos, 1);
  EXPECT_TRUE(m.retain);
  EXPECT_TRUE(m.dup);
  EXPECT_EQ(m.packet_id, 2);
  EXPECT_EQ(m.payload_bytes, big.size());
  EXPECT_EQ(m.packet_bytes, EncodedPublishSize("sensors/x/data", big.size(), 1));
  EXPECT_EQ(m.connection_id, s.connection_id());
  EXPECT_EQ(std::get<Message>(events[2]).packet_id, 3);
  EXPECT_EQ(s.unacked_incoming(), 3u);
  s.Ack(3);
  s.Ack(2);
  EXPECT_TRUE(Sent(s).empty());  // waits for message 1
  s.Ack(1);
  EXPECT_EQ(Sent(s), (std::vector<Packet>{PubAck{1}, PubAck{2}, PubAck{3}}));
  // QoS 0: reported, nothing to acknowledge.
  OUTPOST_ASSERT_OK(Receive(s, mqtt::Publish{"sensors/x/data", big, 0, false, false, 0}));
  events = Events(s);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(std::get<OversizeMessage>(events[0]).qos, 0);
  EXPECT_EQ(s.unacked_incoming(), 0u);
}

TEST_F(SessionTest, DisconnectQueuesDisconnectAndKeepsInflight) {
  Session s(Options());
  Connect(s);
  OUTPOST_ASSERT_OK(s.Publish("t", "x", 1, false));
  Sent(s);
  s.Disconnect();
  auto sent = Sent(s);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<mqtt::Disconnect>(sent[0]));
  EXPECT_EQ(s.state(), Session::State::kDisconnected);
  EXPECT_EQ(s.inflight(), 1u);
  EXPECT_EQ(s.NextDeadlineMs(), std::numeric_limits<std::int64_t>::max());
}

TEST_F(SessionTest, PacketIdsSkipThoseInUseAndWrap) {
  Session s(Options());
  Connect(s);
  auto first = s.Publish("t", "x", 1, false);
  OUTPOST_ASSERT_OK(first);
  // Cycle through the id space with one message outstanding: its id is never reused.
  for (int i = 0; i < 70'000; ++i) {
    auto id = s.Publish("t", "y", 1, false);
    OUTPOST_ASSERT_OK(id);
    ASSERT_NE(*id, 0);
    ASSERT_NE(*id, *first);
    Sent(s);
    OUTPOST_ASSERT_OK(Receive(s, PubAck{*id}));
    Events(s);
  }
}

TEST(SessionOptionsTest, Validation) {
  SessionOptions o;
  o.client_id = "x";
  OUTPOST_EXPECT_OK(ValidateSessionOptions(o));
  o.password = "p";
  EXPECT_FALSE(ValidateSessionOptions(o).ok());
  o.password.reset();
  o.client_id = "";
  o.clean_session = false;
  EXPECT_FALSE(ValidateSessionOptions(o).ok());
  o.client_id = "x";
  o.will = Will{"a/#", "", 0, false};
  EXPECT_FALSE(ValidateSessionOptions(o).ok());
  o.will = Will{"a", "", 2, false};
  EXPECT_FALSE(ValidateSessionOptions(o).ok());
}

}  // namespace
}  // namespace outpost::mqtt
