#include "outpost/provision/control.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

namespace outpost::provision {
namespace {

std::vector<unsigned char> ConnectPacket(const std::string& client_id) {
  std::vector<unsigned char> body = {0, 4, 'M', 'Q', 'T', 'T', 4, 0x02 /* clean session */, 0, 10};
  body.push_back(static_cast<unsigned char>(client_id.size() >> 8));
  body.push_back(static_cast<unsigned char>(client_id.size() & 0xFF));
  body.insert(body.end(), client_id.begin(), client_id.end());
  std::vector<unsigned char> packet = {0x10};
  std::size_t n = body.size();  // < 128 + 65535: at most 3 length bytes
  do {
    unsigned char b = n % 128;
    n /= 128;
    if (n > 0) b |= 0x80;
    packet.push_back(b);
  } while (n > 0);
  packet.insert(packet.end(), body.begin(), body.end());
  return packet;
}

}  // namespace

Status MqttTlsConnect(const std::string& host, std::uint16_t port, const TlsIdentity& id,
                      const std::string& client_id, int timeout_ms) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) {
    return Unavailable("cannot resolve " + host);
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Unavailable(std::string("socket: ") + std::strerror(errno));
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  const std::string where = host + ":" + std::to_string(port);
  if (::connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    int e = errno;
    ::close(fd);
    return Unavailable("connect " + where + ": " + std::strerror(e));
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx_guard(ctx, SSL_CTX_free);
  SSL* ssl = nullptr;
  auto fail = [&](Status s) {
    if (ssl != nullptr) SSL_free(ssl);
    ::close(fd);
    ERR_clear_error();
    return s;
  };
  if (ctx == nullptr || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
      SSL_CTX_load_verify_locations(ctx, id.ca_file.c_str(), nullptr) != 1 ||
      SSL_CTX_use_certificate_chain_file(ctx, id.cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, id.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return fail(InvalidArgument("cannot load the TLS files " + id.cert_file + ", " + id.key_file +
                                ", " + id.ca_file));
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  ssl = SSL_new(ctx);
  if (ssl == nullptr || SSL_set_fd(ssl, fd) != 1) return fail(Internal("SSL_new"));
  if (SSL_connect(ssl) != 1) return fail(Unavailable("TLS handshake with " + where + " failed"));
  const auto packet = ConnectPacket(client_id);
  if (SSL_write(ssl, packet.data(), static_cast<int>(packet.size())) !=
      static_cast<int>(packet.size())) {
    return fail(Unavailable("the broker at " + where + " closed the connection (refused)"));
  }
  unsigned char connack[4];
  int got = 0;
  while (got < 4) {
    int n = SSL_read(ssl, connack + got, 4 - got);
    if (n <= 0) {
      const bool timed_out = errno == EAGAIN || errno == EWOULDBLOCK;
      return fail(timed_out ? Status(Code::kDeadlineExceeded, "no CONNACK from " + where)
                            : Unavailable("the broker at " + where +
                                          " closed the connection before a CONNACK (refused)"));
    }
    got += n;
  }
  if (connack[0] != 0x20 || connack[1] != 2)
    return fail(Unavailable("not a CONNACK from " + where));
  if (connack[3] != 0) {
    return fail(FailedPrecondition("the broker at " + where + " refused: CONNACK code " +
                                   std::to_string(connack[3])));
  }
  const unsigned char disconnect[2] = {0xE0, 0};
  (void)SSL_write(ssl, disconnect, 2);
  SSL_shutdown(ssl);
  SSL_free(ssl);
  ::close(fd);
  return Status::Ok();
}

}  // namespace outpost::provision
