#include "outpost/http/client.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <atomic>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cctype>
#include <chrono>
#include <optional>

#include "outpost/base/file.h"

namespace outpost::http {
namespace {

namespace bhttp = boost::beast::http;
using asio::ip::tcp;
using TlsStream = asio::ssl::stream<tcp::socket>;
using Clock = std::chrono::steady_clock;
using Parser = bhttp::response_parser<bhttp::string_body>;

constexpr std::size_t kReadChunkBytes = 16 * 1024;

// One transport connection. Pending handlers hold a shared_ptr to it, so its sockets outlive
// every operation that uses them.
struct Conn {
  std::unique_ptr<tcp::socket> plain;
  std::unique_ptr<TlsStream> tls;

  tcp::socket& lowest() { return tls ? tls->next_layer() : *plain; }
  // `abort`: reset instead of a FIN, which would wait behind unsent request bytes (after an
  // error, or an answer that came before the whole request was written).
  void Close(bool abort = false) {
    asio::error_code ignored;
    if (abort) {
      lowest().set_option(asio::socket_base::linger(true, 0), ignored);
    } else {
      lowest().shutdown(tcp::socket::shutdown_both, ignored);
    }
    lowest().close(ignored);
  }
  // A kept-alive connection is reusable while the server has neither closed it nor sent
  // anything unasked (a close_notify, a 408): poll without waiting.
  bool Idle() {
    if (!lowest().is_open()) return false;
    pollfd p{lowest().native_handle(), POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;
  }
};

// One Send. Handlers capture it and do nothing once it is done (their request is over).
struct Op {
  std::string out;  // the serialized request
  std::string in;   // bytes read and not yet consumed by the parser
  std::vector<char> buf = std::vector<char>(kReadChunkBytes);
  std::optional<Parser> parser;
  std::shared_ptr<Conn> conn;
  std::uint64_t phase = 0;  // incremented when the deadline is re-armed
  Clock::time_point request_started;
  bool written = false;     // the whole request is written
  std::string write_error;  // why writing it failed, if it did
  bool head = false;        // a HEAD request: the response has no body whatever it says
  bool done = false;
  Status status;
  ClientResponse response;
};

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool HasCrLf(const std::string& s) { return s.find_first_of("\r\n") != std::string::npos; }

std::int64_t MsSince(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

}  // namespace

const std::string& ClientResponse::Header(const std::string& name) const {
  static const std::string kEmpty;
  auto it = headers.find(name);
  return it == headers.end() ? kEmpty : it->second;
}

class Client::Impl {
 public:
  explicit Impl(ClientOptions o) : options_(std::move(o)), resolver_(io_), timer_(io_) {
    const bool v6 = options_.host.find(':') != std::string::npos;
    authority_ = v6 ? "[" + options_.host + "]" : options_.host;
    authority_ += ":" + std::to_string(options_.port);
    const std::uint16_t default_port = options_.tls ? 443 : 80;
    host_header_ = options_.port == default_port ? (v6 ? "[" + options_.host + "]" : options_.host)
                                                 : authority_;
  }

  Status Init() {
    if (!options_.tls) return Status::Ok();
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
    if (options_.ca_file.empty()) {
      ssl_->set_default_verify_paths(ec);
      if (ec) return InvalidArgument("TLS: the system's CA store: " + ec.message());
    } else {
      // The bounded reader, not OpenSSL's: a FIFO path fails, it does not hang.
      auto ca = ReadFile(options_.ca_file);
      if (!ca.ok()) return InvalidArgument(options_.ca_file_key + " " + ca.status().message());
      ssl_->add_certificate_authority(asio::buffer(*ca), ec);
      if (ec) {
        return InvalidArgument(options_.ca_file_key + " " + options_.ca_file + ": " + ec.message());
      }
    }
    ssl_->set_verify_mode(asio::ssl::verify_peer, ec);
    return Status::Ok();
  }

  Result<ClientResponse> Send(const ClientRequest& request) {
    ++counters_.requests;
    if (stopped_) {
      ++counters_.cancelled;
      return Status(Code::kCancelled, "stopped");
    }
    auto op = std::make_shared<Op>();
    Status s = Serialize(request, &op->out);
    if (!s.ok()) return s;
    op->head = request.method == "HEAD";
    io_.restart();
    asio::post(io_, [this, op] { Begin(op); });
    while (!op->done) {
      if (io_.run_one() == 0) {  // out of work without an answer: a bug, not a hang
        io_.restart();
        if (!op->done) Finish(op, Internal("HTTP client: no operation pending"));
      }
    }
    op_.reset();
    if (!op->status.ok()) return op->status;
    return std::move(op->response);
  }

  void Stop() {
    stopped_ = true;
    asio::post(io_, [this] {
      if (op_ && !op_->done) Finish(op_, Status(Code::kCancelled, "stopped"));
      if (conn_) {
        conn_->Close();
        conn_.reset();
      }
    });
  }

  ClientCounters counters() const {
    ClientCounters c;
    c.requests = counters_.requests;
    c.responses = counters_.responses;
    c.connects = counters_.connects;
    c.reused = counters_.reused;
    c.header_too_large = counters_.header_too_large;
    c.body_too_large = counters_.body_too_large;
    c.bad_responses = counters_.bad_responses;
    c.timeouts = counters_.timeouts;
    c.network_errors = counters_.network_errors;
    c.cancelled = counters_.cancelled;
    return c;
  }

 private:
  Status Serialize(const ClientRequest& r, std::string* out) const {
    if (r.method.empty() || HasCrLf(r.method) || r.method.find(' ') != std::string::npos ||
        r.target.empty() || HasCrLf(r.target) || r.target.find(' ') != std::string::npos) {
      return InvalidArgument("HTTP request: bad method or target \"" + r.method + " " + r.target +
                             "\"");
    }
    out->reserve(256 + r.body.size());
    *out += r.method + " " + r.target + " HTTP/1.1\r\nHost: " + host_header_ + "\r\n";
    for (const auto& [name, value] : r.headers) {
      if (name.empty() || HasCrLf(name) || HasCrLf(value) || name.find(':') != std::string::npos) {
        return InvalidArgument("HTTP request: header \"" + name +
                               "\" has an empty name, a ':' in its name or a CR/LF");
      }
      *out += name + ": " + value + "\r\n";
    }
    if (!r.body.empty() || r.method == "POST" || r.method == "PUT" || r.method == "PATCH") {
      *out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
    }
    *out += "\r\n";
    *out += r.body;
    return Status::Ok();
  }

  template <typename F>
  static void WithStream(Conn& c, F&& f) {
    if (c.tls) {
      f(*c.tls);
    } else {
      f(*c.plain);
    }
  }

  void Begin(const std::shared_ptr<Op>& op) {
    if (stopped_) {
      Finish(op, Status(Code::kCancelled, "stopped"));
      return;
    }
    op_ = op;
    if (conn_ && !conn_->Idle()) {
      conn_->Close();
      conn_.reset();
    }
    if (conn_) {
      ++counters_.reused;
      op->conn = conn_;
      StartRequest(op);
    } else {
      Connect(op);
    }
  }

  // Arms the one deadline of `op`; a wait armed before (another phase) does nothing when it
  // fires.
  template <typename Message>
  void ArmDeadline(const std::shared_ptr<Op>& op, std::int64_t ms, Message message) {
    const std::uint64_t phase = ++op->phase;
    const Clock::time_point started = Clock::now();
    timer_.expires_after(std::chrono::milliseconds(ms));
    timer_.async_wait([this, op, phase, started, message](const asio::error_code& ec) {
      if (ec || op->done || phase != op->phase) return;
      ++counters_.timeouts;
      Finish(op, Status(Code::kDeadlineExceeded, message(MsSince(started))));
    });
  }

  void Connect(const std::shared_ptr<Op>& op) {
    ArmDeadline(op, options_.connect_timeout_ms, [a = authority_](std::int64_t ms) {
      return "connect to " + a + " timed out after " + std::to_string(ms) + " ms";
    });
    auto c = std::make_shared<Conn>();
    if (ssl_) {
      c->tls = std::make_unique<TlsStream>(io_, *ssl_);
      SSL* ssl = c->tls->native_handle();
      asio::error_code ec;
      asio::ip::make_address(options_.host, ec);
      if (ec) {  // a name: SNI, and the certificate must carry it
        SSL_set_tlsext_host_name(ssl, options_.host.c_str());
        SSL_set1_host(ssl, options_.host.c_str());
      } else {  // an IP literal: the certificate must carry it as an IP SAN
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), options_.host.c_str());
      }
    } else {
      c->plain = std::make_unique<tcp::socket>(io_);
    }
    op->conn = c;
    resolver_.async_resolve(
        options_.host, std::to_string(options_.port),
        [this, op, c](const asio::error_code& ec, const tcp::resolver::results_type& results) {
          if (op->done) return;
          if (ec) {
            NetworkError(op, "resolve " + options_.host + ": " + ec.message());
            return;
          }
          asio::async_connect(
              c->lowest(), results,
              [this, op, c](const asio::error_code& ec2, const tcp::endpoint&) {
                if (op->done) return;
                if (ec2) {
                  NetworkError(op, "connect to " + authority_ + ": " + ec2.message());
                  return;
                }
                asio::error_code ignored;
                c->lowest().set_option(tcp::no_delay(true), ignored);  // else Nagle + delayed ACK
                if (!c->tls) {
                  Connected(op, c);
                  return;
                }
                c->tls->async_handshake(asio::ssl::stream_base::client,
                                        [this, op, c](const asio::error_code& ec3) {
                                          if (op->done) return;
                                          if (ec3) {
                                            HandshakeFailed(op, c, ec3);
                                            return;
                                          }
                                          Connected(op, c);
                                        });
              });
        });
  }

  void HandshakeFailed(const std::shared_ptr<Op>& op, const std::shared_ptr<Conn>& c,
                       const asio::error_code& ec) {
    const long verify = SSL_get_verify_result(c->tls->native_handle());
    if (verify != X509_V_OK) {
      NetworkError(op, "TLS: the certificate of " + authority_ + " did not verify: " +
                           X509_verify_cert_error_string(verify) + " (check " +
                           options_.ca_file_key + " and the server's certificate and name)");
      return;
    }
    NetworkError(op, "TLS handshake with " + authority_ + ": " + ec.message());
  }

  void Connected(const std::shared_ptr<Op>& op, const std::shared_ptr<Conn>& c) {
    ++counters_.connects;
    conn_ = c;
    StartRequest(op);
  }

  void StartRequest(const std::shared_ptr<Op>& op) {
    op->request_started = Clock::now();
    ArmDeadline(op, options_.request_timeout_ms, [](std::int64_t ms) {
      return "request timed out after " + std::to_string(ms) + " ms";
    });
    op->parser.emplace();
    ConfigureParser(*op, *op->parser);
    // Full duplex: the response is read while the request is written, so a server that answers
    // early (a 413 at the header of a body over its limit) and stops reading is heard.
    auto c = op->conn;
    WithStream(*c, [&](auto& stream) {
      asio::async_write(stream, asio::buffer(op->out),
                        [this, op, c](const asio::error_code& ec, std::size_t) {
                          if (op->done) return;
                          if (ec) {  // the read goes on: an answer may be on its way
                            op->write_error = "write to " + authority_ + ": " + ec.message();
                            return;
                          }
                          op->written = true;
                        });
    });
    Read(op);
  }

  void ConfigureParser(const Op& op, Parser& p) const {
    p.header_limit(
        static_cast<std::uint32_t>(std::min<std::size_t>(options_.max_header_bytes, UINT32_MAX)));
    p.body_limit(static_cast<std::uint64_t>(options_.max_body_bytes));
    // Not eager: Beast 1.74's put() drops an error of the header's last step (a Content-Length
    // above body_limit) when eager and body bytes follow in the same buffer, and parses on
    // (string_body then reserves the whole Content-Length). Without it put() returns after the
    // header with the error; Feed() calls it again for the rest.
    p.eager(false);
    p.skip(op.head);
  }

  void Read(const std::shared_ptr<Op>& op) {
    auto c = op->conn;
    WithStream(*c, [&](auto& stream) {
      stream.async_read_some(asio::buffer(op->buf),
                             [this, op, c](const asio::error_code& ec, std::size_t n) {
                               if (op->done) return;
                               if (ec) {
                                 OnReadError(op, ec);
                                 return;
                               }
                               op->in.append(op->buf.data(), n);
                               Feed(op);
                             });
    });
  }

  void OnReadError(const std::shared_ptr<Op>& op, const asio::error_code& ec) {
    const bool eof = ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
    Parser& p = *op->parser;
    if (eof && p.is_header_done()) {  // a body delimited by the close
      boost::system::error_code pec;
      p.put_eof(pec);
      if (!pec && p.is_done()) {
        Complete(op, /*keep=*/false);
        return;
      }
    }
    if (!op->write_error.empty()) {
      NetworkError(op, op->write_error);
      return;
    }
    const std::string got = std::to_string(op->in.size()) + " unparsed bytes";
    NetworkError(
        op, eof ? "connection closed by " + authority_ + " before a whole response (" + got + ")"
                : "read from " + authority_ + ": " + ec.message());
  }

  void Feed(const std::shared_ptr<Op>& op) {
    while (true) {
      Parser& p = *op->parser;
      boost::system::error_code ec;
      const std::size_t used = p.put(boost::asio::const_buffer(op->in.data(), op->in.size()), ec);
      op->in.erase(0, used);
      if (ec == bhttp::error::need_more || (!ec && !p.is_done() && used == 0)) {
        // Beast bounds the header; a chunk-size line or trailer it waits for is bounded here.
        if (p.is_header_done() && op->in.size() > options_.max_header_bytes) {
          ++counters_.header_too_large;
          Finish(op, ResourceExhausted("response chunk line larger than " +
                                       std::to_string(options_.max_header_bytes) + " bytes"));
          return;
        }
        Read(op);
        return;
      }
      if (ec == bhttp::error::header_limit) {
        ++counters_.header_too_large;
        Finish(op, ResourceExhausted("response header larger than " +
                                     std::to_string(options_.max_header_bytes) + " bytes"));
        return;
      }
      if (ec == bhttp::error::body_limit) {
        ++counters_.body_too_large;
        Finish(op, ResourceExhausted("response body larger than " +
                                     std::to_string(options_.max_body_bytes) + " bytes"));
        return;
      }
      if (ec) {
        ++counters_.bad_responses;
        Finish(op, InvalidArgument("bad response from " + authority_ + ": " + ec.message()));
        return;
      }
      if (!p.is_done()) continue;  // consumed a part; the rest may parse now
      const int status = static_cast<int>(p.get().result_int());
      if (status >= 100 && status < 200 && status != 101) {  // interim (100 Continue): skip
        op->parser.emplace();
        ConfigureParser(*op, *op->parser);
        continue;
      }
      // Answered before the whole request was written: the connection's state is unknown.
      Complete(op, p.get().keep_alive() && op->in.empty() && op->written);
      return;
    }
  }

  void Complete(const std::shared_ptr<Op>& op, bool keep) {
    auto& msg = op->parser->get();
    ClientResponse& r = op->response;
    r.status = static_cast<int>(msg.result_int());
    for (const auto& f : msg) {
      const auto n = f.name_string();
      const auto v = f.value();
      std::string value(v.data(), v.size());
      auto [it, inserted] = r.headers.emplace(Lower(std::string(n.data(), n.size())), value);
      if (!inserted) it->second += ", " + value;
    }
    r.body = std::move(msg.body());
    if (!keep) {
      op->conn->Close(/*abort=*/!op->written);
      if (conn_ == op->conn) conn_.reset();
    }
    ++counters_.responses;
    Finish(op, Status::Ok());
  }

  void NetworkError(const std::shared_ptr<Op>& op, std::string message) {
    ++counters_.network_errors;
    Finish(op, Unavailable(std::move(message)));
  }

  // Ends `op`; on an error closes its connection, so that whatever is pending on it completes
  // (and finds the op done).
  void Finish(const std::shared_ptr<Op>& op, Status status) {
    if (op->done) return;
    if (status.code() == Code::kCancelled) ++counters_.cancelled;
    op->done = true;
    op->status = std::move(status);
    ++op->phase;
    timer_.cancel();
    if (!op->status.ok()) {
      resolver_.cancel();
      if (op->conn) op->conn->Close(/*abort=*/true);
      if (conn_ == op->conn) conn_.reset();
    }
  }

  struct AtomicCounters {
    std::atomic<std::uint64_t> requests{0}, responses{0}, connects{0}, reused{0},
        header_too_large{0}, body_too_large{0}, bad_responses{0}, timeouts{0}, network_errors{0},
        cancelled{0};
  };

  ClientOptions options_;
  std::string authority_;    // "host:port" for messages
  std::string host_header_;  // the Host header's value
  asio::io_context io_;
  std::unique_ptr<asio::ssl::context> ssl_;
  tcp::resolver resolver_;
  asio::steady_timer timer_;
  std::shared_ptr<Conn> conn_;  // the kept-alive connection; io thread only
  std::shared_ptr<Op> op_;      // the Send in flight; io thread only
  std::atomic<bool> stopped_{false};
  AtomicCounters counters_;
};

Result<std::unique_ptr<Client>> Client::Make(ClientOptions options) {
  if (options.host.empty()) return InvalidArgument("HTTP client: host is empty");
  if (options.port == 0) return InvalidArgument("HTTP client: port is 0");
  if (options.connect_timeout_ms <= 0 || options.request_timeout_ms <= 0) {
    return InvalidArgument("HTTP client: timeouts must be positive");
  }
  if (options.max_header_bytes == 0 || options.max_body_bytes == 0) {
    return InvalidArgument("HTTP client: response limits must be positive");
  }
  auto impl = std::make_unique<Impl>(std::move(options));
  OUTPOST_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;
Result<ClientResponse> Client::Send(const ClientRequest& request) { return impl_->Send(request); }
void Client::Stop() { impl_->Stop(); }
ClientCounters Client::counters() const { return impl_->counters(); }

}  // namespace outpost::http
