// Jobs over finished training runs: what `sweepq-train` runs when its
// config has a `job` section (RunConfig.job, run_config.proto) instead of
// training. The worker daemon fetches each source run's best.ckpt and
// passes them as --models in job.source_runs order.
//
//   - predict (worker/pipeline/predict.h): every image of eval/info.csv in
//     file order (or the first source's validation split with job.split
//     val) through each source model's eval transforms and test-time
//     augmentation, probabilities averaged over TTA views and then over the
//     models (soft vote); writes submission.csv and probabilities.csv.
//   - gradcam (worker/pipeline/gradcam.h): a sheet of Grad-CAM heat maps of
//     validation images of one class; writes gradcam.png and gradcam.csv.
//
// Events (stdout, docs/train-events.md): `start` (kind, sources, device,
// threads), `progress` (done, total) now and then, `metrics` {step: 1,
// metrics: {name: number}} when labels are known, `artifact` per file,
// `summary`, or `error` with `retryable`. Exit status as for training.
//
// Thread safety: one RunJob at a time per process (it sets LibTorch's
// thread counts).
#ifndef SWEEPQ_WORKER_PIPELINE_JOB_H_
#define SWEEPQ_WORKER_PIPELINE_JOB_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sweepq/v1/run_config.pb.h"
#include "torch/types.h"
#include "worker/pipeline/face_crop.h"
#include "worker/pipeline/loader.h"
#include "worker/pipeline/model.h"
#include "worker/pipeline/train_events.h"
#include "worker/pipeline/trainer.h"

namespace sweepq::worker {

// What RunJob runs.
struct JobOptions {
  // The job's config (validated; config.job set).
  v1::RunConfig config;
  // Best checkpoints of config.job.source_runs, in the same order.
  std::vector<std::string> model_paths;
  // Root of the data set.
  std::string data_dir;
  // Work directory for the job's files; created if missing.
  std::string out_dir;
  // Overrides config.threads when >= 0 (0 = number of cores).
  int threads = -1;
  // Face-detection cache directory; empty = `<out_dir>/../cache`.
  std::string cache_dir;
  // Where events go; not owned. Required.
  EventSink* events = nullptr;
};

// A source run's model restored from its checkpoint, ready for inference
// (eval mode, on `device`), with the training config it was made with.
struct SourceModel {
  // The resolved training config stored in the checkpoint.
  v1::RunConfig config;
  std::unique_ptr<Classifier> model;
  // The checkpoint's file, for messages.
  std::string path;
  // Names of the model's classes, by output index: the mask layout's names
  // for the config's age bounds, the data set's for other layouts, or
  // "class <i>" when LoadSourceModel had no data set to read them from.
  std::vector<std::string> class_names;
};

// Reads `path` (a sweepq checkpoint), rebuilds its config's model for
// `num_classes` classes and copies the weights in. `num_classes` 0 =
// model.num_classes of the config when set, else the mask layout's class
// count (18 with the default age bounds), else (image_folder / csv) the
// class count of the config's data set under `data_dir`. The model is in
// eval mode on `device` (channels-last on CUDA when the run trained so).
// Returns NOT_FOUND for a missing file, INVALID_ARGUMENT naming the file
// for one that is not a checkpoint, holds an unreadable config or does not
// match its own model (and for a non-mask layout without `data_dir`),
// FAILED_PRECONDITION naming the file for a TorchScript model file that is
// gone or broken.
absl::StatusOr<SourceModel> LoadSourceModel(const std::string& path,
                                            const torch::Device& device,
                                            int num_classes = 0,
                                            const std::string& data_dir = "");

// Returns the device jobs run on: cuda:0 when LibTorch sees a CUDA device,
// else the CPU.
torch::Device JobDevice();

// Returns where a job caches face detections: options.cache_dir, else
// `<out_dir>/../cache` (as the trainer).
std::string JobCacheDir(const JobOptions& options);

// Returns the face cropper a source run's evaluation used (its crop
// settings, detections cached in `cache_dir`), or null when the run did not
// crop. The source's own crop.cache_dir is ignored: it names a directory
// of the host that trained it. Returns FaceCropper::Create's errors.
absl::StatusOr<std::unique_ptr<FaceCropper>> CreateSourceCropper(
    const v1::RunConfig& source, const std::string& cache_dir);

// Returns the loader options of a source run's validation pass (in order,
// no augmentation, full-size decoding as the trainer validates) with
// `batch_size` images per batch. Returns INVALID_ARGUMENT naming the field
// for a config the loader rejects.
absl::StatusOr<LoaderOptions> SourceEvalLoaderOptions(
    const v1::RunConfig& source, int batch_size);

// Returns how a job classifies a failure to load a source model or the
// data: NOT_FOUND, INVALID_ARGUMENT, FAILED_PRECONDITION and
// RESOURCE_EXHAUSTED are permanent (exit 3), anything else retryable.
TrainFailure ClassifyJobError(const absl::Status& status);

// Runs options' job to its end: checks the config (ValidateRunConfig; it
// must have `job`) and that model_paths has one file per job.source_runs,
// sets LibTorch's threads as the trainer does (threads: options.threads,
// else config.threads, 0 = the number of cores; inter-op threads
// config.interop_threads, default 1, once per process), then runs
// RunPredictJob or RunGradCamJob. Never throws; failures are classified as
// for training (a missing or mismatching model file or data set: exit 3;
// bad config or command line, e.g. a model count that does not match
// job.source_runs: exit 2) and written as an `error` event.
TrainResult RunJob(const JobOptions& options);

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_PIPELINE_JOB_H_
