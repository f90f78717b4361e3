#include "common/run_config.h"

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace sweepq {
namespace {

using ::testing::HasSubstr;

std::string Json(const std::string& yaml) {
  absl::StatusOr<std::string> json = YamlToJson(YAML::Load(yaml), "");
  EXPECT_TRUE(json.ok()) << json.status();
  return json.ok() ? *json : "";
}

std::string JsonError(const std::string& yaml) {
  absl::StatusOr<std::string> json = YamlToJson(YAML::Load(yaml), "config");
  EXPECT_FALSE(json.ok()) << *json;
  EXPECT_EQ(json.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(json.status().message());
}

// ---- YamlToJson ----

TEST(YamlToJsonTest, PlainScalarsBecomeJsonTypesAndQuotedStayStrings) {
  EXPECT_EQ(Json("{a: 1, b: -2, c: 1.5, d: true, e: False, f: null, g: ~, "
                 "h: , i: abc}"),
            R"({"a":1,"b":-2,"c":1.5,"d":true,"e":false,"f":null,"g":null,)"
            R"("h":null,"i":"abc"})");
  EXPECT_EQ(Json(R"({a: "1", b: '1.5', c: "true", d: "null", e: !!str 7})"),
            R"({"a":"1","b":"1.5","c":"true","d":"null","e":"7"})");
}

TEST(YamlToJsonTest, YesAndNoAreStringsAsInYaml12) {
  EXPECT_EQ(Json("[yes, no, on, off]"), R"(["yes","no","on","off"])");
}

TEST(YamlToJsonTest, NumbersKeepTheirDigits) {
  EXPECT_EQ(Json("[1e-3, 1.0e-4, 0.1, 3.14159265358979323846, 1E5, 2.5e+10, "
                 "-0.0, 18446744073709551615]"),
            "[1e-3,1.0e-4,0.1,3.14159265358979323846,1E5,2.5e+10,-0.0,"
            "18446744073709551615]");
}

TEST(YamlToJsonTest, NumberFormsJsonLacksAreRewrittenLosslessly) {
  EXPECT_EQ(Json("[.5, -.5, +1, +1.5e3, 007, 5., 5.e2, 0x1f, 0o17]"),
            "[0.5,-0.5,1,1.5e3,7,5.0,5.0e2,31,15]");
}

TEST(YamlToJsonTest, InfinityAndNanBecomeProtobufStrings) {
  EXPECT_EQ(Json("[.inf, -.Inf, +.INF, .nan]"),
            R"(["Infinity","-Infinity","Infinity","NaN"])");
}

TEST(YamlToJsonTest, NonNumbersStayStrings) {
  EXPECT_EQ(Json("[1_000, 1.2.3, 0x, 0o8, e3, ., 1e, 12abc, -]"),
            R"(["1_000","1.2.3","0x","0o8","e3",".","1e","12abc","-"])");
}

TEST(YamlToJsonTest, StringsAreEscaped) {
  EXPECT_EQ(Json("a: \"q\\\"b\\\\s\\n\\t\\x01é\""),
            "{\"a\":\"q\\\"b\\\\s\\n\\t\\u0001é\"}");
}

TEST(YamlToJsonTest, KeysKeepDocumentOrderAndNest) {
  EXPECT_EQ(Json("z: 1\na: {y: [1, {b: 2}], x: []}\nm: {}\n"),
            R"({"z":1,"a":{"y":[1,{"b":2}],"x":[]},"m":{}})");
}

TEST(YamlToJsonTest, TaggedScalarsMustMatchTheirTag) {
  EXPECT_EQ(Json("[!!int 3, !!float 3, !!bool true, !!null ~]"),
            "[3,3,true,null]");
  EXPECT_THAT(JsonError("a: !!int abc"),
              HasSubstr("config.a: \"abc\" does not match its tag"));
}

TEST(YamlToJsonTest, UnsupportedTagNamesThePathAndLine) {
  EXPECT_EQ(JsonError("a:\n  b: !secret x\n"),
            "config.a.b: unsupported YAML tag \"!secret\" (line 2, column 6)");
}

TEST(YamlToJsonTest, DuplicateKeyIsAnError) {
  EXPECT_THAT(JsonError("optimizer:\n  lr: 1\n  lr: 2\n"),
              HasSubstr("config.optimizer.lr: duplicate key (line 3"));
}

TEST(YamlToJsonTest, NonScalarKeyIsAnError) {
  EXPECT_THAT(JsonError("? [a, b]\n: 1\n"),
              HasSubstr("config: a mapping key must be a scalar"));
}

TEST(YamlToJsonTest, CyclicAliasIsRefused) {
  EXPECT_THAT(JsonError("a: &x [*x]\n"), HasSubstr("nested deeper than 64"));
}

TEST(YamlToJsonTest, AliasBombIsRefused) {
  std::string yaml = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 9; ++i) {
    std::string prev = "*a" + std::to_string(i - 1);
    yaml += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) yaml += (j ? ", " : "") + prev;
    yaml += "]\n";
  }
  EXPECT_THAT(JsonError(yaml), HasSubstr("more than 16 MiB or 100000 nodes"));
}

TEST(YamlToJsonTest, UndefinedNodeIsAnError) {
  YAML::Node root = YAML::Load("a: 1");
  const YAML::Node& const_root = root;
  absl::StatusOr<std::string> json = YamlToJson(const_root["missing"], "x");
  ASSERT_FALSE(json.ok());
  EXPECT_EQ(json.status().message(), "x: undefined YAML node");
}

// ---- RunConfigFromJson ----

std::string MapError(const std::string& json) {
  v1::RunConfig config;
  absl::Status status = RunConfigFromJson(json, &config, "run.yaml");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << json;
  return std::string(status.message());
}

TEST(RunConfigFromJsonTest, UnknownNestedFieldNamesPathAndMessage) {
  EXPECT_EQ(MapError(R"({"optimizer":{"lrr":0.1}})"),
            "run.yaml: optimizer.lrr: unknown field \"lrr\" in "
            "sweepq.v1.OptimizerConfig");
  EXPECT_EQ(MapError(R"({"augment":{"cutmix":{"pp":1}}})"),
            "run.yaml: augment.cutmix.pp: unknown field \"pp\" in "
            "sweepq.v1.CutMix");
}

TEST(RunConfigFromJsonTest, UnknownTopLevelFieldNamesRunConfig) {
  EXPECT_EQ(MapError(R"({"optimiser":{}})"),
            "run.yaml: optimiser: unknown field \"optimiser\" in "
            "sweepq.v1.RunConfig");
}

TEST(RunConfigFromJsonTest, WrongScalarTypeNamesPathAndExpectation) {
  EXPECT_EQ(MapError(R"({"optimizer":{"lr":"fast"}})"),
            "run.yaml: optimizer.lr: expected a number, got \"fast\"");
  EXPECT_EQ(MapError(R"({"model":{"name":3}})"),
            "run.yaml: model.name: expected a string, got 3");
  EXPECT_EQ(MapError(R"({"crop":{"enabled":1}})"),
            "run.yaml: crop.enabled: expected true or false, got 1");
  EXPECT_EQ(MapError(R"({"train":{"epochs":-1}})"),
            "run.yaml: train.epochs: expected an integer in [0, 4294967295], "
            "got -1");
  EXPECT_EQ(MapError(R"({"train":{"epochs":99999999999}})"),
            "run.yaml: train.epochs: expected an integer in [0, 4294967295], "
            "got 99999999999");
  EXPECT_EQ(MapError(R"({"crop":{"pad_x":1.5}})"),
            "run.yaml: crop.pad_x: expected an integer in [-2147483648, "
            "2147483647], got 1.5");
}

TEST(RunConfigFromJsonTest, WrongListElementNamesIndex) {
  EXPECT_EQ(MapError(R"({"tta":{"transforms":["hflip",3]}})"),
            "run.yaml: tta.transforms[1]: expected a string, got 3");
  EXPECT_EQ(MapError(R"({"data":{"age_bounds":[30,"old"]}})"),
            "run.yaml: data.age_bounds[1]: expected an integer in "
            "[-2147483648, 2147483647], got \"old\"");
}

TEST(RunConfigFromJsonTest, WrongShapeNamesPath) {
  EXPECT_EQ(MapError(R"({"optimizer":{"name":{"a":1}}})"),
            "run.yaml: optimizer.name: expected a string, got a mapping");
  EXPECT_EQ(MapError(R"({"optimizer":{"name":["adam"]}})"),
            "run.yaml: optimizer.name: expected a string, got a list");
  EXPECT_EQ(MapError(R"({"optimizer":5})"),
            "run.yaml: optimizer: expected a mapping "
            "(sweepq.v1.OptimizerConfig), got 5");
  EXPECT_EQ(MapError(R"({"optimizer":[1]})"),
            "run.yaml: optimizer: expected a mapping "
            "(sweepq.v1.OptimizerConfig), got a list");
  EXPECT_EQ(MapError(R"({"data":{"age_bounds":{"a":1}}})"),
            "run.yaml: data.age_bounds: expected a list of integers, got a "
            "mapping");
}

TEST(RunConfigFromJsonTest, FieldSetTwiceIsAnError) {
  EXPECT_EQ(MapError(R"({"optimizer":{"lr":1,"lr":2}})"),
            "run.yaml: optimizer.lr: set more than once");
}

TEST(RunConfigFromJsonTest, DocumentErrorsHaveNoPath) {
  EXPECT_EQ(MapError("[1]"),
            "run.yaml: expected a JSON object (a mapping) at the top level");
  EXPECT_THAT(MapError(R"({"optimizer":{"lr":)"),
              HasSubstr("run.yaml: invalid JSON: Unexpected end of string"));
}

TEST(RunConfigFromJsonTest, MapJsonToRunConfigSplitsPathAndDetail) {
  v1::RunConfig config;
  std::optional<RunConfigJsonError> error =
      MapJsonToRunConfig(R"({"optimizer":{"lrr":0.1}})", &config);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->path, "optimizer.lrr");
  EXPECT_EQ(error->detail,
            "unknown field \"lrr\" in sweepq.v1.OptimizerConfig");
  EXPECT_FALSE(MapJsonToRunConfig(R"({"optimizer":{"lr":0.1}})", &config));
  EXPECT_DOUBLE_EQ(config.optimizer().lr(), 0.1);
}

TEST(RunConfigFromJsonTest, ClearsTheOutputFirst) {
  v1::RunConfig config;
  config.set_name("stale");
  ASSERT_TRUE(RunConfigFromJson(R"({"seed":3})", &config, "x").ok());
  EXPECT_EQ(config.name(), "");
  EXPECT_EQ(config.seed(), 3u);
}

// ---- ValidateRunConfig ----

v1::RunConfig MinimalConfig() {
  v1::RunConfig config;
  config.mutable_data()->set_dataset("mask");
  config.mutable_model()->set_name("small_cnn");
  config.mutable_train()->set_epochs(1);
  return config;
}

struct RuleCase {
  std::string name;
  std::function<void(v1::RunConfig*)> mutate;
  std::string message;  // expected message, exactly
};

std::ostream& operator<<(std::ostream& os, const RuleCase& c) {
  return os << c.name;
}

class ValidateRuleTest : public ::testing::TestWithParam<RuleCase> {};

TEST_P(ValidateRuleTest, ViolationIsRejectedWithPathAndReason) {
  v1::RunConfig config = MinimalConfig();
  GetParam().mutate(&config);
  absl::Status status = ValidateRunConfig(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), GetParam().message);
}

const double kNan = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

std::vector<RuleCase> RuleCases() {
  using C = v1::RunConfig;
  return {
      // Required fields.
      {"DatasetRequired", [](C* c) { c->mutable_data()->clear_dataset(); },
       "data.dataset: required"},
      {"ModelRequired", [](C* c) { c->mutable_model()->clear_name(); },
       "model.name: required (small_cnn, resnet18, resnet34, resnet50 or "
       "torchscript)"},
      {"EpochsRequired", [](C* c) { c->mutable_train()->set_epochs(0); },
       "train.epochs: required (> 0)"},
      // Finite doubles.
      {"NanLr", [](C* c) { c->mutable_optimizer()->set_lr(kNan); },
       "optimizer.lr: must be finite, got nan"},
      {"InfWeightDecay",
       [](C* c) { c->mutable_optimizer()->set_weight_decay(kInf); },
       "optimizer.weight_decay: must be finite, got inf"},
      {"NanInList",
       [](C* c) {
         c->mutable_augment()->add_mean(0.5);
         c->mutable_augment()->add_mean(-kInf);
       },
       "augment.mean[1]: must be finite, got -inf"},
      // data.
      {"Layout", [](C* c) { c->mutable_data()->set_layout("folder"); },
       "data.layout: \"folder\" is not one of mask, image_folder, csv"},
      {"CsvLayoutNeedsCsv", [](C* c) { c->mutable_data()->set_layout("csv"); },
       "data.csv: required by layout csv"},
      {"Split", [](C* c) { c->mutable_data()->set_split("cv"); },
       "data.split: \"cv\" is not one of holdout, kfold, full"},
      {"ValRatioZero", [](C* c) { c->mutable_data()->set_val_ratio(0); },
       "data.val_ratio: 0 is not in (0, 1)"},
      {"ValRatioOne", [](C* c) { c->mutable_data()->set_val_ratio(1); },
       "data.val_ratio: 1 is not in (0, 1)"},
      {"KfoldNeedsTwoFolds",
       [](C* c) {
         c->mutable_data()->set_split("kfold");
         c->mutable_data()->set_folds(1);
       },
       "data.folds: split kfold needs folds >= 2, got 1"},
      {"KfoldFoldBelowFolds",
       [](C* c) {
         c->mutable_data()->set_split("kfold");
         c->mutable_data()->set_folds(5);
         c->mutable_data()->set_fold(5);
       },
       "data.fold: 5 is not in [0, 5) (data.folds)"},
      {"AgeBoundsDescending",
       [](C* c) {
         c->mutable_data()->add_age_bounds(60);
         c->mutable_data()->add_age_bounds(30);
       },
       "data.age_bounds[1]: bounds must be strictly ascending, got 60 then "
       "30"},
      {"AgeBoundsEqual",
       [](C* c) {
         c->mutable_data()->add_age_bounds(30);
         c->mutable_data()->add_age_bounds(30);
       },
       "data.age_bounds[1]: bounds must be strictly ascending, got 30 then "
       "30"},
      {"MaxBadFraction",
       [](C* c) { c->mutable_data()->set_max_bad_fraction(1.5); },
       "data.max_bad_fraction: 1.5 is not in [0, 1]"},
      // crop.
      {"Detector", [](C* c) { c->mutable_crop()->add_detectors("mtcnn"); },
       "crop.detectors[0]: \"mtcnn\" is not one of haar, yunet, fixed"},
      {"YunetNeedsModel",
       [](C* c) {
         c->mutable_crop()->add_detectors("haar");
         c->mutable_crop()->add_detectors("yunet");
       },
       "crop.yunet_model: required by detector yunet"},
      // augment.
      {"Hflip", [](C* c) { c->mutable_augment()->set_hflip(1.2); },
       "augment.hflip: 1.2 is not in [0, 1]"},
      {"JitterP",
       [](C* c) { c->mutable_augment()->mutable_color_jitter()->set_p(-0.1); },
       "augment.color_jitter.p: -0.1 is not in [0, 1]"},
      {"JitterBrightness",
       [](C* c) {
         c->mutable_augment()->mutable_color_jitter()->set_brightness(-1);
       },
       "augment.color_jitter.brightness: must be >= 0, got -1"},
      {"JitterContrast",
       [](C* c) {
         c->mutable_augment()->mutable_color_jitter()->set_contrast(-1);
       },
       "augment.color_jitter.contrast: must be >= 0, got -1"},
      {"JitterSaturation",
       [](C* c) {
         c->mutable_augment()->mutable_color_jitter()->set_saturation(-1);
       },
       "augment.color_jitter.saturation: must be >= 0, got -1"},
      {"JitterHue",
       [](C* c) { c->mutable_augment()->mutable_color_jitter()->set_hue(0.6); },
       "augment.color_jitter.hue: 0.6 is not in [0, 0.5]"},
      {"Autoaugment",
       [](C* c) { c->mutable_augment()->set_autoaugment("cifar10"); },
       "augment.autoaugment: \"cifar10\" is not one of imagenet"},
      {"CutoutP",
       [](C* c) { c->mutable_augment()->mutable_cutout()->set_p(2); },
       "augment.cutout.p: 2 is not in [0, 1]"},
      {"CutoutSize",
       [](C* c) { c->mutable_augment()->mutable_cutout()->set_size(1.5); },
       "augment.cutout.size: 1.5 is not in [0, 1]"},
      {"CutmixP",
       [](C* c) { c->mutable_augment()->mutable_cutmix()->set_p(1.01); },
       "augment.cutmix.p: 1.01 is not in [0, 1]"},
      {"CutmixBeta",
       [](C* c) { c->mutable_augment()->mutable_cutmix()->set_beta(0); },
       "augment.cutmix.beta: must be > 0, got 0"},
      {"CutmixMode",
       [](C* c) {
         c->mutable_augment()->mutable_cutmix()->set_mode("diagonal");
       },
       "augment.cutmix.mode: \"diagonal\" is not one of box, vertical, "
       "horizontal"},
      {"MixupP", [](C* c) { c->mutable_augment()->mutable_mixup()->set_p(-1); },
       "augment.mixup.p: -1 is not in [0, 1]"},
      {"MixupAlpha",
       [](C* c) { c->mutable_augment()->mutable_mixup()->set_alpha(0); },
       "augment.mixup.alpha: must be > 0, got 0"},
      {"RrcScaleMin",
       [](C* c) {
         c->mutable_augment()->mutable_random_resized_crop()->set_scale_min(0);
       },
       "augment.random_resized_crop.scale_min: 0 is not in (0, 1]"},
      {"RrcScaleMax",
       [](C* c) {
         c->mutable_augment()->mutable_random_resized_crop()->set_scale_max(
             1.5);
       },
       "augment.random_resized_crop.scale_max: 1.5 is not in (0, 1]"},
      {"RrcScaleOrder",
       [](C* c) {
         auto* rrc = c->mutable_augment()->mutable_random_resized_crop();
         rrc->set_scale_min(0.9);
         rrc->set_scale_max(0.8);
       },
       "augment.random_resized_crop.scale_min: 0.9 is greater than "
       "scale_max 0.8"},
      {"RrcRatioMin",
       [](C* c) {
         c->mutable_augment()->mutable_random_resized_crop()->set_ratio_min(0);
       },
       "augment.random_resized_crop.ratio_min: must be > 0, got 0"},
      {"RrcRatioMax",
       [](C* c) {
         c->mutable_augment()->mutable_random_resized_crop()->set_ratio_max(-1);
       },
       "augment.random_resized_crop.ratio_max: must be > 0, got -1"},
      {"RrcRatioOrder",
       [](C* c) {
         auto* rrc = c->mutable_augment()->mutable_random_resized_crop();
         rrc->set_ratio_min(2);
         rrc->set_ratio_max(1);
       },
       "augment.random_resized_crop.ratio_min: 2 is greater than ratio_max "
       "1"},
      {"MeanLength",
       [](C* c) {
         c->mutable_augment()->add_mean(0.5);
         c->mutable_augment()->add_mean(0.5);
       },
       "augment.mean: needs 0 or 3 values (one per channel), got 2"},
      {"StdLength",
       [](C* c) {
         for (int i = 0; i < 4; ++i) c->mutable_augment()->add_std(0.2);
       },
       "augment.std: needs 0 or 3 values (one per channel), got 4"},
      {"StdPositive",
       [](C* c) {
         c->mutable_augment()->add_std(0.2);
         c->mutable_augment()->add_std(0);
         c->mutable_augment()->add_std(0.2);
       },
       "augment.std[1]: must be > 0, got 0"},
      // model.
      {"ModelName", [](C* c) { c->mutable_model()->set_name("vit"); },
       "model.name: \"vit\" is not one of small_cnn, resnet18, resnet34, "
       "resnet50, torchscript"},
      {"TorchscriptNeedsPath",
       [](C* c) { c->mutable_model()->set_name("torchscript"); },
       "model.torchscript: required by model torchscript (the scripted "
       "module's path)"},
      {"Dropout", [](C* c) { c->mutable_model()->set_dropout(1); },
       "model.dropout: 1 is not in [0, 1)"},
      {"HeadWeightMask",
       [](C* c) { c->mutable_model()->mutable_head_weights()->set_mask(-1); },
       "model.head_weights.mask: must be >= 0, got -1"},
      {"HeadWeightGender",
       [](C* c) { c->mutable_model()->mutable_head_weights()->set_gender(-1); },
       "model.head_weights.gender: must be >= 0, got -1"},
      {"HeadWeightAge",
       [](C* c) { c->mutable_model()->mutable_head_weights()->set_age(-1); },
       "model.head_weights.age: must be >= 0, got -1"},
      // loss.
      {"LossName", [](C* c) { c->mutable_loss()->set_name("bce"); },
       "loss.name: \"bce\" is not one of ce, focal, f1"},
      {"LabelSmoothing",
       [](C* c) { c->mutable_loss()->set_label_smoothing(1); },
       "loss.label_smoothing: 1 is not in [0, 1)"},
      {"FocalGamma", [](C* c) { c->mutable_loss()->set_focal_gamma(-1); },
       "loss.focal_gamma: must be >= 0, got -1"},
      {"ClassWeights",
       [](C* c) {
         c->mutable_loss()->add_class_weights(1);
         c->mutable_loss()->add_class_weights(-0.5);
       },
       "loss.class_weights[1]: must be >= 0, got -0.5"},
      {"CeWeight", [](C* c) { c->mutable_loss()->set_ce_weight(-1); },
       "loss.ce_weight: must be >= 0, got -1"},
      {"FocalWeight", [](C* c) { c->mutable_loss()->set_focal_weight(-1); },
       "loss.focal_weight: must be >= 0, got -1"},
      {"F1Weight", [](C* c) { c->mutable_loss()->set_f1_weight(-1); },
       "loss.f1_weight: must be >= 0, got -1"},
      // optimizer.
      {"OptimizerName",
       [](C* c) { c->mutable_optimizer()->set_name("radamm"); },
       "optimizer.name: \"radamm\" is not one of sgd, adam, adamw, radam"},
      {"LrZero", [](C* c) { c->mutable_optimizer()->set_lr(0); },
       "optimizer.lr: must be > 0, got 0"},
      {"LrNegative", [](C* c) { c->mutable_optimizer()->set_lr(-0.001); },
       "optimizer.lr: must be > 0, got -0.001"},
      {"WeightDecay",
       [](C* c) { c->mutable_optimizer()->set_weight_decay(-0.1); },
       "optimizer.weight_decay: must be >= 0, got -0.1"},
      {"Momentum", [](C* c) { c->mutable_optimizer()->set_momentum(1); },
       "optimizer.momentum: 1 is not in [0, 1)"},
      {"Beta1", [](C* c) { c->mutable_optimizer()->set_beta1(1); },
       "optimizer.beta1: 1 is not in [0, 1)"},
      {"Beta2", [](C* c) { c->mutable_optimizer()->set_beta2(-0.1); },
       "optimizer.beta2: -0.1 is not in [0, 1)"},
      {"Eps", [](C* c) { c->mutable_optimizer()->set_eps(0); },
       "optimizer.eps: must be > 0, got 0"},
      {"GradClip", [](C* c) { c->mutable_optimizer()->set_grad_clip_norm(-1); },
       "optimizer.grad_clip_norm: must be >= 0, got -1"},
      // scheduler.
      {"SchedulerName",
       [](C* c) { c->mutable_scheduler()->set_name("linear"); },
       "scheduler.name: \"linear\" is not one of none, cosine, "
       "cosine_restarts, step, plateau"},
      {"StepNeedsStepSize",
       [](C* c) { c->mutable_scheduler()->set_name("step"); },
       "scheduler.step_size: required (> 0) by scheduler step"},
      {"RestartsNeedT0",
       [](C* c) { c->mutable_scheduler()->set_name("cosine_restarts"); },
       "scheduler.t_0: required (> 0) by scheduler cosine_restarts"},
      {"TMult", [](C* c) { c->mutable_scheduler()->set_t_mult(0); },
       "scheduler.t_mult: must be >= 1, got 0"},
      {"EtaMin", [](C* c) { c->mutable_scheduler()->set_eta_min(-1); },
       "scheduler.eta_min: must be >= 0, got -1"},
      {"Gamma", [](C* c) { c->mutable_scheduler()->set_gamma(0); },
       "scheduler.gamma: must be > 0, got 0"},
      {"WarmupStartFactorZero",
       [](C* c) { c->mutable_scheduler()->set_warmup_start_factor(0); },
       "scheduler.warmup_start_factor: 0 is not in (0, 1]"},
      {"WarmupStartFactorAboveOne",
       [](C* c) { c->mutable_scheduler()->set_warmup_start_factor(1.5); },
       "scheduler.warmup_start_factor: 1.5 is not in (0, 1]"},
      {"PlateauFactor",
       [](C* c) { c->mutable_scheduler()->set_plateau_factor(1); },
       "scheduler.plateau_factor: 1 is not in (0, 1)"},
      // early_stopping, train, tta.
      {"Goal", [](C* c) { c->mutable_early_stopping()->set_goal("max"); },
       "early_stopping.goal: \"max\" is not one of maximize, minimize"},
      {"MinDelta",
       [](C* c) { c->mutable_early_stopping()->set_min_delta(-0.01); },
       "early_stopping.min_delta: must be >= 0, got -0.01"},
      {"Device", [](C* c) { c->mutable_train()->set_device("tpu"); },
       "train.device: \"tpu\" is not one of auto, cpu, cuda"},
      {"CheckpointEvery",
       [](C* c) { c->mutable_train()->set_checkpoint_every_epochs(0); },
       "train.checkpoint_every_epochs: must be >= 1, got 0"},
      {"TtaTransform",
       [](C* c) {
         c->mutable_tta()->add_transforms("hflip");
         c->mutable_tta()->add_transforms("flip");
       },
       "tta.transforms[1]: \"flip\" is not one of hflip, multicrop, scale"},
      {"TtaScale", [](C* c) { c->mutable_tta()->add_scales(0); },
       "tta.scales[0]: must be > 0, got 0"},
  };
}

INSTANTIATE_TEST_SUITE_P(AllRules, ValidateRuleTest,
                         ::testing::ValuesIn(RuleCases()),
                         [](const ::testing::TestParamInfo<RuleCase>& info) {
                           return info.param.name;
                         });

// ---- Jobs (RunConfig.job) ----

v1::RunConfig MinimalJob(const std::string& kind) {
  v1::RunConfig config;
  config.mutable_data()->set_dataset("mask");
  config.mutable_job()->set_kind(kind);
  config.mutable_job()->add_source_runs(7);
  if (kind == "gradcam") config.mutable_job()->set_gradcam_class(4);
  return config;
}

class ValidateJobRuleTest : public ::testing::TestWithParam<RuleCase> {};

TEST_P(ValidateJobRuleTest, ViolationIsRejectedWithPathAndReason) {
  const bool gradcam = absl::StartsWith(GetParam().name, "Gradcam");
  v1::RunConfig config = MinimalJob(gradcam ? "gradcam" : "predict");
  GetParam().mutate(&config);
  absl::Status status = ValidateRunConfig(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), GetParam().message);
}

std::vector<RuleCase> JobRuleCases() {
  using C = v1::RunConfig;
  return {
      {"Kind", [](C* c) { c->mutable_job()->set_kind("train"); },
       "job.kind: \"train\" is not one of predict, gradcam"},
      {"DatasetRequired", [](C* c) { c->mutable_data()->clear_dataset(); },
       "data.dataset: required (the data set the job reads)"},
      {"ModelNotAllowed",
       [](C* c) { c->mutable_model()->set_name("resnet18"); },
       "model: not allowed in a job: a job uses its source runs' settings "
       "(only data.dataset, seed, threads, interop_threads and name go with "
       "job)"},
      {"DataFieldNotAllowed",
       [](C* c) { c->mutable_data()->set_split("full"); },
       "data.split: not allowed in a job: a job uses its source runs' "
       "settings (only data.dataset, seed, threads, interop_threads and name "
       "go with job)"},
      {"SourcesRequired",
       [](C* c) { c->mutable_job()->clear_source_runs(); },
       "job.source_runs: required (at least one run id)"},
      {"SourceId", [](C* c) { c->mutable_job()->add_source_runs(-3); },
       "job.source_runs[1]: must be a run id (> 0), got -3"},
      {"TooManySources",
       [](C* c) {
         for (int i = 0; i < 64; ++i) c->mutable_job()->add_source_runs(i + 8);
       },
       "job.source_runs: at most 64 runs in an ensemble, got 65"},
      {"Split", [](C* c) { c->mutable_job()->set_split("test"); },
       "job.split: \"test\" is not one of eval, val"},
      {"JobTta",
       [](C* c) { c->mutable_job()->mutable_tta()->add_transforms("rot"); },
       "job.tta.transforms[0]: \"rot\" is not one of hflip, multicrop, "
       "scale"},
      {"GradcamFieldsOnPredict",
       [](C* c) {
         c->mutable_job()->set_kind("predict");
         c->mutable_job()->clear_gradcam_class();
         c->mutable_job()->set_gradcam_images(3);
       },
       "job.gradcam_class: gradcam_* settings belong to kind gradcam"},
      {"GradcamOneSource",
       [](C* c) { c->mutable_job()->add_source_runs(8); },
       "job.source_runs: gradcam takes exactly one run, got 2"},
      {"GradcamClassRequired",
       [](C* c) { c->mutable_job()->clear_gradcam_class(); },
       "job.gradcam_class: required for kind gradcam"},
      {"GradcamImages",
       [](C* c) { c->mutable_job()->set_gradcam_images(65); },
       "job.gradcam_images: at most 64, got 65"},
      {"GradcamTta",
       [](C* c) { c->mutable_job()->mutable_tta()->add_transforms("hflip"); },
       "job.tta: belongs to kind predict (gradcam uses the validation split "
       "without test-time augmentation)"},
  };
}

INSTANTIATE_TEST_SUITE_P(AllRules, ValidateJobRuleTest,
                         ::testing::ValuesIn(JobRuleCases()),
                         [](const ::testing::TestParamInfo<RuleCase>& info) {
                           return info.param.name;
                         });

TEST(ValidateRunConfigTest, MinimalJobsAreValidWithRunLevelSettings) {
  for (const char* kind : {"predict", "gradcam"}) {
    v1::RunConfig config = MinimalJob(kind);
    config.set_seed(3);
    config.set_threads(2);
    config.set_name("submission");
    EXPECT_TRUE(ValidateRunConfig(config).ok()) << kind;
  }
  v1::RunConfig ensemble = MinimalJob("predict");
  ensemble.mutable_job()->add_source_runs(8);
  ensemble.mutable_job()->set_split("val");
  ensemble.mutable_job()->mutable_tta()->add_transforms("hflip");
  EXPECT_TRUE(ValidateRunConfig(ensemble).ok());
}

TEST(ValidateRunConfigTest, MinimalConfigIsValid) {
  EXPECT_TRUE(ValidateRunConfig(MinimalConfig()).ok());
}

TEST(ValidateRunConfigTest, BoundaryValuesAreAccepted) {
  v1::RunConfig config = MinimalConfig();
  config.mutable_augment()->set_hflip(0);
  config.mutable_augment()->mutable_cutmix()->set_p(1);
  config.mutable_augment()->mutable_color_jitter()->set_hue(0.5);
  config.mutable_data()->set_split("kfold");
  config.mutable_data()->set_folds(5);
  config.mutable_data()->set_fold(4);
  config.mutable_data()->set_val_ratio(0.5);
  config.mutable_scheduler()->set_warmup_start_factor(1);
  config.mutable_optimizer()->set_momentum(0);
  config.mutable_model()->set_name("torchscript");
  config.mutable_model()->set_torchscript("m.pt");
  config.mutable_data()->set_layout("csv");
  config.mutable_data()->set_csv("labels.csv");
  EXPECT_TRUE(ValidateRunConfig(config).ok()) << ValidateRunConfig(config);
}

TEST(ValidateRunConfigTest, EmptyChoiceMeansDefault) {
  v1::RunConfig config = MinimalConfig();
  config.mutable_optimizer()->set_weight_decay(0.01);  // name stays ""
  config.mutable_scheduler()->set_warmup_epochs(2);
  EXPECT_TRUE(ValidateRunConfig(config).ok());
}

// ---- LoadRunConfigYaml ----

constexpr char kFullYaml[] = R"yaml(
name: full
seed: 42
threads: 4
interop_threads: 1
data:
  dataset: mask
  layout: mask
  label_overrides: fixes.csv
  split: kfold
  val_ratio: 0.2
  fold: 1
  folds: 5
  age_bounds: [30, 58]
  image_width: 96
  image_height: 128
  weighted_sampling: true
  loader_threads: 4
  prefetch_batches: 8
  decode_cache_bytes: 1073741824
  max_bad_fraction: 0.01
  max_image_pixels: 40000000
crop:
  enabled: true
  detectors: [yunet, haar, fixed]
  yunet_model: models/yunet.onnx
  min_confidence: 0.6
  pad_x: 20
  pad_y: -10
  fixed_box: {x: 80, y: 50, width: 220, height: 320}
  cache_dir: /tmp/crops
augment:
  hflip: 0.5
  color_jitter: {brightness: 0.2, contrast: 0.2, saturation: 0.1, hue: 0.05, p: 0.8}
  autoaugment: imagenet
  cutout: {p: 0.3, size: 0.25, holes: 2}
  cutmix: {p: 0.5, beta: 1.0, mode: vertical}
  mixup: {p: 0.1, alpha: 0.4}
  random_resized_crop: {enabled: true, scale_min: 0.8, scale_max: 1.0, ratio_min: 0.75, ratio_max: 1.3333333333333333}
  center_crop_width: 300
  center_crop_height: 400
  mean: [0.548, 0.504, 0.479]
  std: [0.237, 0.247, 0.246]
model:
  name: resnet18
  num_classes: 18
  multi_head: true
  head_weights: {mask: 1.0, gender: 0.5, age: 2}
  dropout: 0.3
  head_attribute: fc
loss:
  name: focal
  label_smoothing: 0.1
  focal_gamma: 2.0
  class_weights: [1, 1.5, 2]
  ce_weight: 0.5
  focal_weight: 0.5
  f1_weight: 0.0
optimizer:
  name: radam
  lr: 3.0e-4
  weight_decay: 1.0e-2
  momentum: 0.9
  nesterov: true
  beta1: 0.9
  beta2: 0.999
  eps: 1.0e-8
  no_decay_norm_bias: true
  grad_clip_norm: 5
scheduler:
  name: cosine_restarts
  t_max: 10
  eta_min: 1.0e-6
  t_0: 5
  t_mult: 2
  step_size: 3
  gamma: 0.5
  warmup_epochs: 1
  warmup_start_factor: 0.1
  plateau_patience: 2
  plateau_factor: 0.5
early_stopping: {metric: val_f1, goal: maximize, patience: 5, min_delta: 0.001}
train:
  epochs: 30
  batch_size: 64
  val_batch_size: 128
  log_every_steps: 50
  checkpoint_every_epochs: 2
  device: cuda
  amp: true
  channels_last: true
tta:
  transforms: [hflip, scale]
  scales: [0.9, 1.1]
)yaml";

constexpr char kFullText[] = R"pb(
  name: "full"
  seed: 42
  threads: 4
  interop_threads: 1
  data {
    dataset: "mask"
    layout: "mask"
    label_overrides: "fixes.csv"
    split: "kfold"
    val_ratio: 0.2
    fold: 1
    folds: 5
    age_bounds: [ 30, 58 ]
    image_width: 96
    image_height: 128
    weighted_sampling: true
    loader_threads: 4
    prefetch_batches: 8
    decode_cache_bytes: 1073741824
    max_bad_fraction: 0.01
    max_image_pixels: 40000000
  }
  crop {
    enabled: true
    detectors: [ "yunet", "haar", "fixed" ]
    yunet_model: "models/yunet.onnx"
    min_confidence: 0.6
    pad_x: 20
    pad_y: -10
    fixed_box { x: 80 y: 50 width: 220 height: 320 }
    cache_dir: "/tmp/crops"
  }
  augment {
    hflip: 0.5
    color_jitter {
      brightness: 0.2
      contrast: 0.2
      saturation: 0.1
      hue: 0.05
      p: 0.8
    }
    autoaugment: "imagenet"
    cutout { p: 0.3 size: 0.25 holes: 2 }
    cutmix { p: 0.5 beta: 1.0 mode: "vertical" }
    mixup { p: 0.1 alpha: 0.4 }
    random_resized_crop {
      enabled: true
      scale_min: 0.8
      scale_max: 1.0
      ratio_min: 0.75
      ratio_max: 1.3333333333333333
    }
    center_crop_width: 300
    center_crop_height: 400
    mean: [ 0.548, 0.504, 0.479 ]
    std: [ 0.237, 0.247, 0.246 ]
  }
  model {
    name: "resnet18"
    num_classes: 18
    multi_head: true
    head_weights { mask: 1.0 gender: 0.5 age: 2 }
    dropout: 0.3
    head_attribute: "fc"
  }
  loss {
    name: "focal"
    label_smoothing: 0.1
    focal_gamma: 2.0
    class_weights: [ 1, 1.5, 2 ]
    ce_weight: 0.5
    focal_weight: 0.5
  }
  optimizer {
    name: "radam"
    lr: 3.0e-4
    weight_decay: 1.0e-2
    momentum: 0.9
    nesterov: true
    beta1: 0.9
    beta2: 0.999
    eps: 1.0e-8
    no_decay_norm_bias: true
    grad_clip_norm: 5
  }
  scheduler {
    name: "cosine_restarts"
    t_max: 10
    eta_min: 1.0e-6
    t_0: 5
    t_mult: 2
    step_size: 3
    gamma: 0.5
    warmup_epochs: 1
    warmup_start_factor: 0.1
    plateau_patience: 2
    plateau_factor: 0.5
  }
  early_stopping {
    metric: "val_f1"
    goal: "maximize"
    patience: 5
    min_delta: 0.001
  }
  train {
    epochs: 30
    batch_size: 64
    val_batch_size: 128
    log_every_steps: 50
    checkpoint_every_epochs: 2
    device: "cuda"
    amp: true
    channels_last: true
  }
  tta {
    transforms: [ "hflip", "scale" ]
    scales: [ 0.9, 1.1 ]
  }
)pb";

TEST(LoadRunConfigYamlTest, FullConfigMapsExactlyAndRoundTrips) {
  absl::StatusOr<v1::RunConfig> loaded = LoadRunConfigYaml(kFullYaml, "full");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  v1::RunConfig expected;
  ASSERT_TRUE(
      google::protobuf::TextFormat::ParseFromString(kFullText, &expected));
  std::string diff;
  google::protobuf::util::MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&diff);
  EXPECT_TRUE(differencer.Compare(expected, *loaded)) << diff;

  // Proto -> JSON -> RunConfig gives the same message.
  std::string json;
  google::protobuf::util::JsonPrintOptions print;
  print.preserve_proto_field_names = true;
  ASSERT_TRUE(
      google::protobuf::util::MessageToJsonString(*loaded, &json, print).ok());
  v1::RunConfig again;
  ASSERT_TRUE(RunConfigFromJson(json, &again, "json").ok());
  EXPECT_TRUE(
      google::protobuf::util::MessageDifferencer::Equals(*loaded, again));
  EXPECT_TRUE(ValidateRunConfig(again).ok());
}

TEST(LoadRunConfigYamlTest, CamelCaseKeysAreAcceptedToo) {
  absl::StatusOr<v1::RunConfig> loaded = LoadRunConfigYaml(
      "data: {dataset: mask, ageBounds: [20, 40]}\nmodel: {name: resnet34}\n"
      "train: {epochs: 2, batchSize: 16}\n",
      "run.yaml");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->data().age_bounds_size(), 2);
  EXPECT_EQ(loaded->train().batch_size(), 16u);
}

TEST(LoadRunConfigYamlTest, MalformedYamlGivesLineAndColumn) {
  absl::StatusOr<v1::RunConfig> loaded = LoadRunConfigYaml(
      "data:\n  dataset: mask\nmodel: {name: small_cnn\ntrain: {epochs: 1}\n",
      "run.yaml");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(loaded.status().message()),
              HasSubstr("run.yaml: YAML syntax error at line 4, column 6"));
}

TEST(LoadRunConfigYamlTest, BadIndentationGivesLineAndColumn) {
  absl::StatusOr<v1::RunConfig> loaded =
      LoadRunConfigYaml("data:\n  dataset: mask\n layout: mask\n", "run.yaml");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().message(),
            "run.yaml: YAML syntax error at line 3, column 2: end of map not "
            "found");
}

TEST(LoadRunConfigYamlTest, UnknownNestedKeyNamesPath) {
  absl::StatusOr<v1::RunConfig> loaded = LoadRunConfigYaml(
      "data: {dataset: mask}\nmodel: {name: small_cnn}\ntrain: {epochs: 1}\n"
      "optimizer: {name: adam, lrr: 0.1}\n",
      "run.yaml");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().message(),
            "run.yaml: optimizer.lrr: unknown field \"lrr\" in "
            "sweepq.v1.OptimizerConfig");
}

TEST(LoadRunConfigYamlTest, WrongTypeNamesPath) {
  absl::StatusOr<v1::RunConfig> loaded = LoadRunConfigYaml(
      "data: {dataset: mask}\nmodel: {name: small_cnn}\ntrain: {epochs: 1}\n"
      "optimizer: {lr: fast}\n",
      "run.yaml");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().message(),
            "run.yaml: optimizer.lr: expected a number, got \"fast\"");
}

TEST(LoadRunConfigYamlTest, QuotedNumberForStringFieldStaysString) {
  absl::StatusOr<v1::RunConfig> loaded = LoadRunConfigYaml(
      "data: {dataset: \"2024\"}\nmodel: {name: small_cnn}\n"
      "train: {epochs: 1}\n",
      "run.yaml");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->data().dataset(), "2024");
  // Unquoted, 2024 is a number and a string field refuses it.
  loaded = LoadRunConfigYaml(
      "data: {dataset: 2024}\nmodel: {name: small_cnn}\ntrain: {epochs: 1}\n",
      "run.yaml");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().message(),
            "run.yaml: data.dataset: expected a string, got 2024");
}

TEST(LoadRunConfigYamlTest, ValidationErrorsArePrefixedWithSource) {
  absl::StatusOr<v1::RunConfig> loaded = LoadRunConfigYaml(
      "data: {dataset: mask}\nmodel: {name: small_cnn}\ntrain: {epochs: 1}\n"
      "optimizer: {name: radamm}\n",
      "run.yaml");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(loaded.status().message(),
            "run.yaml: optimizer.name: \"radamm\" is not one of sgd, adam, "
            "adamw, radam");
}

TEST(LoadRunConfigYamlTest, NanFromYamlIsRejected) {
  absl::StatusOr<v1::RunConfig> loaded = LoadRunConfigYaml(
      "data: {dataset: mask}\nmodel: {name: small_cnn}\ntrain: {epochs: 1}\n"
      "optimizer: {lr: .nan}\n",
      "run.yaml");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().message(),
            "run.yaml: optimizer.lr: must be finite, got nan");
}

TEST(LoadRunConfigYamlTest, EmptyAndNonMappingDocumentsAreRejected) {
  EXPECT_EQ(LoadRunConfigYaml("", "run.yaml").status().message(),
            "run.yaml: empty document; expected a RunConfig mapping");
  EXPECT_EQ(
      LoadRunConfigYaml("- a\n- b\n", "run.yaml").status().message(),
      "run.yaml: expected a mapping of RunConfig keys (line 1, column 1)");
  EXPECT_EQ(
      LoadRunConfigYaml("a: 1\n---\nb: 2\n", "run.yaml").status().message(),
      "run.yaml: holds 2 YAML documents (separated by ---); expected one");
}

}  // namespace
}  // namespace sweepq
