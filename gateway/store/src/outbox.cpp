// Outbox: the cloud outbox (docs/formats/outbox.md), queued in the same transaction as the data
// it carries (Enqueue, from Store::Write), expired by maintenance, and taken batch by batch by
// the uplink through model::Outbox. See store_impl.h for the split.
#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "store_impl.h"

namespace outpost::gateway::store {

namespace {
int Prio(model::OutboxKind k) { return k == model::OutboxKind::kReading ? 1 : 0; }
}  // namespace

Status Store::Impl::OutboxQueue::Prepare(Connection& c) {
  OUTPOST_RETURN_IF_ERROR(c.Prepare(
      &insert_, "INSERT INTO outbox(prio, kind, created_ms, body) VALUES (?1, ?2, ?3, ?4)"));
  OUTPOST_RETURN_IF_ERROR(c.Prepare(
      &by_prio_,
      "SELECT id, kind, created_ms, body FROM outbox WHERE prio = ?1 ORDER BY id LIMIT ?2"));
  OUTPOST_RETURN_IF_ERROR(
      c.Prepare(&delete_upto_, "DELETE FROM outbox WHERE prio = ?1 AND id <= ?2"));
  OUTPOST_RETURN_IF_ERROR(
      c.Prepare(&save_state_,
                "UPDATE outbox_state SET readings=?1, alerts=?2, statuses=?3, bytes=?4, "
                "dropped_quota_oldest=?5, dropped_quota_rejected=?6, expired=?7, dead_letter=?8, "
                "sent_batches=?9, sent_items=?10, next_batch_seq=?11 WHERE id = 1"));
  OUTPOST_RETURN_IF_ERROR(c.Prepare(
      &oldest_by_prio_, "SELECT created_ms FROM outbox WHERE prio = ?1 ORDER BY id LIMIT 1"));
  return c.Prepare(&expire_,
                   "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE created_ms < ?1 "
                   "ORDER BY id LIMIT ?2) RETURNING kind, length(body)");
}

void Store::Impl::OutboxQueue::CountKind(model::OutboxKind kind, int64_t delta) {
  switch (kind) {
    case model::OutboxKind::kReading:
      counters_.readings += delta;
      break;
    case model::OutboxKind::kAlert:
      counters_.alerts += delta;
      break;
    case model::OutboxKind::kStatus:
      counters_.statuses += delta;
      break;
  }
}

model::OutboxStats Store::Impl::OutboxQueue::stats() const {
  model::OutboxStats s = counters_;
  s.oldest_created_ms = queue_oldest_ms_;
  if (in_flight_) {
    s.readings += in_flight_->readings;
    s.alerts += in_flight_->alerts;
    s.statuses += in_flight_->statuses;
    s.bytes += InFlightBytes();
    s.in_flight_key = in_flight_->key;
    if (s.oldest_created_ms == 0 || in_flight_->created_ms < s.oldest_created_ms) {
      s.oldest_created_ms = in_flight_->created_ms;
    }
  }
  return s;
}

Status Store::Impl::OutboxQueue::Load() {
  {
    Stmt s;
    OUTPOST_RETURN_IF_ERROR(m_.conn.Prepare(
        &s,
        "SELECT readings, alerts, statuses, bytes, dropped_quota_oldest, dropped_quota_rejected, "
        "expired, dead_letter, sent_batches, sent_items, next_batch_seq FROM outbox_state"));
    const int rc = sqlite3_step(s.get());
    if (rc != SQLITE_ROW)
      return m_.conn.Err(rc == SQLITE_DONE ? SQLITE_CORRUPT : rc, "load outbox state");
    auto col = [&](int i) { return static_cast<int64_t>(sqlite3_column_int64(s.get(), i)); };
    counters_ = model::OutboxStats{};
    counters_.readings = col(0);
    counters_.alerts = col(1);
    counters_.statuses = col(2);
    counters_.bytes = col(3);
    counters_.dropped_quota_oldest = col(4);
    counters_.dropped_quota_rejected = col(5);
    counters_.expired = col(6);
    counters_.dead_letter = col(7);
    counters_.sent_batches = col(8);
    counters_.sent_items = col(9);
    counters_.next_batch_seq = col(10);
  }
  {
    Stmt s;
    OUTPOST_RETURN_IF_ERROR(m_.conn.Prepare(&s, "SELECT reason, items FROM outbox_dead_letter"));
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      counters_.dead_letter_reasons[sqlite::ColumnText(s.get(), 0)] =
          sqlite3_column_int64(s.get(), 1);
    }
    if (rc != SQLITE_DONE) return m_.conn.Err(rc, "load outbox dead letters");
  }
  in_flight_.reset();
  {
    Stmt s;
    OUTPOST_RETURN_IF_ERROR(
        m_.conn.Prepare(&s,
                        "SELECT key, seq, created_ms, readings, alerts, statuses, "
                        "body FROM outbox_batch WHERE id = 1"));
    const int rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) {
      model::OutboxBatch b;
      b.key = sqlite::ColumnText(s.get(), 0);
      b.seq = sqlite3_column_int64(s.get(), 1);
      b.created_ms = sqlite3_column_int64(s.get(), 2);
      b.readings = sqlite3_column_int64(s.get(), 3);
      b.alerts = sqlite3_column_int64(s.get(), 4);
      b.statuses = sqlite3_column_int64(s.get(), 5);
      b.body = sqlite::ColumnText(s.get(), 6);
      in_flight_ = std::move(b);
    } else if (rc != SQLITE_DONE) {
      return m_.conn.Err(rc, "load outbox batch");
    }
  }
  dirty_ = false;
  return RefreshOldest();
}

Status Store::Impl::OutboxQueue::Save() {
  sqlite3_stmt* s = save_state_.get();
  const int64_t v[] = {counters_.readings,
                       counters_.alerts,
                       counters_.statuses,
                       counters_.bytes,
                       counters_.dropped_quota_oldest,
                       counters_.dropped_quota_rejected,
                       counters_.expired,
                       counters_.dead_letter,
                       counters_.sent_batches,
                       counters_.sent_items,
                       counters_.next_batch_seq};
  for (int i = 0; i < 11; ++i) OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, i + 1, v[i]));
  OUTPOST_RETURN_IF_ERROR(m_.conn.Run(save_state_, "update outbox state"));
  dirty_ = false;
  return Status::Ok();
}

Status Store::Impl::OutboxQueue::RefreshOldest() {
  queue_oldest_ms_ = 0;
  for (int prio : {0, 1}) {
    sqlite3_stmt* s = oldest_by_prio_.get();
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt(s, 1, prio));
    const int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
      const int64_t t = sqlite3_column_int64(s, 0);
      if (queue_oldest_ms_ == 0 || t < queue_oldest_ms_) queue_oldest_ms_ = t;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return m_.conn.Err(rc, "outbox oldest");
  }
  return Status::Ok();
}

Status Store::Impl::OutboxQueue::Enqueue(const std::vector<model::OutboxItem>& items) {
  const int64_t quota = m_.opt.outbox.quota_bytes;
  const bool reject_new = m_.opt.outbox.when_full == model::WhenFull::kRejectNew;
  bool inserted = false;
  for (const model::OutboxItem& item : items) {
    const auto size = static_cast<int64_t>(item.body.size());
    // An item that can never fit (larger than what the in-flight batch leaves of the quota) is
    // refused under either policy: dropping everything else would not make room.
    const bool never_fits = quota > 0 && size > quota - InFlightBytes();
    const bool full = quota > 0 && counters_.bytes + InFlightBytes() + size > quota;
    if (never_fits || (reject_new && full)) {
      ++counters_.dropped_quota_rejected;
      dirty_ = true;
      continue;
    }
    sqlite3_stmt* s = insert_.get();
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt(s, 1, Prio(item.kind)));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt(s, 2, static_cast<int>(item.kind)));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 3, item.created_ms));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindBlob(s, 4, item.body));
    OUTPOST_RETURN_IF_ERROR(m_.conn.Run(insert_, "insert outbox item"));
    CountKind(item.kind, 1);
    counters_.bytes += size;
    if (queue_oldest_ms_ == 0 || item.created_ms < queue_oldest_ms_)
      queue_oldest_ms_ = item.created_ms;
    inserted = true;
    dirty_ = true;
  }
  if (inserted && quota > 0 && counters_.bytes + InFlightBytes() > quota) {
    OUTPOST_RETURN_IF_ERROR(DropOldest(counters_.bytes + InFlightBytes() - quota));
  }
  if (dirty_) OUTPOST_RETURN_IF_ERROR(Save());
  return Status::Ok();
}

// Deletes whole items from the front of the queue, readings first, until `excess` bytes are
// freed. Reads the sizes first so the counters stay exact.
Status Store::Impl::OutboxQueue::DropOldest(int64_t excess) {
  for (int prio : {1, 0}) {
    while (excess > 0) {
      sqlite3_stmt* s = by_prio_.get();
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt(s, 1, prio));
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 2, 1024));
      int64_t last_id = -1, freed = 0, n = 0;
      int64_t by_kind[3] = {0, 0, 0};
      int rc;
      while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        last_id = sqlite3_column_int64(s, 0);
        const int kind = sqlite3_column_int(s, 1);
        freed += sqlite3_column_bytes(s, 3);
        ++n;
        if (kind >= 0 && kind < 3) ++by_kind[kind];
        if (freed >= excess) break;
      }
      sqlite3_reset(s);
      if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return m_.conn.Err(rc, "select oldest outbox items");
      if (n == 0) break;
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt(delete_upto_.get(), 1, prio));
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(delete_upto_.get(), 2, last_id));
      OUTPOST_RETURN_IF_ERROR(m_.conn.Run(delete_upto_, "drop oldest outbox items"));
      counters_.readings -= by_kind[0];
      counters_.alerts -= by_kind[1];
      counters_.statuses -= by_kind[2];
      counters_.bytes -= freed;
      counters_.dropped_quota_oldest += n;
      excess -= freed;
      dirty_ = true;
    }
  }
  return RefreshOldest();
}

Status Store::Impl::OutboxQueue::Expire(int64_t now_ms, size_t budget) {
  sqlite3_stmt* s = expire_.get();
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 1, SatSub(now_ms, m_.opt.outbox.expire_after_ms)));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 2, sqlite::ClampLimit(budget)));
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    CountKind(static_cast<model::OutboxKind>(sqlite3_column_int(s, 0)), -1);
    counters_.bytes -= sqlite3_column_int64(s, 1);
    ++counters_.expired;
  }
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) return m_.conn.Err(rc, "expire outbox items");
  OUTPOST_RETURN_IF_ERROR(Save());
  return RefreshOldest();
}

Result<std::optional<model::OutboxBatch>> Store::Impl::OutboxQueue::InFlightBatch() {
  OUTPOST_RETURN_IF_ERROR(m_.Ready());
  return in_flight_;
}

Result<std::vector<model::OutboxEntry>> Store::Impl::OutboxQueue::Peek(size_t max_items,
                                                                       int64_t max_bytes,
                                                                       double reading_share) {
  Impl& m = m_;
  OUTPOST_RETURN_IF_ERROR(m.Ready());
  std::vector<model::OutboxEntry> out;
  int64_t bytes = 0;
  bool full = false;
  // What urgent items may take when readings wait (the rest is kept for readings).
  size_t urgent_items = max_items;
  int64_t urgent_bytes = max_bytes;
  if (reading_share > 0 && counters_.readings > 0) {
    const double keep = std::min(reading_share, 1.0);
    urgent_items = std::max<size_t>(
        1, max_items - static_cast<size_t>(std::ceil(keep * static_cast<double>(max_items))));
    urgent_bytes = static_cast<int64_t>(static_cast<double>(max_bytes) * (1.0 - keep));
  }
  for (int prio : {0, 1}) {
    if (full || out.size() >= max_items) break;
    const size_t cap_items = prio == 0 ? std::min(urgent_items, max_items) : max_items;
    const int64_t cap_bytes = prio == 0 ? urgent_bytes : max_bytes;
    sqlite3_stmt* s = by_prio_.get();
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt(s, 1, prio));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 2, sqlite::ClampLimit(cap_items - out.size())));
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      const int64_t size = sqlite3_column_bytes(s, 3);
      if (!out.empty() && bytes + size > cap_bytes) {
        full = prio == 1;  // urgent items over their share leave room for readings
        break;
      }
      bytes += size;
      out.push_back(model::OutboxEntry{sqlite3_column_int64(s, 0),
                                       static_cast<model::OutboxKind>(sqlite3_column_int(s, 1)),
                                       sqlite3_column_int64(s, 2), sqlite::ColumnText(s, 3)});
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return m.conn.Err(rc, "peek outbox");
  }
  return out;
}

Status Store::Impl::OutboxQueue::CommitBatch(const model::OutboxBatch& batch,
                                             const std::vector<model::OutboxEntry>& items) {
  Impl& m = m_;
  OUTPOST_RETURN_IF_ERROR(m.Ready());
  if (in_flight_) {
    return FailedPrecondition("store " + m.opt.path + ": outbox batch " + in_flight_->key +
                              " is still in flight");
  }
  // Peek returns the first items of each priority in id order, so each priority's part
  // is "every item of that priority up to its last id": one range delete each, checked by
  // the number of rows it removed.
  int64_t last_id[2] = {-1, -1}, count[2] = {0, 0}, bytes = 0, by_kind[3] = {0, 0, 0};
  for (const model::OutboxEntry& e : items) {
    const int p = Prio(e.kind);
    last_id[p] = std::max(last_id[p], e.id);
    ++count[p];
    bytes += static_cast<int64_t>(e.body.size());
    ++by_kind[static_cast<int>(e.kind) % 3];
  }
  OUTPOST_RETURN_IF_ERROR(m.conn.Begin());
  Status st = [&]() -> Status {
    for (int p : {0, 1}) {
      if (count[p] == 0) continue;
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt(delete_upto_.get(), 1, p));
      OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(delete_upto_.get(), 2, last_id[p]));
      OUTPOST_RETURN_IF_ERROR(m.conn.Run(delete_upto_, "take outbox items"));
      if (sqlite3_changes(m.conn.db()) != count[p]) {
        return FailedPrecondition("store " + m.opt.path +
                                  ": the items to send are not the head of the outbox");
      }
    }
    counters_.readings -= by_kind[0];
    counters_.alerts -= by_kind[1];
    counters_.statuses -= by_kind[2];
    counters_.bytes -= bytes;
    Stmt s;
    OUTPOST_RETURN_IF_ERROR(m.conn.Prepare(&s,
                                           "INSERT INTO outbox_batch(id, key, seq, created_ms, "
                                           "readings, alerts, statuses, body) VALUES "
                                           "(1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s.get(), 1, batch.key));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s.get(), 2, batch.seq));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s.get(), 3, batch.created_ms));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s.get(), 4, batch.readings));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s.get(), 5, batch.alerts));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s.get(), 6, batch.statuses));
    OUTPOST_RETURN_IF_ERROR(sqlite::BindBlob(s.get(), 7, batch.body));
    const int rc = sqlite3_step(s.get());
    if (rc != SQLITE_DONE) return m.conn.Err(rc, "insert outbox batch");
    counters_.next_batch_seq = std::max(counters_.next_batch_seq, batch.seq + 1);
    // The batch's body is its items plus the envelope, so taking them can push the total over
    // the quota with no insert to enforce it: drop the oldest queued items here, as an insert
    // would (reject_new only refuses new items, so it may stay over by one envelope).
    const int64_t quota = m.opt.outbox.quota_bytes;
    const int64_t total = counters_.bytes + static_cast<int64_t>(batch.body.size());
    if (quota > 0 && total > quota && m.opt.outbox.when_full == model::WhenFull::kDropOldest) {
      OUTPOST_RETURN_IF_ERROR(DropOldest(total - quota));
    }
    OUTPOST_RETURN_IF_ERROR(Save());
    return RefreshOldest();
  }();
  if (st.ok()) st = m.conn.Commit();
  if (!st.ok()) return m.Abort(std::move(st));
  in_flight_ = batch;
  return m.conn.UpdateBytes();
}

Status Store::Impl::OutboxQueue::FinishBatch(const std::string& key, model::BatchOutcome outcome,
                                             const std::map<std::string, int64_t>& dead_letters) {
  Impl& m = m_;
  OUTPOST_RETURN_IF_ERROR(m.Ready());
  const bool delivered = outcome == model::BatchOutcome::kDelivered;
  if (!in_flight_ || in_flight_->key != key) {
    return NotFound("store " + m.opt.path + ": outbox batch " + key + " is not in flight");
  }
  const int64_t items = in_flight_->readings + in_flight_->alerts + in_flight_->statuses;
  // Dead letters by reason, never more than the batch holds; a refused batch's remainder is
  // "refused". Distinct reasons are bounded (they come from the cloud's answer).
  std::map<std::string, int64_t> dead;
  int64_t n_dead = 0;
  for (const auto& [reason, n] : dead_letters) {
    const int64_t take = std::min(std::max<int64_t>(n, 0), items - n_dead);
    if (take <= 0) continue;
    const bool known = counters_.dead_letter_reasons.count(reason) > 0 || dead.count(reason) > 0;
    const bool room =
        counters_.dead_letter_reasons.size() + dead.size() < model::kMaxDeadLetterReasons;
    dead[known || room ? reason : "other"] += take;
    n_dead += take;
  }
  if (!delivered && n_dead < items) {
    dead["refused"] += items - n_dead;
    n_dead = items;
  }
  OUTPOST_RETURN_IF_ERROR(m.conn.Begin());
  if (delivered) {
    ++counters_.sent_batches;
    counters_.sent_items += items - n_dead;
  }
  counters_.dead_letter += n_dead;
  Status st = m.conn.Exec("DELETE FROM outbox_batch", "delete outbox batch");
  for (const auto& [reason, n] : dead) {
    if (!st.ok()) break;
    Stmt s;
    st = m.conn.Prepare(&s,
                        "INSERT INTO outbox_dead_letter(reason, items) VALUES (?1, ?2) "
                        "ON CONFLICT(reason) DO UPDATE SET items = items + excluded.items");
    if (!st.ok()) break;
    st = sqlite::BindText(s.get(), 1, reason);
    if (st.ok()) st = sqlite::BindInt64(s.get(), 2, n);
    if (!st.ok()) break;
    const int rc = sqlite3_step(s.get());
    if (rc != SQLITE_DONE) st = m.conn.Err(rc, "count outbox dead letters");
  }
  if (st.ok()) st = Save();
  if (st.ok()) st = m.conn.Commit();
  if (!st.ok()) return m.Abort(std::move(st));
  for (const auto& [reason, n] : dead) counters_.dead_letter_reasons[reason] += n;
  in_flight_.reset();
  return m.conn.UpdateBytes();
}

}  // namespace outpost::gateway::store
