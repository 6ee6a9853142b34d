// outpost-node: the fleet simulator and digital twin. Parses the command line, builds the fleet
// and a backend (a real broker over Asio, or virtual time), runs it, prints the summary and maps
// the outcome to the exit status. Guide: docs/simulator.md.
#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "outpost/node/fleet/asio_backend.h"
#include "outpost/node/fleet/fleet.h"
#include "outpost/node/fleet/verify.h"
#include "outpost/node/fleet/virtual_backend.h"

namespace {

using namespace outpost::node;

constexpr int kExitOk = 0;
constexpr int kExitLoss = 1;
constexpr int kExitUsage = 2;
constexpr int kExitRuntime = 3;

constexpr const char* kDescription =
    "outpost-node: the Outpost device core running as N virtual sensor nodes on one event loop,\n"
    "against a real MQTT broker (TCP or TLS) or, with --virtual-time, an in-process broker with\n"
    "simulated time (deterministic for a --seed). Each device samples modelled sensors (daily\n"
    "temperature cycle, humidity, occupancy motion, battery drain, RSSI drift, read errors),\n"
    "publishes at QoS 1 with boot/seq, buffers while offline and obeys commands\n"
    "(setSensorInterval, reboot, led). A --scenario file injects faults. Every run is bounded by\n"
    "--duration and/or --count, then drains its offline buffers (at most --drain-timeout).\n"
    "Exit status: 0 nothing lost; 1 readings dropped from a full buffer, acknowledged readings\n"
    "out of order, or (--verify-store) acknowledged readings missing from the gateway's store or\n"
    "seq gaps there; 2 usage or configuration error; 3 runtime error (broker host unknown, store\n"
    "unreadable). See docs/simulator.md.";

std::atomic<bool> g_stop{false};
extern "C" void OnSignal(int) { g_stop.store(true); }

bool ParseBroker(const std::string& s, std::string& host, std::uint16_t& port) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) return false;
  host = s.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  try {
    const long p = std::stol(s.substr(colon + 1));
    if (p < 1 || p > 65535) return false;
    port = static_cast<std::uint16_t>(p);
  } catch (...) {
    return false;
  }
  return true;
}

nlohmann::json ToJson(const fleet::Summary& s) {
  nlohmann::json j;
  j["devices"] = s.devices;
  j["started"] = s.started;
  j["ever_connected"] = s.ever_connected;
  j["connected_at_end"] = s.connected_now;
  j["sampled"] = s.sampled;
  j["sent"] = s.published;
  j["resent"] = s.resent;
  j["acked"] = s.acked;
  j["buffered"] = s.buffered;
  j["dropped"] = s.ring_dropped;
  j["lost_at_restart"] = s.lost_at_restart;
  j["reconnects"] = s.reconnects;
  j["connect_failures"] = s.connect_failures;
  j["disconnects"] = s.disconnects;
  j["read_errors"] = s.read_errors;
  j["commands"] = s.commands;
  j["commands_duplicate"] = s.commands_duplicate;
  j["commands_rejected"] = s.commands_rejected;
  j["commands_retained"] = s.commands_retained;
  j["rx_oversize"] = s.rx_oversize;
  j["cert_rotations"] = s.cert_rotations;
  j["cert_rotation_failures"] = s.cert_rotation_failures;
  j["sleeps"] = s.sleeps;
  j["restarts"] = s.restarts;
  j["malformed_sent"] = s.malformed_sent;
  j["protocol_errors"] = s.protocol_errors;
  j["ack_order_errors"] = s.ack_order_errors;
  j["latency_ms"] = {
      {"p50", s.latency_p50_ms}, {"p99", s.latency_p99_ms}, {"max", s.latency_max_ms}};
  j["elapsed_ms"] = s.elapsed_ms;
  j["all_connected_ms"] = s.all_connected_ms;
  j["drained"] = s.drained;
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  fleet::FleetOptions o;
  fleet::AsioOptions net;
  std::string broker = "127.0.0.1:1883";
  std::string mode = "native";
  std::string scenario_path, verify_path;
  double interval_s = 5, duration_s = 60, drain_s = 15, progress_s = 1, verify_wait_s = 0;
  bool virtual_time = false, json = false, insecure = false, quiet = false;

  CLI::App app{kDescription, "outpost-node"};
  app.add_option("--broker", broker, "broker address host:port")->capture_default_str();
  app.add_flag("--tls", net.tls, "connect with TLS");
  app.add_option("--ca", net.ca_file, "CA certificate (PEM) to verify the broker (with --tls)")
      ->check(CLI::ExistingFile);
  app.add_option("--cert", net.cert_file, "client certificate (PEM; with --tls)")
      ->check(CLI::ExistingFile);
  app.add_option("--key", net.key_file, "client private key (PEM; with --cert)")
      ->check(CLI::ExistingFile);
  app.add_option("--cert-dir", net.cert_dir,
                 "per-device client certificates: DIR/<id>/device.crt and device.key, as "
                 "outpost-provision device add writes them (with --tls; not with --cert); enables "
                 "certificate rotation (certRequest/certInstall), which writes "
                 "device.pending.key and replaces both files there")
      ->check(CLI::ExistingDirectory);
  app.add_flag("--insecure", insecure, "with --tls: do not verify the broker's certificate");
  app.add_option("--username", o.username, "MQTT user name");
  app.add_option("--password", o.password, "MQTT password (needs --username)");
  app.add_option("--devices", o.devices, "virtual devices")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1'000'000u));
  app.add_option("--interval", interval_s, "sampling interval in seconds (fractions allowed)")
      ->capture_default_str()
      ->check(CLI::Range(0.05, 86'400.0));
  app.add_option("--duration", duration_s, "seconds of sampling, then drain (0: until --count)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e7));
  app.add_option("--count", o.count, "readings per device, then stop (0: no limit)")
      ->capture_default_str();
  app.add_option("--qos", o.qos, "QoS of readings")->capture_default_str()->check(CLI::Range(0, 1));
  app.add_option("--ramp", o.ramp_per_s, "device starts (connections) per second")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 1e6));
  app.add_option("--seed", o.seed, "random seed (sensor models, faults, jitter)")
      ->capture_default_str();
  app.add_option("--mode", mode, "native (per-device topics, boot/seq) or seed (the seed sketch)")
      ->capture_default_str()
      ->check(CLI::IsMember({"native", "seed"}));
  app.add_option("--id-prefix", o.id_prefix, "device ids are PREFIX00000, PREFIX00001, ...")
      ->capture_default_str();
  app.add_option("--first-index", o.first_index, "number of the first device")
      ->capture_default_str();
  app.add_option("--scenario", scenario_path, "scenario YAML (models and faults)")
      ->check(CLI::ExistingFile);
  app.add_flag("--virtual-time", virtual_time,
               "no broker: in-process MQTT broker and simulated time (deterministic)");
  app.add_flag("--json", json, "print the summary as JSON on stdout");
  app.add_option("--verify-store", verify_path,
                 "after the run, check the gateway's SQLite file (read-only): every acknowledged "
                 "reading stored, zero seq gaps")
      ->check(CLI::ExistingFile);
  app.add_option("--verify-wait", verify_wait_s,
                 "with --verify-store: re-check every 0.2 s for up to this many seconds while the "
                 "gateway catches up")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--ring", o.ring_capacity, "offline buffer per device, in readings")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_option("--keepalive", o.keepalive_s, "MQTT keepalive in seconds")->capture_default_str();
  app.add_option("--boot-delay-max", o.boot_delay_max_ms,
                 "random delay before a device's first connect, at most this many ms")
      ->capture_default_str();
  app.add_option("--drain-timeout", drain_s, "seconds to wait for buffers to empty at the end")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--settings-dir", o.settings_dir,
                 "keep each device's settings (boot counter, interval) in DIR/<id>.settings")
      ->check(CLI::ExistingDirectory);
  app.add_option("--progress", progress_s, "seconds between progress lines on stderr (0: none)")
      ->capture_default_str();
  app.add_flag("-q,--quiet", quiet, "no progress line and no text summary");
  CLI11_PARSE(app, argc, argv);

  if (!virtual_time && !ParseBroker(broker, net.host, net.port)) {
    std::fprintf(stderr, "outpost-node: --broker: expected host:port, got \"%s\"\n",
                 broker.c_str());
    return kExitUsage;
  }
  if (!net.key_file.empty() && net.cert_file.empty()) {
    std::fprintf(stderr, "outpost-node: --key needs --cert\n");
    return kExitUsage;
  }
  if (!net.cert_dir.empty() && !net.cert_file.empty()) {
    std::fprintf(stderr, "outpost-node: --cert-dir and --cert exclude each other\n");
    return kExitUsage;
  }
  if (!net.cert_dir.empty() && !net.tls) {
    std::fprintf(stderr, "outpost-node: --cert-dir needs --tls\n");
    return kExitUsage;
  }
  if (!o.password.empty() && o.username.empty()) {
    std::fprintf(stderr, "outpost-node: --password needs --username\n");
    return kExitUsage;
  }
  net.verify_peer = !insecure;
  o.mode = mode == "seed" ? fleet::Mode::kSeed : fleet::Mode::kNative;
  o.interval_ms = static_cast<std::uint32_t>(interval_s * 1000 + 0.5);
  o.duration_ms = static_cast<std::int64_t>(duration_s * 1000 + 0.5);
  o.drain_timeout_ms = static_cast<std::int64_t>(drain_s * 1000 + 0.5);
  if (!scenario_path.empty()) {
    auto s = sim::LoadScenario(scenario_path);
    if (!s.ok()) {
      std::fprintf(stderr, "outpost-node: --scenario: %s\n", s.status().message().c_str());
      return kExitUsage;
    }
    o.scenario = std::move(*s);
  }

  std::unique_ptr<fleet::Backend> backend;
  fleet::AsioBackend* asio_backend = nullptr;
  fleet::VirtualBackend* virtual_backend = nullptr;
  if (virtual_time) {
    auto vb = std::make_unique<fleet::VirtualBackend>();
    virtual_backend = vb.get();
    backend = std::move(vb);
  } else {
    const std::uint64_t fds = fleet::RaiseFileLimit();
    if (fds < o.devices + 64ull) {
      std::fprintf(stderr,
                   "outpost-node: warning: %" PRIu64
                   " file descriptors for %u devices; raise "
                   "the hard limit (ulimit -Hn) or connections will fail\n",
                   fds, o.devices);
    }
    auto ab = std::make_unique<fleet::AsioBackend>(net);
    asio_backend = ab.get();
    backend = std::move(ab);
  }
  fleet::Fleet fleet(o, *backend);
  if (auto st = fleet.Init(); !st.ok()) {
    std::fprintf(stderr, "outpost-node: %s\n", st.message().c_str());
    return kExitUsage;
  }
  if (!quiet && progress_s > 0 && !virtual_time) {
    fleet.progress_interval_ms = static_cast<std::int64_t>(progress_s * 1000);
    fleet.on_progress = [](const fleet::Fleet& f) {
      std::fprintf(stderr, "%s  rss %.1f MiB\n", f.ProgressLine().c_str(),
                   static_cast<double>(fleet::ResidentBytes()) / 1048576.0);
    };
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGPIPE, SIG_IGN);

  const std::uint64_t rss_before = fleet::ResidentBytes();
  std::uint64_t rss_peak = 0;
  if (virtual_backend != nullptr) {
    virtual_backend->Attach(fleet);
    fleet.Start();
    virtual_backend->Run();
  } else {
    asio_backend->Attach(fleet);
    if (auto st = asio_backend->Run(&g_stop); !st.ok()) {
      std::fprintf(stderr, "outpost-node: %s\n", st.message().c_str());
      // Unreadable or mismatched TLS files are configuration errors; the rest is the runtime's.
      return st.code() == outpost::Code::kInvalidArgument ? kExitUsage : kExitRuntime;
    }
  }
  rss_peak = fleet::ResidentBytes();
  const fleet::Summary s = fleet.Summarize();

  int exit_code = kExitOk;
  std::string verdict = "nothing lost";
  if (s.ring_dropped > 0 || s.ack_order_errors > 0) {
    exit_code = kExitLoss;
    verdict = "readings lost: " + std::to_string(s.ring_dropped) + " dropped from full buffers, " +
              std::to_string(s.ack_order_errors) + " acknowledged out of order";
  }
  nlohmann::json verify_json;
  if (!verify_path.empty()) {
    auto rep = fleet::VerifyStore(verify_path, fleet.records());
    // The broker acknowledged before the gateway stored: give the gateway time to catch up.
    const auto deadline =
        std::chrono::steady_clock::now() +
        std::chrono::milliseconds(static_cast<std::int64_t>(verify_wait_s * 1000));
    while (rep.ok() && !rep->ok() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));  // polling an external file
      rep = fleet::VerifyStore(verify_path, fleet.records());
    }
    if (!rep.ok()) {
      std::fprintf(stderr, "outpost-node: %s\n", rep.status().message().c_str());
      return kExitRuntime;
    }
    verify_json = {{"ok", rep->ok()},
                   {"devices_checked", rep->devices_checked},
                   {"devices_missing", rep->devices_missing},
                   {"devices_short", rep->devices_short},
                   {"devices_with_gaps", rep->devices_with_gaps},
                   {"acked", rep->acked},
                   {"stored", rep->stored},
                   {"seq_gaps", rep->seq_gaps},
                   {"problems", rep->problems}};
    if (!rep->ok()) {
      exit_code = kExitLoss;
      verdict = "store check failed: " + std::to_string(rep->devices_missing) + " missing, " +
                std::to_string(rep->devices_short) + " short, " +
                std::to_string(rep->devices_with_gaps) + " with seq gaps";
      for (const auto& p : rep->problems) std::fprintf(stderr, "  %s\n", p.c_str());
    }
  }

  if (json) {
    nlohmann::json j = ToJson(s);
    j["mode"] = virtual_time ? "virtual" : "broker";
    j["rss_bytes"] = rss_peak;
    j["rss_start_bytes"] = rss_before;
    j["node_storage_bytes"] = fleet.node_storage_bytes();
    if (!verify_json.is_null()) j["verify"] = verify_json;
    j["exit"] = exit_code;
    j["verdict"] = verdict;
    std::printf("%s\n", j.dump().c_str());
  }
  if (!quiet) {
    std::fprintf(stderr,
                 "outpost-node: %u devices (%u connected at least once) in %.1f s: sampled "
                 "%" PRIu64 ", sent %" PRIu64 " (%" PRIu64 " resent), acknowledged %" PRIu64
                 ", buffered %" PRIu64 ", dropped %" PRIu64 ", lost at restart %" PRIu64
                 ", reconnects %" PRIu64 ", publish-to-ack p50 %" PRId64 " ms p99 %" PRId64
                 " ms; %s\n",
                 s.devices, s.ever_connected, static_cast<double>(s.elapsed_ms) / 1000.0, s.sampled,
                 s.published, s.resent, s.acked, s.buffered, s.ring_dropped, s.lost_at_restart,
                 s.reconnects, s.latency_p50_ms, s.latency_p99_ms, verdict.c_str());
  }
  return exit_code;
}
