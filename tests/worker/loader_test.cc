#include "worker/pipeline/loader.h"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"
#include "worker/pipeline/face_crop.h"
#include "worker/pipeline/image_decode.h"
#include "worker/pipeline/synthetic.h"

namespace sweepq::worker {
namespace {

using ::testing::HasSubstr;

constexpr int kPeople = 20;
constexpr int kImages = kPeople * 7;

// One synthetic data set shared by the suite (rendering takes a while).
class LoaderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    SyntheticOptions options;
    options.out_dir = dir_->Join("data");
    options.people = kPeople;
    options.eval_images = 7;
    options.seed = 5;
    options.threads = 2;
    absl::StatusOr<SyntheticManifest> manifest =
        WriteSyntheticMaskDataset(options);
    ASSERT_TRUE(manifest.ok()) << manifest.status();
    DatasetOptions dataset_options;
    dataset_options.root = options.out_dir;
    absl::StatusOr<Dataset> dataset = LoadDataset(dataset_options);
    ASSERT_TRUE(dataset.ok()) << dataset.status();
    dataset_ = new Dataset(*std::move(dataset));
  }

  static void TearDownTestSuite() {
    delete dataset_;
    dataset_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(dataset_, nullptr);
    ASSERT_EQ(dataset_->samples.size(), static_cast<size_t>(kImages));
    FaceCropOptions crop;
    crop.detectors = {"fixed"};
    absl::StatusOr<std::unique_ptr<FaceCropper>> cropper =
        FaceCropper::Create(crop);
    ASSERT_TRUE(cropper.ok()) << cropper.status();
    cropper_ = *std::move(cropper);
  }

  static std::vector<size_t> AllIndices() {
    std::vector<size_t> out;
    for (size_t i = 0; i < dataset_->samples.size(); ++i) out.push_back(i);
    return out;
  }

  static LoaderOptions SmallOptions() {
    LoaderOptions options;
    options.batch_size = 16;
    options.width = 48;
    options.height = 64;
    options.seed = 17;
    return options;
  }

  // Runs one epoch and returns its batches; fails the test on an error.
  static std::vector<Batch> Epoch(Loader& loader, int64_t epoch) {
    loader.StartEpoch(epoch);
    std::vector<Batch> out;
    while (true) {
      absl::StatusOr<std::optional<Batch>> batch = loader.Next();
      EXPECT_TRUE(batch.ok()) << batch.status();
      if (!batch.ok() || !batch->has_value()) break;
      out.push_back(**std::move(batch));
    }
    return out;
  }

  // Returns a copy of the data set whose samples `which` point at broken
  // files written under `dir`: a truncated JPEG, then a 0-byte file,
  // alternating.
  static Dataset WithBrokenImages(const std::vector<size_t>& which,
                                  const testing::TempDir& dir) {
    Dataset copy = *dataset_;
    for (size_t k = 0; k < which.size(); ++k) {
      Sample& sample = copy.samples[which[k]];
      std::string bytes;
      EXPECT_TRUE(ReadFileBytes(sample.path, &bytes).ok());
      const std::string path = dir.Join("broken" + std::to_string(k) + ".jpg");
      std::ofstream out(path, std::ios::binary);
      if (k % 2 == 0) out << bytes.substr(0, bytes.size() / 3);
      sample.path = path;
    }
    return copy;
  }

  static testing::TempDir* dir_;
  static Dataset* dataset_;
  std::unique_ptr<FaceCropper> cropper_;
};

testing::TempDir* LoaderTest::dir_ = nullptr;
Dataset* LoaderTest::dataset_ = nullptr;

TEST_F(LoaderTest, BatchShapesAndLabelRanges) {
  absl::StatusOr<std::unique_ptr<Loader>> loader =
      Loader::Create(dataset_, AllIndices(), cropper_.get(), SmallOptions());
  ASSERT_TRUE(loader.ok()) << loader.status();
  EXPECT_EQ((*loader)->batches_per_epoch(), (kImages + 15) / 16);
  const std::vector<Batch> batches = Epoch(**loader, 0);
  ASSERT_EQ(batches.size(), static_cast<size_t>((kImages + 15) / 16));
  int64_t total = 0;
  std::vector<int> seen(kImages, 0);
  for (size_t b = 0; b < batches.size(); ++b) {
    const Batch& batch = batches[b];
    EXPECT_EQ(batch.index, static_cast<int64_t>(b));
    const int64_t n = batch.images.size(0);
    EXPECT_EQ(n, b + 1 < batches.size() ? 16 : kImages % 16);
    EXPECT_EQ(batch.images.sizes(), (std::vector<int64_t>{n, 3, 64, 48}));
    EXPECT_EQ(batch.images.scalar_type(), torch::kFloat);
    EXPECT_EQ(batch.labels.scalar_type(), torch::kLong);
    EXPECT_TRUE(torch::isfinite(batch.images).all().item<bool>());
    EXPECT_GE(batch.labels.min().item<int64_t>(), 0);
    EXPECT_LT(batch.labels.max().item<int64_t>(), 18);
    ASSERT_TRUE(batch.mask.defined());
    EXPECT_LT(batch.mask.max().item<int64_t>(), 3);
    EXPECT_LT(batch.gender.max().item<int64_t>(), 2);
    EXPECT_LT(batch.age_band.max().item<int64_t>(), 3);
    ASSERT_EQ(batch.sample_indices.size(), static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const Sample& s = dataset_->samples[batch.sample_indices[i]];
      EXPECT_EQ(batch.labels[i].item<int64_t>(), s.label);
      EXPECT_EQ(batch.mask[i].item<int64_t>(), s.mask);
      ++seen[batch.sample_indices[i]];
    }
    total += n;
  }
  EXPECT_EQ(total, kImages);
  // Without weighted sampling an epoch is a permutation.
  for (int count : seen) EXPECT_EQ(count, 1);
}

TEST_F(LoaderTest, SameBatchesForOneAndThreeThreads) {
  LoaderOptions options = SmallOptions();
  options.augment = true;
  options.augment_options.hflip = 0.5;
  options.augment_options.color_jitter.brightness = 0.3;
  options.augment_options.cutout.p = 0.5;
  options.augment_options.cutout.size = 0.2;
  options.augment_options.random_resized_crop = true;
  std::vector<std::vector<Batch>> runs;
  for (int threads : {1, 3}) {
    options.threads = threads;
    options.prefetch_batches = threads == 1 ? 1 : 4;
    absl::StatusOr<std::unique_ptr<Loader>> loader =
        Loader::Create(dataset_, AllIndices(), cropper_.get(), options);
    ASSERT_TRUE(loader.ok()) << loader.status();
    std::vector<Batch> batches = Epoch(**loader, 0);
    std::vector<Batch> second = Epoch(**loader, 1);
    batches.insert(batches.end(), second.begin(), second.end());
    runs.push_back(std::move(batches));
  }
  ASSERT_EQ(runs[0].size(), runs[1].size());
  for (size_t b = 0; b < runs[0].size(); ++b) {
    EXPECT_EQ(runs[0][b].sample_indices, runs[1][b].sample_indices);
    EXPECT_TRUE(torch::equal(runs[0][b].images, runs[1][b].images))
        << "batch " << b;
  }
  // Epochs 0 and 1 have different orders.
  EXPECT_NE(runs[0][0].sample_indices,
            runs[0][(kImages + 15) / 16].sample_indices);
}

TEST_F(LoaderTest, ValidationOrderIsTheGivenOrder) {
  LoaderOptions options = SmallOptions();
  options.shuffle = false;
  absl::StatusOr<std::unique_ptr<Loader>> loader =
      Loader::Create(dataset_, AllIndices(), cropper_.get(), options);
  ASSERT_TRUE(loader.ok());
  std::vector<size_t> order;
  for (const Batch& batch : Epoch(**loader, 3)) {
    order.insert(order.end(), batch.sample_indices.begin(),
                 batch.sample_indices.end());
  }
  EXPECT_EQ(order, AllIndices());
}

TEST_F(LoaderTest, SecondEpochHitsTheDecodeCache) {
  LoaderOptions options = SmallOptions();
  options.threads = 2;
  absl::StatusOr<std::unique_ptr<Loader>> loader =
      Loader::Create(dataset_, AllIndices(), cropper_.get(), options);
  ASSERT_TRUE(loader.ok());
  const auto start = std::chrono::steady_clock::now();
  Epoch(**loader, 0);
  const auto cold = std::chrono::steady_clock::now();
  EXPECT_EQ((*loader)->stats().decodes, kImages);
  EXPECT_EQ((*loader)->stats().cache_hits, 0);
  EXPECT_EQ((*loader)->stats().cached_images, kImages);
  EXPECT_EQ((*loader)->stats().cached_bytes,
            static_cast<uint64_t>(kImages) * 48 * 64 * 3);
  Epoch(**loader, 1);
  const auto warm = std::chrono::steady_clock::now();
  EXPECT_EQ((*loader)->stats().decodes, kImages);
  EXPECT_EQ((*loader)->stats().cache_hits, kImages);
  // Informative only.
  const double cold_s = std::chrono::duration<double>(cold - start).count();
  const double warm_s = std::chrono::duration<double>(warm - cold).count();
  std::cout << "epoch of " << kImages << " images, 2 threads: cold "
            << kImages / cold_s << " images/s, warm " << kImages / warm_s
            << " images/s\n";
}

TEST_F(LoaderTest, KnownFaceBoxIsDecodedReducedWithTheSameCrop) {
  // The fixed box (220 x 320 on 384 x 512) is still >= 48 x 64 at 1/4.
  LoaderOptions options = SmallOptions();
  options.shuffle = false;
  std::vector<std::vector<Batch>> runs;
  for (bool reduced : {true, false}) {
    options.reduced_decoding = reduced;
    absl::StatusOr<std::unique_ptr<Loader>> loader =
        Loader::Create(dataset_, AllIndices(), cropper_.get(), options);
    ASSERT_TRUE(loader.ok()) << loader.status();
    runs.push_back(Epoch(**loader, 0));
    EXPECT_EQ((*loader)->stats().decodes, kImages);
    EXPECT_EQ((*loader)->stats().reduced_decodes, reduced ? kImages : 0);
  }
  ASSERT_EQ(runs[0].size(), runs[1].size());
  for (size_t b = 0; b < runs[0].size(); ++b) {
    ASSERT_EQ(runs[0][b].images.sizes(), runs[1][b].images.sizes());
    // The same region, filtered differently: closer on average than the
    // same crop moved by one output pixel (about 5 source pixels), which
    // is what a reduced decode that missed the box would look like.
    const torch::Tensor& full = runs[1][b].images;
    const double diff = (runs[0][b].images - full).abs().mean().item<double>();
    const double shifted =
        (full.roll(1, /*dims=*/3) - full).abs().mean().item<double>();
    EXPECT_LT(diff, 0.75 * shifted) << "batch " << b;
    std::cout << "batch " << b << ": reduced vs full " << diff
              << ", full vs one pixel over " << shifted << "\n";
  }
}

TEST_F(LoaderTest, NoReducedDecodingBelowTheWorkingSize) {
  // 220 x 320 / 2 = 110 x 160 < 120 x 160 wide: decoded in full.
  LoaderOptions options = SmallOptions();
  options.width = 120;
  options.height = 160;
  absl::StatusOr<std::unique_ptr<Loader>> loader =
      Loader::Create(dataset_, AllIndices(), cropper_.get(), options);
  ASSERT_TRUE(loader.ok()) << loader.status();
  Epoch(**loader, 0);
  EXPECT_EQ((*loader)->stats().decodes, kImages);
  EXPECT_EQ((*loader)->stats().reduced_decodes, 0);
}

TEST_F(LoaderTest, CacheCapLimitsWhatIsKept) {
  LoaderOptions options = SmallOptions();
  options.decode_cache_bytes = 10 * 48 * 64 * 3;
  absl::StatusOr<std::unique_ptr<Loader>> loader =
      Loader::Create(dataset_, AllIndices(), cropper_.get(), options);
  ASSERT_TRUE(loader.ok());
  Epoch(**loader, 0);
  Epoch(**loader, 1);
  EXPECT_EQ((*loader)->stats().cached_images, 10);
  EXPECT_LE((*loader)->stats().cached_bytes, options.decode_cache_bytes);
  EXPECT_EQ((*loader)->stats().cache_hits, 10);
  EXPECT_EQ((*loader)->stats().decodes, 2 * kImages - 10);
}

TEST_F(LoaderTest, CorruptImageIsSkippedAndCounted) {
  testing::TempDir dir;
  const Dataset broken = WithBrokenImages({5}, dir);
  LoaderOptions options = SmallOptions();
  options.threads = 2;
  options.max_bad_fraction = 0.05;
  absl::StatusOr<std::unique_ptr<Loader>> loader =
      Loader::Create(&broken, AllIndices(), cropper_.get(), options);
  ASSERT_TRUE(loader.ok());
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    int64_t total = 0;
    for (const Batch& batch : Epoch(**loader, epoch)) {
      total += batch.images.size(0);
      for (size_t index : batch.sample_indices) EXPECT_NE(index, 5u);
    }
    EXPECT_EQ(total, kImages - 1);
  }
  const std::vector<BadImage> bad = (*loader)->bad_images();
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(bad[0].path, broken.samples[5].path);
  EXPECT_FALSE(bad[0].cause.empty());
  // The bad image is read once, the good ones once.
  EXPECT_EQ((*loader)->stats().decodes, kImages);
}

TEST_F(LoaderTest, TooManyBadImagesFailTheEpoch) {
  testing::TempDir dir;
  std::vector<size_t> which;
  for (size_t i = 0; i < 10; ++i) which.push_back(i * 3);
  const Dataset broken = WithBrokenImages(which, dir);
  LoaderOptions options = SmallOptions();
  options.max_bad_fraction = 0.05;
  absl::StatusOr<std::unique_ptr<Loader>> loader =
      Loader::Create(&broken, AllIndices(), cropper_.get(), options);
  ASSERT_TRUE(loader.ok());
  (*loader)->StartEpoch(0);
  absl::Status failure;
  while (true) {
    absl::StatusOr<std::optional<Batch>> batch = (*loader)->Next();
    if (!batch.ok()) {
      failure = batch.status();
      break;
    }
    ASSERT_TRUE(batch->has_value()) << "epoch ended without failing";
  }
  EXPECT_EQ(failure.code(), absl::StatusCode::kFailedPrecondition) << failure;
  EXPECT_THAT(failure.message(), HasSubstr("at least "));
  EXPECT_THAT(failure.message(),
              HasSubstr(" of 140 images of epoch 0 are unreadable"));
  EXPECT_THAT(failure.message(), HasSubstr(dir.path() + "/broken"));
  // The epoch stays failed.
  EXPECT_EQ((*loader)->Next().status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(LoaderTest, WeightedSamplingBalancesClasses) {
  LoaderOptions options = SmallOptions();
  int64_t rare_plain = 0;
  int64_t rare_weighted = 0;
  for (bool weighted : {false, true}) {
    options.weighted_sampling = weighted;
    absl::StatusOr<std::unique_ptr<Loader>> loader =
        Loader::Create(dataset_, AllIndices(), cropper_.get(), options);
    ASSERT_TRUE(loader.ok());
    for (int64_t epoch = 0; epoch < 3; ++epoch) {
      for (const Batch& batch : Epoch(**loader, epoch)) {
        (weighted ? rare_weighted : rare_plain) +=
            batch.age_band.eq(2).sum().item<int64_t>();
      }
    }
  }
  // Six of the 18 classes are >= 60: weighted draws give them about a
  // third of the samples, far more than their share of people.
  EXPECT_GT(rare_weighted, 3 * kImages / 5);
  EXPECT_GT(rare_weighted, rare_plain);
}

TEST_F(LoaderTest, RejectsBadOptions) {
  LoaderOptions options = SmallOptions();
  options.threads = 0;
  EXPECT_EQ(
      Loader::Create(dataset_, AllIndices(), nullptr, options).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      Loader::Create(dataset_, {}, nullptr, SmallOptions()).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Loader::Create(dataset_, {100000}, nullptr, SmallOptions())
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(LoaderOptionsTest, FromConfigAppliesDefaults) {
  v1::RunConfig config;
  config.set_seed(9);
  absl::StatusOr<LoaderOptions> train = LoaderOptionsFromConfig(config, true);
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->width, 96);
  EXPECT_EQ(train->height, 128);
  EXPECT_EQ(train->batch_size, 32);
  EXPECT_EQ(train->threads, 2);
  EXPECT_EQ(train->prefetch_batches, 4);
  EXPECT_EQ(train->decode_cache_bytes, kDefaultDecodeCacheBytes);
  EXPECT_TRUE(train->shuffle);
  EXPECT_TRUE(train->augment);
  EXPECT_EQ(train->augment_options.hflip, 0.5);
  EXPECT_EQ(train->seed, 9u);
  absl::StatusOr<LoaderOptions> val = LoaderOptionsFromConfig(config, false);
  ASSERT_TRUE(val.ok());
  EXPECT_FALSE(val->shuffle);
  EXPECT_FALSE(val->augment);

  config.mutable_data()->set_max_bad_fraction(1.5);
  EXPECT_EQ(LoaderOptionsFromConfig(config, true).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sweepq::worker
