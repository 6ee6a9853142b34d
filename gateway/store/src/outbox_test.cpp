// The store's outbox: queueing in the write transaction, priorities, the quota policies with
// exact counters, expiry, the in-flight batch across reopen. Format: docs/formats/outbox.md.
#include <gtest/gtest.h>

#include <string>

#include "outpost/gateway/store/store.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/temp_dir.h"

namespace outpost::gateway::store {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;

class OutboxTest : public ::testing::Test {
 protected:
  Options Opts(int64_t quota = 0, model::WhenFull policy = model::WhenFull::kDropOldest) const {
    Options o;
    o.path = dir_.File("gateway.db");
    o.synchronous = Synchronous::kOff;
    o.outbox.enabled = true;
    o.outbox.quota_bytes = quota;
    o.outbox.when_full = policy;
    return o;
  }
  std::unique_ptr<Store> Open(const Options& o) {
    auto r = Store::Open(o);
    OUTPOST_EXPECT_OK(r);
    return r.ok() ? std::move(r).value() : nullptr;
  }
  outpost::testing::TempDir dir_{"outpost-outbox"};
};

// Bodies of exactly 10 bytes make the byte accounting easy to check.
model::OutboxItem Item(model::OutboxKind kind, int n, int64_t t = kT0) {
  std::string body = "{\"n\":" + std::to_string(n);
  body.resize(9, ' ');
  body += '}';
  return model::OutboxItem{kind, t, body};
}

TEST_F(OutboxTest, QueuesInTheWriteTransactionAndPeeksUrgentFirst) {
  auto s = Open(Opts());
  model::WriteSet b;
  b.outbox = {Item(model::OutboxKind::kReading, 1), Item(model::OutboxKind::kReading, 2),
              Item(model::OutboxKind::kAlert, 3), Item(model::OutboxKind::kReading, 4),
              Item(model::OutboxKind::kStatus, 5)};
  OUTPOST_ASSERT_OK(s->Write(b));
  model::OutboxStats st = s->stats().outbox;
  EXPECT_EQ(st.readings, 3);
  EXPECT_EQ(st.alerts, 1);
  EXPECT_EQ(st.statuses, 1);
  EXPECT_EQ(st.bytes, 50);
  EXPECT_EQ(st.oldest_created_ms, kT0);
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto peek, s->outbox().Peek(10, 1 << 20));
  ASSERT_EQ(peek.size(), 5u);
  std::string order;
  for (const auto& e : peek) order += e.body.substr(5, 1);
  EXPECT_EQ(order, "35124");  // alerts and statuses first, then readings, each in order
  // Limits: by count and by bytes (always at least one item).
  EXPECT_EQ(s->outbox().Peek(2, 1 << 20)->size(), 2u);
  EXPECT_EQ(s->outbox().Peek(10, 25)->size(), 2u);
  EXPECT_EQ(s->outbox().Peek(10, 1)->size(), 1u);
}

TEST_F(OutboxTest, DisabledOutboxQueuesNothing) {
  Options o = Opts();
  o.outbox.enabled = false;
  auto s = Open(o);
  model::WriteSet b;
  b.outbox = {Item(model::OutboxKind::kReading, 1)};
  OUTPOST_ASSERT_OK(s->Write(b));
  EXPECT_EQ(s->stats().outbox.readings, 0);
}

TEST_F(OutboxTest, InFlightBatchSurvivesReopenAndFinishCounts) {
  {
    auto s = Open(Opts());
    model::WriteSet b;
    for (int i = 0; i < 4; ++i) b.outbox.push_back(Item(model::OutboxKind::kReading, i, kT0 + i));
    OUTPOST_ASSERT_OK(s->Write(b));
    OUTPOST_ASSERT_OK_AND_ASSIGN(auto peek, s->outbox().Peek(3, 1 << 20));
    model::OutboxBatch batch{"gw:abc:1", 1, kT0, 3, 0, 0, "{\"readings\":[1,2,3]}"};
    OUTPOST_ASSERT_OK(s->outbox().CommitBatch(batch, peek));
    // A second batch while one is in flight is refused.
    OUTPOST_EXPECT_CODE(s->outbox().CommitBatch(batch, {}), Code::kFailedPrecondition);
    model::OutboxStats st = s->stats().outbox;
    EXPECT_EQ(st.readings, 4);  // 1 queued + 3 in flight
    EXPECT_EQ(st.bytes, 10 + static_cast<int64_t>(batch.body.size()));
    EXPECT_EQ(st.in_flight_key, "gw:abc:1");
    EXPECT_EQ(st.next_batch_seq, 2);
  }
  auto s = Open(Opts());  // as after a crash: the same key and the identical body come back
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto inflight, s->outbox().InFlightBatch());
  ASSERT_TRUE(inflight.has_value());
  EXPECT_EQ(inflight->key, "gw:abc:1");
  EXPECT_EQ(inflight->body, "{\"readings\":[1,2,3]}");
  EXPECT_EQ(inflight->readings, 3);
  EXPECT_EQ(s->outbox().FinishBatch("other", model::BatchOutcome::kDelivered).code(),
            Code::kNotFound);
  OUTPOST_ASSERT_OK(s->outbox().FinishBatch("gw:abc:1", model::BatchOutcome::kDelivered));
  model::OutboxStats st = s->stats().outbox;
  EXPECT_EQ(st.readings, 1);
  EXPECT_EQ(st.bytes, 10);
  EXPECT_EQ(st.sent_batches, 1);
  EXPECT_EQ(st.sent_items, 3);
  EXPECT_EQ(st.in_flight_key, "");
  EXPECT_EQ(st.oldest_created_ms, kT0 + 3);
  EXPECT_FALSE(s->outbox().InFlightBatch()->has_value());
}

TEST_F(OutboxTest, DeadLetterCountsItems) {
  auto s = Open(Opts());
  model::WriteSet b;
  b.outbox = {Item(model::OutboxKind::kReading, 1), Item(model::OutboxKind::kAlert, 2)};
  OUTPOST_ASSERT_OK(s->Write(b));
  auto peek = s->outbox().Peek(10, 1 << 20);
  OUTPOST_ASSERT_OK(s->outbox().CommitBatch(model::OutboxBatch{"k", 1, kT0, 1, 1, 0, "x"}, *peek));
  OUTPOST_ASSERT_OK(s->outbox().FinishBatch("k", model::BatchOutcome::kRefused));
  model::OutboxStats st = s->stats().outbox;
  EXPECT_EQ(st.dead_letter, 2);
  EXPECT_EQ(st.sent_items, 0);
  EXPECT_EQ(st.bytes, 0);
  EXPECT_EQ(st.readings + st.alerts + st.statuses, 0);
}

TEST_F(OutboxTest, DropOldestKeepsUnderQuotaAndCountsEveryDrop) {
  auto s = Open(Opts(/*quota=*/100));
  int64_t written = 0;
  for (int round = 0; round < 7; ++round) {
    model::WriteSet b;
    for (int i = 0; i < 3; ++i)
      b.outbox.push_back(Item(model::OutboxKind::kReading, round * 3 + i));
    if (round == 1) b.outbox.push_back(Item(model::OutboxKind::kAlert, 99));
    written += static_cast<int64_t>(b.outbox.size());
    OUTPOST_ASSERT_OK(s->Write(b));
    EXPECT_LE(s->stats().outbox.bytes, 100);
  }
  model::OutboxStats st = s->stats().outbox;
  EXPECT_EQ(st.bytes, 100);
  EXPECT_EQ(st.readings + st.alerts, 10);
  EXPECT_EQ(st.alerts, 1);  // readings go first
  EXPECT_EQ(st.dropped_quota_oldest, written - 10);
  EXPECT_EQ(st.dropped_quota_rejected, 0);
  // The survivors are the newest readings.
  auto peek = s->outbox().Peek(100, 1 << 20);
  ASSERT_EQ(peek->size(), 10u);
  EXPECT_EQ(peek->back().body.substr(0, 7), "{\"n\":20");
  EXPECT_EQ((*peek)[1].body.substr(0, 7), "{\"n\":12");
  // Persisted: reopen shows the same counters.
  s.reset();
  s = Open(Opts(100));
  EXPECT_EQ(s->stats().outbox.dropped_quota_oldest, written - 10);
  EXPECT_EQ(s->stats().outbox.bytes, 100);
}

// Regression (uplink_quota_drop_oldest_counts_every_drop, seen once at 8305 of 8192 bytes): a
// batch's body is its items plus an envelope, so taking items into a batch grew the total over
// the quota with no insert to enforce it. Under drop_oldest the batch's commit drops the oldest.
TEST_F(OutboxTest, ABatchEnvelopeDoesNotLeaveTheOutboxOverItsQuota) {
  auto s = Open(Opts(/*quota=*/100));
  model::WriteSet b;
  for (int i = 0; i < 10; ++i) b.outbox.push_back(Item(model::OutboxKind::kReading, i));
  OUTPOST_ASSERT_OK(s->Write(b));
  ASSERT_EQ(s->stats().outbox.bytes, 100);
  auto peek = s->outbox().Peek(3, 1 << 20);
  ASSERT_EQ(peek->size(), 3u);
  // 30 bytes of items in a 45-byte body.
  const std::string body = "{\"readings\":[" + std::string(30, ' ') + "]}";
  ASSERT_EQ(body.size(), 45u);
  OUTPOST_ASSERT_OK(s->outbox().CommitBatch(model::OutboxBatch{"k", 1, kT0, 3, 0, 0, body}, *peek));
  model::OutboxStats st = s->stats().outbox;
  EXPECT_LE(st.bytes, 100);
  EXPECT_EQ(st.bytes, 45 + 50);  // two of the seven queued items went
  EXPECT_EQ(st.dropped_quota_oldest, 2);
  EXPECT_EQ(st.readings, 3 + 5);
}

TEST_F(OutboxTest, RejectNewRefusesWhatDoesNotFitAndCounts) {
  auto s = Open(Opts(/*quota=*/35, model::WhenFull::kRejectNew));
  model::WriteSet b;
  for (int i = 0; i < 5; ++i) b.outbox.push_back(Item(model::OutboxKind::kReading, i));
  OUTPOST_ASSERT_OK(s->Write(b));
  model::OutboxStats st = s->stats().outbox;
  EXPECT_EQ(st.readings, 3);
  EXPECT_EQ(st.bytes, 30);
  EXPECT_EQ(st.dropped_quota_rejected, 2);
  EXPECT_EQ(st.dropped_quota_oldest, 0);
  auto peek = s->outbox().Peek(10, 1 << 20);
  EXPECT_EQ(peek->front().body.substr(0, 6), "{\"n\":0");  // the oldest are kept
}

TEST_F(OutboxTest, AnItemLargerThanTheQuotaIsRejectedUnderDropOldest) {
  auto s = Open(Opts(/*quota=*/5));
  model::WriteSet b;
  b.outbox = {Item(model::OutboxKind::kReading, 1)};
  OUTPOST_ASSERT_OK(s->Write(b));
  EXPECT_EQ(s->stats().outbox.dropped_quota_rejected, 1);
  EXPECT_EQ(s->stats().outbox.bytes, 0);
}

TEST_F(OutboxTest, ExpiryDropsOldItemsAndCountsThem) {
  Options o = Opts();
  o.outbox.expire_after_ms = 60'000;
  auto s = Open(o);
  model::WriteSet b;
  b.outbox = {Item(model::OutboxKind::kReading, 1, kT0),
              Item(model::OutboxKind::kReading, 2, kT0 + 1000),
              Item(model::OutboxKind::kReading, 3, kT0 + 120'000)};
  OUTPOST_ASSERT_OK(s->Write(b));
  OUTPOST_ASSERT_OK(s->RunMaintenance(kT0 + 30'000, 1000));
  EXPECT_EQ(s->stats().outbox.expired, 0);
  OUTPOST_ASSERT_OK(s->RunMaintenance(kT0 + 61'500, 1000));
  model::OutboxStats st = s->stats().outbox;
  EXPECT_EQ(st.expired, 2);
  EXPECT_EQ(st.readings, 1);
  EXPECT_EQ(st.bytes, 10);
  EXPECT_EQ(st.oldest_created_ms, kT0 + 120'000);
}

TEST_F(OutboxTest, CommitOfItemsThatAreNotTheHeadChangesNothing) {
  auto s = Open(Opts());
  model::WriteSet b;
  b.outbox = {Item(model::OutboxKind::kReading, 1)};
  OUTPOST_ASSERT_OK(s->Write(b));
  auto peek = s->outbox().Peek(10, 1 << 20);
  std::vector<model::OutboxEntry> wrong = *peek;
  wrong.push_back(model::OutboxEntry{999, model::OutboxKind::kReading, kT0, "{}"});
  Status st = s->outbox().CommitBatch(model::OutboxBatch{"k", 1, kT0, 2, 0, 0, "x"}, wrong);
  OUTPOST_EXPECT_CODE(st, Code::kFailedPrecondition);
  EXPECT_EQ(s->stats().outbox.readings, 1);
  EXPECT_EQ(s->stats().outbox.bytes, 10);
  EXPECT_EQ(s->stats().outbox.in_flight_key, "");
  EXPECT_EQ(s->outbox().Peek(10, 1 << 20)->size(), 1u);
}

}  // namespace
}  // namespace outpost::gateway::store
