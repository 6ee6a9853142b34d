// SqliteStorage: the Storage port on one SQLite file (WAL). The default backend: a user runs
// outpost-cloud with no setup.
// Ownership: owns its connections. Thread: every method is thread-safe; one writer connection
//   behind a mutex (one transaction per batch, prepared statements), reads on a small pool of
//   reader connections (WAL lets them run beside the writer).
// Errors: see outpost/cloud/storage.h; SQLITE_BUSY/LOCKED map to kUnavailable.
// Schema: docs/formats/cloud.md ("Storage")
#pragma once

#include <memory>
#include <string>

#include "outpost/cloud/storage.h"
#include "outpost/cloud/storage/open.h"

namespace outpost::cloud::storage {

class SqliteStorage final : public Storage {
 public:
  static Result<std::unique_ptr<SqliteStorage>> Open(const std::string& path,
                                                     const StorageOptions& options);
  ~SqliteStorage() override;

  const char* backend() const override { return "sqlite"; }
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
  explicit SqliteStorage(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace outpost::cloud::storage
