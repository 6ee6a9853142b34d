#include "outpost/provision/provisioner.h"

#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <sstream>

#include "outpost/base/file.h"
#include "outpost/proto/topics.h"
#include "outpost/provision/acl.h"
#include "outpost/provision/control.h"
#include "outpost/provision/gateway_commands.h"
#include "outpost/provision/pki.h"

namespace outpost::provision {
namespace {

constexpr const char* kRegistryHeader = "# id\tserial\tsha256\tnot_after_unix\tstate\tmode\n";

Status MakeDir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) {
    return Unavailable(path + ": " + std::strerror(errno));
  }
  if (::chmod(path.c_str(), mode) != 0) return Unavailable(path + ": " + std::strerror(errno));
  return Status::Ok();
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Mosquitto drops to the `mosquitto` user: when we run as root and that group exists, the files
// the broker reads belong to root:mosquitto (keys 0640), as Debian's package expects.
void GiveToBrokerGroup(const std::string& path) {
  if (::geteuid() != 0) return;
  const group* g = ::getgrnam("mosquitto");
  if (g != nullptr) (void)::chown(path.c_str(), 0, g->gr_gid);
}

Status WriteBrokerFile(const std::string& path, const std::string& data, mode_t mode) {
  OUTPOST_RETURN_IF_ERROR(WriteFileAtomic(path, data, mode));
  GiveToBrokerGroup(path);
  return Status::Ok();
}

std::string CStringLiteralLines(const std::string& pem) {
  // A raw string literal: PEM never contains )PEM".
  return "R\"PEM(\n" + pem + ")PEM\"";
}

std::string Hostname() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

std::string GatewayCn(const std::string& gateway_id) { return "outpost-gateway-" + gateway_id; }

// SIGHUP makes Mosquitto re-read its configuration, the ACL and the CRL (the pid: its pid file).
Status ReloadBroker(int pid, std::ostream& log) {
  if (pid == 0) {
    log << "reload the broker (SIGHUP) to apply\n";
    return Status::Ok();
  }
  if (::kill(pid, SIGHUP) != 0) {
    return Unavailable("SIGHUP to the broker (pid " + std::to_string(pid) +
                       "): " + std::strerror(errno));
  }
  log << "sent SIGHUP to the broker (pid " << pid << ")\n";
  return Status::Ok();
}

// The row `id` is known by: its active certificate, else its latest revoked one; nullptr when
// it has none. A pending row (a rotation in flight) is never the current one.
DeviceRecord* CurrentRow(std::vector<DeviceRecord>& records, const std::string& id) {
  DeviceRecord* found = nullptr;
  for (DeviceRecord& r : records) {
    if (r.id != id || r.pending) continue;
    if (!r.revoked) return &r;
    found = &r;
  }
  return found;
}

std::string RandomHex(std::size_t bytes) {
  std::random_device rd;
  static const char* const kDigits = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < bytes; ++i) {
    const unsigned v = rd() & 0xFF;
    out += kDigits[v >> 4];
    out += kDigits[v & 0xF];
  }
  return out;
}

}  // namespace

Status CheckDeviceId(const std::string& id, const std::string& gateway_cn,
                     const std::string& admin_cn) {
  if (!proto::IsValidId(id)) {
    return InvalidArgument("bad device id '" + id + "': 1.." + std::to_string(proto::kMaxIdBytes) +
                           " bytes of [A-Za-z0-9_.:-] (the gateway's rule)");
  }
  if (id == gateway_cn || id == admin_cn || id == kControlCn ||
      id.rfind("outpost-gateway-", 0) == 0) {
    return InvalidArgument("device id '" + id + "' is reserved for the gateway or the admin");
  }
  return Status::Ok();
}

Result<Provisioner::Site> Provisioner::LoadSite() const {
  auto text = ReadFile(dir_ + "/site.conf");
  if (!text.ok()) {
    return FailedPrecondition(dir_ +
                              " is not a provisioned site (run `outpost-provision init --dir " +
                              dir_ + "` first)");
  }
  Site s;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
    std::string k = line.substr(0, eq), v = line.substr(eq + 1);
    if (k == "gateway_id") s.gateway_id = v;
    if (k == "admin_cn") s.admin_cn = v;
    if (k == "broker_host") s.broker_host = v;
    if (k == "port") s.port = std::atoi(v.c_str());
    if (k == "crl_days") s.crl_days = std::atoi(v.c_str());
    if (k == "control_port") s.control_port = std::atoi(v.c_str());
  }
  if (s.gateway_id.empty() || s.admin_cn.empty() || s.port <= 0 || s.crl_days <= 0) {
    return DataLoss(dir_ + "/site.conf is incomplete");
  }
  return s;
}

Status Provisioner::Init(const InitOptions& o, std::int64_t now, std::ostream& log) {
  if (!proto::IsValidId(o.gateway_id)) {
    return InvalidArgument("bad --gateway-id '" + o.gateway_id + "' (the gateway's id rule)");
  }
  if (!proto::IsValidId(o.admin_cn)) return InvalidArgument("bad --admin-cn '" + o.admin_cn + "'");
  if (o.port < 1 || o.port > 65535) return InvalidArgument("--port must be 1..65535");
  const int control_port = o.control_port != 0 ? o.control_port : o.port + 1;
  if (control_port < 1 || control_port > 65535 || control_port == o.port) {
    return InvalidArgument("--control-port must be 1..65535 and differ from --port");
  }
  std::vector<std::string> hosts = o.broker_hosts, ips = o.broker_ips;
  if (hosts.empty()) {
    hosts.push_back("localhost");
    std::string h = Hostname();
    if (!h.empty() && h != "localhost") hosts.push_back(h);
  }
  if (ips.empty()) ips = {"127.0.0.1", "::1"};

  // The site folder's parents too (/etc/outpost when no other Outpost package made it).
  std::error_code ec;
  const std::filesystem::path parent = std::filesystem::path(dir_).parent_path();
  if (!parent.empty() && !std::filesystem::create_directories(parent, ec) && ec) {
    return Unavailable(parent.string() + ": " + ec.message());
  }
  OUTPOST_RETURN_IF_ERROR(MakeDir(dir_, 0755));
  OUTPOST_RETURN_IF_ERROR(MakeDir(dir_ + "/ca", 0700));
  OUTPOST_RETURN_IF_ERROR(MakeDir(dir_ + "/broker", 0750));
  GiveToBrokerGroup(dir_ + "/broker");
  OUTPOST_RETURN_IF_ERROR(MakeDir(dir_ + "/gateway", 0700));
  OUTPOST_RETURN_IF_ERROR(MakeDir(dir_ + "/admin", 0700));
  OUTPOST_RETURN_IF_ERROR(MakeDir(dir_ + "/control", 0700));
  OUTPOST_RETURN_IF_ERROR(MakeDir(dir_ + "/devices", 0700));

  // The site CA signs everything; the control CA only the control identity (so the control
  // listener admits nobody else). Both kept when present.
  auto load_or_make_ca = [&](const std::string& name, const std::string& cn, Key* key,
                             Cert* cert) -> Status {
    const std::string key_path = dir_ + "/ca/" + name + ".key";
    const std::string cert_path = dir_ + "/ca/" + name + ".crt";
    if (Exists(key_path) && Exists(cert_path)) {
      auto k = LoadKey(key_path);
      if (!k.ok()) return k.status();
      auto c = LoadCert(cert_path);
      if (!c.ok()) return c.status();
      *key = std::move(*k);
      *cert = std::move(*c);
      log << "kept the existing " << cn << " " << cert_path << " (serial " << SerialHex(cert->get())
          << ")\n";
      return Status::Ok();
    }
    auto k = GenerateP256Key();
    if (!k.ok()) return k.status();
    CertRequest r{cn, CertKind::kCa, {}, {}, now - 60, now + std::int64_t{o.ca_days} * kDaySeconds};
    auto c = IssueCert(r, k->get(), k->get(), nullptr);
    if (!c.ok()) return c.status();
    OUTPOST_RETURN_IF_ERROR(WriteFileAtomic(key_path, KeyPem(k->get()), 0600));
    OUTPOST_RETURN_IF_ERROR(WriteFileAtomic(cert_path, CertPem(c->get()), 0644));
    *key = std::move(*k);
    *cert = std::move(*c);
    log << "made a new " << cn << " " << cert_path << " (key " << key_path
        << ", 0600; keep it offline)\n";
    return Status::Ok();
  };
  Key ca_key, control_ca_key;
  Cert ca, control_ca;
  OUTPOST_RETURN_IF_ERROR(load_or_make_ca("ca", "Outpost site CA", &ca_key, &ca));
  OUTPOST_RETURN_IF_ERROR(
      load_or_make_ca("control-ca", "Outpost control CA", &control_ca_key, &control_ca));
  OUTPOST_RETURN_IF_ERROR(
      WriteBrokerFile(dir_ + "/broker/control-ca.crt", CertPem(control_ca.get()), 0644));
  OUTPOST_RETURN_IF_ERROR(WriteBrokerFile(CaCert(), CertPem(ca.get()), 0644));

  // One leaf per identity, kept when present.
  struct Leaf {
    std::string key_path, cert_path, cn;
    CertKind kind;
    mode_t key_mode;
    bool broker_file;
    bool control = false;  // signed by the control CA
  };
  const std::vector<Leaf> leaves = {
      {dir_ + "/broker/broker.key", dir_ + "/broker/broker.crt", hosts.front(), CertKind::kServer,
       0640, true},
      {dir_ + "/gateway/gateway.key", dir_ + "/gateway/gateway.crt", GatewayCn(o.gateway_id),
       CertKind::kClient, 0600, false},
      {dir_ + "/admin/admin.key", dir_ + "/admin/admin.crt", o.admin_cn, CertKind::kClient, 0600,
       false},
      {dir_ + "/control/control.key", dir_ + "/control/control.crt", kControlCn, CertKind::kClient,
       0600, false, true},
  };
  for (const Leaf& leaf : leaves) {
    if (Exists(leaf.key_path) && Exists(leaf.cert_path)) {
      log << "kept " << leaf.cert_path << "\n";
      continue;
    }
    auto k = GenerateP256Key();
    if (!k.ok()) return k.status();
    CertRequest r{leaf.cn, leaf.kind, {},
                  {},      now - 60,  now + std::int64_t{o.cert_days} * kDaySeconds};
    if (leaf.kind == CertKind::kServer) {
      r.dns_names = hosts;
      r.ip_addresses = ips;
    }
    auto c = leaf.control ? IssueCert(r, k->get(), control_ca_key.get(), control_ca.get())
                          : IssueCert(r, k->get(), ca_key.get(), ca.get());
    if (!c.ok()) return c.status();
    if (leaf.broker_file) {
      OUTPOST_RETURN_IF_ERROR(WriteBrokerFile(leaf.key_path, KeyPem(k->get()), leaf.key_mode));
      OUTPOST_RETURN_IF_ERROR(WriteBrokerFile(leaf.cert_path, CertPem(c->get()), 0644));
    } else {
      OUTPOST_RETURN_IF_ERROR(WriteFileAtomic(leaf.key_path, KeyPem(k->get()), leaf.key_mode));
      OUTPOST_RETURN_IF_ERROR(WriteFileAtomic(leaf.cert_path, CertPem(c->get()), 0644));
    }
    log << "made " << leaf.cert_path << " (CN=" << leaf.cn << ")\n";
  }

  Site site;
  if (auto existing = LoadSite(); existing.ok()) {
    site = *existing;
    log << "kept the site settings in " << dir_ << "/site.conf\n";
  } else {
    site = Site{o.gateway_id, o.admin_cn, hosts.front(), o.port, o.crl_days, control_port};
    std::string conf = "# outpost-provision site settings (read by device add, revoke, crl)\n";
    conf += "gateway_id=" + site.gateway_id + "\nadmin_cn=" + site.admin_cn +
            "\nbroker_host=" + site.broker_host + "\nport=" + std::to_string(site.port) +
            "\ncrl_days=" + std::to_string(site.crl_days) +
            "\ncontrol_port=" + std::to_string(site.control_port) + "\n";
    OUTPOST_RETURN_IF_ERROR(WriteFileAtomic(dir_ + "/site.conf", conf, 0644));
  }

  const std::string b = dir_ + "/broker/";
  std::string mq =
      "# Generated by outpost-provision init. Copy or link into /etc/mosquitto/conf.d/.\n"
      "# What each line is for: docs/security.md\n"
      "listener " +
      std::to_string(site.port) +
      "\n"
      "tls_version tlsv1.2\n"
      "cafile " +
      b +
      "ca.crt\n"
      "certfile " +
      b +
      "broker.crt\n"
      "keyfile " +
      b +
      "broker.key\n"
      "crlfile " +
      b +
      "crl.pem\n"
      "require_certificate true\n"
      "use_identity_as_username true\n"
      "use_username_as_clientid true\n"
      "allow_anonymous false\n"
      "acl_file " +
      b +
      "acl\n"
      "message_size_limit " +
      std::to_string(o.message_size_limit) + "\n";
  if (site.control_port != 0) {
    mq +=
        "\n# Loopback only, for `outpost-provision device revoke --cut`: trusts only the control\n"
        "# CA, and keeps the client id a client sends (a CONNECT with a revoked device's id\n"
        "# ends that device's open session). The ACL gives the control identity no device's\n"
        "# topic: it reads outpost/selfcheck/# and writes its fences (device add's self-check).\n"
        "listener " +
        std::to_string(site.control_port) +
        " 127.0.0.1\n"
        "tls_version tlsv1.2\n"
        "cafile " +
        b +
        "control-ca.crt\n"
        "certfile " +
        b +
        "broker.crt\n"
        "keyfile " +
        b +
        "broker.key\n"
        "require_certificate true\n"
        "use_identity_as_username true\n";
  }
  OUTPOST_RETURN_IF_ERROR(WriteBrokerFile(BrokerConf(), mq, 0644));
  log << "wrote " << BrokerConf() << " (listener " << site.port << ")\n";

  auto records = List();
  if (!records.ok()) return records.status();
  if (!Exists(dir_ + "/devices.tsv")) OUTPOST_RETURN_IF_ERROR(WriteRegistry({}));
  if (Exists(b + "crl.pem") && Exists(b + "acl")) {
    log << "kept the CRL and the ACL\n";
    return Status::Ok();
  }
  return WriteAclAndCrl(site, *records, now);
}

const char* StateName(const DeviceRecord& r) {
  if (r.revoked) return "revoked";
  return r.pending ? "pending" : "active";
}

Result<std::vector<DeviceRecord>> ReadRegistry(const std::string& path) {
  auto text = ReadFile(path);  // kNotFound when missing
  if (!text.ok()) return text.status();
  std::vector<DeviceRecord> out;
  std::istringstream in(*text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f;
    std::size_t start = 0;
    for (;;) {
      auto tab = line.find('\t', start);
      f.push_back(line.substr(start, tab - start));
      if (tab == std::string::npos) break;
      start = tab + 1;
    }
    char* end = nullptr;
    const long long not_after = f.size() == 6 ? std::strtoll(f[3].c_str(), &end, 10) : 0;
    if (f.size() != 6 || f[1].empty() || f[3].empty() || *end != '\0') {
      return DataLoss(path + " line " + std::to_string(n) +
                      ": expected id, serial, sha256, not_after_unix, state, mode");
    }
    if (f[4] != "active" && f[4] != "revoked" && f[4] != "pending") {
      return DataLoss(path + " line " + std::to_string(n) + ": unknown state \"" + f[4] + "\"");
    }
    out.push_back(DeviceRecord{f[0], f[1], f[2], not_after, f[4] == "revoked", f[5] == "seed",
                               f[4] == "pending"});
  }
  return out;
}

Result<std::vector<DeviceRecord>> Provisioner::List() const {
  auto site = LoadSite();
  if (!site.ok()) return site.status();
  auto records = ReadRegistry(dir_ + "/devices.tsv");
  if (records.status().code() == Code::kNotFound) return std::vector<DeviceRecord>{};
  return records;
}

Status Provisioner::WriteRegistry(const std::vector<DeviceRecord>& records) const {
  std::string s = kRegistryHeader;
  for (const DeviceRecord& r : records) {
    s += r.id + "\t" + r.serial_hex + "\t" + r.sha256 + "\t" + std::to_string(r.not_after_unix) +
         "\t" + StateName(r) + "\t" + (r.seed ? "seed" : "native") + "\n";
  }
  return WriteFileAtomic(dir_ + "/devices.tsv", s, 0644);
}

Status Provisioner::WriteAclAndCrl(const Site& site, const std::vector<DeviceRecord>& records,
                                   std::int64_t now) const {
  auto ca = LoadCert(dir_ + "/ca/ca.crt");
  if (!ca.ok()) return ca.status();
  auto ca_key = LoadKey(dir_ + "/ca/ca.key");
  if (!ca_key.ok()) return ca_key.status();
  AclInput acl{GatewayCn(site.gateway_id), site.gateway_id, site.admin_cn, {}};
  std::vector<std::string> revoked;
  for (const DeviceRecord& r : records) {
    if (r.revoked) {
      revoked.push_back(r.serial_hex);
    } else if (!r.pending) {  // a pending certificate has the same CN as the active one
      acl.devices.push_back(AclDevice{r.id, r.seed});
    }
  }
  auto crl = MakeCrlPem(ca->get(), ca_key->get(), revoked, now,
                        now + std::int64_t{site.crl_days} * kDaySeconds);
  if (!crl.ok()) return crl.status();
  OUTPOST_RETURN_IF_ERROR(WriteBrokerFile(dir_ + "/broker/crl.pem", *crl, 0644));
  return WriteBrokerFile(dir_ + "/broker/acl", BuildAcl(acl), 0640);
}

// DIR/devices/ID's files: device.crt and the ESP32's config.h (no secret); with `key`, also
// device.key, secrets.h and a .gitignore for both.
Status Provisioner::WriteDeviceFiles(const std::string& d, const std::string& id, const Site& site,
                                     bool seed, const std::string& ca_pem, X509* cert,
                                     EVP_PKEY* key) const {
  const std::string cert_pem = CertPem(cert);
  OUTPOST_RETURN_IF_ERROR(WriteFileAtomic(d + "/device.crt", cert_pem, 0644));
  std::string config =
      "// Generated by outpost-provision for device " + id +
      ". No secret here: the private key is in secrets.h.\n"
      "// Put these values in the sketch's config.h (docs/device_setup.md).\n"
      "#pragma once\n"
      "#define DEVICE_ID \"" +
      id +
      "\"\n"
      "#define AWS_IOT_ENDPOINT \"" +
      site.broker_host +
      "\"\n"
      "#define MQTT_PORT " +
      std::to_string(site.port) +
      "\n"
      "#define MQTT_TLS 1\n"
      "#define OUTPOST_NATIVE_TOPICS " +
      (seed ? "0" : "1") +
      "\n"
      "static const char AWS_CERT_CA[] = " +
      CStringLiteralLines(ca_pem) +
      ";\n"
      "static const char AWS_CERT_CRT[] = " +
      CStringLiteralLines(cert_pem) +
      ";\n"
      "// The key: AWS_CERT_PRIVATE in secrets.h, stored in NVS on the first boot.\n"
      "#define OUTPOST_KEY_IN_NVS 1\n";
  OUTPOST_RETURN_IF_ERROR(WriteFileAtomic(d + "/config.h", config, 0644));
  if (key != nullptr) {
    const std::string key_pem = KeyPem(key);
    OUTPOST_RETURN_IF_ERROR(WriteFileAtomic(d + "/device.key", key_pem, 0600));
    std::string secrets = "// Generated by outpost-provision for device " + id +
                          ". SECRET: never commit this file.\n#pragma once\n"
                          "static const char AWS_CERT_PRIVATE[] = " +
                          CStringLiteralLines(key_pem) + ";\n";
    OUTPOST_RETURN_IF_ERROR(WriteFileAtomic(d + "/secrets.h", secrets, 0600));
    OUTPOST_RETURN_IF_ERROR(WriteFileAtomic(
        d + "/.gitignore", "# the device's private key\nsecrets.h\ndevice.key\n", 0644));
  }
  return Status::Ok();
}

Result<AddResult> Provisioner::AddDevices(const AddOptions& o, std::int64_t now,
                                          std::ostream& log) {
  auto site = LoadSite();
  if (!site.ok()) return site.status();
  if (o.ids.empty()) return InvalidArgument("no device id given");
  if (o.ids.size() > static_cast<std::size_t>(kMaxDevicesPerAdd)) {
    return InvalidArgument("at most " + std::to_string(kMaxDevicesPerAdd) + " devices per add");
  }
  if (!o.csr_path.empty() && o.ids.size() != 1) {
    return InvalidArgument("--csr signs one device's request; it cannot be used with --count");
  }
  if (o.valid_days < 1 || o.valid_days > 36500) return InvalidArgument("--days must be 1..36500");
  for (const std::string& id : o.ids) {
    OUTPOST_RETURN_IF_ERROR(CheckDeviceId(id, GatewayCn(site->gateway_id), site->admin_cn));
  }
  auto records = List();
  if (!records.ok()) return records.status();
  std::map<std::string, std::size_t> by_id;            // the current row of each id
  for (std::size_t i = 0; i < records->size(); ++i) {  // as CurrentRow, in one pass
    const DeviceRecord& r = (*records)[i];
    if (r.pending) continue;
    auto [it, fresh] = by_id.try_emplace(r.id, i);
    if (!fresh && (*records)[it->second].revoked) it->second = i;
  }
  Key csr_key;
  if (!o.csr_path.empty()) {
    auto k = LoadCsrPublicKey(o.csr_path);
    if (!k.ok()) return k.status();
    csr_key = std::move(*k);
  }
  auto ca = LoadCert(dir_ + "/ca/ca.crt");
  if (!ca.ok()) return ca.status();
  auto ca_key = LoadKey(dir_ + "/ca/ca.key");
  if (!ca_key.ok()) return ca_key.status();
  const std::string ca_pem = CertPem(ca->get());

  int added = 0, kept = 0, skipped = 0;
  std::vector<std::string> new_ids;
  for (const std::string& id : o.ids) {
    auto it = by_id.find(id);
    if (it != by_id.end()) {
      const DeviceRecord& r = (*records)[it->second];
      if (r.revoked && o.ids.size() == 1) {
        return FailedPrecondition("device " + id +
                                  " was revoked; a revoked id is not provisioned again");
      }
      if (r.revoked) {  // in a batch: the others go on
        ++skipped;
        log << "skipped " << id << " (revoked; a revoked id is not provisioned again)\n";
        continue;
      }
      ++kept;
      log << "kept " << id << " (already provisioned, serial " << r.serial_hex << ")\n";
      continue;
    }
    const std::string d = DeviceDir(id);
    OUTPOST_RETURN_IF_ERROR(MakeDir(d, 0700));
    Key own_key;
    EVP_PKEY* subject = csr_key.get();
    if (subject == nullptr) {
      auto k = GenerateP256Key();
      if (!k.ok()) return k.status();
      own_key = std::move(*k);
      subject = own_key.get();
    }
    CertRequest r{id, CertKind::kClient, {},
                  {}, now - 60,          now + std::int64_t{o.valid_days} * kDaySeconds};
    if (o.not_after_unix != 0) {
      r.not_before_unix = o.not_before_unix;
      r.not_after_unix = o.not_after_unix;
    }
    auto cert = IssueCert(r, subject, ca_key->get(), ca->get());
    if (!cert.ok()) return cert.status();
    OUTPOST_RETURN_IF_ERROR(
        WriteDeviceFiles(d, id, *site, o.seed, ca_pem, cert->get(), own_key.get()));
    records->push_back(DeviceRecord{id, SerialHex(cert->get()), Sha256Fingerprint(cert->get()),
                                    NotAfterUnix(cert->get()), false, o.seed});
    by_id[id] = records->size() - 1;
    new_ids.push_back(id);
    ++added;
  }
  if (added > 0) {
    OUTPOST_RETURN_IF_ERROR(WriteRegistry(*records));
    gateway_db_.Sync(dir_, now, log);
    OUTPOST_RETURN_IF_ERROR(WriteAclAndCrl(*site, *records, now));
  }
  log << "added " << added << ", kept " << kept << ", skipped " << skipped << " revoked; " << dir_
      << "/devices.tsv has " << records->size() << " devices"
      << (added > 0 ? "; ACL regenerated" : "") << "\n";
  AddResult result{added, kept, skipped, CheckOutcome::kNotRun, ""};
  if (added > 0 || o.reload_pid != 0) OUTPOST_RETURN_IF_ERROR(ReloadBroker(o.reload_pid, log));
  if (!o.check) {
    if (added > 0) log << "self-check: not run (--no-check)\n";
  } else if (added > 0) {
    SelfCheck(*site, new_ids, o, log, &result);
  }
  return result;
}

// The self-check: does the running broker enforce the ACL just written, for these devices?
// The control identity subscribes to the reserved outpost/selfcheck/# space on the loopback
// control listener (so the check runs on the broker's machine, as --reload-pid does). Each new
// device, with its own key, publishes at QoS 1 first to SelfCheckDeniedTopic(ID), which no
// identity may write, then to SelfCheckTopic(ID), which only it may: the forbidden topic lies in
// the reserved space so that the subscriber can read it without being granted any device's
// topic, and it is never another device's topic (ids have no '/'), so a broker that lets it
// through harms nobody. After the second PUBACK the broker has handled both publishes (a denied
// one is PUBACKed too) and queued whatever it allowed to the subscriber; the subscriber then
// publishes a fence (SelfCheckFenceTopic(ID)) to itself: the broker delivers to one subscriber
// in the order it handled the publishes, so when the fence arrives, anything the device got
// through has arrived before it. No sleep, and a failure is known at once, not at a timeout.
// Payloads carry a token of this run and attempt, so stale or foreign messages do not count.
// The device connects with its own client id: it is new, its key has never left this folder,
// so no real session is taken over (devices that were kept are never checked).
void Provisioner::SelfCheck(const Site& site, const std::vector<std::string>& ids,
                            const AddOptions& o, std::ostream& log, AddResult* result) const {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto timeout = std::chrono::milliseconds(o.check_timeout_ms);
  const std::string host = "127.0.0.1";
  const std::string broker = host + ":" + std::to_string(site.port);
  auto outcome = [&](CheckOutcome c, const std::string& message) {
    result->check = c;
    result->check_message = message;
    if (c == CheckOutcome::kSkipped) log << "self-check skipped: " << message << "\n";
  };
  if (site.control_port == 0) {
    return outcome(CheckOutcome::kSkipped,
                   "this site has no control listener (run `init` again, restart the broker)");
  }
  std::vector<std::string> checked;
  for (const std::string& id : ids) {
    if (Exists(DeviceDir(id) + "/device.key")) {
      checked.push_back(id);
    } else {
      log << "self-check: " << id << " not checked: its key is on the device (--csr)\n";
    }
  }
  if (checked.empty()) return outcome(CheckOutcome::kSkipped, "no new device has a local key");
  const TlsIdentity control{CaCert(), dir_ + "/control/control.crt", dir_ + "/control/control.key"};
  const std::string control_where = host + ":" + std::to_string(site.control_port);
  auto sub = MqttTlsSession::Connect(host, static_cast<std::uint16_t>(site.control_port), control,
                                     kControlCn, Clock::now() + timeout);
  if (!sub.ok() && sub.status().code() == Code::kNotFound) {
    return outcome(CheckOutcome::kSkipped, "no broker is listening at " + control_where +
                                               " (the control listener); the devices are "
                                               "provisioned, check them once it runs");
  }
  const std::string reload_hint =
      o.reload_pid != 0 ? "it was sent SIGHUP: is pid " + std::to_string(o.reload_pid) +
                              " the broker that uses " + BrokerConf() + "?"
                        : "reload it: pass --reload-pid PID or run `systemctl reload mosquitto`";
  if (!sub.ok()) {
    return outcome(CheckOutcome::kFailed, "the control identity cannot connect to " +
                                              control_where + ": " + sub.status().message());
  }
  if (Status s = sub->Subscribe(std::string(kSelfCheckRoot) + "/#", Clock::now() + timeout);
      !s.ok()) {
    return outcome(CheckOutcome::kFailed, "the control identity cannot subscribe to " +
                                              std::string(kSelfCheckRoot) + "/#: " + s.message());
  }
  const std::string run = RandomHex(8);
  int attempt = 0;
  for (std::size_t i = 0; i < checked.size(); ++i) {
    const std::string& id = checked[i];
    const std::string d = DeviceDir(id);
    const TlsIdentity device{CaCert(), d + "/device.crt", d + "/device.key"};
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      const std::string token = run + "-" + std::to_string(++attempt);
      auto dev = MqttTlsSession::Connect(host, static_cast<std::uint16_t>(site.port), device, id,
                                         deadline);
      Status s = dev.status();
      if (s.ok()) s = dev->Publish(SelfCheckDeniedTopic(id), "denied " + token, deadline);
      if (s.ok()) s = dev->Publish(SelfCheckTopic(id), "allowed " + token, deadline);
      if (dev.ok()) dev->Disconnect();
      if (!s.ok()) {
        return outcome(CheckOutcome::kFailed,
                       id + " cannot publish to the broker at " + broker + ": " + s.message());
      }
      s = sub->Publish(SelfCheckFenceTopic(id), "fence " + token, deadline);
      bool allowed = false, denied = false, fenced = false;
      while (s.ok() && !fenced) {
        auto m = sub->NextMessage(deadline);
        s = m.status();
        if (!m.ok() || m->payload.find(token) == std::string::npos) continue;
        allowed |= m->topic == SelfCheckTopic(id);
        denied |= m->topic == SelfCheckDeniedTopic(id);
        fenced |= m->topic == SelfCheckFenceTopic(id);
      }
      if (!fenced) {
        return outcome(CheckOutcome::kFailed,
                       "the control identity's fence on " + SelfCheckFenceTopic(id) +
                           " did not come back within " + std::to_string(o.check_timeout_ms) +
                           " ms (" + s.message() +
                           "): the broker is not running the ACL generated here (" + reload_hint +
                           ")");
      }
      if (denied) {
        return outcome(CheckOutcome::kFailed,
                       "the forbidden half failed: the broker delivered " + id + "'s publish to " +
                           SelfCheckDeniedTopic(id) +
                           ", which the ACL forbids: it is not enforcing the generated ACL (is " +
                           BrokerConf() + " in its configuration, with acl_file?)");
      }
      if (allowed) break;
      // With --reload-pid the broker may not have re-read the ACL yet: SIGHUP is asynchronous.
      if (o.reload_pid != 0 && i == 0 && Clock::now() + std::chrono::milliseconds(50) < deadline) {
        ::usleep(50'000);  // polling the broker, bounded by the deadline above
        continue;
      }
      return outcome(CheckOutcome::kFailed,
                     "the allowed half failed: " + id + "'s publish to " + SelfCheckTopic(id) +
                         " did not arrive: the broker has not read the new ACL (" + reload_hint +
                         ")");
    }
  }
  sub->Disconnect();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  outcome(CheckOutcome::kPassed, "");
  log << "self-check passed against the broker at " << broker << " for " << checked.size()
      << (checked.size() == 1 ? " device" : " devices") << " in " << ms << " ms: each one's "
      << "publish to " << SelfCheckTopic("ID") << " arrived, its forbidden publish to "
      << SelfCheckDeniedTopic("ID") << " did not\n";
}

Result<AddResult> Provisioner::CheckDevices(const AddOptions& o, std::int64_t now,
                                            std::ostream& log) const {
  auto site = LoadSite();
  if (!site.ok()) return site.status();
  auto records = ReadRegistry(dir_ + "/devices.tsv");
  if (!records.ok()) return records.status();
  // Why `r` cannot be checked, or "" when it can.
  auto unfit = [&](const DeviceRecord& r) -> std::string {
    if (r.revoked) return "revoked; there is nothing to check";
    if (r.not_after_unix < now) {
      return "its certificate expired on " + FormatUtc(r.not_after_unix, "%Y-%m-%dT%H:%M:%SZ") +
             " (the broker refuses it): revoke it and add it again";
    }
    if (!Exists(DeviceDir(r.id) + "/device.key")) {
      return "its key is on the device (--csr), so the check cannot connect as it";
    }
    return "";
  };
  std::vector<std::string> ids;
  for (const DeviceRecord& r : *records) {
    if (o.ids.empty() && !r.pending && unfit(r).empty()) ids.push_back(r.id);
  }
  if (o.ids.empty() && ids.empty()) {
    return FailedPrecondition(dir_ +
                              "/devices.tsv has no active, unexpired device with its key "
                              "here");
  }
  for (const std::string& id : o.ids) {
    const DeviceRecord* r = CurrentRow(*records, id);
    if (r == nullptr) return NotFound(id + ": not in " + dir_ + "/devices.tsv");
    if (std::string why = unfit(*r); !why.empty()) return FailedPrecondition(id + ": " + why);
    ids.push_back(id);
  }
  if (o.reload_pid != 0) OUTPOST_RETURN_IF_ERROR(ReloadBroker(o.reload_pid, log));
  AddResult result;
  SelfCheck(*site, ids, o, log, &result);
  return result;
}

Status Provisioner::Revoke(const std::string& id, const RevokeOptions& o, std::int64_t now,
                           std::ostream& log) {
  auto site = LoadSite();
  if (!site.ok()) return site.status();
  if (o.cut && site->control_port == 0) {
    return FailedPrecondition(
        "this site has no control listener: run `init` again, restart the "
        "broker, then revoke with --cut");
  }
  auto records = List();
  if (!records.ok()) return records.status();
  const DeviceRecord* current = CurrentRow(*records, id);
  if (current == nullptr) return NotFound("device " + id + " is not provisioned here");
  std::string serials;  // every live certificate of the id: the active one and a pending one
  for (DeviceRecord& r : *records) {
    if (r.id != id || r.revoked) continue;
    r.revoked = true;
    serials += (serials.empty() ? "" : ", ") + r.serial_hex;
  }
  if (serials.empty()) {
    log << id << " was already revoked (serial " << current->serial_hex << ")\n";
  } else {
    OUTPOST_RETURN_IF_ERROR(WriteRegistry(*records));
    gateway_db_.Sync(dir_, now, log);
    OUTPOST_RETURN_IF_ERROR(WriteAclAndCrl(*site, *records, now));
    log << "revoked " << id << " (serial " << serials << "): CRL re-signed and ACL regenerated\n";
  }
  OUTPOST_RETURN_IF_ERROR(ReloadBroker(o.reload_pid, log));
  if (!o.cut) return Status::Ok();
  // Cut only once the broker refuses the certificate, or the device would reconnect at once.
  const std::string d = DeviceDir(id);
  const TlsIdentity device{dir_ + "/broker/ca.crt", d + "/device.crt", d + "/device.key"};
  const std::string host = "127.0.0.1";
  if (Exists(device.key_file)) {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(o.timeout_ms);
    for (;;) {
      Status s = MqttTlsConnect(host, static_cast<std::uint16_t>(site->port), device, id, 2000);
      if (!s.ok()) break;
      if (std::chrono::steady_clock::now() >= deadline) {
        return Status(Code::kDeadlineExceeded,
                      "the broker still accepts " + id + "'s certificate after " +
                          std::to_string(o.timeout_ms) + " ms: did it reload (SIGHUP)?");
      }
      ::usleep(50'000);  // polling the broker, bounded by the deadline above
    }
    log << "the broker refuses " << id << "'s certificate\n";
  }
  const TlsIdentity control{dir_ + "/broker/ca.crt", dir_ + "/control/control.crt",
                            dir_ + "/control/control.key"};
  OUTPOST_RETURN_IF_ERROR(
      MqttTlsConnect(host, static_cast<std::uint16_t>(site->control_port), control, id, 5000));
  log << "cut " << id << "'s open session (if any) through the control listener on port "
      << site->control_port << "\n";
  return Status::Ok();
}

namespace {

constexpr int kMaxAttemptsPerRun = 20;  // earlier runs' finished attempts skipped, at most

bool SameHex(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// One rotation command through the gateway, until it succeeds, fails, or `deadline`; a command
// that ended without success while this run waited for it is returned as it is. Attempt N's
// Idempotency-Key is `key_base`-N. Asked first with ?wait=0, an attempt that has already finished
// without success belongs to an earlier run (a new command is queued at first): the next attempt
// is a new command. One that finishes badly while this run waits for it is the answer.
Result<GatewayCommand> RunCommand(GatewayCommands& api, const std::string& device,
                                  const std::string& name, const std::string& body,
                                  const std::string& key_base,
                                  std::chrono::steady_clock::time_point deadline,
                                  std::ostream& log) {
  using Clock = std::chrono::steady_clock;
  for (int attempt = 1; attempt <= kMaxAttemptsPerRun; ++attempt) {
    const std::string key = key_base + "-" + std::to_string(attempt);
    std::string last_state;
    for (bool first = true;; first = false) {
      const auto left =
          std::chrono::duration_cast<std::chrono::seconds>(deadline - Clock::now()).count();
      const int wait = first ? 0 : static_cast<int>(std::clamp<std::int64_t>(left, 1, 30));
      auto c = api.Send(device, body, key, wait);
      if (c.status().code() == Code::kAlreadyExists) {
        return InvalidArgument(c.status().message() +
                               ": an earlier run of this rotation used other options (resume "
                               "with the same --ttl-s, or start over with --restart)");
      }
      if (!c.ok()) return c.status();
      if (c->transport == "seed") {
        return FailedPrecondition("the gateway hears " + device +
                                  " only on the seed's flat topics, which carry no replies: "
                                  "rotation needs the device's own topics");
      }
      if (c->state == "succeeded") return c;
      // The device core rejects every refusal; only this one means "cannot", for good.
      if (c->state == "rejected" && c->error.find("not supported") != std::string::npos) {
        return FailedPrecondition(device + " rejected " + name + ": " + c->error);
      }
      if (c->Finished()) {
        if (first) {
          log << name << ": an earlier attempt (command " << c->id << ") ended " << c->state
              << "; sending a new one\n";
          break;
        }
        return c;
      }
      if (c->state != last_state) {
        log << name << ": command " << c->id << " " << c->state
            << (c->state == "queued" ? " (the device is offline or asleep: it goes out when the "
                                       "device is back)"
                                     : "")
            << "\n";
        last_state = c->state;
      }
      if (!first && Clock::now() >= deadline) {
        return Status(Code::kDeadlineExceeded,
                      device + " has not answered " + name + " (command " + c->id + ", " +
                          c->state +
                          "); the command stays in the gateway's queue until its TTL: run the "
                          "same rotate again (without --restart) to resume");
      }
    }
  }
  return FailedPrecondition(name + ": " + std::to_string(kMaxAttemptsPerRun) +
                            " earlier attempts all failed: run rotate with --restart");
}

}  // namespace

Result<RotateResult> Provisioner::Rotate(const std::string& id, const RotateOptions& o,
                                         std::int64_t now, std::ostream& log) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto site = LoadSite();
  if (!site.ok()) return site.status();
  if (o.valid_days < 1 || o.valid_days > 36500) return InvalidArgument("--days must be 1..36500");
  if (o.timeout_s < 1 || o.timeout_s > 86'400) {
    return InvalidArgument("--timeout-s must be 1..86400");
  }
  if (o.ttl_s < 1 || o.ttl_s > 86'400) return InvalidArgument("--ttl-s must be 1..86400");
  auto records = List();
  if (!records.ok()) return records.status();
  const DeviceRecord* current = CurrentRow(*records, id);
  if (current == nullptr) return NotFound("device " + id + " is not provisioned here");
  if (current->revoked) {
    return FailedPrecondition("device " + id + " is revoked: there is no certificate to rotate");
  }
  if (current->seed) {
    return FailedPrecondition("device " + id +
                              " uses the seed's topics, which carry no replies: it cannot be "
                              "rotated over the command channel (revoke it and add a new id)");
  }
  if (current->not_after_unix < now) {
    return FailedPrecondition("device " + id + "'s certificate expired on " +
                              FormatUtc(current->not_after_unix, "%Y-%m-%d") +
                              ": the broker refuses it, so it cannot receive a new one");
  }
  const std::string old_serial = current->serial_hex;
  auto api = GatewayCommands::Make(o.gateway_url, "--gateway", o.token, o.gateway_ca);
  if (!api.ok()) return api.status();
  const auto deadline = start + std::chrono::seconds(o.timeout_s);
  // Idempotency keys: from the id and the old serial (so a second run resumes the first), at
  // most 128 characters whatever the id.
  const std::string run = o.restart ? RandomHex(8) : "";
  auto key = [&](const std::string& what) {
    return "rotate-" + Sha256Hex(id + "\n" + old_serial + "\n" + run + "\n" + what).substr(0, 32);
  };
  const std::string ttl = std::to_string(o.ttl_s);
  log << "rotating " << id << " (serial " << old_serial << ") through " << o.gateway_url << "\n";

  auto request =
      RunCommand(*api, id, "certRequest", "{\"command\":\"certRequest\",\"ttl_s\":" + ttl + "}",
                 key("certRequest"), deadline, log);
  if (!request.ok()) return request.status();
  // A command that ended without success: never delivered in time (expired, canceled) is the
  // same as no answer; a refusal or failure the device reported is a result.
  auto failed = [&](const GatewayCommand& c, const std::string& name) -> Result<RotateResult> {
    const std::string what = name + " (command " + c.id + ") ended " + c.state +
                             (c.error.empty() ? "" : ": " + c.error) + "; nothing was revoked";
    if (c.state == "expired" || c.state == "canceled") {
      return Status(Code::kDeadlineExceeded, what +
                                                 " (run rotate again, or with a longer --ttl-s "
                                                 "and --restart)");
    }
    return RotateResult{old_serial, "", what + " (run rotate again; --restart for a new key)"};
  };
  if (request->state != "succeeded") return failed(*request, "certRequest");
  auto der = Base64Decode(request->csr, 4096);
  if (!der.ok()) {
    return InvalidArgument(id +
                           "'s certRequest reply has no usable csr: " + der.status().message());
  }
  auto csr_key = CsrPublicKeyFromDer(*der, id);
  if (!csr_key.ok()) return csr_key.status();

  // The next certificate: the pending one of an earlier run when it certifies this key, else a
  // new one. An earlier pending certificate stays valid until the rotation ends: the device may
  // have committed it without its reply reaching us, so only the final step revokes it.
  const std::string d = DeviceDir(id);
  const std::string next_path = d + "/next.crt";
  Cert next;
  records = List();  // the registry may have changed while the device was asked
  if (!records.ok()) return records.status();
  if (auto c = LoadCert(next_path); c.ok() && HasPublicKey(c->get(), csr_key->get())) {
    const std::string serial = SerialHex(c->get());
    for (const DeviceRecord& r : *records) {
      if (r.id == id && r.pending && !r.revoked && r.serial_hex == serial) next = std::move(*c);
    }
  }
  if (next) {
    log << "certInstall: the pending certificate " << SerialHex(next.get())
        << " of an earlier run\n";
  } else {
    auto ca = LoadCert(dir_ + "/ca/ca.crt");
    if (!ca.ok()) return ca.status();
    auto ca_key = LoadKey(dir_ + "/ca/ca.key");
    if (!ca_key.ok()) return ca_key.status();
    CertRequest r{id, CertKind::kClient, {},
                  {}, now - 60,          now + std::int64_t{o.valid_days} * kDaySeconds};
    auto c = IssueCert(r, csr_key->get(), ca_key->get(), ca->get());
    if (!c.ok()) return c.status();
    OUTPOST_RETURN_IF_ERROR(WriteFileAtomic(next_path, CertPem(c->get()), 0644));
    records->push_back(DeviceRecord{id, SerialHex(c->get()), Sha256Fingerprint(c->get()),
                                    NotAfterUnix(c->get()), false, false, true});
    OUTPOST_RETURN_IF_ERROR(WriteRegistry(*records));
    gateway_db_.Sync(dir_, now, log);
    next = std::move(*c);
    log << "issued the next certificate " << SerialHex(next.get()) << " (pending in " << dir_
        << "/devices.tsv)\n";
  }
  const std::string new_serial = SerialHex(next.get());
  const std::string cert_der = CertDer(next.get());
  if (cert_der.empty()) return Internal("i2d_X509: cannot encode the new certificate");
  auto install = RunCommand(*api, id, "certInstall",
                            "{\"command\":\"certInstall\",\"params\":{\"cert\":\"" +
                                Base64Encode(cert_der) + "\"},\"ttl_s\":" + ttl + "}",
                            key("certInstall\n" + new_serial), deadline, log);
  if (!install.ok()) return install.status();
  if (install->state != "succeeded") return failed(*install, "certInstall");
  if (!SameHex(install->serial, new_serial)) {
    // A repeated certInstall (the gateway re-sent it after a restart) is answered as a
    // duplicate, without the serial: it proves nothing about the certificate in use.
    return RotateResult{old_serial, "",
                        "certInstall (command " + install->id + ") succeeded with serial \"" +
                            install->serial + "\", not " + new_serial +
                            ": nothing was revoked (the device may already use " + new_serial +
                            "; run rotate again with --restart)"};
  }

  // The device is connected with the new certificate: revoke every other live one of the id
  // (the old one, and any pending one of an earlier attempt), if the new row is still pending.
  records = List();
  if (!records.ok()) return records.status();
  auto fresh = std::find_if(records->begin(), records->end(), [&](const DeviceRecord& r) {
    return r.id == id && r.serial_hex == new_serial;
  });
  if (fresh == records->end() || fresh->revoked || !fresh->pending) {
    return FailedPrecondition(
        id + "'s new certificate " + new_serial +
        " is no longer pending in devices.tsv (revoked or removed while rotate waited): "
        "nothing else was changed");
  }
  std::string revoked;
  for (DeviceRecord& r : *records) {
    if (r.id != id || r.revoked) continue;
    if (r.serial_hex == new_serial) {
      r.pending = false;
    } else {
      r.revoked = true;
      revoked += (revoked.empty() ? "" : ", ") + r.serial_hex;
    }
  }
  OUTPOST_RETURN_IF_ERROR(WriteRegistry(*records));
  gateway_db_.Sync(dir_, now, log);
  OUTPOST_RETURN_IF_ERROR(WriteAclAndCrl(*site, *records, now));
  OUTPOST_RETURN_IF_ERROR(ReloadBroker(o.reload_pid, log));
  // The folder's copy: the new certificate; its key only if the folder holds it (the simulator
  // shares the folder), else an old key that loads is worthless now and goes.
  Key local_key;
  if (auto k = LoadKey(d + "/device.key"); k.ok()) {
    if (HasPublicKey(next.get(), k->get())) {
      local_key = std::move(*k);
    } else {
      ::unlink((d + "/device.key").c_str());
      ::unlink((d + "/secrets.h").c_str());
      log << "removed the old key " << d << "/device.key (the device made its own)\n";
    }
  }
  auto ca = LoadCert(dir_ + "/ca/ca.crt");
  if (!ca.ok()) return ca.status();
  OUTPOST_RETURN_IF_ERROR(
      WriteDeviceFiles(d, id, *site, false, CertPem(ca->get()), next.get(), local_key.get()));
  ::unlink(next_path.c_str());
  log << "rotated " << id << ": serial " << old_serial << " -> " << new_serial << "; revoked "
      << revoked << " (CRL re-signed, ACL regenerated) after "
      << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count()
      << " ms\n";
  return RotateResult{old_serial, new_serial, ""};
}

Status Provisioner::ResignCrl(std::int64_t now, int renew_within_days, std::ostream& log) {
  auto site = LoadSite();
  if (!site.ok()) return site.status();
  if (renew_within_days > 0) {
    auto next = CrlNextUpdateUnix(dir_ + "/broker/crl.pem");
    if (next.ok() && *next - now > std::int64_t{renew_within_days} * kDaySeconds) {
      log << "the CRL is valid for " << (*next - now) / kDaySeconds << " more days (more than "
          << renew_within_days << "): not re-signed\n";
      return Status::Ok();
    }
    if (!next.ok()) log << "the CRL cannot be read (" << next.status().message() << "): ";
  }
  auto records = List();
  if (!records.ok()) return records.status();
  OUTPOST_RETURN_IF_ERROR(WriteAclAndCrl(*site, *records, now));
  log << "CRL re-signed; next update in " << site->crl_days
      << " days (reload the broker: SIGHUP)\n";
  return Status::Ok();
}

}  // namespace outpost::provision
