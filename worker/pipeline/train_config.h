// The RunConfig as sweepq-train runs it: validation, the defaults written
// out (so config.json and the start event show what ran), the
// contradictions the schema cannot express, and the comparison a resume
// makes against the checkpoint's config. No LibTorch here.
//
// All functions are thread-safe (no shared state).
#ifndef SWEEPQ_WORKER_PIPELINE_TRAIN_CONFIG_H_
#define SWEEPQ_WORKER_PIPELINE_TRAIN_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "sweepq/v1/run_config.pb.h"

namespace sweepq::worker {

// Names of the metrics an epoch reports, in the order the epoch event and
// metrics.csv list them. The kVal* ones exist only with validation.
inline constexpr char kTrainLoss[] = "train_loss";
inline constexpr char kTrainAcc[] = "train_acc";
inline constexpr char kValLoss[] = "val_loss";
inline constexpr char kValAcc[] = "val_acc";
inline constexpr char kValF1[] = "val_f1";

// Reads a RunConfig file: JSON (protobuf's JSON mapping) when `path` ends
// in ".json", YAML otherwise. Returns INVALID_ARGUMENT prefixed with the path
// for a file that cannot be read or parsed, or names an unknown key.
absl::StatusOr<v1::RunConfig> ReadRunConfigFile(const std::string& path);

// Returns the metrics early_stopping.metric may name: train_loss,
// train_acc, val_loss, val_acc, val_f1.
const std::vector<std::string>& WatchableMetrics();

// Returns true when `metric` is measured on the validation set.
bool IsValidationMetric(absl::string_view metric);

// Validates `config` (sweepq::ValidateRunConfig), applies `threads`
// (--threads; < 0 keeps config.threads) and returns it with the defaults of
// run_config.proto written out:
//   data: layout mask, split holdout, val_ratio 0.2, age_bounds [30, 60]
//     (mask), image 96 x 128, loader_threads 2, prefetch_batches 2 x
//     loader_threads, max_bad_fraction 0.01;
//   crop: enabled for layout mask (else off); when enabled detectors
//     [haar, fixed], min_confidence 0.5, pad 20 / 30, fixed box (80, 50,
//     220, 320);
//   augment: hflip 0.5, cutmix beta 1 / mode box, mixup alpha 1, mean /
//     std of the mask data set;
//   model: head_weights 1 / 1 / 1 with multi_head;
//   loss: name ce, focal_gamma 2; optimizer: adamw, lr 1e-3, betas 0.9 /
//   0.999, eps 1e-8; scheduler: none (step: gamma 0.1; cosine_restarts:
//   t_mult 1; warm-up start factor 0.1; plateau: patience 10, factor 0.1);
//   early_stopping: metric val_f1; goal maximize, except minimize for a
//   metric ending in "_loss" when no goal is given;
//   train: batch_size 32, val_batch_size = batch_size, device auto,
//   checkpoint_every_epochs 1;
//   seed 0; threads: the number of cores when 0; interop_threads 1 when 0.
// model.num_classes stays as given (the data set decides it; see
// CheckConfigAgainstClasses). crop.cache_dir stays as given (host-specific).
// Returns INVALID_ARGUMENT "<field>: <reason>" for anything
// ValidateRunConfig rejects and for these contradictions:
//   - model.multi_head without data.layout mask and exactly 3 age bands,
//     or with loss.class_weights (the heads have 3 / 2 / 3 classes);
//   - augment.cutmix.p or augment.mixup.p > 0 with train.batch_size 1;
//   - early_stopping.metric not one of WatchableMetrics();
//   - data.split full with a validation metric watched by early stopping
//     (patience > 0) or by the plateau scheduler;
//   - train.amp or train.channels_last with train.device cpu.
absl::StatusOr<v1::RunConfig> ResolveTrainConfig(const v1::RunConfig& config,
                                                 int threads);

// Checks model.num_classes (when set) against the data set's `num_classes`.
// Returns INVALID_ARGUMENT naming both numbers when they differ.
absl::Status CheckConfigAgainstClasses(const v1::RunConfig& config,
                                       int num_classes);

// Returns the resolved config as JSON text (snake_case keys, compact).
std::string RunConfigToJson(const v1::RunConfig& config);

// Compares the config of a checkpoint with the config of the run resuming
// from it, ignoring what may differ between hosts and attempts (name,
// threads, interop_threads, crop.cache_dir, data.loader_threads,
// data.prefetch_batches, data.decode_cache_bytes,
// train.checkpoint_every_epochs, train.log_every_steps). Returns
// INVALID_ARGUMENT listing the differing fields otherwise.
absl::Status CheckResumeConfig(const v1::RunConfig& checkpoint,
                               const v1::RunConfig& run);

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_PIPELINE_TRAIN_CONFIG_H_
