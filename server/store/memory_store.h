// InMemoryStore: the Store kept in maps, for tests of the layers above.
#ifndef SWEEPQ_SERVER_STORE_MEMORY_STORE_H_
#define SWEEPQ_SERVER_STORE_MEMORY_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/store/store.h"
#include "sweepq/v1/coordinator.pb.h"

namespace sweepq::store {

// A Store whose state lives in process memory and is lost with the object.
// Behaves as store.h and tests/server/store/store_contract.h describe, so
// tests of the scheduler and the gRPC adapter can use it instead of SQLite.
//
// Thread safety: every method may be called from any thread; one mutex
// serialises them, which makes each call atomic as the contract requires.
class InMemoryStore : public Store {
 public:
  // Creates an empty store. Ids start at 1.
  InMemoryStore();
  ~InMemoryStore() override;

  InMemoryStore(const InMemoryStore&) = delete;
  InMemoryStore& operator=(const InMemoryStore&) = delete;

  // ---- Teams ----

  // See Store::CreateTeam. INVALID_ARGUMENT for an empty name.
  absl::StatusOr<int64_t> CreateTeam(const std::string& name,
                                     const std::string& member_token_hash,
                                     const std::string& worker_token_hash,
                                     int64_t now_ms) override;
  // See Store::FindToken.
  absl::StatusOr<TeamPrincipal> FindToken(
      const std::string& token_hash) override;
  // See Store::RotateToken.
  absl::Status RotateToken(const std::string& team_name, Role role,
                           const std::string& new_hash) override;

  // ---- Sweeps and runs ----

  // See Store::InsertSweep. NOT_FOUND for an unknown team, INVALID_ARGUMENT
  // for max_attempts 0.
  absl::StatusOr<InsertSweepResult> InsertSweep(int64_t team_id,
                                                const NewSweep& sweep,
                                                int64_t now_ms) override;
  // See Store::GetSweep.
  absl::StatusOr<sweepq::v1::Sweep> GetSweep(int64_t team_id,
                                             int64_t sweep_id) override;
  // See Store::ListRuns. NOT_FOUND for a foreign filter.sweep_id.
  absl::StatusOr<std::vector<sweepq::v1::Run>> ListRuns(
      int64_t team_id, const RunFilter& filter) override;
  // See Store::GetRun.
  absl::StatusOr<sweepq::v1::Run> GetRun(int64_t team_id,
                                         int64_t run_id) override;
  // See Store::CancelRun.
  absl::StatusOr<sweepq::v1::Run> CancelRun(int64_t team_id, int64_t run_id,
                                            int64_t now_ms) override;
  // See Store::CancelSweep.
  absl::StatusOr<std::pair<uint32_t, uint32_t>> CancelSweep(
      int64_t team_id, int64_t sweep_id, int64_t now_ms) override;
  // See Store::RetryRun.
  absl::StatusOr<sweepq::v1::Run> RetryRun(int64_t team_id, int64_t run_id,
                                           int64_t now_ms) override;
  // See Store::Leaderboard. NOT_FOUND for a foreign query.sweep_id.
  absl::StatusOr<std::vector<sweepq::v1::LeaderboardEntry>> Leaderboard(
      int64_t team_id, const LeaderboardQuery& query) override;
  // See Store::ReadRunStream. `limit` 0 means no limit.
  absl::StatusOr<WatchBatch> ReadRunStream(int64_t team_id, int64_t run_id,
                                           int64_t after_metric_seq,
                                           int64_t after_event_seq,
                                           uint32_t limit) override;

  // ---- Workers ----

  // See Store::UpsertWorker. INVALID_ARGUMENT for an empty worker_id,
  // NOT_FOUND for an unknown team.
  absl::StatusOr<sweepq::v1::Worker> UpsertWorker(
      int64_t team_id, const sweepq::v1::Worker& worker,
      int64_t now_ms) override;
  // See Store::ListWorkers. Ordered by worker_id.
  absl::StatusOr<std::vector<sweepq::v1::Worker>> ListWorkers(
      int64_t team_id) override;
  // See Store::GetWorker.
  absl::StatusOr<sweepq::v1::Worker> GetWorker(
      int64_t team_id, const std::string& worker_id) override;
  // See Store::DrainWorker.
  absl::StatusOr<sweepq::v1::Worker> DrainWorker(
      int64_t team_id, const std::string& worker_id) override;
  // See Store::ClearWorker.
  absl::StatusOr<sweepq::v1::Worker> ClearWorker(
      int64_t team_id, const std::string& worker_id) override;

  // ---- Leases ----

  // See Store::LeaseRun.
  absl::StatusOr<std::optional<LeaseGrant>> LeaseRun(
      int64_t team_id, const std::string& worker_id,
      const std::vector<std::string>& datasets, int64_t now_ms,
      int64_t ttl_ms) override;
  // See Store::Heartbeat.
  absl::StatusOr<HeartbeatResult> Heartbeat(int64_t team_id,
                                            const std::string& worker_id,
                                            const sweepq::v1::LeaseRef& lease,
                                            int64_t now_ms,
                                            int64_t ttl_ms) override;
  // See Store::AppendEvents.
  absl::StatusOr<sweepq::v1::Directive> AppendEvents(
      int64_t team_id, const sweepq::v1::LeaseRef& lease, uint64_t batch_seq,
      const MetricPoints& points, const RunEvents& events, int64_t now_ms) override;
  // See Store::AddArtifact.
  absl::Status AddArtifact(int64_t team_id, const sweepq::v1::LeaseRef& lease,
                           const sweepq::v1::Artifact& artifact) override;
  // See Store::ListArtifacts. Ordered by (attempt, name).
  absl::StatusOr<std::vector<sweepq::v1::Artifact>> ListArtifacts(
      int64_t team_id, int64_t run_id) override;
  // See Store::FinishRun. INVALID_ARGUMENT for OUTCOME_UNSPECIFIED.
  absl::StatusOr<sweepq::v1::RunState> FinishRun(
      int64_t team_id, const FinishRequest& request) override;
  // See Store::ExpireLeases. Results by run id ascending.
  absl::StatusOr<std::vector<ExpiredLease>> ExpireLeases(
      int64_t now_ms) override;
  // See Store::NextLeaseExpiry.
  absl::StatusOr<std::optional<int64_t>> NextLeaseExpiry() override;

 private:
  struct TeamRow {
    std::string name;
    std::string member_token_hash;
    std::string worker_token_hash;
    int64_t created_at_ms = 0;
  };

  struct SweepRow {
    int64_t team_id = 0;
    uint32_t max_attempts = 0;
    sweepq::v1::Sweep sweep;
    std::vector<int64_t> run_ids;  // by index
  };

  // A run with its config, attempts, lease id and everything it reported.
  struct RunRow {
    int64_t team_id = 0;
    uint64_t lease_id = 0;  // 0 = no lease
    sweepq::v1::Run run;
    // (attempt, step, name) -> seq; ordered so that one (attempt, step) is
    // a contiguous range (metrics_at_best).
    std::map<std::tuple<uint32_t, int64_t, std::string>, int64_t> metric_keys;
    std::map<int64_t, sweepq::v1::MetricPoint> metrics;  // by seq
    std::set<std::tuple<uint32_t, uint64_t, uint32_t>> event_keys;
    std::map<int64_t, sweepq::v1::RunEvent> events;  // by seq
    std::map<std::pair<uint32_t, std::string>, sweepq::v1::Artifact> artifacts;
  };

  using WorkerKey = std::pair<int64_t, std::string>;  // (team, worker id)

  // The team's run, or NOT_FOUND.
  absl::StatusOr<RunRow*> FindRunLocked(int64_t team_id, int64_t run_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The team's sweep, or NOT_FOUND.
  absl::StatusOr<SweepRow*> FindSweepLocked(int64_t team_id, int64_t sweep_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The team's worker, or NOT_FOUND.
  absl::StatusOr<sweepq::v1::Worker*> FindWorkerLocked(
      int64_t team_id, const std::string& worker_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The run the lease names if the lease is current (and held by
  // `worker_id` unless that is null); NOT_FOUND for a foreign run,
  // FAILED_PRECONDITION for a stale lease.
  absl::StatusOr<RunRow*> FindLeasedRunLocked(int64_t team_id,
                                              const sweepq::v1::LeaseRef& lease,
                                              const std::string* worker_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Moves the run to `state`, keeps `active_runs_` in step and appends the
  // "state" event naming `worker` and `reason`.
  void SetStateLocked(RunRow& row, sweepq::v1::RunState state,
                      const std::string& worker, const std::string& reason,
                      int64_t now_ms) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Closes the run's current attempt record.
  static void CloseAttempt(RunRow& row, sweepq::v1::RunState outcome,
                           const std::string& reason, int64_t now_ms);
  // Appends an event with the next event seq and the run's attempt.
  void AppendEventLocked(RunRow& row, sweepq::v1::RunEvent event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Cancels a QUEUED run now or flags a leased one. Returns true if the run
  // was cancelled now; FAILED_PRECONDITION for a final run.
  absl::StatusOr<bool> CancelLocked(RunRow& row, int64_t now_ms)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What the lease holder of `row` should do next.
  sweepq::v1::Directive DirectiveLocked(const RunRow& row)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Copy of the worker with running_run_ids filled.
  sweepq::v1::Worker WorkerViewLocked(int64_t team_id,
                                      const sweepq::v1::Worker& worker)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  int64_t next_team_id_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t next_sweep_id_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t next_run_id_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t next_metric_seq_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t next_event_seq_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int64_t, TeamRow> teams_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, SweepRow> sweeps_ ABSL_GUARDED_BY(mu_);
  // (team, idempotency key) -> sweep id.
  std::map<std::pair<int64_t, std::string>, int64_t> idempotency_
      ABSL_GUARDED_BY(mu_);
  std::map<int64_t, RunRow> runs_ ABSL_GUARDED_BY(mu_);
  // Ids of LEASED and RUNNING runs.
  std::set<int64_t> active_runs_ ABSL_GUARDED_BY(mu_);
  std::map<WorkerKey, sweepq::v1::Worker> workers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sweepq::store

#endif  // SWEEPQ_SERVER_STORE_MEMORY_STORE_H_
