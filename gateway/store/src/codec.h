// Byte encodings of the store (pure, no SQLite): the packed metrics of a hot row and the
// column-packed per-device blocks. Format: docs/formats/store.md.
// All decoders treat their input as untrusted (a corrupt file must not crash the gateway):
// they return false instead of reading out of bounds.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace outpost::gateway::store::codec {

inline constexpr uint8_t kBlockFormat = 1;

// Flags of a reading (hot.flags, and per reading in a block).
inline constexpr uint8_t kFlagTsFromDevice = 1;
inline constexpr uint8_t kFlagHasSeq = 2;
inline constexpr uint8_t kFlagHasDeviceTs = 4;

void PutVarint(std::string* out, uint64_t v);
bool GetVarint(std::string_view* in, uint64_t* v);
inline uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
inline int64_t UnZigZag(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}

// Hot-row metrics: per metric a varint (metric_key << 2 | is_bool << 1 | bool_value), then,
// for numbers, the IEEE-754 double little-endian.
void AppendMetric(std::string* out, int64_t metric_key, bool is_bool, double value);

struct PackedMetric {
  int64_t key;
  bool is_bool;
  double value;
};
// Iterates a packed metrics blob. Next() returns false at the end or on corrupt input.
class MetricReader {
 public:
  explicit MetricReader(std::string_view blob) : in_(blob) {}
  bool Next(PackedMetric* m);
  bool corrupt() const { return corrupt_; }

 private:
  std::string_view in_;
  bool corrupt_ = false;
};

// One reading as it goes into a block.
struct BlockReading {
  int64_t id;  // arrival order (hot.id)
  int64_t ts_ms;
  int64_t received_ms;
  uint8_t flags;
  uint32_t boot;
  uint64_t seq;
  int64_t device_ts;
  std::string_view metrics;  // packed as above
};

// Encodes readings (sorted by ts_ms ascending) of one device. `scratch` is reused.
struct BlockScratch {
  struct Column {
    int64_t key;
    bool is_bool;
    std::vector<uint8_t> present;  // per reading
    std::string values;
    size_t count;
  };
  std::vector<Column> columns;
  std::string section;
};
void EncodeBlock(const std::vector<BlockReading>& readings, BlockScratch* scratch,
                 std::string* out);

// A block's aggregate of one metric (booleans as 0/1), kept beside the block so that a query
// whose bucket holds the whole block need not decode it (docs/formats/store.md).
struct MetricSummary {
  int64_t metric_key;
  int64_t n;
  double min, max, sum;
};
// The summaries of every metric in `readings` (the first value of a key in a reading counts,
// as when the block is decoded), ordered by metric key. False on a corrupt metrics blob.
bool SummarizeBlock(const std::vector<BlockReading>& readings, std::vector<MetricSummary>* out);

// Appends to `ts` and `values` (kept the same length) every reading of the block that has
// `metric_key`, in block order (ts ascending in a well-formed block with one column for the key;
// a key seen as number and as boolean has two columns, appended one after the other).
// `ts_scratch` is reused. False on corrupt input.
bool DecodeBlockColumn(std::string_view block, int64_t metric_key, std::vector<int64_t>* ts_scratch,
                       std::vector<int64_t>* ts, std::vector<double>* values);

// Decodes the points of `metric_key` with from <= ts < to, appending to `out` as (ts, value).
// `ts_scratch` is reused. False on corrupt input.
struct TsValue {
  int64_t ts_ms;
  double value;
};
bool DecodeBlockSeries(std::string_view block, int64_t metric_key, int64_t from_ms, int64_t to_ms,
                       std::vector<int64_t>* ts_scratch, std::vector<TsValue>* out);

struct BlockIdentity {
  int64_t id;
  uint8_t flags;
  uint32_t boot;
  uint64_t seq;
  int64_t device_ts;
};
// Appends the identity of every reading in the block (in ts order). False on corrupt input.
bool DecodeBlockIdentities(std::string_view block, std::vector<BlockIdentity>* out);

}  // namespace outpost::gateway::store::codec
