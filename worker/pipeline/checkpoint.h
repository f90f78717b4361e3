// Training checkpoints: one file (a LibTorch serialize archive) that holds
// everything `sweepq-train --resume` needs to continue a run exactly where
// it stopped:
//   - format_version (kCheckpointFormatVersion);
//   - the model's state tensors (parameters and buffers, by name);
//   - the optimizer's state (its own save() into a sub-archive);
//   - the learning-rate schedule's state (LrSchedule::Save);
//   - the loop's progress: epoch, global step, early-stopping state (best
//     value and epoch, epochs without improvement), the best epoch's
//     confusion matrix and the metrics history (metrics.csv text);
//   - the resolved config as JSON and the data set's fingerprint.
// No random generator state is stored: the trainer seeds every generator
// of an epoch (loader order and augmentation, batch mixing, dropout) from
// (seed, epoch), so the epoch after the checkpoint draws the same numbers
// whether or not the run was interrupted.
//
// Thread safety: none; the trainer's thread uses these.
#ifndef SWEEPQ_WORKER_PIPELINE_CHECKPOINT_H_
#define SWEEPQ_WORKER_PIPELINE_CHECKPOINT_H_

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "torch/optim.h"
#include "torch/serialize.h"
#include "torch/types.h"
#include "worker/pipeline/model.h"
#include "worker/pipeline/optim.h"

namespace sweepq::worker {

// Version of the checkpoint layout this build writes and reads.
inline constexpr int64_t kCheckpointFormatVersion = 1;

// The training loop's state after an epoch.
struct TrainingProgress {
  // Last completed epoch (1-based); 0 before the first.
  int epoch = 0;
  // Optimizer steps taken so far.
  int64_t global_step = 0;
  // Epoch of the best value of the watched metric; 0 when none yet.
  int best_epoch = 0;
  // Best value of the watched metric; NaN when none yet.
  double best_value = std::numeric_limits<double>::quiet_NaN();
  // Epochs since the last improvement (early stopping).
  int bad_epochs = 0;
  // The best epoch's validation confusion matrix; empty without
  // validation.
  std::vector<std::vector<int64_t>> best_confusion;
  // metrics.csv of the epochs so far (MetricsTable::ToCsv).
  std::string metrics_csv;
};

// Writes a checkpoint to `path` atomically (`<path>.tmp`, then rename).
// Returns INTERNAL naming the file when LibTorch cannot write it.
absl::Status SaveCheckpoint(const std::string& path, Classifier& model,
                            const torch::optim::Optimizer& optimizer,
                            const LrSchedule& schedule,
                            const TrainingProgress& progress,
                            const std::string& config_json,
                            const std::string& data_fingerprint);

// A checkpoint read from disk, before its tensors are copied into a model.
class Checkpoint {
 public:
  // Reads `path`, mapping its tensors to `device`. Returns NOT_FOUND for a
  // missing file, INVALID_ARGUMENT naming the file for one that is not a
  // sweepq checkpoint or has another format version.
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Read(
      const std::string& path, const torch::Device& device);

  // Copies the state into `model` (tensor names and shapes must match),
  // `optimizer` and `schedule`. Returns INVALID_ARGUMENT naming the
  // checkpoint and the tensor on a mismatch; the objects are unspecified
  // after a failure.
  absl::Status Restore(Classifier& model, torch::optim::Optimizer& optimizer,
                       LrSchedule& schedule);

  // Copies only the model's state into `model` (for inference: jobs over
  // finished runs). Returns what Restore returns for the model's tensors.
  absl::Status RestoreModel(Classifier& model);

  const TrainingProgress& progress() const { return progress_; }
  const std::string& config_json() const { return config_json_; }
  const std::string& data_fingerprint() const { return data_fingerprint_; }
  const std::string& path() const { return path_; }

 private:
  Checkpoint() = default;

  std::string path_;
  torch::serialize::InputArchive archive_;
  TrainingProgress progress_;
  std::string config_json_;
  std::string data_fingerprint_;
};

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_PIPELINE_CHECKPOINT_H_
