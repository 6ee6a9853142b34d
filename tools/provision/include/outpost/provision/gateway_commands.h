// GatewayCommands: sends a device command through the gateway's API and waits for its outcome,
// for `outpost-provision device rotate` (docs/api.md "Commands", ADR 0011). One blocking HTTP/1.1
// connection (libs/http Client: every response bounded) to the gateway's base URL, with a bearer
// token of the operator role.
// Ownership: owns its Client. Thread: one call at a time.
// Errors (Send): kInvalidArgument (401/403: the token; any other 4xx; a body that is not a
//   command), kNotFound (the gateway has never heard of the device), kAlreadyExists (409: the
//   Idempotency-Key names another command), kUnavailable (the network, 429 queue_full, 503 busy,
//   5xx; the message has the gateway's detail).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "outpost/base/status.h"
#include "outpost/http/client.h"

namespace outpost::provision {

struct GatewayCommand {
  std::string id, state;    // "queued", "sent", "delivered", "succeeded", "failed", ...
  std::string transport;    // "native", or "seed" (flat topics: no reply ever comes)
  std::string error;        // the device's reply's error, if any
  std::string csr, serial;  // the rotation replies' fields (certRequest, certInstall)

  // succeeded, failed, rejected, expired or canceled: nothing will change it any more.
  bool Finished() const;
};

class GatewayCommands {
 public:
  // `url`: the gateway's HTTP API, e.g. http://127.0.0.1:8080 (option `name` in errors);
  // `ca_file`: for https (empty: the system's CAs).
  static Result<GatewayCommands> Make(const std::string& url, const std::string& name,
                                      const std::string& token, const std::string& ca_file);

  // POST /api/v1/devices/{device}/commands?wait={wait_s} with `body_json` (command, params,
  // ttl_s) and an Idempotency-Key: the same key returns the same command (and waits for it again)
  // without sending anything to the device a second time.
  Result<GatewayCommand> Send(const std::string& device, const std::string& body_json,
                              const std::string& idempotency_key, int wait_s);

 private:
  GatewayCommands(std::unique_ptr<http::Client> client, std::string base, std::string where,
                  std::string token)
      : client_(std::move(client)),
        base_(std::move(base)),
        where_(std::move(where)),
        token_(std::move(token)) {}

  std::unique_ptr<http::Client> client_;
  std::string base_, where_, token_;
};

}  // namespace outpost::provision
