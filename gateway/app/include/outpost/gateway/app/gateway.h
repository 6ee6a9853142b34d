// Gateway wires the pieces of outpost-gateway together and runs them:
//   broker --MQTT--> ingest::Pipeline (parse, validate, dedupe, registry, rules) --Pending-->
//   Writer (group commit) --Committed--> PUBACKs, alerts published, counters.
// What happens to a message is the Pipeline's (gateway/ingest); this is the wiring: MQTT
// client, timers, writer hand-off, pause/resume (back-pressure), commands, status, shutdown.
// Thread: Run() runs the event loop on the calling thread (which owns the MQTT client and the
// Pipeline with the registry, the rules and the ingest counters) plus the Writer thread (which
// owns the store).
// Signals: SIGTERM/SIGINT drain (commit and acknowledge everything received, then DISCONNECT);
// SIGHUP reloads the config file.
// Topics, payloads and status fields: docs/formats/topics.md.
#pragma once

#include <memory>
#include <string>

#include "outpost/gateway/config/config.h"

namespace outpost::gateway::app {

enum class ExitReason { kStopped, kRestart, kFailed };

class Gateway {
 public:
  // `config_path` is re-read on reload; may be empty (built-in defaults; reload then refuses).
  Gateway(config::Config config, std::string config_path);
  ~Gateway();

  // Opens the store, connects, and runs until a signal or a restart command. Returns why it
  // stopped; kFailed after logging the reason (e.g. the database cannot be opened).
  ExitReason Run();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace outpost::gateway::app
