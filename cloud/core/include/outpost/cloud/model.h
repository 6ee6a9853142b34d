// Domain types of the cloud ingest service: what a gateway sends (Batch), what is stored,
// and what the query API returns. No I/O here.
// Wire format: docs/formats/cloud.md
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "outpost/proto/batch.h"

namespace outpost::cloud {

// What a gateway sends: the batch contract's types (libs/proto, ADR 0004).
using proto::batch::Alert;
using proto::batch::Batch;
using proto::batch::ItemReject;
using proto::batch::Reading;
using proto::batch::StatusEvent;

// What storing a batch did: accepted = newly stored, duplicates = already there (any kind).
struct WriteCounts {
  std::int64_t readings = 0;
  std::int64_t alerts = 0;
  std::int64_t statuses = 0;
  std::int64_t duplicates = 0;
};

struct TokenRecord {
  std::int64_t id = 0;
  std::string gateway_id;
  bool admin = false;
  std::int64_t created_ms = 0;
  std::optional<std::int64_t> revoked_ms;
};

// Who made a request: the token's gateway, and whether it may see every gateway.
struct Principal {
  std::int64_t token_id = 0;
  std::string gateway_id;
  bool admin = false;
};

struct GatewayInfo {
  std::string gateway_id;
  std::int64_t first_seen_ms = 0;
  std::int64_t last_seen_ms = 0;
  std::int64_t batches = 0;
  std::int64_t readings = 0;
};

struct DeviceInfo {
  std::string gateway_id;
  std::string device_id;
  std::string status;  // empty when no status was ever received
  std::int64_t status_ts_ms = 0;
  std::int64_t last_seen_ms = 0;  // newest reading's ts_ms
  std::int64_t readings = 0;
};

struct Point {
  std::int64_t ts_ms = 0;
  double value = 0;
};

// One downsampling step: [ts_ms, ts_ms + step_ms).
struct Bucket {
  std::int64_t ts_ms = 0;
  double min = 0;
  double max = 0;
  double avg = 0;
  std::int64_t count = 0;
};

struct ReadingsQuery {
  std::string gateway_id;
  std::string device_id;
  std::string metric;
  std::int64_t from_ms = 0;  // inclusive
  std::int64_t to_ms = 0;    // exclusive
  std::int64_t step_ms = 0;  // 0: raw points
  std::int64_t limit = 10'000;
};

struct AlertsQuery {
  std::string gateway_id;
  std::string device_id;  // empty: all devices
  std::int64_t from_ms = 0;
  std::int64_t to_ms = INT64_MAX;
  std::int64_t limit = 10'000;
};

struct StoredAlert {
  std::string gateway_id;
  Alert alert;
};

// The answer remembered for an idempotency key.
struct IdempotencyRecord {
  std::string body_sha256;  // hex
  int http_status = 200;
  std::string response;  // the JSON body given the first time (with "replayed":false)
};

}  // namespace outpost::cloud
