// Outbox items (docs/formats/outbox.md): the pipeline queues each stored reading, alert and
// device status for the cloud as one pre-encoded item. The encoding is the batch contract's
// (libs/proto/batch.h, ADR 0004), next to the cloud's parser; this only maps the gateway's model
// rows onto it. Thread: pure functions, any thread.
#pragma once

#include <cstdint>
#include <string_view>

#include "outpost/gateway/model/outbox.h"
#include "outpost/gateway/model/rows.h"

namespace outpost::gateway::ingest {

// The native reading item, queued at the reading's receive time.
model::OutboxItem ReadingItem(const model::ReadingRow& r);
// The alert item, queued at its raise or clear; its id names the raise (a clear gets ":cleared").
model::OutboxItem AlertItem(const model::AlertRow& a, std::string_view gateway_id);
// Its acknowledgement (Store::AckAlert), queued at the ack: the raise's id plus ":acked".
model::OutboxItem AlertAckItem(const model::AlertRow& a, std::string_view gateway_id);
// {"device_id":"n1","status":"online","ts_ms":1764201600123}
model::OutboxItem StatusItem(std::string_view device_id, std::string_view status,
                             std::int64_t ts_ms);

}  // namespace outpost::gateway::ingest
