// GatewayHarness: a real Mosquitto, a real outpost-gateway process (the built binary) with a
// generated config and its own SQLite file, and two test MQTT clients — one to publish as
// devices, one observing everything the gateway publishes on gateway/#.
//
//   GatewayHarness h;
//   OUTPOST_ASSERT_OK(h.Start("registry:\n  offline_after_s: 1\n"));
//   h.devices().Publish("sensors/data", kSeedPayload, 1);
//   auto s = h.WaitStatus([](const nlohmann::json& j) { return j["ingest"]["stored"] == 1; });
//
// The API needs credentials: Start() creates an admin API token with the gateway's own CLI
// (`outpost-gateway token create`) before the first start; requests send auth_header().
//
// Synchronisation is by condition: WaitStatus asks for the status (get_status) and re-asks
// until the predicate holds or the timeout passes. No sleeps.
// Ownership: owns the broker, the gateway process and the temp dir (kept on test failure).
// Thread: the test thread only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/gateway/store/store.h"
#include "outpost/testing/child_process.h"
#include "outpost/testing/mosquitto_process.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/temp_dir.h"
#include "outpost/testing/test_mqtt.h"

namespace outpost::testing {

inline constexpr const char* kGatewayId = "gw_test";

struct HarnessOptions {
  std::string extra_yaml;          // appended to the generated config (top-level sections)
  bool persistent_broker = false;  // broker keeps sessions across its restarts
  std::vector<std::string> broker_config = {"max_inflight_messages 10000",
                                            "max_queued_messages 1000000"};
  std::string storage_dir;   // directory of gateway.db; empty = the harness's temp dir
  std::string storage_yaml;  // more keys of the storage section, each "  key: value\n"
  // More keys of the http section (each "  key: value\n"). Without a listen key of its own it
  // is 127.0.0.1:0 (tests run in parallel: nothing binds a fixed port); the port the gateway
  // picked is http_port().
  std::string http_yaml;
  std::vector<std::pair<std::string, std::string>> gateway_env;  // added to the gateway's
};

class GatewayHarness {
 public:
  GatewayHarness();
  ~GatewayHarness();

  // Starts the broker, connects the clients, writes the config and starts the gateway.
  Status Start(const std::string& extra_yaml = "");
  Status Start(HarnessOptions options);

  // Starts the gateway process and waits until it announced itself online (retained
  // gateway/{id}/state) and logged the port of its HTTP API (http_port()).
  Status StartGateway();
  // Starts the gateway process and returns at once, without waiting for it to come online (to
  // kill it during start-up, or to wait for it another way). StartGateway() = this + the wait.
  Status LaunchGateway();
  // SIGTERM; waits for a clean exit (status 0).
  Status StopGateway(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // SIGKILL, as a crash; reaps it.
  void KillGateway();
  bool gateway_running();
  // The running gateway's process id (to signal it), or -1.
  pid_t gateway_pid() const;

  // Sends get_status and returns the next status published in reply.
  Result<nlohmann::json> GetStatus(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Repeats GetStatus until `predicate` holds; returns the last status or kDeadlineExceeded.
  Result<nlohmann::json> WaitStatus(const std::function<bool(const nlohmann::json&)>& predicate,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(20));

  // Runs `outpost-gateway --config <config> ARGS...` to its end (`stdin_text` on its stdin) and
  // returns its exit status and its stdout and stderr together.
  struct CliResult {
    int status = -1;
    std::string output;
  };
  Result<CliResult> RunCli(const std::vector<std::string>& args,
                           const std::string& stdin_text = "");
  // The admin token Start() created, and the request header line that sends it
  // ("Authorization: Bearer <token>\r\n").
  const std::string& token() const { return token_; }
  std::string auth_header() const { return "Authorization: Bearer " + token_ + "\r\n"; }

  // Opens the gateway's database for writing (the gateway must be stopped: one writer per file).
  Result<std::unique_ptr<gateway::store::Store>> OpenStore();

  TestMqtt& devices() { return *devices_; }
  TestMqtt& observer() { return *observer_; }
  MosquittoProcess& broker() { return *broker_; }
  const std::string& config_path() const { return config_path_; }
  // The HTTP API's port of the running gateway (from its "http api listening" log line); 0 until
  // StartGateway() has returned OK, or when the http section disables the API.
  std::uint16_t http_port() const { return http_port_; }
  std::string db_path() const {
    return options_.storage_dir.empty() ? dir_.File("gateway.db")
                                        : options_.storage_dir + "/gateway.db";
  }
  std::string gateway_log() const;
  TempDir& dir() { return dir_; }
  // Rewrites the config with new extra YAML (for reload tests).
  Status WriteConfig(const std::string& extra_yaml);

 private:
  TempDir dir_{"outpost-gateway-test"};
  HarnessOptions options_;
  std::string config_path_;
  std::unique_ptr<MosquittoProcess> broker_;
  std::unique_ptr<TestMqtt> devices_, observer_;
  std::unique_ptr<ChildProcess> gateway_;
  int gateway_runs_ = 0;
  int cli_runs_ = 0;
  std::uint16_t http_port_ = 0;
  std::string token_;
};

// Path of the built outpost-gateway (from OUTPOST_BINARY_DIR, set by the test registration).
std::string GatewayBinary();

// True when the gateway runs under an emulator (a cross build's tests: OUTPOST_TEST_EMULATOR).
// The "restart" command re-execs /proc/self/exe, which qemu-user cannot do without binfmt (the
// kernel refuses the target binary with ENOEXEC), so tests of it skip there; the native build
// runs them, and on the target itself the re-exec is an ordinary execv.
bool GatewayCannotReexec();

}  // namespace outpost::testing
