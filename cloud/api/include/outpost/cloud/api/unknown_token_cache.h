// UnknownTokenCache: the SHA-256 hashes of bearer tokens the database did not know, for a short
// time, so a flood of requests with one forged (or revoked) token costs one database lookup, not
// one per request. Only negative answers are cached: a live token is looked up every time, so a
// revocation takes effect on the next request. A new token cannot be hit by an entry (its hash
// was never sent before it existed), so nothing needs invalidating.
// Bounded: at most max_entries hashes; when full, the oldest entry makes room (counted).
// Time is an input (now_ms from a steady clock). Thread: safe from many threads (one mutex).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace outpost::cloud::api {

struct UnknownTokenCacheStats {
  std::atomic<std::uint64_t> hits{0};          // requests refused without a database lookup
  std::atomic<std::uint64_t> inserted{0};      // unknown hashes remembered
  std::atomic<std::uint64_t> evicted_full{0};  // dropped before their time to make room
  std::atomic<std::int64_t> entries{0};        // gauge
};

class UnknownTokenCache {
 public:
  UnknownTokenCache(std::int64_t ttl_ms, std::size_t max_entries)
      : ttl_ms_(ttl_ms), max_entries_(max_entries) {}

  // True (counted as a hit) when `hash` was remembered less than ttl_ms before `now_ms`.
  bool Contains(const std::string& hash, std::int64_t now_ms);
  // Remembers `hash` as unknown until now_ms + ttl_ms. No-op when ttl_ms or max_entries is 0.
  void Insert(const std::string& hash, std::int64_t now_ms);

  const UnknownTokenCacheStats& stats() const { return stats_; }
  // Prometheus text: <prefix>hits_total, inserted_total, evicted_full_total, entries.
  std::string RenderPrometheus(std::string_view prefix) const;

 private:
  void DropExpired(std::int64_t now_ms);  // mu_ held

  const std::int64_t ttl_ms_;
  const std::size_t max_entries_;
  UnknownTokenCacheStats stats_;
  std::mutex mu_;
  std::unordered_map<std::string, std::int64_t> expires_;  // guarded by mu_: hash -> expiry
  // guarded by mu_: (expiry, hash) of every entry in insertion order, which is expiry order
  // (one ttl for all): the front is the next to expire and the first to make room.
  std::deque<std::pair<std::int64_t, std::string>> order_;
};

}  // namespace outpost::cloud::api
