#include "file_credentials.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>

namespace outpost::node::fleet {
namespace {

bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// Writes `data` to `path` (created or truncated, exactly `mode` whatever the umask) and fsyncs
// it. Not renamed: the caller decides when the name changes.
bool WriteSynced(const std::string& path, std::string_view data, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return false;
  bool ok = ::fchmod(fd, mode) == 0;
  for (std::size_t done = 0; ok && done < data.size();) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = false;
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  ok = ::fsync(fd) == 0 && ok;
  ok = ::close(fd) == 0 && ok;
  if (!ok) ::unlink(path.c_str());
  return ok;
}

bool SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  return ::close(fd) == 0 && ok;
}

// Temp file in the same folder, fsync, rename, fsync the folder.
bool WriteDurable(const std::string& dir, const std::string& path, std::string_view data,
                  mode_t mode) {
  const std::string tmp = path + ".tmp";
  if (!WriteSynced(tmp, data, mode)) return false;
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return false;
  }
  return SyncDir(dir);
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);  // NOLINT(google-runtime-int): OpenSSL's type
  return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : std::string();
}

std::string CertPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return "";
  return BioText(bio.get());
}

// PKCS#8, unencrypted (what outpost-provision writes). The caller cleanses it.
std::string KeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return "";
  }
  std::string text = BioText(bio.get());
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);  // NOLINT(google-runtime-int)
  if (n > 0) OPENSSL_cleanse(data, static_cast<std::size_t>(n));
  return text;
}

void Cleanse(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
}

bool IsBase64Char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

// Strict standard base64 (padded, no whitespace) into `out`; returns the byte count or -1.
int DecodeBase64(const char* in, std::size_t size, unsigned char* out, std::size_t capacity) {
  if (size == 0 || size % 4 != 0 || size / 4 * 3 > capacity) return -1;
  std::size_t pad = 0;
  if (in[size - 1] == '=') ++pad;
  if (in[size - 2] == '=') ++pad;
  if (pad == 1 && in[size - 2] == '=') return -1;
  for (std::size_t i = 0; i < size - pad; ++i) {
    if (!IsBase64Char(in[i])) return -1;
  }
  const int n =
      EVP_DecodeBlock(out, reinterpret_cast<const unsigned char*>(in), static_cast<int>(size));
  if (n < 0) return -1;
  return n - static_cast<int>(pad);  // EVP_DecodeBlock counts the padding as zero bytes
}

// Whether the subject has exactly one CN and it is `id`.
bool CommonNameIs(X509* cert, const char* id) {
  X509_NAME* name = X509_get_subject_name(cert);
  const int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0) return false;
  const ASN1_STRING* cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  const std::size_t len = std::strlen(id);
  return cn != nullptr && static_cast<std::size_t>(ASN1_STRING_length(cn)) == len &&
         std::memcmp(ASN1_STRING_get0_data(cn), id, len) == 0;
}

bool SameKey(EVP_PKEY* a, EVP_PKEY* b) {
  return a != nullptr && b != nullptr && EVP_PKEY_eq(a, b) == 1;
}

}  // namespace

Result<std::unique_ptr<FileCredentials>> FileCredentials::Load(const std::string& dir,
                                                               const std::string& device_id) {
  const std::string folder = dir + "/" + device_id;
  std::unique_ptr<FileCredentials> c(new FileCredentials(folder, folder + "/device"));
  const std::string crt = c->base_ + ".crt", key_path = c->base_ + ".key";
  const std::string next = c->base_ + ".next.crt", pending = c->base_ + ".pending.key";
  auto cert = ReadCert(crt);
  if (!cert.ok()) {
    return InvalidArgument(cert.status().message() +
                           " (provision the device: outpost-provision device add)");
  }
  auto key = ReadKey(key_path);
  if (!key.ok()) return key.status();
  // Commit() writes device.next.crt, replaces device.key, then renames device.next.crt over
  // device.crt. A crash between the two renames leaves the new key beside the old certificate
  // and the new certificate as device.next.crt: finish the rename. A crash before the key was
  // replaced leaves the old pair intact: device.next.crt is a leftover.
  const bool has_next = Exists(next);
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    ERR_clear_error();
    Result<X509Ptr> next_cert = has_next ? ReadCert(next) : Result<X509Ptr>(NotFound(next));
    if (!next_cert.ok() || X509_check_private_key(next_cert->get(), key->get()) != 1) {
      ERR_clear_error();
      return InvalidArgument(key_path + " does not match " + crt);
    }
    if (::rename(next.c_str(), crt.c_str()) != 0 || !SyncDir(folder)) {
      return InvalidArgument(
          crt + ": cannot finish the interrupted certificate rotation: " + std::strerror(errno));
    }
    *cert = std::move(*next_cert);
  } else if (has_next) {
    ::unlink(next.c_str());
  }
  c->cert_ = std::move(*cert);
  c->key_ = std::move(*key);
  if (Exists(pending)) {
    auto p = ReadKey(pending);
    if (p.ok() && !SameKey(p->get(), c->key_.get())) {
      c->pending_ = std::move(*p);
    } else {
      // Unreadable, or already the current key (a crash after Commit() replaced device.key).
      ::unlink(pending.c_str());
    }
  }
  return c;
}

const char* FileCredentials::MakePendingKey(const char* device_id, char* csr_base64,
                                            std::size_t capacity) {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) {
    ERR_clear_error();
    return "could not make an EC P-256 key";
  }
  X509ReqPtr req(X509_REQ_new());
  X509_NAME* name = req ? X509_REQ_get_subject_name(req.get()) : nullptr;
  if (!req || X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1 || name == nullptr ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(device_id), -1, -1,
                                 0) != 1 ||
      X509_REQ_set_pubkey(req.get(), key.get()) != 1 ||
      X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0) {
    ERR_clear_error();
    return "could not make the certificate request";
  }
  const int der_len = i2d_X509_REQ(req.get(), nullptr);
  if (der_len <= 0) {
    ERR_clear_error();
    return "could not encode the certificate request";
  }
  const std::size_t b64_len = 4 * ((static_cast<std::size_t>(der_len) + 2) / 3);
  if (b64_len + 1 > capacity) return "the certificate request does not fit the reply";
  std::string der(static_cast<std::size_t>(der_len), '\0');
  auto* p = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_X509_REQ(req.get(), &p) != der_len) {
    ERR_clear_error();
    return "could not encode the certificate request";
  }
  // Durable before it is used: a certInstall that arrives after a restart must still match it.
  std::string pem = KeyPem(key.get());
  const bool stored = !pem.empty() && WriteDurable(folder_, base_ + ".pending.key", pem, 0600);
  Cleanse(pem);
  if (!stored) return "could not store the pending key";
  EVP_EncodeBlock(reinterpret_cast<unsigned char*>(csr_base64),
                  reinterpret_cast<const unsigned char*>(der.data()), der_len);  // NUL-terminates
  pending_ = std::move(key);
  staged_.reset();
  return nullptr;
}

const char* FileCredentials::Stage(const char* cert_base64, std::size_t size, const char* device_id,
                                   char* serial_hex, std::size_t serial_capacity) {
  if (!pending_) return "no pending key (send certRequest first)";
  if (size > device::kMaxCertBase64Bytes) return "certificate too long";
  unsigned char der[device::kMaxCertBase64Bytes / 4 * 3];
  const int n = DecodeBase64(cert_base64, size, der, sizeof der);
  if (n <= 0) return "certificate is not base64";
  const unsigned char* p = der;
  X509Ptr cert(d2i_X509(nullptr, &p, n));
  if (!cert || p != der + n) {
    ERR_clear_error();
    return "not a DER certificate";
  }
  if (!SameKey(X509_get0_pubkey(cert.get()), pending_.get())) {
    ERR_clear_error();
    return "certificate is not for the pending key";
  }
  if (!CommonNameIs(cert.get(), device_id)) return "certificate CN is not the device id";
  // The serial as the DER INTEGER's bytes without the leading 00 sign byte: BN's magnitude.
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr);
  if (bn == nullptr || BN_is_negative(bn)) {
    BN_free(bn);
    ERR_clear_error();
    return "certificate serial is not a positive integer";
  }
  unsigned char bytes[64];
  const int len = BN_num_bytes(bn);
  const std::size_t hex_len = len == 0 ? 2 : 2 * static_cast<std::size_t>(len);
  if (len > 20 || hex_len > device::kMaxSerialHexBytes || hex_len + 1 > serial_capacity) {
    BN_free(bn);
    return "certificate serial is longer than 20 bytes";
  }
  BN_bn2bin(bn, bytes);
  BN_free(bn);
  if (len == 0) {
    std::snprintf(serial_hex, serial_capacity, "00");
  } else {
    for (int i = 0; i < len; ++i) std::snprintf(serial_hex + 2 * i, 3, "%02x", bytes[i]);
  }
  staged_ = std::move(cert);
  return nullptr;
}

const char* FileCredentials::Commit() {
  if (!staged_) return "nothing staged";
  const std::string crt = base_ + ".crt", key_path = base_ + ".key";
  const std::string next = base_ + ".next.crt", key_tmp = base_ + ".key.tmp";
  // Crash-safe order (Load() finishes or discards what a crash leaves):
  //  1. device.next.crt, durable (temp, fsync, rename, fsync the folder);
  //  2. device.key.tmp (0600), fsynced, then renamed over device.key, fsync the folder: from
  //     here the new key is current on disk, and device.next.crt is its certificate;
  //  3. device.next.crt renamed over device.crt, fsync the folder;
  //  4. device.pending.key erased (now a copy of device.key).
  // Device.key and device.crt never hold a mismatched pair that Load() cannot repair.
  const std::string cert_pem = CertPem(staged_.get());
  if (cert_pem.empty()) return "could not encode the certificate";
  if (!WriteDurable(folder_, next, cert_pem, 0644)) return "could not write device.next.crt";
  std::string key_pem = KeyPem(pending_.get());
  const bool key_written = !key_pem.empty() && WriteSynced(key_tmp, key_pem, 0600);
  Cleanse(key_pem);
  if (!key_written) {
    ::unlink(next.c_str());
    return "could not write device.key";
  }
  if (::rename(key_tmp.c_str(), key_path.c_str()) != 0) {
    ::unlink(key_tmp.c_str());
    ::unlink(next.c_str());
    return "could not replace device.key";
  }
  if (!SyncDir(folder_)) return "could not flush the device folder";
  // Past this point device.key is the new key on disk; if the rename below fails, the next
  // start finishes it (Load()), and meanwhile the old identity stays in memory, still valid
  // (the operator revokes it only after the reply that a failed Commit() never sends).
  if (::rename(next.c_str(), crt.c_str()) != 0 || !SyncDir(folder_)) {
    return "could not replace device.crt";
  }
  // Best effort: a leftover pending key equal to the current key is dropped by Load().
  if (::unlink((base_ + ".pending.key").c_str()) == 0) (void)SyncDir(folder_);
  cert_ = std::move(staged_);
  key_ = std::move(pending_);
  return nullptr;
}

void FileCredentials::Abandon() { staged_.reset(); }

}  // namespace outpost::node::fleet
