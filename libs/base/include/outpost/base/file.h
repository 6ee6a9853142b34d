// Bounded reads of configured files: certificates, keys, CRLs, registries and config. A path a
// user got wrong (/dev/zero, a FIFO, a log that keeps growing, a directory) is a clear error,
// never a stall at open() or an unbounded allocation.
// Thread: safe (no shared state). Errors: see ReadFile.
#pragma once

#include <cstddef>
#include <string>

#include "outpost/base/status.h"

namespace outpost {

inline constexpr std::size_t kMaxReadBytes = 32 << 20;

// The whole of a regular file of at most `max_bytes`: kInvalidArgument for a larger one (also
// when it grows past the limit while being read), a FIFO, a device or a directory; kNotFound
// when it cannot be opened; kUnavailable for a read error. Never waits for a FIFO's writer.
Result<std::string> ReadFile(const std::string& path, std::size_t max_bytes = kMaxReadBytes);

}  // namespace outpost
