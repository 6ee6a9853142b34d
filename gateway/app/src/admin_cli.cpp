#include "outpost/gateway/app/admin_cli.h"

#include <chrono>
#include <ctime>
#include <istream>
#include <memory>
#include <ostream>

#include "outpost/gateway/auth/auth_store.h"
#include "outpost/gateway/auth/secrets.h"

namespace outpost::gateway::app::cli {

namespace {

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::unique_ptr<auth::AuthStore> Open(const config::Config& config, std::ostream& err) {
  if (Status s = auth::InitCrypto(); !s.ok()) {
    err << "outpost-gateway: " << s.message() << "\n";
    return nullptr;
  }
  auth::AuthStoreOptions o;
  o.path = config::AuthPath(config);
  o.audit_max_rows = config.auth.audit_max_rows;
  auto store = auth::AuthStore::Open(o);
  if (!store.ok()) {
    err << "outpost-gateway: " << store.status().message() << "\n";
    return nullptr;
  }
  return std::move(store).value();
}

int Fail(std::ostream& err, const Status& s) {
  err << "outpost-gateway: " << s.message() << "\n";
  return 1;
}

// The new password and whether it was generated (then printed).
Result<std::string> Password(bool from_stdin, std::istream& in) {
  if (!from_stdin) return auth::GeneratePassword();
  std::string line;
  if (!std::getline(in, line)) return InvalidArgument("--password-stdin: no line on stdin");
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.size() < auth::kMinPasswordBytes || line.size() > auth::kMaxPasswordBytes) {
    return InvalidArgument("password: expected " + std::to_string(auth::kMinPasswordBytes) + ".." +
                           std::to_string(auth::kMaxPasswordBytes) + " bytes, got " +
                           std::to_string(line.size()));
  }
  return line;
}

std::string Time(std::int64_t ms) {
  if (ms == 0) return "-";
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int SetPassword(auth::AuthStore& store, const std::string& name, bool password_stdin,
                std::istream& in, std::ostream& out, std::ostream& err, bool add, auth::Role role) {
  auto password = Password(password_stdin, in);
  if (!password.ok()) return Fail(err, password.status());
  auto hash = auth::HashPassword(*password);
  if (!hash.ok()) return Fail(err, hash.status());
  Status s = add ? store.AddUser(name, role, *hash, NowMs()) : store.SetPassword(name, *hash);
  if (!s.ok()) return Fail(err, s);
  (void)store.Audit(NowMs(), "cli", add ? "user_add" : "user_passwd",
                    add ? name + " role " + auth::RoleName(role) : name);
  if (add) {
    out << "added user " << name << " (" << auth::RoleName(role) << ")\n";
  } else {
    out << "changed the password of " << name << " (their sessions end)\n";
  }
  if (!password_stdin) out << "password: " << *password << "\n";
  return 0;
}

}  // namespace

int UserAdd(const config::Config& config, const std::string& name, const std::string& role,
            bool password_stdin, std::istream& in, std::ostream& out, std::ostream& err) {
  auto r = auth::ParseRole(role);
  if (!r.ok()) return Fail(err, r.status());
  if (Status s = auth::ValidUserName(name); !s.ok()) return Fail(err, s);
  auto store = Open(config, err);
  if (!store) return 1;
  return SetPassword(*store, name, password_stdin, in, out, err, /*add=*/true, *r);
}

int UserPasswd(const config::Config& config, const std::string& name, bool password_stdin,
               std::istream& in, std::ostream& out, std::ostream& err) {
  auto store = Open(config, err);
  if (!store) return 1;
  if (auto u = store->FindUser(name); !u.ok()) return Fail(err, u.status());
  return SetPassword(*store, name, password_stdin, in, out, err, /*add=*/false,
                     auth::Role::kViewer);
}

int UserRemove(const config::Config& config, const std::string& name, std::ostream& out,
               std::ostream& err) {
  auto store = Open(config, err);
  if (!store) return 1;
  if (Status s = store->RemoveUser(name); !s.ok()) return Fail(err, s);
  (void)store->Audit(NowMs(), "cli", "user_remove", name);
  out << "removed user " << name << "\n";
  return 0;
}

int UserList(const config::Config& config, std::ostream& out, std::ostream& err) {
  auto store = Open(config, err);
  if (!store) return 1;
  auto users = store->Users();
  if (!users.ok()) return Fail(err, users.status());
  out << "NAME\tROLE\tCREATED\n";
  for (const auth::User& u : *users) {
    out << u.name << "\t" << auth::RoleName(u.role) << "\t" << Time(u.created_ms) << "\n";
  }
  return 0;
}

int TokenCreate(const config::Config& config, const std::string& role, const std::string& name,
                std::ostream& out, std::ostream& err) {
  auto r = auth::ParseRole(role);
  if (!r.ok()) return Fail(err, r.status());
  if (name.size() > 64) return Fail(err, InvalidArgument("--name: at most 64 bytes"));
  auto store = Open(config, err);
  if (!store) return 1;
  const std::string token = auth::GenerateToken();
  auto id = store->AddToken(name, *r, auth::TokenHash(token), NowMs());
  if (!id.ok()) return Fail(err, id.status());
  (void)store->Audit(NowMs(), "cli", "token_create",
                     "id " + std::to_string(*id) + " " + name + " role " + auth::RoleName(*r));
  // The token alone on stdout (scripts capture it); the rest on stderr.
  err << "token " << *id << " (" << auth::RoleName(*r)
      << "): shown once, only its hash is kept; send it as Authorization: Bearer <token>\n";
  out << token << "\n";
  return 0;
}

int TokenList(const config::Config& config, std::ostream& out, std::ostream& err) {
  auto store = Open(config, err);
  if (!store) return 1;
  auto tokens = store->Tokens();
  if (!tokens.ok()) return Fail(err, tokens.status());
  out << "ID\tROLE\tCREATED\tNAME\n";
  for (const auth::Token& t : *tokens) {
    out << t.id << "\t" << auth::RoleName(t.role) << "\t" << Time(t.created_ms) << "\t" << t.name
        << "\n";
  }
  return 0;
}

int TokenRevoke(const config::Config& config, std::int64_t id, std::ostream& out,
                std::ostream& err) {
  auto store = Open(config, err);
  if (!store) return 1;
  if (Status s = store->RevokeToken(id); !s.ok()) return Fail(err, s);
  (void)store->Audit(NowMs(), "cli", "token_revoke", "id " + std::to_string(id));
  out << "revoked token " << id << "\n";
  return 0;
}

}  // namespace outpost::gateway::app::cli
