#include "gateway_harness.h"

#include <cstdlib>
#include <fstream>
#include <optional>
#include <regex>
#include <thread>

#include "outpost/testing/wait_until.h"

namespace outpost::testing {

using nlohmann::json;

std::string GatewayBinary() {
  const char* dir = std::getenv("OUTPOST_BINARY_DIR");
  return std::string(dir ? dir : ".") + "/gateway/outpost-gateway";
}

bool GatewayCannotReexec() {
  const char* emulator = std::getenv("OUTPOST_TEST_EMULATOR");
  return emulator != nullptr && *emulator != '\0';
}

GatewayHarness::GatewayHarness()
    : devices_(std::make_unique<TestMqtt>()), observer_(std::make_unique<TestMqtt>()) {}

GatewayHarness::~GatewayHarness() {
  if (gateway_ && gateway_->Running()) KillGateway();
}

Status GatewayHarness::WriteConfig(const std::string& extra_yaml) {
  std::ofstream out(config_path_, std::ios::trunc);
  out << "gateway:\n  id: " << kGatewayId << "\n  status_interval_s: 3600\n"
      << "mqtt:\n  host: 127.0.0.1\n  port: " << broker_->port()
      << "\n  reconnect_base_ms: 50\n  reconnect_cap_ms: 500\n"
      << "storage:\n  path: " << db_path() << "\n"
      << options_.storage_yaml << "http:\n"
      << (options_.http_yaml.find("listen:") == std::string::npos ? "  listen: 127.0.0.1:0\n" : "")
      << options_.http_yaml << extra_yaml << "\n";
  out.close();
  if (!out) return Unavailable("cannot write " + config_path_);
  return Status::Ok();
}

Status GatewayHarness::Start(const std::string& extra_yaml) {
  HarnessOptions o;
  o.extra_yaml = extra_yaml;
  return Start(std::move(o));
}

Status GatewayHarness::Start(HarnessOptions options) {
  options_ = std::move(options);
  config_path_ = dir_.File("gateway.yaml");
  MosquittoOptions mo;
  mo.extra_config = options_.broker_config;
  mo.persistence = options_.persistent_broker;
  auto broker = MosquittoProcess::Start(mo);
  if (!broker.ok()) return broker.status();
  broker_ = std::move(broker).value();
  OUTPOST_RETURN_IF_ERROR(WriteConfig(options_.extra_yaml));
  OUTPOST_RETURN_IF_ERROR(observer_->Connect(broker_->port()));
  OUTPOST_RETURN_IF_ERROR(observer_->Subscribe("gateway/#", 1));
  OUTPOST_RETURN_IF_ERROR(devices_->Connect(broker_->port()));
  auto token = RunCli({"token", "create", "--role", "admin", "--name", "test-harness"});
  if (!token.ok()) return token.status();
  std::smatch m;
  static const std::regex kToken("opt_[0-9a-f]{64}");
  if (token->status != 0 || !std::regex_search(token->output, m, kToken)) {
    return Internal("token create failed (" + std::to_string(token->status) +
                    "): " + token->output);
  }
  token_ = m.str();
  return StartGateway();
}

// Through ChildProcess, not a shell: in a cross build the gateway runs under the emulator
// (OUTPOST_TEST_EMULATOR), which only ChildProcess knows how to prefix.
Result<GatewayHarness::CliResult> GatewayHarness::RunCli(const std::vector<std::string>& args,
                                                         const std::string& stdin_text) {
  const std::string input = dir_.File("cli-stdin");
  {
    std::ofstream in(input, std::ios::trunc);
    in << stdin_text;
    if (!in) return Unavailable("cannot write " + input);
  }
  ChildProcessOptions o;
  o.argv = {GatewayBinary(), "--config", config_path_};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.stdin_path = input;
  o.log_path = dir_.File("cli-" + std::to_string(++cli_runs_) + ".log");
  auto child = ChildProcess::Start(o);
  if (!child.ok()) return child.status();
  auto code = (*child)->Wait(std::chrono::seconds(60));
  if (!code.ok()) return code.status();  // killed by the destructor
  CliResult r;
  r.status = *code;
  r.output = (*child)->log();
  return r;
}

Status GatewayHarness::LaunchGateway() {
  ChildProcessOptions o;
  o.argv = {GatewayBinary(), "--config", config_path_};
  o.env = options_.gateway_env;
  o.log_path = dir_.File("gateway-" + std::to_string(++gateway_runs_) + ".log");
  auto child = ChildProcess::Start(o);
  if (!child.ok()) return child.status();
  gateway_ = std::move(child).value();
  return Status::Ok();
}

Status GatewayHarness::StartGateway() {
  OUTPOST_RETURN_IF_ERROR(LaunchGateway());
  std::string state_topic = std::string("gateway/") + kGatewayId + "/state";
  // The retained "online" of an earlier run may be queued already: wait for a fresh one, which
  // the gateway publishes on every connect, after its previous "offline" (clean stop) or not.
  auto m = observer_->WaitMessage(
      [&](const mqtt::Message& msg) {
        return msg.topic == state_topic && msg.payload == "online" && !msg.retain;
      },
      std::chrono::seconds(15));
  if (!m.ok()) {
    return Unavailable("gateway did not come online: " + m.status().message() + "\n" +
                       gateway_log());
  }
  // The listener is bound before the MQTT connection starts; its line may still be in a buffer.
  http_port_ = 0;
  if (gateway_log().find("http api off") != std::string::npos) return Status::Ok();
  const std::regex listening(
      "http api listening on https?://(?:127\\.0\\.0\\.1|0\\.0\\.0\\.0):([0-9]+)");
  std::string log, port;
  bool found = WaitUntil("the http api's port in the log", std::chrono::seconds(10), [&] {
    log = gateway_log();
    // The last one: a restart command re-executes the process into the same log.
    for (std::sregex_iterator it(log.begin(), log.end(), listening), end; it != end; ++it) {
      port = (*it)[1].str();
    }
    return !port.empty();
  });
  if (!found) return Unavailable("gateway logged no http api port:\n" + log);
  http_port_ = static_cast<std::uint16_t>(std::stoi(port));
  return Status::Ok();
}

Status GatewayHarness::StopGateway(std::chrono::milliseconds timeout) {
  if (!gateway_) return Status::Ok();
  gateway_->Terminate();
  auto code = gateway_->Wait(timeout);
  if (!code.ok()) return code.status();
  if (*code != 0) {
    return Internal("gateway exited with status " + std::to_string(*code) + "\n" + gateway_log());
  }
  return Status::Ok();
}

void GatewayHarness::KillGateway() {
  if (!gateway_) return;
  gateway_->Kill();
  (void)gateway_->Wait(std::chrono::seconds(10));
}

bool GatewayHarness::gateway_running() { return gateway_ && gateway_->Running(); }

pid_t GatewayHarness::gateway_pid() const { return gateway_ ? gateway_->pid() : -1; }

std::string GatewayHarness::gateway_log() const { return gateway_ ? gateway_->log() : ""; }

Result<json> GatewayHarness::GetStatus(std::chrono::milliseconds timeout) {
  static int request = 0;
  std::string id = "req" + std::to_string(++request);
  Status s =
      devices_->Publish("gateway/commands", json{{"command", "get_status"}, {"id", id}}.dump(), 1);
  if (!s.ok()) return s;
  // The reply names the request; the status published just before it is the answer.
  std::string status_topic = std::string("gateway/") + kGatewayId + "/status";
  std::string reply_topic = std::string("gateway/") + kGatewayId + "/replies";
  // Status and reply are taken (consumed) in arrival order: the gateway publishes the status,
  // then the reply naming this request.
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::optional<json> status;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return Status(Code::kDeadlineExceeded, "no reply to get_status " + id);
    auto m = observer_->WaitMessage(
        [&](const mqtt::Message& msg) {
          return (msg.topic == status_topic && !msg.retain) || msg.topic == reply_topic;
        },
        left);
    if (!m.ok()) return m.status();
    json j = json::parse(m->payload, nullptr, false);
    if (m->topic == status_topic) {
      status = std::move(j);
    } else if (j.is_object() && j.value("id", "") == id) {
      if (!status || status->is_discarded()) return Internal("reply without a status before it");
      return *status;
    }
  }
}

Result<json> GatewayHarness::WaitStatus(const std::function<bool(const json&)>& predicate,
                                        std::chrono::milliseconds timeout) {
  json last;
  bool matched = false;
  (void)WaitUntil("a matching status", timeout, [&] {
    auto s = GetStatus(std::chrono::seconds(5));
    if (s.ok()) {
      last = *s;
      matched = predicate(last);
    }
    return matched;
  });
  if (matched) return last;
  return Status(Code::kDeadlineExceeded, "status never matched; last: " + last.dump());
}

Result<std::unique_ptr<gateway::store::Store>> GatewayHarness::OpenStore() {
  gateway::store::Options o;
  o.path = db_path();
  return gateway::store::Store::Open(o);
}

}  // namespace outpost::testing
