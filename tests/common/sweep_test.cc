#include "common/sweep.h"

#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/run_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sweepq {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr char kBase[] = R"yaml(
config:
  data: {dataset: mask}
  model: {name: small_cnn}
  train: {epochs: 10, batch_size: 32}
)yaml";

// A sweep file: kBase's config plus `rest` (method, parameters, ...).
std::string Sweep(const std::string& rest) { return kBase + rest; }

ExpandedSweep Expand(const std::string& yaml,
                     const SweepLimits& limits = SweepLimits()) {
  absl::StatusOr<ExpandedSweep> sweep =
      ExpandSweepYaml(yaml, "sweep.yaml", limits);
  EXPECT_TRUE(sweep.ok()) << sweep.status();
  return sweep.ok() ? *std::move(sweep) : ExpandedSweep();
}

std::string ExpandError(const std::string& yaml,
                        const SweepLimits& limits = SweepLimits()) {
  absl::StatusOr<ExpandedSweep> sweep =
      ExpandSweepYaml(yaml, "sweep.yaml", limits);
  EXPECT_FALSE(sweep.ok()) << yaml;
  if (sweep.ok()) return "";
  EXPECT_EQ(sweep.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(sweep.status().message());
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// ---- The example ----

TEST(SweepExampleTest, DemoExpandsToFourValidRuns) {
  const std::string path =
      std::string(SWEEPQ_SOURCE_DIR) + "/examples/sweeps/demo.yaml";
  const std::string yaml = ReadFile(path);
  ASSERT_FALSE(yaml.empty()) << path;
  ExpandedSweep sweep = Expand(yaml);
  EXPECT_EQ(sweep.name, "demo-radam-vs-adamw");
  EXPECT_EQ(sweep.method, "grid");
  EXPECT_EQ(sweep.metric, "val_f1");
  EXPECT_EQ(sweep.goal, v1::GOAL_MAXIMIZE);
  EXPECT_EQ(sweep.max_attempts, 3u);
  ASSERT_EQ(sweep.runs.size(), 4u);
  std::set<std::pair<std::string, double>> combos;
  for (const ExpandedRun& run : sweep.runs) {
    EXPECT_TRUE(ValidateRunConfig(run.config).ok());
    EXPECT_EQ(run.config.data().dataset(), "mask");
    EXPECT_EQ(run.config.model().name(), "small_cnn");
    EXPECT_EQ(run.config.train().epochs(), 8u);
    EXPECT_TRUE(run.config.model().multi_head());
    EXPECT_TRUE(run.config.data().weighted_sampling());
    combos.insert({run.config.optimizer().name(), run.config.optimizer().lr()});
  }
  EXPECT_EQ(combos.size(), 4u);
  EXPECT_EQ(CountSweepRuns(yaml, "demo.yaml").value(), 4u);
}

// ---- Grid ----

TEST(GridSweepTest, CartesianProductInFileOrderLastParameterFastest) {
  ExpandedSweep sweep = Expand(Sweep(R"yaml(
method: grid
parameters:
  optimizer.name: {values: [radam, adamw]}
  optimizer.lr: {values: [0.001, 0.003, 1.0e-2]}
)yaml"));
  ASSERT_EQ(sweep.runs.size(), 6u);
  std::vector<std::pair<std::string, std::string>> order;
  for (const ExpandedRun& run : sweep.runs) {
    order.emplace_back(run.params.at("optimizer.name"),
                       run.params.at("optimizer.lr"));
  }
  EXPECT_THAT(
      order,
      ElementsAre(Pair("\"radam\"", "0.001"), Pair("\"radam\"", "0.003"),
                  Pair("\"radam\"", "1.0e-2"), Pair("\"adamw\"", "0.001"),
                  Pair("\"adamw\"", "0.003"), Pair("\"adamw\"", "1.0e-2")));
  EXPECT_EQ(sweep.runs[2].config.optimizer().name(), "radam");
  EXPECT_DOUBLE_EQ(sweep.runs[2].config.optimizer().lr(), 0.01);
  EXPECT_EQ(sweep.runs[3].config.optimizer().name(), "adamw");
}

TEST(GridSweepTest, OrderFollowsTheFileNotTheAlphabet) {
  ExpandedSweep sweep = Expand(Sweep(R"yaml(
method: grid
parameters:
  train.epochs: {values: [1, 2]}
  augment.hflip: {values: [0, 1]}
)yaml"));
  ASSERT_EQ(sweep.runs.size(), 4u);
  EXPECT_EQ(sweep.runs[0].config.train().epochs(), 1u);
  EXPECT_EQ(sweep.runs[1].config.train().epochs(), 1u);
  EXPECT_EQ(sweep.runs[2].config.train().epochs(), 2u);
  EXPECT_DOUBLE_EQ(sweep.runs[1].config.augment().hflip(), 1);
}

TEST(GridSweepTest, ParamsHoldOnlySweptKeysAsJson) {
  ExpandedSweep sweep = Expand(Sweep(R"yaml(
method: grid
parameters:
  optimizer.name: {values: [radam]}
  train.batch_size: {value: 64}
  tta.transforms: {value: [hflip, scale]}
)yaml"));
  ASSERT_EQ(sweep.runs.size(), 1u);
  const ExpandedRun& run = sweep.runs[0];
  EXPECT_THAT(run.params, UnorderedElementsAre(
                              Pair("optimizer.name", "\"radam\""),
                              Pair("train.batch_size", "64"),
                              Pair("tta.transforms", R"(["hflip","scale"])")));
  // Base config keys are applied but are not params.
  EXPECT_EQ(run.config.data().dataset(), "mask");
  EXPECT_EQ(run.config.train().epochs(), 10u);
  EXPECT_EQ(run.config.train().batch_size(), 64u);  // overrides the base 32
  EXPECT_EQ(run.config.tta().transforms_size(), 2);
}

TEST(GridSweepTest, QuotedValuesStayStrings) {
  ExpandedSweep sweep = Expand(Sweep(R"yaml(
method: grid
parameters:
  name: {values: ["1", 2x]}
)yaml"));
  ASSERT_EQ(sweep.runs.size(), 2u);
  EXPECT_EQ(sweep.runs[0].params.at("name"), "\"1\"");
  EXPECT_EQ(sweep.runs[0].config.name(), "1");
  EXPECT_EQ(sweep.runs[1].config.name(), "2x");
}

TEST(GridSweepTest, NoParametersGivesOneRun) {
  ExpandedSweep sweep = Expand(Sweep("method: grid\n"));
  ASSERT_EQ(sweep.runs.size(), 1u);
  EXPECT_TRUE(sweep.runs[0].params.empty());
  EXPECT_EQ(sweep.runs[0].config.train().epochs(), 10u);
}

TEST(GridSweepTest, RunCapKeepsTheFirstRuns) {
  ExpandedSweep sweep = Expand(Sweep(R"yaml(
method: grid
run_cap: 3
parameters:
  optimizer.name: {values: [radam, adamw]}
  optimizer.lr: {values: [0.1, 0.2, 0.3]}
)yaml"));
  ASSERT_EQ(sweep.runs.size(), 3u);
  EXPECT_EQ(sweep.runs[2].params.at("optimizer.name"), "\"radam\"");
  EXPECT_EQ(sweep.runs[2].params.at("optimizer.lr"), "0.3");
}

TEST(GridSweepTest, ParameterIntoANullBaseKeyCreatesTheMapping) {
  ExpandedSweep sweep = Expand(Sweep(R"yaml(
method: grid
parameters:
  augment.cutmix.p: {values: [0.5]}
)yaml"));
  ASSERT_EQ(sweep.runs.size(), 1u);
  EXPECT_DOUBLE_EQ(sweep.runs[0].config.augment().cutmix().p(), 0.5);

  sweep = Expand(R"yaml(
method: grid
config: {data: {dataset: mask}, model: {name: small_cnn}, train: {epochs: 1},
         optimizer: }
parameters:
  optimizer.lr: {value: 0.5}
)yaml");
  ASSERT_EQ(sweep.runs.size(), 1u);
  EXPECT_DOUBLE_EQ(sweep.runs[0].config.optimizer().lr(), 0.5);
}

TEST(GridSweepTest, GridOverTheCapIsRefusedBeforeExpanding) {
  // 5 parameters x 100 values = 1e10 runs: refused from the counts alone.
  std::string yaml = Sweep("method: grid\nparameters:\n");
  const char* paths[] = {"optimizer.lr", "optimizer.weight_decay",
                         "augment.hflip", "augment.cutmix.p", "model.dropout"};
  for (const char* path : paths) {
    yaml += absl::StrCat("  ", path, ": {values: [");
    for (int i = 0; i < 100; ++i) {
      yaml += absl::StrCat(i ? ", " : "", "0.00", i + 1);
    }
    yaml += "]}\n";
  }
  const auto start = std::chrono::steady_clock::now();
  const std::string message = ExpandError(yaml);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_THAT(message, HasSubstr("sweep.yaml: grid of 10000000000 runs"));
  EXPECT_THAT(message, HasSubstr("exceeds the cap of 10000 runs"));
  EXPECT_THAT(message, HasSubstr("optimizer.lr: 100 x optimizer.weight_decay: "
                                 "100 x augment.hflip: 100"));
  EXPECT_LT(elapsed, std::chrono::seconds(2));
  EXPECT_EQ(CountSweepRuns(yaml, "sweep.yaml").value(), 10000000000u);

  // The same grid cut by run_cap is fine.
  ExpandedSweep sweep = Expand(yaml + "run_cap: 3\n");
  ASSERT_EQ(sweep.runs.size(), 3u);
  EXPECT_EQ(sweep.runs[2].params.at("model.dropout"), "0.003");
}

TEST(GridSweepTest, CapComesFromLimits) {
  const std::string yaml = Sweep(R"yaml(
method: grid
parameters:
  optimizer.name: {values: [radam, adamw]}
  optimizer.lr: {values: [0.1, 0.2, 0.3]}
)yaml");
  SweepLimits limits;
  limits.max_runs = 5;
  EXPECT_EQ(ExpandError(yaml, limits),
            "sweep.yaml: grid of 6 runs (optimizer.name: 2 x optimizer.lr: 3) "
            "exceeds the cap of 5 runs; lower run_cap or use method: random");
  EXPECT_THAT(ExpandError(yaml + "run_cap: 6\n", limits),
              HasSubstr("grid of 6 runs (optimizer.name: 2 x optimizer.lr: "
                        "3), cut to 6 by run_cap, exceeds the cap of 5 runs"));
  EXPECT_EQ(Expand(yaml + "run_cap: 5\n", limits).runs.size(), 5u);
  limits.max_runs = 6;
  EXPECT_EQ(Expand(yaml, limits).runs.size(), 6u);
}

TEST(GridSweepTest, OverflowingGridSaysSo) {
  std::string yaml = Sweep("method: grid\nparameters:\n");
  for (int p = 0; p < 12; ++p) {
    yaml += absl::StrCat("  name", p, ": {values: [");
    for (int i = 0; i < 100; ++i) yaml += absl::StrCat(i ? ", " : "", i);
    yaml += "]}\n";
  }
  EXPECT_THAT(ExpandError(yaml),
              HasSubstr("grid of more than 18446744073709551615 runs"));
}

TEST(GridSweepTest, DistributionInGridSaysToUseRandom) {
  EXPECT_EQ(ExpandError(Sweep(R"yaml(
method: grid
parameters:
  optimizer.lr: {distribution: uniform, min: 0.1, max: 0.2}
)yaml")),
            "sweep.yaml: parameters.optimizer.lr: distribution uniform needs "
            "method: random (grid takes only value or values)");
}

// ---- Random ----

constexpr char kRandom[] = R"yaml(
method: random
run_cap: 50
parameters:
  optimizer.name: {values: [radam, adamw, sgd]}
  optimizer.lr: {distribution: log_uniform, min: 1.0e-4, max: 1.0e-2}
  augment.cutmix.p: {distribution: uniform, min: 0, max: 1}
  seed: {distribution: int_uniform, min: 0, max: 3}
  model.name: {distribution: categorical, values: [small_cnn, resnet18]}
  train.batch_size: {value: 64}
)yaml";

std::vector<std::map<std::string, std::string>> Params(
    const ExpandedSweep& sweep) {
  std::vector<std::map<std::string, std::string>> params;
  for (const ExpandedRun& run : sweep.runs) params.push_back(run.params);
  return params;
}

TEST(RandomSweepTest, SameSeedGivesSameRuns) {
  const std::string yaml = Sweep(std::string(kRandom) + "seed: 7\n");
  ExpandedSweep first = Expand(yaml);
  ExpandedSweep second = Expand(yaml);
  ASSERT_EQ(first.runs.size(), 50u);
  EXPECT_EQ(Params(first), Params(second));
  EXPECT_EQ(first.method, "random");
}

TEST(RandomSweepTest, AnotherSeedGivesOtherRuns) {
  ExpandedSweep seven = Expand(Sweep(std::string(kRandom) + "seed: 7\n"));
  ExpandedSweep eight = Expand(Sweep(std::string(kRandom) + "seed: 8\n"));
  ASSERT_EQ(seven.runs.size(), eight.runs.size());
  EXPECT_NE(Params(seven), Params(eight));
}

TEST(RandomSweepTest, DrawsStayInTheirDistributions) {
  ExpandedSweep sweep = Expand(Sweep(std::string(kRandom) + "seed: 7\n"));
  std::set<std::string> names, models;
  std::set<uint64_t> seeds;
  for (const ExpandedRun& run : sweep.runs) {
    const v1::RunConfig& c = run.config;
    names.insert(c.optimizer().name());
    models.insert(c.model().name());
    seeds.insert(c.seed());
    EXPECT_GE(c.optimizer().lr(), 1.0e-4);
    EXPECT_LE(c.optimizer().lr(), 1.0e-2);
    EXPECT_GE(c.augment().cutmix().p(), 0);
    EXPECT_LE(c.augment().cutmix().p(), 1);
    EXPECT_EQ(c.train().batch_size(), 64u);
    // The params text is exactly the value that was set.
    double lr;
    ASSERT_TRUE(absl::SimpleAtod(run.params.at("optimizer.lr"), &lr));
    EXPECT_EQ(lr, c.optimizer().lr());
    EXPECT_EQ(run.params.at("seed"), absl::StrCat(c.seed()));
    EXPECT_EQ(run.params.size(), 6u);
  }
  EXPECT_EQ(names, (std::set<std::string>{"radam", "adamw", "sgd"}));
  EXPECT_EQ(models, (std::set<std::string>{"small_cnn", "resnet18"}));
  EXPECT_EQ(seeds, (std::set<uint64_t>{0, 1, 2, 3}));  // inclusive bounds
}

TEST(RandomSweepTest, LogUniformSpreadsOverDecades) {
  ExpandedSweep sweep = Expand(Sweep(R"yaml(
method: random
run_cap: 200
parameters:
  optimizer.lr: {distribution: log_uniform, min: 1.0e-6, max: 1.0}
)yaml"));
  int below_1e3 = 0;
  for (const ExpandedRun& run : sweep.runs) {
    if (run.config.optimizer().lr() < 1e-3) ++below_1e3;
  }
  // Half the decades lie below 1e-3; a linear draw would put ~0.1% there.
  EXPECT_GT(below_1e3, 60);
  EXPECT_LT(below_1e3, 140);
}

TEST(RandomSweepTest, RunCapIsRequired) {
  EXPECT_EQ(ExpandError(Sweep("method: random\n")),
            "sweep.yaml: run_cap: required by method random (the number of "
            "runs)");
}

TEST(RandomSweepTest, RunCapAboveTheLimitIsRefused) {
  EXPECT_EQ(ExpandError(Sweep("method: random\nrun_cap: 20000\n")),
            "sweep.yaml: run_cap: 20000 exceeds the cap of 10000 runs");
}

TEST(RandomSweepTest, CountIsRunCap) {
  EXPECT_EQ(CountSweepRuns(Sweep(std::string(kRandom)), "s").value(), 50u);
}

// ---- Top level ----

TEST(SweepFileTest, DefaultsAndTopLevelKeys) {
  ExpandedSweep sweep = Expand(Sweep("method: grid\n"));
  EXPECT_EQ(sweep.name, "");
  EXPECT_EQ(sweep.metric, "val_f1");
  EXPECT_EQ(sweep.goal, v1::GOAL_MAXIMIZE);
  EXPECT_EQ(sweep.max_attempts, 3u);

  sweep = Expand(Sweep(R"yaml(
name: lr-search
method: grid
metric: {name: val_loss, goal: minimize}
max_attempts: 5
)yaml"));
  EXPECT_EQ(sweep.name, "lr-search");
  EXPECT_EQ(sweep.metric, "val_loss");
  EXPECT_EQ(sweep.goal, v1::GOAL_MINIMIZE);
  EXPECT_EQ(sweep.max_attempts, 5u);
}

TEST(SweepFileTest, UnknownTopLevelKeyIsNamed) {
  EXPECT_EQ(ExpandError(Sweep("method: grid\nprogram: train.py\n")),
            "sweep.yaml: unknown top-level key \"program\" (expected one of "
            "name, method, metric, run_cap, seed, max_attempts, config, "
            "parameters)");
}

TEST(SweepFileTest, MethodIsRequiredAndChecked) {
  EXPECT_EQ(ExpandError(Sweep("")),
            "sweep.yaml: method: required (grid or random)");
  EXPECT_EQ(ExpandError(Sweep("method: bayes\n")),
            "sweep.yaml: method: \"bayes\" is not one of grid, random");
}

TEST(SweepFileTest, MetricIsChecked) {
  EXPECT_EQ(ExpandError(Sweep("method: grid\nmetric: {goal: max}\n")),
            "sweep.yaml: metric.goal: \"max\" is not one of maximize, "
            "minimize");
  EXPECT_EQ(ExpandError(Sweep("method: grid\nmetric: {nam: x}\n")),
            "sweep.yaml: metric: unknown key \"nam\" (expected name, goal)");
}

TEST(SweepFileTest, MaxAttemptsAndRunCapAreChecked) {
  EXPECT_EQ(ExpandError(Sweep("method: grid\nmax_attempts: 0\n")),
            "sweep.yaml: max_attempts: 0 is not in [1, 20]");
  EXPECT_EQ(ExpandError(Sweep("method: grid\nmax_attempts: 21\n")),
            "sweep.yaml: max_attempts: 21 is not in [1, 20]");
  EXPECT_EQ(ExpandError(Sweep("method: grid\nrun_cap: 0\n")),
            "sweep.yaml: run_cap: must be >= 1");
  EXPECT_EQ(ExpandError(Sweep("method: grid\nrun_cap: many\n")),
            "sweep.yaml: run_cap: expected a number, got \"many\"");
  EXPECT_EQ(ExpandError(Sweep("method: grid\nseed: -1\n")),
            "sweep.yaml: seed: expected a non-negative integer, got -1");
}

TEST(SweepFileTest, MalformedYamlGivesLineAndColumn) {
  EXPECT_EQ(ExpandError("method: grid\nparameters:\n  optimizer.lr: {values: "
                        "[0.1, 0.2}\n"),
            "sweep.yaml: YAML syntax error at line 3, column 35: illegal flow "
            "end");
}

TEST(SweepFileTest, EmptyOrNonMappingFileIsRejected) {
  EXPECT_EQ(ExpandError(""), "sweep.yaml: empty sweep file");
  EXPECT_EQ(ExpandError("- grid\n"),
            "sweep.yaml: expected a mapping (method, parameters, ...)");
}

// ---- Base config ----

TEST(SweepConfigTest, UnknownNestedConfigKeyIsNamed) {
  EXPECT_EQ(ExpandError(R"yaml(
method: grid
config:
  data: {dataset: mask}
  optimizer: {lrr: 0.1}
)yaml"),
            "sweep.yaml: config.optimizer.lrr: unknown field \"lrr\" in "
            "sweepq.v1.OptimizerConfig");
}

TEST(SweepConfigTest, WrongTypeInConfigNamesThePath) {
  EXPECT_EQ(ExpandError(R"yaml(
method: grid
config: {train: {epochs: ten}}
)yaml"),
            "sweep.yaml: config.train.epochs: expected an integer in [0, "
            "4294967295], got \"ten\"");
}

TEST(SweepConfigTest, ConfigMustBeAMapping) {
  EXPECT_EQ(ExpandError("method: grid\nconfig: [1]\n"),
            "sweep.yaml: config: expected a mapping of RunConfig keys");
}

TEST(SweepConfigTest, InvalidRunNamesIndexAndParams) {
  EXPECT_EQ(ExpandError(Sweep(R"yaml(
method: grid
parameters:
  optimizer.name: {values: [radam, radamm]}
  optimizer.lr: {values: [0.001]}
)yaml")),
            "sweep.yaml: run 1 {optimizer.name=\"radamm\", "
            "optimizer.lr=0.001}: optimizer.name: \"radamm\" is not one of "
            "sgd, adam, adamw, radam");
}

TEST(SweepConfigTest, BaseMissingRequiredFieldFailsRunZero) {
  EXPECT_EQ(ExpandError("method: grid\nconfig: {model: {name: small_cnn}}\n"),
            "sweep.yaml: run 0 {}: data.dataset: required");
}

// ---- Parameters ----

TEST(SweepParameterTest, UnknownParameterPathIsNamed) {
  EXPECT_EQ(ExpandError(Sweep(R"yaml(
method: grid
parameters:
  optimizer.lrr: {values: [0.1, 0.2]}
)yaml")),
            "sweep.yaml: parameters.optimizer.lrr: unknown field \"lrr\" in "
            "sweepq.v1.OptimizerConfig (run 0: optimizer.lrr=0.1)");
  EXPECT_EQ(ExpandError(Sweep(R"yaml(
method: grid
parameters:
  optimiser.lr: {value: 0.1}
)yaml")),
            "sweep.yaml: parameters.optimiser.lr: optimiser: unknown field "
            "\"optimiser\" in sweepq.v1.RunConfig (run 0: optimiser.lr=0.1)");
}

TEST(SweepParameterTest, WrongValueTypeNamesParameterAndRun) {
  EXPECT_EQ(ExpandError(Sweep(R"yaml(
method: grid
parameters:
  optimizer.lr: {values: [0.1, fast]}
)yaml")),
            "sweep.yaml: parameters.optimizer.lr: expected a number, got "
            "\"fast\" (run 1: optimizer.lr=\"fast\")");
  // A uniform draw is no integer.
  EXPECT_THAT(ExpandError(Sweep(R"yaml(
method: random
run_cap: 2
parameters:
  train.epochs: {distribution: uniform, min: 1, max: 5}
)yaml")),
              HasSubstr("sweep.yaml: parameters.train.epochs: expected an "
                        "integer in [0, 4294967295], got "));
}

TEST(SweepParameterTest, PathThroughAScalarIsAnError) {
  EXPECT_EQ(ExpandError(Sweep(R"yaml(
method: grid
parameters:
  train.epochs.max: {value: 3}
)yaml")),
            "sweep.yaml: parameters.train.epochs.max: config.train.epochs is "
            "not a mapping");
}

TEST(SweepParameterTest, PathIntoAScalarFieldNotInBaseIsAnError) {
  EXPECT_THAT(ExpandError(Sweep(R"yaml(
method: grid
parameters:
  optimizer.lr.x: {value: 3}
)yaml")),
              HasSubstr("sweep.yaml: parameters.optimizer.lr.x: optimizer.lr: "
                        "expected a number, got a mapping"));
}

TEST(SweepParameterTest, MinAboveMaxIsAnError) {
  EXPECT_EQ(ExpandError(Sweep(R"yaml(
method: random
run_cap: 1
parameters:
  optimizer.lr: {distribution: uniform, min: 0.1, max: 0.01}
)yaml")),
            "sweep.yaml: parameters.optimizer.lr: min 0.1 is greater than "
            "max 0.01");
  EXPECT_EQ(ExpandError(Sweep(R"yaml(
method: random
run_cap: 1
parameters:
  seed: {distribution: int_uniform, min: 5, max: 4}
)yaml")),
            "sweep.yaml: parameters.seed: min 5 is greater than max 4");
}

TEST(SweepParameterTest, EmptyValuesIsAnError) {
  EXPECT_EQ(ExpandError(Sweep(R"yaml(
method: grid
parameters:
  optimizer.name: {values: []}
)yaml")),
            "sweep.yaml: parameters.optimizer.name.values: is empty");
  EXPECT_EQ(ExpandError(Sweep(R"yaml(
method: grid
parameters:
  optimizer.name: {values: adam}
)yaml")),
            "sweep.yaml: parameters.optimizer.name.values: expected a list");
}

TEST(SweepParameterTest, ParameterNeedsExactlyOneSource) {
  EXPECT_EQ(ExpandError(Sweep(R"yaml(
method: grid
parameters:
  optimizer.name: {}
)yaml")),
            "sweep.yaml: parameters.optimizer.name: needs one of value, "
            "values, distribution");
  EXPECT_EQ(ExpandError(Sweep(R"yaml(
method: grid
parameters:
  optimizer.name: {value: adam, values: [sgd]}
)yaml")),
            "sweep.yaml: parameters.optimizer.name: value cannot be combined "
            "with values, distribution, min or max");
  EXPECT_EQ(ExpandError(Sweep(R"yaml(
method: random
run_cap: 1
parameters:
  optimizer.lr: {values: [0.1], distribution: uniform, min: 0, max: 1}
)yaml")),
            "sweep.yaml: parameters.optimizer.lr: has both values and "
            "distribution uniform (values go with categorical)");
  EXPECT_EQ(ExpandError(Sweep(R"yaml(
method: random
run_cap: 1
parameters:
  optimizer.lr: {min: 0, max: 1}
)yaml")),
            "sweep.yaml: parameters.optimizer.lr: min and max need a "
            "distribution (uniform, log_uniform or int_uniform)");
}

TEST(SweepParameterTest, DistributionRulesAreChecked) {
  EXPECT_EQ(ExpandError(Sweep(R"yaml(
method: random
run_cap: 1
parameters:
  optimizer.lr: {distribution: normal, min: 0, max: 1}
)yaml")),
            "sweep.yaml: parameters.optimizer.lr: unknown distribution "
            "\"normal\" (expected categorical, uniform, log_uniform, "
            "int_uniform)");
  EXPECT_EQ(ExpandError(Sweep(R"yaml(
method: random
run_cap: 1
parameters:
  optimizer.lr: {distribution: log_uniform, min: 0, max: 1}
)yaml")),
            "sweep.yaml: parameters.optimizer.lr: log_uniform needs min > 0, "
            "got 0");
  EXPECT_EQ(ExpandError(Sweep(R"yaml(
method: random
run_cap: 1
parameters:
  optimizer.lr: {distribution: uniform, min: 0}
)yaml")),
            "sweep.yaml: parameters.optimizer.lr: distribution uniform needs "
            "min and max");
  EXPECT_EQ(ExpandError(Sweep(R"yaml(
method: random
run_cap: 1
parameters:
  seed: {distribution: int_uniform, min: 0.5, max: 3}
)yaml")),
            "sweep.yaml: parameters.seed.min: expected an integer, got 0.5");
  EXPECT_EQ(ExpandError(Sweep(R"yaml(
method: random
run_cap: 1
parameters:
  optimizer.name: {distribution: categorical}
)yaml")),
            "sweep.yaml: parameters.optimizer.name: distribution categorical "
            "needs values");
  EXPECT_EQ(ExpandError(Sweep(R"yaml(
method: random
run_cap: 1
parameters:
  optimizer.lr: {distribution: uniform, min: 0, max: .inf}
)yaml")),
            "sweep.yaml: parameters.optimizer.lr.max: expected a number, got "
            "\"Infinity\"");
}

TEST(SweepParameterTest, UnknownSpecKeyIsNamed) {
  EXPECT_EQ(ExpandError(Sweep(R"yaml(
method: grid
parameters:
  optimizer.lr: {valuse: [0.1]}
)yaml")),
            "sweep.yaml: parameters.optimizer.lr: unknown key \"valuse\" "
            "(expected value, values, distribution, min, max)");
}

TEST(SweepParameterTest, OverlappingAndDuplicatePathsAreErrors) {
  EXPECT_EQ(ExpandError(Sweep(R"yaml(
method: grid
parameters:
  optimizer: {value: {name: adam}}
  optimizer.lr: {value: 0.1}
)yaml")),
            "sweep.yaml: parameters.optimizer.lr: overlaps "
            "parameters.optimizer");
  EXPECT_EQ(ExpandError(Sweep(R"yaml(
method: grid
parameters:
  optimizer.lr: {value: 0.1}
  optimizer.lr: {value: 0.2}
)yaml")),
            "sweep.yaml: parameters: duplicate key \"optimizer.lr\"");
  EXPECT_EQ(ExpandError(Sweep(R"yaml(
method: grid
parameters:
  optimizer..lr: {value: 0.1}
)yaml")),
            "sweep.yaml: parameters.optimizer..lr: not a dotted RunConfig "
            "path (empty part)");
}

TEST(SweepParameterTest, MappingValuesReplaceTheSubtree) {
  ExpandedSweep sweep = Expand(Sweep(R"yaml(
method: grid
parameters:
  optimizer: {values: [{name: sgd, momentum: 0.9}, {name: adam}]}
)yaml"));
  ASSERT_EQ(sweep.runs.size(), 2u);
  EXPECT_EQ(sweep.runs[0].params.at("optimizer"),
            R"({"name":"sgd","momentum":0.9})");
  EXPECT_DOUBLE_EQ(sweep.runs[0].config.optimizer().momentum(), 0.9);
  EXPECT_EQ(sweep.runs[1].config.optimizer().name(), "adam");
  EXPECT_DOUBLE_EQ(sweep.runs[1].config.optimizer().momentum(), 0);
}

}  // namespace
}  // namespace sweepq
