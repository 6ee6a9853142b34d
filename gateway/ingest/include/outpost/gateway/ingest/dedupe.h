// DeviceDedupe decides whether a reading's identity was seen before, and counts seq gaps.
// Identity (docs/formats/readings.md): (device_id, boot, seq) when the device sends boot and seq,
// else (device_id, device timestamp as sent). Readings with neither cannot be told apart and are
// always new.
//
// Per device it keeps a sliding window of `window` sequence numbers for the current and the
// previous boot, and the last kTimestampRing device timestamps. A seq older than the window is
// accepted as late (it cannot be checked) and counted: the device core sends in seq order, so
// this only happens after more than `window` newer readings of the same boot.
// Memory: about window/4 bytes per device (two bitmaps) plus a small fixed ring.
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

  explicit DeviceDedupe(std::size_t window = 1024);

  // Records the identity and says whether it is a duplicate. A duplicate changes nothing.
  Verdict Check(const Identity& id);

 private:
  struct SeqWindow {
    bool used = false;
    std::uint32_t boot = 0;
    std::uint64_t max_seq = 0;
    std::vector<std::uint64_t> bits;  // bit (seq % window) set = seen; valid for (max-window, max]
  };

  Verdict CheckSeq(const Identity& id);
  Verdict CheckTimestamp(std::int64_t ts);
  bool TestAndSet(SeqWindow& w, std::uint64_t seq) const;  // true if it was already set
  void Advance(SeqWindow& w, std::uint64_t seq);

  std::size_t window_;
  SeqWindow current_, previous_;
  std::uint32_t older_boots_[4] = {};  // boots before `previous_`, most recent first
  std::uint8_t older_count_ = 0;
  std::vector<std::int64_t> ts_ring_;  // allocated for devices identified by timestamp only
  std::uint8_t ts_next_ = 0;
};

}  // namespace outpost::gateway::ingest
