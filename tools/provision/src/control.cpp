#include "outpost/provision/control.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <variant>

namespace outpost::provision {
namespace {

using Clock = std::chrono::steady_clock;

// The time left before `deadline` as a socket timeout; at least 1 ms (0 would mean "forever").
timeval Remaining(MqttTlsSession::Deadline deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now());
  const long us = std::max<long>(1000, static_cast<long>(left.count()));
  return timeval{us / 1'000'000, us % 1'000'000};
}

void SetTimeouts(int fd, MqttTlsSession::Deadline deadline) {
  const timeval tv = Remaining(deadline);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  // Mosquitto leaves Nagle on (set_tcp_nodelay false): its CONNACK waits for our ACK of the TLS
  // 1.3 session tickets sent just before, which a delayed ACK holds back ~40 ms. Quick ACKs
  // (which the kernel turns off again by itself) avoid that wait on every connection.
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

}  // namespace

struct MqttTlsSession::Conn {
  std::string where;  // host:port, for messages
  int fd = -1;
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  mqtt::Decoder decoder{kMaxPacketBytes, 0};

  ~Conn() {
    if (ssl != nullptr) SSL_free(ssl);
    if (ctx != nullptr) SSL_CTX_free(ctx);
    if (fd >= 0) ::close(fd);
    ERR_clear_error();
  }
};

MqttTlsSession::MqttTlsSession(std::unique_ptr<Conn> conn) : conn_(std::move(conn)) {}
MqttTlsSession::MqttTlsSession(MqttTlsSession&&) noexcept = default;
MqttTlsSession& MqttTlsSession::operator=(MqttTlsSession&&) noexcept = default;
MqttTlsSession::~MqttTlsSession() = default;

Result<MqttTlsSession> MqttTlsSession::Connect(const std::string& host, std::uint16_t port,
                                               const TlsIdentity& id, const std::string& client_id,
                                               Deadline deadline) {
  auto c = std::make_unique<Conn>();
  c->where = host + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) {
    return Unavailable("cannot resolve " + host);
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);
  c->fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c->fd < 0) return Unavailable(std::string("socket: ") + std::strerror(errno));
  SetTimeouts(c->fd, deadline);
  // Each call waits for its answer: without this, Nagle and delayed ACKs add ~40 ms to each.
  const int one = 1;
  ::setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(c->fd, res->ai_addr, res->ai_addrlen) != 0) {
    const int e = errno;
    if (e == ECONNREFUSED) return NotFound("no broker is listening at " + c->where);
    return Unavailable("connect " + c->where + ": " + std::strerror(e));
  }
  c->ctx = SSL_CTX_new(TLS_client_method());
  if (c->ctx == nullptr || SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION) != 1 ||
      SSL_CTX_load_verify_locations(c->ctx, id.ca_file.c_str(), nullptr) != 1 ||
      SSL_CTX_use_certificate_chain_file(c->ctx, id.cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(c->ctx, id.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return InvalidArgument("cannot load the TLS files " + id.cert_file + ", " + id.key_file + ", " +
                           id.ca_file);
  }
  SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, nullptr);
  c->ssl = SSL_new(c->ctx);
  if (c->ssl == nullptr || SSL_set_fd(c->ssl, c->fd) != 1) return Internal("SSL_new");
  if (SSL_connect(c->ssl) != 1) return Unavailable("TLS handshake with " + c->where + " failed");
  MqttTlsSession session(std::move(c));
  mqtt::Connect connect;
  connect.client_id = client_id;
  connect.keepalive_s = 0;  // no PINGREQ: every call is bounded by its deadline instead
  OUTPOST_RETURN_IF_ERROR(session.Send(connect, deadline));
  auto p = session.Receive(deadline);
  if (!p.ok()) {
    if (p.status().code() != Code::kUnavailable) return p.status();
    return Unavailable("the broker at " + session.conn_->where +
                       " closed the connection before a CONNACK (refused)");
  }
  const auto* ack = std::get_if<mqtt::ConnAck>(&*p);
  if (ack == nullptr) return Unavailable("not a CONNACK from " + session.conn_->where);
  if (ack->return_code != mqtt::kConnectionAccepted) {
    return FailedPrecondition("the broker at " + session.conn_->where + " refused: CONNACK " +
                              mqtt::ConnAckCodeName(ack->return_code));
  }
  return Result<MqttTlsSession>(std::move(session));
}

Status MqttTlsSession::Send(const mqtt::Packet& packet, Deadline deadline) {
  std::string bytes;
  mqtt::Encode(packet, bytes);
  SetTimeouts(conn_->fd, deadline);
  if (SSL_write(conn_->ssl, bytes.data(), static_cast<int>(bytes.size())) !=
      static_cast<int>(bytes.size())) {
    return Unavailable("the broker at " + conn_->where + " closed the connection (refused)");
  }
  return Status::Ok();
}

Result<mqtt::Packet> MqttTlsSession::Receive(Deadline deadline) {
  char buf[4096];
  for (;;) {
    auto next = conn_->decoder.Next();
    if (!next.ok()) return InvalidArgument("from " + conn_->where + ": " + next.status().message());
    if (next->has_value()) return std::move(**next);
    if (Clock::now() >= deadline) {
      return Status(Code::kDeadlineExceeded, "no answer from " + conn_->where + " in time");
    }
    SetTimeouts(conn_->fd, deadline);
    const int n = SSL_read(conn_->ssl, buf, sizeof buf);
    if (n <= 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return Status(Code::kDeadlineExceeded, "no answer from " + conn_->where + " in time");
      }
      return Unavailable("the broker at " + conn_->where + " closed the connection");
    }
    conn_->decoder.Feed(std::string_view(buf, static_cast<std::size_t>(n)));
  }
}

std::uint16_t MqttTlsSession::NextPacketId() {
  const std::uint16_t id = next_packet_id_++;
  if (next_packet_id_ == 0) next_packet_id_ = 1;
  return id;
}

Result<std::optional<mqtt::Publish>> MqttTlsSession::ReceiveAcked(Deadline deadline,
                                                                  mqtt::Packet* other) {
  auto p = Receive(deadline);
  if (!p.ok()) return p.status();
  std::uint16_t to_ack = 0;
  std::optional<mqtt::Publish> message;
  if (auto* m = std::get_if<mqtt::Publish>(&*p)) {
    to_ack = m->packet_id;
    message = std::move(*m);
  } else if (const auto* big = std::get_if<mqtt::OversizePublish>(&*p)) {
    to_ack = big->packet_id;  // none of ours is that large: dropped
  } else {
    *other = std::move(*p);
  }
  if (to_ack != 0) OUTPOST_RETURN_IF_ERROR(Send(mqtt::PubAck{to_ack}, deadline));
  return message;
}

Result<mqtt::Packet> MqttTlsSession::AwaitReply(Deadline deadline) {
  for (;;) {
    mqtt::Packet other = mqtt::PingResp{};
    auto m = ReceiveAcked(deadline, &other);
    if (!m.ok()) return m.status();
    if (!m->has_value()) return other;
    if (pending_.size() == kMaxPending) pending_.pop_front();
    pending_.push_back(std::move(**m));
  }
}

Status MqttTlsSession::Subscribe(const std::string& filter, Deadline deadline) {
  const std::uint16_t id = NextPacketId();
  OUTPOST_RETURN_IF_ERROR(Send(mqtt::Subscribe{id, {{filter, 1}}}, deadline));
  for (;;) {
    auto p = AwaitReply(deadline);
    if (!p.ok()) return p.status();
    const auto* ack = std::get_if<mqtt::SubAck>(&*p);
    if (ack == nullptr || ack->packet_id != id) continue;
    if (ack->codes.size() == 1 && ack->codes[0] != mqtt::kSubAckFailure) return Status::Ok();
    return FailedPrecondition("the broker at " + conn_->where + " refused the subscription to " +
                              filter);
  }
}

Status MqttTlsSession::Publish(const std::string& topic, const std::string& payload,
                               Deadline deadline) {
  const std::uint16_t id = NextPacketId();
  OUTPOST_RETURN_IF_ERROR(Send(mqtt::Publish{topic, payload, 1, false, false, id}, deadline));
  for (;;) {
    auto p = AwaitReply(deadline);
    if (!p.ok()) return p.status();
    const auto* ack = std::get_if<mqtt::PubAck>(&*p);
    if (ack != nullptr && ack->packet_id == id) return Status::Ok();
  }
}

Result<mqtt::Publish> MqttTlsSession::NextMessage(Deadline deadline) {
  if (!pending_.empty()) {
    mqtt::Publish m = std::move(pending_.front());
    pending_.pop_front();
    return m;
  }
  for (;;) {
    mqtt::Packet other = mqtt::PingResp{};
    auto m = ReceiveAcked(deadline, &other);
    if (!m.ok()) return m.status();
    if (m->has_value()) return std::move(**m);
  }
}

void MqttTlsSession::Disconnect() {
  if (!conn_) return;
  (void)Send(mqtt::Disconnect{}, Clock::now() + std::chrono::milliseconds(500));
  SSL_shutdown(conn_->ssl);
  conn_.reset();
}

Status MqttTlsConnect(const std::string& host, std::uint16_t port, const TlsIdentity& identity,
                      const std::string& client_id, int timeout_ms) {
  auto session = MqttTlsSession::Connect(host, port, identity, client_id,
                                         Clock::now() + std::chrono::milliseconds(timeout_ms));
  if (!session.ok()) {
    if (session.status().code() == Code::kNotFound) return Unavailable(session.status().message());
    return session.status();
  }
  session->Disconnect();
  return Status::Ok();
}

}  // namespace outpost::provision
