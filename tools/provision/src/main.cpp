// outpost-provision: a site's offline PKI, the broker's TLS config and ACL, and per-device
// certificates (provisioner.h). Parses the command line and runs one subcommand.
#include <CLI/CLI.hpp>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "outpost/base/file.h"
#include "outpost/provision/pki.h"
#include "outpost/provision/provisioner.h"
#include "outpost/provision/registry_db.h"

namespace {

constexpr std::size_t kMaxTokenFileBytes = 4096;

constexpr const char* kDescription =
    "outpost-provision: per-device identities for an Outpost site. Makes an offline EC P-256 CA,\n"
    "the broker's, gateway's and admin's certificates and a Mosquitto conf.d file (TLS 1.2+,\n"
    "client certificates required, the certificate's CN as user name and client id, a CRL and a\n"
    "generated ACL), then one certificate per device. Every command is idempotent.\n"
    "Exit status: 0 done, 1 failed (I/O, crypto, a broken registry), 2 bad usage or input\n"
    "(a bad id, a bad CSR), 3 the folder is not a site yet, a revoked id, an unknown id,\n"
    "4 revoke --cut: the broker still accepted the certificate after --timeout-ms,\n"
    "5 device add or check: the self-check against the running broker failed (the devices\n"
    "are provisioned; the message says which half failed and why).\n"
    "device rotate: 3 also for a device that rejects rotation or is unknown to the gateway,\n"
    "4 the device did not answer within --timeout-s or the command's TTL (run it again to\n"
    "resume), 5 the device answered with a failure or without the new serial (nothing revoked).\n"
    "The gateway's database: with `init --gateway-db PATH` (the package's gateway:\n"
    "/var/lib/outpost/gateway.db) device add, revoke and rotate also copy devices.tsv into its "
    "table\n"
    "device_certificates; a database missing or older than schema 8 is exit 1, with\n"
    "devices.tsv, the CRL and the ACL still written (then `sync` copies it in).\n"
    "Guide: docs/security.md";

int ExitCode(const outpost::Status& s) {
  switch (s.code()) {
    case outpost::Code::kOk:
      return 0;
    case outpost::Code::kInvalidArgument:
      return 2;
    case outpost::Code::kFailedPrecondition:
    case outpost::Code::kNotFound:
      return 3;
    case outpost::Code::kDeadlineExceeded:
      return 4;
    default:
      return 1;
  }
}

std::int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "30d", "30" (days) or "12h".
bool ParseSpan(const std::string& text, std::int64_t* seconds) {
  if (text.empty()) return false;
  std::int64_t unit = outpost::provision::kDaySeconds;
  std::string digits = text;
  if (text.back() == 'd' || text.back() == 'h') {
    unit = text.back() == 'h' ? 3600 : unit;
    digits.pop_back();
  }
  if (digits.empty() || digits.size() > 6 ||
      digits.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  *seconds = std::stoll(digits) * unit;
  return true;
}

std::string Date(std::int64_t unix_s) {
  return outpost::provision::FormatUtc(unix_s, "%Y-%m-%dT%H:%M:%SZ");
}

}  // namespace

int main(int argc, char** argv) {
  using namespace outpost::provision;
  CLI::App app{kDescription, "outpost-provision"};
  app.require_subcommand(1);
  app.fallthrough();  // --dir also after the subcommand
  std::string dir = "pki";
  app.add_option("--dir", dir, "the site's folder (made by init)")->capture_default_str();

  InitOptions init_o;
  CLI::App* init = app.add_subcommand("init",
                                      "make the CA, the broker's, gateway's and admin's "
                                      "certificates, the broker conf, CRL and ACL");
  init->add_option("--broker-host", init_o.broker_hosts,
                   "DNS names of the broker (repeatable; the first is its CN and the devices' "
                   "host; default: localhost and this hostname)");
  init->add_option("--broker-ip", init_o.broker_ips,
                   "IP addresses of the broker (repeatable; default 127.0.0.1 and ::1)");
  init->add_option("--port", init_o.port, "the broker's TLS listener port")
      ->capture_default_str()
      ->check(CLI::Range(1, 65535));
  init->add_option("--control-port", init_o.control_port,
                   "the loopback listener `device revoke --cut` uses (default: --port + 1)")
      ->check(CLI::Range(1, 65535));
  init->add_option("--gateway-id", init_o.gateway_id,
                   "the gateway's gateway.id (its certificate's CN is outpost-gateway-ID, the "
                   "client id the gateway uses)")
      ->capture_default_str();
  init->add_option("--admin-cn", init_o.admin_cn, "the admin identity's CN")->capture_default_str();
  init->add_option("--ca-days", init_o.ca_days, "the CA's validity")
      ->capture_default_str()
      ->check(CLI::Range(1, 36500));
  init->add_option("--cert-days", init_o.cert_days, "validity of the broker/gateway/admin certs")
      ->capture_default_str()
      ->check(CLI::Range(1, 36500));
  init->add_option("--crl-days", init_o.crl_days,
                   "the CRL's next-update (re-sign before it with `crl`)")
      ->capture_default_str()
      ->check(CLI::Range(1, 36500));
  init->add_option("--message-size-limit", init_o.message_size_limit,
                   "the broker's payload limit in bytes (docs/broker.md)")
      ->capture_default_str()
      ->check(CLI::Range(1, 268435455));
  std::string init_gateway_db;
  bool init_gateway_db_set = false;
  init->add_option(
          "--gateway-db", init_gateway_db,
          "the gateway's database (its storage.path; the package's: "
          "/var/lib/outpost/gateway.db): remembered in site.conf; device add, revoke and rotate "
          "then copy devices.tsv into its device_certificates table (\"\" forgets it)")
      ->each([&](const std::string&) { init_gateway_db_set = true; });
  std::string gateway_db;
  const std::string gateway_db_help =
      "the gateway's database for this command, instead of the site's (init --gateway-db)";

  CLI::App* device = app.add_subcommand("device", "add, check, revoke or rotate devices");
  device->require_subcommand(1);
  AddOptions add_o;
  std::string add_id, prefix;
  int count = 0;
  CLI::App* add = device->add_subcommand(
      "add",
      "issue a device certificate (CN=ID, clientAuth), its config.h and secrets.h, and "
      "regenerate the ACL; an id already provisioned is kept. Then the self-check against the "
      "running broker: each new device with a local key publishes, with its own certificate, to "
      "outpost/selfcheck/ID (allowed) and outpost/selfcheck/ID/denied (forbidden), and the "
      "control identity must receive the first and not the second (exit 5 otherwise); skipped "
      "when nothing listens on the control port (docs/security.md#the-self-check)");
  add->add_option("id", add_id, "the device id (1..64 of [A-Za-z0-9_.:-])");
  add->add_option("--count", count, "add N devices PREFIX001..PREFIXN instead of one")
      ->check(CLI::Range(1, kMaxDevicesPerAdd));
  add->add_option("--prefix", prefix, "id prefix for --count")->default_str("node-");
  int first = 1, digits = 0;
  add->add_option("--first", first, "with --count: the number of the first id")
      ->capture_default_str()
      ->check(CLI::Range(0, 99'999'999));
  add->add_option("--digits", digits,
                  "with --count: zero-pad numbers to this many digits (default: at least 3, "
                  "enough for the last; outpost-node's ids: --first 0 --digits 5)")
      ->check(CLI::Range(1, 9));
  add->add_option("--csr", add_o.csr_path,
                  "sign this PEM certificate request (the key stays on the device; no secrets.h)");
  add->add_option("--days", add_o.valid_days, "certificate validity")
      ->capture_default_str()
      ->check(CLI::Range(1, 36500));
  add->add_flag("--seed", add_o.seed,
                "also allow the seed's flat topics (sensors/data, devices/status, "
                "devices/commands), which cannot be bound to an identity");
  std::int64_t not_before = 0, not_after = 0;
  add->add_option("--not-before", not_before, "explicit validity start, unix seconds (testing)")
      ->group("");
  add->add_option("--not-after", not_after, "explicit validity end, unix seconds (testing)")
      ->group("");
  add->add_option("--gateway-db", gateway_db, gateway_db_help);
  add->add_option("--reload-pid", add_o.reload_pid,
                  "send SIGHUP to this broker process so it reads the new ACL and CRL (before "
                  "the self-check)");
  bool no_check = false;
  add->add_flag("--no-check", no_check,
                "skip the self-check (e.g. when the broker is not started yet on this machine)");
  add->add_option("--timeout-ms", add_o.check_timeout_ms,
                  "the self-check's limit per device (the first one's includes waiting for the "
                  "broker to reload)")
      ->capture_default_str()
      ->check(CLI::Range(100, 600'000));
  AddOptions check_o;
  CLI::App* check = device->add_subcommand(
      "check",
      "run the self-check again for provisioned devices (after a broker upgrade, a restore or "
      "a config change): each publishes with its own certificate to an allowed and a forbidden "
      "topic; exit 5 when the broker lets the forbidden one through or drops the allowed one, "
      "1 when no broker listens. A device that is online is disconnected once: the check "
      "takes its client id over (docs/security.md#the-self-check)");
  check->add_option("ids", check_o.ids,
                    "device ids (default: every active, unexpired device with its key in the site "
                    "folder)");
  check->add_option("--reload-pid", check_o.reload_pid,
                    "first send SIGHUP to this broker process so it reads the ACL and CRL");
  check->add_option("--timeout-ms", check_o.check_timeout_ms, "the limit per device")
      ->capture_default_str()
      ->check(CLI::Range(100, 600'000));
  std::string revoke_id;
  CLI::App* revoke = device->add_subcommand(
      "revoke", "add the device's serial to the CRL (re-signed) and drop it from the ACL");
  revoke->add_option("id", revoke_id, "the device id")->required();
  RevokeOptions revoke_o;
  revoke->add_option("--gateway-db", gateway_db, gateway_db_help);
  revoke->add_option("--reload-pid", revoke_o.reload_pid,
                     "send SIGHUP to this broker process so it reads the new CRL and ACL");
  revoke->add_flag("--cut", revoke_o.cut,
                   "then end the device's open session: wait until the broker refuses its "
                   "certificate, and take its client id over on the loopback control listener");
  revoke
      ->add_option("--timeout-ms", revoke_o.timeout_ms,
                   "how long --cut waits for the broker to refuse the certificate")
      ->capture_default_str()
      ->check(CLI::Range(100, 600'000));
  std::string rotate_id, token_file;
  RotateOptions rotate_o;
  CLI::App* rotate = device->add_subcommand(
      "rotate",
      "give a device its next certificate over the command channel, with no gap in readings: "
      "certRequest through the gateway's API (the device makes the new key and sends a CSR), "
      "sign it, certInstall, and once the device answers from its new session, revoke the old "
      "certificate (CRL, ACL, reload). Run it again after an interruption: it resumes "
      "(docs/security.md#rotating-a-certificate-device-rotate)");
  rotate->add_option("id", rotate_id, "the device id")->required();
  rotate->add_option("--gateway", rotate_o.gateway_url, "the gateway's HTTP API")
      ->capture_default_str();
  rotate->add_option("--gateway-ca", rotate_o.gateway_ca,
                     "for an https:// gateway: the CA of its certificate (default: the system's)");
  rotate->add_option("--token-file", token_file,
                     "a file holding an API token with the operator role (`outpost-gateway token "
                     "create --role operator`); default: the environment's OUTPOST_TOKEN");
  rotate->add_option("--days", rotate_o.valid_days, "the new certificate's validity")
      ->capture_default_str()
      ->check(CLI::Range(1, 36500));
  rotate->add_option("--reload-pid", rotate_o.reload_pid,
                     "send SIGHUP to this broker process so it reads the new CRL");
  rotate
      ->add_option("--timeout-s", rotate_o.timeout_s,
                   "how long to wait for the device's two answers (exit 4 after it: the "
                   "commands stay queued; run rotate again to resume)")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  rotate->add_option("--ttl-s", rotate_o.ttl_s, "each command's time to live in the gateway")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  rotate->add_flag("--restart", rotate_o.restart,
                   "start over instead of resuming earlier attempts (the device makes a new key)");
  rotate->add_option("--gateway-db", gateway_db, gateway_db_help);

  CLI::App* sync = app.add_subcommand(
      "sync",
      "copy devices.tsv into the gateway's database (table device_certificates) now, e.g. "
      "after an error said it was not updated");
  sync->add_option("--gateway-db", gateway_db, gateway_db_help);
  std::string expiring;
  CLI::App* list = app.add_subcommand("list", "list provisioned devices");
  list->add_option("--expiring", expiring, "only certificates expiring within this span (30d)");
  CLI::App* crl = app.add_subcommand(
      "crl", "re-sign the CRL with a fresh next-update (run it from a timer: outpost-crl.timer)");
  int renew_within = 0;
  crl->add_option("--renew-within", renew_within,
                  "only when the CRL's next-update is within this many days (for a daily timer; "
                  "default: always)")
      ->check(CLI::Range(1, 36500));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help is 0; every usage error is 2, as documented
  }

  Provisioner p(dir);
  p.gateway_db().set_override(gateway_db);
  const std::int64_t now = NowUnix();
  outpost::Status s;
  if (init->parsed()) {
    s = p.Init(init_o, now, std::cout);
    if (s.ok() && init_gateway_db_set) {
      s = SetSiteGatewayDb(dir, init_gateway_db);
      if (s.ok() && !init_gateway_db.empty()) {
        std::cout << "gateway database: " << init_gateway_db << " (in " << dir << "/site.conf)\n";
        p.gateway_db().Sync(dir, now, std::cout);
      }
    }
  } else if (add->parsed()) {
    if (count > 0) {
      if (!add_id.empty()) {
        std::cerr << "outpost-provision: give an id or --count, not both\n";
        return 2;
      }
      const int last = first + count - 1;
      const int needed = static_cast<int>(std::to_string(last).size());
      if (digits != 0 && digits < needed) {
        std::cerr << "outpost-provision: --digits " << digits << " is too few for the last id ("
                  << last << ")\n";
        return 2;
      }
      const int width = digits != 0 ? digits : std::max(3, needed);
      for (int i = first; i <= last; ++i) {
        std::string n = std::to_string(i);
        add_o.ids.push_back(prefix.empty() ? "node-" : prefix);
        add_o.ids.back() += std::string(static_cast<std::size_t>(width) - n.size(), '0') + n;
      }
    } else if (add_id.empty()) {
      std::cerr << "outpost-provision: device add needs an id or --count (see --help)\n";
      return 2;
    } else {
      add_o.ids.push_back(add_id);
    }
    add_o.not_before_unix = not_before;
    add_o.not_after_unix = not_after;
    add_o.check = !no_check;
    auto added = p.AddDevices(add_o, now, std::cout);
    s = added.status();
    if (s.ok() && added->check == CheckOutcome::kFailed) {
      if (!p.gateway_db().status().ok()) {
        std::cerr << "outpost-provision: " << p.gateway_db().status().message() << "\n";
      }
      std::cerr << "outpost-provision: self-check failed: " << added->check_message << "\n";
      return 5;
    }
  } else if (check->parsed()) {
    auto checked = p.CheckDevices(check_o, now, std::cout);
    s = checked.status();
    if (s.ok() && checked->check == CheckOutcome::kFailed) {
      std::cerr << "outpost-provision: self-check failed: " << checked->check_message << "\n";
      return 5;
    }
    if (s.ok() && checked->check == CheckOutcome::kSkipped) {
      std::cerr << "outpost-provision: nothing checked: " << checked->check_message << "\n";
      return 1;
    }
  } else if (revoke->parsed()) {
    s = p.Revoke(revoke_id, revoke_o, now, std::cout);
  } else if (rotate->parsed()) {
    if (!token_file.empty()) {
      auto token = outpost::ReadFile(token_file, kMaxTokenFileBytes);
      if (!token.ok()) {
        std::cerr << "outpost-provision: --token-file: " << token.status().message() << "\n";
        return 2;
      }
      rotate_o.token = *token;
    } else if (const char* env = std::getenv("OUTPOST_TOKEN"); env != nullptr) {
      rotate_o.token = env;
    }
    while (!rotate_o.token.empty() &&
           std::isspace(static_cast<unsigned char>(rotate_o.token.back()))) {
      rotate_o.token.pop_back();
    }
    if (rotate_o.token.empty()) {
      std::cerr << "outpost-provision: device rotate needs an operator's API token: "
                   "--token-file FILE or OUTPOST_TOKEN\n";
      return 2;
    }
    auto rotated = p.Rotate(rotate_id, rotate_o, now, std::cout);
    s = rotated.status();
    if (s.ok() && !rotated->failure.empty()) {
      std::cerr << "outpost-provision: " << rotate_id << ": " << rotated->failure << "\n";
      return 5;
    }
  } else if (sync->parsed()) {
    auto site = SiteGatewayDb(dir);
    if (!site.ok()) {
      s = outpost::FailedPrecondition(dir + " is not a provisioned site (run init first)");
    } else if (gateway_db.empty() && site->empty()) {
      s = outpost::InvalidArgument(
          "no gateway database: give --gateway-db PATH, or set it with "
          "`init --gateway-db PATH`");
    } else {
      p.gateway_db().Sync(dir, now, std::cout);
    }
  } else if (list->parsed()) {
    std::int64_t span = -1;
    if (!expiring.empty() && !ParseSpan(expiring, &span)) {
      std::cerr << "outpost-provision: --expiring '" << expiring
                << "' is not a span like 30d or 12h\n";
      return 2;
    }
    auto records = p.List();
    s = records.status();
    if (s.ok()) {
      std::cout << "id\tstate\tmode\tnot_after\tdays_left\tserial\tsha256\n";
      for (const DeviceRecord& r : *records) {
        if (span >= 0 && (r.revoked || r.pending || r.not_after_unix > now + span)) continue;
        std::cout << r.id << '\t' << StateName(r) << '\t' << (r.seed ? "seed" : "native") << '\t'
                  << Date(r.not_after_unix) << '\t' << (r.not_after_unix - now) / kDaySeconds
                  << '\t' << r.serial_hex << '\t' << r.sha256 << '\n';
      }
    }
  } else {
    s = p.ResignCrl(now, renew_within, std::cout);
  }
  if (!s.ok()) {
    std::cerr << "outpost-provision: " << s.message() << "\n";
    return ExitCode(s);
  }
  if (!p.gateway_db().status().ok()) {  // devices.tsv, the CRL and the ACL are written
    std::cerr << "outpost-provision: " << p.gateway_db().status().message() << "\n";
    return 1;
  }
  return 0;
}
