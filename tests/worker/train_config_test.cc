#include "worker/pipeline/train_config.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/run_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"
#include "tests/worker/train_test_util.h"

namespace sweepq::worker {
namespace {

using ::testing::HasSubstr;

v1::RunConfig Parse(const std::string& yaml) {
  absl::StatusOr<v1::RunConfig> config = LoadRunConfigYaml(yaml, "test.yaml");
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : v1::RunConfig();
}

constexpr char kMinimal[] = R"(
data: {dataset: mask}
model: {name: small_cnn}
train: {epochs: 3}
)";

TEST(ResolveTrainConfigTest, WritesOutTheDefaults) {
  absl::StatusOr<v1::RunConfig> c = ResolveTrainConfig(Parse(kMinimal), -1);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data().layout(), "mask");
  EXPECT_EQ(c->data().split(), "holdout");
  EXPECT_EQ(c->data().val_ratio(), 0.2);
  EXPECT_THAT(c->data().age_bounds(), ::testing::ElementsAre(30, 60));
  EXPECT_EQ(c->data().image_width(), 96u);
  EXPECT_EQ(c->data().image_height(), 128u);
  EXPECT_TRUE(c->crop().enabled());
  EXPECT_THAT(c->crop().detectors(), ::testing::ElementsAre("haar", "fixed"));
  EXPECT_EQ(c->augment().hflip(), 0.5);
  EXPECT_EQ(c->augment().mean_size(), 3);
  EXPECT_EQ(c->loss().name(), "ce");
  EXPECT_EQ(c->optimizer().name(), "adamw");
  EXPECT_EQ(c->optimizer().lr(), 1e-3);
  EXPECT_EQ(c->scheduler().name(), "none");
  EXPECT_EQ(c->early_stopping().metric(), "val_f1");
  EXPECT_EQ(c->early_stopping().goal(), "maximize");
  EXPECT_EQ(c->train().batch_size(), 32u);
  EXPECT_EQ(c->train().val_batch_size(), 32u);
  EXPECT_EQ(c->train().device(), "auto");
  EXPECT_TRUE(c->has_seed());
  EXPECT_GE(c->threads(), 1u);
  EXPECT_EQ(c->interop_threads(), 1u);
  // Resolving is idempotent: config.json read back runs the same way.
  absl::StatusOr<v1::RunConfig> again = ResolveTrainConfig(*c, -1);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(RunConfigToJson(*again), RunConfigToJson(*c));
}

TEST(ResolveTrainConfigTest, ThreadsFlagOverridesAndLossMetricsMinimize) {
  absl::StatusOr<v1::RunConfig> c = ResolveTrainConfig(
      Parse(absl::StrCat(kMinimal, "threads: 4\nearly_stopping: {metric: val_loss}\n")),
      2);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->threads(), 2u);
  EXPECT_EQ(c->early_stopping().goal(), "minimize");
}

TEST(ResolveTrainConfigTest, ImageFolderHasNoCropByDefault) {
  absl::StatusOr<v1::RunConfig> c = ResolveTrainConfig(
      Parse(R"(
data: {dataset: pets, layout: image_folder}
model: {name: small_cnn}
train: {epochs: 1}
)"),
      -1);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->crop().enabled());
  EXPECT_EQ(c->data().age_bounds_size(), 0);
}

TEST(ResolveTrainConfigTest, RejectsContradictionsNamingTheField) {
  struct Case {
    std::string yaml;
    std::string field;
  };
  for (const Case& c : std::vector<Case>{
           {"model: {name: small_cnn, multi_head: true}\n"
            "data: {dataset: x, layout: image_folder}\ntrain: {epochs: 1}\n",
            "model.multi_head"},
           {"model: {name: small_cnn, multi_head: true}\n"
            "data: {dataset: x, age_bounds: [40]}\ntrain: {epochs: 1}\n",
            "model.multi_head"},
           {"model: {name: small_cnn, multi_head: true}\n"
            "data: {dataset: x}\ntrain: {epochs: 1}\n"
            "loss: {class_weights: [1, 2, 3]}\n",
            "loss.class_weights"},
           {"model: {name: small_cnn}\ndata: {dataset: x}\n"
            "train: {epochs: 1, batch_size: 1}\naugment: {mixup: {p: 1}}\n",
            "augment.mixup.p"},
           {"model: {name: small_cnn}\ndata: {dataset: x}\n"
            "train: {epochs: 1, batch_size: 1}\naugment: {cutmix: {p: 0.2}}\n",
            "augment.cutmix.p"},
           {"model: {name: small_cnn}\ndata: {dataset: x, split: full}\n"
            "train: {epochs: 1}\nearly_stopping: {patience: 2}\n",
            "early_stopping.patience"},
           {"model: {name: small_cnn}\ndata: {dataset: x, split: full}\n"
            "train: {epochs: 1}\nscheduler: {name: plateau}\n",
            "scheduler.name"},
           {"model: {name: small_cnn}\ndata: {dataset: x}\n"
            "train: {epochs: 1}\nearly_stopping: {metric: f1}\n",
            "early_stopping.metric"},
           {"model: {name: small_cnn}\ndata: {dataset: x}\n"
            "train: {epochs: 1, device: cpu, amp: true}\n",
            "train.amp"},
           {"model: {name: resnet9}\ndata: {dataset: x}\ntrain: {epochs: 1}\n",
            "model.name"},
       }) {
    absl::StatusOr<v1::RunConfig> config = ResolveTrainConfig(
        [&] {
          v1::RunConfig raw;
          absl::StatusOr<YAML::Node> node = ParseYamlDocument(c.yaml, "t");
          EXPECT_TRUE(node.ok());
          absl::StatusOr<std::string> json = YamlToJson(*node, "");
          EXPECT_TRUE(json.ok());
          EXPECT_TRUE(RunConfigFromJson(*json, &raw, "t").ok());
          return raw;
        }(),
        -1);
    ASSERT_FALSE(config.ok()) << c.yaml;
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(c.field))
        << c.yaml;
  }
  // A train_ metric may be watched without validation.
  EXPECT_TRUE(ResolveTrainConfig(Parse(R"(
model: {name: small_cnn}
data: {dataset: x, split: full}
train: {epochs: 1}
early_stopping: {metric: train_loss, patience: 2}
)"),
                                 -1)
                  .ok());
}

TEST(CheckConfigAgainstClassesTest, NumClassesMustMatchTheDataSet) {
  v1::RunConfig c = Parse(kMinimal);
  EXPECT_TRUE(CheckConfigAgainstClasses(c, 18).ok());
  c.mutable_model()->set_num_classes(18);
  EXPECT_TRUE(CheckConfigAgainstClasses(c, 18).ok());
  c.mutable_model()->set_num_classes(10);
  EXPECT_THAT(std::string(CheckConfigAgainstClasses(c, 18).message()),
              HasSubstr("model.num_classes"));
}

TEST(CheckResumeConfigTest, IgnoresHostSettingsAndNamesOtherDifferences) {
  v1::RunConfig a = *ResolveTrainConfig(Parse(kMinimal), 1);
  v1::RunConfig b = a;
  b.set_threads(8);
  b.mutable_crop()->set_cache_dir("/elsewhere");
  b.mutable_data()->set_loader_threads(6);
  b.mutable_train()->set_log_every_steps(50);
  EXPECT_TRUE(CheckResumeConfig(a, b).ok());
  b.mutable_optimizer()->set_lr(0.5);
  const absl::Status s = CheckResumeConfig(a, b);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("lr"));
}

TEST(ReadRunConfigFileTest, ReadsYamlAndJsonAndNamesTheFile) {
  testing::TempDir dir;
  testing::WriteTextFile(dir.Join("a.yaml"), kMinimal);
  testing::WriteTextFile(
      dir.Join("b.json"),
      R"({"data":{"dataset":"mask"},"model":{"name":"small_cnn"},)"
      R"("train":{"epochs":3},"seed":"12"})");
  testing::WriteTextFile(dir.Join("c.json"), R"({"model":{"nme":"x"}})");
  ASSERT_TRUE(ReadRunConfigFile(dir.Join("a.yaml")).ok());
  absl::StatusOr<v1::RunConfig> json = ReadRunConfigFile(dir.Join("b.json"));
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(json->seed(), 12u);
  absl::StatusOr<v1::RunConfig> bad = ReadRunConfigFile(dir.Join("c.json"));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("c.json"));
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("model.nme"));
  absl::StatusOr<v1::RunConfig> missing = ReadRunConfigFile(dir.Join("no.yaml"));
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("no.yaml"));
}

}  // namespace
}  // namespace sweepq::worker
