#include "event_stream.h"

#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <vector>

#include "outpost/base/clock.h"
#include "outpost/testing/status_matchers.h"

namespace outpost::gateway::app {
namespace {

// A subscriber's bytes, and whether it still accepts more.
struct FakeSink {
  std::string got;
  bool open = true;
  EventSink sink() {
    return [this](std::string b) {
      if (!open) return false;
      got += b;
      return true;
    };
  }
  // The ids of the events received, in order ("event: reset" included).
  std::vector<std::string> Ids(const std::string& event = "") const {
    std::vector<std::string> ids;
    const std::regex frame("id: ([^\n]+)\nevent: ([a-z]+)\n");
    for (auto it = std::sregex_iterator(got.begin(), got.end(), frame);
         it != std::sregex_iterator(); ++it) {
      if (event.empty() || (*it)[2] == event) ids.push_back((*it)[1]);
    }
    return ids;
  }
};

EventHubOptions Options(std::size_t ring) {
  EventHubOptions o;
  o.replay_events = ring;
  o.run = "r1";
  return o;
}

TEST(EventHub, LiveEventsAreFramedWithIdTypeAndData) {
  FakeClock clock;
  EventHub hub(Options(100));
  FakeSink a;
  ASSERT_NE(hub.Subscribe(a.sink(), kAllEventTypes, "", clock.steady_ms()), 0u);
  EXPECT_EQ(a.got, "retry: 2000\nid: r1-0\n\n");  // sets the client's last id to "now"
  EXPECT_EQ(hub.Publish(EventType::kReading, "{\"t\":1}"), "r1-1");
  EXPECT_EQ(hub.Publish(EventType::kAlert, "{\"a\":2}"), "r1-2");
  EXPECT_EQ(a.got,
            "retry: 2000\nid: r1-0\n\nid: r1-1\nevent: reading\ndata: {\"t\":1}\n\n"
            "id: r1-2\nevent: alert\ndata: {\"a\":2}\n\n");
  EXPECT_EQ(hub.stats().events, 2u);
  EXPECT_EQ(hub.stats().subscribers, 1u);
}

TEST(EventHub, ResumeReplaysEveryEventAfterTheIdOnceThenLive) {
  FakeClock clock;
  EventHub hub(Options(100));
  for (int i = 0; i < 10; ++i) hub.Publish(EventType::kReading, "{}");
  FakeSink b;
  hub.Subscribe(b.sink(), kAllEventTypes, "r1-4", clock.steady_ms());
  hub.Publish(EventType::kDevice, "{}");
  EXPECT_EQ(b.Ids(),
            (std::vector<std::string>{"r1-5", "r1-6", "r1-7", "r1-8", "r1-9", "r1-10", "r1-11"}));
  EXPECT_EQ(hub.stats().replayed, 6u);
  EXPECT_EQ(hub.stats().resets, 0u);
  // Resuming at the newest id replays nothing and is no reset.
  FakeSink c;
  hub.Subscribe(c.sink(), kAllEventTypes, "r1-11", clock.steady_ms());
  EXPECT_EQ(c.got, "retry: 2000\n\n");
  // So does the initial "r1-0" of a run with no events yet.
  EventHub empty(Options(10));
  FakeSink d;
  empty.Subscribe(d.sink(), kAllEventTypes, "r1-0", 0);
  EXPECT_EQ(d.got, "retry: 2000\n\n");
}

TEST(EventHub, AReplayGoesOutInSlicesWithLiveEventsBehindIt) {
  EventHubOptions o = Options(100);
  o.replay_slice_bytes = 100;  // each frame is ~40 bytes: 3 frames a slice
  EventHub hub(o);
  for (int i = 0; i < 10; ++i) hub.Publish(EventType::kReading, "{}");
  FakeSink s;
  hub.Subscribe(s.sink(), kAllEventTypes, "r1-0", 0);
  EXPECT_EQ(s.Ids().size(), 3u);  // the first slice at once
  EXPECT_TRUE(hub.replaying());
  hub.Publish(EventType::kAlert, "{}");  // 11: waits behind the replay
  EXPECT_EQ(s.Ids().size(), 3u);
  int pumps = 0;
  while (hub.Pump()) ASSERT_LT(++pumps, 10);
  std::vector<std::string> want;
  for (int i = 1; i <= 11; ++i) want.push_back("r1-" + std::to_string(i));
  EXPECT_EQ(s.Ids(), want);
  hub.Publish(EventType::kReading, "{}");  // live again
  EXPECT_EQ(s.Ids().back(), "r1-12");
  EXPECT_EQ(hub.stats().replayed, 11u);
}

TEST(EventHub, AReplayOvertakenByTheRingIsReset) {
  EventHubOptions o = Options(5);
  o.replay_slice_bytes = 1;  // one frame a slice
  EventHub hub(o);
  for (int i = 0; i < 5; ++i) hub.Publish(EventType::kReading, "{}");
  FakeSink s;
  hub.Subscribe(s.sink(), kAllEventTypes, "r1-0", 0);                  // gets 1
  for (int i = 0; i < 5; ++i) hub.Publish(EventType::kReading, "{}");  // ring: 6..10
  hub.Pump();
  EXPECT_EQ(s.Ids(), (std::vector<std::string>{"r1-1", "r1-10"}));  // 1, then the reset
  EXPECT_NE(s.got.find("event: reset\ndata: {\"reason\":\"too_old\""), std::string::npos);
  EXPECT_FALSE(hub.replaying());
  hub.Publish(EventType::kReading, "{}");
  EXPECT_EQ(s.Ids().back(), "r1-11");
}

TEST(EventHub, AnIdOlderThanTheRingOrUnknownGetsResetFirst) {
  FakeClock clock;
  EventHub hub(Options(5));
  for (int i = 0; i < 12; ++i) hub.Publish(EventType::kReading, "{}");  // ring: 8..12
  ASSERT_EQ(hub.stats().oldest_seq, 8u);
  // 7 is just before the ring: nothing was lost, it resumes.
  FakeSink edge;
  hub.Subscribe(edge.sink(), kAllEventTypes, "r1-7", clock.steady_ms());
  EXPECT_EQ(edge.Ids(), (std::vector<std::string>{"r1-8", "r1-9", "r1-10", "r1-11", "r1-12"}));
  for (const char* id : {"r1-6", "r0-3", "r1-13", "r1-x", "garbage", "r1-", "r1--1"}) {
    SCOPED_TRACE(id);
    FakeSink s;
    hub.Subscribe(s.sink(), kAllEventTypes, id, clock.steady_ms());
    ASSERT_EQ(s.Ids(), (std::vector<std::string>{"r1-12"}));
    EXPECT_NE(s.got.find("event: reset\n"), std::string::npos);
    EXPECT_EQ(s.Ids("reading").size(), 0u);  // nothing replayed
    EXPECT_NE(s.got.find(std::string(id) == "r1-6" ? "\"reason\":\"too_old\""
                                                   : "\"reason\":\"unknown_id\""),
              std::string::npos)
        << s.got;
  }
  EXPECT_EQ(hub.stats().resets, 7u);
}

TEST(EventHub, TypesFilterLiveAndReplay) {
  FakeClock clock;
  EventHub hub(Options(100));
  hub.Publish(EventType::kReading, "{}");  // 1
  hub.Publish(EventType::kAlert, "{}");    // 2
  hub.Publish(EventType::kHealth, "{}");   // 3
  OUTPOST_ASSERT_OK_AND_ASSIGN(std::uint8_t types, ParseTypes("alert,health"));
  FakeSink s;
  hub.Subscribe(s.sink(), types, "r1-0", clock.steady_ms());
  hub.Publish(EventType::kDevice, "{}");  // 4, filtered out
  hub.Publish(EventType::kAlert, "{}");   // 5
  EXPECT_EQ(s.Ids(), (std::vector<std::string>{"r1-2", "r1-3", "r1-5"}));
}

TEST(EventHub, ParseTypesNamesTheUnknownOne) {
  EXPECT_EQ(*ParseTypes(""), kAllEventTypes);
  EXPECT_EQ(*ParseTypes("reading"), static_cast<std::uint8_t>(EventType::kReading));
  EXPECT_EQ(*ParseTypes("reading,device,alert,health,command"), kAllEventTypes);
  EXPECT_EQ(*ParseTypes("command"), static_cast<std::uint8_t>(EventType::kCommand));
  for (const char* bad : {"readings", "reading,", ",alert", "reading,,alert", "READING"}) {
    auto r = ParseTypes(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find("types: unknown event type"), std::string::npos);
  }
}

TEST(EventHub, RingWrapsAtItsSizeKeepingTheNewest) {
  EventHub hub(Options(3));
  for (int i = 0; i < 1000; ++i) hub.Publish(EventType::kReading, "{}");
  EXPECT_EQ(hub.stats().ring, 3u);
  EXPECT_EQ(hub.stats().oldest_seq, 998u);
  FakeSink s;
  hub.Subscribe(s.sink(), kAllEventTypes, "r1-997", 0);
  EXPECT_EQ(s.Ids(), (std::vector<std::string>{"r1-998", "r1-999", "r1-1000"}));
}

TEST(EventHub, HeartbeatEvery15sAndAGoneSinkIsForgotten) {
  FakeClock clock;
  EventHub hub(Options(10));
  FakeSink a, b;
  hub.Subscribe(a.sink(), kAllEventTypes, "", clock.steady_ms());
  clock.Advance(5'000);
  const std::uint64_t hb = hub.Subscribe(b.sink(), kAllEventTypes, "", clock.steady_ms());
  clock.Advance(10'000);  // a: 15 s, b: 10 s
  hub.Tick(clock.steady_ms());
  EXPECT_NE(a.got.find(": heartbeat\n\n"), std::string::npos);
  EXPECT_EQ(b.got.find(": heartbeat"), std::string::npos);
  clock.Advance(5'000);
  hub.Tick(clock.steady_ms());
  EXPECT_NE(b.got.find(": heartbeat\n\n"), std::string::npos);
  EXPECT_EQ(hub.stats().heartbeats, 2u);

  a.open = false;  // the server dropped it
  hub.Publish(EventType::kReading, "{}");
  EXPECT_EQ(hub.stats().subscribers, 1u);
  EXPECT_EQ(hub.stats().gone, 1u);
  EXPECT_EQ(b.Ids(), (std::vector<std::string>{"r1-1"}));
  hub.Unsubscribe(hb);
  EXPECT_EQ(hub.stats().subscribers, 0u);
}

TEST(EventHub, ASnapshotRestoredInANewHubResumesTheOldIdsAndContinuesTheSeq) {
  EventHub old(Options(5));
  for (int i = 0; i < 8; ++i) old.Publish(EventType::kReading, "{\"i\":" + std::to_string(i) + "}");
  const std::string snap = old.Snapshot();
  EventHubOptions o = Options(4);  // a smaller ring keeps the newest
  o.run = "r2";
  EventHub hub(o);
  OUTPOST_ASSERT_OK(hub.Restore(snap));
  EXPECT_EQ(hub.run(), "r1");
  EXPECT_EQ(hub.stats().ring, 4u);
  EXPECT_EQ(hub.stats().oldest_seq, 5u);
  FakeSink a;
  hub.Subscribe(a.sink(), kAllEventTypes, "r1-6", 0);
  EXPECT_EQ(hub.Publish(EventType::kAlert, "{}"), "r1-9");  // no id used twice
  EXPECT_EQ(a.Ids(), (std::vector<std::string>{"r1-7", "r1-8", "r1-9"}));
  EXPECT_NE(a.got.find("data: {\"i\":6}\n"), std::string::npos);
  FakeSink b;
  hub.Subscribe(b.sink(), kAllEventTypes, "r1-3", 0);  // older than the kept ring
  EXPECT_EQ(b.Ids("reset").size(), 1u);

  // An empty ring restores its run and seq too.
  EventHub none(Options(5));
  OUTPOST_ASSERT_OK(none.Restore(EventHub(Options(5)).Snapshot()));
  EXPECT_EQ(none.Publish(EventType::kHealth, "{}"), "r1-1");
}

TEST(EventHub, AMalformedSnapshotIsRefusedAndLeavesTheHubAsItWas) {
  EventHub old(Options(5));
  for (int i = 0; i < 3; ++i) old.Publish(EventType::kReading, "{}");
  const std::string snap = old.Snapshot();
  for (const std::string& bad : {std::string("junk"), snap.substr(0, snap.size() - 1), snap + "x",
                                 std::string("outpost-stream-ring 1\nr1 4 1\n3 64 2\n{}")}) {
    EventHubOptions o = Options(5);
    o.run = "r2";
    EventHub hub(o);
    const Status s = hub.Restore(bad);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << bad;
    EXPECT_EQ(hub.run(), "r2");
    EXPECT_EQ(hub.Publish(EventType::kReading, "{}"), "r2-1");
  }
}

}  // namespace
}  // namespace outpost::gateway::app
