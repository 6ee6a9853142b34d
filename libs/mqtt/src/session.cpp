#include "outpost/mqtt/session.h"

#include <algorithm>
#include <atomic>
#include <utility>

#include "outpost/base/check.h"

namespace outpost::mqtt {

Status ValidateSessionOptions(const SessionOptions& o) {
  if (o.client_id.size() > 0xffff) return InvalidArgument("client id longer than 65535 bytes");
  if (o.client_id.empty() && !o.clean_session) {
    return InvalidArgument("an empty client id needs clean_session (MQTT 3.1.1 3.1.3.1)");
  }
  if (!IsValidMqttUtf8(o.client_id)) {
    return InvalidArgument("client id is not valid UTF-8 (or contains U+0000)");
  }
  if (o.username && !IsValidMqttUtf8(*o.username)) {
    return InvalidArgument("username is not valid UTF-8 (or contains U+0000)");
  }
  if (o.password && !o.username) {
    return InvalidArgument("a password needs a username in MQTT 3.1.1");
  }
  if (o.username && o.username->size() > 0xffff) return InvalidArgument("username too long");
  if (o.password && o.password->size() > 0xffff) return InvalidArgument("password too long");
  if (o.will) {
    Status s = ValidateTopicName(o.will->topic);
    if (!s.ok()) return InvalidArgument("will " + s.message());
    if (o.will->qos > 1) return InvalidArgument("will QoS must be 0 or 1 (QoS 2 not supported)");
    if (o.will->payload.size() > 0xffff) return InvalidArgument("will payload too long");
  }
  if (o.max_inflight == 0 || o.max_inflight > 60'000) {
    return InvalidArgument("max_inflight must be in [1, 60000]");
  }
  if (o.max_packet_size < 64 || o.max_packet_size > kMaxRemainingLength) {
    return InvalidArgument("max_packet_size must be in [64, 268435455]");
  }
  if (o.oversize_head_bytes > kMaxOversizeHeadBytes) {
    return InvalidArgument("oversize_head_bytes must be at most " +
                           std::to_string(kMaxOversizeHeadBytes));
  }
  if (o.connack_timeout_ms <= 0 || o.ping_timeout_ms <= 0) {
    return InvalidArgument("timeouts must be positive");
  }
  return Status::Ok();
}

Session::Session(SessionOptions options)
    : options_(std::move(options)),
      decoder_(options_.max_packet_size, options_.oversize_head_bytes) {
  OUTPOST_CHECK(ValidateSessionOptions(options_).ok());
}

void Session::Start(std::int64_t now_ms) {
  OUTPOST_CHECK(state_ == State::kDisconnected);
  now_ms_ = std::max(now_ms_, now_ms);
  // Process-wide unique, so a Message from another Session (or Client) never matches.
  static std::atomic<std::uint64_t> next_connection_id{1};
  connection_id_ = next_connection_id.fetch_add(1, std::memory_order_relaxed);
  decoder_.Reset();
  outbound_.clear();
  Connect c;
  c.client_id = options_.client_id;
  c.clean_session = options_.clean_session;
  c.keepalive_s = options_.keepalive_s;
  c.username = options_.username;
  c.password = options_.password;
  c.will = options_.will;
  Send(c);
  state_ = State::kConnecting;
  connack_deadline_ms_ = now_ms_ + options_.connack_timeout_ms;
  ping_sent_ms_.reset();
}

Status Session::OnBytes(std::string_view bytes, std::int64_t now_ms) {
  if (state_ == State::kDisconnected) {
    return FailedPrecondition("MQTT: bytes received while the session is disconnected");
  }
  now_ms_ = std::max(now_ms_, now_ms);
  decoder_.Feed(bytes);
  while (true) {
    Result<std::optional<Packet>> next = decoder_.Next();
    if (!next.ok()) return next.status();
    if (!next->has_value()) return Status::Ok();
    OUTPOST_RETURN_IF_ERROR(HandlePacket(std::move(**next), now_ms));
    // A refused CONNACK ends the session; later bytes are not interpreted.
    if (state_ == State::kDisconnected) return Status::Ok();
  }
}

Status Session::HandlePacket(Packet&& packet, std::int64_t /*now_ms*/) {
  if (auto* ack = std::get_if<ConnAck>(&packet)) return OnConnAck(*ack);
  if (state_ != State::kConnected) {
    return InvalidArgument(std::string("MQTT: broker sent ") + PacketName(packet) +
                           " before CONNACK");
  }
  if (auto* pub = std::get_if<mqtt::Publish>(&packet)) {
    TrackIncoming(pub->qos, pub->packet_id);
    Message m;
    m.topic = std::move(pub->topic);
    m.payload = std::move(pub->payload);
    m.qos = pub->qos;
    m.retain = pub->retain;
    m.dup = pub->dup;
    m.packet_id = pub->packet_id;
    m.connection_id = connection_id_;
    events_.emplace_back(std::move(m));
    return Status::Ok();
  }
  if (auto* big = std::get_if<OversizePublish>(&packet)) {
    TrackIncoming(big->qos, big->packet_id);
    OversizeMessage m;
    m.topic = std::move(big->topic);
    m.head = std::move(big->head);
    m.qos = big->qos;
    m.retain = big->retain;
    m.dup = big->dup;
    m.packet_id = big->packet_id;
    m.packet_bytes = big->packet_bytes;
    m.payload_bytes = big->payload_bytes;
    m.connection_id = connection_id_;
    events_.emplace_back(std::move(m));
    return Status::Ok();
  }
  if (auto* puback = std::get_if<PubAck>(&packet)) {
    auto it = inflight_.find(puback->packet_id);
    if (it == inflight_.end() || !it->second->sent) {
      return InvalidArgument("MQTT: PUBACK for unknown packet id " +
                             std::to_string(puback->packet_id));
    }
    inflight_order_.erase(it->second);
    inflight_.erase(it);
    events_.emplace_back(PublishAcked{puback->packet_id});
    return Status::Ok();
  }
  if (auto* suback = std::get_if<SubAck>(&packet)) {
    auto it = pending_subscribe_.find(suback->packet_id);
    if (it == pending_subscribe_.end()) {
      return InvalidArgument("MQTT: SUBACK for unknown packet id " +
                             std::to_string(suback->packet_id));
    }
    if (it->second != suback->codes.size()) {
      return InvalidArgument("MQTT: SUBACK has " + std::to_string(suback->codes.size()) +
                             " return codes for " + std::to_string(it->second) + " filters");
    }
    pending_subscribe_.erase(it);
    events_.emplace_back(Subscribed{suback->packet_id, std::move(suback->codes)});
    return Status::Ok();
  }
  if (auto* unsuback = std::get_if<UnsubAck>(&packet)) {
    if (pending_unsubscribe_.erase(unsuback->packet_id) == 0) {
      return InvalidArgument("MQTT: UNSUBACK for unknown packet id " +
                             std::to_string(unsuback->packet_id));
    }
    events_.emplace_back(Unsubscribed{unsuback->packet_id});
    return Status::Ok();
  }
  if (std::holds_alternative<PingResp>(packet)) {
    ping_sent_ms_.reset();
    return Status::Ok();
  }
  return InvalidArgument(std::string("MQTT: broker sent ") + PacketName(packet) +
                         ", which only clients send");
}

void Session::TrackIncoming(std::uint8_t qos, std::uint16_t packet_id) {
  if (qos == 1 && incoming_seq_.count(packet_id) == 0) {
    incoming_seq_.emplace(packet_id, incoming_front_seq_ + incoming_.size());
    incoming_.push_back({packet_id, false});
  }
}

Status Session::OnConnAck(const ConnAck& ack) {
  if (state_ != State::kConnecting) return InvalidArgument("MQTT: unexpected duplicate CONNACK");
  if (ack.return_code != kConnectionAccepted) {
    events_.emplace_back(ConnectRefused{ack.return_code});
    state_ = State::kDisconnected;
    return Unavailable(std::string("MQTT: broker refused the connection: ") +
                       ConnAckCodeName(ack.return_code));
  }
  state_ = State::kConnected;
  events_.emplace_back(Connected{ack.session_present});
  // The broker has our earlier PUBLISHes only if it kept the session.
  for (Outgoing& entry : inflight_order_) SendPublish(entry, entry.sent && ack.session_present);
  for (const Packet& p : deferred_) Send(p);
  deferred_.clear();
  return Status::Ok();
}

std::optional<Event> Session::PollEvent() {
  if (events_.empty()) return std::nullopt;
  Event e = std::move(events_.front());
  events_.pop_front();
  return e;
}

Result<std::uint16_t> Session::Publish(std::string_view topic, std::string_view payload, int qos,
                                       bool retain) {
  if (qos == 2) return InvalidArgument("MQTT: QoS 2 is not supported");
  if (qos != 0 && qos != 1) return InvalidArgument("MQTT: QoS must be 0 or 1");
  OUTPOST_RETURN_IF_ERROR(ValidateTopicName(topic));
  if (EncodedPublishSize(topic, payload.size(), qos) > options_.max_packet_size) {
    return InvalidArgument("MQTT: message of " + std::to_string(payload.size()) +
                           " bytes exceeds max_packet_size " +
                           std::to_string(options_.max_packet_size));
  }
  mqtt::Publish p;
  p.topic.assign(topic.data(), topic.size());
  p.payload.assign(payload.data(), payload.size());
  p.qos = static_cast<std::uint8_t>(qos);
  p.retain = retain;
  if (qos == 0) {
    if (state_ != State::kConnected) return FailedPrecondition("MQTT: not connected");
    Send(p);
    return std::uint16_t{0};
  }
  if (inflight_.size() >= options_.max_inflight) {
    return ResourceExhausted("MQTT: " + std::to_string(inflight_.size()) +
                             " QoS 1 messages in flight (max_inflight)");
  }
  p.packet_id = NextPacketId();
  inflight_order_.push_back(Outgoing{std::move(p), false});
  auto it = std::prev(inflight_order_.end());
  inflight_.emplace(it->publish.packet_id, it);
  if (state_ == State::kConnected) SendPublish(*it, false);
  return it->publish.packet_id;
}

void Session::SendPublish(Outgoing& entry, bool dup) {
  entry.publish.dup = dup;
  entry.sent = true;
  Send(entry.publish);
}

void Session::Ack(std::uint16_t packet_id) {
  auto it = incoming_seq_.find(packet_id);
  if (it == incoming_seq_.end()) return;
  Incoming& in = incoming_[static_cast<std::size_t>(it->second - incoming_front_seq_)];
  in.acked = true;
  FlushAcks();
}

void Session::FlushAcks() {
  while (!incoming_.empty() && incoming_.front().acked) {
    std::uint16_t id = incoming_.front().packet_id;
    incoming_.pop_front();
    incoming_seq_.erase(id);
    ++incoming_front_seq_;
    if (state_ == State::kConnected) Send(PubAck{id});
  }
}

std::uint16_t Session::Subscribe(std::vector<Subscription> subscriptions) {
  OUTPOST_CHECK(!subscriptions.empty());
  for (const auto& s : subscriptions) {
    OUTPOST_CHECK(ValidateTopicFilter(s.filter).ok());
    OUTPOST_CHECK(s.qos <= 1);
  }
  mqtt::Subscribe p;
  p.packet_id = NextPacketId();
  pending_subscribe_.emplace(p.packet_id, subscriptions.size());
  p.subscriptions = std::move(subscriptions);
  std::uint16_t id = p.packet_id;
  SendOrDefer(std::move(p));
  return id;
}

std::uint16_t Session::Unsubscribe(std::vector<std::string> filters) {
  OUTPOST_CHECK(!filters.empty());
  for (const auto& f : filters) OUTPOST_CHECK(ValidateTopicFilter(f).ok());
  mqtt::Unsubscribe p;
  p.packet_id = NextPacketId();
  pending_unsubscribe_.insert(p.packet_id);
  p.filters = std::move(filters);
  std::uint16_t id = p.packet_id;
  SendOrDefer(std::move(p));
  return id;
}

void Session::SendOrDefer(Packet packet) {
  if (state_ == State::kConnected) {
    Send(packet);
  } else {
    deferred_.push_back(std::move(packet));  // sent after the CONNACK
  }
}

void Session::Disconnect() {
  if (state_ == State::kDisconnected) return;
  Send(mqtt::Disconnect{});
  state_ = State::kDisconnected;
  incoming_.clear();
  incoming_seq_.clear();
  pending_subscribe_.clear();
  pending_unsubscribe_.clear();
  deferred_.clear();
  ping_sent_ms_.reset();
}

Status Session::OnTick(std::int64_t now_ms) {
  now_ms_ = std::max(now_ms_, now_ms);
  if (state_ == State::kConnecting) {
    if (now_ms_ >= connack_deadline_ms_) {
      return Status(
          Code::kDeadlineExceeded,
          "MQTT: no CONNACK within " + std::to_string(options_.connack_timeout_ms) + " ms");
    }
    return Status::Ok();
  }
  if (state_ != State::kConnected || options_.keepalive_s == 0) return Status::Ok();
  if (ping_sent_ms_) {
    if (now_ms_ - *ping_sent_ms_ >= options_.ping_timeout_ms) {
      return Status(Code::kDeadlineExceeded,
                    "MQTT: no PINGRESP within " + std::to_string(options_.ping_timeout_ms) + " ms");
    }
    return Status::Ok();
  }
  if (now_ms_ - last_send_ms_ >= options_.keepalive_s * std::int64_t{1000}) {
    Send(PingReq{});
    ping_sent_ms_ = now_ms_;
  }
  return Status::Ok();
}

std::int64_t Session::NextDeadlineMs() const {
  if (state_ == State::kConnecting) return connack_deadline_ms_;
  if (state_ != State::kConnected || options_.keepalive_s == 0) {
    return std::numeric_limits<std::int64_t>::max();
  }
  if (ping_sent_ms_) return *ping_sent_ms_ + options_.ping_timeout_ms;
  return last_send_ms_ + options_.keepalive_s * std::int64_t{1000};
}

std::string Session::TakeOutbound() {
  std::string out;
  out.swap(outbound_);
  return out;
}

void Session::OnConnectionLost() {
  state_ = State::kDisconnected;
  decoder_.Reset();
  outbound_.clear();
  incoming_.clear();
  incoming_seq_.clear();
  pending_subscribe_.clear();
  pending_unsubscribe_.clear();
  deferred_.clear();
  ping_sent_ms_.reset();
}

void Session::Send(const Packet& packet) {
  Encode(packet, outbound_);
  last_send_ms_ = now_ms_;
}

std::uint16_t Session::NextPacketId() {
  for (int tries = 0; tries < 65536; ++tries) {
    last_packet_id_ = static_cast<std::uint16_t>(last_packet_id_ + 1);
    if (last_packet_id_ == 0) continue;
    const std::uint16_t id = last_packet_id_;
    if (inflight_.count(id) || pending_subscribe_.count(id) || pending_unsubscribe_.count(id)) {
      continue;
    }
    return id;
  }
  OUTPOST_CHECK(false && "no free MQTT packet id");
  return 0;
}

}  // namespace outpost::mqtt
