// The `predict` job: test-time-augmented inference of one model or a
// soft-vote ensemble into submission.csv and probabilities.csv.
//
// Images: job.split eval (default) = every row of eval/info.csv under the
// data directory, in file order (eval/images/<ImageID>); job.split val =
// the validation split of the first source run (its data config, split
// settings and seed, as it trained).
//
// Each model sees the images through ITS OWN evaluation pipeline, the one
// its training run validated with (SourceEvalLoaderOptions: face crop with
// the detection cache, centre crop, resize to its data.image_width x
// image_height, its normalisation), then through its test-time
// augmentation (TtaPlanFor). Per model, the softmax of the logits (for a
// multi-head model: of the 18 combined log-probabilities) is averaged over
// the TTA views; the models' probabilities are then averaged (soft vote)
// and the answer is the arg-max class.
//
// An image that cannot be read (corrupt, truncated, empty) still gets a
// row: every model predicts it from a black image through its own
// normalisation, and the image is named in a `bad_samples` event. As in
// training, more bad images than the source's data.max_bad_fraction of the
// images fails the job (the data set, not an image, is broken then).
//
// Thread safety: one job at a time per process (see job.h).
#ifndef SWEEPQ_WORKER_PIPELINE_PREDICT_H_
#define SWEEPQ_WORKER_PIPELINE_PREDICT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sweepq/v1/run_config.pb.h"
#include "torch/types.h"
#include "worker/pipeline/job.h"
#include "worker/pipeline/model.h"
#include "worker/pipeline/trainer.h"

namespace sweepq::worker {

// Side of the multicrop views as a share of the image's sides.
inline constexpr double kMultiCropScale = 0.9;

// Scales of the `scale` transform when TtaConfig.scales is empty.
inline constexpr double kDefaultTtaScales[] = {0.9, 1.1};

// The test-time augmentation of one model. The views of an image are the
// image itself, then (multicrop) its 4 corner crops and its centre crop of
// kMultiCropScale of each side, each resized back to the image's size,
// then (scale) the image resized by each factor (the model must accept
// other sizes, as global pooling does); with hflip every one of those views
// also mirrored left to right.
struct TtaPlan {
  bool hflip = false;
  bool multicrop = false;
  std::vector<double> scales;

  // Returns the number of views per image: (1 + 5 * multicrop +
  // scales.size()) * (1 + hflip).
  int views() const;

  // Returns the transforms as listed in a TtaConfig ("hflip", ...).
  std::vector<std::string> Names() const;
};

// Returns the TTA of a model: `job_tta` when it lists transforms, else the
// source run's own `source_tta`. `scale` without scales uses
// kDefaultTtaScales.
TtaPlan TtaPlanFor(const v1::TtaConfig& job_tta,
                   const v1::TtaConfig& source_tta);

// Returns the views of `images` (N x 3 x H x W float, any device) in the
// order TtaPlan describes; the first is `images` itself. Throws c10::Error
// like any LibTorch call.
std::vector<torch::Tensor> TtaViews(const torch::Tensor& images,
                                    const TtaPlan& plan);

// Runs `model` (in eval mode, on the device of `images`) on every view of
// `images` and returns the N x num_classes class probabilities averaged
// over the views, as float on the CPU. Returns INVALID_ARGUMENT for images
// that are not N x 3 x H x W, FAILED_PRECONDITION when the model rejects a
// view (e.g. a scale view for a model without global pooling),
// RESOURCE_EXHAUSTED when out of memory and INTERNAL for other LibTorch
// errors.
absl::StatusOr<torch::Tensor> PredictProbabilities(Classifier& model,
                                                   const torch::Tensor& images,
                                                   const TtaPlan& plan);

// Runs a `predict` job (options.config.job.kind == "predict") with the
// checkpoints options.model_paths (see job.h for what RunJob checks first).
// Writes to options.out_dir:
//   submission.csv     `ImageID,ans` (split eval: the rows of info.csv in
//                      order) or `path,ans` (split val: the sample's path
//                      relative to the data directory), ans = the class
//                      index;
//   probabilities.csv  the same id column, then one column per class named
//                      by its class name: the ensemble's probabilities.
// Events: start {kind, split, sources, models, classes, images, device,
// threads}; progress {done, total} (images x models) at most every 2 s and
// once at the end; bad_samples when images were unreadable; artifact for
// each file; metrics {step 1, metrics {pred_acc, pred_f1}, per_class_f1}
// when the labels are known (split val, or eval/answers.csv with a class
// for every ImageID); summary {kind, split, images, models, tta_views (per
// model), bad_images, seconds}.
// Failures (error event; see RunJob): a missing or unreadable checkpoint,
// models with different classes, a missing eval/info.csv or eval/images/,
// a source without a validation split (data.split full) for split val, a
// data set that cannot be loaded, too many unreadable images, a TTA view a
// model rejects, out of memory: permanent (exit 3); writing --out and
// other LibTorch errors: retryable (exit 1). Never throws.
TrainResult RunPredictJob(const JobOptions& options);

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_PIPELINE_PREDICT_H_
