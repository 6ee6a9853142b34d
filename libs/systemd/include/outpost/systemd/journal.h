// Log lines for the journal (sd-daemon(3) "<N>" prefixes): when the service manager connects
// our stdout/stderr to the journal it sets JOURNAL_STREAM to "<device>:<inode>" of that stream;
// then each line starts with its syslog priority (<3> error, <4> warning, <6> info, <7> debug)
// and carries no timestamp of its own (the journal records one).
// Thread: ConfigureLogPattern() before other threads log (it replaces spdlog's formatter).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace outpost::systemd {

struct StreamId {
  std::uint64_t device = 0, inode = 0;
};
// JOURNAL_STREAM's value; nullopt when null or malformed.
std::optional<StreamId> ParseJournalStream(const char* value);

// The syslog priority of a spdlog level (spdlog::level::level_enum as int).
int SyslogPriority(int spdlog_level);

// Whether stdout or stderr is the stream JOURNAL_STREAM names (fstat).
bool LogsToJournal();

// The journal pattern ("<N>level message") when LogsToJournal(), else `terminal_pattern`.
// Returns whether the journal pattern was chosen.
bool ConfigureLogPattern(std::string_view terminal_pattern);

}  // namespace outpost::systemd
