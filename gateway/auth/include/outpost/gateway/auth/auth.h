// The gateway's users, API tokens, sessions, failed-login limiter and audit log (docs/api.md
// "Authentication"). Pure parts (roles, LoginLimiter, SessionTable) take time and randomness as
// inputs; secrets.h holds the libsodium parts (Argon2id, random bytes) and auth_store.h the
// SQLite file (auth.sqlite).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "outpost/base/status.h"

namespace outpost::gateway::auth {

// Ordered: a role can do everything the ones below it can.
enum class Role : std::uint8_t { kViewer = 0, kOperator = 1, kAdmin = 2 };

const char* RoleName(Role r);  // "viewer", "operator", "admin"
// kInvalidArgument "role: expected viewer, operator or admin, got \"x\"".
Result<Role> ParseRole(std::string_view name);

// A user name: 1..64 of [A-Za-z0-9._@-], starting with a letter or digit.
Status ValidUserName(std::string_view name);

// The value of cookie `name` in a Cookie header ("" when absent). Pure; fuzzed
// (fuzz/login_fuzzer.cpp).
std::string CookieValue(std::string_view header, std::string_view name);

// A login body is {"user","password"}: anything longer is refused before it is parsed.
inline constexpr std::size_t kMaxLoginBodyBytes = 4096;
struct LoginRequest {
  std::string user;
  std::string password;
};
// The body of POST /api/v1/auth/login: a JSON object with a user of 1..64 bytes and a password
// of at most 256 (secrets.h kMaxPasswordBytes) bytes. kResourceExhausted over
// kMaxLoginBodyBytes (413), else kInvalidArgument saying what is wrong (400). Pure; fuzzed.
Result<LoginRequest> ParseLogin(std::string_view body);

// Failed logins, per key (the limiter is used once per user name and once per source address).
// A key with `max_failures` failures within `window_ms` is blocked for `lockout_ms` after the last
// of them. Pure: time is an input. Bounded: at most `max_keys` keys are tracked; a new key
// evicts the least recently failed one (counted in evicted()).
struct LimiterOptions {
  int max_failures = 5;
  std::int64_t window_ms = 300'000;
  std::int64_t lockout_ms = 300'000;
  std::size_t max_keys = 10'000;
};

class LoginLimiter {
 public:
  explicit LoginLimiter(LimiterOptions options) : o_(options) {}
  // 0 when `key` may try now, else the milliseconds until it may.
  std::int64_t RetryAfterMs(const std::string& key, std::int64_t now_ms) const;
  void Failure(const std::string& key, std::int64_t now_ms);
  void Success(const std::string& key);  // forgets the key's failures
  std::size_t size() const { return entries_.size(); }
  std::uint64_t evicted() const { return evicted_; }
  std::uint64_t blocked_total() const { return blocked_; }

 private:
  struct Entry {
    int failures = 0;
    std::int64_t first_ms = 0;  // of the current window
    std::int64_t last_ms = 0;
    std::list<std::string>::iterator lru;
  };
  LimiterOptions o_;
  std::unordered_map<std::string, Entry> entries_;
  std::list<std::string> lru_;  // front = least recently failed
  std::uint64_t evicted_ = 0;
  std::uint64_t blocked_ = 0;
};

// Logged-in browser sessions, in memory (a restart logs everyone out). Each has a random id (the
// cookie), a random CSRF token, an idle expiry and an absolute one. Bounded: at `max_sessions`
// a new login evicts the least recently used session (counted). Pure: time and randomness are
// inputs (`random_token` returns a fresh unguessable token each call).
struct SessionOptions {
  std::int64_t idle_ms = 8 * 3'600'000LL;
  std::int64_t absolute_ms = 7 * 86'400'000LL;
  std::size_t max_sessions = 1000;
};

struct Session {
  std::string id;
  std::string csrf;
  std::string user;
  // What the user's credentials were at login (their password hash): a session whose user's
  // password changed since is ended by the caller.
  std::string stamp;
  std::int64_t created_ms = 0;
  std::int64_t last_used_ms = 0;
};

class SessionTable {
 public:
  SessionTable(SessionOptions options, std::function<std::string()> random_token)
      : o_(options), random_(std::move(random_token)) {}
  const Session& Create(const std::string& user, std::string stamp, std::int64_t now_ms);
  // The live session of `id` (touched: its idle expiry restarts), or nullptr (unknown or
  // expired; an expired one is removed).
  const Session* Find(const std::string& id, std::int64_t now_ms);
  void Remove(const std::string& id);
  // Removes every session of `user` (removed user, changed password). Returns how many.
  std::size_t RemoveUser(const std::string& user);
  std::size_t size() const { return sessions_.size(); }
  std::uint64_t evicted() const { return evicted_; }
  std::uint64_t expired() const { return expired_; }

 private:
  struct Entry {
    Session s;
    std::list<std::string>::iterator lru;
  };
  SessionOptions o_;
  std::function<std::string()> random_;
  std::unordered_map<std::string, Entry> sessions_;
  std::list<std::string> lru_;  // front = least recently used
  std::uint64_t evicted_ = 0;
  std::uint64_t expired_ = 0;
};

}  // namespace outpost::gateway::auth
