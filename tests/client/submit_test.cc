// The dry-run views, the idempotency key, and that every sweep the CLI
// ships (example-sweep and examples/sweeps/*.yaml) expands and validates.
#include "client/submit.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "client/example_sweep.h"
#include "common/sweep.h"
#include "gtest/gtest.h"

namespace sweepq::client {
namespace {

TEST(ExampleSweepTest, ExpandsIntoTheRunsItsCommentsPromise) {
  absl::StatusOr<ExpandedSweep> sweep =
      ExpandSweepYaml(kExampleSweep, "example-sweep");
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  EXPECT_EQ(sweep->name, "radam-vs-adamw");
  EXPECT_EQ(sweep->runs.size(), 4u);
  EXPECT_EQ(DryRunTable(*sweep).Render(TableOptions()),
            "#  optimizer.name  seed\n"
            "0  radam           1\n"
            "1  radam           2\n"
            "2  adamw           1\n"
            "3  adamw           2\n");
  EXPECT_EQ(DryRunCaption(*sweep, "x.yaml"),
            "x.yaml: sweep radam-vs-adamw, 4 runs (grid; ranked by val_f1, "
            "maximize; up to 3 attempts each)");
}

TEST(DryRunTest, ParametersWithOneValueAreNotColumns) {
  constexpr char kSweep[] = R"(
name: fixed-and-swept
method: grid
config:
  data: {dataset: mask}
  model: {name: small_cnn}
  train: {epochs: 2}
parameters:
  scheduler.name: {value: cosine}
  data.age_bounds: {values: [[30, 60], [30, 58]]}
)";
  absl::StatusOr<ExpandedSweep> sweep = ExpandSweepYaml(kSweep, "s.yaml");
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  EXPECT_EQ(DryRunTable(*sweep).Render(TableOptions()),
            "#  data.age_bounds\n"
            "0  [30,60]\n"
            "1  [30,58]\n");
  JsonValue json = DryRunJson(*sweep);
  EXPECT_EQ(json.Find("run_count")->number_value(), 2);
  const JsonValue& run = json.Find("runs")->items()[1];
  EXPECT_EQ(run.Find("params")->Find("scheduler.name")->string_value(),
            "cosine");
  EXPECT_EQ(run.Find("config")
                ->Find("data")
                ->Find("age_bounds")
                ->items()[1]
                .number_value(),
            58);
}

TEST(IdempotencyKeyTest, HashOfTheFilePlusTheNonce) {
  std::string a = IdempotencyKey("method: grid\n", "nonce1");
  EXPECT_EQ(a.rfind("cli:", 0), 0u);
  EXPECT_EQ(a.size(), 4 + 16 + 1 + 6u);
  EXPECT_EQ(a, IdempotencyKey("method: grid\n", "nonce1"));
  EXPECT_NE(a, IdempotencyKey("method: grid\n", "nonce2"));
  EXPECT_NE(a.substr(0, 20),
            IdempotencyKey("method: random\n", "nonce1").substr(0, 20));
}

TEST(ExamplesTest, EveryShippedSweepFileExpands) {
  const std::filesystem::path dir =
      std::filesystem::path(SWEEPQ_SOURCE_DIR) / "examples" / "sweeps";
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    absl::StatusOr<ExpandedSweep> sweep =
        ExpandSweepYaml(text.str(), entry.path().filename().string());
    EXPECT_TRUE(sweep.ok()) << sweep.status();
    if (sweep.ok()) {
      EXPECT_GE(sweep->runs.size(), 2u) << entry.path();
      EXPECT_FALSE(sweep->name.empty()) << entry.path();
    }
    ++checked;
  }
  EXPECT_GE(checked, 4);
}

}  // namespace
}  // namespace sweepq::client
