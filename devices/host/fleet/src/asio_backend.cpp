// The only file of the fleet that includes Asio and OpenSSL.
#include "outpost/node/fleet/asio_backend.h"

#include <malloc.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/resource.h>
#include <unistd.h>

#include <asio.hpp>
#include <chrono>
#include <cstdio>
#include <limits>
#include <optional>
#include <vector>

#include "file_credentials.h"
#include "openssl_util.h"
#include "outpost/base/file.h"

namespace outpost::node::fleet {
namespace {

constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
using SteadyClock = std::chrono::steady_clock;
using asio::ip::tcp;

// Every certificate of the PEM file at `path` (at least one) into `ctx`'s trust store.
Status LoadCa(SSL_CTX* ctx, const std::string& path) {
  std::string text;
  auto bio = PemBio(path, &text);
  if (!bio.ok()) return bio.status();
  int added = 0;
  while (X509Ptr cert{PEM_read_bio_X509(bio->get(), nullptr, nullptr, nullptr)}) {
    if (X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), cert.get()) != 1) {
      return InvalidArgument(path + ": " + SslError());
    }
    ++added;
  }
  ERR_clear_error();  // the end of the file
  if (added == 0) return InvalidArgument(path + ": no PEM certificate in it");
  return Status::Ok();
}

// The PEM file's first certificate as `ctx`'s own, the ones after it as its chain.
Status UseChain(SSL_CTX* ctx, const std::string& path) {
  std::string text;
  auto bio = PemBio(path, &text);
  if (!bio.ok()) return bio.status();
  X509Ptr leaf(PEM_read_bio_X509(bio->get(), nullptr, nullptr, nullptr));
  if (!leaf || SSL_CTX_use_certificate(ctx, leaf.get()) != 1) {
    return InvalidArgument(path + ": not a PEM certificate: " + SslError());
  }
  while (X509* next = PEM_read_bio_X509(bio->get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add0_chain_cert(ctx, next) != 1) {  // takes `next` on success
      X509_free(next);
      return InvalidArgument(path + ": " + SslError());
    }
  }
  ERR_clear_error();
  return Status::Ok();
}

}  // namespace

// One connection attempt and its stream. Handlers hold a shared_ptr, so it outlives them.
// TLS runs directly on the non-blocking socket (SSL_set_fd), driven by Asio's readiness waits:
// no Asio ssl::stream, whose engine keeps two ~17 KiB buffers per connection for its whole life.
// OpenSSL's own record buffers are released between records (SSL_MODE_RELEASE_BUFFERS), so an
// idle TLS connection holds little more than its SSL object.
struct Conn {
  explicit Conn(asio::io_context& io) : socket(io) {}
  tcp::socket socket;
  SslPtr ssl;        // null: plain TCP
  bool open = true;  // false once closed by either side
  bool writing = false;
  bool refused_write = false;  // Write() accepted less than offered: wake the device when drained
  std::string pending;         // queued by the core
  std::string flight;          // being written
};

class AsioBackend::Impl {
 public:
  Impl(AsioBackend& self, AsioOptions options)
      : self_(self), options_(std::move(options)), tick_timer_(io_) {}

  struct Slot {
    explicit Slot(asio::io_context& io) : timer(io) {}
    asio::steady_timer timer;
    std::int64_t timer_at = kNever;
    std::shared_ptr<Conn> conn;
    std::unique_ptr<std::uint8_t[]> rbuf;  // allocated while connected
    // --cert-dir: this device's credentials (its Credentials port), loaded once: the current
    // certificate and key, or the staged ones during a rotation. The SSL object of a live
    // connection shares them by reference count, so they cost nothing extra while connected.
    std::unique_ptr<FileCredentials> creds;
  };

  std::int64_t Now() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - origin_)
        .count();
  }
  SteadyClock::time_point At(std::int64_t ms) const {
    return origin_ + std::chrono::milliseconds(ms);
  }

  Status Prepare() {
    asio::error_code ec;
    tcp::resolver resolver(io_);
    auto results = resolver.resolve(options_.host, std::to_string(options_.port), ec);
    if (ec || results.empty()) {
      return Unavailable("broker " + options_.host + ":" + std::to_string(options_.port) +
                         ": cannot resolve: " + ec.message());
    }
    endpoint_ = results.begin()->endpoint();
    if (options_.tls) {
      ssl_.reset(SSL_CTX_new(TLS_client_method()));
      if (!ssl_) return Internal("SSL_CTX_new: " + SslError());
      SSL_CTX* ctx = ssl_.get();
      SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
      if (options_.ca_file.empty()) {
        if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
          return InvalidArgument("ca: the system's CA store: " + SslError());
        }
      } else if (Status s = LoadCa(ctx, options_.ca_file); !s.ok()) {
        return InvalidArgument("ca: " + s.message());
      }
      if (!options_.cert_file.empty()) {
        if (Status s = UseChain(ctx, options_.cert_file); !s.ok()) {
          return InvalidArgument("cert: " + s.message());
        }
        auto key = ReadKey(options_.key_file);
        if (!key.ok()) return InvalidArgument("key: " + key.status().message());
        if (SSL_CTX_use_PrivateKey(ctx, key->get()) != 1) {
          return InvalidArgument("key: " + options_.key_file + ": " + SslError());
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
          return InvalidArgument("key: " + options_.key_file + " does not match " +
                                 options_.cert_file);
        }
      }
      SSL_CTX_set_verify(ctx, options_.verify_peer ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
      // Thousands of mostly idle connections: OpenSSL frees its record buffers between records;
      // no read-ahead (it would keep a full buffer per connection); writes may be partial and
      // resumed from a moved buffer (the flight string may reallocate between retries).
      SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                                SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
      SSL_CTX_set_read_ahead(ctx, 0);
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
      if (!options_.cert_dir.empty()) OUTPOST_RETURN_IF_ERROR(LoadDeviceCredentials());
    }
    return Status::Ok();
  }

  // One certificate and key per device: DIR/<id>/device.crt and device.key, the layout
  // `outpost-provision device add` writes. Every device must have both, and they must match.
  Status LoadDeviceCredentials() {
    for (std::uint32_t d = 0; d < slots_.size(); ++d) {
      auto c = FileCredentials::Load(options_.cert_dir, fleet_->DeviceId(d));
      if (!c.ok()) return InvalidArgument("--cert-dir: " + c.status().message());
      slots_[d].creds = std::move(*c);
    }
    return Status::Ok();
  }

  device::Credentials* CredentialsFor(std::uint32_t d) {
    return d < slots_.size() ? slots_[d].creds.get() : nullptr;
  }

  void Attach(Fleet& fleet) {
    fleet_ = &fleet;
    slots_.clear();
    slots_.reserve(fleet.options().devices);
    for (std::uint32_t i = 0; i < fleet.options().devices; ++i) slots_.emplace_back(io_);
  }

  void Connect(std::uint32_t d) {
    Slot& s = slots_[d];
    CloseConn(s);
    auto conn = std::make_shared<Conn>(io_);
    s.conn = conn;
    if (fleet_->BrokerDown()) {
      // The broker is "down": refused, reported from the loop (never from inside Connect).
      asio::post(io_, [this, d, conn] {
        if (!stopped_ && slots_[d].conn == conn && conn->open) {
          CloseConn(slots_[d]);
          fleet_->OnDisconnected(d);
        }
      });
      return;
    }
    if (fleet_->Blackholed(d)) return;  // the SYN vanishes; the core's connect timeout fires
    conn->socket.async_connect(endpoint_, [this, d, conn](const asio::error_code& ec) {
      if (stopped_ || slots_[d].conn != conn || !conn->open) return;
      if (ec) {
        CloseConn(slots_[d]);
        fleet_->OnDisconnected(d);
        return;
      }
      asio::error_code ignored;
      conn->socket.set_option(tcp::no_delay(true), ignored);
      if (ssl_) {
        StartTls(d, conn);
      } else {
        Established(d, conn);
      }
    });
  }

  void Fail(std::uint32_t d) {
    CloseConn(slots_[d]);
    fleet_->OnDisconnected(d);
  }

  void StartTls(std::uint32_t d, const std::shared_ptr<Conn>& conn) {
    Slot& s = slots_[d];
    asio::error_code ec;
    conn->socket.non_blocking(true, ec);
    SslPtr ssl(SSL_new(ssl_.get()));
    if (ec || !ssl || SSL_set_fd(ssl.get(), conn->socket.native_handle()) != 1 ||
        SSL_set_tlsext_host_name(ssl.get(), options_.host.c_str()) != 1 ||
        (s.creds && (SSL_use_certificate(ssl.get(), s.creds->cert()) != 1 ||
                     SSL_use_PrivateKey(ssl.get(), s.creds->key()) != 1))) {
      ERR_clear_error();
      Fail(d);
      return;
    }
    conn->ssl = std::move(ssl);
    Handshake(d, conn);
  }

  // Waits for the socket to become readable or writable, as OpenSSL asked, then calls `then`.
  template <typename F>
  void WaitFor(int ssl_error, const std::shared_ptr<Conn>& conn, std::uint32_t d, F then) {
    const auto what =
        ssl_error == SSL_ERROR_WANT_WRITE ? tcp::socket::wait_write : tcp::socket::wait_read;
    conn->socket.async_wait(what, [this, d, conn, then](const asio::error_code& ec) {
      if (stopped_ || slots_[d].conn != conn || !conn->open) return;
      if (ec) {
        Fail(d);
        return;
      }
      then();
    });
  }

  void Handshake(std::uint32_t d, const std::shared_ptr<Conn>& conn) {
    const int r = SSL_connect(conn->ssl.get());
    if (r == 1) {
      Established(d, conn);
      return;
    }
    const int err = SSL_get_error(conn->ssl.get(), r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      WaitFor(err, conn, d, [this, d, conn] { Handshake(d, conn); });
      return;
    }
    ERR_clear_error();  // refused (bad certificate, revoked, ...): the device reconnects
    Fail(d);
  }

  void Established(std::uint32_t d, const std::shared_ptr<Conn>& conn) {
    Slot& s = slots_[d];
    if (!s.rbuf) s.rbuf.reset(new std::uint8_t[options_.read_buffer_bytes]);
    fleet_->OnConnected(d);
    if (s.conn == conn && conn->open) Read(d, conn);
  }

  void Read(std::uint32_t d, const std::shared_ptr<Conn>& conn) {
    if (conn->ssl) {
      ReadTls(d, conn);
      return;
    }
    Slot& s = slots_[d];
    auto handler = [this, d, conn](const asio::error_code& ec, std::size_t n) {
      Slot& slot = slots_[d];
      if (stopped_ || slot.conn != conn || !conn->open) return;
      if (ec) {
        Fail(d);
        return;
      }
      fleet_->OnBytes(d, slot.rbuf.get(), n);
      if (slot.conn == conn && conn->open) Read(d, conn);
    };
    conn->socket.async_read_some(asio::buffer(s.rbuf.get(), options_.read_buffer_bytes), handler);
  }

  // Reads every decrypted byte available now, then waits for the socket. Bounded per call: at
  // most kMaxTlsReadsPerTurn records, then the rest is read on a later turn of the loop.
  void ReadTls(std::uint32_t d, const std::shared_ptr<Conn>& conn) {
    constexpr int kMaxTlsReadsPerTurn = 16;
    for (int i = 0; i < kMaxTlsReadsPerTurn; ++i) {
      Slot& s = slots_[d];
      const int n =
          SSL_read(conn->ssl.get(), s.rbuf.get(), static_cast<int>(options_.read_buffer_bytes));
      if (n > 0) {
        fleet_->OnBytes(d, s.rbuf.get(), static_cast<std::size_t>(n));
        if (stopped_ || slots_[d].conn != conn || !conn->open) return;
        continue;
      }
      const int err = SSL_get_error(conn->ssl.get(), n);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        WaitFor(err, conn, d, [this, d, conn] { ReadTls(d, conn); });
        return;
      }
      ERR_clear_error();  // closed by the broker, or a TLS error
      Fail(d);
      return;
    }
    asio::post(io_, [this, d, conn] {
      if (!stopped_ && slots_[d].conn == conn && conn->open) ReadTls(d, conn);
    });
  }

  std::size_t Write(std::uint32_t d, const std::uint8_t* data, std::size_t size) {
    Slot& s = slots_[d];
    const auto& conn = s.conn;
    if (!conn || !conn->open) return 0;
    const std::size_t room = options_.max_write_buffer_bytes > conn->pending.size()
                                 ? options_.max_write_buffer_bytes - conn->pending.size()
                                 : 0;
    const std::size_t n = std::min(room, size);
    if (n < size) conn->refused_write = true;
    conn->pending.append(reinterpret_cast<const char*>(data), n);
    if (!conn->writing && !conn->pending.empty()) Flush(d, conn);
    return n;
  }

  void Flush(std::uint32_t d, const std::shared_ptr<Conn>& conn) {
    conn->flight.swap(conn->pending);
    conn->pending.clear();
    conn->writing = true;
    auto handler = [this, d, conn](const asio::error_code& ec, std::size_t) {
      conn->writing = false;
      conn->flight.clear();
      Slot& slot = slots_[d];
      if (stopped_ || slot.conn != conn || !conn->open) return;
      if (ec) {
        CloseConn(slot);
        fleet_->OnDisconnected(d);
        return;
      }
      if (!conn->pending.empty()) {
        Flush(d, conn);
      } else {
        // Give buffer memory back between bursts: devices are many, bursts are small.
        if (conn->flight.capacity() > 1024) std::string().swap(conn->flight);
        if (conn->pending.capacity() > 1024) std::string().swap(conn->pending);
      }
      if (conn->refused_write) {
        conn->refused_write = false;
        fleet_->OnWritable(d);
      }
    };
    if (conn->ssl) {
      WriteTls(d, conn, 0, handler);
    } else {
      asio::async_write(conn->socket, asio::buffer(conn->flight), handler);
    }
  }

  // Writes conn->flight from `offset` through OpenSSL, waiting on the socket as it asks; calls
  // `done` once everything is written or on error.
  template <typename H>
  void WriteTls(std::uint32_t d, const std::shared_ptr<Conn>& conn, std::size_t offset, H done) {
    while (offset < conn->flight.size()) {
      const int n = SSL_write(conn->ssl.get(), conn->flight.data() + offset,
                              static_cast<int>(conn->flight.size() - offset));
      if (n > 0) {
        offset += static_cast<std::size_t>(n);
        continue;
      }
      const int err = SSL_get_error(conn->ssl.get(), n);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        const auto what =
            err == SSL_ERROR_WANT_WRITE ? tcp::socket::wait_write : tcp::socket::wait_read;
        conn->socket.async_wait(what, [this, d, conn, offset, done](const asio::error_code& ec) {
          if (ec || stopped_ || slots_[d].conn != conn || !conn->open) {
            done(ec ? ec : asio::error::operation_aborted, 0);
            return;
          }
          WriteTls(d, conn, offset, done);
        });
        return;
      }
      ERR_clear_error();
      done(asio::error::connection_reset, 0);
      return;
    }
    done(asio::error_code(), offset);
  }

  void CloseConn(Slot& s) {
    if (!s.conn) return;
    s.conn->open = false;
    asio::error_code ignored;
    // No close_notify: the device core has sent DISCONNECT (or the link is gone); the SSL object
    // goes with the last handler that holds the connection.
    s.conn->socket.close(ignored);
    s.conn.reset();
    s.rbuf.reset();
  }

  void ScheduleWake(std::uint32_t d, std::int64_t at_ms) {
    Slot& s = slots_[d];
    const std::int64_t now = Now();
    if (s.timer_at <= at_ms && s.timer_at != kNever) return;  // an earlier wake is pending
    s.timer_at = at_ms;
    s.timer.expires_at(At(std::max(at_ms, now)));
    s.timer.async_wait([this, d, at_ms](const asio::error_code& ec) {
      if (ec || stopped_) return;  // replaced by an earlier wake, or shutting down
      Slot& slot = slots_[d];
      if (slot.timer_at != at_ms) return;
      slot.timer_at = kNever;
      fleet_->Wake(d);
    });
  }

  void ScheduleTick(std::int64_t at_ms) {
    if (tick_at_ <= at_ms && tick_at_ != kNever) return;
    tick_at_ = at_ms;
    tick_timer_.expires_at(At(at_ms));
    tick_timer_.async_wait([this, at_ms](const asio::error_code& ec) {
      if (ec || stopped_ || tick_at_ != at_ms) return;
      tick_at_ = kNever;
      fleet_->Tick();
    });
  }

  Status Run(const std::atomic<bool>* stop_flag) {
    OUTPOST_RETURN_IF_ERROR(Prepare());
    fleet_->Start();
    // The stop flag is polled: a signal handler may only set it.
    asio::steady_timer flag_timer(io_);
    int turns = 0;
    std::function<void()> watch = [&] {
      flag_timer.expires_after(std::chrono::milliseconds(100));
      flag_timer.async_wait([&](const asio::error_code& ec) {
        if (ec || stopped_) return;
        // TLS handshakes allocate and free tens of KiB each, interleaved across thousands of
        // connections: once a second, hand the freed pages back to the kernel (malloc_trim
        // releases whole free pages inside the heap, not only at its top).
        if (ssl_ && ++turns % 10 == 0) malloc_trim(0);
        if (stop_flag != nullptr && stop_flag->load()) {
          fleet_->RequestStop();
        } else {
          watch();
        }
      });
    };
    watch();
    while (!stopped_ && io_.run_one() > 0) {
    }
    // Tear down: close everything and let the aborted handlers run out.
    asio::error_code ignored;
    flag_timer.cancel();
    tick_timer_.cancel();
    for (Slot& s : slots_) {
      CloseConn(s);
      s.timer.cancel();
    }
    io_.restart();
    io_.run();
    return Status::Ok();
  }

  void Close(std::uint32_t device) { CloseConn(slots_[device]); }
  void Stop() { stopped_ = true; }

 private:
  AsioBackend& self_;
  AsioOptions options_;
  asio::io_context io_{1};
  asio::steady_timer tick_timer_;
  std::int64_t tick_at_ = kNever;
  SteadyClock::time_point origin_ = SteadyClock::now();
  tcp::endpoint endpoint_;
  SslCtxPtr ssl_;  // shared by every connection: CA, verification, buffer modes
  Fleet* fleet_ = nullptr;
  std::vector<Slot> slots_;
  bool stopped_ = false;
};

AsioBackend::AsioBackend(AsioOptions options)
    : options_tls_cert_dir_(options.tls && !options.cert_dir.empty()),
      impl_(std::make_unique<Impl>(*this, std::move(options))) {}
AsioBackend::~AsioBackend() = default;

void AsioBackend::Attach(Fleet& fleet) { impl_->Attach(fleet); }
Status AsioBackend::Run(const std::atomic<bool>* stop_flag) { return impl_->Run(stop_flag); }
std::int64_t AsioBackend::NowMs() { return impl_->Now(); }
std::int64_t AsioBackend::WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
void AsioBackend::Connect(std::uint32_t device) { impl_->Connect(device); }
std::size_t AsioBackend::Write(std::uint32_t device, const std::uint8_t* data, std::size_t size) {
  return impl_->Write(device, data, size);
}
void AsioBackend::Close(std::uint32_t device) { impl_->Close(device); }
void AsioBackend::ScheduleWake(std::uint32_t device, std::int64_t at_ms) {
  impl_->ScheduleWake(device, at_ms);
}
void AsioBackend::ScheduleTick(std::int64_t at_ms) { impl_->ScheduleTick(at_ms); }
void AsioBackend::Stop() { impl_->Stop(); }
bool AsioBackend::ProvidesCredentials() const { return options_tls_cert_dir_; }
device::Credentials* AsioBackend::CredentialsFor(std::uint32_t device) {
  return impl_->CredentialsFor(device);
}

std::uint64_t RaiseFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
    (void)getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}

std::uint64_t ResidentBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  return resident * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace outpost::node::fleet
