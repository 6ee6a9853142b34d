// FakeStorage: an in-memory Storage for the api unit tests that counts the calls the tests are
// about (Authenticate, Ping), can fail Ping and can hold Authenticate until the test opens a
// gate. Batches and queries are not modelled (kInternal / empty).
// Thread: safe from many threads (one mutex); the gate is waited on outside it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "outpost/cloud/storage.h"

namespace outpost::cloud::api {

class FakeStorage final : public Storage {
 public:
  const char* backend() const override { return "fake"; }
  Status Migrate() override { return Status::Ok(); }
  Result<std::optional<IdempotencyRecord>> FindIdempotency(const std::string&,
                                                           const std::string&) override {
    return std::optional<IdempotencyRecord>();
  }
  Result<WriteResult> WriteBatch(const std::string&, const std::optional<std::string>&,
                                 const std::string&, const Batch&, std::int64_t,
                                 const ResponseBuilder&) override {
    return Internal("fake storage: no batches");
  }
  Result<std::int64_t> PurgeIdempotency(std::int64_t) override { return 0; }
  Result<TokenRecord> CreateToken(const std::string& gateway_id, bool admin,
                                  const std::string& token_sha256, std::int64_t now_ms) override {
    std::lock_guard<std::mutex> lock(mu_);
    TokenRecord t;
    t.id = static_cast<std::int64_t>(tokens_.size()) + 1;
    t.gateway_id = gateway_id;
    t.admin = admin;
    t.created_ms = now_ms;
    tokens_[token_sha256] = t;
    return t;
  }
  Result<Principal> Authenticate(const std::string& token_sha256) override {
    ++authenticate_calls;
    {
      std::unique_lock<std::mutex> lock(mu_);
      ++held_;
      gate_cv_.notify_all();
      gate_cv_.wait(lock, [&] { return gate_open_; });
      --held_;
    }
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tokens_.find(token_sha256);
    if (it == tokens_.end() || it->second.revoked_ms) return NotFound("no such token");
    Principal p;
    p.token_id = it->second.id;
    p.gateway_id = it->second.gateway_id;
    p.admin = it->second.admin;
    return p;
  }
  Result<std::int64_t> RevokeGatewayTokens(const std::string& gateway_id,
                                           std::int64_t now_ms) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::int64_t n = 0;
    for (auto& [hash, t] : tokens_) {
      if (t.gateway_id == gateway_id && !t.revoked_ms) {
        t.revoked_ms = now_ms;
        ++n;
      }
    }
    return n;
  }
  Result<std::int64_t> RevokeToken(std::int64_t, std::int64_t) override { return 0; }
  Result<std::vector<TokenRecord>> ListTokens() override { return std::vector<TokenRecord>(); }
  Result<std::vector<GatewayInfo>> ListGateways(const std::string&) override {
    return std::vector<GatewayInfo>();
  }
  Result<std::vector<DeviceInfo>> ListDevices(const std::string&) override {
    return std::vector<DeviceInfo>();
  }
  Result<std::vector<Point>> QueryPoints(const ReadingsQuery&) override {
    return std::vector<Point>();
  }
  Result<std::vector<Bucket>> QueryBuckets(const ReadingsQuery&) override {
    return std::vector<Bucket>();
  }
  Result<std::vector<StoredAlert>> QueryAlerts(const AlertsQuery&) override {
    return std::vector<StoredAlert>();
  }
  Status Ping() override {
    ++ping_calls;
    std::lock_guard<std::mutex> lock(mu_);
    return ping_status_;
  }

  void SetPingStatus(Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    ping_status_ = std::move(s);
  }
  // Authenticate waits while the gate is closed (it starts open).
  void CloseGate() {
    std::lock_guard<std::mutex> lock(mu_);
    gate_open_ = false;
  }
  void OpenGate() {
    std::lock_guard<std::mutex> lock(mu_);
    gate_open_ = true;
    gate_cv_.notify_all();
  }
  int held() {
    std::lock_guard<std::mutex> lock(mu_);
    return held_;
  }

  std::atomic<int> authenticate_calls{0};
  std::atomic<int> ping_calls{0};

 private:
  std::mutex mu_;
  std::condition_variable gate_cv_;
  bool gate_open_ = true;
  int held_ = 0;
  std::map<std::string, TokenRecord> tokens_;
  Status ping_status_ = Status::Ok();
};

}  // namespace outpost::cloud::api
