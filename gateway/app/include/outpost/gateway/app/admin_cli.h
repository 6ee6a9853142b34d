// The user and token commands of outpost-gateway (`outpost-gateway user add NAME --role R`, ...):
// they open the same auth.sqlite as the daemon (config::AuthPath), which sees their changes on
// its next request. Every command writes to the audit log as "cli".
// Errors: each returns the process exit status (0 done, 1 failed, with a message on `err`
// naming what was wrong).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include "outpost/gateway/config/config.h"

namespace outpost::gateway::app::cli {

// The password: the first line of `in` when `password_stdin`, else generated and printed.
int UserAdd(const config::Config& config, const std::string& name, const std::string& role,
            bool password_stdin, std::istream& in, std::ostream& out, std::ostream& err);
int UserPasswd(const config::Config& config, const std::string& name, bool password_stdin,
               std::istream& in, std::ostream& out, std::ostream& err);
int UserRemove(const config::Config& config, const std::string& name, std::ostream& out,
               std::ostream& err);
int UserList(const config::Config& config, std::ostream& out, std::ostream& err);
// Prints the token once; only its hash is stored.
int TokenCreate(const config::Config& config, const std::string& role, const std::string& name,
                std::ostream& out, std::ostream& err);
int TokenList(const config::Config& config, std::ostream& out, std::ostream& err);
int TokenRevoke(const config::Config& config, std::int64_t id, std::ostream& out,
                std::ostream& err);

}  // namespace outpost::gateway::app::cli
