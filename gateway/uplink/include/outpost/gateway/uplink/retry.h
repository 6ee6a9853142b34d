// Retry policy of the uplink, as pure functions of (status, attempt, Retry-After, jitter): no
// clock, no random source of its own, tested without sleeping.
// Classification (the gateway <-> cloud contract, docs/formats/cloud.md): 2xx delivered (the
// answer may still list single items the cloud rejected); 400, 409 and 422 permanent for that batch
// (the cloud read it and refused it); 413 too large (the uplink splits the batch); everything
// else retried with backoff: 408, 429, 5xx and no response, and also 401/403 (credentials, not
// the batch) and any other 4xx (404, 405, 415...), which a misrouted or limited reverse proxy
// produces about every batch alike: dropping the backlog batch by batch would lose it all, so
// the uplink waits and raises an alert instead (ADR 0002, ADR 0004).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "outpost/base/backoff.h"

namespace outpost::gateway::uplink {

enum class Outcome : std::uint8_t { kDelivered, kRetry, kPermanent, kTooLarge };

// http_status 0 = no response (connect failure, timeout, dropped connection).
Outcome Classify(int http_status);

// Parses a Retry-After value: delay-seconds ("120") or an HTTP-date
// ("Fri, 27 Nov 2026 06:00:00 GMT", relative to now_wall_ms). nullopt when absent or malformed;
// a date in the past is 0.
std::optional<std::int64_t> ParseRetryAfterMs(std::string_view value, std::int64_t now_wall_ms);

struct RetryPolicy {
  BackoffPolicy backoff{500, 60'000};
  std::int64_t max_retry_after_ms = 3'600'000;  // a longer Retry-After is capped to this
};

// The wait before retry number `attempt` (0 = first retry): full-jitter exponential backoff,
// but never sooner than the server's Retry-After (capped at max_retry_after_ms).
// unit_random in [0, 1).
std::int64_t RetryDelayMs(const RetryPolicy& policy, std::uint32_t attempt,
                          std::optional<std::int64_t> retry_after_ms, double unit_random);

}  // namespace outpost::gateway::uplink
