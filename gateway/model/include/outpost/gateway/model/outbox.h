// The outbox: the durable queue of items (readings, alerts, device statuses) waiting for the
// cloud uplink, written in the same transaction as the data it carries. Its types and the
// Outbox port the uplink drives, implemented by gateway/store (Store::outbox()), so neither
// the uplink nor the store depends on the other. Format and accounting:
// docs/formats/outbox.md; design: docs/adr/0002-outbox-in-the-store.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "outpost/base/status.h"

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

// How the cloud answered an in-flight batch (Outbox::FinishBatch).
enum class BatchOutcome : uint8_t {
  kDelivered,  // accepted (some items may still be refused one by one: dead letters)
  kRefused,    // refused for good: every item is a dead letter
};

// Outbox is the durable queue between the store and the uplink: one batch in flight at a time,
// persisted (key and exact body) before its first send.
// Ownership: implemented by the store (store::Store::outbox()), which owns it.
// Thread: not thread-safe; every call on the store's owner thread (the uplink reaches it
// through uplink::OutboxPort).
// Errors: the store's (kResourceExhausted disk full, kUnavailable I/O, kDataLoss), plus
// kFailedPrecondition and kNotFound as stated per call; a failed call changes nothing.
// Format: docs/formats/outbox.md
class Outbox {
 public:
  virtual ~Outbox() = default;

  // The in-flight batch, if one was persisted and not finished yet (e.g. before a crash).
  virtual Result<std::optional<OutboxBatch>> InFlightBatch() = 0;
  // Up to `max_items` items whose bodies sum to at most `max_bytes` (at least one item when
  // any is queued), alerts and statuses first, then readings, each in outbox order. When
  // readings are queued, alerts and statuses take at most (1 - reading_share) of the items and
  // of the bytes (at least one item), so a flood of them cannot starve readings.
  virtual Result<std::vector<OutboxEntry>> Peek(size_t max_items, int64_t max_bytes,
                                                double reading_share) = 0;
  Result<std::vector<OutboxEntry>> Peek(size_t max_items, int64_t max_bytes) {
    return Peek(max_items, max_bytes, 0);
  }
  // One transaction: stores `batch` (key, body, counts) as the in-flight batch and deletes
  // `items` (exactly what Peek just returned: the first items of each priority) from the
  // queue. kFailedPrecondition when a batch is already in flight or the items are not the head
  // of the queue (nothing changes then).
  virtual Status CommitBatch(const OutboxBatch& batch, const std::vector<OutboxEntry>& items) = 0;
  // Deletes the in-flight batch `key`: kDelivered counts it as sent, except the items in
  // `dead_letters`, which the cloud refused one by one (reason -> items); kRefused makes every
  // item a dead letter, under the reasons given, else "refused". kNotFound when `key` is not
  // the in-flight batch.
  virtual Status FinishBatch(const std::string& key, BatchOutcome outcome,
                             const std::map<std::string, int64_t>& dead_letters) = 0;
  Status FinishBatch(const std::string& key, BatchOutcome outcome) {
    return FinishBatch(key, outcome, {});
  }
  // Counters and backlog, the in-flight batch included. Cheap: kept in memory, no scans.
  virtual OutboxStats stats() const = 0;
};

}  // namespace outpost::gateway::model
