#include "worker/pipeline/face_crop.h"

#include <atomic>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"
#include "tests/testing/temp_dir.h"
#include "worker/pipeline/image_decode.h"
#include "worker/pipeline/synthetic.h"

namespace sweepq::worker {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// skimage's astronaut.png (Eileen Collins, NASA portrait, public domain),
// shipped by Debian's python3-skimage.
constexpr char kAstronaut[] =
    "/usr/lib/python3/dist-packages/skimage/data/astronaut.png";
// Her face on the 512 x 512 photo, eyebrows to chin, measured by eye.
const cv::Rect kAstronautFace(180, 85, 90, 95);
// Her head with the hair (top of the hair to the chin), measured by eye.
const cv::Rect kAstronautHead(155, 25, 145, 150);

// Counts Detect calls and answers a fixed box (or none).
class CountingDetector : public FaceDetector {
 public:
  CountingDetector(std::optional<Detection> answer, std::string name)
      : answer_(answer), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  std::string settings_key() const override { return name_ + "(test)"; }
  absl::StatusOr<std::optional<Detection>> Detect(const cv::Mat&) override {
    ++calls_;
    return answer_;
  }
  int calls() const { return calls_.load(); }

 private:
  const std::optional<Detection> answer_;
  const std::string name_;
  std::atomic<int> calls_{0};
};

// scikit-image's astronaut (a real photograph) and the Haar detector.
class AstronautTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kAstronaut)) {
      GTEST_SKIP() << kAstronaut << " missing: apt-get install python3-skimage";
    }
    auto image = ReadImageFile(kAstronaut, kDefaultMaxImagePixels);
    ASSERT_TRUE(image.ok()) << image.status();
    image_ = *std::move(image);
    auto haar = MakeFaceDetector("haar", FaceCropOptions());
    ASSERT_TRUE(haar.ok()) << haar.status();
    haar_ = *std::move(haar);
  }

  cv::Mat image_;
  std::unique_ptr<FaceDetector> haar_;
};

TEST_F(AstronautTest, HaarBoxCoversTheAstronautsFace) {
  auto found = haar_->Detect(image_);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_TRUE(found->has_value()) << "no face found on the astronaut";
  const cv::Rect box = (*found)->box;
  std::cout << "haar box on astronaut.png: " << box << " confidence "
            << (*found)->confidence << "\n";
  // The raw box holds the eyes, nose and mouth and is face-sized.
  const cv::Rect core(195, 100, 60, 60);
  EXPECT_EQ(box & core, core) << box;
  EXPECT_LT(box.width, 200) << box;
  EXPECT_LT(box.height, 200) << box;
  EXPECT_GE((*found)->confidence, 0.5);

  auto cropper = FaceCropper::Create(FaceCropOptions());
  ASSERT_TRUE(cropper.ok()) << cropper.status();
  auto crop = (*cropper)->Locate(image_, "");
  ASSERT_TRUE(crop.ok()) << crop.status();
  EXPECT_EQ(crop->source, "haar");
  EXPECT_EQ(crop->box & kAstronautFace, kAstronautFace) << crop->box;
  // The crop holds her head with the hair (measured by eye), not just the
  // face the cascade boxes.
  EXPECT_EQ(crop->box & kAstronautHead, kAstronautHead) << crop->box;
  EXPECT_NE(box & kAstronautHead, kAstronautHead) << box;
  // Margin 0.2 / 0.3 / 0.1 of the box, then padding 20 x 30 on 384 x 512
  // = 27 x 30 on 512 x 512, each side.
  const FaceCropOptions defaults;
  EXPECT_EQ(crop->box, ExpandDetectedBox(box, image_.size(), defaults));
  EXPECT_NEAR(crop->box.width, box.width * 1.4 + 2 * 27, 2);
  EXPECT_NEAR(crop->box.height, box.height * 1.4 + 2 * 30, 2);
}

// The cascade runs on a reduced copy of a large image: the box comes back
// in the image's own pixels, and a gray image passed in is left as it was.
TEST_F(AstronautTest, HaarBoxIsInThePixelsOfTheImagePassed) {
  cv::Mat large, gray;
  cv::resize(image_, large, cv::Size(), 2.0, 2.0, cv::INTER_LINEAR);
  cv::cvtColor(large, gray, cv::COLOR_BGR2GRAY);
  const cv::Mat before = gray.clone();
  auto found = haar_->Detect(gray);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_TRUE(found->has_value()) << "no face on the enlarged astronaut";
  const cv::Rect box = (*found)->box;
  const cv::Rect face(2 * kAstronautFace.x, 2 * kAstronautFace.y,
                      2 * kAstronautFace.width, 2 * kAstronautFace.height);
  EXPECT_GT((box & face).area(), face.area() * 0.7) << box;
  EXPECT_LT(box.width, 2 * 200) << box;
  EXPECT_EQ(cv::norm(gray, before, cv::NORM_INF), 0.0);
}

TEST(FaceCropTest, DetectedBoxGrowsByTheMarginThenThePadding) {
  FaceCropOptions options;
  ASSERT_EQ(options.margin_x, 0.2);
  ASSERT_EQ(options.margin_top, 0.3);
  ASSERT_EQ(options.margin_bottom, 0.1);
  // 100 x 100 at (100, 100): margin 20 left and right, 30 above, 10
  // below, then padding 20 x 30.
  EXPECT_EQ(ExpandDetectedBox(cv::Rect(100, 100, 100, 100), cv::Size(384, 512),
                              options),
            cv::Rect(60, 40, 180, 200));
  // Clamped to the image.
  EXPECT_EQ(ExpandDetectedBox(cv::Rect(10, 20, 100, 100), cv::Size(384, 512),
                              options),
            cv::Rect(0, 0, 150, 160));
  // The margin is part of the detection cache's key.
  std::vector<std::unique_ptr<FaceDetector>> chain;
  chain.push_back(std::make_unique<CountingDetector>(std::nullopt, "test"));
  const std::string key = ChainSettingsKey(chain, options);
  options.margin_x = options.margin_top = options.margin_bottom = 0;
  EXPECT_NE(ChainSettingsKey(chain, options), key);
  EXPECT_EQ(
      ExpandDetectedBox(cv::Rect(100, 100, 100, 100), cv::Size(384, 512),
                        options),
      PadAndClampBox(cv::Rect(100, 100, 100, 100), cv::Size(384, 512), 20, 30));
}

// On the synthetic faces without a mask (where the cascade finds the face
// itself, brows to mouth), a Haar crop keeps the hair beside and above the
// face: all of it with the margin (without: 93% on average, 78% at worst).
TEST(FaceCropTest, HaarCropsOnSyntheticFacesHoldTheHair) {
  auto cropper = FaceCropper::Create(FaceCropOptions());
  ASSERT_TRUE(cropper.ok()) << cropper.status();
  const auto people = SampleSyntheticPeople(40, 5);
  int haar = 0;
  int whole = 0;  // Haar crops holding > 95% of the face with its hair
  double coverage = 0;
  for (const SyntheticPerson& p : people) {
    SyntheticRegions regions;
    const cv::Mat image =
        RenderSyntheticImage(p, MaskState::kNormal, p.seed, &regions);
    auto crop = (*cropper)->Locate(image, "");
    ASSERT_TRUE(crop.ok()) << crop.status();
    if (crop->source != "haar") continue;
    ++haar;
    const double covered =
        static_cast<double>((crop->box & regions.face).area()) /
        regions.face.area();
    if (covered > 0.95) {
      ++whole;
    } else {
      std::cout << "partial crop of " << p.folder << ": " << crop->box
                << " vs face and hair " << regions.face << "\n";
    }
    coverage += covered;
  }
  std::cout << "haar won " << haar << " of " << people.size()
            << " unmasked synthetic faces, mean coverage of face and hair "
            << (haar > 0 ? coverage / haar : 0) << "\n";
  ASSERT_GE(haar, 5);
  // The cascade now and then boxes a face off centre (one in 22 here);
  // nearly all crops must hold the whole head, and the mean must be high.
  EXPECT_GE(whole, 0.9 * haar);
  EXPECT_GT(coverage / haar, 0.97);
}

// Loader threads share one detector; each concurrent call must get the
// same answer as a call alone (a shared CascadeClassifier would corrupt its
// per-call state).
TEST(FaceCropTest, HaarDetectsConcurrentlyWithTheSameResult) {
  if (!fs::exists(kAstronaut)) {
    GTEST_SKIP() << kAstronaut << " missing: apt-get install python3-skimage";
  }
  auto image = ReadImageFile(kAstronaut, kDefaultMaxImagePixels);
  ASSERT_TRUE(image.ok()) << image.status();
  auto haar = MakeFaceDetector("haar", FaceCropOptions());
  ASSERT_TRUE(haar.ok()) << haar.status();
  auto alone = (*haar)->Detect(*image);
  ASSERT_TRUE(alone.ok() && alone->has_value());
  constexpr int kThreads = 4;
  std::vector<cv::Rect> boxes(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 3; ++i) {
        auto found = (*haar)->Detect(*image);
        if (found.ok() && found->has_value()) boxes[t] = (*found)->box;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const cv::Rect& box : boxes) EXPECT_EQ(box, (*alone)->box);
}

TEST(FaceCropTest, HaarFindsTheSyntheticFigureOrFallsBackOnABlankImage) {
  auto cropper = FaceCropper::Create(FaceCropOptions());
  ASSERT_TRUE(cropper.ok()) << cropper.status();
  const cv::Mat blank(512, 384, CV_8UC3, cv::Scalar(200, 200, 200));
  auto crop = (*cropper)->Locate(blank, "");
  ASSERT_TRUE(crop.ok()) << crop.status();
  EXPECT_EQ(crop->source, "fixed");
  EXPECT_EQ(crop->box, cv::Rect(80, 50, 220, 320));
  EXPECT_EQ((*cropper)->SourceCounts().at("fixed"), 1);
  EXPECT_EQ((*cropper)->SourceCounts().count("haar"), 0u);
}

TEST(FaceCropTest, FixedBoxScalesToTheImage) {
  auto fixed = MakeFaceDetector("fixed", FaceCropOptions());
  ASSERT_TRUE(fixed.ok());
  auto found = (*fixed)->Detect(cv::Mat(256, 192, CV_8UC3, cv::Scalar::all(0)));
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->box, cv::Rect(40, 25, 110, 160));
  EXPECT_EQ((*found)->confidence, 1.0);
}

TEST(FaceCropTest, PaddingIsClampedToTheImage) {
  EXPECT_EQ(
      PadAndClampBox(cv::Rect(10, 10, 100, 100), cv::Size(384, 512), 20, 30),
      cv::Rect(0, 0, 130, 140));
  EXPECT_EQ(
      PadAndClampBox(cv::Rect(300, 400, 80, 100), cv::Size(384, 512), 20, 30),
      cv::Rect(280, 370, 104, 142));
}

TEST(FaceCropTest, FirstConfidentDetectorWins) {
  FaceCropOptions options;
  options.min_confidence = 0.5;
  std::vector<std::unique_ptr<FaceDetector>> chain;
  auto weak = std::make_unique<CountingDetector>(
      Detection{cv::Rect(0, 0, 10, 10), 0.2}, "weak");
  auto none = std::make_unique<CountingDetector>(std::nullopt, "none");
  auto strong = std::make_unique<CountingDetector>(
      Detection{cv::Rect(100, 100, 50, 50), 0.9}, "strong");
  auto after = std::make_unique<CountingDetector>(
      Detection{cv::Rect(1, 1, 5, 5), 1.0}, "after");
  CountingDetector* after_ptr = after.get();
  chain.push_back(std::move(weak));
  chain.push_back(std::move(none));
  chain.push_back(std::move(strong));
  chain.push_back(std::move(after));
  FaceCropper cropper(std::move(chain), options, nullptr);
  auto crop = cropper.Locate(cv::Mat(512, 384, CV_8UC3), "");
  ASSERT_TRUE(crop.ok()) << crop.status();
  EXPECT_EQ(crop->source, "strong");
  // Margin 10 left and right, 15 above, 5 below; padding 20 x 30.
  EXPECT_EQ(crop->box, cv::Rect(70, 55, 110, 130));
  EXPECT_EQ(after_ptr->calls(), 0);
}

TEST(FaceCropTest, ChainWithoutConfidentBoxIsNotFound) {
  std::vector<std::unique_ptr<FaceDetector>> chain;
  chain.push_back(std::make_unique<CountingDetector>(std::nullopt, "none"));
  FaceCropper cropper(std::move(chain), FaceCropOptions(), nullptr);
  auto crop = cropper.Locate(cv::Mat(64, 64, CV_8UC3), "");
  EXPECT_EQ(crop.status().code(), absl::StatusCode::kNotFound);
}

TEST(FaceCropTest, SecondRunHitsTheCacheWithoutCallingTheDetector) {
  testing::TempDir dir;
  const cv::Mat image(512, 384, CV_8UC3, cv::Scalar(10, 20, 30));
  const std::string hash = ContentHash("the image file's bytes");
  const FaceCropOptions options;
  auto make_chain = [](CountingDetector** counter) {
    std::vector<std::unique_ptr<FaceDetector>> chain;
    auto detector = std::make_unique<CountingDetector>(
        Detection{cv::Rect(100, 120, 150, 180), 0.9}, "fake");
    *counter = detector.get();
    chain.push_back(std::move(detector));
    return chain;
  };
  cv::Rect first_box;
  {
    CountingDetector* counter = nullptr;
    auto chain = make_chain(&counter);
    const std::string key = ChainSettingsKey(chain, options);
    auto cache = DetectionCache::Open(dir.path(), key);
    ASSERT_TRUE(cache.ok()) << cache.status();
    FaceCropper cropper(std::move(chain), options, std::move(*cache));
    auto crop = cropper.Locate(image, hash);
    ASSERT_TRUE(crop.ok()) << crop.status();
    EXPECT_FALSE(crop->from_cache);
    first_box = crop->box;
    // Within a run the second look-up is a cache hit too.
    ASSERT_TRUE(cropper.Locate(image, hash).ok());
    EXPECT_EQ(counter->calls(), 1);
    EXPECT_EQ(cropper.cache_hits(), 1);
    ASSERT_TRUE(cropper.FlushCache().ok());
  }
  // A "restart": new cropper, new cache object, same directory.
  CountingDetector* counter = nullptr;
  auto chain = make_chain(&counter);
  auto cache =
      DetectionCache::Open(dir.path(), ChainSettingsKey(chain, options));
  ASSERT_TRUE(cache.ok()) << cache.status();
  EXPECT_TRUE(fs::exists((*cache)->path()));
  FaceCropper cropper(std::move(chain), options, std::move(*cache));
  auto crop = cropper.Locate(image, hash);
  ASSERT_TRUE(crop.ok()) << crop.status();
  EXPECT_TRUE(crop->from_cache);
  EXPECT_EQ(crop->box, first_box);
  EXPECT_EQ(crop->source, "fake");
  EXPECT_EQ(counter->calls(), 0);
  EXPECT_EQ(cropper.SourceCounts().at("fake"), 1);
}

TEST(FaceCropTest, LocateIsSafeFromManyThreads) {
  testing::TempDir dir;
  std::vector<std::unique_ptr<FaceDetector>> chain;
  auto detector = std::make_unique<CountingDetector>(
      Detection{cv::Rect(100, 120, 150, 180), 0.9}, "fake");
  CountingDetector* counter = detector.get();
  chain.push_back(std::move(detector));
  const FaceCropOptions options;
  auto cache =
      DetectionCache::Open(dir.path(), ChainSettingsKey(chain, options));
  ASSERT_TRUE(cache.ok());
  FaceCropper cropper(std::move(chain), options, std::move(*cache));
  const cv::Mat image(512, 384, CV_8UC3, cv::Scalar::all(0));
  constexpr int kThreads = 4;
  constexpr int kImages = 50;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kImages; ++i) {
        if (!cropper.Locate(image, ContentHash(std::to_string(i))).ok()) {
          ++failures;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(cropper.SourceCounts().at("fake"), kThreads * kImages);
  // Each image is detected at least once and at most once per thread.
  EXPECT_GE(counter->calls(), kImages);
  EXPECT_LE(counter->calls(), kThreads * kImages);
  EXPECT_EQ(counter->calls() + cropper.cache_hits(), kThreads * kImages);
  ASSERT_TRUE(cropper.FlushCache().ok());
}

TEST(FaceCropTest, LocateFromSizeAnswersOnlyWhenNoPixelsAreNeeded) {
  FaceCropOptions fixed_only;
  fixed_only.detectors = {"fixed"};
  auto fixed = FaceCropper::Create(fixed_only);
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  std::optional<FaceCrop> known =
      (*fixed)->LocateFromSize(cv::Size(192, 256), "");
  ASSERT_TRUE(known.has_value());
  EXPECT_EQ(known->source, "fixed");
  auto located =
      (*fixed)->Locate(cv::Mat(256, 192, CV_8UC3, cv::Scalar::all(0)), "");
  ASSERT_TRUE(located.ok()) << located.status();
  EXPECT_EQ(known->box, located->box);
  EXPECT_EQ((*fixed)->SourceCounts().at("fixed"), 2);

  // A detector that needs pixels comes first: no answer, nothing counted,
  // until the cache knows the image.
  testing::TempDir dir;
  std::vector<std::unique_ptr<FaceDetector>> chain;
  auto detector = std::make_unique<CountingDetector>(
      Detection{cv::Rect(100, 120, 150, 180), 0.9}, "fake");
  CountingDetector* counter = detector.get();
  chain.push_back(std::move(detector));
  chain.push_back(*MakeFaceDetector("fixed", FaceCropOptions()));
  const FaceCropOptions options;
  auto cache =
      DetectionCache::Open(dir.path(), ChainSettingsKey(chain, options));
  ASSERT_TRUE(cache.ok()) << cache.status();
  FaceCropper cropper(std::move(chain), options, std::move(*cache));
  const std::string hash = ContentHash("bytes");
  const cv::Size size(384, 512);
  EXPECT_FALSE(cropper.LocateFromSize(size, hash).has_value());
  EXPECT_EQ(counter->calls(), 0);
  EXPECT_TRUE(cropper.SourceCounts().empty());
  auto crop = cropper.Locate(cv::Mat(size, CV_8UC3, cv::Scalar::all(0)), hash);
  ASSERT_TRUE(crop.ok()) << crop.status();
  known = cropper.LocateFromSize(size, hash);
  ASSERT_TRUE(known.has_value());
  EXPECT_EQ(known->box, crop->box);
  EXPECT_EQ(known->source, "fake");
  EXPECT_EQ(cropper.cache_hits(), 1);
  // A cached box outside an image of another size is not used.
  EXPECT_FALSE(cropper.LocateFromSize(cv::Size(100, 100), hash).has_value());
  EXPECT_EQ(counter->calls(), 1);
}

TEST(FaceCropTest, CacheIsKeyedByDetectorSettings) {
  testing::TempDir dir;
  auto a = DetectionCache::Open(dir.path(), "haar;pad=20x30");
  auto b = DetectionCache::Open(dir.path(), "haar;pad=10x10");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE((*a)->path(), (*b)->path());
  const std::string hash = ContentHash("x");
  (*a)->Insert(hash, FaceCrop{cv::Rect(1, 2, 3, 4), "haar", false});
  ASSERT_TRUE((*a)->Flush().ok());
  auto b2 = DetectionCache::Open(dir.path(), "haar;pad=10x10");
  ASSERT_TRUE(b2.ok());
  EXPECT_FALSE((*b2)->Lookup(hash).has_value());
  auto a2 = DetectionCache::Open(dir.path(), "haar;pad=20x30");
  ASSERT_TRUE(a2.ok());
  ASSERT_TRUE((*a2)->Lookup(hash).has_value());
  EXPECT_EQ((*a2)->Lookup(hash)->box, cv::Rect(1, 2, 3, 4));
}

TEST(FaceCropTest, ConcurrentWritersMergeTheirEntries) {
  testing::TempDir dir;
  // Two runs open the same cache, each detects a different image, both
  // flush: neither entry is lost.
  auto a = DetectionCache::Open(dir.path(), "k");
  auto b = DetectionCache::Open(dir.path(), "k");
  ASSERT_TRUE(a.ok() && b.ok());
  (*a)->Insert(ContentHash("one"),
               FaceCrop{cv::Rect(1, 1, 5, 5), "haar", false});
  (*b)->Insert(ContentHash("two"),
               FaceCrop{cv::Rect(2, 2, 6, 6), "fixed", false});
  ASSERT_TRUE((*a)->Flush().ok());
  ASSERT_TRUE((*b)->Flush().ok());
  auto c = DetectionCache::Open(dir.path(), "k");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE((*c)->Lookup(ContentHash("one")).has_value());
  EXPECT_TRUE((*c)->Lookup(ContentHash("two")).has_value());
  // No temporary file is left behind.
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    EXPECT_THAT(entry.path().string(), ::testing::Not(HasSubstr(".tmp.")));
    ++files;
  }
  EXPECT_EQ(files, 2);  // the cache and its lock file
}

TEST(FaceCropTest, FactoryErrorsAreClear) {
  FaceCropOptions options;
  options.haar_cascade = "/nonexistent/cascade.xml";
  auto haar = MakeFaceDetector("haar", options);
  EXPECT_EQ(haar.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(haar.status().message(), HasSubstr("opencv-data"));
  auto yunet = MakeFaceDetector("yunet", FaceCropOptions());
  EXPECT_EQ(yunet.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(yunet.status().message(), HasSubstr("yunet_model"));
  options.yunet_model = "/nonexistent/yunet.onnx";
  EXPECT_EQ(MakeFaceDetector("yunet", options).status().code(),
            absl::StatusCode::kNotFound);
  auto mtcnn = MakeFaceDetector("mtcnn", FaceCropOptions());
  EXPECT_EQ(mtcnn.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(mtcnn.status().message(), HasSubstr("mtcnn"));
}

TEST(FaceCropTest, OptionsFromConfigApplyDefaults) {
  v1::CropConfig config;
  FaceCropOptions options = FaceCropOptionsFromConfig(config, "/cache");
  EXPECT_EQ(options.detectors, (std::vector<std::string>{"haar", "fixed"}));
  EXPECT_EQ(options.margin_x, 0.2);
  EXPECT_EQ(options.margin_top, 0.3);
  EXPECT_EQ(options.margin_bottom, 0.1);
  EXPECT_EQ(options.pad_x, 20);
  EXPECT_EQ(options.pad_y, 30);
  EXPECT_EQ(options.fixed_box, cv::Rect(80, 50, 220, 320));
  EXPECT_EQ(options.cache_dir, "/cache");
  config.add_detectors("fixed");
  config.set_pad_x(0);
  config.set_cache_dir("/mine");
  options = FaceCropOptionsFromConfig(config, "/cache");
  EXPECT_EQ(options.detectors, (std::vector<std::string>{"fixed"}));
  EXPECT_EQ(options.pad_x, 0);
  EXPECT_EQ(options.cache_dir, "/mine");
}

TEST(FaceCropTest, SyntheticFaceCropHoldsTheFigure) {
  // The synthetic figure is a cartoon: whichever source wins, the crop must
  // overlap the drawn face.
  const auto people = SampleSyntheticPeople(1, 7);
  SyntheticRegions regions;
  const cv::Mat image =
      RenderSyntheticImage(people[0], MaskState::kNormal, 3, &regions);
  auto cropper = FaceCropper::Create(FaceCropOptions());
  ASSERT_TRUE(cropper.ok()) << cropper.status();
  auto crop = (*cropper)->Locate(image, "");
  ASSERT_TRUE(crop.ok()) << crop.status();
  std::cout << "synthetic image: " << crop->source << " box " << crop->box
            << ", drawn face " << regions.face << "\n";
  EXPECT_GT((crop->box & regions.face).area(), 0)
      << crop->source << " " << crop->box << " vs " << regions.face;
}

}  // namespace
}  // namespace sweepq::worker
