// OpenSSL helpers shared by the fleet's TLS code (asio_backend.cpp) and its Credentials port
// (file_credentials.cpp): owning pointers, the error queue as text, PEM files read with the
// bounded reader. Private to the fleet component.
// Thread: no shared state. Errors: kInvalidArgument (a file that is not the PEM expected, or a
//   FIFO/device/oversized file), kNotFound (cannot open), kInternal (an OpenSSL call failed).
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

#include "outpost/base/status.h"

namespace outpost::node::fleet {

struct SslFree {
  void operator()(SSL* p) const { SSL_free(p); }
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(X509_REQ* p) const { X509_REQ_free(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslFree>;
using X509Ptr = std::unique_ptr<X509, SslFree>;
using X509ReqPtr = std::unique_ptr<X509_REQ, SslFree>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, SslFree>;
using BioPtr = std::unique_ptr<BIO, SslFree>;

// The newest OpenSSL error as text ("" when the queue is empty); clears the queue.
std::string SslError();

// A PEM file as a memory BIO over `*text`, read whole with the bounded reader: a FIFO or
// /dev/zero given as a path is an error at start, not a hang in OpenSSL's fopen().
Result<BioPtr> PemBio(const std::string& path, std::string* text);

// The first certificate / private key of a PEM file. The key's text is cleansed after parsing.
Result<X509Ptr> ReadCert(const std::string& path);
Result<PkeyPtr> ReadKey(const std::string& path);

}  // namespace outpost::node::fleet
