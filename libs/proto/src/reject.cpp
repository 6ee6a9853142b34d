#include "outpost/proto/reject.h"

namespace outpost::proto {

const char* RejectReasonName(RejectReason reason) {
  switch (reason) {
    case RejectReason::kNotJson:
      return "not_json";
    case RejectReason::kBadUtf8:
      return "bad_utf8";
    case RejectReason::kTooLarge:
      return "too_large";
    case RejectReason::kTooDeep:
      return "too_deep";
    case RejectReason::kNotObject:
      return "not_object";
    case RejectReason::kDuplicateKey:
      return "duplicate_key";
    case RejectReason::kMissingDeviceId:
      return "missing_device_id";
    case RejectReason::kBadDeviceId:
      return "bad_device_id";
    case RejectReason::kDeviceIdMismatch:
      return "device_id_mismatch";
    case RejectReason::kWrongType:
      return "wrong_type";
    case RejectReason::kBadNumber:
      return "bad_number";
    case RejectReason::kTooManyFields:
      return "too_many_fields";
    case RejectReason::kBadFieldName:
      return "bad_field_name";
    case RejectReason::kNoMetrics:
      return "no_metrics";
    case RejectReason::kBadSeq:
      return "bad_seq";
    case RejectReason::kBadTimestamp:
      return "bad_timestamp";
    case RejectReason::kCount:
      break;
  }
  return "unknown";
}

}  // namespace outpost::proto
