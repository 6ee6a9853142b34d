// uplink_bench: draining a backlog from the gateway's outbox into the real outpost-cloud on
// loopback, against the cloud's own ingest ceiling measured in the same run. Not a test (CI
// never runs it); docs/benchmarks.md ("Uplink") has the method, the command and the numbers.
//
//   (1) backlog: N readings (D devices interleaved, boot/seq, the seed's five metrics) are
//       written to a fresh gateway store with the outbox on, as the writer's group commit does
//       while the cloud is down (Store::Write batches of 10,000, synchronous=NORMAL). Timed too:
//       that is the cost the outbox adds to ingest.
//   (2) drain: outpost-cloud serve (SQLite) starts; the uplink engine (gateway/uplink: batches
//       of --batch readings, persisted key + body, HttpSender keep-alive) drains the backlog
//       until it is empty. readings/s = N / drain time.
//   (3) ceiling: a second outpost-cloud on a fresh database is sent the same number of
//       pre-built batch bodies (same size, fresh keys) by one client back to back: the cloud's
//       ingest rate, with nothing of the gateway in the way.
// Prints readings/s of each and the ratio drain/ceiling.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <string>
#include <thread>

#include "outpost/base/clock.h"
#include "outpost/gateway/ingest/outbox_items.h"
#include "outpost/gateway/store/store.h"
#include "outpost/gateway/uplink/codec.h"
#include "outpost/gateway/uplink/sender.h"
#include "outpost/gateway/uplink/uplink.h"
#include "outpost/testing/cloud_process.h"
#include "outpost/testing/postgres_process.h"
#include "outpost/testing/temp_dir.h"

#ifndef OUTPOST_CLOUD_BIN
#define OUTPOST_CLOUD_BIN "outpost-cloud"
#endif

namespace {

using namespace outpost;
using namespace outpost::gateway;
using Clk = std::chrono::steady_clock;

double Secs(Clk::duration d) { return std::chrono::duration<double>(d).count(); }

struct CloudProc {
  std::unique_ptr<testing::CloudProcess> proc;
  std::string token;
  int port = 0;
};

// `pg_uri` empty: SQLite in `dir`; else that PostgreSQL database.
bool StartCloud(testing::TempDir& dir, const std::string& name, const std::string& sync,
                const std::string& pg_uri, CloudProc* out) {
  const std::string db = pg_uri.empty() ? "sqlite:" + dir.File(name + ".db") : pg_uri;
  auto token =
      testing::CreateCloudToken(db, "gw_bench", dir.path(), /*admin=*/false, OUTPOST_CLOUD_BIN);
  if (!token.ok()) {
    std::fprintf(stderr, "cloud token: %s\n", token.status().ToString().c_str());
    return false;
  }
  out->token = *token;
  testing::CloudOptions o;
  o.binary = OUTPOST_CLOUD_BIN;
  o.database = db;
  o.extra_args = {"--log-level", "warn", "--sqlite-synchronous", sync};
  o.log_dir = dir.path();
  auto p = testing::CloudProcess::Start(std::move(o));
  if (!p.ok()) {
    std::fprintf(stderr, "cloud did not start: %s\n", p.status().ToString().c_str());
    return false;
  }
  out->proc = std::move(p).value();
  out->port = out->proc->port();
  return true;
}

model::ReadingRow Reading(int device, std::uint64_t seq, std::int64_t ts) {
  model::ReadingRow r;
  r.device_id = "dev" + std::to_string(device);
  r.has_seq = true;
  r.boot = 1;
  r.seq = seq;
  r.has_device_ts = true;
  r.device_ts_raw = ts;
  r.ts_ms = ts;
  r.ts_from_device = true;
  r.received_ms = ts;
  r.metrics = {{"temperature", 20 + (seq % 100) * 0.1, false},
               {"humidity", 40 + (seq % 50) * 0.2, false},
               {"motion", static_cast<double>(seq % 2), true},
               {"battery", 90, false},
               {"rssi", -60 - static_cast<double>(device % 20), false}};
  return r;
}

class DirectOutbox final : public uplink::OutboxPort {
 public:
  explicit DirectOutbox(store::Store& s) : s_(s) {}
  Status Run(const std::function<Status(model::Outbox&)>& fn) override {
    auto t = Clk::now();
    Status st = fn(s_.outbox());
    store_time += Clk::now() - t;
    return st;
  }
  model::OutboxStats LatestStats() override { return s_.outbox().stats(); }
  Clk::duration store_time{};  // time in outbox operations (form, persist, finish)

 private:
  store::Store& s_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"uplink_bench: outbox drain into outpost-cloud vs the cloud's ingest ceiling"};
  std::int64_t n = 1'000'000;
  int devices = 1000;
  std::size_t batch = 5000;
  std::string protocol = "native";
  std::string cloud_sync = "normal";
  std::string backend = "sqlite";
  app.add_option("--readings", n, "backlog size")->check(CLI::PositiveNumber);
  app.add_option("--devices", devices, "devices, interleaved")->check(CLI::PositiveNumber);
  app.add_option("--batch", batch, "cloud.batch_max_readings")->check(CLI::Range(1, 100000));
  app.add_option("--protocol", protocol, "seed or native")
      ->check(CLI::IsMember({"seed", "native"}));
  app.add_option("--cloud-sync", cloud_sync, "the cloud's --sqlite-synchronous (full|normal)");
  app.add_option("--backend", backend,
                 "the cloud's database: sqlite, or postgres (a throwaway "
                 "server per cloud, durable: fsync on)")
      ->check(CLI::IsMember({"sqlite", "postgres"}));
  CLI11_PARSE(app, argc, argv);

  testing::TempDir dir("outpost-uplink-bench");
  const std::string backend_text =
      backend == "sqlite" ? "sqlite (synchronous=" + cloud_sync + ")" : "postgres (fsync on)";
  std::printf("uplink_bench: %" PRId64
              " readings, %d devices, batches of %zu, %s protocol, cloud backend %s\n",
              n, devices, batch, protocol.c_str(), backend_text.c_str());
  std::unique_ptr<testing::PostgresProcess> pg_drain, pg_ceiling;
  if (backend == "postgres") {
    testing::PostgresOptions po;
    po.durable = true;
    auto a = testing::PostgresProcess::Start(po);
    auto b = testing::PostgresProcess::Start(po);
    if (!a.ok() || !b.ok()) {
      std::fprintf(stderr, "postgres: %s %s\n", a.status().ToString().c_str(),
                   b.status().ToString().c_str());
      return 1;
    }
    pg_drain = std::move(a).value();
    pg_ceiling = std::move(b).value();
  }

  // (0) the same readings without the outbox: what the outbox adds to the store's write path.
  double plain_s = 0;
  {
    store::Options po;
    po.path = dir.File("plain.db");
    po.synchronous = store::Synchronous::kNormal;
    auto plain = store::Store::Open(po);
    if (!plain.ok()) return 1;
    auto p0 = Clk::now();
    std::int64_t w = 0;
    while (w < n) {
      model::WriteSet b;
      for (int i = 0; i < 10'000 && w < n; ++i, ++w) {
        b.readings.push_back(Reading(static_cast<int>(w % devices),
                                     static_cast<std::uint64_t>(w / devices + 1),
                                     1'764'201'600'000 + w));
      }
      if (!(*plain)->Write(b).ok()) return 1;
    }
    plain_s = Secs(Clk::now() - p0);
    std::printf("(0) store:   %" PRId64 " readings without the outbox in %.2f s (%.0f/s)\n", n,
                plain_s, n / plain_s);
  }

  // (1) backlog.
  store::Options so;
  so.path = dir.File("gateway.db");
  so.synchronous = store::Synchronous::kNormal;
  so.outbox.enabled = true;
  so.outbox.quota_bytes = 4ll << 30;
  auto opened = store::Store::Open(so);
  if (!opened.ok()) {
    std::fprintf(stderr, "%s\n", opened.status().ToString().c_str());
    return 1;
  }
  auto st = std::move(opened).value();
  const std::int64_t t0_ms = 1'764'201'600'000;
  auto b0 = Clk::now();
  std::int64_t written = 0;
  while (written < n) {
    model::WriteSet b;
    for (int i = 0; i < 10'000 && written < n; ++i, ++written) {
      int dev = static_cast<int>(written % devices);
      auto seq = static_cast<std::uint64_t>(written / devices + 1);
      model::ReadingRow r = Reading(dev, seq, t0_ms + written);
      b.outbox.push_back(ingest::ReadingItem(r));
      b.readings.push_back(std::move(r));
    }
    Status s = st->Write(b);
    if (!s.ok()) {
      std::fprintf(stderr, "write: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  const double backlog_s = Secs(Clk::now() - b0);
  const auto backlog = st->stats().outbox;
  std::printf("(1) backlog: %" PRId64
              " readings + outbox items written in %.2f s (%.0f/s), "
              "outbox %.1f MB (%.0f bytes/item)\n",
              n, backlog_s, n / backlog_s, backlog.bytes / 1e6, double(backlog.bytes) / n);
  std::printf("    outbox cost on the write path (encode + insert): %.2fx the time of (0)\n",
              backlog_s / plain_s);

  // (2) drain into the real cloud.
  CloudProc cloud;
  if (!StartCloud(dir, "cloud", cloud_sync, pg_drain ? pg_drain->uri() : "", &cloud)) return 1;
  uplink::HttpSenderOptions ho;
  ho.endpoint = "http://127.0.0.1:" + std::to_string(cloud.port);
  ho.token = cloud.token;
  auto sender = uplink::MakeHttpSender(ho);
  if (!sender.ok()) return 1;
  DirectOutbox port(*st);
  SystemClock clock;
  uplink::Options uo;
  uo.protocol = protocol == "seed" ? uplink::Protocol::kSeed : uplink::Protocol::kNative;
  uo.gateway_id = "gw_bench";
  uo.boot_id = "bench";
  uo.batch_max_items = batch;
  uo.batch_max_bytes = 16 << 20;
  uo.linger_ms = 0;
  uplink::Uplink up(uo, port, **sender, clock);
  auto d0 = Clk::now();
  std::int64_t steps = 0;
  while (true) {
    const auto o = st->stats().outbox;
    if (o.readings == 0) break;
    std::int64_t wait = up.Step();
    ++steps;
    if (wait > 0 && up.status().attempt > 0) {
      std::fprintf(stderr, "retrying: %s\n", up.status().last_error.c_str());
      std::this_thread::sleep_for(std::chrono::milliseconds(wait));
    }
  }
  const double drain_s = Secs(Clk::now() - d0);
  const auto u = up.status();
  std::printf("(2) drain:   %" PRIu64 " readings in %" PRIu64
              " batches in %.2f s = %.0f readings/s "
              "(%" PRIu64 " retries)\n",
              u.sent_items, u.sent_batches, drain_s, u.sent_items / drain_s, u.retries);
  std::printf("    of which outbox work (peek, encode, persist batch, finish): %.2f s\n",
              Secs(port.store_time));

  // (3) ceiling: the cloud's own ingest of pre-built bodies of the same size, one client.
  CloudProc raw;
  if (!StartCloud(dir, "ceiling", cloud_sync, pg_ceiling ? pg_ceiling->uri() : "", &raw)) {
    return 1;
  }
  ho.endpoint = "http://127.0.0.1:" + std::to_string(raw.port);
  ho.token = raw.token;
  auto raw_sender = uplink::MakeHttpSender(ho);
  if (!raw_sender.ok()) return 1;
  const std::int64_t nb =
      (n + static_cast<std::int64_t>(batch) - 1) / static_cast<std::int64_t>(batch);
  std::vector<std::string> bodies;
  bodies.reserve(static_cast<std::size_t>(nb));
  for (std::int64_t k = 0, done = 0; k < nb; ++k) {
    std::vector<model::OutboxEntry> items;
    for (std::size_t i = 0; i < batch && done < n; ++i, ++done) {
      int dev = static_cast<int>(done % devices);
      auto seq = static_cast<std::uint64_t>(done / devices + 1);
      items.push_back({done, model::OutboxKind::kReading, 0,
                       ingest::ReadingItem(Reading(dev, seq, t0_ms + done)).body});
    }
    bodies.push_back(uplink::BuildBody(uo.protocol, "gw_bench", items)->json);
  }
  auto c0 = Clk::now();
  for (std::int64_t k = 0; k < nb; ++k) {
    auto r = (*raw_sender)
                 ->Post(uplink::ProtocolPath(uo.protocol), "raw:" + std::to_string(k),
                        bodies[static_cast<std::size_t>(k)]);
    if (r.status != 200) {
      std::fprintf(stderr, "ceiling: HTTP %d %s %s\n", r.status, r.error.c_str(), r.body.c_str());
      return 1;
    }
  }
  const double ceil_s = Secs(Clk::now() - c0);
  std::printf("(3) ceiling: %" PRId64 " readings in %" PRId64
              " pre-built bodies in %.2f s = %.0f "
              "readings/s (the cloud's own ingest, same run)\n",
              n, nb, ceil_s, n / ceil_s);
  std::printf("drain / ceiling = %.2f   (aim: >= 50,000 readings/s and >= 0.70)\n",
              (u.sent_items / drain_s) / (n / ceil_s));
  (void)cloud.proc->Stop(std::chrono::seconds(20));
  (void)raw.proc->Stop(std::chrono::seconds(20));
  return 0;
}
