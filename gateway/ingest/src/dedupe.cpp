#include "outpost/gateway/ingest/dedupe.h"

#include <algorithm>

#include "outpost/base/check.h"

namespace outpost::gateway::ingest {

DeviceDedupe::DeviceDedupe(std::size_t window) : window_(std::max<std::size_t>(64, window)) {
  window_ = (window_ + 63) / 64 * 64;  // whole words
}

Verdict DeviceDedupe::Check(const Identity& id) {
  if (id.has_seq) return CheckSeq(id);
  if (id.has_device_ts) return CheckTimestamp(id.device_ts_raw);
  return Verdict{};
}

Verdict DeviceDedupe::CheckSeq(const Identity& id) {
  Verdict v;
  SeqWindow* w = nullptr;
  if (current_.used && current_.boot == id.boot) {
    w = &current_;
  } else if (previous_.used && previous_.boot == id.boot) {
    w = &previous_;  // a late reading of the boot before: checked, never moves "current"
  } else if (std::find(older_boots_, older_boots_ + older_count_, id.boot) !=
             older_boots_ + older_count_) {
    // A straggler from an older boot: accepted unchecked, and it must not become "current".
    v.beyond_window = true;
    return v;
  } else {
    // A boot we have not seen: the device restarted. Keep one boot of history.
    if (previous_.used) {
      std::copy_backward(older_boots_, older_boots_ + 3, older_boots_ + 4);
      older_boots_[0] = previous_.boot;
      older_count_ = static_cast<std::uint8_t>(std::min(4, older_count_ + 1));
    }
    previous_ = std::move(current_);
    current_ = SeqWindow{};
    current_.used = true;
    current_.boot = id.boot;
    current_.max_seq = id.seq;
    current_.bits.assign(window_ / 64, 0);
    v.new_boot = true;
    (void)TestAndSet(current_, id.seq);
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

bool DeviceDedupe::TestAndSet(SeqWindow& w, std::uint64_t seq) const {
  std::size_t bit = static_cast<std::size_t>(seq % window_);
  std::uint64_t mask = std::uint64_t{1} << (bit % 64);
  std::uint64_t& word = w.bits[bit / 64];
  bool was = (word & mask) != 0;
  word |= mask;
  return was;
}

void DeviceDedupe::Advance(SeqWindow& w, std::uint64_t seq) {
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

Verdict DeviceDedupe::CheckTimestamp(std::int64_t ts) {
  Verdict v;
  for (std::int64_t seen : ts_ring_) {
    if (seen == ts) {
      v.duplicate = true;
      return v;
    }
  }
  if (ts_ring_.size() < kTimestampRing) {
    ts_ring_.push_back(ts);
  } else {
    ts_ring_[ts_next_] = ts;
    ts_next_ = static_cast<std::uint8_t>((ts_next_ + 1) % kTimestampRing);
  }
  return v;
}

}  // namespace outpost::gateway::ingest
