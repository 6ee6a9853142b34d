#include "outpost/mqtt/client.h"

#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <chrono>
#include <limits>
#include <random>
#include <utility>

#include "outpost/base/file.h"

namespace outpost::mqtt {
namespace {

using asio::ip::tcp;
using TlsStream = asio::ssl::stream<tcp::socket>;

constexpr std::size_t kReadBufferBytes = 16 * 1024;
constexpr std::int64_t kStopWriteTimeoutMs = 1000;
constexpr std::int64_t kNoDeadline = std::numeric_limits<std::int64_t>::max();

std::int64_t SteadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Status Cancelled(std::string m) { return Status(Code::kCancelled, std::move(m)); }

// One transport connection. Pending handlers hold a shared_ptr to it, so its sockets and
// buffers outlive every operation that uses them, even after the Client moved on.
struct Conn {
  std::unique_ptr<tcp::socket> plain;
  std::unique_ptr<TlsStream> tls;
  std::vector<char> read_buf = std::vector<char>(kReadBufferBytes);
  std::string write_buf;
  std::string held;  // bytes read while paused, processed on resume

  tcp::socket& lowest() { return tls ? tls->next_layer() : *plain; }
  void Close() {
    asio::error_code ignored;
    lowest().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().close(ignored);
  }
};

}  // namespace

class Client::Impl : public std::enable_shared_from_this<Impl> {
 public:
  enum class Phase { kIdle, kConnecting, kOpen, kClosing, kWaiting, kStopped };

  Impl(asio::io_context& io, ClientOptions options, ClientCallbacks callbacks)
      : io_(io),
        options_(std::move(options)),
        cb_(std::move(callbacks)),
        resolver_(io),
        connect_timer_(io),
        tick_timer_(io),
        backoff_timer_(io) {}

  Status Start();
  void Stop(std::function<void()> done);
  void Abort();
  void Shutdown();
  Result<std::uint16_t> Publish(std::string_view topic, std::string_view payload, int qos,
                                bool retain);
  void Ack(std::uint64_t connection_id, std::uint16_t packet_id);
  Result<std::uint16_t> Subscribe(std::vector<Subscription> subscriptions);
  void PauseReading() { paused_ = true; }
  void ResumeReading();

  bool connected() const { return session_ && session_->connected(); }
  std::uint64_t connection_id() const { return session_ ? session_->connection_id() : 0; }
  std::size_t inflight() const { return session_ ? session_->inflight() : 0; }
  const ClientCounters& counters() const { return counters_; }
  std::size_t outbound_bytes() const {
    return (session_ ? session_->outbound_bytes() : 0) +
           (writing_ && conn_ ? conn_->write_buf.size() : 0);
  }

 private:
  void Connect();
  void OnTransportUp();
  void StartRead();
  void OnRead(const std::shared_ptr<Conn>& c, std::uint64_t g, std::string_view bytes);
  void Flush();
  void RequestFlush();
  void ArmTick();
  void DrainEvents();
  void Fail(const Status& reason);
  void CloseTransport();
  void FinishStop(const Status& reason);
  void ScheduleReconnect();
  std::string Endpoint() const { return options_.host + ":" + std::to_string(options_.port); }
  template <typename F>
  void WithStream(const std::shared_ptr<Conn>& c, F&& f) {
    if (c->tls) {
      f(*c->tls);
    } else {
      f(*c->plain);
    }
  }

  asio::io_context& io_;
  ClientOptions options_;
  ClientCallbacks cb_;
  std::optional<Session> session_;
  std::unique_ptr<asio::ssl::context> ssl_;
  tcp::resolver resolver_;
  asio::steady_timer connect_timer_;
  asio::steady_timer tick_timer_;
  asio::steady_timer backoff_timer_;
  std::shared_ptr<Conn> conn_;
  Phase phase_ = Phase::kIdle;
  // Incremented on every transition; handlers carry the value they were started with and do
  // nothing when it changed (their connection or wait is over).
  std::uint64_t gen_ = 0;
  bool reading_ = false;
  bool writing_ = false;
  bool paused_ = false;
  bool flush_posted_ = false;
  bool established_ = false;  // CONNACK accepted on the current connection
  std::int64_t tick_armed_ms_ = kNoDeadline;
  std::uint32_t attempt_ = 0;
  std::mt19937_64 rng_;
  bool stopping_ = false;
  std::function<void()> stop_done_;
  ClientCounters counters_;
};

Status Client::Impl::Start() {
  if (phase_ != Phase::kIdle) return FailedPrecondition("MQTT client already started");
  OUTPOST_RETURN_IF_ERROR(ValidateSessionOptions(options_.session));
  if (options_.host.empty()) return InvalidArgument("MQTT client: host is empty");
  if (options_.port == 0) return InvalidArgument("MQTT client: port is 0");
  if (options_.connect_timeout_ms <= 0) {
    return InvalidArgument("MQTT client: connect_timeout_ms must be positive");
  }
  for (const auto& s : options_.subscriptions) {
    OUTPOST_RETURN_IF_ERROR(ValidateTopicFilter(s.filter));
    if (s.qos > 1) return InvalidArgument("MQTT client: subscription QoS must be 0 or 1");
  }
  if (options_.tls.enabled) {
    const TlsOptions& t = options_.tls;
    try {
      ssl_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
    } catch (const std::exception& e) {
      return Internal(std::string("TLS context: ") + e.what());
    }
    asio::error_code ec;
    ssl_->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                          asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                          asio::ssl::context::no_tlsv1_1,
                      ec);
    if (t.ca_file.empty()) {
      ssl_->set_default_verify_paths(ec);
      if (ec) return InvalidArgument("TLS default trust store: " + ec.message());
    } else {
      // Read with the bounded reader, not OpenSSL's file functions: a FIFO or /dev/zero given
      // as a path is an error at start, not a hang.
      auto ca = ReadFile(t.ca_file);
      if (!ca.ok()) return InvalidArgument("TLS ca_file " + ca.status().message());
      ssl_->add_certificate_authority(asio::buffer(*ca), ec);
      if (ec) return InvalidArgument("TLS ca_file " + t.ca_file + ": " + ec.message());
    }
    if (!t.cert_file.empty()) {
      if (t.key_file.empty()) return InvalidArgument("TLS cert_file given without key_file");
      auto cert = ReadFile(t.cert_file);
      if (!cert.ok()) return InvalidArgument("TLS cert_file " + cert.status().message());
      ssl_->use_certificate_chain(asio::buffer(*cert), ec);
      if (ec) return InvalidArgument("TLS cert_file " + t.cert_file + ": " + ec.message());
      auto key = ReadFile(t.key_file);
      if (!key.ok()) return InvalidArgument("TLS key_file " + key.status().message());
      ssl_->use_private_key(asio::buffer(*key), asio::ssl::context::pem, ec);
      OPENSSL_cleanse(key->data(), key->size());
      if (ec) return InvalidArgument("TLS key_file " + t.key_file + ": " + ec.message());
    } else if (!t.key_file.empty()) {
      return InvalidArgument("TLS key_file given without cert_file");
    }
    ssl_->set_verify_mode(t.verify_peer ? asio::ssl::verify_peer : asio::ssl::verify_none, ec);
  }
  if (options_.random_seed != 0) {
    rng_.seed(options_.random_seed);
  } else {
    std::random_device rd;
    rng_.seed((static_cast<std::uint64_t>(rd()) << 32) ^ rd());
  }
  session_.emplace(options_.session);
  Connect();
  return Status::Ok();
}

void Client::Impl::Connect() {
  const std::uint64_t g = ++gen_;
  phase_ = Phase::kConnecting;
  established_ = false;
  reading_ = writing_ = false;
  auto c = std::make_shared<Conn>();
  if (ssl_) {
    c->tls = std::make_unique<TlsStream>(io_, *ssl_);
    const std::string& name =
        options_.tls.server_name.empty() ? options_.host : options_.tls.server_name;
    asio::error_code ec;
    asio::ip::make_address(name, ec);
    if (ec) SSL_set_tlsext_host_name(c->tls->native_handle(), name.c_str());  // SNI: names only
    if (options_.tls.verify_peer && options_.tls.verify_hostname) {
      c->tls->set_verify_callback(asio::ssl::host_name_verification(name), ec);
    }
  } else {
    c->plain = std::make_unique<tcp::socket>(io_);
  }
  conn_ = c;
  auto self = shared_from_this();
  connect_timer_.expires_after(std::chrono::milliseconds(options_.connect_timeout_ms));
  connect_timer_.async_wait([self, g](const asio::error_code& ec) {
    if (ec || g != self->gen_) return;
    self->Fail(Status(Code::kDeadlineExceeded,
                      "MQTT connect to " + self->Endpoint() + " timed out after " +
                          std::to_string(self->options_.connect_timeout_ms) + " ms"));
  });
  resolver_.async_resolve(
      options_.host, std::to_string(options_.port),
      [self, g, c](const asio::error_code& ec, const tcp::resolver::results_type& results) {
        if (g != self->gen_) return;
        if (ec) {
          self->Fail(Unavailable("resolve " + self->options_.host + ": " + ec.message()));
          return;
        }
        asio::async_connect(
            c->lowest(), results, [self, g, c](const asio::error_code& ec2, const tcp::endpoint&) {
              if (g != self->gen_) return;
              if (ec2) {
                self->Fail(Unavailable("connect " + self->Endpoint() + ": " + ec2.message()));
                return;
              }
              asio::error_code ignored;
              c->lowest().set_option(tcp::no_delay(true), ignored);
              if (!c->tls) {
                self->OnTransportUp();
                return;
              }
              c->tls->async_handshake(
                  asio::ssl::stream_base::client, [self, g, c](const asio::error_code& ec3) {
                    if (g != self->gen_) return;
                    if (ec3) {
                      std::string detail = ec3.message();
                      long verify = SSL_get_verify_result(c->tls->native_handle());
                      if (verify != X509_V_OK) {
                        detail += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
                      }
                      self->Fail(
                          Unavailable("TLS handshake with " + self->Endpoint() + ": " + detail));
                      return;
                    }
                    self->OnTransportUp();
                  });
            });
      });
}

void Client::Impl::OnTransportUp() {
  connect_timer_.cancel();
  phase_ = Phase::kOpen;
  tick_armed_ms_ = kNoDeadline;
  session_->Start(SteadyNowMs());
  Flush();
  StartRead();
  ArmTick();
}

void Client::Impl::StartRead() {
  if (reading_ || paused_ || (phase_ != Phase::kOpen && phase_ != Phase::kClosing)) return;
  reading_ = true;
  auto self = shared_from_this();
  auto c = conn_;
  const std::uint64_t g = gen_;
  WithStream(c, [&](auto& stream) {
    stream.async_read_some(
        asio::buffer(c->read_buf), [self, g, c](const asio::error_code& ec, std::size_t n) {
          if (g != self->gen_) return;
          self->reading_ = false;
          if (ec) {
            self->Fail(Unavailable(ec == asio::error::eof
                                       ? "MQTT connection closed by the broker"
                                       : "read from " + self->Endpoint() + ": " + ec.message()));
            return;
          }
          self->counters_.bytes_in += n;
          if (self->phase_ == Phase::kClosing) {  // DISCONNECT queued: nothing more to process
            self->StartRead();
            return;
          }
          std::string_view bytes(c->read_buf.data(), n);
          if (self->paused_) {  // paused while this read was in flight: keep for Resume
            c->held.append(bytes.data(), bytes.size());
            return;
          }
          self->OnRead(c, g, bytes);
        });
  });
}

void Client::Impl::OnRead(const std::shared_ptr<Conn>& c, std::uint64_t g, std::string_view bytes) {
  (void)c;
  Status s = session_->OnBytes(bytes, SteadyNowMs());
  DrainEvents();
  if (g != gen_) return;  // a callback stopped or aborted
  if (!s.ok()) {
    Fail(s);
    return;
  }
  Flush();
  ArmTick();
  StartRead();
}

void Client::Impl::ResumeReading() {
  paused_ = false;
  if (!conn_) return;
  auto self = shared_from_this();
  auto c = conn_;
  const std::uint64_t g = gen_;
  // Deferred so that events held back are not delivered from inside the caller's callback.
  asio::post(io_, [self, c, g] {
    if (g != self->gen_ || self->paused_) return;
    self->DrainEvents();
    if (g != self->gen_ || self->paused_) return;
    std::string held;
    held.swap(c->held);
    if (held.empty()) {
      self->StartRead();
    } else {
      self->OnRead(c, g, held);
    }
  });
}

void Client::Impl::Flush() {
  if (writing_ || (phase_ != Phase::kOpen && phase_ != Phase::kClosing)) return;
  if (!session_->has_outbound()) {
    if (phase_ == Phase::kClosing) FinishStop(Cancelled("MQTT client stopped"));
    return;
  }
  auto c = conn_;
  c->write_buf = session_->TakeOutbound();
  writing_ = true;
  auto self = shared_from_this();
  const std::uint64_t g = gen_;
  WithStream(c, [&](auto& stream) {
    asio::async_write(
        stream, asio::buffer(c->write_buf),
        [self, g, c](const asio::error_code& ec, std::size_t n) {
          if (g != self->gen_) return;
          self->writing_ = false;
          if (ec) {
            self->Fail(Unavailable("write to " + self->Endpoint() + ": " + ec.message()));
            return;
          }
          self->counters_.bytes_out += n;
          self->Flush();
        });
  });
}

// Calls from the application (Publish, Ack, Subscribe) usually come in bursts within one handler
// (a committed batch acks hundreds of messages): flushing once after the handler returns sends
// the whole burst in one write.
void Client::Impl::RequestFlush() {
  if (flush_posted_ || writing_) return;
  flush_posted_ = true;
  auto self = shared_from_this();
  const std::uint64_t g = gen_;
  asio::post(io_, [self, g] {
    self->flush_posted_ = false;
    if (g == self->gen_) self->Flush();
  });
}

void Client::Impl::ArmTick() {
  if (phase_ != Phase::kOpen) return;
  const std::int64_t deadline = session_->NextDeadlineMs();
  // Deadlines mostly move later; re-arming only when one moves earlier keeps the hot path free of
  // timer churn. An early wake-up just finds nothing to do and re-arms.
  if (deadline == kNoDeadline || deadline >= tick_armed_ms_) return;
  tick_armed_ms_ = deadline;
  auto self = shared_from_this();
  const std::uint64_t g = gen_;
  tick_timer_.expires_at(
      std::chrono::steady_clock::time_point(std::chrono::milliseconds(deadline)));
  tick_timer_.async_wait([self, g](const asio::error_code& ec) {
    if (ec || g != self->gen_) return;
    self->tick_armed_ms_ = kNoDeadline;
    Status s = self->session_->OnTick(SteadyNowMs());
    if (!s.ok()) {
      self->Fail(s);
      return;
    }
    self->Flush();
    self->ArmTick();
  });
}

void Client::Impl::DrainEvents() {
  // Stops early when a callback pauses reading; the rest waits in the session for Resume.
  while (!paused_) {
    std::optional<Event> e = session_->PollEvent();
    if (!e) break;
    if (auto* connected = std::get_if<Connected>(&*e)) {
      established_ = true;
      attempt_ = 0;
      ++counters_.connects;
      if (!options_.subscriptions.empty() && session_->connected()) {
        session_->Subscribe(options_.subscriptions);
      }
      if (cb_.on_connected) cb_.on_connected(connected->session_present);
    } else if (auto* m = std::get_if<Message>(&*e)) {
      ++counters_.messages_in;
      if (cb_.on_message) cb_.on_message(*m);
    } else if (auto* big = std::get_if<OversizeMessage>(&*e)) {
      ++counters_.oversize_in;
      if (cb_.on_oversize_message) {
        cb_.on_oversize_message(*big);
      } else if (big->qos == 1) {
        Ack(big->connection_id, big->packet_id);  // nobody records it; let the broker forget it
      }
    } else if (auto* acked = std::get_if<PublishAcked>(&*e)) {
      if (cb_.on_publish_acked) cb_.on_publish_acked(acked->packet_id);
    } else if (auto* sub = std::get_if<Subscribed>(&*e)) {
      if (cb_.on_subscribed) cb_.on_subscribed(sub->packet_id, sub->codes);
    }
    // ConnectRefused is reported through on_disconnected with the Status from OnBytes.
  }
}

void Client::Impl::CloseTransport() {
  ++gen_;
  resolver_.cancel();
  connect_timer_.cancel();
  tick_timer_.cancel();
  backoff_timer_.cancel();
  tick_armed_ms_ = kNoDeadline;
  if (conn_) {
    conn_->Close();
    conn_.reset();
  }
  reading_ = writing_ = false;
  // Also when already disconnected: drops unsent bytes (e.g. a DISCONNECT never written).
  if (session_) session_->OnConnectionLost();
}

void Client::Impl::Fail(const Status& reason) {
  if (phase_ != Phase::kConnecting && phase_ != Phase::kOpen && phase_ != Phase::kClosing) return;
  if (stopping_) {
    FinishStop(reason);
    return;
  }
  const bool was_established = established_;
  established_ = false;
  CloseTransport();
  if (was_established) {
    ++counters_.disconnects;
  } else {
    ++counters_.connect_failures;
  }
  phase_ = Phase::kWaiting;
  const std::uint64_t g = gen_;
  if (cb_.on_disconnected) cb_.on_disconnected(reason);
  if (g != gen_ || phase_ != Phase::kWaiting) return;  // the callback stopped us
  if (!options_.reconnect) {
    phase_ = Phase::kStopped;
    return;
  }
  ScheduleReconnect();
}

void Client::Impl::ScheduleReconnect() {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const std::int64_t delay_ms = FullJitterDelayMs(options_.backoff, attempt_, unit(rng_));
  if (attempt_ < 62) ++attempt_;
  const std::uint64_t g = ++gen_;
  phase_ = Phase::kWaiting;
  auto self = shared_from_this();
  backoff_timer_.expires_after(std::chrono::milliseconds(delay_ms));
  backoff_timer_.async_wait([self, g](const asio::error_code& ec) {
    if (ec || g != self->gen_ || self->phase_ != Phase::kWaiting) return;
    self->Connect();
  });
}

void Client::Impl::FinishStop(const Status& reason) {
  const bool had_connection =
      phase_ == Phase::kConnecting || phase_ == Phase::kOpen || phase_ == Phase::kClosing;
  const bool was_established = established_;
  established_ = false;
  CloseTransport();
  phase_ = Phase::kStopped;
  if (was_established) ++counters_.disconnects;
  if (had_connection && cb_.on_disconnected) cb_.on_disconnected(reason);
  if (stop_done_) {
    asio::post(io_, std::move(stop_done_));
    stop_done_ = nullptr;
  }
}

void Client::Impl::Stop(std::function<void()> done) {
  if (done) {
    if (stop_done_) {
      // A second Stop() while the first one is closing: run both when closed.
      stop_done_ = [first = std::move(stop_done_), second = std::move(done)] {
        first();
        second();
      };
    } else {
      stop_done_ = std::move(done);
    }
  }
  stopping_ = true;
  if (phase_ == Phase::kClosing) return;
  if (phase_ != Phase::kOpen) {
    FinishStop(Cancelled("MQTT client stopped"));
    return;
  }
  session_->Disconnect();
  phase_ = Phase::kClosing;
  auto self = shared_from_this();
  const std::uint64_t g = gen_;
  connect_timer_.expires_after(std::chrono::milliseconds(kStopWriteTimeoutMs));
  connect_timer_.async_wait([self, g](const asio::error_code& ec) {
    if (ec || g != self->gen_) return;
    self->FinishStop(Cancelled("MQTT client stopped (DISCONNECT not written in time)"));
  });
  Flush();
}

void Client::Impl::Abort() {
  stopping_ = true;
  stop_done_ = nullptr;
  FinishStop(Cancelled("MQTT client aborted"));
}

void Client::Impl::Shutdown() {
  cb_ = ClientCallbacks{};
  stop_done_ = nullptr;
  stopping_ = true;
  CloseTransport();
  phase_ = Phase::kStopped;
}

Result<std::uint16_t> Client::Impl::Publish(std::string_view topic, std::string_view payload,
                                            int qos, bool retain) {
  if (!session_) return FailedPrecondition("MQTT client not started");
  if (stopping_) return FailedPrecondition("MQTT client stopped");
  Result<std::uint16_t> r = session_->Publish(topic, payload, qos, retain);
  if (r.ok()) RequestFlush();
  return r;
}

void Client::Impl::Ack(std::uint64_t connection_id, std::uint16_t packet_id) {
  if (!session_ || !session_->connected() || connection_id != session_->connection_id()) {
    ++counters_.stale_acks;
    return;
  }
  session_->Ack(packet_id);
  RequestFlush();
}

Result<std::uint16_t> Client::Impl::Subscribe(std::vector<Subscription> subscriptions) {
  if (subscriptions.empty()) return InvalidArgument("MQTT subscribe: no filters");
  for (const auto& s : subscriptions) {
    OUTPOST_RETURN_IF_ERROR(ValidateTopicFilter(s.filter));
    if (s.qos > 1) return InvalidArgument("MQTT subscribe: QoS must be 0 or 1");
  }
  options_.subscriptions.insert(options_.subscriptions.end(), subscriptions.begin(),
                                subscriptions.end());
  if (session_ && session_->connected()) {
    const std::uint16_t id = session_->Subscribe(std::move(subscriptions));
    RequestFlush();
    return id;
  }
  return std::uint16_t{0};
}

Client::Client(asio::io_context& io, ClientOptions options, ClientCallbacks callbacks)
    : impl_(std::make_shared<Impl>(io, std::move(options), std::move(callbacks))) {}

Client::~Client() { impl_->Shutdown(); }

Status Client::Start() { return impl_->Start(); }
void Client::Stop(std::function<void()> done) { impl_->Stop(std::move(done)); }
void Client::Abort() { impl_->Abort(); }
Result<std::uint16_t> Client::Publish(std::string_view topic, std::string_view payload, int qos,
                                      bool retain) {
  return impl_->Publish(topic, payload, qos, retain);
}
void Client::Ack(std::uint64_t connection_id, std::uint16_t packet_id) {
  impl_->Ack(connection_id, packet_id);
}
Result<std::uint16_t> Client::Subscribe(std::vector<Subscription> subscriptions) {
  return impl_->Subscribe(std::move(subscriptions));
}
void Client::PauseReading() { impl_->PauseReading(); }
void Client::ResumeReading() { impl_->ResumeReading(); }
bool Client::connected() const { return impl_->connected(); }
std::uint64_t Client::connection_id() const { return impl_->connection_id(); }
std::size_t Client::inflight() const { return impl_->inflight(); }
const ClientCounters& Client::counters() const { return impl_->counters(); }
std::size_t Client::outbound_bytes() const { return impl_->outbound_bytes(); }

}  // namespace outpost::mqtt
