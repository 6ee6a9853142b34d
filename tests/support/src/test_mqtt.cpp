#include "outpost/testing/test_mqtt.h"

#include <asio.hpp>
#include <atomic>
#include <future>

namespace outpost::testing {
namespace {
std::atomic<std::uint64_t> g_next_client{1};
}  // namespace

struct TestMqtt::Shared {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};

  // Written on the io thread, read by the test thread; guarded by mu.
  mutable std::mutex mu;
  std::condition_variable cv;
  std::uint64_t connects = 0;
  bool session_present = false;
  std::vector<Status> failures;
  std::deque<mqtt::Message> messages;
  std::set<std::uint16_t> acked;
  std::map<std::uint16_t, std::vector<std::uint8_t>> subacks;
  bool stopped = false;

  // Runs fn on the io thread and returns its result.
  template <typename F>
  auto Call(F&& fn) -> decltype(fn()) {
    using R = decltype(fn());
    std::packaged_task<R()> task(std::forward<F>(fn));
    std::future<R> result = task.get_future();
    asio::post(io, [&task] { task(); });
    return result.get();
  }

  // Waits on cv until pred() (called under mu) or the timeout.
  template <typename P>
  bool WaitFor(std::chrono::milliseconds timeout, P pred) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, timeout, pred);
  }
};

TestMqtt::TestMqtt() : shared_(std::make_shared<Shared>()) {
  thread_ = std::thread([s = shared_] { s->io.run(); });
}

TestMqtt::~TestMqtt() {
  DestroyClient();
  shared_->work.reset();
  thread_.join();
}

void TestMqtt::DestroyClient() {
  shared_->Call([this] { client_.reset(); });
}

Status TestMqtt::Connect(std::uint16_t port, TestMqttOptions options) {
  DestroyClient();
  options_ = std::move(options);
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->connects = 0;
    shared_->failures.clear();
    shared_->stopped = false;
  }
  mqtt::ClientOptions co;
  co.host = options_.host;
  co.port = port;
  co.tls = options_.tls;
  co.session.client_id = options_.client_id.empty()
                             ? "outpost-test-" + std::to_string(g_next_client++)
                             : options_.client_id;
  co.session.clean_session = options_.clean_session;
  co.session.keepalive_s = options_.keepalive_s;
  co.session.will = options_.will;
  co.session.username = options_.username;
  co.session.password = options_.password;
  co.session.max_packet_size = options_.max_packet_size;
  co.backoff = options_.backoff;
  co.reconnect = options_.reconnect;
  co.connect_timeout_ms = options_.timeout.count();

  Shared* s = shared_.get();
  const bool auto_ack = options_.auto_ack;
  mqtt::ClientCallbacks cb;
  cb.on_connected = [s](bool session_present) {
    std::lock_guard<std::mutex> lock(s->mu);
    ++s->connects;
    s->session_present = session_present;
    s->cv.notify_all();
  };
  cb.on_disconnected = [s](const Status& reason) {
    std::lock_guard<std::mutex> lock(s->mu);
    s->failures.push_back(reason);
    s->cv.notify_all();
  };
  cb.on_message = [this, s, auto_ack](const mqtt::Message& m) {
    if (auto_ack && m.qos == 1) client_->Ack(m.connection_id, m.packet_id);
    std::lock_guard<std::mutex> lock(s->mu);
    s->messages.push_back(m);
    s->cv.notify_all();
  };
  cb.on_publish_acked = [s](std::uint16_t id) {
    std::lock_guard<std::mutex> lock(s->mu);
    s->acked.insert(id);
    s->cv.notify_all();
  };
  cb.on_subscribed = [s](std::uint16_t id, const std::vector<std::uint8_t>& codes) {
    std::lock_guard<std::mutex> lock(s->mu);
    s->subacks[id] = codes;
    s->cv.notify_all();
  };
  Status started = shared_->Call([&] {
    client_ = std::make_unique<mqtt::Client>(s->io, std::move(co), std::move(cb));
    return client_->Start();
  });
  if (!started.ok()) return started;
  bool done =
      shared_->WaitFor(options_.timeout, [s] { return s->connects > 0 || !s->failures.empty(); });
  std::lock_guard<std::mutex> lock(s->mu);
  if (s->connects > 0) return Status::Ok();
  if (!s->failures.empty()) return s->failures.front();
  (void)done;
  return Status(Code::kDeadlineExceeded, "TestMqtt: not connected within " +
                                             std::to_string(options_.timeout.count()) + " ms");
}

bool TestMqtt::session_present() const {
  std::lock_guard<std::mutex> lock(shared_->mu);
  return shared_->session_present;
}

std::uint64_t TestMqtt::connects() const {
  std::lock_guard<std::mutex> lock(shared_->mu);
  return shared_->connects;
}

Status TestMqtt::WaitConnects(std::uint64_t n, std::chrono::milliseconds timeout) {
  Shared* s = shared_.get();
  if (shared_->WaitFor(timeout, [s, n] { return s->connects >= n; })) return Status::Ok();
  return Status(Code::kDeadlineExceeded, "TestMqtt: " + std::to_string(connects()) +
                                             " connects, wanted " + std::to_string(n));
}

bool TestMqtt::connected() {
  return shared_->Call([this] { return client_ && client_->connected(); });
}

Status TestMqtt::Publish(const std::string& topic, const std::string& payload, int qos,
                         bool retain) {
  Result<std::uint16_t> id = shared_->Call([&]() -> Result<std::uint16_t> {
    if (!client_) return FailedPrecondition("TestMqtt: not connected");
    return client_->Publish(topic, payload, qos, retain);
  });
  if (!id.ok()) return id.status();
  if (qos == 0) return Status::Ok();
  Shared* s = shared_.get();
  const std::uint16_t pid = *id;
  if (!shared_->WaitFor(options_.timeout, [s, pid] { return s->acked.count(pid) > 0; })) {
    return Status(Code::kDeadlineExceeded, "TestMqtt: no PUBACK for " + topic);
  }
  std::lock_guard<std::mutex> lock(s->mu);
  s->acked.erase(pid);
  return Status::Ok();
}

Status TestMqtt::Subscribe(const std::string& filter, int qos) {
  Result<std::uint16_t> id = shared_->Call([&]() -> Result<std::uint16_t> {
    if (!client_) return FailedPrecondition("TestMqtt: not connected");
    return client_->Subscribe({{filter, static_cast<std::uint8_t>(qos)}});
  });
  if (!id.ok()) return id.status();
  if (*id == 0) return Status::Ok();  // not connected now: subscribed on the next connect
  Shared* s = shared_.get();
  const std::uint16_t pid = *id;
  if (!shared_->WaitFor(options_.timeout, [s, pid] { return s->subacks.count(pid) > 0; })) {
    return Status(Code::kDeadlineExceeded, "TestMqtt: no SUBACK for " + filter);
  }
  std::lock_guard<std::mutex> lock(s->mu);
  std::vector<std::uint8_t> codes = s->subacks[pid];
  s->subacks.erase(pid);
  if (codes.empty() || codes[0] == mqtt::kSubAckFailure) {
    return Unavailable("TestMqtt: broker refused the subscription to " + filter);
  }
  return Status::Ok();
}

Result<mqtt::Message> TestMqtt::WaitMessage(const std::string& filter,
                                            std::chrono::milliseconds timeout) {
  return WaitMessage(
      [filter](const mqtt::Message& m) { return mqtt::TopicMatchesFilter(filter, m.topic); },
      timeout);
}

Result<mqtt::Message> TestMqtt::WaitMessage(std::function<bool(const mqtt::Message&)> predicate,
                                            std::chrono::milliseconds timeout) {
  Shared* s = shared_.get();
  std::unique_lock<std::mutex> lock(s->mu);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    for (auto it = s->messages.begin(); it != s->messages.end(); ++it) {
      if (predicate(*it)) {
        mqtt::Message m = std::move(*it);
        s->messages.erase(it);
        return m;
      }
    }
    if (s->cv.wait_until(lock, deadline) == std::cv_status::timeout) {
      for (auto it = s->messages.begin(); it != s->messages.end(); ++it) {
        if (predicate(*it)) {
          mqtt::Message m = std::move(*it);
          s->messages.erase(it);
          return m;
        }
      }
      return Status(Code::kDeadlineExceeded,
                    "TestMqtt: no matching message within " + std::to_string(timeout.count()) +
                        " ms (" + std::to_string(s->messages.size()) + " others queued)");
    }
  }
}

std::size_t TestMqtt::pending_messages() const {
  std::lock_guard<std::mutex> lock(shared_->mu);
  return shared_->messages.size();
}

void TestMqtt::Ack(const mqtt::Message& message) {
  shared_->Call([&] {
    if (client_) client_->Ack(message.connection_id, message.packet_id);
  });
}

Status TestMqtt::Disconnect() {
  Shared* s = shared_.get();
  shared_->Call([this, s] {
    if (!client_) {
      std::lock_guard<std::mutex> lock(s->mu);
      s->stopped = true;
      return;
    }
    client_->Stop([s] {
      std::lock_guard<std::mutex> lock(s->mu);
      s->stopped = true;
      s->cv.notify_all();
    });
  });
  const bool ok = shared_->WaitFor(options_.timeout, [s] { return s->stopped; });
  DestroyClient();
  if (!ok) return Status(Code::kDeadlineExceeded, "TestMqtt: Stop did not finish");
  return Status::Ok();
}

void TestMqtt::Abort() {
  shared_->Call([this] {
    if (client_) client_->Abort();
  });
  DestroyClient();
}

std::vector<Status> TestMqtt::disconnect_reasons() const {
  std::lock_guard<std::mutex> lock(shared_->mu);
  return shared_->failures;
}

void TestMqtt::RunOnIo(const std::function<void(mqtt::Client&)>& fn) {
  shared_->Call([&] {
    if (client_) fn(*client_);
  });
}

}  // namespace outpost::testing
