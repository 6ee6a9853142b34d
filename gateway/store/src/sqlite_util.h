// Thin RAII and error helpers over the SQLite C API, private to the store.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>

#include "outpost/base/status.h"

namespace outpost::gateway::store::sql {

struct StmtDeleter {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

// Maps a SQLite result code to our closed set. Durability failures (fsync) and corruption are
// kDataLoss; everything else the world can cause (busy, full, I/O, read-only) is kUnavailable;
// SQL misuse is a bug (kInternal).
inline Code MapCode(int rc) {
  switch (rc) {
    case SQLITE_IOERR_FSYNC:
    case SQLITE_IOERR_DIR_FSYNC:
      return Code::kDataLoss;
    default:
      break;
  }
  switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Code::kDataLoss;
    case SQLITE_ERROR:
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
    case SQLITE_CONSTRAINT:
    case SQLITE_TOOBIG:
      return Code::kInternal;
    default:
      return Code::kUnavailable;
  }
}

// "store /var/lib/outpost/gateway.db: commit: disk I/O error (SQLITE_IOERR_FSYNC=1028)".
inline Status Error(sqlite3* db, int rc, const std::string& path, std::string_view what) {
  std::string m = "store " + path + ": ";
  m.append(what);
  m += ": ";
  const char* detail = db != nullptr ? sqlite3_errmsg(db) : nullptr;
  m += detail != nullptr ? detail : sqlite3_errstr(rc);
  m += " (sqlite rc " + std::to_string(rc) + ")";
  return Status(MapCode(rc), std::move(m));
}

inline sqlite3_int64 ClampLimit(size_t n) {
  return n > static_cast<size_t>(std::numeric_limits<sqlite3_int64>::max())
             ? -1
             : static_cast<sqlite3_int64>(n);
}

inline std::string ColumnText(sqlite3_stmt* s, int i) {
  const void* p = sqlite3_column_blob(s, i);
  const int n = sqlite3_column_bytes(s, i);
  return p != nullptr ? std::string(static_cast<const char*>(p), static_cast<size_t>(n))
                      : std::string();
}

inline std::string_view ColumnView(sqlite3_stmt* s, int i) {
  const void* p = sqlite3_column_blob(s, i);
  const int n = sqlite3_column_bytes(s, i);
  return p != nullptr ? std::string_view(static_cast<const char*>(p), static_cast<size_t>(n))
                      : std::string_view();
}

}  // namespace outpost::gateway::store::sql
