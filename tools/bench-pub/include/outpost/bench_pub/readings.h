// ReadingGenerator: realistic sensor readings for virtual devices, formatted as the wire
// payloads the gateway accepts (docs/formats/readings.md).
//
//   native: topic sensors/{id}/data,
//           {"deviceId","boot","seq","timestamp"(epoch ms at publish),"temperature","humidity",
//            "motion","battery","rssi"}
//   seed:   topic sensors/data, the seed ESP32 sketch's payload,
//           {"deviceId","timestamp"(millis since the device started),"temperature","humidity",
//            "motion","battery","rssi"}
//
// Values follow each device's own slow random walk: temperature about 22 +- 3 degC (0.1 steps,
// the DHT22's resolution), humidity 30..70 %, motion a sticky PIR state, battery draining from
// 60..100 %, rssi -45..-90 dBm. Seed timestamps are strictly increasing per device, so the
// gateway's (device, timestamp) de-duplication never drops one.
//
// Pure: time comes in as arguments; randomness from an internal PRNG seeded by `seed`, so a seed
// reproduces the same values. Boot ids mix in `boot_salt` (callers pass the start time) so that
// a second run against the same gateway is a new boot, not a stream of duplicates.
// Ownership: value type. Thread: not thread-safe; one owner.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace outpost::bench_pub {

enum class Format : std::uint8_t { kNative, kSeed };

// Small, fast PRNG (xorshift64* seeded through splitmix64). Not for cryptography.
class Rng {
 public:
  explicit Rng(std::uint64_t seed);
  std::uint64_t Next();
  // Uniform in [0, 1).
  double Uniform();
  // Uniform integer in [lo, hi].
  std::int64_t Between(std::int64_t lo, std::int64_t hi);

 private:
  std::uint64_t state_;
};

class ReadingGenerator {
 public:
  // `devices` >= 1. Device ids are `id_prefix` + a 5-digit (or wider) 1-based index.
  ReadingGenerator(std::size_t devices, Format format, std::uint64_t seed, std::uint64_t boot_salt,
                   std::string_view id_prefix = "bench-");

  std::size_t devices() const { return devices_.size(); }
  const std::string& device_id(std::size_t device) const { return devices_[device].id; }
  // The topic a device publishes on (native: its own; seed: sensors/data).
  const std::string& topic(std::size_t device) const { return devices_[device].topic; }

  // Advances `device` one reading and writes its payload into *out (replacing its contents;
  // no allocation once *out has grown to ~200 bytes). `wall_ms`: publish time, Unix epoch ms
  // (native "timestamp"). `since_start_ms`: time since the run started (seed "timestamp" is the
  // device's millis(); it is at least the previous one + 1).
  void Next(std::size_t device, std::int64_t wall_ms, std::int64_t since_start_ms,
            std::string* out);

 private:
  struct Device {
    std::string id;
    std::string topic;
    std::uint32_t boot = 0;
    std::uint64_t seq = 0;
    std::int64_t last_millis = -1;
    std::int32_t base_decic = 220;  // tenths of a degree
    std::int32_t temp_decic = 220;
    std::int32_t humid_base_permille = 450;
    std::int32_t humid_permille = 450;  // tenths of a percent
    std::int32_t battery_centi = 9000;  // hundredths of a percent
    std::int32_t rssi_base = -60;
    bool motion = false;
  };

  Format format_;
  Rng rng_;
  std::vector<Device> devices_;
};

}  // namespace outpost::bench_pub
