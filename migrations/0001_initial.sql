-- Schema version 1 of the sweepq coordinator database.
--
-- Applied by server/store/migrations.cc inside one BEGIN IMMEDIATE
-- transaction that also sets PRAGMA user_version = 1. Never edit this file
-- once released: schema changes are new numbered files.
--
-- Conventions:
--   * times are milliseconds since the Unix epoch (UTC), 0 = not yet;
--   * enums (RunState, Goal, WorkerState, ...) are the sweepq.v1 proto
--     numbers; the partial indexes below name RUN_STATE_QUEUED = 1,
--     RUN_STATE_LEASED = 2 and RUN_STATE_RUNNING = 3 literally, and the
--     queries that should use them repeat the same literal terms;
--   * unsigned 64-bit values (lease ids, batch seqs) are stored as the
--     signed integer with the same bits.

CREATE TABLE teams (
  id                INTEGER PRIMARY KEY,
  name              TEXT    NOT NULL UNIQUE,
  member_token_hash TEXT    NOT NULL,  -- lower-case hex SHA-256
  worker_token_hash TEXT    NOT NULL,
  created_at_ms     INTEGER NOT NULL
);
CREATE INDEX teams_by_member_token_hash ON teams(member_token_hash);
CREATE INDEX teams_by_worker_token_hash ON teams(worker_token_hash);

CREATE TABLE sweeps (
  id              INTEGER PRIMARY KEY,
  team_id         INTEGER NOT NULL REFERENCES teams(id),
  name            TEXT    NOT NULL,
  spec_yaml       TEXT    NOT NULL,
  metric          TEXT    NOT NULL,
  goal            INTEGER NOT NULL,
  priority        INTEGER NOT NULL,
  max_attempts    INTEGER NOT NULL,
  idempotency_key TEXT    NOT NULL DEFAULT '',  -- '' = none
  run_count       INTEGER NOT NULL,
  created_at_ms   INTEGER NOT NULL
);
CREATE INDEX sweeps_by_team ON sweeps(team_id);
CREATE UNIQUE INDEX sweeps_by_idempotency_key
  ON sweeps(team_id, idempotency_key) WHERE idempotency_key <> '';

CREATE TABLE runs (
  id                  INTEGER PRIMARY KEY,
  team_id             INTEGER NOT NULL REFERENCES teams(id),
  sweep_id            INTEGER NOT NULL REFERENCES sweeps(id),
  idx                 INTEGER NOT NULL,  -- position in the sweep's expansion
  config              BLOB    NOT NULL,  -- serialized sweepq.v1.RunConfig
  params_json         TEXT    NOT NULL,  -- {"dotted.path": "JSON value text"}
  dataset             TEXT    NOT NULL,
  state               INTEGER NOT NULL,  -- sweepq.v1.RunState
  priority            INTEGER NOT NULL,
  attempt             INTEGER NOT NULL DEFAULT 0,
  max_attempts        INTEGER NOT NULL,
  lease_id            INTEGER NOT NULL DEFAULT 0,  -- 0 = no lease
  worker_id           TEXT    NOT NULL DEFAULT '',
  lease_expires_at_ms INTEGER NOT NULL DEFAULT 0,
  metric              TEXT    NOT NULL,
  goal                INTEGER NOT NULL,  -- sweepq.v1.Goal
  -- Best finite value of `metric` over all attempts (NULL = none yet).
  best_value          REAL,
  best_step           INTEGER NOT NULL DEFAULT 0,
  best_attempt        INTEGER NOT NULL DEFAULT 0,
  -- Leaderboard key: best_value when maximizing, -best_value when
  -- minimizing, NULL without a finite best. Higher is better.
  score               REAL,
  -- finished_at_ms, or the largest integer while unfinished, so that
  -- "earlier finish, unfinished last" is one ascending index column.
  tiebreak_ms         INTEGER NOT NULL DEFAULT 9223372036854775807,
  created_at_ms       INTEGER NOT NULL,
  started_at_ms       INTEGER NOT NULL DEFAULT 0,
  finished_at_ms      INTEGER NOT NULL DEFAULT 0,
  error               TEXT    NOT NULL DEFAULT '',
  retryable           INTEGER NOT NULL DEFAULT 0,
  cancel_requested    INTEGER NOT NULL DEFAULT 0
);
-- ListRuns of a team / a sweep, newest first (the rowid is the implicit
-- last column of every index, so these also serve ORDER BY id DESC).
CREATE INDEX runs_by_team ON runs(team_id);
CREATE INDEX runs_by_sweep ON runs(sweep_id);
-- LeaseRun: WHERE team_id = ? AND state = 1 AND dataset IN (...)
-- ORDER BY priority DESC, created_at_ms, id LIMIT 1 walks this index in
-- order and checks the dataset without touching the table.
CREATE INDEX runs_queue
  ON runs(team_id, priority DESC, created_at_ms, id, dataset)
  WHERE state = 1;
-- Leaderboard of a team and of a sweep: ORDER BY score DESC, best_step,
-- tiebreak_ms, id LIMIT N reads the first N entries.
CREATE INDEX runs_board_by_team
  ON runs(team_id, score DESC, best_step, tiebreak_ms, id)
  WHERE score IS NOT NULL;
CREATE INDEX runs_board_by_sweep
  ON runs(sweep_id, score DESC, best_step, tiebreak_ms, id)
  WHERE score IS NOT NULL;
-- ExpireLeases and NextLeaseExpiry over the held leases.
CREATE INDEX runs_lease_expiry
  ON runs(lease_expires_at_ms) WHERE state IN (2, 3);
-- Worker.running_run_ids.
CREATE INDEX runs_leased_by_worker
  ON runs(team_id, worker_id) WHERE state IN (2, 3);

CREATE TABLE attempts (
  run_id        INTEGER NOT NULL REFERENCES runs(id),
  attempt       INTEGER NOT NULL,
  worker_id     TEXT    NOT NULL,
  started_at_ms INTEGER NOT NULL,
  ended_at_ms   INTEGER NOT NULL DEFAULT 0,
  outcome       INTEGER NOT NULL DEFAULT 0,  -- sweepq.v1.RunState
  reason        TEXT    NOT NULL DEFAULT '',
  PRIMARY KEY (run_id, attempt)
) WITHOUT ROWID;

-- The hottest table: one row per metric point. WITHOUT ROWID keyed by the
-- idempotency key keeps inserts to two b-trees (the rows and the watch
-- index). No foreign key: every insert is made under a lease check that
-- already read the run, and runs are never deleted.
CREATE TABLE metrics (
  run_id       INTEGER NOT NULL,
  attempt      INTEGER NOT NULL,
  step         INTEGER NOT NULL,
  name         TEXT    NOT NULL,
  -- Watch cursor: increases with inserts within a run (assigned by the
  -- single writer as the run's MAX(seq) + 1).
  seq          INTEGER NOT NULL,
  value        REAL,                 -- NULL = NaN (SQLite has no NaN)
  wall_time_ms INTEGER NOT NULL,
  -- Idempotent batches; the column order lets the leaderboard read every
  -- metric of (run, attempt, step) as one key prefix.
  PRIMARY KEY (run_id, attempt, step, name)
) WITHOUT ROWID;
-- ReadRunStream: WHERE run_id = ? AND seq > ? ORDER BY seq.
CREATE INDEX metrics_by_seq ON metrics(run_id, seq);

CREATE TABLE run_events (
  seq          INTEGER PRIMARY KEY,  -- watch cursor; increases with inserts
  run_id       INTEGER NOT NULL REFERENCES runs(id),
  attempt      INTEGER NOT NULL,
  -- Worker batches use their batch_seq and idx >= 0 (position in the
  -- batch). Events the coordinator writes (kind "state") use batch_seq 0 and
  -- idx -1, -2, ... per (run, attempt), so they never collide with a batch.
  batch_seq    INTEGER NOT NULL,
  idx          INTEGER NOT NULL,
  kind         TEXT    NOT NULL,
  payload_json TEXT    NOT NULL,
  time_ms      INTEGER NOT NULL,
  UNIQUE (run_id, attempt, batch_seq, idx)
);
-- ReadRunStream: WHERE run_id = ? AND seq > ? ORDER BY seq.
CREATE INDEX run_events_by_run ON run_events(run_id);

CREATE TABLE artifacts (
  run_id        INTEGER NOT NULL REFERENCES runs(id),
  attempt       INTEGER NOT NULL,
  name          TEXT    NOT NULL,
  sha256        TEXT    NOT NULL,
  size          INTEGER NOT NULL,
  created_at_ms INTEGER NOT NULL,
  PRIMARY KEY (run_id, attempt, name)
) WITHOUT ROWID;

CREATE TABLE workers (
  team_id              INTEGER NOT NULL REFERENCES teams(id),
  worker_id            TEXT    NOT NULL,
  host                 TEXT    NOT NULL,
  slots                INTEGER NOT NULL,
  datasets_json        TEXT    NOT NULL,  -- ["name", ...]
  version              TEXT    NOT NULL,
  state                INTEGER NOT NULL,  -- sweepq.v1.WorkerState
  registered_at_ms     INTEGER NOT NULL,
  last_seen_at_ms      INTEGER NOT NULL,
  consecutive_failures INTEGER NOT NULL DEFAULT 0,
  quarantine_reason    TEXT    NOT NULL DEFAULT '',
  PRIMARY KEY (team_id, worker_id)
) WITHOUT ROWID;
