#include "codec.h"

#include <algorithm>
#include <cstring>

namespace outpost::gateway::store::codec {
namespace {

void PutDouble(std::string* out, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(bits >> (8 * i));
  out->append(b, 8);
}

double LoadDouble(const char* p) {
  uint64_t bits = 0;
  for (int i = 0; i < 8; ++i) bits |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  double v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

// Differences in modular arithmetic: wrap instead of signed overflow on extreme inputs.
uint64_t Diff(int64_t a, int64_t b) { return static_cast<uint64_t>(a) - static_cast<uint64_t>(b); }
int64_t Add(int64_t a, uint64_t d) { return static_cast<int64_t>(static_cast<uint64_t>(a) + d); }

bool GetByte(std::string_view* in, uint8_t* b) {
  if (in->empty()) return false;
  *b = static_cast<uint8_t>((*in)[0]);
  in->remove_prefix(1);
  return true;
}

// Reads a varint length and splits off that many bytes.
bool GetSection(std::string_view* in, std::string_view* section) {
  uint64_t len;
  if (!GetVarint(in, &len) || len > in->size()) return false;
  *section = in->substr(0, len);
  in->remove_prefix(len);
  return true;
}

void PutSection(std::string* out, const std::string& section) {
  PutVarint(out, section.size());
  out->append(section);
}

bool BitAt(std::string_view bitmap, size_t i) {
  return (static_cast<uint8_t>(bitmap[i / 8]) >> (i % 8)) & 1;
}

// Header and ts column, shared by both decoders.
bool DecodeHeaderAndTs(std::string_view* in, uint64_t* n, std::vector<int64_t>* ts) {
  uint8_t format;
  if (!GetByte(in, &format) || format != kBlockFormat) return false;
  if (!GetVarint(in, n) || *n > (1u << 24)) return false;
  std::string_view sec;
  if (!GetSection(in, &sec)) return false;
  ts->clear();
  ts->reserve(*n);
  int64_t prev = 0;
  for (uint64_t i = 0; i < *n; ++i) {
    uint64_t v;
    if (!GetVarint(&sec, &v)) return false;
    prev = i == 0 ? UnZigZag(v) : Add(prev, v);
    ts->push_back(prev);
  }
  return sec.empty();
}

// Calls sink(ts, value) for every reading of the block that has `metric_key`, in block order.
template <typename Sink>
bool DecodeColumns(std::string_view in, int64_t metric_key, std::vector<int64_t>* ts, Sink&& sink) {
  uint64_t n;
  if (!DecodeHeaderAndTs(&in, &n, ts)) return false;
  std::string_view meta;
  if (!GetSection(&in, &meta)) return false;
  uint64_t ncols;
  if (!GetVarint(&in, &ncols)) return false;
  for (uint64_t c = 0; c < ncols; ++c) {
    uint64_t key;
    uint8_t kind, dense;
    std::string_view body;
    if (!GetVarint(&in, &key) || !GetByte(&in, &kind) || !GetByte(&in, &dense) ||
        !GetSection(&in, &body)) {
      return false;
    }
    if (static_cast<int64_t>(key) != metric_key) continue;
    std::string_view bitmap;
    if (!dense) {
      const size_t bytes = (n + 7) / 8;
      if (body.size() < bytes) return false;
      bitmap = body.substr(0, bytes);
      body.remove_prefix(bytes);
    }
    size_t k = 0;  // index among present values
    for (uint64_t i = 0; i < n; ++i) {
      if (!dense && !BitAt(bitmap, i)) continue;
      double v;
      if (kind == 1) {
        if (k / 8 >= body.size()) return false;
        v = BitAt(body, k) ? 1.0 : 0.0;
      } else {
        if ((k + 1) * 8 > body.size()) return false;
        v = LoadDouble(body.data() + k * 8);
      }
      ++k;
      sink((*ts)[i], v);
    }
  }
  return true;
}

}  // namespace

void PutVarint(std::string* out, uint64_t v) {
  char buf[10];
  int n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  out->append(buf, n);
}

bool GetVarint(std::string_view* in, uint64_t* v) {
  uint64_t result = 0;
  for (size_t i = 0; i < in->size() && i < 10; ++i) {
    uint8_t b = static_cast<uint8_t>((*in)[i]);
    result |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) {
      in->remove_prefix(i + 1);
      *v = result;
      return true;
    }
  }
  return false;
}

void AppendMetric(std::string* out, int64_t metric_key, bool is_bool, double value) {
  uint64_t tag = static_cast<uint64_t>(metric_key) << 2;
  if (is_bool) {
    tag |= 2u | (value != 0 ? 1u : 0u);
    PutVarint(out, tag);
  } else {
    PutVarint(out, tag);
    PutDouble(out, value);
  }
}

bool MetricReader::Next(PackedMetric* m) {
  if (in_.empty() || corrupt_) return false;
  uint64_t tag;
  if (!GetVarint(&in_, &tag)) {
    corrupt_ = true;
    return false;
  }
  m->key = static_cast<int64_t>(tag >> 2);
  m->is_bool = (tag & 2) != 0;
  if (m->is_bool) {
    m->value = (tag & 1) ? 1.0 : 0.0;
    return true;
  }
  if (in_.size() < 8) {
    corrupt_ = true;
    return false;
  }
  m->value = LoadDouble(in_.data());
  in_.remove_prefix(8);
  return true;
}

bool SummarizeBlock(const std::vector<BlockReading>& readings, std::vector<MetricSummary>* out) {
  out->clear();
  std::vector<int64_t> seen;  // keys already counted for the current reading
  for (const BlockReading& r : readings) {
    seen.clear();
    MetricReader reader(r.metrics);
    PackedMetric pm;
    while (reader.Next(&pm)) {
      if (std::find(seen.begin(), seen.end(), pm.key) != seen.end()) continue;
      seen.push_back(pm.key);
      auto it =
          std::lower_bound(out->begin(), out->end(), pm.key,
                           [](const MetricSummary& s, int64_t key) { return s.metric_key < key; });
      if (it == out->end() || it->metric_key != pm.key) {
        out->insert(it, MetricSummary{pm.key, 1, pm.value, pm.value, pm.value});
        continue;
      }
      ++it->n;
      it->min = std::min(it->min, pm.value);
      it->max = std::max(it->max, pm.value);
      it->sum += pm.value;
    }
    if (reader.corrupt()) return false;
  }
  return true;
}

void EncodeBlock(const std::vector<BlockReading>& readings, BlockScratch* scratch,
                 std::string* out) {
  const size_t n = readings.size();
  out->clear();
  out->push_back(static_cast<char>(kBlockFormat));
  PutVarint(out, n);

  std::string& sec = scratch->section;
  sec.clear();
  for (size_t i = 0; i < n; ++i) {
    if (i == 0) {
      PutVarint(&sec, ZigZag(readings[0].ts_ms));
    } else {
      PutVarint(&sec, Diff(readings[i].ts_ms, readings[i - 1].ts_ms));
    }
  }
  PutSection(out, sec);

  sec.clear();
  int64_t prev_id = 0;
  uint64_t prev_seq = 0;
  int64_t prev_dts = 0;
  for (const BlockReading& r : readings) {
    PutVarint(&sec, ZigZag(static_cast<int64_t>(Diff(r.id, prev_id))));
    prev_id = r.id;
    PutVarint(&sec, ZigZag(static_cast<int64_t>(Diff(r.received_ms, r.ts_ms))));
    sec.push_back(static_cast<char>(r.flags));
    if (r.flags & kFlagHasSeq) {
      PutVarint(&sec, r.boot);
      PutVarint(&sec, ZigZag(static_cast<int64_t>(r.seq - prev_seq)));
      prev_seq = r.seq;
    }
    if (r.flags & kFlagHasDeviceTs) {
      PutVarint(&sec, ZigZag(static_cast<int64_t>(Diff(r.device_ts, prev_dts))));
      prev_dts = r.device_ts;
    }
  }
  PutSection(out, sec);

  // Metric columns. A device sends few distinct metrics, so a linear search is the fast path.
  auto& cols = scratch->columns;
  size_t used = 0;
  for (size_t i = 0; i < n; ++i) {
    MetricReader reader(readings[i].metrics);
    PackedMetric m;
    while (reader.Next(&m)) {
      BlockScratch::Column* col = nullptr;
      for (size_t c = 0; c < used; ++c) {
        if (cols[c].key == m.key && cols[c].is_bool == m.is_bool) {
          col = &cols[c];
          break;
        }
      }
      if (col == nullptr) {
        if (used == cols.size()) cols.emplace_back();
        col = &cols[used++];
        col->key = m.key;
        col->is_bool = m.is_bool;
        col->present.assign(n, 0);
        col->values.clear();
        col->count = 0;
      }
      if (col->present[i]) continue;  // the same metric twice in one reading: keep the first
      col->present[i] = 1;
      if (col->is_bool) {
        if (col->count % 8 == 0) col->values.push_back(0);
        if (m.value != 0) col->values.back() |= static_cast<char>(1 << (col->count % 8));
      } else {
        PutDouble(&col->values, m.value);
      }
      ++col->count;
    }
  }
  PutVarint(out, used);
  for (size_t c = 0; c < used; ++c) {
    const auto& col = cols[c];
    PutVarint(out, static_cast<uint64_t>(col.key));
    out->push_back(col.is_bool ? 1 : 0);
    const bool dense = col.count == n;
    out->push_back(dense ? 1 : 0);
    sec.clear();
    if (!dense) {
      sec.assign((n + 7) / 8, '\0');
      for (size_t i = 0; i < n; ++i) {
        if (col.present[i]) sec[i / 8] = static_cast<char>(sec[i / 8] | (1 << (i % 8)));
      }
    }
    sec.append(col.values);
    PutSection(out, sec);
  }
}

bool DecodeBlockColumn(std::string_view in, int64_t metric_key, std::vector<int64_t>* ts_scratch,
                       std::vector<int64_t>* ts, std::vector<double>* values) {
  return DecodeColumns(in, metric_key, ts_scratch, [&](int64_t t, double v) {
    ts->push_back(t);
    values->push_back(v);
  });
}

bool DecodeBlockSeries(std::string_view in, int64_t metric_key, int64_t from_ms, int64_t to_ms,
                       std::vector<int64_t>* ts_scratch, std::vector<TsValue>* out) {
  return DecodeColumns(in, metric_key, ts_scratch, [&](int64_t t, double v) {
    if (t >= from_ms && t < to_ms) out->push_back({t, v});
  });
}

bool DecodeBlockIdentities(std::string_view in, std::vector<BlockIdentity>* out) {
  uint64_t n;
  std::vector<int64_t> ts;
  if (!DecodeHeaderAndTs(&in, &n, &ts)) return false;
  std::string_view meta;
  if (!GetSection(&in, &meta)) return false;
  int64_t prev_id = 0;
  uint64_t prev_seq = 0;
  int64_t prev_dts = 0;
  for (uint64_t i = 0; i < n; ++i) {
    BlockIdentity id{};
    uint64_t v, received_delta;
    if (!GetVarint(&meta, &v) || !GetVarint(&meta, &received_delta) || !GetByte(&meta, &id.flags)) {
      return false;
    }
    id.id = Add(prev_id, static_cast<uint64_t>(UnZigZag(v)));
    prev_id = id.id;
    if (id.flags & kFlagHasSeq) {
      uint64_t boot, dseq;
      if (!GetVarint(&meta, &boot) || !GetVarint(&meta, &dseq)) return false;
      id.boot = static_cast<uint32_t>(boot);
      id.seq = prev_seq + static_cast<uint64_t>(UnZigZag(dseq));
      prev_seq = id.seq;
    }
    if (id.flags & kFlagHasDeviceTs) {
      if (!GetVarint(&meta, &v)) return false;
      id.device_ts = Add(prev_dts, static_cast<uint64_t>(UnZigZag(v)));
      prev_dts = id.device_ts;
    }
    out->push_back(id);
  }
  return meta.empty();
}

}  // namespace outpost::gateway::store::codec
