// ESP32 bindings of the node core's ports. See esp32_ports.h.
#include "esp32_ports.h"

#include <esp_system.h>  // esp_random()
#include <esp_sleep.h>
#include <esp_task_wdt.h>
#include <esp_timer.h>
#include <sys/time.h>

#include <cstring>

namespace outpost::esp32 {

std::int64_t NowMs() { return esp_timer_get_time() / 1000; }

// ---- WifiTransport ----

WifiTransport::WifiTransport(const BrokerOptions& options)
    : options_(options), client_(options.tls ? static_cast<Client*>(&secure_) : &plain_) {}

void WifiTransport::Begin() {
  if (options_.tls) {
    secure_.setCACert(options_.ca_pem);
    // A certificate without its key (or a key without its certificate) is not presented.
    if (options_.cert_pem != nullptr && options_.key_pem != nullptr) {
      secure_.setCertificate(options_.cert_pem);
      secure_.setPrivateKey(options_.key_pem);
    }
  }
  // 8 KiB: the TLS handshake (mbedTLS) runs on this task's stack.
  xTaskCreatePinnedToCore(&WifiTransport::ConnectorTask, "outpost-connect", 8192, this, 1, &task_,
                          tskNO_AFFINITY);
}

void WifiTransport::ConnectorTask(void* self_ptr) {
  auto* self = static_cast<WifiTransport*>(self_ptr);
  for (;;) {
    ulTaskNotifyTake(pdTRUE, portMAX_DELAY);
    std::uint32_t generation = self->generation_.load();
    bool ok = false;
    if (WiFi.status() == WL_CONNECTED) {
      int32_t timeout = static_cast<int32_t>(self->options_.connect_timeout_ms);
      ok = self->options_.tls
               ? self->secure_.connect(self->options_.host, self->options_.port, timeout) == 1
               : self->plain_.connect(self->options_.host, self->options_.port, timeout) == 1;
    }
    // The loop may have abandoned this attempt (Close()) while it ran: then nobody wants it.
    int expected = kConnectRequested;
    if (generation != self->generation_.load() ||
        !self->state_.compare_exchange_strong(expected, ok ? kConnected : kFailed)) {
      if (ok) self->client_->stop();
    }
  }
}

void WifiTransport::Connect() {
  generation_.fetch_add(1);
  state_.store(kConnectRequested);
  xTaskNotifyGive(task_);
}

std::size_t WifiTransport::Write(const std::uint8_t* data, std::size_t size) {
  if (state_.load() != kOpen) return 0;
  return client_->write(data, size);
}

void WifiTransport::Close() {
  int state = state_.exchange(kIdle);
  if (state == kOpen || state == kConnected) client_->stop();
  if (state == kConnectRequested) generation_.fetch_add(1);
}

std::int64_t WifiTransport::Pump(device::Node& node, std::int64_t now_ms, std::int64_t wake) {
  int expected = kConnected;
  if (state_.compare_exchange_strong(expected, kOpen)) {
    wake = node.OnConnected(now_ms);
  } else if (expected == kFailed && state_.compare_exchange_strong(expected, kIdle)) {
    return node.OnDisconnected(now_ms);
  }
  std::uint8_t buffer[256];
  while (state_.load() == kOpen && client_->available() > 0) {
    int n = client_->read(buffer, sizeof buffer);
    if (n <= 0) break;
    wake = node.OnBytes(buffer, static_cast<std::size_t>(n), now_ms);
  }
  if (state_.load() == kOpen && !client_->connected()) {
    client_->stop();
    state_.store(kIdle);
    wake = node.OnDisconnected(now_ms);
  }
  return wake;
}

// ---- SntpClock ----

void SntpClock::Begin(const char* server) { configTime(0, 0, server); }

std::int64_t SntpClock::WallMs() {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  // Before the first SNTP answer the clock counts from 1970: report "not synced".
  if (tv.tv_sec < 1'600'000'000) return 0;
  return static_cast<std::int64_t>(tv.tv_sec) * 1000 + tv.tv_usec / 1000;
}

// ---- BoardSensors ----

BoardSensors::BoardSensors(const SensorPins& pins) : pins_(pins), dht_(pins.dht, DHT22) {}

void BoardSensors::Begin() {
  pinMode(pins_.motion, INPUT);
  dht_.begin();
}

device::ClimateSample BoardSensors::ReadClimate() {
  device::ClimateSample sample;
  sample.temperature_c = dht_.readTemperature();
  sample.humidity_pct = dht_.readHumidity();
  sample.ok = !isnan(sample.temperature_c) && !isnan(sample.humidity_pct);
  return sample;
}

bool BoardSensors::ReadMotion() { return digitalRead(pins_.motion) == HIGH; }

float BoardSensors::ReadBatteryPct() {
  float volts = analogReadMilliVolts(pins_.battery) / 1000.0f * pins_.battery_divider;
  float pct = (volts - pins_.battery_empty_v) / (pins_.battery_full_v - pins_.battery_empty_v);
  return constrain(pct * 100.0f, 0.0f, 100.0f);
}

std::int32_t BoardSensors::ReadRssiDbm() { return WiFi.RSSI(); }

// ---- NvsSettings ----

void NvsSettings::Begin() { open_ = prefs_.begin("outpost", /*readOnly=*/false); }

bool NvsSettings::GetU32(const char* key, std::uint32_t& value) {
  if (!open_ || !prefs_.isKey(key)) return false;
  value = prefs_.getUInt(key);
  return true;
}

bool NvsSettings::PutU32(const char* key, std::uint32_t value) {
  return open_ && prefs_.putUInt(key, value) == sizeof(std::uint32_t);
}

// ---- NvsKey ----

bool NvsKey::Store(const char* pem) {
  std::size_t size = pem == nullptr ? 0 : std::strlen(pem);
  if (size == 0 || size > kMaxPemBytes) return false;
  if (const char* stored = Load(); stored != nullptr && std::strcmp(stored, pem) == 0) return true;
  Preferences prefs;
  if (!prefs.begin("outpost-key", /*readOnly=*/false)) return false;
  bool ok = prefs.putBytes("pem", pem, size) == size;
  prefs.end();
  return ok;
}

const char* NvsKey::Load() {
  Preferences prefs;
  if (!prefs.begin("outpost-key", /*readOnly=*/true)) return nullptr;
  std::size_t size = prefs.getBytesLength("pem");
  bool ok = size > 0 && size <= kMaxPemBytes && prefs.getBytes("pem", pem_, size) == size;
  prefs.end();
  if (!ok) return nullptr;
  pem_[size] = '\0';
  return pem_;
}

// ---- RtcSlowMemory ----

RTC_DATA_ATTR static device::RtcState g_rtc_state;

bool RtcSlowMemory::Load(device::RtcState& state) {
  if (g_rtc_state.magic != device::RtcState::kMagic) return false;
  state = g_rtc_state;
  return true;
}

void RtcSlowMemory::Store(const device::RtcState& state) { g_rtc_state = state; }

// ---- EspPower ----

void EspPower::DeepSleep(std::uint32_t duration_ms, bool wake_on_motion) {
  esp_sleep_enable_timer_wakeup(static_cast<std::uint64_t>(duration_ms) * 1000u);
  if (wake_on_motion) esp_sleep_enable_ext0_wakeup(static_cast<gpio_num_t>(motion_pin_), 1);
  Serial.flush();
  esp_deep_sleep_start();  // does not return: the chip resets on wake
}

void EspPower::Restart() {
  Serial.flush();
  ESP.restart();
}

// ---- SerialLog ----

void SerialLog::Write(device::LogLevel level, const char* message) {
  static const char* const kNames[] = {"debug", "info", "warn", "error"};
  Serial.printf("[%s] %s\n", kNames[static_cast<int>(level)], message);
}

// ---- TaskWatchdog ----

void TaskWatchdog::Begin(std::uint32_t timeout_s) {
#if defined(ESP_ARDUINO_VERSION_MAJOR) && ESP_ARDUINO_VERSION_MAJOR >= 3
  esp_task_wdt_config_t config = {};
  config.timeout_ms = timeout_s * 1000;
  config.trigger_panic = true;
  esp_task_wdt_reconfigure(&config);
#else
  esp_task_wdt_init(timeout_s, /*panic=*/true);
#endif
  esp_task_wdt_add(nullptr);  // the loop task
}

void TaskWatchdog::Feed() { esp_task_wdt_reset(); }

}  // namespace outpost::esp32
