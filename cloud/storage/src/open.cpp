#include "outpost/cloud/storage/open.h"

#include <algorithm>
#include <utility>

#include "outpost/cloud/storage/postgres_storage.h"
#include "outpost/cloud/storage/sqlite_storage.h"

namespace outpost::cloud::storage {

std::string ParseDatabaseUrl(const std::string& url, std::string* target) {
  auto starts = [&](const char* p) { return url.rfind(p, 0) == 0; };
  if (starts("postgresql://") || starts("postgres://")) {
    *target = url;
    return "postgresql";
  }
  if (starts("sqlite:")) {
    *target = url.substr(7);
    if (target->rfind("//", 0) == 0) *target = target->substr(2);  // sqlite:///abs/path
    return target->empty() ? "" : "sqlite";
  }
  if (url.empty() || url.find("://") != std::string::npos) return "";
  *target = url;
  return "sqlite";
}

namespace {

// [begin, end) of the password in `url`, or {npos, npos}: first the userinfo's, then a
// password= query parameter's.
std::pair<std::size_t, std::size_t> PasswordSpan(const std::string& url, std::size_t from) {
  const std::size_t scheme = url.find("://");
  if (from == 0 && scheme != std::string::npos) {
    const std::size_t start = scheme + 3;
    const std::size_t end_authority = url.find_first_of("/?#", start);
    const std::size_t at =
        url.rfind('@', end_authority == std::string::npos ? url.size() : end_authority);
    if (at != std::string::npos && at > start) {
      const std::size_t colon = url.find(':', start);
      if (colon != std::string::npos && colon < at) return {colon + 1, at};
    }
  }
  const std::size_t q = url.find('?');
  if (q == std::string::npos) return {std::string::npos, std::string::npos};
  for (std::size_t p = std::max(q + 1, from); p < url.size();) {
    const std::size_t amp = url.find('&', p);
    const std::size_t end = amp == std::string::npos ? url.size() : amp;
    if (url.compare(p, 9, "password=") == 0) return {p + 9, end};
    p = end + 1;
  }
  return {std::string::npos, std::string::npos};
}

}  // namespace

std::string RedactDatabaseUrl(const std::string& url) {
  std::string out = url;
  std::size_t from = 0;
  for (int i = 0; i < 8; ++i) {  // bounded: the userinfo and a few query parameters
    const auto [b, e] = PasswordSpan(out, from);
    if (b == std::string::npos) break;
    out.replace(b, e - b, "***");
    from = b + 3;
  }
  return out;
}

bool DatabaseUrlHasPassword(const std::string& url) {
  const auto span = PasswordSpan(url, 0);
  return span.first != std::string::npos && span.second > span.first;
}

Result<std::unique_ptr<Storage>> OpenStorage(const std::string& url,
                                             const StorageOptions& options) {
  std::string target;
  const std::string kind = ParseDatabaseUrl(url, &target);
  if (kind == "sqlite") {
    auto s = SqliteStorage::Open(target, options);
    if (!s.ok()) return s.status();
    return std::unique_ptr<Storage>(std::move(s).value());
  }
  if (kind == "postgresql") {
    auto s = PostgresStorage::Open(target, options);
    if (!s.ok()) return s.status();
    return std::unique_ptr<Storage>(std::move(s).value());
  }
  return InvalidArgument("--database \"" + RedactDatabaseUrl(url) +
                         "\": expected sqlite:PATH, a file path, or postgresql://...");
}

}  // namespace outpost::cloud::storage
