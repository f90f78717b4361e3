#include "worker/pipeline/train_report.h"

#include <filesystem>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"
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

TEST(ConfusionFilesTest, PngIsAHeatMapCellsColouredByRowShare) {
  testing::TempDir dir;
  const std::string path = dir.Join("c.png");
  const std::vector<std::string> names = {"wear/male/<30", "normal/female/>=60",
                                          "incorrect/female/30-59"};
  ASSERT_TRUE(WriteConfusionPng(path, names, {{90, 10, 0}, {0, 1, 0}, {3, 3, 3}},
                                "epoch 4")
                  .ok());
  const cv::Mat image = cv::imread(path);
  ASSERT_FALSE(image.empty());
  // Room for three cells and the labels on both axes.
  EXPECT_GT(image.cols, 3 * 34 + 100);
  EXPECT_GT(image.rows, 3 * 34 + 100);
  // Cells take viridis colours of their row share: row 1 is all in one
  // cell (share 1: the top colour) and has empty cells (share 0: the
  // bottom colour); row 2 is split in thirds; no cell has a share of one
  // half (the colour bar has every colour, but only a few pixels of each).
  auto count_colour = [&](int share255) {
    cv::Mat level(1, 1, CV_8UC1, cv::Scalar(share255)), colour;
    cv::applyColorMap(level, colour, cv::COLORMAP_VIRIDIS);
    const cv::Vec3b c = colour.at<cv::Vec3b>(0, 0);
    int n = 0;
    for (int y = 0; y < image.rows; ++y) {
      for (int x = 0; x < image.cols; ++x) n += image.at<cv::Vec3b>(y, x) == c;
    }
    return n;
  };
  EXPECT_GT(count_colour(255), 34 * 20);  // a cell, less its text and border
  EXPECT_GT(count_colour(0), 34 * 20);
  EXPECT_GT(count_colour(85), 3 * 34 * 20);
  EXPECT_LT(count_colour(128), 34 * 20);
  // The file does not depend on anything but its inputs.
  const std::string again = dir.Join("d.png");
  ASSERT_TRUE(WriteConfusionPng(again, names, {{90, 10, 0}, {0, 1, 0}, {3, 3, 3}},
                                "epoch 4")
                  .ok());
  EXPECT_EQ(testing::ReadFileOrEmpty(path), testing::ReadFileOrEmpty(again));
  EXPECT_FALSE(WriteConfusionPng(path, names, {{1}}, "x").ok());
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
