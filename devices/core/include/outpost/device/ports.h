// The ports through which a Node talks to the world. A binding (ESP32 in devices/esp32, the
// simulator in devices/host) implements them; tests use fakes. Keep them small: each is a handful
// of virtual calls (no RTTI needed) with no heap and no platform types.
//
// Re-entrancy: a port method must never call back into the Node (no OnConnected() from inside
// Transport::Connect(), no Begin() from inside Power::Restart()). Queue the event and deliver it
// from the binding's loop.
// Thread: the Node and all its ports run on one thread (the binding's loop).
// Time: the Node never reads a clock; the binding passes `now_ms` (monotonic milliseconds since
//   an arbitrary origin, e.g. millis()) to every Node call. Only WallClock gives calendar time.
#pragma once

#include <cstddef>
#include <cstdint>

namespace outpost::device {

// A reliable, ordered byte stream to the broker (TCP or TLS). Asynchronous: Connect() starts a
// connection; the binding later calls Node::OnConnected() or Node::OnDisconnected().
class Transport {
 public:
  virtual ~Transport() = default;
  // Starts connecting. Called only when no connection is open or being opened.
  virtual void Connect() = 0;
  // Queues bytes for sending. Returns how many bytes were accepted (0..size); the Node keeps the
  // rest and offers them again on a later Poll(). Only called while connected.
  virtual std::size_t Write(const std::uint8_t* data, std::size_t size) = 0;
  // Closes the connection (or abandons a connect in progress). The Node considers itself
  // disconnected at once: the binding must NOT report OnDisconnected() for a connection the Node
  // closed.
  virtual void Close() = 0;
};

// Calendar time. Returns Unix milliseconds, or 0 while the time is not synchronised (SNTP on
// ESP32; the host clock plus scenario skew in the simulator).
class WallClock {
 public:
  virtual ~WallClock() = default;
  virtual std::int64_t WallMs() = 0;
};

// A source of uniformly distributed 32-bit values (esp_random() on ESP32, a seeded PRNG on host).
class Random {
 public:
  virtual ~Random() = default;
  virtual std::uint32_t Next() = 0;
};

struct ClimateSample {
  bool ok = false;  // false: the sensor did not answer (DHT22 returned NaN)
  float temperature_c = 0;
  float humidity_pct = 0;
};

class Sensors {
 public:
  virtual ~Sensors() = default;
  virtual ClimateSample ReadClimate() = 0;  // may take a few ms (DHT22); called once per sample
  virtual bool ReadMotion() = 0;
  virtual float ReadBatteryPct() = 0;  // 0..100 (values outside are clamped)
  virtual std::int32_t ReadRssiDbm() = 0;
};

// Small persistent key-value store (NVS/Preferences on ESP32, a file or memory on host). Keys are
// short ASCII (<= 15 bytes, the NVS limit). Keys used by the Node: "boot" (u32 boot counter),
// "interval_ms" (u32 sampling interval).
class Settings {
 public:
  virtual ~Settings() = default;
  // Returns false when the key is absent or unreadable (the Node then uses its default).
  virtual bool GetU32(const char* key, std::uint32_t& value) = 0;
  // Returns false when the value could not be stored (counted in NodeStats::settings_errors).
  virtual bool PutU32(const char* key, std::uint32_t value) = 0;
};

// State that survives deep sleep but not power loss (RTC slow memory on ESP32). Written by the
// Node only when it changes. `magic` lets the Node recognise garbage after a cold start.
struct RtcState {
  static constexpr std::uint32_t kMagic = 0x4f505354;  // "OPST"
  static constexpr std::size_t kRecentCommands = 8;
  std::uint32_t magic = 0;
  std::uint32_t low_battery_latched = 0;  // 1: in low-power mode until battery >= high threshold
  std::uint32_t sleeps = 0;               // deep sleeps entered since power-on
  std::uint32_t recent_next = 0;          // next slot in recent_command_hashes
  std::uint32_t recent_command_hashes[kRecentCommands] =
      {};  // FNV-1a of recent command ids; 0 = empty
};

class RtcMemory {
 public:
  virtual ~RtcMemory() = default;
  // Returns false when nothing valid is stored (cold start).
  virtual bool Load(RtcState& state) = 0;
  virtual void Store(const RtcState& state) = 0;
};

class Power {
 public:
  virtual ~Power() = default;
  // Enters deep sleep; wakes after `duration_ms`, or earlier on motion when `wake_on_motion`.
  // On ESP32 it does not return (the chip resets on wake). On host it returns; the Node is then
  // in NodeState::kAsleep and the binding calls Node::Begin() again at wake time.
  virtual void DeepSleep(std::uint32_t duration_ms, bool wake_on_motion) = 0;
  // Restarts the device. On host it returns; the Node is then in NodeState::kRestarting and the
  // binding calls Node::Begin() again (settings and RTC memory persist).
  virtual void Restart() = 0;
};

class Led {
 public:
  virtual ~Led() = default;
  virtual void Set(bool on) = 0;
};

enum class LogLevel : std::uint8_t { kDebug, kInfo, kWarn, kError };

class Log {
 public:
  virtual ~Log() = default;
  // `message` is a NUL-terminated string valid only during the call.
  virtual void Write(LogLevel level, const char* message) = 0;
};

class Watchdog {
 public:
  virtual ~Watchdog() = default;
  virtual void Feed() = 0;  // called at every Node::Poll()
};

// The device's TLS identity for certificate rotation (docs/adr/0011, docs/device_core.md
// "Certificate rotation"). Optional: a binding without it answers certRequest and certInstall
// with a rejection. The ESP32 binding implements it with mbedtls and NVS, the simulator with
// OpenSSL and files. All material crossing this port is public (a CSR, a certificate, a serial):
// the private keys never leave the binding.
//
// Three identities, all kept by the binding:
//   current: what the Transport presents today (a durable key and certificate);
//   pending: a key made by MakePendingKey(), not yet certified (replaced by the next call);
//   staged:  the pending key with the certificate accepted by Stage().
// Contract with the binding's Transport: after a successful Stage(), every Connect() presents
// the staged identity (key and certificate), until Commit() (it becomes the current one, so
// nothing changes for the Transport) or Abandon() (the next Connect() presents the current one
// again). The Node closes the connection right after Stage() and connects again at once; it
// never stages while a connection is being opened.
// Boot: a staged identity never survives a boot. Node::Begin() calls Abandon(), and a binding
//   that keeps the staged certificate anywhere durable must also drop it at its own boot (before
//   the first Connect()), so a device that reboots mid-rotation comes back with its current
//   identity. The pending key may survive (a certInstall queued while the device was asleep can
//   still match it).
// Errors: static text (NUL-terminated, lives forever), sent to the operator in the command's
//   reply: say what failed in a few words ("certificate does not match the pending key").
// Time: MakePendingKey() may take ~100 ms (P-256 key generation on an ESP32); the others are
//   fast. No heap after setup on the device.
class Credentials {
 public:
  virtual ~Credentials() = default;
  // Makes a new EC P-256 key as the pending key (replacing an earlier pending one and any staged
  // certificate; the current identity is untouched) and writes the base64 (standard alphabet,
  // padded, no line breaks) of its DER PKCS#10 CSR, subject CN = `device_id`, self-signed, into
  // `csr_base64` followed by a NUL. `capacity` includes the NUL (the Node passes
  // kMaxCsrBase64Bytes + 1). Returns nullptr on success, else an error (nothing written).
  virtual const char* MakePendingKey(const char* device_id, char* csr_base64,
                                     std::size_t capacity) = 0;
  // Decodes `cert_base64` (`size` characters of the base64 of a DER X.509 certificate, not
  // NUL-terminated), checks that its public key is the pending key's and its subject CN is
  // `device_id`, and keeps it as the staged identity. On success returns nullptr and writes the
  // certificate's serial as lowercase hex (its DER INTEGER bytes without a leading 00 sign byte,
  // at most kMaxSerialHexBytes characters) and a NUL into `serial_hex` (`serial_capacity` >=
  // kMaxSerialHexBytes + 1). On failure returns an error; nothing is staged, the pending key is
  // kept.
  virtual const char* Stage(const char* cert_base64, std::size_t size, const char* device_id,
                            char* serial_hex, std::size_t serial_capacity) = 0;
  // Makes the staged identity the current one, durably (written and flushed before returning),
  // and erases the old key. Called once the broker accepted the staged identity (CONNACK).
  // Returns nullptr, or an error (then the current identity is still the old one; the Node calls
  // Abandon()).
  virtual const char* Commit() = 0;
  // Drops the staged certificate: the next Connect() presents the current identity. No effect
  // when nothing is staged.
  virtual void Abandon() = 0;
};

// Longest CSR (base64 characters) the Node relays: it fits a 512-byte reply with a 64-character
// id. A P-256 CSR with a 64-character CN is about 270 bytes DER, 360 in base64.
inline constexpr std::size_t kMaxCsrBase64Bytes = 416;
// Longest certificate (base64 characters) certInstall accepts: 768 bytes DER. A P-256
// certificate signed by the site's P-256 CA is about 500 (668 in base64).
inline constexpr std::size_t kMaxCertBase64Bytes = 1024;
// A certificate serial in hex: at most 20 bytes (RFC 5280).
inline constexpr std::size_t kMaxSerialHexBytes = 40;

// Events for observers (the simulator computes latency and checks for missing readings).
class NodeObserver {
 public:
  virtual ~NodeObserver() = default;
  // A reading was PUBACKed (QoS 1) or written to the transport (QoS 0). `publish_ms` is the
  // now_ms of its first PUBLISH, `ack_ms` of the PUBACK.
  virtual void OnReadingAcked(std::uint32_t boot, std::uint32_t seq, std::int64_t publish_ms,
                              std::int64_t ack_ms) {
    (void)boot, (void)seq, (void)publish_ms, (void)ack_ms;
  }
  // A reading left the offline ring without an acknowledgement (ring full, or lost at
  // sleep/restart). It may still have reached the broker if it was in flight.
  virtual void OnReadingDropped(std::uint32_t boot, std::uint32_t seq) { (void)boot, (void)seq; }
  // A command was carried out (not called for duplicates).
  virtual void OnCommand(const char* command, bool ok) { (void)command, (void)ok; }
};

// All ports of one Node. Required: transport, random, sensors, settings, rtc, power. Optional
// (nullptr = none): wall_clock, led, log, watchdog, observer, credentials (none: certificate
// rotation is not supported; with it, NodeConfig::max_packet_bytes must be >= 1024).
struct NodePorts {
  Transport* transport = nullptr;
  Random* random = nullptr;
  Sensors* sensors = nullptr;
  Settings* settings = nullptr;
  RtcMemory* rtc = nullptr;
  Power* power = nullptr;
  WallClock* wall_clock = nullptr;
  Led* led = nullptr;
  Log* log = nullptr;
  Watchdog* watchdog = nullptr;
  NodeObserver* observer = nullptr;
  Credentials* credentials = nullptr;
};

}  // namespace outpost::device
