// OpenStorage: builds the Storage adapter a database URL names.
//   sqlite:PATH, or a bare PATH          -> SqliteStorage (file created if missing)
//   postgresql://... or postgres://...   -> PostgresStorage (libpq connection URI)
// Ownership: the caller owns the returned Storage. Thread: call from one thread.
// Errors: kInvalidArgument (unrecognised URL), kUnavailable (cannot open or connect).
// Migrations are NOT run here: call Storage::Migrate().
#pragma once

#include <memory>
#include <string>

#include "outpost/base/status.h"
#include "outpost/cloud/storage.h"

namespace outpost::cloud::storage {

inline constexpr const char* kDefaultDatabaseUrl = "sqlite:outpost-cloud.db";

struct StorageOptions {
  // PostgreSQL: connections in the pool (each request borrows one). SQLite: reader connections.
  int pool_size = 4;
  // How long a request waits for a busy database (PostgreSQL pool connection, SQLite writer)
  // before it fails with kUnavailable (mapped to 503 + Retry-After).
  int acquire_timeout_ms = 10'000;
  // SQLite: synchronous=FULL (a power cut loses no acknowledged batch) unless false (NORMAL).
  bool sqlite_sync_full = true;
};

Result<std::unique_ptr<Storage>> OpenStorage(const std::string& url,
                                             const StorageOptions& options = {});

// "sqlite", "postgresql", or "" for an unrecognised URL; `target` gets the path or URI.
std::string ParseDatabaseUrl(const std::string& url, std::string* target);

// The URL with any password replaced by "***" (`scheme://user:PASSWORD@host`, `password=` in the
// query), for logs and error messages: a password never reaches either.
std::string RedactDatabaseUrl(const std::string& url);
// Whether the URL carries a password (then it belongs in the environment or a file, not on a
// command line every local user can read).
bool DatabaseUrlHasPassword(const std::string& url);

}  // namespace outpost::cloud::storage
