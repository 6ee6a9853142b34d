#include "expiry.h"

#include <set>

#include "outpost/gateway/store/device_certificates.h"
#include "outpost/provision/pki.h"
#include "outpost/provision/provisioner.h"

namespace outpost::gateway::app {
namespace {

constexpr std::int64_t kDay = 86'400;

std::string Date(std::int64_t unix_s) { return provision::FormatUtc(unix_s, "%Y-%m-%d"); }

ExpiryItem CertItem(std::string kind, const std::string& path) {
  ExpiryItem item{std::move(kind), path};
  auto cert = provision::LoadCert(path);
  if (cert.ok()) {
    item.expires_unix = provision::NotAfterUnix(cert->get());
  } else {
    item.error = cert.status().message();
  }
  return item;
}

ExpiryItem DevicesItem(const std::string& path, std::int64_t soon_unix) {
  ExpiryItem item{"devices", path};
  auto records = provision::ReadRegistry(path);
  if (!records.ok()) {
    item.error = records.status().message();
    return item;
  }
  for (const provision::DeviceRecord& r : *records) {
    if (r.revoked || r.pending) continue;  // a pending certificate is not in use yet
    ++item.devices;
    if (r.not_after_unix < soon_unix) ++item.devices_soon;
    if (!item.expires_unix || r.not_after_unix < *item.expires_unix) {
      item.expires_unix = r.not_after_unix;
      item.device_id = r.id;
    }
  }
  return item;
}

// The same from the store's device_certificates (written by outpost-provision): only `active`
// rows count (not `revoked`, nor a `pending` next certificate). nullopt when the table is empty
// or unreadable, so the caller falls back to registry_file.
std::optional<ExpiryItem> StoreDevicesItem(const std::string& store_path, std::int64_t soon_unix,
                                           std::string* error) {
  auto rows = store::ReadDeviceCertificates(store_path);
  if (!rows.ok()) {
    *error = rows.status().message();
    return std::nullopt;
  }
  if (rows->empty()) return std::nullopt;
  ExpiryItem item{"devices", store_path};
  for (const store::DeviceCertificate& r : *rows) {
    if (r.state != "active") continue;
    ++item.devices;
    if (r.not_after_unix < soon_unix) ++item.devices_soon;
    if (!item.expires_unix || r.not_after_unix < *item.expires_unix) {
      item.expires_unix = r.not_after_unix;
      item.device_id = r.device_id;
    }
  }
  return item;
}

std::string Left(std::int64_t days) {
  if (days < 0) return "has expired";
  return "expires in " + std::to_string(days) + " days";
}

std::string RaiseMessage(const ExpiryItem& item, std::int64_t days, int alert_days) {
  const std::string when = Left(days) + " (" + Date(*item.expires_unix) + ")";
  if (item.kind == "certificate") {
    return "The gateway's MQTT client certificate " + item.path + " " + when +
           ": issue it a new one before, or the broker refuses the gateway";
  }
  if (item.kind == "ca") {
    return "The CA " + item.path + " the gateway trusts " + when +
           ": no certificate it signed verifies after that";
  }
  if (item.kind == "crl") {
    return "The broker's CRL " + item.path + " " + when +
           ": the broker then refuses every client; re-sign it with `outpost-provision crl` "
           "(outpost-crl.timer does it daily)";
  }
  return std::to_string(item.devices_soon) + " of " + std::to_string(item.devices) +
         " device certificates in " + item.path + " have fewer than " + std::to_string(alert_days) +
         " days left; the first, " + item.device_id + ", " + when;
}

}  // namespace

std::int64_t ExpiryItem::DaysLeft(std::int64_t now_unix) const {
  const std::int64_t s = expires_unix.value_or(now_unix) - now_unix;
  return s >= 0 ? s / kDay : -((-s + kDay - 1) / kDay);
}

std::vector<ExpiryItem> ReadExpiry(const config::TlsConfig& tls, std::int64_t now_unix,
                                   const std::string& store_path) {
  std::vector<ExpiryItem> items;
  if (!tls.cert_file.empty()) items.push_back(CertItem("certificate", tls.cert_file));
  if (!tls.ca_file.empty()) items.push_back(CertItem("ca", tls.ca_file));
  if (!tls.crl_file.empty()) {
    ExpiryItem item{"crl", tls.crl_file};
    auto next = provision::CrlNextUpdateUnix(tls.crl_file);
    if (next.ok()) {
      item.expires_unix = *next;
    } else {
      item.error = next.status().message();
    }
    items.push_back(std::move(item));
  }
  const std::int64_t soon_unix = now_unix + std::int64_t{tls.expiry_alert_days} * kDay;
  std::string store_error;
  std::optional<ExpiryItem> from_store;
  if (!store_path.empty()) from_store = StoreDevicesItem(store_path, soon_unix, &store_error);
  if (from_store) {
    items.push_back(std::move(*from_store));
  } else if (!tls.registry_file.empty()) {
    items.push_back(DevicesItem(tls.registry_file, soon_unix));
  } else if (!store_error.empty()) {
    ExpiryItem item{"devices", store_path};
    item.error = store_error;
    items.push_back(std::move(item));
  }
  return items;
}

nlohmann::json ExpiryJson(const std::vector<ExpiryItem>& items, std::int64_t now_unix,
                          int alert_days) {
  nlohmann::json out = {{"alert_days", alert_days}};
  for (const ExpiryItem& item : items) {
    nlohmann::json j = {{"path", item.path}};
    if (item.expires_unix) {
      j["days_left"] = item.DaysLeft(now_unix);
      j["expires"] = Date(*item.expires_unix);
    } else {
      j["days_left"] = nullptr;
      j["expires"] = nullptr;
    }
    j["error"] = item.error.empty() ? nlohmann::json(nullptr) : nlohmann::json(item.error);
    if (item.kind == "devices") {
      j["active"] = item.devices;
      j["expiring"] = item.devices_soon;
      j["first"] =
          item.device_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(item.device_id);
    }
    out[item.kind] = std::move(j);
  }
  return out;
}

std::vector<model::AlertRow> ExpiryAlerts::Update(const std::vector<ExpiryItem>& items,
                                                  std::int64_t now_ms) {
  std::vector<model::AlertRow> out;
  const std::int64_t now_unix = now_ms / 1000;
  std::set<std::string> checked;
  for (const ExpiryItem& item : items) {
    const std::string id = std::string(kExpiryRule) + ":" + gateway_id_ + ":" + item.kind;
    checked.insert(id);
    if (!item.expires_unix) continue;  // unreadable: its error is in the status; state kept
    const std::int64_t days = item.DaysLeft(now_unix);
    const bool soon = days < alert_days_;
    auto active = active_.find(id);
    if (soon && active == active_.end()) {
      model::AlertRow row{id,
                          std::string(kExpiryRule),
                          gateway_id_,
                          item.kind + "_days_left",
                          days < kExpiryCriticalDays ? "critical" : "warning",
                          RaiseMessage(item, days, alert_days_),
                          static_cast<double>(days),
                          static_cast<double>(alert_days_),
                          now_ms,
                          0};
      active_[id] = row;
      out.push_back(std::move(row));
    } else if (!soon && active != active_.end()) {
      model::AlertRow row = active->second;
      active_.erase(active);
      row.cleared_ms = now_ms;
      row.severity = "info";
      row.value = static_cast<double>(days);
      row.message = item.path + " (" + item.kind + ") has " + std::to_string(days) +
                    " days left again (until " + Date(*item.expires_unix) + ")";
      out.push_back(std::move(row));
    }
  }
  for (auto it = active_.begin(); it != active_.end();) {
    if (checked.count(it->first) != 0) {
      ++it;
      continue;
    }
    model::AlertRow row = it->second;  // its file is no longer configured
    it = active_.erase(it);
    row.cleared_ms = now_ms;
    row.severity = "info";
    row.message = "No longer checked: its file is no longer in mqtt.tls";
    out.push_back(std::move(row));
  }
  return out;
}

}  // namespace outpost::gateway::app
