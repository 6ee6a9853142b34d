// GET /api/v1/stream (docs/api.md#live-stream) against the real binary: a real Mosquitto, real
// SQLite, raw loopback HTTP (tests/support RawHttpConnection) read as Server-Sent Events.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "gateway_harness.h"
#include "outpost/testing/raw_http.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/wait_until.h"

namespace outpost::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// The API's port and the credentials to send (GatewayHarness::auth_header()).
struct Api {
  std::uint16_t port = 0;
  std::string auth;
};

struct SseEvent {
  std::string id, type;
  json data;
};

// One SSE response read off a raw connection: the head, then the de-chunked body split into
// events. Poll() reads what has arrived without blocking.
class SseClient {
 public:
  static Result<SseClient> Open(const Api& api, const std::string& target,
                                const std::string& headers = "") {
    auto c = RawHttpConnection::Connect(api.port);
    if (!c.ok()) return c.status();
    const std::string req =
        "GET " + target + " HTTP/1.1\r\nHost: x\r\n" + api.auth + headers + "\r\n";
    if (c->SendSome(req) != static_cast<long>(req.size())) return Internal("short write");
    SseClient s(std::move(c).value());
    if (!WaitUntil("stream head", 5s, [&] { return s.Poll(), s.status != 0; })) {
      return Unavailable("no stream head: " + s.conn_.received());
    }
    return s;
  }

  void Poll() {
    conn_.closed();  // reads what is there
    const std::string& in = conn_.received();
    if (status == 0) {
      const std::size_t end = in.find("\r\n\r\n");
      if (end == std::string::npos) return;
      status = std::atoi(in.substr(9, 3).c_str());
      std::size_t at = in.find("\r\n") + 2;
      while (at < end) {
        const std::size_t eol = in.find("\r\n", at);
        const std::string line = in.substr(at, eol - at);
        const std::size_t colon = line.find(':');
        std::string name = line.substr(0, colon);
        for (char& ch : name) ch = static_cast<char>(std::tolower(ch));
        headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
        at = eol + 2;
      }
      pos_ = end + 4;
    }
    for (;;) {  // chunks
      const std::size_t eol = in.find("\r\n", pos_);
      if (eol == std::string::npos) break;
      const std::size_t size = std::strtoul(in.substr(pos_, eol - pos_).c_str(), nullptr, 16);
      if (in.size() < eol + 2 + size + 2) break;
      body_ += in.substr(eol + 2, size);
      pos_ = eol + 2 + size + 2;
    }
    for (std::size_t end; (end = body_.find("\n\n", parsed_)) != std::string::npos;) {
      const std::string block = body_.substr(parsed_, end - parsed_);
      parsed_ = end + 2;
      SseEvent e;
      bool has_data = false;
      std::size_t at = 0;
      while (at <= block.size()) {
        std::size_t eol = block.find('\n', at);
        if (eol == std::string::npos) eol = block.size();
        const std::string line = block.substr(at, eol - at);
        at = eol + 1;
        if (line.rfind("id: ", 0) == 0) e.id = line.substr(4);
        if (line.rfind("event: ", 0) == 0) e.type = line.substr(7);
        if (line.rfind("retry: ", 0) == 0) retry = line.substr(7);
        if (line.rfind(": heartbeat", 0) == 0) ++heartbeats;
        if (line.rfind("data: ", 0) == 0) {
          e.data = json::parse(line.substr(6), nullptr, false);
          has_data = true;
        }
      }
      if (!e.id.empty()) last_id = e.id;
      if (has_data) events.push_back(std::move(e));
    }
  }
  bool WaitEvents(std::size_t n, std::chrono::milliseconds timeout = 10s) {
    return WaitUntil("stream events", timeout, [&] { return Poll(), events.size() >= n; });
  }
  std::vector<SseEvent> Of(const std::string& type) const {
    std::vector<SseEvent> out;
    for (const auto& e : events) {
      if (e.type == type) out.push_back(e);
    }
    return out;
  }
  RawHttpConnection& conn() { return conn_; }

  int status = 0;
  std::map<std::string, std::string> headers;
  std::string retry, last_id;
  std::vector<SseEvent> events;
  int heartbeats = 0;

 private:
  explicit SseClient(RawHttpConnection c) : conn_(std::move(c)) {}
  RawHttpConnection conn_;
  std::size_t pos_ = 0, parsed_ = 0;
  std::string body_;
};

std::string Native(const std::string& device, int seq, double temperature) {
  return json{{"deviceId", device}, {"boot", 1}, {"seq", seq}, {"temperature", temperature}}.dump();
}

Result<json> Health(const Api& api) {
  auto c = RawHttpConnection::Connect(api.port);
  if (!c.ok()) return c.status();
  auto r = c->Exchange("GET /api/v1/health HTTP/1.1\r\nHost: x\r\n" + api.auth +
                       "Connection: close\r\n\r\n");
  if (!r.ok()) return r.status();
  return json::parse(r->body);
}

class GatewayStreamTest : public ::testing::Test {
 protected:
  void Start(const std::string& http_yaml = "") {
    HarnessOptions o;
    o.http_yaml = http_yaml;
    OUTPOST_ASSERT_OK(h_.Start(o));
    ASSERT_NE(h_.http_port(), 0);
  }
  // Publishes readings seq from..to of `device` (QoS 1) and waits until `stored` are stored.
  void Publish(const std::string& device, int from, int to, int stored) {
    for (int s = from; s <= to; ++s) {
      OUTPOST_ASSERT_OK(
          h_.devices().Publish("sensors/" + device + "/data", Native(device, s, 20 + s * 0.1), 1));
    }
    OUTPOST_ASSERT_OK(
        h_.WaitStatus([stored](const json& j) { return j["ingest"]["stored"] == stored; }));
  }
  std::uint16_t port() const { return h_.http_port(); }
  Api api() const { return {h_.http_port(), h_.auth_header()}; }
  GatewayHarness h_;
};

TEST_F(GatewayStreamTest, ReadingsPublishedThroughMosquittoAppearAsEvents) {
  Start();
  OUTPOST_ASSERT_OK_AND_ASSIGN(SseClient s, SseClient::Open(api(), "/api/v1/stream"));
  EXPECT_EQ(s.status, 200);
  EXPECT_EQ(s.headers["content-type"], "text/event-stream");
  EXPECT_EQ(s.headers["cache-control"], "no-cache");
  EXPECT_EQ(s.headers["x-accel-buffering"], "no");
  EXPECT_EQ(s.headers["transfer-encoding"], "chunked");
  ASSERT_TRUE(WaitUntil("preamble", 5s, [&] { return s.Poll(), !s.last_id.empty(); }));
  EXPECT_EQ(s.retry, "2000");

  Publish("d1", 1, 5, 5);
  ASSERT_TRUE(WaitUntil("5 readings and d1 online", 10s, [&] {
    s.Poll();
    return s.Of("reading").size() >= 5 && !s.Of("device").empty();
  }));
  const auto readings = s.Of("reading");
  ASSERT_EQ(readings.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(readings[i].data["device_id"], "d1");
    EXPECT_EQ(readings[i].data["seq"], i + 1);
    EXPECT_DOUBLE_EQ(readings[i].data["metrics"]["temperature"].get<double>(), 20 + (i + 1) * 0.1);
  }
  const auto device = s.Of("device");
  EXPECT_EQ(device[0].data["id"], "d1");
  EXPECT_EQ(device[0].data["status"], "online");
  // Ids increase by one per event, all types together.
  std::set<std::string> ids;
  for (const auto& e : s.events) ids.insert(e.id);
  EXPECT_EQ(ids.size(), s.events.size());

  // A status report is a health event; an unknown type is a clear 400.
  OUTPOST_ASSERT_OK(h_.GetStatus());
  // (the harness's WaitStatus asks for status reports too: each is one)
  ASSERT_TRUE(WaitUntil("a health event with 5 stored", 10s, [&] {
    s.Poll();
    const auto health = s.Of("health");
    return !health.empty() && health.back().data["ingest"]["stored"] == 5;
  }));
  auto c = RawHttpConnection::Connect(port());
  OUTPOST_ASSERT_OK(c);
  // HEAD answers the head only (no endless body after it).
  auto head =
      c->Exchange("HEAD /api/v1/stream HTTP/1.1\r\nHost: x\r\n" + h_.auth_header() + "\r\n");
  OUTPOST_ASSERT_OK(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->Header("content-type"), "text/event-stream");
  EXPECT_EQ(head->body, "");
  auto bad = c->Exchange("GET /api/v1/stream?types=reading,nope HTTP/1.1\r\nHost: x\r\n" +
                         h_.auth_header() + "\r\n");
  OUTPOST_ASSERT_OK(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(bad->body.find("\"bad_types\""), std::string::npos) << bad->body;
  OUTPOST_ASSERT_OK_AND_ASSIGN(json health, Health(api()));
  EXPECT_EQ(health["stream"]["clients"], 1);
  EXPECT_EQ(health["stream"]["ring_max"], 10000);
  OUTPOST_EXPECT_OK(h_.StopGateway());
}

// Reconnecting with Last-Event-ID gets exactly the events it missed (0 gaps, 0 duplicates); an
// id from another run gets event: reset first.
TEST_F(GatewayStreamTest, ReconnectWithLastEventIdGetsExactlyTheMissedOnes) {
  Start();
  std::string last;
  {
    OUTPOST_ASSERT_OK_AND_ASSIGN(SseClient a,
                                 SseClient::Open(api(), "/api/v1/stream?types=reading"));
    Publish("d1", 1, 10, 10);
    ASSERT_TRUE(a.WaitEvents(10));
    EXPECT_EQ(a.events.back().data["seq"], 10);
    last = a.last_id;
  }  // a leaves
  Publish("d1", 11, 25, 25);
  OUTPOST_ASSERT_OK_AND_ASSIGN(SseClient b, SseClient::Open(api(), "/api/v1/stream?types=reading",
                                                            "Last-Event-ID: " + last + "\r\n"));
  ASSERT_TRUE(b.WaitEvents(15));
  Publish("d1", 26, 27, 27);  // then live
  ASSERT_TRUE(b.WaitEvents(17));
  std::vector<int> seqs;
  for (const auto& e : b.events) seqs.push_back(e.data["seq"]);
  std::vector<int> want;
  for (int i = 11; i <= 27; ++i) want.push_back(i);
  EXPECT_EQ(seqs, want);
  EXPECT_EQ(b.Of("reset").size(), 0u);

  // The query parameter does the same; an id of another run is reset first.
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      SseClient q, SseClient::Open(api(), "/api/v1/stream?types=reading&last_event_id=" + last));
  ASSERT_TRUE(q.WaitEvents(17));
  EXPECT_EQ(q.events.front().data["seq"], 11);
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      SseClient r, SseClient::Open(api(), "/api/v1/stream", "Last-Event-ID: 0000beef-3\r\n"));
  ASSERT_TRUE(r.WaitEvents(1));
  EXPECT_EQ(r.events.front().type, "reset");
  EXPECT_EQ(r.events.front().data["reason"], "unknown_id");
  OUTPOST_ASSERT_OK_AND_ASSIGN(json health, Health(api()));
  EXPECT_EQ(health["stream"]["replayed"], 32);  // b: 15, q: 17
  EXPECT_EQ(health["stream"]["resets"], 1);
  OUTPOST_EXPECT_OK(h_.StopGateway());
}

// A client that stops reading is dropped by the server's stream buffer bound and counted, while
// another keeps receiving every event.
TEST_F(GatewayStreamTest, AStalledReaderIsDroppedWhileAnotherKeepsReceiving) {
  HarnessOptions o;
  o.extra_yaml = "ingest:\n  device_rate_per_s: 1000000\n  device_burst: 1000000\n";
  OUTPOST_ASSERT_OK(h_.Start(o));
  OUTPOST_ASSERT_OK_AND_ASSIGN(SseClient stalled, SseClient::Open(api(), "/api/v1/stream"));
  const int small = 4096;
  ::setsockopt(stalled.conn().fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  OUTPOST_ASSERT_OK_AND_ASSIGN(SseClient live,
                               SseClient::Open(api(), "/api/v1/stream?types=reading"));
  // Wide readings (40 metrics) so that the stalled stream falls behind fast. Bounded: at most
  // 100 rounds of 500 readings.
  json wide = {{"deviceId", "w"}, {"boot", 1}};
  for (int m = 0; m < 40; ++m) wide["metric_with_a_long_name_" + std::to_string(m)] = m * 1.5;
  int sent = 0;
  std::uint64_t dropped = 0;
  for (int round = 0; round < 100 && dropped == 0; ++round) {
    for (int i = 0; i < 500; ++i) {
      wide["seq"] = ++sent;
      OUTPOST_ASSERT_OK(h_.devices().Publish("sensors/w/data", wide.dump(), 0));
      live.Poll();  // the live reader reads as it goes
    }
    json health;
    ASSERT_TRUE(WaitUntil("the live reader keeps up", 30s,
                          [&] {
                            live.Poll();
                            auto got = Health(api());
                            if (got.ok()) health = *got;
                            return got.ok() && health["ingest"]["stored"] == sent &&
                                   live.events.size() == static_cast<std::size_t>(sent);
                          }))
        << live.events.size() << " events of " << sent << ": " << health["ingest"].dump();
    dropped = health["stream"]["dropped_slow"].get<std::uint64_t>();
  }
  EXPECT_EQ(dropped, 1u) << "after " << sent << " readings";
  // Every reading reached the live reader, in order, once.
  ASSERT_EQ(live.events.size(), static_cast<std::size_t>(sent));
  for (int i = 0; i < sent; ++i) ASSERT_EQ(live.events[i].data["seq"], i + 1);
  // The server let go of it: the hub forgot it and the server has one stream open.
  OUTPOST_ASSERT_OK_AND_ASSIGN(json health, Health(api()));
  EXPECT_EQ(health["stream"]["clients"], 1);
  auto c = RawHttpConnection::Connect(port());
  OUTPOST_ASSERT_OK(c);
  auto m = c->Exchange("GET /metrics HTTP/1.1\r\nHost: x\r\n" + h_.auth_header() +
                       "Connection: close\r\n\r\n");
  OUTPOST_ASSERT_OK(m);
  EXPECT_NE(m->body.find("outpost_gateway_http_streams_open 1\n"), std::string::npos) << m->body;
  EXPECT_NE(m->body.find("outpost_gateway_stream_dropped_slow 1\n"), std::string::npos);
  std::printf("stalled reader dropped after %d readings of %zu bytes\n", sent, wide.dump().size());
  OUTPOST_EXPECT_OK(h_.StopGateway());
}

// A gap of 3,000 wide events (about 4 MB, four times http.stream_buffer_bytes) is replayed whole,
// in order, once: the replay goes out in slices.
TEST_F(GatewayStreamTest, AReplayLargerThanTheStreamBufferArrivesWhole) {
  HarnessOptions o;
  o.extra_yaml = "ingest:\n  device_rate_per_s: 1000000\n  device_burst: 1000000\n";
  OUTPOST_ASSERT_OK(h_.Start(o));
  std::string last;
  {
    OUTPOST_ASSERT_OK_AND_ASSIGN(SseClient a, SseClient::Open(api(), "/api/v1/stream"));
    ASSERT_TRUE(WaitUntil("preamble", 5s, [&] { return a.Poll(), !a.last_id.empty(); }));
    last = a.last_id;
  }
  json wide = {{"deviceId", "w"}, {"boot", 1}};
  for (int m = 0; m < 40; ++m) wide["metric_with_a_long_name_" + std::to_string(m)] = m * 1.5;
  constexpr int kGap = 3000;
  for (int i = 1; i <= kGap; ++i) {
    wide["seq"] = i;
    OUTPOST_ASSERT_OK(h_.devices().Publish("sensors/w/data", wide.dump(), 0));
  }
  OUTPOST_ASSERT_OK(
      h_.WaitStatus([](const json& j) { return j["ingest"]["stored"] == kGap; }, 30s));
  OUTPOST_ASSERT_OK_AND_ASSIGN(SseClient b, SseClient::Open(api(), "/api/v1/stream?types=reading",
                                                            "Last-Event-ID: " + last + "\r\n"));
  ASSERT_TRUE(b.WaitEvents(kGap, 30s)) << b.events.size();
  ASSERT_EQ(b.events.size(), static_cast<std::size_t>(kGap));
  for (int i = 0; i < kGap; ++i) ASSERT_EQ(b.events[i].data["seq"], i + 1);
  OUTPOST_ASSERT_OK_AND_ASSIGN(json health, Health(api()));
  EXPECT_EQ(health["stream"]["dropped_slow"], 0);
  EXPECT_EQ(health["stream"]["replayed"], kGap);
  OUTPOST_EXPECT_OK(h_.StopGateway());
  // The ring goes to disk once, at the stop; the log says its size and what it cost.
  const std::string log = h_.gateway_log();
  const std::size_t kept = log.find("stream: kept ");
  ASSERT_NE(kept, std::string::npos) << log;
  std::cout << log.substr(kept, log.find('\n', kept) - kept) << "\n";
}

// A clean restart keeps the run and the replay ring: an id from before it resumes with exactly
// the events after it (those sent before the stop, then the new ones), no reset. After kill -9
// the ring was not kept: the old id gets event: reset, never a silent gap.
TEST_F(GatewayStreamTest, ResumeAcrossACleanRestartHasNoGapAndAfterKillNineIsAReset) {
  Start();
  const std::string ring_file = h_.dir().File("stream-ring");
  std::string last;
  {
    OUTPOST_ASSERT_OK_AND_ASSIGN(SseClient a,
                                 SseClient::Open(api(), "/api/v1/stream?types=reading"));
    Publish("d1", 1, 10, 10);
    ASSERT_TRUE(a.WaitEvents(10));
    last = a.last_id;
  }
  Publish("d1", 11, 20, 20);  // sent before the stop, to nobody
  OUTPOST_ASSERT_OK(h_.StopGateway());
  EXPECT_TRUE(std::filesystem::exists(ring_file));
  OUTPOST_ASSERT_OK(h_.StartGateway());
  EXPECT_FALSE(std::filesystem::exists(ring_file));  // used once: a crash cannot bring it back
  Publish("d1", 21, 25, 5);                          // the new run's (stored counts this run)
  OUTPOST_ASSERT_OK_AND_ASSIGN(SseClient b, SseClient::Open(api(), "/api/v1/stream?types=reading",
                                                            "Last-Event-ID: " + last + "\r\n"));
  ASSERT_TRUE(b.WaitEvents(15));
  Publish("d1", 26, 27, 7);  // then live
  ASSERT_TRUE(b.WaitEvents(17));
  std::vector<int> seqs;
  for (const auto& e : b.events) seqs.push_back(e.data["seq"]);
  std::vector<int> want;
  for (int i = 11; i <= 27; ++i) want.push_back(i);
  EXPECT_EQ(seqs, want);
  EXPECT_EQ(b.Of("reset").size(), 0u);
  // Ids stay of one run and increase across the restart.
  const auto seq_of = [](const std::string& id) {
    return std::stoull(id.substr(id.find('-') + 1));
  };
  EXPECT_EQ(b.events.front().id.substr(0, b.events.front().id.find('-')),
            last.substr(0, last.find('-')));
  for (std::size_t i = 1; i < b.events.size(); ++i) {
    EXPECT_LT(seq_of(b.events[i - 1].id), seq_of(b.events[i].id));
  }
  EXPECT_LT(seq_of(last), seq_of(b.events.front().id));
  const std::string before_kill = b.last_id;

  h_.KillGateway();
  EXPECT_FALSE(std::filesystem::exists(ring_file));
  OUTPOST_ASSERT_OK(h_.StartGateway());
  OUTPOST_ASSERT_OK_AND_ASSIGN(SseClient c,
                               SseClient::Open(api(), "/api/v1/stream?types=reading",
                                               "Last-Event-ID: " + before_kill + "\r\n"));
  ASSERT_TRUE(c.WaitEvents(1));
  EXPECT_EQ(c.events.front().type, "reset");
  EXPECT_EQ(c.events.front().data["reason"], "unknown_id");
  OUTPOST_EXPECT_OK(h_.StopGateway());
}

// An alert raised and cleared by a threshold rule, and a device going offline by its last will,
// are events in the order they happened.
TEST_F(GatewayStreamTest, AlertsAndDeviceStatusChangesAreEvents) {
  OUTPOST_ASSERT_OK(h_.Start("thresholds:\n  temperature_max: 30\n"));
  OUTPOST_ASSERT_OK_AND_ASSIGN(SseClient s,
                               SseClient::Open(api(), "/api/v1/stream?types=alert,device"));
  int seq = 0;
  for (double t : {25.0, 31.0, 28.0}) {
    OUTPOST_ASSERT_OK(h_.devices().Publish("sensors/n1/data", Native("n1", ++seq, t), 1));
  }
  // (changes within one commit show as the last of them: wait for "online" first)
  ASSERT_TRUE(WaitUntil("online", 10s, [&] { return s.Poll(), s.Of("device").size() >= 1; }));
  OUTPOST_ASSERT_OK(h_.devices().Publish("devices/n1/status", "offline", 1));
  ASSERT_TRUE(WaitUntil("raise, clear, offline", 10s,
                        [&] {
                          s.Poll();
                          return s.Of("alert").size() >= 2 && s.Of("device").size() >= 2;
                        }))
      << [&] {
           std::string seen;
           for (const auto& e : s.events) seen += e.type + " " + e.data.dump() + "\n";
           return seen;
         }();
  const auto alerts = s.Of("alert");
  EXPECT_EQ(alerts[0].data["state"], "raised");
  EXPECT_EQ(alerts[0].data["device_id"], "n1");
  EXPECT_EQ(alerts[1].data["state"], "cleared");
  EXPECT_EQ(alerts[1].data["alert_id"], "temperature_max:n1");
  const auto devices = s.Of("device");
  EXPECT_EQ(devices[0].data["status"], "online");
  EXPECT_EQ(devices[1].data["status"], "offline");
  EXPECT_EQ(devices[1].data["reason"], "last_will");
  EXPECT_EQ(s.Of("reading").size(), 0u);  // filtered out
  OUTPOST_EXPECT_OK(h_.StopGateway());
}

// 256 concurrent streams (the target) all receive an event.
TEST_F(GatewayStreamTest, TwoHundredFiftySixStreamsAllReceiveAnEvent) {
  Start();
  constexpr int kStreams = 256;
  std::vector<SseClient> streams;
  for (int i = 0; i < kStreams; ++i) {
    OUTPOST_ASSERT_OK_AND_ASSIGN(SseClient s,
                                 SseClient::Open(api(), "/api/v1/stream?types=reading"));
    streams.push_back(std::move(s));
  }
  OUTPOST_ASSERT_OK_AND_ASSIGN(json health, Health(api()));
  EXPECT_EQ(health["stream"]["clients"], kStreams);
  const auto t0 = std::chrono::steady_clock::now();
  Publish("d1", 1, 1, 1);
  int got = 0;
  ASSERT_TRUE(WaitUntil("every stream has the reading", 20s,
                        [&] {
                          got = 0;
                          for (auto& s : streams) {
                            s.Poll();
                            got += s.events.size() == 1 && s.events[0].data["seq"] == 1;
                          }
                          return got == kStreams;
                        }))
      << got << " of " << kStreams;
  std::printf(
      "%d streams received the reading within %.1f ms of its publish\n", kStreams,
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  OUTPOST_EXPECT_OK(h_.StopGateway());
}

}  // namespace
}  // namespace outpost::testing
