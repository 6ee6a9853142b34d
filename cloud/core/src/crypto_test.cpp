#include "outpost/cloud/crypto.h"

#include <gtest/gtest.h>

#include "outpost/testing/status_matchers.h"

namespace outpost::cloud {
namespace {

TEST(Crypto, Sha256KnownVector) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Crypto, TokensAreDistinctAndWellFormed) {
  Result<std::string> a = GenerateToken();
  Result<std::string> b = GenerateToken();
  OUTPOST_ASSERT_OK(a);
  OUTPOST_ASSERT_OK(b);
  EXPECT_EQ(a->size(), 68u);
  EXPECT_EQ(a->rfind("opt_", 0), 0u);
  EXPECT_NE(*a, *b);
}

TEST(Crypto, IdempotencyKeyCharset) {
  EXPECT_TRUE(IsValidIdempotencyKey("gw1:3f9a:17"));
  EXPECT_TRUE(IsValidIdempotencyKey(std::string(128, 'k')));
  EXPECT_FALSE(IsValidIdempotencyKey(std::string(129, 'k')));
  EXPECT_FALSE(IsValidIdempotencyKey(""));
  EXPECT_FALSE(IsValidIdempotencyKey("a b"));
  EXPECT_FALSE(IsValidIdempotencyKey("a/b"));
}

}  // namespace
}  // namespace outpost::cloud
