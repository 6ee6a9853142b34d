#include "outpost/gateway/web/assets.h"

#include <gtest/gtest.h>

#include <string>

namespace outpost::gateway::web {
namespace {

constexpr Asset kTable[] = {
    {"/", "text/html; charset=utf-8", "\"i1\"", false, "<html>", "GZ-HTML"},
    {"/assets/app.abc.js", "text/javascript; charset=utf-8", "\"a1\"", true, "js();", "GZ-JS"},
};
const AssetTable kFake{kTable, 2};

http::Request Get(std::string path, std::string accept = "", std::string inm = "") {
  http::Request q;
  q.method = "GET";
  q.path = q.target = std::move(path);
  if (!accept.empty()) q.headers["accept-encoding"] = accept;
  if (!inm.empty()) q.headers["if-none-match"] = inm;
  return q;
}

std::string Header(const http::Response& r, const std::string& name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return "";
}

TEST(AcceptsGzip, ReadsCodingsAndQValues) {
  EXPECT_TRUE(AcceptsGzip("gzip"));
  EXPECT_TRUE(AcceptsGzip("gzip, deflate, br"));
  EXPECT_TRUE(AcceptsGzip("br;q=1.0, GZIP;q=0.5"));
  EXPECT_TRUE(AcceptsGzip("*"));
  EXPECT_FALSE(AcceptsGzip(""));
  EXPECT_FALSE(AcceptsGzip("br, deflate"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0"));
  EXPECT_FALSE(AcceptsGzip("gzip; q=0.000"));
  EXPECT_FALSE(AcceptsGzip("xgzip"));
}

TEST(Serve, IndexIsRevalidatedEveryTimeWithTheStrictHeaders) {
  for (const char* path : {"/", "/index.html"}) {
    http::Response r = Serve(kFake, Get(path));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "<html>");
    EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
    EXPECT_EQ(Header(r, "Cache-Control"), "no-cache");
    EXPECT_EQ(Header(r, "Content-Security-Policy"), kContentSecurityPolicy);
    EXPECT_NE(Header(r, "Content-Security-Policy").find("default-src 'self'"), std::string::npos);
    EXPECT_EQ(Header(r, "X-Content-Type-Options"), "nosniff");
    EXPECT_EQ(Header(r, "ETag"), "\"i1\"");
    EXPECT_EQ(Header(r, "Content-Encoding"), "");
  }
}

TEST(Serve, HashedNamesAreImmutableAndGzippedWhenAccepted) {
  http::Response r = Serve(kFake, Get("/assets/app.abc.js", "gzip, deflate"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "GZ-JS");
  EXPECT_EQ(Header(r, "Content-Encoding"), "gzip");
  EXPECT_EQ(Header(r, "Vary"), "Accept-Encoding");
  EXPECT_EQ(Header(r, "Cache-Control"), kCacheImmutable);
  EXPECT_EQ(Header(r, "ETag"), "\"a1-gz\"");
  http::Response plain = Serve(kFake, Get("/assets/app.abc.js", "gzip;q=0"));
  EXPECT_EQ(plain.body, "js();");
  EXPECT_EQ(Header(plain, "ETag"), "\"a1\"");
}

TEST(Serve, IfNoneMatchOfTheVariantIs304WithoutABody) {
  http::Response r = Serve(kFake, Get("/assets/app.abc.js", "gzip", "\"a1-gz\""));
  EXPECT_EQ(r.status, 304);
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(Header(r, "ETag"), "\"a1-gz\"");
  // The identity tag does not validate the gzip variant, nor the reverse.
  EXPECT_EQ(Serve(kFake, Get("/assets/app.abc.js", "gzip", "\"a1\"")).status, 200);
  EXPECT_EQ(Serve(kFake, Get("/", "", "W/\"x\", \"i1\"")).status, 304);
  EXPECT_EQ(Serve(kFake, Get("/", "", "*")).status, 304);
}

TEST(Serve, UnknownFilesAre404ProblemsNamingThem) {
  http::Response r = Serve(kFake, Get("/assets/app.old.js"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.content_type, "application/problem+json");
  EXPECT_NE(r.body.find("not_found"), std::string::npos);
  EXPECT_NE(r.body.find("/assets/app.old.js"), std::string::npos);
  EXPECT_EQ(Serve(kFake, Get("/assets/")).status, 404);
}

TEST(Gzip, WritesAGzipStreamThatIsSmallerForRepetitiveJson) {
  std::string json = "[";
  for (int i = 0; i < 1000; ++i) json += R"({"id":"node-00001","status":"online"},)";
  json += "{}]";
  const std::string gz = Gzip(json);
  ASSERT_GE(gz.size(), 10U);
  EXPECT_EQ(gz.substr(0, 2), std::string("\x1f\x8b", 2));
  EXPECT_LT(gz.size() * 10, json.size());
  EXPECT_EQ(Gzip("").substr(0, 2), std::string("\x1f\x8b", 2));
}

TEST(BundledAssets, HoldTheIndexAndHashedFilesThatItNames) {
  AssetTable t = BundledAssets();
  ASSERT_GE(t.size, 3U);
  const Asset* index = nullptr;
  for (const Asset& a : t) {
    if (a.path == "/") index = &a;
    EXPECT_FALSE(a.body.empty()) << a.path;
    EXPECT_FALSE(a.gzip.empty()) << a.path;
    EXPECT_EQ(a.immutable, a.path != "/") << a.path;
    // gzip magic: the stored variant really is gzip.
    EXPECT_EQ(a.gzip.substr(0, 2), std::string_view("\x1f\x8b", 2)) << a.path;
  }
  ASSERT_NE(index, nullptr);
  for (const Asset& a : t) {
    if (a.path == "/" || a.path.find("app.") == std::string_view::npos) continue;
    EXPECT_NE(index->body.find(a.path), std::string_view::npos) << a.path << " not in index.html";
  }
}

}  // namespace
}  // namespace outpost::gateway::web
