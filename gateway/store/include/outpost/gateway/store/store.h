// Store is the gateway's durable SQLite store: readings, the device registry, alerts, the
// quarantine of rejected messages and the cloud outbox (docs/formats/outbox.md). It is an
// adapter: it takes the plain structs of gateway/model (outbox items arrive pre-encoded) and
// knows nothing of MQTT or JSON. The code is split by concern behind src/store_impl.h.
//
// Layout (docs/formats/store.md): readings are appended in arrival order to a "hot" table with
// no secondary index (the write path never touches a per-device index), and RunMaintenance()
// later compacts the oldest hot rows into per-device, column-packed blocks indexed by
// (device, time). Queries merge the blocks and the (bounded) hot tail, which is indexed in
// memory.
//
// Ownership: a Store owns its SQLite connection and holds an flock on "<path>.lock" for its whole
// life: a second Store (or process) on the same file fails to open with kUnavailable. Readers
// (the sqlite3 shell, backups) may read the file concurrently (WAL).
// Thread: NOT thread-safe. One thread (the gateway's store writer) owns the Store and makes
// every call, reads included.
// Errors: every call returns a Status/Result, coded by libs/sqlite's one map (error.h).
// kResourceExhausted: the disk (or quota) is full; retry once space is freed, never fatal.
// kUnavailable: transient I/O failure, file locked; retrying later may help. kDataLoss: corrupt
// file, not a database, a failed fsync.
// kFailedPrecondition: the file belongs to something else or has a newer schema than this binary.
// kInvalidArgument: bad options. Every message names the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/gateway/model/outbox.h"
#include "outpost/gateway/model/rows.h"
#include "outpost/gateway/model/synchronous.h"
#include "outpost/gateway/model/write_set.h"

namespace outpost::gateway::store {

// The outbox (docs/formats/outbox.md), written in the same transaction as the data it carries.
struct OutboxOptions {
  bool enabled = false;               // false: WriteSet::outbox is ignored (nothing is queued)
  int64_t quota_bytes = 256ll << 20;  // items + the in-flight batch body, exact bytes
  model::WhenFull when_full = model::WhenFull::kDropOldest;
  int64_t expire_after_ms = 0;  // 0 = never; else RunMaintenance drops older items
};

// SQLite's `PRAGMA synchronous`, in WAL mode (gateway/model/synchronous.h).
using Synchronous = model::Synchronous;

struct Options {
  std::string path;  // SQLite file; parent dir must exist
  Synchronous synchronous = Synchronous::kFull;
  int64_t retention_ms = 0;                   // 0 = keep forever; else delete readings older
                                              // than now - retention (by reading ts_ms)
  int64_t max_bytes = 0;                      // 0 = unbounded; else delete oldest readings
                                              // until the DB's used pages are under it
  size_t quarantine_max_rows = 1000;          // bounded quarantine, oldest evicted
  size_t quarantine_max_payload_bytes = 512;  // payloads stored truncated

  // Tuning; the defaults suit a Raspberry Pi with ~1,000 devices.
  // RunMaintenance() starts compacting once the hot tail holds more rows than this, and keeps
  // going (max_rows_per_call per call) until it is down to a quarter of it. The hot tail is
  // indexed in memory (16 bytes per row) and rescanned on Open(); blocks hold about
  // min(max_rows_per_call, 3/4 hot_max_rows) / devices readings each.
  size_t hot_max_rows = 100'000;
  size_t alert_history_max_rows = 10'000;  // cleared alerts kept; active ones are never deleted
  int64_t cache_bytes = 32 << 20;          // SQLite page cache
  // Test seam: name of a registered sqlite3_vfs to open the file with (e.g. one that injects
  // I/O errors). Empty = SQLite's default.
  std::string vfs;
  OutboxOptions outbox;
};

struct Point {
  int64_t ts_ms;
  double value;
};

struct Stats {
  int64_t readings;         // readings stored now
  int64_t devices;          // rows in the device registry
  int64_t quarantine;       // rows in the quarantine
  int64_t db_bytes;         // bytes of used pages (the file keeps its high-water size)
  int64_t deleted_by_age;   // readings deleted by retention_ms, since the file was created
  int64_t deleted_by_size;  // readings deleted by max_bytes, since the file was created
  model::OutboxStats outbox;
};

class Store {
 public:
  // Opens or creates `options.path`, takes the writer lock on it, migrates the schema
  // (PRAGMA user_version; each migration in its own transaction), WAL mode, synchronous per
  // options. Fails with a message naming the file: not a database (kDataLoss), locked
  // (kUnavailable), another application's database or a newer schema (kFailedPrecondition).
  static Result<std::unique_ptr<Store>> Open(const Options& options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Applies the whole batch in one BEGIN IMMEDIATE .. COMMIT. On failure nothing of the batch
  // is stored (ROLLBACK) and the error is kResourceExhausted (disk full: retry after space is
  // freed), kUnavailable (retry may help) or kDataLoss (fsync or corruption). After OK the
  // batch is durable per Options::synchronous.
  Status Write(const model::WriteSet& batch);

  // Acknowledges one alert, once, in its own transaction: records who, when and why, and queues
  // `item(row)` (the acknowledged row; nullopt = nothing) for the cloud in the same transaction
  // when the outbox is enabled. A later raise or clear of the same row keeps the acknowledgement.
  // Errors: kNotFound (no alert with that id and raise time), kFailedPrecondition (already
  // acknowledged; nothing changed), else as Write().
  using AckItemFn = std::function<std::optional<model::OutboxItem>(const model::AlertRow&)>;
  Result<model::AlertRow> AckAlert(const model::AlertAck& ack, const AckItemFn& item);

  // Device commands (gateway/commands): writes `upsert` (new or changed rows, by id) and deletes
  // the rows of `remove` in one transaction; durable per Options::synchronous when OK. Errors
  // as Write().
  Status SaveCommands(const std::vector<model::CommandRow>& upsert,
                      const std::vector<std::string>& remove);
  // Every stored command, in seq order.
  Result<std::vector<model::CommandRow>> LoadCommands();

  // Points of one metric of one device with from_ms <= ts < to_ms, ts ascending, at most
  // `limit` (the earliest). Unknown device or metric: empty. Booleans read as 0/1.
  Result<std::vector<Point>> QuerySeries(std::string_view device_id, std::string_view metric,
                                         int64_t from_ms, int64_t to_ms, size_t limit);
  Result<std::vector<model::DeviceRow>> LoadDevices();
  Result<std::vector<model::AlertRow>> LoadActiveAlerts();
  Result<std::vector<model::AlertRow>> ListAlerts(size_t limit);           // newest raised first
  Result<std::vector<model::QuarantineRow>> ListQuarantine(size_t limit);  // newest first
  // Identities of the `max_rows` most recently stored readings, compacted or not, oldest first
  // (arrival order), to rebuild de-duplication state on restart.
  Result<std::vector<model::RecentIdentity>> LoadRecentIdentities(size_t max_rows);

  // Bounded background work, each step in its own transaction: retention by age, then by size,
  // then compaction of the oldest hot rows into blocks. Touches at most ~max_rows_per_call
  // readings per step. Call it regularly from the writer thread (e.g. after every commit, or
  // once a second); Write() itself never deletes or compacts.
  Status RunMaintenance(int64_t now_ms, size_t max_rows_per_call);

  // The outbox (docs/formats/outbox.md): the model::Outbox the uplink drives, through the
  // store's owner thread like every other call. Valid as long as the Store.
  model::Outbox& outbox();

  // Cheap: kept in memory, no scans.
  Stats stats() const;

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace outpost::gateway::store
