// ReadingRing: the offline buffer. Fixed capacity over caller storage, FIFO, drop-oldest when
// full. An entry stays until it is released by its PUBACK (Ack) and reaches the front, so
// readings leave in order and none is lost while the broker is away (up to capacity).
// Private to devices/core. Thread: the Node's.
#pragma once

#include <cstddef>
#include <cstdint>

#include "outpost/device/payload.h"

namespace outpost::device {

struct RingEntry {
  Reading reading;
  std::int64_t first_publish_ms = -1;  // -1: never published
  std::uint32_t sent_epoch = 0;        // connection number of the last PUBLISH; 0: not sent
  std::uint16_t packet_id = 0;         // non-zero while awaiting PUBACK
  bool acked = false;
};

class ReadingRing {
 public:
  void Init(RingEntry* storage, std::uint16_t capacity);
  void Clear();

  // Appends; when full, the oldest entry is removed first and copied to `*dropped` (returns
  // true then).
  bool Push(const Reading& r, RingEntry* dropped);
  // i-th entry from the oldest; i < size().
  RingEntry& At(std::size_t i) { return storage_[(head_ + i) % capacity_]; }
  const RingEntry& At(std::size_t i) const { return storage_[(head_ + i) % capacity_]; }
  // Marks the entry with this packet id acked; returns its index or -1.
  int FindPacket(std::uint16_t packet_id) const;
  // Removes acked entries from the front; returns how many.
  std::size_t PopAcked();

  std::size_t size() const { return size_; }
  std::size_t capacity() const { return capacity_; }
  bool empty() const { return size_ == 0; }

 private:
  RingEntry* storage_ = nullptr;
  std::size_t capacity_ = 0;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

}  // namespace outpost::device
