// Pipeline: what happens to one message between the broker and the store. It turns
// (topic, payload, qos, retain, ack token, wall time, monotonic time) into the filling Pending
// batch (a model::WriteSet plus the acknowledgement tokens in arrival order): readings, device
// rows, alert transitions (published by the caller after the commit), quarantine rows and the
// items queued for the cloud. docs/architecture.md, "The path of a reading", walks through it;
// pipeline.cpp is that path, top to bottom.
//
// Every message is counted and has one outcome: stored, duplicate, rejected (counted by reason,
// quarantined at most kQuarantinePerSecond a second), a status, a command handed back to the
// caller, or (a command for another gateway) nothing. A QoS 1 message is acknowledged (its token
// goes into the batch) whatever the outcome, in arrival order, so the broker forgets bad input
// too.
//
// Ownership: owns the registry, the rule engine, the per-device contexts (dedupe window, rate
// buckets, registry entry), the counters and the filling batch until TakeBatch hands it over.
// It never sees the store: restored state comes in as model rows (Restore), and what must be
// persisted goes out in the batch.
// Thread: not thread-safe; owned by the gateway's event loop thread.
// Time: an argument of every call (Instant): wall time for what is stored and shown, monotonic
// time for silence, rate buckets and quarantine sampling. No clock, no I/O.
// Errors: none returned. Bad input is handled (rejected, counted, acknowledged) and changes
// nothing else; a full registry refuses a new device (too_many_devices) unless an idle one can
// be evicted (registry.h).
// Formats: docs/formats/readings.md, docs/formats/topics.md, docs/formats/outbox.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "outpost/gateway/config/config.h"
#include "outpost/gateway/ingest/dedupe.h"
#include "outpost/gateway/ingest/pending.h"
#include "outpost/gateway/ingest/token_bucket.h"
#include "outpost/gateway/model/rows.h"
#include "outpost/gateway/registry/registry.h"
#include "outpost/gateway/rules/rule_engine.h"
#include "outpost/proto/batch.h"
#include "outpost/proto/command.h"
#include "outpost/proto/device_reply.h"
#include "outpost/proto/reading.h"

namespace outpost::gateway::ingest {

// Rows read back at start to rebuild the dedupe state: more than the broker can redeliver
// (Mosquitto may resend tens of thousands it had already been acknowledged, see dedupe.h).
inline constexpr std::size_t kRecentIdentities = 500'000;
// Rejected payloads kept in the quarantine per second (monotonic); the rest are only counted.
inline constexpr int kQuarantinePerSecond = 100;

// Now, as the caller's clock tells it.
struct Instant {
  std::int64_t wall_ms = 0;  // ms since the Unix epoch; may jump
  std::int64_t mono_ms = 0;  // monotonic, arbitrary origin
};

// One delivered PUBLISH (views into the caller's buffers, used only during the call).
struct Message {
  std::string_view topic;
  std::string_view payload;
  std::uint8_t qos = 0;
  bool retain = false;
  AckToken ack;  // acknowledged after the commit when qos == 1
};

// A PUBLISH over the MQTT packet limit that the client skipped; `head` is what it kept of the
// payload.
struct OversizeMessage {
  std::string_view topic;
  std::string_view head;
  std::uint8_t qos = 0;
  bool retain = false;
  AckToken ack;
  std::size_t packet_bytes = 0;
  std::size_t payload_bytes = 0;
};

struct Options {
  std::string gateway_id;       // the one whose commands it takes; names the alerts' source
  proto::Limits parser;         // ingest.max_payload_bytes, max_depth, max_metrics
  config::IngestConfig ingest;  // rates, dedupe window, quarantine limits
  registry::Options registry;
  std::vector<config::RuleConfig> rules;  // the effective rules (config::EffectiveRules)
  bool offline_alerts = true;
  // The cloud protocol when the uplink is on (what is queued in the outbox: readings; with
  // kNative also alerts and device statuses); nullopt: nothing is queued.
  std::optional<proto::batch::Protocol> cloud;
  std::size_t max_packet_bytes = 0;  // mqtt.max_packet_bytes, named in oversize rejects
};

// A device's acknowledgement of a command (proto/device_reply.h), from its reply topic.
struct DeviceReplyMessage {
  std::string device_id;
  proto::DeviceReply reply;
};

// Counted since the start of the run (docs/formats/topics.md, gateway status `ingest.*`).
struct Counters {
  std::uint64_t messages = 0, readings_received = 0, duplicates = 0, seq_gaps = 0,
                beyond_window = 0, seq_jumps = 0, boot_conflicts = 0, status_messages = 0,
                commands = 0, replies = 0, rejected = 0, quarantined = 0, alerts_raised = 0,
                alerts_cleared = 0, devices_evicted = 0, devices_refused = 0;
  std::map<std::string, std::uint64_t, std::less<>> rejected_by_reason;
};

class Pipeline {
 public:
  explicit Pipeline(Options options);

  // Rebuilds the state at start from what the store holds: the device rows, the active alerts
  // (alerts of rules that are gone are cleared into the batch) and the identities of the most
  // recent readings (at most kRecentIdentities, for the dedupe windows).
  void Restore(const std::vector<model::DeviceRow>& devices,
               const std::vector<model::AlertRow>& active_alerts,
               const std::vector<model::RecentIdentity>& recent, Instant now);

  // Handles one message. A valid command for this gateway is returned (already acknowledged in
  // the batch) for the caller to run; a valid reply of a device on devices/{id}/replies goes to
  // `*reply` (when given; else it is acknowledged and dropped) for the caller to apply before
  // the batch commits; everything else is done here.
  std::optional<proto::Command> OnMessage(const Message& m, Instant now,
                                          std::optional<DeviceReplyMessage>* reply = nullptr);
  // Rejects a message over the packet limit (too_large, status_too_large, command_too_large).
  void OnOversizeMessage(const OversizeMessage& m, Instant now);
  // The silence sweep (devices going offline) and duration rules; call it periodically.
  void Tick(Instant now);
  // New live settings (config reload): rules, registry and ingest limits. The restart-only
  // ones (dedupe_window, max_seq_jump, quarantine_*, cloud, gateway_id) must be unchanged.
  void Reload(Options options, Instant now);

  // An alert the gateway raised or cleared itself (storage_full): AddAlert counts it and stores
  // it (and queues it for the cloud) with the next batch; CountAlert only counts it (a raise
  // that cannot be stored).
  void AddAlert(model::AlertRow alert);
  void CountAlert(const model::AlertRow& alert);

  // Something is waiting to be committed.
  bool HasWork() const { return !next_.empty() || !dirty_.empty(); }
  // Completes the filling batch (device rows once per batch, with the JSON of their last
  // reading; the cloud's items) and hands it over; a new one starts filling.
  Pending TakeBatch();
  // Messages handled into the filling batch (each leaves at most a reading, a quarantine row
  // or an acknowledgement, plus rare alert rows): the caller bounds the batch with it.
  std::size_t pending_messages() const { return next_messages_; }
  std::size_t pending_readings() const { return next_.batch.readings.size(); }

  const Counters& counters() const { return counters_; }
  const registry::Registry& registry() const { return registry_; }
  const rules::RuleEngine& rules() const { return rules_; }
  const Options& options() const { return options_; }

 private:
  // Per-device state: one hash lookup per message reaches all of it.
  struct DeviceContext {
    registry::Device* device;  // owned by registry_; node addresses are stable
    DeviceDedupe dedupe;
    TokenBucket bucket;              // readings, in receive time, with backlog credit
    TokenBucket status_bucket;       // status messages, in receive time
    bool dirty = false;              // its row goes into the next batch
    std::int64_t last_reading = -1;  // index of its last reading in next_, if any
  };

  void HandleReading(const Message& m, std::string_view topic_device, Instant now);
  void HandleStatus(const Message& m, std::string_view topic_device, Instant now);
  std::optional<proto::Command> HandleCommand(const Message& m, Instant now);
  void Reject(const Message& m, std::string_view reason, std::string_view detail, Instant now);
  void Ack(const Message& m);
  DeviceContext* Context(std::string_view id, Instant now, bool* added);
  DeviceContext NewContext(registry::Device* device) const;
  void MarkDirty(DeviceContext& c);
  void ApplyStateChange(const registry::Change& change);
  void AddTransitions();
  void QueueForCloud();
  bool native_cloud() const { return options_.cloud == proto::batch::Protocol::kNative; }

  Options options_;
  registry::Registry registry_;
  rules::RuleEngine rules_;
  proto::ReadingParser parser_;
  std::unordered_map<std::string, DeviceContext> devices_;
  std::vector<DeviceContext*> dirty_;
  Counters counters_;

  Pending next_;
  std::size_t next_messages_ = 0;
  std::int64_t quarantine_second_ = 0;
  int quarantine_in_second_ = 0;

  // Reused across calls.
  proto::Reading reading_;
  std::vector<rules::Transition> transitions_;
  std::vector<rules::MetricSample> samples_;
};

}  // namespace outpost::gateway::ingest
