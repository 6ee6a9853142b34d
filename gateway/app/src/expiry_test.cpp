// Days left of real PEM files made with the provisioning library (a CA, a client certificate, a
// CRL) and of a real registry file, and the pki_expiry alerts: raised once under the alert days,
// critical in the last week, cleared once renewed or no longer configured, not raised again
// after a restart that restored them.
#include "expiry.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "outpost/base/file.h"
#include "outpost/gateway/store/store.h"
#include "outpost/provision/pki.h"
#include "outpost/provision/registry_db.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/temp_dir.h"

namespace outpost::gateway::app {
namespace {

constexpr std::int64_t kNow = 1'800'000'000;  // unix s
constexpr std::int64_t kDay = 86'400;

class ExpiryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto key = provision::GenerateP256Key();
    ASSERT_TRUE(key.ok());
    ca_key_ = std::move(*key);
    auto ca = provision::IssueCert(
        {"Test CA", provision::CertKind::kCa, {}, {}, kNow - kDay, kNow + 100 * kDay},
        ca_key_.get(), ca_key_.get(), nullptr);
    ASSERT_TRUE(ca.ok());
    ca_ = std::move(*ca);
    ASSERT_TRUE(
        provision::WriteFileAtomic(tmp_.File("ca.crt"), provision::CertPem(ca_.get()), 0644).ok());
    tls_.ca_file = tmp_.File("ca.crt");
  }

  // A client certificate valid for `days` from kNow (negative: expired).
  std::string Cert(const std::string& name, std::int64_t days) {
    auto key = provision::GenerateP256Key();
    auto cert = provision::IssueCert(
        {name, provision::CertKind::kClient, {}, {}, kNow - 200 * kDay, kNow + days * kDay},
        key->get(), ca_key_.get(), ca_.get());
    EXPECT_TRUE(cert.ok());
    const std::string path = tmp_.File(name + ".crt");
    EXPECT_TRUE(provision::WriteFileAtomic(path, provision::CertPem(cert->get()), 0644).ok());
    return path;
  }
  std::string Crl(std::int64_t days) {
    auto pem = provision::MakeCrlPem(ca_.get(), ca_key_.get(), {}, kNow - kDay, kNow + days * kDay);
    EXPECT_TRUE(pem.ok());
    const std::string path = tmp_.File("crl.pem");
    EXPECT_TRUE(provision::WriteFileAtomic(path, *pem, 0644).ok());
    return path;
  }

  testing::TempDir tmp_{"outpost-expiry"};
  provision::Key ca_key_;
  provision::Cert ca_;
  config::TlsConfig tls_;
};

const ExpiryItem* Find(const std::vector<ExpiryItem>& items, const std::string& kind) {
  for (const ExpiryItem& i : items) {
    if (i.kind == kind) return &i;
  }
  return nullptr;
}

// With rows in the store's device_certificates (outpost-provision's copy of devices.tsv), the
// gateway needs no registry_file; `pending` and `revoked` certificates do not count.
TEST_F(ExpiryTest, TheDevicesDaysLeftComeFromTheStoresTableWithoutRegistryFile) {
  const std::string db = tmp_.File("gateway.db");
  {
    gateway::store::Options o;
    o.path = db;
    auto store = gateway::store::Store::Open(o);
    OUTPOST_ASSERT_OK(store.status());
  }
  EXPECT_EQ(Find(ReadExpiry(tls_, kNow, db), "devices"), nullptr) << "an empty table: no item";
  const std::string tsv = tmp_.File("site-devices.tsv");
  std::ofstream(tsv) << "# id\tserial\tsha256\tnot_after_unix\tstate\tmode\n"
                     << "old\t01\tAA\t" << kNow + 2 * kDay << "\trevoked\tnative\n"
                     << "n1\t02\tBB\t" << kNow + 25 * kDay << "\tactive\tnative\n"
                     << "n1\t05\tEE\t" << kNow + 1 * kDay << "\tpending\tnative\n"
                     << "n2\t03\tCC\t" << kNow + 20 * kDay + 5 << "\tactive\tseed\n";
  OUTPOST_ASSERT_OK(provision::SyncRegistryToGatewayDb(db, tsv, kNow * 1000).status());
  tls_.registry_file = tmp_.File("stale.tsv");  // the fallback, not read while the table has rows
  const auto items = ReadExpiry(tls_, kNow, db);
  const ExpiryItem* d = Find(items, "devices");
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(d->error.empty()) << d->error;
  EXPECT_EQ(d->path, db);
  EXPECT_EQ(d->device_id, "n2");
  EXPECT_EQ(d->DaysLeft(kNow), 20);
  EXPECT_EQ(d->devices, 2u);
  EXPECT_EQ(d->devices_soon, 2u);
  const nlohmann::json j = ExpiryJson(items, kNow, 30);
  EXPECT_EQ(j["devices"]["first"], "n2");
  EXPECT_EQ(j["devices"]["active"], 2);
}

TEST_F(ExpiryTest, ReadsTheDaysLeftOfEachFileAndTheFirstActiveDevice) {
  tls_.cert_file = Cert("gateway", 10);
  tls_.crl_file = Crl(40);
  tls_.registry_file = tmp_.File("devices.tsv");
  std::ofstream(tls_.registry_file) << "# id\tserial\tsha256\tnot_after_unix\tstate\tmode\n"
                                    << "old\t01\tAA\t" << kNow + 2 * kDay << "\trevoked\tnative\n"
                                    << "n1\t02\tBB\t" << kNow + 25 * kDay << "\tactive\tnative\n"
                                    << "n2\t03\tCC\t" << kNow + 20 * kDay + 5 << "\tactive\tseed\n"
                                    << "n3\t04\tDD\t" << kNow + 400 * kDay << "\tactive\tnative\n";
  const auto items = ReadExpiry(tls_, kNow);
  ASSERT_EQ(items.size(), 4u);
  EXPECT_EQ(Find(items, "certificate")->DaysLeft(kNow), 10);
  EXPECT_EQ(Find(items, "ca")->DaysLeft(kNow), 100);
  EXPECT_EQ(Find(items, "crl")->DaysLeft(kNow), 40);
  const ExpiryItem* d = Find(items, "devices");
  EXPECT_EQ(d->device_id, "n2") << "the revoked one does not count";
  EXPECT_EQ(d->DaysLeft(kNow), 20);
  EXPECT_EQ(d->devices, 3u);
  EXPECT_EQ(d->devices_soon, 2u) << "n1 and n2 have fewer than 30 days";

  const nlohmann::json j = ExpiryJson(items, kNow, 30);
  EXPECT_EQ(j["alert_days"], 30);
  EXPECT_EQ(j["crl"]["days_left"], 40);
  EXPECT_EQ(j["crl"]["path"], tls_.crl_file);
  EXPECT_TRUE(j["crl"]["error"].is_null());
  EXPECT_EQ(j["devices"]["first"], "n2");
  EXPECT_EQ(j["devices"]["expiring"], 2);
}

TEST_F(ExpiryTest, AnExpiredOrUnreadableFileIsReportedNotFatal) {
  tls_.cert_file = Cert("gateway", -3);
  tls_.crl_file = tmp_.File("missing.pem");
  tls_.registry_file = tls_.ca_file;  // not a registry
  const auto items = ReadExpiry(tls_, kNow);
  EXPECT_EQ(Find(items, "certificate")->DaysLeft(kNow), -3);
  const ExpiryItem* crl = Find(items, "crl");
  EXPECT_FALSE(crl->expires_unix.has_value());
  EXPECT_NE(crl->error.find("missing.pem"), std::string::npos) << crl->error;
  EXPECT_FALSE(Find(items, "devices")->error.empty());
  const nlohmann::json j = ExpiryJson(items, kNow, 30);
  EXPECT_TRUE(j["crl"]["days_left"].is_null());
  EXPECT_FALSE(j["crl"]["error"].is_null());

  ExpiryAlerts alerts("gw1", 30);
  const auto rows = alerts.Update(items, kNow * 1000);
  ASSERT_EQ(rows.size(), 1u) << "only the readable, expired certificate";
  EXPECT_EQ(rows[0].severity, "critical");
  EXPECT_NE(rows[0].message.find("has expired"), std::string::npos) << rows[0].message;
}

// A path that is not a regular file of bounded size (a FIFO no one writes, a device that never
// ends, a file larger than kMaxReadBytes) is an error on its item, read without
// blocking and without reading the file whole.
TEST_F(ExpiryTest, APipeADeviceOrAnOversizeFileIsAnErrorNotAStall) {
  const std::string fifo = tmp_.File("crl.fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  const std::string big = tmp_.File("devices.tsv");
  {
    std::ofstream f(big);
    f << "# a registry\n";
  }
  ASSERT_EQ(::truncate(big.c_str(), static_cast<off_t>(kMaxReadBytes) + 1), 0);
  tls_.cert_file = "/dev/zero";
  tls_.crl_file = fifo;
  tls_.registry_file = big;
  const auto items = ReadExpiry(tls_, kNow);
  EXPECT_NE(Find(items, "certificate")->error.find("not a regular file"), std::string::npos)
      << Find(items, "certificate")->error;
  EXPECT_NE(Find(items, "crl")->error.find("not a regular file"), std::string::npos)
      << Find(items, "crl")->error;
  EXPECT_NE(Find(items, "devices")->error.find("more than the 33554432 read here"),
            std::string::npos)
      << Find(items, "devices")->error;
  EXPECT_FALSE(Find(items, "ca")->expires_unix == std::nullopt) << "the good file still reads";
}

TEST_F(ExpiryTest, AlertsAreRaisedOnceAndClearedOnceRenewed) {
  tls_.ca_file.clear();
  tls_.crl_file = Crl(29);
  ExpiryAlerts alerts("gw1", 30);
  auto rows = alerts.Update(ReadExpiry(tls_, kNow), kNow * 1000);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].alert_id, "pki_expiry:gw1:crl");
  EXPECT_EQ(rows[0].rule, kExpiryRule);
  EXPECT_EQ(rows[0].device_id, "gw1");
  EXPECT_EQ(rows[0].metric, "crl_days_left");
  EXPECT_EQ(rows[0].severity, "warning");
  EXPECT_EQ(rows[0].value, 29);
  EXPECT_EQ(rows[0].cleared_ms, 0);
  EXPECT_NE(rows[0].message.find("refuses every client"), std::string::npos);
  EXPECT_EQ(alerts.active_count(), 1u);
  EXPECT_TRUE(alerts.Update(ReadExpiry(tls_, kNow), kNow * 1000 + 3'600'000).empty())
      << "an hour later: still active, not raised again";

  // After a restart the stored alert is restored: still under 30 days, nothing new.
  ExpiryAlerts restarted("gw1", 30);
  restarted.Restore(rows[0]);
  EXPECT_TRUE(restarted.Update(ReadExpiry(tls_, kNow), kNow * 1000).empty());

  tls_.crl_file = Crl(3650);  // re-signed
  rows = restarted.Update(ReadExpiry(tls_, kNow), kNow * 1000 + 7'200'000);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].alert_id, "pki_expiry:gw1:crl");
  EXPECT_EQ(rows[0].cleared_ms, kNow * 1000 + 7'200'000);
  EXPECT_EQ(rows[0].raised_ms, kNow * 1000) << "a clear names the raise it ends";
  EXPECT_EQ(restarted.active_count(), 0u);
}

TEST_F(ExpiryTest, TheLastWeekIsCriticalAndAnUncheckedFileClearsItsAlert) {
  tls_.ca_file.clear();
  tls_.cert_file = Cert("gateway", 6);
  ExpiryAlerts alerts("gw1", 30);
  auto rows = alerts.Update(ReadExpiry(tls_, kNow), kNow * 1000);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].severity, "critical");
  tls_.cert_file.clear();  // no longer in mqtt.tls
  rows = alerts.Update(ReadExpiry(tls_, kNow), kNow * 1000 + 1);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_NE(rows[0].cleared_ms, 0);
  EXPECT_EQ(alerts.active_count(), 0u);
}

}  // namespace
}  // namespace outpost::gateway::app
