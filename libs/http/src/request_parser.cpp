// RequestParser on Boost.Beast's basic_parser<true>. Beast parses a header block only once it is
// complete in one buffer, so this file collects it first, line by line, checking each limit as
// the bytes arrive (a line without a newline is refused as soon as it is longer than its limit),
// and then hands the whole block to Beast. Body bytes go to Beast straight from the caller's
// buffer; only chunk-size lines and trailers that arrive split are collected (bounded) first.
#include "outpost/http/request_parser.h"

#include <algorithm>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

namespace outpost::http {
namespace {

namespace bhttp = boost::beast::http;
using boost::beast::error_code;
using BeastView = boost::beast::string_view;

std::string ToString(BeastView s) { return std::string(s.data(), s.size()); }

std::string Lower(BeastView s) {
  std::string out(s.data(), s.size());
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes `in` (and '+' as space when `plus`). False on a bad escape or a NUL byte.
bool PercentDecode(std::string_view in, bool plus, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = HexValue(in[i + 1]);
      int lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      char d = static_cast<char>(hi * 16 + lo);
      if (d == '\0') return false;
      out += d;
      i += 2;
    } else if (c == '+' && plus) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return true;
}

}  // namespace

const char* ParseErrorName(ParseError e) {
  switch (e) {
    case ParseError::kNone:
      return "none";
    case ParseError::kBadRequest:
      return "bad_request";
    case ParseError::kRequestLineTooLong:
      return "request_line_too_long";
    case ParseError::kHeaderLineTooLong:
      return "header_line_too_long";
    case ParseError::kTooManyHeaders:
      return "too_many_headers";
    case ParseError::kHeaderTooLarge:
      return "header_too_large";
    case ParseError::kBodyTooLarge:
      return "body_too_large";
    case ParseError::kUnsupportedEncoding:
      return "unsupported_content_encoding";
    case ParseError::kUnsupportedTransfer:
      return "unsupported_transfer_encoding";
    case ParseError::kVersionNotSupported:
      return "http_version_not_supported";
  }
  return "unknown";
}

int ParseErrorStatus(ParseError e) {
  switch (e) {
    case ParseError::kNone:
      return 200;
    case ParseError::kBadRequest:
      return 400;
    case ParseError::kRequestLineTooLong:
      return 414;
    case ParseError::kHeaderLineTooLong:
      return 431;
    case ParseError::kTooManyHeaders:
      return 431;
    case ParseError::kHeaderTooLarge:
      return 431;
    case ParseError::kBodyTooLarge:
      return 413;
    case ParseError::kUnsupportedEncoding:
      return 415;
    case ParseError::kUnsupportedTransfer:
      return 501;
    case ParseError::kVersionNotSupported:
      return 505;
  }
  return 400;
}

struct RequestParser::Impl {
  // The Beast side: its callbacks fill `owner->req` and check what only a parsed header shows.
  class Beast final : public bhttp::basic_parser<true> {
   public:
    explicit Beast(Impl* owner) : owner_(owner) {}

   private:
    void on_request_impl(bhttp::verb, BeastView method, BeastView target, int version,
                         error_code& ec) override {
      owner_->OnRequestLine(method, target, version, ec);
    }
    void on_response_impl(int, BeastView, int, error_code& ec) override {
      ec = bhttp::error::bad_method;  // never called for a request parser
    }
    void on_field_impl(bhttp::field, BeastView name, BeastView value, error_code& ec) override {
      if (is_header_done()) return;  // a trailer of a chunked body: ignored
      owner_->OnField(name, value, ec);
    }
    void on_header_impl(error_code& ec) override { owner_->OnHeader(content_length(), ec); }
    void on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code&) override {
      if (length) owner_->req.body.reserve(std::min<std::uint64_t>(*length, 64 * 1024));
    }
    std::size_t on_body_impl(BeastView body, error_code& ec) override {
      return owner_->OnBody(body, ec);
    }
    void on_chunk_header_impl(std::uint64_t size, BeastView, error_code& ec) override {
      owner_->OnChunkHeader(size, ec);
    }
    std::size_t on_chunk_body_impl(std::uint64_t, BeastView body, error_code& ec) override {
      std::size_t n = owner_->OnBody(body, ec);
      owner_->chunk_left -= std::min<std::uint64_t>(n, owner_->chunk_left);
      return n;
    }
    void on_finish_impl(error_code&) override {}

    Impl* owner_;
  };

  explicit Impl(Limits l) : limits(l) { Reset(); }

  void Reset() {
    beast.emplace(this);
    auto header_limit = std::min<std::size_t>(limits.max_header_bytes,
                                              std::numeric_limits<std::uint32_t>::max() - 16);
    beast->header_limit(static_cast<std::uint32_t>(header_limit + 8));
    // OnHeader, OnChunkHeader and OnBody check the limit (boost::none would refuse every
    // Content-Length in Beast 1.74: it compares the length with an empty optional).
    beast->body_limit(std::numeric_limits<std::uint64_t>::max());
    beast->eager(true);
    state = State::kNeedMore;
    error = ParseError::kNone;
    detail.clear();
    req = Request{};
    if (head.capacity() > 1024) head = std::string();
    head.clear();
    line_start = 0;
    field_lines = 0;
    header_done = false;
    tail.clear();
    tail_line_start = 0;
    chunk_left = 0;
    saw_content_length = false;
    saw_transfer_encoding = false;
  }

  void Fail(ParseError e, std::string why) {
    if (state == State::kError) return;
    state = State::kError;
    error = e;
    detail = std::move(why);
  }
  void Fail(ParseError e, std::string why, error_code& ec) {
    Fail(e, std::move(why));
    ec = bhttp::error::bad_value;  // stops Beast; `error` says why
  }

  // --- header collection -----------------------------------------------------------------------

  // Appends bytes of the header block up to and including its empty line; returns how many it
  // took. Sets header_complete when the block is whole.
  std::size_t CollectHeader(std::string_view data, bool& header_complete) {
    std::size_t pos = 0;
    // RFC 9112 2.2: empty lines before a request line are ignored.
    if (head.empty()) {
      while (pos < data.size() && (data[pos] == '\r' || data[pos] == '\n')) ++pos;
    }
    while (pos < data.size()) {
      const char* begin = data.data() + pos;
      const void* nl = std::memchr(begin, '\n', data.size() - pos);
      std::size_t take = nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - begin) + 1
                            : data.size() - pos;
      bool request_line = line_start == 0;
      std::size_t limit =
          request_line ? limits.max_request_line_bytes : limits.max_header_line_bytes;
      std::size_t held = head.size() - line_start;  // bytes of this line already collected
      if (nl) {
        std::size_t content = held + take - 1;  // without the '\n'
        char before = take >= 2 ? begin[take - 2] : (held > 0 ? head.back() : '\0');
        if (content > 0 && before == '\r') --content;
        if (content > limit) {
          LineTooLong(request_line, limit);
          return pos + take;
        }
      } else if (held + take > limit + 1 || (held + take == limit + 1 && begin[take - 1] != '\r')) {
        LineTooLong(request_line, limit);  // no newline yet, and already too long
        return pos + take;
      }
      if (head.size() + take > limits.max_header_bytes) {
        Fail(ParseError::kHeaderTooLarge,
             "request header longer than " + std::to_string(limits.max_header_bytes) + " bytes");
        return pos + take;
      }
      head.append(begin, take);
      pos += take;
      if (!nl) break;
      // A line is complete.
      std::size_t content = head.size() - line_start - 1;
      if (content > 0 && head[head.size() - 2] == '\r') --content;
      bool was_request_line = line_start == 0;
      line_start = head.size();
      if (was_request_line) continue;
      if (content == 0) {
        header_complete = true;
        return pos;
      }
      if (++field_lines > limits.max_header_count) {
        Fail(ParseError::kTooManyHeaders,
             "more than " + std::to_string(limits.max_header_count) + " header fields");
        return pos;
      }
    }
    return pos;
  }
  void LineTooLong(bool request_line, std::size_t limit) {
    if (request_line) {
      Fail(ParseError::kRequestLineTooLong,
           "request line longer than " + std::to_string(limit) + " bytes");
    } else {
      Fail(ParseError::kHeaderLineTooLong,
           "header line longer than " + std::to_string(limit) + " bytes");
    }
  }

  // --- Beast callbacks -------------------------------------------------------------------------

  void OnRequestLine(BeastView method, BeastView target, int version, error_code& ec) {
    if (version != 10 && version != 11) {
      return Fail(ParseError::kVersionNotSupported,
                  "HTTP/" + std::to_string(version / 10) + "." + std::to_string(version % 10) +
                      " is not supported (HTTP/1.0 and HTTP/1.1 are)",
                  ec);
    }
    req.version_minor = version % 10;
    req.method = ToString(method);
    req.target = ToString(target);
    std::string_view t = req.target;
    // absolute-form (RFC 9112 3.2.2): keep the path of it.
    for (std::string_view scheme : {"http://", "https://"}) {
      if (t.size() >= scheme.size() && t.substr(0, scheme.size()) == scheme) {
        t.remove_prefix(scheme.size());
        auto slash = t.find_first_of("/?");
        t = slash == std::string_view::npos ? std::string_view("/") : t.substr(slash);
        if (t.front() == '?') {
          // "/"-less absolute form with a query: treat as "/?..."
          path_scratch = "/";
          path_scratch.append(t.data(), t.size());
          t = path_scratch;
        }
        break;
      }
    }
    if (t == "*") {
      req.path = "*";
      return;
    }
    if (t.empty() || t.front() != '/') {
      return Fail(ParseError::kBadRequest, "request target must start with '/'", ec);
    }
    auto q = t.find('?');
    std::string_view raw_path = t.substr(0, q);
    if (!PercentDecode(raw_path, false, req.path)) {
      return Fail(ParseError::kBadRequest, "bad percent-encoding in the path", ec);
    }
    if (q == std::string_view::npos) return;
    std::string_view query = t.substr(q + 1);
    auto hash = query.find('#');
    if (hash != std::string_view::npos) query = query.substr(0, hash);
    while (!query.empty()) {
      auto amp = query.find('&');
      std::string_view pair = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
      if (pair.empty()) continue;
      auto eq = pair.find('=');
      std::string key, value;
      if (!PercentDecode(pair.substr(0, eq), true, key) ||
          (eq != std::string_view::npos && !PercentDecode(pair.substr(eq + 1), true, value))) {
        return Fail(ParseError::kBadRequest, "bad percent-encoding in the query", ec);
      }
      req.params.emplace(std::move(key), std::move(value));  // first value wins
    }
  }

  void OnField(BeastView name, BeastView value, error_code& ec) {
    std::string lname = Lower(name);
    std::string_view v(value.data(), value.size());
    if (lname == "content-encoding") {
      std::string_view rest = v;
      while (!rest.empty() || v.empty()) {
        auto comma = rest.find(',');
        std::string coding = Lower(
            BeastView(Trim(rest.substr(0, comma)).data(), Trim(rest.substr(0, comma)).size()));
        if (!coding.empty() && coding != "identity") {
          return Fail(ParseError::kUnsupportedEncoding,
                      "Content-Encoding '" + coding +
                          "' is not accepted: request bodies are never decompressed; send "
                          "identity",
                      ec);
        }
        if (comma == std::string_view::npos) break;
        rest = rest.substr(comma + 1);
      }
    } else if (lname == "transfer-encoding") {
      saw_transfer_encoding = true;
      if (saw_content_length) return Smuggling(ec);
      std::string coding = Lower(BeastView(Trim(v).data(), Trim(v).size()));
      if (coding != "chunked") {
        return Fail(ParseError::kUnsupportedTransfer,
                    "Transfer-Encoding '" + coding + "' is not supported (only chunked is)", ec);
      }
    } else if (lname == "content-length") {
      saw_content_length = true;
      if (saw_transfer_encoding) return Smuggling(ec);
    }
    auto [it, inserted] = req.headers.emplace(std::move(lname), std::string(v));
    if (!inserted) {
      it->second += ", ";
      it->second.append(v.data(), v.size());
    }
  }
  void Smuggling(error_code& ec) {
    Fail(ParseError::kBadRequest, "Content-Length together with Transfer-Encoding", ec);
  }

  void OnHeader(boost::optional<std::uint64_t> length, error_code& ec) {
    if (saw_content_length && saw_transfer_encoding) return Smuggling(ec);
    if (length && *length > limits.max_body_bytes) {
      return Fail(ParseError::kBodyTooLarge,
                  "Content-Length " + std::to_string(*length) + " is over the limit of " +
                      std::to_string(limits.max_body_bytes) + " bytes",
                  ec);
    }
    header_done = true;
  }

  std::size_t OnBody(BeastView body, error_code& ec) {
    if (body.size() > limits.max_body_bytes - req.body.size()) {
      Fail(ParseError::kBodyTooLarge,
           "body over the limit of " + std::to_string(limits.max_body_bytes) + " bytes", ec);
      return 0;
    }
    req.body.append(body.data(), body.size());
    return body.size();
  }

  void OnChunkHeader(std::uint64_t size, error_code& ec) {
    if (size > limits.max_body_bytes - req.body.size()) {
      return Fail(
          ParseError::kBodyTooLarge,
          "chunked body over the limit of " + std::to_string(limits.max_body_bytes) + " bytes", ec);
    }
    chunk_left = size;
  }

  // Maps an error Beast found itself (the callbacks set `error` before returning theirs).
  void FromBeast(const error_code& ec) {
    if (state == State::kError) return;
    if (ec == bhttp::error::body_limit) {
      return Fail(ParseError::kBodyTooLarge,
                  "body over the limit of " + std::to_string(limits.max_body_bytes) + " bytes");
    }
    if (ec == bhttp::error::header_limit) {
      return Fail(
          ParseError::kHeaderTooLarge,
          "request header longer than " + std::to_string(limits.max_header_bytes) + " bytes");
    }
    if (ec == bhttp::error::bad_transfer_encoding || ec == bhttp::error::bad_content_length) {
      if (saw_content_length || saw_transfer_encoding) {
        // Beast checks the pair before the second field reaches OnField.
        bool both = (ec == bhttp::error::bad_transfer_encoding && saw_content_length) ||
                    (ec == bhttp::error::bad_content_length && saw_transfer_encoding);
        if (both)
          return Fail(ParseError::kBadRequest, "Content-Length together with Transfer-Encoding");
      }
    }
    if (ec == bhttp::error::bad_version && WellFormedVersion()) {
      // Beast knows only HTTP/1.x: "HTTP/2.0" is well-formed but not supported.
      return Fail(ParseError::kVersionNotSupported, "only HTTP/1.0 and HTTP/1.1 are supported");
    }
    Fail(ParseError::kBadRequest, "malformed request: " + ec.message());
  }
  // The request line in `head` ends in "HTTP/<digit>.<digit>".
  bool WellFormedVersion() const {
    std::string_view line(head);
    line = line.substr(0, line.find('\n'));
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() < 9) return false;
    std::string_view v = line.substr(line.size() - 8);
    return line[line.size() - 9] == ' ' && v.substr(0, 5) == "HTTP/" && v[5] >= '0' &&
           v[5] <= '9' && v[6] == '.' && v[7] >= '0' && v[7] <= '9';
  }

  // --- the feed --------------------------------------------------------------------------------

  std::size_t Feed(std::string_view data) {
    std::size_t pos = 0;
    while (state == State::kNeedMore) {
      if (!header_done) {
        bool complete = false;
        pos += CollectHeader(data.substr(pos), complete);
        if (state != State::kNeedMore || !complete) return pos;
        // The whole header block is in `head`: Beast parses it in one go.
        error_code ec;
        std::size_t used = beast->put(boost::asio::const_buffer(head.data(), head.size()), ec);
        if (ec && ec != bhttp::error::need_more) {
          FromBeast(ec);
          return pos;
        }
        if (used != head.size() || !beast->is_header_done()) {
          Fail(ParseError::kBadRequest, "malformed request header");
          return pos;
        }
        header_done = true;
        if (head.capacity() > 1024) head = std::string();
        head.clear();
        if (beast->is_done()) return Finish(pos);
        continue;
      }
      // Body. Beast reads chunk data straight from `data`, but never the framing of a chunked
      // body (chunk-size lines, trailers): that goes line by line through `tail`, bounded like
      // header lines, so the outcome does not depend on how the bytes were split.
      bool framing = beast->chunked() && chunk_left == 0;
      if (tail.empty() && !framing) {
        if (pos == data.size()) return pos;
        std::size_t n = data.size() - pos;
        if (beast->chunked()) n = static_cast<std::size_t>(std::min<std::uint64_t>(n, chunk_left));
        error_code ec;
        std::size_t used = beast->put(boost::asio::const_buffer(data.data() + pos, n), ec);
        pos += used;
        if (beast->is_done()) return Finish(pos);
        if (ec && ec != bhttp::error::need_more) {
          FromBeast(ec);
          return pos;
        }
        if (used == 0) return pos;  // Beast needs more than there is
      } else {
        if (!CollectTail(data, pos)) return pos;
        // Beast sees only whole lines, so that it finds a bad line at the same point whether the
        // line came in one piece or many (a partial line is bounded by the line limit).
        if (tail.back() != '\n') return pos;
        error_code ec;
        std::size_t used = beast->put(boost::asio::const_buffer(tail.data(), tail.size()), ec);
        if (ec && ec != bhttp::error::need_more) {
          FromBeast(ec);
          return pos;
        }
        tail.erase(0, used);
        tail_line_start = tail_line_start > used ? tail_line_start - used : 0;
        if (beast->is_done()) {
          if (!tail.empty()) {
            Fail(ParseError::kBadRequest, "malformed chunked body");
            return pos;
          }
          return Finish(pos);
        }
        if (pos == data.size()) return pos;
      }
    }
    return pos;
  }

  // Moves the bytes of `data` from `pos` up to and including the next '\n' into `tail`.
  // False when nothing could be moved or a limit was hit.
  bool CollectTail(std::string_view data, std::size_t& pos) {
    if (pos == data.size()) return false;
    const char* begin = data.data() + pos;
    const void* nl = std::memchr(begin, '\n', data.size() - pos);
    std::size_t take =
        nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - begin) + 1 : data.size() - pos;
    // Whichever limit the bytes cross first decides (the same however the bytes were split):
    // positions in `tail`, 1-based, of the first byte over each limit.
    constexpr std::size_t kNever = std::numeric_limits<std::size_t>::max();
    std::size_t line_over = tail.size() - tail_line_start + take > limits.max_header_line_bytes + 2
                                ? tail_line_start + limits.max_header_line_bytes + 3
                                : kNever;
    std::size_t block_over =
        tail.size() + take > limits.max_header_bytes ? limits.max_header_bytes + 1 : kNever;
    if (line_over != kNever && line_over <= block_over) {
      Fail(ParseError::kHeaderLineTooLong, "chunk-size or trailer line longer than " +
                                               std::to_string(limits.max_header_line_bytes) +
                                               " bytes");
      pos += take;
      return false;
    }
    if (block_over != kNever) {
      Fail(ParseError::kHeaderTooLarge,
           "chunked trailers longer than " + std::to_string(limits.max_header_bytes) + " bytes");
      pos += take;
      return false;
    }
    tail.append(begin, take);
    pos += take;
    if (nl) tail_line_start = tail.size();
    return true;
  }

  std::size_t Finish(std::size_t pos) {
    req.keep_alive = beast->keep_alive();
    state = State::kComplete;
    return pos;
  }

  Limits limits;
  std::optional<Beast> beast;
  State state = State::kNeedMore;
  ParseError error = ParseError::kNone;
  std::string detail;
  Request req;
  std::string head;            // the header block being collected
  std::size_t line_start = 0;  // where the current line of `head` starts
  std::size_t field_lines = 0;
  bool header_done = false;
  std::string tail;  // chunked framing Beast could not use yet
  std::size_t tail_line_start = 0;
  std::uint64_t chunk_left = 0;  // chunk data bytes Beast has still to read
  bool saw_content_length = false;
  bool saw_transfer_encoding = false;
  std::string path_scratch;
};

RequestParser::RequestParser(Limits limits) : impl_(std::make_unique<Impl>(limits)) {}
RequestParser::~RequestParser() = default;
RequestParser::RequestParser(RequestParser&&) noexcept = default;
RequestParser& RequestParser::operator=(RequestParser&&) noexcept = default;

std::size_t RequestParser::Feed(std::string_view data) {
  if (impl_->state != State::kNeedMore) return 0;
  return impl_->Feed(data);
}

RequestParser::State RequestParser::state() const { return impl_->state; }
bool RequestParser::header_done() const { return impl_->header_done; }
const Request& RequestParser::request() const { return impl_->req; }

Request RequestParser::Take() {
  Request out = std::move(impl_->req);
  impl_->Reset();
  return out;
}

ParseError RequestParser::error() const { return impl_->error; }
const std::string& RequestParser::error_detail() const { return impl_->detail; }

}  // namespace outpost::http
