// The web dashboard's files (web/, built by web/build.mjs and embedded at build time) and the
// routes that serve them: GET / (index.html) and GET /assets/<name>.<hash>.<ext>
// (docs/dashboard.md#serving).
// Ownership: the bundled table is static data; Serve and AddRoutes borrow the table, which must
// outlive the router. Thread: any (no state).
// Errors: an unknown asset is 404 not_found (problem+json).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "outpost/http/message.h"
#include "outpost/http/server.h"

namespace outpost::gateway::web {

// One file of the bundle, identity-coded and gzip-coded.
struct Asset {
  std::string_view path;          // "/" or "/assets/app.0123456789.js"
  std::string_view content_type;  // "text/javascript; charset=utf-8"
  std::string_view etag;          // strong tag of the identity body, quoted: "\"0123abcd...\""
  bool immutable;                 // content-hashed name: cacheable for a year
  std::string_view body;
  std::string_view gzip;
};

struct AssetTable {
  const Asset* begin_ptr = nullptr;
  std::size_t size = 0;
  const Asset* begin() const { return begin_ptr; }
  const Asset* end() const { return begin_ptr + size; }
};

// The bundle this binary was built with (generated from web/).
AssetTable BundledAssets();

// Headers every dashboard response carries: the content security policy (only our own origin;
// no inline script or style) and nosniff.
inline constexpr std::string_view kContentSecurityPolicy =
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'";
// Hashed names never change content: a year, immutable. index.html: revalidate every time
// (ETag), so a new gateway build is picked up at once.
inline constexpr std::string_view kCacheImmutable = "public, max-age=31536000, immutable";
inline constexpr std::string_view kCacheIndex = "no-cache";

// Whether an Accept-Encoding header value accepts gzip ("gzip" or "*" with a q other than 0).
bool AcceptsGzip(std::string_view accept_encoding);

// API answers (JSON) smaller than this are sent as they are: gzip would save too little.
inline constexpr std::size_t kMinGzipBytes = 1024;

// Gzip-encodes `body` (zlib, fastest level: the event loop pays for it). Empty on a zlib error.
std::string Gzip(std::string_view body);
// An API answer's body gzip-encoded in place (Content-Encoding: gzip added) when it is at least
// kMinGzipBytes; false, the response untouched, when it is smaller or zlib failed. The caller
// decides whether the client accepts gzip and adds Vary.
bool GzipBody(http::Response* r);

// The response to a GET/HEAD of `request.path` from `table`: "/" and "/index.html" are the
// index; gzip when accepted (Vary: Accept-Encoding; the gzip variant's ETag ends in "-gz");
// 304 when If-None-Match names the variant's tag; 404 not_found for a name not in the table.
http::Response Serve(const AssetTable& table, const http::Request& request);

// Adds GET / , GET /index.html and GET /assets/* serving `table`.
void AddRoutes(http::Router* router, AssetTable table);

}  // namespace outpost::gateway::web
