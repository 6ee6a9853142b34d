// The gateway's side of the batch contract (libs/proto/batch.h, ADR 0004): store rows in,
// outbox items and request bodies out. The encoding itself lives in libs/proto, next to the
// cloud's parser, so the two halves cannot drift apart; this adapter only maps the gateway's model
// types. Formats: docs/formats/outbox.md, docs/formats/cloud.md. Thread: pure functions, any
// thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/gateway/model/outbox.h"
#include "outpost/gateway/model/rows.h"
#include "outpost/proto/batch.h"

namespace outpost::gateway::uplink {

using proto::batch::AppendJsonString;
using proto::batch::Body;
using proto::batch::MakeIdempotencyKey;
using proto::batch::Protocol;
using proto::batch::ProtocolName;
using proto::batch::ProtocolPath;

// The native reading item (proto::batch::EncodeReading).
std::string EncodeReadingItem(const model::ReadingRow& r);
// The alert item; its id names the raise (a clear gets ":cleared") (proto::batch::EncodeAlert).
std::string EncodeAlertItem(const model::AlertRow& a, std::string_view gateway_id);
// {"device_id":"n1","status":"online","ts_ms":1764201600123}
std::string EncodeStatusItem(std::string_view device_id, std::string_view status,
                             std::int64_t ts_ms);

// proto::batch::BuildBody over outbox entries: uses a prefix of `items` (body->items_used) that
// keeps the body within max_body_bytes. kDataLoss naming the item for a corrupt row.
Result<Body> BuildBody(Protocol protocol, std::string_view gateway_id,
                       const std::vector<model::OutboxEntry>& items,
                       std::size_t max_body_bytes = SIZE_MAX);

}  // namespace outpost::gateway::uplink
