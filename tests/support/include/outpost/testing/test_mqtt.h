// TestMqtt: a blocking MQTT client for tests, built on mqtt::Client with its own io_context
// thread. Every method blocks the calling (test) thread until the broker answered or a timeout
// passed; received messages queue up until a WaitMessage() takes them.
//
//   TestMqtt sub, pub;
//   OUTPOST_ASSERT_OK(sub.Connect(broker->port()));
//   OUTPOST_ASSERT_OK(sub.Subscribe("sensors/+/data"));           // waits for SUBACK
//   OUTPOST_ASSERT_OK(pub.Connect(broker->port()));
//   OUTPOST_ASSERT_OK(pub.Publish("sensors/n1/data", "{}", 1));   // QoS 1 waits for PUBACK
//   auto m = sub.WaitMessage("sensors/#");
//
// QoS 1 messages are acknowledged on arrival unless `auto_ack` is false; then call Ack(m).
// Ownership: owns its thread, io_context and Client. Thread: call from one test thread.
// Errors: kDeadlineExceeded on timeouts, or the transport's Status (e.g. a TLS failure).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "outpost/base/status.h"
#include "outpost/mqtt/client.h"

namespace outpost::testing {

struct TestMqttOptions {
  std::string host = "127.0.0.1";
  std::string client_id;  // empty: a unique "outpost-test-N"
  bool clean_session = true;
  std::uint16_t keepalive_s = 30;
  std::optional<mqtt::Will> will;
  std::optional<std::string> username, password;
  bool auto_ack = true;
  mqtt::TlsOptions tls;
  bool reconnect = true;
  BackoffPolicy backoff{50, 1'000};
  std::size_t max_packet_size = mqtt::kDefaultMaxPacketSize;  // both directions
  std::chrono::milliseconds timeout{10'000};  // for Connect, Publish, Subscribe, Disconnect
};

class TestMqtt {
 public:
  TestMqtt();
  ~TestMqtt();  // aborts the connection (no DISCONNECT) and joins the thread
  TestMqtt(const TestMqtt&) = delete;
  TestMqtt& operator=(const TestMqtt&) = delete;

  // Connects (replacing any earlier connection). Returns the first failure if the first attempt
  // fails (the client keeps retrying in the background when options.reconnect).
  Status Connect(std::uint16_t port, TestMqttOptions options = {});
  // session_present of the latest CONNACK.
  bool session_present() const;
  // Successful CONNACKs since Connect() (counts reconnects).
  std::uint64_t connects() const;
  // Waits until the client has had at least `n` successful CONNACKs since Connect().
  Status WaitConnects(std::uint64_t n, std::chrono::milliseconds timeout);
  bool connected();

  // QoS 0: returns once queued. QoS 1: waits for the PUBACK.
  Status Publish(const std::string& topic, const std::string& payload, int qos = 0,
                 bool retain = false);
  // Waits for the SUBACK; kUnavailable if the broker refused the filter. Also re-subscribed
  // after every reconnect.
  Status Subscribe(const std::string& filter, int qos = 1);

  // The first queued message matching (MQTT filter or predicate); kDeadlineExceeded otherwise.
  Result<mqtt::Message> WaitMessage(const std::string& filter,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(5));
  Result<mqtt::Message> WaitMessage(std::function<bool(const mqtt::Message&)> predicate,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Messages received and not yet taken.
  std::size_t pending_messages() const;
  void Ack(const mqtt::Message& message);

  // Clean DISCONNECT (the will is discarded); waits until closed.
  Status Disconnect();
  // Closes the socket without DISCONNECT, as a crash would (the broker publishes the will).
  void Abort();
  // Reasons of every failed attempt or lost connection so far.
  std::vector<Status> disconnect_reasons() const;

  // Runs `fn` on the io thread and waits for it (to reach the Client directly).
  void RunOnIo(const std::function<void(mqtt::Client&)>& fn);

 private:
  struct Shared;
  void DestroyClient();

  std::shared_ptr<Shared> shared_;
  std::thread thread_;
  std::unique_ptr<mqtt::Client> client_;  // created, used and destroyed on the io thread
  TestMqttOptions options_;
};

}  // namespace outpost::testing
