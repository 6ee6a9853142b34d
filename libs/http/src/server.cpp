// Server, Responder, Stream and ServerStats (server.h). One ServerConnection object per socket,
// owned by its pending operations (reads, writes, timers: each holds a shared_ptr to it) and living
// on one loop; Responders and Streams hold only weak_ptrs and post to that loop. Connections
// hold the shared ServerCore (not the Server), so destroying the Server while loops run is
// safe, and Stop() waits until the last ServerConnection is gone.
#include "outpost/http/server.h"

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "outpost/base/file.h"

namespace outpost::http {
namespace {

using asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

// The read buffer between requests and under a stream (enough to see a disconnect or a small
// request), and while a request is being read.
constexpr std::size_t kIdleReadBytes = 512;
constexpr std::size_t kRequestReadBytes = 16 * 1024;
// Bytes of the next (pipelined) request held while one is handled; reading pauses beyond.
constexpr std::size_t kMaxHeldInput = 64 * 1024;
// After an answer that closes the connection: how long and how much the server keeps reading
// (and discarding) so that the client sees the answer instead of a reset.
constexpr std::int64_t kLingerMs = 2000;
constexpr std::size_t kLingerBytes = 256 * 1024;
// A 100 Continue answers "Expect: 100-continue" before the body is read.
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

std::string Endpoint(const tcp::socket& s) {
  asio::error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (ec) return "?";
  std::string addr = ep.address().to_string();
  if (ep.address().is_v6()) addr = "[" + addr + "]";
  return addr + ":" + std::to_string(ep.port());
}

// A header a handler set is written only if it cannot split the response.
bool SafeHeader(const std::string& name, const std::string& value) {
  if (name.empty()) return false;
  for (char c : name) {
    if (c == ':' || c == '\r' || c == '\n' || c == ' ') return false;
  }
  for (char c : value) {
    if (c == '\r' || c == '\n') return false;
  }
  return true;
}

std::string Hex(std::size_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%zx", n);
  return buf;
}

}  // namespace

class ServerConnection;
class ServerStream;

// What the Server shares with its connections (Server::Impl is private to the class).
struct ServerCore {
  std::vector<asio::io_context*> loops;
  ServerOptions options;
  Handler handler;
  ServerStats stats;
  std::unique_ptr<asio::ssl::context> tls;
  std::unique_ptr<tcp::acceptor> acceptor;           // used on loops[0]
  std::unique_ptr<asio::steady_timer> accept_retry;  // after an accept error (e.g. EMFILE)
  std::size_t next_loop = 0;                         // loops[0] only

  std::mutex mu;
  std::condition_variable cv;
  bool started = false;         // guarded by mu
  bool stopped = false;         // guarded by mu
  bool accept_pending = false;  // guarded by mu: an accept or its retry timer is out
  std::size_t live = 0;         // guarded by mu: ServerConnection objects alive
  std::unordered_map<ServerConnection*, std::weak_ptr<ServerConnection>>
      connections;  // guarded by mu
};

struct Server::Impl : ServerCore {};

struct Responder::State {
  std::weak_ptr<ServerConnection> conn;
  std::uint64_t seq = 0;
  std::size_t max_stream_buffer = 0;
  std::atomic<bool> answered{false};
};

class ServerStream final : public Stream {
 public:
  ServerStream(std::weak_ptr<ServerConnection> conn, std::size_t limit)
      : conn_(std::move(conn)), limit_(limit) {}
  bool Write(std::string data) override;
  void Close() override;
  void Abort() override;
  bool closed() const override { return closed_.load(); }
  void WhenDrained(std::size_t bytes, std::function<void()> f) override;

  void MarkClosed() {
    closed_.store(true);
    TakeWaiter(true)();
  }
  void Written(std::size_t n) {
    queued_.fetch_sub(n);
    TakeWaiter(false)();
  }

 private:
  // The waiter if it is due (always when `ending`), else an empty function; under mu_, so that
  // a drain between WhenDrained's check and its storing the waiter is not missed.
  std::function<void()> TakeWaiter(bool ending) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!waiter_ || (!ending && queued_.load() > drained_at_)) return [] {};
    return std::exchange(waiter_, nullptr);
  }

  std::weak_ptr<ServerConnection> conn_;
  std::size_t limit_;
  std::atomic<bool> closed_{false};
  std::atomic<std::size_t> queued_{0};  // posted, not yet written
  std::mutex mu_;
  std::function<void()> waiter_;  // WhenDrained's
  std::size_t drained_at_ = 0;
};

class ServerConnection : public std::enable_shared_from_this<ServerConnection> {
 public:
  ServerConnection(std::shared_ptr<ServerCore> s, tcp::socket socket, bool reject)
      : s_(std::move(s)),
        parser_(s_->options.limits),
        read_timer_(socket.get_executor()),
        write_timer_(socket.get_executor()),
        reject_(reject) {
    remote_ = Endpoint(socket);
    if (s_->tls) {
      tls_ = std::make_unique<asio::ssl::stream<tcp::socket>>(std::move(socket), *s_->tls);
    } else {
      plain_ = std::make_unique<tcp::socket>(std::move(socket));
    }
    if (!reject_) s_->stats.connections_open++;
    std::lock_guard<std::mutex> lock(s_->mu);
    s_->live++;
  }

  ~ServerConnection() {
    if (!reject_) s_->stats.connections_open--;
    std::lock_guard<std::mutex> lock(s_->mu);
    s_->connections.erase(this);
    s_->live--;
    s_->cv.notify_all();
  }

  asio::any_io_executor executor() { return read_timer_.get_executor(); }

  void Start() {
    if (tls_) {
      phase_ = Phase::kHandshake;
      ArmRead(TimerKind::kHandshake, s_->options.header_timeout_ms);
      auto self = shared_from_this();
      tls_->async_handshake(asio::ssl::stream_base::server, [self](const asio::error_code& ec) {
        if (self->closed_) return;
        self->CancelRead();
        if (ec) {
          self->s_->stats.tls_handshake_failures++;
          return self->Close();
        }
        self->Begin();
      });
      return;
    }
    Begin();
  }

  // Stop(grace): an answer being computed or written still goes out (then the connection
  // closes); everything else ends now.
  void Drain() {
    stopping_ = true;
    if (phase_ == Phase::kHandling || phase_ == Phase::kWriting) return;
    Close();
  }

  // Stop(): everything ends now.
  void Shutdown() {
    stopping_ = true;
    Close();
  }

  void OnResponse(std::uint64_t seq, Response r) {
    if (closed_ || seq != seq_ || phase_ != Phase::kHandling) return;
    if (stopping_) keep_alive_ = false;
    phase_ = Phase::kWriting;
    QueueResponse(std::move(r));
  }

  void OnStreamStart(std::uint64_t seq, Response head, std::shared_ptr<ServerStream> stream) {
    if (closed_ || seq != seq_ || phase_ != Phase::kHandling) return stream->MarkClosed();
    stream_ = std::move(stream);
    s_->stats.streams_open++;
    phase_ = Phase::kStreaming;
    chunked_ = version_minor_ >= 1;
    if (!chunked_) keep_alive_ = false;  // HTTP/1.0: the body ends with the connection
    CountStatus(head.status);
    std::string h = StatusLine(head.status);
    if (!head.content_type.empty()) h += "Content-Type: " + head.content_type + "\r\n";
    if (chunked_) h += "Transfer-Encoding: chunked\r\n";
    h += keep_alive_ ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
    AppendHeaders(h, head.headers);
    h += "\r\n";
    out_.push_back({std::move(h), 0});
    if (!head.body.empty()) Frame(std::move(head.body), 0);
    Flush();
  }

  void OnStreamWrite(std::string data) {
    if (closed_ || phase_ != Phase::kStreaming || stream_closing_) return;
    std::size_t n = data.size();
    Frame(std::move(data), n);
    Flush();
  }

  void OnStreamClose() {
    if (closed_ || phase_ != Phase::kStreaming || stream_closing_) return;
    stream_closing_ = true;
    if (chunked_) out_.push_back({"0\r\n\r\n", 0});
    if (out_.empty() && !writing_) return FinishResponse();
    Flush();
  }

  void OnStreamDropSlow() {
    if (closed_ || phase_ != Phase::kStreaming) return;
    s_->stats.streams_dropped_slow++;
    Reset();
  }

  void OnStreamAbort() {
    if (closed_ || phase_ != Phase::kStreaming) return;
    Reset();
  }

 private:
  enum class Phase { kHandshake, kReading, kHandling, kWriting, kStreaming, kLinger, kClosed };
  enum class TimerKind { kNone, kHandshake, kHeader, kBody, kIdle, kLinger };

  struct Out {
    std::string bytes;
    std::size_t stream_bytes;  // of a Stream::Write, for its buffer bound
  };

  template <typename F>
  void WithStream(F&& f) {
    if (tls_) {
      f(*tls_);
    } else {
      f(*plain_);
    }
  }
  tcp::socket& Socket() { return tls_ ? tls_->next_layer() : *plain_; }

  // A reset, not a FIN queued behind what the peer did not read: the kernel frees the socket's
  // buffers now instead of holding them for a peer that may never read again.
  void Reset() {
    asio::error_code ec;
    Socket().set_option(asio::socket_base::linger(true, 0), ec);
    Close();
  }

  void Begin() {
    if (reject_) {
      s_->stats.connections_rejected_full++;
      Response p = Problem(503, "server_full",
                           "the server has reached its maximum of " +
                               std::to_string(s_->options.max_connections) +
                               " open connections; retry later");
      p.headers.emplace_back("Retry-After", "1");
      return Refuse(std::move(p));
    }
    EnterReading();
  }

  // --- reading ---------------------------------------------------------------------------------

  void EnterReading() {
    phase_ = Phase::kReading;
    request_started_ = false;
    body_timer_armed_ = false;
    continue_sent_ = false;
    request_bytes_ = 0;
    sent_ = 0;
    method_.clear();
    target_.clear();
    if (in_.empty()) {
      if (in_.capacity() > kIdleReadBytes) in_ = std::string();
      // A fresh connection gets the header deadline for its first request; later ones the idle
      // timeout between requests.
      if (served_) {
        ArmRead(TimerKind::kIdle, s_->options.idle_timeout_ms);
      } else {
        ArmRead(TimerKind::kHeader, s_->options.header_timeout_ms);
      }
    }
    ProcessInput();
  }

  void ProcessInput() {
    if (phase_ != Phase::kReading || closed_) return;
    if (in_.empty()) return ReadMore();
    if (!request_started_) {
      request_started_ = true;
      request_start_ = SteadyClock::now();
      if (timer_kind_ != TimerKind::kHeader) {
        ArmRead(TimerKind::kHeader, s_->options.header_timeout_ms);
      }
    }
    std::size_t used = parser_.Feed(in_);
    request_bytes_ += used;
    in_.erase(0, used);
    switch (parser_.state()) {
      case RequestParser::State::kNeedMore:
        if (parser_.header_done() && !body_timer_armed_) {
          body_timer_armed_ = true;
          ArmRead(TimerKind::kBody, s_->options.body_timeout_ms);
          MaybeContinue();
        }
        return ReadMore();
      case RequestParser::State::kError:
        return RefuseParse();
      case RequestParser::State::kComplete:
        return Dispatch();
    }
  }

  void MaybeContinue() {
    const Request& r = parser_.request();
    auto it = r.headers.find("expect");
    if (it == r.headers.end() || r.version_minor < 1 || continue_sent_) return;
    std::string v = it->second;
    for (char& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (v != "100-continue") return;
    continue_sent_ = true;
    out_.push_back({std::string(kContinue), 0});
    Flush();
  }

  void ReadMore() {
    if (reading_ || closed_) return;
    if (phase_ != Phase::kReading && phase_ != Phase::kLinger && in_.size() >= kMaxHeldInput) {
      return;  // resumed when this request is done
    }
    std::size_t size =
        phase_ == Phase::kReading && request_started_ ? kRequestReadBytes : kIdleReadBytes;
    if (rbuf_.size() != size) std::vector<char>(size).swap(rbuf_);
    reading_ = true;
    auto self = shared_from_this();
    WithStream([&](auto& stream) {
      stream.async_read_some(asio::buffer(rbuf_), [self](const asio::error_code& ec,
                                                         std::size_t n) { self->OnRead(ec, n); });
    });
  }

  void OnRead(const asio::error_code& ec, std::size_t n) {
    reading_ = false;
    if (closed_) return;
    if (ec) {
      if (ec == asio::error::eof && (phase_ == Phase::kHandling || phase_ == Phase::kWriting)) {
        peer_eof_ = true;  // half-closed: the answer still goes out, then the connection closes
        return;
      }
      if (phase_ == Phase::kReading && request_started_ && ec == asio::error::eof) {
        // The client gave up in the middle of a request.
      }
      return Close();  // gone (a stream ends here)
    }
    if (phase_ == Phase::kLinger) {
      lingered_ += n;
      if (lingered_ > kLingerBytes) return Close();
      return ReadMore();
    }
    in_.append(rbuf_.data(), n);
    if (phase_ == Phase::kReading) return ProcessInput();
    ReadMore();  // holds pipelined bytes (bounded) and watches for a disconnect
  }

  void Dispatch() {
    CancelRead();
    Request req = parser_.Take();
    req.remote = remote_;
    method_ = req.method;
    target_ = req.target;
    keep_alive_ = req.keep_alive && !stopping_;
    version_minor_ = req.version_minor;
    head_request_ = req.method == "HEAD";
    if (req.headers.erase("range") > 0) s_->stats.ranges_ignored++;
    s_->stats.requests++;
    served_ = true;
    phase_ = Phase::kHandling;
    auto state = std::make_shared<Responder::State>();
    state->conn = weak_from_this();
    state->seq = ++seq_;
    state->max_stream_buffer = s_->options.max_stream_buffer_bytes;
    ReadMore();  // see a disconnect while the handler works
    try {
      s_->handler(std::move(req), Responder(std::move(state)));
    } catch (...) {
      // The Responder was destroyed unanswered (500), or had answered; nothing escapes the loop.
    }
  }

  void RefuseParse() {
    ParseError e = parser_.error();
    s_->stats.refused[static_cast<int>(e)]++;
    Refuse(Problem(ParseErrorStatus(e), ParseErrorName(e), parser_.error_detail()));
  }

  // An answer of the server's own, then close.
  void Refuse(Response r) {
    CancelRead();
    keep_alive_ = false;
    phase_ = Phase::kWriting;
    QueueResponse(std::move(r));
  }

  // --- writing ---------------------------------------------------------------------------------

  static std::string StatusLine(int status) {
    return "HTTP/1.1 " + std::to_string(status) + " " + ReasonPhrase(status) + "\r\n";
  }
  static void AppendHeaders(std::string& h,
                            const std::vector<std::pair<std::string, std::string>>& headers) {
    for (const auto& [name, value] : headers) {
      if (SafeHeader(name, value)) h += name + ": " + value + "\r\n";
    }
  }

  // Counted when queued, so a client that has read its answer sees it in the stats.
  void CountStatus(int status) {
    status_ = status;
    int cls = status / 100;
    if (cls >= 1 && cls <= 5) s_->stats.responses_by_class[cls]++;
  }

  void QueueResponse(Response r) {
    CountStatus(r.status);
    bool no_body = r.status == 204 || r.status == 304 || (r.status >= 100 && r.status < 200);
    std::string h = StatusLine(r.status);
    if (!no_body) {
      if (!r.content_type.empty()) h += "Content-Type: " + r.content_type + "\r\n";
      h += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
    }
    h += keep_alive_ ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
    AppendHeaders(h, r.headers);
    h += "\r\n";
    out_.push_back({std::move(h), 0});
    if (!no_body && !head_request_ && !r.body.empty()) out_.push_back({std::move(r.body), 0});
    Flush();
  }

  void Frame(std::string data, std::size_t stream_bytes) {
    if (chunked_) {
      out_.push_back({Hex(data.size()) + "\r\n", 0});
      out_.push_back({std::move(data), stream_bytes});
      out_.push_back({"\r\n", 0});
    } else {
      out_.push_back({std::move(data), stream_bytes});
    }
  }

  void Flush() {
    if (writing_ || out_.empty() || closed_) return;
    writing_ = true;
    batch_.clear();
    while (!out_.empty() && batch_.size() < 64) {
      batch_.push_back(std::move(out_.front()));
      out_.pop_front();
    }
    buffers_.clear();
    for (const auto& o : batch_) buffers_.push_back(asio::buffer(o.bytes));
    ArmWrite();
    auto self = shared_from_this();
    WithStream([&](auto& stream) {
      asio::async_write(stream, buffers_, [self](const asio::error_code& ec, std::size_t n) {
        self->OnWritten(ec, n);
      });
    });
  }

  void OnWritten(const asio::error_code& ec, std::size_t n) {
    writing_ = false;
    ++write_gen_;
    write_timer_.cancel();
    if (closed_) return;
    sent_ += n;
    if (ec) return Close();
    if (stream_) {
      std::size_t s = 0;
      for (const auto& o : batch_) s += o.stream_bytes;
      stream_->Written(s);
    }
    batch_.clear();
    if (!out_.empty()) return Flush();
    if (phase_ == Phase::kWriting || (phase_ == Phase::kStreaming && stream_closing_)) {
      FinishResponse();
    }
  }

  void FinishResponse() {
    LogAccess();
    if (stream_) EndStream();
    if (!keep_alive_ || peer_eof_ || stopping_) return Linger();
    EnterReading();
  }

  void EndStream() {
    stream_->MarkClosed();
    stream_.reset();
    s_->stats.streams_open--;
    stream_closing_ = false;
  }

  void LogAccess() {
    if (status_ == 0) return;
    if (s_->options.access_log) {
      AccessLogEntry e;
      e.remote = remote_;
      e.method = method_;
      e.target = target_;
      e.status = status_;
      e.bytes_received = request_bytes_;
      e.bytes_sent = sent_;
      auto start = request_started_ ? request_start_ : SteadyClock::now();
      e.seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
      try {
        s_->options.access_log(e);
      } catch (...) {
      }
    }
    status_ = 0;
  }

  // Closes the sending side, then reads (and drops) what the client still sends for a while.
  void Linger() {
    phase_ = Phase::kLinger;
    asio::error_code ec;
    Socket().shutdown(tcp::socket::shutdown_send, ec);
    if (peer_eof_ || ec) return Close();
    in_ = std::string();
    ArmRead(TimerKind::kLinger, kLingerMs);
    ReadMore();
  }

  void Close() {
    if (closed_) return;
    if (stream_) {
      LogAccess();
      EndStream();
    }
    closed_ = true;
    phase_ = Phase::kClosed;
    CancelRead();
    ++write_gen_;
    write_timer_.cancel();
    asio::error_code ec;
    Socket().shutdown(tcp::socket::shutdown_both, ec);
    Socket().close(ec);
  }

  // --- timers ----------------------------------------------------------------------------------

  void ArmRead(TimerKind kind, std::int64_t ms) {
    timer_kind_ = kind;
    std::uint64_t g = ++read_gen_;
    read_timer_.expires_after(std::chrono::milliseconds(ms));
    auto self = shared_from_this();
    read_timer_.async_wait([self, g](const asio::error_code& ec) {
      if (ec || g != self->read_gen_ || self->closed_) return;
      self->OnReadTimeout();
    });
  }
  void CancelRead() {
    timer_kind_ = TimerKind::kNone;
    ++read_gen_;
    read_timer_.cancel();
  }

  void OnReadTimeout() {
    TimerKind kind = timer_kind_;
    timer_kind_ = TimerKind::kNone;
    switch (kind) {
      case TimerKind::kNone:
        return;
      case TimerKind::kHandshake:
        s_->stats.tls_handshake_failures++;
        return Close();
      case TimerKind::kIdle:
        s_->stats.idle_timeouts++;
        return Close();
      case TimerKind::kLinger:
        return Close();
      case TimerKind::kHeader:
        s_->stats.header_timeouts++;
        if (!request_started_) return Close();  // not one byte: nobody to answer
        return Refuse(Problem(408, "header_timeout",
                              "request header not complete within " +
                                  std::to_string(s_->options.header_timeout_ms) + " ms"));
      case TimerKind::kBody:
        s_->stats.body_timeouts++;
        return Refuse(Problem(408, "body_timeout",
                              "request body not complete within " +
                                  std::to_string(s_->options.body_timeout_ms) + " ms"));
    }
  }

  void ArmWrite() {
    std::uint64_t g = ++write_gen_;
    write_timer_.expires_after(std::chrono::milliseconds(s_->options.write_timeout_ms));
    auto self = shared_from_this();
    write_timer_.async_wait([self, g](const asio::error_code& ec) {
      if (ec || g != self->write_gen_ || self->closed_) return;
      self->s_->stats.write_timeouts++;
      self->Close();
    });
  }

  std::shared_ptr<ServerCore> s_;
  std::unique_ptr<tcp::socket> plain_;
  std::unique_ptr<asio::ssl::stream<tcp::socket>> tls_;
  RequestParser parser_;
  asio::steady_timer read_timer_;   // handshake, header, body, idle, linger
  asio::steady_timer write_timer_;  // a write in progress
  std::uint64_t read_gen_ = 0;
  std::uint64_t write_gen_ = 0;
  TimerKind timer_kind_ = TimerKind::kNone;
  std::string remote_;
  bool reject_;

  Phase phase_ = Phase::kReading;
  bool closed_ = false;
  bool stopping_ = false;
  bool reading_ = false;
  bool writing_ = false;
  bool peer_eof_ = false;
  bool served_ = false;  // a request was handled on this connection
  std::vector<char> rbuf_;
  std::string in_;  // received, not yet parsed
  std::size_t lingered_ = 0;

  // The current request.
  bool request_started_ = false;
  bool body_timer_armed_ = false;
  bool continue_sent_ = false;
  SteadyClock::time_point request_start_;
  std::uint64_t request_bytes_ = 0;
  std::uint64_t sent_ = 0;
  std::uint64_t seq_ = 0;
  std::string method_, target_;
  bool keep_alive_ = true;
  bool head_request_ = false;
  int version_minor_ = 1;
  int status_ = 0;

  // Output.
  std::deque<Out> out_;
  std::vector<Out> batch_;
  std::vector<asio::const_buffer> buffers_;
  std::shared_ptr<ServerStream> stream_;
  bool chunked_ = false;
  bool stream_closing_ = false;
};

// --- Stream, Responder ---------------------------------------------------------------------------

bool ServerStream::Write(std::string data) {
  if (closed_.load()) return false;
  if (data.empty()) return true;  // an empty chunk would end the body
  std::size_t n = data.size();
  if (queued_.fetch_add(n) + n > limit_) {
    if (!closed_.exchange(true)) {
      if (auto c = conn_.lock()) asio::post(c->executor(), [c] { c->OnStreamDropSlow(); });
    }
    return false;
  }
  auto c = conn_.lock();
  if (!c) {
    closed_.store(true);
    return false;
  }
  asio::post(c->executor(), [c, d = std::move(data)]() mutable { c->OnStreamWrite(std::move(d)); });
  return true;
}

void ServerStream::Close() {
  if (closed_.exchange(true)) return;
  if (auto c = conn_.lock()) asio::post(c->executor(), [c] { c->OnStreamClose(); });
}

void ServerStream::Abort() {
  if (closed_.exchange(true)) return;
  if (auto c = conn_.lock()) asio::post(c->executor(), [c] { c->OnStreamAbort(); });
}

void ServerStream::WhenDrained(std::size_t bytes, std::function<void()> f) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!closed_.load() && !conn_.expired() && queued_.load() > bytes) {
      drained_at_ = bytes;
      waiter_ = std::move(f);
      return;
    }
  }
  f();
}

Responder::Responder(std::shared_ptr<State> state) : state_(std::move(state)) {}
Responder::Responder(Responder&&) noexcept = default;
Responder& Responder::operator=(Responder&& other) noexcept {
  if (this != &other) {
    Responder dying(std::move(*this));  // answers 500 if it had not answered
    state_ = std::move(other.state_);
  }
  return *this;
}

Responder::~Responder() {
  if (state_ && !state_->answered.exchange(true)) {
    if (auto c = state_->conn.lock()) {
      std::uint64_t seq = state_->seq;
      asio::post(c->executor(), [c, seq] {
        c->OnResponse(seq, Problem(500, "no_response", "the handler did not answer"));
      });
    }
  }
}

void Responder::Send(Response response) {
  if (!state_ || state_->answered.exchange(true)) return;
  if (auto c = state_->conn.lock()) {
    std::uint64_t seq = state_->seq;
    // On the connection's loop (a handler answering at once) the write starts now; from another
    // thread it is posted there.
    asio::dispatch(c->executor(), [c, seq, r = std::move(response)]() mutable {
      c->OnResponse(seq, std::move(r));
    });
  }
}

std::shared_ptr<Stream> Responder::StartStream(Response head) {
  if (!state_) return std::make_shared<ServerStream>(std::weak_ptr<ServerConnection>(), 0);
  auto stream = std::make_shared<ServerStream>(state_->conn, state_->max_stream_buffer);
  auto c = state_->conn.lock();
  if (state_->answered.exchange(true) || !c) {
    stream->MarkClosed();
    return stream;
  }
  std::uint64_t seq = state_->seq;
  asio::post(c->executor(), [c, seq, h = std::move(head), stream]() mutable {
    c->OnStreamStart(seq, std::move(h), stream);
  });
  return stream;
}

// --- Server ------------------------------------------------------------------------------------

namespace {

void Accept(const std::shared_ptr<ServerCore>& s);

void AcceptDone(const std::shared_ptr<ServerCore>& s) {
  std::lock_guard<std::mutex> lock(s->mu);
  s->accept_pending = false;
  s->cv.notify_all();
}

void Accept(const std::shared_ptr<ServerCore>& s) {
  {
    std::lock_guard<std::mutex> lock(s->mu);
    if (s->stopped || !s->acceptor->is_open()) {
      s->accept_pending = false;
      s->cv.notify_all();
      return;
    }
  }
  asio::io_context& loop = *s->loops[s->next_loop++ % s->loops.size()];
  s->acceptor->async_accept(loop, [s](const asio::error_code& ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !s->acceptor->is_open()) return AcceptDone(s);
    if (ec) {
      // Out of descriptors or similar: wait a little instead of spinning.
      s->accept_retry->expires_after(std::chrono::milliseconds(50));
      s->accept_retry->async_wait([s](const asio::error_code& wec) {
        if (wec) return AcceptDone(s);
        Accept(s);
      });
      return;
    }
    bool reject =
        s->stats.connections_open.load() >= static_cast<std::int64_t>(s->options.max_connections);
    if (!reject) s->stats.connections_accepted++;
    auto conn = std::make_shared<ServerConnection>(s, std::move(socket), reject);
    bool stopped;
    {
      std::lock_guard<std::mutex> lock(s->mu);
      stopped = s->stopped;
      if (!stopped) s->connections.emplace(conn.get(), conn);
    }
    if (!stopped) asio::post(conn->executor(), [conn] { conn->Start(); });
    Accept(s);
  });
}

}  // namespace

Server::Server(std::vector<asio::io_context*> loops, ServerOptions options, Handler handler)
    : impl_(std::make_shared<Impl>()) {
  impl_->loops = std::move(loops);
  impl_->options = std::move(options);
  impl_->handler = std::move(handler);
}

Server::~Server() { Stop(); }

const ServerStats& Server::stats() const { return impl_->stats; }

Result<std::uint16_t> Server::Start() {
  Impl& s = *impl_;
  const ServerOptions& o = s.options;
  if (s.loops.empty() || s.loops[0] == nullptr) return InvalidArgument("http server: no loops");
  for (auto* l : s.loops) {
    if (l == nullptr) return InvalidArgument("http server: a loop is null");
  }
  if (!s.handler) return InvalidArgument("http server: no handler");
  if (o.max_connections == 0) return InvalidArgument("http server: max_connections is 0");
  if (o.header_timeout_ms <= 0 || o.body_timeout_ms <= 0 || o.idle_timeout_ms <= 0 ||
      o.write_timeout_ms <= 0) {
    return InvalidArgument("http server: timeouts must be positive");
  }
  const Limits& l = o.limits;
  if (l.max_request_line_bytes == 0 || l.max_header_line_bytes == 0 || l.max_header_count == 0 ||
      l.max_header_bytes == 0) {
    return InvalidArgument("http server: header limits must be positive");
  }
  if (o.max_stream_buffer_bytes == 0) {
    return InvalidArgument("http server: max_stream_buffer_bytes is 0");
  }
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    return InvalidArgument("http server: tls_cert_file and tls_key_file go together");
  }
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.started || s.stopped) return FailedPrecondition("http server: already started");
  }
  if (!o.tls_cert_file.empty()) {
    try {
      s.tls = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    } catch (const std::exception& e) {
      return Internal(std::string("TLS context: ") + e.what());
    }
    asio::error_code ec;
    s.tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                           asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                           asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use,
                       ec);
    // The bounded reader, not OpenSSL's file functions: a FIFO path fails, it does not hang.
    auto cert = ReadFile(o.tls_cert_file);
    if (!cert.ok()) return InvalidArgument("TLS cert file " + cert.status().message());
    s.tls->use_certificate_chain(asio::buffer(*cert), ec);
    if (ec) return InvalidArgument("TLS cert file " + o.tls_cert_file + ": " + ec.message());
    auto key = ReadFile(o.tls_key_file);
    if (!key.ok()) return InvalidArgument("TLS key file " + key.status().message());
    s.tls->use_private_key(asio::buffer(*key), asio::ssl::context::pem, ec);
    OPENSSL_cleanse(key->data(), key->size());
    if (ec) return InvalidArgument("TLS key file " + o.tls_key_file + ": " + ec.message());
    if (SSL_CTX_check_private_key(s.tls->native_handle()) != 1) {
      return InvalidArgument("TLS key file " + o.tls_key_file + " does not match the certificate");
    }
  }
  asio::error_code ec;
  auto address = asio::ip::make_address(o.host, ec);
  if (ec) return InvalidArgument("http server: bad host " + o.host + ": " + ec.message());
  tcp::endpoint ep(address, o.port);
  auto acceptor = std::make_unique<tcp::acceptor>(*s.loops[0]);
  std::string where = o.host + ":" + std::to_string(o.port);
  if (acceptor->open(ep.protocol(), ec)) {
    return Unavailable("http server: open " + where + ": " + ec.message());
  }
  acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
  if (acceptor->bind(ep, ec))
    return Unavailable("http server: bind " + where + ": " + ec.message());
  if (acceptor->listen(asio::socket_base::max_listen_connections, ec)) {
    return Unavailable("http server: listen " + where + ": " + ec.message());
  }
  std::uint16_t port = acceptor->local_endpoint(ec).port();
  s.acceptor = std::move(acceptor);
  s.accept_retry = std::make_unique<asio::steady_timer>(*s.loops[0]);
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.started = true;
    s.accept_pending = true;
  }
  auto self = impl_;
  asio::post(*s.loops[0], [self] { Accept(self); });
  return port;
}

void Server::Stop(std::chrono::milliseconds grace) {
  std::shared_ptr<Impl> s = impl_;
  auto open_connections = [&] {
    std::vector<std::shared_ptr<ServerConnection>> conns;
    for (auto& [ptr, weak] : s->connections) {
      if (auto c = weak.lock()) conns.push_back(std::move(c));
    }
    return conns;
  };
  std::vector<std::shared_ptr<ServerConnection>> conns;
  bool first;
  {
    std::lock_guard<std::mutex> lock(s->mu);
    first = !s->stopped;
    s->stopped = true;
    if (!s->started) return;
    if (first) conns = open_connections();
  }
  asio::post(*s->loops[0], [s] {
    asio::error_code ec;
    if (s->acceptor) s->acceptor->close(ec);
    if (s->accept_retry) s->accept_retry->cancel();
  });
  // On one of our own loops a wait could never end: what is posted runs after we return.
  bool on_own_loop = false;
  for (auto* l : s->loops) {
    if (l->get_executor().running_in_this_thread()) on_own_loop = true;
  }
  if (first && grace.count() > 0 && !on_own_loop) {
    for (auto& c : conns) asio::post(c->executor(), [c] { c->Drain(); });
    conns.clear();
    std::unique_lock<std::mutex> lock(s->mu);
    s->cv.wait_for(lock, grace, [&] { return s->live == 0; });
    conns = open_connections();
  }
  if (first) {
    for (auto& c : conns) asio::post(c->executor(), [c] { c->Shutdown(); });
  }
  conns.clear();
  if (on_own_loop) return;
  std::unique_lock<std::mutex> lock(s->mu);
  s->cv.wait(lock, [&] { return s->live == 0 && !s->accept_pending; });
}

// --- ServerStats -------------------------------------------------------------------------------

std::string ServerStats::RenderPrometheus(std::string_view prefix) const {
  std::string p(prefix);
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, auto value) {
    out += "# HELP " + p + name + " " + help + "\n";
    out += "# TYPE " + p + name + " " + type + "\n";
    out += p + name + " " + std::to_string(value) + "\n";
  };
  metric("connections_accepted_total", "counter", "Connections accepted.",
         connections_accepted.load());
  metric("connections_rejected_full_total", "counter",
         "Connections answered 503 at max_connections.", connections_rejected_full.load());
  metric("connections_open", "gauge", "Connections open.", connections_open.load());
  metric("requests_total", "counter", "Complete requests handed to a handler.", requests.load());
  out += "# HELP " + p + "responses_total Responses by status class.\n";
  out += "# TYPE " + p + "responses_total counter\n";
  for (int c = 1; c <= 5; ++c) {
    out += p + "responses_total{class=\"" + std::to_string(c) + "xx\"} " +
           std::to_string(responses_by_class[c].load()) + "\n";
  }
  out += "# HELP " + p + "requests_refused_total Requests refused by the parser, by reason.\n";
  out += "# TYPE " + p + "requests_refused_total counter\n";
  for (int e = 1; e < 10; ++e) {
    out += p + "requests_refused_total{reason=\"" + ParseErrorName(static_cast<ParseError>(e)) +
           "\"} " + std::to_string(refused[e].load()) + "\n";
  }
  metric("header_timeouts_total", "counter", "Requests whose header missed its deadline.",
         header_timeouts.load());
  metric("body_timeouts_total", "counter", "Requests whose body missed its deadline.",
         body_timeouts.load());
  metric("idle_timeouts_total", "counter", "Keep-alive connections closed idle.",
         idle_timeouts.load());
  metric("write_timeouts_total", "counter", "Connections closed on a stalled write.",
         write_timeouts.load());
  metric("tls_handshake_failures_total", "counter", "TLS handshakes failed or timed out.",
         tls_handshake_failures.load());
  metric("ranges_ignored_total", "counter", "Range headers ignored (whole answers sent).",
         ranges_ignored.load());
  metric("streams_open", "gauge", "Streaming responses open.", streams_open.load());
  metric("streams_dropped_slow_total", "counter",
         "Stream clients dropped over max_stream_buffer_bytes.", streams_dropped_slow.load());
  return out;
}

}  // namespace outpost::http
