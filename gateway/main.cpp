// outpost-gateway: parse the command line and config, build the Gateway, run it.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "outpost/gateway/app/gateway.h"
#include "outpost/gateway/config/config.h"

namespace {
constexpr const char* kDescription =
    "outpost-gateway: subscribes to the site's MQTT broker, validates and stores sensor readings\n"
    "in SQLite (acknowledging QoS 1 only after commit), keeps the device registry, raises and\n"
    "clears alerts, publishes its status, store-and-forwards everything to the cloud\n"
    "(cloud.api_endpoint; durable outbox, idempotent batches) and serves a REST API, a live\n"
    "event stream (SSE), /metrics and /healthz on http.listen (default 127.0.0.1:8080;\n"
    "docs/api.md). Config reference: docs/configuration.md";
}

int main(int argc, char** argv) {
  CLI::App app{kDescription, "outpost-gateway"};
  std::string config_path;
  std::string log_level;
  bool check = false;
  app.add_option("-c,--config", config_path,
                 "YAML config file (the seed's config.yaml works unchanged); without it, "
                 "built-in defaults are used")
      ->check(CLI::ExistingFile);
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error (overrides config)");
  app.add_flag("--check-config", check,
               "validate the config, print warnings and the effective storage.max_bytes, and "
               "exit");
  app.set_version_flag("-V,--version", std::string("outpost-gateway ") + OUTPOST_VERSION);
  app.footer(
      "Environment:\n  OUTPOST_CLOUD_API_KEY  the cloud token; wins over cloud.api_key_file and "
      "cloud.api_key");
  CLI11_PARSE(app, argc, argv);

  auto loaded = config_path.empty() ? outpost::gateway::config::Parse("", "(defaults)")
                                    : outpost::gateway::config::LoadFile(config_path);
  if (!loaded.ok()) {
    std::fprintf(stderr, "outpost-gateway: %s\n", loaded.status().message().c_str());
    return 2;
  }
  outpost::gateway::config::Config config = std::move(loaded).value();
  std::string level = log_level.empty() ? config.log_level : log_level;
  auto parsed_level = spdlog::level::from_str(level);
  if (parsed_level == spdlog::level::off && level != "off") {
    std::fprintf(stderr, "outpost-gateway: unknown log level \"%s\"\n", level.c_str());
    return 2;
  }
  spdlog::set_level(parsed_level);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  if (check) {
    for (const auto& w : config.warnings) std::printf("warning: %s\n", w.c_str());
    bool max_auto = false;
    auto max_bytes = outpost::gateway::config::EffectiveMaxBytes(config.storage, &max_auto);
    if (max_bytes.ok()) {
      std::printf("storage.max_bytes: %lld%s\n", static_cast<long long>(*max_bytes),
                  *max_bytes == 0 ? " (unbounded)"
                  : max_auto      ? " (auto)"
                                  : "");
    } else {
      std::printf("warning: %s\n", max_bytes.status().message().c_str());
    }
    std::printf("%s: ok\n", config_path.empty() ? "(defaults)" : config_path.c_str());
    return 0;
  }

  outpost::gateway::app::ExitReason reason;
  {
    outpost::gateway::app::Gateway gateway(std::move(config), config_path);
    reason = gateway.Run();
  }
  if (reason == outpost::gateway::app::ExitReason::kRestart) {
    spdlog::info("restarting");
    spdlog::shutdown();
    execv("/proc/self/exe", argv);
    std::perror("outpost-gateway: restart failed: execv");
    return 1;
  }
  return reason == outpost::gateway::app::ExitReason::kFailed ? 1 : 0;
}
