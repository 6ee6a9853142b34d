// TempDir: a fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
// Ownership: owns the directory. Thread: not thread-safe.
// Errors: failing to create the directory is fatal (OUTPOST_CHECK): tests cannot run without it.
#pragma once

#include <string>
#include <string_view>

namespace outpost::testing {

class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "outpost-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name
  std::string File(std::string_view name) const;
  // Leave the directory behind (e.g. to inspect logs after a failure).
  void Keep() { keep_ = true; }

 private:
  std::string path_;
  bool keep_ = false;
};

}  // namespace outpost::testing
