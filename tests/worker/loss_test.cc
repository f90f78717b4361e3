#include "worker/pipeline/loss.h"

#include <cmath>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "torch/types.h"
#include "torch/utils.h"

namespace sweepq::worker {
namespace {

using ::google::protobuf::Struct;
using ::google::protobuf::Value;
using ::testing::HasSubstr;

// The "losses" section of tests/worker/testdata/radam_fixture.json, written
// by tools/fixtures/make_radam_fixture.py with Python PyTorch 1.13.
const Struct& Fixture() {
  static const Struct* const fixture = [] {
    const std::string path = std::string(SWEEPQ_SOURCE_DIR) +
                             "/tests/worker/testdata/radam_fixture.json";
    std::ifstream in(path);
    EXPECT_TRUE(in.good()) << "cannot open " << path;
    const std::string text((std::istreambuf_iterator<char>(in)),
                           std::istreambuf_iterator<char>());
    Struct whole;
    const auto status =
        google::protobuf::util::JsonStringToMessage(text, &whole);
    EXPECT_TRUE(status.ok()) << path << ": " << status.ToString();
    return new Struct(whole.fields().at("losses").struct_value());
  }();
  return *fixture;
}

double Number(const std::string& key) {
  return Fixture().fields().at(key).number_value();
}

std::vector<double> Numbers(const std::string& key) {
  std::vector<double> out;
  for (const Value& v : Fixture().fields().at(key).list_value().values()) {
    out.push_back(v.number_value());
  }
  return out;
}

int N() { return static_cast<int>(Number("n")); }
int C() { return static_cast<int>(Number("c")); }

torch::Tensor Logits() {
  return torch::tensor(Numbers("logits"), torch::kDouble).reshape({N(), C()});
}

torch::Tensor Labels(const std::string& key) {
  std::vector<int64_t> labels;
  for (double v : Numbers(key)) labels.push_back(static_cast<int64_t>(v));
  return torch::tensor(labels, torch::kLong);
}

// One-hot targets in float64 (SoftTargets is float32; float64 keeps the
// fixture comparisons at 1e-12).
torch::Tensor OneHot(const torch::Tensor& labels) {
  return torch::one_hot(labels, C()).to(torch::kDouble);
}

torch::Tensor Mixed() {
  const double lambda = Number("lambda");
  return OneHot(Labels("labels")) * lambda +
         OneHot(Labels("labels_b")) * (1.0 - lambda);
}

v1::LossConfig Config(const std::string& name, bool weighted = false,
                      bool smoothed = false) {
  v1::LossConfig config;
  config.set_name(name);
  if (weighted) {
    for (double w : Numbers("class_weights")) config.add_class_weights(w);
  }
  if (smoothed) config.set_label_smoothing(Number("label_smoothing"));
  return config;
}

Loss MustCreate(const v1::LossConfig& config, int num_classes = 0) {
  auto loss = Loss::Create(config, num_classes > 0 ? num_classes : C());
  EXPECT_TRUE(loss.ok()) << loss.status();
  return std::move(loss).value();
}

double Eval(const Loss& loss, const torch::Tensor& logits,
            const torch::Tensor& targets) {
  return loss(logits, targets).item<double>();
}

constexpr double kTolerance = 1e-12;

TEST(LossTest, CrossEntropyMatchesTorch) {
  const torch::Tensor logits = Logits();
  const torch::Tensor targets = OneHot(Labels("labels"));
  EXPECT_NEAR(Eval(MustCreate(Config("ce")), logits, targets), Number("ce"),
              kTolerance);
  EXPECT_NEAR(Eval(MustCreate(Config("ce", false, true)), logits, targets),
              Number("ce_smoothed"), kTolerance);
  EXPECT_NEAR(Eval(MustCreate(Config("ce", true)), logits, targets),
              Number("ce_weighted"), kTolerance);
  EXPECT_NEAR(Eval(MustCreate(Config("ce", true, true)), logits, targets),
              Number("ce_weighted_smoothed"), kTolerance);
  EXPECT_NEAR(Eval(MustCreate(Config("ce", true, true)), logits, Mixed()),
              Number("ce_mixed_weighted_smoothed"), kTolerance);
}

TEST(LossTest, NameDefaultsToCrossEntropy) {
  EXPECT_NEAR(
      Eval(MustCreate(v1::LossConfig()), Logits(), OneHot(Labels("labels"))),
      Number("ce"), kTolerance);
}

TEST(LossTest, CrossEntropyGradientMatchesTorch) {
  const torch::Tensor logits = Logits().requires_grad_();
  MustCreate(Config("ce", true, true))(logits, OneHot(Labels("labels")))
      .backward();
  const std::vector<double> want = Numbers("ce_weighted_smoothed_grad");
  const torch::Tensor got = logits.grad().reshape(-1);
  ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(got[i].item<double>(), want[i], kTolerance) << i;
  }
}

// loss.h: PyTorch's weighted mean divides by sum_n w_{y_n}, ours by N.
TEST(LossTest, WeightedCrossEntropyDividesByNNotByTheWeightSum) {
  const torch::Tensor labels = Labels("labels");
  const double ours =
      Eval(MustCreate(Config("ce", true)), Logits(), OneHot(labels));
  const torch::Tensor weights =
      torch::tensor(Numbers("class_weights"), torch::kDouble);
  const double weight_sum =
      weights.index_select(0, labels).sum().item<double>();
  EXPECT_NEAR(ours * N() / weight_sum, Number("pytorch_weighted_mean_ce"),
              kTolerance);
  EXPECT_GT(std::abs(ours - Number("pytorch_weighted_mean_ce")), 1e-3);
}

TEST(LossTest, FocalMatchesReference) {
  const torch::Tensor logits = Logits();
  const torch::Tensor targets = OneHot(Labels("labels"));
  v1::LossConfig weighted = Config("focal", true);
  weighted.set_focal_gamma(Number("focal_gamma"));
  EXPECT_NEAR(Eval(MustCreate(weighted), logits, targets),
              Number("focal_weighted"), kTolerance);
  v1::LossConfig smoothed = Config("focal", true, true);
  smoothed.set_focal_gamma(Number("focal_gamma"));
  EXPECT_NEAR(Eval(MustCreate(smoothed), logits, targets),
              Number("focal_weighted_smoothed"), kTolerance);
  v1::LossConfig half = Config("focal");
  half.set_focal_gamma(0.5);
  EXPECT_NEAR(Eval(MustCreate(half), logits, targets),
              Number("focal_gamma_half"), kTolerance);
}

TEST(LossTest, FocalGammaDefaultsToTwo) {
  EXPECT_NEAR(Eval(MustCreate(Config("focal", true)), Logits(),
                   OneHot(Labels("labels"))),
              Number("focal_weighted"), kTolerance);
}

TEST(LossTest, FocalWithGammaZeroIsCrossEntropy) {
  v1::LossConfig focal = Config("focal", true, true);
  focal.set_focal_gamma(0.0);
  EXPECT_NEAR(Eval(MustCreate(focal), Logits(), OneHot(Labels("labels"))),
              Number("ce_weighted_smoothed"), kTolerance);
}

TEST(LossTest, FocalGradientStaysFiniteForConfidentPredictions) {
  // p rounds to 1 in float32: (1 - p)^gamma with gamma < 1 has an infinite
  // derivative at 0.
  const torch::Tensor logits =
      torch::tensor({{60.0f, 0.0f, 0.0f}}).requires_grad_();
  v1::LossConfig config = Config("focal");
  config.set_focal_gamma(0.5);
  const torch::Tensor loss =
      MustCreate(config, 3)(logits, torch::tensor({{1.0f, 0.0f, 0.0f}}));
  loss.backward();
  EXPECT_TRUE(torch::isfinite(loss).item<bool>());
  EXPECT_TRUE(torch::isfinite(logits.grad()).all().item<bool>());
}

TEST(LossTest, SoftF1MatchesReference) {
  const Loss f1 = MustCreate(Config("f1"));
  EXPECT_NEAR(Eval(f1, Logits(), OneHot(Labels("labels"))), Number("f1"),
              kTolerance);
  EXPECT_NEAR(Eval(f1, Logits(), Mixed()), Number("f1_mixed"), kTolerance);
}

// Hard macro-F1 of arg-max predictions (classes absent from both count 0).
double HardMacroF1(const torch::Tensor& logits, const torch::Tensor& labels,
                   int num_classes) {
  const torch::Tensor predicted = logits.argmax(1);
  double sum = 0.0;
  for (int c = 0; c < num_classes; ++c) {
    const double tp = ((predicted == c) & (labels == c)).sum().item<double>();
    const double fp = ((predicted == c) & (labels != c)).sum().item<double>();
    const double fn = ((predicted != c) & (labels == c)).sum().item<double>();
    sum += tp + fp + fn > 0 ? 2 * tp / (2 * tp + fp + fn) : 0.0;
  }
  return sum / num_classes;
}

TEST(LossTest, SoftF1IsInUnitIntervalAndDescendingItImprovesF1) {
  torch::manual_seed(7);
  const int n = 64;
  const int c = 5;
  const torch::Tensor labels = torch::randint(0, c, {n}, torch::kLong);
  const torch::Tensor targets = SoftTargets(labels, labels, 1.0, c);
  const Loss f1 = MustCreate(Config("f1"), c);
  torch::Tensor logits = torch::randn({n, c}).requires_grad_();
  const double first_loss = f1(logits, targets).item<double>();
  const double first_f1 = HardMacroF1(logits.detach(), labels, c);
  EXPECT_GE(first_loss, 0.0);
  EXPECT_LE(first_loss, 1.0);
  double last_loss = first_loss;
  for (int step = 0; step < 100; ++step) {
    const torch::Tensor loss = f1(logits, targets);
    ASSERT_GE(loss.item<double>(), 0.0);
    ASSERT_LE(loss.item<double>(), 1.0);
    loss.backward();
    ASSERT_GT(logits.grad().abs().sum().item<double>(), 0.0);
    {
      torch::NoGradGuard no_grad;
      logits.sub_(logits.grad() * 50.0);
      logits.mutable_grad().zero_();
    }
    last_loss = loss.item<double>();
  }
  EXPECT_LT(last_loss, first_loss - 0.2);
  EXPECT_GT(HardMacroF1(logits.detach(), labels, c), first_f1 + 0.2);
}

TEST(LossTest, MixedTargetsAreTheLambdaWeightedPairForCeAndFocal) {
  const double lambda = Number("lambda");
  const torch::Tensor a = Labels("labels");
  const torch::Tensor b = Labels("labels_b");
  const torch::Tensor logits = Logits().to(torch::kFloat);
  v1::LossConfig focal = Config("focal", true, true);
  focal.set_focal_gamma(1.5);
  for (const v1::LossConfig& config : {Config("ce", true, true), focal}) {
    SCOPED_TRACE(config.name());
    const Loss loss = MustCreate(config);
    const double mixed = Eval(loss, logits, SoftTargets(a, b, lambda, C()));
    const double pair =
        lambda * Eval(loss, logits, SoftTargets(a, a, 1.0, C())) +
        (1.0 - lambda) * Eval(loss, logits, SoftTargets(b, b, 1.0, C()));
    EXPECT_NEAR(mixed, pair, 1e-5);
    // And not trivially: the two labelings give different losses.
    EXPECT_GT(std::abs(Eval(loss, logits, SoftTargets(a, a, 1.0, C())) -
                       Eval(loss, logits, SoftTargets(b, b, 1.0, C()))),
              1e-2);
  }
}

TEST(LossTest, SoftTargetsMixesOneHotRows) {
  const torch::Tensor targets =
      SoftTargets(torch::tensor({0, 2}, torch::kLong),
                  torch::tensor({1, 2}, torch::kLong), 0.75, 3);
  EXPECT_EQ(targets.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::allclose(
      targets, torch::tensor({{0.75f, 0.25f, 0.0f}, {0.0f, 0.0f, 1.0f}})));
}

TEST(LossTest, WeightedSumCombinesTheConfiguredLosses) {
  v1::LossConfig config = Config("f1", true, true);  // name is overridden
  config.set_ce_weight(0.5);
  config.set_focal_weight(2.0);
  config.set_f1_weight(0.25);
  config.set_focal_gamma(1.0);
  v1::LossConfig focal = Config("focal", true, true);
  focal.set_focal_gamma(1.0);
  const torch::Tensor logits = Logits();
  const torch::Tensor targets = Mixed();
  const double want =
      0.5 * Eval(MustCreate(Config("ce", true, true)), logits, targets) +
      2.0 * Eval(MustCreate(focal), logits, targets) +
      0.25 * Eval(MustCreate(Config("f1", true, true)), logits, targets);
  EXPECT_NEAR(Eval(MustCreate(config), logits, targets), want, kTolerance);
}

TEST(LossTest, SingleWeightOverridesName) {
  v1::LossConfig config = Config("f1");
  config.set_ce_weight(3.0);
  EXPECT_NEAR(Eval(MustCreate(config), Logits(), OneHot(Labels("labels"))),
              3.0 * Number("ce"), kTolerance);
}

TEST(LossTest, FloatLogitsGiveAFloatLoss) {
  const torch::Tensor loss = MustCreate(Config("ce", true, true))(
      Logits().to(torch::kFloat),
      SoftTargets(Labels("labels"), Labels("labels"), 1.0, C()));
  EXPECT_EQ(loss.scalar_type(), torch::kFloat);
  EXPECT_NEAR(loss.item<double>(), Number("ce_weighted_smoothed"), 1e-5);
}

TEST(LossTest, ShapeMismatchThrows) {
  const Loss loss = MustCreate(Config("ce"));
  EXPECT_THROW(loss(Logits(), torch::zeros({N(), C() + 1})), c10::Error);
  EXPECT_THROW(loss(torch::zeros({N(), C() + 1}), torch::zeros({N(), C() + 1})),
               c10::Error);
}

struct BadLoss {
  const char* what;
  void (*edit)(v1::LossConfig&);
  const char* message;
};

TEST(LossTest, RejectsBadConfigsNamingTheField) {
  const BadLoss cases[] = {
      {"unknown name", [](v1::LossConfig& c) { c.set_name("hinge"); },
       "loss.name must be one of ce, focal, f1, got \"hinge\""},
      {"smoothing of 1.5",
       [](v1::LossConfig& c) { c.set_label_smoothing(1.5); },
       "loss.label_smoothing must be in [0, 1), got 1.5"},
      {"smoothing of 1", [](v1::LossConfig& c) { c.set_label_smoothing(1.0); },
       "loss.label_smoothing must be in [0, 1), got 1"},
      {"negative smoothing",
       [](v1::LossConfig& c) { c.set_label_smoothing(-0.1); },
       "loss.label_smoothing must be in [0, 1)"},
      {"negative gamma", [](v1::LossConfig& c) { c.set_focal_gamma(-1.0); },
       "loss.focal_gamma must be >= 0, got -1"},
      {"negative ce weight", [](v1::LossConfig& c) { c.set_ce_weight(-1.0); },
       "loss.ce_weight must be >= 0"},
      {"negative focal weight",
       [](v1::LossConfig& c) { c.set_focal_weight(-0.5); },
       "loss.focal_weight must be >= 0"},
      {"negative f1 weight", [](v1::LossConfig& c) { c.set_f1_weight(-2.0); },
       "loss.f1_weight must be >= 0"},
      {"three class weights for four classes",
       [](v1::LossConfig& c) {
         for (int i = 0; i < 3; ++i) c.add_class_weights(1.0);
       },
       "loss.class_weights has 3 values, expected 0 or num_classes = 4"},
      {"negative class weight",
       [](v1::LossConfig& c) {
         for (double w : {1.0, 1.0, -1.0, 1.0}) c.add_class_weights(w);
       },
       "loss.class_weights[2] must be >= 0"},
  };
  for (const BadLoss& bad : cases) {
    SCOPED_TRACE(bad.what);
    v1::LossConfig config;
    bad.edit(config);
    auto loss = Loss::Create(config, 4);
    ASSERT_FALSE(loss.ok());
    EXPECT_EQ(loss.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(loss.status().message()), HasSubstr(bad.message));
  }
}

TEST(LossTest, RejectsZeroClasses) {
  EXPECT_EQ(Loss::Create(v1::LossConfig(), 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sweepq::worker
