#include "outpost/gateway/auth/auth_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>

#include "outpost/gateway/auth/secrets.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/temp_dir.h"

namespace outpost::gateway::auth {
namespace {

using testing::TempDir;

std::unique_ptr<AuthStore> OpenIn(const TempDir& dir, std::int64_t audit_max_rows = 100) {
  auto s = AuthStore::Open({dir.File("auth.sqlite"), audit_max_rows});
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

TEST(AuthStore, CreatedOwnerOnly) {
  TempDir dir;
  auto store = OpenIn(dir);
  ASSERT_NE(store, nullptr);
  struct stat st {};
  ASSERT_EQ(::stat(dir.File("auth.sqlite").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(AuthStore, NarrowsAnExistingWideFile) {
  TempDir dir;
  { ASSERT_NE(OpenIn(dir), nullptr); }
  ASSERT_EQ(::chmod(dir.File("auth.sqlite").c_str(), 0644), 0);
  ASSERT_NE(OpenIn(dir), nullptr);
  struct stat st {};
  ASSERT_EQ(::stat(dir.File("auth.sqlite").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(AuthStore, UsersAddFindPasswdRemove) {
  TempDir dir;
  auto s = OpenIn(dir);
  ASSERT_NE(s, nullptr);
  EXPECT_FALSE(*s->HasAdmin());
  OUTPOST_ASSERT_OK(s->AddUser("root", Role::kAdmin, "h0", 1));
  OUTPOST_ASSERT_OK(s->AddUser("alice", Role::kViewer, "h1", 2));
  EXPECT_EQ(s->AddUser("alice", Role::kAdmin, "h2", 3).code(), Code::kAlreadyExists);
  EXPECT_EQ(s->AddUser("bad name", Role::kAdmin, "h2", 3).code(), Code::kInvalidArgument);
  EXPECT_TRUE(*s->HasAdmin());
  auto a = s->FindUser("alice");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->role, Role::kViewer);
  EXPECT_EQ(a->password_hash, "h1");
  OUTPOST_ASSERT_OK(s->SetPassword("alice", "h9"));
  EXPECT_EQ(s->FindUser("alice")->password_hash, "h9");
  EXPECT_EQ(s->SetPassword("bob", "x").code(), Code::kNotFound);
  EXPECT_EQ(s->FindUser("bob").status().code(), Code::kNotFound);
  EXPECT_EQ(s->Users()->size(), 2u);
  // The last admin stays.
  EXPECT_EQ(s->RemoveUser("root").code(), Code::kFailedPrecondition);
  OUTPOST_ASSERT_OK(s->RemoveUser("alice"));
  EXPECT_EQ(s->RemoveUser("alice").code(), Code::kNotFound);
  OUTPOST_ASSERT_OK(s->AddUser("root2", Role::kAdmin, "h", 4));
  OUTPOST_ASSERT_OK(s->RemoveUser("root"));
}

TEST(AuthStore, TokensStoredAsHashesAndRevoked) {
  TempDir dir;
  auto s = OpenIn(dir);
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(InitCrypto().ok());
  const std::string token = GenerateToken();
  auto id = s->AddToken("ci", Role::kOperator, TokenHash(token), 5);
  ASSERT_TRUE(id.ok());
  auto t = s->FindToken(TokenHash(token));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->id, *id);
  EXPECT_EQ(t->role, Role::kOperator);
  EXPECT_EQ(s->FindToken(token).status().code(), Code::kNotFound);  // never stored as is
  EXPECT_EQ(s->Tokens()->size(), 1u);
  OUTPOST_ASSERT_OK(s->RevokeToken(*id));
  EXPECT_EQ(s->FindToken(TokenHash(token)).status().code(), Code::kNotFound);
  EXPECT_EQ(s->RevokeToken(*id).code(), Code::kNotFound);
}

TEST(AuthStore, AuditLogKeepsTheNewest) {
  TempDir dir;
  auto s = OpenIn(dir, /*audit_max_rows=*/3);
  ASSERT_NE(s, nullptr);
  for (int i = 0; i < 5; ++i) OUTPOST_ASSERT_OK(s->Audit(i, "u", "login", std::to_string(i)));
  auto log = s->AuditLog(10);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), 3u);
  EXPECT_EQ((*log)[0].detail, "4");
  EXPECT_EQ((*log)[2].detail, "2");
  EXPECT_EQ(s->audit_trimmed(), 2u);
}

TEST(AuthStore, TwoHandlesShareTheFile) {
  TempDir dir;
  auto a = OpenIn(dir), b = OpenIn(dir);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  OUTPOST_ASSERT_OK(a->AddUser("x", Role::kAdmin, "h", 1));
  EXPECT_TRUE(b->FindUser("x").ok());
}

}  // namespace
}  // namespace outpost::gateway::auth

namespace outpost::gateway::auth {
namespace {

TEST(EnsureAdmin, FirstStartWritesAPasswordFileOwnerOnlyOnce) {
  testing::TempDir dir;
  auto s = OpenIn(dir);
  ASSERT_NE(s, nullptr);
  const std::string file = dir.File("admin-password");
  auto created = EnsureAdmin(*s, file, 7);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_TRUE(*created);
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::FILE* f = std::fopen(file.c_str(), "r");
  ASSERT_NE(f, nullptr);
  char buf[64] = {};
  ASSERT_NE(std::fgets(buf, sizeof buf, f), nullptr);
  std::fclose(f);
  std::string password(buf);
  ASSERT_EQ(password.back(), '\n');
  password.pop_back();
  auto admin = s->FindUser("admin");
  ASSERT_TRUE(admin.ok());
  EXPECT_EQ(admin->role, Role::kAdmin);
  EXPECT_TRUE(VerifyPassword(admin->password_hash, password));
  EXPECT_EQ(admin->password_hash.find(password), std::string::npos);
  auto again = EnsureAdmin(*s, file, 8);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
}

}  // namespace
}  // namespace outpost::gateway::auth
