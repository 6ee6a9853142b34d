#include "commands_api.h"

#include <gtest/gtest.h>

#include "outpost/gateway/commands/codec.h"

namespace outpost::gateway::app::commands_api {
namespace {

TEST(CommandsApi, ParseBody) {
  std::string bad;
  auto b =
      ParseBody(R"({"command":"setSensorInterval","params":{"interval":10000},"ttl_s":60})", &bad);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->name, "setSensorInterval");
  EXPECT_EQ(b->params_json, R"({"interval":10000})");
  EXPECT_EQ(b->ttl_ms, 60'000);
  auto same =
      ParseBody(R"({"ttl_s":60,"params":{"interval":10000},"command":"setSensorInterval"})", &bad);
  EXPECT_EQ(same->fingerprint, b->fingerprint) << "member order does not matter";
  auto other = ParseBody(R"({"command":"setSensorInterval","params":{"interval":5000}})", &bad);
  EXPECT_NE(other->fingerprint, b->fingerprint);
  auto plain = ParseBody(R"({"command":"reboot"})", &bad);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->params_json, "{}");
  EXPECT_FALSE(plain->ttl_ms.has_value());

  struct Case {
    const char* body;
    const char* field;
  } cases[] = {{"", "body"},
               {"[1]", "body"},
               {"{\"command\":", "body"},
               {R"({"params":{}})", "command"},
               {R"({"command":5})", "command"},
               {R"({"command":""})", "command"},
               {R"({"command":"two words"})", "command"},
               {R"({"command":"led","params":[1]})", "params"},
               {R"({"command":"led","params":{"id":"x"}})", "params"},
               {R"({"command":"led","ttl_s":"60"})", "ttl_s"},
               {R"({"command":"led","ttl_s":1.5})", "ttl_s"},
               {R"({"command":"led","ttl_s":0})", "ttl_s"}};
  for (const Case& c : cases) {
    bad.clear();
    auto r = ParseBody(c.body, &bad);
    EXPECT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(bad, c.field) << c.body;
  }
}

TEST(CommandsApi, ParseWait) {
  EXPECT_EQ(*ParseWait({}), 0);
  EXPECT_EQ(*ParseWait({{"wait", "10"}}), 10);
  EXPECT_EQ(*ParseWait({{"wait", "30"}}), 30);
  for (const char* v : {"31", "-1", "", "1.5", "abc", "100"}) {
    EXPECT_FALSE(ParseWait({{"wait", v}}).ok()) << v;
  }
}

// The service with a fake store, broker and registry: replies, expiry and dispatch.
struct Harness {
  Harness() {
    Hooks h;
    h.device = [this](const std::string& id) {
      DeviceInfo d;
      d.known = true;
      d.native = id != "seed";
      d.online = online;
      return d;
    };
    h.save = [this](const std::vector<model::CommandRow>& rows, const std::vector<std::string>&) {
      if (fail_save) return Unavailable("disk");
      for (const auto& r : rows) saved.push_back(r.state);
      return Status::Ok();
    };
    h.publish = [this](const commands::Command& c) {
      published.push_back(commands::DevicePayload(c));
      return publish_ok;
    };
    h.on_transition = [this](const nlohmann::json& j) { streamed.push_back(j["state"]); };
    h.now_ms = [this] { return now; };
    h.user = [](const http::Request&) { return std::string("anonymous"); };
    h.new_id = [this] { return "c" + std::to_string(++ids); };
    service = std::make_unique<Service>(io, commands::Options{}, 4, std::move(h));
  }
  void Queue(const std::string& id, const std::string& device, std::int64_t ttl_ms = 60'000) {
    commands::Command c;
    c.id = id;
    c.device = device;
    c.name = "led";
    c.seq = static_cast<std::uint64_t>(++ids);
    c.created_ms = c.updated_ms = now;
    c.expires_ms = now + ttl_ms;
    c.transport = device == "seed" ? commands::Transport::kSeed : commands::Transport::kNative;
    c.history.push_back({commands::State::kQueued, now, "anonymous"});
    service->Restore({c});
  }
  asio::io_context io;
  std::unique_ptr<Service> service;
  bool online = false, fail_save = false, publish_ok = true;
  std::int64_t now = 1'764'000'000'000;
  int ids = 0;
  std::vector<std::string> saved, published, streamed;
};

TEST(CommandsService, QueuedUntilOnlineThenSentInOrderAndCompletedByReply) {
  Harness t;
  t.Queue("a", "n1");
  t.Queue("b", "n1");
  t.service->Tick();
  EXPECT_TRUE(t.published.empty()) << "offline: nothing goes out";
  t.online = true;
  t.service->Tick();
  ASSERT_EQ(t.published.size(), 2u);
  EXPECT_NE(t.published[0].find("\"id\":\"a\""), std::string::npos);
  EXPECT_NE(t.published[1].find("\"id\":\"b\""), std::string::npos);
  EXPECT_EQ(t.saved, (std::vector<std::string>{"sent", "sent"}));
  proto::DeviceReply r;
  r.id = "a";
  r.has_ok = r.ok = true;
  t.service->OnReply("n1", r);
  EXPECT_EQ(t.service->book().Find("a")->state, commands::State::kSucceeded);
  EXPECT_EQ(t.streamed.back(), "succeeded");
  t.service->OnReply("other", r);  // another device's reply names no command of it
  EXPECT_EQ(t.service->book().counters().replies_unknown, 1u);
  t.service->OnReply("n1", r);  // a duplicate
  EXPECT_EQ(t.service->book().counters().replies_late, 1u);
  t.service->Tick();
  EXPECT_EQ(t.published.size(), 2u) << "nothing sent twice";
  const std::string metrics = t.service->Prometheus("c_");
  EXPECT_NE(metrics.find("c_sent_total 2\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("c_replies_late_total 1\n"), std::string::npos) << metrics;
}

TEST(CommandsService, FailedWriteChangesNothingAndPublishesNothing) {
  Harness t;
  t.Queue("a", "n1");
  t.online = true;
  t.fail_save = true;
  t.service->Tick();
  EXPECT_TRUE(t.published.empty());
  EXPECT_EQ(t.service->book().Find("a")->state, commands::State::kQueued);
  t.fail_save = false;
  t.service->Tick();
  EXPECT_EQ(t.published.size(), 1u);
}

TEST(CommandsService, RefusedPublishIsRetried) {
  Harness t;
  t.Queue("a", "n1");
  t.online = true;
  t.publish_ok = false;
  t.service->Tick();
  EXPECT_EQ(t.published.size(), 1u);
  t.publish_ok = true;
  t.service->Tick();
  EXPECT_EQ(t.published.size(), 2u);
  t.service->Tick();
  EXPECT_EQ(t.published.size(), 2u);
  EXPECT_EQ(t.saved, std::vector<std::string>{"sent"}) << "one transition";
}

TEST(CommandsService, ExpiryOnTick) {
  Harness t;
  t.Queue("a", "n1", 1000);
  t.now += 1000;
  t.service->Tick();
  EXPECT_EQ(t.service->book().Find("a")->state, commands::State::kExpired);
  EXPECT_EQ(t.streamed, std::vector<std::string>{"expired"});
  t.online = true;
  t.service->Tick();
  EXPECT_TRUE(t.published.empty());
}

TEST(CommandsService, SeedCommandsEndAtSent) {
  Harness t;
  t.Queue("a", "seed");
  t.online = true;
  t.service->Tick();
  ASSERT_EQ(t.published.size(), 1u);
  EXPECT_EQ(t.published[0].find("\"id\""), std::string::npos);
  EXPECT_TRUE(commands::Finished(*t.service->book().Find("a")));
}

}  // namespace
}  // namespace outpost::gateway::app::commands_api
