// ESP32 (Arduino) bindings of the node core's ports (devices/core/include/outpost/device/ports.h).
// Thin on purpose: every decision (schedule, buffering, backoff, commands, battery policy) is in
// the tested core; these classes only move bytes and read pins.
//
// Thread: everything runs on the Arduino loop task, except the blocking TLS/TCP connect, which
// runs on a small connector task so loop() never stalls while the broker is away (the seed's
// reconnect blocked for 5 s at a time). The two share only the atomic connect state.
// Guide: docs/device_setup.md
#pragma once

#include <Arduino.h>
#include <DHT.h>
#include <Preferences.h>
#include <WiFi.h>
#include <WiFiClientSecure.h>

#include <atomic>

#include "outpost/device/node.h"
#include "outpost/device/ports.h"

namespace outpost::esp32 {

// Monotonic milliseconds that do not wrap after 49 days (millis() does).
std::int64_t NowMs();

struct BrokerOptions {
  const char* host;
  std::uint16_t port;
  bool tls;
  const char* ca_pem;    // used when tls
  const char* cert_pem;  // device certificate; nullptr: none
  const char* key_pem;   // its private key; nullptr: none (or SetKey() before Begin())
  std::uint32_t connect_timeout_ms;
};

// The byte stream to the broker over WiFi (TCP or TLS with CA verification and a device
// certificate). Connect() hands the blocking connect to the connector task; Pump() delivers
// the result and the received bytes to the Node from loop().
class WifiTransport final : public device::Transport {
 public:
  explicit WifiTransport(const BrokerOptions& options);
  // The private key when it is read at run time (NvsKey). Before Begin(); `pem` must outlive
  // the transport.
  void SetKey(const char* pem) { options_.key_pem = pem; }
  void Begin();  // loads the TLS material, creates the connector task; call once in setup()

  void Connect() override;
  std::size_t Write(const std::uint8_t* data, std::size_t size) override;
  void Close() override;

  // From loop(): reports a finished connect, reads what arrived, notices a dropped link.
  // Returns the Node's new wake time, or `wake` when nothing happened.
  std::int64_t Pump(device::Node& node, std::int64_t now_ms, std::int64_t wake);

 private:
  enum State : int { kIdle, kConnectRequested, kConnected, kFailed, kOpen };
  static void ConnectorTask(void* self);

  BrokerOptions options_;
  WiFiClient plain_;
  WiFiClientSecure secure_;
  Client* client_;
  std::atomic<int> state_{kIdle};
  std::atomic<std::uint32_t> generation_{
      0};  // bumped by Connect()/Close(): stale results are dropped
  TaskHandle_t task_ = nullptr;
};

class EspRandom final : public device::Random {
 public:
  std::uint32_t Next() override { return esp_random(); }
};

// SNTP time: 0 until the first sync.
class SntpClock final : public device::WallClock {
 public:
  void Begin(const char* server);
  std::int64_t WallMs() override;
};

struct SensorPins {
  std::uint8_t dht;
  std::uint8_t motion;
  std::uint8_t battery;
  float battery_divider;
  float battery_empty_v;
  float battery_full_v;
};

class BoardSensors final : public device::Sensors {
 public:
  explicit BoardSensors(const SensorPins& pins);
  void Begin();
  device::ClimateSample ReadClimate() override;
  bool ReadMotion() override;
  float ReadBatteryPct() override;
  std::int32_t ReadRssiDbm() override;

 private:
  SensorPins pins_;
  DHT dht_;
};

// NVS through Preferences, namespace "outpost".
class NvsSettings final : public device::Settings {
 public:
  void Begin();
  bool GetU32(const char* key, std::uint32_t& value) override;
  bool PutU32(const char* key, std::uint32_t value) override;

 private:
  Preferences prefs_;
  bool open_ = false;
};

// The device's private key (PEM) in NVS, namespace "outpost-key", so that the firmware image
// carries no secret: a build with secrets.h stores it once, later builds only load it. NVS is
// plain flash unless flash and NVS encryption are enabled (docs/device_setup.md).
class NvsKey {
 public:
  static constexpr std::size_t kMaxPemBytes = 2048;  // a P-256 key is ~240, RSA-2048 ~1,700
  // Writes `pem` unless the same key is already stored (no flash wear on every boot).
  // False: NVS cannot be opened, the key is empty or longer than kMaxPemBytes, or the write failed.
  bool Store(const char* pem);
  // The stored key, or nullptr when there is none (or it does not fit).
  const char* Load();

 private:
  char pem_[kMaxPemBytes + 1] = {};
};

// RTC slow memory: survives deep sleep, not power loss.
class RtcSlowMemory final : public device::RtcMemory {
 public:
  bool Load(device::RtcState& state) override;
  void Store(const device::RtcState& state) override;
};

// Deep sleep with timer wake and, when asked, wake on the PIR pin going high; restart.
class EspPower final : public device::Power {
 public:
  explicit EspPower(std::uint8_t motion_pin) : motion_pin_(motion_pin) {}
  void DeepSleep(std::uint32_t duration_ms, bool wake_on_motion) override;
  void Restart() override;

 private:
  std::uint8_t motion_pin_;
};

class PinLed final : public device::Led {
 public:
  explicit PinLed(std::uint8_t pin) : pin_(pin) {}
  void Begin() { pinMode(pin_, OUTPUT); }
  void Set(bool on) override { digitalWrite(pin_, on ? HIGH : LOW); }

 private:
  std::uint8_t pin_;
};

class SerialLog final : public device::Log {
 public:
  void Write(device::LogLevel level, const char* message) override;
};

// The task watchdog on the loop task: a hung loop resets the chip.
class TaskWatchdog final : public device::Watchdog {
 public:
  void Begin(std::uint32_t timeout_s);
  void Feed() override;
};

}  // namespace outpost::esp32
