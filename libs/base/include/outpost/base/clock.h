// Clock: time is an input. Domain code takes a Clock& (or a `now`) and never reads the
// system clock itself, so tests drive time with FakeClock.
// Thread: SystemClock is thread-safe; FakeClock is not.
#pragma once

#include <cstdint>

namespace outpost {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time, milliseconds since the Unix epoch. May jump.
  virtual std::int64_t wall_ms() const = 0;
  // Monotonic time in milliseconds from an arbitrary origin. Never goes back.
  virtual std::int64_t steady_ms() const = 0;
};

class SystemClock final : public Clock {
 public:
  std::int64_t wall_ms() const override;
  std::int64_t steady_ms() const override;
};

class FakeClock final : public Clock {
 public:
  explicit FakeClock(std::int64_t wall_ms = 1'700'000'000'000) : wall_(wall_ms) {}
  std::int64_t wall_ms() const override { return wall_; }
  std::int64_t steady_ms() const override { return steady_; }
  void Advance(std::int64_t ms) {
    wall_ += ms;
    steady_ += ms;
  }
  void SetWall(std::int64_t ms) { wall_ = ms; }

 private:
  std::int64_t wall_;
  std::int64_t steady_ = 0;
};

}  // namespace outpost
