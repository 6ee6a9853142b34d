// Outpost node configuration. Copy this file to config.h (same folder) and fill it in; config.h
// is ignored by git because it holds the WiFi password. Every name the seed sketch used (WIFI_SSID,
// WIFI_PASSWORD, AWS_IOT_ENDPOINT, AWS_CERT_CA, AWS_CERT_CRT, AWS_CERT_PRIVATE) keeps its meaning.
// Setup guide: docs/device_setup.md
#pragma once

// ---- identity ----
#define DEVICE_ID "esp32_sensor_001"  // 1..64 of [A-Za-z0-9_.:-]; unique per device
#define FIRMWARE_VERSION "0.1.0"

// ---- WiFi ----
#define WIFI_SSID "your-ssid"
#define WIFI_PASSWORD "your-password"

// ---- MQTT broker ----
// The seed's name for the broker host. With MQTT_TLS 0 this is a plain TCP broker (the gateway's
// Mosquitto on the LAN, port 1883); with MQTT_TLS 1 a TLS broker (port 8883).
#define AWS_IOT_ENDPOINT "192.168.1.10"
#define MQTT_PORT 8883
#define MQTT_TLS 1
#define MQTT_USERNAME nullptr  // e.g. "node-7"; nullptr: none
#define MQTT_PASSWORD nullptr  // requires MQTT_USERNAME
// Topic scheme: 1 = native per-device topics (sensors/{id}/data, QoS 1, replies); 0 = exactly the
// seed sketch's topics and payloads (sensors/data, devices/status, devices/commands).
#define OUTPOST_NATIVE_TOPICS 1

// ---- TLS (used when MQTT_TLS is 1) ----
// The CA that signed the broker's certificate (the device refuses any other broker) and this
// device's own certificate (PEM). outpost-provision writes both (docs/device_setup.md).
static const char AWS_CERT_CA[] = R"PEM(
-----BEGIN CERTIFICATE-----
...
-----END CERTIFICATE-----
)PEM";
static const char AWS_CERT_CRT[] = R"PEM(
-----BEGIN CERTIFICATE-----
...
-----END CERTIFICATE-----
)PEM";
// The private key is not here: it is AWS_CERT_PRIVATE in secrets.h (copy secrets.example.h, or
// take the one outpost-provision wrote; git ignores it). With OUTPOST_KEY_IN_NVS 1 a build with
// secrets.h stores the key in NVS on its first boot; then delete secrets.h and build again: that
// firmware carries no key and loads it from NVS. 0: the key is compiled in from secrets.h.
#define OUTPOST_KEY_IN_NVS 1

// ---- time ----
#define NTP_SERVER "pool.ntp.org"  // readings carry Unix time once synced, uptime before

// ---- pins (the seed's wiring) ----
#define DHT_PIN 4     // DHT22 data, 10 kOhm pull-up to 3.3 V
#define MOTION_PIN 2  // PIR output; must be an RTC GPIO to wake from deep sleep
#define LED_PIN 13
#define BATTERY_PIN 36  // ADC1 (A0/VP), battery through a 1:2 divider
#define BATTERY_DIVIDER 2.0f
#define BATTERY_EMPTY_V 3.0f
#define BATTERY_FULL_V 4.2f

// ---- behaviour (defaults match the seed) ----
#define SENSOR_INTERVAL_MS 5000      // until changed by setSensorInterval (persisted)
#define OFFLINE_BUFFER_READINGS 256  // readings kept while the broker is away (drop-oldest)
#define LOW_BATTERY_PCT 10.0f        // deep sleep below this ...
#define BATTERY_RECOVERED_PCT 15.0f  // ... and stay in low-power mode until back above this
#define SLEEP_MINUTES 30
#define WATCHDOG_TIMEOUT_S 30
