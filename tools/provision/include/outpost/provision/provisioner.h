// Provisioner: a site's offline PKI in one folder (the CA, the broker's, the gateway's and the
// admin's certificates, one certificate per device, the CRL), the Mosquitto conf.d file and the
// ACL generated from it, and the registry of provisioned devices (DIR/devices.tsv).
// Every step is idempotent: what exists is kept and reported, never silently replaced.
// Ownership: holds the folder's path only; every call reads and writes the files. Thread: one
// call at a time per folder (no lock file in this slice). Time is an input (`now_unix`).
// Errors: kInvalidArgument (a bad id, option or input file), kFailedPrecondition (no `init` yet, a
// revoked id added again; in a batch it is skipped), kNotFound (revoking an unknown id),
// kUnavailable (I/O), kInternal. Layout, modes and rules: docs/security.md
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/provision/pki.h"
#include "outpost/provision/registry_db.h"

namespace outpost::provision {

inline constexpr std::int64_t kDaySeconds = 86'400;
inline constexpr int kMaxDevicesPerAdd = 100'000;

struct InitOptions {
  std::vector<std::string> broker_hosts;  // empty: localhost and this machine's hostname
  std::vector<std::string> broker_ips;    // empty: 127.0.0.1 and ::1
  int port = 8883;
  // The loopback-only listener through which `device revoke --cut` ends an open session; it
  // trusts only the control CA (not the site's), so no device can connect to it. 0: port + 1.
  int control_port = 0;
  std::string gateway_id = "gateway";  // the gateway's gateway.id; its CN is outpost-gateway-{id}
  std::string admin_cn = "outpost-admin";
  int ca_days = 7300;   // 20 years: the CA is offline and replacing it means re-flashing
  int cert_days = 825;  // broker, gateway and admin certificates
  int crl_days = 3650;  // next-update of the CRL (re-signed by every revoke and by `crl`)
  int message_size_limit = 65536;  // payload bytes (docs/broker.md)
};

struct AddOptions {
  std::vector<std::string> ids;
  int reload_pid = 0;  // when not 0: SIGHUP this broker process after writing the CRL and ACL
  // The self-check against the running broker, for every device this call issues with a local
  // key: docs/security.md "The self-check".
  bool check = true;
  int check_timeout_ms = 5'000;  // per device (the first one's includes waiting for the reload)
  std::string csr_path;          // sign this CSR's key instead of making one (one id only)
  int valid_days = 825;
  bool seed = false;  // may also use the seed's flat topics
  // Validity window override for tests of expiry: when not 0, not_before/not_after (unix s).
  std::int64_t not_before_unix = 0, not_after_unix = 0;
};

enum class CheckOutcome : std::uint8_t {
  kNotRun,   // --no-check, or no device was issued
  kPassed,   // every checked device's allowed publish arrived and its forbidden one did not
  kSkipped,  // nothing listens on the control port, or no device has a local key (--csr)
  kFailed,   // the check ran and failed: `check_message` says which half and the likely cause
};

struct AddResult {
  int added = 0, kept = 0, skipped = 0;
  CheckOutcome check = CheckOutcome::kNotRun;
  std::string check_message;  // why it was skipped or failed
};

struct RevokeOptions {
  int reload_pid = 0;       // when not 0: SIGHUP this broker process after writing the CRL and ACL
  bool cut = false;         // end the device's open session through the control listener
  int timeout_ms = 10'000;  // for the broker to refuse the revoked certificate, before the cut
};

// One certificate of a device: an id has one row per certificate it was issued (the active one,
// revoked ones, and while `device rotate` waits for the device, its pending next one).
struct DeviceRecord {
  std::string id, serial_hex, sha256;
  std::int64_t not_after_unix = 0;
  bool revoked = false;
  bool seed = false;
  bool pending = false;  // issued by `device rotate`, not yet acknowledged by the device
};

// "active", "revoked" or "pending": the registry's state column.
const char* StateName(const DeviceRecord& r);

struct RotateOptions {
  std::string gateway_url = "http://127.0.0.1:8080";  // the gateway's HTTP API
  std::string gateway_ca;  // https: the CA that signed the gateway's certificate (empty: system)
  std::string token;       // an API token with the operator role
  int valid_days = 825;
  int reload_pid = 0;    // when not 0: SIGHUP this broker process after writing the CRL
  int timeout_s = 600;   // for the device's two replies, in all (then exit 4: run it again)
  int ttl_s = 3'600;     // each command's time to live in the gateway's queue
  bool restart = false;  // ignore earlier attempts (the device makes a new key)
};

struct RotateResult {
  std::string old_serial, new_serial;  // new_serial empty: the device could not rotate
  std::string failure;                 // why the device's command ended without success
};

class Provisioner {
 public:
  explicit Provisioner(std::string dir) : dir_(std::move(dir)) {}

  Status Init(const InitOptions& options, std::int64_t now_unix, std::ostream& log);
  // Issues the devices, writes the registry, CRL and ACL, reloads the broker when asked, then runs
  // the self-check. A failed check is a result (the devices are provisioned), not an error.
  Result<AddResult> AddDevices(const AddOptions& options, std::int64_t now_unix, std::ostream& log);
  // Runs the self-check again for devices already provisioned (after a broker upgrade, a
  // restore or an edit of its configuration): the `ids` of `options` (none: every active,
  // unexpired device with its key in the folder) and its `check_timeout_ms`. kNotFound for an id
  // not in the registry, kFailedPrecondition for one revoked, expired, or whose key is on the
  // device (--csr).
  // The check connects with each device's certificate, so a device that is online is
  // disconnected once (the broker hands its client id over) and reconnects.
  Result<AddResult> CheckDevices(const AddOptions& options, std::int64_t now_unix,
                                 std::ostream& log) const;
  Status Revoke(const std::string& id, const RevokeOptions& options, std::int64_t now_unix,
                std::ostream& log);
  // Gives a native device its next certificate over the command channel (ADR 0011): certRequest
  // through the gateway's API, the CSR checked (self-signature, P-256, CN = id) and signed, a
  // `pending` registry row, certInstall, and once the device answers from its new session with
  // the new serial, the old certificate revoked (registry, CRL, ACL, broker reload). Re-running
  // after an interruption resumes (the commands' idempotency keys come from the id and the old
  // serial). kNotFound: not provisioned here or unknown to the gateway; kFailedPrecondition:
  // revoked, expired, a seed device, or the device rejected rotation; kDeadlineExceeded: no
  // answer within timeout_s (the commands stay queued); kInvalidArgument: the token, or a CSR
  // that does not pass. A command the device answered with a failure (it could not use the new
  // certificate, ...) is a result with `failure` set, not an error: nothing is revoked then.
  Result<RotateResult> Rotate(const std::string& id, const RotateOptions& options,
                              std::int64_t now_unix, std::ostream& log);
  // Signs the CRL again with a fresh next-update (run it from a timer; docs/security.md). With
  // `renew_within_days` > 0, only when the current CRL's next-update is that close (or it is
  // missing or unreadable); else it says how many days are left and changes nothing.
  Status ResignCrl(std::int64_t now_unix, int renew_within_days, std::ostream& log);
  Result<std::vector<DeviceRecord>> List() const;

  // Paths of what the folder holds.
  std::string BrokerConf() const { return dir_ + "/broker/outpost.conf"; }
  std::string DeviceDir(const std::string& id) const { return dir_ + "/devices/" + id; }
  std::string CaCert() const { return dir_ + "/broker/ca.crt"; }
  // The registry's copy in the gateway's database, synced after every registry write
  // (registry_db.h); its status() is the first sync error of this object's calls.
  GatewayDb& gateway_db() { return gateway_db_; }

 private:
  struct Site {
    std::string gateway_id, admin_cn, broker_host;
    int port = 0, crl_days = 0, control_port = 0;
  };
  Result<Site> LoadSite() const;
  Status WriteRegistry(const std::vector<DeviceRecord>& records) const;
  Status WriteAclAndCrl(const Site& site, const std::vector<DeviceRecord>& records,
                        std::int64_t now_unix) const;
  Status WriteDeviceFiles(const std::string& device_dir, const std::string& id, const Site& site,
                          bool seed, const std::string& ca_pem, X509* cert, EVP_PKEY* key) const;
  void SelfCheck(const Site& site, const std::vector<std::string>& ids, const AddOptions& options,
                 std::ostream& log, AddResult* result) const;

  std::string dir_;
  GatewayDb gateway_db_;
};

// The registry `device add` and `revoke` keep (DIR/devices.tsv); the gateway reads it for the
// days left of the device certificates (mqtt.tls.registry_file). kNotFound when the file is
// missing, kDataLoss for a malformed line.
Result<std::vector<DeviceRecord>> ReadRegistry(const std::string& path);

// True for an id the gateway accepts (proto::IsValidId) that is none of the site's own
// identities; else the reason.
Status CheckDeviceId(const std::string& id, const std::string& gateway_cn,
                     const std::string& admin_cn);

}  // namespace outpost::provision
