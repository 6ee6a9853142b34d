#include "outpost/provision/pki.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "outpost/base/file.h"

namespace outpost::provision {

void PkeyFree::operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
void X509Free::operator()(X509* p) const { X509_free(p); }

namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Bio = std::unique_ptr<BIO, BioFree>;

constexpr char kHex[] = "0123456789ABCDEF";

// The OpenSSL error queue as text, emptied, for an error message.
Status SslError(const std::string& what) {
  std::string detail;
  unsigned long e = 0;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!detail.empty()) detail += "; ";
    detail += buf;
  }
  return Internal(what + (detail.empty() ? "" : ": " + detail));
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

Status AddExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) return SslError(std::string("extension ") + OBJ_nid2sn(nid) + "=" + value);
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok == 1 ? Status::Ok() : SslError("X509_add_ext");
}

Result<std::string> RandomSerial(ASN1_INTEGER* out) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return SslError("RAND_bytes");
  bytes[0] &= 0x7F;
  bytes[0] |= 0x40;  // 128 bits, positive, and never a shorter encoding
  BIGNUM* bn = BN_bin2bn(bytes, sizeof bytes, nullptr);
  if (bn == nullptr || BN_to_ASN1_INTEGER(bn, out) == nullptr) {
    BN_free(bn);
    return SslError("serial");
  }
  char* hex = BN_bn2hex(bn);
  std::string s(hex);
  OPENSSL_free(hex);
  BN_free(bn);
  return s;
}

// The first PEM object in the file at `path`, read by `read` (PEM_read_bio_X509 and its kin),
// owned by the caller; `what` names it in the error.
template <typename T>
Result<T*> ReadPem(const std::string& path, T* (*read)(BIO*, T**, pem_password_cb*, void*),
                   const char* what) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  Bio bio(BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
  T* obj = read(bio.get(), nullptr, nullptr, nullptr);
  if (obj == nullptr) {
    ERR_clear_error();
    return InvalidArgument(path + ": not a PEM " + what);
  }
  return obj;
}

}  // namespace

Result<Key> GenerateP256Key() {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nullptr);
  EVP_PKEY* key = nullptr;
  bool ok = ctx != nullptr && EVP_PKEY_keygen_init(ctx) == 1 &&
            EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, NID_X9_62_prime256v1) == 1 &&
            EVP_PKEY_keygen(ctx, &key) == 1;
  EVP_PKEY_CTX_free(ctx);
  if (!ok) return SslError("EC P-256 key generation");
  return Key(key);
}

Result<Cert> IssueCert(const CertRequest& request, EVP_PKEY* subject_key, EVP_PKEY* issuer_key,
                       X509* issuer) {
  Cert cert(X509_new());
  if (!cert) return SslError("X509_new");
  X509* c = cert.get();
  if (X509_set_version(c, 2) != 1) return SslError("X509_set_version");
  auto serial = RandomSerial(X509_get_serialNumber(c));
  if (!serial.ok()) return serial.status();
  if (ASN1_TIME_set(X509_getm_notBefore(c), static_cast<time_t>(request.not_before_unix)) ==
          nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(c), static_cast<time_t>(request.not_after_unix)) ==
          nullptr) {
    return SslError("validity");
  }
  X509_NAME* name = X509_get_subject_name(c);
  if (X509_NAME_add_entry_by_txt(
          name, "CN", MBSTRING_UTF8,
          reinterpret_cast<const unsigned char*>(request.common_name.c_str()), -1, -1, 0) != 1) {
    return SslError("subject CN");
  }
  X509* signer = issuer != nullptr ? issuer : c;
  if (X509_set_issuer_name(c, X509_get_subject_name(signer)) != 1 ||
      X509_set_pubkey(c, subject_key) != 1) {
    return SslError("issuer or public key");
  }
  OUTPOST_RETURN_IF_ERROR(AddExt(c, signer, NID_subject_key_identifier, "hash"));
  if (issuer != nullptr) {
    OUTPOST_RETURN_IF_ERROR(AddExt(c, signer, NID_authority_key_identifier, "keyid:always"));
  }
  switch (request.kind) {
    case CertKind::kCa:
      OUTPOST_RETURN_IF_ERROR(
          AddExt(c, signer, NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
      OUTPOST_RETURN_IF_ERROR(AddExt(c, signer, NID_key_usage, "critical,keyCertSign,cRLSign"));
      break;
    case CertKind::kServer:
    case CertKind::kClient: {
      OUTPOST_RETURN_IF_ERROR(AddExt(c, signer, NID_basic_constraints, "critical,CA:FALSE"));
      OUTPOST_RETURN_IF_ERROR(AddExt(c, signer, NID_key_usage, "critical,digitalSignature"));
      OUTPOST_RETURN_IF_ERROR(
          AddExt(c, signer, NID_ext_key_usage,
                 request.kind == CertKind::kServer ? "serverAuth" : "clientAuth"));
      break;
    }
  }
  std::string san;
  for (const auto& d : request.dns_names) san += (san.empty() ? "DNS:" : ",DNS:") + d;
  for (const auto& ip : request.ip_addresses) san += (san.empty() ? "IP:" : ",IP:") + ip;
  if (!san.empty()) OUTPOST_RETURN_IF_ERROR(AddExt(c, signer, NID_subject_alt_name, san.c_str()));
  if (X509_sign(c, issuer_key, EVP_sha256()) == 0) return SslError("X509_sign");
  return cert;
}

Result<std::string> MakeCrlPem(X509* ca, EVP_PKEY* ca_key,
                               const std::vector<std::string>& revoked_serials_hex,
                               std::int64_t now_unix, std::int64_t next_update_unix) {
  X509_CRL* crl = X509_CRL_new();
  if (crl == nullptr) return SslError("X509_CRL_new");
  std::unique_ptr<X509_CRL, decltype(&X509_CRL_free)> guard(crl, X509_CRL_free);
  ASN1_TIME* last = ASN1_TIME_new();
  ASN1_TIME* next = ASN1_TIME_new();
  std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> g1(last, ASN1_TIME_free);
  std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> g2(next, ASN1_TIME_free);
  if (X509_CRL_set_version(crl, 1) != 1 ||
      X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) != 1 ||
      ASN1_TIME_set(last, static_cast<time_t>(now_unix)) == nullptr ||
      ASN1_TIME_set(next, static_cast<time_t>(next_update_unix)) == nullptr ||
      X509_CRL_set1_lastUpdate(crl, last) != 1 || X509_CRL_set1_nextUpdate(crl, next) != 1) {
    return SslError("CRL header");
  }
  for (const std::string& hex : revoked_serials_hex) {
    BIGNUM* bn = nullptr;
    if (BN_hex2bn(&bn, hex.c_str()) == 0) return InvalidArgument("bad serial in registry: " + hex);
    X509_REVOKED* r = X509_REVOKED_new();
    ASN1_INTEGER* serial = BN_to_ASN1_INTEGER(bn, nullptr);
    BN_free(bn);
    bool ok = r != nullptr && serial != nullptr && X509_REVOKED_set_serialNumber(r, serial) == 1 &&
              X509_REVOKED_set_revocationDate(r, last) == 1 && X509_CRL_add0_revoked(crl, r) == 1;
    ASN1_INTEGER_free(serial);
    if (!ok) {
      X509_REVOKED_free(r);
      return SslError("CRL entry " + hex);
    }
  }
  X509_CRL_sort(crl);
  if (X509_CRL_sign(crl, ca_key, EVP_sha256()) == 0) return SslError("X509_CRL_sign");
  Bio bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_X509_CRL(bio.get(), crl) != 1) return SslError("PEM CRL");
  return BioText(bio.get());
}

std::string CertPem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  return BioText(bio.get());
}

std::string KeyPem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  return BioText(bio.get());
}

Result<Cert> LoadCert(const std::string& path) {
  auto c = ReadPem(path, PEM_read_bio_X509, "certificate");
  if (!c.ok()) return c.status();
  return Cert(*c);
}

Result<Key> LoadKey(const std::string& path) {
  auto k = ReadPem(path, PEM_read_bio_PrivateKey, "private key");
  if (!k.ok()) return k.status();
  return Key(*k);
}

namespace {

using ReqPtr = std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)>;

// The public key of a request whose self-signature verifies and whose key is EC P-256; `what`
// names the request in errors.
Result<Key> CheckedCsrKey(X509_REQ* req, const std::string& what) {
  EVP_PKEY* key = X509_REQ_get_pubkey(req);
  if (key == nullptr) {
    ERR_clear_error();
    return InvalidArgument(what + ": the request has no public key");
  }
  Key owned(key);
  if (X509_REQ_verify(req, key) != 1) {
    ERR_clear_error();
    return InvalidArgument(what + ": the request's signature does not verify");
  }
  char group[64] = {0};
  std::size_t n = 0;
  if (EVP_PKEY_base_id(key) != EVP_PKEY_EC ||
      EVP_PKEY_get_group_name(key, group, sizeof group, &n) != 1 ||
      std::strcmp(group, "prime256v1") != 0) {
    ERR_clear_error();
    return InvalidArgument(what + ": the request's key is not an EC P-256 key");
  }
  return owned;
}

}  // namespace

Result<Key> LoadCsrPublicKey(const std::string& path) {
  auto r = ReadPem(path, PEM_read_bio_X509_REQ, "certificate signing request");
  if (!r.ok()) return r.status();
  ReqPtr req(*r, X509_REQ_free);
  return CheckedCsrKey(req.get(), path);
}

Result<Key> CsrPublicKeyFromDer(const std::string& der, const std::string& expected_cn) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  ReqPtr req(d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size())), X509_REQ_free);
  if (!req || p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    ERR_clear_error();
    return InvalidArgument("the device's CSR is not one DER certificate request");
  }
  auto key = CheckedCsrKey(req.get(), "the device's CSR");
  if (!key.ok()) return key.status();
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  char cn[256] = {0};
  const int n = X509_NAME_get_text_by_NID(name, NID_commonName, cn, sizeof cn);
  if (n < 0 || static_cast<std::size_t>(n) != std::strlen(cn) || cn != expected_cn) {
    ERR_clear_error();
    return InvalidArgument("the device's CSR is for CN \"" + std::string(cn) + "\", not \"" +
                           expected_cn + "\"");
  }
  return key;
}

bool HasPublicKey(X509* cert, EVP_PKEY* key) {
  const bool same = EVP_PKEY_eq(X509_get0_pubkey(cert), key) == 1;  // < 0: other key types
  ERR_clear_error();
  return same;
}

std::string CertDer(X509* cert) {
  unsigned char* der = nullptr;
  const int n = i2d_X509(cert, &der);
  if (n <= 0) return "";
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
  OPENSSL_free(der);
  return out;
}

std::string Base64Encode(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

Result<std::string> Base64Decode(const std::string& text, std::size_t max_bytes) {
  if (max_bytes > (std::size_t{1} << 30) || text.size() > 4 * ((max_bytes + 2) / 3)) {
    return InvalidArgument("base64 longer than " + std::to_string(max_bytes) + " bytes");
  }
  if (text.empty() || text.size() % 4 != 0 ||
      text.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") !=
          std::string::npos) {
    return InvalidArgument("not padded base64");
  }
  const std::size_t pad = text.size() - text.find_last_not_of('=') - 1;
  const std::size_t first_pad = pad == 0 ? std::string::npos : text.size() - pad;
  if (pad > 2 || text.find('=') != first_pad) return InvalidArgument("not padded base64");
  std::string out(text.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return InvalidArgument("not padded base64");
  out.resize(static_cast<std::size_t>(n) - pad);  // EVP_DecodeBlock counts the padding as zeros
  if (out.size() > max_bytes) {
    return InvalidArgument("base64 longer than " + std::to_string(max_bytes) + " bytes");
  }
  return out;
}

std::string SerialHex(X509* cert) {
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
  char* hex = BN_bn2hex(bn);
  std::string s(hex);
  OPENSSL_free(hex);
  BN_free(bn);
  return s;
}

std::string Sha256Fingerprint(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  X509_digest(cert, EVP_sha256(), md, &n);
  std::string s;
  for (unsigned int i = 0; i < n; ++i) {
    if (i != 0) s += ':';
    s += kHex[md[i] >> 4];
    s += kHex[md[i] & 15];
  }
  return s;
}

std::string Sha256Hex(const std::string& bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &n, EVP_sha256(), nullptr);
  static const char* const kLower = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; ++i) {
    out += kLower[md[i] >> 4];
    out += kLower[md[i] & 0xF];
  }
  return out;
}

std::string CommonName(X509* cert) {
  char buf[256] = {0};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
  return buf;
}

std::int64_t NotAfterUnix(X509* cert) {
  tm t{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &t) != 1) return 0;
  return static_cast<std::int64_t>(timegm(&t));
}

std::string FormatUtc(std::int64_t unix_s, const char* format) {
  const auto t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  return std::string(buf, std::strftime(buf, sizeof buf, format, &tm));
}

Result<std::int64_t> CrlNextUpdateUnix(const std::string& path) {
  auto crl = ReadPem(path, PEM_read_bio_X509_CRL, "CRL");
  if (!crl.ok()) return crl.status();
  std::unique_ptr<X509_CRL, decltype(&X509_CRL_free)> guard(*crl, X509_CRL_free);
  tm t{};
  const ASN1_TIME* next = X509_CRL_get0_nextUpdate(guard.get());
  if (next == nullptr || ASN1_TIME_to_tm(next, &t) != 1) {
    return InvalidArgument(path + ": the CRL has no next-update");
  }
  return static_cast<std::int64_t>(timegm(&t));
}

Status WriteFileAtomic(const std::string& path, const std::string& data, mode_t mode) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Unavailable(tmp + ": " + std::strerror(errno));
  // open() honours the umask only to narrow; fchmod sets exactly `mode` (a reused temp file
  // keeps its old mode otherwise).
  bool ok = ::fchmod(fd, mode) == 0;
  std::size_t off = 0;
  while (ok && off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = false;
      break;
    }
    off += static_cast<std::size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  int err = errno;
  ok = (::close(fd) == 0) && ok;
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    if (ok) err = errno;
    ::unlink(tmp.c_str());
    return Unavailable(path + ": " + std::strerror(err));
  }
  return Status::Ok();
}

}  // namespace outpost::provision
