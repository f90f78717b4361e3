#include "worker/pipeline/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <mutex>
#include <new>
#include <random>
#include <utility>
#include <vector>

#include "ATen/Parallel.h"
#include "ATen/autocast_mode.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/run_config.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "torch/cuda.h"
#include "torch/torch.h"
#include "worker/pipeline/batch_mix.h"
#include "worker/pipeline/checkpoint.h"
#include "worker/pipeline/dataset.h"
#include "worker/pipeline/face_crop.h"
#include "worker/pipeline/loader.h"
#include "worker/pipeline/loss.h"
#include "worker/pipeline/metrics.h"
#include "worker/pipeline/model.h"
#include "worker/pipeline/optim.h"
#include "worker/pipeline/split.h"
#include "worker/pipeline/train_config.h"
#include "worker/pipeline/train_report.h"

namespace sweepq::worker {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

// Salts of the per-epoch generators derived from the run's seed.
constexpr uint64_t kTorchSalt = 0x746f726368ULL;  // "torch"
constexpr uint64_t kMixSalt = 0x6d6978ULL;        // "mix"

// GradScaler's defaults (torch.cuda.amp.GradScaler).
constexpr double kAmpInitScale = 65536.0;
constexpr double kAmpGrowthFactor = 2.0;
constexpr double kAmpBackoffFactor = 0.5;
constexpr int64_t kAmpGrowthInterval = 2000;

constexpr char kLastCheckpoint[] = "last.ckpt";
constexpr char kBestCheckpoint[] = "best.ckpt";

uint64_t SplitMix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t DeriveSeed(uint64_t seed, uint64_t salt, uint64_t epoch) {
  return SplitMix64(SplitMix64(SplitMix64(seed) ^ salt) ^ epoch);
}

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// Turns CUDA autocast on or off: LibTorch 2.4 deprecated the device-less
// call (scripts/check-libtorch2.sh compiles this against 2.x headers).
void SetCudaAutocast(bool enabled) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  at::autocast::set_autocast_enabled(at::kCUDA, enabled);
#else
  at::autocast::set_enabled(enabled);
#endif
}

// Mixed precision on CUDA for the scope of one forward pass.
class AutocastScope {
 public:
  explicit AutocastScope(bool enabled) : enabled_(enabled) {
    if (!enabled_) return;
    SetCudaAutocast(true);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    SetCudaAutocast(false);
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  const bool enabled_;
};

// The data set's identity: SHA-256 of the class names and of every sample's
// path (relative to the root), person and label, in order.
std::string DataFingerprint(const Dataset& dataset) {
  Sha256 hash;
  for (const std::string& name : dataset.class_names) {
    hash.Update(name);
    hash.Update("\n");
  }
  std::string root = dataset.root;
  if (!root.empty() && root.back() != '/') root += '/';
  for (const Sample& s : dataset.samples) {
    absl::string_view path = s.path;
    if (absl::StartsWith(path, root)) path.remove_prefix(root.size());
    hash.Update(absl::StrCat(path, "\t", s.person, "\t", s.label, "\n"));
  }
  return hash.FinishHex();
}

TrainFailure ClassifyLoopError(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kFailedPrecondition:  // bad images, NaN loss
    case absl::StatusCode::kResourceExhausted:   // out of memory
    case absl::StatusCode::kInvalidArgument:     // an image the crop rejects
    case absl::StatusCode::kNotFound:            // no face box in the chain
      return TrainFailure::kPermanent;
    default:
      return TrainFailure::kRetryable;
  }
}

bool IsOutOfMemory(const std::string& what) {
  return what.find("out of memory") != std::string::npos ||
         what.find("can't allocate memory") != std::string::npos;
}

// What one training pass measured.
struct TrainPass {
  double loss_sum = 0.0;  // sum over samples
  double correct = 0.0;   // lambda-weighted
  int64_t samples = 0;
  double wait_s = 0.0;
  double time_s = 0.0;
};

// What one validation pass measured.
struct ValPass {
  double loss_sum = 0.0;
  ClassificationMetrics metrics;
  double wait_s = 0.0;
  double time_s = 0.0;
};

class TrainingRun {
 public:
  TrainingRun(const TrainerOptions& options, TrainEventWriter* events)
      : options_(options), events_(events) {}

  TrainResult Execute();

 private:
  std::optional<RunFailure> Prepare();
  std::optional<RunFailure> Resume();
  absl::Status RunEpoch(int epoch, bool* stop);
  absl::Status TrainOneEpoch(int epoch, double lr, TrainPass* pass);
  absl::Status ValidateOnce(ValPass* pass);
  torch::Tensor ComputeLoss(const ClassifierOutput& out,
                            const torch::Tensor& targets) const;
  absl::Status OptimizerStep(const torch::Tensor& loss);
  void ReportBadSamples();
  absl::Status Finish();
  TrainResult Fail(RunFailure failure);

  std::string OutPath(const char* name) const {
    return (fs::path(out_dir_) / name).string();
  }

  const TrainerOptions& options_;
  TrainEventWriter* const events_;

  v1::RunConfig config_;
  std::string config_json_;
  std::string out_dir_;
  torch::Device device_ = torch::kCPU;
  bool amp_ = false;
  bool channels_last_ = false;
  uint64_t seed_ = 0;
  int epochs_ = 0;
  std::string metric_;
  bool maximize_ = true;
  double min_delta_ = 0.0;
  int patience_ = 0;

  Dataset dataset_;
  std::string fingerprint_;
  Split split_;
  std::unique_ptr<FaceCropper> cropper_;
  std::unique_ptr<Loader> train_loader_;
  std::unique_ptr<Loader> val_loader_;  // null without validation
  std::unique_ptr<Classifier> model_;
  std::vector<NamedParameter> parameters_;
  std::optional<Loss> loss_;
  std::optional<Loss> mask_loss_, gender_loss_, age_loss_;
  double mask_weight_ = 1.0, gender_weight_ = 1.0, age_weight_ = 1.0;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::unique_ptr<LrSchedule> schedule_;
  CutMixOptions cutmix_;
  MixUpOptions mixup_;
  torch::Tensor amp_scale_;
  torch::Tensor amp_growth_tracker_;

  TrainingProgress progress_;
  MetricsTable metrics_;
  int start_epoch_ = 1;
  bool best_written_ = false;
  bool stopped_early_ = false;
  size_t bad_reported_ = 0;
  // Where the loop is, for error events: the epoch and the step being run
  // (0 outside them).
  int current_epoch_ = 0;
  int64_t current_step_ = 0;
};

TrainResult TrainingRun::Fail(RunFailure failure) {
  TrainResult result =
      ReportFailure(std::move(failure), *events_, current_epoch_,
                    current_step_ > 0 ? current_step_ : progress_.global_step);
  result.epochs = progress_.epoch;
  result.best_epoch = progress_.best_epoch;
  if (!std::isnan(progress_.best_value)) result.best_value = progress_.best_value;
  return result;
}

std::optional<RunFailure> TrainingRun::Prepare() {
  auto bad_config = [](const absl::Status& s) {
    return RunFailure{TrainFailure::kBadConfig, s};
  };
  absl::StatusOr<v1::RunConfig> raw = ReadRunConfigFile(options_.config_path);
  if (!raw.ok()) return bad_config(raw.status());
  absl::StatusOr<v1::RunConfig> resolved =
      ResolveTrainConfig(*raw, options_.threads);
  if (!resolved.ok()) return bad_config(resolved.status());
  config_ = *std::move(resolved);

  seed_ = config_.seed();
  epochs_ = static_cast<int>(config_.train().epochs());
  metric_ = config_.early_stopping().metric();
  maximize_ = config_.early_stopping().goal() == "maximize";
  min_delta_ = config_.early_stopping().min_delta();
  patience_ = static_cast<int>(config_.early_stopping().patience());

  at::set_num_threads(static_cast<int>(config_.threads()));
  SetInteropThreadsOnce(static_cast<int>(config_.interop_threads()));

  const std::string& device = config_.train().device();
  const bool cuda = torch::cuda::is_available();
  if (device == "cuda" && !cuda) {
    return RunFailure{
        TrainFailure::kRetryable,
        absl::UnavailableError(
            "train.device is cuda but LibTorch sees no CUDA device "
            "on this host")};
  }
  device_ = (device == "cuda" || (device == "auto" && cuda))
                ? torch::Device(torch::kCUDA, 0)
                : torch::Device(torch::kCPU);
  amp_ = config_.train().amp() && device_.is_cuda();
  channels_last_ = config_.train().channels_last() && device_.is_cuda();
  if (config_.train().amp() && !amp_) {
    LOG(WARNING) << "train.amp ignored: no CUDA device (device auto)";
  }
  if (config_.train().channels_last() && !channels_last_) {
    LOG(WARNING) << "train.channels_last ignored: no CUDA device (device auto)";
  }

  absl::StatusOr<CutMixOptions> cutmix =
      CutMixOptionsFromConfig(config_.augment().cutmix());
  if (!cutmix.ok()) return bad_config(cutmix.status());
  cutmix_ = *cutmix;
  absl::StatusOr<MixUpOptions> mixup =
      MixUpOptionsFromConfig(config_.augment().mixup());
  if (!mixup.ok()) return bad_config(mixup.status());
  mixup_ = *mixup;
  absl::StatusOr<LoaderOptions> train_options =
      LoaderOptionsFromConfig(config_, /*train=*/true);
  if (!train_options.ok()) return bad_config(train_options.status());
  absl::StatusOr<LoaderOptions> val_options =
      LoaderOptionsFromConfig(config_, /*train=*/false);
  if (!val_options.ok()) return bad_config(val_options.status());
  // The loader decodes a JPEG at reduced size only when its face box is
  // already in the detection cache, which gives other pixels than a full
  // decode: a run on a cold cache and its resumption (or rerun) on a warm
  // one would see different images. Full decodes keep the input a function
  // of the data set alone; the decode cache makes it a first-epoch cost.
  train_options->reduced_decoding = false;
  val_options->reduced_decoding = false;

  // The work directory.
  std::error_code ec;
  fs::create_directories(options_.out_dir, ec);
  if (ec) {
    return RunFailure{TrainFailure::kRetryable,
                      absl::InternalError(absl::StrCat(
                          "--out ", options_.out_dir, ": ", ec.message()))};
  }
  out_dir_ = fs::absolute(options_.out_dir, ec).lexically_normal().string();
  while (out_dir_.size() > 1 && out_dir_.back() == '/') out_dir_.pop_back();

  // The data set and its split.
  absl::StatusOr<Dataset> dataset = LoadDataset(
      DatasetOptionsFromConfig(config_.data(), options_.data_dir));
  if (!dataset.ok()) {
    const bool data_fault =
        dataset.status().code() == absl::StatusCode::kNotFound ||
        dataset.status().code() == absl::StatusCode::kInvalidArgument;
    return RunFailure{
        data_fault ? TrainFailure::kPermanent : TrainFailure::kRetryable,
        absl::Status(dataset.status().code(),
                     absl::StrCat("--data ", options_.data_dir, ": ",
                                  dataset.status().message()))};
  }
  dataset_ = *std::move(dataset);
  if (absl::Status s = CheckConfigAgainstClasses(config_, dataset_.num_classes());
      !s.ok()) {
    return bad_config(s);
  }
  if (config_.model().multi_head() && dataset_.num_classes() != 18) {
    return bad_config(absl::InvalidArgumentError(absl::StrCat(
        "model.multi_head: needs 18 classes, the data set has ",
        dataset_.num_classes())));
  }
  fingerprint_ = DataFingerprint(dataset_);
  absl::StatusOr<Split> split =
      SplitByPerson(dataset_, SplitOptionsFromConfig(config_));
  if (!split.ok()) return RunFailure{TrainFailure::kPermanent, split.status()};
  split_ = *std::move(split);
  if (absl::Status s =
          CheckEveryClassHasSamples(dataset_, split_.train, "train set");
      !s.ok()) {
    return RunFailure{TrainFailure::kPermanent, s};
  }
  if (config_.data().split() != "full" && split_.val.empty()) {
    return RunFailure{TrainFailure::kPermanent,
                      absl::FailedPreconditionError(absl::StrCat(
                          "data.split ", config_.data().split(),
                          ": the validation set is empty (too few people)"))};
  }

  // Face crop and loaders.
  if (config_.crop().enabled()) {
    std::string cache_dir = options_.cache_dir;
    if (cache_dir.empty()) {
      cache_dir = (fs::path(out_dir_).parent_path() / "cache").string();
    }
    absl::StatusOr<std::unique_ptr<FaceCropper>> cropper = FaceCropper::Create(
        FaceCropOptionsFromConfig(config_.crop(), cache_dir));
    if (!cropper.ok()) {
      return RunFailure{
          cropper.status().code() == absl::StatusCode::kInvalidArgument
              ? TrainFailure::kBadConfig
              : TrainFailure::kRetryable,
          cropper.status()};
    }
    cropper_ = *std::move(cropper);
  }
  absl::StatusOr<std::unique_ptr<Loader>> train_loader =
      Loader::Create(&dataset_, split_.train, cropper_.get(), *train_options);
  if (!train_loader.ok()) return bad_config(train_loader.status());
  train_loader_ = *std::move(train_loader);
  if (!split_.val.empty()) {
    absl::StatusOr<std::unique_ptr<Loader>> val_loader =
        Loader::Create(&dataset_, split_.val, cropper_.get(), *val_options);
    if (!val_loader.ok()) return bad_config(val_loader.status());
    val_loader_ = *std::move(val_loader);
  }

  // Model, loss, optimizer, schedule.
  absl::StatusOr<std::unique_ptr<Classifier>> model = CreateClassifier(
      config_.model(), dataset_.num_classes(), seed_,
      static_cast<int>(config_.data().image_height()),
      static_cast<int>(config_.data().image_width()));
  if (!model.ok()) {
    const absl::StatusCode code = model.status().code();
    return RunFailure{code == absl::StatusCode::kInvalidArgument
                          ? TrainFailure::kBadConfig
                      : code == absl::StatusCode::kFailedPrecondition
                          ? TrainFailure::kPermanent
                          : TrainFailure::kRetryable,
                      model.status()};
  }
  model_ = *std::move(model);
  model_->To(device_, channels_last_);
  parameters_ = model_->Parameters();
  if (model_->multi_head()) {
    v1::LossConfig head = config_.loss();
    head.clear_class_weights();
    absl::StatusOr<Loss> mask = Loss::Create(head, kMaskHeadClasses);
    if (!mask.ok()) return bad_config(mask.status());
    absl::StatusOr<Loss> gender = Loss::Create(head, kGenderHeadClasses);
    if (!gender.ok()) return bad_config(gender.status());
    absl::StatusOr<Loss> age = Loss::Create(head, kAgeHeadClasses);
    if (!age.ok()) return bad_config(age.status());
    mask_loss_ = *std::move(mask);
    gender_loss_ = *std::move(gender);
    age_loss_ = *std::move(age);
    mask_weight_ = config_.model().head_weights().mask();
    gender_weight_ = config_.model().head_weights().gender();
    age_weight_ = config_.model().head_weights().age();
  }
  // The single-head loss also scores validation of multi-head models on
  // their combined 18-class output.
  absl::StatusOr<Loss> loss = Loss::Create(config_.loss(), dataset_.num_classes());
  if (!loss.ok()) return bad_config(loss.status());
  loss_ = *std::move(loss);
  absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>> optimizer =
      CreateOptimizer(config_.optimizer(), parameters_);
  if (!optimizer.ok()) return bad_config(optimizer.status());
  optimizer_ = *std::move(optimizer);
  absl::StatusOr<std::unique_ptr<LrSchedule>> schedule =
      LrSchedule::Create(config_.scheduler(), config_.optimizer().lr(), epochs_,
                         maximize_, min_delta_);
  if (!schedule.ok()) return bad_config(schedule.status());
  schedule_ = *std::move(schedule);
  if (amp_) {
    amp_scale_ = torch::full({1}, kAmpInitScale,
                             torch::TensorOptions(device_).dtype(torch::kFloat));
    amp_growth_tracker_ =
        torch::zeros({1}, torch::TensorOptions(device_).dtype(torch::kInt));
  }
  config_json_ = RunConfigToJson(config_);
  return std::nullopt;
}

std::optional<RunFailure> TrainingRun::Resume() {
  auto permanent = [](const absl::Status& s) {
    return RunFailure{TrainFailure::kPermanent, s};
  };
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint =
      Checkpoint::Read(options_.resume_path, device_);
  if (!checkpoint.ok()) return permanent(checkpoint.status());
  Checkpoint& c = **checkpoint;
  v1::RunConfig saved;
  if (absl::Status s = RunConfigFromJson(c.config_json(), &saved, c.path());
      !s.ok()) {
    return permanent(s);
  }
  if (absl::Status s = CheckResumeConfig(saved, config_); !s.ok()) {
    return RunFailure{TrainFailure::kBadConfig,
                      absl::InvalidArgumentError(absl::StrCat(
                          "--resume ", c.path(), ": ", s.message()))};
  }
  if (c.data_fingerprint() != fingerprint_) {
    return permanent(absl::FailedPreconditionError(absl::StrCat(
        "--resume ", c.path(), ": the data set differs from the one the "
        "checkpoint was trained on (fingerprint ",
        c.data_fingerprint(), ", now ", fingerprint_, ")")));
  }
  if (absl::Status s = c.Restore(*model_, *optimizer_, *schedule_); !s.ok()) {
    return permanent(s);
  }
  absl::StatusOr<MetricsTable> history =
      MetricsTable::FromCsv(c.progress().metrics_csv);
  if (!history.ok()) {
    return permanent(absl::InvalidArgumentError(
        absl::StrCat(c.path(), ": ", history.status().message())));
  }
  progress_ = c.progress();
  metrics_ = *std::move(history);
  start_epoch_ = progress_.epoch + 1;
  stopped_early_ = patience_ > 0 && progress_.bad_epochs >= patience_;

  // last.ckpt is always the latest state in --out, even before (or without)
  // another epoch.
  const std::string last = OutPath(kLastCheckpoint);
  std::error_code same_ec;
  if (!fs::equivalent(c.path(), last, same_ec)) {
    if (absl::Status s = CopyFileAtomically(c.path(), last); !s.ok()) {
      return RunFailure{TrainFailure::kRetryable, s};
    }
  }
  // The best model of the earlier attempt lives next to its last.ckpt; keep
  // it when it is the checkpoint's best epoch.
  const std::string best = OutPath(kBestCheckpoint);
  const fs::path beside = fs::path(c.path()).parent_path() / kBestCheckpoint;
  std::error_code ec;
  if (progress_.best_epoch > 0 && !fs::equivalent(beside, best, ec) &&
      fs::is_regular_file(beside, ec)) {
    absl::StatusOr<std::unique_ptr<Checkpoint>> old =
        Checkpoint::Read(beside.string(), torch::kCPU);
    if (old.ok() && (*old)->progress().epoch == progress_.best_epoch) {
      if (CopyFileAtomically(beside.string(), best).ok()) best_written_ = true;
    }
  } else if (fs::is_regular_file(best, ec)) {
    best_written_ = true;
  }
  LOG(INFO) << "resumed from " << c.path() << " after epoch "
            << progress_.epoch << " (step " << progress_.global_step << ")";
  return std::nullopt;
}

torch::Tensor TrainingRun::ComputeLoss(const ClassifierOutput& out,
                                       const torch::Tensor& targets) const {
  if (!model_->multi_head()) return (*loss_)(out.logits.to(torch::kFloat), targets);
  // Class = mask * 6 + gender * 3 + age band: the heads' targets are the
  // marginals of the 18-class soft targets.
  const torch::Tensor t = targets.view({targets.size(0), kMaskHeadClasses,
                                        kGenderHeadClasses, kAgeHeadClasses});
  return mask_weight_ * (*mask_loss_)(out.mask.to(torch::kFloat), t.sum({2, 3})) +
         gender_weight_ *
             (*gender_loss_)(out.gender.to(torch::kFloat), t.sum({1, 3})) +
         age_weight_ * (*age_loss_)(out.age.to(torch::kFloat), t.sum({1, 2}));
}

absl::Status TrainingRun::OptimizerStep(const torch::Tensor& loss) {
  optimizer_->zero_grad();
  const double clip = config_.optimizer().grad_clip_norm();
  if (!amp_) {
    loss.backward();
    if (clip > 0.0) ClipGradNorm(parameters_, clip);
    optimizer_->step();
    return absl::OkStatus();
  }
  // Dynamic loss scaling as torch.cuda.amp.GradScaler: scale, unscale,
  // skip the step when a gradient overflowed, adapt the scale.
  (loss * amp_scale_).backward();
  std::vector<torch::Tensor> grads;
  for (const NamedParameter& p : parameters_) {
    if (p.tensor.grad().defined()) grads.push_back(p.tensor.grad());
  }
  torch::Tensor found_inf = torch::zeros({1}, amp_scale_.options());
  at::_amp_foreach_non_finite_check_and_unscale_(grads, found_inf,
                                                 amp_scale_.reciprocal());
  if (found_inf.item<float>() == 0.0f) {
    if (clip > 0.0) ClipGradNorm(parameters_, clip);
    optimizer_->step();
  }
  at::_amp_update_scale_(amp_scale_, amp_growth_tracker_, found_inf,
                         kAmpGrowthFactor, kAmpBackoffFactor,
                         kAmpGrowthInterval);
  return absl::OkStatus();
}

absl::Status TrainingRun::TrainOneEpoch(int epoch, double lr, TrainPass* pass) {
  const int log_every = static_cast<int>(config_.train().log_every_steps());
  std::mt19937_64 mix_rng(DeriveSeed(seed_, kMixSalt, epoch - 1));
  const int num_classes = dataset_.num_classes();
  model_->SetTraining(true);
  const Clock::time_point start = Clock::now();
  train_loader_->StartEpoch(epoch - 1);
  torch::Tensor correct = torch::zeros({}, torch::TensorOptions(device_).dtype(torch::kDouble));
  double window_sum = 0.0;
  int window = 0;
  while (true) {
    const Clock::time_point wait_start = Clock::now();
    absl::StatusOr<std::optional<Batch>> next = train_loader_->Next();
    pass->wait_s += Seconds(Clock::now() - wait_start);
    if (!next.ok()) return next.status();
    if (!next->has_value()) break;
    Batch& batch = **next;
    torch::Tensor images = batch.images.to(device_, /*non_blocking=*/true);
    if (channels_last_) {
      images = images.contiguous(torch::MemoryFormat::ChannelsLast);
    }
    const torch::Tensor labels = batch.labels.to(device_);
    const int64_t n = labels.size(0);

    MixedBatch mixed;
    mixed.images = images;
    mixed.labels_a = labels;
    mixed.labels_b = labels;
    if (cutmix_.p > 0.0) {
      ASSIGN_OR_RETURN(mixed, CutMix(images, labels, cutmix_, mix_rng));
    }
    if (!mixed.mixed && mixup_.p > 0.0) {
      ASSIGN_OR_RETURN(mixed, MixUp(images, labels, mixup_, mix_rng));
    }
    const torch::Tensor targets =
        SoftTargets(mixed.labels_a, mixed.labels_b, mixed.lambda, num_classes);

    ClassifierOutput out;
    {
      AutocastScope autocast(amp_);
      out = model_->Forward(mixed.images);
    }
    const torch::Tensor loss = ComputeLoss(out, targets);
    const double value = loss.item<double>();
    const int64_t step = progress_.global_step + 1;
    current_step_ = step;
    if (!std::isfinite(value)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "training loss is ", std::isnan(value) ? "NaN" : "infinite",
          " at epoch ", epoch, ", step ", step, " (lr ", lr,
          "); lower optimizer.lr or set optimizer.grad_clip_norm"));
    }
    RETURN_IF_ERROR(OptimizerStep(loss));
    progress_.global_step = step;

    {
      torch::NoGradGuard no_grad;
      const torch::Tensor predicted = out.logits.argmax(1);
      correct += mixed.lambda *
                     predicted.eq(mixed.labels_a).sum().to(torch::kDouble) +
                 (1.0 - mixed.lambda) *
                     predicted.eq(mixed.labels_b).sum().to(torch::kDouble);
    }
    pass->loss_sum += value * static_cast<double>(n);
    pass->samples += n;
    window_sum += value;
    ++window;
    if (log_every > 0 && step % log_every == 0) {
      events_->Step(epoch, step, value, window_sum / window, lr);
      window_sum = 0.0;
      window = 0;
    }
  }
  current_step_ = 0;
  pass->correct = correct.item<double>();
  pass->time_s = Seconds(Clock::now() - start);
  return absl::OkStatus();
}

absl::Status TrainingRun::ValidateOnce(ValPass* pass) {
  const int num_classes = dataset_.num_classes();
  model_->SetTraining(false);
  torch::NoGradGuard no_grad;
  const Clock::time_point start = Clock::now();
  val_loader_->StartEpoch(0);
  ConfusionMatrix confusion(num_classes);
  while (true) {
    const Clock::time_point wait_start = Clock::now();
    absl::StatusOr<std::optional<Batch>> next = val_loader_->Next();
    pass->wait_s += Seconds(Clock::now() - wait_start);
    if (!next.ok()) return next.status();
    if (!next->has_value()) break;
    Batch& batch = **next;
    torch::Tensor images = batch.images.to(device_, /*non_blocking=*/true);
    if (channels_last_) {
      images = images.contiguous(torch::MemoryFormat::ChannelsLast);
    }
    const torch::Tensor labels = batch.labels.to(device_);
    ClassifierOutput out;
    {
      AutocastScope autocast(amp_);
      out = model_->Forward(images);
    }
    const torch::Tensor logits = out.logits.to(torch::kFloat);
    const torch::Tensor loss =
        (*loss_)(logits, SoftTargets(labels, labels, 1.0, num_classes));
    pass->loss_sum += loss.item<double>() * static_cast<double>(labels.size(0));
    RETURN_IF_ERROR(confusion.AddBatch(labels, logits.argmax(1)));
  }
  model_->SetTraining(true);
  pass->metrics = confusion.Compute();
  pass->time_s = Seconds(Clock::now() - start);
  return absl::OkStatus();
}

void TrainingRun::ReportBadSamples() {
  std::vector<BadImage> all = train_loader_->bad_images();
  if (val_loader_ != nullptr) {
    for (BadImage& b : val_loader_->bad_images()) all.push_back(std::move(b));
  }
  if (all.size() <= bad_reported_) return;
  std::vector<BadSampleExample> examples;
  for (size_t i = bad_reported_; i < all.size(); ++i) {
    examples.push_back({all[i].path, all[i].cause});
  }
  events_->BadSamples(static_cast<int64_t>(all.size() - bad_reported_),
                      static_cast<int64_t>(all.size()), examples);
  bad_reported_ = all.size();
}

absl::Status TrainingRun::RunEpoch(int epoch, bool* stop) {
  current_epoch_ = epoch;
  const double lr = schedule_->LrForEpoch(epoch - 1);
  SetLearningRate(*optimizer_, lr);
  torch::manual_seed(DeriveSeed(seed_, kTorchSalt, epoch - 1));

  TrainPass train;
  absl::Status status = TrainOneEpoch(epoch, lr, &train);
  if (!status.ok()) {
    ReportBadSamples();
    return status;
  }
  ValPass val;
  if (val_loader_ != nullptr) {
    status = ValidateOnce(&val);
    if (!status.ok()) {
      ReportBadSamples();
      return status;
    }
  }
  if (cropper_ != nullptr) {
    if (absl::Status s = cropper_->FlushCache(); !s.ok()) {
      LOG(WARNING) << "face-crop cache: " << s;
    }
  }

  const double samples = static_cast<double>(std::max<int64_t>(1, train.samples));
  std::vector<std::pair<std::string, double>> metrics = {
      {kTrainLoss, train.loss_sum / samples},
      {kTrainAcc, train.correct / samples},
  };
  if (val_loader_ != nullptr) {
    const double count =
        static_cast<double>(std::max<int64_t>(1, val.metrics.count));
    metrics.emplace_back(kValLoss, val.loss_sum / count);
    metrics.emplace_back(kValAcc, val.metrics.accuracy);
    metrics.emplace_back(kValF1, val.metrics.macro_f1);
  }
  metrics.emplace_back("lr", lr);
  metrics.emplace_back("epoch_time_s", train.time_s + val.time_s);
  metrics.emplace_back("images_per_s",
                       train.time_s > 0.0 ? train.samples / train.time_s : 0.0);
  metrics.emplace_back("data_wait_s", train.wait_s + val.wait_s);
  metrics.emplace_back("train_time_s", train.time_s);
  if (val_loader_ != nullptr) metrics.emplace_back("val_time_s", val.time_s);

  metrics_.Add({epoch, progress_.global_step, metrics});
  RETURN_IF_ERROR(
      WriteFileAtomically(OutPath("metrics.csv"), metrics_.ToCsv()));
  events_->Epoch(epoch, progress_.global_step, metrics,
                 val.metrics.per_class_f1, val.metrics.confusion);
  ReportBadSamples();
  LOG(INFO) << "epoch " << epoch << "/" << epochs_ << ": train_loss "
            << metrics[0].second << ", train_acc " << metrics[1].second
            << (val_loader_ != nullptr
                    ? absl::StrCat(", val_loss ", metrics[2].second,
                                   ", val_acc ", metrics[3].second, ", val_f1 ",
                                   metrics[4].second)
                    : std::string())
            << ", " << train.time_s + val.time_s << " s";

  // Early-stopping state, before the checkpoint that records it.
  std::optional<double> watched;
  for (const auto& [name, value] : metrics) {
    if (name == metric_) watched = value;
  }
  bool improved = false;
  if (watched.has_value()) {
    improved = progress_.best_epoch == 0 ||
               (maximize_ ? *watched > progress_.best_value + min_delta_
                          : *watched < progress_.best_value - min_delta_);
    if (improved) {
      progress_.best_epoch = epoch;
      progress_.best_value = *watched;
      progress_.bad_epochs = 0;
      progress_.best_confusion = val.metrics.confusion;
    } else {
      ++progress_.bad_epochs;
    }
    schedule_->ReportMetric(*watched);
  }
  progress_.epoch = epoch;
  progress_.metrics_csv = metrics_.ToCsv();

  const std::string last = OutPath(kLastCheckpoint);
  RETURN_IF_ERROR(SaveCheckpoint(last, *model_, *optimizer_, *schedule_,
                                 progress_, config_json_, fingerprint_));
  events_->Checkpoint(epoch, "last", last);
  if (improved) {
    const std::string best = OutPath(kBestCheckpoint);
    RETURN_IF_ERROR(CopyFileAtomically(last, best));
    best_written_ = true;
    events_->Checkpoint(epoch, "best", best);
  }
  if (patience_ > 0 && progress_.bad_epochs >= patience_) {
    stopped_early_ = true;
    *stop = true;
    events_->EarlyStop(epoch, progress_.best_epoch, metric_,
                       progress_.best_value);
    LOG(INFO) << "early stop after epoch " << epoch << ": " << metric_
              << " has not improved for " << patience_ << " epochs (best "
              << progress_.best_value << " at epoch " << progress_.best_epoch
              << ")";
  }
  return absl::OkStatus();
}

absl::Status TrainingRun::Finish() {
  const std::string best = OutPath(kBestCheckpoint);
  const std::string last = OutPath(kLastCheckpoint);
  std::error_code ec;
  if (progress_.best_epoch == 0 && progress_.epoch > 0 &&
      fs::is_regular_file(last, ec)) {
    // The watched metric was never measured (data.split full): the final
    // model is the one to keep.
    RETURN_IF_ERROR(CopyFileAtomically(last, best));
    best_written_ = true;
    events_->Checkpoint(progress_.epoch, "best", best);
  } else if (!best_written_) {
    LOG(WARNING) << "no best.ckpt in " << out_dir_ << ": the best epoch ("
                 << progress_.best_epoch
                 << ") was trained by an earlier attempt whose best.ckpt is "
                    "not next to the --resume checkpoint";
  }
  const std::string metrics_path = OutPath("metrics.csv");
  if (fs::is_regular_file(metrics_path, ec) || !metrics_.rows().empty()) {
    RETURN_IF_ERROR(WriteFileAtomically(metrics_path, metrics_.ToCsv()));
    events_->Artifact("metrics.csv", metrics_path);
  }
  if (!progress_.best_confusion.empty()) {
    const std::string csv = OutPath("confusion.csv");
    RETURN_IF_ERROR(
        WriteConfusionCsv(csv, dataset_.class_names, progress_.best_confusion));
    events_->Artifact("confusion.csv", csv);
    const std::string png = OutPath("confusion.png");
    const std::string at_best = absl::StrCat(
        "epoch ", progress_.best_epoch, " (", metric_, " ",
        progress_.best_value, ")");
    RETURN_IF_ERROR(WriteConfusionPng(png, dataset_.class_names,
                                      progress_.best_confusion,
                                      "validation confusion, " + at_best));
    events_->Artifact("confusion.png", png);
    const std::string f1_png = OutPath("per_class_f1.png");
    RETURN_IF_ERROR(WritePerClassF1Png(f1_png, dataset_.class_names,
                                       progress_.best_confusion,
                                       "validation per-class F1, " + at_best));
    events_->Artifact("per_class_f1.png", f1_png);
  }
  const bool measured = progress_.best_epoch > 0;
  events_->Summary(measured ? progress_.best_epoch : progress_.epoch, metric_,
                   measured ? std::optional<double>(progress_.best_value)
                            : std::nullopt,
                   progress_.epoch, stopped_early_);
  return absl::OkStatus();
}

TrainResult TrainingRun::Execute() {
  if (std::optional<RunFailure> f = Prepare()) return Fail(*std::move(f));
  if (!options_.resume_path.empty()) {
    if (std::optional<RunFailure> f = Resume()) return Fail(*std::move(f));
  }
  if (absl::Status s = WriteFileAtomically(OutPath("config.json"), config_json_);
      !s.ok()) {
    return Fail({TrainFailure::kRetryable, s});
  }

  TrainEventWriter::StartInfo start;
  start.config_json = config_json_;
  start.fingerprint = fingerprint_;
  start.train_samples = static_cast<int64_t>(split_.train.size());
  start.val_samples = static_cast<int64_t>(split_.val.size());
  start.classes = dataset_.class_names;
  start.start_epoch = start_epoch_;
  start.device = device_.is_cuda() ? "cuda:0" : "cpu";
  start.threads = static_cast<int>(config_.threads());
  start.model = model_->Describe();
  start.amp = amp_;
  start.channels_last = channels_last_;
  events_->Start(start);
  events_->Artifact("config.json", OutPath("config.json"));
  LOG(INFO) << "training " << model_->Describe() << " on " << start.device
            << " with " << start.threads << " threads: " << split_.train.size()
            << " train / " << split_.val.size() << " val images, epochs "
            << start_epoch_ << ".." << epochs_;

  bool stop = stopped_early_;
  for (int epoch = start_epoch_; epoch <= epochs_ && !stop; ++epoch) {
    absl::Status status;
    try {
      status = RunEpoch(epoch, &stop);
    } catch (const c10::Error& e) {
      const std::string what = e.what_without_backtrace();
      status = IsOutOfMemory(what)
                   ? absl::ResourceExhaustedError(absl::StrCat(
                         "out of memory at epoch ", epoch, " with batch size ",
                         config_.train().batch_size(), " on ",
                         device_.str(), "; lower train.batch_size (or the "
                         "image size): ", what))
                   : absl::InternalError(absl::StrCat("LibTorch: ", what));
    } catch (const std::bad_alloc&) {
      status = absl::ResourceExhaustedError(absl::StrCat(
          "out of host memory at epoch ", epoch, " with batch size ",
          config_.train().batch_size(), "; lower train.batch_size, the image "
          "size or data.decode_cache_bytes"));
    }
    if (!status.ok()) return Fail({ClassifyLoopError(status), status});
  }
  current_epoch_ = 0;
  if (absl::Status s = Finish(); !s.ok()) {
    return Fail({TrainFailure::kRetryable, s});
  }
  TrainResult result;
  result.epochs = progress_.epoch;
  result.best_epoch = progress_.best_epoch;
  if (!std::isnan(progress_.best_value)) result.best_value = progress_.best_value;
  result.stopped_early = stopped_early_;
  return result;
}

}  // namespace

int TrainResult::exit_code() const {
  switch (failure) {
    case TrainFailure::kNone:
      return 0;
    case TrainFailure::kRetryable:
      return 1;
    case TrainFailure::kBadConfig:
      return 2;
    case TrainFailure::kPermanent:
      return 3;
  }
  return 1;
}

void SetInteropThreadsOnce(int threads) {
  static std::once_flag once;
  std::call_once(once, [threads] {
    try {
      at::set_num_interop_threads(threads);
    } catch (const c10::Error&) {
      // Already set by the embedding program; checked below.
    }
  });
  // int in LibTorch 1.x, size_t in 2.x.
  if (static_cast<int>(at::get_num_interop_threads()) != threads) {
    LOG(WARNING) << "inter-op threads stay " << at::get_num_interop_threads()
                 << " (LibTorch sets them once per process), config asks "
                 << threads;
  }
}

TrainResult ReportFailure(RunFailure failure, TrainEventWriter& events,
                          int epoch, int64_t step) {
  LOG(ERROR) << failure.status;
  events.Error(failure.status.message(),
               failure.kind == TrainFailure::kRetryable, epoch, step);
  TrainResult result;
  result.status = std::move(failure.status);
  result.failure = failure.kind;
  return result;
}

TrainResult RunGuarded(absl::string_view what, TrainEventWriter& events,
                       absl::FunctionRef<TrainResult()> body) {
  try {
    return body();
  } catch (const std::exception& e) {
    return ReportFailure(
        {TrainFailure::kRetryable,
         absl::InternalError(absl::StrCat(what, ": ", e.what()))},
        events);
  }
}

TrainResult RunTraining(const TrainerOptions& options) {
  CHECK(options.events != nullptr) << "TrainerOptions.events is required";
  TrainEventWriter events(options.events);
  TrainingRun run(options, &events);
  // A LibTorch or OpenCV error outside the epoch loop (set-up, the end).
  return RunGuarded("unexpected error", events, [&] { return run.Execute(); });
}

}  // namespace sweepq::worker
