// Logins, sessions, CSRF, roles and API tokens (docs/api.md "Authentication") against the real
// binary: a real Mosquitto, real SQLite files (gateway.db, auth.sqlite), the gateway's own CLI
// for users and tokens, raw loopback HTTP requests.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "gateway_harness.h"
#include "outpost/gateway/auth/auth_store.h"
#include "outpost/http/client.h"
#include "outpost/testing/raw_http.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/test_pki.h"
#include "outpost/testing/wait_until.h"

namespace outpost::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class GatewayAuthTest : public ::testing::Test {
 protected:
  void Start(const std::string& extra_yaml = "") {
    OUTPOST_ASSERT_OK(h_.Start(extra_yaml));
    ASSERT_NE(h_.http_port(), 0);
  }

  Result<RawHttpResponse> Send(const std::string& method, const std::string& target,
                               const std::string& headers = "", const std::string& body = "") {
    auto c = RawHttpConnection::Connect(h_.http_port());
    if (!c.ok()) return c.status();
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers +
                      "Connection: close\r\n";
    if (method == "POST") req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    return c->Exchange(req + "\r\n" + body);
  }
  Result<RawHttpResponse> Login(const std::string& user, const std::string& password) {
    return Send("POST", "/api/v1/auth/login", "Content-Type: application/json\r\n",
                json{{"user", user}, {"password", password}}.dump());
  }
  std::string AdminPassword() {
    std::ifstream in(h_.dir().File("admin-password"));
    std::string line;
    std::getline(in, line);
    return line;
  }
  // Adds a user with the CLI (password on stdin).
  void AddUser(const std::string& name, const std::string& role, const std::string& password) {
    auto r = h_.RunCli({"user", "add", name, "--role", role, "--password-stdin"}, password + "\n");
    OUTPOST_ASSERT_OK(r);
    ASSERT_EQ(r->status, 0) << r->output;
  }
  // The session cookie ("outpost_session=...") and CSRF token of a login.
  struct Session {
    std::string cookie, csrf;
  };
  Session LoginOk(const std::string& user, const std::string& password) {
    auto r = Login(user, password);
    EXPECT_TRUE(r.ok());
    if (!r.ok()) return {};
    EXPECT_EQ(r->status, 200) << r->body;
    const std::string set = r->Header("set-cookie");
    json j = json::parse(r->body, nullptr, false);
    return {set.substr(0, set.find(';')), j.is_object() ? j.value("csrf", "") : ""};
  }
  // Raises an alert (temperature over 20) and returns its API id.
  std::string RaiseAlert() {
    EXPECT_TRUE(
        h_.devices()
            .Publish("sensors/d1/data",
                     json{{"deviceId", "d1"}, {"boot", 1}, {"seq", 1}, {"temperature", 25}}.dump(),
                     1)
            .ok());
    std::string id;
    EXPECT_TRUE(WaitUntil("an alert", 20s, [&] {
      auto r = Send("GET", "/api/v1/alerts", h_.auth_header());
      if (!r.ok() || r->status != 200) return false;
      json j = json::parse(r->body, nullptr, false);
      if (j.is_discarded() || j["alerts"].empty()) return false;
      id = j["alerts"][0]["id"];
      return true;
    }));
    return id;
  }
  std::string Code(const RawHttpResponse& r) {
    json j = json::parse(r.body, nullptr, false);
    return j.is_object() && j.contains("error") ? j["error"].value("code", "") : "";
  }
  std::unique_ptr<gateway::auth::AuthStore> OpenAuth() {
    auto s = gateway::auth::AuthStore::Open({h_.dir().File("auth.sqlite"), 100'000});
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }
  GatewayHarness h_;
};

constexpr const char* kAlerting = "thresholds:\n  temperature_max: 20\n";

TEST_F(GatewayAuthTest, FirstStartWritesTheAdminPasswordOwnerOnlyAndLogsOnlyItsPath) {
  Start();
  const std::string file = h_.dir().File("admin-password");
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(h_.dir().File("auth.sqlite").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string password = AdminPassword();
  ASSERT_GE(password.size(), 16u);
  const std::string log = h_.gateway_log();
  EXPECT_NE(log.find(file), std::string::npos) << log;
  EXPECT_EQ(log.find(password), std::string::npos);
  // The admin logs in with it; a second start keeps it.
  LoginOk("admin", password);
  OUTPOST_ASSERT_OK(h_.StopGateway());
  OUTPOST_ASSERT_OK(h_.StartGateway());
  EXPECT_EQ(AdminPassword(), password);
  EXPECT_EQ(h_.gateway_log().find("first start"), std::string::npos);
  LoginOk("admin", password);
}

TEST_F(GatewayAuthTest, UnauthenticatedRequestsGet401ExceptThePublicOnes) {
  Start();
  for (const char* target : {"/api/v1/devices", "/api/v1/health", "/metrics", "/api/v1/alerts",
                             "/api/v1/auth/me", "/api/v1/stream", "/api/v1/series"}) {
    SCOPED_TRACE(target);
    OUTPOST_ASSERT_OK_AND_ASSIGN(auto r, Send("GET", target));
    EXPECT_EQ(r.status, 401) << r.body;
    EXPECT_EQ(r.Header("content-type"), "application/problem+json");
    EXPECT_EQ(Code(r), "unauthenticated");
  }
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto post, Send("POST", "/api/v1/alerts/x:1/ack", "", "{}"));
  EXPECT_EQ(post.status, 401);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto bad,
                               Send("GET", "/api/v1/devices", "Authorization: Basic eDp5\r\n"));
  EXPECT_EQ(bad.status, 401);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto forged,
                               Send("GET", "/api/v1/devices", "X-Outpost-User: admin\r\n"));
  EXPECT_EQ(forged.status, 401);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto z, Send("GET", "/healthz"));
  EXPECT_EQ(z.status, 200);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto doc, Send("GET", "/api/v1/openapi.json"));
  EXPECT_EQ(doc.status, 200);
}

TEST_F(GatewayAuthTest, LoginSetsAnHttpOnlyLaxCookieMeShowsItLogoutEndsIt) {
  Start();
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto r, Login("admin", AdminPassword()));
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  EXPECT_EQ(j["user"], "admin");
  EXPECT_EQ(j["role"], "admin");
  const std::string csrf = j["csrf"];
  EXPECT_GE(csrf.size(), 32u);
  const std::string set = r.Header("set-cookie");
  EXPECT_TRUE(std::regex_match(
      set, std::regex("outpost_session=[0-9a-f]{64}; HttpOnly; SameSite=Lax; Path=/")))
      << set;
  const std::string cookie = "Cookie: " + set.substr(0, set.find(';')) + "\r\n";
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto me, Send("GET", "/api/v1/auth/me", cookie));
  ASSERT_EQ(me.status, 200) << me.body;
  json mj = json::parse(me.body);
  EXPECT_EQ(mj["user"], "admin");
  EXPECT_EQ(mj["role"], "admin");
  EXPECT_EQ(mj["csrf"], csrf);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto devices, Send("GET", "/api/v1/devices", cookie));
  EXPECT_EQ(devices.status, 200);
  // Logout is a write: it needs the CSRF token too.
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto no_csrf, Send("POST", "/api/v1/auth/logout", cookie));
  EXPECT_EQ(no_csrf.status, 403);
  EXPECT_EQ(Code(no_csrf), "csrf");
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      auto out, Send("POST", "/api/v1/auth/logout", cookie + "X-CSRF-Token: " + csrf + "\r\n"));
  EXPECT_EQ(out.status, 204);
  EXPECT_NE(out.Header("set-cookie").find("outpost_session=; "), std::string::npos);
  EXPECT_NE(out.Header("set-cookie").find("Max-Age=0"), std::string::npos);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto after, Send("GET", "/api/v1/auth/me", cookie));
  EXPECT_EQ(after.status, 401);
  EXPECT_EQ(Code(after), "unauthenticated");
  // Audited.
  auto store = OpenAuth();
  ASSERT_NE(store, nullptr);
  auto log = store->AuditLog(10);
  ASSERT_TRUE(log.ok());
  std::string actions;
  for (const auto& e : *log) actions += e.action + ":" + e.user + " ";
  EXPECT_NE(actions.find("logout:admin"), std::string::npos) << actions;
  EXPECT_NE(actions.find("login:admin"), std::string::npos) << actions;
}

TEST_F(GatewayAuthTest, BadCredentialsLookTheSameAndFailuresAreRateLimited) {
  Start("auth:\n  login_max_failures: 3\n  login_lockout_s: 60\n");
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto wrong, Login("admin", "not-the-password"));
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto unknown, Login("nobody", "not-the-password"));
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(unknown.status, 401);
  EXPECT_EQ(Code(wrong), "bad_credentials");
  EXPECT_EQ(wrong.body, unknown.body);
  EXPECT_TRUE(wrong.Header("set-cookie").empty());
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto third, Login("admin", "still-not-it"));
  EXPECT_EQ(third.status, 401);
  // Three failures from this address: even the right password waits now.
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto limited, Login("admin", AdminPassword()));
  EXPECT_EQ(limited.status, 429) << limited.body;
  EXPECT_EQ(Code(limited), "too_many_attempts");
  const int retry = std::atoi(limited.Header("retry-after").c_str());
  EXPECT_GT(retry, 0);
  EXPECT_LE(retry, 60);
  EXPECT_TRUE(limited.Header("set-cookie").empty());
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto metrics, Send("GET", "/metrics", h_.auth_header()));
  EXPECT_NE(metrics.body.find("outpost_gateway_auth_logins_failed_total 3\n"), std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("outpost_gateway_auth_logins_limited_total 1\n"), std::string::npos);
  auto store = OpenAuth();
  ASSERT_NE(store, nullptr);
  auto log = store->AuditLog(10);
  ASSERT_TRUE(log.ok());
  int failed = 0;
  for (const auto& e : *log) failed += e.action == "login_failed";
  EXPECT_EQ(failed, 3);
}

TEST_F(GatewayAuthTest, OversizeAndGarbageLoginBodiesGetA4xxAndChangeNothing) {
  Start();
  struct Case {
    std::string body;
    int status;
    std::string code;
  };
  const std::vector<Case> cases = {
      {std::string(5000, 'x'), 413, "body_too_large"},
      {"{\"user\":\"admin\",\"password\":\"" + std::string(5000, 'a') + "\"}", 413,
       "body_too_large"},
      {"not json", 400, "bad_body"},
      {"", 400, "bad_body"},
      {"[]", 400, "bad_body"},
      {"{\"user\":1,\"password\":\"x\"}", 400, "bad_body"},
      {"{\"user\":\"admin\"}", 400, "bad_body"},
      {"{\"user\":\"\",\"password\":\"x\"}", 400, "bad_body"},
      {"{\"user\":\"admin\",\"password\":\"" + std::string(300, 'a') + "\"}", 400, "bad_body"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body.substr(0, 40));
    OUTPOST_ASSERT_OK_AND_ASSIGN(
        auto r, Send("POST", "/api/v1/auth/login", "Content-Type: application/json\r\n", c.body));
    EXPECT_EQ(r.status, c.status) << r.body;
    EXPECT_EQ(r.Header("content-type"), "application/problem+json");
    EXPECT_EQ(Code(r), c.code) << r.body;
    EXPECT_TRUE(r.Header("set-cookie").empty());
  }
  // None counted as a failed login: the limiter still lets the admin in.
  LoginOk("admin", AdminPassword());
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto metrics, Send("GET", "/metrics", h_.auth_header()));
  EXPECT_NE(metrics.body.find("outpost_gateway_auth_logins_bad_body_total 9\n"), std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("outpost_gateway_auth_logins_failed_total 0\n"), std::string::npos);
}

TEST_F(GatewayAuthTest, CookieWritesNeedTheCsrfTokenAndAcksAreAudited) {
  Start(kAlerting);
  AddUser("olga", "operator", "operator-password");
  const std::string id = RaiseAlert();
  ASSERT_FALSE(id.empty());
  Session s = LoginOk("olga", "operator-password");
  const std::string cookie = "Cookie: " + s.cookie + "\r\nContent-Type: application/json\r\n";
  const std::string ack = "/api/v1/alerts/" + id + "/ack";
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto none, Send("POST", ack, cookie, "{\"comment\":\"x\"}"));
  EXPECT_EQ(none.status, 403);
  EXPECT_EQ(Code(none), "csrf");
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      auto wrong, Send("POST", ack, cookie + "X-CSRF-Token: " + std::string(64, 'a') + "\r\n",
                       "{\"comment\":\"x\"}"));
  EXPECT_EQ(wrong.status, 403);
  // Still unacknowledged.
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto before, Send("GET", "/api/v1/alerts/" + id, h_.auth_header()));
  EXPECT_TRUE(json::parse(before.body)["ack"].is_null()) << before.body;
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      auto ok,
      Send("POST", ack, cookie + "X-CSRF-Token: " + s.csrf + "\r\n", "{\"comment\":\"on it\"}"));
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(json::parse(ok.body)["ack"]["user"], "olga");
  auto store = OpenAuth();
  ASSERT_NE(store, nullptr);
  bool audited = false;
  ASSERT_TRUE(WaitUntil("the ack in the audit log", 5s, [&] {
    auto log = store->AuditLog(20);
    for (const auto& e : log.ok() ? *log : std::vector<gateway::auth::AuditEntry>{}) {
      audited |= e.action == "alert_ack" && e.user == "olga" && e.detail == id + ": on it";
    }
    return audited;
  }));
}

TEST_F(GatewayAuthTest, ViewersGet403OnAcksButRead) {
  Start(kAlerting);
  AddUser("vera", "viewer", "viewer-password");
  const std::string id = RaiseAlert();
  ASSERT_FALSE(id.empty());
  Session s = LoginOk("vera", "viewer-password");
  const std::string headers = "Cookie: " + s.cookie + "\r\nX-CSRF-Token: " + s.csrf + "\r\n";
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto list, Send("GET", "/api/v1/alerts", headers));
  EXPECT_EQ(list.status, 200);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto ack,
                               Send("POST", "/api/v1/alerts/" + id + "/ack", headers, "{}"));
  EXPECT_EQ(ack.status, 403) << ack.body;
  EXPECT_EQ(Code(ack), "forbidden");
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      auto bulk, Send("POST", "/api/v1/alerts/ack", headers, json{{"ids", {id}}}.dump()));
  EXPECT_EQ(bulk.status, 403);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto after, Send("GET", "/api/v1/alerts/" + id, headers));
  EXPECT_TRUE(json::parse(after.body)["ack"].is_null()) << after.body;
  // A removed user's session ends.
  auto removed = h_.RunCli({"user", "remove", "vera"});
  OUTPOST_ASSERT_OK(removed);
  ASSERT_EQ(removed->status, 0) << removed->output;
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto gone, Send("GET", "/api/v1/alerts", headers));
  EXPECT_EQ(gone.status, 401);
}

TEST_F(GatewayAuthTest, BearerTokensWorkWithoutCsrfAndRevokedOnesDoNot) {
  Start(kAlerting);
  const std::string id = RaiseAlert();
  ASSERT_FALSE(id.empty());
  auto created = h_.RunCli({"token", "create", "--role", "viewer", "--name", "grafana"});
  OUTPOST_ASSERT_OK(created);
  ASSERT_EQ(created->status, 0) << created->output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(created->output, m, std::regex("opt_[0-9a-f]{64}")));
  const std::string viewer = "Authorization: Bearer " + m.str() + "\r\n";
  std::smatch idm;
  ASSERT_TRUE(std::regex_search(created->output, idm, std::regex("token ([0-9]+) \\(viewer\\)")))
      << created->output;
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto read, Send("GET", "/api/v1/devices", viewer));
  EXPECT_EQ(read.status, 200);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto metrics, Send("GET", "/metrics", viewer));
  EXPECT_EQ(metrics.status, 200);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto ack,
                               Send("POST", "/api/v1/alerts/" + id + "/ack", viewer, "{}"));
  EXPECT_EQ(ack.status, 403);
  EXPECT_EQ(Code(ack), "forbidden");
  // The admin token acknowledges without any CSRF header.
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto admin_ack,
                               Send("POST", "/api/v1/alerts/" + id + "/ack", h_.auth_header(), ""));
  EXPECT_EQ(admin_ack.status, 200) << admin_ack.body;
  // The list shows the token, never its value.
  auto list = h_.RunCli({"token", "list"});
  OUTPOST_ASSERT_OK(list);
  EXPECT_NE(list->output.find("grafana"), std::string::npos);
  EXPECT_EQ(list->output.find(m.str()), std::string::npos);
  auto revoked = h_.RunCli({"token", "revoke", idm[1].str()});
  OUTPOST_ASSERT_OK(revoked);
  ASSERT_EQ(revoked->status, 0) << revoked->output;
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto after, Send("GET", "/api/v1/devices", viewer));
  EXPECT_EQ(after.status, 401);
  EXPECT_EQ(Code(after), "unauthenticated");
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      auto bogus, Send("GET", "/api/v1/devices", "Authorization: Bearer opt_0000\r\n"));
  EXPECT_EQ(bogus.status, 401);
}

TEST(GatewayAuthListen, BeyondLoopbackWithoutTlsTheStartWarns) {
  GatewayHarness h;
  HarnessOptions o;
  o.http_yaml = "  listen: 0.0.0.0:0\n";
  OUTPOST_ASSERT_OK(h.Start(o));
  ASSERT_NE(h.http_port(), 0);
  EXPECT_NE(h.gateway_log().find("reachable beyond this machine without TLS"), std::string::npos)
      << h.gateway_log();
  // Still behind the login.
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto c, RawHttpConnection::Connect(h.http_port()));
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      auto r, c.Exchange("GET /api/v1/devices HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  EXPECT_EQ(r.status, 401);
}

TEST(GatewayAuthTls, OverTlsTheSessionCookieIsSecure) {
  GatewayHarness h;
  OUTPOST_ASSERT_OK_AND_ASSIGN(TestPki pki, GenerateTestPki(h.dir().path()));
  HarnessOptions o;
  o.http_yaml =
      "  tls_cert_file: " + pki.server_cert + "\n  tls_key_file: " + pki.server_key + "\n";
  OUTPOST_ASSERT_OK(h.Start(o));
  ASSERT_NE(h.http_port(), 0);
  EXPECT_NE(h.gateway_log().find("http api listening on https://"), std::string::npos);
  EXPECT_EQ(h.gateway_log().find("without TLS"), std::string::npos);  // loopback, and TLS
  std::ifstream in(h.dir().File("admin-password"));
  std::string password;
  std::getline(in, password);
  http::ClientOptions co;
  co.host = "127.0.0.1";
  co.port = h.http_port();
  co.tls = true;
  co.ca_file = pki.ca_cert;
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto client, http::Client::Make(co));
  http::ClientRequest req;
  req.method = "POST";
  req.target = "/api/v1/auth/login";
  req.headers = {{"Content-Type", "application/json"}};
  req.body = json{{"user", "admin"}, {"password", password}}.dump();
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto r, client->Send(req));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(std::regex_match(
      r.Header("set-cookie"),
      std::regex("outpost_session=[0-9a-f]{64}; HttpOnly; SameSite=Lax; Path=/; Secure")))
      << r.Header("set-cookie");
}

// Password checks beyond auth.max_verifications in flight are refused at once (503 busy), not
// queued on the loop: eight logins sent together while one check (Argon2id, ~0.1 s) runs.
TEST_F(GatewayAuthTest, LoginsBeyondTheVerificationsInFlightGet503Busy) {
  Start("auth:\n  max_verifications: 1\n");
  const std::string body = json{{"user", "admin"}, {"password", AdminPassword()}}.dump();
  const std::string req = "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  std::vector<RawHttpConnection> conns;
  for (int i = 0; i < 8; ++i) {
    OUTPOST_ASSERT_OK_AND_ASSIGN(auto c, RawHttpConnection::Connect(h_.http_port()));
    conns.push_back(std::move(c));
  }
  for (auto& c : conns) ASSERT_EQ(c.SendSome(req), static_cast<long>(req.size()));
  int ok = 0, busy = 0;
  for (auto& c : conns) {
    OUTPOST_ASSERT_OK_AND_ASSIGN(auto r, c.Read());
    if (r.status == 200) ++ok;
    if (r.status == 503) {
      ++busy;
      EXPECT_EQ(Code(r), "busy");
      EXPECT_EQ(r.Header("retry-after"), "1");
    }
  }
  EXPECT_GE(ok, 1);
  EXPECT_GE(busy, 1);
  EXPECT_EQ(ok + busy, 8);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto metrics, Send("GET", "/metrics", h_.auth_header()));
  EXPECT_NE(
      metrics.body.find("outpost_gateway_auth_logins_busy_total " + std::to_string(busy) + "\n"),
      std::string::npos)
      << metrics.body;
}

TEST_F(GatewayAuthTest, CliCommandsSayWhatIsWrong) {
  Start();
  auto help = h_.RunCli({"user", "add", "--help"});
  OUTPOST_ASSERT_OK(help);
  EXPECT_EQ(help->status, 0);
  EXPECT_NE(help->output.find("--role"), std::string::npos) << help->output;
  auto role = h_.RunCli({"user", "add", "bob", "--role", "root"});
  OUTPOST_ASSERT_OK(role);
  EXPECT_EQ(role->status, 1);
  EXPECT_NE(role->output.find("expected viewer, operator or admin"), std::string::npos);
  auto last = h_.RunCli({"user", "remove", "admin"});
  OUTPOST_ASSERT_OK(last);
  EXPECT_EQ(last->status, 1);
  EXPECT_NE(last->output.find("last admin"), std::string::npos) << last->output;
  auto short_pw = h_.RunCli({"user", "add", "bob", "--role", "viewer", "--password-stdin"}, "x\n");
  OUTPOST_ASSERT_OK(short_pw);
  EXPECT_EQ(short_pw->status, 1);
  auto generated = h_.RunCli({"user", "add", "bob", "--role", "viewer"});
  OUTPOST_ASSERT_OK(generated);
  ASSERT_EQ(generated->status, 0) << generated->output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(generated->output, m, std::regex("password: (\\S+)")));
  LoginOk("bob", m[1].str());
  auto dup = h_.RunCli({"user", "add", "bob", "--role", "viewer"});
  OUTPOST_ASSERT_OK(dup);
  EXPECT_EQ(dup->status, 1);
  EXPECT_NE(dup->output.find("exists"), std::string::npos);
  auto list = h_.RunCli({"user", "list"});
  OUTPOST_ASSERT_OK(list);
  EXPECT_NE(list->output.find("bob\tviewer"), std::string::npos) << list->output;
  EXPECT_NE(list->output.find("admin\tadmin"), std::string::npos);
  Session old = LoginOk("bob", m[1].str());
  auto passwd = h_.RunCli({"user", "passwd", "bob", "--password-stdin"}, "a-new-password\n");
  OUTPOST_ASSERT_OK(passwd);
  EXPECT_EQ(passwd->status, 0) << passwd->output;
  // The sessions of the old password end; the new one logs in.
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto ended,
                               Send("GET", "/api/v1/auth/me", "Cookie: " + old.cookie + "\r\n"));
  EXPECT_EQ(ended.status, 401);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto wrong, Login("bob", m[1].str()));
  EXPECT_EQ(wrong.status, 401);
  LoginOk("bob", "a-new-password");
  auto missing = h_.RunCli({"user", "passwd", "nobody"});
  OUTPOST_ASSERT_OK(missing);
  EXPECT_EQ(missing->status, 1);
}

}  // namespace
}  // namespace outpost::testing
