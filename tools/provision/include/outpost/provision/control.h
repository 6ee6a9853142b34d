// MqttTlsConnect: one blocking MQTT 3.1.1 CONNECT over TLS with a client certificate, then a
// DISCONNECT: enough to check that a certificate is refused, and to cut a revoked device's open
// session (a CONNECT with its client id on the broker's loopback control listener makes the broker
// close the old connection: session takeover). Not a general client.
// Thread: no shared state. Errors: kUnavailable (TCP, TLS or the broker closed the connection
// before a CONNACK), kFailedPrecondition (a CONNACK refusing the connection), kDeadlineExceeded
// (no answer within `timeout_ms`).
#pragma once

#include <cstdint>
#include <string>

#include "outpost/base/status.h"

namespace outpost::provision {

struct TlsIdentity {
  std::string ca_file, cert_file, key_file;
};

Status MqttTlsConnect(const std::string& host, std::uint16_t port, const TlsIdentity& identity,
                      const std::string& client_id, int timeout_ms);

}  // namespace outpost::provision
