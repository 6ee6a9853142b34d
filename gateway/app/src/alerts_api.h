// /api/v1/alerts (docs/api.md#alerts): listing the store's alerts and acknowledging them. The
// parsing and JSON are pure (unit-tested in alerts_api_test.cpp); the routes parse on the event
// loop and run on the store reader's worker thread (store::ReaderThread): a list is a read there,
// an acknowledgement a Store::AckAlert through the writer (AckFn), which that worker waits for,
// so a commit in progress delays queued series queries by at most one commit.
// Private to gateway/app.
// Errors: the parsers return kInvalidArgument whose message starts with the parameter's or
// field's name; the routes answer 400 "bad_<name>", 404 unknown_alert, 409 already_acked,
// 503 busy (reader queue full, with Retry-After).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/gateway/model/rows.h"
#include "outpost/gateway/store/store_reader.h"
#include "outpost/http/server.h"

namespace outpost::gateway::app::alerts {

inline constexpr std::size_t kMaxCommentBytes = 500;
inline constexpr std::size_t kMaxBulkIds = 100;

// The id an alert has in the API: its rule-and-device key, ':' and its raise time in ms
// ("temperature_max:n1:1764201600123"), as in the cloud's alert ids without the gateway.
std::string ApiId(const model::AlertRow& a);
// The key of an API id: the text before the last ':' and the integer after it.
Result<model::AlertAck> ParseApiId(std::string_view id);

// state (active | cleared | all), acked (true | false), device, limit (api::ParseLimit), cursor.
Result<store::AlertFilter> ParseFilter(const std::map<std::string, std::string>& params,
                                       std::size_t* limit, std::string* bad_param);
// The cursor after a page: api::EncodeCursor of "<raised_ms>:<alert_id>" of its last alert.
std::string EncodeCursor(const model::AlertRow& last);

// {"id","alert_id","rule","device_id","metric","severity","message","value","threshold",
//  "state":"active"|"cleared","raised_ms","cleared_ms"|null,
//  "ack":{"ms","user","comment"}|null}
nlohmann::json AlertJson(const model::AlertRow& a);

// The body of an acknowledgement: {"comment": optional string of at most kMaxCommentBytes};
// of a bulk one also "ids": 1..kMaxBulkIds API ids. An empty body is no comment.
struct AckBody {
  std::string comment;
  std::vector<std::string> ids;
};
Result<AckBody> ParseAckBody(std::string_view body, bool bulk, std::string* bad_field);

struct Hooks {
  store::ReaderThread* reader = nullptr;  // may be null: the routes answer 503
  // Acknowledges on the writer (called on the reader thread; blocks until committed).
  std::function<Result<model::AlertRow>(const model::AlertAck&)> ack;
  // Called on the reader thread after each acknowledgement committed (post to the loop).
  std::function<void(const model::AlertRow&)> on_acked;
  std::function<std::int64_t()> now_ms;  // on the loop
  // The user a request acts for (on the loop).
  std::function<std::string(const http::Request&)> user;
};

// Adds GET /api/v1/alerts, GET /api/v1/alerts/{id}, POST /api/v1/alerts/{id}/ack and
// POST /api/v1/alerts/ack (bulk). The hooks must outlive the router's use.
void AddAlertRoutes(http::Router* router, Hooks hooks);

}  // namespace outpost::gateway::app::alerts
