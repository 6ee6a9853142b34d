// The `commands` table (docs/formats/store.md): Store::SaveCommands and Store::LoadCommands.
#include <sqlite3.h>

#include "store_impl.h"

namespace outpost::gateway::store {

namespace {

constexpr const char* kCommandColumns =
    "SELECT id, device_id, seq, name, params, state, transport, created_ms, updated_ms, "
    "expires_ms, user, idempotency_key, fingerprint, reply, history FROM commands ";

Status BindCommand(sqlite3_stmt* s, const model::CommandRow& c) {
  OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 1, c.id));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 2, c.device_id));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 3, static_cast<int64_t>(c.seq)));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 4, c.name));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 5, c.params_json));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 6, c.state));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 7, c.transport));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 8, c.created_ms));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 9, c.updated_ms));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindInt64(s, 10, c.expires_ms));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 11, c.user));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 12, c.idempotency_key));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 13, c.fingerprint));
  OUTPOST_RETURN_IF_ERROR(sqlite::BindText(s, 14, c.reply_json));
  return sqlite::BindText(s, 15, c.history_json);
}

}  // namespace

Status Store::SaveCommands(const std::vector<model::CommandRow>& upsert,
                           const std::vector<std::string>& remove) {
  Impl& m = *impl_;
  OUTPOST_RETURN_IF_ERROR(m.Ready());
  if (upsert.empty() && remove.empty()) return Status::Ok();
  Stmt put, del;
  OUTPOST_RETURN_IF_ERROR(m.conn.Prepare(
      &put,
      "INSERT OR REPLACE INTO commands(id, device_id, seq, name, params, state, transport, "
      "created_ms, updated_ms, expires_ms, user, idempotency_key, fingerprint, reply, history) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"));
  OUTPOST_RETURN_IF_ERROR(m.conn.Prepare(&del, "DELETE FROM commands WHERE id = ?1"));
  OUTPOST_RETURN_IF_ERROR(m.conn.Begin());
  Status st;
  for (const std::string& id : remove) {
    st = sqlite::BindText(del.get(), 1, id);
    if (st.ok()) st = m.conn.Run(del, "delete command");
    if (!st.ok()) break;
  }
  for (std::size_t i = 0; st.ok() && i < upsert.size(); ++i) {
    st = BindCommand(put.get(), upsert[i]);
    if (st.ok()) st = m.conn.Run(put, "save command");
  }
  if (st.ok()) st = m.conn.Commit();
  if (!st.ok()) return m.Abort(std::move(st));
  return m.conn.UpdateBytes();
}

Result<std::vector<model::CommandRow>> Store::LoadCommands() {
  Impl& m = *impl_;
  OUTPOST_RETURN_IF_ERROR(m.Ready());
  Stmt s;
  OUTPOST_RETURN_IF_ERROR(
      m.conn.Prepare(&s, (std::string(kCommandColumns) + "ORDER BY seq").c_str()));
  std::vector<model::CommandRow> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    sqlite3_stmt* r = s.get();
    model::CommandRow c;
    c.id = sqlite::ColumnText(r, 0);
    c.device_id = sqlite::ColumnText(r, 1);
    c.seq = static_cast<uint64_t>(sqlite3_column_int64(r, 2));
    c.name = sqlite::ColumnText(r, 3);
    c.params_json = sqlite::ColumnText(r, 4);
    c.state = sqlite::ColumnText(r, 5);
    c.transport = sqlite::ColumnText(r, 6);
    c.created_ms = sqlite3_column_int64(r, 7);
    c.updated_ms = sqlite3_column_int64(r, 8);
    c.expires_ms = sqlite3_column_int64(r, 9);
    c.user = sqlite::ColumnText(r, 10);
    c.idempotency_key = sqlite::ColumnText(r, 11);
    c.fingerprint = sqlite::ColumnText(r, 12);
    c.reply_json = sqlite::ColumnText(r, 13);
    c.history_json = sqlite::ColumnText(r, 14);
    out.push_back(std::move(c));
  }
  if (rc != SQLITE_DONE) return m.conn.Err(rc, "load commands");
  return out;
}

}  // namespace outpost::gateway::store
