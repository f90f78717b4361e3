#include "worker/pipeline/batch_mix.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sweepq::worker {
namespace {

// A batch where image i is filled with the constant i + 1, so every pixel
// tells which image it came from.
torch::Tensor ConstantBatch(int64_t n, int64_t height, int64_t width) {
  torch::Tensor images = torch::empty({n, 3, height, width});
  for (int64_t i = 0; i < n; ++i) images[i].fill_(static_cast<double>(i + 1));
  return images;
}

torch::Tensor Labels(int64_t n) {
  return torch::arange(n, torch::TensorOptions().dtype(torch::kLong));
}

// Returns, per sample, the share of pixels (all channels) that changed.
std::vector<double> ChangedFractions(const torch::Tensor& before,
                                     const torch::Tensor& after) {
  std::vector<double> out;
  for (int64_t i = 0; i < before.size(0); ++i) {
    out.push_back(
        before[i].ne(after[i]).to(torch::kDouble).mean().item<double>());
  }
  return out;
}

TEST(SamplersTest, BetaHasTheRightMean) {
  std::mt19937_64 rng(7);
  for (double a : {0.2, 1.0, 3.0}) {
    double sum = 0;
    const int n = 20000;
    for (int i = 0; i < n; ++i) {
      const double x = SampleBeta(a, 2.0 * a, rng);
      ASSERT_GE(x, 0.0);
      ASSERT_LE(x, 1.0);
      sum += x;
    }
    EXPECT_NEAR(sum / n, 1.0 / 3.0, 0.01) << "a " << a;
  }
}

TEST(SamplersTest, GammaHasTheRightMean) {
  std::mt19937_64 rng(3);
  for (double shape : {0.5, 2.0, 9.0}) {
    double sum = 0;
    const int n = 20000;
    for (int i = 0; i < n; ++i) sum += SampleGamma(shape, rng);
    EXPECT_NEAR(sum / n, shape, 0.05 * shape + 0.02) << "shape " << shape;
  }
}

TEST(SamplersTest, PermutationIsAPermutation) {
  std::mt19937_64 rng(1);
  std::vector<int64_t> perm = RandomPermutation(50, rng);
  std::sort(perm.begin(), perm.end());
  for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(perm[i], i);
}

class CutMixModeTest : public ::testing::TestWithParam<CutMixMode> {};

TEST_P(CutMixModeTest, LambdaEqualsOneMinusPastedFraction) {
  const torch::Tensor images = ConstantBatch(8, 24, 32);
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::mt19937_64 rng(seed);
    CutMixOptions options;
    options.p = 1.0;
    options.mode = GetParam();
    absl::StatusOr<MixedBatch> mixed = CutMix(images, Labels(8), options, rng);
    ASSERT_TRUE(mixed.ok()) << mixed.status();
    ASSERT_TRUE(mixed->mixed);
    const std::vector<double> changed = ChangedFractions(images, mixed->images);
    const torch::Tensor partner = mixed->labels_b;
    for (int64_t i = 0; i < 8; ++i) {
      // A sample paired with itself changes nothing.
      if (partner[i].item<int64_t>() == i) continue;
      EXPECT_NEAR(1.0 - changed[i], mixed->lambda, 1e-9)
          << "seed " << seed << " sample " << i;
    }
    // The pasted pixels hold the partner's value.
    for (int64_t i = 0; i < 8; ++i) {
      const double own = static_cast<double>(i + 1);
      const double other = static_cast<double>(partner[i].item<int64_t>() + 1);
      const torch::Tensor img = mixed->images[i];
      EXPECT_TRUE(img.eq(own).logical_or(img.eq(other)).all().item<bool>());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, CutMixModeTest,
                         ::testing::Values(CutMixMode::kBox,
                                           CutMixMode::kVertical,
                                           CutMixMode::kHorizontal));

TEST(CutMixTest, VerticalBandCoversEveryRow) {
  const torch::Tensor images = ConstantBatch(4, 20, 30);
  int checked = 0;
  for (uint64_t seed = 0; seed < 30; ++seed) {
    std::mt19937_64 rng(seed);
    CutMixOptions options;
    options.p = 1.0;
    options.mode = CutMixMode::kVertical;
    absl::StatusOr<MixedBatch> mixed = CutMix(images, Labels(4), options, rng);
    ASSERT_TRUE(mixed.ok()) << mixed.status();
    for (int64_t i = 0; i < 4; ++i) {
      if (mixed->labels_b[i].item<int64_t>() == i) continue;
      // Changed pixels of channel 0, H x W.
      const torch::Tensor changed = images[i][0].ne(mixed->images[i][0]);
      const torch::Tensor columns = changed.any(0);  // W
      const int64_t band = columns.sum().item<int64_t>();
      if (band == 0) continue;
      ++checked;
      // Every changed column is changed in every row, so the band spans
      // the full height.
      EXPECT_TRUE(changed.index_select(0, torch::arange(20))
                      .eq(columns.unsqueeze(0).expand({20, 30}))
                      .all()
                      .item<bool>());
      EXPECT_TRUE(changed.any(1).all().item<bool>());
    }
  }
  EXPECT_GT(checked, 10);
}

TEST(CutMixTest, HorizontalBandCoversEveryColumn) {
  const torch::Tensor images = ConstantBatch(4, 20, 30);
  for (uint64_t seed = 0; seed < 10; ++seed) {
    std::mt19937_64 rng(seed);
    CutMixOptions options;
    options.p = 1.0;
    options.mode = CutMixMode::kHorizontal;
    absl::StatusOr<MixedBatch> mixed = CutMix(images, Labels(4), options, rng);
    ASSERT_TRUE(mixed.ok()) << mixed.status();
    for (int64_t i = 0; i < 4; ++i) {
      const torch::Tensor changed = images[i][0].ne(mixed->images[i][0]);
      if (!changed.any().item<bool>()) continue;
      EXPECT_TRUE(changed.any(0).all().item<bool>());
    }
  }
}

TEST(CutMixTest, DeterministicUnderASeed) {
  const torch::Tensor images = torch::rand({6, 3, 16, 16});
  CutMixOptions options;
  options.p = 0.7;
  options.beta = 0.5;
  for (uint64_t seed = 0; seed < 5; ++seed) {
    std::mt19937_64 a(seed);
    std::mt19937_64 b(seed);
    absl::StatusOr<MixedBatch> x = CutMix(images, Labels(6), options, a);
    absl::StatusOr<MixedBatch> y = CutMix(images, Labels(6), options, b);
    ASSERT_TRUE(x.ok() && y.ok());
    EXPECT_TRUE(torch::equal(x->images, y->images));
    EXPECT_TRUE(torch::equal(x->labels_b, y->labels_b));
    EXPECT_EQ(x->lambda, y->lambda);
  }
}

TEST(CutMixTest, ZeroProbabilityLeavesTheBatchUnchanged) {
  const torch::Tensor images = torch::rand({5, 3, 8, 8});
  std::mt19937_64 rng(1);
  CutMixOptions options;
  options.p = 0.0;
  absl::StatusOr<MixedBatch> mixed = CutMix(images, Labels(5), options, rng);
  ASSERT_TRUE(mixed.ok());
  EXPECT_FALSE(mixed->mixed);
  EXPECT_EQ(mixed->lambda, 1.0);
  EXPECT_TRUE(torch::equal(mixed->images, images));
  EXPECT_TRUE(torch::equal(mixed->labels_b, Labels(5)));
}

TEST(CutMixTest, RejectsBadInput) {
  std::mt19937_64 rng(1);
  CutMixOptions options;
  options.p = 1.0;
  EXPECT_EQ(
      CutMix(torch::rand({3, 8, 8}), Labels(3), options, rng).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CutMix(torch::rand({3, 3, 8, 8}), Labels(4), options, rng)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  v1::CutMix config;
  config.set_mode("diagonal");
  EXPECT_EQ(CutMixOptionsFromConfig(config).status().code(),
            absl::StatusCode::kInvalidArgument);
  config.set_mode("vertical");
  config.set_p(0.5);
  absl::StatusOr<CutMixOptions> parsed = CutMixOptionsFromConfig(config);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->mode, CutMixMode::kVertical);
  EXPECT_EQ(parsed->beta, 1.0);
}

TEST(MixUpTest, MixesWithLambda) {
  const torch::Tensor images = ConstantBatch(6, 4, 4);
  std::mt19937_64 rng(11);
  MixUpOptions options;
  options.p = 1.0;
  options.alpha = 0.4;
  absl::StatusOr<MixedBatch> mixed = MixUp(images, Labels(6), options, rng);
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  ASSERT_TRUE(mixed->mixed);
  for (int64_t i = 0; i < 6; ++i) {
    const double expected =
        mixed->lambda * static_cast<double>(i + 1) +
        (1.0 - mixed->lambda) *
            static_cast<double>(mixed->labels_b[i].item<int64_t>() + 1);
    EXPECT_NEAR(mixed->images[i].mean().item<double>(), expected, 1e-5);
  }
}

TEST(MixUpTest, DeterministicAndZeroProbability) {
  const torch::Tensor images = torch::rand({4, 3, 5, 5});
  MixUpOptions options;
  options.p = 1.0;
  std::mt19937_64 a(9);
  std::mt19937_64 b(9);
  absl::StatusOr<MixedBatch> x = MixUp(images, Labels(4), options, a);
  absl::StatusOr<MixedBatch> y = MixUp(images, Labels(4), options, b);
  ASSERT_TRUE(x.ok() && y.ok());
  EXPECT_TRUE(torch::equal(x->images, y->images));
  EXPECT_EQ(x->lambda, y->lambda);

  options.p = 0.0;
  absl::StatusOr<MixedBatch> z = MixUp(images, Labels(4), options, a);
  ASSERT_TRUE(z.ok());
  EXPECT_TRUE(torch::equal(z->images, images));
  EXPECT_EQ(z->lambda, 1.0);
}

}  // namespace
}  // namespace sweepq::worker
