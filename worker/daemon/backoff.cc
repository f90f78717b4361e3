#include "worker/daemon/backoff.h"

#include <algorithm>

namespace sweepq::worker {

Backoff::Backoff(absl::Duration initial, absl::Duration max)
    : initial_(initial),
      max_(std::max(initial, max)),
      ceiling_(initial),
      rng_(std::random_device{}()) {}

absl::Duration Backoff::Next() {
  const double ceiling_s = absl::ToDoubleSeconds(ceiling_);
  std::uniform_real_distribution<double> jitter(ceiling_s / 2, ceiling_s);
  const absl::Duration delay = absl::Seconds(jitter(rng_));
  ceiling_ = std::min(ceiling_ * 2, max_);
  return delay;
}

void Backoff::Reset() { ceiling_ = initial_; }

}  // namespace sweepq::worker
