// Clock: where the coordinator reads time, so lease tests need no sleeps.
#ifndef SWEEPQ_COMMON_CLOCK_H_
#define SWEEPQ_COMMON_CLOCK_H_

#include <atomic>
#include <cstdint>
#include <memory>

namespace sweepq {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch. Thread-safe.
  virtual int64_t NowMs() const = 0;
};

// The wall clock. Thread-safe; one shared instance is fine.
class SystemClock : public Clock {
 public:
  int64_t NowMs() const override;
};

// A clock tests move by hand. Thread-safe.
class FakeClock : public Clock {
 public:
  explicit FakeClock(int64_t start_ms = 1'700'000'000'000) : now_ms_(start_ms) {}
  int64_t NowMs() const override { return now_ms_.load(); }
  void AdvanceMs(int64_t delta_ms) { now_ms_ += delta_ms; }
  void SetMs(int64_t now_ms) { now_ms_ = now_ms; }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace sweepq

#endif  // SWEEPQ_COMMON_CLOCK_H_
