#include <algorithm>
#include <set>

#include "outpost/http/server.h"

namespace outpost::http {
namespace {

bool Matches(const std::string& pattern, const std::string& path, std::size_t& score) {
  if (!pattern.empty() && pattern.back() == '*') {
    std::size_t n = pattern.size() - 1;
    if (path.compare(0, n, pattern, 0, n) != 0) return false;
    score = n;  // longer prefixes win
    return true;
  }
  if (pattern != path) return false;
  score = static_cast<std::size_t>(-1);  // exact beats every prefix
  return true;
}

}  // namespace

void Router::Add(std::string method, std::string pattern, Handler handler) {
  routes_.push_back({std::move(method), std::move(pattern), std::move(handler)});
}

void Router::operator()(Request request, Responder responder) const {
  // The best matching pattern decides; among its routes the method (HEAD falls back to GET).
  std::size_t best = 0;
  bool found = false;
  for (const auto& r : routes_) {
    std::size_t score = 0;
    if (Matches(r.pattern, request.path, score) && (!found || score > best)) {
      best = score;
      found = true;
    }
  }
  if (!found) {
    return responder.Send(Problem(404, "not_found", "no route for " + request.path));
  }
  const Route* get = nullptr;
  std::set<std::string> allowed;
  for (const auto& r : routes_) {
    std::size_t score = 0;
    if (!Matches(r.pattern, request.path, score) || score != best) continue;
    if (r.method == request.method) return r.handler(std::move(request), std::move(responder));
    if (r.method == "GET" && get == nullptr) get = &r;
    allowed.insert(r.method);
  }
  if (request.method == "HEAD" && get != nullptr) {
    return get->handler(std::move(request), std::move(responder));
  }
  std::string allow;
  for (const auto& m : allowed) allow += (allow.empty() ? "" : ", ") + m;
  Response r =
      Problem(405, "method_not_allowed",
              request.method + " is not allowed on " + request.path + " (allowed: " + allow + ")");
  r.headers.emplace_back("Allow", allow);
  responder.Send(std::move(r));
}

}  // namespace outpost::http
