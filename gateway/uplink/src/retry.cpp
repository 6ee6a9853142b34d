#include "outpost/gateway/uplink/retry.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <string>

namespace outpost::gateway::uplink {

Outcome Classify(int http_status) {
  if (http_status >= 200 && http_status < 300) return Outcome::kDelivered;
  // Only the cloud's own verdict on this body is permanent. 401/403 say nothing about the batch
  // (a missing, revoked or wrong token), and a 404/405/415 or other 4xx comes from a proxy or a
  // wrong endpoint and would refuse every batch alike: dropping the backlog batch by batch
  // while someone fixes it would lose everything, so they wait with backoff like an outage.
  // 409: the key was used for another body (ours never are).
  if (http_status == 400 || http_status == 409 || http_status == 422) return Outcome::kPermanent;
  if (http_status == 413) return Outcome::kTooLarge;
  return Outcome::kRetry;
}

std::optional<std::int64_t> ParseRetryAfterMs(std::string_view value, std::int64_t now_wall_ms) {
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (value.size() > 9) return std::int64_t{999'999'999} * 1000;  // absurd; the cap applies
    return std::stoll(std::string(value)) * 1000;
  }
  // IMF-fixdate, the only HTTP-date form senders may generate (RFC 9110 5.6.7).
  std::tm tm{};
  std::string s(value);
  const char* end = strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  const std::int64_t at_ms = static_cast<std::int64_t>(timegm(&tm)) * 1000;
  return std::max<std::int64_t>(0, at_ms - now_wall_ms);
}

std::int64_t RetryDelayMs(const RetryPolicy& policy, std::uint32_t attempt,
                          std::optional<std::int64_t> retry_after_ms, double unit_random) {
  std::int64_t delay = FullJitterDelayMs(policy.backoff, attempt, unit_random);
  if (retry_after_ms) {
    delay = std::max(delay, std::min(*retry_after_ms, policy.max_retry_after_ms));
  }
  return delay;
}

}  // namespace outpost::gateway::uplink
