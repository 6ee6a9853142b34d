// The one map from SQLite result codes to our closed Status codes (outpost/base/status.h).
// Every SQLite user in the project goes through it, so a full disk means the same everywhere.
//
//   SQLite result (extended codes on)          Code                 callers
//   SQLITE_FULL; any SQLITE_IOERR_* whose       kResourceExhausted   disk full (or quota): the
//     errno is ENOSPC or EDQUOT (not fsync)                          world can fix it; retry
//                                                                    later, never fatal
//   SQLITE_IOERR_FSYNC, SQLITE_IOERR_DIR_FSYNC  kDataLoss            a durability step failed:
//   SQLITE_CORRUPT*, SQLITE_NOTADB                                   stop, let a human look
//   SQLITE_BUSY*, SQLITE_LOCKED*, other         kUnavailable         transient: retry may help
//     SQLITE_IOERR_*, SQLITE_CANTOPEN*,
//     SQLITE_READONLY*, SQLITE_PROTOCOL,
//     SQLITE_NOMEM, SQLITE_ABORT*, SQLITE_NOLFS
//   SQLITE_CONSTRAINT*                          kAlreadyExists       a unique key already taken
//   SQLITE_TOOBIG                               kInvalidArgument     a value over SQLite's limit
//   SQLITE_INTERRUPT                            kCancelled
//   SQLITE_ERROR, SQLITE_MISUSE, SQLITE_RANGE,  kInternal            our SQL or binds are wrong
//     SQLITE_MISMATCH, SQLITE_SCHEMA, SQLITE_AUTH, anything else unknown
//
// Thread: pure functions; Error() reads the connection's last error, so call it on the thread
// that made the failing call, right after it.
#pragma once

#include <sqlite3.h>

#include <string>
#include <string_view>

#include "outpost/base/status.h"

namespace outpost::sqlite {

// `rc`: an (extended) SQLite result code other than OK/ROW/DONE. `sys_errno`: the OS error of
// the failing VFS call (sqlite3_system_errno), 0 if unknown.
Code MapCode(int rc, int sys_errno = 0);

// "<context>: <sqlite message> (SQLITE_FULL, rc 13[, errno 28])" with the code from MapCode.
// `db` may be null (open failures); the message then comes from sqlite3_errstr(rc).
Status Error(sqlite3* db, int rc, std::string_view context);

// True for a Status that means "the disk (or quota) is full": kResourceExhausted from Error().
inline bool IsDiskFull(const Status& s) { return s.code() == Code::kResourceExhausted; }

}  // namespace outpost::sqlite
