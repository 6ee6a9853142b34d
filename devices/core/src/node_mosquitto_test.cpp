// The node core against a real Mosquitto, through a minimal non-blocking POSIX socket binding
// written here (the core itself has no sockets): connect, publish at QoS 1, survive a broker
// restart without losing a reading, answer a command, announce "sleeping" (retained).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <functional>
#include <set>
#include <string>

#include "fakes_test.h"
#include "outpost/device/node.h"
#include "outpost/testing/mosquitto_process.h"
#include "outpost/testing/status_matchers.h"
#include "outpost/testing/test_mqtt.h"

namespace outpost::device::testing {
namespace {

using namespace std::chrono_literals;

// Non-blocking TCP to 127.0.0.1:port. Events reach the Node from Service(), never from inside a
// port call.
class SocketTransport : public Transport {
 public:
  explicit SocketTransport(std::uint16_t port) : port_(port) {}
  ~SocketTransport() override { CloseFd(); }

  void Connect() override {
    CloseFd();
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port_);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    state_ = (r == 0 || errno == EINPROGRESS) ? State::kConnecting : State::kFailed;
  }
  std::size_t Write(const std::uint8_t* data, std::size_t size) override {
    if (state_ != State::kOpen) return 0;
    ssize_t n = ::send(fd_, data, size, MSG_NOSIGNAL);
    return n > 0 ? static_cast<std::size_t>(n) : 0;
  }
  void Close() override {
    CloseFd();
    state_ = State::kIdle;
  }

  // Waits up to `timeout_ms` for socket events and delivers them to `node`.
  void Service(Node& node, const std::function<std::int64_t()>& now, int timeout_ms) {
    if (state_ == State::kFailed) {
      Close();
      node.OnDisconnected(now());
      return;
    }
    if (state_ == State::kIdle) {
      ::poll(nullptr, 0, timeout_ms);  // nothing to watch: wait for the node's next wake time
      return;
    }
    pollfd p{fd_, static_cast<short>(state_ == State::kConnecting ? POLLOUT : POLLIN), 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return;
    if (state_ == State::kConnecting) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        Close();
        node.OnDisconnected(now());
      } else {
        state_ = State::kOpen;
        node.OnConnected(now());
      }
      return;
    }
    std::uint8_t buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      node.OnBytes(buf, static_cast<std::size_t>(n), now());
    } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
      Close();
      node.OnDisconnected(now());
    }
  }

 private:
  enum class State { kIdle, kConnecting, kOpen, kFailed };
  void CloseFd() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  std::uint16_t port_;
  int fd_ = -1;
  State state_ = State::kIdle;
};

class NodeMosquittoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    outpost::testing::MosquittoOptions options;
    options.persistence = true;  // the subscriber's session survives the broker restart
    OUTPOST_ASSERT_OK_AND_ASSIGN(broker_, outpost::testing::MosquittoProcess::Start(options));
    outpost::testing::TestMqttOptions sub_options;
    sub_options.client_id = "it-sub";
    sub_options.clean_session = false;
    OUTPOST_ASSERT_OK(sub_.Connect(broker_->port(), sub_options));
    OUTPOST_ASSERT_OK(sub_.Subscribe("sensors/it-node-1/data", 1));
    OUTPOST_ASSERT_OK(sub_.Subscribe("devices/it-node-1/#", 1));

    config_.device_id = "it-node-1";
    config_.interval_ms = 200;
    config_.min_interval_ms = 100;
    config_.boot_delay_max_ms = 100;
    config_.backoff = {50, 500};
    config_.keepalive_s = 5;
    config_.max_poll_interval_ms = 100;
    transport_ = std::make_unique<SocketTransport>(broker_->port());
    NodePorts p = ports_.Get();
    p.transport = transport_.get();
    node_ = std::make_unique<Node>(config_, p);
    start_ = std::chrono::steady_clock::now();
    ASSERT_EQ(node_->Begin(Now()), DeviceError::kOk);
  }

  std::int64_t Now() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start_)
        .count();
  }

  // Runs the node's loop until `done()` or `timeout`; returns done().
  bool Drive(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    const std::int64_t deadline = Now() + timeout.count();
    while (Now() < deadline) {
      const std::int64_t now = Now();
      const std::int64_t wake = node_->Poll(now);
      const int wait =
          static_cast<int>(std::max<std::int64_t>(0, std::min(wake - now, std::int64_t{20})));
      transport_->Service(
          *node_, [this] { return Now(); }, wait);
      Collect();
      if (done()) return true;
    }
    return done();
  }

  void Collect() {
    while (sub_.pending_messages() > 0) {
      auto m = sub_.WaitMessage("#", 0ms);
      if (!m.ok()) break;
      if (m->topic == "sensors/it-node-1/data") {
        auto at = m->payload.find("\"seq\":");
        ASSERT_NE(at, std::string::npos) << m->payload;
        seqs_.insert(std::stoull(m->payload.substr(at + 6)));
        ++data_messages_;
      } else if (m->topic == "devices/it-node-1/status") {
        statuses_.push_back(m->payload);
      } else if (m->topic == "devices/it-node-1/replies") {
        replies_.push_back(m->payload);
      }
    }
  }

  bool NoGapsUpTo(std::uint64_t n) const {
    if (seqs_.size() < n + 1) return false;
    std::uint64_t expect = 0;
    for (auto s : seqs_) {
      if (s != expect) return false;
      if (++expect > n) return true;
    }
    return false;
  }

  std::unique_ptr<outpost::testing::MosquittoProcess> broker_;
  outpost::testing::TestMqtt sub_;
  NodeConfig config_;
  Ports ports_{42};
  std::unique_ptr<SocketTransport> transport_;
  std::unique_ptr<Node> node_;
  std::chrono::steady_clock::time_point start_;
  std::set<std::uint64_t> seqs_;
  std::uint64_t data_messages_ = 0;
  std::vector<std::string> statuses_;
  std::vector<std::string> replies_;
};

TEST_F(NodeMosquittoTest, PublishesAtQos1AndLosesNothingAcrossABrokerRestart) {
  ASSERT_TRUE(Drive([&] { return NoGapsUpTo(4); }, 10s)) << seqs_.size() << " readings";
  ASSERT_FALSE(statuses_.empty());
  EXPECT_EQ(statuses_[0], "online");

  OUTPOST_ASSERT_OK(broker_->Stop());
  Drive([] { return false; }, 1'500ms);  // an outage of about 7 samples
  EXPECT_GE(node_->stats().ring_depth, 5u);
  const std::uint64_t taken = node_->stats().sampled;
  OUTPOST_ASSERT_OK(broker_->Restart());

  ASSERT_TRUE(Drive([&] { return NoGapsUpTo(taken + 2); }, 30s))
      << "received " << seqs_.size() << " distinct readings of " << node_->stats().sampled
      << "; broker log:\n"
      << broker_->log();
  EXPECT_EQ(node_->stats().ring_dropped, 0u);
  EXPECT_GE(node_->stats().reconnects, 1u);
  EXPECT_EQ(node_->stats().protocol_errors, 0u);
  // Every reading up to `taken + 2` was acknowledged to the node by the broker.
  EXPECT_GE(ports_.observer.acks.size(), taken + 3);
}

TEST_F(NodeMosquittoTest, AnswersCommandsAndChangesItsRate) {
  ASSERT_TRUE(Drive([&] { return NoGapsUpTo(2); }, 10s));
  outpost::testing::TestMqtt ops;
  OUTPOST_ASSERT_OK(ops.Connect(broker_->port()));
  OUTPOST_ASSERT_OK(ops.Publish("devices/it-node-1/commands",
                                R"({"command":"setSensorInterval","interval":1000,"id":"c-1"})",
                                1));
  ASSERT_TRUE(Drive([&] { return !replies_.empty(); }, 10s));
  EXPECT_EQ(replies_[0], R"({"id":"c-1","ok":true})");
  EXPECT_EQ(ports_.settings.values["interval_ms"], 1000u);
  // Rate: over the next 3 s about 3 readings, not 15.
  const std::uint64_t before = node_->stats().sampled;
  Drive([] { return false; }, 3'000ms);
  const std::uint64_t taken = node_->stats().sampled - before;
  EXPECT_GE(taken, 2u);
  EXPECT_LE(taken, 4u);
  OUTPOST_ASSERT_OK(
      ops.Publish("devices/it-node-1/commands", R"({"command":"dance","id":"c-2"})", 1));
  ASSERT_TRUE(Drive([&] { return replies_.size() >= 2; }, 10s));
  EXPECT_EQ(replies_[1],
            R"({"id":"c-2","ok":false,"error":"unknown command \"dance\"","rejected":true})");
}

TEST_F(NodeMosquittoTest, LowBatteryAnnouncesSleepingRetained) {
  ASSERT_TRUE(Drive([&] { return NoGapsUpTo(1); }, 10s));
  ports_.sensors.battery = 8.0f;
  ASSERT_TRUE(Drive([&] { return ports_.power.sleeps == 1; }, 10s));
  EXPECT_EQ(node_->state(), NodeState::kAsleep);
  // A newcomer sees the retained "sleeping" (the clean DISCONNECT kept the will from firing).
  outpost::testing::TestMqtt late;
  OUTPOST_ASSERT_OK(late.Connect(broker_->port()));
  OUTPOST_ASSERT_OK(late.Subscribe("devices/it-node-1/status", 1));
  auto m = late.WaitMessage("devices/it-node-1/status", 5s);
  OUTPOST_ASSERT_OK(m);
  EXPECT_EQ(m->payload, "sleeping");
  EXPECT_TRUE(m->retain);
}

// Regressions of issue 8 against a real broker: a retained "reboot" rebooted the node at every
// connect; a command larger than the node's receive buffer dropped the connection.
TEST_F(NodeMosquittoTest, RetainedRebootAndGiantCommandDoNotStopTheNode) {
  outpost::testing::TestMqtt ops;
  outpost::testing::TestMqttOptions big;
  big.max_packet_size = 64 * 1024;
  OUTPOST_ASSERT_OK(ops.Connect(broker_->port(), big));
  // Retained before the node subscribes: the broker hands it over with the retain flag.
  OUTPOST_ASSERT_OK(
      ops.Publish("devices/it-node-1/commands", R"({"command":"reboot","id":"r-1"})", 1, true));
  ASSERT_TRUE(Drive([&] { return NoGapsUpTo(2) && node_->stats().commands_retained == 1; }, 10s));
  EXPECT_EQ(ports_.power.restarts, 0);
  EXPECT_TRUE(replies_.empty());
  OUTPOST_ASSERT_OK(ops.Publish("devices/it-node-1/commands", "", 1, true));  // clear it

  const std::string giant =
      R"({"command":"led","state":true,"pad":")" + std::string(5'000, 'x') + R"("})";
  OUTPOST_ASSERT_OK(ops.Publish("devices/it-node-1/commands", giant, 1));
  OUTPOST_ASSERT_OK(
      ops.Publish("devices/it-node-1/commands", R"({"command":"dance","id":"c-3"})", 1));
  ASSERT_TRUE(Drive([&] { return !replies_.empty(); }, 10s));
  EXPECT_EQ(replies_[0],
            R"({"id":"c-3","ok":false,"error":"unknown command \"dance\"","rejected":true})");
  EXPECT_EQ(node_->stats().rx_oversize, 1u);
  EXPECT_EQ(node_->stats().protocol_errors, 0u);
  EXPECT_EQ(node_->stats().disconnects, 0u);
  EXPECT_EQ(ports_.led.sets, 0);
}

}  // namespace
}  // namespace outpost::device::testing
