// The hostile clients of the gateway's CSV export (docs/api.md#series) against the real binary:
// a real Mosquitto, real SQLite, raw loopback HTTP. A test of its own, run alone (SERIAL): each
// export here is larger than the socket buffers (several MiB) and one test floods the gateway
// with 200 of them. About 6 s natively and 33 s under qemu-aarch64, so the cross builds run it.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gateway_api_client.h"
#include "outpost/gateway/model/write_set.h"
#include "outpost/testing/child_process.h"
#include "outpost/testing/wait_until.h"

namespace outpost::testing {
namespace {

// The `field`th number (0-based) of a /proc/sys file such as net/ipv4/tcp_wmem; -1 when absent.
long ProcSysNumber(const std::string& path, int field) {
  std::ifstream in("/proc/sys/" + path);
  long v = -1;
  for (int i = 0; i <= field; ++i) {
    if (!(in >> v)) return -1;
  }
  return v;
}

// The hostile clients of a CSV export (docs/api.md#series): clients that never read, leave
// half-way, or open and drop exports by the hundred. Each export must hold more than the
// socket buffers between the gateway and a client that reads nothing: the kernel grows the
// gateway's send buffer up to tcp_wmem's maximum (4 MiB by default) whoever reads, while a
// client's receive buffer is pinned small here (kClientReceiveBuffer), so with more bytes than
// both an export that is not read stalls on its drain, holding its slot.
class GatewayExportTest : public GatewayApiTest {
 protected:
  static constexpr int kMaxExports = 4;  // series::kMaxExports
  static constexpr int kClientReceiveBuffer = 64 * 1024;
  static constexpr std::size_t kBytesPerRow = 22;  // "1764845125123,1234.25\n"

  // Rows for an export of 1.5 times the gateway's largest send buffer plus 1 MiB.
  static int RowsBeyondTheSocketBuffers() {
    long wmem = ProcSysNumber("net/ipv4/tcp_wmem", 2);
    if (wmem <= 0) wmem = 4 << 20;
    return static_cast<int>(std::min<long>(3'000'000, (wmem * 3 / 2 + (1 << 20)) / kBytesPerRow));
  }

  // Starts everything with `n` readings of x1's temperature, 10 ms apart up to now, written
  // straight into the store while the gateway is stopped (published through the broker they
  // would take a minute); returns the CSV an export of them answers.
  std::string StartWithReadings(int n) {
    StartWith({"d1"});
    if (HasFatalFailure()) return "";
    OUTPOST_EXPECT_OK(h_.StopGateway());
    std::string csv = "t,v\n";
    {
      auto store = h_.OpenStore();
      OUTPOST_EXPECT_OK(store);
      if (!store.ok()) return "";
      const std::int64_t t0 = WallMs() - static_cast<std::int64_t>(n) * 10;
      gateway::model::WriteSet batch;
      for (int i = 0; i < n; ++i) {
        gateway::model::ReadingRow r{};
        r.device_id = "x1";
        r.ts_ms = t0 + static_cast<std::int64_t>(i) * 10;
        r.received_ms = r.ts_ms;
        const double v = i * 0.25;
        r.metrics = {{"temperature", v, false}};
        csv += std::to_string(r.ts_ms) + "," + json(v).dump() + "\n";
        batch.readings.push_back(std::move(r));
        if (batch.readings.size() == 10'000 || i == n - 1) {
          OUTPOST_EXPECT_OK((*store)->Write(batch));
          batch.clear();
        }
      }
    }
    OUTPOST_EXPECT_OK(h_.StartGateway());
    return csv;
  }

  // The value of an unlabelled sample in the gateway's /metrics; -1 when unreadable.
  double Metric(const std::string& name) {
    auto m = Get(api(), "/metrics");
    return m.ok() && m->status == 200 ? Sample(m->body, name) : -1;
  }
  // Waits (bounded) until no export is open: the gateway freed every slot.
  ::testing::AssertionResult WaitNoExportOpen() {
    return WaitUntil("exports_open back to 0", std::chrono::seconds(20),
                     [&] { return Metric("outpost_gateway_series_exports_open") == 0; });
  }

  // Every point of x1 (raw CSV without a limit: an export).
  static std::string ExportTarget() {
    return "/api/v1/series?device=x1&metric=temperature&raw=1&format=csv" +
           RangeAroundNow(3'600'000, 1000);
  }
  std::string ExportRequest() const {
    return "GET " + ExportTarget() + " HTTP/1.1\r\nHost: x\r\n" + h_.auth_header() +
           "Connection: close\r\n\r\n";
  }
  // A whole export, read as fast as the client can.
  Result<RawHttpResponse> Export() {
    auto c = RawHttpConnection::Connect(port());
    if (!c.ok()) return c.status();
    return c->Exchange(ExportRequest(), std::chrono::seconds(60));
  }
  // Sends an export request on a connection with a small, fixed receive buffer and reads
  // nothing of the answer.
  Result<RawHttpConnection> OpenExport() {
    auto c = RawHttpConnection::Connect(port());
    if (!c.ok()) return c.status();
    const int size = kClientReceiveBuffer;
    ::setsockopt(c->fd(), SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    const std::string req = ExportRequest();
    if (c->SendSome(req) != static_cast<long>(req.size())) return Internal("request not sent");
    return c;
  }
};

// Four exports whose clients read nothing hold the four slots: a fifth is 503 busy with
// Retry-After and counted, while the rest of the API answers; once the holders close, their
// slots are free (not counted as completed) and the next export is whole.
TEST_F(GatewayExportTest, AFifthExportIsBusyWhileFourStalledOnesHoldTheirSlots) {
  const std::string want = StartWithReadings(RowsBeyondTheSocketBuffers());
  ASSERT_FALSE(HasFailure());
  std::vector<RawHttpConnection> holders;
  for (int i = 0; i < kMaxExports; ++i) {
    OUTPOST_ASSERT_OK_AND_ASSIGN(auto c, OpenExport());
    holders.push_back(std::move(c));
  }
  ASSERT_TRUE(WaitUntil("four exports open", std::chrono::seconds(10),
                        [&] { return Metric("outpost_gateway_series_exports_open") == 4; }));

  OUTPOST_ASSERT_OK_AND_ASSIGN(auto fifth, Export());
  EXPECT_EQ(fifth.status, 503) << fifth.body.substr(0, 200);
  EXPECT_EQ(fifth.Header("content-type"), "application/problem+json");
  EXPECT_EQ(fifth.Header("retry-after"), "1");
  json p = json::parse(fifth.body, nullptr, false);
  ASSERT_FALSE(p.is_discarded()) << fifth.body.substr(0, 200);
  EXPECT_EQ(p["error"]["code"], "busy");
  EXPECT_NE(p["detail"].get<std::string>().find("4 CSV exports"), std::string::npos) << p;

  // Everything else answers meanwhile: health, a page of raw points, buckets, a paged CSV.
  OUTPOST_ASSERT_OK_AND_ASSIGN(json health, GetJson(api(), "/api/v1/health"));
  EXPECT_EQ(health["mqtt"]["connected"], true);
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      json page, GetJson(api(), "/api/v1/series?device=x1&metric=temperature&raw=1&limit=10" +
                                    RangeAroundNow(3'600'000, 1000)));
  EXPECT_EQ(page["t"].size(), 10u);
  EXPECT_TRUE(page["next_cursor"].is_string());
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      json buckets, GetJson(api(), "/api/v1/series?device=x1&metric=temperature&points=10" +
                                       RangeAroundNow(3'600'000, 1000)));
  EXPECT_FALSE(buckets["t"].empty());
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto paged_csv,
                               Get(api(),
                                   "/api/v1/series?device=x1&metric=temperature&raw=1&limit=5"
                                   "&format=csv" +
                                       RangeAroundNow(3'600'000, 1000)));
  EXPECT_EQ(paged_csv.status, 200);
  EXPECT_EQ(std::count(paged_csv.body.begin(), paged_csv.body.end(), '\n'), 6);

  // The four are still held (stalled, not finished), and the refusal was counted.
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto m, Get(api(), "/metrics"));
  EXPECT_EQ(Sample(m.body, "outpost_gateway_series_exports_open"), 4);
  EXPECT_EQ(Sample(m.body, "outpost_gateway_series_exports_busy_total"), 1);
  EXPECT_EQ(Sample(m.body, "outpost_gateway_series_exports_completed_total"), 0);
  EXPECT_EQ(Sample(m.body, "outpost_gateway_http_streams_open"), 4);

  for (auto& c : holders) c.Close();
  ASSERT_TRUE(WaitNoExportOpen());
  EXPECT_EQ(Metric("outpost_gateway_series_exports_completed_total"), 0);

  OUTPOST_ASSERT_OK_AND_ASSIGN(auto next, Export());
  ASSERT_EQ(next.status, 200) << next.body.substr(0, 200);
  EXPECT_EQ(next.body.size(), want.size());
  EXPECT_TRUE(next.body == want) << "the export after the holders is not every row";
  EXPECT_EQ(Metric("outpost_gateway_series_exports_completed_total"), 1);
  EXPECT_EQ(Metric("outpost_gateway_series_exports_busy_total"), 1);
  OUTPOST_EXPECT_OK(h_.StopGateway());
}

// A client that reads part of an export and leaves, and one that leaves without reading: the
// gateway frees both slots, counts neither as completed, and the next exports are whole.
TEST_F(GatewayExportTest, AClientThatLeavesMidExportFreesItsSlot) {
  const std::string want = StartWithReadings(RowsBeyondTheSocketBuffers());
  ASSERT_FALSE(HasFailure());
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto reader, OpenExport());
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto silent, OpenExport());
  constexpr std::size_t kRead = 256 * 1024;
  ASSERT_TRUE(WaitUntil("256 KiB of the export", std::chrono::seconds(20),
                        [&] { return reader.closed() || reader.received().size() >= kRead; }));
  ASSERT_GE(reader.received().size(), kRead) << "the gateway closed the export early";
  EXPECT_EQ(reader.received().rfind("HTTP/1.1 200 ", 0), 0u) << reader.received().substr(0, 200);
  EXPECT_EQ(Metric("outpost_gateway_series_exports_open"), 2);
  reader.Close();
  silent.Close();
  ASSERT_TRUE(WaitNoExportOpen());
  ASSERT_TRUE(h_.gateway_running());
  EXPECT_EQ(Metric("outpost_gateway_series_exports_completed_total"), 0);
  EXPECT_EQ(Metric("outpost_gateway_http_streams_open"), 0);

  for (int i = 1; i <= 2; ++i) {
    OUTPOST_ASSERT_OK_AND_ASSIGN(auto whole, Export());
    ASSERT_EQ(whole.status, 200) << whole.body.substr(0, 200);
    EXPECT_TRUE(whole.body == want)
        << "export " << i << ": " << whole.body.size() << " bytes of " << want.size();
    EXPECT_EQ(Metric("outpost_gateway_series_exports_completed_total"), i);
  }
  OUTPOST_EXPECT_OK(h_.StopGateway());
}

// 200 exports opened and dropped from 4 threads (bounded in count and time): some closed at once,
// some after their answer's head (200 or 503 busy, nothing else), some after 64 KiB of rows.
// Afterwards the gateway is alive, holds no export, stream or connection of theirs, its memory
// has not grown with them, and an export is whole.
TEST_F(GatewayExportTest, AFloodOfDroppedExportsLeavesNothingBehind) {
  const std::string want = StartWithReadings(RowsBeyondTheSocketBuffers());
  ASSERT_FALSE(HasFailure());
  // Warm: the reader's SQLite cache and the allocator's arenas are at their working size.
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto warm, Export());
  ASSERT_TRUE(warm.body == want) << warm.body.size() << " bytes of " << want.size();
  const long rss_before = ProcStatusKib(h_.gateway_pid(), "VmRSS");
  ASSERT_GT(rss_before, 0);

  constexpr int kThreads = 4;
  constexpr int kPerThread = 50;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  std::atomic<int> sent{0}, ok{0}, busy{0}, other{0}, connect_failed{0};
  std::mutex mu;
  std::string first_other;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread && std::chrono::steady_clock::now() < deadline; ++i) {
        auto c = OpenExport();
        if (!c.ok()) {
          ++connect_failed;
          continue;
        }
        ++sent;
        const int mode = (t + i) % 3;
        if (mode == 0) continue;  // dropped at once
        const std::size_t want_bytes = mode == 1 ? 0 : 64 * 1024;
        const auto until =
            std::min(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(10));
        std::size_t head_end = std::string::npos;
        while (std::chrono::steady_clock::now() < until) {
          const bool closed = c->closed();
          head_end = c->received().find("\r\n\r\n");
          if (closed || (head_end != std::string::npos &&
                         c->received().size() >= head_end + 4 + want_bytes)) {
            break;
          }
          pollfd p{c->fd(), POLLIN, 0};
          ::poll(&p, 1, 50);
        }
        const std::string& got = c->received();
        if (got.rfind("HTTP/1.1 200 ", 0) == 0) {
          ++ok;
        } else if (got.rfind("HTTP/1.1 503 ", 0) == 0 &&
                   got.find("\"busy\"") != std::string::npos) {
          ++busy;
        } else {
          ++other;
          std::lock_guard<std::mutex> lock(mu);
          if (first_other.empty()) first_other = got.substr(0, 300);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  std::printf("[ flood ] %d sent: %d 200, %d 503 busy, %d other, %d connects failed\n", sent.load(),
              ok.load(), busy.load(), other.load(), connect_failed.load());
  EXPECT_EQ(sent.load(), kThreads * kPerThread) << "the flood did not finish in time";
  EXPECT_EQ(connect_failed.load(), 0);
  EXPECT_EQ(other.load(), 0) << first_other;
  EXPECT_GT(ok.load(), 0);

  ASSERT_TRUE(WaitNoExportOpen());
  ASSERT_TRUE(h_.gateway_running());
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto z, Get(api(), "/healthz"));
  EXPECT_EQ(z.status, 200);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto m, Get(api(), "/metrics"));
  EXPECT_EQ(Sample(m.body, "outpost_gateway_http_streams_open"), 0);
  EXPECT_EQ(Sample(m.body, "outpost_gateway_http_connections_open"), 1) << "only this one";
  // None of the dropped exports was whole; the refusals were counted.
  EXPECT_EQ(Sample(m.body, "outpost_gateway_series_exports_completed_total"), 1);
  EXPECT_GE(Sample(m.body, "outpost_gateway_series_exports_busy_total"), busy.load());

  OUTPOST_ASSERT_OK_AND_ASSIGN(auto last, Export());
  ASSERT_EQ(last.status, 200) << last.body.substr(0, 200);
  EXPECT_TRUE(last.body == want) << last.body.size() << " bytes of " << want.size();
  const long rss_after = ProcStatusKib(h_.gateway_pid(), "VmRSS");
  std::printf("[ memory ] VmRSS %ld KiB before the flood, %ld KiB after (+%ld)\n", rss_before,
              rss_after, rss_after - rss_before);
  // Generous: one export holds about one page (~100 KiB); 200 leaked ones would be ~20 MiB.
  EXPECT_LT(rss_after - rss_before, 16 * 1024) << "VmRSS grew by more than 16 MiB";
  OUTPOST_EXPECT_OK(h_.StopGateway());
}

}  // namespace
}  // namespace outpost::testing
