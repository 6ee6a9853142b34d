#include "outpost/node/sim/latency.h"

#include <algorithm>
#include <cmath>

namespace outpost::node::sim {

int LatencyHistogram::BucketOf(std::int64_t ms) {
  if (ms < kLinear) return static_cast<int>(std::max<std::int64_t>(ms, 0));
  int log2 = 63 - __builtin_clzll(static_cast<unsigned long long>(ms));  // >= 6
  const int sub = static_cast<int>((ms >> (log2 - 4)) & (kSub - 1));
  const int b = kLinear + (log2 - 6) * kSub + sub;
  return std::min(b, kBuckets - 1);
}

std::int64_t LatencyHistogram::UpperEdge(int bucket) {
  if (bucket < kLinear) return bucket;
  const int log2 = (bucket - kLinear) / kSub + 6;
  const int sub = (bucket - kLinear) % kSub;
  return ((static_cast<std::int64_t>(kSub + sub + 1)) << (log2 - 4)) - 1;
}

void LatencyHistogram::Record(std::int64_t ms) {
  ++buckets_[static_cast<std::size_t>(BucketOf(ms))];
  ++count_;
  max_ = std::max(max_, ms);
}

std::int64_t LatencyHistogram::Percentile(double q) const {
  if (count_ == 0) return 0;
  const auto rank = static_cast<std::uint64_t>(
      std::max(1.0, std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(count_))));
  std::uint64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += buckets_[static_cast<std::size_t>(b)];
    if (seen >= rank) return std::min(UpperEdge(b), max_);
  }
  return max_;
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (std::size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
}

}  // namespace outpost::node::sim
