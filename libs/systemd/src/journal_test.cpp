#include "outpost/systemd/journal.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cstdlib>
#include <sstream>
#include <string>

namespace outpost::systemd {
namespace {

TEST(ParseJournalStream, device_and_inode) {
  auto id = ParseJournalStream("8:12345");
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(id->device, 8u);
  EXPECT_EQ(id->inode, 12345u);
  for (const char* bad : {"", "8", "8:", ":5", "a:b", "8:5x", "-1:5"}) {
    EXPECT_FALSE(ParseJournalStream(bad).has_value()) << bad;
  }
  EXPECT_FALSE(ParseJournalStream(nullptr).has_value());
}

TEST(SyslogPriority, maps_spdlog_levels) {
  EXPECT_EQ(SyslogPriority(spdlog::level::debug), 7);
  EXPECT_EQ(SyslogPriority(spdlog::level::info), 6);
  EXPECT_EQ(SyslogPriority(spdlog::level::warn), 4);
  EXPECT_EQ(SyslogPriority(spdlog::level::err), 3);
  EXPECT_EQ(SyslogPriority(spdlog::level::critical), 2);
}

// JOURNAL_STREAM naming our own stderr, as the service manager sets it.
TEST(ConfigureLogPattern, prefixes_priorities_when_stderr_is_the_journal) {
  struct stat st {};
  ASSERT_EQ(::fstat(2, &st), 0);
  const std::string stream = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  ::setenv("JOURNAL_STREAM", stream.c_str(), 1);
  EXPECT_TRUE(LogsToJournal());
  std::ostringstream out;
  auto logger =
      std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::ostream_sink_st>(out));
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(logger);
  EXPECT_TRUE(ConfigureLogPattern("%v"));
  spdlog::warn("disk low");
  spdlog::error("write failed");
  spdlog::info("hello");
  EXPECT_EQ(out.str(), "<4>warning disk low\n<3>error write failed\n<6>info hello\n");

  ::setenv("JOURNAL_STREAM", "1:1", 1);  // another stream: a terminal, no prefixes
  EXPECT_FALSE(LogsToJournal());
  out.str("");
  EXPECT_FALSE(ConfigureLogPattern("%l %v"));
  spdlog::warn("plain");
  EXPECT_EQ(out.str(), "warning plain\n");
  ::unsetenv("JOURNAL_STREAM");
  spdlog::set_default_logger(previous);
}

}  // namespace
}  // namespace outpost::systemd
