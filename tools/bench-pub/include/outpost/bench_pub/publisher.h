// Publisher: the load generator behind outpost-bench-pub. N virtual devices spread over C MQTT
// connections, all on ONE event loop (the caller's thread), publishing realistic readings
// (readings.h) at a drift-free rate (pacer.h) or as fast as the broker takes them.
//
// Flow control: a connection takes new readings only while its unsent bytes are below a bound
// (and, for QoS 1, its in-flight window has room), so an unpaced run is limited by the broker,
// never by memory. Readings go out in device order (reading k comes from device k mod N), so a
// blocked connection holds the others back rather than letting devices drift apart.
//
// Thread: Run() blocks the calling thread, which runs the io_context. Not thread-safe.
// Errors: Run() returns kInvalidArgument for bad options; connection failures end the run and
//   are reported in Summary::error.
#pragma once

#include <cstdint>
#include <string>

#include "outpost/base/status.h"
#include "outpost/bench_pub/readings.h"

namespace outpost::bench_pub {

struct PublisherOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 1883;
  std::size_t devices = 100;
  std::size_t connections = 0;  // 0: min(devices, 8)
  std::uint64_t count = 0;      // total readings; 0: unbounded (needs duration_s)
  double duration_s = 0;        // stop publishing after this long; 0: unbounded (needs count)
  double rate_per_s = 0;        // overall; 0: as fast as possible
  int qos = 0;
  std::size_t max_inflight = 1000;  // per connection, QoS 1
  Format format = Format::kNative;
  std::uint64_t seed = 1;
  std::string id_prefix = "bench-";
  std::string client_prefix = "outpost-bench-pub";
  bool progress = false;          // a line on stderr every second
  double connect_timeout_s = 30;  // all connections up, or fail
  double drain_timeout_s = 30;    // after the last publish: QoS 1 acks, QoS 0 writes
};

struct Summary {
  std::uint64_t sent = 0;   // PUBLISH packets handed to the sockets
  std::uint64_t acked = 0;  // QoS 1 PUBACKs received
  std::uint64_t bytes = 0;
  double elapsed_s = 0;   // first publish -> last publish written (QoS 0) / acked (QoS 1)
  double publish_s = 0;   // first publish -> last publish queued
  double rate_per_s = 0;  // sent / elapsed_s
  std::int64_t first_publish_wall_ms = 0;  // Unix epoch ms
  std::int64_t last_publish_wall_ms = 0;
  std::int64_t done_wall_ms = 0;  // when the last write completed / the last PUBACK arrived
  double connect_s = 0;           // opening every connection
  double max_lag_ms = 0;          // paced runs: worst lateness behind the schedule
  std::size_t connections = 0;
  std::string error;  // empty when the run completed
  bool ok(int qos) const { return error.empty() && (qos == 0 || acked == sent); }
};

Status ValidatePublisherOptions(PublisherOptions* options);  // fills defaults

// Runs one bounded load run to completion.
Result<Summary> RunPublisher(PublisherOptions options);

}  // namespace outpost::bench_pub
