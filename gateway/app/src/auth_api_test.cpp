#include "auth_api.h"

#include <gtest/gtest.h>

namespace outpost::gateway::app::authn {
namespace {

http::Request Req(std::string method, std::string path) {
  http::Request q;
  q.method = std::move(method);
  q.path = std::move(path);
  return q;
}

TEST(AuthApi, PublicPaths) {
  EXPECT_TRUE(IsPublic(Req("GET", "/healthz")));
  EXPECT_TRUE(IsPublic(Req("POST", "/api/v1/auth/login")));
  EXPECT_TRUE(IsPublic(Req("GET", "/api/v1/openapi.json")));
  EXPECT_TRUE(IsPublic(Req("GET", "/")));
  EXPECT_TRUE(IsPublic(Req("GET", "/assets/app.1234.js")));
  EXPECT_FALSE(IsPublic(Req("GET", "/metrics")));
  EXPECT_FALSE(IsPublic(Req("GET", "/api/v1")));
  EXPECT_FALSE(IsPublic(Req("GET", "/api/v1/devices")));
  EXPECT_FALSE(IsPublic(Req("GET", "/api/v1/auth/me")));
  EXPECT_FALSE(IsPublic(Req("POST", "/api/v1/auth/logout")));
  EXPECT_FALSE(IsPublic(Req("GET", "/api/v1/auth/login/x")));
}

TEST(AuthApi, WritesNeedOperatorLogoutViewer) {
  EXPECT_EQ(RequiredRole(Req("GET", "/api/v1/alerts")), auth::Role::kViewer);
  EXPECT_EQ(RequiredRole(Req("HEAD", "/api/v1/stream")), auth::Role::kViewer);
  for (const char* m : {"POST", "PUT", "PATCH", "DELETE"}) {
    EXPECT_EQ(RequiredRole(Req(m, "/api/v1/alerts/x:1/ack")), auth::Role::kOperator) << m;
  }
  EXPECT_EQ(RequiredRole(Req("POST", "/api/v1/auth/logout")), auth::Role::kViewer);
}

TEST(AuthApi, UserIsWhatTheGuardSet) {
  http::Request q = Req("GET", "/api/v1/alerts");
  EXPECT_EQ(User(q), "");
  q.headers[kUserHeader] = "alice";
  EXPECT_EQ(User(q), "alice");
}

}  // namespace
}  // namespace outpost::gateway::app::authn
