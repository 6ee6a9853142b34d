// How durable a commit is: SQLite's `PRAGMA synchronous` in WAL mode (`storage.synchronous`).
// Shared by gateway/config (which parses it) and gateway/store (which applies it).
#pragma once

#include <cstdint>

namespace outpost::gateway::model {

// kFull: a commit is on disk when Write() returns (survives power loss). kNormal: survives a
// process crash, a power cut may lose the last commits. kOff: no fsync at all (tests,
// benchmarks).
enum class Synchronous : uint8_t { kFull, kNormal, kOff };

}  // namespace outpost::gateway::model
