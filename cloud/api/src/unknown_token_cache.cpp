#include "outpost/cloud/api/unknown_token_cache.h"

namespace outpost::cloud::api {

bool UnknownTokenCache::Contains(const std::string& hash, std::int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  DropExpired(now_ms);
  auto it = expires_.find(hash);
  if (it == expires_.end() || it->second <= now_ms) return false;
  stats_.hits++;
  return true;
}

void UnknownTokenCache::Insert(const std::string& hash, std::int64_t now_ms) {
  if (ttl_ms_ <= 0 || max_entries_ == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  DropExpired(now_ms);
  // Already there (two requests with the same token missed at once): keep the first entry, so
  // every hash has exactly one pair in order_.
  if (expires_.count(hash) != 0) return;
  while (expires_.size() >= max_entries_ && !order_.empty()) {
    expires_.erase(order_.front().second);
    order_.pop_front();
    stats_.evicted_full++;
  }
  const std::int64_t expiry = now_ms + ttl_ms_;
  expires_.emplace(hash, expiry);
  order_.emplace_back(expiry, hash);
  stats_.inserted++;
  stats_.entries = static_cast<std::int64_t>(expires_.size());
}

void UnknownTokenCache::DropExpired(std::int64_t now_ms) {
  while (!order_.empty() && order_.front().first <= now_ms) {
    expires_.erase(order_.front().second);
    order_.pop_front();
  }
  stats_.entries = static_cast<std::int64_t>(expires_.size());
}

std::string UnknownTokenCache::RenderPrometheus(std::string_view prefix) const {
  const std::string p(prefix);
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, auto value) {
    out += "# HELP " + p + name + " " + help + "\n# TYPE " + p + name + " " + type + "\n" + p +
           name + " " + std::to_string(value) + "\n";
  };
  metric("hits_total", "counter",
         "Requests with a token the database did not know, refused from the cache.",
         stats_.hits.load());
  metric("inserted_total", "counter", "Unknown token hashes remembered.", stats_.inserted.load());
  metric("evicted_full_total", "counter", "Unknown token hashes dropped early to make room.",
         stats_.evicted_full.load());
  metric("entries", "gauge", "Unknown token hashes remembered now.", stats_.entries.load());
  return out;
}

}  // namespace outpost::cloud::api
