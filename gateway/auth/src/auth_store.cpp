#include "outpost/gateway/auth/auth_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "outpost/gateway/auth/secrets.h"
#include "outpost/sqlite/database.h"

namespace outpost::gateway::auth {

namespace {

constexpr std::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS users (
  name TEXT PRIMARY KEY,
  role TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  role TEXT NOT NULL,
  token_hash TEXT NOT NULL UNIQUE,
  created_ms INTEGER NOT NULL,
  last_used_ms INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at_ms INTEGER NOT NULL,
  user TEXT NOT NULL,
  action TEXT NOT NULL,
  detail TEXT NOT NULL
);
PRAGMA user_version = 1;
)sql";

Role RoleOf(std::string_view s) {
  auto r = ParseRole(s);
  return r.ok() ? *r : Role::kViewer;  // a role this build does not know grants the least
}

}  // namespace

struct AuthStore::Impl {
  std::mutex mu;
  sqlite::Database db;
  std::uint64_t audit_trimmed = 0;
};

AuthStore::AuthStore(AuthStoreOptions options, std::unique_ptr<Impl> impl)
    : options_(std::move(options)), impl_(std::move(impl)) {}
AuthStore::~AuthStore() = default;

Result<std::unique_ptr<AuthStore>> AuthStore::Open(AuthStoreOptions options) {
  // Created 0600 before SQLite sees it (its -wal and -shm files take the same mode); an
  // existing file with a wider mode is narrowed.
  const int fd = ::open(options.path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Unavailable("auth.path " + options.path + ": " + std::strerror(errno));
  }
  const int rc = ::fchmod(fd, 0600);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return Unavailable("auth.path " + options.path + ": chmod: " + std::strerror(err));
  sqlite::OpenOptions oo;
  oo.label = "auth " + options.path;
  oo.busy_timeout_ms = 5000;
  oo.pragmas = {"journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"};
  auto db = sqlite::Database::Open(options.path, oo);
  if (!db.ok()) return db.status();
  auto impl = std::make_unique<Impl>();
  impl->db = std::move(db).value();
  OUTPOST_RETURN_IF_ERROR(impl->db.Exec(kSchema));
  return std::unique_ptr<AuthStore>(new AuthStore(std::move(options), std::move(impl)));
}

Status AuthStore::AddUser(const std::string& name, Role role, const std::string& password_hash,
                          std::int64_t now_ms) {
  OUTPOST_RETURN_IF_ERROR(ValidUserName(name));
  std::lock_guard lock(impl_->mu);
  sqlite::Statement s;
  OUTPOST_RETURN_IF_ERROR(impl_->db.Prepare(
      &s,
      "INSERT INTO users(name, role, password_hash, created_ms) VALUES (?1, ?2, ?3, ?4) "
      "ON CONFLICT(name) DO NOTHING"));
  OUTPOST_RETURN_IF_ERROR(
      s.Bind(1, name).Bind(2, RoleName(role)).Bind(3, password_hash).Bind(4, now_ms).Run());
  if (impl_->db.changes() == 0) {
    return Status(Code::kAlreadyExists, "user \"" + name + "\" exists");
  }
  return Status::Ok();
}

Status AuthStore::SetPassword(const std::string& name, const std::string& password_hash) {
  std::lock_guard lock(impl_->mu);
  sqlite::Statement s;
  OUTPOST_RETURN_IF_ERROR(
      impl_->db.Prepare(&s, "UPDATE users SET password_hash = ?2 WHERE name = ?1"));
  OUTPOST_RETURN_IF_ERROR(s.Bind(1, name).Bind(2, password_hash).Run());
  if (impl_->db.changes() == 0) return NotFound("no user \"" + name + "\"");
  return Status::Ok();
}

Status AuthStore::SetRole(const std::string& name, Role role) {
  std::lock_guard lock(impl_->mu);
  sqlite::Statement s;
  OUTPOST_RETURN_IF_ERROR(impl_->db.Prepare(&s, "UPDATE users SET role = ?2 WHERE name = ?1"));
  OUTPOST_RETURN_IF_ERROR(s.Bind(1, name).Bind(2, RoleName(role)).Run());
  if (impl_->db.changes() == 0) return NotFound("no user \"" + name + "\"");
  return Status::Ok();
}

Status AuthStore::RemoveUser(const std::string& name) {
  std::lock_guard lock(impl_->mu);
  auto tx = sqlite::Transaction::Begin(impl_->db.get(), sqlite::Transaction::Mode::kImmediate,
                                       impl_->db.label());
  if (!tx.ok()) return tx.status();
  sqlite::Statement role;
  OUTPOST_RETURN_IF_ERROR(impl_->db.Prepare(&role, "SELECT role FROM users WHERE name = ?1"));
  role.Bind(1, name);
  Status st;
  if (!role.Step(&st)) {
    OUTPOST_RETURN_IF_ERROR(st);
    return NotFound("no user \"" + name + "\"");
  }
  const bool admin = role.View(0) == "admin";
  role.Reset();
  if (admin) {
    auto admins = impl_->db.QueryInt("SELECT count(*) FROM users WHERE role = 'admin'");
    if (!admins.ok()) return admins.status();
    if (*admins <= 1) {
      return FailedPrecondition("\"" + name +
                                "\" is the last admin; add another admin before removing it");
    }
  }
  sqlite::Statement del;
  OUTPOST_RETURN_IF_ERROR(impl_->db.Prepare(&del, "DELETE FROM users WHERE name = ?1"));
  OUTPOST_RETURN_IF_ERROR(del.Bind(1, name).Run());
  return tx->Commit();
}

Result<User> AuthStore::FindUser(const std::string& name) {
  std::lock_guard lock(impl_->mu);
  sqlite::Statement s;
  OUTPOST_RETURN_IF_ERROR(impl_->db.Prepare(
      &s, "SELECT name, role, password_hash, created_ms FROM users WHERE name = ?1"));
  s.Bind(1, name);
  Status st;
  if (!s.Step(&st)) {
    OUTPOST_RETURN_IF_ERROR(st);
    return NotFound("no user \"" + name.substr(0, 64) + "\"");
  }
  return User{s.Text(0), RoleOf(s.View(1)), s.Text(2), s.Int(3)};
}

Result<std::vector<User>> AuthStore::Users() {
  std::lock_guard lock(impl_->mu);
  sqlite::Statement s;
  OUTPOST_RETURN_IF_ERROR(
      impl_->db.Prepare(&s, "SELECT name, role, created_ms FROM users ORDER BY name"));
  std::vector<User> out;
  Status st;
  while (s.Step(&st)) out.push_back(User{s.Text(0), RoleOf(s.View(1)), "", s.Int(2)});
  OUTPOST_RETURN_IF_ERROR(st);
  return out;
}

Result<bool> AuthStore::HasAdmin() {
  std::lock_guard lock(impl_->mu);
  auto n = impl_->db.QueryInt("SELECT count(*) FROM users WHERE role = 'admin'");
  if (!n.ok()) return n.status();
  return *n > 0;
}

Result<std::int64_t> AuthStore::AddToken(const std::string& name, Role role,
                                         const std::string& token_hash, std::int64_t now_ms) {
  std::lock_guard lock(impl_->mu);
  sqlite::Statement s;
  OUTPOST_RETURN_IF_ERROR(impl_->db.Prepare(
      &s, "INSERT INTO tokens(name, role, token_hash, created_ms) VALUES (?1, ?2, ?3, ?4)"));
  OUTPOST_RETURN_IF_ERROR(
      s.Bind(1, name).Bind(2, RoleName(role)).Bind(3, token_hash).Bind(4, now_ms).Run());
  return static_cast<std::int64_t>(sqlite3_last_insert_rowid(impl_->db.get()));
}

Result<Token> AuthStore::FindToken(const std::string& token_hash) {
  std::lock_guard lock(impl_->mu);
  sqlite::Statement s;
  OUTPOST_RETURN_IF_ERROR(impl_->db.Prepare(
      &s, "SELECT id, name, role, created_ms, last_used_ms FROM tokens WHERE token_hash = ?1"));
  s.Bind(1, token_hash);
  Status st;
  if (!s.Step(&st)) {
    OUTPOST_RETURN_IF_ERROR(st);
    return NotFound("no such token");
  }
  return Token{s.Int(0), s.Text(1), RoleOf(s.View(2)), s.Int(3), s.Int(4)};
}

Result<std::vector<Token>> AuthStore::Tokens() {
  std::lock_guard lock(impl_->mu);
  sqlite::Statement s;
  OUTPOST_RETURN_IF_ERROR(impl_->db.Prepare(
      &s, "SELECT id, name, role, created_ms, last_used_ms FROM tokens ORDER BY id"));
  std::vector<Token> out;
  Status st;
  while (s.Step(&st))
    out.push_back(Token{s.Int(0), s.Text(1), RoleOf(s.View(2)), s.Int(3), s.Int(4)});
  OUTPOST_RETURN_IF_ERROR(st);
  return out;
}

Status AuthStore::RevokeToken(std::int64_t id) {
  std::lock_guard lock(impl_->mu);
  sqlite::Statement s;
  OUTPOST_RETURN_IF_ERROR(impl_->db.Prepare(&s, "DELETE FROM tokens WHERE id = ?1"));
  OUTPOST_RETURN_IF_ERROR(s.Bind(1, id).Run());
  if (impl_->db.changes() == 0) return NotFound("no token with id " + std::to_string(id));
  return Status::Ok();
}

Status AuthStore::Audit(std::int64_t at_ms, const std::string& user, const std::string& action,
                        const std::string& detail) {
  std::lock_guard lock(impl_->mu);
  sqlite::Statement s;
  OUTPOST_RETURN_IF_ERROR(impl_->db.Prepare(
      &s, "INSERT INTO audit(at_ms, user, action, detail) VALUES (?1, ?2, ?3, ?4)"));
  OUTPOST_RETURN_IF_ERROR(s.Bind(1, at_ms).Bind(2, user).Bind(3, action).Bind(4, detail).Run());
  const std::int64_t id = sqlite3_last_insert_rowid(impl_->db.get());
  if (id > options_.audit_max_rows) {
    sqlite::Statement trim;
    OUTPOST_RETURN_IF_ERROR(impl_->db.Prepare(&trim, "DELETE FROM audit WHERE id <= ?1"));
    OUTPOST_RETURN_IF_ERROR(trim.Bind(1, id - options_.audit_max_rows).Run());
    impl_->audit_trimmed += static_cast<std::uint64_t>(impl_->db.changes());
  }
  return Status::Ok();
}

Result<std::vector<AuditEntry>> AuthStore::AuditLog(std::size_t limit) {
  std::lock_guard lock(impl_->mu);
  sqlite::Statement s;
  OUTPOST_RETURN_IF_ERROR(impl_->db.Prepare(
      &s, "SELECT id, at_ms, user, action, detail FROM audit ORDER BY id DESC LIMIT ?1"));
  s.Bind(1, sqlite::ClampLimit(limit));
  std::vector<AuditEntry> out;
  Status st;
  while (s.Step(&st))
    out.push_back(AuditEntry{s.Int(0), s.Int(1), s.Text(2), s.Text(3), s.Text(4)});
  OUTPOST_RETURN_IF_ERROR(st);
  return out;
}

std::uint64_t AuthStore::audit_trimmed() const {
  std::lock_guard lock(impl_->mu);
  return impl_->audit_trimmed;
}

Result<bool> EnsureAdmin(AuthStore& store, const std::string& password_file, std::int64_t now_ms) {
  auto has = store.HasAdmin();
  if (!has.ok()) return has.status();
  if (*has) return false;
  if (store.FindUser("admin").ok()) {
    return Status(Code::kAlreadyExists,
                  "no admin, and the user \"admin\" exists with another role: make a user admin "
                  "with `outpost-gateway user add NAME --role admin`");
  }
  OUTPOST_RETURN_IF_ERROR(InitCrypto());
  const std::string password = GeneratePassword();
  auto hash = HashPassword(password);
  if (!hash.ok()) return hash.status();
  const int fd = ::open(password_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Unavailable(password_file + ": " + std::strerror(errno));
  const std::string line = password + "\n";
  const bool written = ::fchmod(fd, 0600) == 0 &&
                       ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                       ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!written) return Unavailable(password_file + ": " + std::strerror(err));
  OUTPOST_RETURN_IF_ERROR(store.AddUser("admin", Role::kAdmin, *hash, now_ms));
  (void)store.Audit(now_ms, "admin", "user_add",
                    "first start: role admin, password in " + password_file);
  return true;
}

}  // namespace outpost::gateway::auth
