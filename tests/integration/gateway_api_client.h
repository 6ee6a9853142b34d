// What the tests of the gateway's HTTP API share: raw loopback requests with the harness's
// credentials, Prometheus samples, the wall clock, and a fixture that starts the whole stack.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <regex>
#include <string>
#include <vector>

#include "gateway_harness.h"
#include "outpost/testing/raw_http.h"
#include "outpost/testing/status_matchers.h"

namespace outpost::testing {

using nlohmann::json;

// The API's port and the credentials to send (GatewayHarness::auth_header()).
struct Api {
  std::uint16_t port = 0;
  std::string auth;
};

inline Result<RawHttpResponse> Get(const Api& api, const std::string& target,
                                   const std::string& headers = "") {
  auto c = RawHttpConnection::Connect(api.port);
  if (!c.ok()) return c.status();
  return c->Exchange("GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + api.auth + headers +
                     "Connection: close\r\n\r\n");
}

// GET and parse the JSON body; kInternal with the answer when the status is not `want` or the
// body is not JSON.
inline Result<json> GetJson(const Api& api, const std::string& target, int want = 200) {
  auto r = Get(api, target);
  if (!r.ok()) return r.status();
  json j = json::parse(r->body, nullptr, false);
  if (r->status != want || j.is_discarded()) {
    return Internal("GET " + target + ": " + std::to_string(r->status) + " " + r->body);
  }
  return j;
}

inline Result<RawHttpResponse> Post(const Api& api, const std::string& target,
                                    const std::string& body) {
  auto c = RawHttpConnection::Connect(api.port);
  if (!c.ok()) return c.status();
  return c->Exchange("POST " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + api.auth +
                     "Content-Type: application/json\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
}

inline std::string Native(const std::string& device, int seq, double temperature) {
  return json{{"deviceId", device}, {"boot", 1}, {"seq", seq}, {"temperature", temperature}}.dump();
}

// The value of an unlabelled sample in Prometheus text; -1 when absent.
inline double Sample(const std::string& text, const std::string& name) {
  const std::regex line("(^|\n)" + name + " ([-0-9.e+]+)\n");
  std::smatch m;
  if (!std::regex_search(text, m, line)) return -1;
  return std::stod(m[2].str());
}

// The wall clock in ms since the epoch (the gateway stamps readings it receives with its own).
inline std::int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A series query's time range: "&from=<now - before_ms>&to=<now + after_ms>".
inline std::string RangeAroundNow(std::int64_t before_ms, std::int64_t after_ms) {
  const std::int64_t now = WallMs();
  return "&from=" + std::to_string(now - before_ms) + "&to=" + std::to_string(now + after_ms);
}

class GatewayApiTest : public ::testing::Test {
 protected:
  // Starts everything and stores one reading (21.5 °C) from each of `devices`.
  void StartWith(const std::vector<std::string>& devices, const std::string& extra_yaml = "") {
    OUTPOST_ASSERT_OK(h_.Start(extra_yaml));
    ASSERT_NE(h_.http_port(), 0);
    int seq = 0;
    for (const auto& d : devices) {
      OUTPOST_ASSERT_OK(h_.devices().Publish("sensors/" + d + "/data", Native(d, ++seq, 21.5), 1));
    }
    const std::size_t n = devices.size();
    OUTPOST_ASSERT_OK(h_.WaitStatus([n](const json& j) { return j["ingest"]["stored"] == n; }));
  }
  std::uint16_t port() const { return h_.http_port(); }
  Api api() const { return {h_.http_port(), h_.auth_header()}; }
  GatewayHarness h_;
};

}  // namespace outpost::testing
