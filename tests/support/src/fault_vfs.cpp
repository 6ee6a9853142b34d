#include "outpost/testing/fault_vfs.h"

#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

namespace outpost::testing {
namespace {

std::atomic<bool> g_fail_writes{false};
std::atomic<bool> g_disk_full{false};
std::atomic<bool> g_fail_syncs{false};
std::mutex g_hold_mu;
std::condition_variable g_hold_cv;
bool g_hold_syncs = false;  // under g_hold_mu
int g_syncs_held = 0;       // under g_hold_mu

sqlite3_vfs* g_real_vfs = nullptr;
sqlite3_vfs g_fault_vfs;
sqlite3_io_methods g_fault_methods;

struct FaultFile {
  sqlite3_file base;
  sqlite3_file* real;
};
sqlite3_file* Real(sqlite3_file* f) { return reinterpret_cast<FaultFile*>(f)->real; }

int FClose(sqlite3_file* f) { return Real(f)->pMethods->xClose(Real(f)); }
int FRead(sqlite3_file* f, void* p, int n, sqlite3_int64 off) {
  return Real(f)->pMethods->xRead(Real(f), p, n, off);
}
int FWrite(sqlite3_file* f, const void* p, int n, sqlite3_int64 off) {
  if (g_fail_writes) return SQLITE_IOERR_WRITE;
  if (g_disk_full) return SQLITE_FULL;
  return Real(f)->pMethods->xWrite(Real(f), p, n, off);
}
int FTruncate(sqlite3_file* f, sqlite3_int64 size) {
  return Real(f)->pMethods->xTruncate(Real(f), size);
}
int FSync(sqlite3_file* f, int flags) {
  {
    std::unique_lock<std::mutex> lock(g_hold_mu);
    if (g_hold_syncs) {
      ++g_syncs_held;
      g_hold_cv.notify_all();
      g_hold_cv.wait(lock, [] { return !g_hold_syncs; });
      --g_syncs_held;
    }
  }
  if (g_fail_syncs) return SQLITE_IOERR_FSYNC;
  return Real(f)->pMethods->xSync(Real(f), flags);
}
int FFileSize(sqlite3_file* f, sqlite3_int64* size) {
  return Real(f)->pMethods->xFileSize(Real(f), size);
}
int FLock(sqlite3_file* f, int l) { return Real(f)->pMethods->xLock(Real(f), l); }
int FUnlock(sqlite3_file* f, int l) { return Real(f)->pMethods->xUnlock(Real(f), l); }
int FCheckReserved(sqlite3_file* f, int* out) {
  return Real(f)->pMethods->xCheckReservedLock(Real(f), out);
}
int FFileControl(sqlite3_file* f, int op, void* arg) {
  return Real(f)->pMethods->xFileControl(Real(f), op, arg);
}
int FSectorSize(sqlite3_file* f) { return Real(f)->pMethods->xSectorSize(Real(f)); }
int FDeviceCharacteristics(sqlite3_file* f) {
  return Real(f)->pMethods->xDeviceCharacteristics(Real(f));
}
int FShmMap(sqlite3_file* f, int i, int sz, int extend, void volatile** pp) {
  return Real(f)->pMethods->xShmMap(Real(f), i, sz, extend, pp);
}
int FShmLock(sqlite3_file* f, int off, int n, int flags) {
  return Real(f)->pMethods->xShmLock(Real(f), off, n, flags);
}
void FShmBarrier(sqlite3_file* f) { Real(f)->pMethods->xShmBarrier(Real(f)); }
int FShmUnmap(sqlite3_file* f, int del) { return Real(f)->pMethods->xShmUnmap(Real(f), del); }
int FFetch(sqlite3_file* f, sqlite3_int64 off, int n, void** pp) {
  return Real(f)->pMethods->xFetch(Real(f), off, n, pp);
}
int FUnfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
  return Real(f)->pMethods->xUnfetch(Real(f), off, p);
}

int FOpen(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  auto* ff = reinterpret_cast<FaultFile*>(f);
  ff->real = reinterpret_cast<sqlite3_file*>(ff + 1);
  ff->base.pMethods = nullptr;
  const int rc = g_real_vfs->xOpen(g_real_vfs, name, ff->real, flags, out_flags);
  if (ff->real->pMethods != nullptr) {
    g_fault_methods.iVersion = ff->real->pMethods->iVersion;
    ff->base.pMethods = &g_fault_methods;
  }
  return rc;
}

}  // namespace

const char* FaultVfs::Register() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_real_vfs = sqlite3_vfs_find(nullptr);
    g_fault_vfs = *g_real_vfs;
    g_fault_vfs.zName = "outpost-fault";
    g_fault_vfs.szOsFile = static_cast<int>(sizeof(FaultFile)) + g_real_vfs->szOsFile;
    g_fault_vfs.xOpen = FOpen;
    g_fault_vfs.pNext = nullptr;
    g_fault_methods = sqlite3_io_methods{3,
                                         FClose,
                                         FRead,
                                         FWrite,
                                         FTruncate,
                                         FSync,
                                         FFileSize,
                                         FLock,
                                         FUnlock,
                                         FCheckReserved,
                                         FFileControl,
                                         FSectorSize,
                                         FDeviceCharacteristics,
                                         FShmMap,
                                         FShmLock,
                                         FShmBarrier,
                                         FShmUnmap,
                                         FFetch,
                                         FUnfetch};
    sqlite3_vfs_register(&g_fault_vfs, 0);
  });
  return "outpost-fault";
}

void FaultVfs::FailWrites(bool on) { g_fail_writes = on; }
void FaultVfs::DiskFull(bool on) { g_disk_full = on; }
void FaultVfs::FailSyncs(bool on) { g_fail_syncs = on; }

void FaultVfs::HoldSyncs() {
  std::lock_guard<std::mutex> lock(g_hold_mu);
  g_hold_syncs = true;
}

void FaultVfs::ReleaseSyncs() {
  {
    std::lock_guard<std::mutex> lock(g_hold_mu);
    g_hold_syncs = false;
  }
  g_hold_cv.notify_all();
}

int FaultVfs::syncs_held() {
  std::lock_guard<std::mutex> lock(g_hold_mu);
  return g_syncs_held;
}

void FaultVfs::Reset() {
  FailWrites(false);
  DiskFull(false);
  FailSyncs(false);
  ReleaseSyncs();
}

}  // namespace outpost::testing
