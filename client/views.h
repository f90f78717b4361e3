// Views: how runs, leaderboards, workers and artifacts are shown, as tables
// (and CSV) for people and as JSON with the stable field names documented
// in docs/cli.md. Pure functions of the protos they are given and of
// `now_ms` (for durations and ages); thread-safe.
#ifndef SWEEPQ_CLIENT_VIEWS_H_
#define SWEEPQ_CLIENT_VIEWS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/json.h"
#include "client/table.h"
#include "sweepq/v1/coordinator.pb.h"

namespace sweepq::client {

enum class OutputFormat { kTable, kJson, kCsv };

// Parses --format: "table", "json" or "csv" (csv only if `allow_csv`).
// Returns a usage error otherwise.
absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view text,
                                               bool allow_csv);

// ---- Runs (sweepq runs, sweepq show --format json) ----

// One run as JSON: run_id, sweep_id, index, state, priority, attempt,
// max_attempts, worker_id, dataset, metric, goal, best_value, best_step,
// best_attempt, params, created_at_ms, started_at_ms, finished_at_ms,
// duration_ms, error, retryable, cancel_requested. Unset times and a
// missing best are null.
JsonValue RunJson(const sweepq::v1::Run& run, int64_t now_ms);

// The runs table: run, sweep, #, state, best metric, epoch, attempt,
// duration, worker, then the parameters that vary between the runs.
Table RunsTable(const std::vector<sweepq::v1::Run>& runs, int64_t now_ms);

// An array of RunJson objects.
JsonValue RunsJson(const std::vector<sweepq::v1::Run>& runs, int64_t now_ms);

// ---- Leaderboard (sweepq board) ----

// The board table: rank, run, [sweep], the ranking metric, val_acc (val_f1
// when ranking by val_acc), epoch (best step), the parameters that vary
// between the entries, state, duration, worker.
Table BoardTable(const std::vector<sweepq::v1::LeaderboardEntry>& entries,
                 int64_t now_ms);

// An array of objects: rank, run_id, sweep_id, metric, goal, best_value,
// best_step, best_attempt, metrics (every metric at the best step), params,
// state, duration_ms, worker_id.
JsonValue BoardJson(const std::vector<sweepq::v1::LeaderboardEntry>& entries,
                    int64_t now_ms);

// The line above the board table saying what is ranked and how:
// "team board: val_f1 (higher is better), top 20" / "sweep 3 board: ...".
std::string BoardCaption(int64_t sweep_id, absl::string_view metric,
                         sweepq::v1::Goal goal, size_t shown, uint32_t top);

// ---- Workers ----

// worker, host, state, slots, running, datasets, seen, fails, reason.
Table WorkersTable(const std::vector<sweepq::v1::Worker>& workers,
                   int64_t now_ms);

// An array of objects: worker_id, host, state, slots, datasets, version,
// running_run_ids, registered_at_ms, last_seen_at_ms,
// consecutive_failures, quarantine_reason.
JsonValue WorkersJson(const std::vector<sweepq::v1::Worker>& workers);
JsonValue WorkerJson(const sweepq::v1::Worker& worker);

// ---- Artifacts ----

// name, attempt, size, sha256 (first 12 hex digits), created.
Table ArtifactsTable(const std::vector<sweepq::v1::Artifact>& artifacts,
                     int64_t now_ms);

// An array of objects: run_id, attempt, name, size, sha256, created_at_ms.
JsonValue ArtifactsJson(const std::vector<sweepq::v1::Artifact>& artifacts);

// ---- One run in detail (sweepq show) ----

struct RunDetails {
  sweepq::v1::Run run;  // with config and attempts
  std::vector<sweepq::v1::Artifact> artifacts;
  // Every metric at the best step, when the leaderboard had the run.
  std::map<std::string, double> metrics_at_best;
};

// "run 12" / "runs 12, 13".
std::string RunsPhrase(const std::vector<int64_t>& ids);
// The run ids a job reads (config.job.source_runs).
std::vector<int64_t> SourcesOf(const sweepq::v1::JobConfig& job);

// The text of `sweepq show`: summary, best epoch and metrics, error,
// attempts, artifacts, swept parameters and the resolved config.
std::string ShowText(const RunDetails& details, int64_t now_ms,
                     const TableOptions& table_options);

// RunJson plus config (protobuf JSON mapping, snake_case), attempts
// (attempt, worker_id, started_at_ms, ended_at_ms, outcome, reason),
// metrics_at_best and artifacts.
JsonValue ShowJson(const RunDetails& details, int64_t now_ms);

// The run's config as protobuf JSON (snake_case field names).
JsonValue ConfigJson(const sweepq::v1::RunConfig& config);

// Writes a JSON object as indented YAML-like text ("key: value" lines,
// nested objects indented by two spaces, arrays inline), each line
// prefixed by `indent` spaces.
std::string JsonToYamlText(const JsonValue& value, int indent);

}  // namespace sweepq::client

#endif  // SWEEPQ_CLIENT_VIEWS_H_
