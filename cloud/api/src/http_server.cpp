#include "outpost/cloud/api/http_server.h"

#include <spdlog/spdlog.h>

#include <asio.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "outpost/cloud/api/work_pool.h"
#include "outpost/http/server.h"

namespace outpost::cloud::api {
namespace {

using SteadyClock = std::chrono::steady_clock;

// One request on its way through the pool. Shared because std::function needs a copyable task
// and the Responder is move-only.
struct Job {
  http::Request request;
  http::Responder responder;
  SteadyClock::time_point received;
};

ServiceRequest ToService(const http::Request& r) {
  ServiceRequest s;
  s.method = r.method;
  s.path = r.path;
  s.params = r.params;
  s.headers = r.headers;
  s.body = r.body;
  return s;
}

http::Response ToHttp(ServiceResponse s) {
  http::Response r;
  r.status = s.status;
  r.content_type = std::move(s.content_type);
  r.body = std::move(s.body);
  r.headers = std::move(s.headers);
  return r;
}

void LogAccess(const http::AccessLogEntry& e) {
  spdlog::info("http {} \"{} {}\" {} in {} B out {} B {:.1f} ms", e.remote,
               e.method.empty() ? "-" : e.method, e.target.empty() ? "-" : e.target, e.status,
               e.bytes_received, e.bytes_sent, e.seconds * 1000);
}

}  // namespace

struct HttpServer::Impl {
  Service& service;
  HttpServerOptions options;
  WorkPool pool;
  std::vector<std::unique_ptr<asio::io_context>> loops;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::vector<std::thread> threads;
  std::unique_ptr<http::Server> server;

  std::mutex mu;
  std::condition_variable cv;
  bool stop_requested = false;  // guarded by mu

  Impl(Service& s, HttpServerOptions o)
      : service(s),
        options(std::move(o)),
        pool(WorkPoolOptions{options.db_threads, options.db_queue}) {}

  // On a loop thread: hand the request to the pool, or refuse at once when it is full.
  void OnRequest(http::Request request, http::Responder responder) {
    auto job =
        std::make_shared<Job>(Job{std::move(request), std::move(responder), SteadyClock::now()});
    if (pool.Submit([this, job] { Serve(*job); })) return;
    http::Response r =
        http::Problem(503, "overloaded",
                      std::to_string(options.db_queue) +
                          " requests already wait for the database (--db-queue); retry later");
    r.headers.emplace_back("Retry-After", std::to_string(options.retry_after_s));
    Observe(job->request.path, r.status, job->received);
    job->responder.Send(std::move(r));
  }

  // On a pool thread.
  void Serve(Job& job) {
    ServiceResponse out = service.Handle(ToService(job.request));
    // Counted before the answer goes out, so a client that has its answer sees it counted.
    Observe(job.request.path, out.status, job.received);
    job.responder.Send(ToHttp(std::move(out)));
  }

  void Observe(const std::string& path, int status, SteadyClock::time_point since) {
    const double seconds = std::chrono::duration<double>(SteadyClock::now() - since).count();
    service.metrics().ObserveRequest(EndpointLabel(path), status, seconds);
  }

  void StopLoops() {
    guards.clear();
    for (auto& l : loops) l->stop();
    for (auto& t : threads) {
      if (t.joinable()) t.join();
    }
    threads.clear();
  }
};

HttpServer::HttpServer(Service& service, HttpServerOptions options)
    : impl_(std::make_unique<Impl>(service, std::move(options))) {
  // Set before any request can run and cleared after the last one (the destructor).
  service.SetMetricsAppendix([this] { return RenderMetrics(); });
}

HttpServer::~HttpServer() {
  if (impl_->server) impl_->server->Stop();
  impl_->pool.Stop();
  impl_->StopLoops();
  impl_->service.SetMetricsAppendix(nullptr);
}

Result<int> HttpServer::Bind() {
  Impl& s = *impl_;
  const HttpServerOptions& o = s.options;
  if (s.server) return FailedPrecondition("http server: already bound");
  if (o.port < 0 || o.port > 65535) return InvalidArgument("port out of range");
  http::ServerOptions so;
  so.host = o.host;
  so.port = static_cast<std::uint16_t>(o.port);
  so.limits.max_body_bytes = o.max_body_bytes;
  so.max_connections = o.max_connections;
  so.header_timeout_ms = o.header_timeout_ms;
  so.body_timeout_ms = o.body_timeout_ms;
  so.idle_timeout_ms = o.idle_timeout_ms;
  so.tls_cert_file = o.tls_cert_file;
  so.tls_key_file = o.tls_key_file;
  so.access_log = LogAccess;

  const int n = o.http_threads < 1 ? 1 : o.http_threads;
  std::vector<asio::io_context*> raw;
  for (int i = 0; i < n; ++i) {
    s.loops.push_back(std::make_unique<asio::io_context>(1));
    s.guards.push_back(asio::make_work_guard(*s.loops.back()));
    raw.push_back(s.loops.back().get());
  }
  for (auto& l : s.loops) {
    asio::io_context* loop = l.get();
    s.threads.emplace_back([loop] {
      for (;;) {
        try {
          loop->run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("http loop: {}", e.what());  // nothing should throw; keep serving
        }
      }
    });
  }
  Impl* impl = impl_.get();
  s.server = std::make_unique<http::Server>(std::move(raw), std::move(so),
                                            [impl](http::Request r, http::Responder resp) {
                                              impl->OnRequest(std::move(r), std::move(resp));
                                            });
  Result<std::uint16_t> port = s.server->Start();
  if (!port.ok()) {
    s.server.reset();
    s.StopLoops();
    return port.status();
  }
  return static_cast<int>(*port);
}

Status HttpServer::Run() {
  Impl& s = *impl_;
  if (!s.server) return FailedPrecondition("http server: Run() before Bind()");
  {
    std::unique_lock<std::mutex> lock(s.mu);
    s.cv.wait(lock, [&] { return s.stop_requested; });
  }
  // Idle connections close now; requests already with the pool finish, and their answers go
  // out, within drain_timeout_ms; then every connection closes.
  s.server->Stop(std::chrono::milliseconds(s.options.drain_timeout_ms));
  s.pool.Stop();
  s.StopLoops();
  return Status::Ok();
}

void HttpServer::Stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stop_requested = true;
  }
  impl_->cv.notify_all();
}

std::string HttpServer::RenderMetrics() const {
  std::string out;
  if (impl_->server) out += impl_->server->stats().RenderPrometheus("outpost_cloud_http_server_");
  out += impl_->pool.RenderPrometheus("outpost_cloud_db_pool_");
  return out;
}

}  // namespace outpost::cloud::api
