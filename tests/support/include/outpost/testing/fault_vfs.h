// FaultVfs: a sqlite3_vfs that wraps SQLite's default one and fails or holds writes and syncs
// on demand, for tests of the durability path (store::Options::vfs = FaultVfs::Register()).
// - FailWrites: every xWrite fails with SQLITE_IOERR_WRITE (the store maps it to kUnavailable).
// - DiskFull: every xWrite fails with SQLITE_FULL (kResourceExhausted).
// - FailSyncs: every xSync fails with SQLITE_IOERR_FSYNC (kDataLoss).
// - HoldSyncs: every xSync waits until ReleaseSyncs (a commit caught in its fsync);
//   syncs_held() says how many are waiting.
// Thread: the switches are thread-safe (a store thread reads them while the test sets them).
// Global state: one set of switches for the process; Reset() in a test's TearDown.
#pragma once

namespace outpost::testing {

class FaultVfs {
 public:
  // Registers the VFS once (not as the default) and returns its name.
  static const char* Register();
  static void FailWrites(bool on);
  static void DiskFull(bool on);
  static void FailSyncs(bool on);
  static void HoldSyncs();
  static void ReleaseSyncs();
  static int syncs_held();
  // All switches off; held syncs are released.
  static void Reset();
};

}  // namespace outpost::testing
