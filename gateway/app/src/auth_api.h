// Logins, sessions, API tokens and roles in front of the gateway's HTTP API (docs/api.md
// "Authentication"): Authenticator::Guard wraps the router, so every route sees only requests
// it may answer, and the /api/v1/auth routes log in and out.
//
//   public:        /healthz, POST /api/v1/auth/login, /api/v1/openapi.json, and every path
//                  outside /api/v1/ and /metrics (the dashboard's static files)
//   401 unauthenticated  no valid `Authorization: Bearer <token>` and no live session cookie
//   403 csrf       a cookie-authenticated POST/PUT/PATCH/DELETE without the session's
//                  X-CSRF-Token (bearer requests need none: a browser never sends them alone)
//   403 forbidden  writes need operator (logout: viewer), reads viewer
// A request that passes carries who it acts for in the headers kUserHeader and kRoleHeader
// (set by the guard; the same names sent by a client are removed first): User() reads it.
//
// Password checks (Argon2id, slow on purpose) run on `max_verifications` worker threads, never
// on the loop; a login beyond that many in flight is answered 503 busy. Failed logins are
// limited per user name and per source address (auth::LoginLimiter): 429 too_many_attempts
// with Retry-After. Unknown users cost a verification too (auth::DummyHash) and get the same
// 401 bad_credentials as a wrong password.
// Ownership: borrows `store`, which must outlive it. Thread: the guard, the routes and the
//   session table and limiter run on the loop (`post` runs a closure there); Audit() from any
//   thread. The destructor joins the workers (call it after the server stopped).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "outpost/gateway/auth/auth.h"
#include "outpost/gateway/auth/auth_store.h"
#include "outpost/http/server.h"

namespace outpost::gateway::app::authn {

inline constexpr char kUserHeader[] = "x-outpost-user";
inline constexpr char kRoleHeader[] = "x-outpost-role";
inline constexpr char kCookieName[] = "outpost_session";

struct Options {
  auth::SessionOptions sessions;
  auth::LimiterOptions limiter;
  std::size_t max_verifications = 2;
  bool secure_cookie = false;  // served over TLS
};

struct Counters {
  std::uint64_t logins_ok = 0, logins_failed = 0, logins_limited = 0, logins_busy = 0,
                logins_bad_body = 0, unauthenticated = 0, forbidden = 0, csrf_rejected = 0;
};

// The user a guarded request acts for ("" when it did not pass the guard).
std::string User(const http::Request& q);
// The role a route needs: operator for POST/PUT/PATCH/DELETE (viewer for logout), else viewer.
auth::Role RequiredRole(const http::Request& q);
// Whether the path is answered without credentials.
bool IsPublic(const http::Request& q);

class Authenticator {
 public:
  Authenticator(auth::AuthStore* store, Options options,
                std::function<void(std::function<void()>)> post,
                std::function<std::int64_t()> steady_ms, std::function<std::int64_t()> wall_ms);
  ~Authenticator();
  Authenticator(const Authenticator&) = delete;
  Authenticator& operator=(const Authenticator&) = delete;

  // The router behind the checks. The Authenticator must outlive the handler's use.
  http::Handler Guard(http::Router routes);
  // POST /api/v1/auth/login, POST /api/v1/auth/logout, GET /api/v1/auth/me.
  void AddRoutes(http::Router* router);
  // Appends to the audit log (errors are logged and counted, never fatal). Any thread.
  void Audit(const std::string& user, const std::string& action, const std::string& detail);

  const Counters& counters() const { return n_; }         // on the loop
  std::string Prometheus(std::string_view prefix) const;  // on the loop

 private:
  void Login(http::Request q, http::Responder r);
  // Queues a verification; false when max_verifications are in flight.
  bool TryVerify(std::function<void()> job);
  void Work();

  auth::AuthStore* store_;
  Options o_;
  std::function<void(std::function<void()>)> post_;
  std::function<std::int64_t()> steady_ms_, wall_ms_;
  auth::SessionTable sessions_;
  auth::LoginLimiter limiter_;
  Counters n_;
  std::atomic<std::uint64_t> audit_errors_{0};

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::size_t in_flight_ = 0;  // queued or running; under mu_
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace outpost::gateway::app::authn
