#include "outpost/gateway/commands/book.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "outpost/gateway/commands/codec.h"

namespace outpost::gateway::commands {
namespace {

// The fake clock: every call takes `now` explicitly.
struct Fixture {
  explicit Fixture(Options o = Options{}) : book(o) {}
  Book book;
  std::int64_t now = 1'764'000'000'000;
  int next_id = 1;

  Request Req(const std::string& device, const std::string& name = "led",
              const std::string& key = "", const std::string& fp = "fp") {
    Request r;
    r.id = "c" + std::to_string(next_id++);
    r.device = device;
    r.name = name;
    r.params_json = R"({"state":true})";
    r.idempotency_key = key;
    r.fingerprint = fp;
    r.user = "anonymous";
    return r;
  }
  // Accepts and applies (as the gateway does after the write).
  Result<Accepted> Submit(const Request& r, std::int64_t* retry = nullptr) {
    auto a = book.Accept(r, now, retry);
    if (a.ok() && !a->existing) {
      for (const auto& id : a->evict) book.Forget(id);
      book.Put(a->command);
    }
    return a;
  }
  void Dispatch(const std::string& device) {
    for (Command& c : book.PlanDispatch(device, now)) book.Put(c);
  }
};

std::vector<std::string> States(const Command& c) {
  std::vector<std::string> out;
  for (const auto& t : c.history) out.push_back(StateName(t.state));
  return out;
}

TEST(Book, AcceptQueuesWithTtlAndUser) {
  Fixture f;
  auto a = f.Submit(f.Req("n1"));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  const Command* c = f.book.Find(a->command.id);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->state, State::kQueued);
  EXPECT_EQ(c->expires_ms, f.now + 300'000);
  ASSERT_EQ(c->history.size(), 1u);
  EXPECT_EQ(c->history[0].user, "anonymous");
  EXPECT_EQ(c->history[0].at_ms, f.now);
}

TEST(Book, FullLifeCycleToSucceededRecordsEveryStep) {
  Fixture f;
  auto a = f.Submit(f.Req("n1"));
  ASSERT_TRUE(a.ok());
  f.now += 10;
  f.Dispatch("n1");
  EXPECT_EQ(f.book.Find(a->command.id)->state, State::kSent);
  f.now += 10;
  Reply ok{true, true, false, R"({"id":"c1","ok":true})"};
  auto done = f.book.ApplyReply(a->command.id, ok, f.now);
  ASSERT_TRUE(done.ok());
  f.book.Put(*done);
  const Command* c = f.book.Find(a->command.id);
  EXPECT_EQ(States(*c), (std::vector<std::string>{"queued", "sent", "delivered", "succeeded"}));
  EXPECT_EQ(c->history.back().at_ms, f.now);
  EXPECT_EQ(c->history.back().user, "device");
  EXPECT_EQ(c->reply_json, ok.json);
  EXPECT_TRUE(Finished(*c));
  // A duplicate reply changes nothing.
  EXPECT_EQ(f.book.ApplyReply(a->command.id, ok, f.now).status().code(), Code::kFailedPrecondition);
}

TEST(Book, FailedRejectedAndProgressReplies) {
  Fixture f;
  auto a = f.Submit(f.Req("n1"));
  auto b = f.Submit(f.Req("n1"));
  auto p = f.Submit(f.Req("n1"));
  f.Dispatch("n1");
  auto failed = f.book.ApplyReply(a->command.id, Reply{true, false, false, "{}"}, f.now);
  auto rejected = f.book.ApplyReply(b->command.id, Reply{true, false, true, "{}"}, f.now);
  auto progress = f.book.ApplyReply(p->command.id, Reply{false, false, false, "{}"}, f.now);
  ASSERT_TRUE(failed.ok() && rejected.ok() && progress.ok());
  EXPECT_EQ(failed->state, State::kFailed);
  EXPECT_EQ(rejected->state, State::kRejected);
  EXPECT_EQ(progress->state, State::kDelivered);
  EXPECT_FALSE(Finished(*progress));
}

TEST(Book, PlansDoNotChangeTheBookUntilPut) {
  Fixture f;
  auto a = f.Submit(f.Req("n1"));
  EXPECT_EQ(f.book.waiting(), std::set<std::string>{"n1"});
  auto planned = f.book.PlanDispatch("n1", f.now);
  ASSERT_EQ(planned.size(), 1u);
  EXPECT_EQ(f.book.Find(a->command.id)->state, State::kQueued) << "a failed write leaves it";
  auto accepted = f.book.Accept(f.Req("n1"), f.now);
  ASSERT_TRUE(accepted.ok());
  EXPECT_EQ(f.book.Find(accepted->command.id), nullptr);
}

TEST(Book, DispatchKeepsOrderPerDevice) {
  Fixture f;
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(f.Submit(f.Req(i % 2 ? "n2" : "n1"))->command.id);
  auto n1 = f.book.PlanDispatch("n1", f.now);
  ASSERT_EQ(n1.size(), 3u);
  EXPECT_EQ(n1[0].id, ids[0]);
  EXPECT_EQ(n1[1].id, ids[2]);
  EXPECT_EQ(n1[2].id, ids[4]);
  for (auto& c : n1) EXPECT_EQ(c.state, State::kSent);
}

TEST(Book, IdempotencyKeyReturnsTheSameCommandAndSendsNothingAgain) {
  Fixture f;
  auto a = f.Submit(f.Req("n1", "led", "k1"));
  f.Dispatch("n1");
  auto again = f.Submit(f.Req("n1", "led", "k1"));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->existing);
  EXPECT_EQ(again->command.id, a->command.id);
  EXPECT_EQ(again->command.state, State::kSent);
  EXPECT_TRUE(f.book.PlanDispatch("n1", f.now).empty());
  EXPECT_EQ(f.book.size(), 1u);
  // Same key on another device is another command.
  auto other = f.Submit(f.Req("n2", "led", "k1"));
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->existing);
  // Reused with a different body: conflict, nothing added.
  auto conflict = f.Submit(f.Req("n1", "reboot", "k1", "other"));
  EXPECT_EQ(conflict.status().code(), Code::kAlreadyExists);
  EXPECT_EQ(f.book.size(), 2u);
  EXPECT_EQ(f.book.counters().idempotency_conflicts, 1u);
}

TEST(Book, QueueBoundPerDeviceWithRetryAfter) {
  Options o;
  o.queue_per_device = 3;
  Fixture f(o);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(f.Submit(f.Req("n1")).ok());
    f.now += 1000;
  }
  std::int64_t retry = -1;
  auto full = f.Submit(f.Req("n1"), &retry);
  EXPECT_EQ(full.status().code(), Code::kResourceExhausted);
  EXPECT_EQ(retry, 300'000 - 3000) << "when the oldest open command expires";
  EXPECT_TRUE(f.Submit(f.Req("n2")).ok()) << "other devices are not affected";
  // Finished commands make room.
  auto first = f.book.List("n1", 0, 10).back()->id;
  auto canceled = f.book.Transit(first, State::kCanceled, f.now, "op");
  ASSERT_TRUE(canceled.ok());
  f.book.Put(*canceled);
  EXPECT_TRUE(f.Submit(f.Req("n1")).ok());
}

TEST(Book, TtlDefaultBoundsAndExpiry) {
  Fixture f;
  Request r = f.Req("n1");
  r.ttl_ms = 0;
  EXPECT_EQ(f.book.Accept(r, f.now).status().code(), Code::kInvalidArgument);
  r.ttl_ms = 86'400'001;
  EXPECT_EQ(f.book.Accept(r, f.now).status().code(), Code::kInvalidArgument);
  r.ttl_ms = 2000;
  auto a = f.Submit(r);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(f.book.NextExpiry(), f.now + 2000);
  EXPECT_TRUE(f.book.PlanExpiry(f.now + 1999).empty());
  f.now += 2000;
  EXPECT_TRUE(f.book.PlanDispatch("n1", f.now).empty()) << "an expired command is not sent";
  auto expired = f.book.PlanExpiry(f.now);
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].state, State::kExpired);
  EXPECT_EQ(expired[0].history.back().user, "gateway");
  f.book.Put(expired[0]);
  EXPECT_FALSE(f.book.NextExpiry().has_value());
  EXPECT_TRUE(f.book.waiting().empty());
}

TEST(Book, SentCommandsExpireWithoutReplyButSeedOnesFinishAtSent) {
  Fixture f;
  Request native = f.Req("n1");
  native.ttl_ms = 1000;
  Request seed = f.Req("s1");
  seed.ttl_ms = 1000;
  seed.transport = Transport::kSeed;
  auto a = f.Submit(native);
  auto b = f.Submit(seed);
  f.Dispatch("n1");
  f.Dispatch("s1");
  EXPECT_TRUE(Finished(*f.book.Find(b->command.id)));
  EXPECT_EQ(f.book.open("s1"), 0u);
  auto expired = f.book.PlanExpiry(f.now + 1000);
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].id, a->command.id);
}

TEST(Book, CancelOnlyWhileQueued) {
  Fixture f;
  auto a = f.Submit(f.Req("n1"));
  auto b = f.Submit(f.Req("n2"));
  f.Dispatch("n2");
  auto c1 = f.book.Transit(a->command.id, State::kCanceled, f.now, "op");
  ASSERT_TRUE(c1.ok());
  EXPECT_EQ(c1->history.back().user, "op");
  EXPECT_EQ(f.book.Transit(b->command.id, State::kCanceled, f.now, "op").status().code(),
            Code::kFailedPrecondition);
  EXPECT_EQ(f.book.Transit("nope", State::kCanceled, f.now, "op").status().code(), Code::kNotFound);
}

TEST(Book, HistoryBoundDropsOldestFinished) {
  Options o;
  o.queue_per_device = 2;
  o.history_per_device = 3;
  Fixture f(o);
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto a = f.Submit(f.Req("n1", "led", "k" + std::to_string(i)));
    ids.push_back(a->command.id);
    auto c = f.book.Transit(a->command.id, State::kCanceled, f.now, "op");
    f.book.Put(*c);
  }
  auto next = f.Submit(f.Req("n1"));
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->evict, std::vector<std::string>{ids[0]});
  EXPECT_EQ(f.book.Find(ids[0]), nullptr);
  EXPECT_EQ(f.book.List("n1", 0, 10).size(), 3u);
  // Its idempotency key is free again.
  EXPECT_FALSE(f.Submit(f.Req("n1", "led", "k0", "new"))->existing);
}

TEST(Book, ListNewestFirstWithCursor) {
  Fixture f;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(f.Submit(f.Req("n1")).ok());
  auto page = f.book.List("n1", 0, 2);
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0]->id, "c5");
  EXPECT_EQ(page[1]->id, "c4");
  auto rest = f.book.List("n1", page[1]->seq, 10);
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_EQ(rest[0]->id, "c3");
  EXPECT_TRUE(f.book.List("unknown", 0, 10).empty());
}

TEST(Book, RestoreResendsSentNativeCommandsOnly) {
  Fixture f;
  auto a = f.Submit(f.Req("n1"));
  auto b = f.Submit(f.Req("n1"));
  f.Dispatch("n1");
  auto q = f.Submit(f.Req("n1"));
  std::vector<Command> stored;
  for (const auto* c : f.book.List("n1", 0, 10)) {
    auto row = FromRow(ToRow(*c));
    ASSERT_TRUE(row.ok()) << row.status().ToString();
    stored.push_back(*row);
  }
  Book restored(Options{});
  restored.Restore(stored);
  EXPECT_EQ(restored.waiting(), std::set<std::string>{"n1"});
  EXPECT_GT(restored.next_seq(), q->command.seq);
  auto plan = restored.PlanDispatch("n1", f.now);
  ASSERT_EQ(plan.size(), 3u) << "two to send again, one queued";
  EXPECT_EQ(plan[0].id, a->command.id);
  EXPECT_EQ(plan[0].state, State::kSent);
  EXPECT_EQ(plan[0].history.size(), 2u) << "a resend is not a transition";
  EXPECT_EQ(plan[1].id, b->command.id);
  EXPECT_EQ(plan[2].id, q->command.id);
  EXPECT_EQ(plan[2].history.size(), 2u);
}

TEST(Codec, JsonAndPayload) {
  Fixture f;
  Request r = f.Req("n1", "setSensorInterval");
  r.params_json = R"({"interval":10000,"id":"spoof"})";
  auto a = f.Submit(r);
  nlohmann::json j = CommandJson(a->command);
  EXPECT_EQ(j["state"], "queued");
  EXPECT_EQ(j["transport"], "native");
  EXPECT_TRUE(j["reply"].is_null());
  EXPECT_EQ(j["history"][0]["user"], "anonymous");
  EXPECT_EQ(j["params"]["interval"], 10000);
  auto payload = nlohmann::json::parse(DevicePayload(a->command));
  EXPECT_EQ(payload["id"], a->command.id);
  EXPECT_EQ(payload["command"], "setSensorInterval");
  EXPECT_EQ(payload["interval"], 10000);
  Command seed = a->command;
  seed.transport = Transport::kSeed;
  EXPECT_FALSE(nlohmann::json::parse(DevicePayload(seed)).contains("id"));
  model::CommandRow bad = ToRow(a->command);
  bad.state = "dancing";
  EXPECT_EQ(FromRow(bad).status().code(), Code::kDataLoss);
}

}  // namespace
}  // namespace outpost::gateway::commands
