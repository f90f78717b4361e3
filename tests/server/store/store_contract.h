// The Store contract: one value-parameterized suite (store_contract.cc) that
// every Store implementation must pass. Instantiate it once per
// implementation in that implementation's test file:
//
//   INSTANTIATE_TEST_SUITE_P(
//       Sqlite, StoreContractTest,
//       ::testing::Values(sweepq::store::StoreFactory(
//           [](const std::string& dir) { return ...; })),
//       [](const auto&) { return std::string("sqlite"); });
//
// The last argument names the parameter so that `ctest -R sqlite` (CTest
// regexes are case-sensitive) selects the instantiation.
//
// ---------------------------------------------------------------------------
// How the suite reads the parts of store.h that leave room (both
// implementations must behave this way; the tests check what is marked *,
// and not what is marked -):
//
// Ids and scoping
//  * Team, sweep and run ids are positive and increase in insertion order
//    (store-wide counters, not per team). ListRuns "newest first" means run
//    id descending; `before_run_id` keeps ids strictly below it.
//  * Worker ids are scoped by team: two teams may both register "gpu1".
//  * Any id of another team (run, sweep, worker) is NOT_FOUND, including a
//    foreign `sweep_id` in RunFilter / LeaderboardQuery / CancelSweep and a
//    foreign run in a LeaseRef, ListArtifacts and ReadRunStream. An unknown
//    team id in InsertSweep is NOT_FOUND.
//  - Only team names are unique (ALREADY_EXISTS); sweep names are not.
//
// Sweeps and runs
//  * InsertSweep copies the sweep's priority, max_attempts, metric and goal
//    onto every run; run `index` is its position in NewSweep::runs; run_ids
//    are returned in that order; Sweep::run_count = runs.size().
//  * max_attempts == 0 is INVALID_ARGUMENT.
//  * Idempotency keys are per team. A reused key returns the earlier sweep's
//    id and run ids (index order) with existing = true, whatever the new
//    request contains, and inserts nothing.
//  * ListRuns: `limit` 0 means 100. Runs come without config and attempts;
//    every other field is filled.
//  - CancelRun returns the run as GetRun does (with config and attempts).
//  * Cancelling a LEASED/RUNNING run twice is OK (stays requested).
//    CancelSweep counts every LEASED/RUNNING run in the second number, even
//    if already requested.
//  * RetryRun clears error, retryable, cancel_requested, finished_at_ms,
//    worker and lease; keeps attempt, the attempt history and the best value.
//    SUCCEEDED, QUEUED, LEASED, RUNNING are FAILED_PRECONDITION.
//
// Workers
//  * UpsertWorker creates a worker ACTIVE with registered_at = last_seen =
//    now; an update sets host, slots, datasets, version, last_seen and keeps
//    state, registered_at, consecutive_failures and quarantine_reason; the
//    state fields of the argument are ignored. Empty worker_id is
//    INVALID_ARGUMENT.
//  * ListWorkers is ordered by worker_id. `running_run_ids` (ascending) is
//    filled by every method that returns a Worker.
//  * DrainWorker on a DRAINING or QUARANTINED worker returns it unchanged.
//
// Leases and fencing
//  * LeaseRun matches the run's dataset against the `datasets` argument
//    (not the worker's registered list). An unknown worker (or one of another
//    team) is FAILED_PRECONDITION too; the message contains the worker id and
//    WorkerState_Name of its state (e.g. "WORKER_STATE_QUARANTINED"), or
//    "not registered".
//  * LeaseGrant::run is the run as GetRun returns it after the lease.
//  * A lease sets run.worker_id, lease_expires_at_ms and started_at_ms (=
//    now, the start of the current attempt) and appends Attempt{attempt,
//    worker, started_at_ms = now, outcome UNSPECIFIED}.
//  * A LeaseRef is current iff the run is LEASED or RUNNING and attempt and
//    lease_id equal the run's. Expiry time alone does not make a lease stale:
//    it stays current until ExpireLeases reclaims it. Heartbeat and FinishRun
//    also require `worker_id` to be the lease holder (else
//    FAILED_PRECONDITION). A rejected write changes nothing.
//  * LeaseRun and Heartbeat set the worker's last_seen_at_ms = now. Only
//    Heartbeat extends a lease (AppendEvents does not).
//  * Directive precedence: CANCEL (cancel_requested) > DRAIN (lease holder
//    is DRAINING) > CONTINUE. A QUARANTINED holder gets CONTINUE.
//
// Events and metrics
//  * Every successful AppendEvents, even an empty batch, turns LEASED into
//    RUNNING; that "state" event is written before the batch's events.
//    Points already present (same run, attempt, name, step) and events
//    already present (same run, attempt, batch_seq, index in the vector)
//    are skipped: the first write wins, and a skipped point does not touch
//    the best value. Points and events are stored with the lease's
//    attempt and a seq that increases in insertion order within the run
//    (watch cursors are per run; SqliteStore numbers metric points per run,
//    events store-wide — both satisfy this).
//  * Best value: only points named like the run's metric with a finite value
//    count. A point replaces the best if its score (value, or -value when
//    minimizing; GOAL_UNSPECIFIED maximizes) is strictly greater, or equal at
//    a smaller step. The best spans all attempts; best_attempt says which.
//  * "state" events: one per state change, including the QUEUED of a run's
//    creation (attempt 0). Payload keys are always all present: "state"
//    (RunState_Name), "attempt" (run.attempt after the change, a JSON
//    number), "worker" (the lease holder the change concerns; "" when none)
//    and "reason" ("lease expired" for expiry, the FinishRun reason, free
//    text otherwise). time_ms = now_ms. cancel_requested is not a state
//    change and writes no event.
//  * ReadRunStream: `limit` 0 means no limit.
//
// Finishing and expiry
//  * FinishRun with OUTCOME_UNSPECIFIED is INVALID_ARGUMENT. `retryable` is
//    read only for FAILED. A FAILED run is requeued iff retryable, attempt <
//    max_attempts and no cancel was requested. A requeue clears worker and
//    lease (lease_expires_at_ms 0) and finished_at_ms; the closed attempt
//    has outcome FAILED. A final state sets finished_at_ms = now, keeps
//    worker_id, clears the lease; the attempt's outcome is that state.
//    run.error = reason for FAILED outcomes (requeued or not);
//    run.retryable = the request's flag for FAILED, else false.
//  * Worker failures: every FAILED outcome (requeued or not) adds one,
//    SUCCEEDED resets to 0, CANCELLED / PRUNED leave it. Reaching
//    quarantine_after (> 0; 0 never quarantines) sets QUARANTINED with a
//    non-empty quarantine_reason. Lease expiry does not count.
//  * ExpireLeases reclaims LEASED/RUNNING runs with lease_expires_at_ms <
//    now_ms (strictly), returned by run id ascending, each with the expired
//    attempt and its worker. cancel_requested -> CANCELLED; else attempt >=
//    max_attempts -> FAILED with run.error containing "lease expired" and
//    the attempt count as digits; else QUEUED (worker and lease cleared).
//    The attempt is closed with ended_at_ms = now, outcome = the new state
//    and reason "lease expired".
//  * NextLeaseExpiry: minimum lease_expires_at_ms over LEASED/RUNNING runs.
//
// Leaderboard and artifacts
//  * Runs in any state with has_best are ranked; rank starts at 1. Unfinished
//    means finished_at_ms == 0. `metric` keeps runs whose sweep metric equals
//    it; `top` 0 means 20. Entries' runs come without config and attempts.
//  * metrics_at_best holds every point of best_attempt at best_step,
//    including the ranked metric, non-finite values as stored.
//  * AddArtifact takes run_id and attempt from the lease and created_at_ms
//    from the artifact. ListArtifacts orders by (attempt, name).
// ---------------------------------------------------------------------------
#ifndef SWEEPQ_TESTS_SERVER_STORE_STORE_CONTRACT_H_
#define SWEEPQ_TESTS_SERVER_STORE_STORE_CONTRACT_H_

#include <functional>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "server/store/store.h"

namespace sweepq::store {

// Builds a fresh, empty store whose files (if any) live under `temp_dir`,
// a directory that exists, is empty and is removed after the test. Returns
// nullptr if the store cannot be opened (the test then fails).
// Store::AppendEvents for tests that hold their batch in vectors.
inline absl::StatusOr<sweepq::v1::Directive> Append(
    Store& store, int64_t team_id, const sweepq::v1::LeaseRef& lease,
    uint64_t batch_seq, const std::vector<sweepq::v1::MetricPoint>& points,
    const std::vector<sweepq::v1::RunEvent>& events, int64_t now_ms) {
  MetricPoints p(points.begin(), points.end());
  RunEvents e(events.begin(), events.end());
  return store.AppendEvents(team_id, lease, batch_seq, p, e, now_ms);
}

using StoreFactory =
    std::function<std::unique_ptr<Store>(const std::string& temp_dir)>;

// Fixture of the contract suite: each test gets a new temporary directory
// and a new store made by the parameter. Not thread-safe itself; tests that
// exercise concurrency share `store_` between their own threads.
class StoreContractTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  // Creates the temporary directory and the store; fails the test if either
  // cannot be made.
  void SetUp() override;

  // Destroys the store, then removes the temporary directory.
  void TearDown() override;

  // The directory handed to the factory (for implementations whose tests
  // reopen the same files).
  std::string temp_dir_;

  // The store under test; owned by the fixture.
  std::unique_ptr<Store> store_;
};

}  // namespace sweepq::store

#endif  // SWEEPQ_TESTS_SERVER_STORE_STORE_CONTRACT_H_
