// FileCredentials (the simulator's Credentials port) against certificates signed in the test by
// a throwaway CA (outpost-provision's OpenSSL helpers).
#include "file_credentials.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <sys/stat.h>

#include <ctime>
#include <fstream>
#include <string>

#include "outpost/provision/pki.h"
#include "outpost/testing/temp_dir.h"

namespace outpost::node::fleet {
namespace {

namespace pv = outpost::provision;

class FileCredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto k = pv::GenerateP256Key();
    ASSERT_TRUE(k.ok());
    ca_key_ = std::move(*k);
    pv::CertRequest r{"Test CA", pv::CertKind::kCa, {}, {}, Now() - 60, Now() + 86400};
    auto c = pv::IssueCert(r, ca_key_.get(), ca_key_.get(), nullptr);
    ASSERT_TRUE(c.ok());
    ca_ = std::move(*c);
    // The provisioned identity of dev-1.
    auto dk = pv::GenerateP256Key();
    ASSERT_TRUE(dk.ok());
    ::mkdir(tmp_.File("dev-1").c_str(), 0700);
    auto dc = Issue(dk->get(), "dev-1");
    std::ofstream(tmp_.File("dev-1/device.crt")) << pv::CertPem(dc.get());
    std::ofstream(tmp_.File("dev-1/device.key")) << pv::KeyPem(dk->get());
  }

  static std::int64_t Now() { return static_cast<std::int64_t>(std::time(nullptr)); }

  pv::Cert Issue(EVP_PKEY* subject, const std::string& cn) {
    pv::CertRequest r{cn, pv::CertKind::kClient, {}, {}, Now() - 60, Now() + 86400};
    auto c = pv::IssueCert(r, subject, ca_key_.get(), ca_.get());
    EXPECT_TRUE(c.ok());
    return c.ok() ? std::move(*c) : pv::Cert();
  }

  static std::string Base64Der(X509* cert) {
    const int n = i2d_X509(cert, nullptr);
    std::string der(static_cast<std::size_t>(n), '\0');
    auto* p = reinterpret_cast<unsigned char*>(der.data());
    i2d_X509(cert, &p);
    std::string b64(4 * ((der.size() + 2) / 3) + 1, '\0');
    EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                    reinterpret_cast<const unsigned char*>(der.data()), n);
    b64.pop_back();
    return b64;
  }

  static std::string SerialHexLower(X509* cert) {
    BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
    char* hex = BN_bn2hex(bn);
    std::string s(hex);
    OPENSSL_free(hex);
    BN_free(bn);
    for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (s.size() % 2 == 1) s = "0" + s;
    return s;
  }

  std::unique_ptr<FileCredentials> LoadDev() {
    auto c = FileCredentials::Load(tmp_.path(), "dev-1");
    EXPECT_TRUE(c.ok()) << c.status().message();
    return c.ok() ? std::move(*c) : nullptr;
  }

  // MakePendingKey, then the CSR parsed back; returns its public key.
  pv::Key Request(FileCredentials& c) {
    char csr[device::kMaxCsrBase64Bytes + 1];
    const char* err = c.MakePendingKey("dev-1", csr, sizeof csr);
    EXPECT_EQ(err, nullptr) << err;
    if (err != nullptr) return pv::Key();
    const std::string b64(csr);
    EXPECT_EQ(b64.find_first_of("\r\n "), std::string::npos);
    EXPECT_EQ(b64.size() % 4, 0u);
    std::string der(b64.size(), '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(der.data()),
                            reinterpret_cast<const unsigned char*>(b64.data()),
                            static_cast<int>(b64.size()));
    if (b64.size() >= 1 && b64[b64.size() - 1] == '=') --n;
    if (b64.size() >= 2 && b64[b64.size() - 2] == '=') --n;
    const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
    X509_REQ* req = d2i_X509_REQ(nullptr, &p, n);
    EXPECT_NE(req, nullptr);
    if (req == nullptr) return pv::Key();
    EVP_PKEY* pub = X509_REQ_get_pubkey(req);
    EXPECT_EQ(X509_REQ_verify(req, pub), 1);
    X509_NAME* name = X509_REQ_get_subject_name(req);
    char cn[128] = {};
    X509_NAME_get_text_by_NID(name, NID_commonName, cn, sizeof cn);
    EXPECT_STREQ(cn, "dev-1");
    EXPECT_EQ(EVP_PKEY_get_base_id(pub), EVP_PKEY_EC);
    X509_REQ_free(req);
    return pv::Key(pub);
  }

  testing::TempDir tmp_{"outpost-creds"};
  pv::Key ca_key_;
  pv::Cert ca_;
};

TEST_F(FileCredentialsTest, TheCsrVerifiesWithCnIdAndThePendingKeyIsStored0600) {
  auto c = LoadDev();
  ASSERT_NE(c, nullptr);
  auto pub = Request(*c);
  ASSERT_NE(pub, nullptr);
  EXPECT_TRUE(c->has_pending_key());
  struct stat st {};
  ASSERT_EQ(::stat(tmp_.File("dev-1/device.pending.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(FileCredentialsTest, BadCertificatesAreRefusedAndNothingIsStaged) {
  auto c = LoadDev();
  ASSERT_NE(c, nullptr);
  auto pub = Request(*c);
  ASSERT_NE(pub, nullptr);
  X509* before = c->cert();
  char serial[device::kMaxSerialHexBytes + 1];
  auto other = pv::GenerateP256Key();
  ASSERT_TRUE(other.ok());
  const std::string wrong_key = Base64Der(Issue(other->get(), "dev-1").get());
  const std::string wrong_cn = Base64Der(Issue(pub.get(), "dev-2").get());
  const std::string oversize(device::kMaxCertBase64Bytes + 4, 'A');
  for (const std::string& bad :
       {wrong_key, wrong_cn, std::string("not base64!!"), std::string("QUJD"), oversize,
        wrong_cn.substr(0, wrong_cn.size() - 4)}) {
    EXPECT_NE(c->Stage(bad.data(), bad.size(), "dev-1", serial, sizeof serial), nullptr);
    EXPECT_FALSE(c->staged());
    EXPECT_EQ(c->cert(), before);
  }
  EXPECT_STREQ(c->Stage(wrong_key.data(), wrong_key.size(), "dev-1", serial, sizeof serial),
               "certificate is not for the pending key");
  EXPECT_STREQ(c->Stage(wrong_cn.data(), wrong_cn.size(), "dev-1", serial, sizeof serial),
               "certificate CN is not the device id");
  EXPECT_STREQ(c->Stage(oversize.data(), oversize.size(), "dev-1", serial, sizeof serial),
               "certificate too long");
  EXPECT_TRUE(c->has_pending_key());
}

TEST_F(FileCredentialsTest, StageThenCommitWritesFilesThatLoadBackAndMatch) {
  auto c = LoadDev();
  ASSERT_NE(c, nullptr);
  auto pub = Request(*c);
  ASSERT_NE(pub, nullptr);
  auto next = Issue(pub.get(), "dev-1");
  const std::string b64 = Base64Der(next.get());
  char serial[device::kMaxSerialHexBytes + 1];
  ASSERT_EQ(c->Stage(b64.data(), b64.size(), "dev-1", serial, sizeof serial), nullptr);
  EXPECT_EQ(serial, SerialHexLower(next.get()));
  EXPECT_TRUE(c->staged());
  EXPECT_EQ(X509_cmp(c->cert(), next.get()), 0);  // the next Connect presents it
  c->Abandon();
  EXPECT_NE(X509_cmp(c->cert(), next.get()), 0);
  ASSERT_EQ(c->Stage(b64.data(), b64.size(), "dev-1", serial, sizeof serial), nullptr);
  ASSERT_EQ(c->Commit(), nullptr);
  EXPECT_FALSE(c->staged());
  EXPECT_FALSE(c->has_pending_key());
  EXPECT_EQ(X509_cmp(c->cert(), next.get()), 0);
  struct stat st {};
  EXPECT_NE(::stat(tmp_.File("dev-1/device.pending.key").c_str(), &st), 0);
  EXPECT_NE(::stat(tmp_.File("dev-1/device.next.crt").c_str(), &st), 0);
  ASSERT_EQ(::stat(tmp_.File("dev-1/device.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = LoadDev();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(X509_cmp(again->cert(), next.get()), 0);
  EXPECT_EQ(X509_check_private_key(again->cert(), again->key()), 1);
}

TEST_F(FileCredentialsTest, ThePendingKeySurvivesANewInstance) {
  auto pub = [&] {
    auto c = LoadDev();
    return Request(*c);
  }();
  ASSERT_NE(pub, nullptr);
  auto c = LoadDev();
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->has_pending_key());
  EXPECT_FALSE(c->staged());
  const std::string b64 = Base64Der(Issue(pub.get(), "dev-1").get());
  char serial[device::kMaxSerialHexBytes + 1];
  EXPECT_EQ(c->Stage(b64.data(), b64.size(), "dev-1", serial, sizeof serial), nullptr);
}

// A crash between the two renames of Commit(): the new key beside the old certificate, the new
// certificate as device.next.crt. Load() finishes the rotation.
TEST_F(FileCredentialsTest, ACrashBetweenTheRenamesIsFinishedAtLoad) {
  auto key = pv::GenerateP256Key();
  ASSERT_TRUE(key.ok());
  auto next = Issue(key->get(), "dev-1");
  std::ofstream(tmp_.File("dev-1/device.next.crt")) << pv::CertPem(next.get());
  std::ofstream(tmp_.File("dev-1/device.key")) << pv::KeyPem(key->get());
  auto c = LoadDev();
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(X509_cmp(c->cert(), next.get()), 0);
  struct stat st {};
  EXPECT_NE(::stat(tmp_.File("dev-1/device.next.crt").c_str(), &st), 0);
}

}  // namespace
}  // namespace outpost::node::fleet
