// VirtualBackend: deterministic virtual time for a Fleet. No sockets and no real clock: an
// in-process broker speaks real MQTT 3.1.1 bytes with every device (libs/mqtt's Decoder and
// Encode: CONNECT/CONNACK, PUBLISH/PUBACK, SUBSCRIBE/SUBACK with retained delivery, PINGREQ,
// DISCONNECT, last wills), and time jumps from event to event, so a simulated day runs in about a
// second and the same seed gives byte-identical traffic.
//
//   VirtualBackend vb;
//   Fleet fleet(options, vb);
//   vb.Attach(fleet);                  // before Init/Start
//   fleet.Init(); fleet.Start();
//   vb.Publish("devices/node-00000/commands", R"({"command":"led","state":true,"id":"c1"})",
//              1, false, /*at_ms=*/5'000);
//   vb.Run();                          // until the fleet finishes (or `until_ms`)
//
// Ownership: borrows the Fleet. Thread: one thread. Errors: none (a device that sends bytes the
//   broker cannot decode is disconnected, as a real broker would, and counted).
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include "outpost/node/fleet/fleet.h"

namespace outpost::node::fleet {

struct VirtualOptions {
  std::int64_t start_wall_ms = 1'748'736'000'000;  // 2025-06-01T00:00:00Z
  std::int64_t link_delay_ms = 2;                  // one way, device <-> broker
  std::int64_t connect_delay_ms = 3;               // TCP + TLS handshake
};

// A PUBLISH the broker received (from a device or from Publish()).
struct BrokerMessage {
  std::int64_t t_ms = 0;  // virtual monotonic time
  std::string client_id;  // "" for Publish()
  std::string topic;
  std::string payload;
  int qos = 0;
  bool retain = false;
  bool dup = false;
};

class VirtualBackend final : public Backend {
 public:
  explicit VirtualBackend(VirtualOptions options = {});
  ~VirtualBackend() override;

  void Attach(Fleet& fleet);
  // Runs events until the fleet stops, none are left, or virtual time passes `until_ms`.
  void Run(std::int64_t until_ms = std::numeric_limits<std::int64_t>::max());
  // An operator's publish, routed by the broker at `at_ms` (retained when `retain`).
  void Publish(std::string topic, std::string payload, int qos, bool retain, std::int64_t at_ms);

  // Every PUBLISH the broker receives, in order.
  std::function<void(const BrokerMessage&)> on_publish;
  const std::map<std::string, std::string>& retained() const { return retained_; }
  std::uint64_t broker_protocol_errors() const { return protocol_errors_; }
  std::uint64_t events() const { return events_; }

  // Backend
  std::int64_t NowMs() override { return now_ms_; }
  std::int64_t WallMs() override { return options_.start_wall_ms + now_ms_; }
  void Connect(std::uint32_t device) override;
  std::size_t Write(std::uint32_t device, const std::uint8_t* data, std::size_t size) override;
  void Close(std::uint32_t device) override;
  void ScheduleWake(std::uint32_t device, std::int64_t at_ms) override;
  void ScheduleTick(std::int64_t at_ms) override;
  void Stop() override { stopped_ = true; }

 private:
  struct Session;
  struct Event {
    std::int64_t t;
    std::uint64_t order;
    std::uint8_t kind;
    std::uint32_t device;
    std::uint64_t cid;
    std::string bytes;
  };
  struct Later {
    bool operator()(const Event& a, const Event& b) const {
      return a.t != b.t ? a.t > b.t : a.order > b.order;
    }
  };
  void Push(std::int64_t t, std::uint8_t kind, std::uint32_t device, std::uint64_t cid,
            std::string bytes = {});
  void BrokerReceive(std::uint32_t device, std::uint64_t cid, const std::string& bytes);
  void BrokerClose(std::uint32_t device, std::uint64_t cid, bool publish_will);
  void Route(const std::string& topic, const std::string& payload, int qos, bool retain,
             const std::string& client_id, bool dup);
  void SendToDevice(std::uint32_t device, std::uint64_t cid, const std::string& bytes);

  VirtualOptions options_;
  Fleet* fleet_ = nullptr;
  std::priority_queue<Event, std::vector<Event>, Later> queue_;
  std::uint64_t order_ = 0;
  std::int64_t now_ms_ = 0;
  bool stopped_ = false;
  std::uint64_t events_ = 0;
  std::uint64_t protocol_errors_ = 0;
  std::uint64_t next_cid_ = 1;
  std::vector<std::int64_t> wake_at_;
  std::vector<std::uint64_t> device_cid_;           // the device side's open connection (0: none)
  std::vector<std::uint64_t> pending_cid_;          // a connect in progress (0: none)
  std::vector<std::unique_ptr<Session>> sessions_;  // the broker side, per device
  std::map<std::string, std::string> retained_;
  std::int64_t tick_at_ = std::numeric_limits<std::int64_t>::max();
};

}  // namespace outpost::node::fleet
