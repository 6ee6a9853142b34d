#include "alerts_api.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>

#include "api.h"
#include "outpost/proto/batch.h"

namespace outpost::gateway::app::alerts {

using nlohmann::json;

std::string ApiId(const model::AlertRow& a) {
  return a.alert_id + ":" + std::to_string(a.raised_ms);
}

namespace {

// A decimal int64 of at most 18 digits (no sign): false otherwise.
bool ParseMs(std::string_view s, std::int64_t* out) {
  if (s.empty() || s.size() > 18 ||
      !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  *out = std::stoll(std::string(s));
  return true;
}

}  // namespace

Result<model::AlertAck> ParseApiId(std::string_view id) {
  const std::size_t colon = id.rfind(':');
  model::AlertAck key;
  // No alert id is longer than the cloud's (which also names the gateway): refused before any
  // lookup, and never echoed whole.
  if (id.size() > proto::batch::kMaxAlertIdBytes || colon == std::string_view::npos || colon == 0 ||
      !ParseMs(id.substr(colon + 1), &key.raised_ms)) {
    return InvalidArgument(
        "id: expected \"<alert>:<raised ms>\" as listed by /api/v1/alerts, got \"" +
        std::string(id.substr(0, 64)) + "\"");
  }
  key.alert_id = std::string(id.substr(0, colon));
  return key;
}

std::string EncodeCursor(const model::AlertRow& last) {
  return api::EncodeCursor(std::to_string(last.raised_ms) + ":" + last.alert_id);
}

Result<store::AlertFilter> ParseFilter(const std::map<std::string, std::string>& params,
                                       std::size_t* limit, std::string* bad_param) {
  store::AlertFilter f;
  auto fail = [bad_param](const char* name, std::string message) {
    *bad_param = name;
    return InvalidArgument(std::move(message));
  };
  if (auto it = params.find("state"); it != params.end()) {
    if (it->second == "active") {
      f.state = store::AlertFilter::State::kActive;
    } else if (it->second == "cleared") {
      f.state = store::AlertFilter::State::kCleared;
    } else if (it->second != "all") {
      return fail("state", "state: expected active, cleared or all, got \"" +
                               it->second.substr(0, 32) + "\"");
    }
  }
  if (auto it = params.find("acked"); it != params.end()) {
    if (it->second == "true") {
      f.acked = store::AlertFilter::Acked::kYes;
    } else if (it->second == "false") {
      f.acked = store::AlertFilter::Acked::kNo;
    } else {
      return fail("acked",
                  "acked: expected true or false, got \"" + it->second.substr(0, 32) + "\"");
    }
  }
  if (auto it = params.find("device"); it != params.end()) f.device_id = it->second;
  auto n = api::ParseLimit(params);
  if (!n.ok()) return fail("limit", n.status().message());
  *limit = *n;
  if (auto it = params.find("cursor"); it != params.end()) {
    auto key = api::DecodeCursor(it->second);
    const std::size_t colon = key.ok() ? key->find(':') : std::string::npos;
    if (colon == std::string::npos ||
        !ParseMs(std::string_view(*key).substr(0, colon), &f.before_raised_ms)) {
      return fail("cursor",
                  "cursor: not a cursor this API returned (use next_cursor of the previous page "
                  "as is)");
    }
    f.before_alert_id = key->substr(colon + 1);
  }
  return f;
}

json AlertJson(const model::AlertRow& a) {
  auto number = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  json j = {{"id", ApiId(a)},
            {"alert_id", a.alert_id},
            {"rule", a.rule},
            {"device_id", a.device_id},
            {"metric", a.metric},
            {"severity", a.severity},
            {"message", a.message},
            {"value", number(a.value)},
            {"threshold", number(a.threshold)},
            {"state", a.cleared_ms == 0 ? "active" : "cleared"},
            {"raised_ms", a.raised_ms},
            {"cleared_ms", a.cleared_ms == 0 ? json(nullptr) : json(a.cleared_ms)},
            {"ack", nullptr}};
  if (a.acked_ms != 0) {
    j["ack"] = {{"ms", a.acked_ms}, {"user", a.acked_by}, {"comment", a.ack_comment}};
  }
  return j;
}

Result<AckBody> ParseAckBody(std::string_view body, bool bulk, std::string* bad_field) {
  AckBody out;
  auto fail = [bad_field](const char* name, std::string message) {
    *bad_field = name;
    return InvalidArgument(std::move(message));
  };
  if (body.empty() && !bulk) return out;
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return fail("body", "body: expected a JSON object like {\"comment\":\"...\"}");
  }
  if (auto it = j.find("comment"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) return fail("comment", "comment: expected a string");
    out.comment = it->get<std::string>();
    if (out.comment.size() > kMaxCommentBytes) {
      return fail("comment", "comment: " + std::to_string(out.comment.size()) + " bytes, at most " +
                                 std::to_string(kMaxCommentBytes));
    }
  }
  if (!bulk) return out;
  auto ids = j.find("ids");
  if (ids == j.end() || !ids->is_array() || ids->empty() || ids->size() > kMaxBulkIds) {
    return fail("ids",
                "ids: expected an array of 1.." + std::to_string(kMaxBulkIds) + " alert ids");
  }
  for (const json& id : *ids) {
    if (!id.is_string()) return fail("ids", "ids: every id must be a string");
    out.ids.push_back(id.get<std::string>());
  }
  return out;
}

namespace {

http::Response JsonResponse(int status, const json& j) {
  http::Response r;
  r.status = status;
  r.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  r.headers.emplace_back("Cache-Control", "no-cache");
  return r;
}

http::Response StoreProblem(const Status& s) {
  if (s.code() == Code::kNotFound) return http::Problem(404, "unknown_alert", s.message());
  if (s.code() == Code::kFailedPrecondition) {
    return http::Problem(409, "already_acked", s.message());
  }
  if (s.code() == Code::kUnavailable || s.code() == Code::kResourceExhausted ||
      s.code() == Code::kCancelled) {
    http::Response r = http::Problem(503, "store_unavailable", s.message());
    r.headers.emplace_back("Retry-After", "1");
    return r;
  }
  return http::Problem(500, "store_error", s.message());
}

// Posts `job` to the reader thread, answering 503 from here when it is full or absent.
void RunOnReader(store::ReaderThread* reader, http::Responder r,
                 std::function<http::Response(store::StoreReader&)> job) {
  if (reader == nullptr) {
    return r.Send(http::Problem(503, "unavailable", "the store reader is not open"));
  }
  auto responder = std::make_shared<http::Responder>(std::move(r));
  const bool queued = reader->TryPost(
      [job = std::move(job), responder](store::StoreReader& sr) { responder->Send(job(sr)); });
  if (!queued) {
    http::Response busy =
        http::Problem(503, "busy", "the store reader's queue is full; retry shortly");
    busy.headers.emplace_back("Retry-After", "1");
    responder->Send(std::move(busy));
  }
}

// One acknowledgement, on the reader thread; the stream hears of it when it committed.
Result<model::AlertRow> AckOne(const Hooks& h, model::AlertAck ack) {
  Result<model::AlertRow> row = h.ack(ack);
  if (row.ok() && h.on_acked) h.on_acked(*row);
  return row;
}

}  // namespace

void AddAlertRoutes(http::Router* router, Hooks hooks) {
  auto h = std::make_shared<const Hooks>(std::move(hooks));
  router->Add("GET", "/api/v1/alerts", [h](http::Request q, http::Responder r) {
    std::size_t limit = 0;
    std::string bad;
    auto filter = ParseFilter(q.params, &limit, &bad);
    if (!filter.ok()) return r.Send(http::Problem(400, "bad_" + bad, filter.status().message()));
    RunOnReader(h->reader, std::move(r), [f = *std::move(filter), limit](store::StoreReader& sr) {
      // One more than a page tells whether there is a next one.
      auto rows = sr.Alerts(f, limit + 1);
      if (!rows.ok()) return StoreProblem(rows.status());
      const bool more = rows->size() > limit;
      if (more) rows->resize(limit);
      json list = json::array();
      for (const auto& a : *rows) list.push_back(AlertJson(a));
      return JsonResponse(200, {{"alerts", std::move(list)},
                                {"count", rows->size()},
                                {"next_cursor", more ? json(EncodeCursor(rows->back())) : json()}});
    });
  });
  router->Add("GET", "/api/v1/alerts/*", [h](http::Request q, http::Responder r) {
    auto key =
        ParseApiId(std::string_view(q.path).substr(std::string_view("/api/v1/alerts/").size()));
    if (!key.ok()) return r.Send(http::Problem(400, "bad_id", key.status().message()));
    RunOnReader(h->reader, std::move(r), [k = *std::move(key)](store::StoreReader& sr) {
      auto row = sr.Alert(k.alert_id, k.raised_ms);
      return row.ok() ? JsonResponse(200, AlertJson(*row)) : StoreProblem(row.status());
    });
  });
  router->Add("POST", "/api/v1/alerts/*", [h](http::Request q, http::Responder r) {
    constexpr std::string_view kPrefix = "/api/v1/alerts/", kSuffix = "/ack";
    std::string_view rest = std::string_view(q.path).substr(kPrefix.size());
    if (rest.size() <= kSuffix.size() || rest.substr(rest.size() - kSuffix.size()) != kSuffix) {
      return r.Send(http::Problem(404, "not_found", "no route for " + q.path));
    }
    auto key = ParseApiId(rest.substr(0, rest.size() - kSuffix.size()));
    if (!key.ok()) return r.Send(http::Problem(400, "bad_id", key.status().message()));
    std::string bad;
    auto body = ParseAckBody(q.body, /*bulk=*/false, &bad);
    if (!body.ok()) return r.Send(http::Problem(400, "bad_" + bad, body.status().message()));
    model::AlertAck ack = *std::move(key);
    ack.acked_ms = h->now_ms();
    ack.user = h->user(q);
    ack.comment = std::move(body->comment);
    RunOnReader(h->reader, std::move(r), [h, ack = std::move(ack)](store::StoreReader&) {
      auto row = AckOne(*h, ack);
      return row.ok() ? JsonResponse(200, AlertJson(*row)) : StoreProblem(row.status());
    });
  });
  router->Add("POST", "/api/v1/alerts/ack", [h](http::Request q, http::Responder r) {
    std::string bad;
    auto body = ParseAckBody(q.body, /*bulk=*/true, &bad);
    if (!body.ok()) return r.Send(http::Problem(400, "bad_" + bad, body.status().message()));
    const std::int64_t now = h->now_ms();
    const std::string user = h->user(q);
    std::vector<model::AlertAck> acks;
    for (const std::string& id : body->ids) {
      auto key = ParseApiId(id);
      if (!key.ok()) return r.Send(http::Problem(400, "bad_ids", key.status().message()));
      key->acked_ms = now;
      key->user = user;
      key->comment = body->comment;
      acks.push_back(*std::move(key));
    }
    RunOnReader(h->reader, std::move(r),
                [h, ids = std::move(body->ids), acks = std::move(acks)](store::StoreReader&) {
                  // Each id on its own: one already acknowledged or unknown does not stop the
                  // others.
                  json results = json::array();
                  std::size_t acked = 0;
                  for (std::size_t i = 0; i < acks.size(); ++i) {
                    auto row = AckOne(*h, acks[i]);
                    const std::string& id = ids[i];
                    if (row.ok()) {
                      ++acked;
                      results.push_back({{"id", id}, {"status", 200}, {"alert", AlertJson(*row)}});
                    } else {
                      const http::Response p = StoreProblem(row.status());
                      results.push_back({{"id", id},
                                         {"status", p.status},
                                         {"error", json::parse(p.body, nullptr, false)}});
                    }
                  }
                  return JsonResponse(200, {{"acked", acked}, {"results", std::move(results)}});
                });
  });
}

}  // namespace outpost::gateway::app::alerts
