#include "outpost/gateway/commands/codec.h"

#include <utility>

namespace outpost::gateway::commands {

using nlohmann::json;

namespace {

json ParseOr(const std::string& text, json fallback) {
  if (text.empty()) return fallback;
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? fallback : j;
}

json HistoryJson(const Command& c) {
  json h = json::array();
  for (const Transition& t : c.history) {
    h.push_back({{"state", StateName(t.state)}, {"at_ms", t.at_ms}, {"user", t.user}});
  }
  return h;
}

}  // namespace

json CommandJson(const Command& c) {
  return {{"id", c.id},
          {"device", c.device},
          {"command", c.name},
          {"params", ParseOr(c.params_json, json::object())},
          {"state", StateName(c.state)},
          {"transport", TransportName(c.transport)},
          {"created_ms", c.created_ms},
          {"updated_ms", c.updated_ms},
          {"expires_ms", c.expires_ms},
          {"user", c.user},
          {"reply", ParseOr(c.reply_json, nullptr)},
          {"history", HistoryJson(c)}};
}

std::string DevicePayload(const Command& c) {
  json j = json::object();
  if (c.transport == Transport::kNative) j["id"] = c.id;
  j["command"] = c.name;
  json params = ParseOr(c.params_json, json::object());
  if (params.is_object()) {
    for (auto it = params.begin(); it != params.end(); ++it) {
      if (it.key() != "id" && it.key() != "command") j[it.key()] = it.value();
    }
  }
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

model::CommandRow ToRow(const Command& c) {
  model::CommandRow r;
  r.id = c.id;
  r.device_id = c.device;
  r.seq = c.seq;
  r.name = c.name;
  r.params_json = c.params_json;
  r.state = StateName(c.state);
  r.transport = TransportName(c.transport);
  r.created_ms = c.created_ms;
  r.updated_ms = c.updated_ms;
  r.expires_ms = c.expires_ms;
  r.user = c.user;
  r.idempotency_key = c.idempotency_key;
  r.fingerprint = c.fingerprint;
  r.reply_json = c.reply_json;
  r.history_json = HistoryJson(c).dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

Result<Command> FromRow(const model::CommandRow& r) {
  auto bad = [&r](const std::string& what) {
    return DataLoss("commands row " + r.id + ": " + what);
  };
  Command c;
  c.id = r.id;
  c.device = r.device_id;
  c.seq = r.seq;
  c.name = r.name;
  c.params_json = r.params_json;
  auto state = StateFromName(r.state);
  if (!state) return bad("unknown state \"" + r.state + "\"");
  c.state = *state;
  if (r.transport != "native" && r.transport != "seed") return bad("unknown transport");
  c.transport = r.transport == "seed" ? Transport::kSeed : Transport::kNative;
  c.created_ms = r.created_ms;
  c.updated_ms = r.updated_ms;
  c.expires_ms = r.expires_ms;
  c.user = r.user;
  c.idempotency_key = r.idempotency_key;
  c.fingerprint = r.fingerprint;
  c.reply_json = r.reply_json;
  json h = json::parse(r.history_json, nullptr, /*allow_exceptions=*/false);
  if (h.is_discarded() || !h.is_array()) return bad("history is not a JSON array");
  for (const json& t : h) {
    if (!t.is_object() || !t.contains("state") || !t["state"].is_string()) {
      return bad("history entry without a state");
    }
    auto s = StateFromName(t["state"].get<std::string>());
    if (!s) return bad("history: unknown state");
    c.history.push_back(
        Transition{*s, t.value("at_ms", std::int64_t{0}), t.value("user", std::string())});
  }
  return c;
}

}  // namespace outpost::gateway::commands
