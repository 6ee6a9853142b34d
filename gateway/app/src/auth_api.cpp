#include "auth_api.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>
#include <utility>

#include "outpost/gateway/auth/secrets.h"

namespace outpost::gateway::app::authn {

using nlohmann::json;

namespace {

constexpr std::string_view kLoginPath = "/api/v1/auth/login";
constexpr std::string_view kLogoutPath = "/api/v1/auth/logout";

bool Unsafe(const std::string& method) {
  return method == "POST" || method == "PUT" || method == "PATCH" || method == "DELETE";
}

// Equal strings, in time that depends on their lengths only.
bool SameSecret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

// "1.2.3.4:5678" -> "1.2.3.4", "[::1]:80" -> "[::1]".
std::string Address(const std::string& remote) {
  const std::size_t colon = remote.rfind(':');
  return colon == std::string::npos ? remote : remote.substr(0, colon);
}

http::Response Json(int status, const json& j) {
  http::Response r;
  r.status = status;
  r.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

http::Response Unauthenticated(std::string_view detail) {
  http::Response r = http::Problem(401, "unauthenticated", detail);
  r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"outpost\"");
  return r;
}

std::string SessionCookie(const std::string& id, bool secure) {
  return std::string(kCookieName) + "=" + id + "; HttpOnly; SameSite=Lax; Path=/" +
         (secure ? "; Secure" : "");
}

}  // namespace

std::string User(const http::Request& q) { return q.Header(kUserHeader); }

auth::Role RequiredRole(const http::Request& q) {
  if (!Unsafe(q.method) || q.path == kLogoutPath) return auth::Role::kViewer;
  return auth::Role::kOperator;
}

bool IsPublic(const http::Request& q) {
  const std::string& p = q.path;
  if (p == "/metrics") return false;
  if (p == "/api/v1" || p.rfind("/api/v1/", 0) == 0) {
    return p == kLoginPath || p == "/api/v1/openapi.json";
  }
  return true;  // /healthz and the dashboard's files
}

Authenticator::Authenticator(auth::AuthStore* store, Options options,
                             std::function<void(std::function<void()>)> post,
                             std::function<std::int64_t()> steady_ms,
                             std::function<std::int64_t()> wall_ms)
    : store_(store),
      o_(options),
      post_(std::move(post)),
      steady_ms_(std::move(steady_ms)),
      wall_ms_(std::move(wall_ms)),
      sessions_(o_.sessions, [] { return auth::RandomHex(32); }),
      limiter_(o_.limiter) {
  // The first worker hashes the unknown-user stand-in before it takes a job, so that neither the
  // start nor the first login waits for it.
  for (std::size_t i = 0; i < o_.max_verifications; ++i) {
    workers_.emplace_back([this, i] {
      if (i == 0) (void)auth::DummyHash();
      Work();
    });
  }
}

Authenticator::~Authenticator() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

bool Authenticator::TryVerify(std::function<void()> job) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || in_flight_ >= o_.max_verifications) return false;
    ++in_flight_;
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
  return true;
}

void Authenticator::Work() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;  // queued jobs are dropped: their responders answer 500
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
    std::lock_guard lock(mu_);
    --in_flight_;
  }
}

void Authenticator::Audit(const std::string& user, const std::string& action,
                          const std::string& detail) {
  if (Status s = store_->Audit(wall_ms_(), user, action, detail); !s.ok()) {
    ++audit_errors_;
    spdlog::error("audit log: {} ({} {} {})", s.ToString(), user, action, detail);
  }
}

http::Handler Authenticator::Guard(http::Router routes) {
  auto router = std::make_shared<const http::Router>(std::move(routes));
  return [this, router](http::Request q, http::Responder r) {
    q.headers.erase(kUserHeader);
    q.headers.erase(kRoleHeader);
    if (IsPublic(q)) return (*router)(std::move(q), std::move(r));
    std::string user;
    auth::Role role = auth::Role::kViewer;
    const std::string& authorization = q.Header("authorization");
    if (!authorization.empty()) {
      constexpr std::string_view kBearer = "Bearer ";
      if (authorization.size() <= kBearer.size() ||
          authorization.compare(0, kBearer.size(), kBearer) != 0) {
        ++n_.unauthenticated;
        return r.Send(Unauthenticated("Authorization: expected \"Bearer <token>\""));
      }
      auto token = store_->FindToken(auth::TokenHash(authorization.substr(kBearer.size())));
      if (!token.ok()) {
        ++n_.unauthenticated;
        if (token.status().code() != Code::kNotFound) {
          return r.Send(http::Problem(503, "auth_unavailable", token.status().message()));
        }
        return r.Send(Unauthenticated("the bearer token is unknown or revoked"));
      }
      user = "token:" + (token->name.empty() ? "#" + std::to_string(token->id) : token->name);
      role = token->role;
    } else {
      const std::string id = auth::CookieValue(q.Header("cookie"), kCookieName);
      const auth::Session* s = id.empty() ? nullptr : sessions_.Find(id, steady_ms_());
      if (s == nullptr) {
        ++n_.unauthenticated;
        return r.Send(Unauthenticated(
            id.empty() ? "log in (POST /api/v1/auth/login) or send Authorization: Bearer <token>"
                       : "the session has ended; log in again"));
      }
      // The user's role now (a removed user's sessions end here).
      auto u = store_->FindUser(s->user);
      if (u.ok() && u->password_hash != s->stamp) {
        // The password changed since this login (`user passwd`): every older session ends.
        sessions_.RemoveUser(u->name);
        ++n_.unauthenticated;
        return r.Send(Unauthenticated("the user's password changed; log in again"));
      }
      if (!u.ok()) {
        ++n_.unauthenticated;
        if (u.status().code() != Code::kNotFound) {
          return r.Send(http::Problem(503, "auth_unavailable", u.status().message()));
        }
        sessions_.RemoveUser(s->user);
        return r.Send(Unauthenticated("the session's user no longer exists"));
      }
      if (Unsafe(q.method) && !SameSecret(q.Header("x-csrf-token"), s->csrf)) {
        ++n_.csrf_rejected;
        return r.Send(http::Problem(
            403, "csrf",
            "a cookie-authenticated " + q.method +
                " needs the header X-CSRF-Token with the csrf value of /api/v1/auth/me"));
      }
      user = u->name;
      role = u->role;
    }
    const auth::Role need = RequiredRole(q);
    if (role < need) {
      ++n_.forbidden;
      return r.Send(http::Problem(403, "forbidden",
                                  q.method + " " + q.path + " needs the role " +
                                      auth::RoleName(need) + "; " + user + " is " +
                                      auth::RoleName(role)));
    }
    q.headers[kUserHeader] = user;
    q.headers[kRoleHeader] = auth::RoleName(role);
    (*router)(std::move(q), std::move(r));
  };
}

void Authenticator::AddRoutes(http::Router* router) {
  router->Add("POST", std::string(kLoginPath),
              [this](http::Request q, http::Responder r) { Login(std::move(q), std::move(r)); });
  router->Add("POST", std::string(kLogoutPath), [this](http::Request q, http::Responder r) {
    const std::string id = auth::CookieValue(q.Header("cookie"), kCookieName);
    if (!id.empty()) sessions_.Remove(id);
    Audit(User(q), "logout", id.empty() ? "bearer" : "session");
    http::Response out;
    out.status = 204;
    out.content_type.clear();
    out.headers.emplace_back("Set-Cookie", SessionCookie("", o_.secure_cookie) + "; Max-Age=0");
    r.Send(std::move(out));
  });
  router->Add("GET", "/api/v1/auth/me", [this](http::Request q, http::Responder r) {
    const std::string id = auth::CookieValue(q.Header("cookie"), kCookieName);
    const auth::Session* s = q.Header("authorization").empty() && !id.empty()
                                 ? sessions_.Find(id, steady_ms_())
                                 : nullptr;
    r.Send(Json(200, {{"user", User(q)},
                      {"role", q.Header(kRoleHeader)},
                      {"csrf", s != nullptr ? json(s->csrf) : json(nullptr)}}));
  });
}

void Authenticator::Login(http::Request q, http::Responder r) {
  auto login = auth::ParseLogin(q.body);
  if (!login.ok()) {
    ++n_.logins_bad_body;
    const bool large = login.status().code() == Code::kResourceExhausted;
    return r.Send(http::Problem(large ? 413 : 400, large ? "body_too_large" : "bad_body",
                                login.status().message()));
  }
  std::string name = std::move(login->user), password = std::move(login->password);
  const std::string address = Address(q.remote);
  const std::string user_key = "u:" + name, addr_key = "a:" + address;
  const std::int64_t now = steady_ms_();
  const std::int64_t wait_ms =
      std::max(limiter_.RetryAfterMs(user_key, now), limiter_.RetryAfterMs(addr_key, now));
  if (wait_ms > 0) {
    ++n_.logins_limited;
    http::Response limited = http::Problem(
        429, "too_many_attempts", "too many failed logins for this user or address; retry later");
    limited.headers.emplace_back("Retry-After", std::to_string((wait_ms + 999) / 1000));
    return r.Send(std::move(limited));
  }
  auto found = store_->FindUser(name);
  if (!found.ok() && found.status().code() != Code::kNotFound) {
    return r.Send(http::Problem(503, "auth_unavailable", found.status().message()));
  }
  const bool known = found.ok();
  std::string hash = known ? found->password_hash : auth::DummyHash();
  auto responder = std::make_shared<http::Responder>(std::move(r));
  auto job = [this, known, hash = std::move(hash), password = std::move(password),
              name = std::move(name), user_key, addr_key, address, responder]() mutable {
    const bool ok = auth::VerifyPassword(hash, password) && known;
    post_([this, ok, name, user_key, addr_key, address, responder] {
      if (!ok) {
        ++n_.logins_failed;
        limiter_.Failure(user_key, steady_ms_());
        limiter_.Failure(addr_key, steady_ms_());
        Audit(name, "login_failed", "from " + address);
        return responder->Send(
            http::Problem(401, "bad_credentials", "the user name or the password is wrong"));
      }
      auto user = store_->FindUser(name);  // its role now
      if (!user.ok()) {
        return responder->Send(
            http::Problem(401, "bad_credentials", "the user name or the password is wrong"));
      }
      ++n_.logins_ok;
      limiter_.Success(user_key);
      const auth::Session& s = sessions_.Create(name, user->password_hash, steady_ms_());
      Audit(name, "login", "from " + address);
      http::Response out =
          Json(200, {{"user", name}, {"role", auth::RoleName(user->role)}, {"csrf", s.csrf}});
      out.headers.emplace_back("Set-Cookie", SessionCookie(s.id, o_.secure_cookie));
      responder->Send(std::move(out));
    });
  };
  if (!TryVerify(std::move(job))) {
    ++n_.logins_busy;
    http::Response busy = http::Problem(503, "busy", "too many logins in progress; retry shortly");
    busy.headers.emplace_back("Retry-After", "1");
    responder->Send(std::move(busy));
  }
}

std::string Authenticator::Prometheus(std::string_view prefix) const {
  std::string out;
  auto line = [&](const char* name, std::uint64_t v) {
    out += std::string(prefix) + name + " " + std::to_string(v) + "\n";
  };
  line("logins_ok_total", n_.logins_ok);
  line("logins_failed_total", n_.logins_failed);
  line("logins_limited_total", n_.logins_limited);
  line("logins_busy_total", n_.logins_busy);
  line("logins_bad_body_total", n_.logins_bad_body);
  line("unauthenticated_total", n_.unauthenticated);
  line("forbidden_total", n_.forbidden);
  line("csrf_rejected_total", n_.csrf_rejected);
  line("audit_errors_total", audit_errors_.load());
  line("audit_trimmed_total", store_->audit_trimmed());
  line("sessions", sessions_.size());
  line("sessions_evicted_total", sessions_.evicted());
  line("sessions_expired_total", sessions_.expired());
  line("limiter_keys", limiter_.size());
  line("limiter_evicted_total", limiter_.evicted());
  return out;
}

}  // namespace outpost::gateway::app::authn
