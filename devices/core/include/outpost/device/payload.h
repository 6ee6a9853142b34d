// The JSON a node publishes: readings (native and seed-exact), seed status messages and command
// replies. Allocation-free; the gateway's outpost::proto parsers accept all of it (tested in
// payload_proto_test.cpp). Formats: docs/formats/readings.md, docs/formats/topics.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "outpost/device/config.h"

namespace outpost::device {

// One sample, compact (what the offline ring stores; JSON is written only when publishing).
struct Reading {
  std::int64_t timestamp_ms = 0;       // Unix ms when the wall clock was synced, else uptime ms
  std::uint32_t seq = 0;               // per boot, from 0, no gaps (failed sensor reads use none)
  std::int32_t temperature_centi = 0;  // 0.01 degC
  std::int32_t humidity_centi = 0;     // 0.01 %RH
  std::int32_t battery_centi = 0;      // 0.01 %
  std::int16_t rssi_dbm = 0;
  bool motion = false;
  bool battery_known = true;  // false: the gauge returned NaN; native payloads leave it out
};

struct PayloadIdentity {
  std::string_view device_id;
  std::uint32_t boot = 0;
  std::string_view firmware;
  TopicScheme scheme = TopicScheme::kNative;
};

// Native: {"deviceId":"n-1","boot":3,"seq":17,"timestamp":1748735990000,"fw":"0.1.0",
//          "temperature":21.25,"humidity":45.2,"motion":false,"battery":87.5,"rssi":-65}
// Seed:   {"deviceId":"n-1","timestamp":123456,"temperature":22.5,"humidity":45.2,
//          "motion":false,"battery":87.5,"rssi":-65}   (the seed sketch's fields and order)
// Numbers have at most 2 decimals. Returns bytes written (NUL-terminated), 0 if `capacity` is
// too small.
std::size_t WriteReadingJson(const PayloadIdentity& id, const Reading& r, char* out,
                             std::size_t capacity);

// Seed status: {"deviceId":"n-1","status":"online","timestamp":123456}
std::size_t WriteSeedStatusJson(std::string_view device_id, std::string_view status,
                                std::int64_t uptime_ms, char* out, std::size_t capacity);

// Command reply: {"id":"c-17","ok":true} or {"id":"c-18","ok":false,"error":"...","rejected":true}
// (the core refuses a command it cannot carry out whole before doing any of it, so every failure
// is a rejection: an unknown command, a missing or out-of-range parameter); `error` is
// sanitised (printable ASCII; quotes and backslashes escaped, anything else '?'). An integer id is
// echoed as a string of its digits, as the gateway keeps it. `duplicate` adds "duplicate":true. The
// error is cut (to 96, 40, then 0 bytes) until the reply fits; 288 bytes always fit an id of 64
// characters.
std::size_t WriteReplyJson(std::string_view id, bool ok, std::string_view error, bool duplicate,
                           char* out, std::size_t capacity);

// A failure that is not a refusal: the device carried the command out and it failed (a rotation
// whose new certificate the broker refused): {"id":"c-21","ok":false,"error":"..."}. The error is
// cut as in WriteReplyJson.
std::size_t WriteFailureReplyJson(std::string_view id, std::string_view error, char* out,
                                  std::size_t capacity);

// A successful reply with one result member (certificate rotation, docs/adr/0011):
// {"id":"c-19","ok":true,"csr":"MIIB..."} or {"id":"c-20","ok":true,"serial":"4f1a..."}.
// `value` is sanitised as `error` is, but never cut: returns 0 when it does not fit.
std::size_t WriteReplyValueJson(std::string_view id, std::string_view key, std::string_view value,
                                char* out, std::size_t capacity);

}  // namespace outpost::device
