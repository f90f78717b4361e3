// The SQL of SqliteStore whose query plans matter for speed: shared between
// sqlite_store.cc and the test that checks (EXPLAIN QUERY PLAN) that each
// is served by its index from migrations/0001_initial.sql without a
// temporary b-tree. Internal to the store; not an API.
#ifndef SWEEPQ_SERVER_STORE_SQLITE_QUERIES_H_
#define SWEEPQ_SERVER_STORE_SQLITE_QUERIES_H_

#include <cstddef>
#include <string>

#include "absl/strings/str_cat.h"

// Columns of `runs` read into a sweepq.v1.Run, in the order of the
// RunColumn enum in sqlite_store.cc. A macro so that queries can be joined
// at compile time.
#define SWEEPQ_SQLITE_RUN_COLUMNS                                            \
  "id, sweep_id, idx, params_json, state, priority, attempt, max_attempts, " \
  "worker_id, lease_expires_at_ms, dataset, metric, goal, best_value, "      \
  "best_step, best_attempt, created_at_ms, started_at_ms, finished_at_ms, "  \
  "error, retryable, cancel_requested, config"

namespace sweepq::store::sqlite_queries {

// ListRuns of a team, newest first: ?1 team, ?2 state (0 = any), ?3 runs
// below this id, ?4 limit. Index: runs_by_team (rowid range).
inline constexpr char kListRunsOfTeam[] =
    "SELECT " SWEEPQ_SQLITE_RUN_COLUMNS
    " FROM runs WHERE team_id = ?1 AND (?2 = 0 OR state = ?2) AND id < ?3"
    " ORDER BY id DESC LIMIT ?4";

// ListRuns of a sweep: as kListRunsOfTeam, ?5 sweep. Index: runs_by_sweep.
inline constexpr char kListRunsOfSweep[] =
    "SELECT " SWEEPQ_SQLITE_RUN_COLUMNS
    " FROM runs WHERE sweep_id = ?5 AND team_id = ?1"
    " AND (?2 = 0 OR state = ?2) AND id < ?3 ORDER BY id DESC LIMIT ?4";

// A run's metric points after a watch cursor: ?1 run, ?2 seq, ?3 limit
// (negative = none). Index: metrics_by_seq.
inline constexpr char kMetricsAfter[] =
    "SELECT seq, attempt, name, step, value, wall_time_ms FROM metrics"
    " WHERE run_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3";

// A run's events after a watch cursor: as kMetricsAfter.
// Index: run_events_by_run.
inline constexpr char kEventsAfter[] =
    "SELECT seq, attempt, kind, payload_json, time_ms FROM run_events"
    " WHERE run_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3";

// Leaderboard of a team: ?1 team, ?2 metric ("" = any), ?3 limit.
// Index: runs_board_by_team.
inline constexpr char kLeaderboardOfTeam[] =
    "SELECT " SWEEPQ_SQLITE_RUN_COLUMNS
    " FROM runs WHERE team_id = ?1 AND score IS NOT NULL"
    " AND (?2 = '' OR metric = ?2)"
    " ORDER BY score DESC, best_step, tiebreak_ms, id LIMIT ?3";

// Leaderboard of a sweep: ?1 team, ?2 metric ("" = any), ?3 limit,
// ?4 sweep. Index: runs_board_by_sweep.
inline constexpr char kLeaderboardOfSweep[] =
    "SELECT " SWEEPQ_SQLITE_RUN_COLUMNS
    " FROM runs WHERE sweep_id = ?4 AND team_id = ?1 AND score IS NOT NULL"
    " AND (?2 = '' OR metric = ?2)"
    " ORDER BY score DESC, best_step, tiebreak_ms, id LIMIT ?3";

// Every metric of (run, attempt, step): ?1 run, ?2 attempt, ?3 step.
// Index: the primary key (run_id, attempt, step, name) of metrics.
inline constexpr char kMetricsAtStep[] =
    "SELECT name, value FROM metrics"
    " WHERE run_id = ?1 AND attempt = ?2 AND step = ?3";

// Held leases that expired: ?1 now. The caller sorts by run id (an ORDER BY
// id here would make SQLite scan the table in rowid order instead).
// Index: runs_lease_expiry.
inline constexpr char kExpiredLeases[] =
    "SELECT id, attempt, max_attempts, worker_id, cancel_requested"
    " FROM runs WHERE state IN (2, 3) AND lease_expires_at_ms < ?1";

// Earliest expiry of a held lease (NULL if none). Index: runs_lease_expiry.
inline constexpr char kNextLeaseExpiry[] =
    "SELECT MIN(lease_expires_at_ms) FROM runs WHERE state IN (2, 3)";

// The run a worker leases next, and its attempt so far: ?1 team, ?2 ...
// ?(n+1) the datasets it serves (n >= 1). Index: runs_queue, walked in
// order; the dataset is checked in the index, and only the row picked is
// read from the table (for its attempt).
inline std::string LeasePick(size_t num_datasets) {
  std::string sql =
      "SELECT id, attempt FROM runs WHERE team_id = ?1 AND state = 1"
      " AND dataset IN (";
  for (size_t i = 0; i < num_datasets; ++i) {
    absl::StrAppend(&sql, i == 0 ? "?" : ", ?", i + 2);
  }
  absl::StrAppend(&sql, ") ORDER BY priority DESC, created_at_ms, id LIMIT 1");
  return sql;
}

}  // namespace sweepq::store::sqlite_queries

#endif  // SWEEPQ_SERVER_STORE_SQLITE_QUERIES_H_
