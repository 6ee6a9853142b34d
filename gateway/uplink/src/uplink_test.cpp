// The uplink engine with a FakeClock, a scripted Sender and a real Store on a temp file: every
// decision (batching, linger, retry, Retry-After, dead letters, restart) without sleeping; the
// outbox failures the store cannot be made to show on demand against an in-memory FakeOutbox.
// HttpSender is tested against a local httplib server.
#include "outpost/gateway/uplink/uplink.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "outpost/gateway/ingest/outbox_items.h"
#include "outpost/gateway/store/store.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/temp_dir.h"
#include "outpost/testing/test_pki.h"
#include "outpost/testing/wait_until.h"

namespace outpost::gateway::uplink {
namespace {

using nlohmann::json;
using outpost::testing::WaitUntil;
using namespace std::chrono_literals;

class DirectOutbox final : public OutboxPort {
 public:
  explicit DirectOutbox(store::Store& s) : store_(s) {}
  Status Run(const std::function<Status(model::Outbox&)>& fn) override {
    return fn(store_.outbox());
  }
  model::OutboxStats LatestStats() override { return store_.outbox().stats(); }

 private:
  store::Store& store_;
};

struct Sent {
  std::string path, key, body;
  std::string inflight_key_at_send;  // what the store had persisted when the POST went out
};

class ScriptedSender final : public Sender {
 public:
  explicit ScriptedSender(model::Outbox& outbox) : outbox_(outbox) {}
  PostResult Post(const std::string& path, const std::string& key,
                  const std::string& body) override {
    sent.push_back({path, key, body, outbox_.stats().in_flight_key});
    if (script.empty()) return PostResult{200, "", "", "{\"replayed\":false}"};
    PostResult r = script.front();
    script.pop_front();
    return r;
  }
  void Stop() override {}
  std::deque<PostResult> script;
  std::vector<Sent> sent;

 private:
  model::Outbox& outbox_;
};

class UplinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Reopen();
    opt_.gateway_id = "gw1";
    opt_.boot_id = "b00t";
    opt_.batch_max_items = 3;
    opt_.linger_ms = 1000;
    opt_.retry.backoff = {100, 10'000};
  }
  void TearDown() override {
    sender_.reset();
    outbox_.reset();
    store_.reset();
  }
  void Reopen() {
    sender_.reset();
    outbox_.reset();
    store_.reset();
    store::Options o;
    o.path = dir_.File("gateway.db");
    o.synchronous = store::Synchronous::kOff;
    o.outbox.enabled = true;
    OUTPOST_ASSERT_OK_AND_ASSIGN(store_, store::Store::Open(o));
    outbox_ = std::make_unique<DirectOutbox>(*store_);
    sender_ = std::make_unique<ScriptedSender>(store_->outbox());
  }
  void Queue(const std::string& device, int from, int n) {
    model::WriteSet b;
    for (int i = from; i < from + n; ++i) {
      model::ReadingRow r{device,
                          true,
                          1,
                          static_cast<std::uint64_t>(i),
                          false,
                          0,
                          clock_.wall_ms(),
                          true,
                          clock_.wall_ms(),
                          {{"t", double(i), false}}};
      b.outbox.push_back(
          {model::OutboxKind::kReading, clock_.wall_ms(), ingest::ReadingItem(r).body});
    }
    OUTPOST_ASSERT_OK(store_->Write(b));
  }
  std::vector<int> Seqs(const Sent& s) {
    std::vector<int> out;
    const json j = json::parse(s.body);
    for (const auto& r : j["readings"]) out.push_back(r["seq"].get<int>());
    return out;
  }
  Uplink Make() { return Uplink(opt_, *outbox_, *sender_, clock_); }

  outpost::testing::TempDir dir_{"outpost-uplink"};
  FakeClock clock_;
  Options opt_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<DirectOutbox> outbox_;
  std::unique_ptr<ScriptedSender> sender_;
};

TEST_F(UplinkTest, FullBatchGoesAtOnceInOrderWithKeyPersistedFirst) {
  Queue("n1", 1, 7);
  Uplink u = Make();
  EXPECT_EQ(u.Step(), 0);
  EXPECT_EQ(u.Step(), 0);
  // 1 item left: it lingers.
  EXPECT_GT(u.Step(), 0);
  ASSERT_EQ(sender_->sent.size(), 2u);
  EXPECT_EQ(Seqs(sender_->sent[0]), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(Seqs(sender_->sent[1]), (std::vector<int>{4, 5, 6}));
  EXPECT_EQ(sender_->sent[0].path, "/sensor-data/batch");
  EXPECT_EQ(sender_->sent[0].key, "gw1:b00t:1");
  EXPECT_EQ(sender_->sent[1].key, "gw1:b00t:2");
  for (const auto& s : sender_->sent) EXPECT_EQ(s.inflight_key_at_send, s.key);
  clock_.Advance(1000);  // the linger ends
  EXPECT_EQ(u.Step(), 0);
  ASSERT_EQ(sender_->sent.size(), 3u);
  EXPECT_EQ(Seqs(sender_->sent[2]), (std::vector<int>{7}));
  auto st = store_->stats().outbox;
  EXPECT_EQ(st.readings, 0);
  EXPECT_EQ(st.sent_items, 7);
  EXPECT_EQ(st.sent_batches, 3);
  EXPECT_EQ(u.status().sent_items, 7u);
  EXPECT_EQ(u.status().last_success_ms, clock_.wall_ms());
}

TEST_F(UplinkTest, RetriesTheIdenticalBodyWithTheIdenticalKeyAfterBackoff) {
  Queue("n1", 1, 3);
  sender_->script = {PostResult{500, "", "", "{\"error\":{}}"}, PostResult{0, "refused"}};
  Uplink u = Make();
  EXPECT_EQ(u.Step(), 0);  // 500
  std::int64_t wait = u.Step();
  EXPECT_GT(wait, -1);
  EXPECT_EQ(sender_->sent.size(), 1u);
  EXPECT_EQ(u.status().attempt, 1u);
  EXPECT_NE(u.status().last_error.find("HTTP 500"), std::string::npos);
  clock_.Advance(100);     // attempt 0 waits < base
  EXPECT_EQ(u.Step(), 0);  // network error
  EXPECT_EQ(sender_->sent.size(), 2u);
  clock_.Advance(200);
  EXPECT_EQ(u.Step(), 0);  // delivered
  ASSERT_EQ(sender_->sent.size(), 3u);
  for (const auto& s : sender_->sent) {
    EXPECT_EQ(s.key, sender_->sent[0].key);
    EXPECT_EQ(s.body, sender_->sent[0].body);
  }
  EXPECT_EQ(u.status().retries, 2u);
  EXPECT_EQ(u.status().attempt, 0u);
  EXPECT_EQ(store_->stats().outbox.sent_items, 3);
}

TEST_F(UplinkTest, HonoursRetryAfterOn429) {
  Queue("n1", 1, 3);
  sender_->script = {PostResult{429, "", "7", ""}};
  Uplink u = Make();
  EXPECT_EQ(u.Step(), 0);
  EXPECT_EQ(u.Step(), 7000);  // not before the server said
  clock_.Advance(6999);
  EXPECT_EQ(u.Step(), 1);
  EXPECT_EQ(sender_->sent.size(), 1u);
  clock_.Advance(1);
  EXPECT_EQ(u.Step(), 0);
  EXPECT_EQ(sender_->sent.size(), 2u);
}

TEST_F(UplinkTest, SyncNowFlushesTheLingerAndForgetsTheBackoff) {
  Queue("n1", 1, 1);
  Uplink u = Make();
  EXPECT_GT(u.Step(), 0);
  EXPECT_TRUE(sender_->sent.empty());
  u.SyncNow();
  EXPECT_EQ(u.Step(), 0);
  EXPECT_EQ(sender_->sent.size(), 1u);
  Queue("n1", 2, 3);
  opt_.retry.backoff = {3'600'000, 3'600'000};
  Uplink slow = Make();
  sender_->script = {PostResult{503, "", "", ""}};
  EXPECT_EQ(slow.Step(), 0);
  EXPECT_GT(slow.Step(), 0);  // our own backoff
  slow.SyncNow();
  EXPECT_EQ(slow.Step(), 0);
  EXPECT_EQ(sender_->sent.size(), 3u);
  EXPECT_EQ(store_->stats().outbox.readings, 0);
}

// issue 8 section 5: sync_cloud drained at once even when the cloud had asked for a pause.
TEST_F(UplinkTest, sync_cloud_does_not_skip_retry_after) {
  Queue("n1", 1, 3);
  sender_->script = {PostResult{503, "", "3600", ""}};
  Uplink u = Make();
  EXPECT_EQ(u.Step(), 0);
  EXPECT_EQ(u.Step(), 3'600'000);
  u.SyncNow();
  EXPECT_EQ(u.Step(), 3'600'000);  // still waiting for the cloud
  EXPECT_EQ(sender_->sent.size(), 1u);
  EXPECT_GT(u.status().next_attempt_ms, clock_.wall_ms());
  clock_.Advance(3'600'000);
  u.SyncNow();
  EXPECT_EQ(u.Step(), 0);
  EXPECT_EQ(sender_->sent.size(), 2u);
  EXPECT_EQ(store_->stats().outbox.readings, 0);
}

// issue 8: the cloud refused one item and the gateway dead-lettered the whole batch.
TEST_F(UplinkTest, cloud_rejected_items_are_dead_letters_by_reason) {
  Queue("n1", 1, 3);
  sender_->script = {
      PostResult{200, "", "",
                 R"({"accepted":1,"duplicates":0,"rejected":[{"array":"readings","index":0,)"
                 R"("reason":"bad_metric_name","error":"x"},{"array":"readings","index":2,)"
                 R"("reason":"bad_value"}],"replayed":false})"}};
  {
    Uplink u = Make();
    EXPECT_EQ(u.Step(), 0);
    EXPECT_EQ(u.status().rejected_items, 2u);
    EXPECT_EQ(u.status().sent_items, 1u);
  }
  auto st = store_->stats().outbox;
  EXPECT_EQ(st.dead_letter, 2);
  EXPECT_EQ(st.sent_items, 1);
  EXPECT_EQ(st.sent_batches, 1);
  Reopen();  // persisted
  st = store_->stats().outbox;
  EXPECT_EQ(st.dead_letter_reasons,
            (std::map<std::string, std::int64_t>{{"bad_metric_name", 1}, {"bad_value", 1}}));
  EXPECT_EQ(st.dead_letter, 2);
}

// issue 8: a 413 dropped the whole batch as a dead letter.
TEST_F(UplinkTest, cloud_413_splits_the_batch) {
  opt_.batch_max_items = 4;
  Queue("n1", 1, 4);
  const PostResult too_large{413, "", "", "<h1>413</h1>"};
  // The whole batch, then its first half, then the first half's first item: too large.
  sender_->script = {too_large, too_large, too_large};
  Uplink u = Make();
  EXPECT_EQ(u.Step(), 0);
  // 4 -> [2: 413 -> [1: 413 dead, 1: ok]] + [2: ok]
  ASSERT_EQ(sender_->sent.size(), 5u);
  const std::string key = sender_->sent[0].key;
  EXPECT_EQ(sender_->sent[1].key, key + ".a");
  EXPECT_EQ(sender_->sent[2].key, key + ".aa");
  EXPECT_EQ(sender_->sent[3].key, key + ".ab");
  EXPECT_EQ(sender_->sent[4].key, key + ".b");
  EXPECT_EQ(Seqs(sender_->sent[3]), (std::vector<int>{2}));
  EXPECT_EQ(Seqs(sender_->sent[4]), (std::vector<int>{3, 4}));
  auto st = store_->stats().outbox;
  EXPECT_EQ(st.dead_letter, 1);
  EXPECT_EQ(st.dead_letter_reasons["too_large"], 1);
  EXPECT_EQ(st.sent_items, 3);
  EXPECT_TRUE(st.in_flight_key.empty());
  EXPECT_EQ(u.status().splits, 2u);
}

// A failure in the middle of a split resends the same sub-batches under the same keys.
TEST_F(UplinkTest, split_retry_resends_the_same_sub_batches) {
  opt_.batch_max_items = 4;
  Queue("n1", 1, 4);
  sender_->script = {PostResult{413, "", "", ""}, PostResult{200, "", "", "{}"},
                     PostResult{503, "", "", ""}};
  Uplink u = Make();
  EXPECT_EQ(u.Step(), 0);
  ASSERT_EQ(sender_->sent.size(), 3u);
  EXPECT_EQ(store_->stats().outbox.readings, 4);  // still in flight
  clock_.Advance(20'000);
  sender_->script = {PostResult{413, "", "", ""}};
  EXPECT_EQ(u.Step(), 0);
  ASSERT_EQ(sender_->sent.size(), 6u);
  EXPECT_EQ(sender_->sent[4].key, sender_->sent[1].key);
  EXPECT_EQ(sender_->sent[4].body, sender_->sent[1].body);
  EXPECT_EQ(sender_->sent[5].key, sender_->sent[2].key);
  EXPECT_EQ(store_->stats().outbox.sent_items, 4);
}

// issue 8: a proxy's 404 (or 415...) was a permanent refusal: batch after batch was dropped.
TEST_F(UplinkTest, proxy_404_is_retried_and_alerted_not_dropped) {
  Queue("n1", 1, 3);
  const PostResult not_found{404, "", "", "<html>404 Not Found</html>"};
  sender_->script = {not_found, not_found, PostResult{415, "", "", ""}};
  Uplink u = Make();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(u.Step(), 0);
    EXPECT_FALSE(u.status().alert.empty());
    clock_.Advance(20'000);
  }
  EXPECT_EQ(store_->stats().outbox.dead_letter, 0);
  EXPECT_EQ(store_->stats().outbox.readings, 3);
  EXPECT_NE(u.status().alert.find("HTTP 415"), std::string::npos);
  EXPECT_EQ(u.Step(), 0);  // the route is fixed
  EXPECT_EQ(sender_->sent.size(), 4u);
  EXPECT_TRUE(u.status().alert.empty());
  EXPECT_EQ(store_->stats().outbox.sent_items, 3);
  EXPECT_EQ(store_->stats().outbox.dead_letter, 0);
}

// issue 8 section 4: alerts and statuses went first and a flood of them starved readings.
TEST_F(UplinkTest, alerts_cannot_starve_readings) {
  opt_.protocol = Protocol::kNative;
  opt_.batch_max_items = 4;
  Queue("n1", 1, 2);
  model::WriteSet b;
  for (int i = 0; i < 10; ++i) {
    b.outbox.push_back(
        {model::OutboxKind::kStatus, clock_.wall_ms(),
         ingest::StatusItem("n1", i % 2 ? "online" : "offline", clock_.wall_ms()).body});
  }
  OUTPOST_ASSERT_OK(store_->Write(b));
  Uplink u = Make();
  EXPECT_EQ(u.Step(), 0);
  ASSERT_EQ(sender_->sent.size(), 1u);
  json j = json::parse(sender_->sent[0].body);
  EXPECT_EQ(j["readings"].size(), 2u);
  EXPECT_EQ(j["statuses"].size(), 2u);
  // With no reading waiting, statuses take the whole batch.
  EXPECT_EQ(u.Step(), 0);
  j = json::parse(sender_->sent[1].body);
  EXPECT_EQ(j["statuses"].size(), 4u);
}

// issue 8: a seed body is the flat form, larger than the stored items: it outgrew the limit.
TEST_F(UplinkTest, seed_body_stays_within_batch_max_bytes) {
  opt_.batch_max_items = 100;
  opt_.batch_max_bytes = 1024;
  Queue("n1", 1, 40);
  Uplink u = Make();
  for (int i = 0; i < 20 && store_->stats().outbox.readings > 0; ++i) {
    u.SyncNow();
    EXPECT_EQ(u.Step(), 0);
  }
  EXPECT_EQ(store_->stats().outbox.readings, 0);
  EXPECT_GT(sender_->sent.size(), 2u);
  int total = 0;
  for (const auto& s : sender_->sent) {
    EXPECT_LE(s.body.size(), 1024u);
    total += static_cast<int>(Seqs(s).size());
  }
  EXPECT_EQ(total, 40);
}

TEST_F(UplinkTest, PermanentRefusalIsADeadLetterAndDoesNotBlockTheQueue) {
  Queue("n1", 1, 6);
  sender_->script = {PostResult{400, "", "", "{\"error\":{\"code\":\"invalid_field\"}}"}};
  Uplink u = Make();
  EXPECT_EQ(u.Step(), 0);
  EXPECT_EQ(u.Step(), 0);
  ASSERT_EQ(sender_->sent.size(), 2u);
  EXPECT_NE(sender_->sent[0].key, sender_->sent[1].key);
  auto st = store_->stats().outbox;
  EXPECT_EQ(st.dead_letter, 3);
  EXPECT_EQ(st.dead_letter_reasons["http_400"], 3);
  EXPECT_EQ(st.sent_items, 3);
  EXPECT_NE(u.status().last_error.find("HTTP 400"), std::string::npos);
}

TEST_F(UplinkTest, ARestartResendsThePersistedBatchWithItsKey) {
  Queue("n1", 1, 3);
  {
    sender_->script = {PostResult{0, "connection reset"}};
    Uplink u = Make();
    EXPECT_EQ(u.Step(), 0);
  }
  std::string key = sender_->sent[0].key, body = sender_->sent[0].body;
  Reopen();  // as after kill -9: a new process, a new boot id
  opt_.boot_id = "n3w";
  Uplink u = Make();
  EXPECT_EQ(u.Step(), 0);
  ASSERT_EQ(sender_->sent.size(), 1u);
  EXPECT_EQ(sender_->sent[0].key, key);
  EXPECT_EQ(sender_->sent[0].body, body);
  Queue("n1", 4, 3);
  EXPECT_EQ(u.Step(), 0);
  EXPECT_EQ(sender_->sent[1].key, "gw1:n3w:2");  // the batch sequence continues
}

TEST_F(UplinkTest, NativeProtocolSendsAlertsFirst) {
  opt_.protocol = Protocol::kNative;
  Queue("n1", 1, 2);
  model::WriteSet b;
  b.outbox.push_back({model::OutboxKind::kStatus, clock_.wall_ms(),
                      ingest::StatusItem("n1", "offline", clock_.wall_ms()).body});
  OUTPOST_ASSERT_OK(store_->Write(b));
  Uplink u = Make();
  EXPECT_EQ(u.Step(), 0);
  ASSERT_EQ(sender_->sent.size(), 1u);
  EXPECT_EQ(sender_->sent[0].path, "/v1/batches");
  json j = json::parse(sender_->sent[0].body);
  EXPECT_EQ(j["statuses"].size(), 1u);
  EXPECT_EQ(j["readings"].size(), 2u);
}

// ---- The engine against an in-memory outbox whose calls can be made to fail. ----

// model::Outbox in memory: readings only, one priority, what the uplink relies on (the store's
// own behaviour is tested in gateway/store).
class FakeOutbox final : public model::Outbox {
 public:
  void Add(int seq, std::int64_t created_ms) {
    queue.push_back({next_id++, model::OutboxKind::kReading, created_ms,
                     R"({"device_id":"n1","seq":)" + std::to_string(seq) + R"(,"ts_ms":)" +
                         std::to_string(created_ms) + R"(,"metrics":{"t":1}})"});
  }
  Result<std::optional<model::OutboxBatch>> InFlightBatch() override { return in_flight; }
  Result<std::vector<model::OutboxEntry>> Peek(size_t max_items, std::int64_t max_bytes,
                                               double /*reading_share*/) override {
    std::vector<model::OutboxEntry> out;
    std::int64_t bytes = 0;
    for (const auto& e : queue) {
      if (out.size() >= max_items) break;
      if (!out.empty() && bytes + static_cast<std::int64_t>(e.body.size()) > max_bytes) break;
      bytes += static_cast<std::int64_t>(e.body.size());
      out.push_back(e);
    }
    return out;
  }
  Status CommitBatch(const model::OutboxBatch& batch,
                     const std::vector<model::OutboxEntry>& items) override {
    if (!fail_commit.ok()) return std::exchange(fail_commit, Status::Ok());
    if (in_flight) return FailedPrecondition("a batch is in flight");
    if (items.size() > queue.size()) return FailedPrecondition("not the head of the queue");
    queue.erase(queue.begin(), queue.begin() + static_cast<std::ptrdiff_t>(items.size()));
    in_flight = batch;
    next_batch_seq = batch.seq + 1;
    return Status::Ok();
  }
  Status FinishBatch(const std::string& key, model::BatchOutcome outcome,
                     const std::map<std::string, std::int64_t>& dead_letters) override {
    if (!fail_finish.ok()) return std::exchange(fail_finish, Status::Ok());
    if (!in_flight || in_flight->key != key) return NotFound("not in flight: " + key);
    finished.push_back({key, outcome, dead_letters});
    in_flight.reset();
    return Status::Ok();
  }
  model::OutboxStats stats() const override {
    model::OutboxStats st;
    st.readings = static_cast<std::int64_t>(queue.size());
    for (const auto& e : queue) {
      st.bytes += static_cast<std::int64_t>(e.body.size());
      if (st.oldest_created_ms == 0 || e.created_ms < st.oldest_created_ms) {
        st.oldest_created_ms = e.created_ms;
      }
    }
    if (in_flight) {
      st.readings += in_flight->readings;
      st.bytes += static_cast<std::int64_t>(in_flight->body.size());
      st.in_flight_key = in_flight->key;
      if (st.oldest_created_ms == 0 || in_flight->created_ms < st.oldest_created_ms) {
        st.oldest_created_ms = in_flight->created_ms;
      }
    }
    st.next_batch_seq = next_batch_seq;
    return st;
  }

  struct Finished {
    std::string key;
    model::BatchOutcome outcome;
    std::map<std::string, std::int64_t> dead_letters;
  };
  std::deque<model::OutboxEntry> queue;
  std::optional<model::OutboxBatch> in_flight;
  std::int64_t next_id = 1, next_batch_seq = 1;
  Status fail_commit, fail_finish;  // the next such call fails with this, changing nothing
  std::vector<Finished> finished;
};

// The owner thread's side: runs the function at once, or answers `refuse` without running it.
class FakePort final : public OutboxPort {
 public:
  explicit FakePort(FakeOutbox& outbox) : outbox_(outbox) {}
  Status Run(const std::function<Status(model::Outbox&)>& fn) override {
    if (!refuse.ok()) return refuse;
    return fn(outbox_);
  }
  model::OutboxStats LatestStats() override { return outbox_.stats(); }
  Status refuse;

 private:
  FakeOutbox& outbox_;
};

class UplinkFakeOutboxTest : public ::testing::Test {
 protected:
  UplinkFakeOutboxTest() {
    opt_.gateway_id = "gw1";
    opt_.boot_id = "b00t";
    opt_.batch_max_items = 3;
    opt_.retry.backoff = {100, 10'000};
  }
  void Queue(int n) {
    for (int i = 0; i < n; ++i) outbox_.Add(++seq_, clock_.wall_ms());
  }
  Uplink Make() { return Uplink(opt_, port_, sender_, clock_); }

  FakeClock clock_;
  Options opt_;
  FakeOutbox outbox_;
  FakePort port_{outbox_};
  ScriptedSender sender_{outbox_};
  int seq_ = 0;
};

TEST_F(UplinkFakeOutboxTest, outbox_failure_is_recorded_and_retried_after_backoff) {
  Queue(3);
  outbox_.fail_commit = Status(Code::kUnavailable, "disk I/O error");
  Uplink u = Make();
  EXPECT_EQ(u.Step(), 0);
  EXPECT_TRUE(sender_.sent.empty());
  EXPECT_EQ(u.status().attempt, 1u);
  EXPECT_NE(u.status().last_error.find("outbox: disk I/O error"), std::string::npos)
      << u.status().last_error;
  EXPECT_GT(u.Step(), 0);  // backing off: no new attempt yet
  EXPECT_TRUE(sender_.sent.empty());
  clock_.Advance(100);
  EXPECT_EQ(u.Step(), 0);
  ASSERT_EQ(sender_.sent.size(), 1u);
  EXPECT_EQ(sender_.sent[0].key, "gw1:b00t:1");
  EXPECT_EQ(sender_.sent[0].inflight_key_at_send, "gw1:b00t:1");
  ASSERT_EQ(outbox_.finished.size(), 1u);
  EXPECT_EQ(outbox_.finished[0].outcome, model::BatchOutcome::kDelivered);
  EXPECT_TRUE(outbox_.queue.empty());
  EXPECT_EQ(u.status().attempt, 0u);
}

TEST_F(UplinkFakeOutboxTest, failed_finish_keeps_the_batch_in_flight_and_resends_it_with_its_key) {
  Queue(3);
  outbox_.fail_finish = Status(Code::kUnavailable, "disk I/O error");
  Uplink u = Make();
  EXPECT_EQ(u.Step(), opt_.idle_poll_ms);
  ASSERT_EQ(sender_.sent.size(), 1u);
  ASSERT_TRUE(outbox_.in_flight.has_value());
  EXPECT_NE(u.status().last_error.find("outbox: disk I/O error"), std::string::npos);
  EXPECT_EQ(u.status().sent_batches, 0u);
  EXPECT_EQ(u.Step(), 0);  // the same batch again: the cloud replays it
  ASSERT_EQ(sender_.sent.size(), 2u);
  EXPECT_EQ(sender_.sent[1].key, sender_.sent[0].key);
  EXPECT_EQ(sender_.sent[1].body, sender_.sent[0].body);
  ASSERT_EQ(outbox_.finished.size(), 1u);
  EXPECT_FALSE(outbox_.in_flight.has_value());
  EXPECT_EQ(u.status().sent_batches, 1u);
}

TEST_F(UplinkFakeOutboxTest, permanent_refusal_finishes_the_batch_as_refused) {
  Queue(3);
  sender_.script = {PostResult{422, "", "", "{}"}};
  Uplink u = Make();
  EXPECT_EQ(u.Step(), 0);
  ASSERT_EQ(outbox_.finished.size(), 1u);
  EXPECT_EQ(outbox_.finished[0].outcome, model::BatchOutcome::kRefused);
  EXPECT_EQ(outbox_.finished[0].dead_letters,
            (std::map<std::string, std::int64_t>{{"http_422", 3}}));
  EXPECT_EQ(u.status().sent_batches, 0u);
}

TEST_F(UplinkFakeOutboxTest, outbox_owner_shutting_down_is_not_an_error) {
  Queue(3);
  port_.refuse = Status(Code::kCancelled, "store writer stopping");
  Uplink u = Make();
  EXPECT_EQ(u.Step(), opt_.idle_poll_ms);
  EXPECT_TRUE(sender_.sent.empty());
  EXPECT_TRUE(u.status().last_error.empty());
  EXPECT_EQ(u.status().attempt, 0u);
}

TEST_F(UplinkFakeOutboxTest, lingering_items_need_no_outbox_round_trip) {
  opt_.linger_ms = 1000;
  Queue(1);
  port_.refuse = Status(Code::kUnavailable, "must not be called");
  Uplink u = Make();
  EXPECT_EQ(u.Step(), 1000);
  EXPECT_TRUE(u.status().last_error.empty());
  port_.refuse = Status::Ok();
  clock_.Advance(1000);
  EXPECT_EQ(u.Step(), 0);
  EXPECT_EQ(sender_.sent.size(), 1u);
}

// ---- HttpSender against a real local HTTP server. ----
class HttpSenderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.Post("/api/sensor-data/batch",
                 [this](const httplib::Request& req, httplib::Response& res) {
                   {
                     std::lock_guard<std::mutex> lock(mu_);
                     auth_ = req.get_header_value("Authorization");
                     key_ = req.get_header_value("Idempotency-Key");
                     type_ = req.get_header_value("Content-Type");
                     body_ = req.body;
                   }
                   if (req.body == "slow") {
                     // The server's behaviour under test (a stalled cloud), not test
                     // synchronisation.
                     std::this_thread::sleep_for(std::chrono::milliseconds(3000));
                   }
                   res.status = req.body == "busy" ? 429 : 200;
                   if (res.status == 429) res.set_header("Retry-After", "4");
                   res.set_content("{\"accepted\":1}", "application/json");
                 });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    ASSERT_TRUE(WaitUntil("the HTTP server listens", 10s, [this] { return server_.is_running(); }));
  }
  void TearDown() override {
    server_.stop();
    thread_.join();
  }
  std::unique_ptr<Sender> Make(std::int64_t request_timeout_ms = 5000) {
    HttpSenderOptions o;
    o.endpoint = "http://127.0.0.1:" + std::to_string(port_) + "/api/";
    o.token = "s3cret";
    o.request_timeout_ms = request_timeout_ms;
    auto s = MakeHttpSender(o);
    OUTPOST_EXPECT_OK(s);
    return std::move(s).value();
  }
  // The last request's key and body, as the server thread saw them.
  bool Received(const std::string& key, const std::string& body) {
    std::lock_guard<std::mutex> lock(mu_);
    return key_ == key && body_ == body;
  }
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;  // the server thread writes what it received, the test reads it
  std::string auth_, key_, type_, body_;
};

TEST_F(HttpSenderTest, PostsWithBearerKeyAndJson) {
  auto s = Make();
  PostResult r = s->Post("/sensor-data/batch", "gw1:b:1", "{\"readings\":[]}");
  EXPECT_EQ(r.status, 200);
  {
    std::lock_guard<std::mutex> lock(mu_);
    EXPECT_EQ(auth_, "Bearer s3cret");
    EXPECT_EQ(key_, "gw1:b:1");
    EXPECT_EQ(type_, "application/json");
    EXPECT_EQ(body_, "{\"readings\":[]}");
  }
  r = s->Post("/sensor-data/batch", "", "busy");
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.retry_after, "4");
}

TEST_F(HttpSenderTest, WholeRequestTimeoutAndStopAreBounded) {
  auto s = Make(/*request_timeout_ms=*/300);
  auto t0 = std::chrono::steady_clock::now();
  PostResult r = s->Post("/sensor-data/batch", "k", "slow");
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.status, 0);
  EXPECT_LT(took, std::chrono::milliseconds(2500));

  auto s2 = Make(/*request_timeout_ms=*/60'000);
  std::atomic<bool> done{false};
  std::thread poster([&] {
    PostResult r2 = s2->Post("/sensor-data/batch", "k", "slow");
    EXPECT_EQ(r2.status, 0);
    done = true;
  });
  ASSERT_TRUE(WaitUntil("the slow request reaches the server", 10s,
                        [this] { return Received("k", "slow"); }));
  t0 = std::chrono::steady_clock::now();
  s2->Stop();
  poster.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(2500));
  EXPECT_EQ(s2->Post("/sensor-data/batch", "k", "x").status, 0);  // stopped for good
}

// TLS: the cloud's certificate is verified against cloud.ca_file, host name included.
TEST(HttpSenderTlsTest, VerifiesTheServerAgainstTheConfiguredCa) {
  outpost::testing::TempDir dir("outpost-uplink-tls");
  OUTPOST_ASSERT_OK_AND_ASSIGN(auto pki, outpost::testing::GenerateTestPki(dir.path()));
  httplib::SSLServer server(pki.server_cert.c_str(), pki.server_key.c_str());
  server.Post("/sensor-data/batch", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"accepted\":0}", "application/json");
  });
  int port = server.bind_to_any_port("127.0.0.1");
  std::thread t([&] { server.listen_after_bind(); });
  ASSERT_TRUE(WaitUntil("the HTTPS server listens", 10s, [&] { return server.is_running(); }));
  auto post = [&](const std::string& host, const std::string& ca) {
    HttpSenderOptions o;
    o.endpoint = "https://" + host + ":" + std::to_string(port);
    o.ca_file = ca;
    o.request_timeout_ms = 5000;
    auto s = MakeHttpSender(o);
    OUTPOST_EXPECT_OK(s);
    return (*s)->Post("/sensor-data/batch", "k", "{}");
  };
  EXPECT_EQ(post("localhost", pki.ca_cert).status, 200);
  PostResult wrong_ca = post("localhost", pki.other_ca_cert);
  EXPECT_EQ(wrong_ca.status, 0);
  EXPECT_NE(wrong_ca.error.find("cloud.ca_file"), std::string::npos) << wrong_ca.error;
  server.stop();
  t.join();
}

TEST(HttpSenderOptionsTest, RejectsANonHttpEndpointNamingTheKey) {
  HttpSenderOptions o;
  o.endpoint = "ftp://x";
  auto s = MakeHttpSender(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("cloud.api_endpoint"), std::string::npos);
  o.endpoint = "https://cloud.example.com:8443/api";
  OUTPOST_EXPECT_OK(MakeHttpSender(o));
}

}  // namespace
}  // namespace outpost::gateway::uplink
