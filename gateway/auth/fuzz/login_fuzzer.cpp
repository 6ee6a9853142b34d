// Fuzzes what a client sends before it is authenticated: the login body (ParseLogin) and the
// Cookie header (CookieValue). Never crash; what they return stays within the limits.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "outpost/gateway/auth/auth.h"
#include "outpost/gateway/auth/secrets.h"

using namespace outpost::gateway;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto login = auth::ParseLogin(in);
  if (login.ok() && (login->user.empty() || login->user.size() > 64 ||
                     login->password.size() > auth::kMaxPasswordBytes)) {
    std::abort();
  }
  if (!login.ok() && size <= auth::kMaxLoginBodyBytes &&
      login.status().code() != outpost::Code::kInvalidArgument) {
    std::abort();
  }
  const std::string value = auth::CookieValue(in, "outpost_session");
  if (value.size() > size) std::abort();
  return 0;
}
