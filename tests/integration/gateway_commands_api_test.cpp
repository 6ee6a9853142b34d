// Device commands (docs/api.md#commands) against the real gateway binary, a real Mosquitto and
// SQLite: the test's MQTT client plays the devices (a native one on devices/{id}/commands that
// replies on devices/{id}/replies, and a seed one on the flat topics).
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>
#include <vector>

#include "gateway_harness.h"
#include "outpost/testing/raw_http.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/wait_until.h"

namespace outpost::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

Result<RawHttpResponse> RawRequest(std::uint16_t port, const std::string& method,
                                   const std::string& target, const std::string& body = "",
                                   const std::string& headers = "") {
  auto c = RawHttpConnection::Connect(port);
  if (!c.ok()) return c.status();
  return c->Exchange(method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers +
                         "Content-Type: application/json\r\nContent-Length: " +
                         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body,
                     seconds(40));
}

json Body(const RawHttpResponse& r) { return json::parse(r.body, nullptr, false); }

std::string ErrorCode(const RawHttpResponse& r) {
  json j = Body(r);
  return j.is_object() && j.contains("error") ? j["error"].value("code", "") : "";
}

std::vector<std::string> States(const json& cmd) {
  std::vector<std::string> out;
  for (const json& t : cmd["history"]) out.push_back(t["state"]);
  return out;
}

class GatewayCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    OUTPOST_ASSERT_OK(
        h_.Start("registry:\n  offline_after_s: 3600\ncommands:\n  queue_per_device: 3\n"
                 "  history_per_device: 10\n  max_waiters: 2\n"));
    OUTPOST_ASSERT_OK(h_.devices().Subscribe("devices/n1/commands", 1));
    OUTPOST_ASSERT_OK(h_.devices().Subscribe("devices/commands", 1));
    Reading("n1");  // known, native, online
    OUTPOST_ASSERT_OK(h_.devices().Publish("sensors/data",
                                           R"({"deviceId":"s1","timestamp":1000,"temperature":20})",
                                           1));  // a seed device
    OUTPOST_ASSERT_OK(h_.WaitStatus([](const json& j) { return j["ingest"]["stored"] == 2; }));
  }
  void Reading(const std::string& device) {
    OUTPOST_ASSERT_OK(h_.devices().Publish(
        "sensors/" + device + "/data",
        json{{"deviceId", device}, {"boot", 1}, {"seq", ++seq_}, {"temperature", 21.5}}.dump(), 1));
  }
  void Status(const std::string& device, const std::string& word) {
    OUTPOST_ASSERT_OK(h_.devices().Publish("devices/" + device + "/status", word, 1));
  }
  // Waits until the registry says `status`.
  void WaitDevice(const std::string& device, const std::string& status) {
    ASSERT_TRUE(WaitUntil("device " + device + " " + status, seconds(10), [&] {
      auto r = Request(port(), "GET", "/api/v1/devices/" + device);
      return r.ok() && r->status == 200 && Body(*r)["status"] == status;
    }));
  }
  Result<RawHttpResponse> Send(const std::string& device, const json& body,
                               const std::string& query = "", const std::string& key = "") {
    return Request(port(), "POST", "/api/v1/devices/" + device + "/commands" + query, body.dump(),
                   key.empty() ? "" : "Idempotency-Key: " + key + "\r\n");
  }
  json Get(const std::string& device, const std::string& id) {
    auto r = Request(port(), "GET", "/api/v1/devices/" + device + "/commands/" + id);
    EXPECT_TRUE(r.ok() && r->status == 200) << (r.ok() ? r->body : r.status().ToString());
    return r.ok() ? Body(*r) : json();
  }
  void Reply(const std::string& device, const json& reply) {
    OUTPOST_ASSERT_OK(h_.devices().Publish("devices/" + device + "/replies", reply.dump(), 1));
  }
  bool WaitState(const std::string& device, const std::string& id, const std::string& state) {
    return WaitUntil("command " + id + " " + state, seconds(10),
                     [&] { return Get(device, id)["state"] == state; });
  }
  std::uint16_t port() const { return h_.http_port(); }
  // A request with the harness's credentials.
  Result<RawHttpResponse> Request(std::uint16_t port, const std::string& method,
                                  const std::string& target, const std::string& body = "",
                                  const std::string& headers = "") const {
    return RawRequest(port, method, target, body, h_.auth_header() + headers);
  }

  GatewayHarness h_;
  int seq_ = 0;
};

TEST_F(GatewayCommandsTest, QueuedWhileOfflineThenSentInOrderWithinTwoSecondsAndReplied) {
  Status("n1", "offline");
  WaitDevice("n1", "offline");
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    OUTPOST_ASSERT_OK_AND_ASSIGN(auto r, Send("n1", {{"command", "setSensorInterval"},
                                                     {"params", {{"interval", 5000 + i}}}}));
    ASSERT_EQ(r.status, 202) << r.body;
    json c = Body(r);
    EXPECT_EQ(c["state"], "queued");
    EXPECT_EQ(c["transport"], "native");
    EXPECT_EQ(c["user"], "token:test-harness");
    ids.push_back(c["id"]);
  }
  EXPECT_EQ(h_.devices().WaitMessage("devices/n1/commands", milliseconds(300)).status().code(),
            Code::kDeadlineExceeded)
      << "nothing goes to an offline device";
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto full, Send("n1", {{"command", "led"}}));
  EXPECT_EQ(full.status, 429);
  EXPECT_EQ(ErrorCode(full), "queue_full");
  EXPECT_FALSE(full.Header("retry-after").empty());

  const auto online_at = std::chrono::steady_clock::now();
  Status("n1", "online");
  for (int i = 0; i < 3; ++i) {
    OUTPOST_ASSERT_OK_AND_ASSIGN(auto m,
                                 h_.devices().WaitMessage("devices/n1/commands", seconds(5)));
    EXPECT_LT(std::chrono::steady_clock::now() - online_at, seconds(2)) << "command " << i;
    EXPECT_EQ(m.qos, 1);
    json payload = json::parse(m.payload);
    EXPECT_EQ(payload["id"], ids[i]) << "in order";
    EXPECT_EQ(payload["command"], "setSensorInterval");
    EXPECT_EQ(payload["interval"], 5000 + i);
  }
  Reply("n1", {{"id", ids[0]}, {"ok", true}});
  Reply("n1", {{"id", ids[1]}, {"ok", false}, {"error", "field \"interval\": too small"}});
  Reply("n1", {{"id", ids[2]}, {"ok", false}, {"rejected", true}});
  ASSERT_TRUE(WaitState("n1", ids[0], "succeeded"));
  ASSERT_TRUE(WaitState("n1", ids[1], "failed"));
  ASSERT_TRUE(WaitState("n1", ids[2], "rejected"));
  json done = Get("n1", ids[0]);
  EXPECT_EQ(States(done), (std::vector<std::string>{"queued", "sent", "delivered", "succeeded"}));
  EXPECT_EQ(done["reply"]["ok"], true);
  EXPECT_EQ(done["history"].back()["user"], "device");
  EXPECT_EQ(Get("n1", ids[1])["reply"]["error"], "field \"interval\": too small");

  OUTPOST_ASSERT_OK_AND_ASSIGN(auto list,
                               Request(port(), "GET", "/api/v1/devices/n1/commands?limit=2"));
  ASSERT_EQ(list.status, 200);
  json page = Body(list);
  ASSERT_EQ(page["commands"].size(), 2u);
  EXPECT_EQ(page["commands"][0]["id"], ids[2]) << "newest first";
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto next, Request(port(), "GET",
                                                  "/api/v1/devices/n1/commands?limit=2&cursor=" +
                                                      page["next_cursor"].get<std::string>()));
  ASSERT_EQ(Body(next)["commands"].size(), 1u);
  EXPECT_EQ(Body(next)["commands"][0]["id"], ids[0]);
  EXPECT_TRUE(Body(next)["next_cursor"].is_null());
}

TEST_F(GatewayCommandsTest, SeedDeviceCommandsEndAtSent) {
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      auto r, Send("s1", {{"command", "led"}, {"params", {{"state", true}}}}, "?wait=5"));
  ASSERT_EQ(r.status, 200) << r.body;
  json c = Body(r);
  EXPECT_EQ(c["transport"], "seed");
  EXPECT_EQ(c["state"], "sent");
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto m, h_.devices().WaitMessage("devices/commands"));
  json payload = json::parse(m.payload);
  EXPECT_EQ(payload, (json{{"command", "led"}, {"state", true}})) << "the seed shape, no id";
}

TEST_F(GatewayCommandsTest, IdempotencyKeySendsOnce) {
  Status("n1", "offline");
  WaitDevice("n1", "offline");
  const json body = {{"command", "led"}, {"params", {{"state", true}}}};
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto a, Send("n1", body, "", "op-1"));
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto b, Send("n1", body, "", "op-1"));
  ASSERT_EQ(a.status, 202);
  ASSERT_EQ(b.status, 202);
  EXPECT_EQ(Body(a)["id"], Body(b)["id"]);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto conflict, Send("n1", {{"command", "reboot"}}, "", "op-1"));
  EXPECT_EQ(conflict.status, 409);
  EXPECT_EQ(ErrorCode(conflict), "idempotency_conflict");
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto bad_key, Send("n1", body, "", "bad key!"));
  EXPECT_EQ(bad_key.status, 400);
  Status("n1", "online");
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto m, h_.devices().WaitMessage("devices/n1/commands"));
  EXPECT_EQ(json::parse(m.payload)["id"], Body(a)["id"]);
  EXPECT_EQ(h_.devices().WaitMessage("devices/n1/commands", milliseconds(500)).status().code(),
            Code::kDeadlineExceeded)
      << "sent once";
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto list, Request(port(), "GET", "/api/v1/devices/n1/commands"));
  EXPECT_EQ(Body(list)["commands"].size(), 1u);
}

TEST_F(GatewayCommandsTest, ExpiryAndCancel) {
  Status("n1", "offline");
  WaitDevice("n1", "offline");
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto short_ttl, Send("n1", {{"command", "led"}, {"ttl_s", 1}}));
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto other, Send("n1", {{"command", "reboot"}}));
  const std::string expiring = Body(short_ttl)["id"], cancel = Body(other)["id"];
  ASSERT_TRUE(WaitState("n1", expiring, "expired"));
  EXPECT_EQ(Get("n1", expiring)["history"].back()["user"], "gateway");
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      auto c, Request(port(), "POST", "/api/v1/devices/n1/commands/" + cancel + "/cancel"));
  ASSERT_EQ(c.status, 200) << c.body;
  EXPECT_EQ(Body(c)["state"], "canceled");
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      auto again, Request(port(), "POST", "/api/v1/devices/n1/commands/" + cancel + "/cancel"));
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(ErrorCode(again), "not_cancelable");
  Status("n1", "online");
  EXPECT_EQ(h_.devices().WaitMessage("devices/n1/commands", seconds(3)).status().code(),
            Code::kDeadlineExceeded)
      << "neither an expired nor a canceled command goes out";
}

TEST_F(GatewayCommandsTest, WaitAnswersWithTheReplyOrTheCurrentState) {
  // The device replies while the request waits: 200 with the outcome.
  auto waiting = std::async(std::launch::async, [&] {
    return Send("n1", {{"command", "led"}, {"params", {{"state", true}}}}, "?wait=10");
  });
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto m, h_.devices().WaitMessage("devices/n1/commands"));
  const std::string id = json::parse(m.payload)["id"];
  Reply("n1", {{"id", id}, {"ok", true}});
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto r, waiting.get());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r)["state"], "succeeded");
  EXPECT_EQ(Body(r)["reply"]["ok"], true);

  // No reply within the wait: 202 with the state then; a late reply still completes it.
  const auto t0 = std::chrono::steady_clock::now();
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto slow, Send("n1", {{"command", "led"}}, "?wait=1"));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, milliseconds(900));
  ASSERT_EQ(slow.status, 202) << slow.body;
  EXPECT_EQ(Body(slow)["state"], "sent");
  Reply("n1", {{"id", Body(slow)["id"]}, {"ok", true}});
  EXPECT_TRUE(WaitState("n1", Body(slow)["id"], "succeeded"));

  OUTPOST_ASSERT_OK_AND_ASSIGN(auto bad, Send("n1", {{"command", "led"}}, "?wait=31"));
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(ErrorCode(bad), "bad_wait");
}

// Certificate rotation (docs/adr/0011) rides on the same life cycle: a certRequest's reply
// carries the device's CSR and a certInstall's the new serial, both kept in the command's reply
// for `outpost-provision device rotate` to read. A reply whose csr is not base64 is refused whole
// (quarantined as malformed) and leaves its command as it was.
TEST_F(GatewayCommandsTest, RotationRepliesCarryTheCsrAndTheSerial) {
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto req, Send("n1", {{"command", "certRequest"}}));
  ASSERT_EQ(req.status, 202) << req.body;
  const std::string req_id = Body(req)["id"];
  OUTPOST_ASSERT_OK(h_.devices().WaitMessage("devices/n1/commands"));
  Reply("n1", {{"id", req_id}, {"ok", true}, {"csr", "not base64!"}});
  // A later reply on the same connection is handled after it: once that one has landed, the
  // malformed one has been seen and refused.
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto fence, Send("n1", {{"command", "led"}}));
  OUTPOST_ASSERT_OK(h_.devices().WaitMessage("devices/n1/commands"));
  Reply("n1", {{"id", Body(fence)["id"]}, {"ok", true}});
  ASSERT_TRUE(WaitState("n1", Body(fence)["id"], "succeeded"));
  EXPECT_EQ(Get("n1", req_id)["state"], "sent");

  const std::string csr = "MIIBVDCB+wIBADAZMRcwFQYDVQQDDA5ub2RlLTAwMDAx/Q==";
  Reply("n1", {{"id", req_id}, {"ok", true}, {"csr", csr}});
  ASSERT_TRUE(WaitState("n1", req_id, "succeeded"));
  EXPECT_EQ(Get("n1", req_id)["reply"]["csr"], csr);

  OUTPOST_ASSERT_OK_AND_ASSIGN(
      auto install, Send("n1", {{"command", "certInstall"}, {"params", {{"cert", "MIIC"}}}}));
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto m, h_.devices().WaitMessage("devices/n1/commands"));
  EXPECT_EQ(json::parse(m.payload)["cert"], "MIIC");
  Reply("n1", {{"id", Body(install)["id"]}, {"ok", true}, {"serial", "5A0F3C"}});
  ASSERT_TRUE(WaitState("n1", Body(install)["id"], "succeeded"));
  const json done = Get("n1", Body(install)["id"]);
  EXPECT_EQ(done["reply"]["serial"], "5A0F3C");
  EXPECT_FALSE(done["reply"].contains("csr"));
}

// Every transition is a stream `command` event carrying the command; waiting requests are
// bounded (commands.max_waiters: 2 here).
TEST_F(GatewayCommandsTest, TransitionsAreStreamedAndWaitersAreBounded) {
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto stream, RawHttpConnection::Connect(port()));
  const std::string req =
      "GET /api/v1/stream?types=command HTTP/1.1\r\nHost: x\r\n" + h_.auth_header() + "\r\n";
  ASSERT_EQ(stream.SendSome(req), static_cast<long>(req.size()));
  ASSERT_TRUE(WaitUntil("stream head", seconds(5), [&] {
    stream.closed();
    return stream.received().find("retry: ") != std::string::npos;
  }));
  Status("n1", "offline");
  WaitDevice("n1", "offline");
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto r, Send("n1", {{"command", "led"}}));
  const std::string id = Body(r)["id"];
  ASSERT_TRUE(WaitUntil("queued event", seconds(5), [&] {
    stream.closed();
    return stream.received().find("event: command\ndata: {") != std::string::npos &&
           stream.received().find("\"id\":\"" + id + "\"") != std::string::npos;
  })) << stream.received();
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      auto c, Request(port(), "POST", "/api/v1/devices/n1/commands/" + id + "/cancel"));
  ASSERT_EQ(c.status, 200);
  ASSERT_TRUE(WaitUntil("canceled event", seconds(5), [&] {
    stream.closed();
    return stream.received().find("\"state\":\"canceled\"") != std::string::npos;
  })) << stream.received();

  auto a = std::async(std::launch::async, [&] {
    return Send("n1", {{"command", "led"}}, "?wait=3");
  });
  auto b = std::async(std::launch::async, [&] {
    return Send("n1", {{"command", "led"}}, "?wait=3");
  });
  ASSERT_TRUE(WaitUntil("two waiters", seconds(5), [&] {
    auto m = Request(port(), "GET", "/metrics");
    return m.ok() && m->body.find("outpost_gateway_commands_waiters 2\n") != std::string::npos;
  }));
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto busy, Send("n1", {{"command", "led"}}, "?wait=3"));
  EXPECT_EQ(busy.status, 503);
  EXPECT_EQ(ErrorCode(busy), "busy");
  EXPECT_FALSE(busy.Header("retry-after").empty());
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto ra, a.get());
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto rb, b.get());
  EXPECT_EQ(ra.status, 202) << "the device is offline: still queued after the wait";
  EXPECT_EQ(Body(rb)["state"], "queued");
}

TEST_F(GatewayCommandsTest, BadInputIsRefusedAndChangesNothing) {
  struct Case {
    std::string method, target, body;
    int status;
    std::string code;
  } cases[] = {
      {"POST", "/api/v1/devices/ghost/commands", R"({"command":"led"})", 404, "unknown_device"},
      {"GET", "/api/v1/devices/ghost/commands", "", 404, "unknown_device"},
      {"POST", "/api/v1/devices/n1/commands", "{not json", 400, "bad_body"},
      {"POST", "/api/v1/devices/n1/commands", "{}", 400, "bad_command"},
      {"POST", "/api/v1/devices/n1/commands", R"({"command":"a b"})", 400, "bad_command"},
      {"POST", "/api/v1/devices/n1/commands", R"({"command":"led","params":[]})", 400,
       "bad_params"},
      {"POST", "/api/v1/devices/n1/commands", R"({"command":"led","ttl_s":0})", 400, "bad_ttl_s"},
      {"POST", "/api/v1/devices/n1/commands", R"({"command":"led","ttl_s":86401})", 400,
       "bad_ttl_s"},
      {"POST", "/api/v1/devices/n1/commands",
       R"({"command":"led","params":{"x":")" + std::string(5000, 'a') + "\"}}", 413,
       "body_too_large"},
      {"GET", "/api/v1/devices/n1/commands?cursor=zzz", "", 400, "bad_cursor"},
      {"GET", "/api/v1/devices/n1/commands?limit=0", "", 400, "bad_limit"},
      {"GET", "/api/v1/devices/n1/commands/c-nope", "", 404, "unknown_command"},
      {"POST", "/api/v1/devices/n1/commands/c-nope/cancel", "", 404, "unknown_command"},
  };
  for (const Case& c : cases) {
    OUTPOST_ASSERT_OK_AND_ASSIGN(auto r, Request(port(), c.method, c.target, c.body));
    EXPECT_EQ(r.status, c.status) << c.method << " " << c.target << ": " << r.body;
    EXPECT_EQ(r.Header("content-type"), "application/problem+json") << c.target;
    EXPECT_EQ(ErrorCode(r), c.code) << c.target << ": " << r.body;
  }
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto list, Request(port(), "GET", "/api/v1/devices/n1/commands"));
  ASSERT_EQ(list.status, 200);
  EXPECT_TRUE(Body(list)["commands"].empty()) << "nothing was queued";
  EXPECT_EQ(h_.devices().WaitMessage("devices/n1/commands", milliseconds(300)).status().code(),
            Code::kDeadlineExceeded);
}

// kill -9 with commands queued (and one sent, unanswered): after the restart every accepted
// command reaches the device, in order; the sent one again with the same id (the device
// de-duplicates by id), none lost.
TEST_F(GatewayCommandsTest, KillDashNineLosesNoQueuedCommand) {
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto first, Send("n1", {{"command", "led"}}));
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto m0, h_.devices().WaitMessage("devices/n1/commands"));
  const std::string sent = Body(first)["id"];
  EXPECT_EQ(json::parse(m0.payload)["id"], sent);
  Status("n1", "offline");
  WaitDevice("n1", "offline");
  std::vector<std::string> queued;
  for (int i = 0; i < 2; ++i) {
    OUTPOST_ASSERT_OK_AND_ASSIGN(auto r, Send("n1", {{"command", "reboot"}}));
    ASSERT_EQ(r.status, 202);
    queued.push_back(Body(r)["id"]);
  }
  h_.KillGateway();
  OUTPOST_ASSERT_OK(h_.StartGateway());
  EXPECT_EQ(Get("n1", queued[0])["state"], "queued");
  EXPECT_EQ(Get("n1", sent)["state"], "sent");
  Status("n1", "online");
  std::vector<std::string> got;
  for (int i = 0; i < 3; ++i) {
    OUTPOST_ASSERT_OK_AND_ASSIGN(auto m,
                                 h_.devices().WaitMessage("devices/n1/commands", seconds(5)));
    got.push_back(json::parse(m.payload)["id"]);
  }
  EXPECT_EQ(got, (std::vector<std::string>{sent, queued[0], queued[1]}));
  for (const std::string& id : got) Reply("n1", {{"id", id}, {"ok", true}});
  for (const std::string& id : got) EXPECT_TRUE(WaitState("n1", id, "succeeded"));
  EXPECT_EQ(h_.devices().WaitMessage("devices/n1/commands", milliseconds(500)).status().code(),
            Code::kDeadlineExceeded)
      << "each once after the restart";
  // Restarted again, nothing is re-sent: they are finished.
  OUTPOST_ASSERT_OK(h_.StopGateway());
  OUTPOST_ASSERT_OK(h_.StartGateway());
  EXPECT_EQ(Get("n1", queued[1])["state"], "succeeded");
  EXPECT_EQ(h_.devices().WaitMessage("devices/n1/commands", milliseconds(1500)).status().code(),
            Code::kDeadlineExceeded);
}

}  // namespace
}  // namespace outpost::testing
