// Book: the gateway's device commands and their life cycle (docs/api.md#commands).
//
// States: queued -> sent -> delivered -> succeeded | failed | rejected, or expired | canceled;
// each transition is recorded with its time and the user who caused it ("device" for a reply,
// "gateway" for an expiry). A command for a seed device (transport kSeed: it only ever used the
// flat topics and sends no replies) ends at sent.
//
// Per device the book keeps a queue of open commands (queued, sent, delivered: at most
// Options::queue_per_device) and a history of at most Options::history_per_device commands
// (the oldest finished ones are dropped to make room). An idempotency key names one command
// of its device for as long as the command is in the history.
//
// Durability is the caller's: every change is first computed without touching the book
// (Accept, Transit, PlanDispatch, PlanExpiry return the rows to write), the caller writes them,
// and only then applies them with Put / Forget. A failed write leaves the book as it was.
//
// Pure: no I/O, no clock (time is an argument, ms since the Unix epoch), no randomness (the
// caller names new commands). Thread: not thread-safe; owned by the gateway's event loop.
// Errors: kInvalidArgument (bad ttl), kAlreadyExists (idempotency key reused with another
// body), kResourceExhausted (the device's queue is full), kNotFound (no such command),
// kFailedPrecondition (the transition is not allowed from the command's state).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "outpost/base/status.h"

namespace outpost::gateway::commands {

enum class State : std::uint8_t {
  kQueued,
  kSent,
  kDelivered,
  kSucceeded,
  kFailed,
  kRejected,
  kExpired,
  kCanceled,
};
const char* StateName(State s);  // "queued", "sent", ...
std::optional<State> StateFromName(std::string_view name);

enum class Transport : std::uint8_t { kNative, kSeed };
const char* TransportName(Transport t);  // "native", "seed"

struct Transition {
  State state = State::kQueued;
  std::int64_t at_ms = 0;
  std::string user;
};

struct Command {
  std::string id;
  std::string device;
  std::string name;
  std::string params_json = "{}";  // a JSON object, as validated by the API
  State state = State::kQueued;
  Transport transport = Transport::kNative;
  std::uint64_t seq = 0;  // order of acceptance across the book; dispatch order per device
  std::int64_t created_ms = 0, updated_ms = 0, expires_ms = 0;
  std::string user;             // who sent it
  std::string idempotency_key;  // "" = none
  std::string fingerprint;      // what the key was used with (command, params, ttl)
  std::string reply_json;       // the device's reply object, "" = none yet
  std::vector<Transition> history;
  // In memory only: a command that was sent by an earlier run is published again when its
  // device is next online (native devices de-duplicate by id).
  bool resend = false;
};

// Finished: nothing more happens to it (seed commands finish at sent).
bool Finished(const Command& c);

struct Options {
  std::size_t queue_per_device = 16;      // commands.queue_per_device
  std::int64_t default_ttl_ms = 300'000;  // commands.default_ttl_s
  std::int64_t max_ttl_ms = 86'400'000;   // commands.max_ttl_s
  std::size_t history_per_device = 100;   // commands.history_per_device (>= queue_per_device)
};

struct Request {
  std::string id;  // new, unique (the caller's generator)
  std::string device;
  std::string name;
  std::string params_json = "{}";
  std::optional<std::int64_t> ttl_ms;  // nullopt: default_ttl_ms
  std::string idempotency_key;
  std::string fingerprint;
  std::string user;
  Transport transport = Transport::kNative;
};

struct Accepted {
  Command command;
  bool existing = false;  // the idempotency key named it: nothing to write, nothing to send
  std::vector<std::string> evict;  // finished commands of the device to forget with it
};

// A reply as the device sent it (proto::ParseDeviceReply).
struct Reply {
  bool has_ok = false;  // false: a progress report (delivered), not an outcome
  bool ok = false;
  bool rejected = false;  // the device refused it (bad command or parameters)
  std::string json;       // the reply object as received
};

struct Counters {
  std::uint64_t accepted = 0, idempotent_replays = 0, idempotency_conflicts = 0, queue_full = 0,
                sent = 0, resent = 0, replies = 0, replies_unknown = 0, replies_late = 0,
                expired = 0, canceled = 0, evicted = 0;
};

class Book {
 public:
  explicit Book(Options options) : options_(options) {}

  // The command a request makes, or the one its idempotency key already names. Retry-After
  // for a full queue: `*retry_after_ms` is when the device's earliest open command expires.
  Result<Accepted> Accept(const Request& r, std::int64_t now_ms,
                          std::int64_t* retry_after_ms = nullptr);
  // `id` moved to `to` by `user` at now (reply: the device's, for outcomes). Allowed:
  // queued -> sent | expired | canceled; sent -> delivered | succeeded | failed | rejected |
  // expired; delivered -> succeeded | failed | rejected | expired.
  Result<Command> Transit(std::string_view id, State to, std::int64_t now_ms, std::string_view user,
                          const Reply* reply = nullptr) const;
  // What a reply does: the outcome (via delivered when it was sent), or delivered.
  // kNotFound (unknown id), kFailedPrecondition (already finished: a late or duplicate reply).
  Result<Command> ApplyReply(std::string_view id, const Reply& reply, std::int64_t now_ms) const;
  // The commands to publish now that `device` is online, in order: queued ones moved to sent,
  // and earlier runs' sent ones (resend) unchanged.
  std::vector<Command> PlanDispatch(std::string_view device, std::int64_t now_ms) const;
  // Devices with something to publish (queued, or to send again): PlanDispatch when online.
  const std::set<std::string>& waiting() const { return waiting_; }
  // Open commands whose TTL has passed, moved to expired.
  std::vector<Command> PlanExpiry(std::int64_t now_ms) const;
  // The earliest expiry of an open command, or nullopt.
  std::optional<std::int64_t> NextExpiry() const;

  // Applies a written command (new or changed).
  void Put(Command c);
  void Forget(std::string_view id);
  // Rebuilds the book from stored commands (at start): sent native ones are marked resend.
  void Restore(std::vector<Command> stored);

  const Command* Find(std::string_view id) const;
  // The device's commands, newest first, after `before_seq` (0 = from the newest), at most
  // `limit`.
  std::vector<const Command*> List(std::string_view device, std::uint64_t before_seq,
                                   std::size_t limit) const;
  std::size_t open(std::string_view device) const;
  std::size_t size() const { return by_id_.size(); }
  std::uint64_t next_seq() const { return next_seq_; }
  const Options& options() const { return options_; }
  void set_options(Options o) { options_ = o; }
  Counters& counters() { return counters_; }
  const Counters& counters() const { return counters_; }

 private:
  struct DeviceBook {
    std::map<std::uint64_t, std::string> by_seq;          // every command of the device
    std::unordered_map<std::string, std::string> by_key;  // idempotency key -> id
  };
  void Index(const Command* before, const Command* after);
  void Recheck(const std::string& device);

  Options options_;
  std::unordered_map<std::string, Command> by_id_;
  std::set<std::pair<std::int64_t, std::string>> open_by_expiry_;  // open commands
  std::set<std::string> waiting_;
  std::unordered_map<std::string, DeviceBook> devices_;
  std::uint64_t next_seq_ = 1;
  Counters counters_;
};

}  // namespace outpost::gateway::commands
