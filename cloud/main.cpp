// outpost-cloud: parse the command line, open the database, and serve or manage tokens.
#include <malloc.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "outpost/base/clock.h"
#include "outpost/cloud/api/http_server.h"
#include "outpost/cloud/api/service.h"
#include "outpost/cloud/batch_parser.h"
#include "outpost/cloud/crypto.h"
#include "outpost/cloud/storage/open.h"
#include "outpost/systemd/journal.h"
#include "outpost/systemd/notifier.h"
#include "outpost/systemd/watchdog.h"

namespace {

using outpost::Result;
using outpost::Status;
namespace cloud = outpost::cloud;

constexpr const char* kDescription =
    "outpost-cloud: receives batches of readings, alerts and device statuses from many Outpost\n"
    "gateways (idempotent: a retried batch is stored once), stores them in SQLite (default) or\n"
    "PostgreSQL, and serves the fleet query API, /healthz and /metrics.\n"
    "Operator guide: docs/cloud.md. Wire contract: docs/formats/cloud.md";

constexpr const char* kDatabaseHelp =
    "database URL: sqlite:PATH, a bare file PATH (SQLite), or postgresql://user@host/db "
    "(libpq URI); env OUTPOST_CLOUD_DATABASE";

int Fail(const std::string& what, const Status& s) {
  std::fprintf(stderr, "outpost-cloud: %s: %s\n", what.c_str(), s.message().c_str());
  return s.code() == outpost::Code::kInvalidArgument ? 2 : 1;
}

// Opens the database and brings its schema up to date.
Result<std::unique_ptr<cloud::Storage>> OpenAndMigrate(const std::string& url, int pool_size,
                                                       bool sync_full) {
  cloud::storage::StorageOptions options;
  options.pool_size = pool_size;
  options.sqlite_sync_full = sync_full;
  auto storage = cloud::storage::OpenStorage(url, options);
  if (!storage.ok()) return storage.status();
  Status s = (*storage)->Migrate();
  if (!s.ok()) return Status(s.code(), "migrate: " + s.message());
  return storage;
}

bool SplitListen(const std::string& listen, std::string* host, int* port) {
  const std::size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  *host = listen.substr(0, colon);
  if (host->size() > 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  try {
    std::size_t used = 0;
    *port = std::stoi(listen.substr(colon + 1), &used);
    if (used != listen.size() - colon - 1) return false;
  } catch (...) {
    return false;
  }
  return *port >= 0 && *port <= 65535;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{kDescription, "outpost-cloud"};
  app.set_version_flag("-V,--version", std::string("outpost-cloud ") + OUTPOST_VERSION);
  app.require_subcommand(1);
  std::string database = cloud::storage::kDefaultDatabaseUrl;
  std::string log_level = "info";

  // serve
  CLI::App* serve = app.add_subcommand("serve", "run the HTTP API");
  std::string listen = "127.0.0.1:8080";
  std::size_t max_body_bytes = 16 * 1024 * 1024;
  std::size_t max_items = 100'000;
  cloud::api::HttpServerOptions http;
  int header_timeout_s = 10;
  int body_timeout_s = 30;
  int idle_timeout_s = 30;
  int pool_size = 4;
  std::string sync = "full";
  serve->add_option("--listen", listen, "HOST:PORT to listen on (PORT 0: pick a free port)")
      ->capture_default_str();
  serve->add_option("--database", database, kDatabaseHelp)
      ->envname("OUTPOST_CLOUD_DATABASE")
      ->capture_default_str();
  serve
      ->add_option("--max-body-bytes", max_body_bytes,
                   "largest request body accepted, counted as it arrives (413 body_too_large)")
      ->check(CLI::Range(std::size_t{1024}, std::size_t{1} << 30))
      ->capture_default_str();
  serve
      ->add_option("--max-batch-items", max_items,
                   "most readings + alerts + statuses in one batch (413)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{10'000'000}))
      ->capture_default_str();
  serve
      ->add_option("--http-threads", http.http_threads,
                   "HTTP event-loop threads (they only move bytes; requests run on --db-threads)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  auto* db_threads =
      serve
          ->add_option("--db-threads", http.db_threads,
                       "threads that run requests (every database call happens on them)")
          ->check(CLI::Range(1, 256))
          ->capture_default_str();
  serve->add_option("--threads", http.db_threads, "deprecated: the same as --db-threads")
      ->check(CLI::Range(1, 256))
      ->excludes(db_threads);
  serve
      ->add_option("--db-queue", http.db_queue,
                   "requests that may wait for a --db-threads thread; beyond, 503 overloaded "
                   "with Retry-After: 1")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1'000'000}))
      ->capture_default_str();
  serve
      ->add_option("--max-connections", http.max_connections,
                   "open connections; one more is answered 503 server_full and closed")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1'000'000}))
      ->capture_default_str();
  serve
      ->add_option("--header-timeout", header_timeout_s,
                   "seconds from a request's first byte to the end of its header (408)")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  serve
      ->add_option("--body-timeout", body_timeout_s,
                   "seconds from the end of a request's header to the end of its body (408)")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  serve
      ->add_option("--idle-timeout", idle_timeout_s,
                   "seconds a keep-alive connection may sit idle between requests")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  auto* tls_cert =
      serve->add_option("--tls-cert", http.tls_cert_file,
                        "PEM certificate chain: serve HTTPS only (with --tls-key; a reverse "
                        "proxy in front is the recommended setup, docs/cloud.md)");
  auto* tls_key =
      serve->add_option("--tls-key", http.tls_key_file, "PEM private key (with --tls-cert)");
  tls_cert->needs(tls_key);
  tls_key->needs(tls_cert);
  serve
      ->add_option("--pool-size", pool_size,
                   "database connections (PostgreSQL pool; SQLite reader connections)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  serve
      ->add_option("--sqlite-synchronous", sync,
                   "SQLite synchronous mode: full (a power cut loses no acknowledged batch) or "
                   "normal (faster; a power cut may lose the last commits)")
      ->check(CLI::IsMember({"full", "normal"}))
      ->capture_default_str();
  serve->add_option("--log-level", log_level, "trace, debug, info, warn, error, off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->capture_default_str();

  // token
  CLI::App* token = app.add_subcommand("token", "manage gateway API tokens");
  token->require_subcommand(1);
  CLI::App* create = token->add_subcommand(
      "create", "create a token for a gateway and print it (the only time it is shown)");
  std::string gateway;
  bool admin = false;
  create->add_option("--gateway", gateway, "gateway id the token belongs to")->required();
  create->add_flag("--admin", admin, "the token may read every gateway's data");
  create->add_option("--database", database, kDatabaseHelp)->envname("OUTPOST_CLOUD_DATABASE");
  CLI::App* revoke = token->add_subcommand("revoke", "revoke tokens");
  std::int64_t token_id = 0;
  auto* revoke_gw =
      revoke->add_option("--gateway", gateway, "revoke every live token of this gateway");
  auto* revoke_id = revoke->add_option("--token-id", token_id, "revoke one token by id");
  revoke_gw->excludes(revoke_id);
  revoke->add_option("--database", database, kDatabaseHelp)->envname("OUTPOST_CLOUD_DATABASE");
  CLI::App* list = token->add_subcommand("list", "list tokens (ids, gateways; never secrets)");
  list->add_option("--database", database, kDatabaseHelp)->envname("OUTPOST_CLOUD_DATABASE");

  // migrate
  CLI::App* migrate = app.add_subcommand("migrate", "create or upgrade the database schema");
  migrate->add_option("--database", database, kDatabaseHelp)->envname("OUTPOST_CLOUD_DATABASE");

  CLI11_PARSE(app, argc, argv);

  auto logger = spdlog::stderr_color_mt("outpost-cloud");
  spdlog::set_default_logger(logger);
  // Under systemd: "<N>" priority prefixes for the journal instead of timestamps.
  outpost::systemd::ConfigureLogPattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_level(spdlog::level::from_str(log_level));

  outpost::SystemClock clock;

  // A password on the command line is readable by every local user (ps, /proc/PID/cmdline).
  const char* database_env = std::getenv("OUTPOST_CLOUD_DATABASE");
  if (cloud::storage::DatabaseUrlHasPassword(database) &&
      (database_env == nullptr || database != database_env)) {
    spdlog::warn(
        "--database carries a password on the command line, where every local user can read "
        "it: put the URL in OUTPOST_CLOUD_DATABASE, or leave the password out and give it to "
        "libpq in PGPASSWORD or a ~/.pgpass file (PGPASSFILE)");
  }

  if (*migrate) {
    auto storage = OpenAndMigrate(database, 1, true);
    if (!storage.ok()) return Fail(cloud::storage::RedactDatabaseUrl(database), storage.status());
    std::printf("%s: schema up to date (%s)\n", database.c_str(), (*storage)->backend());
    return 0;
  }

  if (*token) {
    // Check the arguments before touching the database.
    if (*create && !cloud::IsValidCloudId(gateway)) {
      std::fprintf(stderr,
                   "outpost-cloud: --gateway \"%s\": must be 1..64 characters of "
                   "[A-Za-z0-9_.:-]\n",
                   gateway.c_str());
      return 2;
    }
    if (*revoke && !*revoke_gw && !*revoke_id) {
      std::fprintf(stderr, "outpost-cloud: token revoke: give --gateway GW or --token-id ID\n");
      return 2;
    }
    auto storage = OpenAndMigrate(database, 1, true);
    if (!storage.ok()) return Fail(cloud::storage::RedactDatabaseUrl(database), storage.status());
    if (*create) {
      Result<std::string> secret = cloud::GenerateToken();
      if (!secret.ok()) return Fail("token create", secret.status());
      auto rec =
          (*storage)->CreateToken(gateway, admin, cloud::Sha256Hex(*secret), clock.wall_ms());
      if (!rec.ok()) return Fail("token create", rec.status());
      std::printf("%s\n", secret->c_str());
      std::fprintf(stderr, "created token id %lld for gateway %s%s (shown once; store it now)\n",
                   static_cast<long long>(rec->id), gateway.c_str(), admin ? " (admin)" : "");
      return 0;
    }
    if (*revoke) {
      auto n = *revoke_gw ? (*storage)->RevokeGatewayTokens(gateway, clock.wall_ms())
                          : (*storage)->RevokeToken(token_id, clock.wall_ms());
      if (!n.ok()) return Fail("token revoke", n.status());
      std::printf("revoked %lld token(s)\n", static_cast<long long>(*n));
      return *n > 0 ? 0 : 3;
    }
    auto tokens = (*storage)->ListTokens();
    if (!tokens.ok()) return Fail("token list", tokens.status());
    std::printf("%-6s %-24s %-6s %-15s %s\n", "id", "gateway", "admin", "created_ms", "revoked_ms");
    for (const auto& t : *tokens) {
      std::printf("%-6lld %-24s %-6s %-15lld %s\n", static_cast<long long>(t.id),
                  t.gateway_id.c_str(), t.admin ? "yes" : "no",
                  static_cast<long long>(t.created_ms),
                  t.revoked_ms ? std::to_string(*t.revoked_ms).c_str() : "-");
    }
    return 0;
  }

  // serve
  std::string host;
  int port = 0;
  if (!SplitListen(listen, &host, &port)) {
    std::fprintf(stderr, "outpost-cloud: --listen \"%s\": expected HOST:PORT\n", listen.c_str());
    return 2;
  }
  // Request bodies and parsed batches are megabytes each: keep freed memory in the heap instead
  // of returning it to the kernel after every request (page faults were the top cost).
  mallopt(M_MMAP_THRESHOLD, 64 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
  // Block the stop signals in every thread; one thread waits for them with sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto storage = OpenAndMigrate(database, pool_size, sync == "full");
  if (!storage.ok()) return Fail(cloud::storage::RedactDatabaseUrl(database), storage.status());
  cloud::api::ServiceOptions service_options;
  service_options.max_body_bytes = max_body_bytes;
  service_options.limits.max_items = max_items;
  cloud::api::Service service(**storage, clock, service_options);
  http.host = host;
  http.port = port;
  http.max_body_bytes = max_body_bytes;
  http.header_timeout_ms = header_timeout_s * 1000LL;
  http.body_timeout_ms = body_timeout_s * 1000LL;
  http.idle_timeout_ms = idle_timeout_s * 1000LL;
  http.retry_after_s = service_options.retry_after_s;
  cloud::api::HttpServer server(service, http);
  Result<int> bound = server.Bind();
  if (!bound.ok()) return Fail("serve", bound.status());  // names the address or the TLS file

  // The service manager (packaging/systemd/outpost-cloud.service, Type=notify): ready once the
  // database is open and migrated and the listener bound. No watchdog: the cloud has no loop
  // of its own to vouch for (docs/deployment.md).
  auto notifier = outpost::systemd::Notifier::FromEnvironment();
  if (!notifier.ok()) {
    spdlog::error("service manager notifications off: {}", notifier.status().message());
    notifier = outpost::systemd::Notifier::Open("");
  }
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    spdlog::info("signal {}: stopping", sig);
    (void)(*notifier)->Notify("STOPPING=1");
    server.Stop();
  });
  spdlog::info(
      "database {} ({}), {} HTTP loop threads, {} database threads (queue {}), {} connections "
      "max, body limit {} bytes{}",
      cloud::storage::RedactDatabaseUrl(database), (*storage)->backend(), http.http_threads,
      http.db_threads, http.db_queue, http.max_connections, max_body_bytes,
      http.tls_cert_file.empty() ? "" : ", TLS");
  std::printf("outpost-cloud listening on %s://%s:%d\n",
              http.tls_cert_file.empty() ? "http" : "https", host.c_str(), *bound);
  std::fflush(stdout);
  if (Status s =
          (*notifier)->Notify("READY=1\n" + outpost::systemd::StatusLine("listening on port " +
                                                                         std::to_string(*bound)));
      !s.ok()) {
    spdlog::warn("service manager: {}", s.message());
  }
  Status run = server.Run();
  // Wake the signal thread if the server stopped on its own.
  kill(getpid(), SIGTERM);
  signal_thread.join();
  if (!run.ok()) return Fail("serve", run);
  spdlog::info("stopped");
  return 0;
}
