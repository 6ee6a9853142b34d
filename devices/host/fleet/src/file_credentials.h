// FileCredentials: the simulator's Credentials port (device core, ports.h; docs/adr/0011) for
// one device, on OpenSSL and the files of DIR/<id>/ that `outpost-provision device add` writes:
//   device.crt, device.key   the current identity (PEM; the key 0600)
//   device.pending.key       the pending key made by certRequest (0600), so it survives a
//                            restart of the simulator: a certInstall queued meanwhile still
//                            matches it; erased by Commit()
//   device.next.crt          only during Commit() (see Load() for how a crash is finished)
// The staged certificate lives in memory only, so a restart always comes back with the current
// identity (the contract: a staged identity never survives a boot).
//
//   auto c = FileCredentials::Load("pki/devices", "node-00000");
//   SSL_use_certificate(ssl, (*c)->cert());  SSL_use_PrivateKey(ssl, (*c)->key());
//
// Ownership: owns its OpenSSL objects; cert()/key() are borrowed (an SSL object takes its own
//   reference, so a Commit() during a connection does not free what the connection uses).
// Thread: one thread (the fleet's loop), like every port.
// Errors: Load() returns kInvalidArgument naming the file (missing, not PEM, key and certificate
//   that do not match). The port's methods return short static strings, as ports.h says.
// Cost: the current certificate and key (~2 KiB of OpenSSL objects per device, loaded at start
//   as before); a pending key (~1 KiB) only between certRequest and Commit().
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "openssl_util.h"
#include "outpost/base/status.h"
#include "outpost/device/ports.h"

namespace outpost::node::fleet {

class FileCredentials final : public device::Credentials {
 public:
  // Loads DIR/<id>/device.crt and device.key (they must match), finishing a Commit() that a
  // crash interrupted, and device.pending.key if present (an unreadable one is ignored: the
  // next certRequest replaces it).
  static Result<std::unique_ptr<FileCredentials>> Load(const std::string& dir,
                                                       const std::string& device_id);
  ~FileCredentials() override = default;

  const char* MakePendingKey(const char* device_id, char* csr_base64,
                             std::size_t capacity) override;
  const char* Stage(const char* cert_base64, std::size_t size, const char* device_id,
                    char* serial_hex, std::size_t serial_capacity) override;
  const char* Commit() override;
  void Abandon() override;

  // What the next Connect() presents: the staged identity if any, else the current one.
  X509* cert() const { return staged_ ? staged_.get() : cert_.get(); }
  EVP_PKEY* key() const { return staged_ ? pending_.get() : key_.get(); }
  bool has_pending_key() const { return pending_ != nullptr; }
  bool staged() const { return staged_ != nullptr; }
  // DIR/<id>/device (append ".crt", ".key", ".pending.key").
  const std::string& base() const { return base_; }

 private:
  FileCredentials(std::string folder, std::string base)
      : folder_(std::move(folder)), base_(std::move(base)) {}

  std::string folder_;  // DIR/<id>
  std::string base_;    // DIR/<id>/device
  X509Ptr cert_;        // current
  PkeyPtr key_;         // current
  PkeyPtr pending_;     // made by MakePendingKey()
  X509Ptr staged_;      // accepted by Stage(), for pending_
};

}  // namespace outpost::node::fleet
