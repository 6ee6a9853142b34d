#include "api.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <vector>

namespace outpost::gateway::app::api {
namespace {

using nlohmann::json;
using registry::Reason;
using registry::State;

json Ms(std::int64_t ms) { return ms > 0 ? json(ms) : json(nullptr); }

// Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; anything else becomes '_'.
std::string MetricName(std::string_view s) {
  std::string out;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == ':';
    out += ok ? c : '_';
  }
  return out;
}

// Label values: backslash, double quote and newline escaped.
std::string LabelValue(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

bool KeyedByData(std::string_view key) {
  auto ends = [&](std::string_view suffix) {
    return key.size() >= suffix.size() && key.substr(key.size() - suffix.size()) == suffix;
  };
  return ends("_by_reason") || ends("_reasons");
}

std::string Number(const json& v) {
  if (v.is_boolean()) return v.get<bool>() ? "1" : "0";
  if (v.is_number_integer() || v.is_number_unsigned()) return v.dump();
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v.get<double>());
  return buf;
}

void Flatten(const json& node, const std::string& name, std::string& out) {
  for (auto it = node.begin(); it != node.end(); ++it) {
    const json& v = it.value();
    const std::string full = name + "_" + MetricName(it.key());
    if (v.is_object()) {
      if (KeyedByData(it.key())) {
        for (auto r = v.begin(); r != v.end(); ++r) {
          if (!r.value().is_number() && !r.value().is_boolean()) continue;
          out += full + "{reason=\"" + LabelValue(r.key()) + "\"} " + Number(r.value()) + "\n";
        }
      } else {
        Flatten(v, full, out);
      }
    } else if (v.is_number() || v.is_boolean()) {
      out += full + " " + Number(v) + "\n";
    }
  }
}

}  // namespace

const char* DeviceStatus(const registry::Device& d) {
  if (d.readings == 0 && d.last_reading_json.empty() && d.state == State::kOffline) {
    return "never_seen";
  }
  return registry::StateName(d.state);
}

const char* DeviceReason(const registry::Device& d) {
  switch (d.reason) {
    case Reason::kRestored:
      return "restored";
    case Reason::kReading:
      return "reading";
    case Reason::kSilence:
      return "silence";
    case Reason::kStatus:
      switch (d.state) {
        case State::kOnline:
          return "announced_online";
        case State::kSleeping:
          return "announced_sleep";
        case State::kOffline:
          return "last_will";
      }
  }
  return "unknown";
}

json DeviceJson(const registry::Device& d) {
  json last = nullptr;
  if (!d.last_reading_json.empty()) {
    last = json::parse(d.last_reading_json, nullptr, /*allow_exceptions=*/false);
    if (last.is_discarded()) last = nullptr;
  }
  return {
      {"id", d.id},
      {"status", DeviceStatus(d)},
      {"reason", DeviceReason(d)},
      {"last_seen_ms", Ms(d.last_seen_ms)},
      {"first_seen_ms", Ms(d.first_seen_ms)},
      {"status_changed_ms", Ms(d.state_changed_ms)},
      {"last_reading", last},
      {"firmware", d.firmware.empty() ? json(nullptr) : json(d.firmware)},
      {"boot", d.boot},
      {"last_seq", d.last_seq},
      {"counters",
       {{"readings", d.readings}, {"duplicates", d.duplicates}, {"seq_gaps", d.seq_gaps}}},
  };
}

Result<std::size_t> ParseLimit(const std::map<std::string, std::string>& params) {
  auto it = params.find("limit");
  if (it == params.end()) return kDefaultLimit;
  const std::string& s = it->second;
  const std::string bad = "limit: expected an integer in 1.." + std::to_string(kMaxLimit) +
                          ", got \"" + s.substr(0, 32) + "\"";
  if (s.empty() || s.size() > 7 ||
      !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return InvalidArgument(bad);
  }
  const std::size_t n = std::stoul(s);
  if (n < 1 || n > kMaxLimit) return InvalidArgument(bad);
  return n;
}

std::string EncodeCursor(std::string_view last_id) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "d1";
  for (unsigned char c : last_id) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

Result<std::string> DecodeCursor(std::string_view cursor) {
  const Status bad = InvalidArgument(
      "cursor: not a cursor this API returned (use next_cursor of the previous page as is)");
  if (cursor.size() < 4 || cursor.substr(0, 2) != "d1" || cursor.size() % 2 != 0 ||
      cursor.size() > 2 + 2 * 256) {
    return bad;
  }
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string id;
  for (std::size_t i = 2; i < cursor.size(); i += 2) {
    const int hi = nibble(cursor[i]), lo = nibble(cursor[i + 1]);
    if (hi < 0 || lo < 0) return bad;
    id += static_cast<char>(hi << 4 | lo);
  }
  return id;
}

json DevicesPage(const std::unordered_map<std::string, registry::Device>& devices,
                 const std::string& after, std::size_t limit) {
  std::vector<const registry::Device*> page;
  page.reserve(std::min(devices.size(), limit + 1));
  auto by_id = [](const registry::Device* a, const registry::Device* b) { return a->id < b->id; };
  // Keep the limit + 1 smallest ids after the cursor (a heap): one more tells there is a next.
  for (const auto& [id, d] : devices) {
    if (!after.empty() && !(id > after)) continue;
    if (page.size() < limit + 1) {
      page.push_back(&d);
      std::push_heap(page.begin(), page.end(), by_id);
    } else if (d.id < page.front()->id) {
      std::pop_heap(page.begin(), page.end(), by_id);
      page.back() = &d;
      std::push_heap(page.begin(), page.end(), by_id);
    }
  }
  std::sort_heap(page.begin(), page.end(), by_id);
  const bool more = page.size() > limit;
  if (more) page.resize(limit);
  json list = json::array();
  for (const registry::Device* d : page) list.push_back(DeviceJson(*d));
  return {{"devices", std::move(list)},
          {"count", page.size()},
          {"total", devices.size()},
          {"next_cursor", more ? json(EncodeCursor(page.back()->id)) : json(nullptr)}};
}

std::string ETag(std::string_view body) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : body) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[24];
  std::snprintf(buf, sizeof buf, "\"%016" PRIx64 "\"", h);
  return buf;
}

bool IfNoneMatch(std::string_view header, std::string_view etag) {
  std::size_t i = 0;
  while (i < header.size()) {
    std::size_t comma = header.find(',', i);
    if (comma == std::string_view::npos) comma = header.size();
    std::string_view tag = header.substr(i, comma - i);
    while (!tag.empty() && (tag.front() == ' ' || tag.front() == '\t')) tag.remove_prefix(1);
    while (!tag.empty() && (tag.back() == ' ' || tag.back() == '\t')) tag.remove_suffix(1);
    if (tag == "*") return true;
    if (tag.substr(0, 2) == "W/") tag.remove_prefix(2);  // weak comparison (RFC 9110 13.1.2)
    if (tag == etag) return true;
    i = comma + 1;
  }
  return false;
}

std::string StatusPrometheus(const json& status, std::string_view prefix) {
  std::string out;
  std::string name(prefix);
  if (!name.empty() && name.back() == '_') name.pop_back();
  if (status.is_object()) Flatten(status, name, out);
  return out;
}

}  // namespace outpost::gateway::app::api
