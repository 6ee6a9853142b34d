// Device: one virtual device — a device::Node and the host implementations of its ports.
// Private to the fleet component. Ownership: owned by Fleet; borrows the Fleet.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "outpost/device/node.h"
#include "outpost/device/ports.h"
#include "outpost/node/fleet/fleet.h"

namespace outpost::node::fleet {

class Device final : public device::Transport,
                     public device::WallClock,
                     public device::Random,
                     public device::Sensors,
                     public device::Settings,
                     public device::RtcMemory,
                     public device::Power,
                     public device::NodeObserver {
 public:
  enum class Phase : std::uint8_t { kNotStarted, kRunning, kAsleep, kRestartDue, kStopped };

  Device(Fleet& fleet, std::uint32_t index, std::string id);
  ~Device() override;

  // (Re)creates the Node and calls Begin(). `power_loss`: RTC memory is lost too.
  Status Boot(std::int64_t now_ms, bool power_loss);

  // Transport
  void Connect() override;
  std::size_t Write(const std::uint8_t* data, std::size_t size) override;
  void Close() override;
  // WallClock
  std::int64_t WallMs() override;
  // Random (SplitMix64)
  std::uint32_t Next() override;
  // Sensors
  device::ClimateSample ReadClimate() override;
  bool ReadMotion() override;
  float ReadBatteryPct() override;
  std::int32_t ReadRssiDbm() override;
  // Settings (in memory; with a settings dir also a small file)
  bool GetU32(const char* key, std::uint32_t& value) override;
  bool PutU32(const char* key, std::uint32_t value) override;
  // RtcMemory
  bool Load(device::RtcState& state) override;
  void Store(const device::RtcState& state) override;
  // Power
  void DeepSleep(std::uint32_t duration_ms, bool wake_on_motion) override;
  void Restart() override;
  // NodeObserver
  void OnReadingAcked(std::uint32_t boot, std::uint32_t seq, std::int64_t publish_ms,
                      std::int64_t ack_ms) override;
  void OnReadingDropped(std::uint32_t boot, std::uint32_t seq) override;
  void OnCommand(const char* command, bool ok) override;

  device::Node& node() { return *node_; }
  bool has_node() const { return node_ != nullptr; }
  std::uint32_t index() const { return index_; }
  const std::string& id() const { return id_; }

  Phase phase = Phase::kNotStarted;
  bool connected = false;   // transport up (as the backend reported)
  bool connecting = false;  // Connect() issued, no result yet
  bool ever_connected = false;
  bool shutting_down = false;   // inside a restart/sleep: drops are "lost at restart"
  std::int64_t wake_at_ms = 0;  // asleep: when to Begin() again
  std::int64_t skew_ms = 0;
  bool battery_forced = false;
  float battery_forced_pct = 0;
  std::uint64_t sampled_before = 0;  // sampled in earlier boots
  std::uint64_t dropped_before = 0;

 private:
  void LoadSettingsFile();
  void SaveSettingsFile();

  Fleet& fleet_;
  std::uint32_t index_;
  std::string id_;
  std::unique_ptr<device::Node> node_;
  std::uint64_t rng_;
  // Settings: the core uses two keys; four slots leave room.
  struct Slot {
    char key[16] = {};
    std::uint32_t value = 0;
  };
  Slot settings_[4];
  device::RtcState rtc_{};
  bool rtc_valid_ = false;
};

}  // namespace outpost::node::fleet
