// The pure parts of GET /api/v1/series (series_api.h): parameters, cursors, JSON and CSV.
#include "series_api.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "outpost/testing/status_matchers.h"

namespace outpost::gateway::app::series {
namespace {

constexpr std::int64_t kNow = 1'700'000'000'000;

std::string BadParam(const std::map<std::string, std::string>& params) {
  std::string bad;
  auto q = ParseSeriesRequest(params, kNow, &bad);
  EXPECT_FALSE(q.ok());
  if (!q.ok()) {
    EXPECT_EQ(q.status().message().rfind(bad + ": ", 0), 0u) << q.status().message();
  }
  return bad;
}

TEST(SeriesApiTest, DefaultsAreLast24HoursIn500Buckets) {
  std::string bad;
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      auto q, ParseSeriesRequest({{"device", "d"}, {"metric", "temperature"}}, kNow, &bad));
  EXPECT_EQ(q.to_ms, kNow);
  EXPECT_EQ(q.from_ms, kNow - 24 * 3600 * 1000);
  EXPECT_EQ(q.points, 500u);
  EXPECT_FALSE(q.raw);
  EXPECT_FALSE(q.csv);
}

// Raw CSV without a limit is the whole range, streamed; a limit makes it one page again.
TEST(SeriesApiTest, RawCsvWithoutALimitIsAWholeExport) {
  std::string bad;
  auto whole = [&](std::map<std::string, std::string> extra) {
    extra["device"] = "d";
    extra["metric"] = "temperature";
    auto q = ParseSeriesRequest(extra, kNow, &bad);
    EXPECT_TRUE(q.ok()) << q.status().message();
    return q.ok() && q->whole;
  };
  EXPECT_TRUE(whole({{"raw", "1"}, {"format", "csv"}}));
  EXPECT_TRUE(whole({{"raw", "1"}, {"format", "csv"}, {"cursor", "r5.0"}}));
  EXPECT_FALSE(whole({{"raw", "1"}, {"format", "csv"}, {"limit", "10"}}));
  EXPECT_FALSE(whole({{"raw", "1"}}));
  EXPECT_FALSE(whole({{"format", "csv"}}));
}

TEST(SeriesApiTest, BadInputNamesItsParameter) {
  const std::map<std::string, std::string> ok = {{"device", "d"}, {"metric", "m"}};
  auto with = [&](std::string k, std::string v) {
    auto p = ok;
    p[k] = v;
    return p;
  };
  EXPECT_EQ(BadParam({{"metric", "m"}}), "device");
  EXPECT_EQ(BadParam({{"device", "d"}}), "metric");
  EXPECT_EQ(BadParam(with("device", "")), "device");
  EXPECT_EQ(BadParam(with("from", "abc")), "from");
  EXPECT_EQ(BadParam(with("to", "1e3")), "to");
  auto p = with("from", "100");
  p["to"] = "100";
  EXPECT_EQ(BadParam(p), "from");
  EXPECT_EQ(BadParam(with("points", "0")), "points");
  EXPECT_EQ(BadParam(with("points", "10001")), "points");
  EXPECT_EQ(BadParam(with("points", "-5")), "points");
  EXPECT_EQ(BadParam(with("raw", "yes")), "raw");
  EXPECT_EQ(BadParam(with("limit", "0")), "limit");
  EXPECT_EQ(BadParam(with("cursor", "x")), "cursor");
  EXPECT_EQ(BadParam(with("cursor", "r12.-1")), "cursor");
  EXPECT_EQ(BadParam(with("format", "xml")), "format");
  std::string bad;
  OUTPOST_EXPECT_OK(ParseSeriesRequest(with("points", "10000"), kNow, &bad));
}

TEST(SeriesApiTest, RawCursorRoundTrips) {
  store::RawCursor c{-1234, 7};
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto d, DecodeRawCursor(EncodeRawCursor(c)));
  EXPECT_EQ(d.ts_ms, -1234);
  EXPECT_EQ(d.skip, 7);
}

TEST(SeriesApiTest, ColumnarJsonAndCsv) {
  store::SeriesBuckets b;
  b.from_ms = 0;
  b.to_ms = 100;
  b.bucket_ms = 50;
  b.t = {0, 50};
  b.min = {1, 2.5};
  b.max = {3, 2.5};
  b.avg = {2, 2.5};
  b.n = {2, 1};
  SeriesRequest q;
  q.device = "d";
  q.metric = "m";
  auto j = nlohmann::json::parse(BucketsJson(q, b));
  EXPECT_EQ(j["bucket_ms"], 50);
  EXPECT_EQ(j["t"], nlohmann::json({0, 50}));
  EXPECT_EQ(j["max"], nlohmann::json({3.0, 2.5}));
  EXPECT_EQ(j["n"], nlohmann::json({2, 1}));
  EXPECT_EQ(BucketsCsv(b), "t,min,max,avg,n\n0,1.0,3.0,2.0,2\n50,2.5,2.5,2.5,1\n");
  store::RawPage p;
  p.t = {5};
  p.v = {0.1};
  p.more = true;
  p.next = {6, 0};
  auto r = nlohmann::json::parse(RawJson(q, p));
  EXPECT_EQ(r["next_cursor"], "r6.0");
  EXPECT_EQ(RawCsv(p), "t,v\n5,0.1\n");
}

}  // namespace
}  // namespace outpost::gateway::app::series
