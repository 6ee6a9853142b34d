#include "outpost/device/payload.h"

#include "outpost/device/json_writer.h"

namespace outpost::device {

std::size_t WriteReadingJson(const PayloadIdentity& id, const Reading& r, char* out,
                             std::size_t capacity) {
  JsonWriter w(out, capacity);
  w.BeginObject();
  w.Key("deviceId");
  w.String(id.device_id);
  if (id.scheme == TopicScheme::kNative) {
    w.Key("boot");
    w.Uint(id.boot);
    w.Key("seq");
    w.Uint(r.seq);
  }
  w.Key("timestamp");
  w.Int(r.timestamp_ms);
  if (id.scheme == TopicScheme::kNative) {
    w.Key("fw");
    w.String(id.firmware);
  }
  w.Key("temperature");
  w.Fixed(r.temperature_centi, 2);
  w.Key("humidity");
  w.Fixed(r.humidity_centi, 2);
  w.Key("motion");
  w.Bool(r.motion);
  // The seed's payload always has "battery" (0 when unknown); a native one leaves an unknown
  // battery out rather than report an empty one, which would raise a low-battery alert.
  if (r.battery_known || id.scheme == TopicScheme::kSeed) {
    w.Key("battery");
    w.Fixed(r.battery_centi, 2);
  }
  w.Key("rssi");
  w.Int(r.rssi_dbm);
  w.EndObject();
  return w.ok() ? w.size() : 0;
}

std::size_t WriteSeedStatusJson(std::string_view device_id, std::string_view status,
                                std::int64_t uptime_ms, char* out, std::size_t capacity) {
  JsonWriter w(out, capacity);
  w.BeginObject();
  w.Key("deviceId");
  w.String(device_id);
  w.Key("status");
  w.String(status);
  w.Key("timestamp");
  w.Int(uptime_ms);
  w.EndObject();
  return w.ok() ? w.size() : 0;
}

namespace {

std::size_t WriteReply(std::string_view id, bool ok, std::string_view error, bool duplicate,
                       bool rejected, char* out, std::size_t capacity) {
  JsonWriter w(out, capacity);
  w.BeginObject();
  w.Key("id");
  w.StringSanitized(id);
  w.Key("ok");
  w.Bool(ok);
  if (!ok) {
    w.Key("error");
    w.StringSanitized(error);
    if (rejected) {
      w.Key("rejected");
      w.Bool(true);
    }
  }
  if (duplicate) {
    w.Key("duplicate");
    w.Bool(true);
  }
  w.EndObject();
  return w.ok() ? w.size() : 0;
}

}  // namespace

std::size_t WriteReplyJson(std::string_view id, bool ok, std::string_view error, bool duplicate,
                           char* out, std::size_t capacity) {
  // Escaping can double the error's length: shorten it rather than lose the reply.
  for (std::size_t limit : {std::size_t{96}, std::size_t{40}, std::size_t{0}}) {
    // The core checks a command whole before it carries anything out: a failure is a refusal.
    std::size_t n = WriteReply(id, ok, error.substr(0, limit), duplicate, true, out, capacity);
    if (n > 0) return n;
  }
  return 0;
}

std::size_t WriteFailureReplyJson(std::string_view id, std::string_view error, char* out,
                                  std::size_t capacity) {
  for (std::size_t limit : {std::size_t{96}, std::size_t{40}, std::size_t{0}}) {
    std::size_t n = WriteReply(id, false, error.substr(0, limit), false, false, out, capacity);
    if (n > 0) return n;
  }
  return 0;
}

std::size_t WriteReplyValueJson(std::string_view id, std::string_view key, std::string_view value,
                                char* out, std::size_t capacity) {
  JsonWriter w(out, capacity);
  w.BeginObject();
  w.Key("id");
  w.StringSanitized(id);
  w.Key("ok");
  w.Bool(true);
  w.Key(key);
  w.StringSanitized(value);
  w.EndObject();
  return w.ok() ? w.size() : 0;
}

}  // namespace outpost::device
