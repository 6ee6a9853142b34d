// Storage: the port between the cloud's HTTP handlers and a database (SQLite or PostgreSQL).
// Adapters: outpost/cloud/storage/{sqlite_storage,postgres_storage}.h; OpenStorage picks one
// from a database URL.
// Thread: every method is safe to call from many threads at once (adapters serialise writes
//   themselves). Errors: kUnavailable (database down or busy; retryable), kDataLoss (a
//   durability step failed), kInvalidArgument (bad input the parser should have caught),
//   kInternal (an unexpected database error). No exception escapes.
// Schema and formats: docs/formats/cloud.md
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/cloud/model.h"

namespace outpost::cloud {

// The outcome of WriteBatch.
struct WriteResult {
  enum class Kind {
    kStored,    // the batch was written; `counts` says what was new, `response` was recorded
    kReplayed,  // the key was known with the same body hash: `record` is the first answer
    kKeyReused  // the key was known with a different body hash: nothing written
  };
  Kind kind = Kind::kStored;
  WriteCounts counts;
  IdempotencyRecord record;
};

// Builds the response body remembered for a key, from what was stored.
using ResponseBuilder = std::function<std::string(const WriteCounts&)>;

class Storage {
 public:
  virtual ~Storage() = default;

  // Human name of the backend ("sqlite", "postgresql").
  virtual const char* backend() const = 0;

  // Brings the schema to the newest version. Idempotent.
  virtual Status Migrate() = 0;

  // Looks up a key without writing anything (fast path for replays).
  virtual Result<std::optional<IdempotencyRecord>> FindIdempotency(const std::string& gateway_id,
                                                                   const std::string& key) = 0;

  // Stores a batch for `gateway_id` in ONE transaction, together with the idempotency record
  // (gateway_id, key) -> (body_sha256, 200, build_response(counts)) when `key` is set.
  // Readings, alerts and statuses already stored (by identity) are counted as duplicates.
  virtual Result<WriteResult> WriteBatch(const std::string& gateway_id,
                                         const std::optional<std::string>& key,
                                         const std::string& body_sha256, const Batch& batch,
                                         std::int64_t now_ms,
                                         const ResponseBuilder& build_response) = 0;

  // Deletes idempotency records older than `before_ms`. Returns how many.
  virtual Result<std::int64_t> PurgeIdempotency(std::int64_t before_ms) = 0;

  // Tokens. Only SHA-256 hashes (hex) are stored.
  virtual Result<TokenRecord> CreateToken(const std::string& gateway_id, bool admin,
                                          const std::string& token_sha256, std::int64_t now_ms) = 0;
  // kNotFound when no live token has this hash.
  virtual Result<Principal> Authenticate(const std::string& token_sha256) = 0;
  // Revokes every live token of the gateway (by_gateway) or the one with `token_id`.
  // Returns how many were revoked.
  virtual Result<std::int64_t> RevokeGatewayTokens(const std::string& gateway_id,
                                                   std::int64_t now_ms) = 0;
  virtual Result<std::int64_t> RevokeToken(std::int64_t token_id, std::int64_t now_ms) = 0;
  virtual Result<std::vector<TokenRecord>> ListTokens() = 0;

  // Queries. An empty gateway_id in ListGateways/ListDevices means all gateways.
  virtual Result<std::vector<GatewayInfo>> ListGateways(const std::string& gateway_id) = 0;
  virtual Result<std::vector<DeviceInfo>> ListDevices(const std::string& gateway_id) = 0;
  virtual Result<std::vector<Point>> QueryPoints(const ReadingsQuery& query) = 0;
  virtual Result<std::vector<Bucket>> QueryBuckets(const ReadingsQuery& query) = 0;
  virtual Result<std::vector<StoredAlert>> QueryAlerts(const AlertsQuery& query) = 0;

  // A cheap round trip to the database (for /healthz).
  virtual Status Ping() = 0;
};

}  // namespace outpost::cloud
