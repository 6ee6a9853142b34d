#include "outpost/gateway/ingest/dedupe.h"

#include <algorithm>

#include "outpost/base/check.h"

namespace outpost::gateway::ingest {

Verdict DeviceDedupe::Check(const Identity& id) {
  if (id.has_seq) return CheckSeq(id);
  if (id.has_device_ts) return CheckTimestamp(id.device_ts_raw);
  return Verdict{};
}

Verdict DeviceDedupe::CheckSeq(const Identity& id) {
  Verdict v;
  SeqHistory* h = nullptr;
  if (current_.used && current_.boot == id.boot) {
    h = &current_;
  } else if (previous_.used && previous_.boot == id.boot) {
    h = &previous_;  // a late reading of the boot before: checked, never moves "current"
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
    current_ = SeqHistory{};
    current_.used = true;
    current_.boot = id.boot;
    current_.ranges.push_back(Range{id.seq, id.seq});
    current_.floor = id.seq;
    v.new_boot = true;
    return v;
  }
  if (h == &previous_ && id.seq > h->max_seq() && ++h->went_on >= kBootConflictAfter) {
    // The boot before the newest goes on: the newest was no restart (a forged or stray boot).
    // Forget it entirely, so the device's real next boot starts clean.
    current_ = std::move(previous_);
    current_.went_on = 0;
    previous_ = SeqHistory{};
    h = &current_;
    v.boot_conflict = true;
  }
  if (id.seq > h->max_seq()) {
    const std::uint64_t gap = id.seq - h->max_seq() - 1;
    if (gap > max_jump_) {
      v.seq_jump = true;  // not counted as loss
    } else {
      v.new_gaps = gap;
    }
  } else if (id.seq < h->floor) {
    v.beyond_window = true;  // older than what is remembered: cannot be checked
    return v;
  }
  v.duplicate = Insert(*h, id.seq, &v);
  if (!v.duplicate) Trim(*h);
  return v;
}

bool DeviceDedupe::Insert(SeqHistory& h, std::uint64_t seq, Verdict* v) {
  auto& r = h.ranges;
  if (seq == r.back().hi + 1) {  // the common case: the next one in order
    r.back().hi = seq;
    return false;
  }
  // First range whose hi >= seq.
  auto it = std::lower_bound(r.begin(), r.end(), seq,
                             [](const Range& x, std::uint64_t s) { return x.hi < s; });
  if (it != r.end() && it->lo <= seq) return true;  // inside a range: seen
  if (it != r.end()) v->filled_gap = true;          // below the newest: fills a gap
  bool joins_prev = it != r.begin() && std::prev(it)->hi + 1 == seq;
  bool joins_next = it != r.end() && it->lo == seq + 1;
  if (joins_prev && joins_next) {
    std::prev(it)->hi = it->hi;
    r.erase(it);
  } else if (joins_prev) {
    std::prev(it)->hi = seq;
  } else if (joins_next) {
    it->lo = seq;
  } else {
    r.insert(it, Range{seq, seq});
  }
  return false;
}

void DeviceDedupe::Trim(SeqHistory& h) {
  auto& r = h.ranges;
  if (h.max_seq() > window_) h.floor = std::max(h.floor, h.max_seq() - window_);
  std::size_t drop = 0;
  while (drop + 1 < r.size() && (r[drop].hi < h.floor || r.size() - drop > kMaxRanges)) {
    h.floor = std::max(h.floor, r[drop].hi + 1);
    ++drop;
  }
  r.erase(r.begin(), r.begin() + static_cast<std::ptrdiff_t>(drop));
  if (r.front().lo < h.floor) r.front().lo = h.floor;
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
