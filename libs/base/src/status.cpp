#include "outpost/base/status.h"

#include <cstdio>
#include <cstdlib>

namespace outpost {

const char* CodeName(Code code) {
  switch (code) {
    case Code::kOk:
      return "kOk";
    case Code::kInvalidArgument:
      return "kInvalidArgument";
    case Code::kNotFound:
      return "kNotFound";
    case Code::kAlreadyExists:
      return "kAlreadyExists";
    case Code::kResourceExhausted:
      return "kResourceExhausted";
    case Code::kFailedPrecondition:
      return "kFailedPrecondition";
    case Code::kUnavailable:
      return "kUnavailable";
    case Code::kDeadlineExceeded:
      return "kDeadlineExceeded";
    case Code::kDataLoss:
      return "kDataLoss";
    case Code::kCancelled:
      return "kCancelled";
    case Code::kInternal:
      return "kInternal";
  }
  return "kUnknown";
}

std::string Status::ToString() const {
  if (ok()) return "kOk";
  return std::string(CodeName(code_)) + ": " + message_;
}

namespace detail {
void CheckFailed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "OUTPOST_CHECK failed: %s at %s:%d\n", expr, file, line);
  std::fflush(stderr);
  std::abort();
}
}  // namespace detail

}  // namespace outpost
