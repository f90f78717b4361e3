#include "worker/pipeline/train_config.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/run_config.h"
#include "common/status_macros.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "worker/pipeline/dataset.h"
#include "worker/pipeline/face_crop.h"
#include "worker/pipeline/transforms.h"

namespace sweepq::worker {
namespace {

void ResolveData(v1::DataConfig& data) {
  if (data.layout().empty()) data.set_layout("mask");
  if (data.split().empty()) data.set_split("holdout");
  if (!data.has_val_ratio()) data.set_val_ratio(0.2);
  if (data.layout() == "mask" && data.age_bounds_size() == 0) {
    for (int bound : kDefaultAgeBounds) data.add_age_bounds(bound);
  }
  if (data.image_width() == 0) data.set_image_width(96);
  if (data.image_height() == 0) data.set_image_height(128);
  if (data.loader_threads() == 0) data.set_loader_threads(2);
  if (data.prefetch_batches() == 0) {
    data.set_prefetch_batches(2 * data.loader_threads());
  }
  if (!data.has_max_bad_fraction()) data.set_max_bad_fraction(0.01);
}

void ResolveCrop(const std::string& layout, v1::CropConfig& crop) {
  if (!crop.has_enabled()) crop.set_enabled(layout == "mask");
  if (!crop.enabled()) return;
  // The face-crop component's own defaults, written back.
  const FaceCropOptions options = FaceCropOptionsFromConfig(crop, "");
  crop.clear_detectors();
  for (const std::string& name : options.detectors) crop.add_detectors(name);
  crop.set_min_confidence(options.min_confidence);
  crop.set_pad_x(options.pad_x);
  crop.set_pad_y(options.pad_y);
  v1::Box* box = crop.mutable_fixed_box();
  box->set_x(options.fixed_box.x);
  box->set_y(options.fixed_box.y);
  box->set_width(options.fixed_box.width);
  box->set_height(options.fixed_box.height);
}

absl::Status ResolveAugment(v1::AugmentConfig& augment) {
  if (!augment.has_hflip()) augment.set_hflip(0.5);
  if (!augment.cutmix().has_beta()) augment.mutable_cutmix()->set_beta(1.0);
  if (augment.cutmix().mode().empty()) augment.mutable_cutmix()->set_mode("box");
  if (!augment.mixup().has_alpha()) augment.mutable_mixup()->set_alpha(1.0);
  absl::StatusOr<NormalizeOptions> normalize =
      NormalizeOptionsFromConfig(augment);
  if (!normalize.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("augment: ", normalize.status().message()));
  }
  augment.clear_mean();
  augment.clear_std();
  for (int c = 0; c < 3; ++c) {
    augment.add_mean(normalize->mean[c]);
    augment.add_std(normalize->std[c]);
  }
  return absl::OkStatus();
}

void ResolveOptimizerAndSchedule(const v1::TrainConfig& train,
                                 v1::OptimizerConfig& optimizer,
                                 v1::SchedulerConfig& scheduler) {
  if (optimizer.name().empty()) optimizer.set_name("adamw");
  if (!optimizer.has_lr()) optimizer.set_lr(1e-3);
  if (!optimizer.has_beta1()) optimizer.set_beta1(0.9);
  if (!optimizer.has_beta2()) optimizer.set_beta2(0.999);
  if (!optimizer.has_eps()) optimizer.set_eps(1e-8);
  if (scheduler.name().empty()) scheduler.set_name("none");
  const std::string& name = scheduler.name();
  if (name == "cosine" && scheduler.t_max() == 0 &&
      train.epochs() > scheduler.warmup_epochs()) {
    scheduler.set_t_max(train.epochs() - scheduler.warmup_epochs());
  }
  if (name == "cosine_restarts" && !scheduler.has_t_mult()) {
    scheduler.set_t_mult(1);
  }
  if (name == "step" && !scheduler.has_gamma()) scheduler.set_gamma(0.1);
  if (name == "plateau") {
    if (!scheduler.has_plateau_patience()) scheduler.set_plateau_patience(10);
    if (!scheduler.has_plateau_factor()) scheduler.set_plateau_factor(0.1);
  }
  if (scheduler.warmup_epochs() > 0 && !scheduler.has_warmup_start_factor()) {
    scheduler.set_warmup_start_factor(0.1);
  }
}

absl::Status CheckContradictions(const v1::RunConfig& c) {
  if (c.model().multi_head()) {
    if (c.data().layout() != "mask" || c.data().age_bounds_size() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model.multi_head: needs data.layout mask with 3 age bands (2 "
          "age_bounds); got layout ",
          c.data().layout(), " with ", c.data().age_bounds_size(),
          " age_bounds"));
    }
    if (c.loss().class_weights_size() > 0) {
      return absl::InvalidArgumentError(
          "loss.class_weights: not supported with model.multi_head (the "
          "heads have 3, 2 and 3 classes, not 18)");
    }
  }
  if (c.train().batch_size() == 1) {
    if (c.augment().cutmix().p() > 0.0) {
      return absl::InvalidArgumentError(
          "augment.cutmix.p: CutMix mixes samples of a batch and "
          "train.batch_size is 1");
    }
    if (c.augment().mixup().p() > 0.0) {
      return absl::InvalidArgumentError(
          "augment.mixup.p: MixUp mixes samples of a batch and "
          "train.batch_size is 1");
    }
  }
  const std::string& metric = c.early_stopping().metric();
  const auto& watchable = WatchableMetrics();
  if (std::find(watchable.begin(), watchable.end(), metric) ==
      watchable.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("early_stopping.metric: \"", metric, "\" is not one of ",
                     absl::StrJoin(watchable, ", ")));
  }
  if (c.data().split() == "full" && IsValidationMetric(metric)) {
    if (c.early_stopping().patience() > 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "early_stopping.patience: data.split full has no validation set "
          "to measure ",
          metric, " on; set patience 0 or watch a train_ metric"));
    }
    if (c.scheduler().name() == "plateau") {
      return absl::InvalidArgumentError(absl::StrCat(
          "scheduler.name: plateau watches ", metric,
          ", which data.split full does not measure"));
    }
  }
  if (c.train().device() == "cpu") {
    if (c.train().amp()) {
      return absl::InvalidArgumentError(
          "train.amp: mixed precision needs CUDA and train.device is cpu");
    }
    if (c.train().channels_last()) {
      return absl::InvalidArgumentError(
          "train.channels_last: only used on CUDA and train.device is cpu");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::RunConfig> ReadRunConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot read the config file"));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  if (absl::EndsWith(path, ".json")) {
    v1::RunConfig config;
    RETURN_IF_ERROR(RunConfigFromJson(text, &config, path));
    return config;
  }
  return LoadRunConfigYaml(text, path);
}

const std::vector<std::string>& WatchableMetrics() {
  static const auto* const kMetrics = new std::vector<std::string>{
      kTrainLoss, kTrainAcc, kValLoss, kValAcc, kValF1};
  return *kMetrics;
}

bool IsValidationMetric(absl::string_view metric) {
  return absl::StartsWith(metric, "val_");
}

absl::StatusOr<v1::RunConfig> ResolveTrainConfig(const v1::RunConfig& config,
                                                 int threads) {
  RETURN_IF_ERROR(ValidateRunConfig(config));
  v1::RunConfig c = config;
  ResolveData(*c.mutable_data());
  ResolveCrop(c.data().layout(), *c.mutable_crop());
  RETURN_IF_ERROR(ResolveAugment(*c.mutable_augment()));
  if (c.model().multi_head()) {
    v1::HeadWeights* w = c.mutable_model()->mutable_head_weights();
    if (!w->has_mask()) w->set_mask(1.0);
    if (!w->has_gender()) w->set_gender(1.0);
    if (!w->has_age()) w->set_age(1.0);
  }
  if (c.loss().name().empty()) c.mutable_loss()->set_name("ce");
  if (!c.loss().has_focal_gamma()) c.mutable_loss()->set_focal_gamma(2.0);
  ResolveOptimizerAndSchedule(c.train(), *c.mutable_optimizer(),
                              *c.mutable_scheduler());
  v1::EarlyStoppingConfig* early = c.mutable_early_stopping();
  if (early->metric().empty()) early->set_metric(kValF1);
  if (early->goal().empty()) {
    early->set_goal(absl::EndsWith(early->metric(), "_loss") ? "minimize"
                                                             : "maximize");
  }
  v1::TrainConfig* train = c.mutable_train();
  if (train->batch_size() == 0) train->set_batch_size(32);
  if (train->val_batch_size() == 0) {
    train->set_val_batch_size(train->batch_size());
  }
  if (train->device().empty()) train->set_device("auto");
  if (!train->has_checkpoint_every_epochs()) {
    train->set_checkpoint_every_epochs(1);
  }
  if (!c.has_seed()) c.set_seed(0);
  if (threads >= 0) c.set_threads(static_cast<uint32_t>(threads));
  if (c.threads() == 0) {
    c.set_threads(std::max(1u, std::thread::hardware_concurrency()));
  }
  if (c.interop_threads() == 0) c.set_interop_threads(1);
  RETURN_IF_ERROR(CheckContradictions(c));
  return c;
}

absl::Status CheckConfigAgainstClasses(const v1::RunConfig& config,
                                       int num_classes) {
  const uint32_t configured = config.model().num_classes();
  if (configured != 0 && configured != static_cast<uint32_t>(num_classes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("model.num_classes: ", configured,
                     " but the data set has ", num_classes, " classes"));
  }
  return absl::OkStatus();
}

std::string RunConfigToJson(const v1::RunConfig& config) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  // Printing a valid message cannot fail.
  (void)google::protobuf::util::MessageToJsonString(config, &json, options);
  return json;
}

absl::Status CheckResumeConfig(const v1::RunConfig& checkpoint,
                               const v1::RunConfig& run) {
  auto strip = [](v1::RunConfig c) {
    c.clear_name();
    c.clear_threads();
    c.clear_interop_threads();
    c.mutable_crop()->clear_cache_dir();
    c.mutable_data()->clear_loader_threads();
    c.mutable_data()->clear_prefetch_batches();
    c.mutable_data()->clear_decode_cache_bytes();
    c.mutable_train()->clear_checkpoint_every_epochs();
    c.mutable_train()->clear_log_every_steps();
    return c;
  };
  google::protobuf::util::MessageDifferencer differencer;
  std::string report;
  differencer.ReportDifferencesToString(&report);
  if (differencer.Compare(strip(checkpoint), strip(run))) {
    return absl::OkStatus();
  }
  while (!report.empty() && report.back() == '\n') report.pop_back();
  return absl::InvalidArgumentError(absl::StrCat(
      "the checkpoint was written by a different config: ", report));
}

}  // namespace sweepq::worker
