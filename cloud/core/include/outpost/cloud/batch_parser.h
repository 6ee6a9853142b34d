// The cloud's batch parsers are the contract's (libs/proto/batch.h, ADR 0004): one piece with
// the gateway's encoders, so what the gateway sends and what the cloud accepts cannot drift.
//   seed:   POST /sensor-data/batch  {"readings":[{flat reading}, ...]}
//   native: POST /v1/batches {"gateway_id":..,"readings":[..],"alerts":[..],"statuses":[..]}
// An invalid item is left out and reported in Batch::rejected; only a body that is unusable as
// a whole fails the parse.
// Format: docs/formats/cloud.md
#pragma once

#include "outpost/cloud/model.h"
#include "outpost/proto/batch.h"

namespace outpost::cloud {

using proto::batch::IsSeedReservedKey;
using proto::batch::IsValidMetricName;
using proto::batch::ParseError;
using proto::batch::ParseErrorKind;
using proto::batch::ParseLimits;
using proto::batch::ParseNativeBatch;
using proto::batch::ParseSeedBatch;

// A device or gateway id: 1..64 bytes of [A-Za-z0-9_.:-] (the contract's rule).
inline bool IsValidCloudId(std::string_view id) { return proto::batch::IsValidId(id); }

}  // namespace outpost::cloud
