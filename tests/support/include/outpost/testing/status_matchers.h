// Assertions on Status and Result<T> that print the code and message when they fail:
//   OUTPOST_ASSERT_OK(store->Write(batch));
//   OUTPOST_EXPECT_OK(client.Publish(...));
//   OUTPOST_ASSERT_OK_AND_ASSIGN(auto rows, store->LoadDevices());
// Failure message: "store->Write(batch) is not OK: kResourceExhausted: ...".
#pragma once

#include <gtest/gtest.h>

#include <utility>

#include "outpost/base/status.h"

namespace outpost::testing::internal {

inline const Status& StatusOf(const Status& status) { return status; }
template <typename T>
const Status& StatusOf(const Result<T>& result) {
  return result.status();
}

template <typename T>
::testing::AssertionResult IsOk(const char* text, const T& value) {
  const Status& status = StatusOf(value);
  if (status.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << text << " is not OK: " << status.ToString();
}

template <typename T>
::testing::AssertionResult HasCode(const char* text, const char* /*code_text*/, const T& value,
                                   Code code) {
  const Status& status = StatusOf(value);
  if (status.code() == code) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << text << " is " << status.ToString() << ", expected " << CodeName(code);
}

}  // namespace outpost::testing::internal

#define OUTPOST_ASSERT_OK(expr) ASSERT_PRED_FORMAT1(::outpost::testing::internal::IsOk, expr)
#define OUTPOST_EXPECT_OK(expr) EXPECT_PRED_FORMAT1(::outpost::testing::internal::IsOk, expr)
// The status (of a Status or Result<T>) has exactly `code`: OUTPOST_EXPECT_CODE(r, Code::kNotFound)
#define OUTPOST_ASSERT_CODE(expr, code) \
  ASSERT_PRED_FORMAT2(::outpost::testing::internal::HasCode, expr, code)
#define OUTPOST_EXPECT_CODE(expr, code) \
  EXPECT_PRED_FORMAT2(::outpost::testing::internal::HasCode, expr, code)

#define OUTPOST_INTERNAL_CONCAT_INNER(a, b) a##b
#define OUTPOST_INTERNAL_CONCAT(a, b) OUTPOST_INTERNAL_CONCAT_INNER(a, b)
#define OUTPOST_INTERNAL_ASSERT_OK_AND_ASSIGN(tmp, lhs, expr)                  \
  auto tmp = (expr);                                                           \
  ASSERT_TRUE(tmp.ok()) << #expr << " is not OK: " << tmp.status().ToString(); \
  lhs = std::move(tmp).value()
// Evaluates `expr` (a Result<T>), asserts it is OK and moves its value into `lhs`.
#define OUTPOST_ASSERT_OK_AND_ASSIGN(lhs, expr)                                                  \
  OUTPOST_INTERNAL_ASSERT_OK_AND_ASSIGN(OUTPOST_INTERNAL_CONCAT(outpost_result_, __LINE__), lhs, \
                                        expr)
