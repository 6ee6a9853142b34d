// outpost-gateway: parse the command line and config, build the Gateway, run it.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "outpost/gateway/app/admin_cli.h"
#include "outpost/gateway/app/gateway.h"
#include "outpost/gateway/config/config.h"
#include "outpost/systemd/journal.h"

namespace {
constexpr const char* kDescription =
    "outpost-gateway: subscribes to the site's MQTT broker, validates and stores sensor readings\n"
    "in SQLite (acknowledging QoS 1 only after commit), keeps the device registry, raises and\n"
    "clears alerts, publishes its status, store-and-forwards everything to the cloud\n"
    "(cloud.api_endpoint; durable outbox, idempotent batches) and serves a REST API, a live\n"
    "event stream (SSE), /metrics and /healthz on http.listen (default 0.0.0.0:8080, behind a\n"
    "login: docs/api.md#authentication). The first start creates the user admin with a random\n"
    "password in the file admin-password next to the database. Config reference:\n"
    "docs/configuration.md";
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
  // The user and token commands (admin_cli.h): they take --config like the daemon, before or
  // after their name.
  app.fallthrough();
  app.require_subcommand(0, 1);
  CLI::App* user = app.add_subcommand("user", "manage the users who log in to the API")
                       ->require_subcommand(1, 1);
  std::string name, role, token_name;
  bool password_stdin = false;
  std::int64_t token_id = 0;
  CLI::App* user_add = user->add_subcommand("add",
                                            "add a user (the password is generated and "
                                            "printed, or read from stdin)");
  user_add->add_option("name", name, "user name: letters, digits and . _ @ -")->required();
  user_add->add_option("--role", role, "viewer, operator or admin")->required();
  user_add->add_flag("--password-stdin", password_stdin,
                     "read the password from the first line of stdin (8..256 bytes)");
  CLI::App* user_passwd = user->add_subcommand("passwd",
                                               "set a user's password (generated "
                                               "and printed, or read from stdin)");
  user_passwd->add_option("name", name, "user name")->required();
  user_passwd->add_flag("--password-stdin", password_stdin,
                        "read the password from the first line of stdin (8..256 bytes)");
  CLI::App* user_remove = user->add_subcommand("remove", "remove a user (not the last admin)");
  user_remove->add_option("name", name, "user name")->required();
  CLI::App* user_list = user->add_subcommand("list", "list the users and their roles");
  CLI::App* token = app.add_subcommand("token", "manage API tokens (Authorization: Bearer)")
                        ->require_subcommand(1, 1);
  CLI::App* token_create =
      token->add_subcommand("create", "create a token and print it once (only its hash is kept)");
  token_create->add_option("--role", role, "viewer, operator or admin")->required();
  token_create->add_option("--name", token_name, "what the token is for (shown in lists)");
  CLI::App* token_list = token->add_subcommand("list", "list the tokens (never their values)");
  CLI::App* token_revoke = token->add_subcommand("revoke", "revoke a token at once");
  token_revoke->add_option("id", token_id, "the token's id (token list)")->required();
  for (CLI::App* sub : {user, token}) sub->fallthrough();
  for (CLI::App* sub :
       {user_add, user_passwd, user_remove, user_list, token_create, token_list, token_revoke}) {
    sub->fallthrough();
  }
  app.footer(
      "Environment:\n  OUTPOST_CLOUD_API_KEY  the cloud token; wins over cloud.api_key_file and "
      "cloud.api_key\n"
      "  NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID, JOURNAL_STREAM  set by systemd: readiness,\n"
      "    watchdog pings and journal priority prefixes (docs/deployment.md)");
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
  // Under systemd: "<N>" priority prefixes for the journal instead of timestamps.
  outpost::systemd::ConfigureLogPattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  namespace cli = outpost::gateway::app::cli;
  if (*user_add)
    return cli::UserAdd(config, name, role, password_stdin, std::cin, std::cout, std::cerr);
  if (*user_passwd)
    return cli::UserPasswd(config, name, password_stdin, std::cin, std::cout, std::cerr);
  if (*user_remove) return cli::UserRemove(config, name, std::cout, std::cerr);
  if (*user_list) return cli::UserList(config, std::cout, std::cerr);
  if (*token_create) return cli::TokenCreate(config, role, token_name, std::cout, std::cerr);
  if (*token_list) return cli::TokenList(config, std::cout, std::cerr);
  if (*token_revoke) return cli::TokenRevoke(config, token_id, std::cout, std::cerr);
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
