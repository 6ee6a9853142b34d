#include "outpost/gateway/uplink/codec.h"

namespace outpost::gateway::uplink {

namespace batch = proto::batch;

Result<Body> BuildBody(Protocol protocol, std::string_view gateway_id,
                       const std::vector<model::OutboxEntry>& items, std::size_t max_body_bytes) {
  std::vector<batch::Item> in;
  in.reserve(items.size());
  for (const auto& e : items) {
    in.push_back(batch::Item{static_cast<batch::ItemKind>(e.kind), e.id, e.body});
  }
  return batch::BuildBody(protocol, gateway_id, in, max_body_bytes);
}

}  // namespace outpost::gateway::uplink
