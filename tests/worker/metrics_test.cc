#include "worker/pipeline/metrics.h"

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace sweepq::worker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

ClassificationMetrics ComputeFrom(int num_classes,
                                  const std::vector<int64_t>& targets,
                                  const std::vector<int64_t>& predictions) {
  ConfusionMatrix matrix(num_classes);
  for (size_t i = 0; i < targets.size(); ++i) {
    EXPECT_TRUE(matrix.Add(targets[i], predictions[i]).ok());
  }
  return matrix.Compute();
}

TEST(ConfusionMatrixTest, EmptyMatrixGivesZeros) {
  ClassificationMetrics m = ConfusionMatrix(3).Compute();
  EXPECT_EQ(m.count, 0);
  EXPECT_EQ(m.accuracy, 0.0);
  EXPECT_EQ(m.macro_f1, 0.0);
  EXPECT_THAT(m.per_class_f1, ElementsAre(0.0, 0.0, 0.0));
  ASSERT_EQ(m.confusion.size(), 3u);
  EXPECT_THAT(m.confusion[1], ElementsAre(0, 0, 0));
}

// Targets 0 0 1 1 2, predictions 0 1 1 1 0:
//   class 0: TP 1, FP 1, FN 1 -> F1 2/4 = 0.5
//   class 1: TP 2, FP 1, FN 0 -> F1 4/5 = 0.8
//   class 2: TP 0, FP 0, FN 1 -> F1 0
TEST(ConfusionMatrixTest, HandComputedSmallCase) {
  ClassificationMetrics m = ComputeFrom(3, {0, 0, 1, 1, 2}, {0, 1, 1, 1, 0});
  EXPECT_EQ(m.count, 5);
  EXPECT_DOUBLE_EQ(m.accuracy, 3.0 / 5.0);
  EXPECT_THAT(m.per_class_f1, ElementsAre(0.5, 0.8, 0.0));
  EXPECT_DOUBLE_EQ(m.macro_f1, (0.5 + 0.8 + 0.0) / 3.0);
  EXPECT_THAT(m.confusion[0], ElementsAre(1, 1, 0));
  EXPECT_THAT(m.confusion[1], ElementsAre(0, 2, 0));
  EXPECT_THAT(m.confusion[2], ElementsAre(1, 0, 0));
}

// Class 3 occurs nowhere: scikit-learn leaves it out of the macro mean.
// Class 2 is only predicted: it counts, with F1 0.
TEST(ConfusionMatrixTest, MacroMeanSkipsClassesAbsentFromTargetsAndPredictions) {
  ClassificationMetrics m = ComputeFrom(4, {0, 1, 1}, {0, 1, 2});
  // class 0: 2/2 = 1; class 1: 2/(2+0+1) = 2/3; class 2: 0; class 3 absent.
  EXPECT_THAT(m.per_class_f1, ElementsAre(1.0, 2.0 / 3.0, 0.0, 0.0));
  EXPECT_DOUBLE_EQ(m.macro_f1, (1.0 + 2.0 / 3.0 + 0.0) / 3.0);
}

TEST(ConfusionMatrixTest, AddRejectsOutOfRangeClasses) {
  ConfusionMatrix matrix(3);
  absl::Status s = matrix.Add(3, 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("target class 3"));
  s = matrix.Add(0, -1);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("prediction class -1"));
  EXPECT_EQ(matrix.Compute().count, 0);
}

TEST(ConfusionMatrixTest, AddBatchCountsTensors) {
  ConfusionMatrix matrix(3);
  ASSERT_TRUE(matrix
                  .AddBatch(torch::tensor({0, 0, 1}, torch::kLong),
                            torch::tensor({0, 1, 1}, torch::kLong))
                  .ok());
  ASSERT_TRUE(matrix
                  .AddBatch(torch::tensor({1, 2}, torch::kLong),
                            torch::tensor({1, 0}, torch::kLong))
                  .ok());
  ClassificationMetrics m = matrix.Compute();
  EXPECT_EQ(m.count, 5);
  EXPECT_THAT(m.per_class_f1, ElementsAre(0.5, 0.8, 0.0));
}

TEST(ConfusionMatrixTest, AddBatchRejectsBadShapesTypesAndClasses) {
  ConfusionMatrix matrix(3);
  absl::Status s = matrix.AddBatch(torch::tensor({0, 1}, torch::kLong),
                                   torch::tensor({0}, torch::kLong));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("[2] and [1]"));
  s = matrix.AddBatch(torch::zeros({2, 2}, torch::kLong),
                      torch::zeros({2, 2}, torch::kLong));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  s = matrix.AddBatch(torch::tensor({0, 1}, torch::kInt),
                      torch::tensor({0, 1}, torch::kInt));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("int64"));
  // A batch with one bad class counts nothing.
  s = matrix.AddBatch(torch::tensor({0, 1}, torch::kLong),
                      torch::tensor({0, 5}, torch::kLong));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("prediction class 5"));
  EXPECT_EQ(matrix.Compute().count, 0);
}

// --- scikit-learn fixture (tools/fixtures/make_f1_fixture.py) ---------------

std::vector<int64_t> Ints(const google::protobuf::Value& v) {
  std::vector<int64_t> out;
  for (const auto& x : v.list_value().values()) {
    out.push_back(static_cast<int64_t>(x.number_value()));
  }
  return out;
}

TEST(ConfusionMatrixTest, MatchesScikitLearnOnFixture) {
  const std::string path =
      std::string(SWEEPQ_SOURCE_DIR) + "/tests/worker/testdata/f1_fixture.json";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  std::stringstream text;
  text << in.rdbuf();
  google::protobuf::Struct fixture;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(text.str(), &fixture).ok())
      << path;
  const int num_classes =
      static_cast<int>(fixture.fields().at("num_classes").number_value());
  ASSERT_EQ(num_classes, 18);
  const auto& cases = fixture.fields().at("cases").list_value().values();
  ASSERT_GE(cases.size(), 5);
  for (const google::protobuf::Value& c : cases) {
    const auto& f = c.struct_value().fields();
    SCOPED_TRACE(f.at("name").string_value());
    std::vector<int64_t> targets = Ints(f.at("targets"));
    std::vector<int64_t> predictions = Ints(f.at("predictions"));
    ConfusionMatrix matrix(num_classes);
    ASSERT_TRUE(matrix
                    .AddBatch(torch::tensor(targets, torch::kLong),
                              torch::tensor(predictions, torch::kLong))
                    .ok());
    ClassificationMetrics m = matrix.Compute();
    EXPECT_EQ(m.count, static_cast<int64_t>(targets.size()));
    EXPECT_NEAR(m.accuracy, f.at("accuracy").number_value(), 1e-12);
    EXPECT_NEAR(m.macro_f1, f.at("macro_f1").number_value(), 1e-12);
    const auto& per_class = f.at("per_class_f1").list_value().values();
    ASSERT_EQ(m.per_class_f1.size(), static_cast<size_t>(per_class.size()));
    for (int k = 0; k < per_class.size(); ++k) {
      EXPECT_NEAR(m.per_class_f1[k], per_class[k].number_value(), 1e-12)
          << "class " << k;
    }
  }
}

}  // namespace
}  // namespace sweepq::worker
