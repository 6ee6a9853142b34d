#include "outpost/gateway/uplink/uplink.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

namespace outpost::gateway::uplink {

Result<TakeResult> TakeBatch(model::Outbox& outbox, const Options& options, Take take,
                             std::int64_t now_wall_ms) {
  TakeResult out;
  auto inflight = outbox.InFlightBatch();
  if (!inflight.ok()) return inflight.status();
  if (inflight->has_value()) {
    out.batch = std::move(**inflight);
    return out;
  }
  const model::OutboxStats st = outbox.stats();
  const std::int64_t queued = st.readings + st.alerts + st.statuses;
  if (queued == 0) return out;
  const bool full = queued >= static_cast<std::int64_t>(options.batch_max_items) ||
                    st.bytes >= options.batch_max_bytes;
  const std::int64_t due = st.oldest_created_ms + options.linger_ms;
  if (take == Take::kWhenDue && !full && now_wall_ms < due) {
    out.due_ms = due;
    return out;
  }
  auto items = outbox.Peek(options.batch_max_items, options.batch_max_bytes, options.reading_share);
  if (!items.ok()) return items.status();
  if (items->empty()) return out;
  auto body =
      BuildBody(options.protocol, options.gateway_id, *items,
                static_cast<std::size_t>(std::max<std::int64_t>(options.batch_max_bytes, 1)));
  if (!body.ok()) return body.status();
  // The body limit may leave the tail out (a seed body is larger than its items): those stay
  // queued. The used items are a prefix, so still the head of each priority.
  items->resize(body->items_used);
  model::OutboxBatch b;
  b.seq = st.next_batch_seq;
  b.key = MakeIdempotencyKey(options.gateway_id, options.boot_id, b.seq);
  b.created_ms = items->front().created_ms;
  for (const auto& e : *items) b.created_ms = std::min(b.created_ms, e.created_ms);
  // Items left out of a seed body go with the batch (counted as left_out, never sent).
  b.readings = body->readings;
  b.alerts = body->alerts;
  b.statuses = body->statuses;
  b.body = std::move(body->json);
  out.left_out = body->left_out;
  out.reserved_metrics = body->reserved_metrics;
  OUTPOST_RETURN_IF_ERROR(outbox.CommitBatch(b, *items));
  out.batch = std::move(b);
  return out;
}

Uplink::Uplink(Options options, OutboxPort& outbox, Sender& sender, const Clock& clock)
    : options_(std::move(options)),
      outbox_(outbox),
      sender_(sender),
      clock_(clock),
      rng_(options_.jitter_seed) {}

Uplink::~Uplink() { Stop(); }

double Uplink::NextRandom() {
  rng_ = rng_ * 6364136223846793005ull + 1442695040888963407ull;
  return static_cast<double>(rng_ >> 11) / 9007199254740992.0;
}

void Uplink::Fail(const std::string& message, std::optional<std::int64_t> retry_after_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::int64_t delay =
      RetryDelayMs(options_.retry, status_.attempt, retry_after_ms, NextRandom());
  if (retry_after_ms) {
    retry_after_until_steady_ =
        clock_.steady_ms() + std::min(*retry_after_ms, options_.retry.max_retry_after_ms);
  }
  ++status_.attempt;
  status_.last_error = message;
  status_.last_error_ms = clock_.wall_ms();
  status_.next_attempt_ms = status_.last_error_ms + delay;
  retry_at_steady_ = clock_.steady_ms() + delay;
}

std::int64_t Uplink::Step() {
  bool flush = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (sync_) {
      // Forget our own backoff, but not a Retry-After the cloud asked for.
      flush = true;
      const std::int64_t now_steady = clock_.steady_ms();
      if (retry_after_until_steady_ > now_steady) {
        retry_at_steady_ = retry_after_until_steady_;
        status_.next_attempt_ms = clock_.wall_ms() + (retry_after_until_steady_ - now_steady);
      } else {
        retry_at_steady_ = 0;
        status_.next_attempt_ms = 0;
      }
    }
    sync_ = false;
    woken_ = false;
    const std::int64_t wait = retry_at_steady_ - clock_.steady_ms();
    if (wait > 0) return wait;
  }
  const std::int64_t now = clock_.wall_ms();

  // Cheap check first: nothing queued, or a linger still running, needs no store round trip.
  const model::OutboxStats backlog = outbox_.LatestStats();
  const std::int64_t queued = backlog.readings + backlog.alerts + backlog.statuses;
  if (queued == 0) return options_.idle_poll_ms;
  if (!flush && backlog.in_flight_key.empty() &&
      queued < static_cast<std::int64_t>(options_.batch_max_items) &&
      backlog.bytes < options_.batch_max_bytes &&
      backlog.oldest_created_ms + options_.linger_ms > now) {
    return std::min(backlog.oldest_created_ms + options_.linger_ms - now, options_.idle_poll_ms);
  }

  TakeResult taken;
  Status st = outbox_.Run([&](model::Outbox& outbox) {
    auto r = TakeBatch(outbox, options_, flush ? Take::kNow : Take::kWhenDue, now);
    if (!r.ok()) return r.status();
    taken = std::move(r).value();
    return Status::Ok();
  });
  if (!st.ok()) {
    if (st.code() == Code::kCancelled) return options_.idle_poll_ms;
    spdlog::error("uplink: outbox: {}", st.ToString());
    Fail("outbox: " + st.message(), std::nullopt);
    return 0;
  }
  if (!taken.batch) {
    if (taken.due_ms == 0) return options_.idle_poll_ms;
    return std::clamp<std::int64_t>(taken.due_ms - now, 1, options_.idle_poll_ms);
  }
  const model::OutboxBatch& batch = *taken.batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    status_.in_flight_key = batch.key;
    status_.left_out += static_cast<std::uint64_t>(taken.left_out);
    status_.reserved_metrics += static_cast<std::uint64_t>(taken.reserved_metrics);
  }
  if (taken.left_out > 0) {
    spdlog::warn(
        "uplink: {} alerts/statuses left out of batch {} (the seed protocol has no "
        "endpoint for them; use cloud.protocol: native)",
        taken.left_out, batch.key);
  }

  const std::int64_t items = batch.readings + batch.alerts + batch.statuses;
  Sent sent = Send(batch.key, batch.body, items);
  const PostResult& resp = sent.resp;
  if (sent.retry) {
    std::string what = resp.status == 0
                           ? "POST " + batch.key + ": " + resp.error
                           : "POST " + batch.key + ": HTTP " + std::to_string(resp.status) + " " +
                                 resp.body.substr(0, 300);
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++status_.retries;
      if (resp.status >= 300 && resp.status < 500 && resp.status != 408 && resp.status != 429) {
        // Not an outage: the route, a proxy or the token refuses every batch alike.
        if (status_.alert.empty()) status_.alert_since_ms = clock_.wall_ms();
        status_.alert = "the cloud endpoint answers HTTP " + std::to_string(resp.status) +
                        " to every batch; the backlog is kept and retried: check " +
                        "cloud.api_endpoint, a proxy in front of it, and cloud.api_key";
      }
    }
    auto retry_after = ParseRetryAfterMs(resp.retry_after, clock_.wall_ms());
    Fail(what, retry_after);
    spdlog::warn("uplink: {} (attempt {}, next in {} ms)", what, status().attempt,
                 status().next_attempt_ms - clock_.wall_ms());
    return 0;
  }
  std::int64_t n_dead = 0;
  for (const auto& [reason, n] : sent.dead) n_dead += n;
  if (!sent.delivered) {
    spdlog::error(
        "uplink: the cloud refused batch {} ({} items) for good: HTTP {} {}; dropped "
        "(dead letter)",
        batch.key, items, resp.status, resp.body.substr(0, 300));
  } else if (n_dead > 0) {
    std::string reasons;
    for (const auto& [reason, n] : sent.dead) {
      reasons += (reasons.empty() ? "" : ", ") + reason + " " + std::to_string(n);
    }
    spdlog::warn("uplink: batch {}: the cloud refused {} of {} items (dead letters: {})", batch.key,
                 n_dead, items, reasons);
  }
  const model::BatchOutcome outcome =
      sent.delivered ? model::BatchOutcome::kDelivered : model::BatchOutcome::kRefused;
  st = outbox_.Run(
      [&](model::Outbox& outbox) { return outbox.FinishBatch(batch.key, outcome, sent.dead); });
  std::lock_guard<std::mutex> lock(mu_);
  if (!st.ok()) {
    // The batch stays in flight; resending it with the same key is harmless (replayed).
    status_.last_error = "outbox: " + st.message();
    status_.last_error_ms = clock_.wall_ms();
    return options_.idle_poll_ms;
  }
  status_.attempt = 0;
  status_.next_attempt_ms = 0;
  status_.in_flight_key.clear();
  retry_at_steady_ = 0;
  if (sent.delivered) {
    ++status_.sent_batches;
    status_.sent_items += static_cast<std::uint64_t>(items - n_dead);
    status_.rejected_items += static_cast<std::uint64_t>(n_dead);
    status_.last_success_ms = clock_.wall_ms();
    status_.alert.clear();
    status_.alert_since_ms = 0;
    if (sent.replayed) ++status_.replayed;
  } else {
    status_.last_error = "batch " + batch.key + " refused: HTTP " + std::to_string(resp.status) +
                         " " + resp.body.substr(0, 300);
    status_.last_error_ms = clock_.wall_ms();
  }
  return 0;
}

Uplink::Sent Uplink::Send(const std::string& key, const std::string& body, std::int64_t items) {
  Sent out;
  out.resp = sender_.Post(ProtocolPath(options_.protocol), key, body);
  switch (Classify(out.resp.status)) {
    case Outcome::kRetry:
      out.retry = true;
      return out;
    case Outcome::kPermanent:
      out.dead["http_" + std::to_string(out.resp.status)] += items;
      return out;
    case Outcome::kDelivered:
      out.delivered = true;
      out.replayed = out.resp.body.find("\"replayed\":true") != std::string::npos;
      for (std::string& reason : proto::batch::ParseRejectedReasons(out.resp.body)) {
        ++out.dead[std::move(reason)];
      }
      return out;
    case Outcome::kTooLarge:
      break;
  }
  // 413: halve until it fits; one item that still does not is a dead letter. The halves and
  // their keys are a pure function of the stored body, so a retry after a failure resends the
  // same sub-batches under the same keys (the cloud replays those it already stored).
  auto halves = items > 1 ? proto::batch::SplitBody(options_.protocol, body)
                          : Result<proto::batch::SplitBodies>(FailedPrecondition("one item"));
  if (!halves.ok()) {
    out.dead["too_large"] += items;
    return out;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++status_.splits;
  }
  spdlog::warn("uplink: batch {} ({} items) is too large for the cloud (413): sending it in halves",
               key, items);
  const struct {
    const std::string& body;
    std::int64_t items;
    bool second;
  } parts[] = {{halves->first, halves->first_items, false},
               {halves->second, halves->second_items, true}};
  for (const auto& part : parts) {
    Sent sub = Send(proto::batch::SubBatchKey(key, part.second), part.body, part.items);
    for (const auto& [reason, n] : sub.dead) out.dead[reason] += n;
    out.delivered = out.delivered || sub.delivered;
    out.replayed = out.replayed || sub.replayed;
    out.resp = std::move(sub.resp);
    if (sub.retry) {
      out.retry = true;
      return out;
    }
  }
  return out;
}

void Uplink::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Uplink::Run() {
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
    }
    const std::int64_t wait = Step();
    std::unique_lock<std::mutex> lock(mu_);
    if (wait > 0) {
      cv_.wait_for(lock, std::chrono::milliseconds(wait),
                   [&] { return stopping_ || woken_ || sync_; });
    }
  }
}

void Uplink::Notify() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    woken_ = true;
  }
  cv_.notify_one();
}

void Uplink::SyncNow() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    sync_ = true;
  }
  cv_.notify_one();
}

void Uplink::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  sender_.Stop();
  if (thread_.joinable()) thread_.join();
}

UplinkStatus Uplink::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

}  // namespace outpost::gateway::uplink
