// PostgresStorage: the Storage port on PostgreSQL (production). Batches are bulk-loaded with
// COPY into a per-connection temporary staging table, then moved with
// INSERT ... ON CONFLICT DO NOTHING, all in one transaction with the idempotency record.
// Ownership: owns a small pool of connections. Thread: every method is thread-safe (each call
//   borrows a connection from the pool; a broken connection is replaced on next use).
// Errors: see outpost/cloud/storage.h; connection failures map to kUnavailable. No pqxx
//   exception escapes.
// Schema: docs/formats/cloud.md ("Storage")
#pragma once

#include <memory>
#include <string>

#include "outpost/cloud/storage.h"
#include "outpost/cloud/storage/open.h"

namespace outpost::cloud::storage {

class PostgresStorage final : public Storage {
 public:
  static Result<std::unique_ptr<PostgresStorage>> Open(const std::string& uri,
                                                       const StorageOptions& options);
  ~PostgresStorage() override;

  const char* backend() const override { return "postgresql"; }
  Status Migrate() override;
  Result<std::optional<IdempotencyRecord>> FindIdempotency(const std::string& gateway_id,
                                                           const std::string& key) override;
  Result<WriteResult> WriteBatch(const std::string& gateway_id,
                                 const std::optional<std::string>& key,
                                 const std::string& body_sha256, const Batch& batch,
                                 std::int64_t now_ms,
                                 const ResponseBuilder& build_response) override;
  Result<std::int64_t> PurgeIdempotency(std::int64_t before_ms) override;
  Result<TokenRecord> CreateToken(const std::string& gateway_id, bool admin,
                                  const std::string& token_sha256, std::int64_t now_ms) override;
  Result<Principal> Authenticate(const std::string& token_sha256) override;
  Result<std::int64_t> RevokeGatewayTokens(const std::string& gateway_id,
                                           std::int64_t now_ms) override;
  Result<std::int64_t> RevokeToken(std::int64_t token_id, std::int64_t now_ms) override;
  Result<std::vector<TokenRecord>> ListTokens() override;
  Result<std::vector<GatewayInfo>> ListGateways(const std::string& gateway_id) override;
  Result<std::vector<DeviceInfo>> ListDevices(const std::string& gateway_id) override;
  Result<std::vector<Point>> QueryPoints(const ReadingsQuery& query) override;
  Result<std::vector<Bucket>> QueryBuckets(const ReadingsQuery& query) override;
  Result<std::vector<StoredAlert>> QueryAlerts(const AlertsQuery& query) override;
  Status Ping() override;

  struct Impl;

 private:
  explicit PostgresStorage(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace outpost::cloud::storage
