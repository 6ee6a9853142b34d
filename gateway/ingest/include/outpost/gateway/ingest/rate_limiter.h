// TokenBucket: per-device flood limit. `rate_per_s` tokens a second up to `burst`; each
// message takes one. Pure: time is passed in. Thread: owned by the ingest thread.
#pragma once

#include <algorithm>
#include <cstdint>

namespace outpost::gateway::ingest {

class TokenBucket {
 public:
  TokenBucket() = default;
  TokenBucket(double rate_per_s, double burst) : rate_(rate_per_s), burst_(burst), tokens_(burst) {}

  // New limits (config reload); the tokens saved so far are kept, capped at the new burst.
  void SetRate(double rate_per_s, double burst) {
    rate_ = rate_per_s;
    burst_ = burst;
    tokens_ = std::min(tokens_, burst_);
  }

  // True when a message may pass at `now_ms` (and takes its token). rate 0 = unlimited.
  bool Take(std::int64_t now_ms) {
    if (rate_ <= 0) return true;
    if (last_ms_ != kNever && now_ms > last_ms_) {
      tokens_ = std::min(burst_, tokens_ + rate_ * static_cast<double>(now_ms - last_ms_) / 1000.0);
    }
    if (last_ms_ == kNever || now_ms > last_ms_) last_ms_ = now_ms;
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
  }

 private:
  static constexpr std::int64_t kNever = INT64_MIN;
  double rate_ = 0, burst_ = 0, tokens_ = 0;
  std::int64_t last_ms_ = kNever;
};

}  // namespace outpost::gateway::ingest
