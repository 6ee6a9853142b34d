// The node's cooperative state machine. Everything here runs on the binding's loop thread; no
// call blocks, allocates (after Begin) or reads a clock.
#include "outpost/device/node.h"

#include <cstring>
#include <new>

#include "outpost/base/backoff.h"
#include "outpost/device/command.h"
#include "outpost/device/json_writer.h"
#include "outpost/device/payload.h"
#include "outpost/mqtt/wire.h"
#include "reading_ring.h"

namespace outpost::device {

namespace wire = ::outpost::mqtt::wire;

namespace {

constexpr std::size_t kTopicBytes = 96;
constexpr std::size_t kControlSlots = 4;
constexpr std::size_t kControlPayloadBytes = 288;  // the longest reply (payload.h)
// A certRequest's reply: a CSR of kMaxCsrBase64Bytes and a 64-character id. Only one is needed
// at a time (a newer certRequest replaces the pending key, so an older CSR is worthless), so it
// gets one buffer instead of growing every control slot: 512 bytes instead of 4 x 224 more.
constexpr std::size_t kLargeReplyBytes = 512;
constexpr std::uint32_t kRotationAttempts = 3;  // staged identity refused: abandon after these
constexpr const char* kRotationUnsupported = "certificate rotation is not supported by this device";
constexpr std::int64_t kNever = INT64_MAX;
constexpr const char* kSettingBoot = "boot";
constexpr const char* kSettingInterval = "interval_ms";

std::size_t AlignUp(std::size_t n) { return (n + 7) & ~static_cast<std::size_t>(7); }

void CopyString(char* dst, std::size_t cap, const char* src) {
  std::size_t n = 0;
  if (src != nullptr) {
    for (; src[n] != '\0' && n + 1 < cap; ++n) dst[n] = src[n];
  }
  dst[n] = '\0';
}

// Appends text and integers into a fixed buffer for Log::Write (no printf on the device).
class LogLine {
 public:
  LogLine& operator<<(const char* s) {
    while (s != nullptr && *s != '\0' && len_ + 1 < sizeof buf_) buf_[len_++] = *s++;
    buf_[len_] = '\0';
    return *this;
  }
  LogLine& operator<<(std::string_view s) {
    for (char c : s) {
      if (len_ + 1 >= sizeof buf_) break;
      buf_[len_++] = (c >= 0x20 && c <= 0x7e) ? c : '?';
    }
    buf_[len_] = '\0';
    return *this;
  }
  LogLine& operator<<(std::int64_t v) {
    len_ += FormatInt(v, buf_ + len_, sizeof buf_ - 1 - len_);
    buf_[len_] = '\0';
    return *this;
  }
  const char* c_str() const { return buf_; }

 private:
  char buf_[128] = {};
  std::size_t len_ = 0;
};

}  // namespace

enum class ControlKind : std::uint8_t { kStatus, kReply };

struct ControlMessage {
  bool used = false;
  ControlKind kind = ControlKind::kStatus;
  bool retain = false;
  std::uint8_t qos = 1;
  bool reboot_after = false;  // Power::Restart() once this is acknowledged
  bool sleep_marker = false;  // the "sleeping" announcement
  bool large = false;         // the payload is in Impl::large_reply, not in `payload`
  std::uint16_t packet_id = 0;
  std::uint32_t sent_epoch = 0;
  std::uint16_t length = 0;
  char payload[kControlPayloadBytes] = {};
};

struct Node::Impl {
  // Copied configuration strings and built topics.
  char device_id[65] = {};
  char firmware[33] = {};
  char username[129] = {};
  char password[129] = {};
  char data_topic[kTopicBytes] = {};
  char status_topic[kTopicBytes] = {};
  char commands_topic[kTopicBytes] = {};
  char replies_topic[kTopicBytes] = {};

  // Buffers (in the same storage block, after Impl).
  std::uint8_t* rx = nullptr;
  std::size_t rx_cap = 0;
  std::size_t rx_len = 0;
  // An oversize PUBLISH being skipped: its bytes still to drop, and its packet id (0: QoS 0) to
  // acknowledge once they are gone.
  std::size_t rx_skip = 0;
  std::uint16_t rx_skip_ack_id = 0;
  std::uint8_t* tx = nullptr;
  std::size_t tx_cap = 0;
  std::size_t tx_off = 0;
  std::size_t tx_len = 0;
  char* scratch = nullptr;  // JSON of one payload
  std::size_t scratch_cap = 0;

  ReadingRing ring;
  ControlMessage control[kControlSlots];
  char large_reply[kLargeReplyBytes] = {};  // of the one ControlMessage with `large`
  RtcState rtc;

  // Time and schedule.
  std::int64_t boot_ms = 0;  // now_ms at Begin(): uptime origin
  std::int64_t next_sample_ms = 0;
  std::uint32_t seq = 0;

  // Connection.
  std::int64_t state_deadline_ms = kNever;  // boot delay / backoff end / connect timeout /
                                            // sleep or reboot timeout
  std::uint32_t backoff_attempt = 0;
  std::uint32_t epoch = 0;  // connection number; RingEntry::sent_epoch refers to it
  bool ever_connected = false;
  std::uint16_t next_packet_id = 1;
  std::uint16_t subscribe_id = 0;
  std::int64_t last_tx_ms = 0;
  std::int64_t last_rx_ms = 0;
  bool ping_outstanding = false;
  std::int64_t ping_sent_ms = 0;
  std::uint32_t readings_inflight = 0;
  bool sleep_after_drain = false;  // low-power cycle: sleep once this reading is out
  // Set at the sleep deadline: "sleeping" goes out even if the ring did not drain.
  bool release_sleep_marker = false;
  std::int64_t sleep_deadline_ms = kNever;

  // Certificate rotation: a staged identity awaiting the broker's CONNACK (docs/adr/0011).
  bool rotation_staged = false;
  bool rotation_reconnect = false;  // close and reconnect once the certInstall is acknowledged
  bool rotation_replies = false;    // the certInstall had an id (native): reply at the outcome
  std::uint8_t rotation_failed_attempts = 0;  // connects with the staged identity, in a row
  std::uint8_t rotation_id_len = 0;
  std::uint32_t rotation_hash = 0;  // its id's hash in rtc.recent_command_hashes
  char rotation_id[65] = {};
  char rotation_serial[kMaxSerialHexBytes + 1] = {};
};

const char* NodeStateName(NodeState s) {
  switch (s) {
    case NodeState::kIdle:
      return "idle";
    case NodeState::kBootDelay:
      return "boot_delay";
    case NodeState::kBackoff:
      return "backoff";
    case NodeState::kConnecting:
      return "connecting";
    case NodeState::kMqttConnecting:
      return "mqtt_connecting";
    case NodeState::kOnline:
      return "online";
    case NodeState::kSleepPending:
      return "sleep_pending";
    case NodeState::kRebootPending:
      return "reboot_pending";
    case NodeState::kAsleep:
      return "asleep";
    case NodeState::kRestarting:
      return "restarting";
  }
  return "unknown";
}

Node::Node(const NodeConfig& config, const NodePorts& ports) : config_(config), ports_(ports) {}

Node::~Node() {
  if (impl_ != nullptr) impl_->~Impl();
  if (owned_storage_ != nullptr) ::operator delete[](owned_storage_, std::nothrow);
}

std::size_t Node::StorageBytes(const NodeConfig& config) {
  return AlignUp(sizeof(Impl)) + AlignUp(sizeof(RingEntry) * config.ring_capacity) +
         AlignUp(config.max_packet_bytes) /* rx */ +
         AlignUp(2u * config.max_packet_bytes) /* tx */ +
         AlignUp(config.max_packet_bytes) /* scratch */;
}

// The implementation functions live in a struct so they can reach Node's private members.
struct NodeOps {
  static void Log(Node& n, LogLevel level, const LogLine& line) {
    if (n.ports_.log != nullptr) n.ports_.log->Write(level, line.c_str());
  }
  static void SetState(Node& n, NodeState st) { n.stats_.state = st; }
  static double UnitRandom(Node& n) {
    return static_cast<double>(n.ports_.random->Next()) / 4294967296.0;
  }

  static std::uint16_t NextPacketId(Node& n) {
    Node::Impl& s = *n.impl_;
    for (int tries = 0; tries < 65535; ++tries) {
      std::uint16_t id = s.next_packet_id;
      s.next_packet_id = static_cast<std::uint16_t>(id == 65535 ? 1 : id + 1);
      bool used = s.ring.FindPacket(id) >= 0;
      for (const auto& c : s.control) used = used || (c.used && c.packet_id == id);
      if (!used) return id;
    }
    return 1;  // unreachable: at most ring_capacity + kControlSlots ids are in use
  }

  // ---- transmit ----
  static void Flush(Node& n, std::int64_t now) {
    Node::Impl& s = *n.impl_;
    while (s.tx_off < s.tx_len) {
      std::size_t w = n.ports_.transport->Write(s.tx + s.tx_off, s.tx_len - s.tx_off);
      if (w == 0) break;
      if (w > s.tx_len - s.tx_off) w = s.tx_len - s.tx_off;
      s.tx_off += w;
      n.stats_.tx_bytes += w;
      s.last_tx_ms = now;
    }
    if (s.tx_off == s.tx_len) s.tx_off = s.tx_len = 0;
  }
  // Space for the next packet (compacting what is still unsent to the front).
  static std::uint8_t* TxSpace(Node& n, std::size_t& cap) {
    Node::Impl& s = *n.impl_;
    if (s.tx_off > 0) {
      std::memmove(s.tx, s.tx + s.tx_off, s.tx_len - s.tx_off);
      s.tx_len -= s.tx_off;
      s.tx_off = 0;
    }
    cap = s.tx_cap - s.tx_len;
    return s.tx + s.tx_len;
  }
  static bool Commit(Node& n, const wire::Encoded& e) {
    if (!e.ok()) return false;
    n.impl_->tx_len += e.size;
    return true;
  }
  static bool Connected(const Node& n) {
    NodeState st = n.stats_.state;
    return st == NodeState::kOnline || st == NodeState::kSleepPending ||
           st == NodeState::kRebootPending;
  }

  // ---- connection lifecycle ----
  static void StartBackoff(Node& n, std::int64_t now) {
    Node::Impl& s = *n.impl_;
    std::int64_t delay = FullJitterDelayMs(n.config_.backoff, s.backoff_attempt, UnitRandom(n));
    if (s.backoff_attempt < 31) ++s.backoff_attempt;
    s.state_deadline_ms = now + delay;
    SetState(n, NodeState::kBackoff);
    LogLine l;
    l << "mqtt: next connect attempt in " << delay << " ms";
    Log(n, LogLevel::kDebug, l);
  }
  static void ResetLink(Node& n) {
    Node::Impl& s = *n.impl_;
    s.rx_len = 0;
    s.rx_skip = 0;
    s.rx_skip_ack_id = 0;
    s.tx_off = s.tx_len = 0;
    s.ping_outstanding = false;
    // Status announcements are re-made at the next connect; replies are kept and resent.
    for (auto& c : s.control) {
      if (c.used && c.kind == ControlKind::kStatus && !c.sleep_marker) c = ControlMessage{};
    }
  }
  static void DropConnection(Node& n, std::int64_t now, bool close_transport, const char* why) {
    Node::Impl& s = *n.impl_;
    const bool was_session = Connected(n);
    if (close_transport) n.ports_.transport->Close();
    ResetLink(n);
    if (!was_session && s.rotation_staged) {
      // The core cannot tell a TLS handshake that rejected the new certificate from a network
      // failure: every failed attempt with the staged identity counts.
      if (++s.rotation_failed_attempts >= kRotationAttempts) {
        char error[112] = {};
        JsonWriter w(error, sizeof error);  // plain text builder
        w.Raw("3 connects with the new certificate failed (last: ");
        w.Raw(why);
        w.Raw("); kept the current one");
        EndRotation(n, false, error);
      }
    }
    LogLine l;
    l << "mqtt: connection lost: " << why;
    Log(n, LogLevel::kWarn, l);
    NodeState st = n.stats_.state;
    if (was_session) {
      ++n.stats_.disconnects;
    } else {
      ++n.stats_.connect_failures;
    }
    if (was_session) s.backoff_attempt = 0;
    StartBackoff(n, now);  // a pending sleep keeps its own deadline (sleep_deadline_ms)
    if (st == NodeState::kRebootPending) DoRestart(n, now);  // the reply cannot be acked now
  }
  static void StartConnect(Node& n, std::int64_t now) {
    Node::Impl& s = *n.impl_;
    SetState(n, NodeState::kConnecting);
    s.state_deadline_ms = now + n.config_.connect_timeout_ms;
    n.ports_.transport->Connect();
  }

  static void SendConnect(Node& n, std::int64_t now) {
    Node::Impl& s = *n.impl_;
    wire::ConnectFields c;
    c.client_id = s.device_id;
    c.clean_session = n.config_.clean_session;
    c.keepalive_s = n.config_.keepalive_s;
    if (n.config_.scheme == TopicScheme::kNative) {
      c.has_will = true;
      c.will_topic = s.status_topic;
      c.will_payload = "offline";
      c.will_qos = 1;
      c.will_retain = true;
    }
    if (n.config_.username != nullptr) {
      c.has_username = true;
      c.username = s.username;
    }
    if (n.config_.password != nullptr) {
      c.has_password = true;
      c.password = s.password;
    }
    std::size_t cap = 0;
    std::uint8_t* out = TxSpace(n, cap);
    if (!Commit(n, wire::EncodeConnect(c, out, cap))) {
      DropConnection(n, now, true, "CONNECT does not fit the tx buffer");
      return;
    }
    SetState(n, NodeState::kMqttConnecting);
    Flush(n, now);
  }

  static void OnConnAck(Node& n, const wire::PacketView& p, std::int64_t now) {
    Node::Impl& s = *n.impl_;
    if (n.stats_.state != NodeState::kMqttConnecting) {
      DropConnection(n, now, true, "unexpected CONNACK");
      ++n.stats_.protocol_errors;
      return;
    }
    if (p.return_code != 0) {
      LogLine l;
      l << "mqtt: broker refused the connection, code " << static_cast<std::int64_t>(p.return_code);
      Log(n, LogLevel::kError, l);
      DropConnection(n, now, true, "refused");
      return;
    }
    ++s.epoch;
    ++n.stats_.connects;
    if (s.ever_connected) ++n.stats_.reconnects;
    s.ever_connected = true;
    s.backoff_attempt = 0;
    s.last_rx_ms = now;
    s.state_deadline_ms = kNever;
    SetState(n, NodeState::kOnline);
    if (s.rotation_staged) {
      // The broker accepted the staged identity: make it the current one, then say so on this
      // session (the operator revokes the old certificate only after this reply).
      const char* error = n.ports_.credentials->Commit();
      if (error == nullptr) {
        EndRotation(n, true, nullptr);
      } else {
        char text[112] = {};
        JsonWriter w(text, sizeof text);
        w.Raw("could not store the new certificate: ");
        w.Raw(error);
        EndRotation(n, false, text);
      }
    }
    // Subscribe to commands.
    std::size_t cap = 0;
    std::uint8_t* out = TxSpace(n, cap);
    s.subscribe_id = NextPacketId(n);
    const std::uint8_t sub_qos = n.config_.scheme == TopicScheme::kNative ? 1 : 0;
    if (!Commit(n, wire::EncodeSubscribe(s.subscribe_id, s.commands_topic, sub_qos, out, cap))) {
      DropConnection(n, now, true, "SUBSCRIBE does not fit the tx buffer");
      return;
    }
    // A node about to sleep has "sleeping" queued already; "online" after it would be the
    // retained word the broker keeps while the node sleeps.
    if (!s.sleep_after_drain) QueueStatus(n, "online", now);
    Log(n, LogLevel::kInfo, LogLine() << "mqtt: online");
    Pump(n, now);
  }

  // ---- certificate rotation (docs/adr/0011) ----
  // The certInstall was acknowledged: leave the broker cleanly (no will, so the retained status
  // stays "online") and connect at once, presenting the staged identity. Readings in flight are
  // resent on the new session, as after any reconnect.
  static void RotationReconnect(Node& n, std::int64_t now) {
    Node::Impl& s = *n.impl_;
    GoodbyeAndClose(n, now);
    ResetLink(n);
    s.backoff_attempt = 0;
    Log(n, LogLevel::kInfo, LogLine() << "cert: reconnecting with the new certificate");
    StartConnect(n, now);
  }
  // The rotation's outcome: committed (`ok`), or abandoned with `error` (back to the current
  // identity from the next Connect()). Replies on the certInstall's id and fixes the outcome that
  // a duplicate of it reports.
  static void EndRotation(Node& n, bool ok, const char* error) {
    Node::Impl& s = *n.impl_;
    s.rotation_staged = false;
    s.rotation_failed_attempts = 0;
    const std::string_view id(s.rotation_id, s.rotation_id_len);
    if (ok) {
      ++n.stats_.cert_rotations;
      Log(n, LogLevel::kInfo,
          LogLine() << "cert: new certificate committed, serial "
                    << static_cast<const char*>(s.rotation_serial));
    } else {
      n.ports_.credentials->Abandon();
      ++n.stats_.cert_rotation_failures;
      Log(n, LogLevel::kError, LogLine() << "cert: rotation abandoned: " << error);
    }
    if (s.rotation_hash != 0) {
      const int i = FindRecent(n, s.rotation_hash);
      if (i >= 0) {
        s.rtc.recent_command_hashes[i] = s.rotation_hash | (ok ? 0x80000000u : 0u);
        StoreRtc(n);
      }
    }
    if (n.ports_.observer != nullptr) n.ports_.observer->OnCommand("certInstall", ok);
    if (!s.rotation_replies) return;
    ControlMessage* c = ControlSlot(n);
    if (c == nullptr) return;
    c->used = true;
    c->kind = ControlKind::kReply;
    c->qos = 1;
    c->retain = false;
    c->length = static_cast<std::uint16_t>(
        ok ? WriteReplyValueJson(id, "serial", s.rotation_serial, c->payload, sizeof c->payload)
           : WriteFailureReplyJson(id, error, c->payload, sizeof c->payload));
  }

  // ---- control messages (status, replies) ----
  static ControlMessage* ControlSlot(Node& n) {
    Node::Impl& s = *n.impl_;
    for (auto& c : s.control) {
      if (!c.used) return &c;
    }
    // Full: drop the oldest reply that is not a reboot acknowledgement.
    for (auto& c : s.control) {
      if (c.kind == ControlKind::kReply && !c.reboot_after) {
        ++n.stats_.control_dropped;
        c = ControlMessage{};
        return &c;
      }
    }
    ++n.stats_.control_dropped;
    return nullptr;
  }
  static ControlMessage* QueueStatus(Node& n, const char* word, std::int64_t now) {
    Node::Impl& s = *n.impl_;
    ControlMessage* c = ControlSlot(n);
    if (c == nullptr) return nullptr;
    c->used = true;
    c->kind = ControlKind::kStatus;
    if (n.config_.scheme == TopicScheme::kNative) {
      c->qos = 1;
      c->retain = true;
      std::size_t len = std::strlen(word);
      std::memcpy(c->payload, word, len);
      c->length = static_cast<std::uint16_t>(len);
    } else {
      c->qos = 0;
      c->retain = false;
      c->length = static_cast<std::uint16_t>(
          WriteSeedStatusJson(s.device_id, word, now - s.boot_ms, c->payload, sizeof c->payload));
    }
    return c;
  }
  static ControlMessage* QueueReply(Node& n, std::string_view id, bool ok, const char* error,
                                    bool duplicate) {
    ControlMessage* c = ControlSlot(n);
    if (c == nullptr) return nullptr;
    c->used = true;
    c->kind = ControlKind::kReply;
    c->qos = 1;
    c->retain = false;
    c->length = static_cast<std::uint16_t>(WriteReplyJson(
        id, ok, error != nullptr ? error : "", duplicate, c->payload, sizeof c->payload));
    return c;
  }

  // Sends what is due: control messages first, then readings from the ring, within the window.
  static void Pump(Node& n, std::int64_t now) {
    Node::Impl& s = *n.impl_;
    if (n.stats_.state == NodeState::kMqttConnecting) Flush(n, now);  // the rest of CONNECT
    if (!Connected(n)) return;
    Flush(n, now);
    for (auto& c : s.control) {
      if (!c.used || (c.packet_id != 0 && c.sent_epoch == s.epoch)) continue;
      // "sleeping" is the node's last word: readings still in the ring go first, or the
      // gateway would see a reading after the announcement and take the node for awake.
      if (c.sleep_marker && c.packet_id == 0 && !s.release_sleep_marker && RingHasUnacked(s)) {
        continue;
      }
      const char* topic = c.kind == ControlKind::kStatus ? s.status_topic : s.replies_topic;
      // A resend only if it was written before (on an earlier connection); a packet id may
      // have been assigned on an attempt that did not fit the tx buffer.
      const bool dup = c.packet_id != 0 && c.sent_epoch != 0;
      if (c.qos == 1 && c.packet_id == 0) c.packet_id = NextPacketId(n);
      const std::string_view payload(c.large ? s.large_reply : c.payload, c.length);
      wire::PublishFields f{topic,    payload, c.qos,
                            c.retain, dup,     c.qos == 1 ? c.packet_id : std::uint16_t{0}};
      std::size_t cap = 0;
      std::uint8_t* out = TxSpace(n, cap);
      if (!Commit(n, wire::EncodePublish(f, out, cap))) break;  // tx full: next time
      c.sent_epoch = s.epoch;
      if (c.qos == 0) c = ControlMessage{};  // released once written
      Flush(n, now);
    }
    const PayloadIdentity ident{s.device_id, n.stats_.boot, s.firmware, n.config_.scheme};
    for (std::size_t i = 0; i < s.ring.size(); ++i) {
      RingEntry& e = s.ring.At(i);
      if (e.acked) continue;
      const bool in_flight = e.packet_id != 0;
      if (in_flight && e.sent_epoch == s.epoch) continue;  // awaiting its PUBACK
      if (!in_flight && n.config_.qos == 1 && s.readings_inflight >= n.config_.max_inflight) break;
      std::size_t len = WriteReadingJson(ident, e.reading, s.scratch, s.scratch_cap);
      const bool dup = in_flight;
      std::uint16_t id = 0;
      if (n.config_.qos == 1) id = in_flight ? e.packet_id : NextPacketId(n);
      wire::PublishFields f{
          s.data_topic, std::string_view(s.scratch, len), n.config_.qos, false, dup, id};
      std::size_t cap = 0;
      std::uint8_t* out = TxSpace(n, cap);
      if (!Commit(n, wire::EncodePublish(f, out, cap))) break;
      ++n.stats_.published;
      if (dup) ++n.stats_.resent;
      if (e.first_publish_ms < 0) e.first_publish_ms = now;
      e.sent_epoch = s.epoch;
      if (n.config_.qos == 1) {
        if (!in_flight) {
          e.packet_id = id;
          ++s.readings_inflight;
        }
      } else {
        ReleaseReading(n, e, now);
      }
      Flush(n, now);
    }
    s.ring.PopAcked();
    UpdateDepth(n);
  }

  static void ReleaseReading(Node& n, RingEntry& e, std::int64_t now) {
    Node::Impl& s = *n.impl_;
    if (e.packet_id != 0 && s.readings_inflight > 0) --s.readings_inflight;
    e.acked = true;
    e.packet_id = 0;
    ++n.stats_.acked;
    if (n.ports_.observer != nullptr) {
      n.ports_.observer->OnReadingAcked(n.stats_.boot, e.reading.seq, e.first_publish_ms, now);
    }
  }

  static void UpdateDepth(Node& n) {
    Node::Impl& s = *n.impl_;
    n.stats_.ring_depth = static_cast<std::uint32_t>(s.ring.size());
    std::uint32_t control_inflight = 0;
    for (const auto& c : s.control) control_inflight += (c.used && c.packet_id != 0) ? 1 : 0;
    n.stats_.inflight = s.readings_inflight + control_inflight;
  }

  static void OnPubAck(Node& n, std::uint16_t id, std::int64_t now) {
    Node::Impl& s = *n.impl_;
    int i = s.ring.FindPacket(id);
    if (i >= 0) {
      ReleaseReading(n, s.ring.At(static_cast<std::size_t>(i)), now);
      s.ring.PopAcked();
      UpdateDepth(n);
      return;
    }
    for (auto& c : s.control) {
      if (c.used && c.packet_id == id) {
        const bool reboot = c.reboot_after;
        c = ControlMessage{};  // a "sleeping" marker gone lets SleepReady() pass
        UpdateDepth(n);
        if (reboot) DoRestart(n, now);
        return;
      }
    }
    ++n.stats_.stale_acks;
  }

  // ---- commands ----
  static void StoreRtc(Node& n) { n.ports_.rtc->Store(n.impl_->rtc); }

  static int FindRecent(Node& n, std::uint32_t hash) {
    const RtcState& r = n.impl_->rtc;
    for (std::size_t i = 0; i < RtcState::kRecentCommands; ++i) {
      if (r.recent_command_hashes[i] != 0 && (r.recent_command_hashes[i] & 0x7fffffffu) == hash) {
        return static_cast<int>(i);
      }
    }
    return -1;
  }
  static void RememberCommand(Node& n, std::uint32_t hash, bool ok) {
    RtcState& r = n.impl_->rtc;
    r.recent_command_hashes[r.recent_next % RtcState::kRecentCommands] =
        hash | (ok ? 0x80000000u : 0u);
    r.recent_next = (r.recent_next + 1) % RtcState::kRecentCommands;
    StoreRtc(n);
  }

  static void HandleCommand(Node& n, std::string_view payload, std::int64_t now) {
    Node::Impl& s = *n.impl_;
    const bool native = n.config_.scheme == TopicScheme::kNative;
    CommandView cmd;
    const char* detail = "";
    CommandError err = ParseCommand(payload, cmd, &detail);
    const bool replies = native && cmd.has_id;
    std::uint32_t hash = 0;
    if (cmd.has_id) {
      hash = CommandIdHash(cmd.id) & 0x7fffffffu;
      if (hash == 0) hash = 1;
      int i = FindRecent(n, hash);
      if (i >= 0) {
        ++n.stats_.commands_duplicate;
        const bool was_ok = (s.rtc.recent_command_hashes[i] & 0x80000000u) != 0;
        if (replies) QueueReply(n, cmd.id, was_ok, "duplicate of a command that failed", true);
        Log(n, LogLevel::kInfo, LogLine() << "command: duplicate id " << cmd.id << " ignored");
        return;
      }
    }
    char error[112] = {};
    bool ok = true;
    bool reboot = false;
    bool deferred = false;       // certInstall staged: no reply now
    const char* value_key = "";  // a result member in the reply (certRequest's "csr")
    std::string_view value;
    if (err != CommandError::kOk) {
      ok = false;
      CopyString(error, sizeof error, detail);
    } else {
      switch (cmd.kind) {
        case CommandKind::kSetSensorInterval:
          if (!cmd.has_interval) {
            ok = false;
            CopyString(error, sizeof error, "field \"interval\" is required");
          } else if (cmd.interval_ms < n.config_.min_interval_ms ||
                     cmd.interval_ms > n.config_.max_interval_ms) {
            ok = false;
            JsonWriter w(error, sizeof error);  // plain text builder
            w.Raw("field \"interval\": ");
            w.Uint(cmd.interval_ms);
            w.Raw(" ms is outside [");
            w.Uint(n.config_.min_interval_ms);
            w.Raw(", ");
            w.Uint(n.config_.max_interval_ms);
            w.Raw("]");
          } else {
            SetInterval(n, cmd.interval_ms, now);
          }
          break;
        case CommandKind::kLed:
          if (!cmd.has_state) {
            ok = false;
            CopyString(error, sizeof error, "field \"state\" is required");
          } else if (n.ports_.led != nullptr) {
            n.ports_.led->Set(cmd.state);
          }
          break;
        case CommandKind::kReboot:
          reboot = true;
          break;
        case CommandKind::kCertRequest:
          if (n.ports_.credentials == nullptr) {
            ok = false;
            CopyString(error, sizeof error, kRotationUnsupported);
            break;
          }
          {
            // The CSR goes through the JSON scratch buffer (>= 1024 bytes with Credentials).
            char* csr = s.scratch;
            const std::size_t cap =
                s.scratch_cap < kMaxCsrBase64Bytes + 1 ? s.scratch_cap : kMaxCsrBase64Bytes + 1;
            csr[0] = '\0';
            const char* why = n.ports_.credentials->MakePendingKey(s.device_id, csr, cap);
            if (why != nullptr) {
              ok = false;
              CopyString(error, sizeof error, why);
            } else {
              csr[cap - 1] = '\0';
              value_key = "csr";
              value = csr;
              if (value.empty()) {
                ok = false;
                CopyString(error, sizeof error, "the credentials port made an empty CSR");
              }
            }
          }
          break;
        case CommandKind::kCertInstall:
          if (n.ports_.credentials == nullptr) {
            ok = false;
            CopyString(error, sizeof error, kRotationUnsupported);
          } else if (!cmd.has_cert) {
            ok = false;
            CopyString(error, sizeof error, "field \"cert\" is required");
          } else if (n.stats_.state != NodeState::kOnline || s.sleep_after_drain) {
            ok = false;
            CopyString(error, sizeof error, "busy: the device is about to sleep or restart");
          } else {
            s.rotation_serial[0] = '\0';
            const char* why =
                n.ports_.credentials->Stage(cmd.cert.data(), cmd.cert.size(), s.device_id,
                                            s.rotation_serial, sizeof s.rotation_serial);
            if (why != nullptr) {
              ok = false;
              CopyString(error, sizeof error, why);
            } else {
              s.rotation_serial[kMaxSerialHexBytes] = '\0';
              s.rotation_staged = true;
              s.rotation_reconnect = true;
              s.rotation_failed_attempts = 0;
              s.rotation_replies = replies;
              s.rotation_hash = hash;
              const std::size_t len = cmd.id.size() < 64 ? cmd.id.size() : 64;
              std::memcpy(s.rotation_id, cmd.id.data(), len);
              s.rotation_id_len = static_cast<std::uint8_t>(len);
              deferred = true;  // the reply comes from the new session (EndRotation)
            }
          }
          break;
        case CommandKind::kUnknown: {
          ok = false;
          JsonWriter w(error, sizeof error);
          w.Raw("unknown command \"");
          w.Raw(cmd.name.substr(0, 48));
          w.Raw("\"");
          break;
        }
      }
    }
    if (ok) {
      ++n.stats_.commands_handled;
    } else {
      ++n.stats_.commands_rejected;
    }
    {
      LogLine l;
      l << "command: " << (cmd.name.empty() ? std::string_view("?") : cmd.name)
        << (ok ? " ok" : " failed: ") << error;
      Log(n, ok ? LogLevel::kInfo : LogLevel::kWarn, l);
    }
    if (n.ports_.observer != nullptr && !deferred) {
      char name[33] = {};
      std::size_t len = cmd.name.size() < 32 ? cmd.name.size() : 32;
      std::memcpy(name, cmd.name.data(), len);
      n.ports_.observer->OnCommand(name, ok);
    }
    if (cmd.has_id) RememberCommand(n, hash, ok);
    ControlMessage* reply = nullptr;
    if (replies && !deferred) {
      reply = QueueReply(n, cmd.id, ok, error, false);
      if (reply != nullptr && ok && !value.empty()) {
        for (auto& older : s.control) {  // an unacknowledged older CSR: worthless now
          if (older.used && older.large && &older != reply) {
            older = ControlMessage{};
            ++n.stats_.control_dropped;
          }
        }
        const std::size_t len =
            WriteReplyValueJson(cmd.id, value_key, value, s.large_reply, sizeof s.large_reply);
        reply->large = len > 0;
        reply->length = static_cast<std::uint16_t>(len);
        if (len == 0) {  // the port wrote a longer CSR than kMaxCsrBase64Bytes
          reply->length = static_cast<std::uint16_t>(
              WriteReplyJson(cmd.id, false, "the CSR does not fit the reply", false, reply->payload,
                             sizeof reply->payload));
        }
      }
    }
    if (reboot) {
      if (reply != nullptr) {
        reply->reboot_after = true;
        SetState(n, NodeState::kRebootPending);
        s.state_deadline_ms = now + n.config_.reboot_ack_timeout_ms;
      } else {
        DoRestart(n, now);  // seed: no reply to wait for
      }
    }
  }

  static void SetInterval(Node& n, std::uint32_t interval_ms, std::int64_t now) {
    Node::Impl& s = *n.impl_;
    // Stay on the grid of the last scheduled sample: next = last + new interval.
    const std::int64_t last = s.next_sample_ms - n.stats_.interval_ms;
    n.stats_.interval_ms = interval_ms;
    s.next_sample_ms = last + interval_ms;
    if (s.next_sample_ms < now) s.next_sample_ms = now;
    if (!n.ports_.settings->PutU32(kSettingInterval, interval_ms)) ++n.stats_.settings_errors;
  }

  // ---- inbound ----
  static void OnPacket(Node& n, const wire::PacketView& p, std::int64_t now) {
    Node::Impl& s = *n.impl_;
    s.last_rx_ms = now;
    switch (p.kind) {
      case wire::PacketKind::kConnAck:
        OnConnAck(n, p, now);
        return;
      case wire::PacketKind::kPubAck:
        OnPubAck(n, p.packet_id, now);
        return;
      case wire::PacketKind::kSubAck:
        if (p.packet_id == s.subscribe_id && p.suback_code == 0x80) {
          Log(n, LogLevel::kError, LogLine() << "mqtt: subscription to commands refused");
        }
        return;
      case wire::PacketKind::kPingResp:
        s.ping_outstanding = false;
        return;
      case wire::PacketKind::kUnsubAck:
      case wire::PacketKind::kNone:
        return;
      case wire::PacketKind::kPublish:
        break;
    }
    if (p.topic == std::string_view(s.commands_topic)) {
      if (p.retain) {
        // The broker replays a retained command at every subscription: a retained "reboot"
        // would reboot the node at every connect, forever. Live commands arrive unretained.
        ++n.stats_.commands_retained;
        Log(n, LogLevel::kWarn, LogLine() << "command: retained command ignored");
      } else {
        HandleCommand(n, p.payload, now);
      }
    }
    if (p.qos == 1) AckIncoming(n, p.packet_id, now);
    if (s.rotation_reconnect) {  // after the PUBACK, so the broker does not redeliver it
      s.rotation_reconnect = false;
      RotationReconnect(n, now);
    }
  }

  static void AckIncoming(Node& n, std::uint16_t packet_id, std::int64_t now) {
    if (!Connected(n)) return;
    std::size_t cap = 0;
    std::uint8_t* out = TxSpace(n, cap);
    if (!Commit(n, wire::EncodePubAck(packet_id, out, cap))) {
      ++n.stats_.protocol_errors;
      DropConnection(n, now, true, "no room in the tx buffer for a PUBACK");
    }
  }

  // A PUBLISH larger than the receive buffer (a giant command or retained message): skipped
  // unread, counted, acknowledged once its last byte is gone so the broker forgets it.
  static void OnOversize(Node& n, const wire::ParseResult& r, std::int64_t now) {
    Node::Impl& s = *n.impl_;
    s.last_rx_ms = now;
    ++n.stats_.rx_oversize;
    s.rx_skip = r.skip;
    s.rx_skip_ack_id = r.packet.qos == 1 ? r.packet.packet_id : 0;
    LogLine l;
    l << "mqtt: skipped a PUBLISH of " << static_cast<std::int64_t>(r.total)
      << " bytes (receive buffer " << static_cast<std::int64_t>(s.rx_cap) << ")";
    Log(n, LogLevel::kWarn, l);
    if (s.rx_skip == 0) EndSkip(n, now);
  }
  static void EndSkip(Node& n, std::int64_t now) {
    Node::Impl& s = *n.impl_;
    const std::uint16_t id = s.rx_skip_ack_id;
    s.rx_skip_ack_id = 0;
    if (id != 0) AckIncoming(n, id, now);
  }

  // ---- sampling and power ----
  static void Sample(Node& n, std::int64_t now) {
    Node::Impl& s = *n.impl_;
    ClimateSample climate = n.ports_.sensors->ReadClimate();
    const float battery = n.ports_.sensors->ReadBatteryPct();
    if (!climate.ok) {
      ++n.stats_.read_errors;
      Log(n, LogLevel::kWarn, LogLine() << "sensor: climate read failed");
    } else {
      Reading r;
      r.seq = s.seq++;
      std::int64_t wall = n.ports_.wall_clock != nullptr ? n.ports_.wall_clock->WallMs() : 0;
      r.timestamp_ms =
          (n.config_.scheme == TopicScheme::kNative && wall > 0) ? wall : now - s.boot_ms;
      r.temperature_centi = static_cast<std::int32_t>(ScaleToFixed(climate.temperature_c, 2));
      r.humidity_centi = static_cast<std::int32_t>(ScaleToFixed(climate.humidity_pct, 2));
      r.battery_known = battery == battery;  // NaN: the gauge failed
      float b = !r.battery_known || battery < 0 ? 0 : (battery > 100 ? 100 : battery);
      r.battery_centi = static_cast<std::int32_t>(ScaleToFixed(b, 2));
      std::int32_t rssi = n.ports_.sensors->ReadRssiDbm();
      r.rssi_dbm = static_cast<std::int16_t>(rssi < -32768 ? -32768 : (rssi > 0 ? 0 : rssi));
      r.motion = n.ports_.sensors->ReadMotion();
      ++n.stats_.sampled;
      RingEntry dropped;
      if (s.ring.Push(r, &dropped)) {
        if (dropped.packet_id != 0 && s.readings_inflight > 0) --s.readings_inflight;
        ++n.stats_.ring_dropped;
        if (n.ports_.observer != nullptr) {
          n.ports_.observer->OnReadingDropped(n.stats_.boot, dropped.reading.seq);
        }
      }
      UpdateDepth(n);
    }
    // An unreadable gauge (NaN) decides nothing: no sleep, no recovery.
    if (battery == battery) BatteryPolicy(n, battery, now);
  }

  static void BatteryPolicy(Node& n, float battery, std::int64_t now) {
    Node::Impl& s = *n.impl_;
    if (n.stats_.state == NodeState::kSleepPending || n.stats_.state == NodeState::kRebootPending) {
      return;
    }
    if (s.rtc.low_battery_latched != 0 && battery >= n.config_.high_battery_pct) {
      s.rtc.low_battery_latched = 0;
      StoreRtc(n);
      Log(n, LogLevel::kInfo, LogLine() << "power: battery recovered, leaving low-power mode");
      return;
    }
    if (s.rtc.low_battery_latched == 0 && battery >= n.config_.low_battery_pct) return;
    if (s.rtc.low_battery_latched == 0) {
      s.rtc.low_battery_latched = 1;
      StoreRtc(n);
    }
    LogLine l;
    l << "power: battery " << static_cast<std::int64_t>(battery) << " %, entering deep sleep";
    Log(n, LogLevel::kWarn, l);
    // Announce, then wait for the announcement's PUBACK (and the ring to drain) or the timeout.
    ControlMessage* c = QueueStatus(n, "sleeping", now);
    if (c != nullptr) c->sleep_marker = true;
    const bool online = n.stats_.state == NodeState::kOnline;
    // Offline: give the connection attempt in progress a chance to deliver the announcement.
    s.sleep_deadline_ms =
        now + n.config_.sleep_ack_timeout_ms + (online ? 0 : n.config_.connect_timeout_ms);
    s.sleep_after_drain = true;
    if (online) SetState(n, NodeState::kSleepPending);
    Pump(n, now);
  }

  static bool RingHasUnacked(Node::Impl& s) {
    for (std::size_t i = 0; i < s.ring.size(); ++i) {
      if (!s.ring.At(i).acked) return true;
    }
    return false;
  }

  static bool SleepReady(Node& n) {
    Node::Impl& s = *n.impl_;
    for (const auto& c : s.control) {
      if (c.used && c.sleep_marker) return false;
    }
    return !RingHasUnacked(s);
  }

  static void LoseRing(Node& n) {
    Node::Impl& s = *n.impl_;
    for (std::size_t i = 0; i < s.ring.size(); ++i) {
      const RingEntry& e = s.ring.At(i);
      if (e.acked) continue;
      ++n.stats_.ring_dropped;
      if (n.ports_.observer != nullptr) {
        n.ports_.observer->OnReadingDropped(n.stats_.boot, e.reading.seq);
      }
    }
    s.ring.Clear();
    s.readings_inflight = 0;
    UpdateDepth(n);
  }

  static void GoodbyeAndClose(Node& n, std::int64_t now) {
    if (Connected(n) || n.stats_.state == NodeState::kMqttConnecting) {
      if (Connected(n)) {
        // A clean DISCONNECT: the broker does not publish the will, so "sleeping" stays retained.
        std::size_t cap = 0;
        std::uint8_t* out = TxSpace(n, cap);
        if (Commit(n, wire::EncodeDisconnect(out, cap))) Flush(n, now);
      }
      n.ports_.transport->Close();
    } else if (n.stats_.state == NodeState::kConnecting) {
      n.ports_.transport->Close();
    }
  }

  static void DoSleep(Node& n, std::int64_t now) {
    Node::Impl& s = *n.impl_;
    s.release_sleep_marker = true;  // the ring did not drain in time: announce anyway
    Pump(n, now);
    GoodbyeAndClose(n, now);
    LoseRing(n);
    ++s.rtc.sleeps;
    ++n.stats_.sleeps;
    StoreRtc(n);
    s.sleep_after_drain = false;
    SetState(n, NodeState::kAsleep);
    s.state_deadline_ms = kNever;
    n.ports_.power->DeepSleep(n.config_.sleep_duration_ms, n.config_.wake_on_motion);
  }

  static void DoRestart(Node& n, std::int64_t now) {
    Node::Impl& s = *n.impl_;
    GoodbyeAndClose(n, now);
    LoseRing(n);
    StoreRtc(n);
    SetState(n, NodeState::kRestarting);
    s.state_deadline_ms = kNever;
    n.ports_.power->Restart();
  }

  static std::int64_t NextWake(Node& n, std::int64_t now) {
    Node::Impl& s = *n.impl_;
    const NodeState st = n.stats_.state;
    if (st == NodeState::kAsleep || st == NodeState::kRestarting || st == NodeState::kIdle) {
      return kNever;
    }
    std::int64_t wake = s.sleep_after_drain ? kNever : s.next_sample_ms;
    if (s.state_deadline_ms < wake) wake = s.state_deadline_ms;
    if (s.sleep_after_drain && s.sleep_deadline_ms < wake) wake = s.sleep_deadline_ms;
    if (Connected(n) && n.config_.keepalive_s > 0) {
      const std::int64_t ka = static_cast<std::int64_t>(n.config_.keepalive_s) * 1000;
      const std::int64_t t = s.ping_outstanding ? s.ping_sent_ms + ka / 2 : s.last_tx_ms + ka;
      if (t < wake) wake = t;
    }
    if (s.tx_off < s.tx_len && now + 10 < wake) wake = now + 10;  // transport was full
    if (s.sleep_after_drain && (SleepReady(n) || st == NodeState::kOnline)) wake = now + 1;
    if (n.config_.max_poll_interval_ms > 0 && now + n.config_.max_poll_interval_ms < wake) {
      wake = now + n.config_.max_poll_interval_ms;
    }
    return wake <= now ? now + 1 : wake;
  }
};

DeviceError Node::Begin(std::int64_t now_ms, void* storage, std::size_t storage_size) {
  const char* field = "";
  const char* reason = "";
  if (ValidateConfig(config_, &field, &reason) != DeviceError::kOk) {
    config_error_field_ = field;
    config_error_reason_ = reason;
    return DeviceError::kInvalidConfig;
  }
  if (ports_.transport == nullptr || ports_.random == nullptr || ports_.sensors == nullptr ||
      ports_.settings == nullptr || ports_.rtc == nullptr || ports_.power == nullptr) {
    config_error_field_ = "ports";
    config_error_reason_ = "transport, random, sensors, settings, rtc and power are required";
    return DeviceError::kInvalidConfig;
  }
  if (ports_.credentials != nullptr && config_.max_packet_bytes < 1024) {
    config_error_field_ = "max_packet_bytes";
    config_error_reason_ =
        "must be at least 1024 with a Credentials port (a certInstall is about 730 bytes)";
    return DeviceError::kInvalidConfig;
  }
  const std::size_t need = StorageBytes(config_);
  std::uint8_t* base = nullptr;
  if (storage != nullptr) {
    if (storage_size < need || (reinterpret_cast<std::uintptr_t>(storage) & 7) != 0) {
      return DeviceError::kNoMemory;
    }
    base = static_cast<std::uint8_t*>(storage);
  } else {
    if (owned_storage_ == nullptr || owned_storage_size_ < need) {
      if (owned_storage_ != nullptr) ::operator delete[](owned_storage_, std::nothrow);
      owned_storage_ = ::operator new[](need, std::nothrow);
      owned_storage_size_ = owned_storage_ != nullptr ? need : 0;
      if (owned_storage_ == nullptr) return DeviceError::kNoMemory;
    }
    base = static_cast<std::uint8_t*>(owned_storage_);
  }
  if (impl_ != nullptr) impl_->~Impl();
  impl_ = new (base) Impl();
  Impl& s = *impl_;
  std::size_t off = AlignUp(sizeof(Impl));
  s.ring.Init(reinterpret_cast<RingEntry*>(base + off), config_.ring_capacity);
  for (std::size_t i = 0; i < config_.ring_capacity; ++i)
    new (base + off + i * sizeof(RingEntry)) RingEntry();
  off += AlignUp(sizeof(RingEntry) * config_.ring_capacity);
  s.rx = base + off;
  s.rx_cap = config_.max_packet_bytes;
  off += AlignUp(config_.max_packet_bytes);
  s.tx = base + off;
  s.tx_cap = 2u * config_.max_packet_bytes;
  off += AlignUp(2u * config_.max_packet_bytes);
  s.scratch = reinterpret_cast<char*>(base + off);
  s.scratch_cap = config_.max_packet_bytes;

  CopyString(s.device_id, sizeof s.device_id, config_.device_id);
  CopyString(s.firmware, sizeof s.firmware, config_.firmware_version);
  CopyString(s.username, sizeof s.username, config_.username);
  CopyString(s.password, sizeof s.password, config_.password);
  auto topic = [&](char* dst, const char* a, const char* b) {
    JsonWriter w(dst, kTopicBytes);  // plain concatenation
    w.Raw(a);
    w.Raw(s.device_id);
    w.Raw(b);
  };
  if (config_.scheme == TopicScheme::kNative) {
    topic(s.data_topic, "sensors/", "/data");
    topic(s.status_topic, "devices/", "/status");
    topic(s.commands_topic, "devices/", "/commands");
    topic(s.replies_topic, "devices/", "/replies");
  } else {
    CopyString(s.data_topic, kTopicBytes, "sensors/data");
    CopyString(s.status_topic, kTopicBytes, "devices/status");
    CopyString(s.commands_topic, kTopicBytes, "devices/commands");
    CopyString(s.replies_topic, kTopicBytes, "devices/replies");  // unused: seed sends none
  }

  stats_ = NodeStats{};
  std::uint32_t boot = 0;
  if (!ports_.settings->GetU32(kSettingBoot, boot)) boot = 0;
  stats_.boot = boot + 1;
  if (!ports_.settings->PutU32(kSettingBoot, stats_.boot)) ++stats_.settings_errors;
  std::uint32_t interval = config_.interval_ms;
  std::uint32_t stored = 0;
  if (ports_.settings->GetU32(kSettingInterval, stored) && stored >= config_.min_interval_ms &&
      stored <= config_.max_interval_ms) {
    interval = stored;
  }
  stats_.interval_ms = interval;
  if (!ports_.rtc->Load(s.rtc) || s.rtc.magic != RtcState::kMagic) {
    s.rtc = RtcState{};
    s.rtc.magic = RtcState::kMagic;
  }
  // A staged identity never survives a boot (ports.h, Credentials): the device comes back with
  // its current one, and the certInstall's reply is never sent (its gateway command expires).
  if (ports_.credentials != nullptr) ports_.credentials->Abandon();
  s.boot_ms = now_ms;
  s.next_sample_ms = now_ms + interval;
  std::int64_t delay = 0;
  if (config_.boot_delay_max_ms > 0) {
    // 64-bit: max + 1 wraps to 0 in 32 bits when max is UINT32_MAX (division by zero).
    delay = static_cast<std::int64_t>(ports_.random->Next() %
                                      (std::uint64_t{config_.boot_delay_max_ms} + 1u));
  }
  s.state_deadline_ms = now_ms + delay;
  stats_.state = NodeState::kBootDelay;
  LogLine l;
  l << "node: boot " << static_cast<std::int64_t>(stats_.boot) << ", interval "
    << static_cast<std::int64_t>(interval) << " ms, connecting in " << delay << " ms";
  NodeOps::Log(*this, LogLevel::kInfo, l);
  return DeviceError::kOk;
}

std::int64_t Node::Poll(std::int64_t now) {
  if (impl_ == nullptr) return kNever;
  Impl& s = *impl_;
  if (ports_.watchdog != nullptr) ports_.watchdog->Feed();
  NodeState st = stats_.state;
  if (st == NodeState::kAsleep || st == NodeState::kRestarting) return kNever;

  // Connection state machine.
  switch (st) {
    case NodeState::kBootDelay:
    case NodeState::kBackoff:
      if (now >= s.state_deadline_ms) NodeOps::StartConnect(*this, now);
      break;
    case NodeState::kConnecting:
    case NodeState::kMqttConnecting:
      if (now >= s.state_deadline_ms) {
        NodeOps::DropConnection(*this, now, true, "connect timed out");
      }
      break;
    case NodeState::kOnline:
    case NodeState::kSleepPending:
    case NodeState::kRebootPending:
      if (config_.keepalive_s > 0) {
        const std::int64_t ka = static_cast<std::int64_t>(config_.keepalive_s) * 1000;
        if (s.ping_outstanding && now - s.ping_sent_ms >= ka / 2) {
          NodeOps::DropConnection(*this, now, true, "no PINGRESP");
          break;
        }
        if (!s.ping_outstanding && now - s.last_tx_ms >= ka) {
          std::size_t cap = 0;
          std::uint8_t* out = NodeOps::TxSpace(*this, cap);
          if (NodeOps::Commit(*this, wire::EncodePingReq(out, cap))) {
            s.ping_outstanding = true;
            s.ping_sent_ms = now;
            NodeOps::Flush(*this, now);
          }
        }
      }
      break;
    default:
      break;
  }

  // Sampling on the grid: next = first + k * interval, whatever the loop's lateness.
  if (now >= s.next_sample_ms && stats_.state != NodeState::kRebootPending &&
      stats_.state != NodeState::kSleepPending && !s.sleep_after_drain) {
    NodeOps::Sample(*this, now);
    s.next_sample_ms += stats_.interval_ms;
    if (s.next_sample_ms <= now) {  // the loop stalled for whole periods: skip them
      const std::int64_t missed = (now - s.next_sample_ms) / stats_.interval_ms + 1;
      s.next_sample_ms += missed * stats_.interval_ms;
    }
  }

  // Pending sleep or reboot.
  if (s.sleep_after_drain) {
    if (stats_.state == NodeState::kOnline) stats_.state = NodeState::kSleepPending;
    NodeOps::Pump(*this, now);
    // Ready: the announcement went out (PUBACKed, or written at QoS 0) and the ring drained.
    if (NodeOps::SleepReady(*this) || now >= s.sleep_deadline_ms) {
      NodeOps::DoSleep(*this, now);  // also when it never got online: sleep anyway
    }
  }
  if (stats_.state == NodeState::kRebootPending && now >= s.state_deadline_ms) {
    NodeOps::DoRestart(*this, now);
  }
  NodeOps::Pump(*this, now);
  return NodeOps::NextWake(*this, now);
}

std::int64_t Node::OnConnected(std::int64_t now) {
  if (impl_ == nullptr) return kNever;
  if (stats_.state == NodeState::kConnecting) {
    impl_->last_tx_ms = now;
    NodeOps::SendConnect(*this, now);
  }
  return NodeOps::NextWake(*this, now);
}

std::int64_t Node::OnDisconnected(std::int64_t now) {
  if (impl_ == nullptr) return kNever;
  const NodeState st = stats_.state;
  if (st == NodeState::kConnecting || st == NodeState::kMqttConnecting ||
      NodeOps::Connected(*this)) {
    NodeOps::DropConnection(*this, now, false, "transport closed");
  }
  return NodeOps::NextWake(*this, now);
}

std::int64_t Node::OnBytes(const std::uint8_t* data, std::size_t size, std::int64_t now) {
  if (impl_ == nullptr) return kNever;
  Impl& s = *impl_;
  while (size > 0) {
    const NodeState st = stats_.state;
    if (st != NodeState::kMqttConnecting && !NodeOps::Connected(*this)) break;
    if (s.rx_skip > 0) {  // the rest of an oversize PUBLISH: dropped unread
      const std::size_t k = s.rx_skip < size ? s.rx_skip : size;
      s.rx_skip -= k;
      data += k;
      size -= k;
      stats_.rx_bytes += k;
      if (s.rx_skip == 0) NodeOps::EndSkip(*this, now);
      continue;
    }
    std::size_t n = s.rx_cap - s.rx_len;
    if (n > size) n = size;
    std::memcpy(s.rx + s.rx_len, data, n);
    s.rx_len += n;
    data += n;
    size -= n;
    stats_.rx_bytes += n;
    std::size_t pos = 0;
    bool dropped = false;
    while (pos < s.rx_len) {
      wire::ParseResult r = wire::ParseFrame(s.rx + pos, s.rx_len - pos, s.rx_cap);
      if (r.status == wire::ParseStatus::kNeedMore) break;
      if (r.status == wire::ParseStatus::kError) {
        ++stats_.protocol_errors;
        NodeOps::DropConnection(*this, now, true, r.detail);
        dropped = true;
        break;
      }
      if (r.status == wire::ParseStatus::kOversize) {
        NodeOps::OnOversize(*this, r, now);
        pos += r.consumed;  // the whole buffer when the packet goes on (r.skip > 0)
      } else {
        NodeOps::OnPacket(*this, r.packet, now);
        pos += r.consumed;
      }
      const NodeState after = stats_.state;
      if (after != NodeState::kMqttConnecting && !NodeOps::Connected(*this)) {
        dropped = true;  // the packet ended the session (refusal, restart)
        break;
      }
    }
    if (dropped) {
      s.rx_len = 0;
      break;
    }
    std::memmove(s.rx, s.rx + pos, s.rx_len - pos);
    s.rx_len -= pos;
  }
  NodeOps::Pump(*this, now);
  return NodeOps::NextWake(*this, now);
}

DeviceError Node::PublishRawForTest(std::string_view payload, std::int64_t now) {
  if (impl_ == nullptr || !NodeOps::Connected(*this)) return DeviceError::kNotConnected;
  wire::PublishFields f{impl_->data_topic, payload, 0, false, false, 0};
  std::size_t cap = 0;
  std::uint8_t* out = NodeOps::TxSpace(*this, cap);
  if (!NodeOps::Commit(*this, wire::EncodePublish(f, out, cap))) {
    return DeviceError::kBufferTooSmall;
  }
  NodeOps::Flush(*this, now);
  return DeviceError::kOk;
}

}  // namespace outpost::device
