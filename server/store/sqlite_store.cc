#include "server/store/sqlite_store.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "server/store/flat_json.h"
#include "server/store/migrations.h"
#include "server/store/run_rules.h"
#include "server/store/sqlite_queries.h"

namespace sweepq::store {
namespace {

using ::sweepq::v1::Artifact;
using ::sweepq::v1::Directive;
using ::sweepq::v1::LeaderboardEntry;
using ::sweepq::v1::LeaseRef;
using ::sweepq::v1::MetricPoint;
using ::sweepq::v1::Run;
using ::sweepq::v1::RunEvent;
using ::sweepq::v1::RunState;
using ::sweepq::v1::Sweep;
using ::sweepq::v1::Worker;
using ::sweepq::v1::WorkerState;

// The schema's partial indexes and the queries that must match them name
// these states as literals.
static_assert(v1::RUN_STATE_QUEUED == 1 && v1::RUN_STATE_LEASED == 2 &&
                  v1::RUN_STATE_RUNNING == 3,
              "migrations/0001_initial.sql and sqlite_queries.h");
static_assert(v1::WORKER_STATE_ACTIVE == 1, "kTouchActiveWorker");

constexpr uint32_t kDefaultListLimit = 100;
constexpr uint32_t kDefaultLeaderboardTop = 20;
constexpr char kLeaseExpired[] = "lease expired";

// Position of each column of SWEEPQ_SQLITE_RUN_COLUMNS.
enum RunColumn {
  kRunId,
  kRunSweepId,
  kRunIdx,
  kRunParamsJson,
  kRunState,
  kRunPriority,
  kRunAttempt,
  kRunMaxAttempts,
  kRunWorkerId,
  kRunLeaseExpiresAt,
  kRunDataset,
  kRunMetric,
  kRunGoal,
  kRunBestValue,
  kRunBestStep,
  kRunBestAttempt,
  kRunCreatedAt,
  kRunStartedAt,
  kRunFinishedAt,
  kRunError,
  kRunRetryable,
  kRunCancelRequested,
  kRunConfig,
};

// ---- SQL ----

constexpr char kSelectRun[] = "SELECT " SWEEPQ_SQLITE_RUN_COLUMNS
                              " FROM runs WHERE id = ?1 AND team_id = ?2";
constexpr char kSelectAttempts[] =
    "SELECT attempt, worker_id, started_at_ms, ended_at_ms, outcome, reason"
    " FROM attempts WHERE run_id = ?1 ORDER BY attempt";
constexpr char kInsertAttempt[] =
    "INSERT INTO attempts (run_id, attempt, worker_id, started_at_ms)"
    " VALUES (?1, ?2, ?3, ?4)";
constexpr char kCloseAttempt[] =
    "UPDATE attempts SET ended_at_ms = ?3, outcome = ?4, reason = ?5"
    " WHERE run_id = ?1 AND attempt = ?2";

// A server-written event takes the next free negative idx of its
// (run, attempt) under batch_seq 0; see migrations/0001_initial.sql. Two
// statements, not one INSERT ... SELECT: SQLite copies the rows of an
// INSERT that selects from its own table into a temporary table first,
// which made a state event cost 12 us instead of 5 (SQLite's profile hook,
// bench trial shape). Only the writer inserts, so nothing comes between.
constexpr char kNextStateEventIdx[] =
    "SELECT MIN(COALESCE(MIN(idx), 0), 0) - 1 FROM run_events"
    " WHERE run_id = ?1 AND attempt = ?2 AND batch_seq = 0";
constexpr char kInsertStateEvent[] =
    "INSERT INTO run_events"
    " (run_id, attempt, batch_seq, idx, kind, payload_json, time_ms)"
    " VALUES (?1, ?2, 0, ?3, 'state', ?4, ?5)";
constexpr char kInsertEvent[] =
    "INSERT OR IGNORE INTO run_events"
    " (run_id, attempt, batch_seq, idx, kind, payload_json, time_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
constexpr char kInsertMetric[] =
    "INSERT OR IGNORE INTO metrics"
    " (run_id, attempt, name, step, value, wall_time_ms, seq)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
// kInsertMetric for kMetricRowsPerInsert rows: ?1 run, ?2 attempt, then per
// row r (from 0) ?(3 + 5r) name, step, value, wall_time_ms, seq.
constexpr int kMetricRowsPerInsert = 64;
constexpr int kMetricColumnsPerRow = 5;
const std::string& InsertMetricRowsSql() {
  static const std::string* const sql = [] {
    auto* text = new std::string(
        "INSERT OR IGNORE INTO metrics"
        " (run_id, attempt, name, step, value, wall_time_ms, seq) VALUES ");
    for (int r = 0; r < kMetricRowsPerInsert; ++r) {
      const int p = 3 + r * kMetricColumnsPerRow;
      absl::StrAppend(text, r == 0 ? "" : ", ", "(?1, ?2, ?", p, ", ?", p + 1,
                      ", ?", p + 2, ", ?", p + 3, ", ?", p + 4, ")");
    }
    return text;
  }();
  return *sql;
}
// Runs only on the writer, so MAX + 1 cannot race. Index: metrics_by_seq.
constexpr char kLastMetricSeq[] =
    "SELECT COALESCE(MAX(seq), 0) FROM metrics WHERE run_id = ?1";

// The lease a worker write names, with what the write needs to know.
constexpr char kSelectLeasedRun[] =
    "SELECT r.state, r.attempt, r.lease_id, r.worker_id, r.cancel_requested,"
    " r.metric, r.goal, r.best_value, r.best_step, r.max_attempts,"
    " COALESCE(w.state, 0)"
    " FROM runs r LEFT JOIN workers w"
    " ON w.team_id = r.team_id AND w.worker_id = r.worker_id"
    " WHERE r.id = ?1 AND r.team_id = ?2";

// Ends a lease and requeues the run. ?2 / ?3: the new error / retryable,
// or NULL to keep them.
constexpr char kRequeueRun[] =
    "UPDATE runs SET state = 1, lease_id = 0, lease_expires_at_ms = 0,"
    " worker_id = '', error = COALESCE(?2, error),"
    " retryable = COALESCE(?3, retryable) WHERE id = ?1";
// Moves a run to final state ?2 at ?3, keeping worker_id. ?4 / ?5: the new
// error / retryable, or NULL to keep them.
constexpr char kFinalizeRun[] =
    "UPDATE runs SET state = ?2, lease_id = 0, lease_expires_at_ms = 0,"
    " finished_at_ms = ?3, tiebreak_ms = ?3, error = COALESCE(?4, error),"
    " retryable = COALESCE(?5, retryable) WHERE id = ?1";

constexpr char kSelectWorker[] =
    "SELECT worker_id, host, slots, datasets_json, version, state,"
    " registered_at_ms, last_seen_at_ms, consecutive_failures,"
    " quarantine_reason FROM workers WHERE team_id = ?1 AND worker_id = ?2";
constexpr char kSelectWorkers[] =
    "SELECT worker_id, host, slots, datasets_json, version, state,"
    " registered_at_ms, last_seen_at_ms, consecutive_failures,"
    " quarantine_reason FROM workers WHERE team_id = ?1 ORDER BY worker_id";
constexpr char kSelectRunningRunIds[] =
    "SELECT id FROM runs WHERE team_id = ?1 AND worker_id = ?2"
    " AND state IN (2, 3) ORDER BY id";
constexpr char kTouchWorker[] =
    "UPDATE workers SET last_seen_at_ms = ?3"
    " WHERE team_id = ?1 AND worker_id = ?2";
// kTouchWorker for a worker that may lease (WORKER_STATE_ACTIVE).
constexpr char kTouchActiveWorker[] =
    "UPDATE workers SET last_seen_at_ms = ?3"
    " WHERE team_id = ?1 AND worker_id = ?2 AND state = 1";

// ---- Helpers ----



// Lease ids and batch seqs are uint64 kept in signed columns, same bits.
int64_t ToSql(uint64_t value) { return static_cast<int64_t>(value); }

double ReadValue(const Statement& statement, int col) {
  return statement.ColumnIsNull(col) ? std::numeric_limits<double>::quiet_NaN()
                                     : statement.ColumnDouble(col);
}

absl::Status RunNotFound(int64_t run_id) {
  return absl::NotFoundError(absl::StrCat("run ", run_id, " not found"));
}

absl::Status SweepNotFound(int64_t sweep_id) {
  return absl::NotFoundError(absl::StrCat("sweep ", sweep_id, " not found"));
}

absl::Status TeamNotFound(int64_t team_id) {
  return absl::NotFoundError(absl::StrCat("team ", team_id, " not found"));
}

// Fills `run` from a row of SWEEPQ_SQLITE_RUN_COLUMNS.
absl::Status RunFromRow(const Statement& row, bool with_config, Run* run) {
  run->set_run_id(row.ColumnInt64(kRunId));
  run->set_sweep_id(row.ColumnInt64(kRunSweepId));
  run->set_index(static_cast<uint32_t>(row.ColumnInt64(kRunIdx)));
  absl::StatusOr<std::map<std::string, std::string>> params =
      DecodeJsonStringMap(row.ColumnText(kRunParamsJson));
  if (!params.ok()) {
    return absl::InternalError(
        absl::StrCat("run ", run->run_id(),
                     ": bad params_json: ", params.status().message()));
  }
  run->mutable_params()->insert(params->begin(), params->end());
  run->set_state(static_cast<RunState>(row.ColumnInt64(kRunState)));
  run->set_priority(static_cast<int32_t>(row.ColumnInt64(kRunPriority)));
  run->set_attempt(static_cast<uint32_t>(row.ColumnInt64(kRunAttempt)));
  run->set_max_attempts(
      static_cast<uint32_t>(row.ColumnInt64(kRunMaxAttempts)));
  run->set_worker_id(row.ColumnText(kRunWorkerId));
  run->set_lease_expires_at_ms(row.ColumnInt64(kRunLeaseExpiresAt));
  run->set_dataset(row.ColumnText(kRunDataset));
  run->set_metric(row.ColumnText(kRunMetric));
  run->set_goal(static_cast<v1::Goal>(row.ColumnInt64(kRunGoal)));
  if (!row.ColumnIsNull(kRunBestValue)) {
    run->set_has_best(true);
    run->set_best_value(row.ColumnDouble(kRunBestValue));
    run->set_best_step(row.ColumnInt64(kRunBestStep));
    run->set_best_attempt(
        static_cast<uint32_t>(row.ColumnInt64(kRunBestAttempt)));
  }
  run->set_created_at_ms(row.ColumnInt64(kRunCreatedAt));
  run->set_started_at_ms(row.ColumnInt64(kRunStartedAt));
  run->set_finished_at_ms(row.ColumnInt64(kRunFinishedAt));
  run->set_error(row.ColumnText(kRunError));
  run->set_retryable(row.ColumnBool(kRunRetryable));
  run->set_cancel_requested(row.ColumnBool(kRunCancelRequested));
  if (with_config &&
      !run->mutable_config()->ParseFromString(row.ColumnBlob(kRunConfig))) {
    return absl::InternalError(
        absl::StrCat("run ", run->run_id(), ": stored config does not parse"));
  }
  return absl::OkStatus();
}

// The team's run with its config and attempt history; NOT_FOUND if none.
absl::StatusOr<Run> ReadFullRun(Database& db, int64_t team_id, int64_t run_id) {
  Run run;
  {
    ASSIGN_OR_RETURN(Statement select, db.Prepare(kSelectRun));
    select.BindInt64(1, run_id);
    select.BindInt64(2, team_id);
    ASSIGN_OR_RETURN(bool found, select.Step());
    if (!found) return RunNotFound(run_id);
    RETURN_IF_ERROR(RunFromRow(select, /*with_config=*/true, &run));
  }
  ASSIGN_OR_RETURN(Statement attempts, db.Prepare(kSelectAttempts));
  attempts.BindInt64(1, run_id);
  while (true) {
    ASSIGN_OR_RETURN(bool row, attempts.Step());
    if (!row) break;
    v1::Attempt* attempt = run.add_attempts();
    attempt->set_attempt(static_cast<uint32_t>(attempts.ColumnInt64(0)));
    attempt->set_worker_id(attempts.ColumnText(1));
    attempt->set_started_at_ms(attempts.ColumnInt64(2));
    attempt->set_ended_at_ms(attempts.ColumnInt64(3));
    attempt->set_outcome(static_cast<RunState>(attempts.ColumnInt64(4)));
    attempt->set_reason(attempts.ColumnText(5));
  }
  return run;
}

// Runs a query of SWEEPQ_SQLITE_RUN_COLUMNS to the end: runs without
// config and attempts.
absl::StatusOr<std::vector<Run>> ReadRunSummaries(Statement& select) {
  std::vector<Run> runs;
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) return runs;
    RETURN_IF_ERROR(
        RunFromRow(select, /*with_config=*/false, &runs.emplace_back()));
  }
}

absl::Status CheckSweepOfTeam(Database& db, int64_t team_id, int64_t sweep_id) {
  ASSIGN_OR_RETURN(Statement select,
                   db.Prepare("SELECT 1 FROM sweeps WHERE id = ?1"
                              " AND team_id = ?2"));
  select.BindInt64(1, sweep_id);
  select.BindInt64(2, team_id);
  ASSIGN_OR_RETURN(bool found, select.Step());
  return found ? absl::OkStatus() : SweepNotFound(sweep_id);
}

absl::Status CheckTeam(Database& db, int64_t team_id) {
  ASSIGN_OR_RETURN(Statement select,
                   db.Prepare("SELECT 1 FROM teams WHERE id = ?1"));
  select.BindInt64(1, team_id);
  ASSIGN_OR_RETURN(bool found, select.Step());
  return found ? absl::OkStatus() : TeamNotFound(team_id);
}

// Appends the "state" event of a run's change to `state`; `attempt` is the
// run's attempt after the change.
absl::Status AppendStateEvent(Database& db, int64_t run_id, uint32_t attempt,
                              RunState state, absl::string_view worker,
                              absl::string_view reason, int64_t now_ms) {
  const std::string payload = StateEventPayload(state, attempt, worker, reason);

  int64_t idx;
  {
    ASSIGN_OR_RETURN(Statement next, db.Prepare(kNextStateEventIdx));
    next.BindInt64(1, run_id);
    next.BindInt64(2, attempt);
    ASSIGN_OR_RETURN(bool row, next.Step());
    if (!row) return absl::InternalError("no next state event index");
    idx = next.ColumnInt64(0);
  }
  ASSIGN_OR_RETURN(Statement insert, db.Prepare(kInsertStateEvent));
  insert.BindInt64(1, run_id);
  insert.BindInt64(2, attempt);
  insert.BindInt64(3, idx);
  insert.BindText(4, payload);
  insert.BindInt64(5, now_ms);
  return insert.Run();
}

absl::Status CloseAttempt(Database& db, int64_t run_id, uint32_t attempt,
                          RunState outcome, absl::string_view reason,
                          int64_t now_ms) {
  ASSIGN_OR_RETURN(Statement update, db.Prepare(kCloseAttempt));
  update.BindInt64(1, run_id);
  update.BindInt64(2, attempt);
  update.BindInt64(3, now_ms);
  update.BindInt64(4, outcome);
  update.BindText(5, reason);
  return update.Run();
}

// Binds `value` or, when absent, NULL (= keep the column, see kRequeueRun).
void BindOptionalText(Statement& statement, int index,
                      const std::optional<std::string>& value) {
  if (value.has_value()) {
    statement.BindText(index, *value);
  } else {
    statement.BindNull(index);
  }
}

void BindOptionalBool(Statement& statement, int index,
                      std::optional<bool> value) {
  if (value.has_value()) {
    statement.BindBool(index, *value);
  } else {
    statement.BindNull(index);
  }
}

absl::Status RequeueRun(Database& db, int64_t run_id,
                        const std::optional<std::string>& error,
                        std::optional<bool> retryable) {
  ASSIGN_OR_RETURN(Statement update, db.Prepare(kRequeueRun));
  update.BindInt64(1, run_id);
  BindOptionalText(update, 2, error);
  BindOptionalBool(update, 3, retryable);
  return update.Run();
}

absl::Status FinalizeRun(Database& db, int64_t run_id, RunState state,
                         int64_t now_ms,
                         const std::optional<std::string>& error,
                         std::optional<bool> retryable) {
  ASSIGN_OR_RETURN(Statement update, db.Prepare(kFinalizeRun));
  update.BindInt64(1, run_id);
  update.BindInt64(2, state);
  update.BindInt64(3, now_ms);
  BindOptionalText(update, 4, error);
  BindOptionalBool(update, 5, retryable);
  return update.Run();
}

// What a worker write needs to know about the run its lease names.
struct LeasedRun {
  int64_t run_id = 0;
  RunState state = v1::RUN_STATE_UNSPECIFIED;
  uint32_t attempt = 0;
  uint32_t max_attempts = 0;
  std::string worker_id;
  bool cancel_requested = false;
  std::string metric;
  v1::Goal goal = v1::GOAL_UNSPECIFIED;
  bool has_best = false;
  double best_value = 0;
  int64_t best_step = 0;
  WorkerState worker_state = v1::WORKER_STATE_UNSPECIFIED;  // of the holder

  Directive directive() const {
    if (cancel_requested) return v1::DIRECTIVE_CANCEL;
    if (worker_state == v1::WORKER_STATE_DRAINING) return v1::DIRECTIVE_DRAIN;
    return v1::DIRECTIVE_CONTINUE;
  }
};

// The run `lease` names if the lease is current (and held by `worker_id`
// unless that is null): NOT_FOUND for an unknown or foreign run,
// FAILED_PRECONDITION for a stale lease or another holder.
absl::StatusOr<LeasedRun> CheckLease(Database& db, int64_t team_id,
                                     const LeaseRef& lease,
                                     const std::string* worker_id) {
  ASSIGN_OR_RETURN(Statement select, db.Prepare(kSelectLeasedRun));
  select.BindInt64(1, lease.run_id());
  select.BindInt64(2, team_id);
  ASSIGN_OR_RETURN(bool found, select.Step());
  if (!found) return RunNotFound(lease.run_id());

  LeasedRun run;
  run.run_id = lease.run_id();
  run.state = static_cast<RunState>(select.ColumnInt64(0));
  run.attempt = static_cast<uint32_t>(select.ColumnInt64(1));
  const int64_t lease_id = select.ColumnInt64(2);
  run.worker_id = select.ColumnText(3);
  run.cancel_requested = select.ColumnBool(4);
  run.metric = select.ColumnText(5);
  run.goal = static_cast<v1::Goal>(select.ColumnInt64(6));
  run.has_best = !select.ColumnIsNull(7);
  run.best_value = select.ColumnDouble(7);
  run.best_step = select.ColumnInt64(8);
  run.max_attempts = static_cast<uint32_t>(select.ColumnInt64(9));
  run.worker_state = static_cast<WorkerState>(select.ColumnInt64(10));

  if (!IsActive(run.state) || run.attempt != lease.attempt() ||
      lease_id != ToSql(lease.lease_id())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "lease of run ", lease.run_id(), " attempt ", lease.attempt(),
        " is not current (run is ", v1::RunState_Name(run.state),
        " at attempt ", run.attempt, ")"));
  }
  if (worker_id != nullptr && *worker_id != run.worker_id) {
    return absl::FailedPreconditionError(
        absl::StrCat("lease of run ", lease.run_id(), " is held by worker \"",
                     run.worker_id, "\", not \"", *worker_id, "\""));
  }
  return run;
}

// Fills `worker` from a row of kSelectWorker / kSelectWorkers.
absl::Status WorkerFromRow(const Statement& row, Worker* worker) {
  worker->set_worker_id(row.ColumnText(0));
  worker->set_host(row.ColumnText(1));
  worker->set_slots(static_cast<uint32_t>(row.ColumnInt64(2)));
  absl::StatusOr<std::vector<std::string>> datasets =
      DecodeJsonStringArray(row.ColumnText(3));
  if (!datasets.ok()) {
    return absl::InternalError(
        absl::StrCat("worker ", worker->worker_id(),
                     ": bad datasets_json: ", datasets.status().message()));
  }
  for (std::string& dataset : *datasets) {
    worker->add_datasets(std::move(dataset));
  }
  worker->set_version(row.ColumnText(4));
  worker->set_state(static_cast<WorkerState>(row.ColumnInt64(5)));
  worker->set_registered_at_ms(row.ColumnInt64(6));
  worker->set_last_seen_at_ms(row.ColumnInt64(7));
  worker->set_consecutive_failures(static_cast<uint32_t>(row.ColumnInt64(8)));
  worker->set_quarantine_reason(row.ColumnText(9));
  return absl::OkStatus();
}

absl::Status FillRunningRunIds(Database& db, int64_t team_id, Worker* worker) {
  ASSIGN_OR_RETURN(Statement select, db.Prepare(kSelectRunningRunIds));
  select.BindInt64(1, team_id);
  select.BindText(2, worker->worker_id());
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) return absl::OkStatus();
    worker->add_running_run_ids(select.ColumnInt64(0));
  }
}

// The team's worker with running_run_ids; NOT_FOUND if none.
absl::StatusOr<Worker> ReadWorker(Database& db, int64_t team_id,
                                  const std::string& worker_id) {
  Worker worker;
  {
    ASSIGN_OR_RETURN(Statement select, db.Prepare(kSelectWorker));
    select.BindInt64(1, team_id);
    select.BindText(2, worker_id);
    ASSIGN_OR_RETURN(bool found, select.Step());
    if (!found) {
      return absl::NotFoundError(
          absl::StrCat("worker \"", worker_id, "\" not found"));
    }
    RETURN_IF_ERROR(WorkerFromRow(select, &worker));
  }
  RETURN_IF_ERROR(FillRunningRunIds(db, team_id, &worker));
  return worker;
}

// Cancels a QUEUED run now (returns true) or asks the holder of a leased
// one to stop (returns false); FAILED_PRECONDITION for a final run.
absl::StatusOr<bool> CancelOne(Database& db, int64_t run_id, RunState state,
                               uint32_t attempt, int64_t now_ms) {
  if (state == v1::RUN_STATE_QUEUED) {
    RETURN_IF_ERROR(FinalizeRun(db, run_id, v1::RUN_STATE_CANCELLED, now_ms,
                                std::nullopt, std::nullopt));
    RETURN_IF_ERROR(AppendStateEvent(db, run_id, attempt,
                                     v1::RUN_STATE_CANCELLED, "",
                                     "cancelled while queued", now_ms));
    return true;
  }
  if (IsActive(state)) {
    ASSIGN_OR_RETURN(
        Statement update,
        db.Prepare("UPDATE runs SET cancel_requested = 1 WHERE id = ?1"));
    update.BindInt64(1, run_id);
    RETURN_IF_ERROR(update.Run());
    return false;
  }
  return absl::FailedPreconditionError(
      absl::StrCat("run ", run_id, " is already ", v1::RunState_Name(state)));
}

// Whether the stored point under `point`'s key in (run, attempt) has seq
// `seq`, i.e. was written by the insert that gave it that seq.
absl::StatusOr<bool> HasMetricSeq(Database& db, int64_t run_id,
                                  uint32_t attempt, const MetricPoint& point,
                                  int64_t seq) {
  ASSIGN_OR_RETURN(Statement select,
                   db.Prepare("SELECT seq = ?5 FROM metrics WHERE run_id = ?1"
                              " AND attempt = ?2 AND step = ?3 AND name = ?4"));
  select.BindInt64(1, run_id);
  select.BindInt64(2, attempt);
  select.BindInt64(3, point.step());
  select.BindText(4, point.name());
  select.BindInt64(5, seq);
  ASSIGN_OR_RETURN(bool found, select.Step());
  return found && select.ColumnBool(0);
}

// The write of LeaseRun; `grant` is left empty when nothing is leased.
absl::Status LeaseRunOp(Database& db, int64_t team_id,
                        const std::string& worker_id,
                        const std::vector<std::string>& datasets,
                        int64_t now_ms, int64_t ttl_ms,
                        std::optional<LeaseGrant>* grant) {
  grant->reset();  // an op may run twice (GroupCommitWriter)
  {
    // An active worker is touched and goes on; anyone else gets the reason
    // (a second look, only on that path).
    ASSIGN_OR_RETURN(Statement touch, db.Prepare(kTouchActiveWorker));
    touch.BindInt64(1, team_id);
    touch.BindText(2, worker_id);
    touch.BindInt64(3, now_ms);
    RETURN_IF_ERROR(touch.Run());
  }
  if (db.Changes() == 0) {
    ASSIGN_OR_RETURN(Statement select,
                     db.Prepare("SELECT state FROM workers"
                                " WHERE team_id = ?1 AND worker_id = ?2"));
    select.BindInt64(1, team_id);
    select.BindText(2, worker_id);
    ASSIGN_OR_RETURN(bool found, select.Step());
    if (!found) {
      return absl::FailedPreconditionError(
          absl::StrCat("worker \"", worker_id, "\" is not registered"));
    }
    const auto state = static_cast<WorkerState>(select.ColumnInt64(0));
    return absl::FailedPreconditionError(
        absl::StrCat("worker \"", worker_id, "\" is ",
                     v1::WorkerState_Name(state), " and may not lease runs"));
  }
  if (datasets.empty()) return absl::OkStatus();

  int64_t run_id;
  uint32_t attempt;  // the lease's: the run's attempts so far + 1
  {
    ASSIGN_OR_RETURN(Statement pick,
                     db.Prepare(sqlite_queries::LeasePick(datasets.size())));
    pick.BindInt64(1, team_id);
    for (size_t i = 0; i < datasets.size(); ++i) {
      pick.BindText(static_cast<int>(i) + 2, datasets[i]);
    }
    ASSIGN_OR_RETURN(bool found, pick.Step());
    if (!found) return absl::OkStatus();
    run_id = pick.ColumnInt64(0);
    attempt = static_cast<uint32_t>(pick.ColumnInt64(1)) + 1;
  }

  const uint64_t lease_id = RandomNonZeroU64();
  const int64_t expires_at_ms = now_ms + ttl_ms;
  {
    // The attempt is set, not read back with RETURNING: SQLite gathers a
    // RETURNING statement's rows in a temporary table, which cost this
    // UPDATE a third of its time.
    ASSIGN_OR_RETURN(
        Statement update,
        db.Prepare("UPDATE runs SET state = 2, attempt = ?6,"
                   " lease_id = ?2, lease_expires_at_ms = ?3,"
                   " worker_id = ?4, started_at_ms = ?5 WHERE id = ?1"));
    update.BindInt64(1, run_id);
    update.BindInt64(2, ToSql(lease_id));
    update.BindInt64(3, expires_at_ms);
    update.BindText(4, worker_id);
    update.BindInt64(5, now_ms);
    update.BindInt64(6, attempt);
    RETURN_IF_ERROR(update.Run());
    if (db.Changes() != 1) return absl::InternalError("leased run vanished");
  }
  {
    ASSIGN_OR_RETURN(Statement insert, db.Prepare(kInsertAttempt));
    insert.BindInt64(1, run_id);
    insert.BindInt64(2, attempt);
    insert.BindText(3, worker_id);
    insert.BindInt64(4, now_ms);
    RETURN_IF_ERROR(insert.Run());
  }
  RETURN_IF_ERROR(AppendStateEvent(db, run_id, attempt, v1::RUN_STATE_LEASED,
                                   worker_id, "leased", now_ms));
  LeaseGrant& granted = grant->emplace();
  ASSIGN_OR_RETURN(granted.run, ReadFullRun(db, team_id, run_id));
  granted.lease.set_run_id(run_id);
  granted.lease.set_attempt(attempt);
  granted.lease.set_lease_id(lease_id);
  granted.lease_expires_at_ms = expires_at_ms;
  return absl::OkStatus();
}

// The write of AppendEvents.
absl::Status AppendEventsOp(Database& db, int64_t team_id,
                            const LeaseRef& lease, uint64_t batch_seq,
                            const MetricPoints& points, const RunEvents& events,
                            int64_t now_ms, Directive* directive) {
  ASSIGN_OR_RETURN(LeasedRun run, CheckLease(db, team_id, lease, nullptr));
  const int64_t run_id = run.run_id;
  // The run's row changes once per batch at most: RUNNING (the first
  // batch) and a new best (below) are one UPDATE.
  const bool starts_running = run.state == v1::RUN_STATE_LEASED;
  if (starts_running) {
    RETURN_IF_ERROR(AppendStateEvent(
        db, run_id, run.attempt, v1::RUN_STATE_RUNNING, run.worker_id,
        "reporting", RunningSince(points, events, now_ms)));
  }

  // The batch's best newly stored point of the run's metric. A point
  // already stored (a resent batch) is skipped and does not count for the
  // best: the first write wins.
  const MetricPoint* best = nullptr;
  double best_score = 0;
  auto consider = [&](const MetricPoint& point) {
    const double score = Score(run.goal, point.value());
    if (best == nullptr || score > best_score ||
        (score == best_score && point.step() < best->step())) {
      best = &point;
      best_score = score;
    }
  };
  auto may_be_best = [&](const MetricPoint& point) {
    return point.name() == run.metric && std::isfinite(point.value());
  };
  if (!points.empty()) {
    int64_t seq = 0;
    {
      ASSIGN_OR_RETURN(Statement last, db.Prepare(kLastMetricSeq));
      last.BindInt64(1, run_id);
      ASSIGN_OR_RETURN(bool row, last.Step());
      if (row) seq = last.ColumnInt64(0);
    }
    const int n = points.size();
    int i = 0;
    // Whole chunks as multi-row INSERTs: one statement run per chunk
    // instead of per point.
    if (n >= kMetricRowsPerInsert) {
      ASSIGN_OR_RETURN(Statement insert, db.Prepare(InsertMetricRowsSql()));
      insert.BindInt64(1, run_id);
      insert.BindInt64(2, run.attempt);
      for (; n - i >= kMetricRowsPerInsert; i += kMetricRowsPerInsert) {
        const int64_t first_seq = seq + 1;
        for (int r = 0; r < kMetricRowsPerInsert; ++r) {
          const MetricPoint& point = points.Get(i + r);
          const int p = 3 + r * kMetricColumnsPerRow;
          insert.BindText(p, point.name());
          insert.BindInt64(p + 1, point.step());
          insert.BindDouble(p + 2, point.value());
          insert.BindInt64(
              p + 3, point.wall_time_ms() != 0 ? point.wall_time_ms() : now_ms);
          insert.BindInt64(p + 4, ++seq);
        }
        RETURN_IF_ERROR(insert.Run());
        insert.Reset();
        // Usually every row is new; otherwise a point is ours iff the row
        // under its key carries the seq this chunk gave it.
        const bool all_new = db.Changes() == kMetricRowsPerInsert;
        for (int r = 0; r < kMetricRowsPerInsert; ++r) {
          const MetricPoint& point = points.Get(i + r);
          if (!may_be_best(point)) continue;
          if (!all_new) {
            ASSIGN_OR_RETURN(bool ours,
                             HasMetricSeq(db, run_id, run.attempt, point,
                                          first_seq + r));
            if (!ours) continue;
          }
          consider(point);
        }
      }
    }
    if (i < n) {
      ASSIGN_OR_RETURN(Statement insert, db.Prepare(kInsertMetric));
      insert.BindInt64(1, run_id);
      insert.BindInt64(2, run.attempt);
      for (; i < n; ++i) {
        const MetricPoint& point = points.Get(i);
        insert.BindInt64(7, ++seq);
        insert.BindText(3, point.name());
        insert.BindInt64(4, point.step());
        insert.BindDouble(5, point.value());
        insert.BindInt64(
            6, point.wall_time_ms() != 0 ? point.wall_time_ms() : now_ms);
        RETURN_IF_ERROR(insert.Run());
        insert.Reset();
        if (db.Changes() != 0 && may_be_best(point)) consider(point);
      }
    }
  }
  if (!events.empty()) {
    ASSIGN_OR_RETURN(Statement insert, db.Prepare(kInsertEvent));
    insert.BindInt64(1, run_id);
    insert.BindInt64(2, run.attempt);
    insert.BindInt64(3, ToSql(batch_seq));
    for (int i = 0; i < events.size(); ++i) {
      insert.BindInt64(4, static_cast<int64_t>(i));
      insert.BindText(5, events[i].kind());
      insert.BindText(6, events[i].payload_json());
      insert.BindInt64(7,
                       events[i].time_ms() != 0 ? events[i].time_ms() : now_ms);
      RETURN_IF_ERROR(insert.Run());
      insert.Reset();
    }
  }

  bool new_best = false;
  if (best != nullptr) {
    const double stored_score = Score(run.goal, run.best_value);
    new_best = !run.has_best || best_score > stored_score ||
               (best_score == stored_score && best->step() < run.best_step);
  }
  if (new_best) {
    // A column SET is rewritten in every index that names it, even to the
    // same value: `state` is set only when it changes.
    ASSIGN_OR_RETURN(
        Statement update,
        db.Prepare(starts_running
                       ? "UPDATE runs SET state = 3, best_value = ?2,"
                         " best_step = ?3, best_attempt = ?4, score = ?5"
                         " WHERE id = ?1"
                       : "UPDATE runs SET best_value = ?2, best_step = ?3,"
                         " best_attempt = ?4, score = ?5 WHERE id = ?1"));
    update.BindInt64(1, run_id);
    update.BindDouble(2, best->value());
    update.BindInt64(3, best->step());
    update.BindInt64(4, run.attempt);
    update.BindDouble(5, best_score);
    RETURN_IF_ERROR(update.Run());
  } else if (starts_running) {
    ASSIGN_OR_RETURN(Statement update,
                     db.Prepare("UPDATE runs SET state = 3 WHERE id = ?1"));
    update.BindInt64(1, run_id);
    RETURN_IF_ERROR(update.Run());
  }
  *directive = run.directive();
  return absl::OkStatus();
}

// The write of FinishRun; `*new_state` is the run's state after it.
absl::Status FinishRunOp(Database& db, int64_t team_id,
                         const FinishRequest& request, RunState* new_state) {
  ASSIGN_OR_RETURN(const RunState final_state,
                   StateOfOutcome(request.outcome, request.lease.run_id()));
  const bool failed = final_state == v1::RUN_STATE_FAILED;
  const std::optional<std::string> error =
      failed ? std::optional<std::string>(request.reason) : std::nullopt;
  const bool retryable = failed && request.retryable;

  ASSIGN_OR_RETURN(LeasedRun run,
                   CheckLease(db, team_id, request.lease, &request.worker_id));
  const bool requeue =
      retryable && !run.cancel_requested && run.attempt < run.max_attempts;
  *new_state = requeue ? v1::RUN_STATE_QUEUED : final_state;
  RETURN_IF_ERROR(CloseAttempt(db, run.run_id, run.attempt, final_state,
                               request.reason, request.now_ms));
  if (requeue) {
    RETURN_IF_ERROR(RequeueRun(db, run.run_id, error, retryable));
  } else {
    RETURN_IF_ERROR(FinalizeRun(db, run.run_id, final_state, request.now_ms,
                                error, retryable));
  }
  RETURN_IF_ERROR(AppendStateEvent(db, run.run_id, run.attempt, *new_state,
                                   request.worker_id, request.reason,
                                   request.now_ms));

  if (final_state == v1::RUN_STATE_SUCCEEDED) {
    // Usually already 0: the condition spares the worker's page a write.
    ASSIGN_OR_RETURN(Statement update,
                     db.Prepare("UPDATE workers SET consecutive_failures = 0"
                                " WHERE team_id = ?1 AND worker_id = ?2"
                                " AND consecutive_failures <> 0"));
    update.BindInt64(1, team_id);
    update.BindText(2, request.worker_id);
    RETURN_IF_ERROR(update.Run());
  } else if (failed) {
    uint32_t failures;
    WorkerState state;
    {
      ASSIGN_OR_RETURN(
          Statement update,
          db.Prepare("UPDATE workers"
                     " SET consecutive_failures = consecutive_failures + 1"
                     " WHERE team_id = ?1 AND worker_id = ?2"
                     " RETURNING consecutive_failures, state"));
      update.BindInt64(1, team_id);
      update.BindText(2, request.worker_id);
      ASSIGN_OR_RETURN(bool found, update.Step());
      if (!found) return absl::OkStatus();  // the worker row is gone
      failures = static_cast<uint32_t>(update.ColumnInt64(0));
      state = static_cast<WorkerState>(update.ColumnInt64(1));
      RETURN_IF_ERROR(update.Run());
    }
    if (request.quarantine_after > 0 && failures >= request.quarantine_after &&
        state != v1::WORKER_STATE_QUARANTINED) {
      ASSIGN_OR_RETURN(Statement update,
                       db.Prepare("UPDATE workers SET state = ?3,"
                                  " quarantine_reason = ?4"
                                  " WHERE team_id = ?1 AND worker_id = ?2"));
      update.BindInt64(1, team_id);
      update.BindText(2, request.worker_id);
      update.BindInt64(3, v1::WORKER_STATE_QUARANTINED);
      update.BindText(
          4, absl::StrCat(failures, " consecutive failures; last: run ",
                          run.run_id, ": ", request.reason));
      RETURN_IF_ERROR(update.Run());
    }
  }
  return absl::OkStatus();
}

}  // namespace

// ---- Construction ----

SqliteStore::SqliteStore(std::unique_ptr<GroupCommitWriter> writer,
                         std::unique_ptr<WalCheckpointer> checkpointer,
                         std::vector<std::unique_ptr<Database>> readers)
    : writer_(std::move(writer)),
      checkpointer_(std::move(checkpointer)),
      readers_(std::move(readers)) {
  absl::MutexLock lock(&readers_mu_);
  for (const auto& reader : readers_) idle_readers_.push_back(reader.get());
}

SqliteStore::~SqliteStore() {
  // Completions of submitted writes may still read (LeaseRunAsync's
  // caller does) and commits call the checkpointer: finish them while both
  // are there.
  writer_->Shutdown();
}

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(
    const SqliteStoreOptions& options) {
  if (options.path.empty() || options.path == ":memory:") {
    return absl::InvalidArgumentError("SqliteStore needs a database file path");
  }
  if (options.reader_connections < 1) {
    return absl::InvalidArgumentError(
        "SqliteStore needs at least one reader connection");
  }
  if (options.checkpoint_frames < 1) {
    return absl::InvalidArgumentError(
        "SqliteStore needs checkpoint_frames of at least 1");
  }
  DatabaseOptions write_options;
  write_options.synchronous_full = options.synchronous_full;
  write_options.busy_timeout_ms = options.busy_timeout_ms;
  ASSIGN_OR_RETURN(std::unique_ptr<Database> writer,
                   Database::Open(options.path, write_options));
  RETURN_IF_ERROR(ApplyMigrations(*writer, EmbeddedMigrations()));
  ASSIGN_OR_RETURN(std::unique_ptr<Database> checkpoint_db,
                   Database::Open(options.path, write_options));
  auto checkpointer =
      std::make_unique<WalCheckpointer>(std::move(checkpoint_db));
  writer->SetWalCommitHook(
      [checkpointer = checkpointer.get(),
       threshold = options.checkpoint_frames](int frames) {
        if (frames >= threshold) checkpointer->Request();
      });

  DatabaseOptions read_options;
  read_options.read_only = true;
  read_options.busy_timeout_ms = options.busy_timeout_ms;
  std::vector<std::unique_ptr<Database>> readers;
  for (int i = 0; i < options.reader_connections; ++i) {
    ASSIGN_OR_RETURN(std::unique_ptr<Database> reader,
                     Database::Open(options.path, read_options));
    readers.push_back(std::move(reader));
  }
  return std::unique_ptr<SqliteStore>(new SqliteStore(
      std::make_unique<GroupCommitWriter>(std::move(writer),
                                          options.max_group_commit_ops,
                                          options.run_every_group_twice),
      std::move(checkpointer), std::move(readers)));
}

int64_t SqliteStore::checkpoints_completed() {
  return checkpointer_->completed();
}

bool SqliteStore::WaitForCheckpoint(int64_t seen, absl::Duration timeout) {
  return checkpointer_->WaitForCompleted(seen, timeout);
}

absl::Status SqliteStore::Read(DbFn fn) {
  Database* db;
  {
    absl::MutexLock lock(&readers_mu_);
    while (idle_readers_.empty()) reader_returned_.Wait(&readers_mu_);
    db = idle_readers_.back();
    idle_readers_.pop_back();
  }
  absl::Status status = [&]() -> absl::Status {
    Transaction transaction(db);
    RETURN_IF_ERROR(transaction.Begin(Transaction::Mode::kDeferred));
    RETURN_IF_ERROR(fn(*db));
    return transaction.Commit();
  }();
  {
    absl::MutexLock lock(&readers_mu_);
    idle_readers_.push_back(db);
    reader_returned_.Signal();
  }
  return status;
}

// ---- Teams ----

absl::StatusOr<int64_t> SqliteStore::CreateTeam(
    const std::string& name, const std::string& member_token_hash,
    const std::string& worker_token_hash, int64_t now_ms) {
  if (name.empty()) return absl::InvalidArgumentError("team name is empty");
  int64_t team_id = 0;
  RETURN_IF_ERROR(Write([&](Database& db) -> absl::Status {
    {
      ASSIGN_OR_RETURN(Statement select,
                       db.Prepare("SELECT 1 FROM teams WHERE name = ?1"));
      select.BindText(1, name);
      ASSIGN_OR_RETURN(bool taken, select.Step());
      if (taken) {
        return absl::AlreadyExistsError(
            absl::StrCat("team \"", name, "\" already exists"));
      }
    }
    ASSIGN_OR_RETURN(Statement insert,
                     db.Prepare("INSERT INTO teams (name, member_token_hash,"
                                " worker_token_hash, created_at_ms)"
                                " VALUES (?1, ?2, ?3, ?4)"));
    insert.BindText(1, name);
    insert.BindText(2, member_token_hash);
    insert.BindText(3, worker_token_hash);
    insert.BindInt64(4, now_ms);
    RETURN_IF_ERROR(insert.Run());
    team_id = db.LastInsertRowId();
    return absl::OkStatus();
  }));
  return team_id;
}

absl::StatusOr<TeamPrincipal> SqliteStore::FindToken(
    const std::string& token_hash) {
  if (token_hash.empty()) return absl::NotFoundError("unknown token");
  TeamPrincipal principal;
  RETURN_IF_ERROR(Read([&](Database& db) -> absl::Status {
    // A hash in both columns (never made by the CLI) reads as the member.
    ASSIGN_OR_RETURN(
        Statement select,
        db.Prepare("SELECT id, name, member_token_hash = ?1 FROM teams"
                   " WHERE member_token_hash = ?1 OR worker_token_hash = ?1"
                   " ORDER BY member_token_hash = ?1 DESC, id LIMIT 1"));
    select.BindText(1, token_hash);
    ASSIGN_OR_RETURN(bool found, select.Step());
    if (!found) return absl::NotFoundError("unknown token");
    principal.team_id = select.ColumnInt64(0);
    principal.team_name = select.ColumnText(1);
    principal.role = select.ColumnBool(2) ? Role::kMember : Role::kWorker;
    return absl::OkStatus();
  }));
  return principal;
}

absl::Status SqliteStore::RotateToken(const std::string& team_name, Role role,
                                      const std::string& new_hash) {
  return Write([&](Database& db) -> absl::Status {
    ASSIGN_OR_RETURN(Statement update,
                     db.Prepare(role == Role::kWorker
                                    ? "UPDATE teams SET worker_token_hash = ?2"
                                      " WHERE name = ?1"
                                    : "UPDATE teams SET member_token_hash = ?2"
                                      " WHERE name = ?1"));
    update.BindText(1, team_name);
    update.BindText(2, new_hash);
    RETURN_IF_ERROR(update.Run());
    if (db.Changes() == 0) {
      return absl::NotFoundError(
          absl::StrCat("team \"", team_name, "\" not found"));
    }
    return absl::OkStatus();
  });
}

// ---- Sweeps and runs ----

absl::StatusOr<InsertSweepResult> SqliteStore::InsertSweep(
    int64_t team_id, const NewSweep& sweep, int64_t now_ms) {
  InsertSweepResult result;
  RETURN_IF_ERROR(Write([&](Database& db) -> absl::Status {
    result = InsertSweepResult();  // an op may run twice (GroupCommitWriter)
    RETURN_IF_ERROR(CheckTeam(db, team_id));
    if (!sweep.idempotency_key.empty()) {
      ASSIGN_OR_RETURN(Statement select,
                       db.Prepare("SELECT id FROM sweeps WHERE team_id = ?1"
                                  " AND idempotency_key = ?2"));
      select.BindInt64(1, team_id);
      select.BindText(2, sweep.idempotency_key);
      ASSIGN_OR_RETURN(bool found, select.Step());
      if (found) {
        result.existing = true;
        result.sweep_id = select.ColumnInt64(0);
        ASSIGN_OR_RETURN(Statement runs,
                         db.Prepare("SELECT id FROM runs WHERE sweep_id = ?1"
                                    " ORDER BY idx"));
        runs.BindInt64(1, result.sweep_id);
        while (true) {
          ASSIGN_OR_RETURN(bool row, runs.Step());
          if (!row) return absl::OkStatus();
          result.run_ids.push_back(runs.ColumnInt64(0));
        }
      }
    }
    if (sweep.max_attempts == 0) {
      return absl::InvalidArgumentError("max_attempts must be at least 1");
    }

    {
      ASSIGN_OR_RETURN(
          Statement insert,
          db.Prepare("INSERT INTO sweeps (team_id, name, spec_yaml, metric,"
                     " goal, priority, max_attempts, idempotency_key,"
                     " run_count, created_at_ms)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"));
      insert.BindInt64(1, team_id);
      insert.BindText(2, sweep.name);
      insert.BindText(3, sweep.spec_yaml);
      insert.BindText(4, sweep.metric);
      insert.BindInt64(5, sweep.goal);
      insert.BindInt64(6, sweep.priority);
      insert.BindInt64(7, sweep.max_attempts);
      insert.BindText(8, sweep.idempotency_key);
      insert.BindInt64(9, static_cast<int64_t>(sweep.runs.size()));
      insert.BindInt64(10, now_ms);
      RETURN_IF_ERROR(insert.Run());
      result.sweep_id = db.LastInsertRowId();
    }

    ASSIGN_OR_RETURN(
        Statement insert,
        db.Prepare(
            "INSERT INTO runs (team_id, sweep_id, idx, config,"
            " params_json, dataset, state, priority, max_attempts,"
            " metric, goal, created_at_ms)"
            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?8, ?9, ?10, ?11)"));
    insert.BindInt64(1, team_id);
    insert.BindInt64(2, result.sweep_id);
    insert.BindInt64(7, sweep.priority);
    insert.BindInt64(8, sweep.max_attempts);
    insert.BindText(9, sweep.metric);
    insert.BindInt64(10, sweep.goal);
    insert.BindInt64(11, now_ms);
    result.run_ids.reserve(sweep.runs.size());
    for (size_t i = 0; i < sweep.runs.size(); ++i) {
      const NewRun& run = sweep.runs[i];
      insert.BindInt64(3, static_cast<int64_t>(i));
      insert.BindBlob(4, run.config.SerializeAsString());
      insert.BindText(5, EncodeJsonStringMap(run.params));
      insert.BindText(6, run.dataset);
      RETURN_IF_ERROR(insert.Run());
      insert.Reset();
      const int64_t run_id = db.LastInsertRowId();
      result.run_ids.push_back(run_id);
      RETURN_IF_ERROR(AppendStateEvent(db, run_id, 0, v1::RUN_STATE_QUEUED, "",
                                       "submitted", now_ms));
    }
    return absl::OkStatus();
  }));
  return result;
}

absl::StatusOr<Sweep> SqliteStore::GetSweep(int64_t team_id, int64_t sweep_id) {
  Sweep sweep;
  RETURN_IF_ERROR(Read([&](Database& db) -> absl::Status {
    ASSIGN_OR_RETURN(
        Statement select,
        db.Prepare("SELECT id, name, spec_yaml, metric, goal, run_count,"
                   " priority, created_at_ms, idempotency_key FROM sweeps"
                   " WHERE id = ?1 AND team_id = ?2"));
    select.BindInt64(1, sweep_id);
    select.BindInt64(2, team_id);
    ASSIGN_OR_RETURN(bool found, select.Step());
    if (!found) return SweepNotFound(sweep_id);
    sweep.set_sweep_id(select.ColumnInt64(0));
    sweep.set_name(select.ColumnText(1));
    sweep.set_spec_yaml(select.ColumnText(2));
    sweep.set_metric(select.ColumnText(3));
    sweep.set_goal(static_cast<v1::Goal>(select.ColumnInt64(4)));
    sweep.set_run_count(static_cast<uint32_t>(select.ColumnInt64(5)));
    sweep.set_priority(static_cast<int32_t>(select.ColumnInt64(6)));
    sweep.set_created_at_ms(select.ColumnInt64(7));
    sweep.set_idempotency_key(select.ColumnText(8));
    return absl::OkStatus();
  }));
  return sweep;
}

absl::StatusOr<std::vector<Run>> SqliteStore::ListRuns(
    int64_t team_id, const RunFilter& filter) {
  std::vector<Run> runs;
  RETURN_IF_ERROR(Read([&](Database& db) -> absl::Status {
    if (filter.sweep_id != 0) {
      RETURN_IF_ERROR(CheckSweepOfTeam(db, team_id, filter.sweep_id));
    }
    ASSIGN_OR_RETURN(
        Statement select,
        db.Prepare(filter.sweep_id != 0 ? sqlite_queries::kListRunsOfSweep
                                        : sqlite_queries::kListRunsOfTeam));
    select.BindInt64(1, team_id);
    select.BindInt64(2, filter.state);
    select.BindInt64(3, filter.before_run_id > 0
                            ? filter.before_run_id
                            : std::numeric_limits<int64_t>::max());
    select.BindInt64(4, filter.limit == 0 ? kDefaultListLimit : filter.limit);
    if (filter.sweep_id != 0) select.BindInt64(5, filter.sweep_id);
    ASSIGN_OR_RETURN(runs, ReadRunSummaries(select));
    return absl::OkStatus();
  }));
  return runs;
}

absl::StatusOr<Run> SqliteStore::GetRun(int64_t team_id, int64_t run_id) {
  Run run;
  RETURN_IF_ERROR(Read([&](Database& db) -> absl::Status {
    ASSIGN_OR_RETURN(run, ReadFullRun(db, team_id, run_id));
    return absl::OkStatus();
  }));
  return run;
}

absl::StatusOr<Run> SqliteStore::CancelRun(int64_t team_id, int64_t run_id,
                                           int64_t now_ms) {
  Run run;
  RETURN_IF_ERROR(Write([&](Database& db) -> absl::Status {
    {
      ASSIGN_OR_RETURN(Statement select,
                       db.Prepare("SELECT state, attempt FROM runs"
                                  " WHERE id = ?1 AND team_id = ?2"));
      select.BindInt64(1, run_id);
      select.BindInt64(2, team_id);
      ASSIGN_OR_RETURN(bool found, select.Step());
      if (!found) return RunNotFound(run_id);
      RETURN_IF_ERROR(
          CancelOne(db, run_id, static_cast<RunState>(select.ColumnInt64(0)),
                    static_cast<uint32_t>(select.ColumnInt64(1)), now_ms)
              .status());
    }
    ASSIGN_OR_RETURN(run, ReadFullRun(db, team_id, run_id));
    return absl::OkStatus();
  }));
  return run;
}

absl::StatusOr<std::pair<uint32_t, uint32_t>> SqliteStore::CancelSweep(
    int64_t team_id, int64_t sweep_id, int64_t now_ms) {
  std::pair<uint32_t, uint32_t> counts{0, 0};
  RETURN_IF_ERROR(Write([&](Database& db) -> absl::Status {
    counts = {0, 0};  // an op may run twice (GroupCommitWriter)
    RETURN_IF_ERROR(CheckSweepOfTeam(db, team_id, sweep_id));
    struct Pending {
      int64_t run_id;
      RunState state;
      uint32_t attempt;
    };
    std::vector<Pending> pending;
    {
      ASSIGN_OR_RETURN(Statement select,
                       db.Prepare("SELECT id, state, attempt FROM runs"
                                  " WHERE sweep_id = ?1 AND state IN (1, 2, 3)"
                                  " ORDER BY idx"));
      select.BindInt64(1, sweep_id);
      while (true) {
        ASSIGN_OR_RETURN(bool row, select.Step());
        if (!row) break;
        pending.push_back({select.ColumnInt64(0),
                           static_cast<RunState>(select.ColumnInt64(1)),
                           static_cast<uint32_t>(select.ColumnInt64(2))});
      }
    }
    for (const Pending& run : pending) {
      ASSIGN_OR_RETURN(bool cancelled, CancelOne(db, run.run_id, run.state,
                                                 run.attempt, now_ms));
      ++(cancelled ? counts.first : counts.second);
    }
    return absl::OkStatus();
  }));
  return counts;
}

absl::StatusOr<Run> SqliteStore::RetryRun(int64_t team_id, int64_t run_id,
                                          int64_t now_ms) {
  Run run;
  RETURN_IF_ERROR(Write([&](Database& db) -> absl::Status {
    {
      ASSIGN_OR_RETURN(
          Statement select,
          db.Prepare("SELECT r.state, r.attempt, s.max_attempts FROM runs r"
                     " JOIN sweeps s ON s.id = r.sweep_id"
                     " WHERE r.id = ?1 AND r.team_id = ?2"));
      select.BindInt64(1, run_id);
      select.BindInt64(2, team_id);
      ASSIGN_OR_RETURN(bool found, select.Step());
      if (!found) return RunNotFound(run_id);
      const auto state = static_cast<RunState>(select.ColumnInt64(0));
      const auto attempt = static_cast<uint32_t>(select.ColumnInt64(1));
      const int64_t sweep_max_attempts = select.ColumnInt64(2);
      if (state != v1::RUN_STATE_FAILED && state != v1::RUN_STATE_CANCELLED &&
          state != v1::RUN_STATE_PRUNED) {
        return absl::FailedPreconditionError(absl::StrCat(
            "run ", run_id, " is ", v1::RunState_Name(state),
            "; only FAILED, CANCELLED or PRUNED runs can be retried"));
      }
      ASSIGN_OR_RETURN(
          Statement update,
          db.Prepare("UPDATE runs SET state = 1, max_attempts = ?2,"
                     " error = '', retryable = 0, cancel_requested = 0,"
                     " finished_at_ms = 0,"
                     " tiebreak_ms = 9223372036854775807, worker_id = '',"
                     " lease_id = 0, lease_expires_at_ms = 0 WHERE id = ?1"));
      update.BindInt64(1, run_id);
      update.BindInt64(2, attempt + sweep_max_attempts);
      RETURN_IF_ERROR(update.Run());
      RETURN_IF_ERROR(AppendStateEvent(db, run_id, attempt,
                                       v1::RUN_STATE_QUEUED, "",
                                       "retry requested", now_ms));
    }
    ASSIGN_OR_RETURN(run, ReadFullRun(db, team_id, run_id));
    return absl::OkStatus();
  }));
  return run;
}

absl::StatusOr<std::vector<LeaderboardEntry>> SqliteStore::Leaderboard(
    int64_t team_id, const LeaderboardQuery& query) {
  std::vector<LeaderboardEntry> entries;
  RETURN_IF_ERROR(Read([&](Database& db) -> absl::Status {
    std::vector<Run> runs;
    {
      if (query.sweep_id != 0) {
        RETURN_IF_ERROR(CheckSweepOfTeam(db, team_id, query.sweep_id));
      }
      ASSIGN_OR_RETURN(
          Statement select,
          db.Prepare(query.sweep_id != 0 ? sqlite_queries::kLeaderboardOfSweep
                                         : sqlite_queries::kLeaderboardOfTeam));
      select.BindInt64(1, team_id);
      select.BindText(2, query.metric);
      select.BindInt64(3, query.top == 0 ? kDefaultLeaderboardTop : query.top);
      if (query.sweep_id != 0) select.BindInt64(4, query.sweep_id);
      ASSIGN_OR_RETURN(runs, ReadRunSummaries(select));
    }
    entries.reserve(runs.size());
    for (Run& run : runs) {
      LeaderboardEntry& entry = entries.emplace_back();
      entry.set_rank(static_cast<uint32_t>(entries.size()));
      ASSIGN_OR_RETURN(Statement metrics,
                       db.Prepare(sqlite_queries::kMetricsAtStep));
      metrics.BindInt64(1, run.run_id());
      metrics.BindInt64(2, run.best_attempt());
      metrics.BindInt64(3, run.best_step());
      while (true) {
        ASSIGN_OR_RETURN(bool row, metrics.Step());
        if (!row) break;
        (*entry.mutable_metrics_at_best())[metrics.ColumnText(0)] =
            ReadValue(metrics, 1);
      }
      *entry.mutable_run() = std::move(run);
    }
    return absl::OkStatus();
  }));
  return entries;
}

absl::StatusOr<WatchBatch> SqliteStore::ReadRunStream(int64_t team_id,
                                                      int64_t run_id,
                                                      int64_t after_metric_seq,
                                                      int64_t after_event_seq,
                                                      uint32_t limit) {
  WatchBatch batch;
  // SQLite reads a negative LIMIT as no limit.
  const int64_t sql_limit = limit == 0 ? -1 : limit;
  RETURN_IF_ERROR(Read([&](Database& db) -> absl::Status {
    {
      ASSIGN_OR_RETURN(Statement select,
                       db.Prepare("SELECT state FROM runs"
                                  " WHERE id = ?1 AND team_id = ?2"));
      select.BindInt64(1, run_id);
      select.BindInt64(2, team_id);
      ASSIGN_OR_RETURN(bool found, select.Step());
      if (!found) return RunNotFound(run_id);
      batch.state = static_cast<RunState>(select.ColumnInt64(0));
    }
    {
      ASSIGN_OR_RETURN(Statement select,
                       db.Prepare(sqlite_queries::kMetricsAfter));
      select.BindInt64(1, run_id);
      select.BindInt64(2, after_metric_seq);
      select.BindInt64(3, sql_limit);
      while (true) {
        ASSIGN_OR_RETURN(bool row, select.Step());
        if (!row) break;
        MetricPoint& point = batch.metrics.emplace_back();
        point.set_seq(select.ColumnInt64(0));
        point.set_attempt(static_cast<uint32_t>(select.ColumnInt64(1)));
        point.set_name(select.ColumnText(2));
        point.set_step(select.ColumnInt64(3));
        point.set_value(ReadValue(select, 4));
        point.set_wall_time_ms(select.ColumnInt64(5));
      }
    }
    ASSIGN_OR_RETURN(Statement select,
                     db.Prepare(sqlite_queries::kEventsAfter));
    select.BindInt64(1, run_id);
    select.BindInt64(2, after_event_seq);
    select.BindInt64(3, sql_limit);
    while (true) {
      ASSIGN_OR_RETURN(bool row, select.Step());
      if (!row) break;
      RunEvent& event = batch.events.emplace_back();
      event.set_seq(select.ColumnInt64(0));
      event.set_attempt(static_cast<uint32_t>(select.ColumnInt64(1)));
      event.set_kind(select.ColumnText(2));
      event.set_payload_json(select.ColumnText(3));
      event.set_time_ms(select.ColumnInt64(4));
    }
    return absl::OkStatus();
  }));
  return batch;
}

// ---- Workers ----

absl::StatusOr<Worker> SqliteStore::UpsertWorker(int64_t team_id,
                                                 const Worker& worker,
                                                 int64_t now_ms) {
  if (worker.worker_id().empty()) {
    return absl::InvalidArgumentError("worker_id is empty");
  }
  Worker stored;
  RETURN_IF_ERROR(Write([&](Database& db) -> absl::Status {
    RETURN_IF_ERROR(CheckTeam(db, team_id));
    {
      ASSIGN_OR_RETURN(
          Statement upsert,
          db.Prepare(
              "INSERT INTO workers (team_id, worker_id, host, slots,"
              " datasets_json, version, state, registered_at_ms,"
              " last_seen_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)"
              " ON CONFLICT (team_id, worker_id) DO UPDATE SET"
              " host = excluded.host, slots = excluded.slots,"
              " datasets_json = excluded.datasets_json,"
              " version = excluded.version,"
              " last_seen_at_ms = excluded.last_seen_at_ms"));
      upsert.BindInt64(1, team_id);
      upsert.BindText(2, worker.worker_id());
      upsert.BindText(3, worker.host());
      upsert.BindInt64(4, worker.slots());
      upsert.BindText(5, EncodeJsonStringArray(worker.datasets()));
      upsert.BindText(6, worker.version());
      upsert.BindInt64(7, v1::WORKER_STATE_ACTIVE);
      upsert.BindInt64(8, now_ms);
      RETURN_IF_ERROR(upsert.Run());
    }
    ASSIGN_OR_RETURN(stored, ReadWorker(db, team_id, worker.worker_id()));
    return absl::OkStatus();
  }));
  return stored;
}

absl::StatusOr<std::vector<Worker>> SqliteStore::ListWorkers(int64_t team_id) {
  std::vector<Worker> workers;
  RETURN_IF_ERROR(Read([&](Database& db) -> absl::Status {
    {
      ASSIGN_OR_RETURN(Statement select, db.Prepare(kSelectWorkers));
      select.BindInt64(1, team_id);
      while (true) {
        ASSIGN_OR_RETURN(bool row, select.Step());
        if (!row) break;
        RETURN_IF_ERROR(WorkerFromRow(select, &workers.emplace_back()));
      }
    }
    for (Worker& worker : workers) {
      RETURN_IF_ERROR(FillRunningRunIds(db, team_id, &worker));
    }
    return absl::OkStatus();
  }));
  return workers;
}

absl::StatusOr<Worker> SqliteStore::GetWorker(int64_t team_id,
                                              const std::string& worker_id) {
  Worker worker;
  RETURN_IF_ERROR(Read([&](Database& db) -> absl::Status {
    ASSIGN_OR_RETURN(worker, ReadWorker(db, team_id, worker_id));
    return absl::OkStatus();
  }));
  return worker;
}

absl::StatusOr<Worker> SqliteStore::DrainWorker(int64_t team_id,
                                                const std::string& worker_id) {
  Worker worker;
  RETURN_IF_ERROR(Write([&](Database& db) -> absl::Status {
    {
      ASSIGN_OR_RETURN(Statement update,
                       db.Prepare("UPDATE workers SET state = ?3"
                                  " WHERE team_id = ?1 AND worker_id = ?2"
                                  " AND state = ?4"));
      update.BindInt64(1, team_id);
      update.BindText(2, worker_id);
      update.BindInt64(3, v1::WORKER_STATE_DRAINING);
      update.BindInt64(4, v1::WORKER_STATE_ACTIVE);
      RETURN_IF_ERROR(update.Run());
    }
    ASSIGN_OR_RETURN(worker, ReadWorker(db, team_id, worker_id));
    return absl::OkStatus();
  }));
  return worker;
}

absl::StatusOr<Worker> SqliteStore::ClearWorker(int64_t team_id,
                                                const std::string& worker_id) {
  Worker worker;
  RETURN_IF_ERROR(Write([&](Database& db) -> absl::Status {
    {
      ASSIGN_OR_RETURN(Statement update,
                       db.Prepare("UPDATE workers SET state = ?3,"
                                  " consecutive_failures = 0,"
                                  " quarantine_reason = ''"
                                  " WHERE team_id = ?1 AND worker_id = ?2"));
      update.BindInt64(1, team_id);
      update.BindText(2, worker_id);
      update.BindInt64(3, v1::WORKER_STATE_ACTIVE);
      RETURN_IF_ERROR(update.Run());
    }
    ASSIGN_OR_RETURN(worker, ReadWorker(db, team_id, worker_id));
    return absl::OkStatus();
  }));
  return worker;
}

// ---- Leases ----

absl::StatusOr<std::optional<LeaseGrant>> SqliteStore::LeaseRun(
    int64_t team_id, const std::string& worker_id,
    const std::vector<std::string>& datasets, int64_t now_ms, int64_t ttl_ms) {
  std::optional<LeaseGrant> grant;
  RETURN_IF_ERROR(Write([&](Database& db) {
    return LeaseRunOp(db, team_id, worker_id, datasets, now_ms, ttl_ms, &grant);
  }));
  return grant;
}

void SqliteStore::LeaseRunAsync(int64_t team_id, const std::string& worker_id,
                                const std::vector<std::string>& datasets,
                                int64_t now_ms, int64_t ttl_ms,
                                StoreCallback<std::optional<LeaseGrant>> done) {
  auto grant = std::make_shared<std::optional<LeaseGrant>>();
  writer_->Submit(
      [=, &worker_id, &datasets](Database& db) {
        return LeaseRunOp(db, team_id, worker_id, datasets, now_ms, ttl_ms,
                          grant.get());
      },
      [grant, done = std::move(done)](absl::Status status) mutable {
        if (!status.ok()) return done(std::move(status));
        done(std::move(*grant));
      });
}

absl::StatusOr<HeartbeatResult> SqliteStore::Heartbeat(
    int64_t team_id, const std::string& worker_id, const LeaseRef& lease,
    int64_t now_ms, int64_t ttl_ms) {
  HeartbeatResult result;
  RETURN_IF_ERROR(Write([&](Database& db) -> absl::Status {
    ASSIGN_OR_RETURN(LeasedRun run, CheckLease(db, team_id, lease, &worker_id));
    result.lease_expires_at_ms = now_ms + ttl_ms;
    {
      ASSIGN_OR_RETURN(Statement update,
                       db.Prepare("UPDATE runs SET lease_expires_at_ms = ?2"
                                  " WHERE id = ?1"));
      update.BindInt64(1, run.run_id);
      update.BindInt64(2, result.lease_expires_at_ms);
      RETURN_IF_ERROR(update.Run());
    }
    ASSIGN_OR_RETURN(Statement touch, db.Prepare(kTouchWorker));
    touch.BindInt64(1, team_id);
    touch.BindText(2, worker_id);
    touch.BindInt64(3, now_ms);
    RETURN_IF_ERROR(touch.Run());
    result.directive = run.directive();
    return absl::OkStatus();
  }));
  return result;
}

absl::StatusOr<Directive> SqliteStore::AppendEvents(
    int64_t team_id, const LeaseRef& lease, uint64_t batch_seq,
    const MetricPoints& points, const RunEvents& events, int64_t now_ms) {
  Directive directive = v1::DIRECTIVE_CONTINUE;
  RETURN_IF_ERROR(Write([&](Database& db) {
    return AppendEventsOp(db, team_id, lease, batch_seq, points, events, now_ms,
                          &directive);
  }));
  return directive;
}

void SqliteStore::AppendEventsAsync(int64_t team_id, const LeaseRef& lease,
                                    uint64_t batch_seq,
                                    const MetricPoints& points,
                                    const RunEvents& events, int64_t now_ms,
                                    StoreCallback<Directive> done) {
  auto directive = std::make_shared<Directive>(v1::DIRECTIVE_CONTINUE);
  writer_->Submit(
      [=, &lease, &points, &events](Database& db) {
        return AppendEventsOp(db, team_id, lease, batch_seq, points, events,
                              now_ms, directive.get());
      },
      [directive, done = std::move(done)](absl::Status status) mutable {
        if (!status.ok()) return done(std::move(status));
        done(*directive);
      });
}

absl::Status SqliteStore::AddArtifact(int64_t team_id, const LeaseRef& lease,
                                      const Artifact& artifact) {
  return Write([&](Database& db) -> absl::Status {
    RETURN_IF_ERROR(CheckLease(db, team_id, lease, nullptr).status());
    ASSIGN_OR_RETURN(
        Statement upsert,
        db.Prepare("INSERT INTO artifacts (run_id, attempt, name, sha256,"
                   " size, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                   " ON CONFLICT (run_id, attempt, name) DO UPDATE SET"
                   " sha256 = excluded.sha256, size = excluded.size,"
                   " created_at_ms = excluded.created_at_ms"));
    upsert.BindInt64(1, lease.run_id());
    upsert.BindInt64(2, lease.attempt());
    upsert.BindText(3, artifact.name());
    upsert.BindText(4, artifact.sha256());
    upsert.BindInt64(5, artifact.size());
    upsert.BindInt64(6, artifact.created_at_ms());
    return upsert.Run();
  });
}

absl::StatusOr<std::vector<Artifact>> SqliteStore::ListArtifacts(
    int64_t team_id, int64_t run_id) {
  std::vector<Artifact> artifacts;
  RETURN_IF_ERROR(Read([&](Database& db) -> absl::Status {
    {
      ASSIGN_OR_RETURN(Statement select,
                       db.Prepare("SELECT 1 FROM runs"
                                  " WHERE id = ?1 AND team_id = ?2"));
      select.BindInt64(1, run_id);
      select.BindInt64(2, team_id);
      ASSIGN_OR_RETURN(bool found, select.Step());
      if (!found) return RunNotFound(run_id);
    }
    ASSIGN_OR_RETURN(
        Statement select,
        db.Prepare("SELECT attempt, name, sha256, size, created_at_ms"
                   " FROM artifacts WHERE run_id = ?1"
                   " ORDER BY attempt, name"));
    select.BindInt64(1, run_id);
    while (true) {
      ASSIGN_OR_RETURN(bool row, select.Step());
      if (!row) return absl::OkStatus();
      Artifact& artifact = artifacts.emplace_back();
      artifact.set_run_id(run_id);
      artifact.set_attempt(static_cast<uint32_t>(select.ColumnInt64(0)));
      artifact.set_name(select.ColumnText(1));
      artifact.set_sha256(select.ColumnText(2));
      artifact.set_size(select.ColumnInt64(3));
      artifact.set_created_at_ms(select.ColumnInt64(4));
    }
  }));
  return artifacts;
}

absl::StatusOr<RunState> SqliteStore::FinishRun(int64_t team_id,
                                                const FinishRequest& request) {
  RETURN_IF_ERROR(
      StateOfOutcome(request.outcome, request.lease.run_id()).status());
  RunState new_state = v1::RUN_STATE_UNSPECIFIED;
  RETURN_IF_ERROR(Write([&](Database& db) {
    return FinishRunOp(db, team_id, request, &new_state);
  }));
  return new_state;
}

void SqliteStore::FinishRunAsync(int64_t team_id, const FinishRequest& request,
                                 StoreCallback<RunState> done) {
  // An unknown outcome fails before it takes a place in the queue.
  absl::Status valid =
      StateOfOutcome(request.outcome, request.lease.run_id()).status();
  if (!valid.ok()) return done(std::move(valid));
  auto new_state = std::make_shared<RunState>(v1::RUN_STATE_UNSPECIFIED);
  writer_->Submit(
      [=, &request](Database& db) {
        return FinishRunOp(db, team_id, request, new_state.get());
      },
      [new_state, done = std::move(done)](absl::Status status) mutable {
        if (!status.ok()) return done(std::move(status));
        done(*new_state);
      });
}

absl::StatusOr<std::vector<ExpiredLease>> SqliteStore::ExpireLeases(
    int64_t now_ms) {
  std::vector<ExpiredLease> expired;
  RETURN_IF_ERROR(Write([&](Database& db) -> absl::Status {
    expired.clear();  // an op may run twice (GroupCommitWriter)
    struct Row {
      ExpiredLease lease;
      uint32_t max_attempts;
      bool cancel_requested;
    };
    std::vector<Row> rows;
    {
      ASSIGN_OR_RETURN(Statement select,
                       db.Prepare(sqlite_queries::kExpiredLeases));
      select.BindInt64(1, now_ms);
      while (true) {
        ASSIGN_OR_RETURN(bool found, select.Step());
        if (!found) break;
        Row& row = rows.emplace_back();
        row.lease.run_id = select.ColumnInt64(0);
        row.lease.attempt = static_cast<uint32_t>(select.ColumnInt64(1));
        row.max_attempts = static_cast<uint32_t>(select.ColumnInt64(2));
        row.lease.worker_id = select.ColumnText(3);
        row.cancel_requested = select.ColumnBool(4);
      }
    }
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
      return a.lease.run_id < b.lease.run_id;
    });

    for (Row& row : rows) {
      ExpiredLease& lease = row.lease;
      if (row.cancel_requested) {
        lease.new_state = v1::RUN_STATE_CANCELLED;
        RETURN_IF_ERROR(FinalizeRun(db, lease.run_id, lease.new_state, now_ms,
                                    std::nullopt, std::nullopt));
      } else if (lease.attempt >= row.max_attempts) {
        lease.new_state = v1::RUN_STATE_FAILED;
        RETURN_IF_ERROR(FinalizeRun(
            db, lease.run_id, lease.new_state, now_ms,
            absl::StrCat(kLeaseExpired, " on attempt ", lease.attempt, " of ",
                         row.max_attempts, "; no attempts left"),
            false));
      } else {
        lease.new_state = v1::RUN_STATE_QUEUED;
        RETURN_IF_ERROR(
            RequeueRun(db, lease.run_id, std::nullopt, std::nullopt));
      }
      RETURN_IF_ERROR(CloseAttempt(db, lease.run_id, lease.attempt,
                                   lease.new_state, kLeaseExpired, now_ms));
      RETURN_IF_ERROR(AppendStateEvent(db, lease.run_id, lease.attempt,
                                       lease.new_state, lease.worker_id,
                                       kLeaseExpired, now_ms));
      expired.push_back(std::move(lease));
    }
    return absl::OkStatus();
  }));
  return expired;
}

absl::StatusOr<std::optional<int64_t>> SqliteStore::NextLeaseExpiry() {
  std::optional<int64_t> earliest;
  RETURN_IF_ERROR(Read([&](Database& db) -> absl::Status {
    ASSIGN_OR_RETURN(Statement select,
                     db.Prepare(sqlite_queries::kNextLeaseExpiry));
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (row && !select.ColumnIsNull(0)) earliest = select.ColumnInt64(0);
    return absl::OkStatus();
  }));
  return earliest;
}

absl::Status BackupDatabase(const std::string& db_path,
                            const std::string& out_path) {
  std::error_code ec;
  if (!std::filesystem::exists(db_path, ec)) {
    return absl::NotFoundError(
        absl::StrCat("no database at ", db_path, " (check --db)"));
  }
  if (std::filesystem::exists(out_path, ec)) {
    return absl::AlreadyExistsError(absl::StrCat(
        out_path, " already exists; a backup never overwrites a file"));
  }
  DatabaseOptions source_options;
  source_options.read_only = true;
  ASSIGN_OR_RETURN(std::unique_ptr<Database> source,
                   Database::Open(db_path, source_options));
  ASSIGN_OR_RETURN(int source_version, SchemaVersion(*source));
  {
    ASSIGN_OR_RETURN(Statement vacuum, source->Prepare("VACUUM INTO ?1"));
    vacuum.BindText(1, out_path);
    RETURN_IF_ERROR(vacuum.Step().status());
  }
  auto check = [&]() -> absl::Status {
    DatabaseOptions copy_options;
    copy_options.read_only = true;
    ASSIGN_OR_RETURN(std::unique_ptr<Database> copy,
                     Database::Open(out_path, copy_options));
    ASSIGN_OR_RETURN(std::string integrity,
                     copy->QueryText("PRAGMA integrity_check"));
    if (integrity != "ok") {
      return absl::DataLossError(absl::StrCat(
          "backup ", out_path, " failed its integrity check: ", integrity));
    }
    ASSIGN_OR_RETURN(int copy_version, SchemaVersion(*copy));
    if (copy_version != source_version) {
      return absl::DataLossError(absl::StrCat(
          "backup ", out_path, " has schema version ", copy_version,
          ", the source ", source_version));
    }
    return absl::OkStatus();
  };
  absl::Status status = check();
  if (!status.ok()) std::filesystem::remove(out_path, ec);
  return status;
}

}  // namespace sweepq::store
