// Outbox types: the durable queue of items (readings, alerts, device statuses) waiting for the
// cloud uplink, written in the same transaction as the data it carries. Format and accounting:
// docs/formats/outbox.md; design: docs/adr/0002-outbox-in-the-store.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

namespace outpost::gateway::model {

enum class OutboxKind : uint8_t { kReading = 0, kAlert = 1, kStatus = 2 };
// What a full outbox does with a new item (`cloud.when_full`).
enum class WhenFull : uint8_t { kDropOldest, kRejectNew };

// One queued item: a pre-encoded compact JSON object (docs/formats/outbox.md).
struct OutboxItem {
  OutboxKind kind;
  int64_t created_ms;  // wall time it was queued (for age and expiry)
  std::string body;
};

struct OutboxEntry {
  int64_t id;  // outbox order
  OutboxKind kind;
  int64_t created_ms;
  std::string body;
};

// A batch taken out of the outbox: persisted (with its idempotency key and exact body) before
// its first send, deleted after the cloud accepted it or refused it for good.
struct OutboxBatch {
  std::string key;
  int64_t seq = 0;  // the outbox's batch sequence number (part of the key)
  int64_t created_ms = 0;
  int64_t readings = 0, alerts = 0, statuses = 0;
  std::string body;
};

inline constexpr size_t kMaxDeadLetterReasons = 32;

struct OutboxStats {
  int64_t readings = 0, alerts = 0, statuses = 0;  // queued, in-flight batch included
  int64_t bytes = 0;                               // exact bytes counted against the quota
  int64_t oldest_created_ms = 0;                   // 0 = empty
  int64_t dropped_quota_oldest = 0;                // items, persisted counters from here on
  int64_t dropped_quota_rejected = 0;
  int64_t expired = 0;
  int64_t dead_letter = 0;  // items the cloud refused for good (whole batches or single items)
  // dead_letter by reason (the cloud's per-item reason, "too_large", "http_400"...), persisted;
  // at most kMaxDeadLetterReasons distinct reasons, the rest under "other".
  std::map<std::string, int64_t> dead_letter_reasons;
  int64_t sent_batches = 0;
  int64_t sent_items = 0;
  int64_t next_batch_seq = 1;
  std::string in_flight_key;  // empty = no batch in flight
};

}  // namespace outpost::gateway::model
