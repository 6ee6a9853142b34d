// A tiny bare-metal program for the arm-none-eabi size check: one Node with dummy ports and
// static storage, driven by a fake millisecond counter. It is linked (newlib-nano, nosys) only
// to measure what devices/core costs on a Cortex-M4; it is never flashed.
#include <cstddef>
#include <cstdint>
#include <new>

#include "outpost/device/node.h"

namespace {

using namespace outpost::device;  // NOLINT: tiny program

volatile std::uint32_t g_sink;  // keeps results observable so nothing is optimised away

struct DummyTransport : Transport {
  void Connect() override { g_sink = g_sink + 1; }
  std::size_t Write(const std::uint8_t* data, std::size_t size) override {
    for (std::size_t i = 0; i < size; ++i) g_sink = g_sink + data[i];
    return size;
  }
  void Close() override { g_sink = g_sink + 2; }
};
struct XorShift : Random {
  std::uint32_t s = 2463534242u;
  std::uint32_t Next() override {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return s;
  }
};
struct DummySensors : Sensors {
  ClimateSample ReadClimate() override { return {true, 21.5f, 40.25f}; }
  bool ReadMotion() override { return g_sink & 1; }
  float ReadBatteryPct() override { return 80.0f; }
  std::int32_t ReadRssiDbm() override { return -60; }
};
struct DummySettings : Settings {
  std::uint32_t values[2] = {};
  bool GetU32(const char* key, std::uint32_t& v) override {
    v = values[key[0] == 'b' ? 0 : 1];
    return true;
  }
  bool PutU32(const char* key, std::uint32_t v) override {
    values[key[0] == 'b' ? 0 : 1] = v;
    return true;
  }
};
struct DummyRtc : RtcMemory {
  RtcState state;
  bool Load(RtcState& s) override {
    s = state;
    return true;
  }
  void Store(const RtcState& s) override { state = s; }
};
struct DummyPower : Power {
  void DeepSleep(std::uint32_t ms, bool motion) override { g_sink = ms + motion; }
  void Restart() override { g_sink = 3; }
};
struct DummyLed : Led {
  void Set(bool on) override { g_sink = on; }
};
struct DummyWatchdog : Watchdog {
  void Feed() override { g_sink = g_sink + 5; }
};

DummyTransport transport;
XorShift random_source;
DummySensors sensors;
DummySettings settings;
DummyRtc rtc;
DummyPower power;
DummyLed led;
DummyWatchdog watchdog;

// The node's whole working memory, sized for the default NodeConfig (checked at run time).
alignas(8) std::uint8_t node_storage[8192];

}  // namespace

// Bare-metal firmware owns its allocator. The core allocates only when Begin() gets no storage;
// this program always passes storage, so these never run (and keep libstdc++'s throwing
// operator new, with its exception machinery, out of the image).
void* operator new[](std::size_t, const std::nothrow_t&) noexcept { return nullptr; }
void operator delete[](void*, const std::nothrow_t&) noexcept {}
void operator delete(void*, std::size_t) noexcept {}
void operator delete(void*) noexcept {}

int main() {
  NodeConfig config;  // defaults: native topics, QoS 1, ring of 64, 512-byte packets
  NodePorts ports;
  ports.transport = &transport;
  ports.random = &random_source;
  ports.sensors = &sensors;
  ports.settings = &settings;
  ports.rtc = &rtc;
  ports.power = &power;
  ports.led = &led;
  ports.watchdog = &watchdog;
  static Node node(config, ports);
  if (Node::StorageBytes(config) > sizeof node_storage) return 1;
  if (node.Begin(0, node_storage, sizeof node_storage) != DeviceError::kOk) return 2;
  static const std::uint8_t kConnAck[] = {0x20, 0x02, 0x00, 0x00};
  std::int64_t now = 0;
  for (int i = 0; i < 1000; ++i) {
    now = node.Poll(now);
    if (node.state() == NodeState::kConnecting) node.OnConnected(now);
    if (node.state() == NodeState::kMqttConnecting) node.OnBytes(kConnAck, sizeof kConnAck, now);
  }
  return static_cast<int>(node.stats().sampled & 0x7f);
}
