#include "outpost/sqlite/error.h"

#include <cerrno>

namespace outpost::sqlite {

Code MapCode(int rc, int sys_errno) {
  switch (rc) {
    case SQLITE_IOERR_FSYNC:
    case SQLITE_IOERR_DIR_FSYNC:
      // After a failed fsync the kernel may have dropped the dirty pages: what is on disk is
      // unknown, whatever errno says.
      return Code::kDataLoss;
    default:
      break;
  }
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return Code::kResourceExhausted;
    case SQLITE_IOERR:
      if (sys_errno == ENOSPC || sys_errno == EDQUOT) return Code::kResourceExhausted;
      return Code::kUnavailable;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Code::kDataLoss;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PROTOCOL:
    case SQLITE_NOMEM:
    case SQLITE_ABORT:
    case SQLITE_NOLFS:
    case SQLITE_PERM:
      return Code::kUnavailable;
    case SQLITE_CONSTRAINT:
      return Code::kAlreadyExists;
    case SQLITE_TOOBIG:
      return Code::kInvalidArgument;
    case SQLITE_INTERRUPT:
      return Code::kCancelled;
    default:
      return Code::kInternal;
  }
}

Status Error(sqlite3* db, int rc, std::string_view context) {
  const int sys_errno = db != nullptr ? sqlite3_system_errno(db) : 0;
  std::string m(context);
  m += ": ";
  const char* detail = db != nullptr ? sqlite3_errmsg(db) : nullptr;
  m += detail != nullptr ? detail : sqlite3_errstr(rc);
  m += " (";
  m += sqlite3_errstr(rc & 0xff);
  m += ", rc " + std::to_string(rc);
  if ((rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_FULL) {
    if (sys_errno != 0) m += ", errno " + std::to_string(sys_errno);
  }
  m += ")";
  return Status(MapCode(rc, (rc & 0xff) == SQLITE_IOERR ? sys_errno : 0), std::move(m));
}

}  // namespace outpost::sqlite
