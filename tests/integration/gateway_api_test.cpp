// The gateway's HTTP API (docs/api.md) against the real binary: a real Mosquitto, real SQLite,
// raw loopback HTTP requests (tests/support RawHttpConnection).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "gateway_api_client.h"
#include "outpost/testing/wait_until.h"

namespace outpost::testing {
namespace {

// What the bad requests must not change: the gateway's data and its rejects (commits are not
// here: the get_status commands that read the status are committed too).
json Unchanged(const json& status) {
  return {{"stored", status["ingest"]["stored"]},
          {"received", status["ingest"]["received"]},
          {"rejected", status["ingest"]["rejected"]},
          {"devices", status["devices_count"]},
          {"db_records", status["local_db_records"]}};
}

TEST(GatewayApi, ServesOnAFreePortItLogs) {
  GatewayHarness h;
  OUTPOST_ASSERT_OK(h.Start());
  ASSERT_NE(h.http_port(), 0);
  EXPECT_NE(h.gateway_log().find("http api listening on http://127.0.0.1:" +
                                 std::to_string(h.http_port())),
            std::string::npos)
      << h.gateway_log();
  auto r = Get(Api{h.http_port(), h.auth_header()}, "/no/such/path");
  OUTPOST_ASSERT_OK(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->Header("content-type"), "application/problem+json");
  // A keep-alive connection left open does not hold up SIGTERM: the server closes it and the
  // gateway exits 0 within the harness's bound.
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto idle, RawHttpConnection::Connect(h.http_port()));
  auto kept = idle.Exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n" + h.auth_header() + "\r\n");
  OUTPOST_ASSERT_OK(kept);
  EXPECT_EQ(kept->status, 200);
  const auto t0 = std::chrono::steady_clock::now();
  OUTPOST_EXPECT_OK(h.StopGateway(std::chrono::seconds(10)));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_TRUE(idle.WaitClosed(std::chrono::seconds(1)));
}

TEST(GatewayApi, EmptyListenRunsWithoutTheApi) {
  GatewayHarness h;
  HarnessOptions o;
  o.http_yaml = "  listen: \"\"\n";
  OUTPOST_ASSERT_OK(h.Start(o));
  EXPECT_EQ(h.http_port(), 0);
  EXPECT_NE(h.gateway_log().find("http api off"), std::string::npos) << h.gateway_log();
  OUTPOST_EXPECT_OK(h.StopGateway());
}

// An address that cannot be bound stops the start (exit 1) with a message naming http.listen.
TEST(GatewayApi, ListenAddressInUseStopsTheStartNamingTheKey) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const std::string listen = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));

  TempDir dir;
  const std::string path = dir.File("gw.yaml");
  {
    std::ofstream(path) << "storage:\n  path: " << dir.File("gateway.db")
                        << "\n  synchronous: off\nhttp:\n  listen: " << listen << "\n";
  }
  ChildProcessOptions o;
  o.argv = {GatewayBinary(), "--config", path};
  o.log_path = dir.File("out.log");
  auto p = ChildProcess::Start(o);
  OUTPOST_ASSERT_OK(p);
  auto code = (*p)->Wait(std::chrono::seconds(20));
  ::close(fd);
  OUTPOST_ASSERT_OK(code);
  EXPECT_EQ(*code, 1) << (*p)->log();
  EXPECT_NE((*p)->log().find("http.listen " + listen + ": "), std::string::npos) << (*p)->log();
}

// Every route the OpenAPI document lists answers with a status it documents, and JSON where it
// says JSON.
TEST_F(GatewayApiTest, EveryRouteInTheOpenApiDocumentAnswersAsDocumented) {
  StartWith({"d1"}, "thresholds:\n  temperature_max: 20\n");  // and an alert to show
  std::string alert_id;
  ASSERT_TRUE(WaitUntil("an alert", std::chrono::seconds(20), [&] {
    auto j = GetJson(api(), "/api/v1/alerts");
    if (!j.ok() || (*j)["alerts"].empty()) return false;
    alert_id = (*j)["alerts"][0]["id"];
    return true;
  }));
  // A command of d1 for the {cid} routes (queued: d1 is a native device, sent at once).
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto sent,
                               Post(api(), "/api/v1/devices/d1/commands", R"({"command":"led"})"));
  ASSERT_EQ(sent.status, 202) << sent.body;
  const std::string command_id = json::parse(sent.body)["id"];
  OUTPOST_ASSERT_OK_AND_ASSIGN(json doc, GetJson(api(), "/api/v1/openapi.json"));
  EXPECT_EQ(doc["openapi"], "3.1.0");
  ASSERT_TRUE(doc["paths"].is_object());
  std::set<std::string> checked;
  for (auto& [path, item] : doc["paths"].items()) {
    for (auto& [method, op] : item.items()) {
      const std::string id = path.rfind("/api/v1/alerts/", 0) == 0 ? alert_id : "d1";
      std::string target = std::regex_replace(path, std::regex("\\{id\\}"), id);
      target = std::regex_replace(target, std::regex("\\{cid\\}"), command_id);
      if (method == "post") {
        // A state-changing route: an empty JSON object must get a documented answer (a 4xx for
        // a missing field, or the change).
        OUTPOST_ASSERT_OK_AND_ASSIGN(auto r, Post(api(), target, "{}"));
        EXPECT_TRUE(op["responses"].contains(std::to_string(r.status)))
            << "POST " << target << " answered " << r.status << ", not documented: " << r.body;
        checked.insert("POST " + path);
        continue;
      }
      ASSERT_EQ(method, "get") << path;
      if (path == "/api/v1/series") target += "?device=d1&metric=temperature";
      if (op["responses"]["200"]["content"].contains("text/event-stream")) {
        // An endless response: its head and first bytes are the answer.
        OUTPOST_ASSERT_OK_AND_ASSIGN(auto c, RawHttpConnection::Connect(port()));
        const std::string req =
            "GET " + target + " HTTP/1.1\r\nHost: x\r\n" + h_.auth_header() + "\r\n";
        ASSERT_EQ(c.SendSome(req), static_cast<long>(req.size()));
        ASSERT_TRUE(WaitUntil("stream head", std::chrono::seconds(5), [&] {
          c.closed();
          return c.received().find("retry: ") != std::string::npos;
        })) << c.received();
        EXPECT_EQ(c.received().rfind("HTTP/1.1 200 ", 0), 0u) << c.received();
        EXPECT_NE(c.received().find("Content-Type: text/event-stream\r\n"), std::string::npos);
        checked.insert(path);
        continue;
      }
      auto r = Get(api(), target);
      OUTPOST_ASSERT_OK(r);
      const std::string status = std::to_string(r->status);
      ASSERT_TRUE(op["responses"].contains(status))
          << "GET " << target << " answered " << status << ", not documented: " << r->body;
      const json& documented = op["responses"][status];
      if (documented.contains("content") && documented["content"].contains("application/json")) {
        EXPECT_EQ(r->Header("content-type"), "application/json") << target;
        EXPECT_FALSE(json::parse(r->body, nullptr, false).is_discarded()) << target << r->body;
      }
      EXPECT_EQ(r->status, 200) << target << ": " << r->body;
      checked.insert(path);
    }
  }
  EXPECT_EQ(checked, (std::set<std::string>{"/",
                                            "/healthz",
                                            "/metrics",
                                            "/api/v1/health",
                                            "/api/v1/devices",
                                            "/api/v1/devices/{id}",
                                            "/api/v1/series",
                                            "/api/v1/openapi.json",
                                            "/api/v1/stream",
                                            "/api/v1/alerts",
                                            "/api/v1/alerts/{id}",
                                            "POST /api/v1/alerts/{id}/ack",
                                            "POST /api/v1/alerts/ack",
                                            "POST /api/v1/auth/login",
                                            "POST /api/v1/auth/logout",
                                            "/api/v1/auth/me",
                                            "/api/v1/devices/{id}/commands",
                                            "/api/v1/devices/{id}/commands/{cid}",
                                            "POST /api/v1/devices/{id}/commands",
                                            "POST /api/v1/devices/{id}/commands/{cid}/cancel"}));
  // Without credentials, every route that does not say `"security": []` answers the 401 it
  // documents; the public ones answer as before.
  for (auto& [path, item] : doc["paths"].items()) {
    for (auto& [method, op] : item.items()) {
      const std::string id = path.rfind("/api/v1/alerts/", 0) == 0 ? alert_id : "d1";
      std::string target = std::regex_replace(path, std::regex("\\{id\\}"), id);
      target = std::regex_replace(target, std::regex("\\{cid\\}"), command_id);
      const bool open = op.contains("security") && op["security"].empty();
      auto r =
          method == "post" ? Post(Api{port(), ""}, target, "{}") : Get(Api{port(), ""}, target);
      OUTPOST_ASSERT_OK(r);
      if (open) {
        EXPECT_NE(r->status, 401) << method << " " << target;
      } else {
        EXPECT_EQ(r->status, 401) << method << " " << target << ": " << r->body;
        EXPECT_TRUE(op["responses"].contains("401")) << method << " " << path;
      }
    }
  }
}

// The dashboard is served from the binary: index.html revalidated every time, the hashed files
// it names cached for a year, both gzip when accepted, with ETags, the CSP and nosniff; unknown
// files and other methods get problems (docs/dashboard.md#serving).
TEST_F(GatewayApiTest, DashboardIsServedWithCachingCompressionAndAStrictPolicy) {
  StartWith({"d1", "d2", "d3", "d4", "d5"});
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto plain, Get(Api{port(), ""}, "/"));
  EXPECT_EQ(plain.status, 200);
  EXPECT_EQ(plain.Header("content-type"), "text/html; charset=utf-8");
  EXPECT_EQ(plain.Header("content-encoding"), "");
  EXPECT_EQ(plain.Header("cache-control"), "no-cache");
  EXPECT_EQ(plain.Header("x-content-type-options"), "nosniff");
  EXPECT_NE(plain.Header("content-security-policy").find("default-src 'self'"), std::string::npos);
  EXPECT_EQ(plain.Header("vary"), "Accept-Encoding");
  ASSERT_NE(plain.body.find("<!doctype html>"), std::string::npos);

  OUTPOST_ASSERT_OK_AND_ASSIGN(auto gz, Get(Api{port(), ""}, "/", "Accept-Encoding: gzip, br\r\n"));
  EXPECT_EQ(gz.status, 200);
  EXPECT_EQ(gz.Header("content-encoding"), "gzip");
  ASSERT_GE(gz.body.size(), 2u);
  EXPECT_EQ(gz.body.substr(0, 2), std::string("\x1f\x8b", 2));
  EXPECT_LT(gz.body.size(), plain.body.size());
  EXPECT_NE(gz.Header("etag"), plain.Header("etag"));
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      auto revalidated,
      Get(Api{port(), ""}, "/",
          "Accept-Encoding: gzip\r\nIf-None-Match: " + gz.Header("etag") + "\r\n"));
  EXPECT_EQ(revalidated.status, 304);
  EXPECT_EQ(revalidated.body, "");

  // Every file index.html names is served, immutable.
  std::smatch m;
  std::string rest = plain.body;
  int files = 0;
  const std::regex asset("/assets/[A-Za-z0-9_-]+\\.[0-9a-f]{10}\\.(js|css)");
  while (std::regex_search(rest, m, asset)) {
    OUTPOST_ASSERT_OK_AND_ASSIGN(auto f,
                                 Get(Api{port(), ""}, m.str(0), "Accept-Encoding: gzip\r\n"));
    EXPECT_EQ(f.status, 200) << m.str(0);
    EXPECT_EQ(f.Header("cache-control"), "public, max-age=31536000, immutable") << m.str(0);
    EXPECT_EQ(f.Header("content-encoding"), "gzip") << m.str(0);
    EXPECT_EQ(f.Header("content-type").rfind(m.str(1) == "js" ? "text/javascript" : "text/css", 0),
              0u);
    ++files;
    rest = m.suffix();
  }
  EXPECT_GE(files, 3);

  // The API's device list is gzip-encoded too when accepted (with its own tag), once it is
  // worth it (d1..d5 are over 1 KiB).
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto list, Get(api(), "/api/v1/devices"));
  EXPECT_EQ(list.Header("content-encoding"), "");
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto zlist,
                               Get(api(), "/api/v1/devices", "Accept-Encoding: gzip\r\n"));
  EXPECT_EQ(zlist.status, 200);
  EXPECT_EQ(zlist.Header("content-encoding"), "gzip");
  EXPECT_EQ(zlist.Header("vary"), "Accept-Encoding");
  EXPECT_EQ(zlist.body.substr(0, 2), std::string("\x1f\x8b", 2));
  EXPECT_LT(zlist.body.size(), list.body.size());
  EXPECT_EQ(zlist.Header("etag"),
            list.Header("etag").substr(0, list.Header("etag").size() - 1) + "-gz\"");
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      auto zsame, Get(api(), "/api/v1/devices",
                      "Accept-Encoding: gzip\r\nIf-None-Match: " + zlist.Header("etag") + "\r\n"));
  EXPECT_EQ(zsame.status, 304);

  OUTPOST_ASSERT_OK_AND_ASSIGN(auto missing, Get(Api{port(), ""}, "/assets/app.0000000000.js"));
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.Header("content-type"), "application/problem+json");
  EXPECT_NE(missing.body.find("\"not_found\""), std::string::npos);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto post, Post(Api{port(), ""}, "/", "{}"));
  EXPECT_EQ(post.status, 405);
}

// Alerts are listed with filters and acknowledged once; the acknowledgement is in the stream,
// survives a restart, and bad ids and bodies get a 4xx that changes nothing.
TEST_F(GatewayApiTest, AlertsAreListedAndAcknowledgedOnce) {
  StartWith({"n1", "n2"}, "thresholds:\n  temperature_max: 20\n");  // 21.5 °C raises both
  json list;
  ASSERT_TRUE(WaitUntil("two active alerts", std::chrono::seconds(20), [&] {
    auto j = GetJson(api(), "/api/v1/alerts?state=active&acked=false");
    if (j.ok()) list = *j;
    return j.ok() && list["alerts"].size() == 2;
  })) << list.dump();
  const std::string first = list["alerts"][0]["id"], second = list["alerts"][1]["id"];
  EXPECT_TRUE(list["alerts"][0]["ack"].is_null());
  OUTPOST_ASSERT_OK_AND_ASSIGN(json page, GetJson(api(), "/api/v1/alerts?limit=1"));
  ASSERT_EQ(page["alerts"].size(), 1u);
  ASSERT_TRUE(page["next_cursor"].is_string());
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      json rest,
      GetJson(api(), "/api/v1/alerts?limit=1&cursor=" + page["next_cursor"].get<std::string>()));
  ASSERT_EQ(rest["alerts"].size(), 1u);
  EXPECT_NE(rest["alerts"][0]["id"], page["alerts"][0]["id"]);
  EXPECT_TRUE(rest["next_cursor"].is_null());

  OUTPOST_ASSERT_OK_AND_ASSIGN(auto stream, RawHttpConnection::Connect(port()));
  const std::string sub =
      "GET /api/v1/stream?types=alert HTTP/1.1\r\nHost: x\r\n" + h_.auth_header() + "\r\n";
  ASSERT_EQ(stream.SendSome(sub), static_cast<long>(sub.size()));
  ASSERT_TRUE(WaitUntil("stream head", std::chrono::seconds(5), [&] {
    stream.closed();
    return stream.received().find("retry: ") != std::string::npos;
  }));

  OUTPOST_ASSERT_OK_AND_ASSIGN(auto ack, Post(api(), "/api/v1/alerts/" + first + "/ack",
                                              R"({"comment":"replaced the fan"})"));
  ASSERT_EQ(ack.status, 200) << ack.body;
  json acked = json::parse(ack.body);
  EXPECT_EQ(acked["id"], first);
  EXPECT_EQ(acked["ack"]["comment"], "replaced the fan");
  EXPECT_EQ(acked["ack"]["user"], "token:test-harness");
  EXPECT_TRUE(WaitUntil("the ack in the stream", std::chrono::seconds(5), [&] {
    stream.closed();
    return stream.received().find("\"state\":\"acked\"") != std::string::npos;
  })) << stream.received();

  OUTPOST_ASSERT_OK_AND_ASSIGN(auto twice, Post(api(), "/api/v1/alerts/" + first + "/ack", ""));
  EXPECT_EQ(twice.status, 409) << twice.body;
  EXPECT_NE(twice.body.find("already_acked"), std::string::npos);
  const std::vector<std::tuple<std::string, std::string, int, std::string>> bad = {
      {"/api/v1/alerts/temperature_max:n1:1/ack", "", 404, "unknown_alert"},
      {"/api/v1/alerts/nonsense/ack", "", 400, "bad_id"},
      {"/api/v1/alerts/" + second + "/ack", "{", 400, "bad_body"},
      {"/api/v1/alerts/" + second + "/ack", R"({"comment":7})", 400, "bad_comment"},
      {"/api/v1/alerts/" + second + "/nack", "", 404, "not_found"},
      {"/api/v1/alerts/ack", R"({"ids":[]})", 400, "bad_ids"},
  };
  for (const auto& [target, body, status, code] : bad) {
    OUTPOST_ASSERT_OK_AND_ASSIGN(auto r, Post(api(), target, body));
    EXPECT_EQ(r.status, status) << target << " " << r.body;
    EXPECT_NE(r.body.find("\"" + code + "\""), std::string::npos) << target << " " << r.body;
  }
  OUTPOST_ASSERT_OK_AND_ASSIGN(json unacked, GetJson(api(), "/api/v1/alerts?acked=false"));
  ASSERT_EQ(unacked["alerts"].size(), 1u) << "a refused ack changed nothing";
  EXPECT_EQ(unacked["alerts"][0]["id"], second);

  // Bulk: each id on its own.
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto bulk,
                               Post(api(), "/api/v1/alerts/ack",
                                    json{{"ids", {first, second}}, {"comment", "both"}}.dump()));
  ASSERT_EQ(bulk.status, 200) << bulk.body;
  json b = json::parse(bulk.body);
  EXPECT_EQ(b["acked"], 1);
  EXPECT_EQ(b["results"][0]["status"], 409);
  EXPECT_EQ(b["results"][1]["status"], 200);
  EXPECT_EQ(b["results"][1]["alert"]["ack"]["comment"], "both");

  OUTPOST_ASSERT_OK(h_.StopGateway());
  OUTPOST_ASSERT_OK(h_.StartGateway());
  OUTPOST_ASSERT_OK_AND_ASSIGN(json one, GetJson(api(), "/api/v1/alerts/" + first));
  EXPECT_EQ(one["ack"]["comment"], "replaced the fan");
  OUTPOST_ASSERT_OK_AND_ASSIGN(json none, GetJson(api(), "/api/v1/alerts?acked=false"));
  EXPECT_TRUE(none["alerts"].empty()) << none.dump();
}

TEST_F(GatewayApiTest, HealthzMetricsAndHealthShowTheStatusReportsNumbers) {
  StartWith({"d1", "d2", "d3"});
  auto z = Get(api(), "/healthz");
  OUTPOST_ASSERT_OK(z);
  EXPECT_EQ(z->status, 200);
  EXPECT_EQ(z->body, "ok\n");

  OUTPOST_ASSERT_OK_AND_ASSIGN(json health, GetJson(api(), "/api/v1/health"));
  EXPECT_EQ(health["trigger"], "api");
  EXPECT_EQ(health["ingest"]["stored"], 3);
  EXPECT_EQ(health["devices_count"], 3);
  EXPECT_EQ(health["mqtt"]["connected"], true);
  EXPECT_GT(health["store"]["db_bytes"].get<std::int64_t>(), 0);
  EXPECT_GT(health["store"]["disk_free_bytes"].get<std::int64_t>(), 0);
  EXPECT_GT(health["rss_bytes"].get<std::int64_t>(), 0);
  EXPECT_TRUE(health["cloud"]["backlog"].contains("readings"));
  // The ingest rate: readings made durable per second over the last 10 s, once a second passed.
  for (int i = 0; i < 20; ++i) {
    OUTPOST_ASSERT_OK(h_.devices().Publish("sensors/d1/data", Native("d1", 100 + i, 22.0), 1));
  }
  OUTPOST_ASSERT_OK(h_.WaitStatus([](const json& j) {
    return j["ingest"]["stored"] == 23 && j["ingest"]["rate_per_s"].is_number() &&
           j["ingest"]["rate_per_s"].get<double>() > 0;
  }));
  OUTPOST_ASSERT_OK_AND_ASSIGN(health, GetJson(api(), "/api/v1/health"));
  ASSERT_TRUE(health["ingest"]["rate_per_s"].is_number()) << health["ingest"].dump();
  // 23 readings in all, and the window spans at least a second.
  EXPECT_LE(health["ingest"]["rate_per_s"].get<double>(), 23.0);

  // The same report as gateway/status: the same keys.
  OUTPOST_ASSERT_OK_AND_ASSIGN(json status, h_.GetStatus());
  for (auto& [key, value] : status.items()) EXPECT_TRUE(health.contains(key)) << key;

  auto m = Get(api(), "/metrics");
  OUTPOST_ASSERT_OK(m);
  EXPECT_EQ(m->status, 200);
  EXPECT_EQ(m->Header("content-type").rfind("text/plain", 0), 0u) << m->Header("content-type");
  EXPECT_EQ(Sample(m->body, "outpost_gateway_ingest_stored"), 23) << m->body;
  EXPECT_EQ(Sample(m->body, "outpost_gateway_devices_count"), 3);
  EXPECT_EQ(Sample(m->body, "outpost_gateway_mqtt_connected"), 1);
  EXPECT_GT(Sample(m->body, "outpost_gateway_store_disk_free_bytes"), 0);
  EXPECT_GE(Sample(m->body, "outpost_gateway_http_requests_total"), 3) << m->body;
  EXPECT_EQ(Sample(m->body, "outpost_gateway_http_connections_open"), 1);
}

TEST_F(GatewayApiTest, DevicesPageWithACursorAndAnETag) {
  const std::vector<std::string> ids = {"e", "a", "d", "b", "c"};
  StartWith(ids);
  std::vector<std::string> seen;
  std::string target = "/api/v1/devices?limit=2";
  for (int page = 0; page < 10; ++page) {
    OUTPOST_ASSERT_OK_AND_ASSIGN(json j, GetJson(api(), target));
    EXPECT_EQ(j["total"], 5);
    EXPECT_LE(j["devices"].size(), 2u);
    for (const auto& d : j["devices"]) seen.push_back(d["id"]);
    if (j["next_cursor"].is_null()) break;
    target = "/api/v1/devices?limit=2&cursor=" + j["next_cursor"].get<std::string>();
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "b", "c", "d", "e"}));

  auto first = Get(api(), "/api/v1/devices");
  OUTPOST_ASSERT_OK(first);
  const std::string etag = first->Header("etag");
  ASSERT_FALSE(etag.empty());
  auto same = Get(api(), "/api/v1/devices", "If-None-Match: " + etag + "\r\n");
  OUTPOST_ASSERT_OK(same);
  EXPECT_EQ(same->status, 304);
  EXPECT_EQ(same->body, "");
  EXPECT_EQ(same->Header("etag"), etag);
  // A new device changes the list: the old tag no longer matches.
  OUTPOST_ASSERT_OK(h_.devices().Publish("sensors/f/data", Native("f", 9, 20), 1));
  OUTPOST_ASSERT_OK(h_.WaitStatus([](const json& j) { return j["ingest"]["stored"] == 6; }));
  auto changed = Get(api(), "/api/v1/devices", "If-None-Match: " + etag + "\r\n");
  OUTPOST_ASSERT_OK(changed);
  EXPECT_EQ(changed->status, 200);
  EXPECT_NE(changed->Header("etag"), etag);
}

TEST_F(GatewayApiTest, DeviceShowsStatusReasonLastReadingAndCounters) {
  StartWith({"n1"});
  OUTPOST_ASSERT_OK_AND_ASSIGN(json d, GetJson(api(), "/api/v1/devices/n1"));
  EXPECT_EQ(d["id"], "n1");
  EXPECT_EQ(d["status"], "online");
  EXPECT_EQ(d["reason"], "reading");
  EXPECT_EQ(d["last_reading"]["temperature"], 21.5);
  EXPECT_EQ(d["counters"]["readings"], 1);
  EXPECT_GT(d["last_seen_ms"].get<std::int64_t>(), 0);

  // It announces sleep; then the broker publishes its last will.
  OUTPOST_ASSERT_OK(h_.devices().Publish("devices/n1/status", "sleeping", 1));
  json now;
  ASSERT_TRUE(WaitUntil("n1 sleeping", std::chrono::seconds(10), [&] {
    auto j = GetJson(api(), "/api/v1/devices/n1");
    if (j.ok()) now = *j;
    return j.ok() && now["status"] == "sleeping";
  })) << now.dump();
  EXPECT_EQ(now["reason"], "announced_sleep");
  OUTPOST_ASSERT_OK(h_.devices().Publish("devices/n1/status", "offline", 1));
  ASSERT_TRUE(WaitUntil("n1 offline", std::chrono::seconds(10), [&] {
    auto j = GetJson(api(), "/api/v1/devices/n1");
    if (j.ok()) now = *j;
    return j.ok() && now["status"] == "offline";
  })) << now.dump();
  EXPECT_EQ(now["reason"], "last_will");
  // A device known only from an offline status was never seen.
  OUTPOST_ASSERT_OK(h_.devices().Publish("devices/ghost/status", "offline", 1));
  ASSERT_TRUE(WaitUntil("ghost known", std::chrono::seconds(10), [&] {
    auto j = GetJson(api(), "/api/v1/devices/ghost");
    if (j.ok()) now = *j;
    return j.ok();
  }));
  EXPECT_EQ(now["status"], "never_seen") << now.dump();
  EXPECT_TRUE(now["last_reading"].is_null());
}

// Bad input: a clear, specific 4xx (problem+json with its code), counted, and nothing else
// changes: no reading, device or commit more, and the gateway keeps serving.
TEST_F(GatewayApiTest, BadRequestsGetClear4xxAndChangeNothing) {
  StartWith({"d1"});
  OUTPOST_ASSERT_OK_AND_ASSIGN(json before, h_.GetStatus());
  struct Case {
    std::string request;
    int status;
    std::string code;
  };
  const std::string big_header(9000, 'x');
  const std::vector<Case> cases = {
      {"GET /api/v1/devices/nope HTTP/1.1\r\nHost: x\r\n" + h_.auth_header() + "\r\n", 404,
       "unknown_device"},
      {"GET /api/v1/devices/ HTTP/1.1\r\nHost: x\r\n" + h_.auth_header() + "\r\n", 404,
       "unknown_device"},
      {"GET /api/v1/devices?cursor=zz HTTP/1.1\r\nHost: x\r\n" + h_.auth_header() + "\r\n", 400,
       "bad_cursor"},
      {"GET /api/v1/devices?cursor=d1 HTTP/1.1\r\nHost: x\r\n" + h_.auth_header() + "\r\n", 400,
       "bad_cursor"},
      {"GET /api/v1/devices?limit=0 HTTP/1.1\r\nHost: x\r\n" + h_.auth_header() + "\r\n", 400,
       "bad_limit"},
      {"GET /api/v1/devices?limit=100000 HTTP/1.1\r\nHost: x\r\n" + h_.auth_header() + "\r\n", 400,
       "bad_limit"},
      {"GET /api/v1/devices?limit=ten HTTP/1.1\r\nHost: x\r\n" + h_.auth_header() + "\r\n", 400,
       "bad_limit"},
      {"GET /api/v2/devices HTTP/1.1\r\nHost: x\r\n" + h_.auth_header() + "\r\n", 404, "not_found"},
      {"POST /api/v1/devices HTTP/1.1\r\nHost: x\r\n" + h_.auth_header() +
           "Content-Length: 2\r\n\r\n{}",
       405, "method_not_allowed"},
      {"DELETE /api/v1/devices/d1 HTTP/1.1\r\nHost: x\r\n" + h_.auth_header() + "\r\n", 405,
       "method_not_allowed"},
      {"GET /healthz HTTP/1.1\r\nHost: x\r\n" + h_.auth_header() + "X-Big: " + big_header +
           "\r\n\r\n",
       431, "header_line_too_long"},
      {"POST /api/v1/devices HTTP/1.1\r\nHost: x\r\n" + h_.auth_header() +
           "Content-Length: 2000000\r\n\r\n",
       413, "body_too_large"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.request.substr(0, 60));
    OUTPOST_ASSERT_OK_AND_ASSIGN(auto conn, RawHttpConnection::Connect(port()));
    auto r = conn.Exchange(c.request);
    OUTPOST_ASSERT_OK(r);
    EXPECT_EQ(r->status, c.status) << r->body;
    EXPECT_EQ(r->Header("content-type"), "application/problem+json");
    json p = json::parse(r->body, nullptr, false);
    ASSERT_FALSE(p.is_discarded()) << r->body;
    EXPECT_EQ(p["status"], c.status);
    EXPECT_EQ(p["error"]["code"], c.code) << r->body;
    EXPECT_FALSE(p["detail"].get<std::string>().empty());
    if (c.status == 405) {
      // Devices take POST below them: /api/v1/devices/{id}/commands.
      const bool below = c.request.rfind("DELETE /api/v1/devices/", 0) == 0;
      EXPECT_EQ(r->Header("allow"), below ? "GET, POST" : "GET") << c.request;
    }
  }
  // Counted by reason.
  auto m = Get(api(), "/metrics");
  OUTPOST_ASSERT_OK(m);
  EXPECT_NE(
      m->body.find("outpost_gateway_http_requests_refused_total{reason=\"body_too_large\"} 1"),
      std::string::npos)
      << m->body;
  EXPECT_NE(m->body.find(
                "outpost_gateway_http_requests_refused_total{reason=\"header_line_too_long\"} 1"),
            std::string::npos);
  const std::regex four("outpost_gateway_http_responses_total\\{class=\"4xx\"\\} ([0-9]+)\n");
  std::smatch four_xx;
  ASSERT_TRUE(std::regex_search(m->body, four_xx, four)) << m->body;
  EXPECT_GE(std::stoul(four_xx[1].str()), cases.size());
  // Nothing changed, and everything still answers.
  OUTPOST_ASSERT_OK_AND_ASSIGN(json after, h_.GetStatus());
  EXPECT_EQ(Unchanged(after), Unchanged(before));
  OUTPOST_ASSERT_OK_AND_ASSIGN(json d, GetJson(api(), "/api/v1/devices/d1"));
  EXPECT_EQ(d["counters"]["readings"], 1);
  auto z = Get(api(), "/healthz");
  OUTPOST_ASSERT_OK(z);
  EXPECT_EQ(z->status, 200);
  OUTPOST_ASSERT_OK(h_.StopGateway());
}

std::string Gunzip(const std::string& in) {
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) return {};
  std::string out(64 * 1024, '\0');
  std::size_t used = 0;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    if (used == out.size()) out.resize(out.size() * 2);
    z.next_out = reinterpret_cast<Bytef*>(out.data() + used);
    z.avail_out = static_cast<uInt>(out.size() - used);
    rc = inflate(&z, Z_NO_FLUSH);
    used = out.size() - z.avail_out;
  }
  inflateEnd(&z);
  if (rc != Z_STREAM_END) return {};
  out.resize(used);
  return out;
}

// A large series answer is gzip-encoded when the client accepts it (on the reader thread) and
// decodes to the identity answer; a small one is sent as it is; both say Vary.
TEST_F(GatewayApiTest, LargeSeriesAnswersAreGzipEncodedWhenAccepted) {
  StartWith({"d1"});
  constexpr int kReadings = 200;
  for (int i = 0; i < kReadings; ++i) {
    OUTPOST_ASSERT_OK(
        h_.devices().Publish("sensors/g1/data", Native("g1", i + 1, 20 + i * 0.01), 1));
  }
  OUTPOST_ASSERT_OK(
      h_.WaitStatus([](const json& j) { return j["ingest"]["stored"] == kReadings + 1; }));
  const std::string range = RangeAroundNow(3'600'000, 3'600'000);
  for (const std::string format : {"", "&format=csv"}) {
    const std::string target =
        "/api/v1/series?device=g1&metric=temperature&raw=1&limit=1000" + range + format;
    OUTPOST_ASSERT_OK_AND_ASSIGN(auto plain, Get(api(), target));
    ASSERT_EQ(plain.status, 200) << plain.body;
    EXPECT_EQ(plain.Header("content-encoding"), "");
    EXPECT_EQ(plain.Header("vary"), "Accept-Encoding");
    ASSERT_GE(plain.body.size(), 1024u) << "too small to be compressed: " << plain.body;
    OUTPOST_ASSERT_OK_AND_ASSIGN(auto gz, Get(api(), target, "Accept-Encoding: gzip\r\n"));
    ASSERT_EQ(gz.status, 200);
    EXPECT_EQ(gz.Header("content-encoding"), "gzip") << format;
    EXPECT_EQ(gz.Header("vary"), "Accept-Encoding");
    EXPECT_LT(gz.body.size(), plain.body.size());
    EXPECT_EQ(Gunzip(gz.body), plain.body) << format;
  }
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto small,
                               Get(api(), "/api/v1/series?device=g1&metric=temperature&points=1",
                                   "Accept-Encoding: gzip\r\n"));
  EXPECT_EQ(small.status, 200);
  EXPECT_LT(small.body.size(), 1024u);
  EXPECT_EQ(small.Header("content-encoding"), "") << "a small answer is sent as it is";
}

// raw=1&format=csv without a limit streams every point in the range, page after page on the
// reader thread (two pages here, with timestamps shared across the page boundary): the same
// points, in the same order, as the JSON raw pages, in one chunked answer.
TEST_F(GatewayApiTest, CsvExportStreamsEveryPointOfTheRangeInOneAnswer) {
  StartWith({"d1"});
  constexpr int kReadings = 6000;  // > series::kExportPageRows (4096)
  for (int i = 0; i < kReadings; ++i) {
    OUTPOST_ASSERT_OK(h_.devices().Publish("sensors/e1/data", Native("e1", i + 1, i * 0.5), 1));
  }
  OUTPOST_ASSERT_OK(
      h_.WaitStatus([](const json& j) { return j["ingest"]["stored"] == kReadings + 1; }));
  const std::string base =
      "/api/v1/series?device=e1&metric=temperature&raw=1" + RangeAroundNow(3'600'000, 1000);
  std::string paged = "t,v\n";
  std::string cursor;
  for (int page = 0; page < 10; ++page) {
    OUTPOST_ASSERT_OK_AND_ASSIGN(
        json j, GetJson(api(), base + "&limit=2500" + (cursor.empty() ? "" : "&cursor=" + cursor)));
    for (std::size_t i = 0; i < j["t"].size(); ++i) {
      paged += std::to_string(j["t"][i].get<std::int64_t>()) + "," + j["v"][i].dump() + "\n";
    }
    if (j["next_cursor"].is_null()) break;
    cursor = j["next_cursor"];
  }
  ASSERT_EQ(std::count(paged.begin(), paged.end(), '\n'), kReadings + 1);

  OUTPOST_ASSERT_OK_AND_ASSIGN(auto csv, Get(api(), base + "&format=csv"));
  ASSERT_EQ(csv.status, 200) << csv.body.substr(0, 200);
  EXPECT_EQ(csv.Header("content-type"), "text/csv; charset=utf-8");
  EXPECT_EQ(csv.Header("transfer-encoding"), "chunked");
  EXPECT_EQ(csv.Header("x-next-cursor"), "");
  EXPECT_EQ(csv.body, paged);
  // The slot is given back once the server has finished the stream, which may be just after the
  // client saw the last chunk.
  std::string metrics_body;
  EXPECT_TRUE(WaitUntil("the export's slot given back", std::chrono::seconds(10), [&] {
    auto m = Get(api(), "/metrics");
    if (!m.ok()) return false;
    metrics_body = m->body;
    return Sample(metrics_body, "outpost_gateway_series_exports_open") == 0;
  })) << metrics_body;
  EXPECT_EQ(Sample(metrics_body, "outpost_gateway_series_exports_completed_total"), 1);
  EXPECT_EQ(Sample(metrics_body, "outpost_gateway_http_streams_dropped_slow_total"), 0);

  // An export of a device with no reading is a plain 404 before anything streams.
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      auto unknown, Get(api(), "/api/v1/series?device=nobody&metric=temperature&raw=1&format=csv"));
  EXPECT_EQ(unknown.status, 404);
}

// Readings published through Mosquitto appear in /api/v1/series: buckets with the raw extrema
// (a one-sample spike survives a single bucket), raw pages with a cursor, and CSV.
TEST_F(GatewayApiTest, SeriesShowsPublishedReadingsAsBucketsRawPagesAndCsv) {
  StartWith({"d1"});  // d1: one reading of 21.5
  constexpr int kReadings = 25;
  for (int i = 0; i < kReadings; ++i) {
    const double t = i == 17 ? 99.5 : 20.0 + i * 0.1;
    OUTPOST_ASSERT_OK(h_.devices().Publish("sensors/s1/data", Native("s1", i + 1, t), 1));
  }
  OUTPOST_ASSERT_OK(
      h_.WaitStatus([](const json& j) { return j["ingest"]["stored"] == kReadings + 1; }));

  OUTPOST_ASSERT_OK_AND_ASSIGN(
      json one, GetJson(api(), "/api/v1/series?device=s1&metric=temperature&points=1"));
  EXPECT_EQ(one["device"], "s1");
  EXPECT_EQ(one["metric"], "temperature");
  EXPECT_EQ(one["to"].get<std::int64_t>() - one["from"].get<std::int64_t>(), 24 * 3600 * 1000);
  EXPECT_EQ(one["bucket_ms"], 24 * 3600 * 1000);
  ASSERT_EQ(one["t"].size(), 1u) << one;
  EXPECT_EQ(one["n"][0], kReadings);
  EXPECT_EQ(one["max"][0], 99.5);
  EXPECT_EQ(one["min"][0], 20.0);
  for (const char* col : {"min", "max", "avg", "n"}) EXPECT_EQ(one[col].size(), 1u) << col;

  // Many buckets: the counts add up, the spike is still the maximum.
  OUTPOST_ASSERT_OK_AND_ASSIGN(
      json many, GetJson(api(), "/api/v1/series?device=s1&metric=temperature&points=10000"));
  EXPECT_LE(many["t"].size(), 10000u);
  std::int64_t total = 0;
  double max = -1;
  for (std::size_t i = 0; i < many["n"].size(); ++i) {
    total += many["n"][i].get<std::int64_t>();
    max = std::max(max, many["max"][i].get<double>());
  }
  EXPECT_EQ(total, kReadings);
  EXPECT_EQ(max, 99.5);

  // Raw pages of 10 with a cursor: 25 values, each once, in time order.
  std::vector<double> values;
  std::vector<std::int64_t> times;
  std::string cursor;
  for (int page = 0; page < 10; ++page) {
    std::string target = "/api/v1/series?device=s1&metric=temperature&raw=1&limit=10";
    if (!cursor.empty()) target += "&cursor=" + cursor;
    OUTPOST_ASSERT_OK_AND_ASSIGN(json p, GetJson(api(), target));
    ASSERT_EQ(p["t"].size(), p["v"].size());
    for (auto& v : p["v"]) values.push_back(v.get<double>());
    for (auto& t : p["t"]) times.push_back(t.get<std::int64_t>());
    if (p["next_cursor"].is_null()) break;
    cursor = p["next_cursor"].get<std::string>();
  }
  ASSERT_EQ(values.size(), static_cast<std::size_t>(kReadings));
  EXPECT_TRUE(std::is_sorted(times.begin(), times.end()));
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end()) << "a value twice";
  EXPECT_EQ(*std::max_element(values.begin(), values.end()), 99.5);

  auto csv = Get(api(), "/api/v1/series?device=s1&metric=temperature&points=1&format=csv");
  OUTPOST_ASSERT_OK(csv);
  EXPECT_EQ(csv->status, 200);
  EXPECT_EQ(csv->Header("content-type"), "text/csv; charset=utf-8");
  EXPECT_EQ(csv->body.rfind("t,min,max,avg,n\n", 0), 0u) << csv->body;
  EXPECT_NE(csv->body.find(",20.0,99.5,"), std::string::npos) << csv->body;
  EXPECT_NE(csv->body.find("," + std::to_string(kReadings) + "\n"), std::string::npos);
  auto raw_csv =
      Get(api(), "/api/v1/series?device=s1&metric=temperature&raw=1&limit=20&format=csv");
  OUTPOST_ASSERT_OK(raw_csv);
  EXPECT_EQ(raw_csv->body.rfind("t,v\n", 0), 0u);
  EXPECT_EQ(std::count(raw_csv->body.begin(), raw_csv->body.end(), '\n'), 21);
  EXPECT_FALSE(raw_csv->Header("x-next-cursor").empty());

  // The reader's refusals are counted (none here).
  auto metrics = Get(api(), "/metrics");
  OUTPOST_ASSERT_OK(metrics);
  EXPECT_EQ(Sample(metrics->body, "outpost_gateway_series_busy_total"), 0) << metrics->body;

  // A metric the device never sent: empty columns.
  OUTPOST_ASSERT_OK_AND_ASSIGN(json none, GetJson(api(), "/api/v1/series?device=s1&metric=co2"));
  EXPECT_TRUE(none["t"].empty());
  OUTPOST_ASSERT_OK(h_.StopGateway());
}

// Bad series input: problem+json naming the parameter, and nothing changes.
TEST_F(GatewayApiTest, SeriesBadInputGets4xxNamingTheParameter) {
  StartWith({"d1"});
  OUTPOST_ASSERT_OK_AND_ASSIGN(json before, h_.GetStatus());
  const std::vector<std::tuple<std::string, int, std::string>> cases = {
      {"?metric=temperature", 400, "bad_device"},
      {"?device=d1", 400, "bad_metric"},
      {"?device=d1&metric=temperature&from=10&to=10", 400, "bad_from"},
      {"?device=d1&metric=temperature&from=abc", 400, "bad_from"},
      {"?device=d1&metric=temperature&to=1.5", 400, "bad_to"},
      {"?device=d1&metric=temperature&points=0", 400, "bad_points"},
      {"?device=d1&metric=temperature&points=10001", 400, "bad_points"},
      {"?device=d1&metric=temperature&raw=2", 400, "bad_raw"},
      {"?device=d1&metric=temperature&raw=1&limit=0", 400, "bad_limit"},
      {"?device=d1&metric=temperature&raw=1&cursor=zz", 400, "bad_cursor"},
      {"?device=d1&metric=temperature&format=xml", 400, "bad_format"},
      {"?device=nope&metric=temperature", 404, "unknown_device"},
  };
  for (const auto& [query, status, code] : cases) {
    SCOPED_TRACE(query);
    auto r = Get(api(), "/api/v1/series" + query);
    OUTPOST_ASSERT_OK(r);
    EXPECT_EQ(r->status, status) << r->body;
    EXPECT_EQ(r->Header("content-type"), "application/problem+json");
    json p = json::parse(r->body, nullptr, false);
    ASSERT_FALSE(p.is_discarded()) << r->body;
    EXPECT_EQ(p["error"]["code"], code) << r->body;
    const std::string param = code.substr(4);
    if (status == 400) {
      EXPECT_EQ(p["detail"].get<std::string>().rfind(param + ": ", 0), 0u) << r->body;
    }
  }
  OUTPOST_ASSERT_OK_AND_ASSIGN(json after, h_.GetStatus());
  EXPECT_EQ(Unchanged(after), Unchanged(before));
  OUTPOST_ASSERT_OK_AND_ASSIGN(json ok,
                               GetJson(api(), "/api/v1/series?device=d1&metric=temperature"));
  EXPECT_EQ(ok["n"], json({1}));
  OUTPOST_ASSERT_OK(h_.StopGateway());
}

}  // namespace
}  // namespace outpost::testing
