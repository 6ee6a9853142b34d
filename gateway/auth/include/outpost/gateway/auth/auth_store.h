// AuthStore: the users, API tokens and audit log in their own SQLite file (auth.sqlite next to
// the gateway database; config auth.path), created 0600. The daemon and the CLI
// (`outpost-gateway user|token ...`) open the same file; WAL and a busy timeout let them share it,
// and the daemon reads users and tokens on every request, so a revoke or a removal takes effect
// at once.
// Format: docs/formats/store.md "auth.sqlite".
// Thread: thread-safe (one connection behind a mutex); every call is a short indexed statement,
// never a password hash (those run on the caller's worker, secrets.h).
// Errors: kInvalidArgument (bad name, role, short password), kNotFound (unknown user or token),
// kAlreadyExists (user exists), kFailedPrecondition (removing the last admin), kUnavailable /
// kResourceExhausted (I/O, full disk).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/gateway/auth/auth.h"

namespace outpost::gateway::auth {

struct User {
  std::string name;
  Role role = Role::kViewer;
  std::string password_hash;
  std::int64_t created_ms = 0;
};

struct Token {
  std::int64_t id = 0;
  std::string name;
  Role role = Role::kViewer;
  std::int64_t created_ms = 0;
  std::int64_t last_used_ms = 0;  // 0 = never
};

struct AuditEntry {
  std::int64_t id = 0;
  std::int64_t at_ms = 0;
  std::string user;
  std::string action;  // "login", "login_failed", "logout", "token_create", "alert_ack", ...
  std::string detail;
};

struct AuthStoreOptions {
  std::string path;
  // The audit log keeps the newest this many entries (older ones are deleted, counted).
  std::int64_t audit_max_rows = 100'000;
};

class AuthStore {
 public:
  static Result<std::unique_ptr<AuthStore>> Open(AuthStoreOptions options);
  ~AuthStore();

  Status AddUser(const std::string& name, Role role, const std::string& password_hash,
                 std::int64_t now_ms);
  Status SetPassword(const std::string& name, const std::string& password_hash);
  Status SetRole(const std::string& name, Role role);
  // kFailedPrecondition when it is the last admin.
  Status RemoveUser(const std::string& name);
  Result<User> FindUser(const std::string& name);
  Result<std::vector<User>> Users();
  Result<bool> HasAdmin();

  // Stores the hash of a new token (secrets.h GenerateToken) and returns its id.
  Result<std::int64_t> AddToken(const std::string& name, Role role, const std::string& token_hash,
                                std::int64_t now_ms);
  // The live token with this hash (kNotFound otherwise).
  Result<Token> FindToken(const std::string& token_hash);
  Result<std::vector<Token>> Tokens();
  Status RevokeToken(std::int64_t id);

  // Appends to the audit log (trimming it to audit_max_rows).
  Status Audit(std::int64_t at_ms, const std::string& user, const std::string& action,
               const std::string& detail);
  // The newest `limit` entries, newest first.
  Result<std::vector<AuditEntry>> AuditLog(std::size_t limit);
  std::uint64_t audit_trimmed() const;

  const std::string& path() const { return options_.path; }

 private:
  struct Impl;
  explicit AuthStore(AuthStoreOptions options, std::unique_ptr<Impl> impl);
  AuthStoreOptions options_;
  std::unique_ptr<Impl> impl_;
};

// First start: when `store` has no admin, creates the user "admin" with a generated password
// written (alone, with a newline) to `password_file`, created or replaced with mode 0600 and
// synced before the user is added. Returns true when it created the admin, false when there was
// one. kAlreadyExists when a user "admin" exists without the admin role.
Result<bool> EnsureAdmin(AuthStore& store, const std::string& password_file, std::int64_t now_ms);

}  // namespace outpost::gateway::auth
