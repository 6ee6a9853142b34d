// libFuzzer target for the HTTP request parser: arbitrary client bytes must never crash, hang or
// allocate beyond the limits; the parser never consumes more than it was given; a complete
// request's body is within the limit; and feeding the same bytes in other splits (one byte at a
// time, uneven pieces) gives the same sequence of requests and the same final error.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/base/check.h"
#include "outpost/http/request_parser.h"

using outpost::http::Limits;
using outpost::http::ParseError;
using outpost::http::RequestParser;

namespace {

struct Trace {
  std::vector<std::string> requests;  // method, target, body, headers flattened
  ParseError error = ParseError::kNone;
  std::size_t consumed = 0;
};

Trace Run(std::string_view input, const Limits& limits, std::size_t step) {
  RequestParser p(limits);
  Trace t;
  std::string pending;  // bytes given but not consumed (the next request's start)
  std::size_t pos = 0;
  for (int guard = 0; guard < 1'000'000; ++guard) {
    if (p.state() == RequestParser::State::kComplete) {
      auto r = p.Take();
      OUTPOST_CHECK(r.body.size() <= limits.max_body_bytes);
      std::string flat = r.method + " " + r.target + " " + r.path + "|" + r.body + "|";
      for (const auto& [k, v] : r.headers) flat += k + "=" + v + ";";
      flat += r.keep_alive ? "ka" : "close";
      t.requests.push_back(std::move(flat));
      continue;
    }
    if (p.state() == RequestParser::State::kError) {
      t.error = p.error();
      OUTPOST_CHECK(t.error != ParseError::kNone);
      break;
    }
    if (pending.empty()) {
      if (pos >= input.size()) break;
      std::size_t n = step == 0 ? input.size() - pos : std::min(step, input.size() - pos);
      pending.assign(input.substr(pos, n));
      pos += n;
    }
    std::size_t used = p.Feed(pending);
    OUTPOST_CHECK(used <= pending.size());
    t.consumed += used;
    pending.erase(0, used);
    // No progress on a non-empty piece is only allowed once the parser left kNeedMore.
    if (used == 0 && p.state() == RequestParser::State::kNeedMore && !pending.empty()) {
      OUTPOST_CHECK(false);
    }
  }
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  Limits limits;
  limits.max_request_line_bytes = 256;
  limits.max_header_line_bytes = 128;
  limits.max_header_count = 8;
  limits.max_header_bytes = 1024;
  limits.max_body_bytes = 512;

  Trace whole = Run(input, limits, 0);
  OUTPOST_CHECK(whole.consumed <= size);
  std::size_t uneven = size == 0 ? 1 : (data[0] % 13) + 1;
  for (std::size_t step : {std::size_t{1}, uneven}) {
    Trace split = Run(input, limits, step);
    OUTPOST_CHECK(split.requests == whole.requests);
    OUTPOST_CHECK(split.error == whole.error);
  }
  return 0;
}
