#include "outpost/cloud/api/http_server.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <chrono>

namespace outpost::cloud::api {
namespace {

thread_local std::chrono::steady_clock::time_point request_start;

std::string Lower(const std::string& s) {
  std::string out = s;
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

const char* CodeForStatus(int status) {
  switch (status) {
    case 400:
      return "bad_request";
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 408:
      return "request_timeout";
    case 413:
      return "payload_too_large";
    case 414:
      return "uri_too_long";
    case 415:
      return "unsupported_media_type";
    case 416:
      return "range_not_satisfiable";
    case 503:
      return "unavailable";
    default:
      return status >= 500 ? "internal" : "bad_request";
  }
}

}  // namespace

struct HttpServer::Impl {
  Service& service;
  HttpServerOptions options;
  httplib::Server server;

  Impl(Service& s, HttpServerOptions o) : service(s), options(std::move(o)) {}

  void Dispatch(const httplib::Request& req, httplib::Response& res) {
    ServiceRequest r;
    r.method = req.method;
    r.path = req.path;
    for (const auto& [k, v] : req.params) r.params.emplace(k, v);  // first value wins
    for (const auto& [k, v] : req.headers) r.headers.emplace(Lower(k), v);
    r.body = req.body;
    ServiceResponse out = service.Handle(r);
    res.status = out.status;
    for (const auto& [k, v] : out.headers) res.set_header(k, v);
    res.set_content(std::move(out.body), out.content_type);
    // Recorded before the response is written, so a client that got its answer sees it counted.
    Observe(req.path, res.status);
  }

  void Observe(const std::string& path, int status) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - request_start).count();
    service.metrics().ObserveRequest(EndpointLabel(path), status, seconds);
  }
};

HttpServer::HttpServer(Service& service, HttpServerOptions options)
    : impl_(std::make_unique<Impl>(service, std::move(options))) {
  httplib::Server& s = impl_->server;
  Impl* impl = impl_.get();
  const int threads = std::max(1, impl->options.threads);
  s.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  s.set_tcp_nodelay(true);
  s.set_keep_alive_max_count(static_cast<size_t>(impl->options.keep_alive_max_count));
  s.set_read_timeout(impl->options.read_timeout_s, 0);
  // One byte over the limit is still "too large"; the service re-checks the exact limit.
  s.set_payload_max_length(impl->service.options().max_body_bytes);
  s.set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
    request_start = std::chrono::steady_clock::now();
    return httplib::Server::HandlerResponse::Unhandled;
  });
  auto handler = [impl](const httplib::Request& req, httplib::Response& res) {
    impl->Dispatch(req, res);
  };
  s.Get(".*", handler);
  s.Post(".*", handler);
  s.Put(".*", handler);
  s.Delete(".*", handler);
  s.Patch(".*", handler);
  s.Options(".*", handler);
  // Errors httplib produces itself (413 over the body limit, 400 unparsable request, 404)
  // get the same JSON shape as ours.
  s.set_error_handler(httplib::Server::HandlerWithResponse(
      [impl](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string message;
        if (res.status == 413) {
          message = "body larger than " + std::to_string(impl->service.options().max_body_bytes) +
                    " bytes (--max-body-bytes)";
        } else if (res.status == 400) {
          message = req.method + " " + req.path +
                    ": malformed HTTP request (a body needs Content-Length or chunked encoding)";
        } else {
          message = "HTTP " + std::to_string(res.status) + " for " + req.method + " " + req.path;
        }
        res.set_content(ErrorBody(CodeForStatus(res.status), message), "application/json");
        impl->Observe(req.path, res.status);  // an error httplib produced without our handler
        return httplib::Server::HandlerResponse::Handled;
      }));
  s.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unexpected exception";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        res.status = 500;
        res.set_content(ErrorBody("internal", what), "application/json");
      });
}

HttpServer::~HttpServer() { Stop(); }

Result<int> HttpServer::Bind() {
  httplib::Server& s = impl_->server;
  const std::string& host = impl_->options.host;
  int port = impl_->options.port;
  if (port == 0) {
    port = s.bind_to_any_port(host);
    if (port < 0) return Unavailable("cannot listen on " + host + ":0");
  } else if (!s.bind_to_port(host, port)) {
    return Unavailable("cannot listen on " + host + ":" + std::to_string(port) +
                       " (address in use, or not a local address)");
  }
  return port;
}

Status HttpServer::Run() {
  if (!impl_->server.listen_after_bind()) return Unavailable("HTTP server stopped with an error");
  return Status::Ok();
}

void HttpServer::Stop() { impl_->server.stop(); }

}  // namespace outpost::cloud::api
