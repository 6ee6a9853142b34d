#include "outpost/device/config.h"

#include <cstring>

#include "outpost/device/payload.h"

namespace outpost::device {

const char* DeviceErrorName(DeviceError e) {
  switch (e) {
    case DeviceError::kOk:
      return "ok";
    case DeviceError::kInvalidConfig:
      return "invalid_config";
    case DeviceError::kNoMemory:
      return "no_memory";
    case DeviceError::kBufferTooSmall:
      return "buffer_too_small";
    case DeviceError::kNotConnected:
      return "not_connected";
  }
  return "unknown";
}

bool IsValidDeviceId(const char* s, std::uint32_t size) {
  if (s == nullptr || size == 0 || size > 64) return false;
  for (std::uint32_t i = 0; i < size; ++i) {
    const char c = s[i];
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

namespace {

bool IsPrintableAscii(const char* s, std::size_t max_len) {
  std::size_t n = 0;
  for (; s[n] != '\0'; ++n) {
    if (n >= max_len) return false;
    if (s[n] < 0x20 || s[n] > 0x7e || s[n] == '"' || s[n] == '\\') return false;
  }
  return true;
}

}  // namespace

DeviceError ValidateConfig(const NodeConfig& c, const char** field, const char** reason) {
  auto fail = [&](const char* f, const char* r) {
    if (field) *field = f;
    if (reason) *reason = r;
    return DeviceError::kInvalidConfig;
  };
  if (c.device_id == nullptr ||
      !IsValidDeviceId(c.device_id, static_cast<std::uint32_t>(std::strlen(c.device_id)))) {
    return fail("device_id", "must be 1..64 characters of [A-Za-z0-9_.:-]");
  }
  if (c.firmware_version == nullptr || c.firmware_version[0] == '\0' ||
      !IsPrintableAscii(c.firmware_version, 32)) {
    return fail("firmware_version",
                "must be 1..32 printable ASCII characters without '\"' or '\\'");
  }
  if (c.qos > 1) return fail("qos", "must be 0 or 1");
  if (c.password != nullptr && c.username == nullptr) {
    return fail("password", "needs a username (MQTT 3.1.1)");
  }
  if (c.username != nullptr && std::strlen(c.username) > 128) {
    return fail("username", "must be at most 128 bytes");
  }
  if (c.password != nullptr && std::strlen(c.password) > 128) {
    return fail("password", "must be at most 128 bytes");
  }
  if (c.max_packet_bytes < 256) return fail("max_packet_bytes", "must be at least 256");
  {
    // The JSON scratch buffer is max_packet_bytes: the longest reading of this device id and
    // firmware (every number at its widest) must fit, or it would go out as an empty payload.
    Reading widest;
    widest.timestamp_ms = INT64_MIN;
    widest.seq = UINT32_MAX;
    widest.temperature_centi = INT32_MIN;
    widest.humidity_centi = INT32_MIN;
    widest.battery_centi = 10'000;
    widest.rssi_dbm = INT16_MIN;
    const PayloadIdentity ident{c.device_id, UINT32_MAX, c.firmware_version, c.scheme};
    char buf[320];  // > the widest reading with a 64-byte id and 32-byte firmware
    const std::size_t need = WriteReadingJson(ident, widest, buf, sizeof buf);
    if (need == 0 || need + 1 > c.max_packet_bytes) {
      return fail("max_packet_bytes",
                  "too small for the longest reading of this device_id "
                  "and firmware_version (300 always fits)");
    }
  }
  if (c.min_interval_ms < 100) return fail("min_interval_ms", "must be at least 100");
  if (c.max_interval_ms > kMaxIntervalMs) {
    return fail("max_interval_ms", "must be at most 86400000 (24 h)");
  }
  if (c.max_interval_ms < c.min_interval_ms) {
    return fail("max_interval_ms", "must be >= min_interval_ms");
  }
  if (c.interval_ms < c.min_interval_ms || c.interval_ms > c.max_interval_ms) {
    return fail("interval_ms", "must be within [min_interval_ms, max_interval_ms]");
  }
  if (c.ring_capacity == 0) return fail("ring_capacity", "must be at least 1");
  if (c.max_inflight == 0) return fail("max_inflight", "must be at least 1");
  if (c.max_inflight > c.ring_capacity) return fail("max_inflight", "must be <= ring_capacity");
  if (c.backoff.base_ms <= 0) return fail("backoff.base_ms", "must be > 0");
  if (c.backoff.cap_ms < c.backoff.base_ms) return fail("backoff.cap_ms", "must be >= base_ms");
  if (c.connect_timeout_ms == 0) return fail("connect_timeout_ms", "must be > 0");
  if (!(c.low_battery_pct >= 0.0f && c.low_battery_pct <= 100.0f)) {
    return fail("low_battery_pct", "must be within [0, 100]");
  }
  if (!(c.high_battery_pct >= c.low_battery_pct && c.high_battery_pct <= 100.0f)) {
    return fail("high_battery_pct", "must be within [low_battery_pct, 100]");
  }
  if (c.sleep_duration_ms == 0) return fail("sleep_duration_ms", "must be > 0");
  return DeviceError::kOk;
}

}  // namespace outpost::device
