// Jobs over finished runs: `sweepq predict`, `submission`, `promote` and
// `gradcam` (the commands are declared in client/commands.h). A job is an
// ordinary one-run sweep whose config has `job` set (run_config.proto,
// JobConfig); `promote` queues an ordinary training run. These are the
// pure pieces the commands are built from, declared here so that tests can
// check them directly. Thread-safe: no shared state.
#ifndef SWEEPQ_CLIENT_JOBS_H_
#define SWEEPQ_CLIENT_JOBS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/json.h"
#include "google/protobuf/message.h"
#include "sweepq/v1/coordinator.pb.h"
#include "sweepq/v1/run_config.pb.h"

namespace sweepq::client {

// The swept-parameter paths a job's sweep records, so that `sweepq runs`
// (whose listings carry params, not configs) shows what a run is and
// `sweepq submission RUN` finds the jobs made from RUN.
inline constexpr const char* kJobKindParam = "job.kind";
inline constexpr const char* kJobSourcesParam = "job.source_runs";

// The label of a job unless --name gives one: "predict(12,13)",
// "gradcam(12)"; past six sources "predict(1,2,3,4,5,6,+3)".
std::string JobLabel(absl::string_view kind,
                     const std::vector<int64_t>& sources);

// Parses --runs: comma-separated positive run ids. Returns a usage error
// naming --runs for anything else, an empty list or an id given twice.
absl::StatusOr<std::vector<int64_t>> ParseRunList(absl::string_view text);

// Parses --tta (comma-separated hflip | multicrop | scale, each at most
// once) and --scales (comma-separated numbers > 0, only with scale).
// Returns a usage error naming the flag and the value at fault.
absl::StatusOr<sweepq::v1::TtaConfig> ParseTtaFlags(absl::string_view tta,
                                                    absl::string_view scales);

// What a training run's classes are called and how many there are.
struct RunClasses {
  // Index = class; empty when the task's classes have no names.
  std::vector<std::string> names;
  // Number of classes; 0 when unknown (the worker checks the index).
  uint32_t count = 0;
};

// The classes of a run trained with `config`: for the mask layout (the
// default) the 18 names "wear/male/<30" ... "normal/female/>=60" of its
// data.age_bounds (default 30, 60); otherwise model.num_classes numbers.
RunClasses ClassesOf(const sweepq::v1::RunConfig& config);

// Parses --class: a class number below classes.count (when known) or a
// class name (case-insensitive). Returns a usage error that says the range
// or, for an unknown name, the closest name and every class.
absl::StatusOr<uint32_t> ParseClass(absl::string_view text,
                                    const RunClasses& classes);

// The config `promote --full` queues for `run`: its config with
// data.split full (fold, folds and val_ratio cleared), train.epochs =
// `epochs` and early_stopping.patience 0, named `name`. Returns
// FAILED_PRECONDITION for a plateau scheduler (it watches a validation
// metric that data.split full does not measure).
absl::StatusOr<sweepq::v1::RunConfig> FullDataConfig(const sweepq::v1::Run& run,
                                                     uint32_t epochs,
                                                     absl::string_view name);

// `message` as JSON with proto field names and 64-bit integers written as
// numbers (protobuf's own JSON mapping writes them as strings), only the
// fields that are set.
JsonValue MessageJson(const google::protobuf::Message& message);

// The sweep file that queues exactly one run with `config`: a grid named
// `name`, ranked by `metric` / `goal`, whose `parameters` repeat the values
// `config` has at `param_paths` (dotted; paths `config` does not set are
// left out) so that they show in listings. ExpandSweepYaml turns it back
// into `config`.
std::string OneRunSweepYaml(const sweepq::v1::RunConfig& config,
                            absl::string_view name, absl::string_view metric,
                            sweepq::v1::Goal goal,
                            const std::vector<std::string>& param_paths);

// True when `run` (a ListRuns summary, params included) is a predict job
// queued by `sweepq predict` whose only source is `source_run_id`.
bool IsPredictJobOf(const sweepq::v1::Run& run, int64_t source_run_id);

}  // namespace sweepq::client

#endif  // SWEEPQ_CLIENT_JOBS_H_
