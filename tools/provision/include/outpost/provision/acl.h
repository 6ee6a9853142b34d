// BuildAcl: the Mosquitto acl_file for a site, generated from the provisioned identities (never
// written by hand). The broker takes each client's username from its certificate's CN
// (use_identity_as_username), so every rule is bound to a certificate. Pure; thread-safe.
// Rules and why: docs/security.md "The ACL"
#pragma once

#include <string>
#include <vector>

namespace outpost::provision {

// The identity of `device revoke --cut` and of the self-check's subscriber; no device may take it.
inline constexpr const char* kControlCn = "outpost-control";

// The self-check of `device add` (docs/security.md "The self-check") owns the reserved topic
// space outpost/selfcheck/: device ID may write only SelfCheckTopic(ID); nobody may write
// SelfCheckDeniedTopic(ID), which the device tries, to show the ACL is enforced; only the control
// identity writes SelfCheckFenceTopic(ID) and reads them all. An id is one topic level (no '/'),
// so the two-level topics are never any device's own.
inline constexpr const char* kSelfCheckRoot = "outpost/selfcheck";
std::string SelfCheckTopic(const std::string& id);        // outpost/selfcheck/ID
std::string SelfCheckDeniedTopic(const std::string& id);  // outpost/selfcheck/ID/denied
std::string SelfCheckFenceTopic(const std::string& id);   // outpost/selfcheck/ID/fence

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
