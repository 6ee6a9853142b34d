#include "outpost/cloud/crypto.h"

#include <openssl/rand.h>
#include <openssl/sha.h>

#include "outpost/proto/batch.h"

namespace outpost::cloud {
namespace {

std::string Hex(const unsigned char* data, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0xf];
  }
  return out;
}

}  // namespace

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return Hex(digest, sizeof digest);
}

Result<std::string> GenerateToken() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    return Internal("RAND_bytes failed: no system randomness for a token");
  }
  return "opt_" + Hex(bytes, sizeof bytes);
}

bool IsValidIdempotencyKey(std::string_view key) {
  return proto::batch::IsValidIdempotencyKey(key);
}

}  // namespace outpost::cloud
