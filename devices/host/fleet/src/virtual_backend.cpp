#include "outpost/node/fleet/virtual_backend.h"

#include <optional>
#include <variant>

#include "outpost/mqtt/codec.h"

namespace outpost::node::fleet {
namespace {

constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();

enum Kind : std::uint8_t {
  kWake,
  kTick,
  kConnectOk,
  kConnectFail,
  kToBroker,
  kBrokerClosed,  // the device closed its side: the broker notices
  kToDevice,
  kDeviceReset,  // the broker dropped the connection: the device notices
  kExternal,
};

}  // namespace

struct VirtualBackend::Session {
  std::uint64_t cid = 0;  // 0: no connection
  mqtt::Decoder decoder{64 * 1024};
  bool connected = false;  // CONNECT received
  std::string client_id;
  std::optional<mqtt::Will> will;
  std::vector<mqtt::Subscription> subscriptions;
  std::uint16_t next_packet_id = 0;
};

VirtualBackend::VirtualBackend(VirtualOptions options) : options_(options) {}
VirtualBackend::~VirtualBackend() = default;

void VirtualBackend::Attach(Fleet& fleet) {
  fleet_ = &fleet;
  const std::uint32_t n = fleet.options().devices;
  wake_at_.assign(n, kNever);
  device_cid_.assign(n, 0);
  pending_cid_.assign(n, 0);
  sessions_.clear();
  for (std::uint32_t i = 0; i < n; ++i) sessions_.push_back(std::make_unique<Session>());
}

void VirtualBackend::Push(std::int64_t t, std::uint8_t kind, std::uint32_t device,
                          std::uint64_t cid, std::string bytes) {
  queue_.push(Event{t, order_++, kind, device, cid, std::move(bytes)});
}

void VirtualBackend::Connect(std::uint32_t device) {
  const std::uint64_t cid = next_cid_++;
  device_cid_[device] = 0;
  if (fleet_->BrokerDown()) {
    Push(now_ms_ + options_.connect_delay_ms, kConnectFail, device, cid);
  } else if (!fleet_->Blackholed(device)) {
    Push(now_ms_ + options_.connect_delay_ms, kConnectOk, device, cid);
  }
  // Blackholed: the SYN vanishes; the device's connect timeout gives up.
  pending_cid_[device] = cid;
}

std::size_t VirtualBackend::Write(std::uint32_t device, const std::uint8_t* data,
                                  std::size_t size) {
  const std::uint64_t cid = device_cid_[device];
  if (cid == 0) return 0;
  Push(now_ms_ + options_.link_delay_ms, kToBroker, device, cid,
       std::string(reinterpret_cast<const char*>(data), size));
  return size;
}

void VirtualBackend::Close(std::uint32_t device) {
  const std::uint64_t cid = device_cid_[device];
  device_cid_[device] = 0;
  pending_cid_[device] = 0;
  if (cid != 0) Push(now_ms_ + options_.link_delay_ms, kBrokerClosed, device, cid);
}

void VirtualBackend::ScheduleWake(std::uint32_t device, std::int64_t at_ms) {
  if (at_ms < now_ms_) at_ms = now_ms_;
  if (wake_at_[device] <= at_ms && wake_at_[device] >= now_ms_) return;  // an earlier one is due
  wake_at_[device] = at_ms;
  Push(at_ms, kWake, device, 0);
}

void VirtualBackend::ScheduleTick(std::int64_t at_ms) {
  if (at_ms < now_ms_) at_ms = now_ms_;
  if (tick_at_ <= at_ms && tick_at_ >= now_ms_) return;
  tick_at_ = at_ms;
  Push(at_ms, kTick, 0, 0);
}

void VirtualBackend::Publish(std::string topic, std::string payload, int qos, bool retain,
                             std::int64_t at_ms) {
  mqtt::Publish p;
  p.topic = std::move(topic);
  p.payload = std::move(payload);
  p.qos = static_cast<std::uint8_t>(qos);
  p.retain = retain;
  p.packet_id = qos > 0 ? 1 : 0;
  std::string bytes;
  mqtt::Encode(p, bytes);
  Push(at_ms, kExternal, 0, 0, std::move(bytes));
}

void VirtualBackend::SendToDevice(std::uint32_t device, std::uint64_t cid,
                                  const std::string& bytes) {
  Push(now_ms_ + options_.link_delay_ms, kToDevice, device, cid, bytes);
}

void VirtualBackend::Route(const std::string& topic, const std::string& payload, int qos,
                           bool retain, const std::string& client_id, bool dup) {
  if (on_publish) {
    on_publish(BrokerMessage{now_ms_, client_id, topic, payload, qos, retain, dup});
  }
  if (retain) {
    if (payload.empty()) {
      retained_.erase(topic);
    } else {
      retained_[topic] = payload;
    }
  }
  for (std::uint32_t d = 0; d < sessions_.size(); ++d) {
    Session& s = *sessions_[d];
    if (s.cid == 0 || !s.connected) continue;
    int granted = -1;
    for (const auto& sub : s.subscriptions) {
      if (mqtt::TopicMatchesFilter(sub.filter, topic)) granted = std::max<int>(granted, sub.qos);
    }
    if (granted < 0) continue;
    mqtt::Publish out;
    out.topic = topic;
    out.payload = payload;
    out.qos = static_cast<std::uint8_t>(std::min(granted, qos));
    if (out.qos > 0) {
      if (++s.next_packet_id == 0) s.next_packet_id = 1;
      out.packet_id = s.next_packet_id;
    }
    std::string bytes;
    mqtt::Encode(out, bytes);
    SendToDevice(d, s.cid, bytes);
  }
}

void VirtualBackend::BrokerClose(std::uint32_t device, std::uint64_t cid, bool publish_will) {
  Session& s = *sessions_[device];
  if (s.cid != cid) return;
  const std::optional<mqtt::Will> will = publish_will && s.connected ? s.will : std::nullopt;
  s.cid = 0;
  s.connected = false;
  s.will.reset();
  s.subscriptions.clear();
  s.decoder.Reset();
  if (will) Route(will->topic, will->payload, will->qos, will->retain, s.client_id, false);
}

void VirtualBackend::BrokerReceive(std::uint32_t device, std::uint64_t cid,
                                   const std::string& bytes) {
  Session& s = *sessions_[device];
  if (s.cid != cid) return;
  s.decoder.Feed(bytes);
  while (s.cid == cid) {
    auto next = s.decoder.Next();
    if (!next.ok() ||
        (next->has_value() && !s.connected && !std::holds_alternative<mqtt::Connect>(**next))) {
      ++protocol_errors_;
      BrokerClose(device, cid, true);
      Push(now_ms_ + options_.link_delay_ms, kDeviceReset, device, cid);
      return;
    }
    if (!next->has_value()) return;
    mqtt::Packet& packet = **next;
    std::string reply;
    if (auto* c = std::get_if<mqtt::Connect>(&packet)) {
      s.connected = true;
      s.client_id = c->client_id;
      s.will = c->will;
      s.subscriptions.clear();
      mqtt::Encode(mqtt::ConnAck{false, mqtt::kConnectionAccepted}, reply);
    } else if (auto* p = std::get_if<mqtt::Publish>(&packet)) {
      if (p->qos == 1) mqtt::Encode(mqtt::PubAck{p->packet_id}, reply);
      if (!reply.empty()) SendToDevice(device, cid, reply);
      reply.clear();
      Route(p->topic, p->payload, p->qos, p->retain, s.client_id, p->dup);
    } else if (auto* sub = std::get_if<mqtt::Subscribe>(&packet)) {
      mqtt::SubAck ack;
      ack.packet_id = sub->packet_id;
      for (const auto& f : sub->subscriptions) {
        s.subscriptions.push_back(f);
        ack.codes.push_back(f.qos);
      }
      mqtt::Encode(ack, reply);
      SendToDevice(device, cid, reply);
      reply.clear();
      for (const auto& [topic, payload] : retained_) {
        for (const auto& f : sub->subscriptions) {
          if (!mqtt::TopicMatchesFilter(f.filter, topic)) continue;
          mqtt::Publish out;
          out.topic = topic;
          out.payload = payload;
          out.retain = true;
          out.qos = f.qos;
          if (out.qos > 0) {
            if (++s.next_packet_id == 0) s.next_packet_id = 1;
            out.packet_id = s.next_packet_id;
          }
          std::string b;
          mqtt::Encode(out, b);
          SendToDevice(device, cid, b);
          break;
        }
      }
    } else if (auto* unsub = std::get_if<mqtt::Unsubscribe>(&packet)) {
      mqtt::Encode(mqtt::UnsubAck{unsub->packet_id}, reply);
    } else if (std::holds_alternative<mqtt::PingReq>(packet)) {
      mqtt::Encode(mqtt::PingResp{}, reply);
    } else if (std::holds_alternative<mqtt::Disconnect>(packet)) {
      BrokerClose(device, cid, /*publish_will=*/false);
      return;
    }
    // PUBACK from the device for our deliveries: nothing to do.
    if (!reply.empty()) SendToDevice(device, cid, reply);
  }
}

void VirtualBackend::Run(std::int64_t until_ms) {
  stopped_ = false;
  while (!queue_.empty() && queue_.top().t <= until_ms) {
    Event e = queue_.top();
    queue_.pop();
    // After Stop() only the broker's side runs on, so it sees the last bytes and the closes
    // (and publishes the wills) of the devices stopped at the end.
    if (stopped_ && e.kind != kToBroker && e.kind != kBrokerClosed) continue;
    now_ms_ = std::max(now_ms_, e.t);
    ++events_;
    switch (e.kind) {
      case kWake:
        if (wake_at_[e.device] != e.t) break;  // superseded
        wake_at_[e.device] = kNever;
        fleet_->Wake(e.device);
        break;
      case kTick:
        if (tick_at_ != e.t) break;
        tick_at_ = kNever;
        fleet_->Tick();
        break;
      case kConnectOk: {
        if (pending_cid_[e.device] != e.cid) break;  // abandoned
        pending_cid_[e.device] = 0;
        device_cid_[e.device] = e.cid;
        Session& s = *sessions_[e.device];
        if (s.cid != 0) BrokerClose(e.device, s.cid, true);
        s.cid = e.cid;
        s.connected = false;
        s.decoder.Reset();
        fleet_->OnConnected(e.device);
        break;
      }
      case kConnectFail:
        if (pending_cid_[e.device] != e.cid) break;
        pending_cid_[e.device] = 0;
        fleet_->OnDisconnected(e.device);
        break;
      case kToBroker:
        BrokerReceive(e.device, e.cid, e.bytes);
        break;
      case kBrokerClosed:
        BrokerClose(e.device, e.cid, /*publish_will=*/true);
        break;
      case kToDevice:
        if (device_cid_[e.device] != e.cid) break;
        fleet_->OnBytes(e.device, reinterpret_cast<const std::uint8_t*>(e.bytes.data()),
                        e.bytes.size());
        break;
      case kDeviceReset:
        if (device_cid_[e.device] != e.cid) break;
        device_cid_[e.device] = 0;
        fleet_->OnDisconnected(e.device);
        break;
      case kExternal: {
        mqtt::Decoder d;
        d.Feed(e.bytes);
        auto p = d.Next();
        if (p.ok() && p->has_value()) {
          if (auto* pub = std::get_if<mqtt::Publish>(&**p)) {
            Route(pub->topic, pub->payload, pub->qos, pub->retain, "", false);
          }
        }
        break;
      }
    }
  }
}

}  // namespace outpost::node::fleet
