// Fuzzes the batch contract (ADR 0004), both halves:
// 1. the cloud's body parsers (seed and native) on any input: never crash, and every accepted
//    batch keeps the documented invariants; every rejected item has a reason and a message;
// 2. the gateway's half against the cloud's: the input as a device payload; whatever the
//    gateway's reading parser accepts, encoded as an outbox item and built into either body
//    (and split in halves, as after a 413), the cloud's parser accepts in full with the same
//    values. A disagreement aborts.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "outpost/proto/batch.h"
#include "outpost/proto/reading.h"

namespace {

namespace batch = outpost::proto::batch;

#define FUZZ_CHECK(cond)                                                         \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__); \
      std::abort();                                                              \
    }                                                                            \
  } while (0)

void CheckBatch(const batch::Batch& b, const batch::ParseLimits& limits) {
  FUZZ_CHECK(b.readings.size() + b.alerts.size() + b.statuses.size() + b.rejected.size() <=
             limits.max_items);
  for (const auto& r : b.readings) {
    FUZZ_CHECK(batch::IsValidId(r.device_id));
    FUZZ_CHECK(r.ts_ms >= 0 && r.ts_ms <= batch::kMaxTsMs);
    FUZZ_CHECK(r.metrics.size() <= limits.max_metrics);
    for (std::size_t i = 0; i < r.metrics.size(); ++i) {
      FUZZ_CHECK(batch::IsValidMetricName(r.metrics[i].first, limits.max_metric_name_bytes));
      FUZZ_CHECK(std::isfinite(r.metrics[i].second));
      for (std::size_t j = 0; j < i; ++j) FUZZ_CHECK(r.metrics[i].first != r.metrics[j].first);
    }
  }
  for (const auto& a : b.alerts) {
    FUZZ_CHECK(!a.id.empty() && a.id.size() <= batch::kMaxAlertIdBytes);
    FUZZ_CHECK(a.message.size() <= limits.max_text_bytes);
  }
  for (const auto& s : b.statuses) FUZZ_CHECK(!s.status.empty() && s.ts_ms >= 0);
  for (const auto& r : b.rejected) FUZZ_CHECK(!r.reason.empty() && !r.message.empty());
}

bool Parse(batch::Protocol p, std::string_view body, const batch::ParseLimits& limits,
           batch::Batch* out) {
  batch::ParseError error;
  const bool ok = p == batch::Protocol::kNative ? batch::ParseNativeBatch(body, limits, out, &error)
                                                : batch::ParseSeedBatch(body, limits, out, &error);
  if (!ok) FUZZ_CHECK(!error.message.empty());
  return ok;
}

// The gateway half: payload -> reading -> item -> body -> the cloud's parser.
void CheckAgreement(std::string_view payload) {
  static outpost::proto::ReadingParser parser;
  outpost::proto::Reading reading;
  outpost::proto::Reject reject;
  const std::int64_t now = 1'764'201'600'000;
  if (!parser.Parse(payload, "", now, &reading, &reject)) return;
  std::vector<batch::Metric> metrics;
  for (const auto& m : reading.metrics) metrics.push_back({m.name, m.value, m.is_bool});
  const std::string item = batch::EncodeReading(
      reading.device_id, reading.has_seq, reading.boot, reading.seq, reading.ts_ms,
      reading.ts_source == outpost::proto::TimeSource::kDevice, metrics);
  const std::vector<batch::Item> items = {{batch::ItemKind::kReading, 1, item},
                                          {batch::ItemKind::kReading, 2, item}};
  for (auto p : {batch::Protocol::kNative, batch::Protocol::kSeed}) {
    auto body = batch::BuildBody(p, "gw-1", items);
    FUZZ_CHECK(body.ok());
    batch::Batch b;
    FUZZ_CHECK(Parse(p, body->json, batch::ParseLimits{}, &b));
    FUZZ_CHECK(b.rejected.empty());
    FUZZ_CHECK(b.readings.size() == 2);
    const auto& got = b.readings[0];
    FUZZ_CHECK(got.device_id == reading.device_id && got.ts_ms == reading.ts_ms);
    std::size_t j = 0;
    for (const auto& m : reading.metrics) {
      if (p == batch::Protocol::kSeed && batch::IsSeedReservedKey(m.name)) continue;
      FUZZ_CHECK(j < got.metrics.size());
      FUZZ_CHECK(got.metrics[j].first == m.name && got.metrics[j].second == m.value);
      ++j;
    }
    FUZZ_CHECK(j == got.metrics.size());
    auto halves = batch::SplitBody(p, body->json);
    FUZZ_CHECK(halves.ok() && halves->first_items == 1 && halves->second_items == 1);
    batch::Batch h;
    FUZZ_CHECK(Parse(p, halves->first, batch::ParseLimits{}, &h) && h.readings.size() == 1 &&
               h.rejected.empty());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  batch::ParseLimits limits;
  limits.max_items = 64;
  limits.max_metrics = 8;
  batch::Batch b;
  if (Parse(batch::Protocol::kSeed, body, limits, &b)) CheckBatch(b, limits);
  if (Parse(batch::Protocol::kNative, body, limits, &b)) CheckBatch(b, limits);
  CheckAgreement(body);
  // The gateway reads the cloud's answer: never crash on any.
  (void)batch::ParseRejectedReasons(body);
  return 0;
}
