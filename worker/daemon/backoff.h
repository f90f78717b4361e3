// Backoff: jittered exponential delays between retries of a failed call, so
// that a fleet of workers reconnecting to a restarted coordinator spreads
// out instead of arriving in lock step.
//
// Thread safety: not thread-safe; each retry loop owns one.
#ifndef SWEEPQ_WORKER_DAEMON_BACKOFF_H_
#define SWEEPQ_WORKER_DAEMON_BACKOFF_H_

#include <cstdint>
#include <random>

#include "absl/time/time.h"

namespace sweepq::worker {

class Backoff {
 public:
  // Delays start at `initial` and double up to `max`.
  Backoff(absl::Duration initial, absl::Duration max);

  // Returns the next delay: uniform in [d/2, d] where d is the current
  // ceiling, then doubles the ceiling (up to max).
  absl::Duration Next();

  // Back to the initial ceiling (after a success).
  void Reset();

 private:
  const absl::Duration initial_;
  const absl::Duration max_;
  absl::Duration ceiling_;
  std::mt19937_64 rng_;
};

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_DAEMON_BACKOFF_H_
