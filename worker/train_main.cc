// sweepq-train: runs one RunConfig end to end (worker/pipeline/trainer.h),
// or, when the config has `job`, a job over finished runs' checkpoints
// (worker/pipeline/job.h). Events go to stdout as JSON lines, logs to
// stderr; the command line, the files and the exit status are specified in
// docs/train-events.md. Flags are read here only.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/flags.h"
#include "glog/logging.h"
#include "worker/pipeline/job.h"
#include "worker/pipeline/train_config.h"
#include "worker/pipeline/train_events.h"
#include "worker/pipeline/trainer.h"

ABSL_FLAG(std::string, config, "", "the run's RunConfig, YAML or JSON (.json)");
ABSL_FLAG(std::string, data, "", "root directory of the data set");
ABSL_FLAG(std::string, out, "",
          "the run's work directory (created if missing)");
ABSL_FLAG(std::string, resume, "",
          "checkpoint (last.ckpt) to continue from; empty = start at epoch 1");
ABSL_FLAG(int, threads, -1,
          "intra-op threads, overriding the config's `threads` (0 = number "
          "of cores); -1 = use the config");
ABSL_FLAG(std::string, cache_dir, "",
          "face-detection cache directory (default: $OUT/../cache; "
          "crop.cache_dir of the config wins)");
ABSL_FLAG(std::string, models, "",
          "a job's checkpoints (best.ckpt of each job.source_runs), "
          "comma-separated, in job.source_runs order; only with a job config");

namespace {

constexpr char kUsage[] = R"(runs one training run or job and reports it as JSON lines.

Usage:
  sweepq-train --config RUN.yaml|RUN.json --data DIR --out DIR
               [--resume CKPT] [--threads N] [--cache-dir DIR]
  sweepq-train --config JOB.yaml|JOB.json --data DIR --out DIR
               --models A.ckpt[,B.ckpt...] [--threads N] [--cache-dir DIR]

Trains the RunConfig's model on the data set under DIR with early stopping,
writing config.json, last.ckpt (every epoch), best.ckpt, metrics.csv and
confusion.csv / confusion.png to --out. One JSON object a line goes to
stdout (start, step, epoch, checkpoint, bad_samples, early_stop, artifact,
summary, error); logs go to stderr. See docs/train-events.md.

A config with `job` runs that job over the --models checkpoints instead
(one per job.source_runs, in order; no --resume): kind predict writes
submission.csv and probabilities.csv (TTA, soft-vote ensemble), kind
gradcam a Grad-CAM sheet. See "Jobs" in docs/train-events.md.

Exit status: 0 finished; 1 failed, may be retried; 2 bad command line or
config; 3 failed, retrying cannot help (bad data, NaN loss, bad model file,
out of memory).
Flags may be written with dashes or underscores.
)";

// Returns why the command line is bad, or "" when Abseil will accept it.
// Checked before parsing because Abseil exits with status 1 on a bad flag,
// which docs/train-events.md reserves for retryable failures.
std::string CheckCommandLine(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") break;
    if (arg.size() < 2 || arg[0] != '-') continue;
    arg.erase(0, arg[1] == '-' ? 2 : 1);
    const size_t eq = arg.find('=');
    std::string name = arg.substr(0, eq);
    std::replace(name.begin(), name.end(), '-', '_');
    // Abseil's usage flags are handled by its parser, not the registry.
    if (name == "help" || name == "helpfull" || name == "helpshort" ||
        name == "helppackage" || name == "version" || name == "only_check_args" ||
        name == "helpon" || name == "helpmatch") {
      continue;
    }
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr && absl::StartsWith(name, "no")) {
      absl::CommandLineFlag* negated = absl::FindCommandLineFlag(name.substr(2));
      if (negated != nullptr && negated->IsOfType<bool>()) continue;
    }
    if (flag == nullptr) return "unknown flag --" + name;
    if (flag->IsOfType<bool>()) continue;
    std::string value;
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return "--" + name + " needs a value";
    }
    std::string error;
    if (!flag->ParseFrom(value, &error)) return "--" + name + ": " + error;
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  sweepq::worker::FileEventSink sink(stdout);
  if (const std::string bad = CheckCommandLine(argc, argv); !bad.empty()) {
    sweepq::worker::TrainEventWriter(&sink).Error(bad, /*retryable=*/false, 0,
                                                  0);
    std::fprintf(stderr, "sweepq-train: %s\n\n%s", bad.c_str(), kUsage);
    return 2;
  }
  const std::vector<std::string> rest =
      sweepq::ParseMainFlags(argc, argv, kUsage, "worker/train_main.cc");
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);

  std::vector<std::string> missing;
  if (absl::GetFlag(FLAGS_config).empty()) missing.push_back("--config");
  if (absl::GetFlag(FLAGS_data).empty()) missing.push_back("--data");
  if (absl::GetFlag(FLAGS_out).empty()) missing.push_back("--out");
  if (rest.size() > 1 || !missing.empty() || absl::GetFlag(FLAGS_threads) < -1) {
    const std::string message =
        rest.size() > 1 ? "unexpected argument " + rest[1]
        : !missing.empty()
            ? "missing " + absl::StrJoin(missing, ", ")
            : "--threads must be >= 0 (or -1 for the config's)";
    sweepq::worker::TrainEventWriter(&sink).Error(message, /*retryable=*/false,
                                                  0, 0);
    std::fprintf(stderr, "sweepq-train: %s\n\n%s", message.c_str(), kUsage);
    return 2;
  }

  const std::string config_path = absl::GetFlag(FLAGS_config);
  const std::string models = absl::GetFlag(FLAGS_models);
  // A config that does not read is reported by RunTraining (exit 2).
  absl::StatusOr<sweepq::v1::RunConfig> config =
      sweepq::worker::ReadRunConfigFile(config_path);
  const bool job = config.ok() && config->has_job();
  std::string misuse;
  if (job && !absl::GetFlag(FLAGS_resume).empty()) {
    misuse = "--resume does not apply to a job (the config has `job`)";
  } else if (!job && config.ok() && !models.empty()) {
    misuse = "--models is only for a job (a config with `job`)";
  }
  if (!misuse.empty()) {
    sweepq::worker::TrainEventWriter(&sink).Error(misuse, /*retryable=*/false,
                                                  0, 0);
    std::fprintf(stderr, "sweepq-train: %s\n\n%s", misuse.c_str(), kUsage);
    return 2;
  }

  if (job) {
    sweepq::worker::JobOptions options;
    options.config = *std::move(config);
    if (!models.empty()) {
      options.model_paths = absl::StrSplit(models, ',');
    }
    options.data_dir = absl::GetFlag(FLAGS_data);
    options.out_dir = absl::GetFlag(FLAGS_out);
    options.threads = absl::GetFlag(FLAGS_threads);
    options.cache_dir = absl::GetFlag(FLAGS_cache_dir);
    options.events = &sink;
    return sweepq::worker::RunJob(options).exit_code();
  }

  sweepq::worker::TrainerOptions options;
  options.config_path = config_path;
  options.data_dir = absl::GetFlag(FLAGS_data);
  options.out_dir = absl::GetFlag(FLAGS_out);
  options.resume_path = absl::GetFlag(FLAGS_resume);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.cache_dir = absl::GetFlag(FLAGS_cache_dir);
  options.events = &sink;
  return sweepq::worker::RunTraining(options).exit_code();
}
