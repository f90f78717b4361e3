// Store: the coordinator's durable state behind one interface.
//
// Every method is one atomic step (one transaction in SqliteStore): callers
// never compose reads and writes across calls to get consistency. Every
// method that touches team data takes the team id and only sees that team's
// rows: a run, sweep or worker of another team is NOT_FOUND.
//
// Implementations: SqliteStore (server/store/sqlite_store.h), the real one,
// and InMemoryStore (server/store/memory_store.h), the fake for tests of the
// layers above. Both pass tests/server/store_contract.h.
//
// Thread safety: all methods may be called from any thread concurrently.
//
// Every state change of a run also appends a RunEvent of kind "state" with
// payload {"state": "RUN_STATE_...", "attempt": N, "worker": "...",
// "reason": "..."} so that watchers see transitions in order with metrics.
//
// Errors: NOT_FOUND for unknown or foreign ids; FAILED_PRECONDITION for a
// write under a lease that is not current (fencing) or a state that forbids
// the change; ALREADY_EXISTS for duplicate names; INTERNAL / UNAVAILABLE for
// storage failures (with the underlying message).
#ifndef SWEEPQ_SERVER_STORE_STORE_H_
#define SWEEPQ_SERVER_STORE_STORE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "sweepq/v1/coordinator.pb.h"

namespace sweepq::store {

// Batches are passed as the request's own repeated fields, so the hot path
// (ReportEvents) copies no point between gRPC and the store.
using MetricPoints = google::protobuf::RepeatedPtrField<sweepq::v1::MetricPoint>;
using RunEvents = google::protobuf::RepeatedPtrField<sweepq::v1::RunEvent>;

// Completion of an asynchronous write (Store::*Async): called exactly once
// with the result the synchronous method would have returned.
template <typename T>
using StoreCallback = absl::AnyInvocable<void(absl::StatusOr<T>)>;

enum class Role { kMember = 1, kWorker = 2 };

struct TeamPrincipal {
  int64_t team_id = 0;
  std::string team_name;
  Role role = Role::kMember;
};

// A run to insert as part of a sweep. `config` is already validated.
struct NewRun {
  sweepq::v1::RunConfig config;
  std::map<std::string, std::string> params;
  std::string dataset;
};

struct NewSweep {
  std::string name;
  std::string spec_yaml;
  std::string metric;  // e.g. "val_f1"
  sweepq::v1::Goal goal = sweepq::v1::GOAL_MAXIMIZE;
  int32_t priority = 0;
  uint32_t max_attempts = 3;
  std::string idempotency_key;  // "" = none
  std::vector<NewRun> runs;
};

struct InsertSweepResult {
  int64_t sweep_id = 0;
  std::vector<int64_t> run_ids;
  bool existing = false;  // the idempotency key matched an earlier sweep
};

struct RunFilter {
  int64_t sweep_id = 0;  // 0 = any
  sweepq::v1::RunState state = sweepq::v1::RUN_STATE_UNSPECIFIED;  // any
  uint32_t limit = 100;
  int64_t before_run_id = 0;  // 0 = from the newest
};

struct LeaseGrant {
  sweepq::v1::Run run;  // with config
  sweepq::v1::LeaseRef lease;
  int64_t lease_expires_at_ms = 0;
};

struct HeartbeatResult {
  sweepq::v1::Directive directive = sweepq::v1::DIRECTIVE_CONTINUE;
  int64_t lease_expires_at_ms = 0;
};

struct FinishRequest {
  sweepq::v1::LeaseRef lease;
  std::string worker_id;
  sweepq::v1::Outcome outcome = sweepq::v1::OUTCOME_UNSPECIFIED;
  bool retryable = false;
  std::string reason;
  int64_t now_ms = 0;
  // A worker with this many consecutive FAILED outcomes is quarantined.
  uint32_t quarantine_after = 3;
};

// One requeue or final failure made by ExpireLeases.
struct ExpiredLease {
  int64_t run_id = 0;
  uint32_t attempt = 0;
  std::string worker_id;
  sweepq::v1::RunState new_state = sweepq::v1::RUN_STATE_QUEUED;
};

struct LeaderboardQuery {
  int64_t sweep_id = 0;  // 0 = whole team
  std::string metric;    // "" = any
  uint32_t top = 20;
};

struct WatchBatch {
  std::vector<sweepq::v1::MetricPoint> metrics;  // seq ascending
  std::vector<sweepq::v1::RunEvent> events;      // seq ascending
  sweepq::v1::RunState state = sweepq::v1::RUN_STATE_UNSPECIFIED;
};

class Store {
 public:
  virtual ~Store() = default;

  // ---- Teams ----

  // Creates a team with the SHA-256 hex hashes of its two tokens.
  // ALREADY_EXISTS if the name is taken. Returns the team id.
  virtual absl::StatusOr<int64_t> CreateTeam(
      const std::string& name, const std::string& member_token_hash,
      const std::string& worker_token_hash, int64_t now_ms) = 0;

  // Finds the team and role a token hash belongs to; NOT_FOUND if none.
  virtual absl::StatusOr<TeamPrincipal> FindToken(
      const std::string& token_hash) = 0;

  // Replaces one of the team's token hashes (rotation). NOT_FOUND if no team.
  virtual absl::Status RotateToken(const std::string& team_name, Role role,
                                   const std::string& new_hash) = 0;

  // ---- Sweeps and runs (people) ----

  // Inserts the sweep and all its runs (state QUEUED) atomically. With a
  // non-empty idempotency key already used by this team, inserts nothing
  // and returns the earlier sweep with `existing = true`.
  virtual absl::StatusOr<InsertSweepResult> InsertSweep(int64_t team_id,
                                                        const NewSweep& sweep,
                                                        int64_t now_ms) = 0;

  virtual absl::StatusOr<sweepq::v1::Sweep> GetSweep(int64_t team_id,
                                                     int64_t sweep_id) = 0;

  // Runs newest first, without config and attempts.
  virtual absl::StatusOr<std::vector<sweepq::v1::Run>> ListRuns(
      int64_t team_id, const RunFilter& filter) = 0;

  // The run with its config and attempt history.
  virtual absl::StatusOr<sweepq::v1::Run> GetRun(int64_t team_id,
                                                 int64_t run_id) = 0;

  // QUEUED -> CANCELLED now; LEASED/RUNNING -> cancel_requested (the next
  // heartbeat answers CANCEL). A final state is FAILED_PRECONDITION.
  // Returns the run after the change.
  virtual absl::StatusOr<sweepq::v1::Run> CancelRun(int64_t team_id,
                                                    int64_t run_id,
                                                    int64_t now_ms) = 0;

  // CancelRun for every non-final run of the sweep. Returns (cancelled now,
  // cancel requested).
  virtual absl::StatusOr<std::pair<uint32_t, uint32_t>> CancelSweep(
      int64_t team_id, int64_t sweep_id, int64_t now_ms) = 0;

  // FAILED / CANCELLED / PRUNED -> QUEUED with a fresh attempt budget
  // (max_attempts = attempt + the sweep's max_attempts); the error is kept in
  // the attempt history. Any other state is FAILED_PRECONDITION.
  virtual absl::StatusOr<sweepq::v1::Run> RetryRun(int64_t team_id,
                                                   int64_t run_id,
                                                   int64_t now_ms) = 0;

  // Runs ranked by their best finite value of their sweep's metric (higher
  // first for maximize, lower first for minimize), ties broken by earlier
  // best step, then earlier finish (unfinished last), then lower run id.
  // Runs without a finite value are not listed. Served from per-run
  // summaries, not by scanning metrics.
  virtual absl::StatusOr<std::vector<sweepq::v1::LeaderboardEntry>>
  Leaderboard(int64_t team_id, const LeaderboardQuery& query) = 0;

  // Metric points and events of a run with seq greater than the cursors, at
  // most `limit` of each, and the run's current state.
  virtual absl::StatusOr<WatchBatch> ReadRunStream(int64_t team_id,
                                                   int64_t run_id,
                                                   int64_t after_metric_seq,
                                                   int64_t after_event_seq,
                                                   uint32_t limit) = 0;

  // ---- Workers ----

  // Creates or updates the worker (host, slots, datasets, version,
  // last_seen). Keeps its quarantine and drain state.
  virtual absl::StatusOr<sweepq::v1::Worker> UpsertWorker(
      int64_t team_id, const sweepq::v1::Worker& worker, int64_t now_ms) = 0;

  virtual absl::StatusOr<std::vector<sweepq::v1::Worker>> ListWorkers(
      int64_t team_id) = 0;

  virtual absl::StatusOr<sweepq::v1::Worker> GetWorker(
      int64_t team_id, const std::string& worker_id) = 0;

  // Sets DRAINING (from ACTIVE; a quarantined worker stays quarantined).
  virtual absl::StatusOr<sweepq::v1::Worker> DrainWorker(
      int64_t team_id, const std::string& worker_id) = 0;

  // Back to ACTIVE with zero consecutive failures.
  virtual absl::StatusOr<sweepq::v1::Worker> ClearWorker(
      int64_t team_id, const std::string& worker_id) = 0;

  // ---- Leases (workers) ----

  // In one transaction: picks the best QUEUED run of the team whose dataset
  // is in `datasets` (highest priority, then oldest, then lowest id), stamps
  // attempt + 1, a new random lease id, expiry now + ttl, the worker, state
  // LEASED, and opens an attempt record. Returns nullopt if none. The
  // worker must exist and be ACTIVE (else FAILED_PRECONDITION).
  virtual absl::StatusOr<std::optional<LeaseGrant>> LeaseRun(
      int64_t team_id, const std::string& worker_id,
      const std::vector<std::string>& datasets, int64_t now_ms,
      int64_t ttl_ms) = 0;

  // Extends a current lease to now + ttl and returns the directive (CANCEL
  // if cancel was requested, DRAIN if the worker drains, else CONTINUE).
  // FAILED_PRECONDITION if the lease is not current.
  virtual absl::StatusOr<HeartbeatResult> Heartbeat(
      int64_t team_id, const std::string& worker_id,
      const sweepq::v1::LeaseRef& lease, int64_t now_ms, int64_t ttl_ms) = 0;

  // Appends a batch under a current lease: points keyed (run, attempt, name,
  // step) and events keyed (run, attempt, batch_seq, index) are inserted if
  // absent (a resent batch changes nothing). Updates the run's best value
  // for its metric from finite values; LEASED becomes RUNNING. Returns the
  // directive as Heartbeat does. FAILED_PRECONDITION if not current.
  // A point without wall time (0) or an event without time is stored with
  // now_ms.
  virtual absl::StatusOr<sweepq::v1::Directive> AppendEvents(
      int64_t team_id, const sweepq::v1::LeaseRef& lease, uint64_t batch_seq,
      const MetricPoints& points, const RunEvents& events, int64_t now_ms) = 0;

  // Lists an artifact (already stored by content) under a current lease.
  // Same name again in the same attempt replaces the listing.
  virtual absl::Status AddArtifact(int64_t team_id,
                                   const sweepq::v1::LeaseRef& lease,
                                   const sweepq::v1::Artifact& artifact) = 0;

  virtual absl::StatusOr<std::vector<sweepq::v1::Artifact>> ListArtifacts(
      int64_t team_id, int64_t run_id) = 0;

  // Ends the current attempt. SUCCEEDED/CANCELLED/PRUNED are final. FAILED
  // is requeued (state QUEUED, lease cleared) if retryable and attempt <
  // max_attempts, else final. Updates the worker's consecutive failures and
  // quarantines it at `quarantine_after`. Returns the run's new state.
  // FAILED_PRECONDITION if the lease is not current.
  virtual absl::StatusOr<sweepq::v1::RunState> FinishRun(
      int64_t team_id, const FinishRequest& request) = 0;

  // For every team: runs whose lease expired before now are requeued
  // (attempt history closed with reason "lease expired") or, at
  // max_attempts or with cancel requested, made FAILED / CANCELLED.
  virtual absl::StatusOr<std::vector<ExpiredLease>> ExpireLeases(
      int64_t now_ms) = 0;

  // Earliest lease expiry over all teams, if any lease is held.
  virtual absl::StatusOr<std::optional<int64_t>> NextLeaseExpiry() = 0;

  // ---- Asynchronous forms of the hot worker writes ----
  //
  // Each does what its synchronous namesake does, with the same atomicity
  // and durability, but may return before the write is committed: `done`
  // gets the result once it is, on the calling thread or on the thread that
  // committed it (SqliteStore: the group commit's leader), never while a
  // lock of the store is held. Everything the arguments refer to must stay
  // valid until `done` has been called. The defaults call the synchronous
  // method and then `done`, on the calling thread.

  virtual void LeaseRunAsync(int64_t team_id, const std::string& worker_id,
                             const std::vector<std::string>& datasets,
                             int64_t now_ms, int64_t ttl_ms,
                             StoreCallback<std::optional<LeaseGrant>> done) {
    done(LeaseRun(team_id, worker_id, datasets, now_ms, ttl_ms));
  }

  virtual void AppendEventsAsync(int64_t team_id,
                                 const sweepq::v1::LeaseRef& lease,
                                 uint64_t batch_seq, const MetricPoints& points,
                                 const RunEvents& events, int64_t now_ms,
                                 StoreCallback<sweepq::v1::Directive> done) {
    done(AppendEvents(team_id, lease, batch_seq, points, events, now_ms));
  }

  virtual void FinishRunAsync(int64_t team_id, const FinishRequest& request,
                              StoreCallback<sweepq::v1::RunState> done) {
    done(FinishRun(team_id, request));
  }
};

}  // namespace sweepq::store

#endif  // SWEEPQ_SERVER_STORE_STORE_H_
