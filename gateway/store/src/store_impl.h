// Private to gateway/store: Store::Impl, split by concern the way Mosquitto's SQLite
// persistence plugin is split. Each concern is one struct here (its prepared statements and the
// in-memory state it mirrors) and one file that prepares those statements and implements it:
//
//   open.cpp         Connection: the lock file, the connection and its pragmas, the schema
//                    migrations, transactions and Abort; Store::Open
//   load.cpp         the restore of every mirror after Open or a failed transaction (Reload),
//                    LoadDevices, LoadActiveAlerts, LoadRecentIdentities
//   write.cpp        Readings (the hot write path and the dictionaries) and Records (device,
//                    alert and quarantine rows): Store::Write
//   query.cpp        SeriesQuery: QuerySeries, ListAlerts, ListQuarantine, stats()
//   maintenance.cpp  Maintenance: retention by age and size, alert history, compaction
//   outbox.cpp       OutboxQueue: the cloud outbox, the store's model::Outbox
//
// Statements are finalized by their destructors. Impl::conn is declared first, and its
// Connection::Handle first in it, so the connection closes after every statement of every
// concern is finalized; no list of statements is kept anywhere else.
// Thread: the Store's owner thread, like the Store.
#pragma once

#include <sqlite3.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "outpost/gateway/model/outbox.h"
#include "outpost/gateway/store/store.h"
#include "outpost/sqlite/database.h"

namespace outpost::gateway::store {

using Stmt = sqlite::Statement;

// Blocks never span more than this, so a query for [from, to) only looks at blocks that start
// in [from - kMaxBlockSpanMs, to): the (device_key, start_ts) index bounds both ends.
inline constexpr int64_t kMaxBlockSpanMs = 6 * 3600 * 1000;
inline constexpr size_t kMaxBlockReadings = 4096;

inline int64_t SatSub(int64_t a, int64_t b) {
  if (b > 0 && a < std::numeric_limits<int64_t>::min() + b)
    return std::numeric_limits<int64_t>::min();
  return a - b;
}

// In-memory index of the hot tail: per device, (id, ts) of its hot rows in id order. The hot
// table itself has no secondary index (that would cap inserts), so queries find a device's hot
// rows here and fetch them by rowid. Bounded by the hot tail: 16 bytes per hot row.
struct HotRef {
  int64_t id;
  int64_t ts_ms;
};

// load.cpp: the columns of an alert row and their reader (also used by query.cpp).
extern const char kAlertColumns[];  // "SELECT <columns> FROM alerts "
model::AlertRow ReadAlert(sqlite3_stmt* row);

// open.cpp: the connection, its writer lock and what every concern uses of it.
struct Connection {
  // Owns the lock file and the connection; closes them when destroyed, after the statements
  // declared after it.
  struct Handle {
    Handle() = default;
    ~Handle();
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    int lock_fd = -1;  // flock'd "<path>.lock": one writer per file
    sqlite3* db = nullptr;
  };
  Handle handle;
  std::string path;
  Stmt begin, commit, rollback, page_count, freelist_count;
  int64_t page_size = 4096;
  int64_t db_bytes = 0;  // used pages, measured after every transaction

  sqlite3* db() const { return handle.db; }
  // "store <path>: <what>: <sqlite message> (...)", coded by the one map (libs/sqlite).
  Status Err(int rc, std::string_view what) const;
  Status Exec(const char* sql_text, std::string_view what);
  Status Prepare(Stmt* out, const char* sql_text);
  // Runs a statement that returns no rows (or ignores them) and resets it.
  Status Run(const Stmt& s, std::string_view what);
  Result<int64_t> QueryInt(const char* sql_text, std::string_view what);
  Status PrepareStatements();
  Status Migrate(int from_version);
  Status Begin() { return Run(begin, "begin"); }
  Status Commit() { return Run(commit, "commit"); }
  void Rollback();  // if a transaction is open
  Status UpdateBytes();
};

// write.cpp: readings and the dictionaries they are keyed by, mirrored in memory (they are
// small: devices and metric names), with the hot tail's index and the reading counters of the
// `state` table (reloaded after a failed transaction).
struct Readings {
  Stmt insert_hot, insert_device_key, insert_metric_key, update_state;

  std::unordered_map<std::string, int64_t> device_keys;
  std::vector<std::string> device_ids;         // [key - 1]
  std::vector<std::vector<HotRef>> hot_index;  // [key - 1]
  std::unordered_map<std::string, int64_t> metric_keys;

  int64_t next_id = 1;
  int64_t count = 0;  // readings stored now
  int64_t deleted_by_age = 0;
  int64_t deleted_by_size = 0;
  int64_t hot_rows = 0;
  int64_t hot_min_ts = std::numeric_limits<int64_t>::min();  // a lower bound

  std::string buf;  // reused encoding buffer

  Status Prepare(Connection& c);
  Status SaveState(Connection& c);
};

// write.cpp: the device registry, alert and quarantine rows of a WriteSet.
struct Records {
  Stmt upsert_device, delete_device, upsert_alert, insert_quarantine, evict_quarantine, ack_alert,
      read_alert;

  std::vector<uint8_t> registered;  // [device key - 1]: has a row in `devices`
  int64_t devices = 0;
  int64_t quarantine = 0;
  bool alerts_dirty = true;  // the alert history may be over its bound

  Status Prepare(Connection& c);
};

// query.cpp: the statements of QuerySeries.
struct SeriesQuery {
  Stmt blocks_in_range, hot_by_id;

  Status Prepare(Connection& c);
};

// maintenance.cpp: retention, alert history and compaction.
struct Maintenance {
  Stmt hot_oldest, insert_block, insert_summary, delete_hot_upto, blocks_older, delete_block,
      delete_hot_older, delete_hot_oldest, trim_alerts;

  bool compacting = false;  // between the hot tail's high and low water marks

  Status Prepare(Connection& c);
};

struct Store::Impl {
  explicit Impl(const Options& options) : opt(options), outbox(*this) { conn.path = opt.path; }

  // outbox.cpp: the cloud outbox (docs/formats/outbox.md), the store's model::Outbox. Mirrors
  // its counters, the queue's oldest item and the in-flight batch; reloaded after a failure.
  class OutboxQueue final : public model::Outbox {
   public:
    explicit OutboxQueue(Impl& m) : m_(m) {}

    Result<std::optional<model::OutboxBatch>> InFlightBatch() override;
    Result<std::vector<model::OutboxEntry>> Peek(size_t max_items, int64_t max_bytes,
                                                 double reading_share) override;
    Status CommitBatch(const model::OutboxBatch& batch,
                       const std::vector<model::OutboxEntry>& items) override;
    Status FinishBatch(const std::string& key, model::BatchOutcome outcome,
                       const std::map<std::string, int64_t>& dead_letters) override;
    model::OutboxStats stats() const override;

    Status Prepare(Connection& c);
    Status Load();  // outside a transaction
    // Inside the caller's transaction:
    Status Enqueue(const std::vector<model::OutboxItem>& items);
    Status Expire(int64_t now_ms, size_t budget);
    int64_t queue_oldest_ms() const { return queue_oldest_ms_; }

   private:
    Status Save();
    Status RefreshOldest();
    Status DropOldest(int64_t excess);
    int64_t InFlightBytes() const {
      return in_flight_ ? static_cast<int64_t>(in_flight_->body.size()) : 0;
    }
    void CountKind(model::OutboxKind kind, int64_t delta);

    Impl& m_;
    Stmt insert_, by_prio_, delete_upto_, save_state_, oldest_by_prio_, expire_;
    // Counters; readings/alerts/statuses/bytes of the queue only (the in-flight batch apart).
    model::OutboxStats counters_;
    int64_t queue_oldest_ms_ = 0;  // 0 = queue empty
    std::optional<model::OutboxBatch> in_flight_;
    bool dirty_ = false;
  };

  // Declared first: destroyed last, after every statement below.
  Connection conn;
  Options opt;
  Readings readings;
  Records records;
  SeriesQuery query;
  Maintenance maintenance;
  OutboxQueue outbox;
  // A transaction failed: the mirrors may be wrong until Reload() re-reads them.
  bool need_reload = false;

  // open.cpp. After any failure inside a transaction: roll back and re-read the mirrors.
  Status Abort(Status error);
  // load.cpp. Re-reads every mirror from the file.
  Status Reload();
  Status LoadHotIndex();
  // Reloads first if a failure left the mirrors stale.
  Status Ready() { return need_reload ? Reload() : Status::Ok(); }

  // write.cpp.
  Result<int64_t> DeviceKey(const std::string& device_id);
  Result<int64_t> MetricKey(const std::string& name);
  Status InsertReading(const model::ReadingRow& r);
  Status WriteInTx(const model::WriteSet& batch);
  // The update, read and queueing of Store::AckAlert, inside its transaction.
  Status AckInTx(const model::AlertAck& ack, const Store::AckItemFn& item, model::AlertRow* row);

  // maintenance.cpp.
  Status RetainByAge(int64_t now_ms, size_t budget);
  Status RetainBySize(size_t budget);
  Status Compact(size_t budget);
  Status TrimAlerts();
  // Deletes the given blocks (id, readings); returns the number of readings they held.
  Result<int64_t> DeleteBlocks(const std::vector<std::pair<int64_t, int64_t>>& blocks);
};

}  // namespace outpost::gateway::store
