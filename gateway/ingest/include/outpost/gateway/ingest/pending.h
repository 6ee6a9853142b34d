// Pending: the batch the ingest Pipeline fills while the store writer commits the previous one
// (docs/architecture.md, "The path of a reading"). Plain data.
// Ownership: the Pipeline's while it fills; from Pipeline::TakeBatch on, the caller's (the
// gateway hands it to app::Writer, which gives it back in its final Committed).
#pragma once

#include <cstdint>
#include <vector>

#include "outpost/gateway/model/write_set.h"

namespace outpost::gateway::ingest {

// A QoS 1 delivery to acknowledge once the batch that carries it is durable.
struct AckToken {
  std::uint64_t connection_id = 0;
  std::uint16_t packet_id = 0;
};

struct Pending {
  model::WriteSet batch;
  std::vector<AckToken> acks;             // in arrival order
  std::vector<std::int64_t> received_ms;  // per reading, for receive->commit latency

  bool empty() const { return batch.empty() && acks.empty(); }
};

}  // namespace outpost::gateway::ingest
