#include "worker/pipeline/optim.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "torch/optim.h"
#include "torch/serialize.h"
#include "torch/utils.h"

namespace sweepq::worker {
namespace {

using ::google::protobuf::Struct;
using ::google::protobuf::Value;
using ::testing::HasSubstr;

// Reference values written by tools/fixtures/make_radam_fixture.py with
// Python PyTorch 1.13.
const Struct& Fixture() {
  static const Struct* const fixture = [] {
    const std::string path = std::string(SWEEPQ_SOURCE_DIR) +
                             "/tests/worker/testdata/radam_fixture.json";
    std::ifstream in(path);
    EXPECT_TRUE(in.good()) << "cannot open " << path;
    const std::string text((std::istreambuf_iterator<char>(in)),
                           std::istreambuf_iterator<char>());
    auto* parsed = new Struct;
    const auto status =
        google::protobuf::util::JsonStringToMessage(text, parsed);
    EXPECT_TRUE(status.ok()) << path << ": " << status.ToString();
    return parsed;
  }();
  return *fixture;
}

const Value& Get(const Struct& s, const std::string& key) {
  return s.fields().at(key);
}

const Struct& Section(const Struct& s, const std::string& key) {
  return Get(s, key).struct_value();
}

double Number(const Struct& s, const std::string& key) {
  return Get(s, key).number_value();
}

std::vector<double> Numbers(const Value& list) {
  std::vector<double> out;
  for (const Value& v : list.list_value().values()) {
    out.push_back(v.number_value());
  }
  return out;
}

std::vector<double> Numbers(const Struct& s, const std::string& key) {
  return Numbers(Get(s, key));
}

torch::Tensor DoubleTensor(const std::vector<double>& values,
                           std::vector<int64_t> shape) {
  return torch::tensor(values, torch::kDouble).reshape(shape);
}

// |actual - expected| <= kAbs + kRel * |expected|.
constexpr double kRel = 1e-10;
constexpr double kAbs = 1e-13;

// The fixture's least-squares MLP: data, parameters and the loss.
struct MlpProblem {
  torch::Tensor x;
  torch::Tensor y;
  std::vector<torch::Tensor> params;  // W1, b1, W2, b2

  // Builds the problem from `values` (the flattened parameters, in order).
  static MlpProblem FromFixture(const std::vector<Value>& values) {
    const Struct& radam = Section(Fixture(), "radam");
    MlpProblem p;
    const auto shape = [](const Value& v) {
      std::vector<int64_t> out;
      for (double d : Numbers(v)) out.push_back(static_cast<int64_t>(d));
      return out;
    };
    p.x = DoubleTensor(Numbers(radam, "x"), shape(Get(radam, "x_shape")));
    p.y = DoubleTensor(Numbers(radam, "y"), shape(Get(radam, "y_shape")));
    const auto& shapes = Get(radam, "shapes").list_value().values();
    for (int i = 0; i < shapes.size(); ++i) {
      p.params.push_back(DoubleTensor(Numbers(values[i]), shape(shapes[i]))
                             .set_requires_grad(true));
    }
    return p;
  }

  // Parameters before any step, from the fixture.
  static MlpProblem Initial() {
    const auto& first =
        Get(Section(Fixture(), "radam"), "params").list_value().values(0);
    return FromFixture({first.list_value().values().begin(),
                        first.list_value().values().end()});
  }

  // One optimizer step: zero grads, loss, backward, step.
  void Step(torch::optim::Optimizer& optimizer) {
    optimizer.zero_grad();
    const torch::Tensor out =
        torch::tanh(x.matmul(params[0]) + params[1]).matmul(params[2]) +
        params[3];
    (out - y).pow(2).mean().backward();
    optimizer.step();
  }
};

RAdamOptions FixtureRAdamOptions() {
  const Struct& radam = Section(Fixture(), "radam");
  return RAdamOptions(Number(radam, "lr"))
      .betas(std::make_tuple(Number(radam, "beta1"), Number(radam, "beta2")))
      .eps(Number(radam, "eps"))
      .weight_decay(Number(radam, "weight_decay"));
}

TEST(RAdamTest, FixtureCoversBothRectificationRegimes) {
  const std::vector<double> rho = Numbers(Section(Fixture(), "radam"), "rho_t");
  EXPECT_TRUE(
      std::any_of(rho.begin(), rho.end(), [](double r) { return r <= 5.0; }));
  EXPECT_TRUE(
      std::any_of(rho.begin(), rho.end(), [](double r) { return r > 5.0; }));
  EXPECT_GT(Number(Section(Fixture(), "radam"), "weight_decay"), 0.0);
}

TEST(RAdamTest, MatchesTorchRAdamStepForStep) {
  const Struct& radam = Section(Fixture(), "radam");
  const auto& history = Get(radam, "params").list_value().values();
  const int steps = static_cast<int>(Number(radam, "steps"));
  ASSERT_EQ(history.size(), steps + 1);
  MlpProblem problem = MlpProblem::Initial();
  RAdam optimizer(problem.params, FixtureRAdamOptions());
  double worst = 0.0;
  for (int step = 1; step <= steps; ++step) {
    problem.Step(optimizer);
    const auto& expected = history[step].list_value().values();
    for (size_t i = 0; i < problem.params.size(); ++i) {
      const torch::Tensor actual = problem.params[i].detach().reshape(-1);
      const std::vector<double> want = Numbers(expected[i]);
      ASSERT_EQ(actual.numel(), static_cast<int64_t>(want.size()));
      for (size_t k = 0; k < want.size(); ++k) {
        const double got = actual[k].item<double>();
        const double error = std::abs(got - want[k]);
        worst = std::max(worst, error / std::max(std::abs(want[k]), 1e-3));
        ASSERT_LE(error, kAbs + kRel * std::abs(want[k]))
            << "step " << step << " parameter " << i << " element " << k;
      }
    }
  }
  RecordProperty("max_relative_error", std::to_string(worst));
  std::cout << "RAdam vs torch.optim.RAdam: max relative error " << worst
            << " over " << steps << " steps\n";
}

TEST(RAdamTest, SaveLoadContinuesExactlyLikeAnUninterruptedRun) {
  MlpProblem straight = MlpProblem::Initial();
  RAdam straight_optimizer(straight.params, FixtureRAdamOptions());
  for (int i = 0; i < 20; ++i) straight.Step(straight_optimizer);

  MlpProblem first = MlpProblem::Initial();
  RAdam first_optimizer(first.params, FixtureRAdamOptions());
  for (int i = 0; i < 10; ++i) first.Step(first_optimizer);
  std::stringstream saved;
  {
    torch::serialize::OutputArchive archive;
    first_optimizer.save(archive);
    archive.save_to(saved);
  }

  // A fresh process: new tensors (new TensorImpl keys), default options.
  MlpProblem resumed = MlpProblem::Initial();
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < resumed.params.size(); ++i) {
      resumed.params[i].copy_(first.params[i]);
    }
  }
  // Like LibTorch's optimizers, load() restores the per-parameter state;
  // the options come from the config (and the lr from the schedule).
  RAdam resumed_optimizer(resumed.params, FixtureRAdamOptions());
  torch::serialize::InputArchive archive;
  archive.load_from(saved);
  resumed_optimizer.load(archive);
  for (int i = 0; i < 10; ++i) resumed.Step(resumed_optimizer);

  for (size_t i = 0; i < straight.params.size(); ++i) {
    EXPECT_TRUE(torch::equal(resumed.params[i], straight.params[i]))
        << "parameter " << i;
  }
}

TEST(RAdamTest, LoadWithoutStateWouldDiverge) {
  // Guards the round-trip test above: dropping the state changes the result.
  MlpProblem straight = MlpProblem::Initial();
  RAdam straight_optimizer(straight.params, FixtureRAdamOptions());
  for (int i = 0; i < 20; ++i) straight.Step(straight_optimizer);
  MlpProblem restarted = MlpProblem::Initial();
  RAdam first(restarted.params, FixtureRAdamOptions());
  for (int i = 0; i < 10; ++i) restarted.Step(first);
  RAdam second(restarted.params, FixtureRAdamOptions());
  for (int i = 0; i < 10; ++i) restarted.Step(second);
  EXPECT_FALSE(torch::equal(restarted.params[0], straight.params[0]));
}

// ----------------------------------------------------- CreateOptimizer

std::vector<NamedParameter> TwoParameters() {
  return {
      {"fc.weight", torch::ones({3}, torch::kDouble).set_requires_grad(true),
       false},
      {"bn.weight", torch::ones({3}, torch::kDouble).set_requires_grad(true),
       true},
  };
}

TEST(CreateOptimizerTest, DefaultIsAdamWWithDocumentedDefaults) {
  auto optimizer = CreateOptimizer(v1::OptimizerConfig(), TwoParameters());
  ASSERT_TRUE(optimizer.ok()) << optimizer.status();
  auto* adamw = dynamic_cast<torch::optim::AdamW*>(optimizer->get());
  ASSERT_NE(adamw, nullptr);
  ASSERT_EQ(adamw->param_groups().size(), 1u);
  const auto& options = static_cast<const torch::optim::AdamWOptions&>(
      adamw->param_groups()[0].options());
  EXPECT_EQ(options.lr(), 1e-3);
  EXPECT_EQ(std::get<0>(options.betas()), 0.9);
  EXPECT_EQ(std::get<1>(options.betas()), 0.999);
  EXPECT_EQ(options.eps(), 1e-8);
  EXPECT_EQ(options.weight_decay(), 0.0);
}

TEST(CreateOptimizerTest, BuildsEachNamedOptimizerWithItsOptions) {
  v1::OptimizerConfig config;
  config.set_name("sgd");
  config.set_lr(0.05);
  config.set_momentum(0.9);
  config.set_nesterov(true);
  config.set_weight_decay(1e-4);
  auto sgd = CreateOptimizer(config, TwoParameters());
  ASSERT_TRUE(sgd.ok()) << sgd.status();
  auto* sgd_ptr = dynamic_cast<torch::optim::SGD*>(sgd->get());
  ASSERT_NE(sgd_ptr, nullptr);
  const auto& sgd_options = static_cast<const torch::optim::SGDOptions&>(
      sgd_ptr->param_groups()[0].options());
  EXPECT_EQ(sgd_options.lr(), 0.05);
  EXPECT_EQ(sgd_options.momentum(), 0.9);
  EXPECT_TRUE(sgd_options.nesterov());
  EXPECT_EQ(sgd_options.weight_decay(), 1e-4);

  v1::OptimizerConfig adam_config;
  adam_config.set_name("adam");
  adam_config.set_beta1(0.8);
  adam_config.set_beta2(0.99);
  adam_config.set_eps(1e-6);
  auto adam = CreateOptimizer(adam_config, TwoParameters());
  ASSERT_TRUE(adam.ok()) << adam.status();
  auto* adam_ptr = dynamic_cast<torch::optim::Adam*>(adam->get());
  ASSERT_NE(adam_ptr, nullptr);
  const auto& adam_options = static_cast<const torch::optim::AdamOptions&>(
      adam_ptr->param_groups()[0].options());
  EXPECT_EQ(std::get<0>(adam_options.betas()), 0.8);
  EXPECT_EQ(std::get<1>(adam_options.betas()), 0.99);
  EXPECT_EQ(adam_options.eps(), 1e-6);

  v1::OptimizerConfig radam_config;
  radam_config.set_name("radam");
  radam_config.set_weight_decay(0.1);
  auto radam = CreateOptimizer(radam_config, TwoParameters());
  ASSERT_TRUE(radam.ok()) << radam.status();
  auto* radam_ptr = dynamic_cast<RAdam*>(radam->get());
  ASSERT_NE(radam_ptr, nullptr);
  EXPECT_EQ(
      static_cast<const RAdamOptions&>(radam_ptr->param_groups()[0].options())
          .weight_decay(),
      0.1);
}

TEST(CreateOptimizerTest, CreatedRAdamMatchesTorchFixture) {
  const Struct& radam = Section(Fixture(), "radam");
  v1::OptimizerConfig config;
  config.set_name("radam");
  config.set_lr(Number(radam, "lr"));
  config.set_beta1(Number(radam, "beta1"));
  config.set_beta2(Number(radam, "beta2"));
  config.set_eps(Number(radam, "eps"));
  config.set_weight_decay(Number(radam, "weight_decay"));
  MlpProblem problem = MlpProblem::Initial();
  std::vector<NamedParameter> named;
  for (const torch::Tensor& p : problem.params) named.push_back({"p", p});
  auto optimizer = CreateOptimizer(config, named);
  ASSERT_TRUE(optimizer.ok()) << optimizer.status();
  for (int i = 0; i < 8; ++i) problem.Step(**optimizer);
  const auto& expected =
      Get(radam, "params").list_value().values(8).list_value().values();
  const std::vector<double> want = Numbers(expected[0]);
  const torch::Tensor got = problem.params[0].detach().reshape(-1);
  for (size_t k = 0; k < want.size(); ++k) {
    EXPECT_NEAR(got[k].item<double>(), want[k],
                kAbs + kRel * std::abs(want[k]));
  }
}

// With zero gradients, only weight decay moves a parameter: the norm weight
// must stay put when exempt and move when not.
TEST(CreateOptimizerTest, NoDecayNormBiasExemptsNormWeightsFromDecay) {
  for (const char* name : {"sgd", "adam", "adamw", "radam"}) {
    for (bool exempt : {true, false}) {
      SCOPED_TRACE(std::string(name) + (exempt ? " exempt" : " not exempt"));
      v1::OptimizerConfig config;
      config.set_name(name);
      config.set_lr(0.1);
      config.set_weight_decay(0.5);
      config.set_no_decay_norm_bias(exempt);
      std::vector<NamedParameter> params = TwoParameters();
      auto optimizer = CreateOptimizer(config, params);
      ASSERT_TRUE(optimizer.ok()) << optimizer.status();
      ASSERT_EQ((*optimizer)->param_groups().size(), exempt ? 2u : 1u);
      for (NamedParameter& p : params) {
        p.tensor.mutable_grad() = torch::zeros_like(p.tensor);
      }
      for (int i = 0; i < 3; ++i) (*optimizer)->step();
      const torch::Tensor ones = torch::ones({3}, torch::kDouble);
      EXPECT_FALSE(torch::equal(params[0].tensor, ones));
      EXPECT_EQ(torch::equal(params[1].tensor, ones), exempt);
    }
  }
}

TEST(CreateOptimizerTest, NoDecayGroupKeepsOtherOptions) {
  v1::OptimizerConfig config;
  config.set_name("sgd");
  config.set_lr(0.2);
  config.set_momentum(0.5);
  config.set_weight_decay(0.01);
  config.set_no_decay_norm_bias(true);
  auto optimizer = CreateOptimizer(config, TwoParameters());
  ASSERT_TRUE(optimizer.ok()) << optimizer.status();
  const auto& groups = (*optimizer)->param_groups();
  ASSERT_EQ(groups.size(), 2u);
  const auto& decayed =
      static_cast<const torch::optim::SGDOptions&>(groups[0].options());
  const auto& exempt =
      static_cast<const torch::optim::SGDOptions&>(groups[1].options());
  EXPECT_EQ(decayed.weight_decay(), 0.01);
  EXPECT_EQ(exempt.weight_decay(), 0.0);
  EXPECT_EQ(exempt.lr(), 0.2);
  EXPECT_EQ(exempt.momentum(), 0.5);
}

TEST(CreateOptimizerTest, SetLearningRateSetsEveryGroup) {
  v1::OptimizerConfig config;
  config.set_name("radam");
  config.set_weight_decay(0.01);
  config.set_no_decay_norm_bias(true);
  auto optimizer = CreateOptimizer(config, TwoParameters());
  ASSERT_TRUE(optimizer.ok()) << optimizer.status();
  SetLearningRate(**optimizer, 0.125);
  ASSERT_EQ((*optimizer)->param_groups().size(), 2u);
  for (auto& group : (*optimizer)->param_groups()) {
    EXPECT_EQ(group.options().get_lr(), 0.125);
  }
}

struct BadOptimizer {
  const char* what;
  void (*edit)(v1::OptimizerConfig&);
  const char* message;
};

TEST(CreateOptimizerTest, RejectsBadConfigsNamingTheField) {
  const BadOptimizer cases[] = {
      {"unknown name", [](v1::OptimizerConfig& c) { c.set_name("lion"); },
       "optimizer.name must be one of"},
      {"zero lr", [](v1::OptimizerConfig& c) { c.set_lr(0.0); },
       "optimizer.lr must be > 0, got 0"},
      {"negative lr", [](v1::OptimizerConfig& c) { c.set_lr(-1.0); },
       "optimizer.lr must be > 0"},
      {"negative weight decay",
       [](v1::OptimizerConfig& c) { c.set_weight_decay(-0.1); },
       "optimizer.weight_decay must be >= 0"},
      {"negative momentum",
       [](v1::OptimizerConfig& c) {
         c.set_name("sgd");
         c.set_momentum(-0.5);
       },
       "optimizer.momentum must be >= 0"},
      {"beta1 of 1", [](v1::OptimizerConfig& c) { c.set_beta1(1.0); },
       "optimizer.beta1 must be in [0, 1), got 1"},
      {"negative beta2", [](v1::OptimizerConfig& c) { c.set_beta2(-0.1); },
       "optimizer.beta2 must be in [0, 1)"},
      {"negative eps", [](v1::OptimizerConfig& c) { c.set_eps(-1.0); },
       "optimizer.eps must be >= 0"},
      {"nesterov without momentum",
       [](v1::OptimizerConfig& c) {
         c.set_name("sgd");
         c.set_nesterov(true);
       },
       "optimizer.nesterov requires optimizer.momentum > 0"},
      {"nesterov with adam",
       [](v1::OptimizerConfig& c) {
         c.set_name("adam");
         c.set_nesterov(true);
       },
       "optimizer.nesterov applies to sgd only"},
      {"momentum with radam",
       [](v1::OptimizerConfig& c) {
         c.set_name("radam");
         c.set_momentum(0.9);
       },
       "optimizer.momentum applies to sgd only"},
      {"negative clip norm",
       [](v1::OptimizerConfig& c) { c.set_grad_clip_norm(-1.0); },
       "optimizer.grad_clip_norm must be >= 0"},
  };
  for (const BadOptimizer& bad : cases) {
    SCOPED_TRACE(bad.what);
    v1::OptimizerConfig config;
    bad.edit(config);
    auto optimizer = CreateOptimizer(config, TwoParameters());
    ASSERT_FALSE(optimizer.ok());
    EXPECT_EQ(optimizer.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(optimizer.status().message()),
                HasSubstr(bad.message));
  }
}

TEST(CreateOptimizerTest, RejectsEmptyParameterList) {
  auto optimizer = CreateOptimizer(v1::OptimizerConfig(), {});
  EXPECT_EQ(optimizer.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ClipGradNormTest, ScalesGradientsAboveTheLimitOnly) {
  std::vector<NamedParameter> params = TwoParameters();
  params[0].tensor.mutable_grad() =
      torch::tensor({3.0, 0.0, 0.0}, torch::kDouble);
  params[1].tensor.mutable_grad() =
      torch::tensor({0.0, 4.0, 0.0}, torch::kDouble);
  EXPECT_DOUBLE_EQ(ClipGradNorm(params, 10.0), 5.0);
  EXPECT_DOUBLE_EQ(params[0].tensor.grad()[0].item<double>(), 3.0);

  EXPECT_DOUBLE_EQ(ClipGradNorm(params, 1.0), 5.0);
  const double scale = 1.0 / (5.0 + 1e-6);  // torch's clip coefficient
  EXPECT_DOUBLE_EQ(params[0].tensor.grad()[0].item<double>(), 3.0 * scale);
  EXPECT_DOUBLE_EQ(params[1].tensor.grad()[1].item<double>(), 4.0 * scale);
}

// -------------------------------------------------------------- schedules

void ExpectLrs(LrSchedule& schedule, const std::vector<double>& want,
               const std::vector<double>& metrics = {}) {
  for (size_t e = 0; e < want.size(); ++e) {
    EXPECT_NEAR(schedule.LrForEpoch(static_cast<int>(e)), want[e],
                1e-12 * want[e] + 1e-15)
        << "epoch " << e;
    if (!metrics.empty()) schedule.ReportMetric(metrics[e]);
  }
}

std::unique_ptr<LrSchedule> MustCreate(const v1::SchedulerConfig& config,
                                       int epochs, bool maximize = true,
                                       double min_delta = 0.0,
                                       double base_lr = 0.1) {
  auto schedule =
      LrSchedule::Create(config, base_lr, epochs, maximize, min_delta);
  EXPECT_TRUE(schedule.ok()) << schedule.status();
  return schedule.ok() ? std::move(schedule).value() : nullptr;
}

const Struct& ScheduleFixture(const std::string& name) {
  return Section(Section(Fixture(), "schedules"), name);
}

TEST(LrScheduleTest, CosineMatchesTorchCosineAnnealingLR) {
  const Struct& f = ScheduleFixture("cosine");
  v1::SchedulerConfig config;
  config.set_name("cosine");
  config.set_t_max(static_cast<uint32_t>(Number(f, "t_max")));
  config.set_eta_min(Number(f, "eta_min"));
  auto schedule = MustCreate(config, static_cast<int>(Number(f, "epochs")));
  ASSERT_NE(schedule, nullptr);
  ExpectLrs(*schedule, Numbers(f, "lrs"));
}

TEST(LrScheduleTest, CosineTMaxDefaultsToEpochsAfterWarmup) {
  v1::SchedulerConfig config;
  config.set_name("cosine");
  config.set_warmup_epochs(2);
  auto schedule = MustCreate(config, 12, true, 0.0, 1.0);
  ASSERT_NE(schedule, nullptr);
  EXPECT_DOUBLE_EQ(schedule->LrForEpoch(2), 1.0);
  EXPECT_NEAR(schedule->LrForEpoch(7), 0.5, 1e-15);  // half of T_max = 10
}

TEST(LrScheduleTest, CosineRestartsMatchesTorchWarmRestarts) {
  const Struct& f = ScheduleFixture("cosine_restarts");
  v1::SchedulerConfig config;
  config.set_name("cosine_restarts");
  config.set_t_0(static_cast<uint32_t>(Number(f, "t_0")));
  config.set_t_mult(static_cast<uint32_t>(Number(f, "t_mult")));
  config.set_eta_min(Number(f, "eta_min"));
  auto schedule = MustCreate(config, static_cast<int>(Number(f, "epochs")));
  ASSERT_NE(schedule, nullptr);
  ExpectLrs(*schedule, Numbers(f, "lrs"));
}

TEST(LrScheduleTest, CosineRestartsWithoutTMultRepeatsThePeriod) {
  v1::SchedulerConfig config;
  config.set_name("cosine_restarts");
  config.set_t_0(4);
  auto schedule = MustCreate(config, 20);
  ASSERT_NE(schedule, nullptr);
  for (int e = 0; e < 4; ++e) {
    EXPECT_DOUBLE_EQ(schedule->LrForEpoch(e), schedule->LrForEpoch(e + 4));
    EXPECT_DOUBLE_EQ(schedule->LrForEpoch(e), schedule->LrForEpoch(e + 12));
  }
  EXPECT_DOUBLE_EQ(schedule->LrForEpoch(8), 0.1);
}

TEST(LrScheduleTest, StepMatchesTorchStepLR) {
  const Struct& f = ScheduleFixture("step");
  v1::SchedulerConfig config;
  config.set_name("step");
  config.set_step_size(static_cast<uint32_t>(Number(f, "step_size")));
  config.set_gamma(Number(f, "gamma"));
  auto schedule = MustCreate(config, static_cast<int>(Number(f, "epochs")));
  ASSERT_NE(schedule, nullptr);
  ExpectLrs(*schedule, Numbers(f, "lrs"));
}

TEST(LrScheduleTest, StepGammaDefaultsToOneTenth) {
  v1::SchedulerConfig config;
  config.set_name("step");
  config.set_step_size(2);
  auto schedule = MustCreate(config, 10, true, 0.0, 1.0);
  ASSERT_NE(schedule, nullptr);
  EXPECT_DOUBLE_EQ(schedule->LrForEpoch(1), 1.0);
  EXPECT_DOUBLE_EQ(schedule->LrForEpoch(2), 0.1);
  EXPECT_NEAR(schedule->LrForEpoch(5), 0.01, 1e-17);
}

v1::SchedulerConfig PlateauConfig(const Struct& f) {
  v1::SchedulerConfig config;
  config.set_name("plateau");
  config.set_plateau_patience(static_cast<uint32_t>(Number(f, "patience")));
  config.set_plateau_factor(Number(f, "factor"));
  return config;
}

TEST(LrScheduleTest, PlateauMatchesTorchReduceLROnPlateauMaximizing) {
  const Struct& f = ScheduleFixture("plateau_max");
  auto schedule =
      MustCreate(PlateauConfig(f), static_cast<int>(Number(f, "epochs")),
                 /*maximize=*/true, Number(f, "min_delta"));
  ASSERT_NE(schedule, nullptr);
  ExpectLrs(*schedule, Numbers(f, "lrs"), Numbers(f, "metrics"));
}

TEST(LrScheduleTest, PlateauMatchesTorchReduceLROnPlateauMinimizing) {
  const Struct& f = ScheduleFixture("plateau_min");
  auto schedule =
      MustCreate(PlateauConfig(f), static_cast<int>(Number(f, "epochs")),
                 /*maximize=*/false, Number(f, "min_delta"));
  ASSERT_NE(schedule, nullptr);
  ExpectLrs(*schedule, Numbers(f, "lrs"), Numbers(f, "metrics"));
}

TEST(LrScheduleTest, PlateauSaveLoadResumesWhereItStopped) {
  const Struct& f = ScheduleFixture("plateau_max");
  const std::vector<double> lrs = Numbers(f, "lrs");
  const std::vector<double> metrics = Numbers(f, "metrics");
  const int epochs = static_cast<int>(Number(f, "epochs"));
  // Stop in the middle of a bad streak (epoch 8 ended with 2 bad epochs).
  const size_t stop = 8;
  auto first =
      MustCreate(PlateauConfig(f), epochs, true, Number(f, "min_delta"));
  ASSERT_NE(first, nullptr);
  ExpectLrs(*first, {lrs.begin(), lrs.begin() + stop},
            {metrics.begin(), metrics.begin() + stop});
  std::stringstream saved;
  {
    torch::serialize::OutputArchive archive;
    first->Save(archive);
    archive.save_to(saved);
  }
  auto resumed =
      MustCreate(PlateauConfig(f), epochs, true, Number(f, "min_delta"));
  ASSERT_NE(resumed, nullptr);
  torch::serialize::InputArchive archive;
  archive.load_from(saved);
  ASSERT_TRUE(resumed->Load(archive).ok());
  for (size_t e = stop; e < lrs.size(); ++e) {
    EXPECT_NEAR(resumed->LrForEpoch(static_cast<int>(e)), lrs[e], 1e-15)
        << "epoch " << e;
    resumed->ReportMetric(metrics[e]);
  }
}

TEST(LrScheduleTest, PlateauWithoutLoadForgetsItsState) {
  // Guards the test above: a fresh schedule does not reduce at epoch 9.
  const Struct& f = ScheduleFixture("plateau_max");
  auto fresh = MustCreate(PlateauConfig(f), 20, true, Number(f, "min_delta"));
  ASSERT_NE(fresh, nullptr);
  fresh->ReportMetric(Numbers(f, "metrics")[8]);
  EXPECT_NE(fresh->LrForEpoch(9), Numbers(f, "lrs")[9]);
}

TEST(LrScheduleTest, LoadRejectsAnotherSchedulesStateAndEmptyArchives) {
  v1::SchedulerConfig plateau;
  plateau.set_name("plateau");
  auto saved_schedule = MustCreate(plateau, 10);
  ASSERT_NE(saved_schedule, nullptr);
  std::stringstream saved;
  {
    torch::serialize::OutputArchive archive;
    saved_schedule->Save(archive);
    archive.save_to(saved);
  }
  v1::SchedulerConfig cosine;
  cosine.set_name("cosine");
  auto other = MustCreate(cosine, 10);
  ASSERT_NE(other, nullptr);
  torch::serialize::InputArchive archive;
  archive.load_from(saved);
  const absl::Status wrong_kind = other->Load(archive);
  EXPECT_EQ(wrong_kind.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(wrong_kind.message()), HasSubstr("plateau"));

  std::stringstream empty_stream;
  {
    torch::serialize::OutputArchive empty;
    empty.write("something/else", torch::zeros({1}));
    empty.save_to(empty_stream);
  }
  torch::serialize::InputArchive empty;
  empty.load_from(empty_stream);
  const absl::Status missing = other->Load(empty);
  EXPECT_EQ(missing.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(missing.message()), HasSubstr("no learning-rate"));
}

TEST(LrScheduleTest, WarmupThenCosineMatchesTorchLinearLRSequentialLR) {
  const Struct& f = ScheduleFixture("warmup_cosine");
  v1::SchedulerConfig config;
  config.set_name("cosine");
  config.set_warmup_epochs(static_cast<uint32_t>(Number(f, "warmup_epochs")));
  config.set_warmup_start_factor(Number(f, "warmup_start_factor"));
  config.set_eta_min(Number(f, "eta_min"));
  auto schedule = MustCreate(config, static_cast<int>(Number(f, "epochs")));
  ASSERT_NE(schedule, nullptr);
  ExpectLrs(*schedule, Numbers(f, "lrs"));
}

TEST(LrScheduleTest, WarmupPrecedesStepAndNone) {
  v1::SchedulerConfig step;
  step.set_name("step");
  step.set_step_size(2);
  step.set_gamma(0.5);
  step.set_warmup_epochs(4);
  step.set_warmup_start_factor(0.25);
  auto schedule = MustCreate(step, 10, true, 0.0, 1.0);
  ASSERT_NE(schedule, nullptr);
  ExpectLrs(*schedule, {0.25, 0.4375, 0.625, 0.8125, 1.0, 1.0, 0.5, 0.5, 0.25});

  v1::SchedulerConfig none;
  none.set_warmup_epochs(2);  // start factor defaults to 0.1
  auto constant = MustCreate(none, 5, true, 0.0, 1.0);
  ASSERT_NE(constant, nullptr);
  ExpectLrs(*constant, {0.1, 0.55, 1.0, 1.0, 1.0});
}

TEST(LrScheduleTest, PlateauIgnoresWarmupEpochsMetrics) {
  v1::SchedulerConfig config;
  config.set_name("plateau");
  config.set_plateau_patience(0);
  config.set_plateau_factor(0.5);
  config.set_warmup_epochs(2);
  config.set_warmup_start_factor(0.5);
  auto schedule = MustCreate(config, 10, /*maximize=*/true, 0.0, 1.0);
  ASSERT_NE(schedule, nullptr);
  ExpectLrs(*schedule, {0.5, 0.75, 1.0, 1.0, 0.5}, {0.9, 0.1, 0.5, 0.4, 0.3});
}

TEST(LrScheduleTest, NoneKeepsTheBaseRate) {
  auto schedule = MustCreate(v1::SchedulerConfig(), 3, true, 0.0, 0.3);
  ASSERT_NE(schedule, nullptr);
  ExpectLrs(*schedule, {0.3, 0.3, 0.3}, {0.0, 0.0, 0.0});
}

struct BadSchedule {
  const char* what;
  void (*edit)(v1::SchedulerConfig&);
  const char* message;
};

TEST(LrScheduleTest, RejectsBadConfigsNamingTheField) {
  const BadSchedule cases[] = {
      {"unknown name", [](v1::SchedulerConfig& c) { c.set_name("onecycle"); },
       "scheduler.name must be one of"},
      {"restarts without t_0",
       [](v1::SchedulerConfig& c) { c.set_name("cosine_restarts"); },
       "scheduler.t_0 must be > 0"},
      {"t_mult of 0",
       [](v1::SchedulerConfig& c) {
         c.set_name("cosine_restarts");
         c.set_t_0(2);
         c.set_t_mult(0);
       },
       "scheduler.t_mult must be >= 1"},
      {"step without step_size",
       [](v1::SchedulerConfig& c) { c.set_name("step"); },
       "scheduler.step_size must be > 0"},
      {"gamma of 0",
       [](v1::SchedulerConfig& c) {
         c.set_name("step");
         c.set_step_size(1);
         c.set_gamma(0.0);
       },
       "scheduler.gamma must be in (0, 1], got 0"},
      {"gamma above 1",
       [](v1::SchedulerConfig& c) {
         c.set_name("step");
         c.set_step_size(1);
         c.set_gamma(1.5);
       },
       "scheduler.gamma must be in (0, 1]"},
      {"plateau factor of 0",
       [](v1::SchedulerConfig& c) {
         c.set_name("plateau");
         c.set_plateau_factor(0.0);
       },
       "scheduler.plateau_factor must be in (0, 1]"},
      {"warm-up start factor of 0",
       [](v1::SchedulerConfig& c) {
         c.set_warmup_epochs(1);
         c.set_warmup_start_factor(0.0);
       },
       "scheduler.warmup_start_factor must be in (0, 1]"},
      {"warm-up as long as the run",
       [](v1::SchedulerConfig& c) { c.set_warmup_epochs(10); },
       "scheduler.warmup_epochs must be < train.epochs (10), got 10"},
      {"negative eta_min",
       [](v1::SchedulerConfig& c) {
         c.set_name("cosine");
         c.set_eta_min(-0.1);
       },
       "scheduler.eta_min must be >= 0"},
  };
  for (const BadSchedule& bad : cases) {
    SCOPED_TRACE(bad.what);
    v1::SchedulerConfig config;
    bad.edit(config);
    auto schedule = LrSchedule::Create(config, 0.1, 10, true, 0.0);
    ASSERT_FALSE(schedule.ok());
    EXPECT_EQ(schedule.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(schedule.status().message()),
                HasSubstr(bad.message));
  }
}

TEST(LrScheduleTest, RejectsNonPositiveEpochsAndLr) {
  EXPECT_FALSE(
      LrSchedule::Create(v1::SchedulerConfig(), 0.1, 0, true, 0.0).ok());
  EXPECT_FALSE(
      LrSchedule::Create(v1::SchedulerConfig(), 0.0, 5, true, 0.0).ok());
}

}  // namespace
}  // namespace sweepq::worker
