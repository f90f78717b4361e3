// Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep
// Networks via Gradient-based Localization", 2017) for the classifiers of
// model.h, and the `gradcam` job: a sheet of validation images of one
// class, each with its class-activation heat map over it and a title
// `true-pred (O|X)`.
//
// Grad-CAM of class c at a layer with output A (C x h x w per image): the
// class score y_c (the logit; for multi-head models the combined 18-class
// log-probability of model.h) is differentiated with respect to A; the
// gradients averaged over the h x w positions weigh the channels,
//   w_k = mean_ij dy_c / dA_kij,   CAM = ReLU(sum_k w_k A_k),
// and the map is upsampled bilinearly to the input size and divided by its
// maximum, so it lies in [0, 1] (all 0 when no position has positive
// evidence for c).
//
// The job (RunGradCamJob) reads its one source model (LoadSourceModel,
// job.h), rebuilds that run's validation split from the checkpoint's own
// config exactly as the trainer does (data set, person split, face crop,
// validation loader and transforms), takes the first job.gradcam_images
// (default 16) validation images whose TRUE class is job.gradcam_class, in
// split order, and writes to --out:
//   gradcam.png  the sheet (GradCamSheetLayout): a title naming the run,
//                the class and the layer, a colour key, then a grid of
//                tiles, each the model's input crop (de-normalised) with the
//                map blended over it in the heat-map colours of
//                common/plot/style.h, under the title
//                "<true class>-<predicted class> (O)" (X when wrong) and
//                the predicted probability;
//   gradcam.csv  one row per tile: path (relative to the data set root),
//                true, pred (class names), correct (0/1), prob (of the
//                predicted class), prob_true, cam_mean, cam_peak_x,
//                cam_peak_y, cam_center_x, cam_center_y (peak and centre of
//                mass as fractions of the input width and height).
// Events: `start` {kind: "gradcam", sources, device, threads, model, class,
// class_name, layer (as asked; "" = default), requested}, `artifact` per
// file, `summary` {kind, images, requested, class, class_name, layer (the
// one used), correct, note (when fewer images than requested exist)} or
// `error`. Failures as for training: bad config (exit 2) for a class out of
// range, an unknown layer or not exactly one model; permanent (exit 3) for
// a missing or mismatching model or data set, a source run without a
// validation split, no validation image of the class, a TorchScript module
// Grad-CAM cannot run; retryable (exit 1) for I/O and other LibTorch
// errors.
//
// Thread safety: ComputeGradCam uses the model it is given (one thread at a
// time); RenderGradCamSheet is pure; one RunGradCamJob per process.
#ifndef SWEEPQ_WORKER_PIPELINE_GRADCAM_H_
#define SWEEPQ_WORKER_PIPELINE_GRADCAM_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/plot/canvas.h"
#include "opencv2/core.hpp"
#include "torch/types.h"
#include "worker/pipeline/job.h"
#include "worker/pipeline/model.h"
#include "worker/pipeline/trainer.h"

namespace sweepq::worker {

// Grad-CAM maps of a batch of images for one class.
struct GradCamMaps {
  // N x H x W float on the CPU, at the input images' size, each in [0, 1]:
  // its maximum is 1, or it is all 0.
  torch::Tensor maps;
  // N x num_classes soft-max probabilities of the model's output, CPU.
  torch::Tensor probabilities;
  // The layer the maps were taken at, and the size of its output.
  std::string layer;
  int64_t layer_height = 0;
  int64_t layer_width = 0;
};

// Computes the Grad-CAM maps of class `target_class` for `images` (N x 3 x
// H x W float on the model's device, normalised as the model was trained)
// at `layer` ("" = model.DefaultActivationLayer()). The model should be in
// eval mode (otherwise BatchNorm mixes the images). Gradients are taken
// even under a NoGradGuard; the model's parameter gradients are not
// touched. Returns INVALID_ARGUMENT for a class outside [0,
// num_classes), images that are not N x 3 x H x W, or an unknown layer
// (listing the valid ones); FAILED_PRECONDITION when the model cannot give
// the layer's output (TorchScript, see Classifier::ForwardWithActivation)
// or its class score does not depend on it; INTERNAL for LibTorch errors.
absl::StatusOr<GradCamMaps> ComputeGradCam(Classifier& model,
                                           const torch::Tensor& images,
                                           int target_class,
                                           const std::string& layer);

// One picture of a Grad-CAM sheet.
struct GradCamTile {
  // The model's input as 8-bit RGB (H x W, CV_8UC3).
  cv::Mat image;
  // Its Grad-CAM map, CV_32FC1 of the same size, values in [0, 1].
  cv::Mat cam;
  // "wear/male/<30-wear/male/<30 (O)"; wrapped to the tile's width.
  std::string title;
  // Drawn under the title in muted text (e.g. "p 0.93"); may be empty.
  std::string caption;
  // Colours the title: green when right, red when wrong.
  bool correct = true;
};

// A sheet of tiles.
struct GradCamSheet {
  // First line, larger ("run 12: Grad-CAM of wear/male/<30").
  std::string title;
  // Second line ("layer features.14, small_cnn, 16 validation images").
  std::string subtitle;
  // All of the same size; at least one.
  std::vector<GradCamTile> tiles;
};

// Where RenderGradCamSheet puts things, from the number of tiles and the
// input size alone.
struct GradCamSheetLayout {
  // Grid of columns x rows cells: columns = ceil(sqrt(tiles)).
  int columns = 0;
  int rows = 0;
  // Each input pixel is drawn as scale x scale pixels: the largest whole
  // factor that keeps the longer side <= 256 (at least 1).
  int scale = 1;
  // The picture of a tile: input size times scale.
  int tile_width = 0;
  int tile_height = 0;
  // A cell: the tile and its title lines above it.
  int cell_width = 0;
  int cell_height = 0;
  // Top of the grid (below title, subtitle and colour key).
  int grid_top = 0;
  // The whole sheet.
  int width = 0;
  int height = 0;
};

// Returns the layout of a sheet of `tiles` (>= 1) tiles of `image_width` x
// `image_height` (>= 1) inputs.
GradCamSheetLayout LayoutGradCamSheet(int tiles, int image_width,
                                      int image_height);

// Draws `sheet` with LayoutGradCamSheet's layout: each tile's image
// upscaled (bilinear), taken 60% of the way to its grey (Luminance) so
// that the heat colours stand out on any background, with its map blended
// over it: HeatColor(cam) at opacity 0.75 * cam (a map value of 0 leaves
// the greyed picture as it is).
// Returns INVALID_ARGUMENT for no tiles, tiles of different sizes, or an
// image / map of the wrong type or size (naming the tile).
absl::StatusOr<plot::Canvas> RenderGradCamSheet(const GradCamSheet& sheet);

// Runs a `gradcam` job (options.config.job.kind == "gradcam", one model)
// as described above. Never throws; failures are classified as in RunJob
// and written as an `error` event.
TrainResult RunGradCamJob(const JobOptions& options);

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_PIPELINE_GRADCAM_H_
