// The pure parts of the gateway's HTTP API (docs/api.md): the JSON of devices and of a page of
// them, the pagination cursor and limit, ETags, and the Prometheus text of the status report.
// No I/O, no clock; unit-tested in api_test.cpp. The routes that use them are wired in
// gateway.cpp, on the event loop that owns the registry. Private to gateway/app.
// Errors: ParseLimit and DecodeCursor return kInvalidArgument with a message naming the query
// parameter (the route answers 400 with it).
#pragma once

#include <cstddef>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>

#include "outpost/base/status.h"
#include "outpost/gateway/registry/registry.h"

namespace outpost::gateway::app::api {

// GET /api/v1/devices?limit=: when absent; the most one page holds.
inline constexpr std::size_t kDefaultLimit = 100;
inline constexpr std::size_t kMaxLimit = 1000;

// The status the API shows: "never_seen" (in the registry, e.g. from a status message or a
// retained last will, but no reading stored from it yet, and not online or sleeping by its own
// word), else the registry's "online", "sleeping" or "offline".
const char* DeviceStatus(const registry::Device& d);
// Why it is in that state: "reading", "announced_online", "announced_sleep", "last_will" (an
// offline status: the broker's last will or the device's own), "silence" (nothing heard for
// registry.offline_after_s, or sleeping_grace_s after announcing sleep), "restored" (the state
// the previous run stored; not heard from since the start).
const char* DeviceReason(const registry::Device& d);

// One device: id, status, reason, times (ms since the epoch; null when never), the last reading
// (its metrics, as the store was handed them), firmware, boot, last seq and counters.
nlohmann::json DeviceJson(const registry::Device& d);

// `?limit=` of `params`: kDefaultLimit when absent, else an integer in 1..kMaxLimit.
Result<std::size_t> ParseLimit(const std::map<std::string, std::string>& params);
// The cursor after a page is the last id on it, opaque to clients ("d1" + hex of the id).
std::string EncodeCursor(std::string_view last_id);
Result<std::string> DecodeCursor(std::string_view cursor);

// A page of devices ordered by id: those after `after` ("" = from the start), at most `limit`,
// as {"devices":[...], "count": n, "total": all, "next_cursor": cursor or null}. O(n log limit).
nlohmann::json DevicesPage(const std::unordered_map<std::string, registry::Device>& devices,
                           const std::string& after, std::size_t limit);

// A strong ETag of a response body: "\"" + 16 hex digits of its FNV-1a 64 hash + "\"".
std::string ETag(std::string_view body);
// Whether an If-None-Match header value ("*", or a list of tags, weak or strong) names `etag`.
bool IfNoneMatch(std::string_view header, std::string_view etag);

// Prometheus text exposition of the status report: every number and boolean leaf (true = 1) as
// an untyped sample named prefix + its path joined by '_' ("outpost_gateway_ingest_stored");
// the members of objects keyed by data ("rejected_by_reason", "dead_letter_reasons") as one
// metric with a `reason` label. Strings and nulls are left out.
std::string StatusPrometheus(const nlohmann::json& status, std::string_view prefix);

}  // namespace outpost::gateway::app::api
