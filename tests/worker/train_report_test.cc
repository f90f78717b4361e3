#include "worker/pipeline/train_report.h"

#include <algorithm>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"
#include "common/plot/style.h"
#include "tests/testing/temp_dir.h"
#include "tests/worker/train_test_util.h"

namespace sweepq::worker {
namespace {

using ::testing::HasSubstr;

TEST(MetricsTableTest, CsvRoundTripIsExact) {
  MetricsTable table;
  table.Add({1, 10, {{"train_loss", 1.0 / 3.0}, {"val_f1", 0.1}}});
  table.Add({2, 20, {{"train_loss", 2.0 / 7.0}, {"val_f1", 1e-17}}});
  const std::string csv = table.ToCsv();
  EXPECT_TRUE(csv.rfind("epoch,step,train_loss,val_f1\n", 0) == 0) << csv;
  absl::StatusOr<MetricsTable> back = MetricsTable::FromCsv(csv);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->rows().size(), 2u);
  EXPECT_EQ(back->rows()[1].epoch, 2);
  EXPECT_EQ(back->rows()[1].step, 20);
  EXPECT_EQ(back->rows()[0].metrics[0].second, 1.0 / 3.0);
  EXPECT_EQ(back->rows()[1].metrics[0].second, 2.0 / 7.0);
  EXPECT_EQ(back->ToCsv(), csv);
}

TEST(MetricsTableTest, MissingMetricIsAnEmptyCell) {
  MetricsTable table;
  table.Add({1, 5, {{"a", 1.0}}});
  table.Add({2, 9, {{"b", 2.0}}});
  EXPECT_EQ(table.ToCsv(), "epoch,step,a,b\n1,5,1,\n2,9,,2\n");
  EXPECT_TRUE(MetricsTable::FromCsv("").ok());
  EXPECT_FALSE(MetricsTable::FromCsv("x,y\n1,2\n").ok());
  EXPECT_FALSE(MetricsTable::FromCsv("epoch,step,a\n1,2,zz\n").ok());
}

TEST(ConfusionFilesTest, CsvHasNamesAndCounts) {
  testing::TempDir dir;
  const std::string path = dir.Join("c.csv");
  ASSERT_TRUE(WriteConfusionCsv(path, {"cat", "dog,big"}, {{5, 1}, {0, 7}}).ok());
  EXPECT_EQ(testing::ReadFileOrEmpty(path),
            "true\\predicted,cat,\"dog,big\"\ncat,5,1\n\"dog,big\",0,7\n");
  EXPECT_FALSE(WriteConfusionCsv(path, {"a"}, {{1, 2}}).ok());
}

// Returns the number of pixels of `image` (BGR, as cv::imread gives it)
// that have colour `c`.
int CountColour(const cv::Mat& image, plot::Color c) {
  const cv::Vec3b bgr(c.b, c.g, c.r);
  int n = 0;
  for (int y = 0; y < image.rows; ++y) {
    for (int x = 0; x < image.cols; ++x) n += image.at<cv::Vec3b>(y, x) == bgr;
  }
  return n;
}

const std::vector<std::string> kNames = {
    "wear/male/<30", "normal/female/>=60", "incorrect/female/30-59"};
// Per-class F1: 180/193, 2/15, 6/12.
const std::vector<std::vector<int64_t>> kConfusion = {
    {90, 10, 0}, {0, 1, 0}, {3, 3, 3}};

TEST(ConfusionFilesTest, PngIsAHeatMapCellsColouredByRowShare) {
  testing::TempDir dir;
  const std::string path = dir.Join("c.png");
  ASSERT_TRUE(WriteConfusionPng(path, kNames, kConfusion, "epoch 4").ok());
  const cv::Mat image = cv::imread(path);
  ASSERT_FALSE(image.empty());
  const auto [width, height] = ConfusionPngSize(3);
  EXPECT_EQ(image.cols, width);
  EXPECT_EQ(image.rows, height);
  EXPECT_EQ(ConfusionPngSize(3), std::make_pair(1400, 1000));
  EXPECT_GT(ConfusionPngSize(60).first, 1400);
  // Cells take the heat colour of their row share: row 1 is all in one
  // cell (share 1) and has two empty cells (share 0), row 2 is split in
  // thirds, and no cell has a share of one half (the colour bar has every
  // colour, but only a row of pixels of each). A cell is at least 50 x 50
  // pixels less its text at this size.
  constexpr int kCellPixels = 50 * 40;
  EXPECT_GT(CountColour(image, plot::HeatColor(1.0)), kCellPixels);
  EXPECT_GT(CountColour(image, plot::HeatColor(0.0)), 2 * kCellPixels);
  EXPECT_GT(CountColour(image, plot::HeatColor(1.0 / 3.0)), 3 * kCellPixels);
  EXPECT_LT(CountColour(image, plot::HeatColor(0.5)), kCellPixels / 4);
  // The file does not depend on anything but its inputs.
  const std::string again = dir.Join("d.png");
  ASSERT_TRUE(WriteConfusionPng(again, kNames, kConfusion, "epoch 4").ok());
  EXPECT_EQ(testing::ReadFileOrEmpty(path), testing::ReadFileOrEmpty(again));
  EXPECT_FALSE(WriteConfusionPng(path, kNames, {{1}}, "x").ok());
  EXPECT_FALSE(WriteConfusionPng(path, {}, {}, "x").ok());
}

TEST(ConfusionFilesTest, PerClassF1PngHasABarPerClassAsLongAsItsF1) {
  testing::TempDir dir;
  const std::string path = dir.Join("f1.png");
  ASSERT_TRUE(WritePerClassF1Png(path, kNames, kConfusion, "epoch 4").ok());
  const cv::Mat image = cv::imread(path);
  ASSERT_FALSE(image.empty());
  const auto [width, height] = PerClassF1PngSize(3);
  EXPECT_EQ(image.cols, width);
  EXPECT_EQ(image.rows, height);
  EXPECT_EQ(PerClassF1PngSize(18), std::make_pair(1000, 654));
  // The bars, top to bottom, are runs of rows holding the bar colour; a
  // bar's length is the longest run of that colour in its rows.
  const plot::Color bar = plot::SeriesColor(0);
  const cv::Vec3b bgr(bar.b, bar.g, bar.r);
  std::vector<int> lengths;
  bool in_bar = false;
  for (int y = 0; y < image.rows; ++y) {
    int longest = 0, run = 0;
    for (int x = 0; x < image.cols; ++x) {
      run = image.at<cv::Vec3b>(y, x) == bgr ? run + 1 : 0;
      longest = std::max(longest, run);
    }
    if (longest > 3) {
      if (!in_bar) lengths.push_back(0);
      lengths.back() = std::max(lengths.back(), longest);
    }
    in_bar = longest > 3;
  }
  ASSERT_EQ(lengths.size(), 3u);
  const double f1[] = {180.0 / 193.0, 2.0 / 15.0, 6.0 / 12.0};
  for (int c = 1; c < 3; ++c) {
    EXPECT_NEAR(static_cast<double>(lengths[c]) / lengths[0], f1[c] / f1[0],
                0.02)
        << "bar " << c;
  }
  EXPECT_FALSE(WritePerClassF1Png(path, kNames, {{1, 2}}, "x").ok());
}

TEST(WriteFileAtomicallyTest, ReplacesAndLeavesNoTemporary) {
  testing::TempDir dir;
  const std::string path = dir.Join("f.txt");
  ASSERT_TRUE(WriteFileAtomically(path, "one").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "two").ok());
  EXPECT_EQ(testing::ReadFileOrEmpty(path), "two");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  const absl::Status s = WriteFileAtomically(dir.Join("no/such/dir/f"), "x");
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("no/such/dir"));
}

}  // namespace
}  // namespace sweepq::worker
