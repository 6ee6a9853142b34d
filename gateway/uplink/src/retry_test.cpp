#include "outpost/gateway/uplink/retry.h"

#include <gtest/gtest.h>

namespace outpost::gateway::uplink {
namespace {

TEST(UplinkRetry, ClassifiesPerContract) {
  EXPECT_EQ(Classify(200), Outcome::kDelivered);
  EXPECT_EQ(Classify(204), Outcome::kDelivered);
  // A proxy's 404/405/415 or a redirect refuse every batch alike: retried, never dropped.
  for (int s : {0, 301, 401, 403, 404, 405, 408, 415, 429, 500, 502, 503, 504}) {
    EXPECT_EQ(Classify(s), Outcome::kRetry) << s;
  }
  for (int s : {400, 409, 422}) {
    EXPECT_EQ(Classify(s), Outcome::kPermanent) << s;
  }
  EXPECT_EQ(Classify(413), Outcome::kTooLarge);
}

TEST(UplinkRetry, ParsesRetryAfterSecondsAndDates) {
  const std::int64_t now = 1795759200000;  // Fri, 27 Nov 2026 06:00:00 GMT
  EXPECT_EQ(ParseRetryAfterMs("3", now), 3000);
  EXPECT_EQ(ParseRetryAfterMs(" 0 ", now), 0);
  EXPECT_EQ(ParseRetryAfterMs("Fri, 27 Nov 2026 06:00:05 GMT", now), 5000);
  EXPECT_EQ(ParseRetryAfterMs("Fri, 27 Nov 2026 05:00:00 GMT", now), 0);  // past
  EXPECT_FALSE(ParseRetryAfterMs("", now));
  EXPECT_FALSE(ParseRetryAfterMs("soon", now));
  EXPECT_FALSE(ParseRetryAfterMs("-5", now));
  EXPECT_FALSE(ParseRetryAfterMs("1.5", now));
  EXPECT_TRUE(ParseRetryAfterMs("99999999999999999999", now));  // huge, capped by the policy
}

TEST(UplinkRetry, DelayIsFullJitterButNeverBeforeRetryAfter) {
  RetryPolicy p;
  p.backoff = {100, 10'000};
  p.max_retry_after_ms = 60'000;
  EXPECT_EQ(RetryDelayMs(p, 0, std::nullopt, 0.0), 0);
  EXPECT_EQ(RetryDelayMs(p, 0, std::nullopt, 0.5), 50);
  EXPECT_EQ(RetryDelayMs(p, 3, std::nullopt, 0.5), 400);
  EXPECT_LT(RetryDelayMs(p, 30, std::nullopt, 0.999), 10'000);  // capped
  EXPECT_EQ(RetryDelayMs(p, 0, 2000, 0.5), 2000);               // Retry-After wins
  EXPECT_EQ(RetryDelayMs(p, 10, 10, 0.9), 9000);                // backoff wins when longer
  EXPECT_EQ(RetryDelayMs(p, 0, 10'000'000, 0.1), 60'000);       // absurd Retry-After capped
}

}  // namespace
}  // namespace outpost::gateway::uplink
