// EventHub: the live event stream behind GET /api/v1/stream (Server-Sent Events, docs/api.md).
// Events `reading` (once the store has committed it), `device` (a status change), `alert`
// (raised or cleared) and `health` (each status report) get one id each, "<run>-<seq>" with seq
// increasing by one from 1 in this run, and are kept in a ring of the last `replay_events` for
// replay. A subscriber that sends the id of an event still in the ring (Last-Event-ID) gets
// every later event (of its types), then the live ones: 0 gaps, 0 duplicates. An id from
// another run, from the future, malformed, or older than the ring gets `event: reset` first
// (the client refetches), then the live events. Across a clean restart the gateway keeps the
// run: Snapshot() at the end, Restore() at the next start (the ring, the run and the next seq),
// so an old id resumes; after a crash the run is new and every old id resets.
//
// Pure: no I/O, no clock of its own (time is an argument), unit-tested in event_stream_test.cpp.
// Thread: not thread-safe; owned by the gateway's event loop thread (the HTTP handlers run
//   there too). Sinks are called on that thread.
// Memory: the ring holds at most `replay_events` events (their JSON text).
// Errors: ParseTypes returns kInvalidArgument naming the unknown type.
// Private to gateway/app.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/gateway/model/rows.h"

namespace outpost::gateway::app {

enum class EventType : std::uint8_t {
  kReading = 1,
  kDevice = 2,
  kAlert = 4,
  kHealth = 8,
  kCommand = 16,
};
inline constexpr std::uint8_t kAllEventTypes = 31;
const char* EventTypeName(EventType t);

// `?types=reading,alert`: a bit mask of EventType; "" or absent = all. Unknown names:
// kInvalidArgument ("types: unknown event type \"x\" (expected reading, device, alert, health,
// command)").
Result<std::uint8_t> ParseTypes(std::string_view list);

// The data of a `reading` event: {"device_id", "ts_ms", "received_ms", "ts_from_device",
// "boot" and "seq" (null when the device sent none), "metrics": {name: number or boolean}}.
std::string ReadingEventData(const model::ReadingRow& r);

// Where a subscriber's bytes go (the HTTP stream). Write returns false once the client is gone
// (left, or dropped by the server's buffer bound): the hub forgets it.
using EventSink = std::function<bool(std::string bytes)>;

struct EventHubOptions {
  std::size_t replay_events = 10'000;  // http.stream_replay_events; >= 1
  std::int64_t heartbeat_ms = 15'000;  // a comment line to each subscriber this often
  std::int64_t retry_ms = 2'000;       // the client's reconnect delay (`retry:`)
  std::string run;                     // the id prefix of this run (random per start)
  // A replay goes out in slices of about this many bytes, one per Pump(), so that it never
  // needs more of the stream's buffer than that (the rest waits in the ring).
  std::size_t replay_slice_bytes = 64 * 1024;
};

struct EventHubStats {
  std::size_t subscribers = 0;
  std::uint64_t events = 0;      // published this run (= the last seq)
  std::uint64_t subscribed = 0;  // subscriptions this run
  std::uint64_t replayed = 0;    // events sent again to resuming subscribers
  std::uint64_t resets = 0;      // resumes refused (id unknown or older than the ring)
  std::uint64_t gone = 0;        // subscribers whose sink refused a write
  std::uint64_t heartbeats = 0;
  std::size_t ring = 0;          // events held for replay
  std::uint64_t oldest_seq = 0;  // of the ring; 0 when empty
};

class EventHub {
 public:
  explicit EventHub(EventHubOptions options);

  // Adds a subscriber of `types`. Writes the preamble at once: `retry:`, then either the replay
  // after `last_event_id` (non-empty), or `event: reset`, or (no id) an `id:` line without data
  // that sets the client's last id to now, so even a reconnect before the first event misses
  // nothing. Returns its handle for Unsubscribe (0 when the sink already refused).
  std::uint64_t Subscribe(EventSink sink, std::uint8_t types, std::string_view last_event_id,
                          std::int64_t now_ms);
  void Unsubscribe(std::uint64_t handle);

  // Sends the next replay slice to each subscriber still replaying (live events wait behind
  // its replay, in order); one whose replay the ring overtook gets `event: reset` and goes
  // live. True while some replay is unfinished: call it again on a later loop turn, after the
  // server has had a chance to write.
  bool Pump();
  bool replaying() const;

  // A new event: its `data` is one line of JSON. Returns its id.
  std::string Publish(EventType type, std::string data);

  // Heartbeats (": heartbeat") to the subscribers not heartbeaten for heartbeat_ms.
  void Tick(std::int64_t now_ms);

  EventHubStats stats() const;

  // The ring, the run and the next seq as bytes (format: docs/api.md "Live stream"), and back.
  // Restore replaces options.run and the ring with the snapshot's (keeping at most
  // replay_events of its newest events); kInvalidArgument on a malformed snapshot (the hub is
  // then unchanged). Call Restore before the first Publish or Subscribe.
  std::string Snapshot() const;
  Status Restore(std::string_view snapshot);
  const std::string& run() const { return options_.run; }
  std::string Id(std::uint64_t seq) const { return options_.run + "-" + std::to_string(seq); }

 private:
  struct Event {
    std::uint64_t seq;
    EventType type;
    std::string frame;  // "id: ..\nevent: ..\ndata: ..\n\n"
  };
  struct Subscriber {
    std::uint64_t handle;
    EventSink sink;
    std::uint8_t types;
    std::int64_t last_heartbeat_ms;
    std::uint64_t replay_next = 0;  // the next seq to replay; 0 = live
  };
  std::string ResetFrame(const char* why) const;
  void Sweep();
  // Parses "<run>-<seq>" of this run; nullopt when it is not one.
  std::optional<std::uint64_t> ParseSeq(std::string_view id) const;
  bool Send(Subscriber& s, std::string bytes);

  EventHubOptions options_;
  std::deque<Event> ring_;
  std::vector<Subscriber> subscribers_;
  std::uint64_t next_seq_ = 1;
  std::uint64_t next_handle_ = 1;
  EventHubStats n_;
};

}  // namespace outpost::gateway::app
