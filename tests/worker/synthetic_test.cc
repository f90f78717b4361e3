#include "worker/pipeline/synthetic.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "opencv2/imgcodecs.hpp"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"
#include "worker/pipeline/dataset.h"

namespace sweepq::worker {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string ReadBytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Relative path -> content of every file under `root`.
std::map<std::string, std::string> ReadTree(const std::string& root) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file()) continue;
    files[fs::relative(entry.path(), root).string()] = ReadBytes(entry.path());
  }
  return files;
}

SyntheticOptions SmallOptions(const std::string& out, uint64_t seed) {
  SyntheticOptions options;
  options.out_dir = out;
  options.people = 8;
  options.eval_images = 9;
  options.seed = seed;
  return options;
}

TEST(SyntheticTest, WritesDecodable384x512JpegsInTheCompetitionLayout) {
  testing::TempDir dir;
  auto manifest = WriteSyntheticMaskDataset(SmallOptions(dir.path(), 4));
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  ASSERT_EQ(manifest->train.size(), 8u * 7);
  ASSERT_EQ(manifest->eval.size(), 9u);
  for (const auto* list : {&manifest->train, &manifest->eval}) {
    for (const SyntheticImage& r : *list) {
      const std::string bytes = ReadBytes(dir.Join(r.path));
      ASSERT_GE(bytes.size(), 3u) << r.path;
      EXPECT_EQ(bytes.substr(0, 3), "\xFF\xD8\xFF") << r.path;  // JPEG SOI.
      const cv::Mat image = cv::imread(dir.Join(r.path), cv::IMREAD_COLOR);
      ASSERT_FALSE(image.empty()) << r.path;
      EXPECT_EQ(image.cols, 384) << r.path;
      EXPECT_EQ(image.rows, 512) << r.path;
    }
  }
  EXPECT_TRUE(fs::is_regular_file(dir.Join("train/train.csv")));
  EXPECT_TRUE(fs::is_regular_file(dir.Join("synthetic_regions.csv")));
  // eval/answers.csv holds the true classes, in info.csv's order.
  std::ifstream answers(dir.Join("eval/answers.csv"));
  std::string line;
  std::getline(answers, line);
  EXPECT_EQ(line, "ImageID,ans");
  for (const SyntheticImage& r : manifest->eval) {
    ASSERT_TRUE(std::getline(answers, line));
    EXPECT_EQ(line, r.image_id + "," + std::to_string(r.label));
  }
  auto eval = LoadMaskEvalSet(dir.path());
  ASSERT_TRUE(eval.ok()) << eval.status();
  EXPECT_EQ(eval->size(), 9u);
}

TEST(SyntheticTest, SameSeedWritesByteEqualFilesWhateverTheThreads) {
  testing::TempDir a, b, c;
  SyntheticOptions options = SmallOptions(a.path(), 21);
  options.threads = 1;
  ASSERT_TRUE(WriteSyntheticMaskDataset(options).ok());
  options.out_dir = b.path();
  options.threads = 3;
  ASSERT_TRUE(WriteSyntheticMaskDataset(options).ok());
  const auto first = ReadTree(a.path());
  EXPECT_EQ(first.size(), 8u * 7 + 9 + 4);
  EXPECT_TRUE(first == ReadTree(b.path()));

  options.out_dir = c.path();
  options.seed = 22;
  ASSERT_TRUE(WriteSyntheticMaskDataset(options).ok());
  EXPECT_FALSE(first == ReadTree(c.path()));
}

TEST(SyntheticTest, ClassBalanceFollowsTheRealTask) {
  const std::vector<SyntheticPerson> people = SampleSyntheticPeople(4000, 1);
  int female = 0;
  std::vector<int> bands(3, 0);
  std::set<std::string> folders, ids;
  for (const SyntheticPerson& p : people) {
    female += p.gender == static_cast<int>(Gender::kFemale);
    ++bands[AgeBand(p.age, kDefaultAgeBounds)];
    folders.insert(p.folder);
    ids.insert(p.id);
  }
  EXPECT_NEAR(female / 4000.0, 0.61, 0.03);
  EXPECT_NEAR(bands[0] / 4000.0, 0.46, 0.03);
  EXPECT_NEAR(bands[1] / 4000.0, 0.47, 0.03);
  EXPECT_NEAR(bands[2] / 4000.0, 0.07, 0.015);
  // Folders are unique, ids repeat now and then (as in the real data).
  EXPECT_EQ(folders.size(), 4000u);
  EXPECT_LT(ids.size(), 4000u);
  EXPECT_GT(ids.size(), 3700u);
}

TEST(SyntheticTest, SmallSetsStillHoldEveryGenderAndAgeBand) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::set<std::pair<int, int>> pairs;
    for (const SyntheticPerson& p : SampleSyntheticPeople(6, seed)) {
      pairs.insert({p.gender, AgeBand(p.age, kDefaultAgeBounds)});
    }
    EXPECT_EQ(pairs.size(), 6u) << "seed " << seed;
  }
}

double Luminance(const cv::Scalar& bgr) {
  return 0.114 * bgr[0] + 0.587 * bgr[1] + 0.299 * bgr[2];
}

// The fixture's gender and age cues have no exceptions: hair shape follows
// gender; hair and forehead lines follow the age band: dark and warm
// without strands (< 30), dark with light strands (30-59), light without
// strands (>= 60), the light hair at least 3x as bright as the dark (so
// lighting, which varies about 3x, keeps white hair brighter than dark).
TEST(SyntheticTest, GenderAndAgeCuesAreUnambiguous) {
  const std::vector<SyntheticPerson> people = SampleSyntheticPeople(3000, 9);
  double darkest_light = 255, lightest_dark = 0, darkest_streak = 255;
  std::vector<int> seen(3, 0);
  for (const SyntheticPerson& p : people) {
    const SyntheticCues cues = SyntheticPersonCues(p);
    const int band = AgeBand(p.age, kDefaultAgeBounds);
    ++seen[band];
    EXPECT_EQ(cues.long_hair, p.gender == static_cast<int>(Gender::kFemale))
        << p.folder;
    EXPECT_EQ(cues.forehead_lines, (std::vector<int>{0, 2, 3})[band])
        << p.folder;
    EXPECT_EQ(cues.eye_and_mouth_lines, band == 2) << p.folder;
    EXPECT_EQ(cues.streaks, band == 1) << p.folder;
    const double y = Luminance(cues.hair);
    if (band == 2) {
      darkest_light = std::min(darkest_light, y);
      EXPECT_LT(std::abs(cues.hair[2] - cues.hair[0]), 20) << p.folder;
    } else {
      lightest_dark = std::max(lightest_dark, y);
      EXPECT_GT(cues.hair[2] - cues.hair[0], 3) << p.folder << ": warm";
    }
    if (cues.streaks) {
      darkest_streak = std::min(darkest_streak, Luminance(cues.streak));
    }
  }
  ASSERT_GT(seen[2], 100);
  EXPECT_GT(darkest_light, 3 * lightest_dark);
  EXPECT_GT(darkest_streak, 2.5 * lightest_dark);
  // Same person => same cues.
  EXPECT_EQ(SyntheticPersonCues(people[0]).hair,
            SyntheticPersonCues(people[0]).hair);
}

TEST(SyntheticTest, RegionsPlaceTheMaskByState) {
  const std::vector<SyntheticPerson> people = SampleSyntheticPeople(10, 3);
  const cv::Rect image(0, 0, kSyntheticWidth, kSyntheticHeight);
  for (const SyntheticPerson& p : people) {
    for (uint64_t k = 0; k < 4; ++k) {
      for (MaskState state :
           {MaskState::kWear, MaskState::kIncorrect, MaskState::kNormal}) {
        SyntheticRegions r;
        const cv::Mat m = RenderSyntheticImage(p, state, k, &r);
        ASSERT_EQ(m.size(), cv::Size(384, 512));
        EXPECT_EQ(r.face & image, r.face);
        EXPECT_GT(r.face.area(), 100 * 100);
        EXPECT_GT((r.lower_face & r.face).area(), r.lower_face.area() * 0.9);
        if (state == MaskState::kNormal) {
          EXPECT_TRUE(r.mask.empty());
          continue;
        }
        ASSERT_FALSE(r.mask.empty());
        EXPECT_GT((r.mask & r.lower_face).area(), r.mask.area() * 0.85);
        // Worn: the mask starts at the nose; incorrect: well below it.
        const double top = static_cast<double>(r.mask.y - r.lower_face.y) /
                           r.lower_face.height;
        if (state == MaskState::kWear) {
          EXPECT_LT(top, 0.25) << p.folder << " image " << k;
        } else {
          EXPECT_GT(top, 0.25) << p.folder << " image " << k;
        }
      }
    }
  }
}

TEST(SyntheticTest, RefusesAnExistingDataSetAndBadOptions) {
  testing::TempDir dir;
  ASSERT_TRUE(WriteSyntheticMaskDataset(SmallOptions(dir.path(), 1)).ok());
  auto again = WriteSyntheticMaskDataset(SmallOptions(dir.path(), 1));
  EXPECT_EQ(again.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(again.status().message(), HasSubstr("already exists"));
  SyntheticOptions bad = SmallOptions(dir.Join("other"), 1);
  bad.people = 0;
  EXPECT_THAT(WriteSyntheticMaskDataset(bad).status().message(),
              HasSubstr("people must be >= 1"));
}

TEST(MakeDatasetBinaryTest, WritesALoadableDataSet) {
  testing::TempDir dir;
  const std::string out = dir.Join("data");
  int status = -1;
  const std::string output = testing::RunCommand(
      {SWEEPQ_BINARY_DIR "/worker/sweepq-make-dataset", "--out", out,
       "--people", "6", "--seed", "3", "--eval-images", "4", "--threads", "2"},
      &status);
  ASSERT_EQ(status, 0) << output;
  EXPECT_THAT(output, HasSubstr("wrote 6 people, 42 train images, 4 eval"));
  DatasetOptions options;
  options.root = out;
  auto dataset = LoadDataset(options);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->samples.size(), 42u);

  testing::RunCommand({SWEEPQ_BINARY_DIR "/worker/sweepq-make-dataset", "--out",
                       out, "--people", "6"},
                      &status);
  EXPECT_NE(status, 0);
}

}  // namespace
}  // namespace sweepq::worker
