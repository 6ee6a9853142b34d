// libFuzzer target for the whole node: arbitrary broker bytes (after a CONNACK) must never
// crash it, and whatever it answers must still be valid MQTT (checked with libs/mqtt's Decoder).
// Input layout: byte 0 = chunk size, byte 1 = milliseconds between chunks; the rest is the
// broker's byte stream.
#include <cstddef>
#include <cstdint>
#include <string>

#include "outpost/base/check.h"
#include "outpost/device/node.h"
#include "outpost/mqtt/codec.h"

namespace {

using namespace outpost::device;  // NOLINT: fuzz-only brevity

struct Link : Transport {
  bool connect_requested = false;
  std::string out;
  void Connect() override { connect_requested = true; }
  std::size_t Write(const std::uint8_t* d, std::size_t n) override {
    out.append(reinterpret_cast<const char*>(d), n);
    return n;
  }
  void Close() override {}
};
struct Rng : Random {
  std::uint32_t s = 1;
  std::uint32_t Next() override { return s = s * 1664525u + 1013904223u; }
};
struct Env : Sensors, Settings, RtcMemory, Power {
  ClimateSample ReadClimate() override { return {true, 20.5f, 50.0f}; }
  bool ReadMotion() override { return false; }
  float ReadBatteryPct() override { return 50.0f; }
  std::int32_t ReadRssiDbm() override { return -70; }
  std::uint32_t values[2] = {};
  bool GetU32(const char* k, std::uint32_t& v) override {
    v = values[k[0] == 'b'];
    return true;
  }
  bool PutU32(const char* k, std::uint32_t v) override {
    values[k[0] == 'b'] = v;
    return true;
  }
  RtcState rtc;
  bool Load(RtcState& s) override {
    s = rtc;
    return true;
  }
  void Store(const RtcState& s) override { rtc = s; }
  void DeepSleep(std::uint32_t, bool) override {}
  void Restart() override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t chunk = data[0] % 64 + 1;
  const std::int64_t step_ms = data[1];
  data += 2;
  size -= 2;
  Link link;
  Rng rng;
  Env env;
  NodePorts ports;
  ports.transport = &link;
  ports.random = &rng;
  ports.sensors = &env;
  ports.settings = &env;
  ports.rtc = &env;
  ports.power = &env;
  NodeConfig config;
  config.device_id = "fuzz-1";
  config.boot_delay_max_ms = 0;
  config.interval_ms = 2'000;
  config.ring_capacity = 8;
  config.max_inflight = 4;
  Node node(config, ports);
  OUTPOST_CHECK(node.Begin(0) == DeviceError::kOk);
  std::int64_t now = 0;
  node.Poll(now);
  OUTPOST_CHECK(link.connect_requested);
  node.OnConnected(now);
  static const std::uint8_t kConnAck[] = {0x20, 0x02, 0x00, 0x00};
  node.OnBytes(kConnAck, sizeof kConnAck, now);
  outpost::mqtt::Decoder decoder(1 << 16);
  for (std::size_t pos = 0; pos < size; pos += chunk) {
    const std::size_t n = size - pos < chunk ? size - pos : chunk;
    node.OnBytes(data + pos, n, now);
    now += step_ms;
    std::int64_t wake = node.Poll(now);
    OUTPOST_CHECK(wake > now);
    if (link.connect_requested && node.state() == NodeState::kConnecting) {
      link.connect_requested = false;
      node.OnConnected(now);
      node.OnBytes(kConnAck, sizeof kConnAck, now);
      decoder.Reset();  // a new connection starts a new stream
    }
    decoder.Feed(link.out);
    link.out.clear();
    while (true) {
      auto p = decoder.Next();
      OUTPOST_CHECK(p.ok());  // the node never emits invalid MQTT
      if (!p->has_value()) break;
    }
  }
  const NodeStats& st = node.stats();
  OUTPOST_CHECK(st.ring_depth <= config.ring_capacity);
  OUTPOST_CHECK(st.acked + st.ring_dropped + st.ring_depth >= st.sampled);
  return 0;
}
