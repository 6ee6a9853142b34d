#include "reading_ring.h"

namespace outpost::device {

void ReadingRing::Init(RingEntry* storage, std::uint16_t capacity) {
  storage_ = storage;
  capacity_ = capacity;
  Clear();
}

void ReadingRing::Clear() {
  head_ = 0;
  size_ = 0;
}

bool ReadingRing::Push(const Reading& r, RingEntry* dropped) {
  bool dropped_one = false;
  if (size_ == capacity_) {
    if (dropped != nullptr) *dropped = At(0);
    head_ = (head_ + 1) % capacity_;
    --size_;
    dropped_one = true;
  }
  RingEntry& e = storage_[(head_ + size_) % capacity_];
  e = RingEntry{};
  e.reading = r;
  ++size_;
  return dropped_one;
}

int ReadingRing::FindPacket(std::uint16_t packet_id) const {
  if (packet_id == 0) return -1;
  for (std::size_t i = 0; i < size_; ++i) {
    const RingEntry& e = At(i);
    if (e.packet_id == packet_id && !e.acked) return static_cast<int>(i);
  }
  return -1;
}

std::size_t ReadingRing::PopAcked() {
  std::size_t n = 0;
  while (size_ > 0 && At(0).acked) {
    head_ = (head_ + 1) % capacity_;
    --size_;
    ++n;
  }
  return n;
}

}  // namespace outpost::device
