// Expiry: the days left of what the gateway's TLS depends on (its MQTT client certificate, the CA
// it trusts, the broker's CRL, the provisioned device certificates), and the `pki_expiry` alerts
// raised before any of them lapses: an expired CRL makes the broker refuse every client, an
// expired certificate refuses one. docs/security.md#days-left
// ReadExpiry does the file I/O (a few small PEM files and outpost-provision's registry; the
// gateway calls it at start and hourly). ExpiryAlerts is pure: items and time in, alert rows out.
// Thread: none of its own; ExpiryAlerts is owned by the gateway's loop thread.
// Private to gateway/app.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "outpost/gateway/config/config.h"
#include "outpost/gateway/model/rows.h"

namespace outpost::gateway::app {

inline constexpr std::string_view kExpiryRule = "pki_expiry";
// Under this many days left the alert is critical (a week to fix it), else a warning.
inline constexpr std::int64_t kExpiryCriticalDays = 7;

struct ExpiryItem {
  // "certificate" (mqtt.tls.cert_file), "ca" (ca_file), "crl" (crl_file), "devices" (the
  // earliest active device certificate in registry_file).
  std::string kind;
  std::string path;
  std::optional<std::int64_t> expires_unix;  // nullopt: unreadable, see `error`
  std::string error;
  std::string device_id;         // devices: the one that expires first
  std::size_t devices = 0;       // devices: active device certificates
  std::size_t devices_soon = 0;  // devices: of them, with fewer than the alert days left

  // Whole days left, rounded down (negative once past: -1 within the first day after).
  std::int64_t DaysLeft(std::int64_t now_unix) const;
};

// Reads what `tls` names (a kind whose file is not set is left out). The devices: from the
// store's device_certificates at `store_path` when it has rows (outpost-provision keeps it
// equal to its devices.tsv), else from tls.registry_file (a site provisioned on another
// machine); with neither, no devices item (or the store's error, when it cannot be read).
std::vector<ExpiryItem> ReadExpiry(const config::TlsConfig& tls, std::int64_t now_unix,
                                   const std::string& store_path = "");

// `pki` in the status report (and so outpost_gateway_pki_* in /metrics): per kind its days
// left, expiry date, path and error; for devices also the counts.
nlohmann::json ExpiryJson(const std::vector<ExpiryItem>& items, std::int64_t now_unix,
                          int alert_days);

class ExpiryAlerts {
 public:
  ExpiryAlerts(std::string gateway_id, int alert_days)
      : gateway_id_(std::move(gateway_id)), alert_days_(alert_days) {}

  // An active pki_expiry alert read back from the store at start.
  void Restore(const model::AlertRow& row) { active_[row.alert_id] = row; }
  // The raises (a kind newly under the alert days) and clears (a kind back above it, or no
  // longer checked) since the last call, to store and publish.
  std::vector<model::AlertRow> Update(const std::vector<ExpiryItem>& items, std::int64_t now_ms);
  std::size_t active_count() const { return active_.size(); }

 private:
  std::string gateway_id_;
  int alert_days_;
  std::map<std::string, model::AlertRow> active_;  // by alert id
};

}  // namespace outpost::gateway::app
