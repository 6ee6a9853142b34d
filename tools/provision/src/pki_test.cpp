#include "outpost/provision/pki.h"

#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <vector>

#include "outpost/base/status.h"

namespace outpost::provision {
namespace {

// The DER of a CSR for `key` with subject CN `cn`, signed by `signer` (the key itself unless
// given), followed by `trailer`.
std::string CsrDer(EVP_PKEY* key, const std::string& cn, EVP_PKEY* signer = nullptr,
                   const std::string& trailer = "") {
  std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> req(X509_REQ_new(), X509_REQ_free);
  X509_REQ_set_pubkey(req.get(), key);
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_REQ_sign(req.get(), signer != nullptr ? signer : key, EVP_sha256());
  unsigned char* der = nullptr;
  const int n = i2d_X509_REQ(req.get(), &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
  OPENSSL_free(der);
  return out + trailer;
}

TEST(PkiTest, Base64RoundTripsAndRefusesAnythingButPaddedBase64) {
  for (const std::string& bytes :
       std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
    const std::string text = Base64Encode(bytes);
    EXPECT_EQ(text.size() % 4, 0u);
    if (bytes.empty()) continue;
    auto back = Base64Decode(text, 16);
    ASSERT_TRUE(back.ok()) << text << ": " << back.status().message();
    EXPECT_EQ(*back, bytes);
  }
  EXPECT_EQ(Base64Encode("abcd"), "YWJjZA==");
  for (const char* bad :
       {"", "YWJjZA", "YWJjZA=", "YW=jZA==", "YWJj\nZA==", "YWJjZA===", "YWJ-ZA==", "Y==="}) {
    EXPECT_FALSE(Base64Decode(bad, 16).ok()) << bad;
  }
  auto too_long = Base64Decode(Base64Encode(std::string(17, 'x')), 16);
  EXPECT_EQ(too_long.status().code(), Code::kInvalidArgument);
}

TEST(PkiTest, ADevicesCsrMustVerifyBeP256AndNameTheDevice) {
  auto key = GenerateP256Key();
  ASSERT_TRUE(key.ok());
  auto other = GenerateP256Key();
  ASSERT_TRUE(other.ok());
  auto good = CsrPublicKeyFromDer(CsrDer(key->get(), "n1"), "n1");
  ASSERT_TRUE(good.ok()) << good.status().message();
  EXPECT_EQ(EVP_PKEY_eq(good->get(), key->get()), 1);

  auto wrong_cn = CsrPublicKeyFromDer(CsrDer(key->get(), "n2"), "n1");
  EXPECT_EQ(wrong_cn.status().code(), Code::kInvalidArgument);
  EXPECT_NE(wrong_cn.status().message().find("\"n2\""), std::string::npos);
  EXPECT_FALSE(CsrPublicKeyFromDer(CsrDer(key->get(), "n1", other->get()), "n1").ok())
      << "signed by another key";
  EXPECT_FALSE(CsrPublicKeyFromDer(CsrDer(key->get(), "n1", nullptr, "x"), "n1").ok())
      << "bytes after the request";
  const std::string der = CsrDer(key->get(), "n1");
  EXPECT_FALSE(CsrPublicKeyFromDer(der.substr(0, der.size() - 1), "n1").ok()) << "truncated";
  EXPECT_FALSE(CsrPublicKeyFromDer("", "n1").ok());

  EVP_PKEY* p384 = EVP_EC_gen("secp384r1");
  ASSERT_NE(p384, nullptr);
  Key p384_owned(p384);
  auto not_p256 = CsrPublicKeyFromDer(CsrDer(p384, "n1"), "n1");
  EXPECT_EQ(not_p256.status().code(), Code::kInvalidArgument);
  EXPECT_NE(not_p256.status().message().find("P-256"), std::string::npos);
}

}  // namespace
}  // namespace outpost::provision
