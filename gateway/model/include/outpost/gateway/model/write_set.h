// WriteSet: everything one store transaction applies (Store::Write), filled by the ingest
// pipeline while a batch of messages arrives.
#pragma once

#include <string>
#include <vector>

#include "outpost/gateway/model/outbox.h"
#include "outpost/gateway/model/rows.h"

namespace outpost::gateway::model {

struct WriteSet {
  std::vector<ReadingRow> readings;
  std::vector<DeviceRow> devices;  // upserts (full row replaces)
  // Device rows deleted (evicted from the registry), before the upserts; readings stay.
  std::vector<std::string> removed_devices;
  std::vector<AlertRow> alerts;  // upsert by alert_id+raised_ms: a raise inserts, a clear
                                 // sets cleared_ms (and the other mutable fields)
  std::vector<QuarantineRow> quarantine;
  // Queued for the cloud in the same transaction (when the store's outbox is enabled). The
  // quota is enforced by the store: drop_oldest deletes the oldest items (readings before
  // alerts and statuses), reject_new skips items that do not fit; both counted exactly.
  std::vector<OutboxItem> outbox;

  bool empty() const {
    return readings.empty() && devices.empty() && alerts.empty() && quarantine.empty() &&
           outbox.empty() && removed_devices.empty();
  }
  void clear() {
    outbox.clear();
    readings.clear();
    devices.clear();
    removed_devices.clear();
    alerts.clear();
    quarantine.clear();
  }
};

}  // namespace outpost::gateway::model
