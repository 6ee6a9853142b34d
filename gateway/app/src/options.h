// The config -> options mapping: what each component is built with, from the gateway's config.
// Pure functions (no I/O, no clock, no randomness: what varies per run is a parameter), so the
// mapping is unit-tested (options_test.cpp). Keys: docs/configuration.md.
// Private to gateway/app.
#pragma once

#include <cstdint>
#include <string>

#include "outpost/gateway/config/config.h"
#include "outpost/gateway/ingest/pipeline.h"
#include "outpost/gateway/registry/registry.h"
#include "outpost/gateway/store/store.h"
#include "outpost/gateway/uplink/sender.h"
#include "outpost/gateway/uplink/uplink.h"
#include "outpost/http/server.h"
#include "outpost/mqtt/client.h"
#include "outpost/proto/reading.h"

namespace outpost::gateway::app {

// storage.*, the quarantine limits and the outbox. `max_bytes`: the effective storage.max_bytes
// (config::EffectiveMaxBytes, which reads the file system, resolves "auto").
store::Options StoreOptions(const config::Config& config, std::int64_t max_bytes);

// cloud.* for the HTTP sender; `token` from config::ResolveCloudToken.
uplink::HttpSenderOptions SenderOptions(const config::CloudConfig& cloud, std::string token);

// cloud.* for the uplink. `boot_id` (idempotency keys) and `jitter_seed` are per run.
uplink::Options UplinkOptions(const config::Config& config, std::string boot_id,
                              std::uint64_t jitter_seed);

// mqtt.* and the subscriptions: the seed's shared topics, the per-device ones and this
// gateway's commands topic; the last will marks gateway/{id}/state offline.
mqtt::ClientOptions MqttOptions(const config::Config& config);

// registry.* (seconds in the config, milliseconds in the registry).
registry::Options RegistryOptions(const config::Config& config);

// ingest.max_payload_bytes / max_depth / max_metrics.
proto::Limits ParserLimits(const config::Config& config);

// The ingest pipeline: gateway.id, ingest.*, registry.*, the effective rules, offline alerts,
// cloud.protocol when the uplink is on, mqtt.max_packet_bytes (named in oversize rejects).
ingest::Options PipelineOptions(const config::Config& config);

// http.* for the API server (host and port parsed from http.listen; the rest of
// http::ServerOptions at its defaults). Only meaningful when config.http.enabled().
http::ServerOptions HttpServerOptions(const config::Config& config);

}  // namespace outpost::gateway::app
