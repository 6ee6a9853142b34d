// Crash test of outpost-gateway (DESIGN.md, "What we promise": no acknowledged reading is lost;
// exactly-once in effect): a QoS 1 publisher with per-device sequence numbers streams readings
// while the gateway is killed with SIGKILL at random moments and restarted, many times —
// mid-stream, during a burst, and during start-up. Afterwards every reading the broker
// acknowledged to the publisher must be in the store exactly once.
//
// The random kill moments are the test input: seeded, and the seed is printed.
//   OUTPOST_CRASH_SEED    seed (default: random, printed)
//   OUTPOST_CRASH_ROUNDS  kills (default 20, about 30 s; e.g. 200 for a soak)
//   OUTPOST_CRASH_RATE    readings per second (default 2000)
//   OUTPOST_CRASH_DEVICES devices the readings are spread over (default 20)
//   OUTPOST_CRASH_OUTAGE_MS  the gateway stays down up to this long after each kill (default 0)
#include <gtest/gtest.h>

#include <algorithm>
#include <asio.hpp>
#include <atomic>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gateway_harness.h"
#include "outpost/mqtt/client.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/wait_until.h"

namespace outpost::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
constexpr std::int64_t kForever = std::numeric_limits<std::int64_t>::max();
constexpr std::uint32_t kBoot = 1;
constexpr const char* kMarkerDevice = "crash_marker";

std::int64_t EnvInt(const char* name, std::int64_t fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  return std::strtoll(v, nullptr, 10);
}

std::int64_t WallMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string DeviceId(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "crash_%02d", i);
  return buf;
}

// "n" repeats seq as a metric, so QuerySeries(device, "n") returns the stored seqs.
// With `ts_ms` > 0 the reading carries that device timestamp (epoch ms).
std::string Reading(const std::string& device, std::uint64_t seq, std::int64_t ts_ms = 0) {
  json j = {{"deviceId", device},
            {"boot", kBoot},
            {"seq", seq},
            {"n", seq},
            {"temperature", 20.0 + static_cast<double>(seq % 100) / 10.0},  // below alerts
            {"humidity", 45.0}};
  if (ts_ms > 0) j["timestamp"] = ts_ms;
  return j.dump();
}

// SequencedPublisher: QoS 1 readings for `devices` devices (round-robin, seq 1, 2, 3... per
// device, contiguous) at a steady rate, pipelined: up to `max_inflight` await their PUBACK.
// Every reading whose PUBACK arrived is in the broker's custody.
// Ownership: owns its io_context, thread and mqtt::Client. Thread: its methods may be called
// from one test thread; the Client lives on the io thread only.
class SequencedPublisher {
 public:
  struct Options {
    std::uint16_t port = 0;
    int devices = 20;
    double rate_per_s = 2000;
    std::size_t max_inflight = 2000;
    // > 0: readings carry device timestamps ts_origin_ms + seq * ts_step_ms.
    std::int64_t ts_origin_ms = 0, ts_step_ms = 0;
  };

  explicit SequencedPublisher(Options options)
      : options_(options), last_seq_(static_cast<std::size_t>(options.devices), 0) {
    thread_ = std::thread([this] { io_.run(); });
  }

  ~SequencedPublisher() {
    Call([this] {
      timer_.cancel();
      client_.reset();
    });
    work_.reset();
    thread_.join();
  }

  // Connects (clean session) and starts publishing.
  Status Start() {
    auto connected = std::make_shared<std::promise<void>>();
    auto connected_future = connected->get_future();
    Status started = Call([&] {
      mqtt::ClientOptions o;
      o.port = options_.port;
      o.session.client_id = "crash-publisher";
      o.session.clean_session = true;
      o.session.max_inflight = options_.max_inflight;
      o.backoff = BackoffPolicy{50, 500};
      mqtt::ClientCallbacks cb;
      cb.on_connected = [this, connected](bool) {
        if (++connects_ == 1) connected->set_value();
      };
      cb.on_disconnected = [this](const Status& why) {
        if (stopping_) return;  // our own Stop() in Finish()
        std::lock_guard<std::mutex> lock(mu_);
        disconnects_.push_back(why.ToString());
      };
      cb.on_publish_acked = [this](std::uint16_t) { acked_.fetch_add(1); };
      client_ = std::make_unique<mqtt::Client>(io_, std::move(o), std::move(cb));
      return client_->Start();
    });
    if (!started.ok()) return started;
    if (connected_future.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
      return Status(Code::kDeadlineExceeded, "publisher did not connect");
    }
    Call([this] {
      start_ = std::chrono::steady_clock::now();
      Tick();
    });
    return Status::Ok();
  }

  // `n` readings on top of the steady rate, as fast as the in-flight window allows.
  void Burst(std::uint64_t n) {
    Call([this, n] {
      burst_ += n;
      PublishDue();
    });
  }

  // Waits (bounded polling) until `n` readings have been sent.
  Status WaitPublished(std::uint64_t n, milliseconds timeout) {
    if (!WaitUntil("readings sent", timeout, [&] { return published_.load() >= n; })) {
      return Status(Code::kDeadlineExceeded, "publisher: " + std::to_string(published_.load()) +
                                                 " of " + std::to_string(n) + " sent");
    }
    return Status::Ok();
  }

  // Stops publishing and waits (bounded polling) until the broker acknowledged everything.
  Status Finish(milliseconds timeout) {
    Call([this] {
      stopping_ = true;
      timer_.cancel();
    });
    if (!WaitUntil("readings acknowledged", timeout,
                   [&] { return acked_.load() >= published_.load(); })) {
      return Status(Code::kDeadlineExceeded, "publisher: " + std::to_string(acked_.load()) +
                                                 " of " + std::to_string(published_.load()) +
                                                 " acknowledged");
    }
    auto stopped = std::make_shared<std::promise<void>>();
    Call([&] { client_->Stop([stopped] { stopped->set_value(); }); });
    stopped->get_future().wait_for(std::chrono::seconds(10));
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_.empty()) return Internal("publisher: " + error_);
    return Status::Ok();
  }

  std::uint64_t published() const { return published_.load(); }
  std::uint64_t acked() const { return acked_.load(); }
  std::vector<std::uint64_t> last_seq() {
    return Call([this] { return last_seq_; });
  }
  std::vector<std::string> disconnects() const {
    std::lock_guard<std::mutex> lock(mu_);
    return disconnects_;
  }

 private:
  template <typename F>
  auto Call(F&& fn) -> decltype(fn()) {
    std::packaged_task<decltype(fn())()> task(std::forward<F>(fn));
    auto result = task.get_future();
    asio::post(io_, [&task] { task(); });
    return result.get();
  }

  void Tick() {
    if (stopping_) return;
    PublishDue();
    timer_.expires_after(milliseconds(1));  // a smooth stream: kills land mid-flight
    timer_.async_wait([this](const asio::error_code& ec) {
      if (!ec) Tick();
    });
  }

  // Publishes what the rate (plus bursts) allows by now. A full in-flight window stops it
  // until a later tick: the count of what is due keeps growing meanwhile.
  void PublishDue() {
    if (stopping_ || !client_) return;
    double elapsed_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    auto due = static_cast<std::uint64_t>(elapsed_s * options_.rate_per_s) + burst_;
    while (sent_ < due) {
      auto device = static_cast<std::size_t>(sent_ % static_cast<std::uint64_t>(options_.devices));
      std::uint64_t seq = last_seq_[device] + 1;
      std::string id = DeviceId(static_cast<int>(device));
      std::int64_t ts =
          options_.ts_step_ms > 0
              ? options_.ts_origin_ms + static_cast<std::int64_t>(seq) * options_.ts_step_ms
              : 0;
      auto r = client_->Publish("sensors/" + id + "/data", Reading(id, seq, ts), 1, false);
      if (!r.ok()) {
        if (r.status().code() != Code::kResourceExhausted) {
          std::lock_guard<std::mutex> lock(mu_);
          if (error_.empty()) error_ = r.status().ToString();
        }
        return;
      }
      last_seq_[device] = seq;
      ++sent_;
      published_.fetch_add(1);
    }
  }

  Options options_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  asio::steady_timer timer_{io_};
  std::thread thread_;
  // io thread only:
  std::unique_ptr<mqtt::Client> client_;
  std::vector<std::uint64_t> last_seq_;
  std::chrono::steady_clock::time_point start_;
  std::uint64_t sent_ = 0, burst_ = 0, connects_ = 0;
  bool stopping_ = false;
  // any thread:
  std::atomic<std::uint64_t> published_{0}, acked_{0};
  mutable std::mutex mu_;
  std::vector<std::string> disconnects_;
  std::string error_;
};

// The readings in the store when a gateway run opened it, from that run's start-up log line
// ("store <path>: N readings, ..."); -1 if the run did not get that far.
std::int64_t StoredAtOpen(const std::string& log) {
  static const std::regex kStoreOpened(R"(store .*: (\d+) readings, )");
  std::smatch m;
  if (!std::regex_search(log, m, kStoreOpened)) return -1;
  return std::stoll(m[1].str());
}

// How far a gateway run got before it was killed, from its log.
std::string PhaseReached(const std::string& log) {
  if (log.find("connected to mqtt") != std::string::npos) return "connected";
  if (log.find("running as") != std::string::npos) return "connecting";
  if (StoredAtOpen(log) >= 0) return "store opened";
  return "before store open";
}

// Process start time of the gateway that published `status` (wall ms).
std::int64_t StartedMs(const json& status) {
  double started = status["timestamp"].get<double>() - status["uptime"].get<double>();
  return static_cast<std::int64_t>(std::llround(started * 1000.0));
}

// "3-7,9,12-15" (at most `max` ranges).
std::string Ranges(const std::vector<std::uint64_t>& v, std::size_t max = 20) {
  std::ostringstream out;
  std::size_t ranges = 0;
  for (std::size_t i = 0; i < v.size();) {
    std::size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    if (ranges++ == max) {
      out << ",...";
      break;
    }
    out << (i ? "," : "") << v[i];
    if (j > i) out << "-" << v[j];
    i = j + 1;
  }
  return out.str();
}

enum class Kind { kSteady, kBurst, kStartup };
const char* KindName(Kind k) {
  return k == Kind::kSteady ? "steady" : k == Kind::kBurst ? "burst" : "startup";
}

// Rounds 3, 9, 15... kill during start-up; rounds 5, 11, 17... during a burst.
Kind RoundKind(int round) {
  if (round % 6 == 3) return Kind::kStartup;
  if (round % 6 == 5) return Kind::kBurst;
  return Kind::kSteady;
}

class GatewayCrashTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure()) {
      h_.dir().Keep();
      std::printf("seed %" PRIu64
                  "; kept %s (gateway-N.log of every run, gateway.db)\n"
                  "last gateway log:\n%s\n",
                  seed_, h_.dir().path().c_str(), h_.gateway_log().c_str());
    }
  }

  // Launches the gateway and waits until this very process answers get_status (a stale
  // "online" or status of a killed run cannot pass for it).
  Result<json> LaunchAndWaitUp(milliseconds timeout) {
    std::int64_t launched_ms = WallMs();
    Status s = h_.LaunchGateway();
    if (!s.ok()) return s;
    return h_.WaitStatus([&](const json& j) { return StartedMs(j) >= launched_ms; }, timeout);
  }

  GatewayHarness h_;
  std::uint64_t seed_ = 0;
};

TEST_F(GatewayCrashTest, SigkillAtRandomMomentsLosesAndDuplicatesNoReading) {
  seed_ = static_cast<std::uint64_t>(EnvInt("OUTPOST_CRASH_SEED", 0));
  if (seed_ == 0) seed_ = std::random_device{}() | 1u;
  const int rounds =
      static_cast<int>(std::max<std::int64_t>(4, EnvInt("OUTPOST_CRASH_ROUNDS", 20)));
  const double rate =
      static_cast<double>(std::max<std::int64_t>(100, EnvInt("OUTPOST_CRASH_RATE", 2000)));
  const int devices =
      static_cast<int>(std::clamp<std::int64_t>(EnvInt("OUTPOST_CRASH_DEVICES", 20), 1, 1000));
  const std::int64_t outage_ms = std::max<std::int64_t>(0, EnvInt("OUTPOST_CRASH_OUTAGE_MS", 0));
  std::printf("crash test: seed %" PRIu64
              ", %d rounds, %.0f readings/s over %d devices "
              "(OUTPOST_CRASH_SEED / _ROUNDS / _RATE / _DEVICES), down up to %" PRId64
              " ms after each kill (_OUTAGE_MS)\n",
              seed_, rounds, rate, devices, outage_ms);
  std::mt19937_64 rng(seed_);
  auto uniform_ms = [&](int lo, int hi) {
    return milliseconds(std::uniform_int_distribution<int>(lo, hi)(rng));
  };
  auto t0 = std::chrono::steady_clock::now();

  // The broker keeps up to 1,000,000 queued and 10,000 in flight for the gateway's persistent
  // session (harness defaults), so nothing is dropped while the gateway is down.
  // Few devices at a high rate would trip the per-device flood limit (ingest.device_rate_per_s,
  // 200/s by default), which rejects readings by design; the defaults stay well inside it.
  std::string yaml;
  if (rate / devices > 150 || 5000.0 / devices > 1500) {
    yaml = "ingest:\n  device_rate_per_s: 0\n";
    std::printf("crash test: per-device rate limit off for this load\n");
  }
  OUTPOST_ASSERT_OK(h_.Start(yaml)) << h_.gateway_log();
  // A reply proves the gateway's subscriptions are in place before anything is published.
  OUTPOST_ASSERT_OK(h_.GetStatus());

  SequencedPublisher::Options po;
  po.port = h_.broker().port();
  po.rate_per_s = rate;
  po.devices = devices;
  SequencedPublisher pub(po);
  OUTPOST_ASSERT_OK(pub.Start());

  struct Kill {
    int round;
    Kind kind;
    std::int64_t delay_ms;
    std::uint64_t published;            // readings sent before the kill
    std::uint64_t acked;                // of which the broker had acknowledged (at least) this many
    std::string phase;                  // how far the killed run had got
    std::int64_t next_stored = -1;      // readings in the store when the next run opened it
    std::int64_t next_duplicates = -1;  // copies the next run's dedupe dropped as it came up
  };
  std::vector<Kill> kills;
  // Records what the latest run found in the store when it opened it (below the count
  // published before the kill: the kill left readings of the stream unstored), and how many
  // redelivered copies it dropped as duplicates (the kill came after a commit and before its
  // acknowledgement reached the broker).
  auto note_open = [&](const json* up_status) {
    std::int64_t stored = StoredAtOpen(h_.gateway_log());
    if (stored < 0 || kills.empty() || kills.back().next_stored >= 0) return;
    // Runs killed before they opened the store changed nothing: this is their count too.
    for (auto it = kills.rbegin(); it != kills.rend() && it->next_stored < 0; ++it) {
      it->next_stored = stored;
    }
    if (up_status) kills.back().next_duplicates = (*up_status)["ingest"]["duplicates"].get<int>();
  };

  std::int64_t up_ms = 100;
  for (int round = 0; round < rounds; ++round) {
    Kind kind = round == 0 ? Kind::kSteady : RoundKind(round);
    Kill k{round, kind, 0, 0, 0, "", -1, -1};
    if (round > 0) {
      if (outage_ms > 0) {
        // The gateway stays down a while: the broker queues a backlog that the next run takes
        // as a flood of up to max_inflight_messages at once.
        std::this_thread::sleep_for(uniform_ms(0, static_cast<int>(outage_ms)));
      }
      if (kind == Kind::kStartup) {
        // Killed during start-up: opening the store, rebuilding dedupe state, connecting, or
        // taking the first redelivered messages (the last start-up took `up_ms` to answer).
        k.delay_ms = uniform_ms(0, static_cast<int>(std::max<std::int64_t>(50, up_ms))).count();
        OUTPOST_ASSERT_OK(h_.LaunchGateway());
        std::this_thread::sleep_for(milliseconds(k.delay_ms));  // the random kill moment
        ASSERT_TRUE(h_.gateway_running()) << "gateway exited by itself\n" << h_.gateway_log();
        k.acked = pub.acked();
        k.published = pub.published();
        h_.KillGateway();
        k.phase = PhaseReached(h_.gateway_log());
        note_open(nullptr);
        kills.push_back(k);
        continue;
      }
      auto launched = std::chrono::steady_clock::now();
      auto up = LaunchAndWaitUp(std::chrono::seconds(60));
      OUTPOST_ASSERT_OK(up) << "\n" << h_.gateway_log();
      up_ms = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - launched)
                  .count();
      note_open(&*up);
    }
    k.delay_ms = uniform_ms(0, 2500).count();
    std::this_thread::sleep_for(milliseconds(k.delay_ms));  // the random kill moment
    if (kind == Kind::kBurst) {
      pub.Burst(5000);
      auto extra = uniform_ms(0, 60);
      k.delay_ms += extra.count();
      std::this_thread::sleep_for(extra);  // the random kill moment within the burst
    }
    ASSERT_TRUE(h_.gateway_running()) << "gateway exited by itself\n" << h_.gateway_log();
    k.acked = pub.acked();
    k.published = pub.published();
    h_.KillGateway();
    k.phase = "streaming";
    kills.push_back(k);
  }

  // Everything the publisher sent is acknowledged: in the broker's custody, queued for the
  // gateway's session. A marker published after it is queued after it.
  OUTPOST_ASSERT_OK(pub.Finish(std::chrono::seconds(60)));
  std::vector<std::uint64_t> last = pub.last_seq();
  std::uint64_t total = 0;
  for (std::uint64_t s : last) total += s;
  ASSERT_EQ(total, pub.published());
  OUTPOST_ASSERT_OK(h_.devices().Publish("sensors/" + std::string(kMarkerDevice) + "/data",
                                         Reading(kMarkerDevice, 1), 1));

  auto up = LaunchAndWaitUp(std::chrono::seconds(60));
  OUTPOST_ASSERT_OK(up) << "\n" << h_.gateway_log();
  note_open(&*up);
  // The marker handled means every reading before it was handled; local_db_records counts what
  // is committed.
  auto done = h_.WaitStatus(
      [&](const json& j) {
        return j["devices_count"].get<int>() == devices + 1 &&
               j["local_db_records"].get<std::uint64_t>() >= total + 1;
      },
      std::chrono::seconds(120));
  OUTPOST_EXPECT_OK(done);
  if (done.ok()) {
    EXPECT_EQ((*done)["ingest"]["rejected"], 0) << done->dump();
    EXPECT_EQ((*done)["store"]["errors"], 0) << done->dump();
  }
  OUTPOST_ASSERT_OK(h_.StopGateway());  // SIGTERM, drained, exit 0
  auto wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // ---- verification: every published seq of every device stored exactly once ----
  auto store = h_.OpenStore();
  OUTPOST_ASSERT_OK(store);
  std::uint64_t missing_total = 0, duplicated_total = 0;
  for (int d = 0; d < devices; ++d) {
    std::string id = DeviceId(d);
    auto points = (*store)->QuerySeries(id, "n", 0, kForever, 2 * last[d] + 100);
    OUTPOST_ASSERT_OK(points);
    std::vector<std::uint32_t> count(last[d] + 1, 0);
    std::vector<std::uint64_t> out_of_range, missing, duplicated;
    for (const auto& p : *points) {
      auto n = static_cast<std::uint64_t>(p.value);
      if (n < 1 || n > last[d]) {
        out_of_range.push_back(n);
      } else {
        ++count[n];
      }
    }
    for (std::uint64_t n = 1; n <= last[d]; ++n) {
      if (count[n] == 0) missing.push_back(n);
      if (count[n] > 1) duplicated.push_back(n);
    }
    missing_total += missing.size();
    duplicated_total += duplicated.size();
    EXPECT_TRUE(missing.empty()) << id << ": " << missing.size() << " of " << last[d]
                                 << " seqs missing: " << Ranges(missing);
    EXPECT_TRUE(duplicated.empty())
        << id << ": " << duplicated.size() << " seqs stored more than once: " << Ranges(duplicated);
    EXPECT_TRUE(out_of_range.empty()) << id << ": stored seqs never published";
    EXPECT_EQ(points->size(), last[d]) << id;
  }
  auto marker = (*store)->QuerySeries(kMarkerDevice, "n", 0, kForever, 10);
  OUTPOST_ASSERT_OK(marker);
  EXPECT_EQ(marker->size(), 1u) << "the marker reading";

  auto loaded = (*store)->LoadDevices();
  OUTPOST_ASSERT_OK(loaded);
  std::map<std::string, gateway::model::DeviceRow> rows;
  for (const auto& r : *loaded) rows[r.device_id] = r;
  std::uint64_t dropped_duplicates = 0;
  for (int d = 0; d < devices; ++d) {
    auto it = rows.find(DeviceId(d));
    ASSERT_NE(it, rows.end()) << DeviceId(d);
    const auto& r = it->second;
    EXPECT_EQ(r.readings, last[d]) << r.device_id;
    EXPECT_EQ(r.seq_gaps, 0u) << r.device_id;
    EXPECT_EQ(r.boot, kBoot) << r.device_id;
    EXPECT_EQ(r.last_seq, last[d]) << r.device_id;
    dropped_duplicates += r.duplicates;
  }
  auto quarantine = (*store)->ListQuarantine(10);
  OUTPOST_ASSERT_OK(quarantine);
  for (const auto& q : *quarantine) {
    ADD_FAILURE() << "quarantined (" << q.reason << "): " << q.detail << " " << q.payload;
  }

  // ---- the test must not pass vacuously ----
  int mid_stream = 0, mid_stream_pending = 0, after_commit = 0;
  std::uint64_t max_backlog = 0;
  for (const auto& k : kills) {
    bool pending = k.next_stored >= 0 && static_cast<std::uint64_t>(k.next_stored) < k.published;
    if (pending) {
      max_backlog = std::max(max_backlog, k.published - static_cast<std::uint64_t>(k.next_stored));
    }
    if (k.kind != Kind::kStartup) {
      ++mid_stream;
      if (pending) ++mid_stream_pending;
    }
    if (k.next_duplicates > 0) ++after_commit;
    std::string dups = k.next_duplicates < 0 ? "-" : std::to_string(k.next_duplicates);
    std::printf("  kill %3d %-7s after %5" PRId64 " ms (%-17s): published %7" PRIu64
                ", acked %7" PRIu64 ", next open found %7" PRId64
                " (%s), next run dropped %s"
                " duplicates\n",
                k.round, KindName(k.kind), k.delay_ms, k.phase.c_str(), k.published, k.acked,
                k.next_stored, pending ? "pending" : "all stored", dups.c_str());
  }
  std::printf(
      "crash test: %zu kills (%d mid-stream, %d of them with published readings not yet "
      "stored, up to %" PRIu64 "; %d between a commit and its acknowledgement), %" PRIu64
      " readings published and acknowledged, %" PRIu64 " stored (+1 marker), %" PRIu64
      " missing, %" PRIu64 " duplicated, %" PRIu64
      " redelivered copies dropped by dedupe; %.1f s\n",
      kills.size(), mid_stream, mid_stream_pending, max_backlog, after_commit, total,
      static_cast<std::uint64_t>((*store)->stats().readings) - 1, missing_total, duplicated_total,
      dropped_duplicates, wall_s);
  EXPECT_EQ(static_cast<std::uint64_t>((*store)->stats().readings), total + 1);
  EXPECT_GE(mid_stream_pending, std::min(3, mid_stream))
      << "too few kills hit the gateway with readings of the stream still unstored";
  EXPECT_GE(total, static_cast<std::uint64_t>(rounds) * 100);
  for (const auto& d : pub.disconnects()) ADD_FAILURE() << "publisher disconnected: " << d;
}

// Regression test for the dedupe window being shorter than what can be redelivered: the gateway
// remembered 1,024 seqs per device, and a broker redelivers after a crash far more than that —
// everything it had sent but not yet processed the acknowledgement of (Mosquitto processes them
// lazily while it floods a reconnecting client). The state is built directly: 3,000 readings of
// one device queued at the broker for the gateway's session AND already in the store, as a
// commit whose PUBACKs never took effect left them. On restart the broker redelivers all of them
// and every one must be dropped as a duplicate.
// The same through real kills: OUTPOST_CRASH_DEVICES=1 OUTPOST_CRASH_OUTAGE_MS=8000
// OUTPOST_CRASH_RATE=3000 OUTPOST_CRASH_ROUNDS=40 OUTPOST_CRASH_SEED=11.
TEST_F(GatewayCrashTest, RedeliveredBatchLongerThanTheDedupeWindowIsNotStoredTwice) {
  constexpr std::uint64_t kCount = 3000;
  // No rate limit: the burst below is the replay of a commit, not a flood.
  OUTPOST_ASSERT_OK(h_.Start("ingest:\n  device_rate_per_s: 0\n")) << h_.gateway_log();
  OUTPOST_ASSERT_OK(h_.GetStatus());  // subscribed: the session queues what comes next
  OUTPOST_ASSERT_OK(h_.StopGateway());

  SequencedPublisher::Options po;
  po.port = h_.broker().port();
  po.devices = 1;
  po.rate_per_s = 0;
  SequencedPublisher pub(po);
  OUTPOST_ASSERT_OK(pub.Start());
  pub.Burst(kCount);
  OUTPOST_ASSERT_OK(pub.WaitPublished(kCount, std::chrono::seconds(60)));
  OUTPOST_ASSERT_OK(pub.Finish(std::chrono::seconds(60)));
  ASSERT_EQ(pub.acked(), kCount);
  const std::string id = DeviceId(0);

  constexpr std::uint64_t kCommitted = kCount;
  {  // The commit that the kill left unacknowledged.
    auto store = h_.OpenStore();
    OUTPOST_ASSERT_OK(store);
    gateway::model::WriteSet batch;
    std::int64_t now = WallMs();
    for (std::uint64_t seq = 1; seq <= kCommitted; ++seq) {
      gateway::model::ReadingRow r;
      r.device_id = id;
      r.has_seq = true;
      r.boot = kBoot;
      r.seq = seq;
      r.has_device_ts = false;
      r.device_ts_raw = 0;
      r.ts_ms = now;
      r.ts_from_device = false;
      r.received_ms = now;
      r.metrics = {{"n", static_cast<double>(seq), false}, {"temperature", 20.0, false}};
      batch.readings.push_back(std::move(r));
    }
    batch.devices.push_back(gateway::model::DeviceRow{id, now, now, "online", now, "{}", "", kBoot,
                                                      kCommitted, kCommitted, 0, 0});
    OUTPOST_ASSERT_OK((*store)->Write(batch));
  }

  OUTPOST_ASSERT_OK(h_.devices().Publish("sensors/" + std::string(kMarkerDevice) + "/data",
                                         Reading(kMarkerDevice, 1), 1));
  auto up = LaunchAndWaitUp(std::chrono::seconds(60));
  OUTPOST_ASSERT_OK(up);
  auto s = h_.WaitStatus([](const json& j) { return j["devices_count"] == 2; },
                         std::chrono::seconds(60));
  OUTPOST_ASSERT_OK(s);
  OUTPOST_ASSERT_OK(h_.StopGateway());
  std::printf("after the redelivery: %s\n", (*s)["ingest"].dump().c_str());

  auto store = h_.OpenStore();
  OUTPOST_ASSERT_OK(store);
  auto points = (*store)->QuerySeries(id, "n", 0, kForever, 2 * kCount + 10);
  OUTPOST_ASSERT_OK(points);
  std::vector<int> count(kCount + 1, 0);
  for (const auto& p : *points) ++count[static_cast<std::size_t>(p.value)];
  std::vector<std::uint64_t> twice;
  for (std::uint64_t n = 1; n <= kCount; ++n) {
    if (count[n] > 1) twice.push_back(n);
  }
  EXPECT_TRUE(twice.empty()) << twice.size() << " readings stored twice: " << Ranges(twice);
  EXPECT_EQ(points->size(), kCount);
  EXPECT_EQ((*s)["ingest"]["duplicates"], kCommitted);
}

// Regression test for the per-device flood limit rejecting a backlog: readings a device sent
// within its rate limit while the gateway was down reach the gateway together when it comes
// back, and a plain token bucket takes that replay for a flood: everything past the burst is
// rejected as rate_limited, acknowledged, and never stored. Here: a known device allowed 10
// readings/s (burst 100) sent 10/s (device timestamps 100 ms apart) during a 100 s outage. The
// bucket counts in receive time (forged timestamps must not widen it) and credits the silence
// since the device was last seen — including the gateway's downtime, from the device's
// persisted last_seen (back-dated here by the outage: the test does not wait 100 s).
TEST_F(GatewayCrashTest, BacklogQueuedWhileTheGatewayWasDownIsNotRateLimited) {
  constexpr std::uint64_t kCount = 1000;
  OUTPOST_ASSERT_OK(h_.Start("ingest:\n  device_rate_per_s: 10\n  device_burst: 100\n"))
      << h_.gateway_log();
  OUTPOST_ASSERT_OK(h_.GetStatus());
  OUTPOST_ASSERT_OK(h_.StopGateway());
  {  // The device was last heard when the outage began.
    auto store = h_.OpenStore();
    OUTPOST_ASSERT_OK(store);
    gateway::model::WriteSet batch;
    const std::int64_t began = WallMs() - static_cast<std::int64_t>(kCount) * 100;
    batch.devices.push_back(gateway::model::DeviceRow{DeviceId(0), began, began, "online", began,
                                                      "{}", "", kBoot, 0, 0, 0, 0});
    OUTPOST_ASSERT_OK((*store)->Write(batch));
  }

  SequencedPublisher::Options po;
  po.port = h_.broker().port();
  po.devices = 1;
  po.rate_per_s = 0;
  po.ts_step_ms = 100;  // 10 readings/s, the last one now
  po.ts_origin_ms = WallMs() - static_cast<std::int64_t>(kCount) * po.ts_step_ms;
  SequencedPublisher pub(po);
  OUTPOST_ASSERT_OK(pub.Start());
  pub.Burst(kCount);
  OUTPOST_ASSERT_OK(pub.WaitPublished(kCount, std::chrono::seconds(60)));
  OUTPOST_ASSERT_OK(pub.Finish(std::chrono::seconds(60)));

  auto up = LaunchAndWaitUp(std::chrono::seconds(60));
  OUTPOST_ASSERT_OK(up);
  auto s = h_.WaitStatus(
      [](const json& j) {
        return j["ingest"]["stored"].get<std::uint64_t>() +
                   j["ingest"]["rejected"].get<std::uint64_t>() >=
               kCount;
      },
      std::chrono::seconds(60));
  OUTPOST_ASSERT_OK(s);
  std::printf("after the backlog: %s\n", (*s)["ingest"].dump().c_str());
  EXPECT_EQ((*s)["ingest"]["stored"], kCount);
  EXPECT_EQ((*s)["ingest"]["rejected"], 0);
}

}  // namespace
}  // namespace outpost::testing
