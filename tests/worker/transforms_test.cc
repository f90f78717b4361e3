#include "worker/pipeline/transforms.h"

#include <cmath>
#include <random>
#include <set>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "opencv2/imgproc.hpp"

namespace sweepq::worker {
namespace {

using Op = AutoAugmentOp;

// A 40 x 30 image with a gradient, a colour patch and texture, so every op
// has something to change.
cv::Mat TestImage() {
  cv::Mat image(30, 40, CV_8UC3);
  for (int y = 0; y < image.rows; ++y) {
    for (int x = 0; x < image.cols; ++x) {
      image.at<cv::Vec3b>(y, x) = cv::Vec3b(
          static_cast<uchar>(40 + 4 * x), static_cast<uchar>(60 + 5 * y),
          static_cast<uchar>((x * 13 + y * 7) % 200 + 30));
    }
  }
  cv::rectangle(image, cv::Rect(5, 5, 10, 8), cv::Scalar(20, 200, 240), -1);
  return image;
}

cv::Mat Uniform(cv::Vec3b value, int w = 8, int h = 6) {
  return cv::Mat(h, w, CV_8UC3, cv::Scalar(value[0], value[1], value[2]));
}

bool Equal(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() &&
         cv::norm(a, b, cv::NORM_INF) == 0;
}

TEST(TransformsTest, CenterCropTakesTheMiddleAndPadsWhenLarger) {
  const cv::Mat image = TestImage();
  const cv::Mat crop = CenterCrop(image, 20, 10);
  EXPECT_EQ(crop.size(), cv::Size(20, 10));
  EXPECT_TRUE(Equal(crop, image(cv::Rect(10, 10, 20, 10))));
  const cv::Mat padded = CenterCrop(image, 50, 30);
  EXPECT_EQ(padded.size(), cv::Size(50, 30));
  EXPECT_TRUE(Equal(padded(cv::Rect(5, 0, 40, 30)), image));
  EXPECT_EQ(padded.at<cv::Vec3b>(0, 0), cv::Vec3b(0, 0, 0));
}

TEST(TransformsTest, ResizeIsBilinear) {
  cv::Mat two(1, 2, CV_8UC3);
  two.at<cv::Vec3b>(0, 0) = cv::Vec3b(0, 0, 0);
  two.at<cv::Vec3b>(0, 1) = cv::Vec3b(200, 200, 200);
  const cv::Mat big = Resize(two, 4, 1);
  EXPECT_EQ(big.size(), cv::Size(4, 1));
  // Bilinear: the inner pixels are blends, not copies.
  EXPECT_EQ(big.at<cv::Vec3b>(0, 1)[0], 50);
  EXPECT_EQ(big.at<cv::Vec3b>(0, 2)[0], 150);
}

TEST(TransformsTest, RandomResizedCropHasTheOutputSizeAndIsSeeded) {
  const cv::Mat image = TestImage();
  std::mt19937_64 a(1), b(1);
  for (int i = 0; i < 20; ++i) {
    const cv::Mat x = RandomResizedCrop(image, 16, 24, {}, a);
    const cv::Mat y = RandomResizedCrop(image, 16, 24, {}, b);
    EXPECT_EQ(x.size(), cv::Size(16, 24));
    EXPECT_EQ(x.type(), CV_8UC3);
    EXPECT_TRUE(Equal(x, y));
  }
  // A scale range that cannot fit falls back to a centre crop.
  RandomResizedCropOptions impossible;
  impossible.scale_min = impossible.scale_max = 4.0;
  EXPECT_EQ(RandomResizedCrop(image, 8, 8, impossible, a).size(),
            cv::Size(8, 8));
}

TEST(TransformsTest, FlipTwiceIsIdentity) {
  const cv::Mat image = TestImage();
  const cv::Mat once = HorizontalFlip(image);
  EXPECT_FALSE(Equal(once, image));
  EXPECT_EQ(once.at<cv::Vec3b>(3, 0), image.at<cv::Vec3b>(3, 39));
  EXPECT_TRUE(Equal(HorizontalFlip(once), image));
  std::mt19937_64 rng(3);
  EXPECT_TRUE(Equal(RandomHorizontalFlip(image, 1.0, rng), once));
  EXPECT_TRUE(Equal(RandomHorizontalFlip(image, 0.0, rng), image));
}

TEST(TransformsTest, ColorJitterStaysInRangeAndIsSeeded) {
  const cv::Mat image = TestImage();
  ColorJitterOptions options{0.4, 0.4, 0.4, 0.1, 1.0};
  std::mt19937_64 a(5), b(5);
  const cv::Mat x = ColorJitter(image, options, a);
  EXPECT_EQ(x.size(), image.size());
  EXPECT_EQ(x.type(), CV_8UC3);
  EXPECT_FALSE(Equal(x, image));
  EXPECT_TRUE(Equal(x, ColorJitter(image, options, b)));
  // Zero strengths change nothing.
  EXPECT_TRUE(Equal(ColorJitter(image, ColorJitterOptions(), a), image));
  // Brightness only on a gray image scales it within [0.6, 1.4].
  const cv::Mat gray = Uniform({100, 100, 100});
  for (int i = 0; i < 20; ++i) {
    const cv::Mat j = ColorJitter(gray, {0.4, 0, 0, 0, 1.0}, a);
    const int v = j.at<cv::Vec3b>(0, 0)[0];
    EXPECT_GE(v, 60);
    EXPECT_LE(v, 140);
  }
}

TEST(TransformsTest, CutoutBlacksOutExactlyTheHoleArea) {
  const cv::Mat white = Uniform({255, 255, 255}, 40, 30);
  std::mt19937_64 rng(9);
  CutoutOptions options{1.0, 0.5, 1};  // side round(0.5 * 30) = 15
  for (int i = 0; i < 10; ++i) {
    const cv::Mat cut = Cutout(white, options, rng);
    cv::Mat gray;
    cv::cvtColor(cut, gray, cv::COLOR_BGR2GRAY);
    EXPECT_EQ(gray.total() - cv::countNonZero(gray), 15u * 15u);
  }
  options.p = 0.0;
  EXPECT_TRUE(Equal(Cutout(white, options, rng), white));
}

TEST(TransformsTest, NormalizeIsChwRgbWithTheMaskDefaults) {
  cv::Mat image(2, 3, CV_8UC3, cv::Scalar(0, 128, 255));  // B, G, R
  const NormalizeOptions options;
  const std::vector<float> out = NormalizeToChw(image, options);
  ASSERT_EQ(out.size(), 3u * 2 * 3);
  // Plane 0 is red (255), 1 green (128), 2 blue (0).
  EXPECT_NEAR(out[0], (1.0 - 0.548) / 0.237, 1e-5);
  EXPECT_NEAR(out[6], (128 / 255.0 - 0.504) / 0.247, 1e-5);
  EXPECT_NEAR(out[12], (0.0 - 0.479) / 0.246, 1e-5);
  EXPECT_NEAR(out[17], (0.0 - 0.479) / 0.246, 1e-5);

  v1::AugmentConfig config;
  config.add_mean(0.5);
  config.add_mean(0.5);
  config.add_mean(0.5);
  config.add_std(0.5);
  config.add_std(0.25);
  config.add_std(1.0);
  auto custom = NormalizeOptionsFromConfig(config);
  ASSERT_TRUE(custom.ok()) << custom.status();
  const std::vector<float> c = NormalizeToChw(image, *custom);
  EXPECT_NEAR(c[0], 1.0, 1e-5);
  EXPECT_NEAR(c[12], -0.5, 1e-5);
  config.add_std(2.0);
  EXPECT_FALSE(NormalizeOptionsFromConfig(config).ok());
}

TEST(AutoAugmentTest, PolicyIsThePapersImageNetTable) {
  const auto policy = ImageNetAutoAugmentPolicy();
  ASSERT_EQ(policy.size(), 25u);
  EXPECT_EQ(policy[0][0].op, Op::kPosterize);
  EXPECT_EQ(policy[0][0].bin, 8);
  EXPECT_DOUBLE_EQ(policy[0][0].p, 0.4);
  EXPECT_EQ(policy[0][1].op, Op::kRotate);
  EXPECT_EQ(policy[0][1].bin, 9);
  EXPECT_EQ(policy[18][0].op, Op::kShearX);
  EXPECT_EQ(policy[24][1].op, Op::kEqualize);
  for (const auto& sub : policy) {
    for (const auto& step : sub) {
      EXPECT_GE(step.bin, 0);
      EXPECT_LT(step.bin, kAutoAugmentBins);
    }
  }
}

TEST(AutoAugmentTest, MagnitudeBins) {
  EXPECT_DOUBLE_EQ(AutoAugmentMagnitude(Op::kRotate, 9), 30.0);
  EXPECT_DOUBLE_EQ(AutoAugmentMagnitude(Op::kShearX, 9), 0.3);
  EXPECT_NEAR(AutoAugmentMagnitude(Op::kColor, 4), 0.4, 1e-12);
  EXPECT_DOUBLE_EQ(AutoAugmentMagnitude(Op::kPosterize, 0), 8);
  EXPECT_DOUBLE_EQ(AutoAugmentMagnitude(Op::kPosterize, 8), 4);
  EXPECT_DOUBLE_EQ(AutoAugmentMagnitude(Op::kPosterize, 5), 6);
  EXPECT_DOUBLE_EQ(AutoAugmentMagnitude(Op::kSolarize, 0), 255);
  EXPECT_DOUBLE_EQ(AutoAugmentMagnitude(Op::kSolarize, 9), 0);
}

TEST(AutoAugmentTest, DeterministicUnderASeed) {
  const cv::Mat image = TestImage();
  std::mt19937_64 a(42), b(42), c(43);
  bool any_differs = false;
  std::set<double> norms;
  for (int i = 0; i < 50; ++i) {
    const cv::Mat x = AutoAugmentImageNet(image, a);
    const cv::Mat y = AutoAugmentImageNet(image, b);
    const cv::Mat z = AutoAugmentImageNet(image, c);
    ASSERT_TRUE(Equal(x, y)) << i;
    EXPECT_EQ(x.size(), image.size());
    EXPECT_EQ(x.type(), CV_8UC3);
    any_differs = any_differs || !Equal(x, z);
    norms.insert(cv::norm(x, image, cv::NORM_L1));
  }
  EXPECT_TRUE(any_differs);
  EXPECT_GT(norms.size(), 5u);  // many different outcomes
  // Each sub-policy alone is deterministic too.
  for (const auto& sub : ImageNetAutoAugmentPolicy()) {
    std::mt19937_64 p(7), q(7);
    EXPECT_TRUE(Equal(ApplyAutoAugmentSubPolicy(image, sub, p),
                      ApplyAutoAugmentSubPolicy(image, sub, q)));
  }
}

TEST(AutoAugmentTest, PosterizeKeepsTheTopBits) {
  const cv::Mat out =
      ApplyAutoAugmentOp(Uniform({0xFF, 0x37, 0x08}), Op::kPosterize, 8, false);
  EXPECT_EQ(out.at<cv::Vec3b>(0, 0), cv::Vec3b(0xF0, 0x30, 0x00));
}

TEST(AutoAugmentTest, SolarizeInvertsAboveTheThreshold) {
  // Bin 5: threshold 255 * 4 / 9 = 113.3.
  const cv::Mat out =
      ApplyAutoAugmentOp(Uniform({100, 200, 113}), Op::kSolarize, 5, false);
  EXPECT_EQ(out.at<cv::Vec3b>(0, 0), cv::Vec3b(100, 55, 113));
  const cv::Mat all =
      ApplyAutoAugmentOp(Uniform({0, 10, 250}), Op::kSolarize, 9, false);
  EXPECT_EQ(all.at<cv::Vec3b>(0, 0), cv::Vec3b(255, 245, 5));
}

TEST(AutoAugmentTest, InvertAndBrightness) {
  EXPECT_EQ(ApplyAutoAugmentOp(Uniform({0, 100, 255}), Op::kInvert, 0, false)
                .at<cv::Vec3b>(0, 0),
            cv::Vec3b(255, 155, 0));
  // Bin 5: factor 1 +- 0.5.
  EXPECT_EQ(
      ApplyAutoAugmentOp(Uniform({100, 20, 200}), Op::kBrightness, 5, false)
          .at<cv::Vec3b>(0, 0),
      cv::Vec3b(150, 30, 255));
  EXPECT_EQ(
      ApplyAutoAugmentOp(Uniform({100, 20, 200}), Op::kBrightness, 5, true)
          .at<cv::Vec3b>(0, 0),
      cv::Vec3b(50, 10, 100));
}

TEST(AutoAugmentTest, ColorAndContrastBlendTowardsGray) {
  // Bin 9 negated: factor 0.1, so the channel spread shrinks to a tenth.
  const cv::Mat color =
      ApplyAutoAugmentOp(Uniform({0, 100, 200}), Op::kColor, 9, true);
  const cv::Vec3b c = color.at<cv::Vec3b>(0, 0);
  EXPECT_NEAR(c[2] - c[0], 20, 1);
  // Contrast on a two-tone image: the difference scales by 1 +- 0.8.
  cv::Mat two = Uniform({50, 50, 50}, 8, 6);
  two(cv::Rect(0, 0, 4, 6)).setTo(cv::Scalar::all(150));
  const cv::Mat low = ApplyAutoAugmentOp(two, Op::kContrast, 8, true);
  EXPECT_NEAR(low.at<cv::Vec3b>(0, 0)[0] - low.at<cv::Vec3b>(0, 7)[0], 20, 1);
  const cv::Mat high = ApplyAutoAugmentOp(two, Op::kContrast, 8, false);
  EXPECT_NEAR(high.at<cv::Vec3b>(0, 0)[0] - high.at<cv::Vec3b>(0, 7)[0], 180,
              1);
}

TEST(AutoAugmentTest, SharpnessLeavesFlatImagesAndBordersAlone) {
  const cv::Mat flat = Uniform({90, 90, 90});
  EXPECT_TRUE(Equal(ApplyAutoAugmentOp(flat, Op::kSharpness, 9, false), flat));
  const cv::Mat image = TestImage();
  const cv::Mat sharp = ApplyAutoAugmentOp(image, Op::kSharpness, 9, false);
  EXPECT_FALSE(Equal(sharp, image));
  EXPECT_TRUE(Equal(sharp.row(0), image.row(0)));
}

TEST(AutoAugmentTest, GeometricOpsMovePixelsAndFillBlack) {
  cv::Mat image = Uniform({200, 200, 200}, 21, 21);
  image.at<cv::Vec3b>(10, 10) = cv::Vec3b(0, 0, 255);
  // Shear X bin 9 (0.3): row y samples x + 0.3 y, so row 0 is unchanged and
  // the right end of the last row is filled black.
  const cv::Mat shear = ApplyAutoAugmentOp(image, Op::kShearX, 9, false);
  EXPECT_TRUE(Equal(shear.row(0), image.row(0)));
  EXPECT_EQ(shear.at<cv::Vec3b>(20, 20), cv::Vec3b(0, 0, 0));
  EXPECT_EQ(shear.at<cv::Vec3b>(10, 7), cv::Vec3b(0, 0, 255));
  // Translate X bin 9: 150/331 of 21 = 10 pixels.
  const cv::Mat moved = ApplyAutoAugmentOp(image, Op::kTranslateX, 9, false);
  EXPECT_EQ(moved.at<cv::Vec3b>(10, 0), cv::Vec3b(0, 0, 255));
  EXPECT_EQ(moved.at<cv::Vec3b>(10, 20), cv::Vec3b(0, 0, 0));
  // Rotate bin 9 (30 degrees): the centre stays, the corners turn black.
  const cv::Mat rotated = ApplyAutoAugmentOp(image, Op::kRotate, 9, false);
  EXPECT_EQ(rotated.at<cv::Vec3b>(10, 10), cv::Vec3b(0, 0, 255));
  EXPECT_EQ(rotated.at<cv::Vec3b>(0, 0), cv::Vec3b(0, 0, 0));
  EXPECT_EQ(rotated.at<cv::Vec3b>(20, 20), cv::Vec3b(0, 0, 0));
}

TEST(AutoAugmentTest, AutoContrastAndEqualizeStretchToTheFullRange) {
  cv::Mat image = Uniform({50, 50, 50}, 8, 6);
  image(cv::Rect(0, 0, 4, 6)).setTo(cv::Scalar::all(100));
  for (Op op : {Op::kAutoContrast, Op::kEqualize}) {
    const cv::Mat out = ApplyAutoAugmentOp(image, op, 0, false);
    double lo = 0, hi = 0;
    cv::minMaxLoc(out.reshape(1), &lo, &hi);
    EXPECT_EQ(hi, 255) << static_cast<int>(op);
    if (op == Op::kAutoContrast) {
      EXPECT_EQ(lo, 0);
    }
  }
}

}  // namespace
}  // namespace sweepq::worker
