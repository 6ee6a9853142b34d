#include "outpost/systemd/journal.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <charconv>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

namespace outpost::systemd {
namespace {

class PriorityFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const char digit = static_cast<char>('0' + SyslogPriority(static_cast<int>(msg.level)));
    dest.push_back(digit);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<PriorityFlag>();
  }
};

}  // namespace

std::optional<StreamId> ParseJournalStream(const char* value) {
  if (value == nullptr) return std::nullopt;
  const char* end = value + std::strlen(value);
  const char* colon = std::strchr(value, ':');
  if (colon == nullptr) return std::nullopt;
  StreamId id;
  auto a = std::from_chars(value, colon, id.device);
  auto b = std::from_chars(colon + 1, end, id.inode);
  if (a.ec != std::errc() || a.ptr != colon || b.ec != std::errc() || b.ptr != end ||
      colon + 1 == end) {
    return std::nullopt;
  }
  return id;
}

int SyslogPriority(int spdlog_level) {
  switch (static_cast<spdlog::level::level_enum>(spdlog_level)) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return 7;  // LOG_DEBUG
    case spdlog::level::info:
      return 6;  // LOG_INFO
    case spdlog::level::warn:
      return 4;  // LOG_WARNING
    case spdlog::level::err:
      return 3;  // LOG_ERR
    case spdlog::level::critical:
      return 2;  // LOG_CRIT
    default:
      return 6;
  }
}

bool LogsToJournal() {
  const std::optional<StreamId> id = ParseJournalStream(std::getenv("JOURNAL_STREAM"));
  if (!id) return false;
  for (int fd : {1, 2}) {
    struct stat st {};
    if (::fstat(fd, &st) == 0 && static_cast<std::uint64_t>(st.st_dev) == id->device &&
        static_cast<std::uint64_t>(st.st_ino) == id->inode) {
      return true;
    }
  }
  return false;
}

bool ConfigureLogPattern(std::string_view terminal_pattern) {
  if (!LogsToJournal()) {
    spdlog::set_pattern(std::string(terminal_pattern));
    return false;
  }
  auto f = std::make_unique<spdlog::pattern_formatter>();
  f->add_flag<PriorityFlag>('*').set_pattern("<%*>%l %v");
  spdlog::set_formatter(std::move(f));
  return true;
}

}  // namespace outpost::systemd
