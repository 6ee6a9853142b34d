// UnknownTokenCache: time is an input, so expiry is exact and nothing sleeps.
#include "outpost/cloud/api/unknown_token_cache.h"

#include <gtest/gtest.h>

namespace outpost::cloud::api {
namespace {

TEST(UnknownTokenCache, remembers_a_hash_for_its_ttl_then_forgets_it) {
  UnknownTokenCache c(5000, 100);
  EXPECT_FALSE(c.Contains("a", 0));
  c.Insert("a", 1000);
  EXPECT_TRUE(c.Contains("a", 1000));
  EXPECT_TRUE(c.Contains("a", 5999));
  EXPECT_FALSE(c.Contains("a", 6000));
  EXPECT_FALSE(c.Contains("b", 2000));
  EXPECT_EQ(c.stats().hits.load(), 2u);
  EXPECT_EQ(c.stats().inserted.load(), 1u);
  EXPECT_EQ(c.stats().entries.load(), 0) << "the expired entry is gone";
}

TEST(UnknownTokenCache, is_bounded_and_the_oldest_makes_room) {
  UnknownTokenCache c(5000, 3);
  c.Insert("a", 0);
  c.Insert("b", 1);
  c.Insert("c", 2);
  c.Insert("d", 3);
  EXPECT_EQ(c.stats().entries.load(), 3);
  EXPECT_EQ(c.stats().evicted_full.load(), 1u);
  EXPECT_FALSE(c.Contains("a", 4));
  EXPECT_TRUE(c.Contains("b", 4));
  EXPECT_TRUE(c.Contains("d", 4));
  for (int i = 0; i < 1000; ++i) c.Insert("x" + std::to_string(i), 10);
  EXPECT_EQ(c.stats().entries.load(), 3);
  EXPECT_TRUE(c.Contains("x999", 11));
}

TEST(UnknownTokenCache, the_same_hash_twice_keeps_one_entry) {
  UnknownTokenCache c(5000, 2);
  c.Insert("a", 0);
  c.Insert("a", 100);  // a race: two lookups missed at once
  c.Insert("b", 200);
  EXPECT_EQ(c.stats().entries.load(), 2);
  EXPECT_EQ(c.stats().evicted_full.load(), 0u);
  EXPECT_FALSE(c.Contains("a", 5000)) << "the first entry's expiry holds";
  EXPECT_TRUE(c.Contains("b", 5000));
}

TEST(UnknownTokenCache, zero_ttl_caches_nothing) {
  UnknownTokenCache c(0, 100);
  c.Insert("a", 0);
  EXPECT_FALSE(c.Contains("a", 0));
  EXPECT_EQ(c.stats().inserted.load(), 0u);
}

}  // namespace
}  // namespace outpost::cloud::api
