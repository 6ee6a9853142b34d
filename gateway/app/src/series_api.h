// GET /api/v1/series (docs/api.md#series): the request's parameters, the answer's JSON and CSV
// (pure, unit-tested in series_api_test.cpp), and the route, which parses on the event loop and
// runs the query on the store reader's worker thread (store::ReaderThread), answering from there.
// Private to gateway/app.
// Errors: ParseSeriesRequest returns kInvalidArgument whose message starts with the parameter's
// name ("points: ..."), and names that parameter in *bad_param (the route answers 400
// "bad_<param>").
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "outpost/base/status.h"
#include "outpost/gateway/store/store_reader.h"
#include "outpost/http/server.h"

namespace outpost::gateway::app::series {

inline constexpr std::size_t kDefaultPoints = 500;
inline constexpr std::size_t kMaxPoints = 10'000;
inline constexpr std::size_t kDefaultRawLimit = 1000;
inline constexpr std::size_t kMaxRawLimit = 10'000;
inline constexpr std::int64_t kDefaultSpanMs = 24 * 3600 * 1000;  // from = to - 24 h
// Queries waiting for the reader thread; one more is answered 503 with Retry-After.
inline constexpr std::size_t kMaxQueuedQueries = 32;
// CSV exports (raw=1&format=csv with no limit: every point in the range, streamed): at most
// kMaxExports at once (one more is 503 busy), read kExportPageRows points per reader job, and
// the next page is read once the client has taken all but kExportDrainedBytes of the last, so
// an export holds about one page in memory however long it is and however slowly it is read.
inline constexpr int kMaxExports = 4;
inline constexpr std::size_t kExportPageRows = 4096;
inline constexpr std::size_t kExportDrainedBytes = 64 * 1024;

// Counted for /metrics. Thread-safe.
struct ExportStats {
  std::atomic<int> open{0};
  std::atomic<std::uint64_t> busy{0};       // refused: kMaxExports open, or the reader's queue full
  std::atomic<std::uint64_t> completed{0};  // every point written to the client's socket
};

struct SeriesRequest {
  std::string device, metric;
  std::int64_t from_ms = 0, to_ms = 0;
  std::size_t points = kDefaultPoints;
  bool raw = false;
  std::size_t limit = kDefaultRawLimit;  // raw only
  store::RawCursor cursor;               // raw only
  bool csv = false;
  bool whole = false;  // raw=1&format=csv without limit: every point from the cursor on, streamed
};

// device, metric (required), from, to (ms since the epoch; to defaults to now_ms, from to
// to - 24 h; from < to), points (1..10000), raw (0/1), limit (raw: 1..10000), cursor (raw: as
// returned), format (json | csv).
Result<SeriesRequest> ParseSeriesRequest(const std::map<std::string, std::string>& params,
                                         std::int64_t now_ms, std::string* bad_param);

// The raw cursor, opaque to clients: "r" + ts + "." + skip.
std::string EncodeRawCursor(const store::RawCursor& c);
Result<store::RawCursor> DecodeRawCursor(const std::string& s);

// {"device","metric","from","to","bucket_ms","t":[],"min":[],"max":[],"avg":[],"n":[]}
std::string BucketsJson(const SeriesRequest& q, const store::SeriesBuckets& b);
// "t,min,max,avg,n\n" then one line per bucket.
std::string BucketsCsv(const store::SeriesBuckets& b);
// {"device","metric","from","to","t":[],"v":[],"next_cursor": cursor or null}
std::string RawJson(const SeriesRequest& q, const store::RawPage& p);
// "t,v\n" then one line per point (the next cursor goes in the X-Next-Cursor header).
std::string RawCsv(const store::RawPage& p);
// The lines alone, for the pages of an export after its first.
std::string RawCsvRows(const store::RawPage& p);

// Adds GET /api/v1/series. `reader` (may be null: the route then answers 503) and `exports` must
// outlive the router's use; `now_ms` is called on the loop.
void AddSeriesRoute(http::Router* router, store::ReaderThread* reader, ExportStats* exports,
                    std::function<std::int64_t()> now_ms);

}  // namespace outpost::gateway::app::series
