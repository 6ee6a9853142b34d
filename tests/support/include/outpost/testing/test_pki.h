// GenerateTestPki: a throwaway PKI for TLS tests, made with the openssl CLI: a CA, a server
// certificate for localhost/127.0.0.1 and a client certificate signed by it, and an unrelated
// second CA (to test that verification fails). EC P-256 keys, valid for two days.
// Errors: kUnavailable when openssl fails (the message includes its output).
#pragma once

#include <string>

#include "outpost/base/status.h"

namespace outpost::testing {

struct TestPki {
  std::string ca_cert, ca_key;
  std::string server_cert, server_key;  // CN=localhost, SAN DNS:localhost, IP:127.0.0.1
  std::string client_cert, client_key;  // CN=outpost-test-client
  std::string other_ca_cert;            // a CA that signed none of the above
};

// Writes the files into `dir` (which must exist) and returns their paths.
Result<TestPki> GenerateTestPki(const std::string& dir);

}  // namespace outpost::testing
