// Device commands over HTTP (docs/api.md#commands) and their life cycle in the gateway: the
// Service owns the commands::Book and drives it from the routes, the devices' replies, the
// registry (a device online gets its queued commands in order) and a timer (expiry).
//
// Durability: every change is written through `Hooks::save` (the store writer's Call) before it
// is applied, answered, published on MQTT or streamed; a failed write changes nothing and the
// route answers 503. On start the book is rebuilt from the store (Restore): commands sent by the
// previous run go out again when their device is online (native devices de-duplicate by id).
//
// ?wait=N (0..kMaxWaitS): the answer is 200 with the final state if the command finishes within
// N s, else 202 with the state then; at most `max_waiters` requests wait at once (503 busy
// beyond). A reply after the answer still completes the command.
// Thread: everything (routes, replies, Tick) on the gateway's event loop thread, which owns the
// book; `save` blocks that thread for one store call (at most one commit in progress).
// Errors (problem+json): 400 bad_body, bad_command, bad_params, bad_ttl_s, bad_wait,
// bad_idempotency_key, bad_limit, bad_cursor, bad_id; 404 unknown_device, unknown_command;
// 409 idempotency_conflict, not_cancelable; 413 body_too_large; 429 queue_full (Retry-After);
// 503 busy (waiters), store_unavailable (Retry-After). Private to gateway/app.
#pragma once

#include <asio.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/gateway/commands/book.h"
#include "outpost/gateway/model/rows.h"
#include "outpost/http/server.h"
#include "outpost/proto/device_reply.h"

namespace outpost::gateway::app::commands_api {

inline constexpr std::size_t kMaxBodyBytes = 4096;
inline constexpr std::size_t kMaxNameBytes = 64;
inline constexpr std::int64_t kMaxWaitS = 30;

// {"command": 1..64 characters of [A-Za-z0-9_.:-], "params": object (optional),
//  "ttl_s": integer (optional)}. The fingerprint is what an idempotency key is bound to.
struct Body {
  std::string name;
  std::string params_json = "{}";
  std::optional<std::int64_t> ttl_ms;
  std::string fingerprint;
};
Result<Body> ParseBody(std::string_view body, std::string* bad_field);
// ?wait=: absent 0, else an integer in 0..kMaxWaitS.
Result<std::int64_t> ParseWait(const std::map<std::string, std::string>& params);

// What the registry says of a device.
struct DeviceInfo {
  bool known = false;
  bool native = false;  // heard on its own topics: devices/{id}/commands, with replies
  bool online = false;
};

struct Hooks {
  std::function<DeviceInfo(const std::string&)> device;
  // Writes the rows and deletes the ids in one transaction (blocks; the writer thread).
  std::function<Status(const std::vector<model::CommandRow>&, const std::vector<std::string>&)>
      save;
  // Publishes the command to its device (QoS 1); false when the client refused it.
  std::function<bool(const commands::Command&)> publish;
  std::function<void(const nlohmann::json&)> on_transition;  // the stream's `command` event
  std::function<std::int64_t()> now_ms;
  std::function<std::string(const http::Request&)> user;  // who a request acts for
  std::function<std::string()> new_id;                    // a fresh, unique command id
};

class Service {
 public:
  Service(asio::io_context& io, commands::Options options, std::size_t max_waiters, Hooks hooks);
  ~Service();

  void Restore(std::vector<commands::Command> stored);
  // POST /api/v1/devices/{id}/commands and .../commands/{cid}/cancel.
  void AddRoutes(http::Router* router);
  // GET /api/v1/devices/{id}/commands[/{cid}]: answers and returns true; false for another path.
  bool HandleGet(const http::Request& q, http::Responder* r);
  void OnReply(const std::string& device, const proto::DeviceReply& reply);
  // Expiry, then dispatch to every device with work that is online. Call at least every second.
  void Tick();
  // Shutting down: waiting requests are answered 202 with the state now; nothing new waits.
  void Stop();

  const commands::Book& book() const { return book_; }
  // The counters as Prometheus text: prefix + accepted, idempotent_replays,
  // idempotency_conflicts, queue_full, sent, resent, replies, replies_unknown, replies_late,
  // expired, canceled, evicted, busy, save_errors, publish_errors (all _total), and the gauges
  // commands (in the book), waiting_devices, waiters.
  std::string Prometheus(const std::string& prefix) const;
  std::size_t waiters() const { return waiting_; }
  std::uint64_t busy() const { return busy_; }
  std::uint64_t save_errors() const { return save_errors_; }
  std::uint64_t publish_errors() const { return publish_errors_; }

 private:
  struct Waiter;
  void Post(http::Request q, http::Responder r);
  // Writes `changed` (and deletes `remove`), then applies, streams and completes waiters.
  Status Commit(const std::vector<commands::Command>& changed,
                const std::vector<std::string>& remove);
  void Dispatch(const std::string& device);
  void Answer(http::Responder r, const commands::Command& c, std::int64_t wait_s);
  void Complete(const commands::Command& c);

  asio::io_context& io_;
  commands::Book book_;
  std::size_t max_waiters_;
  Hooks hooks_;
  std::unordered_map<std::string, std::vector<std::shared_ptr<Waiter>>> waiters_;
  std::size_t waiting_ = 0;
  bool stopped_ = false;
  std::uint64_t busy_ = 0, save_errors_ = 0, publish_errors_ = 0;
};

}  // namespace outpost::gateway::app::commands_api
