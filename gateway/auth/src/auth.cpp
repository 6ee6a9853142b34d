#include "outpost/gateway/auth/auth.h"

#include <algorithm>
#include <utility>

namespace outpost::gateway::auth {

const char* RoleName(Role r) {
  switch (r) {
    case Role::kViewer:
      return "viewer";
    case Role::kOperator:
      return "operator";
    case Role::kAdmin:
      return "admin";
  }
  return "viewer";
}

Result<Role> ParseRole(std::string_view name) {
  if (name == "viewer") return Role::kViewer;
  if (name == "operator") return Role::kOperator;
  if (name == "admin") return Role::kAdmin;
  return InvalidArgument("role: expected viewer, operator or admin, got \"" +
                         std::string(name.substr(0, 32)) + "\"");
}

Status ValidUserName(std::string_view name) {
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  const bool ok = !name.empty() && name.size() <= 64 && alnum(name.front()) &&
                  std::all_of(name.begin(), name.end(), [&](char c) {
                    return alnum(c) || c == '.' || c == '_' || c == '@' || c == '-';
                  });
  if (ok) return Status::Ok();
  return InvalidArgument(
      "user: expected 1..64 of letters, digits and . _ @ - (starting with a letter or digit)");
}

std::int64_t LoginLimiter::RetryAfterMs(const std::string& key, std::int64_t now_ms) const {
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.failures < o_.max_failures) return 0;
  const std::int64_t until = it->second.last_ms + o_.lockout_ms;
  return until > now_ms ? until - now_ms : 0;
}

void LoginLimiter::Failure(const std::string& key, std::int64_t now_ms) {
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    if (entries_.size() >= o_.max_keys && !lru_.empty()) {
      entries_.erase(lru_.front());
      lru_.pop_front();
      ++evicted_;
    }
    lru_.push_back(key);
    it = entries_.emplace(key, Entry{0, now_ms, now_ms, std::prev(lru_.end())}).first;
  } else {
    lru_.splice(lru_.end(), lru_, it->second.lru);
  }
  Entry& e = it->second;
  // A window that ended (and a lockout that passed) starts the count again.
  if (now_ms - e.first_ms > o_.window_ms &&
      (e.failures < o_.max_failures || now_ms - e.last_ms >= o_.lockout_ms)) {
    e.failures = 0;
    e.first_ms = now_ms;
  }
  ++e.failures;
  e.last_ms = now_ms;
  if (e.failures == o_.max_failures) ++blocked_;
}

void LoginLimiter::Success(const std::string& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  lru_.erase(it->second.lru);
  entries_.erase(it);
}

const Session& SessionTable::Create(const std::string& user, std::string stamp,
                                    std::int64_t now_ms) {
  if (sessions_.size() >= o_.max_sessions && !lru_.empty()) {
    sessions_.erase(lru_.front());
    lru_.pop_front();
    ++evicted_;
  }
  Session s{random_(), random_(), user, std::move(stamp), now_ms, now_ms};
  lru_.push_back(s.id);
  auto [it, inserted] = sessions_.emplace(s.id, Entry{s, std::prev(lru_.end())});
  OUTPOST_CHECK(inserted);  // random ids do not collide
  return it->second.s;
}

const Session* SessionTable::Find(const std::string& id, std::int64_t now_ms) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return nullptr;
  Session& s = it->second.s;
  if (now_ms - s.last_used_ms >= o_.idle_ms || now_ms - s.created_ms >= o_.absolute_ms) {
    lru_.erase(it->second.lru);
    sessions_.erase(it);
    ++expired_;
    return nullptr;
  }
  s.last_used_ms = now_ms;
  lru_.splice(lru_.end(), lru_, it->second.lru);
  return &s;
}

void SessionTable::Remove(const std::string& id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  lru_.erase(it->second.lru);
  sessions_.erase(it);
}

std::size_t SessionTable::RemoveUser(const std::string& user) {
  std::size_t n = 0;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->second.s.user == user) {
      lru_.erase(it->second.lru);
      it = sessions_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

}  // namespace outpost::gateway::auth
