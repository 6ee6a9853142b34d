// Hashing and token generation for the cloud (OpenSSL underneath).
// Thread: all functions are thread-safe. Errors: GenerateToken returns kInternal when the
// system random source fails.
#pragma once

#include <string>
#include <string_view>

#include "outpost/base/status.h"

namespace outpost::cloud {

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

// A new API token: "opt_" followed by 64 hex characters (256 random bits).
Result<std::string> GenerateToken();

// An Idempotency-Key: 1..128 characters of [A-Za-z0-9._:-].
bool IsValidIdempotencyKey(std::string_view key);

}  // namespace outpost::cloud
