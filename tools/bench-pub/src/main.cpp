// outpost-bench-pub: a fast MQTT load publisher (see publisher.h). Parses the command line, runs
// one bounded load run and prints a summary.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <cinttypes>
#include <cstdio>
#include <string>

#include "outpost/bench_pub/publisher.h"

namespace {

constexpr const char* kDescription =
    "outpost-bench-pub: a fast MQTT load publisher. N virtual devices over C connections on one\n"
    "event loop publish realistic readings (native: sensors/{id}/data with deviceId, boot, seq,\n"
    "timestamp = publish time in epoch ms; seed: sensors/data with the seed ESP32 payload whose\n"
    "timestamp is millis since start), at a drift-free --rate or as fast as the broker takes\n"
    "them. Every run is bounded by --count and/or --duration. Exit status: 0 when done (and,\n"
    "for QoS 1, every publish acknowledged by the broker), 1 otherwise, 2 for usage errors.";

// Descriptors for one connection per device plus headroom; children inherit the limit.
void RaiseFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }
}

std::string JsonEscape(const std::string& in) {
  std::string out;
  for (char ch : in) {
    if (ch == '"' || ch == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      out.push_back(' ');
    } else {
      out.push_back(ch);
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  using outpost::bench_pub::Format;
  outpost::bench_pub::PublisherOptions o;
  bool per_device = false;
  bool json = false;
  CLI::App app{kDescription, "outpost-bench-pub"};
  app.add_option("--host", o.host, "broker host")->capture_default_str();
  app.add_option("--port", o.port, "broker port")->capture_default_str();
  app.add_option("--devices", o.devices, "virtual devices")->capture_default_str();
  app.add_option("--connections", o.connections,
                 "MQTT connections the devices are spread over (default: min(devices, 8))");
  app.add_flag("--connection-per-device", per_device,
               "one connection per device, as in the field (a few thousand at most)");
  app.add_option("--count", o.count, "total readings to publish (0: until --duration)")
      ->capture_default_str();
  app.add_option("--duration", o.duration_s, "stop publishing after this many seconds (0: none)")
      ->capture_default_str();
  app.add_option("--rate", o.rate_per_s, "readings per second overall (0: as fast as possible)")
      ->capture_default_str();
  app.add_option("--qos", o.qos, "0 or 1")->capture_default_str()->check(CLI::IsMember({0, 1}));
  app.add_option("--max-inflight", o.max_inflight,
                 "QoS 1 publishes awaiting PUBACK, per connection")
      ->capture_default_str();
  std::string format = "native";
  app.add_option("--format", format,
                 "native: sensors/{id}/data, epoch-ms timestamps, boot and seq; seed: sensors/data "
                 "with the seed sketch's payload")
      ->capture_default_str()
      ->check(CLI::IsMember({"native", "seed"}));
  app.add_option("--seed", o.seed, "seed for the readings' values (same seed, same values)")
      ->capture_default_str();
  app.add_option("--id-prefix", o.id_prefix, "device ids are PREFIX00001, PREFIX00002, ...")
      ->capture_default_str();
  app.add_option("--client-prefix", o.client_prefix, "MQTT client ids are PREFIX-PID-N")
      ->capture_default_str();
  app.add_option("--drain-timeout", o.drain_timeout_s,
                 "seconds to wait after the last publish for PUBACKs / writes")
      ->capture_default_str();
  app.add_option("--connect-timeout", o.connect_timeout_s, "seconds to open every connection")
      ->capture_default_str();
  app.add_flag("--progress", o.progress, "a progress line on stderr every second");
  app.add_flag("--json", json, "print the summary as one JSON object instead");
  CLI11_PARSE(app, argc, argv);
  if (per_device) o.connections = o.devices;
  o.format = format == "seed" ? Format::kSeed : Format::kNative;

  RaiseFileLimit();
  auto result = outpost::bench_pub::RunPublisher(o);
  if (!result.ok()) {
    std::fprintf(stderr, "outpost-bench-pub: %s\n", result.status().message().c_str());
    return 2;
  }
  const outpost::bench_pub::Summary& s = *result;
  if (o.connections == 0) o.connections = s.connections;
  if (json) {
    std::printf("{\"sent\":%" PRIu64 ",\"acked\":%" PRIu64
                ",\"qos\":%d,\"devices\":%zu,"
                "\"connections\":%zu,\"elapsed_s\":%.6f,\"publish_s\":%.6f,\"rate_per_s\":%.1f,"
                "\"bytes\":%" PRIu64 ",\"first_publish_ms\":%" PRId64
                ",\"last_publish_ms\":%" PRId64 ",\"done_ms\":%" PRId64
                ",\"connect_s\":%.3f,\"max_lag_ms\":%.3f,\"ok\":%s,"
                "\"error\":\"%s\"}\n",
                s.sent, s.acked, o.qos, o.devices, s.connections, s.elapsed_s, s.publish_s,
                s.rate_per_s, s.bytes, s.first_publish_wall_ms, s.last_publish_wall_ms,
                s.done_wall_ms, s.connect_s, s.max_lag_ms, s.ok(o.qos) ? "true" : "false",
                JsonEscape(s.error).c_str());
  } else {
    std::string lag =
        o.rate_per_s > 0
            ? ", max lag " + std::to_string(static_cast<long>(s.max_lag_ms + 0.5)) + " ms"
            : "";
    std::printf("sent %" PRIu64 ", acked %" PRIu64
                " (QoS %d), %.0f readings/s, elapsed %.3f s"
                " (%zu devices, %zu connections%s)%s%s\n",
                s.sent, s.acked, o.qos, s.rate_per_s, s.elapsed_s, o.devices, s.connections,
                lag.c_str(), s.error.empty() ? "" : "; error: ", s.error.c_str());
  }
  std::fflush(stdout);
  if (!s.error.empty()) std::fprintf(stderr, "outpost-bench-pub: %s\n", s.error.c_str());
  if (o.qos == 1 && s.acked != s.sent) {
    std::fprintf(stderr,
                 "outpost-bench-pub: %" PRIu64 " of %" PRIu64
                 " QoS 1 publishes were not acknowledged\n",
                 s.sent - s.acked, s.sent);
  }
  return s.ok(o.qos) ? 0 : 1;
}
