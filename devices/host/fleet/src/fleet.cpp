#include "outpost/node/fleet/fleet.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>

#include "device.h"
#include "outpost/node/sim/models.h"

namespace outpost::node::fleet {
namespace {

constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();

void AddStats(device::NodeStats& to, const device::NodeStats& s) {
  to.sampled += s.sampled;
  to.published += s.published;
  to.resent += s.resent;
  to.acked += s.acked;
  to.ring_dropped += s.ring_dropped;
  to.connects += s.connects;
  to.connect_failures += s.connect_failures;
  to.reconnects += s.reconnects;
  to.disconnects += s.disconnects;
  to.protocol_errors += s.protocol_errors;
  to.stale_acks += s.stale_acks;
  to.commands_handled += s.commands_handled;
  to.commands_duplicate += s.commands_duplicate;
  to.commands_rejected += s.commands_rejected;
  to.commands_retained += s.commands_retained;
  to.rx_oversize += s.rx_oversize;
  to.read_errors += s.read_errors;
  to.control_dropped += s.control_dropped;
  to.settings_errors += s.settings_errors;
  to.sleeps += s.sleeps;
  to.tx_bytes += s.tx_bytes;
  to.rx_bytes += s.rx_bytes;
  to.cert_rotations += s.cert_rotations;
  to.cert_rotation_failures += s.cert_rotation_failures;
}

// With a Credentials port a certInstall (~730 bytes) must fit: the core's rx, tx (2x) and
// scratch buffers grow from 512 to 1024 bytes, +2 KiB per device (docs/simulator.md "Memory").
constexpr std::uint16_t kRotationMaxPacketBytes = 1024;

}  // namespace

// ---------------------------------------------------------------- Device

Device::Device(Fleet& fleet, std::uint32_t index, std::string id)
    : fleet_(fleet),
      index_(index),
      id_(std::move(id)),
      rng_(sim::Hash(fleet.options().seed, index, 0x5eed, 0)) {
  if (!fleet_.options().settings_dir.empty()) LoadSettingsFile();
}

Device::~Device() = default;

Status Device::Boot(std::int64_t now_ms, bool power_loss) {
  if (node_) {
    AddStats(fleet_.totals_before_[index_], node_->stats());
    node_.reset();
  }
  if (power_loss) rtc_valid_ = false;
  shutting_down = false;
  const FleetOptions& o = fleet_.options();
  device::NodeConfig c;
  c.device_id = id_.c_str();
  c.firmware_version = o.firmware_version.c_str();
  c.scheme = o.mode == Mode::kSeed ? device::TopicScheme::kSeed : device::TopicScheme::kNative;
  c.qos = static_cast<std::uint8_t>(o.qos);
  c.keepalive_s = o.keepalive_s;
  c.username = o.username.empty() ? nullptr : o.username.c_str();
  c.password = o.password.empty() ? nullptr : o.password.c_str();
  c.interval_ms = o.interval_ms;
  c.min_interval_ms = std::min<std::uint32_t>(2'000, o.interval_ms);
  c.ring_capacity = o.ring_capacity;
  c.backoff = BackoffPolicy{500, 15'000};
  c.boot_delay_max_ms = o.boot_delay_max_ms;
  c.max_poll_interval_ms = 0;  // no watchdog on the host: wake only when something is due
  device::Credentials* credentials = fleet_.backend_.CredentialsFor(index_);
  if (credentials != nullptr) {
    c.max_packet_bytes = std::max(c.max_packet_bytes, kRotationMaxPacketBytes);
  }
  device::NodePorts ports;
  ports.credentials = credentials;
  ports.transport = this;
  ports.random = this;
  ports.sensors = this;
  ports.settings = this;
  ports.rtc = this;
  ports.power = this;
  ports.wall_clock = this;
  ports.observer = this;
  node_ = std::make_unique<device::Node>(c, ports);
  const device::DeviceError err = node_->Begin(now_ms);
  if (err != device::DeviceError::kOk) {
    std::string msg = std::string("device ") + id_ + ": " + device::DeviceErrorName(err);
    if (err == device::DeviceError::kInvalidConfig) {
      msg += std::string(": ") + node_->config_error_field() + ": " + node_->config_error_reason();
    }
    node_.reset();
    phase = Phase::kStopped;
    return InvalidArgument(msg);
  }
  DeviceRecord& r = fleet_.records_[index_];
  r.boots++;
  r.boot = node_->stats().boot;
  r.last_acked_seq = -1;
  phase = Phase::kRunning;
  return Status::Ok();
}

void Device::Connect() {
  connecting = true;
  fleet_.backend_.Connect(index_);
}

std::size_t Device::Write(const std::uint8_t* data, std::size_t size) {
  if (!connected) return 0;
  if (fleet_.Blackholed(index_)) return size;  // the network swallows it
  return fleet_.backend_.Write(index_, data, size);
}

void Device::Close() {
  if (connected) --fleet_.connected_;
  connected = false;
  connecting = false;
  fleet_.backend_.Close(index_);
}

std::int64_t Device::WallMs() {
  const std::int64_t now = fleet_.backend_.NowMs();
  std::int64_t wall = fleet_.backend_.WallMs();
  const auto& faults = fleet_.options_.scenario.faults;
  for (std::size_t i = 0; i < faults.size(); ++i) {
    const sim::Fault& f = faults[i];
    if (f.kind == sim::FaultKind::kClockSkew && f.ActiveAt(now - fleet_.start_ms_) &&
        sim::FaultAffects(f, i, fleet_.options_.seed, index_, id_)) {
      wall += static_cast<std::int64_t>((sim::FaultDraw(i, fleet_.options_.seed, index_) * 2 - 1) *
                                        static_cast<double>(f.max_skew_ms));
    }
  }
  return wall;
}

std::uint32_t Device::Next() {
  rng_ += 0x9e3779b97f4a7c15ULL;
  return static_cast<std::uint32_t>(sim::Mix(rng_) >> 32);
}

device::ClimateSample Device::ReadClimate() {
  const std::int64_t wall = WallMs();
  const sim::ModelParams& p = fleet_.options_.scenario.models;
  const std::uint64_t seed = fleet_.options_.seed;
  device::ClimateSample s;
  // Keyed by the monotonic time so the error pattern does not depend on the wall clock.
  if (sim::ReadFails(p, seed, index_, fleet_.backend_.NowMs())) return s;
  s.ok = true;
  s.temperature_c = static_cast<float>(sim::TemperatureC(p, seed, index_, wall));
  s.humidity_pct = static_cast<float>(sim::HumidityPct(p, seed, index_, wall));
  return s;
}

bool Device::ReadMotion() {
  return sim::Motion(fleet_.options_.scenario.models, fleet_.options_.seed, index_, WallMs());
}

float Device::ReadBatteryPct() {
  const std::int64_t elapsed = fleet_.backend_.NowMs() - fleet_.start_ms_;
  const auto& faults = fleet_.options_.scenario.faults;
  for (std::size_t i = 0; i < faults.size(); ++i) {
    const sim::Fault& f = faults[i];
    if (f.kind == sim::FaultKind::kLowBattery && f.ActiveAt(elapsed) &&
        sim::FaultAffects(f, i, fleet_.options_.seed, index_, id_)) {
      return static_cast<float>(f.battery_pct);
    }
  }
  return static_cast<float>(
      sim::BatteryPct(fleet_.options_.scenario.models, fleet_.options_.seed, index_, elapsed));
}

std::int32_t Device::ReadRssiDbm() {
  return sim::RssiDbm(fleet_.options_.scenario.models, fleet_.options_.seed, index_, WallMs());
}

bool Device::GetU32(const char* key, std::uint32_t& value) {
  for (const Slot& s : settings_) {
    if (s.key[0] != '\0' && std::strncmp(s.key, key, sizeof(s.key)) == 0) {
      value = s.value;
      return true;
    }
  }
  return false;
}

bool Device::PutU32(const char* key, std::uint32_t value) {
  if (std::strlen(key) >= sizeof(Slot::key)) return false;
  Slot* free_slot = nullptr;
  for (Slot& s : settings_) {
    if (s.key[0] != '\0' && std::strncmp(s.key, key, sizeof(s.key)) == 0) {
      s.value = value;
      if (!fleet_.options_.settings_dir.empty()) SaveSettingsFile();
      return true;
    }
    if (s.key[0] == '\0' && free_slot == nullptr) free_slot = &s;
  }
  if (free_slot == nullptr) return false;
  std::snprintf(free_slot->key, sizeof(free_slot->key), "%s", key);
  free_slot->value = value;
  if (!fleet_.options_.settings_dir.empty()) SaveSettingsFile();
  return true;
}

void Device::LoadSettingsFile() {
  std::ifstream in(fleet_.options_.settings_dir + "/" + id_ + ".settings");
  std::string key;
  std::uint32_t value = 0;
  while (in >> key >> value) (void)PutU32(key.c_str(), value);
}

void Device::SaveSettingsFile() {
  const std::string path = fleet_.options_.settings_dir + "/" + id_ + ".settings";
  std::ofstream out(path + ".tmp", std::ios::trunc);
  for (const Slot& s : settings_) {
    if (s.key[0] != '\0') out << s.key << ' ' << s.value << '\n';
  }
  out.close();
  if (out) std::rename((path + ".tmp").c_str(), path.c_str());
}

bool Device::Load(device::RtcState& state) {
  if (!rtc_valid_) return false;
  state = rtc_;
  return true;
}

void Device::Store(const device::RtcState& state) {
  rtc_ = state;
  rtc_valid_ = true;
}

void Device::DeepSleep(std::uint32_t duration_ms, bool /*wake_on_motion*/) {
  // Wake on motion is not modelled: the device sleeps for the whole duration.
  phase = Phase::kAsleep;
  wake_at_ms = fleet_.backend_.NowMs() + duration_ms;
  ++fleet_.sleeps_;
}

void Device::Restart() {
  phase = Phase::kRestartDue;
  ++fleet_.restarts_;
}

void Device::OnReadingAcked(std::uint32_t boot, std::uint32_t seq, std::int64_t publish_ms,
                            std::int64_t ack_ms) {
  fleet_.latency_.Record(ack_ms - publish_ms);
  DeviceRecord& r = fleet_.records_[index_];
  if (boot != r.boot) {
    ++fleet_.ack_order_errors_;
    return;
  }
  const std::int64_t s = seq;
  if (s <= r.last_acked_seq) {
    ++fleet_.ack_order_errors_;  // acknowledged twice, or out of order
  } else if (s > r.last_acked_seq + 1) {
    const std::uint64_t gap = static_cast<std::uint64_t>(s - r.last_acked_seq - 1);
    auto& drops = fleet_.drops_since_ack_[index_];
    if (gap > drops) fleet_.ack_order_errors_ += gap - drops;
  }
  fleet_.drops_since_ack_[index_] = 0;
  r.last_acked_seq = s;
  ++r.acked;
}

void Device::OnReadingDropped(std::uint32_t /*boot*/, std::uint32_t /*seq*/) {
  const device::NodeState st = node_ ? node_->state() : device::NodeState::kIdle;
  if (shutting_down || phase != Phase::kRunning || st == device::NodeState::kSleepPending ||
      st == device::NodeState::kRebootPending || st == device::NodeState::kAsleep ||
      st == device::NodeState::kRestarting) {
    ++fleet_.lost_at_restart_;
  } else {
    ++fleet_.ring_dropped_full_;
  }
  ++fleet_.drops_since_ack_[index_];
}

void Device::OnCommand(const char* /*command*/, bool /*ok*/) {}

// ---------------------------------------------------------------- Fleet

Fleet::Fleet(FleetOptions options, Backend& backend)
    : options_(std::move(options)), backend_(backend) {}

Fleet::~Fleet() = default;

std::string Fleet::DeviceId(std::uint32_t index) const {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%05" PRIu32, index + options_.first_index);
  return options_.id_prefix + buf;
}

Status Fleet::Init() {
  if (options_.devices == 0) return InvalidArgument("devices: must be at least 1");
  if (options_.qos != 0 && options_.qos != 1) return InvalidArgument("qos: must be 0 or 1");
  if (!(options_.ramp_per_s > 0)) return InvalidArgument("ramp: must be > 0 connections/s");
  if (options_.duration_ms <= 0 && options_.count == 0) {
    return InvalidArgument("duration/count: a run must be bounded by one of them");
  }
  devices_.reserve(options_.devices);
  records_.resize(options_.devices);
  totals_before_.resize(options_.devices);
  drops_since_ack_.assign(options_.devices, 0);
  for (std::uint32_t i = 0; i < options_.devices; ++i) {
    records_[i].id = DeviceId(i);
    devices_.push_back(std::make_unique<Device>(*this, i, records_[i].id));
  }
  // Validate the core's config once, with the first device's id.
  device::NodeConfig c;
  c.device_id = records_[0].id.c_str();
  c.firmware_version = options_.firmware_version.c_str();
  c.qos = static_cast<std::uint8_t>(options_.qos);
  c.keepalive_s = options_.keepalive_s;
  c.interval_ms = options_.interval_ms;
  c.min_interval_ms = std::min<std::uint32_t>(2'000, options_.interval_ms);
  c.ring_capacity = options_.ring_capacity;
  c.boot_delay_max_ms = options_.boot_delay_max_ms;
  c.max_poll_interval_ms = 0;
  if (backend_.ProvidesCredentials()) {
    c.max_packet_bytes = std::max(c.max_packet_bytes, kRotationMaxPacketBytes);
  }
  c.username = options_.username.empty() ? nullptr : options_.username.c_str();
  c.password = options_.password.empty() ? nullptr : options_.password.c_str();
  const char* field = "";
  const char* reason = "";
  if (device::ValidateConfig(c, &field, &reason) != device::DeviceError::kOk) {
    return InvalidArgument(std::string("device config: ") + field + ": " + reason);
  }
  node_storage_bytes_ = device::Node::StorageBytes(c);
  blackhole_active_.assign(options_.scenario.faults.size(), false);
  storm_done_.assign(options_.scenario.faults.size(), std::vector<bool>());
  return Status::Ok();
}

void Fleet::Start() {
  start_ms_ = backend_.NowMs();
  start_wall_ms_ = backend_.WallMs();
  next_progress_ms_ = start_ms_ + progress_interval_ms;
  next_malformed_ms_ = start_ms_;
  backend_.ScheduleTick(start_ms_);
}

bool Fleet::Blackholed(std::uint32_t device) const {
  const auto& faults = options_.scenario.faults;
  for (std::size_t i = 0; i < faults.size(); ++i) {
    if (blackhole_active_[i] &&
        sim::FaultAffects(faults[i], i, options_.seed, device, records_[device].id)) {
      return true;
    }
  }
  return false;
}

const device::NodeStats& Fleet::node_stats(std::uint32_t device) const {
  static const device::NodeStats kEmpty;
  return devices_[device]->has_node() ? devices_[device]->node().stats() : kEmpty;
}

void Fleet::Service(std::uint32_t index) {
  Device& d = *devices_[index];
  if (d.phase != Device::Phase::kRunning) {
    if (d.phase == Device::Phase::kAsleep || d.phase == Device::Phase::kRestartDue) {
      if (d.connected || d.connecting) d.Close();
      if (ending_) {
        StopDevice(index);
        return;
      }
      backend_.ScheduleWake(index,
                            d.phase == Device::Phase::kAsleep ? d.wake_at_ms : backend_.NowMs());
    }
    return;
  }
  const std::int64_t now = backend_.NowMs();
  const std::int64_t wake = d.node().Poll(now);
  if (d.phase != Device::Phase::kRunning) {  // DeepSleep() or Restart() ran inside Poll
    Service(index);
    return;
  }
  const device::NodeStats& s = d.node().stats();
  if (!d.ever_connected && s.connects > 0) {  // the broker accepted (CONNACK), not just TCP/TLS
    d.ever_connected = true;
    ++ever_connected_;
    if (ever_connected_ == options_.devices && all_connected_ms_ < 0) {
      all_connected_ms_ = backend_.NowMs() - start_ms_;
    }
  }
  const std::uint64_t before = records_[index].sampled;
  records_[index].sampled = totals_before_[index].sampled + s.sampled;
  const bool count_done = options_.count > 0 && records_[index].sampled >= options_.count;
  if (count_done && before < options_.count && ++count_reached_ == options_.devices) {
    RequestStop();  // every device has its readings: drain (bounded by the drain timeout)
  }
  if ((ending_ || count_done) && s.ring_depth == 0) {
    StopDevice(index);
    return;
  }
  backend_.ScheduleWake(index, wake);
}

void Fleet::Wake(std::uint32_t index) {
  if (finished_) return;
  Device& d = *devices_[index];
  const std::int64_t now = backend_.NowMs();
  switch (d.phase) {
    case Device::Phase::kRunning:
      Service(index);
      break;
    case Device::Phase::kAsleep:
      if (now < d.wake_at_ms) {
        backend_.ScheduleWake(index, d.wake_at_ms);
        break;
      }
      [[fallthrough]];
    case Device::Phase::kRestartDue:
      if (d.Boot(now, false).ok()) Service(index);
      break;
    default:
      break;
  }
}

void Fleet::OnConnected(std::uint32_t index) {
  if (finished_) return;
  Device& d = *devices_[index];
  if (d.phase != Device::Phase::kRunning || !d.connecting) {
    backend_.Close(index);
    return;
  }
  d.connecting = false;
  d.connected = true;
  ++connected_;
  d.node().OnConnected(backend_.NowMs());
  Service(index);
}

void Fleet::OnBytes(std::uint32_t index, const std::uint8_t* data, std::size_t size) {
  if (finished_) return;
  Device& d = *devices_[index];
  if (d.phase != Device::Phase::kRunning || !d.connected) return;
  if (Blackholed(index)) return;
  d.node().OnBytes(data, size, backend_.NowMs());
  Service(index);
}

void Fleet::OnDisconnected(std::uint32_t index) {
  if (finished_) return;
  Device& d = *devices_[index];
  if (!d.connected && !d.connecting) return;
  if (d.connected) --connected_;
  d.connected = false;
  d.connecting = false;
  if (d.phase != Device::Phase::kRunning) return;
  d.node().OnDisconnected(backend_.NowMs());
  Service(index);
}

void Fleet::StopDevice(std::uint32_t index) {
  Device& d = *devices_[index];
  if (d.phase == Device::Phase::kStopped) return;
  if (d.has_node())
    records_[index].sampled = totals_before_[index].sampled + d.node().stats().sampled;
  if (d.connected || d.connecting) d.Close();
  d.phase = Device::Phase::kStopped;
  ++stopped_;
  if (stopped_ == started_ && started_ == options_.devices && !finished_) {
    drained_ = true;
    finished_ = true;
    backend_.Stop();
  }
}

void Fleet::RequestStop() {
  if (!ending_) {
    ending_ = true;
    end_ms_ = backend_.NowMs();
    // Devices not started yet never will be.
    for (std::uint32_t i = started_; i < options_.devices; ++i) {
      devices_[i]->phase = Device::Phase::kStopped;
    }
    stopped_ += options_.devices - started_;
    started_ = options_.devices;
    backend_.ScheduleTick(backend_.NowMs());
  }
}

void Fleet::ApplyFaults(std::int64_t elapsed) {
  const auto& faults = options_.scenario.faults;
  const std::int64_t now = backend_.NowMs();
  bool outage = false;
  for (std::size_t i = 0; i < faults.size(); ++i) {
    const sim::Fault& f = faults[i];
    switch (f.kind) {
      case sim::FaultKind::kBrokerOutage:
        outage = outage || f.ActiveAt(elapsed);
        break;
      case sim::FaultKind::kBlackhole: {
        const bool active = f.ActiveAt(elapsed);
        if (active != blackhole_active_[i]) {
          blackhole_active_[i] = active;
          if (!active) {
            // The network is back: connections that lived through it are reset.
            for (std::uint32_t d = 0; d < devices_.size(); ++d) {
              Device& dev = *devices_[d];
              if ((dev.connected || dev.connecting) && !Blackholed(d) &&
                  sim::FaultAffects(f, i, options_.seed, d, dev.id())) {
                backend_.Close(d);
                OnDisconnected(d);
              }
            }
          }
        }
        break;
      }
      case sim::FaultKind::kRebootStorm: {
        if (elapsed < f.at_ms) break;
        auto& done = storm_done_[i];
        if (done.empty()) done.assign(devices_.size(), false);
        for (std::uint32_t d = 0; d < devices_.size(); ++d) {
          if (done[d]) continue;
          Device& dev = *devices_[d];
          if (!sim::FaultAffects(f, i, options_.seed, d, dev.id())) {
            done[d] = true;
            continue;
          }
          const auto at = f.at_ms + static_cast<std::int64_t>(sim::FaultDraw(i, options_.seed, d) *
                                                              f.spread_ms);
          if (elapsed < at) continue;
          done[d] = true;
          if (dev.phase == Device::Phase::kNotStarted || dev.phase == Device::Phase::kStopped) {
            continue;
          }
          dev.shutting_down = true;
          if (dev.has_node()) lost_at_restart_ += dev.node().stats().ring_depth;
          if (dev.connected || dev.connecting) dev.Close();  // power cut: no DISCONNECT
          ++restarts_;
          if (dev.Boot(now, /*power_loss=*/true).ok()) Service(d);
        }
        break;
      }
      default:
        break;
    }
  }
  if (outage && !broker_down_) {
    broker_down_ = true;
    for (std::uint32_t d = 0; d < devices_.size(); ++d) {
      Device& dev = *devices_[d];
      if (dev.connected || dev.connecting) {
        backend_.Close(d);
        OnDisconnected(d);
      }
    }
  } else if (!outage) {
    broker_down_ = false;
  }
}

std::int64_t Fleet::NextFaultEdge(std::int64_t elapsed) const {
  std::int64_t next = kNever;
  for (std::size_t i = 0; i < options_.scenario.faults.size(); ++i) {
    const sim::Fault& f = options_.scenario.faults[i];
    if (f.at_ms > elapsed) next = std::min(next, f.at_ms);
    if (f.duration_ms > 0 && f.at_ms + f.duration_ms > elapsed) {
      next = std::min(next, f.at_ms + f.duration_ms);
    }
    if (f.kind == sim::FaultKind::kRebootStorm && elapsed >= f.at_ms &&
        elapsed <= f.at_ms + f.spread_ms) {
      next = std::min(next, elapsed + 50);
    }
  }
  return next;
}

void Fleet::Tick() {
  if (finished_) return;
  const std::int64_t now = backend_.NowMs();
  const std::int64_t elapsed = now - start_ms_;
  std::int64_t next = kNever;

  // Ramp: device i starts at i / ramp seconds.
  while (started_ < options_.devices && !ending_) {
    const auto due = static_cast<std::int64_t>(started_ * 1000.0 / options_.ramp_per_s);
    if (due > elapsed) {
      next = std::min(next, start_ms_ + due);
      break;
    }
    const std::uint32_t i = started_++;
    if (devices_[i]->Boot(now, true).ok()) {
      Service(i);
    } else {
      devices_[i]->phase = Device::Phase::kStopped;
      ++stopped_;
    }
  }

  ApplyFaults(elapsed);
  const std::int64_t edge = NextFaultEdge(elapsed);
  if (edge != kNever) next = std::min(next, start_ms_ + edge);

  // Malformed payloads, fleet-wide rate, round robin over connected devices.
  const auto& faults = options_.scenario.faults;
  for (std::size_t i = 0; i < faults.size(); ++i) {
    const sim::Fault& f = faults[i];
    if (f.kind != sim::FaultKind::kMalformed || !f.ActiveAt(elapsed) || ending_) continue;
    const auto step = std::max<std::int64_t>(1, static_cast<std::int64_t>(1000.0 / f.rate_per_s));
    next_malformed_ms_ = std::max(next_malformed_ms_, start_ms_ + f.at_ms);
    for (int budget = 0; next_malformed_ms_ <= now && budget < 1000; ++budget) {
      next_malformed_ms_ += step;
      for (std::uint32_t tries = 0; tries < devices_.size(); ++tries) {
        const std::uint32_t d = malformed_cursor_++ % static_cast<std::uint32_t>(devices_.size());
        Device& dev = *devices_[d];
        if (dev.phase != Device::Phase::kRunning || !dev.connected || Blackholed(d)) continue;
        // Rotate through a few kinds of damage the gateway must reject.
        static const char* const kBad[] = {"{\"temperature\":21.5,", "{\"temperature\":\"warm\"}",
                                           "[1,2,3]", "{\"boot\":1,\"temperature\":1}",
                                           "\xff\xfe not json"};
        const char* bad = kBad[malformed_sent_ % (sizeof(kBad) / sizeof(kBad[0]))];
        if (dev.node().PublishRawForTest(bad, now) == device::DeviceError::kOk) {
          ++malformed_sent_;
          Service(d);
        }
        break;
      }
    }
    next = std::min(next, next_malformed_ms_);
  }

  if (progress_interval_ms > 0 && now >= next_progress_ms_) {
    if (on_progress) on_progress(*this);
    next_progress_ms_ = now + progress_interval_ms;
  }
  if (progress_interval_ms > 0) next = std::min(next, next_progress_ms_);

  if (!ending_ && options_.duration_ms > 0 && elapsed >= options_.duration_ms) RequestStop();
  if (!ending_ && options_.duration_ms > 0) next = std::min(next, start_ms_ + options_.duration_ms);
  if (ending_) {
    for (std::uint32_t d = 0; d < devices_.size() && !finished_; ++d) {
      Device& dev = *devices_[d];
      if (dev.phase == Device::Phase::kRunning && dev.node().stats().ring_depth == 0) {
        StopDevice(d);
      } else if (dev.phase == Device::Phase::kAsleep || dev.phase == Device::Phase::kRestartDue) {
        StopDevice(d);
      }
    }
    if (!finished_ && now >= end_ms_ + options_.drain_timeout_ms) {
      finished_ = true;
      for (std::uint32_t d = 0; d < devices_.size(); ++d) {
        Device& dev = *devices_[d];
        if (dev.phase != Device::Phase::kStopped && (dev.connected || dev.connecting)) dev.Close();
      }
      backend_.Stop();
      return;
    }
    next = std::min(next, now + 100);
  }
  if (!finished_ && next != kNever) backend_.ScheduleTick(std::max(next, now + 1));
}

Summary Fleet::Summarize() const {
  Summary s;
  s.devices = options_.devices;
  s.started = started_;
  s.connected_now = connected_;
  s.ever_connected = ever_connected_;
  device::NodeStats t;
  for (std::uint32_t i = 0; i < devices_.size(); ++i) {
    AddStats(t, totals_before_[i]);
    if (devices_[i]->has_node()) {
      const device::NodeStats& n = devices_[i]->node().stats();
      AddStats(t, n);
      s.buffered += n.ring_depth;
    }
  }
  s.sampled = t.sampled;
  s.published = t.published;
  s.resent = t.resent;
  s.acked = t.acked;
  s.ring_dropped = ring_dropped_full_;
  s.lost_at_restart = lost_at_restart_;
  s.reconnects = t.reconnects;
  s.connect_failures = t.connect_failures;
  s.disconnects = t.disconnects;
  s.read_errors = t.read_errors;
  s.commands = t.commands_handled;
  s.commands_duplicate = t.commands_duplicate;
  s.commands_rejected = t.commands_rejected;
  s.commands_retained = t.commands_retained;
  s.rx_oversize = t.rx_oversize;
  s.cert_rotations = t.cert_rotations;
  s.cert_rotation_failures = t.cert_rotation_failures;
  s.protocol_errors = t.protocol_errors;
  s.sleeps = sleeps_;
  s.restarts = restarts_;
  s.malformed_sent = malformed_sent_;
  s.ack_order_errors = ack_order_errors_;
  s.latency_p50_ms = latency_.Percentile(0.50);
  s.latency_p99_ms = latency_.Percentile(0.99);
  s.latency_max_ms = latency_.max();
  s.elapsed_ms = backend_.NowMs() - start_ms_;
  s.all_connected_ms = all_connected_ms_;
  s.drained = drained_;
  return s;
}

std::string Fleet::ProgressLine() const {
  const Summary s = Summarize();
  char buf[320];
  std::snprintf(
      buf, sizeof(buf),
      "%7.1fs  connected %u/%u  sampled %" PRIu64 "  acked %" PRIu64 "  buffered %" PRIu64
      "  dropped %" PRIu64 "  reconnects %" PRIu64 "  ack p50 %" PRId64 " ms p99 %" PRId64 " ms",
      static_cast<double>(s.elapsed_ms) / 1000.0, s.connected_now, s.devices, s.sampled, s.acked,
      s.buffered, s.ring_dropped, s.reconnects, s.latency_p50_ms, s.latency_p99_ms);
  return buf;
}

}  // namespace outpost::node::fleet
