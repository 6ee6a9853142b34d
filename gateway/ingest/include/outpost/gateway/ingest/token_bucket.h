// TokenBucket: a per-device limit (readings, status messages). `rate_per_s` tokens a second up
// to `burst`; each message takes one. Time is the gateway's own (monotonic, receive time): what
// a device writes into its payloads never reaches the bucket, so forged timestamps cannot widen
// it.
//
// Backlog credit (`max_credit_ms` > 0): a device that was silent buffers readings (or the broker
// queues them while the gateway is away) and sends them at once when it is back. What a plain
// bucket would have thrown away over that silence (the refill beyond `burst`) is kept as credit,
// at most rate_per_s x max_credit_ms, and usable for as long as the silence lasted (at most
// max_credit_ms); what is left then is forfeited. So a backlog is stored in full when it is
// within what the elapsed time justifies plus a burst, and over any interval T a device gets at
// most burst + rate x T + the credit its silence before earned; a device that never falls
// silent (a flood) gets the rate and nothing more. docs/architecture.md explains the choice.
//
// Pure: time is passed in. Errors: none. Thread: owned by the ingest thread.
#pragma once

#include <algorithm>
#include <cstdint>

namespace outpost::gateway::ingest {

class TokenBucket {
 public:
  TokenBucket() = default;
  TokenBucket(double rate_per_s, double burst, std::int64_t max_credit_ms = 0)
      : rate_(rate_per_s), burst_(burst), tokens_(burst), max_credit_ms_(max_credit_ms) {}

  // New limits (config reload); the tokens saved so far are kept, capped at the new burst.
  void SetRate(double rate_per_s, double burst, std::int64_t max_credit_ms = 0) {
    rate_ = rate_per_s;
    burst_ = burst;
    max_credit_ms_ = max_credit_ms;
    tokens_ = std::min(tokens_, burst_);
    credit_ = std::min(credit_, MaxCredit());
  }

  // The device was last heard at `mono_ms`, before this bucket existed (a device restored at
  // start-up: its silence includes the gateway's own downtime). The next Take counts the gap.
  void HeardAt(std::int64_t mono_ms) { last_ms_ = mono_ms; }

  // True when a message may pass at `now_ms` (and takes its token). rate 0 = unlimited.
  bool Take(std::int64_t now_ms) {
    if (rate_ <= 0) return true;
    if (last_ms_ != kNever && now_ms > last_ms_) {
      const std::int64_t gap = now_ms - last_ms_;
      const double overflow = tokens_ + rate_ * static_cast<double>(gap) / 1000.0 - burst_;
      if (overflow > 0) {
        tokens_ = burst_;
        if (max_credit_ms_ > 0) {
          if (now_ms >= credit_until_) credit_ = 0;
          credit_ = std::min(credit_ + overflow, MaxCredit());
          credit_until_ = std::max(credit_until_, now_ms + std::min(gap, max_credit_ms_));
        }
      } else {
        tokens_ += rate_ * static_cast<double>(gap) / 1000.0;
      }
    }
    if (last_ms_ == kNever || now_ms > last_ms_) last_ms_ = now_ms;
    if (credit_ >= 1.0 && now_ms < credit_until_) {
      credit_ -= 1.0;
      return true;
    }
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
  }

  // Backlog credit left at `now_ms` (0 once it expired).
  double credit(std::int64_t now_ms) const { return now_ms < credit_until_ ? credit_ : 0; }

 private:
  static constexpr std::int64_t kNever = INT64_MIN;
  double MaxCredit() const { return rate_ * static_cast<double>(max_credit_ms_) / 1000.0; }

  double rate_ = 0, burst_ = 0, tokens_ = 0;
  std::int64_t max_credit_ms_ = 0;
  double credit_ = 0;
  std::int64_t credit_until_ = kNever;
  std::int64_t last_ms_ = kNever;
};

}  // namespace outpost::gateway::ingest
