// Status and Result: recoverable errors as values, with a closed set of codes.
// Codes are mapped once at the edge (HTTP status, MQTT reason code, exit status).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

#include "outpost/base/check.h"

namespace outpost {

enum class Code : std::uint8_t {
  kOk = 0,
  kInvalidArgument,     // the input is malformed or out of range; retrying will not help
  kNotFound,            // the thing asked for does not exist
  kAlreadyExists,       // a duplicate (e.g. a reading already stored)
  kResourceExhausted,   // a bounded queue, quota or limit is full
  kFailedPrecondition,  // the operation is not valid in the current state
  kUnavailable,         // transient I/O failure (network, busy database); retry may help
  kDeadlineExceeded,    // a timeout
  kDataLoss,            // storage is corrupt or a durability step failed
  kCancelled,           // shut down before completion
  kInternal,            // a bug: an invariant did not hold
};

const char* CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return Status(); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "kUnavailable: connect 127.0.0.1:1883: connection refused"
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
inline Status DataLoss(std::string m) { return {Code::kDataLoss, std::move(m)}; }
inline Status ResourceExhausted(std::string m) { return {Code::kResourceExhausted, std::move(m)}; }
inline Status FailedPrecondition(std::string m) {
  return {Code::kFailedPrecondition, std::move(m)};
}
inline Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }

// Result<T> holds a T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT: implicit by design
    OUTPOST_CHECK(!std::get<Status>(v_).ok());
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & {
    OUTPOST_CHECK(ok());
    return std::get<T>(v_);
  }
  const T& value() const& {
    OUTPOST_CHECK(ok());
    return std::get<T>(v_);
  }
  T&& value() && {
    OUTPOST_CHECK(ok());
    return std::get<T>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace outpost

#define OUTPOST_RETURN_IF_ERROR(expr)                  \
  do {                                                 \
    ::outpost::Status outpost_status_ = (expr);        \
    if (!outpost_status_.ok()) return outpost_status_; \
  } while (0)
