#include "outpost/bench_pub/readings.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace outpost::bench_pub {
namespace {

std::uint64_t SplitMix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void AppendInt(std::int64_t v, std::string* out) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, r.ptr);
}

// Appends a fixed-point value held as an integer count of 10^-decimals units ("22.4", "-0.5").
void AppendFixed(std::int64_t units, int decimals, std::string* out) {
  std::int64_t scale = decimals == 1 ? 10 : 100;
  if (units < 0) {
    out->push_back('-');
    units = -units;
  }
  AppendInt(units / scale, out);
  out->push_back('.');
  std::int64_t frac = units % scale;
  if (decimals == 2 && frac < 10) out->push_back('0');
  AppendInt(frac, out);
}

// Symmetric noise in [-amplitude, amplitude], triangular (sum of two uniforms): most steps are
// small, like a real sensor's drift.
std::int32_t Noise(Rng& rng, std::int32_t amplitude) {
  return static_cast<std::int32_t>(rng.Between(0, amplitude) + rng.Between(0, amplitude)) -
         amplitude;
}

}  // namespace

Rng::Rng(std::uint64_t seed) {
  std::uint64_t x = seed;
  state_ = SplitMix64(x);
  if (state_ == 0) state_ = 0x2545F4914F6CDD1Dull;  // xorshift must not start at zero
}

std::uint64_t Rng::Next() {
  state_ ^= state_ >> 12;
  state_ ^= state_ << 25;
  state_ ^= state_ >> 27;
  return state_ * 0x2545F4914F6CDD1Dull;
}

double Rng::Uniform() { return static_cast<double>(Next() >> 11) * (1.0 / 9007199254740992.0); }

std::int64_t Rng::Between(std::int64_t lo, std::int64_t hi) {
  auto span = static_cast<std::uint64_t>(hi - lo) + 1;
  return lo + static_cast<std::int64_t>(Next() % span);
}

ReadingGenerator::ReadingGenerator(std::size_t devices, Format format, std::uint64_t seed,
                                   std::uint64_t boot_salt, std::string_view id_prefix)
    : format_(format), rng_(seed) {
  devices_.resize(std::max<std::size_t>(devices, 1));
  std::uint64_t salt = boot_salt ^ (seed * 0x9E3779B97F4A7C15ull);
  for (std::size_t i = 0; i < devices_.size(); ++i) {
    Device& d = devices_[i];
    char num[24];
    std::snprintf(num, sizeof num, "%05zu", i + 1);
    d.id.assign(id_prefix.data(), id_prefix.size());
    d.id += num;
    d.topic = format_ == Format::kNative ? "sensors/" + d.id + "/data" : "sensors/data";
    std::uint64_t x = salt + i;
    d.boot = static_cast<std::uint32_t>(SplitMix64(x));
    d.base_decic = static_cast<std::int32_t>(rng_.Between(190, 250));
    d.temp_decic = d.base_decic + static_cast<std::int32_t>(rng_.Between(-5, 5));
    d.humid_base_permille = static_cast<std::int32_t>(rng_.Between(350, 600));
    d.humid_permille = d.humid_base_permille;
    d.battery_centi = static_cast<std::int32_t>(rng_.Between(6000, 10000));
    d.rssi_base = static_cast<std::int32_t>(rng_.Between(-85, -50));
  }
}

void ReadingGenerator::Next(std::size_t device, std::int64_t wall_ms, std::int64_t since_start_ms,
                            std::string* out) {
  Device& d = devices_[device];
  ++d.seq;
  // Mean-reverting walks, clamped to what a DHT22 in a building would report.
  d.temp_decic += Noise(rng_, 2) + (d.base_decic - d.temp_decic) / 16;
  d.temp_decic = std::clamp(d.temp_decic, d.base_decic - 30, d.base_decic + 30);
  d.humid_permille += Noise(rng_, 5) + (d.humid_base_permille - d.humid_permille) / 16;
  d.humid_permille = std::clamp(d.humid_permille, 300, 700);
  d.battery_centi = std::max(d.battery_centi - static_cast<std::int32_t>(rng_.Between(0, 1)), 2100);
  // A PIR output stays high for a while once triggered.
  if (rng_.Uniform() < (d.motion ? 0.2 : 0.002)) d.motion = !d.motion;
  std::int32_t rssi = d.rssi_base + Noise(rng_, 3);

  out->clear();
  out->append("{\"deviceId\":\"");
  out->append(d.id);
  if (format_ == Format::kNative) {
    out->append("\",\"boot\":");
    AppendInt(d.boot, out);
    out->append(",\"seq\":");
    AppendInt(static_cast<std::int64_t>(d.seq), out);
    out->append(",\"timestamp\":");
    AppendInt(wall_ms, out);
  } else {
    d.last_millis = std::max(since_start_ms, d.last_millis + 1);
    out->append("\",\"timestamp\":");
    AppendInt(d.last_millis, out);
  }
  out->append(",\"temperature\":");
  AppendFixed(d.temp_decic, 1, out);
  out->append(",\"humidity\":");
  AppendFixed(d.humid_permille, 1, out);
  out->append(d.motion ? ",\"motion\":true" : ",\"motion\":false");
  out->append(",\"battery\":");
  AppendFixed(d.battery_centi, 2, out);
  out->append(",\"rssi\":");
  AppendInt(rssi, out);
  out->push_back('}');
}

}  // namespace outpost::bench_pub
