// Per-image transforms on cv::Mat. Unless said otherwise a transform takes
// an 8-bit 3-channel BGR image (CV_8UC3) and returns a new CV_8UC3 image;
// the input is not modified. Normalize ends the chain with float CHW in RGB
// channel order, as the model expects. All randomness comes from the
// std::mt19937_64 passed in, so a run with the same seed is reproducible.
// Functions are thread-safe (no shared state); a generator must not be
// shared between threads.
#ifndef SWEEPQ_WORKER_PIPELINE_TRANSFORMS_H_
#define SWEEPQ_WORKER_PIPELINE_TRANSFORMS_H_

#include <array>
#include <random>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "opencv2/core.hpp"
#include "sweepq/v1/run_config.pb.h"

namespace sweepq::worker {

// Returns the centre `width` x `height` region of `image`; sides larger
// than the image are padded with black (as torchvision's CenterCrop).
cv::Mat CenterCrop(const cv::Mat& image, int width, int height);

// Returns `image` resized to `width` x `height` with bilinear interpolation.
cv::Mat Resize(const cv::Mat& image, int width, int height);

// RandomResizedCrop settings (torchvision's defaults).
struct RandomResizedCropOptions {
  // Range of the crop's area as a share of the image's.
  double scale_min = 0.08;
  double scale_max = 1.0;
  // Range of the crop's width / height (sampled log-uniformly).
  double ratio_min = 3.0 / 4.0;
  double ratio_max = 4.0 / 3.0;
};

// Returns the options of `config`, applying the defaults above.
RandomResizedCropOptions RandomResizedCropOptionsFromConfig(
    const v1::RandomResizedCrop& config);

// Crops a random region (area and aspect ratio drawn from `options`, ten
// tries, then a centre crop of the clamped ratio) and resizes it to
// `width` x `height` bilinearly.
cv::Mat RandomResizedCrop(const cv::Mat& image, int width, int height,
                          const RandomResizedCropOptions& options,
                          std::mt19937_64& rng);

// Returns `image` mirrored left to right.
cv::Mat HorizontalFlip(const cv::Mat& image);

// Returns HorizontalFlip(image) with probability `p`, else a copy.
cv::Mat RandomHorizontalFlip(const cv::Mat& image, double p,
                             std::mt19937_64& rng);

// Colour jitter strengths (torchvision's ColorJitter): brightness, contrast
// and saturation factors are drawn from [max(0, 1 - s), 1 + s], the hue
// shift from [-hue, hue] turns (hue <= 0.5).
struct ColorJitterOptions {
  double brightness = 0.0;
  double contrast = 0.0;
  double saturation = 0.0;
  double hue = 0.0;
  // Probability of jittering an image at all.
  double p = 1.0;
};

// Returns the options of `config`. proto3 cannot tell an unset p from 0,
// so p = 0 with any strength set means 1 (always).
ColorJitterOptions ColorJitterOptionsFromConfig(const v1::ColorJitter& config);

// Applies brightness, contrast, saturation and hue changes in a random
// order, each with a random factor, with probability options.p.
cv::Mat ColorJitter(const cv::Mat& image, const ColorJitterOptions& options,
                    std::mt19937_64& rng);

// Cutout settings.
struct CutoutOptions {
  // Probability of cutting an image at all.
  double p = 0.0;
  // Side of each square hole as a share of the shorter image side.
  double size = 0.0;
  // Number of holes.
  int holes = 1;
};

// Returns the options of `config` (holes 0 means 1).
CutoutOptions CutoutOptionsFromConfig(const v1::Cutout& config);

// With probability options.p, blacks out options.holes squares of side
// round(size * min(rows, cols)), each placed uniformly and entirely inside
// the image (holes may overlap).
cv::Mat Cutout(const cv::Mat& image, const CutoutOptions& options,
               std::mt19937_64& rng);

// Per-channel normalisation in RGB order.
struct NormalizeOptions {
  std::array<double, 3> mean = {0.548, 0.504, 0.479};
  std::array<double, 3> std = {0.237, 0.247, 0.246};
};

// Returns the options of `config`'s mean / std (3 values each when set;
// the mask data set's statistics otherwise). Returns INVALID_ARGUMENT when
// a list has a length other than 0 or 3 or a std is <= 0.
absl::StatusOr<NormalizeOptions> NormalizeOptionsFromConfig(
    const v1::AugmentConfig& config);

// Writes (pixel / 255 - mean[c]) / std[c] of the BGR `image` as float CHW
// in RGB order to `out`, which must hold 3 * rows * cols floats.
void NormalizeToChw(const cv::Mat& image, const NormalizeOptions& options,
                    float* out);

// Returns NormalizeToChw of `image` as a new vector of 3 * rows * cols.
std::vector<float> NormalizeToChw(const cv::Mat& image,
                                  const NormalizeOptions& options);

// The AutoAugment operations (Cubuk et al. 2019), with PIL's semantics.
enum class AutoAugmentOp {
  kShearX,
  kShearY,
  kTranslateX,
  kTranslateY,
  kRotate,
  kBrightness,
  kColor,
  kContrast,
  kSharpness,
  kPosterize,
  kSolarize,
  kAutoContrast,
  kEqualize,
  kInvert,
};

// Number of magnitude bins (0..9).
inline constexpr int kAutoAugmentBins = 10;

// Returns the magnitude of `op` at `bin` in [0, 9] (torchvision's bins):
// shear 0.3 * bin / 9; translate (150 / 331) * bin / 9 of the image side;
// rotate 30 * bin / 9 degrees; brightness / color / contrast / sharpness
// 0.9 * bin / 9 (the enhancement factor is 1 +- this); posterize 8 -
// round(bin / 2.25) bits kept; solarize threshold 255 * (1 - bin / 9); 0
// for the ops without a magnitude.
double AutoAugmentMagnitude(AutoAugmentOp op, int bin);

// Applies `op` at magnitude bin `bin`; `negate` flips the sign of the
// signed ops (shear, translate, rotate, the enhancement factors). Geometric
// ops use nearest-neighbour sampling and fill with black.
cv::Mat ApplyAutoAugmentOp(const cv::Mat& image, AutoAugmentOp op, int bin,
                           bool negate);

// One step of a sub-policy: apply `op` at `bin` with probability `p`.
struct AutoAugmentStep {
  AutoAugmentOp op;
  double p;
  int bin;
};

// A sub-policy: two steps applied in order.
using AutoAugmentSubPolicy = std::array<AutoAugmentStep, 2>;

// Returns the 25 sub-policies of the paper's ImageNet policy.
absl::Span<const AutoAugmentSubPolicy> ImageNetAutoAugmentPolicy();

// Applies sub-policy `policy` (each step with its probability and a random
// sign).
cv::Mat ApplyAutoAugmentSubPolicy(const cv::Mat& image,
                                  const AutoAugmentSubPolicy& policy,
                                  std::mt19937_64& rng);

// Applies a sub-policy of the ImageNet policy chosen uniformly.
cv::Mat AutoAugmentImageNet(const cv::Mat& image, std::mt19937_64& rng);

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_PIPELINE_TRANSFORMS_H_
