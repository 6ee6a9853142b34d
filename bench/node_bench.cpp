// node_bench: how many virtual devices one outpost-node process sustains at one reading per
// second each, on this machine, against a real Mosquitto on loopback. For each fleet size it
// runs outpost-node for a bounded time and reports:
//   ramp      connections/s until every device had connected (target >= 1,000/s)
//   sustained acknowledged readings/s in the run vs. what the fleet offered (ratio)
//   latency   publish-to-PUBACK p50/p99
//   RSS       per device = (RSS(N) - RSS(baseline)) / (N - baseline)  (target <= 20 KiB)
//   CPU       of the simulator, per 1,000 readings
// and, measured in the same run, the broker's own QoS 1 acknowledgement ceiling (outpost-bench-pub
// as fast as possible), so the sustained rate is also printed as a share of what the broker can
// take. With --tls, each size runs again over TLS with one certificate per device (made by the
// real outpost-provision, against a Mosquitto loading the generated conf.d file with its ACL), and
// the TLS row prints its RSS per device and ramp as ratios of the plain-TCP row of the same run.
// --tls-shared adds the older setup: every device presents one shared certificate (a TLS
// listener without identities). Every run is bounded in devices, time and readings; loopback
// only. Results and the command: docs/benchmarks.md.
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "outpost/testing/child_process.h"
#include "outpost/testing/mosquitto_process.h"
#include "outpost/testing/temp_dir.h"

namespace {

using nlohmann::json;
using outpost::testing::ChildProcess;
using outpost::testing::ChildProcessOptions;

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "node_bench: %s\n", why.c_str());
  std::exit(1);
}

double ChildCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_CHILDREN, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

json RunChild(std::vector<std::string> argv, const std::string& log, int timeout_s, int* code) {
  ChildProcessOptions co;
  co.argv = std::move(argv);
  co.log_path = log;
  auto p = ChildProcess::Start(co);
  if (!p.ok()) Die(p.status().ToString());
  auto rc = (*p)->Wait(std::chrono::seconds(timeout_s));
  if (!rc.ok()) {
    (*p)->Kill();
    Die("did not finish in time: " + (*p)->log());
  }
  *code = *rc;
  std::istringstream lines((*p)->log());
  std::string line, last;
  while (std::getline(lines, line)) {
    if (!line.empty() && line[0] == '{') last = line;
  }
  json j = json::parse(last, nullptr, false);
  if (j.is_discarded()) Die("no JSON summary: " + (*p)->log());
  return j;
}

// A Mosquitto loading the given top-level configuration, as a child; waits for `port`.
std::unique_ptr<ChildProcess> StartBroker(const std::string& conf, const std::string& log,
                                          std::uint16_t port) {
  auto p =
      ChildProcess::Start(ChildProcessOptions{{"/usr/sbin/mosquitto", "-c", conf}, {}, log, ""});
  if (!p.ok()) Die(p.status().ToString());
  if (!outpost::testing::WaitForPort(port, std::chrono::seconds(10)).ok()) {
    Die("mosquitto did not listen on " + std::to_string(port) + ": " + (*p)->log());
  }
  return std::move(*p);
}

}  // namespace

int main(int argc, char** argv) {
  std::string node_bin = OUTPOST_NODE_BIN, pub_bin = OUTPOST_BENCH_PUB_BIN;
  std::string provision_bin = OUTPOST_PROVISION_BIN;
  bool tls = false, tls_shared = false;
  std::vector<std::uint32_t> sizes = {1'000, 5'000, 10'000};
  double duration_s = 30, ramp = 2'000;
  std::uint32_t baseline = 10;
  bool skip_broker_limit = false;
  CLI::App app{
      "node_bench: outpost-node fleet size vs. ramp, sustained rate, latency and RSS "
      "per device, against a real Mosquitto (docs/benchmarks.md)",
      "node_bench"};
  app.add_option("--node", node_bin, "outpost-node binary")->capture_default_str();
  app.add_option("--bench-pub", pub_bin, "outpost-bench-pub binary")->capture_default_str();
  app.add_option("--sizes", sizes, "fleet sizes to run")->delimiter(',')->capture_default_str();
  app.add_option("--duration", duration_s, "seconds of sampling per size")
      ->capture_default_str()
      ->check(CLI::Range(5.0, 600.0));
  app.add_option("--ramp", ramp, "connections per second asked of outpost-node")
      ->capture_default_str();
  app.add_option("--baseline", baseline, "tiny fleet whose RSS is the baseline")
      ->capture_default_str();
  app.add_option("--provision", provision_bin, "outpost-provision binary")->capture_default_str();
  app.add_flag("--tls", tls,
               "also run each size over TLS, one certificate per device (generated broker conf "
               "and ACL); ratios against the TCP row");
  app.add_flag("--tls-shared", tls_shared,
               "also run each size over TLS with one certificate shared by all devices");
  app.add_flag("--skip-broker-limit", skip_broker_limit,
               "do not measure the broker's QoS 1 ceiling with outpost-bench-pub");
  CLI11_PARSE(app, argc, argv);
  for (auto n : sizes) {
    if (n <= baseline || n > 50'000) Die("--sizes: each must be in (baseline, 50000]");
  }

  // Descriptors: one per device here and one per device in the broker (a child: inherits it).
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);

  outpost::testing::MosquittoOptions mo;
  mo.extra_config = {"max_inflight_messages 10000", "max_queued_messages 1000000",
                     "max_connections -1"};
  auto broker = outpost::testing::MosquittoProcess::Start(mo);
  if (!broker.ok()) Die(broker.status().ToString());
  const std::string address = "127.0.0.1:" + std::to_string((*broker)->port());
  outpost::testing::TempDir dir("node-bench");
  std::printf("node_bench: Mosquitto on %s, fd limit %llu, %.0f s per size, ramp asked %.0f/s\n",
              address.c_str(), static_cast<unsigned long long>(rl.rlim_cur), duration_s, ramp);

  double broker_limit = 0;
  if (!skip_broker_limit) {
    int code = 0;
    json j = RunChild({pub_bin, "--port", std::to_string((*broker)->port()), "--devices", "1000",
                       "--qos", "1", "--count", "300000", "--duration", "20", "--json"},
                      dir.File("bench-pub.log"), 120, &code);
    broker_limit = j.value("rate_per_s", 0.0);
    std::printf(
        "broker QoS 1 ceiling (outpost-bench-pub, 8 connections, as fast as possible): "
        "%.0f readings/s\n",
        broker_limit);
  }

  // TLS: the site's PKI and one certificate per device (ids node-00000, ... as outpost-node
  // names them), a broker loading the generated conf.d file (TLS, identities, ACL) and, for
  // --tls-shared, one more with a TLS listener that takes any certificate of the site's CA.
  std::string pki, tls_address, shared_address;
  std::unique_ptr<ChildProcess> tls_broker, shared_broker;
  if (tls || tls_shared) {
    std::uint32_t most = baseline;
    for (auto n : sizes) most = std::max(most, n);
    ::chmod(dir.path().c_str(), 0755);  // Mosquitto drops to its own user when started as root
    pki = dir.File("pki");
    auto p1 = outpost::testing::PickFreePort();
    auto p2 = outpost::testing::PickFreePort();
    auto p3 = outpost::testing::PickFreePort();
    if (!p1.ok() || !p2.ok() || !p3.ok() || *p1 == *p2 || *p2 == *p3 || *p1 == *p3) {
      Die("no free ports");
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto provision = [&](std::vector<std::string> args) {
      args.insert(args.begin(), {provision_bin, "--dir", pki});
      ChildProcessOptions co;
      co.argv = args;
      co.log_path = dir.File("provision.log");
      auto p = ChildProcess::Start(co);
      if (!p.ok()) Die(p.status().ToString());
      auto rc = (*p)->Wait(std::chrono::seconds(600));
      if (!rc.ok() || *rc != 0) Die("outpost-provision failed: " + (*p)->log());
    };
    provision({"init", "--port", std::to_string(*p1), "--control-port", std::to_string(*p2)});
    provision({"device", "add", "--count", std::to_string(most), "--prefix", "node-", "--first",
               "0", "--digits", "5"});
    std::printf("outpost-provision: init and %u devices in %.1f s\n", most,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    const std::string limits =
        "max_inflight_messages 10000\nmax_queued_messages 1000000\nmax_connections -1\n"
        "persistence false\n";
    if (tls) {
      ::mkdir(dir.File("conf.d").c_str(), 0755);
      if (::symlink((pki + "/broker/outpost.conf").c_str(),
                    dir.File("conf.d/outpost.conf").c_str()) != 0) {
        Die("symlink conf.d");
      }
      std::ofstream(dir.File("mosquitto-tls.conf"))
          << limits << "include_dir " << dir.File("conf.d") << "\n";
      tls_broker = StartBroker(dir.File("mosquitto-tls.conf"), dir.File("broker-tls.log"), *p1);
      tls_address = "127.0.0.1:" + std::to_string(*p1);
    }
    if (tls_shared) {
      std::ofstream(dir.File("mosquitto-shared.conf"))
          << limits << "listener " << *p3 << " 127.0.0.1\nallow_anonymous true\n"
          << "tls_version tlsv1.2\ncafile " << pki << "/broker/ca.crt\ncertfile " << pki
          << "/broker/broker.crt\nkeyfile " << pki << "/broker/broker.key\n"
          << "require_certificate true\n";
      shared_broker =
          StartBroker(dir.File("mosquitto-shared.conf"), dir.File("broker-shared.log"), *p3);
      shared_address = "127.0.0.1:" + std::to_string(*p3);
    }
  }

  // mode: "tcp", "tls" (per-device certificates) or "tls-shared".
  auto run = [&](std::uint32_t n, double dur, const std::string& mode) {
    const double cpu0 = ChildCpuSeconds();
    int code = 0;
    std::vector<std::string> extra;
    std::string at = address;
    if (mode == "tls") {
      at = tls_address;
      extra = {"--tls", "--ca", pki + "/broker/ca.crt", "--cert-dir", pki + "/devices"};
    } else if (mode == "tls-shared") {
      at = shared_address;
      extra = {"--tls",
               "--ca",
               pki + "/broker/ca.crt",
               "--cert",
               pki + "/devices/node-00000/device.crt",
               "--key",
               pki + "/devices/node-00000/device.key"};
    }
    std::vector<std::string> args = {node_bin,
                                     "--broker",
                                     at,
                                     "--devices",
                                     std::to_string(n),
                                     "--interval",
                                     "1",
                                     "--duration",
                                     std::to_string(dur),
                                     "--ramp",
                                     std::to_string(ramp),
                                     "--boot-delay-max",
                                     "0",
                                     "--progress",
                                     "0",
                                     "--json",
                                     "--seed",
                                     "5",
                                     "--drain-timeout",
                                     "20"};
    args.insert(args.end(), extra.begin(), extra.end());
    json j = RunChild(args, dir.File("node-" + mode + "-" + std::to_string(n) + ".log"),
                      static_cast<int>(dur) + 180, &code);
    j["cpu_s"] = ChildCpuSeconds() - cpu0;
    j["exit_code"] = code;
    return j;
  };

  std::vector<std::string> modes = {"tcp"};
  if (tls) modes.push_back("tls");
  if (tls_shared) modes.push_back("tls-shared");
  std::map<std::string, double> base_rss_of;
  for (const std::string& m : modes) {
    json base = run(baseline, 5, m);
    base_rss_of[m] = base["rss_bytes"].get<double>();
    std::printf("baseline %u devices (%s): RSS %.1f MiB, exit %d\n", baseline, m.c_str(),
                base_rss_of[m] / 1048576.0, base["exit_code"].get<int>());
  }
  std::printf("\n%10s %8s %10s %12s %12s %8s %9s %9s %12s %10s %9s %6s\n", "mode", "devices",
              "ramp/s", "offered/s", "acked/s", "ratio", "p50 ms", "p99 ms", "RSS/device", "CPU/1k",
              "of broker", "exit");
  double tcp_rss = 0, tcp_ramp = 0;
  for (std::uint32_t n : sizes)
    for (const std::string& mode : modes) {
      const double base_rss = base_rss_of[mode];
      json j = run(n, duration_s, mode);
      const double ramp_s = j["all_connected_ms"].get<double>() / 1000.0;
      const double ramp_rate = ramp_s > 0 ? n / ramp_s : 0;
      // Device i starts at i/ramp s and samples every second after its start until the end of the
      // sampling period: what a fleet that keeps its schedule offers.
      double ideal = 0;
      for (std::uint32_t i = 0; i < n; ++i) ideal += std::floor(duration_s - i / ramp);
      const double acked = j["acked"].get<double>();
      const double acked_per_s = acked / duration_s;
      const double rss_per_device = (j["rss_bytes"].get<double>() - base_rss) / (n - baseline);
      const double cpu_per_k = j["cpu_s"].get<double>() / (acked / 1000.0);
      std::printf(
          "%10s %8u %10.0f %12.0f %12.0f %8.3f %9" PRId64 " %9" PRId64
          " %9.1f KiB %8.1f ms %9s %6d\n",
          mode.c_str(), n, ramp_rate, static_cast<double>(n), acked_per_s, acked / ideal,
          j["latency_ms"]["p50"].get<std::int64_t>(), j["latency_ms"]["p99"].get<std::int64_t>(),
          rss_per_device / 1024.0, cpu_per_k * 1000.0,
          broker_limit > 0
              ? (std::to_string(static_cast<int>(100 * acked_per_s / broker_limit)) + " %").c_str()
              : "-",
          j["exit_code"].get<int>());
      if (mode == "tcp") {
        tcp_rss = rss_per_device;
        tcp_ramp = ramp_rate;
      } else if (tcp_rss > 0 && tcp_ramp > 0) {
        std::printf(
            "           %s / tcp: RSS per device %.2fx (+%.1f KiB), ramp %.2fx (limit: <= 40 KiB "
            "per TLS device: %s)\n",
            mode.c_str(), rss_per_device / tcp_rss, (rss_per_device - tcp_rss) / 1024.0,
            ramp_rate / tcp_ramp, rss_per_device <= 40 * 1024 ? "met" : "missed");
      }
      std::printf("         summary: %s\n", j.dump().c_str());
      if (j["exit_code"].get<int>() != 0) {
        dir.Keep();
        std::printf("         exit %d: log kept in %s\n", j["exit_code"].get<int>(),
                    dir.File("node-" + mode + "-" + std::to_string(n) + ".log").c_str());
      }
      std::fflush(stdout);
    }
  return 0;
}
