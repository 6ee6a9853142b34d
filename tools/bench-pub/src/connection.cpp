#include "outpost/bench_pub/connection.h"

#include <asio.hpp>
#include <chrono>
#include <utility>
#include <vector>

namespace outpost::bench_pub {
namespace {

using asio::ip::tcp;

constexpr std::size_t kReadBufferBytes = 64 * 1024;

std::int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct Connection::State : std::enable_shared_from_this<Connection::State> {
  State(asio::io_context& io, mqtt::SessionOptions options, ConnectionCallbacks callbacks)
      : socket(io), resolver(io), session(std::move(options)), cb(std::move(callbacks)) {}

  tcp::socket socket;
  tcp::resolver resolver;
  mqtt::Session session;
  ConnectionCallbacks cb;
  std::vector<char> read_buf = std::vector<char>(kReadBufferBytes);
  std::string write_buf;
  std::size_t queued_bytes = 0;  // published into the session since the last TakeOutbound
  std::uint64_t bytes_out = 0;
  bool writing = false;
  bool open = false;     // socket connected
  bool closing = false;  // Close() called: close after the last write
  bool closed = false;

  void Fail(const Status& why) {
    if (closed) return;
    closed = true;
    open = false;
    asio::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    session.OnConnectionLost();
    if (cb.on_closed) cb.on_closed(why);
  }

  void Drain() {
    while (auto e = session.PollEvent()) {
      if (cb.on_event) cb.on_event(*e);
      if (closed) return;
    }
  }

  void Read() {
    auto self = shared_from_this();
    socket.async_read_some(
        asio::buffer(read_buf), [self](const asio::error_code& ec, std::size_t n) {
          if (self->closed) return;
          if (!ec && self->closing) {  // DISCONNECT sent: late PUBACKs and the like are moot
            self->Read();
            return;
          }
          if (ec) {
            self->Fail(self->closing ? Status::Ok() : Unavailable("MQTT read: " + ec.message()));
            return;
          }
          Status s = self->session.OnBytes(std::string_view(self->read_buf.data(), n), SteadyMs());
          self->Drain();
          if (self->closed) return;
          if (!s.ok()) {
            self->Fail(s);
            return;
          }
          self->Flush();
          self->Read();
        });
  }

  void Flush() {
    if (!open || writing || closed) return;
    if (!session.has_outbound()) {
      if (closing) Fail(Status::Ok());
      return;
    }
    write_buf = session.TakeOutbound();
    queued_bytes = 0;
    writing = true;
    auto self = shared_from_this();
    asio::async_write(socket, asio::buffer(write_buf),
                      [self](const asio::error_code& ec, std::size_t n) {
                        self->writing = false;
                        if (self->closed) return;
                        if (ec) {
                          self->Fail(Unavailable("MQTT write: " + ec.message()));
                          return;
                        }
                        self->bytes_out += n;
                        self->write_buf.clear();
                        self->Flush();
                        if (self->cb.on_drained && !self->closed) self->cb.on_drained();
                      });
  }
};

Connection::Connection(asio::io_context& io, mqtt::SessionOptions options,
                       ConnectionCallbacks callbacks)
    : s_(std::make_shared<State>(io, std::move(options), std::move(callbacks))) {}

Connection::~Connection() {
  // Handlers may still hold the state; make sure none of them calls back into the owner.
  s_->cb = ConnectionCallbacks{};
  s_->closed = true;
  asio::error_code ignored;
  s_->socket.close(ignored);
}

void Connection::Open(const std::string& host, std::uint16_t port) {
  auto s = s_;
  s->resolver.async_resolve(
      host, std::to_string(port),
      [s](const asio::error_code& ec, const tcp::resolver::results_type& results) {
        if (s->closed) return;
        if (ec) {
          s->Fail(Unavailable("resolve: " + ec.message()));
          return;
        }
        asio::async_connect(s->socket, results,
                            [s](const asio::error_code& cec, const tcp::endpoint&) {
                              if (s->closed) return;
                              if (cec) {
                                s->Fail(Unavailable("connect: " + cec.message()));
                                return;
                              }
                              asio::error_code ignored;
                              s->socket.set_option(tcp::no_delay(true), ignored);
                              s->open = true;
                              s->session.Start(SteadyMs());
                              s->Flush();
                              s->Read();
                            });
      });
}

Result<std::uint16_t> Connection::Publish(std::string_view topic, std::string_view payload,
                                          int qos) {
  auto r = s_->session.Publish(topic, payload, qos, false);
  if (r.ok()) s_->queued_bytes += mqtt::EncodedPublishSize(topic, payload.size(), qos);
  return r;
}

std::uint16_t Connection::Subscribe(std::vector<mqtt::Subscription> subscriptions) {
  return s_->session.Subscribe(std::move(subscriptions));
}

void Connection::Ack(std::uint16_t packet_id) { s_->session.Ack(packet_id); }

void Connection::Flush() { s_->Flush(); }

void Connection::Close() {
  if (s_->closed || s_->closing) return;
  s_->closing = true;
  if (!s_->open) {
    s_->Fail(Status::Ok());
    return;
  }
  s_->session.Disconnect();
  s_->Flush();
}

void Connection::Tick() {
  if (s_->closed || !s_->open) return;
  Status st = s_->session.OnTick(SteadyMs());
  if (!st.ok()) {
    s_->Fail(st);
    return;
  }
  s_->Flush();
}

mqtt::Session& Connection::session() { return s_->session; }
bool Connection::connected() const { return !s_->closed && s_->session.connected(); }
bool Connection::closed() const { return s_->closed; }
std::size_t Connection::backlog_bytes() const { return s_->write_buf.size() + s_->queued_bytes; }
std::uint64_t Connection::bytes_out() const { return s_->bytes_out; }

}  // namespace outpost::bench_pub
