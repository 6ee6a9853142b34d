#include "outpost/gateway/uplink/codec.h"

namespace outpost::gateway::uplink {

namespace batch = proto::batch;

std::string EncodeReadingItem(const model::ReadingRow& r) {
  std::vector<batch::Metric> metrics;
  metrics.reserve(r.metrics.size());
  for (const auto& m : r.metrics) metrics.push_back(batch::Metric{m.name, m.value, m.is_bool});
  return batch::EncodeReading(r.device_id, r.has_seq, r.boot, r.seq, r.ts_ms, r.ts_from_device,
                              metrics);
}

std::string EncodeAlertItem(const model::AlertRow& a, std::string_view gateway_id) {
  return batch::EncodeAlert(gateway_id, a.alert_id, a.device_id, a.rule, a.message, a.value,
                            a.raised_ms, a.cleared_ms);
}

std::string EncodeStatusItem(std::string_view device_id, std::string_view status,
                             std::int64_t ts_ms) {
  return batch::EncodeStatus(device_id, status, ts_ms);
}

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
