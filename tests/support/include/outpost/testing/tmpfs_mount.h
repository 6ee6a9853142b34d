// TmpfsMount: a size-limited tmpfs mounted on a directory for the life of the object, to test
// what happens when a file system fills up (a real ENOSPC, not an injected one).
//
//   if (!TmpfsMount::Supported()) GTEST_SKIP() << TmpfsMount::kSkipReason;
//   auto fs = TmpfsMount::Mount(dir.File("fs"), 4 << 20);
//
// Needs root (mount(2)); Supported() is false otherwise. Mount failing as root is an error.
// Ownership: owns the mount (unmounted, lazily, on destruction) and the mount point it created.
// Thread: not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "outpost/base/status.h"

namespace outpost::testing {

class TmpfsMount {
 public:
  static constexpr const char* kSkipReason = "mounting a tmpfs needs root (CI runs as root)";
  static bool Supported();
  // Creates `path` (if missing) and mounts a tmpfs of `size_bytes` on it.
  static Result<std::unique_ptr<TmpfsMount>> Mount(const std::string& path,
                                                   std::int64_t size_bytes);
  ~TmpfsMount();
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;

  // Remounts with a new size (files are kept; shrinking below what is used fails).
  Status Resize(std::int64_t size_bytes);
  // Writes a file of zeros until the file system is full or `max_bytes` are written; returns the
  // bytes written. The file is removed by RemoveBallast() (or with the mount).
  Result<std::int64_t> FillWithBallast(const std::string& name, std::int64_t max_bytes);
  Status RemoveBallast(const std::string& name);
  // statvfs: bytes still free for an unprivileged writer.
  std::int64_t free_bytes() const;
  const std::string& path() const { return path_; }

 private:
  explicit TmpfsMount(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace outpost::testing
