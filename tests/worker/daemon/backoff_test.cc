#include "worker/daemon/backoff.h"

#include "gtest/gtest.h"

namespace sweepq::worker {
namespace {

TEST(BackoffTest, DelaysDoubleWithinTheirJitterBandUpToTheCeiling) {
  Backoff backoff(absl::Milliseconds(100), absl::Milliseconds(800));
  absl::Duration ceiling = absl::Milliseconds(100);
  for (int i = 0; i < 8; ++i) {
    const absl::Duration d = backoff.Next();
    EXPECT_GE(d, ceiling / 2) << i;
    EXPECT_LE(d, ceiling) << i;
    ceiling = std::min(ceiling * 2, absl::Milliseconds(800));
  }
}

TEST(BackoffTest, ResetStartsOverAtTheInitialDelay) {
  Backoff backoff(absl::Milliseconds(100), absl::Seconds(10));
  for (int i = 0; i < 6; ++i) backoff.Next();
  backoff.Reset();
  EXPECT_LE(backoff.Next(), absl::Milliseconds(100));
}

TEST(BackoffTest, JitterSpreadsDelays) {
  Backoff a(absl::Seconds(1), absl::Seconds(1));
  bool differ = false;
  const absl::Duration first = a.Next();
  for (int i = 0; i < 20 && !differ; ++i) differ = a.Next() != first;
  EXPECT_TRUE(differ);
}

}  // namespace
}  // namespace sweepq::worker
