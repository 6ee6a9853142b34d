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
//
// Hostile input (a forged reading on a device's topic) is bounded:
// - A seq more than `max_jump` above the newest of its boot is a suspicious jump: accepted and
//   flagged (seq_jump), its gap never counted as loss (a jump to 2^63 would wrap the counters).
//   The boot's history moves to it, so the real device's next readings are below the window:
//   accepted unchecked (beyond_window), never swallowed.
// - A new boot is taken for a restart of the device. If the boot before it then goes on
//   (kBootConflictAfter readings above its newest seq: more than a few late stragglers), the
//   "new boot" was not a restart: it is forgotten and the live boot is current again
//   (boot_conflict), so the device's real next boot, when it comes, is not taken for duplicates
//   of the forged one.
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
  bool seq_jump = false;       // more than max_jump above the newest seq of its boot
  bool boot_conflict = false;  // the boot before the newest went on: the newest is forgotten
};

// The de-duplication state of ONE device. The caller keeps one per device (the gateway keeps it
// in its per-device context, so a message costs one hash lookup in all).
class DeviceDedupe {
 public:
  static constexpr std::size_t kTimestampRing = 64;
  static constexpr std::size_t kMaxRanges = 64;
  static constexpr std::uint32_t kBootConflictAfter = 8;

  explicit DeviceDedupe(std::uint64_t window = 1'000'000, std::uint64_t max_jump = 1'000'000)
      : window_(window), max_jump_(max_jump) {}

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
    std::uint32_t went_on = 0;  // as the boot before: readings above its newest seq
    std::uint64_t max_seq() const { return ranges.back().hi; }
  };

  Verdict CheckSeq(const Identity& id);
  Verdict CheckTimestamp(std::int64_t ts);
  // Adds seq to h; returns true if it was there already.
  bool Insert(SeqHistory& h, std::uint64_t seq, Verdict* v);
  void Trim(SeqHistory& h);

  std::uint64_t window_;
  std::uint64_t max_jump_;
  SeqHistory current_, previous_;
  std::uint32_t older_boots_[4] = {};  // boots before `previous_`, most recent first
  std::uint8_t older_count_ = 0;
  std::vector<std::int64_t> ts_ring_;  // allocated for devices identified by timestamp only
  std::uint8_t ts_next_ = 0;
};

}  // namespace outpost::gateway::ingest
