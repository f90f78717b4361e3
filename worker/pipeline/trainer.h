// The training loop of one run: what `sweepq-train` executes (see
// docs/train-events.md for its command line, files and events).
//
// RunTraining reads and resolves the config (train_config.h), loads the data
// set and splits it by person, builds the face cropper (with its detection
// cache), the train and validation loaders, the model, the loss, the
// optimizer and the learning-rate schedule, optionally restores a
// checkpoint, then runs epochs:
//   - the epoch's learning rate from the schedule;
//   - training: each batch is mixed by CutMix (probability
//     augment.cutmix.p) or, when CutMix left it unmixed, by MixUp
//     (augment.mixup.p); the loss is taken on the lambda-weighted soft
//     targets. Multi-head models sum the weighted losses of the three heads
//     (model.head_weights) on the marginals of the 18-class soft targets.
//     Gradients are clipped to optimizer.grad_clip_norm when set; a step
//     event is written every train.log_every_steps steps;
//   - validation (unless data.split full): loss, accuracy, macro-F1,
//     per-class F1 and the confusion matrix;
//   - the epoch event and metrics.csv; last.ckpt; best.ckpt when the
//     watched metric (early_stopping.metric) improved by more than
//     min_delta; the schedule is told the watched metric; early stopping
//     after `patience` epochs without improvement.
// With data.split full there is no validation: every epoch of
// train.epochs runs and best.ckpt is the final model (written at the end).
// At the end: confusion.csv, confusion.png and per_class_f1.png of the best
// epoch (with validation) and the summary event.
//
// Metrics of an epoch: train_loss (mean over samples), train_acc (share of
// correct arg-max predictions; for a mixed batch lambda-weighted against
// both label sets), val_loss, val_acc, val_f1 (macro-F1 as scikit-learn),
// lr, epoch_time_s (training + validation), images_per_s (training images
// per second of the training pass), data_wait_s (time blocked waiting for
// batches, training and validation), train_time_s, val_time_s.
//
// Reproducibility: every generator of an epoch is seeded from (seed,
// epoch): the loader's order and augmentations, batch mixing, and
// LibTorch's global generator (dropout). With one intra-op thread on CPU,
// the same config and seed give bit-identical metrics, and a run resumed
// from epoch k's checkpoint gives the same metrics as one that never
// stopped. (With more threads LibTorch's parallel reductions may round
// differently from run to run.)
//
// Failures are classified (TrainFailure) and written as an `error` event
// with `retryable`:
//   bad config (exit 2): ValidateRunConfig / ResolveTrainConfig errors, an
//     unknown model, loss, optimizer or schedule setting, model.num_classes
//     that does not match the data set, a checkpoint written by another
//     config;
//   permanent (exit 3): the data set cannot be loaded or split (missing
//     directory, bad CSV, a class without samples), too many unreadable
//     images (the loader's FAILED_PRECONDITION), a TorchScript file that
//     does not load or has the wrong output size, an unreadable or
//     mismatching checkpoint, NaN or Inf loss (naming epoch and step), and
//     running out of memory (a retry would run out again: the message asks
//     for a smaller train.batch_size or image size);
//   retryable (exit 1): everything else — I/O errors writing --out, CUDA
//     requested but not available on this host, other LibTorch errors.
//
// Threads: RunTraining sets LibTorch's intra-op threads (config.threads)
// and, the first time it runs in a process, the inter-op threads
// (config.interop_threads; LibTorch allows that once, before parallel
// work). One RunTraining at a time per process.
#ifndef SWEEPQ_WORKER_PIPELINE_TRAINER_H_
#define SWEEPQ_WORKER_PIPELINE_TRAINER_H_

#include <optional>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "worker/pipeline/train_events.h"

namespace sweepq::worker {

// What RunTraining runs.
struct TrainerOptions {
  // The RunConfig file: YAML, or JSON when the name ends in ".json".
  std::string config_path;
  // Root of the data set.
  std::string data_dir;
  // The run's work directory; created if missing.
  std::string out_dir;
  // Checkpoint to continue from; empty = start at epoch 1.
  std::string resume_path;
  // Overrides config.threads when >= 0 (0 = number of cores).
  int threads = -1;
  // Face-detection cache directory when crop.cache_dir is empty; empty =
  // `<out_dir>/../cache`.
  std::string cache_dir;
  // Where events go; not owned, must outlive the call. Required.
  EventSink* events = nullptr;
};

// How a run failed; decides the exit status.
enum class TrainFailure {
  kNone,        // finished: exit 0
  kRetryable,   // exit 1
  kBadConfig,   // exit 2
  kPermanent,   // exit 3
};

// What RunTraining ended with.
struct TrainResult {
  // OK when the run finished; else the error the `error` event carries.
  absl::Status status;
  TrainFailure failure = TrainFailure::kNone;
  // Last epoch completed (counting epochs of resumed attempts).
  int epochs = 0;
  // Best epoch and value of the watched metric (0 / nullopt when none).
  int best_epoch = 0;
  std::optional<double> best_value;
  bool stopped_early = false;

  // Returns the process exit status of docs/train-events.md (0, 1, 2, 3).
  int exit_code() const;
};

// A failure with its class, on its way to the `error` event.
struct RunFailure {
  TrainFailure kind;
  absl::Status status;
};

// Logs `failure`, writes it as an `error` event (with `epoch` / `step` when
// known, > 0) and returns it as a TrainResult with nothing else set.
TrainResult ReportFailure(RunFailure failure, TrainEventWriter& events,
                          int epoch = 0, int64_t step = 0);

// Runs `body`, the whole of a run or a job, and returns its result. An
// exception that escaped it (the LibTorch and OpenCV calls are caught where
// they are made; this is the last line, e.g. for std::bad_alloc) becomes a
// retryable failure "<what>: <exception>", reported as by ReportFailure,
// so that the entry points never throw.
TrainResult RunGuarded(absl::string_view what, TrainEventWriter& events,
                       absl::FunctionRef<TrainResult()> body);

// Sets LibTorch's inter-op threads the first time it is called in a
// process (LibTorch allows that once, before parallel work) and logs a
// warning when a later call asks for another number. Shared by training
// and jobs so that one process can run both.
void SetInteropThreadsOnce(int threads);

// Runs `options`' run to its end, writing events to options.events and
// files to options.out_dir. Never throws; every failure is returned
// classified and was written as an `error` event.
TrainResult RunTraining(const TrainerOptions& options);

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_PIPELINE_TRAINER_H_
