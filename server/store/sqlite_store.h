// SqliteStore: the Store on one SQLite file (WAL), the coordinator's real
// storage.
#ifndef SWEEPQ_SERVER_STORE_SQLITE_STORE_H_
#define SWEEPQ_SERVER_STORE_SQLITE_STORE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/store/group_commit_writer.h"
#include "server/store/sqlite_db.h"
#include "server/store/store.h"
#include "server/store/wal_checkpointer.h"
#include "sweepq/v1/coordinator.pb.h"

namespace sweepq::store {

// How SqliteStore::Open opens the database.
struct SqliteStoreOptions {
  // The database file; created (with the schema) if missing. Must be a
  // real file: the writer and the readers are separate connections.
  std::string path;
  // PRAGMA synchronous=FULL: fsync the WAL on every commit, so that an OK
  // write also survives a power loss (NORMAL survives a process crash).
  bool synchronous_full = false;
  // Read-only connections serving reads concurrently (>= 1).
  int reader_connections = 4;
  // Most write operations committed in one transaction.
  size_t max_group_commit_ops = 256;
  // A commit that leaves at least this many frames (pages) in the
  // write-ahead log asks the background checkpointer to copy them into the
  // database file. 4000 frames (16 MiB of log) rather than SQLite's 1000:
  // the pages workers write (runs, their indexes, metric leaves) are
  // rewritten many times between checkpoints, and a checkpoint copies each
  // only once, so a longer log costs less CPU per run (coordinator_bench:
  // 1249 -> 1154 us per trial, median of 6 interleaved runs) for a little
  // more lookup work on reads and a larger file between checkpoints.
  int checkpoint_frames = 4000;
  // How long a connection waits for a lock held by another process.
  int busy_timeout_ms = 5000;
  // For tests: every group of writes runs twice, the first pass rolled
  // back (GroupCommitWriter's run_every_group_twice), so that a write that
  // does not start over when it runs again shows.
  bool run_every_group_twice = false;
};

// A Store on a SQLite database in WAL mode, as store.h and the contract
// suite (tests/server/store/store_contract.h) describe. The schema is
// migrations/*.sql, applied at Open.
//
// Writes go to one connection owned by a GroupCommitWriter: every write
// method queues its work and blocks until the group it ran in is committed
// (so OK means committed); the *Async writes queue theirs and get the
// result by callback once it is committed. Each write method is one
// operation of its group (in its own savepoint when the group has more),
// hence atomic and isolated from the others in its group.
// Reads run on a pool of read-only connections, each call in one read
// transaction (a consistent snapshot), concurrently with each other and
// with the writer; a read sees every write that returned before it began.
// Checkpoints of the write-ahead log run on a connection and thread of
// their own (WalCheckpointer), never inside a commit.
//
// Thread safety: every method may be called from any thread concurrently.
// Only one SqliteStore (one process) may open a file at a time.
class SqliteStore : public Store {
 public:
  // Opens (or creates) the database and applies pending migrations.
  // INVALID_ARGUMENT for bad options; FAILED_PRECONDITION
  // for a database newer than this binary; the SQLite error otherwise.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(
      const SqliteStoreOptions& options);

  // Waits for the queued writes (and the callbacks of the asynchronous
  // ones) and closes the connections. No call may be in progress.
  ~SqliteStore() override;

  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  // ---- Teams ----

  // See Store::CreateTeam. INVALID_ARGUMENT for an empty name.
  absl::StatusOr<int64_t> CreateTeam(const std::string& name,
                                     const std::string& member_token_hash,
                                     const std::string& worker_token_hash,
                                     int64_t now_ms) override;
  // See Store::FindToken. An empty hash is NOT_FOUND.
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
  // See Store::ListRuns. `limit` 0 means 100; NOT_FOUND for a foreign
  // filter.sweep_id.
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
  // See Store::Leaderboard. `top` 0 means 20; NOT_FOUND for a foreign
  // query.sweep_id. One indexed query, then one per entry for its metrics.
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
  // See Store::AppendEvents. NaN values are stored as NULL and read back
  // as NaN; +-Inf are stored as they are.
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

  // ---- Background checkpoints ----

  // Checkpoints the background checkpointer has finished so far.
  int64_t checkpoints_completed();
  // Waits until more than `seen` checkpoints finished; false on timeout.
  bool WaitForCheckpoint(int64_t seen, absl::Duration timeout);

  // ---- Asynchronous writes ----

  // See Store::LeaseRunAsync: queued on the group-commit writer; `done`
  // runs on the thread that led the group.
  void LeaseRunAsync(int64_t team_id, const std::string& worker_id,
                     const std::vector<std::string>& datasets, int64_t now_ms,
                     int64_t ttl_ms,
                     StoreCallback<std::optional<LeaseGrant>> done) override;
  // See Store::AppendEventsAsync; as LeaseRunAsync.
  void AppendEventsAsync(int64_t team_id, const sweepq::v1::LeaseRef& lease,
                         uint64_t batch_seq, const MetricPoints& points,
                         const RunEvents& events, int64_t now_ms,
                         StoreCallback<sweepq::v1::Directive> done) override;
  // See Store::FinishRunAsync; as LeaseRunAsync. An unspecified outcome
  // fails at once, on the calling thread.
  void FinishRunAsync(int64_t team_id, const FinishRequest& request,
                      StoreCallback<sweepq::v1::RunState> done) override;

 private:
  using DbFn = absl::FunctionRef<absl::Status(Database&)>;

  SqliteStore(std::unique_ptr<GroupCommitWriter> writer,
              std::unique_ptr<WalCheckpointer> checkpointer,
              std::vector<std::unique_ptr<Database>> readers);

  // Runs `fn` in a read transaction on an idle reader connection, waiting
  // for one if all are busy. Returns the error of `fn` or of SQLite.
  absl::Status Read(DbFn fn);

  // Runs `fn` as one operation of the group-commit writer and returns once
  // it is committed (or failed, with nothing of it kept). `fn` may run
  // twice, the first run's changes rolled back (GroupCommitWriter::Op):
  // it must set what it returns through captures, never append to it.
  absl::Status Write(DbFn fn) { return writer_->Run(fn); }

  // Destroyed last (shut down first, in the destructor): the write
  // connection closes after the others, as the last one of the file.
  std::unique_ptr<GroupCommitWriter> writer_;
  // Called from the writer's commits; destroyed after the writer's
  // shutdown.
  std::unique_ptr<WalCheckpointer> checkpointer_;
  std::vector<std::unique_ptr<Database>> readers_;

  absl::Mutex readers_mu_;
  absl::CondVar reader_returned_;
  std::vector<Database*> idle_readers_ ABSL_GUARDED_BY(readers_mu_);
};

// Copies the database at `db_path` into a new file `out_path` while other
// processes may be using it (the serving coordinator included): one read
// transaction (`VACUUM INTO`) gives a consistent snapshot of every commit
// made before it began, without blocking the writer. The copy is then
// opened and checked (`PRAGMA integrity_check`, schema version equal to
// the source's). Returns NOT_FOUND when `db_path` does not exist,
// ALREADY_EXISTS when `out_path` does (a backup never overwrites), and
// DATA_LOSS when the copy fails its check (the copy is then removed).
absl::Status BackupDatabase(const std::string& db_path,
                            const std::string& out_path);

}  // namespace sweepq::store

#endif  // SWEEPQ_SERVER_STORE_SQLITE_STORE_H_
