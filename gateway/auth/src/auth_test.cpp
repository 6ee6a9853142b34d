#include "outpost/gateway/auth/auth.h"

#include <gtest/gtest.h>

#include "outpost/gateway/auth/secrets.h"

namespace outpost::gateway::auth {
namespace {

TEST(Roles, ParseAndOrder) {
  EXPECT_EQ(*ParseRole("viewer"), Role::kViewer);
  EXPECT_EQ(*ParseRole("operator"), Role::kOperator);
  EXPECT_EQ(*ParseRole("admin"), Role::kAdmin);
  EXPECT_FALSE(ParseRole("root").ok());
  EXPECT_FALSE(ParseRole("Admin").ok());
  EXPECT_LT(Role::kViewer, Role::kOperator);
  EXPECT_LT(Role::kOperator, Role::kAdmin);
  EXPECT_STREQ(RoleName(Role::kOperator), "operator");
}

TEST(Roles, UserNames) {
  EXPECT_TRUE(ValidUserName("alice").ok());
  EXPECT_TRUE(ValidUserName("a.b_c@d-e").ok());
  EXPECT_FALSE(ValidUserName("").ok());
  EXPECT_FALSE(ValidUserName("-x").ok());
  EXPECT_FALSE(ValidUserName("a b").ok());
  EXPECT_FALSE(ValidUserName(std::string(65, 'a')).ok());
  EXPECT_TRUE(ValidUserName(std::string(64, 'a')).ok());
}

TEST(Login, CookieValue) {
  EXPECT_EQ(CookieValue("outpost_session=abc", "outpost_session"), "abc");
  EXPECT_EQ(CookieValue("a=1; outpost_session=abc; b=2", "outpost_session"), "abc");
  EXPECT_EQ(CookieValue("xoutpost_session=abc", "outpost_session"), "");
  EXPECT_EQ(CookieValue("outpost_sessionx=abc", "outpost_session"), "");
  EXPECT_EQ(CookieValue("", "outpost_session"), "");
  EXPECT_EQ(CookieValue("outpost_session=", "outpost_session"), "");
}

TEST(Login, ParseLoginNamesWhatIsWrong) {
  auto ok = ParseLogin(R"({"user":"admin","password":"pw"})");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->user, "admin");
  EXPECT_EQ(ok->password, "pw");
  EXPECT_EQ(ParseLogin(std::string(kMaxLoginBodyBytes + 1, ' ')).status().code(),
            Code::kResourceExhausted);
  for (const char* bad : {"", "x", "[]", R"({"user":"a"})", R"({"user":1,"password":"p"})",
                          R"({"user":"","password":"p"})"}) {
    EXPECT_EQ(ParseLogin(bad).status().code(), Code::kInvalidArgument) << bad;
  }
  const std::string long_password = std::string(257, 'p');
  EXPECT_FALSE(ParseLogin(R"({"user":"a","password":")" + long_password + R"("})").ok());
}

TEST(LoginLimiter, BlocksAfterMaxFailuresForTheLockout) {
  LoginLimiter l({3, 60'000, 30'000, 100});
  EXPECT_EQ(l.RetryAfterMs("u", 0), 0);
  l.Failure("u", 1000);
  l.Failure("u", 2000);
  EXPECT_EQ(l.RetryAfterMs("u", 2000), 0);
  l.Failure("u", 3000);
  EXPECT_EQ(l.RetryAfterMs("u", 3000), 30'000);
  EXPECT_EQ(l.RetryAfterMs("u", 20'000), 13'000);
  EXPECT_EQ(l.RetryAfterMs("other", 3000), 0);
  EXPECT_EQ(l.RetryAfterMs("u", 33'000), 0);
  EXPECT_EQ(l.blocked_total(), 1u);
}

TEST(LoginLimiter, FailuresOutsideTheWindowDoNotAddUp) {
  LoginLimiter l({3, 10'000, 30'000, 100});
  l.Failure("u", 0);
  l.Failure("u", 5000);
  l.Failure("u", 20'000);  // the window of the first two has ended
  EXPECT_EQ(l.RetryAfterMs("u", 20'000), 0);
}

TEST(LoginLimiter, SuccessForgets) {
  LoginLimiter l({2, 60'000, 30'000, 100});
  l.Failure("u", 0);
  l.Success("u");
  l.Failure("u", 1);
  EXPECT_EQ(l.RetryAfterMs("u", 1), 0);
}

TEST(LoginLimiter, BoundedByMaxKeys) {
  LoginLimiter l({1, 60'000, 30'000, 2});
  l.Failure("a", 0);
  l.Failure("b", 1);
  l.Failure("c", 2);  // evicts a
  EXPECT_EQ(l.size(), 2u);
  EXPECT_EQ(l.evicted(), 1u);
  EXPECT_EQ(l.RetryAfterMs("a", 3), 0);
  EXPECT_GT(l.RetryAfterMs("c", 3), 0);
}

std::function<std::string()> Counter() {
  auto n = std::make_shared<int>(0);
  return [n] { return "t" + std::to_string(++*n); };
}

TEST(SessionTable, IdleAndAbsoluteExpiry) {
  SessionTable t({1000, 5000, 10}, Counter());
  const std::string id = t.Create("alice", "", 0).id;
  EXPECT_NE(t.Find(id, 999), nullptr);   // touches it
  EXPECT_NE(t.Find(id, 1998), nullptr);  // idle from 999
  EXPECT_EQ(t.Find(id, 2998), nullptr);  // idle 1000
  EXPECT_EQ(t.expired(), 1u);
  const std::string id2 = t.Create("alice", "", 10'000).id;
  for (std::int64_t at = 10'500; at < 15'000; at += 500) ASSERT_NE(t.Find(id2, at), nullptr);
  EXPECT_EQ(t.Find(id2, 15'000), nullptr);  // absolute, however busy
}

TEST(SessionTable, CsrfDiffersFromIdAndBoundedCount) {
  SessionTable t({1000, 5000, 2}, Counter());
  const Session a = t.Create("a", "", 0);
  EXPECT_NE(a.id, a.csrf);
  const std::string b = t.Create("b", "", 1).id;
  ASSERT_NE(t.Find(a.id, 2), nullptr);  // a is now the most recently used
  t.Create("c", "", 3);                 // evicts b
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.evicted(), 1u);
  EXPECT_EQ(t.Find(b, 4), nullptr);
  EXPECT_NE(t.Find(a.id, 4), nullptr);
}

TEST(SessionTable, RemoveAndRemoveUser) {
  SessionTable t({1000, 5000, 10}, Counter());
  const std::string a1 = t.Create("a", "", 0).id, a2 = t.Create("a", "", 0).id,
                    b = t.Create("b", "", 0).id;
  EXPECT_EQ(t.RemoveUser("a"), 2u);
  EXPECT_EQ(t.Find(a1, 1), nullptr);
  EXPECT_EQ(t.Find(a2, 1), nullptr);
  t.Remove(b);
  EXPECT_EQ(t.size(), 0u);
}

TEST(Secrets, HashVerify) {
  ASSERT_TRUE(InitCrypto().ok());
  auto h = HashPassword("correct horse");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->rfind("$argon2id$", 0), 0u);
  EXPECT_TRUE(VerifyPassword(*h, "correct horse"));
  EXPECT_FALSE(VerifyPassword(*h, "correct horsE"));
  EXPECT_FALSE(VerifyPassword("garbage", "x"));
  EXPECT_NE(*HashPassword("correct horse"), *h);  // salted
  EXPECT_FALSE(VerifyPassword(DummyHash(), ""));
}

TEST(Secrets, RandomTokens) {
  ASSERT_TRUE(InitCrypto().ok());
  const std::string t = GenerateToken();
  EXPECT_EQ(t.size(), 4u + 64u);
  EXPECT_NE(t, GenerateToken());
  EXPECT_EQ(TokenHash(t), TokenHash(t));
  EXPECT_NE(TokenHash(t), TokenHash(GenerateToken()));
  EXPECT_EQ(TokenHash(t).size(), 64u);
  EXPECT_EQ(GeneratePassword().size(), 20u);
  EXPECT_NE(GeneratePassword(), GeneratePassword());
  EXPECT_EQ(RandomHex(16).size(), 32u);
}

}  // namespace
}  // namespace outpost::gateway::auth
