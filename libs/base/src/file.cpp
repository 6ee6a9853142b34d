#include "outpost/base/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

namespace outpost {

Result<std::string> ReadFile(const std::string& path, std::size_t max_bytes) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return NotFound(path + ": " + std::strerror(errno));
  struct stat st {};
  std::string out;
  Status s = Status::Ok();
  if (::fstat(fd, &st) != 0) {
    s = Unavailable(path + ": " + std::strerror(errno));
  } else if (!S_ISREG(st.st_mode)) {
    s = InvalidArgument(path + ": not a regular file");
  } else if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
    s = InvalidArgument(path + ": " + std::to_string(st.st_size) + " bytes, more than the " +
                        std::to_string(max_bytes) + " read here");
  } else {
    // The size may change while it is read: never more than max_bytes.
    out.resize(static_cast<std::size_t>(st.st_size));
    std::size_t got = 0;
    for (;;) {
      if (got == out.size()) {
        if (out.size() > max_bytes) break;
        out.resize(std::min(max_bytes + 1, out.size() + 4096));
      }
      const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        s = Unavailable(path + ": " + std::strerror(errno));
        break;
      }
      if (n == 0) break;
      got += static_cast<std::size_t>(n);
    }
    out.resize(got);
    if (s.ok() && got > max_bytes) {
      s = InvalidArgument(path + ": grew past the " + std::to_string(max_bytes) +
                          " bytes read here");
    }
  }
  ::close(fd);
  if (!s.ok()) return s;
  return out;
}

}  // namespace outpost
