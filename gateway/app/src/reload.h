// Reload: which settings a reload applies and which wait for a restart.
// The one table of restart-only settings feeds the reload's diff (what the reply names), the
// copy-back (they keep their running values) and the generated section of
// docs/configuration.md ("Reload"; reload_test.cpp fails when it differs from the table and
// rewrites it with OUTPOST_UPDATE_DOCS=1). Pure; private to gateway/app.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/gateway/config/config.h"

namespace outpost::gateway::app {

// A group of settings read once at start-up.
struct RestartOnlySetting {
  const char* key;     // as the reload reply names it: "mqtt.host/port", "cloud.*"
  const char* covers;  // the config keys it stands for, for the docs
  // Whether `a` and `b` differ in these settings.
  std::function<bool(const config::Config& a, const config::Config& b)> differs;
  // Copies these settings from `running` into `next`.
  std::function<void(const config::Config& running, config::Config* next)> keep;
};

// In the order the reply lists them.
const std::vector<RestartOnlySetting>& RestartOnlySettings();

struct ReloadPlan {
  config::Config config;                  // what runs from now on
  std::vector<std::string> need_restart;  // keys of the restart-only settings that changed
};
// `next` (the file just read) with every restart-only setting at its running value, and the
// keys of those that `next` changes.
ReloadPlan PlanReload(const config::Config& running, config::Config next);

// The generated section of docs/configuration.md, markers included.
inline constexpr std::string_view kRestartOnlyDocBegin =
    "<!-- restart-only settings: generated from gateway/app/src/reload.cpp, do not edit -->";
inline constexpr std::string_view kRestartOnlyDocEnd = "<!-- end of restart-only settings -->";
std::string RestartOnlyMarkdown();

}  // namespace outpost::gateway::app
