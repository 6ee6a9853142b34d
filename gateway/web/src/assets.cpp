#include "outpost/gateway/web/assets.h"

#include <zlib.h>

#include <cctype>
#include <string>
#include <utility>

namespace outpost::gateway::web {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// Whether the If-None-Match list names `etag` (or is "*"); weak tags compare by their opaque
// part (RFC 9110 weak comparison, as for GET).
bool NoneMatch(std::string_view header, std::string_view etag) {
  while (!header.empty()) {
    std::size_t comma = header.find(',');
    std::string_view tag = Trim(header.substr(0, comma));
    if (tag == "*") return true;
    if (tag.substr(0, 2) == "W/") tag.remove_prefix(2);
    if (tag == etag) return true;
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

bool AcceptsGzip(std::string_view header) {
  while (!header.empty()) {
    std::size_t comma = header.find(',');
    std::string_view item = Trim(header.substr(0, comma));
    std::string_view coding = Trim(item.substr(0, item.find(';')));
    if (EqualsIgnoreCase(coding, "gzip") || coding == "*") {
      // A q of zero ("q=0", "q=0.0", "q=0.000") refuses it.
      bool refused = false;
      if (std::size_t semi = item.find(';'); semi != std::string_view::npos) {
        std::string_view param = Trim(item.substr(semi + 1));
        if (param.size() >= 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=') {
          std::string_view q = Trim(param.substr(2));
          refused = !q.empty() && q.find_first_not_of("0.") == std::string_view::npos;
        }
      }
      if (!refused) return true;
    }
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return false;
}

std::string Gzip(std::string_view body) {
  z_stream z{};
  // windowBits 15 + 16: a gzip header and trailer instead of zlib's.
  if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return {};
  std::string out(deflateBound(&z, static_cast<uLong>(body.size())), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  z.avail_in = static_cast<uInt>(body.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) return {};
  return out;
}

bool GzipBody(http::Response* r) {
  if (r->body.size() < kMinGzipBytes) return false;
  std::string z = Gzip(r->body);
  if (z.empty()) return false;
  r->body = std::move(z);
  r->headers.emplace_back("Content-Encoding", "gzip");
  return true;
}

http::Response Serve(const AssetTable& table, const http::Request& request) {
  std::string_view path = request.path;
  if (path == "/index.html") path = "/";
  const Asset* found = nullptr;
  for (const Asset& a : table) {
    if (a.path == path) {
      found = &a;
      break;
    }
  }
  http::Response r;
  if (found == nullptr) {
    r = http::Problem(404, "not_found", "no dashboard file " + std::string(path.substr(0, 200)));
    r.headers.emplace_back("Cache-Control", "no-cache");
    r.headers.emplace_back("X-Content-Type-Options", "nosniff");
    return r;
  }
  const bool gzip = AcceptsGzip(request.Header("accept-encoding"));
  std::string etag(found->etag);
  if (gzip) etag.insert(etag.size() - 1, "-gz");
  r.content_type = std::string(found->content_type);
  r.headers.emplace_back("Cache-Control",
                         std::string(found->immutable ? kCacheImmutable : kCacheIndex));
  r.headers.emplace_back("Content-Security-Policy", std::string(kContentSecurityPolicy));
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  r.headers.emplace_back("Vary", "Accept-Encoding");
  r.headers.emplace_back("ETag", etag);
  if (const std::string& inm = request.Header("if-none-match");
      !inm.empty() && NoneMatch(inm, etag)) {
    r.status = 304;
    r.content_type.clear();
    return r;
  }
  if (gzip) {
    r.headers.emplace_back("Content-Encoding", "gzip");
    r.body = std::string(found->gzip);
  } else {
    r.body = std::string(found->body);
  }
  return r;
}

void AddRoutes(http::Router* router, AssetTable table) {
  auto handler = [table](http::Request q, http::Responder r) { r.Send(Serve(table, q)); };
  router->Add("GET", "/", handler);
  router->Add("GET", "/index.html", handler);
  router->Add("GET", "/assets/*", handler);
}

}  // namespace outpost::gateway::web
