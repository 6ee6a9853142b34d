#include "outpost/testing/tmpfs_mount.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace outpost::testing {

bool TmpfsMount::Supported() { return ::geteuid() == 0; }

Result<std::unique_ptr<TmpfsMount>> TmpfsMount::Mount(const std::string& path,
                                                      std::int64_t size_bytes) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return Unavailable("mkdir " + path + ": " + std::strerror(errno));
  }
  const std::string data = "size=" + std::to_string(size_bytes) + ",mode=0755";
  if (::mount("tmpfs", path.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, data.c_str()) != 0) {
    return Unavailable("mount tmpfs (" + data + ") on " + path + ": " + std::strerror(errno));
  }
  return std::unique_ptr<TmpfsMount>(new TmpfsMount(path));
}

TmpfsMount::~TmpfsMount() {
  // MNT_DETACH: a process still holding a file there (a gateway that did not stop) must not
  // keep the mount, or the temp dir, alive.
  (void)::umount2(path_.c_str(), MNT_DETACH);
}

Status TmpfsMount::Resize(std::int64_t size_bytes) {
  const std::string data = "size=" + std::to_string(size_bytes);
  if (::mount("tmpfs", path_.c_str(), "tmpfs", MS_REMOUNT | MS_NOSUID | MS_NODEV, data.c_str()) !=
      0) {
    return Unavailable("remount " + path_ + " (" + data + "): " + std::strerror(errno));
  }
  return Status::Ok();
}

Result<std::int64_t> TmpfsMount::FillWithBallast(const std::string& name, std::int64_t max_bytes) {
  const std::string file = path_ + "/" + name;
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Unavailable("open " + file + ": " + std::strerror(errno));
  std::vector<char> chunk(4096, 0);
  std::int64_t written = 0;
  while (written < max_bytes) {
    const ssize_t n = ::write(fd, chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // ENOSPC: full
    written += n;
  }
  ::close(fd);
  return written;
}

Status TmpfsMount::RemoveBallast(const std::string& name) {
  const std::string file = path_ + "/" + name;
  if (::unlink(file.c_str()) != 0)
    return Unavailable("unlink " + file + ": " + std::strerror(errno));
  return Status::Ok();
}

std::int64_t TmpfsMount::free_bytes() const {
  struct statvfs st {};
  if (::statvfs(path_.c_str(), &st) != 0) return -1;
  return static_cast<std::int64_t>(st.f_bavail) * static_cast<std::int64_t>(st.f_frsize);
}

}  // namespace outpost::testing
