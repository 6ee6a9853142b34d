// This device's private key (PEM). Copy this file to secrets.h (same folder) and paste the key,
// or use the secrets.h outpost-provision wrote for the device. SECRET: git ignores secrets.h;
// never commit it. With OUTPOST_KEY_IN_NVS 1 (config.h) the key moves to NVS on the first boot
// and later builds need no secrets.h (docs/device_setup.md, "Where the key lives").
#pragma once

static const char AWS_CERT_PRIVATE[] = R"PEM(
-----BEGIN PRIVATE KEY-----
...
-----END PRIVATE KEY-----
)PEM";
