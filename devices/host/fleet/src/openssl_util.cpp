#include "openssl_util.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "outpost/base/file.h"

namespace outpost::node::fleet {

std::string SslError() {
  const unsigned long e = ERR_get_error();  // NOLINT(google-runtime-int): OpenSSL's type
  ERR_clear_error();
  if (e == 0) return "";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

Result<BioPtr> PemBio(const std::string& path, std::string* text) {
  auto read = ReadFile(path);
  if (!read.ok()) return InvalidArgument(read.status().message());
  *text = *std::move(read);
  BioPtr bio(BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
  if (!bio) return Internal("BIO_new_mem_buf: " + SslError());
  return bio;
}

Result<X509Ptr> ReadCert(const std::string& path) {
  std::string text;
  auto bio = PemBio(path, &text);
  if (!bio.ok()) return bio.status();
  X509Ptr cert(PEM_read_bio_X509(bio->get(), nullptr, nullptr, nullptr));
  if (!cert) return InvalidArgument(path + ": not a PEM certificate: " + SslError());
  return cert;
}

Result<PkeyPtr> ReadKey(const std::string& path) {
  std::string text;
  auto bio = PemBio(path, &text);
  if (!bio.ok()) return bio.status();
  PkeyPtr key(PEM_read_bio_PrivateKey(bio->get(), nullptr, nullptr, nullptr));
  OPENSSL_cleanse(text.data(), text.size());
  if (!key) return InvalidArgument(path + ": not a PEM private key: " + SslError());
  return key;
}

}  // namespace outpost::node::fleet
