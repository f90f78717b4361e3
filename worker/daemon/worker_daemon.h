// WorkerDaemon: sweepq-worker's top-level object. It registers with the
// coordinator, runs one lease loop per slot (each leased run becomes an
// Attempt, see attempt.h), replays event spools an earlier daemon left
// behind, and keeps a circuit breaker.
//
// Circuit breaker: after `max_consecutive_failures` runs of this host ended
// FAILED in a row (as acknowledged by FinishRun; lost leases, cancels and
// runs stopped by a shutdown do not count; a success resets the count), the
// daemon stops leasing; runs in progress finish. The coordinator keeps the
// same count per worker (Worker.consecutive_failures) and quarantines the
// worker itself at `sweepq-server --quarantine-after` (default 3, the
// daemon's default too), so with equal settings both trip on the same run
// and `sweepq workers` shows the host QUARANTINED with the reason. A Lease
// refused because the coordinator quarantined the worker trips the breaker
// as well. While tripped, the daemon re-registers every probe interval and
// resumes once the coordinator's record shows the worker ACTIVE with zero
// failures, i.e. after `sweepq workers clear ID`.
//
// Shutdown: Drain() (first SIGTERM) stops leasing — parked Lease calls are
// cancelled — lets the runs in progress finish and makes Run() return.
// Abort() (second SIGTERM) also stops every child (SIGTERM, SIGKILL after
// the grace period) and finishes its run FAILED and retryable, so another
// worker resumes it from its last checkpoint.
//
// Thread safety: Run() on one thread; Drain() and Abort() from any thread
// (a signal-handling thread).
#ifndef SWEEPQ_WORKER_DAEMON_WORKER_DAEMON_H_
#define SWEEPQ_WORKER_DAEMON_WORKER_DAEMON_H_

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "worker/daemon/attempt.h"
#include "worker/daemon/coordinator_client.h"
#include "worker/daemon/options.h"

namespace sweepq::worker {

class WorkerDaemon {
 public:
  // Creates the work and spool directories, takes an exclusive lock on the
  // work directory and builds the channel (it connects lazily).
  // FAILED_PRECONDITION when another daemon holds the lock, INTERNAL when
  // a directory cannot be created, INVALID_ARGUMENT for a bad CA file.
  static absl::StatusOr<std::unique_ptr<WorkerDaemon>> Create(
      WorkerOptions options);
  ~WorkerDaemon();
  WorkerDaemon(const WorkerDaemon&) = delete;
  WorkerDaemon& operator=(const WorkerDaemon&) = delete;

  // Registers (retrying with backoff while the coordinator is unreachable),
  // then leases and runs until drained. Returns OK after a drain, or the
  // error that stopped the daemon (registration or a call refused for a
  // bad or rotated token).
  absl::Status Run();

  // Stops leasing; Run() returns once the runs in progress finished.
  void Drain();

  // Drain() and stop every run in progress now (see the file comment).
  void Abort();

 private:
  WorkerDaemon(WorkerOptions options, std::unique_ptr<CoordinatorClient> client,
               int lock_fd);

  absl::StatusOr<sweepq::v1::RegisterWorkerResponse> Register();
  void SlotLoop(const Slot& slot);
  // Runs one leased attempt on `slot` to its end; returns the run its
  // FinishRun granted, if any.
  std::optional<sweepq::v1::LeaseResponse> RunAttempt(
      const Slot& slot, sweepq::v1::LeaseResponse lease);
  void ReplayOrphans(const std::vector<std::string>& dirs);
  void OnAttemptEnd(const std::string& tag, const AttemptResult& result);
  void TripBreaker(const std::string& reason);
  // While the breaker is tripped: sleeps, probes, returns true once it is
  // cleared, false when draining.
  bool WaitWhileTripped();
  // Sleeps up to `d`; false (early) when draining.
  bool SleepUnlessDraining(absl::Duration d);
  void Fatal(const absl::Status& status);
  bool draining() const;

  const WorkerOptions options_;
  const std::unique_ptr<CoordinatorClient> client_;
  const int lock_fd_;

  mutable absl::Mutex mu_;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool aborting_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status fatal_ ABSL_GUARDED_BY(mu_);
  bool tripped_ ABSL_GUARDED_BY(mu_) = false;
  uint32_t consecutive_failures_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time next_probe_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool drain_directive_logged_ ABSL_GUARDED_BY(mu_) = false;
  std::set<Attempt*> active_ ABSL_GUARDED_BY(mu_);
  std::set<CallCanceller*> leases_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_DAEMON_WORKER_DAEMON_H_
