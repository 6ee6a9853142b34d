#include "series_api.h"

#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <utility>

#include "outpost/gateway/web/assets.h"

namespace outpost::gateway::app::series {
namespace {

using nlohmann::json;

bool ParseInt64(const std::string& s, std::int64_t* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

Status Bad(std::string* bad_param, const std::string& param, const std::string& what) {
  *bad_param = param;
  return Status(Code::kInvalidArgument, param + ": " + what);
}

std::string Quoted(const std::string& v) {
  return "\"" + (v.size() > 64 ? v.substr(0, 64) + "..." : v) + "\"";
}

// A number in CSV: shortest round-trip form (what JSON uses too).
void AppendNumber(std::string* out, double v) { *out += json(v).dump(); }

}  // namespace

Result<SeriesRequest> ParseSeriesRequest(const std::map<std::string, std::string>& params,
                                         std::int64_t now_ms, std::string* bad_param) {
  SeriesRequest q;
  auto get = [&](const char* name) -> const std::string* {
    auto it = params.find(name);
    return it == params.end() ? nullptr : &it->second;
  };
  for (const char* name : {"device", "metric"}) {
    const std::string* v = get(name);
    if (v == nullptr || v->empty()) return Bad(bad_param, name, "required");
    (std::string(name) == "device" ? q.device : q.metric) = *v;
  }
  q.to_ms = now_ms;
  if (const std::string* v = get("to"); v && !ParseInt64(*v, &q.to_ms)) {
    return Bad(bad_param, "to", "expected an integer (ms since the epoch), got " + Quoted(*v));
  }
  q.from_ms = q.to_ms - kDefaultSpanMs;
  if (const std::string* v = get("from"); v && !ParseInt64(*v, &q.from_ms)) {
    return Bad(bad_param, "from", "expected an integer (ms since the epoch), got " + Quoted(*v));
  }
  if (q.from_ms >= q.to_ms) {
    return Bad(
        bad_param, "from",
        "must be before to (" + std::to_string(q.from_ms) + " >= " + std::to_string(q.to_ms) + ")");
  }
  auto count = [&](const char* name, std::size_t max, std::size_t* out) -> Status {
    const std::string* v = get(name);
    if (v == nullptr) return Status::Ok();
    std::int64_t n = 0;
    if (!ParseInt64(*v, &n) || n < 1 || n > static_cast<std::int64_t>(max)) {
      return Bad(bad_param, name,
                 "expected an integer in 1.." + std::to_string(max) + ", got " + Quoted(*v));
    }
    *out = static_cast<std::size_t>(n);
    return Status::Ok();
  };
  OUTPOST_RETURN_IF_ERROR(count("points", kMaxPoints, &q.points));
  if (const std::string* v = get("raw")) {
    if (*v != "0" && *v != "1") return Bad(bad_param, "raw", "expected 0 or 1, got " + Quoted(*v));
    q.raw = *v == "1";
  }
  OUTPOST_RETURN_IF_ERROR(count("limit", kMaxRawLimit, &q.limit));
  const bool paged = get("limit") != nullptr;
  if (const std::string* v = get("cursor")) {
    auto c = DecodeRawCursor(*v);
    if (!c.ok()) return Bad(bad_param, "cursor", "not one this API returned: " + Quoted(*v));
    q.cursor = *c;
  }
  if (const std::string* v = get("format")) {
    if (*v != "json" && *v != "csv") {
      return Bad(bad_param, "format", "expected json or csv, got " + Quoted(*v));
    }
    q.csv = *v == "csv";
  }
  q.whole = q.raw && q.csv && !paged;
  return q;
}

std::string EncodeRawCursor(const store::RawCursor& c) {
  return "r" + std::to_string(c.ts_ms) + "." + std::to_string(c.skip);
}

Result<store::RawCursor> DecodeRawCursor(const std::string& s) {
  const auto dot = s.find('.');
  store::RawCursor c;
  if (s.size() < 4 || s[0] != 'r' || dot == std::string::npos ||
      !ParseInt64(s.substr(1, dot - 1), &c.ts_ms) || !ParseInt64(s.substr(dot + 1), &c.skip) ||
      c.skip < 0) {
    return Status(Code::kInvalidArgument, "bad cursor");
  }
  return c;
}

std::string BucketsJson(const SeriesRequest& q, const store::SeriesBuckets& b) {
  json j = {{"device", q.device},
            {"metric", q.metric},
            {"from", b.from_ms},
            {"to", b.to_ms},
            {"bucket_ms", b.bucket_ms},
            {"t", b.t},
            {"min", b.min},
            {"max", b.max},
            {"avg", b.avg},
            {"n", b.n}};
  return j.dump();
}

std::string BucketsCsv(const store::SeriesBuckets& b) {
  std::string out = "t,min,max,avg,n\n";
  out.reserve(out.size() + b.t.size() * 48);
  for (size_t i = 0; i < b.t.size(); ++i) {
    out += std::to_string(b.t[i]);
    out += ',';
    AppendNumber(&out, b.min[i]);
    out += ',';
    AppendNumber(&out, b.max[i]);
    out += ',';
    AppendNumber(&out, b.avg[i]);
    out += ',';
    out += std::to_string(b.n[i]);
    out += '\n';
  }
  return out;
}

std::string RawJson(const SeriesRequest& q, const store::RawPage& p) {
  json j = {{"device", q.device},
            {"metric", q.metric},
            {"from", q.from_ms},
            {"to", q.to_ms},
            {"t", p.t},
            {"v", p.v},
            {"next_cursor", p.more ? json(EncodeRawCursor(p.next)) : json(nullptr)}};
  return j.dump();
}

std::string RawCsv(const store::RawPage& p) { return "t,v\n" + RawCsvRows(p); }

std::string RawCsvRows(const store::RawPage& p) {
  std::string out;
  out.reserve(p.t.size() * 24);
  for (size_t i = 0; i < p.t.size(); ++i) {
    out += std::to_string(p.t[i]);
    out += ',';
    AppendNumber(&out, p.v[i]);
    out += '\n';
  }
  return out;
}

namespace {

http::Response StoreProblem(const Status& s) {
  if (s.code() == Code::kNotFound) return http::Problem(404, "unknown_device", s.message());
  if (s.code() == Code::kUnavailable) {
    http::Response r = http::Problem(503, "store_unavailable", s.message());
    r.headers.emplace_back("Retry-After", "1");
    return r;
  }
  return http::Problem(500, "store_error", s.message());
}

// Runs on the reader thread.
http::Response Answer(const SeriesRequest& q, store::StoreReader& reader) {
  http::Response r;
  r.headers.emplace_back("Cache-Control", "no-cache");
  if (q.raw) {
    auto page = reader.Raw(q.device, q.metric, q.from_ms, q.to_ms, q.cursor, q.limit);
    if (!page.ok()) return StoreProblem(page.status());
    if (q.csv) {
      r.content_type = "text/csv; charset=utf-8";
      r.body = RawCsv(*page);
      if (page->more) r.headers.emplace_back("X-Next-Cursor", EncodeRawCursor(page->next));
    } else {
      r.body = RawJson(q, *page);
    }
    return r;
  }
  auto b = reader.Buckets(q.device, q.metric, q.from_ms, q.to_ms, q.points);
  if (!b.ok()) return StoreProblem(b.status());
  if (q.csv) {
    r.content_type = "text/csv; charset=utf-8";
    r.body = BucketsCsv(*b);
  } else {
    r.body = BucketsJson(q, *b);
  }
  return r;
}

// A CSV export in progress: one page per reader job, the next queued by the stream once the
// client has read all but kExportDrainedBytes of it. Ends (and is destroyed) when the last page
// has been written, the client leaves or stalls (the server's write timeout), or a read fails
// (the body is then cut short).
struct Export {
  Export(SeriesRequest query, store::ReaderThread* r, ExportStats* s,
         std::shared_ptr<http::Responder> first)
      : q(std::move(query)), reader(r), stats(s), responder(std::move(first)) {}
  ~Export() { --stats->open; }
  Export(const Export&) = delete;
  Export& operator=(const Export&) = delete;

  SeriesRequest q;
  store::ReaderThread* reader;
  ExportStats* stats;
  std::shared_ptr<http::Responder> responder;  // until the first page starts the stream
  std::shared_ptr<http::Stream> stream;
};

// Runs on the reader thread.
void ExportPage(const std::shared_ptr<Export>& e, store::StoreReader& sr) {
  auto page =
      sr.Raw(e->q.device, e->q.metric, e->q.from_ms, e->q.to_ms, e->q.cursor, kExportPageRows);
  if (!page.ok()) {
    if (!e->stream) return e->responder->Send(StoreProblem(page.status()));
    return e->stream->Abort();
  }
  if (!e->stream) {
    http::Response head;
    head.content_type = "text/csv; charset=utf-8";
    head.headers.emplace_back("Cache-Control", "no-cache");
    head.headers.emplace_back("Vary", "Accept-Encoding");
    head.body = RawCsv(*page);
    e->stream = e->responder->StartStream(std::move(head));
    e->responder.reset();
  } else if (!e->stream->Write(RawCsvRows(*page))) {
    return;  // the client left
  }
  if (!page->more) {
    // Completed once the last rows have left for the client's socket; a client that leaves
    // or stalls before that is not counted.
    return e->stream->WhenDrained(0, [e] {
      if (e->stream->closed()) return;
      ++e->stats->completed;
      e->stream->Close();
    });
  }
  e->q.cursor = page->next;
  e->stream->WhenDrained(kExportDrainedBytes, [e] {
    if (e->stream->closed()) return;
    if (!e->reader->Post([e](store::StoreReader& next) { ExportPage(e, next); })) {
      e->stream->Abort();  // the gateway is stopping
    }
  });
}

http::Response Busy(const std::string& why) {
  http::Response busy = http::Problem(503, "busy", why);
  busy.headers.emplace_back("Retry-After", "1");
  return busy;
}

}  // namespace

void AddSeriesRoute(http::Router* router, store::ReaderThread* reader, ExportStats* exports,
                    std::function<std::int64_t()> now_ms) {
  router->Add("GET", "/api/v1/series",
              [reader, exports, now_ms = std::move(now_ms)](http::Request req, http::Responder r) {
                std::string bad_param;
                auto q = ParseSeriesRequest(req.params, now_ms(), &bad_param);
                if (!q.ok()) {
                  return r.Send(http::Problem(400, "bad_" + bad_param, q.status().message()));
                }
                if (reader == nullptr) {
                  return r.Send(http::Problem(503, "unavailable", "the store reader is not open"));
                }
                // The Responder moves into the job: answered from the reader thread, or (when the
                // queue is full) here.
                auto responder = std::make_shared<http::Responder>(std::move(r));
                if (q->whole) {
                  if (exports->open.fetch_add(1) >= kMaxExports) {
                    --exports->open;
                    ++exports->busy;
                    return responder->Send(Busy(std::to_string(kMaxExports) +
                                                " CSV exports are running; retry shortly"));
                  }
                  auto e = std::make_shared<Export>(*std::move(q), reader, exports, responder);
                  if (!reader->TryPost([e](store::StoreReader& sr) { ExportPage(e, sr); })) {
                    ++exports->busy;
                    responder->Send(Busy("more than " + std::to_string(kMaxQueuedQueries) +
                                         " series queries are waiting; retry shortly"));
                  }
                  return;
                }
                // A large answer is gzip-encoded on the reader thread when the client accepts it.
                const bool gzip = web::AcceptsGzip(req.Header("accept-encoding"));
                const bool queued =
                    reader->TryPost([q = *std::move(q), gzip, responder](store::StoreReader& sr) {
                      http::Response a = Answer(q, sr);
                      a.headers.emplace_back("Vary", "Accept-Encoding");
                      if (gzip && a.status == 200) web::GzipBody(&a);
                      responder->Send(std::move(a));
                    });
                if (!queued) {
                  responder->Send(Busy("more than " + std::to_string(kMaxQueuedQueries) +
                                       " series queries are waiting; retry shortly"));
                }
              });
}

}  // namespace outpost::gateway::app::series
