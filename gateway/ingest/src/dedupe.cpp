#include "outpost/gateway/ingest/dedupe.h"

#include <algorithm>

#include "outpost/base/check.h"

namespace outpost::gateway::ingest {

Deduplicator::Deduplicator(std::size_t window) : window_(std::max<std::size_t>(64, window)) {
  window_ = (window_ + 63) / 64 * 64;  // whole words
}

Verdict Deduplicator::Check(std::string_view device_id, const Identity& id) {
  if (!id.has_seq && !id.has_device_ts) return Verdict{};
  auto it = devices_.find(std::string(device_id));  // TODO(perf): heterogeneous lookup (C++20)
  if (it == devices_.end()) it = devices_.emplace(std::string(device_id), DeviceState{}).first;
  return id.has_seq ? CheckSeq(it->second, id) : CheckTimestamp(it->second, id.device_ts_raw);
}

void Deduplicator::Forget(std::string_view device_id) { devices_.erase(std::string(device_id)); }

Verdict Deduplicator::CheckSeq(DeviceState& d, const Identity& id) {
  Verdict v;
  SeqWindow* w = nullptr;
  if (d.current.used && d.current.boot == id.boot) {
    w = &d.current;
  } else if (d.previous.used && d.previous.boot == id.boot) {
    w = &d.previous;  // a late reading of the boot before: checked, never moves "current"
  } else {
    // A boot we have not seen: the device restarted. Keep one boot of history.
    d.previous = std::move(d.current);
    d.current = SeqWindow{};
    d.current.used = true;
    d.current.boot = id.boot;
    d.current.max_seq = id.seq;
    d.current.bits.assign(window_ / 64, 0);
    v.new_boot = true;
    (void)TestAndSet(d.current, id.seq);
    return v;
  }
  if (id.seq > w->max_seq) {
    v.new_gaps = id.seq - w->max_seq - 1;
    Advance(*w, id.seq);
    (void)TestAndSet(*w, id.seq);
    return v;
  }
  if (w->max_seq - id.seq >= window_) {
    v.beyond_window = true;
    return v;
  }
  if (TestAndSet(*w, id.seq)) {
    v.duplicate = true;
  } else {
    v.filled_gap = true;
  }
  return v;
}

bool Deduplicator::TestAndSet(SeqWindow& w, std::uint64_t seq) const {
  std::size_t bit = static_cast<std::size_t>(seq % window_);
  std::uint64_t mask = std::uint64_t{1} << (bit % 64);
  std::uint64_t& word = w.bits[bit / 64];
  bool was = (word & mask) != 0;
  word |= mask;
  return was;
}

void Deduplicator::Advance(SeqWindow& w, std::uint64_t seq) {
  OUTPOST_CHECK(seq > w.max_seq);
  // Clear the bits of the seqs that slide into the window: (max_seq, seq].
  std::uint64_t steps = seq - w.max_seq;
  if (steps >= window_) {
    std::fill(w.bits.begin(), w.bits.end(), 0);
  } else {
    for (std::uint64_t s = w.max_seq + 1; s <= seq; ++s) {
      std::size_t bit = static_cast<std::size_t>(s % window_);
      w.bits[bit / 64] &= ~(std::uint64_t{1} << (bit % 64));
    }
  }
  w.max_seq = seq;
}

Verdict Deduplicator::CheckTimestamp(DeviceState& d, std::int64_t ts) {
  Verdict v;
  for (std::uint8_t i = 0; i < d.ts_count; ++i) {
    if (d.ts_ring[i] == ts) {
      v.duplicate = true;
      return v;
    }
  }
  d.ts_ring[d.ts_next] = ts;
  d.ts_next = static_cast<std::uint8_t>((d.ts_next + 1) % kTimestampRing);
  if (d.ts_count < kTimestampRing) ++d.ts_count;
  return v;
}

}  // namespace outpost::gateway::ingest
