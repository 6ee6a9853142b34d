// The only file of the fleet that includes Asio and OpenSSL.
#include "outpost/node/fleet/asio_backend.h"

#include <sys/resource.h>
#include <unistd.h>

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <chrono>
#include <cstdio>
#include <limits>
#include <optional>
#include <vector>

namespace outpost::node::fleet {
namespace {

constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
using SteadyClock = std::chrono::steady_clock;
using asio::ip::tcp;

}  // namespace

// One connection attempt and its stream. Handlers hold a shared_ptr, so it outlives them.
struct Conn {
  explicit Conn(asio::io_context& io) : socket(io) {}
  tcp::socket socket;
  std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls;
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
      ssl_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
      if (options_.ca_file.empty()) {
        ssl_->set_default_verify_paths(ec);
      } else {
        ssl_->load_verify_file(options_.ca_file, ec);
      }
      if (ec) return InvalidArgument("ca: " + options_.ca_file + ": " + ec.message());
      if (!options_.cert_file.empty()) {
        ssl_->use_certificate_chain_file(options_.cert_file, ec);
        if (ec) return InvalidArgument("cert: " + options_.cert_file + ": " + ec.message());
        ssl_->use_private_key_file(options_.key_file, asio::ssl::context::pem, ec);
        if (ec) return InvalidArgument("key: " + options_.key_file + ": " + ec.message());
      }
      ssl_->set_verify_mode(options_.verify_peer ? asio::ssl::verify_peer : asio::ssl::verify_none);
      // Thousands of mostly idle connections: let OpenSSL free its record buffers between
      // records (Asio's engine keeps its own ~17 KiB in and out buffers per stream regardless).
      SSL_CTX_set_mode(ssl_->native_handle(), SSL_MODE_RELEASE_BUFFERS);
    }
    return Status::Ok();
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
        conn->tls = std::make_unique<asio::ssl::stream<tcp::socket&>>(conn->socket, *ssl_);
        SSL_set_tlsext_host_name(conn->tls->native_handle(), options_.host.c_str());
        conn->tls->async_handshake(asio::ssl::stream_base::client,
                                   [this, d, conn](const asio::error_code& hec) {
                                     if (stopped_ || slots_[d].conn != conn || !conn->open) {
                                       return;
                                     }
                                     if (hec) {
                                       CloseConn(slots_[d]);
                                       fleet_->OnDisconnected(d);
                                       return;
                                     }
                                     Established(d, conn);
                                   });
      } else {
        Established(d, conn);
      }
    });
  }

  void Established(std::uint32_t d, const std::shared_ptr<Conn>& conn) {
    Slot& s = slots_[d];
    if (!s.rbuf) s.rbuf.reset(new std::uint8_t[options_.read_buffer_bytes]);
    fleet_->OnConnected(d);
    if (s.conn == conn && conn->open) Read(d, conn);
  }

  void Read(std::uint32_t d, const std::shared_ptr<Conn>& conn) {
    Slot& s = slots_[d];
    auto handler = [this, d, conn](const asio::error_code& ec, std::size_t n) {
      Slot& slot = slots_[d];
      if (stopped_ || slot.conn != conn || !conn->open) return;
      if (ec) {
        CloseConn(slot);
        fleet_->OnDisconnected(d);
        return;
      }
      fleet_->OnBytes(d, slot.rbuf.get(), n);
      if (slot.conn == conn && conn->open) Read(d, conn);
    };
    auto buf = asio::buffer(s.rbuf.get(), options_.read_buffer_bytes);
    if (conn->tls) {
      conn->tls->async_read_some(buf, handler);
    } else {
      conn->socket.async_read_some(buf, handler);
    }
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
    if (conn->tls) {
      asio::async_write(*conn->tls, asio::buffer(conn->flight), handler);
    } else {
      asio::async_write(conn->socket, asio::buffer(conn->flight), handler);
    }
  }

  void CloseConn(Slot& s) {
    if (!s.conn) return;
    s.conn->open = false;
    asio::error_code ignored;
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
    std::function<void()> watch = [&] {
      flag_timer.expires_after(std::chrono::milliseconds(100));
      flag_timer.async_wait([&](const asio::error_code& ec) {
        if (ec || stopped_) return;
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
  std::unique_ptr<asio::ssl::context> ssl_;
  Fleet* fleet_ = nullptr;
  std::vector<Slot> slots_;
  bool stopped_ = false;
};

AsioBackend::AsioBackend(AsioOptions options)
    : impl_(std::make_unique<Impl>(*this, std::move(options))) {}
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
