// Fuzzes the cloud's batch body parsers (seed and native) and checks the documented invariants
// of every accepted batch; a broken one aborts.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "outpost/cloud/batch_parser.h"

namespace {

#define FUZZ_CHECK(cond)                                                         \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__); \
      std::abort();                                                              \
    }                                                                            \
  } while (0)

void CheckBatch(const outpost::cloud::Batch& b, const outpost::cloud::ParseLimits& limits) {
  FUZZ_CHECK(b.readings.size() + b.alerts.size() + b.statuses.size() <= limits.max_items);
  for (const auto& r : b.readings) {
    FUZZ_CHECK(outpost::cloud::IsValidCloudId(r.device_id));
    FUZZ_CHECK(r.ts_ms >= 0);
    FUZZ_CHECK(r.metrics.size() <= limits.max_metrics);
    for (std::size_t i = 0; i < r.metrics.size(); ++i) {
      FUZZ_CHECK(
          outpost::cloud::IsValidMetricName(r.metrics[i].first, limits.max_metric_name_bytes));
      FUZZ_CHECK(std::isfinite(r.metrics[i].second));
      for (std::size_t j = 0; j < i; ++j) FUZZ_CHECK(r.metrics[i].first != r.metrics[j].first);
    }
  }
  for (const auto& a : b.alerts) {
    FUZZ_CHECK(!a.id.empty() && a.id.size() <= 128);
    FUZZ_CHECK(a.message.size() <= limits.max_text_bytes);
  }
  for (const auto& s : b.statuses) FUZZ_CHECK(!s.status.empty() && s.ts_ms >= 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  outpost::cloud::ParseLimits limits;
  limits.max_items = 64;
  limits.max_metrics = 8;
  outpost::cloud::Batch batch;
  outpost::cloud::ParseError error;
  if (outpost::cloud::ParseSeedBatch(body, limits, &batch, &error)) {
    CheckBatch(batch, limits);
  } else {
    FUZZ_CHECK(!error.message.empty());
  }
  if (outpost::cloud::ParseNativeBatch(body, limits, &batch, &error)) {
    CheckBatch(batch, limits);
  } else {
    FUZZ_CHECK(!error.message.empty());
  }
  return 0;
}
