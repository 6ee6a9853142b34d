#include "event_stream.h"

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>
#include <optional>

namespace outpost::gateway::app {

const char* EventTypeName(EventType t) {
  switch (t) {
    case EventType::kReading:
      return "reading";
    case EventType::kDevice:
      return "device";
    case EventType::kAlert:
      return "alert";
    case EventType::kHealth:
      return "health";
    case EventType::kCommand:
      return "command";
  }
  return "unknown";
}

std::string ReadingEventData(const model::ReadingRow& r) {
  nlohmann::json metrics = nlohmann::json::object();
  for (const model::MetricValue& m : r.metrics) {
    metrics[m.name] = m.is_bool ? nlohmann::json(m.value != 0) : nlohmann::json(m.value);
  }
  return nlohmann::json{{"device_id", r.device_id},
                        {"ts_ms", r.ts_ms},
                        {"received_ms", r.received_ms},
                        {"ts_from_device", r.ts_from_device},
                        {"boot", r.has_seq ? nlohmann::json(r.boot) : nlohmann::json(nullptr)},
                        {"seq", r.has_seq ? nlohmann::json(r.seq) : nlohmann::json(nullptr)},
                        {"metrics", std::move(metrics)}}
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<std::uint8_t> ParseTypes(std::string_view list) {
  if (list.empty()) return kAllEventTypes;
  std::uint8_t mask = 0;
  while (true) {
    const std::size_t comma = list.find(',');
    const std::string_view name = list.substr(0, comma);
    bool known = false;
    for (EventType t : {EventType::kReading, EventType::kDevice, EventType::kAlert,
                        EventType::kHealth, EventType::kCommand}) {
      if (name == EventTypeName(t)) {
        mask |= static_cast<std::uint8_t>(t);
        known = true;
      }
    }
    if (!known) {
      return InvalidArgument("types: unknown event type \"" + std::string(name.substr(0, 64)) +
                             "\" (expected a comma-separated list of reading, device, alert, "
                             "health, command)");
    }
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return mask;
}

EventHub::EventHub(EventHubOptions options) : options_(std::move(options)) {
  options_.replay_events = std::max<std::size_t>(options_.replay_events, 1);
}

std::optional<std::uint64_t> EventHub::ParseSeq(std::string_view id) const {
  const std::string_view run = options_.run;
  if (id.size() <= run.size() + 1 || id.substr(0, run.size()) != run || id[run.size()] != '-') {
    return std::nullopt;
  }
  const std::string_view digits = id.substr(run.size() + 1);
  std::uint64_t seq = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), seq);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return seq;
}

bool EventHub::Send(Subscriber& s, std::string bytes) {
  if (!s.sink) return false;
  if (s.sink(std::move(bytes))) return true;
  s.sink = nullptr;  // removed by the caller's sweep
  ++n_.gone;
  return false;
}

std::uint64_t EventHub::Subscribe(EventSink sink, std::uint8_t types,
                                  std::string_view last_event_id, std::int64_t now_ms) {
  ++n_.subscribed;
  Subscriber s{next_handle_++, std::move(sink), types, now_ms};
  const std::uint64_t last = next_seq_ - 1;
  std::string out = "retry: " + std::to_string(options_.retry_ms) + "\n";
  if (last_event_id.empty()) {
    out += "id: " + Id(last) + "\n\n";
  } else {
    const std::optional<std::uint64_t> after = ParseSeq(last_event_id);
    const std::uint64_t oldest = ring_.empty() ? next_seq_ : ring_.front().seq;
    // Resumable: an id of this run that is in the ring or just before it (nothing missed).
    if (after && *after <= last && *after + 1 >= oldest) {
      out += "\n";
      if (*after < last) s.replay_next = *after + 1;
    } else {
      ++n_.resets;
      out += ResetFrame(after && *after < oldest ? "too_old" : "unknown_id");
    }
  }
  if (!Send(s, std::move(out))) return 0;
  subscribers_.push_back(std::move(s));
  const std::uint64_t handle = subscribers_.back().handle;
  if (subscribers_.back().replay_next != 0) Pump();  // the first slice at once
  return handle;
}

std::string EventHub::ResetFrame(const char* why) const {
  const std::uint64_t last = next_seq_ - 1;
  return "id: " + Id(last) + "\nevent: reset\ndata: {\"reason\":\"" + why +
         "\",\"oldest_id\":" + (ring_.empty() ? "null" : "\"" + Id(ring_.front().seq) + "\"") +
         ",\"last_id\":\"" + Id(last) + "\"}\n\n";
}

bool EventHub::Pump() {
  bool any_gone = false;
  for (Subscriber& s : subscribers_) {
    if (s.replay_next == 0 || !s.sink) continue;
    std::string out;
    if (ring_.empty() || s.replay_next < ring_.front().seq) {  // overtaken while replaying
      ++n_.resets;
      s.replay_next = 0;
      out = ResetFrame("too_old");
    } else {
      std::size_t i = s.replay_next - ring_.front().seq;
      for (; i < ring_.size() && out.size() < options_.replay_slice_bytes; ++i) {
        const Event& e = ring_[i];
        if (!(static_cast<std::uint8_t>(e.type) & s.types)) continue;
        out += e.frame;
        ++n_.replayed;
      }
      s.replay_next = i < ring_.size() ? ring_[i].seq : 0;
    }
    if (!out.empty() && !Send(s, std::move(out))) any_gone = true;
  }
  if (any_gone) Sweep();
  return replaying();
}

bool EventHub::replaying() const {
  for (const Subscriber& s : subscribers_) {
    if (s.replay_next != 0) return true;
  }
  return false;
}

void EventHub::Sweep() {
  subscribers_.erase(std::remove_if(subscribers_.begin(), subscribers_.end(),
                                    [](const Subscriber& s) { return !s.sink; }),
                     subscribers_.end());
}

void EventHub::Unsubscribe(std::uint64_t handle) {
  subscribers_.erase(std::remove_if(subscribers_.begin(), subscribers_.end(),
                                    [&](const Subscriber& s) { return s.handle == handle; }),
                     subscribers_.end());
}

std::string EventHub::Publish(EventType type, std::string data) {
  const std::uint64_t seq = next_seq_++;
  std::string id = Id(seq);
  Event e{seq, type, "id: " + id + "\nevent: " + EventTypeName(type) + "\ndata: " + data + "\n\n"};
  ++n_.events;
  bool any_gone = false;
  for (Subscriber& s : subscribers_) {
    // A subscriber still replaying gets it from the ring, after what it has not had yet.
    if (s.replay_next != 0 || !(static_cast<std::uint8_t>(type) & s.types)) continue;
    if (!Send(s, e.frame)) any_gone = true;
  }
  if (any_gone) {
    subscribers_.erase(std::remove_if(subscribers_.begin(), subscribers_.end(),
                                      [](const Subscriber& s) { return !s.sink; }),
                       subscribers_.end());
  }
  ring_.push_back(std::move(e));
  while (ring_.size() > options_.replay_events) ring_.pop_front();
  return id;
}

void EventHub::Tick(std::int64_t now_ms) {
  bool any_gone = false;
  for (Subscriber& s : subscribers_) {
    if (now_ms - s.last_heartbeat_ms < options_.heartbeat_ms) continue;
    s.last_heartbeat_ms = now_ms;
    ++n_.heartbeats;
    if (!Send(s, ": heartbeat\n\n")) any_gone = true;
  }
  if (any_gone) {
    subscribers_.erase(std::remove_if(subscribers_.begin(), subscribers_.end(),
                                      [](const Subscriber& s) { return !s.sink; }),
                       subscribers_.end());
  }
}

namespace {
constexpr std::string_view kSnapshotMagic = "outpost-stream-ring 1\n";

// Reads "<decimal><sep>" off the front of `in`.
std::optional<std::uint64_t> TakeNumber(std::string_view& in, char sep) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(in.data(), in.data() + in.size(), v);
  if (ec != std::errc() || end == in.data() + in.size() || *end != sep) return std::nullopt;
  in.remove_prefix(static_cast<std::size_t>(end - in.data()) + 1);
  return v;
}
}  // namespace

std::string EventHub::Snapshot() const {
  // "outpost-stream-ring 1\n<run> <next_seq> <events>\n", then per event
  // "<seq> <type bit> <frame bytes>\n<frame>".
  std::string out(kSnapshotMagic);
  out += options_.run + " " + std::to_string(next_seq_) + " " + std::to_string(ring_.size()) + "\n";
  for (const Event& e : ring_) {
    out += std::to_string(e.seq) + " " + std::to_string(static_cast<unsigned>(e.type)) + " " +
           std::to_string(e.frame.size()) + "\n";
    out += e.frame;
  }
  return out;
}

Status EventHub::Restore(std::string_view in) {
  const auto bad = [](const std::string& what) {
    return InvalidArgument("stream ring snapshot: " + what);
  };
  if (in.substr(0, kSnapshotMagic.size()) != kSnapshotMagic) return bad("not one (no header)");
  in.remove_prefix(kSnapshotMagic.size());
  const std::size_t space = in.find(' ');
  if (space == std::string_view::npos || space == 0 || space > 64) return bad("no run");
  std::string run(in.substr(0, space));
  in.remove_prefix(space + 1);
  const std::optional<std::uint64_t> next = TakeNumber(in, ' ');
  const std::optional<std::uint64_t> count = TakeNumber(in, '\n');
  if (!next || *next == 0 || !count) return bad("no next seq or event count");
  std::deque<Event> ring;
  std::uint64_t expect = *next - std::min<std::uint64_t>(*count, *next - 1);
  for (std::uint64_t i = 0; i < *count; ++i) {
    const std::optional<std::uint64_t> seq = TakeNumber(in, ' ');
    const std::optional<std::uint64_t> type = TakeNumber(in, ' ');
    const std::optional<std::uint64_t> size = TakeNumber(in, '\n');
    if (!seq || !type || !size || *size > in.size()) {
      return bad("event " + std::to_string(i) + " is cut short");
    }
    if (*seq != expect++) return bad("event " + std::to_string(i) + " is out of sequence");
    if (*type == 0 || *type > kAllEventTypes || (*type & (*type - 1)) != 0) {
      return bad("event " + std::to_string(i) + " has an unknown type");
    }
    ring.push_back(Event{*seq, static_cast<EventType>(*type), std::string(in.substr(0, *size))});
    in.remove_prefix(*size);
  }
  if (!in.empty()) return bad("bytes after the last event");
  if (!ring.empty() && ring.back().seq + 1 != *next) return bad("the next seq does not follow");
  while (ring.size() > options_.replay_events) ring.pop_front();
  options_.run = std::move(run);
  ring_ = std::move(ring);
  next_seq_ = *next;
  return Status::Ok();
}

EventHubStats EventHub::stats() const {
  EventHubStats s = n_;
  s.subscribers = subscribers_.size();
  s.ring = ring_.size();
  s.oldest_seq = ring_.empty() ? 0 : ring_.front().seq;
  return s;
}

}  // namespace outpost::gateway::app
