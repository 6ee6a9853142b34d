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
// take. Every run is bounded in devices, time and readings; loopback only. Results and the
// command: docs/benchmarks.md.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
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

}  // namespace

int main(int argc, char** argv) {
  std::string node_bin = OUTPOST_NODE_BIN, pub_bin = OUTPOST_BENCH_PUB_BIN;
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

  auto run = [&](std::uint32_t n, double dur) {
    const double cpu0 = ChildCpuSeconds();
    int code = 0;
    json j = RunChild({node_bin,
                       "--broker",
                       address,
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
                       "20"},
                      dir.File("node-" + std::to_string(n) + ".log"), static_cast<int>(dur) + 180,
                      &code);
    j["cpu_s"] = ChildCpuSeconds() - cpu0;
    j["exit_code"] = code;
    return j;
  };

  json base = run(baseline, 5);
  const double base_rss = base["rss_bytes"].get<double>();
  std::printf("baseline %u devices: RSS %.1f MiB\n\n", baseline, base_rss / 1048576.0);
  std::printf("%8s %10s %12s %12s %8s %9s %9s %12s %10s %9s %6s\n", "devices", "ramp/s",
              "offered/s", "acked/s", "ratio", "p50 ms", "p99 ms", "RSS/device", "CPU/1k",
              "of broker", "exit");
  for (std::uint32_t n : sizes) {
    json j = run(n, duration_s);
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
        "%8u %10.0f %12.0f %12.0f %8.3f %9" PRId64 " %9" PRId64 " %9.1f KiB %8.1f ms %9s %6d\n", n,
        ramp_rate, static_cast<double>(n), acked_per_s, acked / ideal,
        j["latency_ms"]["p50"].get<std::int64_t>(), j["latency_ms"]["p99"].get<std::int64_t>(),
        rss_per_device / 1024.0, cpu_per_k * 1000.0,
        broker_limit > 0
            ? (std::to_string(static_cast<int>(100 * acked_per_s / broker_limit)) + " %").c_str()
            : "-",
        j["exit_code"].get<int>());
    std::printf("         summary: %s\n", j.dump().c_str());
    if (j["exit_code"].get<int>() != 0) {
      dir.Keep();
      std::printf("         exit %d: log kept in %s\n", j["exit_code"].get<int>(),
                  dir.File("node-" + std::to_string(n) + ".log").c_str());
    }
    std::fflush(stdout);
  }
  return 0;
}
