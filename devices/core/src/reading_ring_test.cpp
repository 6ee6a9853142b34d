#include "reading_ring.h"

#include <gtest/gtest.h>

namespace outpost::device {
namespace {

Reading R(std::uint32_t seq) {
  Reading r;
  r.seq = seq;
  return r;
}

TEST(ReadingRingTest, FifoWithDropOldest) {
  RingEntry storage[3];
  ReadingRing ring;
  ring.Init(storage, 3);
  RingEntry dropped;
  EXPECT_FALSE(ring.Push(R(0), &dropped));
  EXPECT_FALSE(ring.Push(R(1), &dropped));
  EXPECT_FALSE(ring.Push(R(2), &dropped));
  EXPECT_TRUE(ring.Push(R(3), &dropped));
  EXPECT_EQ(dropped.reading.seq, 0u);
  ASSERT_EQ(ring.size(), 3u);
  EXPECT_EQ(ring.At(0).reading.seq, 1u);
  EXPECT_EQ(ring.At(2).reading.seq, 3u);
}

TEST(ReadingRingTest, ReleasesOnlyFromTheFrontInOrder) {
  RingEntry storage[4];
  ReadingRing ring;
  ring.Init(storage, 4);
  for (std::uint32_t i = 0; i < 4; ++i) ring.Push(R(i), nullptr);
  ring.At(0).packet_id = 10;
  ring.At(1).packet_id = 11;
  EXPECT_EQ(ring.FindPacket(11), 1);
  EXPECT_EQ(ring.FindPacket(12), -1);
  EXPECT_EQ(ring.FindPacket(0), -1);
  ring.At(1).acked = true;  // acknowledged out of order
  EXPECT_EQ(ring.PopAcked(), 0u);
  EXPECT_EQ(ring.size(), 4u);
  ring.At(0).acked = true;
  EXPECT_EQ(ring.PopAcked(), 2u);
  EXPECT_EQ(ring.At(0).reading.seq, 2u);
  // Wraps around the storage.
  for (std::uint32_t i = 4; i < 6; ++i) EXPECT_FALSE(ring.Push(R(i), nullptr));
  EXPECT_EQ(ring.At(3).reading.seq, 5u);
}

}  // namespace
}  // namespace outpost::device
