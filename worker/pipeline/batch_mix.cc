#include "worker/pipeline/batch_mix.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace sweepq::worker {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Returns a standard normal draw (Box-Muller, one value per call).
double StandardNormal(std::mt19937_64& rng) {
  // 1 - U lies in (0, 1], so the log is finite.
  const double u1 = 1.0 - UniformDouble(rng);
  const double u2 = UniformDouble(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * kPi * u2);
}

absl::Status CheckBatch(const torch::Tensor& images,
                        const torch::Tensor& labels) {
  if (!images.defined() || images.dim() != 4 || !images.is_floating_point()) {
    return absl::InvalidArgumentError(
        "batch mix: images must be a 4-D floating tensor N x C x H x W");
  }
  if (!labels.defined() || labels.dim() != 1 ||
      labels.size(0) != images.size(0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batch mix: labels must be 1-D of length N = ", images.size(0)));
  }
  return absl::OkStatus();
}

absl::Status CheckProbability(double p, absl::string_view what) {
  if (!(p >= 0.0 && p <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ".p must be in [0, 1], got ", p));
  }
  return absl::OkStatus();
}

MixedBatch Unmixed(const torch::Tensor& images, const torch::Tensor& labels) {
  MixedBatch out;
  out.images = images.clone();
  out.labels_a = labels;
  out.labels_b = labels;
  return out;
}

// Returns [start, start + length) of a band of `length` centred uniformly
// in [0, size) and clipped to it.
std::pair<int64_t, int64_t> PlaceBand(int64_t size, int64_t length,
                                      std::mt19937_64& rng) {
  const int64_t centre =
      static_cast<int64_t>(UniformIndex(static_cast<uint64_t>(size), rng));
  const int64_t start = std::clamp<int64_t>(centre - length / 2, 0, size);
  const int64_t end =
      std::clamp<int64_t>(centre - length / 2 + length, 0, size);
  return {start, end};
}

}  // namespace

absl::StatusOr<CutMixOptions> CutMixOptionsFromConfig(
    const v1::CutMix& config) {
  CutMixOptions options;
  options.p = config.p();
  if (config.has_beta()) options.beta = config.beta();
  if (config.mode().empty() || config.mode() == "box") {
    options.mode = CutMixMode::kBox;
  } else if (config.mode() == "vertical") {
    options.mode = CutMixMode::kVertical;
  } else if (config.mode() == "horizontal") {
    options.mode = CutMixMode::kHorizontal;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("augment.cutmix.mode: unknown mode \"", config.mode(),
                     "\" (box | vertical | horizontal)"));
  }
  if (absl::Status s = CheckProbability(options.p, "augment.cutmix"); !s.ok()) {
    return s;
  }
  if (!(options.beta > 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("augment.cutmix.beta must be > 0, got ", options.beta));
  }
  return options;
}

absl::StatusOr<MixUpOptions> MixUpOptionsFromConfig(const v1::MixUp& config) {
  MixUpOptions options;
  options.p = config.p();
  if (config.has_alpha()) options.alpha = config.alpha();
  if (absl::Status s = CheckProbability(options.p, "augment.mixup"); !s.ok()) {
    return s;
  }
  if (!(options.alpha > 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("augment.mixup.alpha must be > 0, got ", options.alpha));
  }
  return options;
}

double UniformDouble(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

uint64_t UniformIndex(uint64_t n, std::mt19937_64& rng) {
  // Rejects the top partial range so every value is equally likely.
  const uint64_t limit = std::numeric_limits<uint64_t>::max() -
                         std::numeric_limits<uint64_t>::max() % n;
  uint64_t x = rng();
  while (x >= limit) x = rng();
  return x % n;
}

double SampleGamma(double shape, std::mt19937_64& rng) {
  if (shape < 1.0) {
    // Gamma(a) = Gamma(a + 1) * U^(1/a).
    const double u = 1.0 - UniformDouble(rng);
    return SampleGamma(shape + 1.0, rng) * std::pow(u, 1.0 / shape);
  }
  const double d = shape - 1.0 / 3.0;
  const double c = 1.0 / std::sqrt(9.0 * d);
  while (true) {
    double x;
    double v;
    do {
      x = StandardNormal(rng);
      v = 1.0 + c * x;
    } while (v <= 0.0);
    v = v * v * v;
    const double u = UniformDouble(rng);
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
    if (u > 0.0 && std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) {
      return d * v;
    }
  }
}

double SampleBeta(double a, double b, std::mt19937_64& rng) {
  const double x = SampleGamma(a, rng);
  const double y = SampleGamma(b, rng);
  // Both can underflow to 0 for tiny shapes; split evenly then.
  if (x + y <= 0.0) return 0.5;
  return x / (x + y);
}

std::vector<int64_t> RandomPermutation(int64_t n, std::mt19937_64& rng) {
  std::vector<int64_t> perm(static_cast<size_t>(std::max<int64_t>(n, 0)));
  for (int64_t i = 0; i < n; ++i) perm[static_cast<size_t>(i)] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j =
        static_cast<int64_t>(UniformIndex(static_cast<uint64_t>(i + 1), rng));
    std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(j)]);
  }
  return perm;
}

absl::StatusOr<MixedBatch> CutMix(const torch::Tensor& images,
                                  const torch::Tensor& labels,
                                  const CutMixOptions& options,
                                  std::mt19937_64& rng) {
  if (absl::Status s = CheckBatch(images, labels); !s.ok()) return s;
  if (absl::Status s = CheckProbability(options.p, "cutmix"); !s.ok()) {
    return s;
  }
  if (!(options.beta > 0.0)) {
    return absl::InvalidArgumentError("cutmix: beta must be > 0");
  }
  try {
    if (options.p <= 0.0 || UniformDouble(rng) >= options.p) {
      return Unmixed(images, labels);
    }
    const int64_t n = images.size(0);
    const int64_t height = images.size(2);
    const int64_t width = images.size(3);
    const double drawn = SampleBeta(options.beta, options.beta, rng);
    const std::vector<int64_t> perm = RandomPermutation(n, rng);
    const double cut = 1.0 - drawn;
    int64_t x0 = 0;
    int64_t x1 = width;
    int64_t y0 = 0;
    int64_t y1 = height;
    switch (options.mode) {
      case CutMixMode::kBox: {
        const double side = std::sqrt(cut);
        const auto w = static_cast<int64_t>(std::llround(width * side));
        const auto h = static_cast<int64_t>(std::llround(height * side));
        std::tie(x0, x1) = PlaceBand(width, w, rng);
        std::tie(y0, y1) = PlaceBand(height, h, rng);
        break;
      }
      case CutMixMode::kVertical: {
        const auto w = static_cast<int64_t>(std::llround(width * cut));
        std::tie(x0, x1) = PlaceBand(width, w, rng);
        break;
      }
      case CutMixMode::kHorizontal: {
        const auto h = static_cast<int64_t>(std::llround(height * cut));
        std::tie(y0, y1) = PlaceBand(height, h, rng);
        break;
      }
    }
    torch::Tensor index =
        torch::tensor(perm, torch::TensorOptions().dtype(torch::kLong))
            .to(images.device());
    MixedBatch out;
    out.images = images.clone();
    out.labels_a = labels;
    out.labels_b = labels.index_select(0, index.to(labels.device()));
    out.mixed = true;
    if (x1 > x0 && y1 > y0) {
      torch::Tensor partner = images.index_select(0, index);
      out.images.narrow(2, y0, y1 - y0)
          .narrow(3, x0, x1 - x0)
          .copy_(partner.narrow(2, y0, y1 - y0).narrow(3, x0, x1 - x0));
    }
    out.lambda = 1.0 - static_cast<double>((x1 - x0) * (y1 - y0)) /
                           static_cast<double>(width * height);
    return out;
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("cutmix: LibTorch: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<MixedBatch> MixUp(const torch::Tensor& images,
                                 const torch::Tensor& labels,
                                 const MixUpOptions& options,
                                 std::mt19937_64& rng) {
  if (absl::Status s = CheckBatch(images, labels); !s.ok()) return s;
  if (absl::Status s = CheckProbability(options.p, "mixup"); !s.ok()) {
    return s;
  }
  if (!(options.alpha > 0.0)) {
    return absl::InvalidArgumentError("mixup: alpha must be > 0");
  }
  try {
    if (options.p <= 0.0 || UniformDouble(rng) >= options.p) {
      return Unmixed(images, labels);
    }
    const double lambda = SampleBeta(options.alpha, options.alpha, rng);
    const std::vector<int64_t> perm = RandomPermutation(images.size(0), rng);
    torch::Tensor index =
        torch::tensor(perm, torch::TensorOptions().dtype(torch::kLong))
            .to(images.device());
    MixedBatch out;
    out.images =
        images * lambda + images.index_select(0, index) * (1.0 - lambda);
    out.labels_a = labels;
    out.labels_b = labels.index_select(0, index.to(labels.device()));
    out.lambda = lambda;
    out.mixed = true;
    return out;
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("mixup: LibTorch: ", e.what_without_backtrace()));
  }
}

}  // namespace sweepq::worker
