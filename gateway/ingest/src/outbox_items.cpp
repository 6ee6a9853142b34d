#include "outpost/gateway/ingest/outbox_items.h"

#include <vector>

#include "outpost/proto/batch.h"

namespace outpost::gateway::ingest {

namespace batch = proto::batch;

model::OutboxItem ReadingItem(const model::ReadingRow& r) {
  std::vector<batch::Metric> metrics;
  metrics.reserve(r.metrics.size());
  for (const auto& m : r.metrics) metrics.push_back(batch::Metric{m.name, m.value, m.is_bool});
  return model::OutboxItem{model::OutboxKind::kReading, r.received_ms,
                           batch::EncodeReading(r.device_id, r.has_seq, r.boot, r.seq, r.ts_ms,
                                                r.ts_from_device, metrics)};
}

model::OutboxItem AlertItem(const model::AlertRow& a, std::string_view gateway_id) {
  return model::OutboxItem{model::OutboxKind::kAlert, a.cleared_ms ? a.cleared_ms : a.raised_ms,
                           batch::EncodeAlert(gateway_id, a.alert_id, a.device_id, a.rule,
                                              a.message, a.value, a.raised_ms, a.cleared_ms)};
}

model::OutboxItem AlertAckItem(const model::AlertRow& a, std::string_view gateway_id) {
  return model::OutboxItem{
      model::OutboxKind::kAlert, a.acked_ms,
      batch::EncodeAlertAck(gateway_id, a.alert_id, a.device_id, a.rule, a.acked_by, a.ack_comment,
                            a.raised_ms, a.acked_ms)};
}

model::OutboxItem StatusItem(std::string_view device_id, std::string_view status,
                             std::int64_t ts_ms) {
  return model::OutboxItem{model::OutboxKind::kStatus, ts_ms,
                           batch::EncodeStatus(device_id, status, ts_ms)};
}

}  // namespace outpost::gateway::ingest
