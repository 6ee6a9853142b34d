// The cryptography of logins, on libsodium: Argon2id password hashes (crypto_pwhash_str, the
// interactive limits: about 64 MiB and a tenth of a second per hash, on purpose), random tokens
// and the fast hash API tokens are stored under (they are 32 random bytes: no stretching needed).
// Thread: every function is thread-safe (Init() first, once).
// Errors: kInternal when libsodium cannot start; kResourceExhausted when hashing runs out of
// memory.
#pragma once

#include <string>
#include <string_view>

#include "outpost/base/status.h"

namespace outpost::gateway::auth {

inline constexpr std::size_t kMaxPasswordBytes = 256;
inline constexpr std::size_t kMinPasswordBytes = 8;

Status InitCrypto();  // sodium_init(); idempotent

// "$argon2id$v=19$m=...": the salt and limits are inside.
Result<std::string> HashPassword(std::string_view password);
// Constant work whatever the password; false on a malformed hash.
bool VerifyPassword(const std::string& hash, std::string_view password);
// A hash of a random password: verified against when the user is unknown, so that an unknown
// user costs as long as a wrong password.
const std::string& DummyHash();

// `bytes` random bytes as lower-case hex.
std::string RandomHex(std::size_t bytes);
// A generated password: 20 characters of an unambiguous alphabet (about 115 bits).
std::string GeneratePassword();
// An API token: "opt_" + 64 hex digits (32 random bytes).
std::string GenerateToken();
// The stored form of a token: hex of its BLAKE2b-256 (crypto_generichash).
std::string TokenHash(std::string_view token);

}  // namespace outpost::gateway::auth
