// BuildAcl: the Mosquitto acl_file for a site, generated from the provisioned identities (never
// written by hand). The broker takes each client's username from its certificate's CN
// (use_identity_as_username), so every rule is bound to a certificate. Pure; thread-safe.
// Rules and why: docs/security.md "The ACL"
#pragma once

#include <string>
#include <vector>

namespace outpost::provision {

struct AclDevice {
  std::string id;     // IsValidId(); the certificate's CN
  bool seed = false;  // may also use the seed's flat topics (which no identity can be bound to)
};

struct AclInput {
  std::string gateway_cn;  // "outpost-gateway-{gateway_id}"
  std::string gateway_id;
  std::string admin_cn;
  std::vector<AclDevice> devices;  // active (not revoked) devices only
};

std::string BuildAcl(const AclInput& input);

}  // namespace outpost::provision
