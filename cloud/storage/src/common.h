// Internal helpers shared by the SQLite and PostgreSQL adapters.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>

#include "outpost/cloud/model.h"

namespace outpost::cloud::storage::internal {

// Reading identity as three integers, so that one UNIQUE index covers both kinds:
// kind 1 = (boot, seq), kind 0 = (0, ts_ms). seq (uint64) is stored bit-for-bit as int64.
struct Identity {
  int kind;
  std::int64_t a;
  std::int64_t b;
};

inline Identity IdentityOf(const Reading& r) {
  if (r.has_boot_seq) {
    std::int64_t seq;
    std::memcpy(&seq, &r.seq, sizeof seq);
    return {1, static_cast<std::int64_t>(r.boot), seq};
  }
  return {0, 0, r.ts_ms};
}

inline void AppendDouble(std::string* out, double v) {
  char buf[32];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, res.ptr);
}

// {"name":value,...}; names were validated (no '"' or '\\'), values are finite.
inline void AppendMetricsJson(const Reading& r, std::string* out) {
  out->push_back('{');
  bool first = true;
  for (const auto& [name, value] : r.metrics) {
    if (!first) out->push_back(',');
    first = false;
    out->push_back('"');
    out->append(name);
    out->append("\":");
    AppendDouble(out, value);
  }
  out->push_back('}');
}

}  // namespace outpost::cloud::storage::internal
