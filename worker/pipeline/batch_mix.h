// Batch-level mixing augmentations on LibTorch tensors: CutMix (Yun et al.
// 2019) and MixUp (Zhang et al. 2018). Both take a float batch N x C x H x W
// and its int64 labels (N) and return the mixed batch with the two label
// sets and the weight lambda for the loss:
//   loss = lambda * L(out, labels_a) + (1 - lambda) * L(out, labels_b).
// All randomness comes from the std::mt19937_64 passed in, drawn through
// this file's own uniform, normal, Gamma and Beta samplers, so results do
// not depend on the standard library's distributions. Functions are
// thread-safe (no shared state); a generator must not be shared between
// threads. Nothing here needs a GPU; tensors stay on their device.
#ifndef SWEEPQ_WORKER_PIPELINE_BATCH_MIX_H_
#define SWEEPQ_WORKER_PIPELINE_BATCH_MIX_H_

#include <cstdint>
#include <random>
#include <vector>

#include "absl/status/statusor.h"
#include "sweepq/v1/run_config.pb.h"
#include "torch/types.h"

namespace sweepq::worker {

// Where CutMix pastes the partner image.
enum class CutMixMode {
  // A box of area (1 - lambda) * H * W with the image's aspect ratio.
  kBox,
  // A vertical band of width (1 - lambda) * W spanning the full height.
  kVertical,
  // A horizontal band of height (1 - lambda) * H spanning the full width.
  kHorizontal,
};

// CutMix settings.
struct CutMixOptions {
  // Probability of mixing a batch at all.
  double p = 0.0;
  // lambda ~ Beta(beta, beta); > 0.
  double beta = 1.0;
  CutMixMode mode = CutMixMode::kBox;
};

// MixUp settings.
struct MixUpOptions {
  // Probability of mixing a batch at all.
  double p = 0.0;
  // lambda ~ Beta(alpha, alpha); > 0.
  double alpha = 1.0;
};

// Returns the options of `config` (beta defaults to 1, mode to box).
// Returns INVALID_ARGUMENT for an unknown mode, p outside [0, 1] or
// beta <= 0.
absl::StatusOr<CutMixOptions> CutMixOptionsFromConfig(const v1::CutMix& config);

// Returns the options of `config` (alpha defaults to 1). Returns
// INVALID_ARGUMENT for p outside [0, 1] or alpha <= 0.
absl::StatusOr<MixUpOptions> MixUpOptionsFromConfig(const v1::MixUp& config);

// Returns a uniform draw in [0, 1) from the top 53 bits of one rng() call.
double UniformDouble(std::mt19937_64& rng);

// Returns a uniform integer in [0, n) (n >= 1) by rejection, unbiased.
uint64_t UniformIndex(uint64_t n, std::mt19937_64& rng);

// Returns a Gamma(shape, 1) draw (shape > 0) by Marsaglia and Tsang's
// method (with the U^(1/shape) boost for shape < 1) on UniformDouble and
// Box-Muller normals.
double SampleGamma(double shape, std::mt19937_64& rng);

// Returns a Beta(a, b) draw (a, b > 0) as X / (X + Y) of two Gamma draws.
double SampleBeta(double a, double b, std::mt19937_64& rng);

// Returns a uniformly random permutation of 0..n-1 (Fisher-Yates on
// UniformIndex).
std::vector<int64_t> RandomPermutation(int64_t n, std::mt19937_64& rng);

// A mixed batch.
struct MixedBatch {
  // N x C x H x W, a new tensor (the input is not modified).
  torch::Tensor images;
  // The input labels.
  torch::Tensor labels_a;
  // The labels of each sample's partner (labels_a when not mixed).
  torch::Tensor labels_b;
  // Weight of labels_a, in [0, 1]; 1 when the batch was not mixed.
  double lambda = 1.0;
  // True when the batch was mixed.
  bool mixed = false;
};

// With probability options.p: draws lambda ~ Beta(beta, beta) and a
// permutation partner per sample, pastes the partner's region (box, full
// height vertical band or full width horizontal band, placed uniformly and
// clipped to the image) into every sample, and returns lambda recomputed
// from the pasted area: 1 - pasted pixels / (H * W). Otherwise returns a
// copy with lambda 1. Returns INVALID_ARGUMENT for images that are not a
// 4-D floating tensor, labels that are not 1-D of length N, or bad options,
// and INTERNAL when LibTorch fails.
absl::StatusOr<MixedBatch> CutMix(const torch::Tensor& images,
                                  const torch::Tensor& labels,
                                  const CutMixOptions& options,
                                  std::mt19937_64& rng);

// With probability options.p: draws lambda ~ Beta(alpha, alpha) and a
// permutation partner per sample and returns lambda * x + (1 - lambda) *
// x[partner]. Otherwise returns a copy with lambda 1. Errors as CutMix.
absl::StatusOr<MixedBatch> MixUp(const torch::Tensor& images,
                                 const torch::Tensor& labels,
                                 const MixUpOptions& options,
                                 std::mt19937_64& rng);

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_PIPELINE_BATCH_MIX_H_
