// Encoding for the cloud uplink: the compact JSON item each outbox row holds, and the batch
// bodies built from them for the two wire protocols (docs/formats/outbox.md,
// docs/formats/cloud.md).
//   seed:   POST {api_endpoint}/sensor-data/batch  {"readings":[{flat reading}, ...]}
//   native: POST {api_endpoint}/v1/batches         {"gateway_id":..,"readings":[..],
//                                                   "alerts":[..],"statuses":[..]}
// Items are stored in the native shape; the seed body flattens readings and leaves alerts and
// statuses out (a seed cloud has no endpoint for them).
// Thread: pure functions, any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/gateway/store/store.h"

namespace outpost::gateway::uplink {

enum class Protocol : std::uint8_t { kSeed, kNative };

// "seed" / "native"; the path under cloud.api_endpoint each one posts to.
const char* ProtocolName(Protocol p);
const char* ProtocolPath(Protocol p);

// {"device_id":"n1","boot":3,"seq":17,"ts_ms":1764201600123,"ts_source":"device",
//  "metrics":{"temperature":22.5,"motion":false}}   (boot/seq only when the reading has them;
// non-finite values are left out, JSON has no NaN).
std::string EncodeReadingItem(const store::ReadingRow& r);
// {"id":"gw1:temperature_max:n1:1764201600123","device_id":"n1","rule":"temperature_max",
//  "state":"raised","message":"...","value":36.2,"ts_ms":1764201600123}
// The id names the raise (a clear gets ":cleared"), so the cloud stores each event once.
std::string EncodeAlertItem(const store::AlertRow& a, std::string_view gateway_id);
// {"device_id":"n1","status":"online","ts_ms":1764201600123}
std::string EncodeStatusItem(std::string_view device_id, std::string_view status,
                             std::int64_t ts_ms);

struct Body {
  std::string json;
  std::int64_t readings = 0, alerts = 0, statuses = 0;  // items carried
  std::int64_t left_out = 0;          // seed: alerts/statuses not sendable, dropped with it
  std::int64_t reserved_metrics = 0;  // seed: metrics named like a reserved key, skipped
};

// Builds the request body from outbox items (in the order given). Fails with kDataLoss naming
// the item when a stored item is not the JSON object this module wrote (corrupt row).
Result<Body> BuildBody(Protocol protocol, std::string_view gateway_id,
                       const std::vector<store::OutboxEntry>& items);

// An idempotency key "<gateway_id>:<boot_id>:<seq>", characters outside [A-Za-z0-9._:-]
// replaced by '_', at most 128 characters.
std::string MakeIdempotencyKey(std::string_view gateway_id, std::string_view boot_id,
                               std::int64_t seq);

// Appends `s` as a JSON string literal (quotes and escapes).
void AppendJsonString(std::string* out, std::string_view s);

}  // namespace outpost::gateway::uplink
