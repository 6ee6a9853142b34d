#include "outpost/bench_pub/publisher.h"

#include <unistd.h>

#include <algorithm>
#include <asio.hpp>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <limits>
#include <memory>
#include <vector>

#include "outpost/bench_pub/connection.h"
#include "outpost/bench_pub/pacer.h"

namespace outpost::bench_pub {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Unsent bytes a connection may hold before it stops taking readings: enough for large,
// coalesced writes, small enough that thousands of connections stay within a few hundred MB.
constexpr std::size_t kMaxBacklogBytes = 128 * 1024;
// Readings published per turn of the event loop before reads and timers get a go.
constexpr int kPumpBudget = 4096;
// Connections being opened at once (Mosquitto's listen backlog is small).
constexpr std::size_t kOpenConcurrency = 64;

std::int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class Run {
 public:
  explicit Run(const PublisherOptions& o)
      : o_(o),
        gen_(o.devices, o.format, o.seed, static_cast<std::uint64_t>(WallMs()), o.id_prefix),
        pacer_(o.rate_per_s, o.count == 0 ? std::numeric_limits<std::uint64_t>::max() : o.count),
        pace_timer_(io_),
        progress_timer_(io_),
        tick_timer_(io_),
        phase_timer_(io_),
        end_timer_(io_) {}

  Summary Go() {
    summary_.connections = o_.connections;
    conns_.reserve(o_.connections);
    dirty_.assign(o_.connections, 0);
    opened_at_ = SteadyClock::now();
    for (std::size_t i = 0; i < o_.connections; ++i) conns_.push_back(MakeConnection(i));
    for (std::size_t i = 0; i < std::min(kOpenConcurrency, conns_.size()); ++i) OpenNext();
    ArmPhaseTimer(o_.connect_timeout_s, "connect timeout: not every connection is up after " +
                                            std::to_string(o_.connect_timeout_s) + " s");
    ArmTick();
    io_.run();
    return summary_;
  }

 private:
  enum class Phase { kConnecting, kPublishing, kDraining, kClosing, kDone };

  std::unique_ptr<Connection> MakeConnection(std::size_t index) {
    mqtt::SessionOptions so;
    so.client_id =
        o_.client_prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(index);
    so.clean_session = true;
    so.keepalive_s = 60;
    so.max_inflight = o_.max_inflight;
    ConnectionCallbacks cb;
    cb.on_event = [this](const mqtt::Event& e) {
      if (std::holds_alternative<mqtt::PublishAcked>(e)) {
        OnAcked();
      } else if (std::holds_alternative<mqtt::Connected>(e)) {
        OnConnected();
      } else if (auto* refused = std::get_if<mqtt::ConnectRefused>(&e)) {
        Fail(std::string("broker refused a connection: ") +
             mqtt::ConnAckCodeName(refused->return_code));
      }
    };
    cb.on_drained = [this] {
      if (blocked_) Pump();
      if (phase_ == Phase::kDraining) CheckDrained();
    };
    cb.on_closed = [this](const Status& why) {
      ++closed_;
      if (phase_ != Phase::kClosing && phase_ != Phase::kDone) {
        Fail(why.ok() ? "connection closed" : why.ToString());
      }
      if (phase_ == Phase::kClosing && closed_ == conns_.size()) Finish();
    };
    return std::make_unique<Connection>(io_, std::move(so), std::move(cb));
  }

  void OpenNext() {
    if (next_open_ < conns_.size()) conns_[next_open_++]->Open(o_.host, o_.port);
  }

  void OnConnected() {
    ++connected_;
    OpenNext();
    if (connected_ == conns_.size() && phase_ == Phase::kConnecting) StartPublishing();
  }

  void StartPublishing() {
    phase_ = Phase::kPublishing;
    phase_timer_.cancel();
    start_ = SteadyClock::now();
    summary_.connect_s = std::chrono::duration<double>(start_ - opened_at_).count();
    summary_.first_publish_wall_ms = WallMs();
    if (o_.duration_s > 0) {
      end_timer_.expires_after(
          std::chrono::nanoseconds(static_cast<std::int64_t>(o_.duration_s * 1e9)));
      end_timer_.async_wait([this](const asio::error_code& ec) {
        if (!ec && phase_ == Phase::kPublishing) EndPublishing();
      });
    }
    if (o_.progress) ArmProgress();
    Pump();
  }

  void Pump() {
    if (phase_ != Phase::kPublishing) return;
    blocked_ = false;
    const std::size_t n = o_.devices;
    const std::size_t c = conns_.size();
    int budget = kPumpBudget;
    auto now = SteadyClock::now();
    std::int64_t elapsed_ns = (now - start_).count();
    if (o_.duration_s > 0 && static_cast<double>(elapsed_ns) >= o_.duration_s * 1e9) {
      EndPublishing();
      return;
    }
    const std::uint64_t due = pacer_.DueBy(elapsed_ns);
    while (sent_ < due && budget > 0) {
      const std::size_t device = static_cast<std::size_t>(sent_ % n);
      const std::size_t ci = device % c;
      Connection& conn = *conns_[ci];
      if (conn.backlog_bytes() >= kMaxBacklogBytes ||
          (o_.qos == 1 && conn.session().inflight() >= o_.max_inflight)) {
        blocked_ = true;
        break;
      }
      now = SteadyClock::now();
      elapsed_ns = (now - start_).count();
      gen_.Next(device, WallMs(), elapsed_ns / 1'000'000, &payload_);
      auto r = conn.Publish(gen_.topic(device), payload_, o_.qos);
      if (!r.ok()) {
        Fail("publish: " + r.status().ToString());
        return;
      }
      if (pacer_.paced()) {
        double lag_ms = static_cast<double>(elapsed_ns - pacer_.DueAtNs(sent_)) / 1e6;
        summary_.max_lag_ms = std::max(summary_.max_lag_ms, lag_ms);
      }
      ++sent_;
      --budget;
      if (!dirty_[ci]) {
        dirty_[ci] = 1;
        dirty_list_.push_back(ci);
      }
    }
    for (std::size_t i : dirty_list_) {
      dirty_[i] = 0;
      conns_[i]->Flush();
    }
    dirty_list_.clear();
    if (sent_ >= pacer_.limit()) {
      EndPublishing();
    } else if (budget == 0) {
      asio::post(io_, [this] { Pump(); });
    } else if (!blocked_ && pacer_.paced() && !pace_armed_) {
      pace_armed_ = true;
      pace_timer_.expires_at(start_ + std::chrono::nanoseconds(pacer_.DueAtNs(sent_)));
      pace_timer_.async_wait([this](const asio::error_code& ec) {
        pace_armed_ = false;
        if (!ec) Pump();
      });
    }
  }

  void EndPublishing() {
    if (phase_ != Phase::kPublishing) return;
    phase_ = Phase::kDraining;
    summary_.publish_s = std::chrono::duration<double>(SteadyClock::now() - start_).count();
    summary_.last_publish_wall_ms = WallMs();
    pace_timer_.cancel();
    end_timer_.cancel();
    ArmPhaseTimer(o_.drain_timeout_s,
                  o_.qos == 1 ? "drain timeout: not every QoS 1 publish was acknowledged"
                              : "drain timeout: the broker did not take every publish");
    CheckDrained();
  }

  void OnAcked() {
    ++acked_;
    if (blocked_) Pump();
    if (phase_ == Phase::kDraining) CheckDrained();
  }

  void CheckDrained() {
    if (o_.qos == 1) {
      if (acked_ < sent_) return;
    } else {
      for (const auto& conn : conns_) {
        if (conn->backlog_bytes() > 0) return;
      }
    }
    Done();
  }

  void Done() {
    summary_.done_wall_ms = WallMs();
    summary_.elapsed_s = std::chrono::duration<double>(SteadyClock::now() - start_).count();
    BeginClose();
  }

  void Fail(const std::string& why) {
    if (phase_ == Phase::kClosing || phase_ == Phase::kDone) return;
    if (summary_.error.empty()) summary_.error = why;
    if (phase_ != Phase::kConnecting && summary_.done_wall_ms == 0) {
      summary_.done_wall_ms = WallMs();
      summary_.elapsed_s = std::chrono::duration<double>(SteadyClock::now() - start_).count();
    }
    BeginClose();
  }

  void BeginClose() {
    phase_ = Phase::kClosing;
    pace_timer_.cancel();
    end_timer_.cancel();
    // Closing is best effort and bounded.
    phase_timer_.expires_after(std::chrono::seconds(3));
    phase_timer_.async_wait([this](const asio::error_code& ec) {
      if (!ec) Finish();
    });
    for (auto& conn : conns_) conn->Close();
    if (closed_ == conns_.size()) Finish();
  }

  void Finish() {
    if (phase_ == Phase::kDone) return;
    phase_ = Phase::kDone;
    summary_.sent = sent_;
    summary_.acked = acked_;
    for (const auto& conn : conns_) summary_.bytes += conn->bytes_out();
    summary_.rate_per_s =
        summary_.elapsed_s > 0 ? static_cast<double>(sent_) / summary_.elapsed_s : 0;
    io_.stop();
  }

  void ArmPhaseTimer(double seconds, std::string message) {
    phase_timer_.expires_after(std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1e3)));
    phase_timer_.async_wait([this, message = std::move(message)](const asio::error_code& ec) {
      if (!ec) Fail(message);
    });
  }

  void ArmTick() {
    tick_timer_.expires_after(std::chrono::seconds(1));
    tick_timer_.async_wait([this](const asio::error_code& ec) {
      if (ec || phase_ == Phase::kDone) return;
      for (auto& conn : conns_) conn->Tick();
      ArmTick();
    });
  }

  void ArmProgress() {
    progress_timer_.expires_after(std::chrono::seconds(1));
    progress_timer_.async_wait([this](const asio::error_code& ec) {
      if (ec || phase_ == Phase::kDone || phase_ == Phase::kClosing) return;
      double t = std::chrono::duration<double>(SteadyClock::now() - start_).count();
      std::size_t inflight = 0;
      for (const auto& conn : conns_) inflight += conn->session().inflight();
      std::fprintf(stderr,
                   "[bench-pub] %6.1f s  sent %" PRIu64 " (+%" PRIu64 "/s)  acked %" PRIu64
                   "  in flight %zu  max lag %.1f ms\n",
                   t, sent_, sent_ - last_progress_sent_, acked_, inflight, summary_.max_lag_ms);
      last_progress_sent_ = sent_;
      ArmProgress();
    });
  }

  PublisherOptions o_;
  asio::io_context io_;
  ReadingGenerator gen_;
  Pacer pacer_;
  std::vector<std::unique_ptr<Connection>> conns_;
  std::vector<char> dirty_;
  std::vector<std::size_t> dirty_list_;
  asio::steady_timer pace_timer_, progress_timer_, tick_timer_, phase_timer_, end_timer_;
  Phase phase_ = Phase::kConnecting;
  SteadyClock::time_point opened_at_, start_;
  std::string payload_;
  std::size_t next_open_ = 0, connected_ = 0, closed_ = 0;
  std::uint64_t sent_ = 0, acked_ = 0, last_progress_sent_ = 0;
  bool blocked_ = false, pace_armed_ = false;
  Summary summary_;
};

}  // namespace

Status ValidatePublisherOptions(PublisherOptions* o) {
  if (o->devices == 0) return InvalidArgument("--devices must be at least 1");
  if (o->connections == 0) o->connections = std::min<std::size_t>(o->devices, 8);
  if (o->connections > o->devices) {
    return InvalidArgument("--connections must not exceed --devices");
  }
  if (o->count == 0 && o->duration_s <= 0) {
    return InvalidArgument("give --count or --duration (every run is bounded)");
  }
  if (o->rate_per_s < 0) return InvalidArgument("--rate must be >= 0");
  if (o->qos != 0 && o->qos != 1) return InvalidArgument("--qos must be 0 or 1");
  if (o->max_inflight == 0 || o->max_inflight > 60'000) {
    return InvalidArgument("--max-inflight must be in [1, 60000]");
  }
  if (o->port == 0) return InvalidArgument("--port must not be 0");
  return Status::Ok();
}

Result<Summary> RunPublisher(PublisherOptions options) {
  OUTPOST_RETURN_IF_ERROR(ValidatePublisherOptions(&options));
  Run run(options);
  return run.Go();
}

}  // namespace outpost::bench_pub
