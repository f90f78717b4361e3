#include "worker/pipeline/transforms.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "opencv2/imgproc.hpp"

namespace sweepq::worker {
namespace {

double Uniform(std::mt19937_64& rng, double lo, double hi) {
  return std::uniform_real_distribution<double>(lo, hi)(rng);
}

bool Chance(std::mt19937_64& rng, double p) {
  if (p <= 0.0) return false;
  if (p >= 1.0) return true;
  return Uniform(rng, 0.0, 1.0) < p;
}

void CheckBgr(const cv::Mat& image) {
  CHECK_EQ(image.type(), CV_8UC3) << "transforms take 8-bit BGR images";
}

// out = image * factor + other * (1 - factor), saturated to 8 bits: PIL's
// ImageEnhance blend.
cv::Mat Blend(const cv::Mat& image, const cv::Mat& other, double factor) {
  cv::Mat out;
  cv::addWeighted(image, factor, other, 1.0 - factor, 0.0, out);
  return out;
}

cv::Mat Gray3(const cv::Mat& image) {
  cv::Mat gray, gray3;
  cv::cvtColor(image, gray, cv::COLOR_BGR2GRAY);
  cv::cvtColor(gray, gray3, cv::COLOR_GRAY2BGR);
  return gray3;
}

cv::Mat AdjustBrightness(const cv::Mat& image, double factor) {
  cv::Mat out;
  image.convertTo(out, -1, factor, 0.0);
  return out;
}

cv::Mat AdjustContrast(const cv::Mat& image, double factor) {
  cv::Mat gray;
  cv::cvtColor(image, gray, cv::COLOR_BGR2GRAY);
  const double mean = std::floor(cv::mean(gray)[0] + 0.5);
  cv::Mat out;
  image.convertTo(out, -1, factor, mean * (1.0 - factor));
  return out;
}

cv::Mat AdjustSaturation(const cv::Mat& image, double factor) {
  return Blend(image, Gray3(image), factor);
}

cv::Mat AdjustHue(const cv::Mat& image, double shift_turns) {
  cv::Mat hsv;
  cv::cvtColor(image, hsv, cv::COLOR_BGR2HSV);
  // 8-bit OpenCV hue is degrees / 2, in [0, 180).
  const int shift =
      static_cast<int>(std::lround(shift_turns * 180.0)) % 180 + 180;
  for (int y = 0; y < hsv.rows; ++y) {
    cv::Vec3b* row = hsv.ptr<cv::Vec3b>(y);
    for (int x = 0; x < hsv.cols; ++x) {
      row[x][0] = static_cast<uchar>((row[x][0] + shift) % 180);
    }
  }
  cv::Mat out;
  cv::cvtColor(hsv, out, cv::COLOR_HSV2BGR);
  return out;
}

cv::Mat AdjustSharpness(const cv::Mat& image, double factor) {
  // PIL's SMOOTH filter; the border keeps its pixels.
  const cv::Mat kernel =
      (cv::Mat_<float>(3, 3) << 1, 1, 1, 1, 5, 1, 1, 1, 1) / 13.0f;
  cv::Mat degenerate = image.clone();
  if (image.rows > 2 && image.cols > 2) {
    cv::Mat smooth;
    cv::filter2D(image, smooth, -1, kernel);
    const cv::Rect inner(1, 1, image.cols - 2, image.rows - 2);
    smooth(inner).copyTo(degenerate(inner));
  }
  return Blend(image, degenerate, factor);
}

cv::Mat WarpInverse(const cv::Mat& image, const cv::Mat& inverse_map) {
  cv::Mat out;
  cv::warpAffine(image, out, inverse_map, image.size(),
                 cv::INTER_NEAREST | cv::WARP_INVERSE_MAP, cv::BORDER_CONSTANT,
                 cv::Scalar::all(0));
  return out;
}

cv::Mat AutoContrast(const cv::Mat& image) {
  std::vector<cv::Mat> channels;
  cv::split(image, channels);
  for (cv::Mat& c : channels) {
    double lo = 0, hi = 0;
    cv::minMaxLoc(c, &lo, &hi);
    if (hi > lo) {
      const double scale = 255.0 / (hi - lo);
      c.convertTo(c, -1, scale, -lo * scale);
    }
  }
  cv::Mat out;
  cv::merge(channels, out);
  return out;
}

cv::Mat Equalize(const cv::Mat& image) {
  std::vector<cv::Mat> channels;
  cv::split(image, channels);
  for (cv::Mat& c : channels) cv::equalizeHist(c, c);
  cv::Mat out;
  cv::merge(channels, out);
  return out;
}

cv::Mat Posterize(const cv::Mat& image, int bits) {
  const int keep = std::clamp(bits, 0, 8);
  const double mask = static_cast<double>((0xFF << (8 - keep)) & 0xFF);
  cv::Mat out;
  cv::bitwise_and(image, cv::Scalar(mask, mask, mask), out);
  return out;
}

cv::Mat Solarize(const cv::Mat& image, double threshold) {
  cv::Mat out = image.clone();
  out.forEach<cv::Vec3b>([threshold](cv::Vec3b& p, const int*) {
    for (int c = 0; c < 3; ++c) {
      if (p[c] >= threshold) p[c] = static_cast<uchar>(255 - p[c]);
    }
  });
  return out;
}

using Op = AutoAugmentOp;

}  // namespace

cv::Mat CenterCrop(const cv::Mat& image, int width, int height) {
  CHECK_GT(width, 0);
  CHECK_GT(height, 0);
  cv::Mat out(height, width, image.type(), cv::Scalar::all(0));
  // Offsets of the crop in the image (>= 0 when cropping) and of the image
  // in the output (>= 0 when padding).
  const int src_x = std::max(0, (image.cols - width) / 2);
  const int src_y = std::max(0, (image.rows - height) / 2);
  const int dst_x = std::max(0, (width - image.cols) / 2);
  const int dst_y = std::max(0, (height - image.rows) / 2);
  const int w = std::min(width, image.cols);
  const int h = std::min(height, image.rows);
  image(cv::Rect(src_x, src_y, w, h)).copyTo(out(cv::Rect(dst_x, dst_y, w, h)));
  return out;
}

cv::Mat Resize(const cv::Mat& image, int width, int height) {
  cv::Mat out;
  cv::resize(image, out, cv::Size(width, height), 0, 0, cv::INTER_LINEAR);
  return out;
}

RandomResizedCropOptions RandomResizedCropOptionsFromConfig(
    const v1::RandomResizedCrop& config) {
  RandomResizedCropOptions options;
  if (config.has_scale_min()) options.scale_min = config.scale_min();
  if (config.has_scale_max()) options.scale_max = config.scale_max();
  if (config.has_ratio_min()) options.ratio_min = config.ratio_min();
  if (config.has_ratio_max()) options.ratio_max = config.ratio_max();
  return options;
}

cv::Mat RandomResizedCrop(const cv::Mat& image, int width, int height,
                          const RandomResizedCropOptions& options,
                          std::mt19937_64& rng) {
  const double area = static_cast<double>(image.cols) * image.rows;
  const double log_lo = std::log(options.ratio_min);
  const double log_hi = std::log(options.ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target =
        area * Uniform(rng, options.scale_min, options.scale_max);
    const double ratio = std::exp(Uniform(rng, log_lo, log_hi));
    const int w = static_cast<int>(std::lround(std::sqrt(target * ratio)));
    const int h = static_cast<int>(std::lround(std::sqrt(target / ratio)));
    if (w > 0 && h > 0 && w <= image.cols && h <= image.rows) {
      const int x = std::uniform_int_distribution<int>(0, image.cols - w)(rng);
      const int y = std::uniform_int_distribution<int>(0, image.rows - h)(rng);
      return Resize(image(cv::Rect(x, y, w, h)), width, height);
    }
  }
  // Fallback: the whole image's centre at the nearest allowed ratio.
  const double in_ratio = static_cast<double>(image.cols) / image.rows;
  int w = image.cols, h = image.rows;
  if (in_ratio < options.ratio_min) {
    h = std::max(1, static_cast<int>(std::lround(w / options.ratio_min)));
  } else if (in_ratio > options.ratio_max) {
    w = std::max(1, static_cast<int>(std::lround(h * options.ratio_max)));
  }
  return Resize(CenterCrop(image, w, h), width, height);
}

cv::Mat HorizontalFlip(const cv::Mat& image) {
  cv::Mat out;
  cv::flip(image, out, 1);
  return out;
}

cv::Mat RandomHorizontalFlip(const cv::Mat& image, double p,
                             std::mt19937_64& rng) {
  return Chance(rng, p) ? HorizontalFlip(image) : image.clone();
}

ColorJitterOptions ColorJitterOptionsFromConfig(const v1::ColorJitter& config) {
  ColorJitterOptions options;
  options.brightness = config.brightness();
  options.contrast = config.contrast();
  options.saturation = config.saturation();
  options.hue = std::min(0.5, config.hue());
  options.p = config.p() > 0.0 ? config.p() : 1.0;
  return options;
}

cv::Mat ColorJitter(const cv::Mat& image, const ColorJitterOptions& options,
                    std::mt19937_64& rng) {
  CheckBgr(image);
  if (!Chance(rng, options.p)) return image.clone();
  int order[4] = {0, 1, 2, 3};
  std::shuffle(std::begin(order), std::end(order), rng);
  cv::Mat out = image.clone();
  for (int which : order) {
    switch (which) {
      case 0:
        if (options.brightness > 0) {
          out = AdjustBrightness(
              out, Uniform(rng, std::max(0.0, 1 - options.brightness),
                           1 + options.brightness));
        }
        break;
      case 1:
        if (options.contrast > 0) {
          out = AdjustContrast(out,
                               Uniform(rng, std::max(0.0, 1 - options.contrast),
                                       1 + options.contrast));
        }
        break;
      case 2:
        if (options.saturation > 0) {
          out = AdjustSaturation(
              out, Uniform(rng, std::max(0.0, 1 - options.saturation),
                           1 + options.saturation));
        }
        break;
      default:
        if (options.hue > 0) {
          out = AdjustHue(out, Uniform(rng, -options.hue, options.hue));
        }
        break;
    }
  }
  return out;
}

CutoutOptions CutoutOptionsFromConfig(const v1::Cutout& config) {
  CutoutOptions options;
  options.p = config.p();
  options.size = config.size();
  options.holes = config.holes() == 0 ? 1 : static_cast<int>(config.holes());
  return options;
}

cv::Mat Cutout(const cv::Mat& image, const CutoutOptions& options,
               std::mt19937_64& rng) {
  cv::Mat out = image.clone();
  if (!Chance(rng, options.p)) return out;
  const int side =
      std::min({static_cast<int>(std::lround(options.size *
                                             std::min(image.rows, image.cols))),
                image.rows, image.cols});
  if (side <= 0) return out;
  for (int i = 0; i < options.holes; ++i) {
    const int x = std::uniform_int_distribution<int>(0, image.cols - side)(rng);
    const int y = std::uniform_int_distribution<int>(0, image.rows - side)(rng);
    out(cv::Rect(x, y, side, side)).setTo(cv::Scalar::all(0));
  }
  return out;
}

absl::StatusOr<NormalizeOptions> NormalizeOptionsFromConfig(
    const v1::AugmentConfig& config) {
  NormalizeOptions options;
  if (config.mean_size() != 0 && config.mean_size() != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "augment.mean: needs 3 values (R, G, B), got ", config.mean_size()));
  }
  if (config.std_size() != 0 && config.std_size() != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "augment.std: needs 3 values (R, G, B), got ", config.std_size()));
  }
  for (int c = 0; c < config.mean_size(); ++c) options.mean[c] = config.mean(c);
  for (int c = 0; c < config.std_size(); ++c) {
    if (config.std(c) <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("augment.std[", c, "] must be > 0"));
    }
    options.std[c] = config.std(c);
  }
  return options;
}

void NormalizeToChw(const cv::Mat& image, const NormalizeOptions& options,
                    float* out) {
  CheckBgr(image);
  const size_t plane = static_cast<size_t>(image.rows) * image.cols;
  // Precomputed per value: the 256-entry tables make this a lookup.
  float table[3][256];
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) {
      table[c][v] =
          static_cast<float>((v / 255.0 - options.mean[c]) / options.std[c]);
    }
  }
  for (int y = 0; y < image.rows; ++y) {
    const cv::Vec3b* row = image.ptr<cv::Vec3b>(y);
    const size_t base = static_cast<size_t>(y) * image.cols;
    for (int x = 0; x < image.cols; ++x) {
      // BGR in, RGB planes out.
      out[base + x] = table[0][row[x][2]];
      out[plane + base + x] = table[1][row[x][1]];
      out[2 * plane + base + x] = table[2][row[x][0]];
    }
  }
}

std::vector<float> NormalizeToChw(const cv::Mat& image,
                                  const NormalizeOptions& options) {
  std::vector<float> out(3 * static_cast<size_t>(image.rows) * image.cols);
  NormalizeToChw(image, options, out.data());
  return out;
}

double AutoAugmentMagnitude(AutoAugmentOp op, int bin) {
  CHECK(bin >= 0 && bin < kAutoAugmentBins) << "bin " << bin;
  const double t = bin / static_cast<double>(kAutoAugmentBins - 1);
  switch (op) {
    case Op::kShearX:
    case Op::kShearY:
      return 0.3 * t;
    case Op::kTranslateX:
    case Op::kTranslateY:
      return 150.0 / 331.0 * t;
    case Op::kRotate:
      return 30.0 * t;
    case Op::kBrightness:
    case Op::kColor:
    case Op::kContrast:
    case Op::kSharpness:
      return 0.9 * t;
    case Op::kPosterize:
      return 8 - std::round(bin / ((kAutoAugmentBins - 1) / 4.0));
    case Op::kSolarize:
      return 255.0 * (1.0 - t);
    case Op::kAutoContrast:
    case Op::kEqualize:
    case Op::kInvert:
      return 0.0;
  }
  return 0.0;
}

cv::Mat ApplyAutoAugmentOp(const cv::Mat& image, AutoAugmentOp op, int bin,
                           bool negate) {
  CheckBgr(image);
  const double m = AutoAugmentMagnitude(op, bin);
  const double s = negate ? -m : m;
  switch (op) {
    case Op::kShearX:
      // PIL: output (x, y) samples input (x + s * y, y).
      return WarpInverse(image, (cv::Mat_<double>(2, 3) << 1, s, 0, 0, 1, 0));
    case Op::kShearY:
      return WarpInverse(image, (cv::Mat_<double>(2, 3) << 1, 0, 0, s, 1, 0));
    case Op::kTranslateX:
      return WarpInverse(image, (cv::Mat_<double>(2, 3) << 1, 0,
                                 std::round(s * image.cols), 0, 1, 0));
    case Op::kTranslateY:
      return WarpInverse(image, (cv::Mat_<double>(2, 3) << 1, 0, 0, 0, 1,
                                 std::round(s * image.rows)));
    case Op::kRotate: {
      // Counter-clockwise by s degrees about the centre, as PIL.
      const cv::Mat forward = cv::getRotationMatrix2D(
          cv::Point2f(image.cols / 2.0f, image.rows / 2.0f), s, 1.0);
      cv::Mat out;
      cv::warpAffine(image, out, forward, image.size(), cv::INTER_NEAREST,
                     cv::BORDER_CONSTANT, cv::Scalar::all(0));
      return out;
    }
    case Op::kBrightness:
      return AdjustBrightness(image, 1.0 + s);
    case Op::kColor:
      return AdjustSaturation(image, 1.0 + s);
    case Op::kContrast:
      return AdjustContrast(image, 1.0 + s);
    case Op::kSharpness:
      return AdjustSharpness(image, 1.0 + s);
    case Op::kPosterize:
      return Posterize(image, static_cast<int>(m));
    case Op::kSolarize:
      return Solarize(image, m);
    case Op::kAutoContrast:
      return AutoContrast(image);
    case Op::kEqualize:
      return Equalize(image);
    case Op::kInvert: {
      cv::Mat out;
      cv::bitwise_not(image, out);
      return out;
    }
  }
  return image.clone();
}

absl::Span<const AutoAugmentSubPolicy> ImageNetAutoAugmentPolicy() {
  // Cubuk et al. 2019, appendix table (ImageNet), as (op, p, bin) pairs.
  static const AutoAugmentSubPolicy kPolicy[] = {
      {{{Op::kPosterize, 0.4, 8}, {Op::kRotate, 0.6, 9}}},
      {{{Op::kSolarize, 0.6, 5}, {Op::kAutoContrast, 0.6, 0}}},
      {{{Op::kEqualize, 0.8, 0}, {Op::kEqualize, 0.6, 0}}},
      {{{Op::kPosterize, 0.6, 7}, {Op::kPosterize, 0.6, 6}}},
      {{{Op::kEqualize, 0.4, 0}, {Op::kSolarize, 0.2, 4}}},
      {{{Op::kEqualize, 0.4, 0}, {Op::kRotate, 0.8, 8}}},
      {{{Op::kSolarize, 0.6, 3}, {Op::kEqualize, 0.6, 0}}},
      {{{Op::kPosterize, 0.8, 5}, {Op::kEqualize, 1.0, 0}}},
      {{{Op::kRotate, 0.2, 3}, {Op::kSolarize, 0.6, 8}}},
      {{{Op::kEqualize, 0.6, 0}, {Op::kPosterize, 0.4, 6}}},
      {{{Op::kRotate, 0.8, 8}, {Op::kColor, 0.4, 0}}},
      {{{Op::kRotate, 0.4, 9}, {Op::kEqualize, 0.6, 0}}},
      {{{Op::kEqualize, 0.0, 0}, {Op::kEqualize, 0.8, 0}}},
      {{{Op::kInvert, 0.6, 0}, {Op::kEqualize, 1.0, 0}}},
      {{{Op::kColor, 0.6, 4}, {Op::kContrast, 1.0, 8}}},
      {{{Op::kRotate, 0.8, 8}, {Op::kColor, 1.0, 2}}},
      {{{Op::kColor, 0.8, 8}, {Op::kSolarize, 0.8, 7}}},
      {{{Op::kSharpness, 0.4, 7}, {Op::kInvert, 0.6, 0}}},
      {{{Op::kShearX, 0.6, 5}, {Op::kEqualize, 1.0, 0}}},
      {{{Op::kColor, 0.4, 0}, {Op::kEqualize, 0.6, 0}}},
      {{{Op::kEqualize, 0.4, 0}, {Op::kSolarize, 0.2, 4}}},
      {{{Op::kSolarize, 0.6, 5}, {Op::kAutoContrast, 0.6, 0}}},
      {{{Op::kInvert, 0.6, 0}, {Op::kEqualize, 1.0, 0}}},
      {{{Op::kColor, 0.6, 4}, {Op::kContrast, 1.0, 8}}},
      {{{Op::kEqualize, 0.8, 0}, {Op::kEqualize, 0.6, 0}}},
  };
  return absl::MakeConstSpan(kPolicy);
}

cv::Mat ApplyAutoAugmentSubPolicy(const cv::Mat& image,
                                  const AutoAugmentSubPolicy& policy,
                                  std::mt19937_64& rng) {
  cv::Mat out = image.clone();
  for (const AutoAugmentStep& step : policy) {
    // Both draws happen whether or not the step applies, so one step's
    // outcome does not shift the next one's random numbers.
    const bool apply = Uniform(rng, 0.0, 1.0) < step.p;
    const bool negate = Uniform(rng, 0.0, 1.0) < 0.5;
    if (apply) out = ApplyAutoAugmentOp(out, step.op, step.bin, negate);
  }
  return out;
}

cv::Mat AutoAugmentImageNet(const cv::Mat& image, std::mt19937_64& rng) {
  const auto policy = ImageNetAutoAugmentPolicy();
  const size_t index =
      std::uniform_int_distribution<size_t>(0, policy.size() - 1)(rng);
  return ApplyAutoAugmentSubPolicy(image, policy[index], rng);
}

}  // namespace sweepq::worker
