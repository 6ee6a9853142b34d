// Fuzzes the untrusted-input parsers of libs/proto: readings (flat topic, per-device topic, and
// tight limits), device status messages and gateway commands. Besides "never crash", it checks
// the documented invariants of every result; a broken one aborts.
#include <simdjson.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "outpost/proto/command.h"
#include "outpost/proto/device_status.h"
#include "outpost/proto/reading.h"
#include "outpost/proto/topics.h"

namespace {

using namespace outpost::proto;

constexpr std::int64_t kNowMs = 1'748'736'000'000;

#define FUZZ_CHECK(cond)                                                         \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__); \
      std::abort();                                                              \
    }                                                                            \
  } while (0)

bool IsNameByte(char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; }

void CheckReject(const Reject& reject) {
  FUZZ_CHECK(reject.reason < RejectReason::kCount);
  FUZZ_CHECK(std::string_view(RejectReasonName(reject.reason)) != "unknown");
  FUZZ_CHECK(!reject.detail.empty());
  if (reject.detail.size() > 256) std::fprintf(stderr, "detail: %s\n", reject.detail.c_str());
  FUZZ_CHECK(reject.detail.size() <= 256);
  for (char c : reject.detail) FUZZ_CHECK(c >= 0x20 && c < 0x7f);
}

void CheckReading(const Reading& r, const Limits& limits, std::string_view topic_id,
                  std::string_view payload) {
  FUZZ_CHECK(IsValidId(r.device_id));
  if (!topic_id.empty()) FUZZ_CHECK(r.device_id == topic_id);
  FUZZ_CHECK(!r.metrics.empty());
  FUZZ_CHECK(r.metrics.size() <= limits.max_metrics);
  for (std::size_t i = 0; i < r.metrics.size(); ++i) {
    const Metric& m = r.metrics[i];
    FUZZ_CHECK(std::isfinite(m.value));
    FUZZ_CHECK(!m.name.empty() && m.name.size() <= limits.max_name_bytes);
    for (char c : m.name) FUZZ_CHECK(IsNameByte(c));
    if (m.is_bool) FUZZ_CHECK(m.value == 0 || m.value == 1);
    for (std::size_t j = 0; j < i; ++j) FUZZ_CHECK(r.metrics[j].name != m.name);
  }
  if (r.has_seq) FUZZ_CHECK(r.seq < (std::uint64_t{1} << 63));
  FUZZ_CHECK(payload.size() <= limits.max_payload_bytes);
  FUZZ_CHECK(simdjson::validate_utf8(payload.data(), payload.size()));
  if (r.ts_source == TimeSource::kDevice) {
    FUZZ_CHECK(r.has_device_ts);
    FUZZ_CHECK(r.ts_ms >= limits.min_plausible_ms);
    FUZZ_CHECK(r.ts_ms <= kNowMs + limits.max_future_skew_ms);
  } else {
    FUZZ_CHECK(r.ts_ms == kNowMs);
  }
  FUZZ_CHECK(r.firmware.size() <= 64);

  // MetricsJson must be valid JSON with the same number of fields and the same values.
  const std::string json = MetricsJson(r);
  simdjson::dom::parser parser;
  simdjson::dom::object object;
  FUZZ_CHECK(parser.parse(json).get(object) == simdjson::SUCCESS);
  std::size_t i = 0;
  for (simdjson::dom::key_value_pair field : object) {
    FUZZ_CHECK(i < r.metrics.size());
    FUZZ_CHECK(field.key == r.metrics[i].name);
    double v = 0;
    bool b = false;
    if (r.metrics[i].is_bool) {
      FUZZ_CHECK(field.value.get(b) == simdjson::SUCCESS);
      FUZZ_CHECK((b ? 1.0 : 0.0) == r.metrics[i].value);
    } else {
      FUZZ_CHECK(field.value.get(v) == simdjson::SUCCESS);
      FUZZ_CHECK(v == r.metrics[i].value);
    }
    ++i;
  }
  FUZZ_CHECK(i == r.metrics.size());
}

struct State {
  State() : tight(TightLimits()) {}
  static Limits TightLimits() {
    Limits l;
    l.max_payload_bytes = 256;
    l.max_depth = 2;
    l.max_metrics = 3;
    l.max_name_bytes = 8;
    return l;
  }
  ReadingParser normal;
  ReadingParser tight;
  Reading reading;  // reused across inputs, as the gateway does
  Reject reject;
};

void RunReading(ReadingParser& parser, State& s, std::string_view payload,
                std::string_view topic_id) {
  s.reject.detail.clear();
  if (parser.Parse(payload, topic_id, kNowMs, &s.reading, &s.reject)) {
    CheckReading(s.reading, parser.limits(), topic_id, payload);
  } else {
    CheckReject(s.reject);
    if (payload.size() > parser.limits().max_payload_bytes) {
      FUZZ_CHECK(s.reject.reason == RejectReason::kTooLarge);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static State* state = new State();  // one per process, like a gateway ingest thread
  const std::string_view payload(reinterpret_cast<const char*>(data), size);

  RunReading(state->normal, *state, payload, "");
  RunReading(state->normal, *state, payload, "esp32_sensor_001");
  RunReading(state->tight, *state, payload, "");

  StatusMessage status;
  Reject reject;
  if (ParseStatus(payload, "node-1", &status, &reject)) {
    FUZZ_CHECK(status.device_id == "node-1");
  } else {
    CheckReject(reject);
  }
  if (ParseStatus(payload, "", &status, &reject)) {
    FUZZ_CHECK(IsValidId(status.device_id));
  } else {
    CheckReject(reject);
  }

  Command command;
  if (ParseCommand(payload, &command, &reject)) {
    FUZZ_CHECK(IsKnownGatewayCommand(command.name));
    FUZZ_CHECK(command.id.empty() || IsValidId(command.id));
  } else {
    CheckReject(reject);
  }

  // Topics: classification must agree with the builders.
  const TopicInfo info = ClassifyTopic(payload);
  if (!info.device_id.empty()) FUZZ_CHECK(IsValidId(info.device_id));
  if (!info.gateway_id.empty()) FUZZ_CHECK(IsValidId(info.gateway_id));
  if (info.kind == TopicKind::kSensorData && !info.device_id.empty()) {
    FUZZ_CHECK(SensorDataTopic(info.device_id) == payload);
  }
  return 0;
}
