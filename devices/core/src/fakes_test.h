// Fakes of every port, an in-test MQTT broker speaking real bytes (libs/mqtt's Decoder and
// Encode), and a virtual-time rig that drives one Node the way a binding does.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "outpost/device/node.h"
#include "outpost/mqtt/codec.h"

namespace outpost::device::testing {

// The device's identities as the ports.h contract describes them; the transport asks it what
// to present at each Connect().
struct FakeCredentials : Credentials {
  std::string csr = "MIIBCSRnode1AAAA";  // what MakePendingKey() writes
  std::string serial = "4f1a";           // what Stage() reports
  const char* make_error = nullptr;      // injected failures (static text)
  const char* stage_error = nullptr;
  const char* commit_error = nullptr;
  std::string current = "cert-old";  // the presented certificate, by name
  std::string staged;                // "" = nothing staged
  bool pending = false;
  int makes = 0, stages = 0, commits = 0, abandons = 0;
  std::string last_device_id;
  std::string Presented() const { return staged.empty() ? current : staged; }
  const char* MakePendingKey(const char* device_id, char* out, std::size_t capacity) override {
    ++makes;
    last_device_id = device_id;
    if (make_error != nullptr) return make_error;
    if (csr.size() + 1 > capacity) return "CSR too long for the buffer";
    std::copy(csr.begin(), csr.end(), out);
    out[csr.size()] = '\0';
    pending = true;
    staged.clear();
    return nullptr;
  }
  const char* Stage(const char* cert, std::size_t size, const char* device_id, char* serial_hex,
                    std::size_t serial_capacity) override {
    ++stages;
    last_device_id = device_id;
    if (stage_error != nullptr) return stage_error;
    if (!pending) return "no pending key";
    if (serial.size() + 1 > serial_capacity) return "serial too long";
    staged.assign(cert, size);
    std::copy(serial.begin(), serial.end(), serial_hex);
    serial_hex[serial.size()] = '\0';
    return nullptr;
  }
  const char* Commit() override {
    ++commits;
    if (commit_error != nullptr) return commit_error;
    current = staged;
    staged.clear();
    pending = false;
    return nullptr;
  }
  void Abandon() override {
    ++abandons;
    staged.clear();
  }
};

struct FakeTransport : Transport {
  FakeCredentials* credentials = nullptr;  // set: records the identity of every Connect()
  std::vector<std::string> identities;
  bool connect_requested = false;
  bool open = false;
  int connects = 0;
  int closes = 0;
  std::string written;  // bytes not yet taken by the broker
  std::int64_t* now = nullptr;
  std::vector<std::int64_t> connect_times;
  void Connect() override {
    if (credentials != nullptr) identities.push_back(credentials->Presented());
    ++connects;
    connect_times.push_back(now ? *now : 0);
    connect_requested = true;
  }
  std::size_t max_accept = SIZE_MAX;  // per Write() call
  int refuse_every = 0;               // every n-th Write() accepts nothing (a full socket)
  int writes = 0;
  std::size_t Write(const std::uint8_t* data, std::size_t size) override {
    ++writes;
    if (refuse_every > 0 && writes % refuse_every == 0) return 0;
    if (size > max_accept) size = max_accept;
    written.append(reinterpret_cast<const char*>(data), size);
    return size;
  }
  std::string written_before_close;  // a real socket flushes these before the FIN
  void Close() override {
    ++closes;
    if (open) written_before_close += written;
    written.clear();
    open = false;
    connect_requested = false;
  }
};

struct FakeRandom : Random {
  explicit FakeRandom(std::uint32_t seed) : rng(seed) {}
  std::mt19937 rng;
  std::uint32_t Next() override { return static_cast<std::uint32_t>(rng()); }
};

struct FakeSensors : Sensors {
  std::int64_t* now = nullptr;
  std::vector<std::int64_t> climate_reads;  // virtual times of ReadClimate()
  int fail_reads = 0;                       // next N climate reads fail
  float temperature = 21.25f;
  float humidity = 45.2f;
  bool motion = false;
  float battery = 87.5f;
  std::int32_t rssi = -65;
  ClimateSample ReadClimate() override {
    climate_reads.push_back(now ? *now : 0);
    if (fail_reads > 0) {
      --fail_reads;
      return {};
    }
    return {true, temperature, humidity};
  }
  bool ReadMotion() override { return motion; }
  float ReadBatteryPct() override { return battery; }
  std::int32_t ReadRssiDbm() override { return rssi; }
};

struct FakeSettings : Settings {
  std::map<std::string, std::uint32_t> values;
  bool GetU32(const char* key, std::uint32_t& value) override {
    auto it = values.find(key);
    if (it == values.end()) return false;
    value = it->second;
    return true;
  }
  bool PutU32(const char* key, std::uint32_t value) override {
    values[key] = value;
    return true;
  }
};

struct FakeRtc : RtcMemory {
  bool valid = false;
  RtcState state;
  int stores = 0;
  bool Load(RtcState& s) override {
    if (valid) s = state;
    return valid;
  }
  void Store(const RtcState& s) override {
    state = s;
    valid = true;
    ++stores;
  }
};

struct FakePower : Power {
  int sleeps = 0;
  int restarts = 0;
  std::uint32_t last_sleep_ms = 0;
  bool last_wake_on_motion = false;
  void DeepSleep(std::uint32_t duration_ms, bool wake_on_motion) override {
    ++sleeps;
    last_sleep_ms = duration_ms;
    last_wake_on_motion = wake_on_motion;
  }
  void Restart() override { ++restarts; }
};

struct FakeLed : Led {
  int sets = 0;
  bool on = false;
  void Set(bool v) override {
    ++sets;
    on = v;
  }
};

struct FakeLog : Log {
  std::vector<std::string> lines;
  void Write(LogLevel, const char* m) override { lines.emplace_back(m); }
};

struct FakeWatchdog : Watchdog {
  int feeds = 0;
  void Feed() override { ++feeds; }
};

struct FakeWall : WallClock {
  std::int64_t wall_ms = 0;
  std::int64_t WallMs() override { return wall_ms; }
};

struct RecordingObserver : NodeObserver {
  struct Ack {
    std::uint32_t boot, seq;
    std::int64_t publish_ms, ack_ms;
  };
  std::vector<Ack> acks;
  std::vector<std::uint32_t> dropped;
  void OnReadingAcked(std::uint32_t boot, std::uint32_t seq, std::int64_t p,
                      std::int64_t a) override {
    acks.push_back({boot, seq, p, a});
  }
  void OnReadingDropped(std::uint32_t, std::uint32_t seq) override { dropped.push_back(seq); }
};

// Ports that outlive Node restarts (settings and RTC memory persist like NVS and RTC RAM).
struct Ports {
  explicit Ports(std::uint32_t seed) : random(seed) {}
  FakeTransport transport;
  FakeRandom random;
  FakeSensors sensors;
  FakeSettings settings;
  FakeRtc rtc;
  FakePower power;
  FakeLed led;
  FakeLog log;
  FakeWatchdog watchdog;
  FakeWall wall;
  RecordingObserver observer;
  FakeCredentials credentials;
  bool use_credentials = false;
  NodePorts Get() {
    NodePorts p;
    p.transport = &transport;
    p.random = &random;
    p.sensors = &sensors;
    p.settings = &settings;
    p.rtc = &rtc;
    p.power = &power;
    p.wall_clock = &wall;
    p.led = &led;
    p.log = &log;
    p.watchdog = &watchdog;
    p.observer = &observer;
    if (use_credentials) p.credentials = &credentials;
    return p;
  }
};

// Drives one Node against an in-test broker in virtual time.
class Rig {
  NodeConfig config_;

 public:
  explicit Rig(NodeConfig config, std::uint32_t seed = 1) : config_(config), ports(seed) {
    ports.sensors.now = &now;
    ports.transport.now = &now;
    node = std::make_unique<Node>(config_, ports.Get());
  }

  bool broker_up = true;
  bool auto_puback = true;  // broker acknowledges QoS 1 PUBLISHes
  std::int64_t now = 1'000;
  Ports ports;
  std::unique_ptr<Node> node;
  std::vector<mqtt::Packet> received;      // every packet the broker decoded, in order
  std::vector<mqtt::Publish> publishes;    // PUBLISHes among them
  std::vector<std::uint16_t> unacked_ids;  // QoS 1 PUBLISH ids not acknowledged (auto_puback off)
  std::int64_t poll_jitter_ms = 0;         // the binding wakes up to this late (seeded)

  DeviceError Begin() { return node->Begin(now); }

  // Gives the Node a Credentials port (before Begin()).
  void UseCredentials() {
    ports.use_credentials = true;
    ports.transport.credentials = &ports.credentials;
    node = std::make_unique<Node>(config_, ports.Get());
  }
  // The broker refuses a CONNECT presenting this certificate (the fake credentials' name).
  std::string refuse_identity;
  std::uint8_t refuse_code = 5;  // not authorised

  // A fresh Node on the same ports, as after a reboot or a deep-sleep wake.
  DeviceError Reboot() {
    DropLink();
    node = std::make_unique<Node>(config_, ports.Get());
    return node->Begin(now);
  }

  // Runs until virtual time `t`, polling at the Node's wake times (plus jitter).
  void RunUntil(std::int64_t t) {
    std::mt19937 jitter(7);
    while (true) {
      std::int64_t wake = Step();
      if (poll_jitter_ms > 0) wake += static_cast<std::int64_t>(jitter() % (poll_jitter_ms + 1));
      if (wake > t) break;
      now = wake;
    }
    now = t;
    Step();
  }

  // The broker goes away: the link drops (the Node hears OnDisconnected).
  void BrokerDown() {
    broker_up = false;
    if (ports.transport.open) {
      DropLink();
      node->OnDisconnected(now);
    }
  }
  void BrokerUp() { broker_up = true; }

  // Broker -> node bytes.
  void Send(const mqtt::Packet& p) {
    std::string bytes;
    mqtt::Encode(p, bytes);
    node->OnBytes(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), now);
    Settle();
  }
  // Broker -> node raw bytes in chunks of `chunk` bytes (the last may be shorter).
  void SendBytes(const std::string& bytes, std::size_t chunk) {
    for (std::size_t at = 0; at < bytes.size(); at += chunk) {
      const std::size_t n = std::min(chunk, bytes.size() - at);
      node->OnBytes(reinterpret_cast<const std::uint8_t*>(bytes.data() + at), n, now);
      Settle();
    }
  }
  void SendCommand(const std::string& topic, const std::string& payload, std::uint16_t id) {
    Send(mqtt::Publish{topic, payload, static_cast<std::uint8_t>(id ? 1 : 0), false, false, id});
  }
  void AckAll() {
    auto ids = unacked_ids;
    unacked_ids.clear();
    for (auto id : ids) Send(mqtt::PubAck{id});
  }

  std::vector<mqtt::Publish> PublishesOn(const std::string& topic) const {
    std::vector<mqtt::Publish> out;
    for (const auto& p : publishes) {
      if (p.topic == topic) out.push_back(p);
    }
    return out;
  }

  std::int64_t Step() {
    node->Poll(now);
    Settle();
    std::int64_t wake = node->Poll(now);  // events may have moved it
    Settle();
    return wake;
  }

 private:
  void DropLink() {
    ports.transport.open = false;
    ports.transport.written.clear();
    decoder_.Reset();
  }

  // Delivers transport events and broker responses until nothing moves.
  void Settle() {
    for (int guard = 0; guard < 1000; ++guard) {
      bool moved = false;
      if (ports.transport.connect_requested) {
        ports.transport.connect_requested = false;
        moved = true;
        if (broker_up) {
          ports.transport.open = true;
          node->OnConnected(now);
        } else {
          node->OnDisconnected(now);
        }
      }
      if (!ports.transport.written_before_close.empty()) {
        decoder_.Feed(ports.transport.written_before_close);
        ports.transport.written_before_close.clear();
        while (true) {
          auto next = decoder_.Next();
          if (!next.ok() || !next->has_value()) break;
          received.push_back(**next);
          if (auto* m = std::get_if<mqtt::Publish>(&received.back())) publishes.push_back(*m);
        }
        decoder_.Reset();
      }
      if (!ports.transport.written.empty()) {
        moved = true;
        std::string bytes;
        bytes.swap(ports.transport.written);
        if (!ports.transport.open) continue;
        decoder_.Feed(bytes);
        std::string reply;
        while (true) {
          auto next = decoder_.Next();
          if (!next.ok()) {
            ADD_FAILURE() << "node sent invalid MQTT: " << next.status().ToString();
            return;
          }
          if (!next->has_value()) break;
          mqtt::Packet p = std::move(**next);
          received.push_back(p);
          if (auto* c = std::get_if<mqtt::Connect>(&p)) {
            (void)c;
            const bool refuse = !refuse_identity.empty() && !ports.transport.identities.empty() &&
                                ports.transport.identities.back() == refuse_identity;
            mqtt::Encode(mqtt::ConnAck{false, refuse ? refuse_code : std::uint8_t{0}}, reply);
          } else if (auto* s = std::get_if<mqtt::Subscribe>(&p)) {
            mqtt::Encode(mqtt::SubAck{s->packet_id, {s->subscriptions[0].qos}}, reply);
          } else if (auto* m = std::get_if<mqtt::Publish>(&p)) {
            publishes.push_back(*m);
            if (m->qos == 1) {
              if (auto_puback) {
                mqtt::Encode(mqtt::PubAck{m->packet_id}, reply);
              } else {
                unacked_ids.push_back(m->packet_id);
              }
            }
          } else if (std::holds_alternative<mqtt::PingReq>(p)) {
            mqtt::Encode(mqtt::PingResp{}, reply);
          } else if (std::holds_alternative<mqtt::Disconnect>(p)) {
            ports.transport.open = false;
          }
        }
        if (!reply.empty() && ports.transport.open) {
          node->OnBytes(reinterpret_cast<const std::uint8_t*>(reply.data()), reply.size(), now);
        }
      }
      if (!moved) return;
    }
    ADD_FAILURE() << "the node and the broker did not settle";
  }

  mqtt::Decoder decoder_{1 << 16};
};

}  // namespace outpost::device::testing
