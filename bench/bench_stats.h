// Median and percentile of a sample, for the benchmarks' tables (each bench quotes medians of
// its runs and percentiles of its latencies). Pure; copies the sample to sort it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace outpost::bench {

// 0 for an empty sample.
inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The nearest-rank percentile, p in [0, 1]; 0 for an empty sample.
inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(k, v.size() - 1)];
}

}  // namespace outpost::bench
