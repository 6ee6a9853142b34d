// Outpost ESP32 sensor node: the seed's node (DHT22, PIR, battery, LED; sensors/data or
// sensors/{id}/data) on the Outpost device core — QoS 1 with an offline buffer, non-blocking
// reconnect with jitter, acknowledged commands, battery policy with hysteresis, watchdog.
// All behaviour is in the core (devices/core, unit-tested on a PC); this file only wires the
// ESP32 bindings to it. Setup, wiring, flashing and certificates: docs/device_setup.md
#include "config.h"  // copy config.example.h to config.h and fill it in
#if __has_include("secrets.h")
#include "secrets.h"  // AWS_CERT_PRIVATE (git ignores it)
#define OUTPOST_KEY_COMPILED_IN 1
#else
#define OUTPOST_KEY_COMPILED_IN 0
#endif
#ifndef OUTPOST_KEY_IN_NVS
#define OUTPOST_KEY_IN_NVS 0  // a config.h from before: AWS_CERT_PRIVATE is in it or in secrets.h
#endif
#include "esp32_ports.h"

using namespace outpost;

namespace {

esp32::WifiTransport transport({AWS_IOT_ENDPOINT, MQTT_PORT, MQTT_TLS != 0, AWS_CERT_CA,
                                AWS_CERT_CRT, /*key_pem=*/nullptr,
                                /*connect_timeout_ms=*/10'000});
#if OUTPOST_KEY_IN_NVS
esp32::NvsKey device_key;
#endif
esp32::EspRandom random_source;
esp32::SntpClock wall_clock;
esp32::BoardSensors sensors({DHT_PIN, MOTION_PIN, BATTERY_PIN, BATTERY_DIVIDER, BATTERY_EMPTY_V,
                             BATTERY_FULL_V});
esp32::NvsSettings settings;
esp32::RtcSlowMemory rtc;
esp32::EspPower power(MOTION_PIN);
esp32::PinLed led(LED_PIN);
esp32::SerialLog serial_log;
esp32::TaskWatchdog watchdog;

device::NodeConfig MakeConfig() {
  device::NodeConfig c;
  c.device_id = DEVICE_ID;
  c.firmware_version = FIRMWARE_VERSION;
  c.scheme = OUTPOST_NATIVE_TOPICS ? device::TopicScheme::kNative : device::TopicScheme::kSeed;
  c.qos = 1;  // also in seed mode: same topics and payloads, but nothing lost in an outage
  c.username = MQTT_USERNAME;
  c.password = MQTT_PASSWORD;
  c.interval_ms = SENSOR_INTERVAL_MS;
  c.ring_capacity = OFFLINE_BUFFER_READINGS;
  c.low_battery_pct = LOW_BATTERY_PCT;
  c.high_battery_pct = BATTERY_RECOVERED_PCT;
  c.sleep_duration_ms = SLEEP_MINUTES * 60u * 1000u;
  c.wake_on_motion = true;
  return c;
}

device::NodePorts MakePorts() {
  device::NodePorts p;
  p.transport = &transport;
  p.random = &random_source;
  p.sensors = &sensors;
  p.settings = &settings;
  p.rtc = &rtc;
  p.power = &power;
  p.wall_clock = &wall_clock;
  p.led = &led;
  p.log = &serial_log;
  p.watchdog = &watchdog;
  return p;
}

device::Node node(MakeConfig(), MakePorts());

// The private key: from NVS (stored there first when this build has secrets.h), or compiled in.
const char* DeviceKey() {
#if OUTPOST_KEY_IN_NVS
#if OUTPOST_KEY_COMPILED_IN
  if (!device_key.Store(AWS_CERT_PRIVATE)) Serial.println("outpost: cannot store the key in NVS");
#endif
  return device_key.Load();
#else
  return AWS_CERT_PRIVATE;
#endif
}

}  // namespace

void setup() {
  Serial.begin(115200);
  sensors.Begin();
  led.Begin();
  settings.Begin();
  WiFi.mode(WIFI_STA);
  WiFi.setAutoReconnect(true);
  WiFi.begin(WIFI_SSID, WIFI_PASSWORD);  // does not block: the core retries until WiFi is up
  wall_clock.Begin(NTP_SERVER);
  if (MQTT_TLS != 0) {
    const char* key = DeviceKey();
    if (key == nullptr) {
      Serial.println("outpost: no device key (secrets.h, or NVS from an earlier build): "
                     "connecting without a client certificate; the broker will refuse it");
    }
    transport.SetKey(key);
  }
  transport.Begin();
  watchdog.Begin(WATCHDOG_TIMEOUT_S);

  device::DeviceError error = node.Begin(esp32::NowMs());
  if (error != device::DeviceError::kOk) {
    Serial.printf("outpost: cannot start: %s: %s %s\n", device::DeviceErrorName(error),
                  node.config_error_field(), node.config_error_reason());
    delay(10'000);
    ESP.restart();
  }
  Serial.printf("outpost: node %s started (boot %u)\n", DEVICE_ID,
                static_cast<unsigned>(node.stats().boot));
}

void loop() {
  std::int64_t now = esp32::NowMs();
  std::int64_t wake = node.Poll(now);
  wake = transport.Pump(node, now, wake);
  // Sleep until the core's next deadline, but look at the socket at least every 20 ms.
  std::int64_t wait_ms = wake - esp32::NowMs();
  if (wait_ms > 20) wait_ms = 20;
  if (wait_ms > 0) delay(static_cast<std::uint32_t>(wait_ms));
}
