// Pki: the few X.509 operations provisioning needs, on the OpenSSL C API (no openssl CLI, no
// easy-rsa): EC P-256 keys, certificates signed by our CA, CRLs, PEM files with fixed modes.
// Ownership: Key and Cert own their OpenSSL objects (move-only). Thread: no shared state; one
// object per thread. Errors: kInvalidArgument (a file that is not the PEM expected, a CSR whose
// signature does not verify), kUnavailable (file I/O), kInternal (an OpenSSL call failed: its
// error queue is in the message).
// Files and modes: docs/security.md
#pragma once

#include <openssl/types.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "outpost/base/status.h"

namespace outpost::provision {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const;
};
struct X509Free {
  void operator()(X509* p) const;
};
using Key = std::unique_ptr<EVP_PKEY, PkeyFree>;
using Cert = std::unique_ptr<X509, X509Free>;

enum class CertKind : std::uint8_t { kCa, kServer, kClient };

struct CertRequest {
  std::string common_name;
  CertKind kind = CertKind::kClient;
  std::vector<std::string> dns_names;     // subjectAltName DNS entries (server certificates)
  std::vector<std::string> ip_addresses;  // subjectAltName IP entries, IPv4 or IPv6 text
  std::int64_t not_before_unix = 0;
  std::int64_t not_after_unix = 0;
};

Result<Key> GenerateP256Key();
// Signs `request` for `subject_key` with `issuer` (nullptr: self-signed, for the CA). The serial
// is 128 random bits (the top bit cleared, so the integer is positive).
Result<Cert> IssueCert(const CertRequest& request, EVP_PKEY* subject_key, EVP_PKEY* issuer_key,
                       X509* issuer);

// PEM text of a CRL signed by the CA listing `revoked_serials_hex` (as SerialHex prints them),
// valid from `now_unix` until `next_update_unix`.
Result<std::string> MakeCrlPem(X509* ca, EVP_PKEY* ca_key,
                               const std::vector<std::string>& revoked_serials_hex,
                               std::int64_t now_unix, std::int64_t next_update_unix);

std::string CertPem(X509* cert);
std::string KeyPem(EVP_PKEY* key);  // PKCS#8, unencrypted

Result<Cert> LoadCert(const std::string& path);
Result<Key> LoadKey(const std::string& path);
// Reads a PEM CSR and checks its self-signature and that its key is EC P-256; returns the key.
Result<Key> LoadCsrPublicKey(const std::string& path);
// The same for a DER CSR from a device (`device rotate`), which must also have the subject CN
// `expected_cn` and nothing after the request.
Result<Key> CsrPublicKeyFromDer(const std::string& der, const std::string& expected_cn);
// True when `cert` certifies `key` (the same public key).
bool HasPublicKey(X509* cert, EVP_PKEY* key);

std::string CertDer(X509* cert);
// Standard alphabet, padded, no line breaks.
std::string Base64Encode(const std::string& bytes);
// kInvalidArgument for anything but padded standard base64, or more than `max_bytes` decoded.
Result<std::string> Base64Decode(const std::string& text, std::size_t max_bytes);

std::string SerialHex(X509* cert);                // uppercase hex, no leading zeros
std::string Sha256Fingerprint(X509* cert);        // "AB:CD:..." over the DER
std::string Sha256Hex(const std::string& bytes);  // lowercase, 64 digits
std::string CommonName(X509* cert);
std::int64_t NotAfterUnix(X509* cert);
// Unix seconds in UTC through strftime's `format` ("%Y-%m-%d"; at most 63 characters out).
std::string FormatUtc(std::int64_t unix_s, const char* format);
// The next-update of the PEM CRL at `path` (unix seconds): after it, a broker checking the CRL
// refuses every client.
Result<std::int64_t> CrlNextUpdateUnix(const std::string& path);

// Writes `data` to `path` atomically (a temp file in the same folder, fsync, rename), created
// with `mode` (never wider, whatever the umask).
Status WriteFileAtomic(const std::string& path, const std::string& data, mode_t mode);

}  // namespace outpost::provision
