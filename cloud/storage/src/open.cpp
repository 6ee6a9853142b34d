#include "outpost/cloud/storage/open.h"

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
  return InvalidArgument("--database \"" + url +
                         "\": expected sqlite:PATH, a file path, or postgresql://...");
}

}  // namespace outpost::cloud::storage
