// The uplink's side of the batch contract (libs/proto/batch.h, ADR 0004): outbox entries in,
// request bodies out. The items were encoded when they were queued (gateway/ingest's
// outbox_items.h); the encoding itself lives in libs/proto, next to the cloud's parser, so the
// two halves cannot drift apart. Formats: docs/formats/outbox.md, docs/formats/cloud.md.
// Thread: pure functions, any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/gateway/model/outbox.h"
#include "outpost/proto/batch.h"

namespace outpost::gateway::uplink {

using proto::batch::AppendJsonString;
using proto::batch::Body;
using proto::batch::MakeIdempotencyKey;
using proto::batch::Protocol;
using proto::batch::ProtocolName;
using proto::batch::ProtocolPath;

// proto::batch::BuildBody over outbox entries: uses a prefix of `items` (body->items_used) that
// keeps the body within max_body_bytes. kDataLoss naming the item for a corrupt row.
Result<Body> BuildBody(Protocol protocol, std::string_view gateway_id,
                       const std::vector<model::OutboxEntry>& items,
                       std::size_t max_body_bytes = SIZE_MAX);

}  // namespace outpost::gateway::uplink
