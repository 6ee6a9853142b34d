// DeviceDedupe decides whether a reading's identity was seen before, and counts seq gaps.
// Identity (docs/formats/readings.md): (device_id, boot, seq) when the device sends boot and seq,
// else (device_id, device timestamp as sent). Readings with neither cannot be told apart and are
// always new.
//
// Per boot (the current one and the one before) it keeps the seqs seen as sorted, disjoint
// ranges: a device sending in order needs one range, each gap one more. It remembers seqs back
// to `window` below the newest, and at most kMaxRanges ranges (the oldest are forgotten first);
// an older seq is accepted unchecked and counted (beyond_window). The broker may redeliver far
// more than it has outstanding — Mosquitto processes acknowledgements lazily while it floods a
// reconnecting client — so the window is large and cheap.
// Memory: 16 bytes per range, plus a 64-entry ring for devices identified by timestamp.
// Thread: not thread-safe; owned by the ingest (event loop) thread. Pure: no I/O, no clock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace outpost::gateway::ingest {

struct Identity {
  bool has_seq = false;
  std::uint32_t boot = 0;
  std::uint64_t seq = 0;
  bool has_device_ts = false;
  std::int64_t device_ts_raw = 0;
};

struct Verdict {
  bool duplicate = false;
  std::uint64_t new_gaps = 0;  // seqs skipped by this reading (counted as loss)
  bool filled_gap = false;     // a late reading that fills an earlier gap
  bool beyond_window = false;  // older than the window: accepted, not checked
  bool new_boot = false;
};

// The de-duplication state of ONE device. The caller keeps one per device (the gateway keeps it
// in its per-device context, so a message costs one hash lookup in all).
class DeviceDedupe {
 public:
  static constexpr std::size_t kTimestampRing = 64;
  static constexpr std::size_t kMaxRanges = 64;

  explicit DeviceDedupe(std::uint64_t window = 1'000'000) : window_(window) {}

  // Records the identity and says whether it is a duplicate. A duplicate changes nothing.
  Verdict Check(const Identity& id);

 private:
  struct Range {
    std::uint64_t lo, hi;  // inclusive
  };
  struct SeqHistory {
    bool used = false;
    std::uint32_t boot = 0;
    std::vector<Range> ranges;  // sorted, disjoint, not adjacent
    std::uint64_t floor = 0;    // seqs below this are not remembered
    std::uint64_t max_seq() const { return ranges.back().hi; }
  };

  Verdict CheckSeq(const Identity& id);
  Verdict CheckTimestamp(std::int64_t ts);
  // Adds seq to h; returns true if it was there already.
  bool Insert(SeqHistory& h, std::uint64_t seq, Verdict* v);
  void Trim(SeqHistory& h);

  std::uint64_t window_;
  SeqHistory current_, previous_;
  std::uint32_t older_boots_[4] = {};  // boots before `previous_`, most recent first
  std::uint8_t older_count_ = 0;
  std::vector<std::int64_t> ts_ring_;  // allocated for devices identified by timestamp only
  std::uint8_t ts_next_ = 0;
};

}  // namespace outpost::gateway::ingest
