// Coordinator: the domain logic of sweepq-server, free of gRPC and SQLite.
//
// It validates requests, expands sweeps, runs the lease long-poll, wakes
// watchers when events arrive, stores artifacts and expires leases. All
// state lives in the Store; the Coordinator adds only wake-ups.
//
// Thread safety: every public method may be called from any thread
// concurrently (gRPC handler threads, the expiry thread).
#ifndef SWEEPQ_SERVER_COORDINATOR_H_
#define SWEEPQ_SERVER_COORDINATOR_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "server/artifact_store.h"
#include "server/store/store.h"
#include "sweepq/v1/coordinator.pb.h"

namespace sweepq::server {

struct CoordinatorOptions {
  // Lease time to live; workers heartbeat every ttl / 3.
  int64_t lease_ttl_ms = 30'000;
  // Longest a Lease call waits for a run.
  int64_t max_lease_wait_ms = 30'000;
  // A worker with this many consecutive failed runs is quarantined.
  uint32_t quarantine_after = 3;
  // Largest sweep expansion accepted.
  uint64_t max_runs_per_sweep = 10'000;
  // How often the expiry thread looks for expired leases (real time).
  int64_t expiry_interval_ms = 500;
  // Start the expiry thread (tests with a fake clock call ExpireLeasesNow).
  bool run_expiry_thread = true;
};

// Input limits, enforced with INVALID_ARGUMENT naming the field.
inline constexpr size_t kMaxSpecBytes = 1 << 20;
inline constexpr size_t kMaxNameBytes = 256;
inline constexpr size_t kMaxMetricNameBytes = 128;
inline constexpr size_t kMaxPointsPerBatch = 50'000;
inline constexpr size_t kMaxEventsPerBatch = 1'000;
inline constexpr size_t kMaxEventPayloadBytes = 64 << 10;
inline constexpr size_t kMaxReasonBytes = 16 << 10;
inline constexpr uint32_t kMaxLeaderboardTop = 1'000;
inline constexpr uint32_t kMaxListLimit = 10'000;

// Returns true when the caller has gone away (client cancelled, deadline).
using CancelledFn = std::function<bool()>;

// Completion of an asynchronous Coordinator call (*Async): called exactly
// once with what the synchronous namesake would have returned.
template <typename T>
using Done = absl::AnyInvocable<void(absl::StatusOr<T>)>;

class Coordinator {
 public:
  // `store`, `clock` and `artifacts` must outlive the Coordinator.
  Coordinator(store::Store* store, const Clock* clock,
              ArtifactStore* artifacts, CoordinatorOptions options);
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  const CoordinatorOptions& options() const { return options_; }

  // ---- Teams (admin) ----

  struct NewTeamTokens {
    std::string member_token;
    std::string worker_token;
  };
  // Creates a team and returns its two tokens (shown once; only their
  // SHA-256 is stored). ALREADY_EXISTS if the name is taken.
  absl::StatusOr<NewTeamTokens> CreateTeam(const std::string& name);

  // Issues a new token for one role of a team, invalidating the old one.
  absl::StatusOr<std::string> RotateToken(const std::string& team,
                                          store::Role role);

  // ---- People ----

  absl::StatusOr<sweepq::v1::SubmitSweepResponse> SubmitSweep(
      int64_t team_id, const sweepq::v1::SubmitSweepRequest& request);
  absl::StatusOr<std::vector<sweepq::v1::Run>> ListRuns(
      int64_t team_id, const sweepq::v1::ListRunsRequest& request);
  absl::StatusOr<sweepq::v1::Run> GetRun(int64_t team_id, int64_t run_id);
  absl::StatusOr<std::vector<sweepq::v1::LeaderboardEntry>> Leaderboard(
      int64_t team_id, const sweepq::v1::LeaderboardRequest& request);
  absl::StatusOr<sweepq::v1::CancelRunResponse> CancelRun(int64_t team_id,
                                                          int64_t run_id);
  absl::StatusOr<sweepq::v1::CancelSweepResponse> CancelSweep(
      int64_t team_id, int64_t sweep_id);
  absl::StatusOr<sweepq::v1::Run> RetryRun(int64_t team_id, int64_t run_id);
  absl::StatusOr<std::vector<sweepq::v1::Worker>> ListWorkers(
      int64_t team_id);
  absl::StatusOr<sweepq::v1::Worker> DrainWorker(int64_t team_id,
                                                 const std::string& id);
  absl::StatusOr<sweepq::v1::Worker> ClearWorker(int64_t team_id,
                                                 const std::string& id);
  absl::StatusOr<std::vector<sweepq::v1::Artifact>> ListArtifacts(
      int64_t team_id, int64_t run_id);

  // Finds an artifact of the run (newest attempt when attempt is 0) and
  // opens its content. NOT_FOUND if the run or artifact is unknown.
  absl::StatusOr<std::pair<sweepq::v1::Artifact,
                           std::unique_ptr<ArtifactStore::Reader>>>
  OpenArtifact(int64_t team_id, int64_t run_id, const std::string& name,
               uint32_t attempt);

  // Calls `emit` for every metric point and event of the run after the
  // cursors, in order, waiting for new ones, until the run is final and
  // everything was sent, `emit` returns false, or `cancelled()`. Returns
  // OK at the run's end, CANCELLED when the caller went away.
  absl::Status WatchRun(
      int64_t team_id, const sweepq::v1::WatchRunRequest& request,
      const std::function<bool(const sweepq::v1::WatchRunResponse&)>& emit,
      const CancelledFn& cancelled);

  // ---- Workers ----

  absl::StatusOr<sweepq::v1::RegisterWorkerResponse> RegisterWorker(
      int64_t team_id, const sweepq::v1::RegisterWorkerRequest& request);

  // Leases the best run the worker can serve, waiting up to
  // min(wait_ms, max_lease_wait_ms) for one to be queued. A draining worker
  // gets no run and directive DRAIN; a quarantined one FAILED_PRECONDITION.
  absl::StatusOr<sweepq::v1::LeaseResponse> Lease(
      int64_t team_id, const sweepq::v1::LeaseRequest& request,
      const CancelledFn& cancelled);

  // One Lease attempt that never waits: a granted run, DRAIN, or an empty
  // answer (granted = false). Errors as Lease.
  absl::StatusOr<sweepq::v1::LeaseResponse> TryLease(
      int64_t team_id, const sweepq::v1::LeaseRequest& request);
  // TryLease that does not wait for the commit of the lease: `done` gets
  // the answer on this thread (errors found before the write, DRAIN) or
  // on the thread that committed it. `request` must stay valid until then.
  void TryLeaseAsync(int64_t team_id, const sweepq::v1::LeaseRequest& request,
                     Done<sweepq::v1::LeaseResponse> done);

  // How long a Lease call may wait: its wait_ms capped by the options.
  absl::Duration LeaseWait(const sweepq::v1::LeaseRequest& request) const;

  // A counter bumped whenever a run may have become leasable (a sweep
  // submitted, a run requeued or retried, a worker drained).
  uint64_t QueueGeneration();

  // Waits until QueueGeneration() differs from `seen` or `max_wait` passed.
  // Returns false once the coordinator is shutting down.
  bool WaitForQueueChange(uint64_t seen, absl::Duration max_wait);

  absl::StatusOr<sweepq::v1::HeartbeatResponse> Heartbeat(
      int64_t team_id, const sweepq::v1::HeartbeatRequest& request);
  // Stores a batch, or with request.finish is that FinishRun (its answer
  // in `finished`; see ReportEventsRequest.finish), answered through `done`
  // once committed (see TryLeaseAsync for the thread); the ack thus means
  // durable.
  void ReportEventsAsync(int64_t team_id,
                         const sweepq::v1::ReportEventsRequest& request,
                         Done<sweepq::v1::ReportEventsResponse> done);

  // Lists an uploaded artifact under a current lease. `header` carries the
  // name and the size/sha256 the worker announced; `upload` must have been
  // committed (verified) already.
  absl::StatusOr<sweepq::v1::Artifact> AddArtifact(
      int64_t team_id, const sweepq::v1::LeaseRef& lease,
      const sweepq::v1::Artifact& stored);

  // Opens an artifact of the run `lease` names (newest attempt when
  // `attempt` is 0) for the worker holding that lease, or, when
  // `source_run_id` is neither 0 nor the leased run, of that source run of
  // the leased job (RunConfig.job.source_runs): FAILED_PRECONDITION unless
  // the lease is current and held by `worker_id` and the run is one of the
  // job's sources, NOT_FOUND for an unknown artifact.
  absl::StatusOr<std::pair<sweepq::v1::Artifact,
                           std::unique_ptr<ArtifactStore::Reader>>>
  OpenArtifactForLease(int64_t team_id, const std::string& worker_id,
                       const sweepq::v1::LeaseRef& lease,
                       const std::string& name, uint32_t attempt,
                       int64_t source_run_id = 0);

  // Checks that an upload may start: the lease is current and the name ok.
  absl::Status CheckUploadAllowed(int64_t team_id,
                                  const sweepq::v1::LeaseRef& lease,
                                  const sweepq::v1::Artifact& header);

  // With request.lease_next, a stored finish is followed by TryLease for
  // the same worker, whose answer goes in `next` (left out if it fails).
  absl::StatusOr<sweepq::v1::FinishRunResponse> FinishRun(
      int64_t team_id, const sweepq::v1::FinishRunRequest& request);
  // FinishRun answered through `done` once committed (as ReportEventsAsync;
  // with lease_next, once the next lease is committed too).
  void FinishRunAsync(int64_t team_id,
                      const sweepq::v1::FinishRunRequest& request,
                      Done<sweepq::v1::FinishRunResponse> done);

  // Requeues or fails runs whose lease expired; returns how many changed.
  absl::StatusOr<size_t> ExpireLeasesNow();

  // Wakes every waiter (shutdown); later waits return at once.
  void Shutdown();

 private:
  // For a job (config.job set), checks that every source run exists in the
  // team, is a SUCCEEDED training run and was trained on the job's data
  // set: NOT_FOUND / FAILED_PRECONDITION / INVALID_ARGUMENT naming the
  // expanded run `index` and the source. OK for a training run.
  absl::Status CheckJobSources(int64_t team_id, size_t index,
                               const sweepq::v1::RunConfig& config);

  // A Lease answer without a run: heartbeat interval, directive CONTINUE.
  sweepq::v1::LeaseResponse EmptyLeaseResponse() const;
  // Reads the worker of a Lease attempt into `worker`. Returns the answer
  // when it is to get no run (DRAIN for a draining worker), else nullopt;
  // FAILED_PRECONDITION for a quarantined worker, NOT_FOUND for an unknown.
  absl::StatusOr<std::optional<sweepq::v1::LeaseResponse>> CheckLeasingWorker(
      int64_t team_id, const std::string& worker_id,
      sweepq::v1::Worker* worker);
  // The data sets a Lease's worker serves. They come from worker_datasets_,
  // or, on the worker's first lease since this coordinator started, from
  // its row, which also answers a draining or quarantined worker: then
  // `*answer` (or the error) is set and the result is null.
  using Datasets = std::shared_ptr<const std::vector<std::string>>;
  absl::StatusOr<Datasets> LeasingDatasets(
      int64_t team_id, const sweepq::v1::LeaseRequest& request,
      std::optional<sweepq::v1::LeaseResponse>* answer);
  // Keeps `worker`'s data sets for its next leases; returns them.
  Datasets RememberDatasets(int64_t team_id, const sweepq::v1::Worker& worker);
  // The answer to a Lease the store refused as the worker's (`refused`,
  // FAILED_PRECONDITION: unknown, draining or quarantined), as
  // CheckLeasingWorker words it.
  absl::StatusOr<sweepq::v1::LeaseResponse> RefusedLease(
      int64_t team_id, const std::string& worker_id, absl::Status refused);
  // The Lease answer for the store's lease of `worker_id` (through
  // RefusedLease when the store refused it as the worker's).
  absl::StatusOr<sweepq::v1::LeaseResponse> LeaseResult(
      int64_t team_id, const std::string& worker_id,
      absl::StatusOr<std::optional<store::LeaseGrant>> grant);
  // The Lease answer for the store's result (with resume_from when an
  // earlier attempt left a checkpoint); wakes watchers of a granted run.
  sweepq::v1::LeaseResponse LeaseAnswer(int64_t team_id,
                                        std::optional<store::LeaseGrant> grant);
  // The ReportEvents answer once the batch is stored; wakes watchers.
  sweepq::v1::ReportEventsResponse Reported(
      const sweepq::v1::ReportEventsRequest& request,
      sweepq::v1::Directive directive);
  // The store's FinishRequest for `request`, or the error naming the bad
  // field.
  absl::StatusOr<store::FinishRequest> FinishRequestOf(
      const sweepq::v1::FinishRunRequest& request) const;
  // The FinishRun answer once stored: logs it, wakes lease waiters (for a
  // requeued run) and watchers.
  sweepq::v1::FinishRunResponse Finished(
      const sweepq::v1::FinishRunRequest& request, sweepq::v1::RunState state);
  // The LeaseRequest of a FinishRun's lease_next, and what its answer
  // makes of `response`.
  static sweepq::v1::LeaseRequest NextLeaseRequest(
      const sweepq::v1::FinishRunRequest& request);
  static void AddNextLease(const sweepq::v1::FinishRunRequest& request,
                           absl::StatusOr<sweepq::v1::LeaseResponse> next,
                           sweepq::v1::FinishRunResponse* response);

  // Bumps the generation the lease / watch waiters sleep on.
  void NotifyQueueChanged();
  void NotifyEventsAppended();
  void ExpiryLoop();

  store::Store* const store_;
  const Clock* const clock_;
  ArtifactStore* const artifacts_;
  const CoordinatorOptions options_;

  absl::Mutex mu_;
  uint64_t queue_generation_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t event_generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  absl::CondVar queue_changed_;    // Lease waiters
  absl::CondVar events_appended_;  // WatchRun waiters

  // Each worker's registered data sets, so that a lease need not read the
  // worker's row: the store's lease checks the worker's state itself, and
  // only RegisterWorker (here) changes the data sets.
  absl::Mutex datasets_mu_;
  absl::flat_hash_map<std::pair<int64_t, std::string>, Datasets>
      worker_datasets_ ABSL_GUARDED_BY(datasets_mu_);

  std::thread expiry_thread_;
};

}  // namespace sweepq::server

#endif  // SWEEPQ_SERVER_COORDINATOR_H_
