#include "commands_api.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "api.h"
#include "outpost/gateway/commands/codec.h"
#include "outpost/proto/batch.h"

namespace outpost::gateway::app::commands_api {

using commands::Command;
using commands::State;
using nlohmann::json;

namespace {

constexpr std::string_view kPrefix = "/api/v1/devices/";

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == ':' || c == '-';
}

http::Response JsonResponse(int status, const json& j) {
  http::Response r;
  r.status = status;
  r.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  r.headers.emplace_back("Cache-Control", "no-cache");
  return r;
}

http::Response Unavailable(const Status& s) {
  http::Response r = http::Problem(503, "store_unavailable", s.message());
  r.headers.emplace_back("Retry-After", "1");
  return r;
}

// The parts of /api/v1/devices/{id}/commands[/{cid}[/cancel]].
struct Path {
  std::string device;
  std::string command;  // "" = the device's list
  bool cancel = false;
};
std::optional<Path> ParsePath(std::string_view path) {
  if (path.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  std::string_view rest = path.substr(kPrefix.size());
  std::vector<std::string_view> parts;
  while (true) {
    const std::size_t slash = rest.find('/');
    parts.push_back(rest.substr(0, slash));
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  if (parts.size() < 2 || parts[1] != "commands" || parts[0].empty() || parts.size() > 4) {
    return std::nullopt;
  }
  Path p{std::string(parts[0]), "", false};
  if (parts.size() >= 3) {
    if (parts[2].empty()) return std::nullopt;
    p.command = std::string(parts[2]);
  }
  if (parts.size() == 4) {
    if (parts[3] != "cancel") return std::nullopt;
    p.cancel = true;
  }
  return p;
}

http::Response UnknownDevice(const std::string& id) {
  return http::Problem(404, "unknown_device",
                       "no device \"" + id.substr(0, 128) + "\" in the registry");
}

http::Response UnknownCommand(const std::string& device, const std::string& id) {
  return http::Problem(404, "unknown_command",
                       "device \"" + device.substr(0, 128) + "\" has no command \"" +
                           id.substr(0, 128) +
                           "\" (finished commands are kept up to "
                           "commands.history_per_device)");
}

}  // namespace

Result<Body> ParseBody(std::string_view body, std::string* bad_field) {
  auto fail = [bad_field](const char* name, std::string message) {
    *bad_field = name;
    return InvalidArgument(std::move(message));
  };
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return fail(
        "body",
        "body: expected a JSON object like {\"command\":\"led\",\"params\":{\"state\":true}}");
  }
  Body out;
  auto name = j.find("command");
  if (name == j.end() || !name->is_string()) {
    return fail("command", "command: expected a string, the command's name");
  }
  out.name = name->get<std::string>();
  if (out.name.empty() || out.name.size() > kMaxNameBytes ||
      !std::all_of(out.name.begin(), out.name.end(), IsNameChar)) {
    return fail("command", "command: expected 1.." + std::to_string(kMaxNameBytes) +
                               " characters of [A-Za-z0-9_.:-]");
  }
  if (auto p = j.find("params"); p != j.end() && !p->is_null()) {
    if (!p->is_object()) return fail("params", "params: expected a JSON object");
    if (p->contains("id") || p->contains("command")) {
      return fail("params", "params: \"id\" and \"command\" are reserved");
    }
    out.params_json = p->dump();
  }
  if (auto t = j.find("ttl_s"); t != j.end() && !t->is_null()) {
    if (!t->is_number_integer()) return fail("ttl_s", "ttl_s: expected an integer of seconds");
    const std::int64_t s = t->get<std::int64_t>();
    if (s < 1 || s > 1'000'000'000) {
      return fail("ttl_s", "ttl_s: " + std::to_string(s) + " is out of range");
    }
    out.ttl_ms = s * 1000;
  }
  out.fingerprint = out.name + "\n" + out.params_json + "\n" +
                    (out.ttl_ms ? std::to_string(*out.ttl_ms) : std::string("default"));
  return out;
}

Result<std::int64_t> ParseWait(const std::map<std::string, std::string>& params) {
  auto it = params.find("wait");
  if (it == params.end()) return std::int64_t{0};
  const std::string& v = it->second;
  if (v.empty() || v.size() > 2 ||
      !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return InvalidArgument("wait: expected an integer of seconds in 0.." +
                           std::to_string(kMaxWaitS));
  }
  const std::int64_t n = std::stoll(v);
  if (n > kMaxWaitS) {
    return InvalidArgument("wait: " + v + " is more than " + std::to_string(kMaxWaitS) + " s");
  }
  return n;
}

struct Service::Waiter {
  explicit Waiter(asio::io_context& io) : timer(io) {}
  std::optional<http::Responder> responder;
  asio::steady_timer timer;
};

Service::Service(asio::io_context& io, commands::Options options, std::size_t max_waiters,
                 Hooks hooks)
    : io_(io), book_(options), max_waiters_(max_waiters), hooks_(std::move(hooks)) {}

Service::~Service() { Stop(); }

void Service::Restore(std::vector<Command> stored) { book_.Restore(std::move(stored)); }

Status Service::Commit(const std::vector<Command>& changed,
                       const std::vector<std::string>& remove) {
  std::vector<model::CommandRow> rows;
  rows.reserve(changed.size());
  for (const Command& c : changed) rows.push_back(commands::ToRow(c));
  Status s = hooks_.save(rows, remove);
  if (!s.ok()) {
    ++save_errors_;
    spdlog::error("commands: cannot store {} change(s): {}", rows.size(), s.ToString());
    return s;
  }
  for (const std::string& id : remove) book_.Forget(id);
  for (const Command& c : changed) {
    const Command* before = book_.Find(c.id);
    const bool moved = before == nullptr || before->history.size() != c.history.size();
    book_.Put(c);
    if (moved && hooks_.on_transition) hooks_.on_transition(commands::CommandJson(c));
    if (commands::Finished(c)) Complete(c);
  }
  return Status::Ok();
}

void Service::Complete(const Command& c) {
  auto it = waiters_.find(c.id);
  if (it == waiters_.end()) return;
  std::vector<std::shared_ptr<Waiter>> done = std::move(it->second);
  waiters_.erase(it);
  for (auto& w : done) {
    w->timer.cancel();
    if (!w->responder) continue;
    --waiting_;
    http::Responder r = std::move(*w->responder);
    w->responder.reset();
    r.Send(JsonResponse(200, commands::CommandJson(c)));
  }
}

void Service::Answer(http::Responder r, const Command& c, std::int64_t wait_s) {
  if (commands::Finished(c)) return r.Send(JsonResponse(200, commands::CommandJson(c)));
  if (wait_s == 0 || stopped_) return r.Send(JsonResponse(202, commands::CommandJson(c)));
  auto w = std::make_shared<Waiter>(io_);
  w->responder.emplace(std::move(r));
  ++waiting_;
  waiters_[c.id].push_back(w);
  w->timer.expires_after(std::chrono::seconds(wait_s));
  w->timer.async_wait([this, w, id = c.id](const asio::error_code& ec) {
    if (ec || !w->responder) return;
    --waiting_;
    http::Responder resp = std::move(*w->responder);
    w->responder.reset();
    auto& list = waiters_[id];
    list.erase(std::remove(list.begin(), list.end(), w), list.end());
    if (list.empty()) waiters_.erase(id);
    const Command* now = book_.Find(id);
    if (now == nullptr) return resp.Send(http::Problem(404, "unknown_command", "evicted"));
    resp.Send(JsonResponse(commands::Finished(*now) ? 200 : 202, commands::CommandJson(*now)));
  });
}

void Service::Dispatch(const std::string& device) {
  std::vector<Command> plan = book_.PlanDispatch(device, hooks_.now_ms());
  if (plan.empty()) return;
  std::vector<Command> changed;
  for (const Command& c : plan) {
    if (c.state == State::kSent && !c.resend) changed.push_back(c);  // queued -> sent
  }
  if (!changed.empty() && !Commit(changed, {}).ok()) return;  // retried at the next tick
  for (Command c : plan) {
    const bool ok = hooks_.publish(c);
    if (!ok) ++publish_errors_;
    if (c.resend && ok) ++book_.counters().resent;
    if (!c.resend && ok) ++book_.counters().sent;
    const Command* current = book_.Find(c.id);
    if (current == nullptr) continue;
    Command next = *current;
    next.resend = !ok && !commands::Finished(next);
    book_.Put(std::move(next));
  }
}

void Service::Tick() {
  if (stopped_) return;
  const std::int64_t now = hooks_.now_ms();
  std::vector<Command> expired = book_.PlanExpiry(now);
  if (!expired.empty() && Commit(expired, {}).ok()) {
    book_.counters().expired += expired.size();
  }
  const std::vector<std::string> devices(book_.waiting().begin(), book_.waiting().end());
  for (const std::string& d : devices) {
    if (hooks_.device(d).online) Dispatch(d);
  }
}

void Service::Stop() {
  if (stopped_) return;
  stopped_ = true;
  auto all = std::move(waiters_);
  waiters_.clear();
  for (auto& [id, list] : all) {
    const Command* c = book_.Find(id);
    for (auto& w : list) {
      w->timer.cancel();
      if (!w->responder) continue;
      --waiting_;
      http::Responder r = std::move(*w->responder);
      w->responder.reset();
      if (c != nullptr) {
        r.Send(JsonResponse(commands::Finished(*c) ? 200 : 202, commands::CommandJson(*c)));
      } else {
        r.Send(http::Problem(503, "unavailable", "the gateway is shutting down"));
      }
    }
  }
}

void Service::OnReply(const std::string& device, const proto::DeviceReply& reply) {
  const Command* c = book_.Find(reply.id);
  if (c == nullptr || c->device != device) {
    ++book_.counters().replies_unknown;
    spdlog::debug("commands: reply from {} for unknown command {}", device, reply.id);
    return;
  }
  ++book_.counters().replies;
  json j = {{"ok", reply.has_ok ? json(reply.ok) : json(nullptr)}, {"at_ms", hooks_.now_ms()}};
  if (!reply.error.empty()) j["error"] = reply.error;
  if (reply.rejected) j["rejected"] = true;
  if (reply.duplicate) j["duplicate"] = true;
  if (!reply.csr.empty()) j["csr"] = reply.csr;  // certificate rotation: docs/adr/0011
  if (!reply.serial.empty()) j["serial"] = reply.serial;
  if (!reply.has_ok) j["delivered"] = true;
  commands::Reply r{reply.has_ok, reply.ok, reply.rejected, j.dump()};
  auto next = book_.ApplyReply(reply.id, r, hooks_.now_ms());
  if (!next.ok()) {
    ++book_.counters().replies_late;
    spdlog::info("commands: reply for {} ignored: {}", reply.id, next.status().message());
    return;
  }
  (void)Commit({*next}, {});
}

void Service::Post(http::Request q, http::Responder r) {
  auto path = ParsePath(q.path);
  if (!path)
    return r.Send(http::Problem(404, "not_found", "no route for " + q.path.substr(0, 200)));
  const DeviceInfo dev = hooks_.device(path->device);
  if (!path->command.empty()) {
    if (!path->cancel) {
      return r.Send(http::Problem(404, "not_found", "no route for POST " + q.path.substr(0, 200)));
    }
    const Command* c = book_.Find(path->command);
    if (c == nullptr || c->device != path->device) {
      if (!dev.known && c == nullptr) return r.Send(UnknownDevice(path->device));
      return r.Send(UnknownCommand(path->device, path->command));
    }
    auto next = book_.Transit(c->id, State::kCanceled, hooks_.now_ms(), hooks_.user(q));
    if (!next.ok()) {
      return r.Send(
          http::Problem(409, "not_cancelable",
                        next.status().message() + " (only a queued command can be canceled)"));
    }
    if (Status s = Commit({*next}, {}); !s.ok()) return r.Send(Unavailable(s));
    ++book_.counters().canceled;
    return r.Send(JsonResponse(200, commands::CommandJson(*next)));
  }
  if (q.body.size() > kMaxBodyBytes) {
    return r.Send(http::Problem(413, "body_too_large",
                                "body: " + std::to_string(q.body.size()) + " bytes, at most " +
                                    std::to_string(kMaxBodyBytes)));
  }
  auto wait = ParseWait(q.params);
  if (!wait.ok()) return r.Send(http::Problem(400, "bad_wait", wait.status().message()));
  std::string bad;
  auto body = ParseBody(q.body, &bad);
  if (!body.ok()) return r.Send(http::Problem(400, "bad_" + bad, body.status().message()));
  const std::string key = q.Header("idempotency-key");
  if (!key.empty() && !proto::batch::IsValidIdempotencyKey(key)) {
    return r.Send(http::Problem(400, "bad_idempotency_key",
                                "Idempotency-Key: expected 1..128 characters of [A-Za-z0-9._:-]"));
  }
  if (!dev.known) return r.Send(UnknownDevice(path->device));
  if (*wait > 0 && waiting_ >= max_waiters_) {
    ++busy_;
    http::Response busy = http::Problem(
        503, "busy",
        "already " + std::to_string(waiting_) +
            " requests wait for commands (commands.max_waiters); retry, or send without ?wait");
    busy.headers.emplace_back("Retry-After", "1");
    return r.Send(std::move(busy));
  }
  commands::Request req;
  req.id = hooks_.new_id();
  req.device = path->device;
  req.name = body->name;
  req.params_json = body->params_json;
  req.ttl_ms = body->ttl_ms;
  req.idempotency_key = key;
  req.fingerprint = body->fingerprint;
  req.user = hooks_.user(q);
  req.transport = dev.native ? commands::Transport::kNative : commands::Transport::kSeed;
  std::int64_t retry_ms = 0;
  auto accepted = book_.Accept(req, hooks_.now_ms(), &retry_ms);
  if (!accepted.ok()) {
    const Status& s = accepted.status();
    if (s.code() == Code::kAlreadyExists) {
      return r.Send(http::Problem(409, "idempotency_conflict", s.message()));
    }
    if (s.code() == Code::kResourceExhausted) {
      http::Response full = http::Problem(429, "queue_full", s.message());
      full.headers.emplace_back("Retry-After",
                                std::to_string(std::max<std::int64_t>(1, (retry_ms + 999) / 1000)));
      return r.Send(std::move(full));
    }
    return r.Send(http::Problem(400, "bad_ttl_s", s.message()));
  }
  if (!accepted->existing) {
    if (Status s = Commit({accepted->command}, accepted->evict); !s.ok()) {
      return r.Send(Unavailable(s));
    }
    if (dev.online) Dispatch(path->device);
  }
  const Command* now = book_.Find(accepted->command.id);
  Answer(std::move(r), now != nullptr ? *now : accepted->command, *wait);
}

bool Service::HandleGet(const http::Request& q, http::Responder* r) {
  auto path = ParsePath(q.path);
  if (!path || path->cancel) return false;
  const DeviceInfo dev = hooks_.device(path->device);
  if (!path->command.empty()) {
    const Command* c = book_.Find(path->command);
    if (c == nullptr || c->device != path->device) {
      if (!dev.known && c == nullptr) {
        r->Send(UnknownDevice(path->device));
      } else {
        r->Send(UnknownCommand(path->device, path->command));
      }
      return true;
    }
    r->Send(JsonResponse(200, commands::CommandJson(*c)));
    return true;
  }
  auto limit = api::ParseLimit(q.params);
  if (!limit.ok()) {
    r->Send(http::Problem(400, "bad_limit", limit.status().message()));
    return true;
  }
  std::uint64_t before = 0;
  if (auto it = q.params.find("cursor"); it != q.params.end()) {
    auto key = api::DecodeCursor(it->second);
    const bool digits =
        key.ok() && !key->empty() && key->size() <= 19 &&
        std::all_of(key->begin(), key->end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits || (before = std::stoull(*key)) == 0) {
      r->Send(http::Problem(400, "bad_cursor",
                            "cursor: not a cursor this API returned (use next_cursor of the "
                            "previous page as is)"));
      return true;
    }
  }
  if (!dev.known && book_.List(path->device, 0, 1).empty()) {
    r->Send(UnknownDevice(path->device));
    return true;
  }
  auto page = book_.List(path->device, before, *limit + 1);
  const bool more = page.size() > *limit;
  if (more) page.resize(*limit);
  json list = json::array();
  for (const Command* c : page) list.push_back(commands::CommandJson(*c));
  r->Send(JsonResponse(
      200, {{"commands", std::move(list)},
            {"next_cursor",
             more ? json(api::EncodeCursor(std::to_string(page.back()->seq))) : json(nullptr)}}));
  return true;
}

std::string Service::Prometheus(const std::string& prefix) const {
  const commands::Counters& n = book_.counters();
  std::string out;
  auto add = [&](const char* name, std::uint64_t v, bool total) {
    out += prefix + name + (total ? "_total " : " ") + std::to_string(v) + "\n";
  };
  add("accepted", n.accepted, true);
  add("idempotent_replays", n.idempotent_replays, true);
  add("idempotency_conflicts", n.idempotency_conflicts, true);
  add("queue_full", n.queue_full, true);
  add("sent", n.sent, true);
  add("resent", n.resent, true);
  add("replies", n.replies, true);
  add("replies_unknown", n.replies_unknown, true);
  add("replies_late", n.replies_late, true);
  add("expired", n.expired, true);
  add("canceled", n.canceled, true);
  add("evicted", n.evicted, true);
  add("busy", busy_, true);
  add("save_errors", save_errors_, true);
  add("publish_errors", publish_errors_, true);
  add("commands", book_.size(), false);
  add("waiting_devices", book_.waiting().size(), false);
  add("waiters", waiting_, false);
  return out;
}

void Service::AddRoutes(http::Router* router) {
  router->Add("POST", "/api/v1/devices/*",
              [this](http::Request q, http::Responder r) { Post(std::move(q), std::move(r)); });
}

}  // namespace outpost::gateway::app::commands_api
