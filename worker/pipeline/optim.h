// Optimizers and learning-rate schedules of the trainer.
//
// Optimizers: SGD (momentum, Nesterov), Adam, AdamW from LibTorch, and RAdam
// (Liu et al. 2019), which LibTorch 1.13's C++ API lacks, written here to
// match torch.optim.RAdam (PyTorch 1.13) step for step: L2 weight decay
// added to the gradient, bias-corrected first moment, variance rectification
// when rho_t > 5 and a plain momentum step otherwise.
//
// Schedules work per epoch, like PyTorch's schedulers in the usual
// one-step-per-epoch recipe: the trainer asks LrSchedule for the epoch's
// learning rate before the epoch and reports the watched metric after it.
//
// Thread safety: none; the trainer's thread owns these objects.
#ifndef SWEEPQ_WORKER_PIPELINE_OPTIM_H_
#define SWEEPQ_WORKER_PIPELINE_OPTIM_H_

#include <memory>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sweepq/v1/run_config.pb.h"
#include "torch/optim.h"
#include "torch/serialize.h"
#include "torch/types.h"
#include "worker/pipeline/model.h"

namespace sweepq::worker {

// Options of RAdam, as torch.optim.RAdam's arguments.
// (beta1, beta2) of the Adam family.
using AdamBetas = std::tuple<double, double>;

struct RAdamOptions
    : public torch::optim::OptimizerCloneableOptions<RAdamOptions> {
  RAdamOptions(double lr = 1e-3);  // NOLINT(runtime/explicit)
  TORCH_ARG(double, lr) = 1e-3;
  TORCH_ARG(AdamBetas, betas) = std::make_tuple(0.9, 0.999);
  TORCH_ARG(double, eps) = 1e-8;
  TORCH_ARG(double, weight_decay) = 0.0;

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override;
  void set_lr(const double lr) override;
};

// Per-parameter state of RAdam.
struct RAdamParamState
    : public torch::optim::OptimizerCloneableParamState<RAdamParamState> {
  TORCH_ARG(int64_t, step) = 0;
  TORCH_ARG(torch::Tensor, exp_avg);
  TORCH_ARG(torch::Tensor, exp_avg_sq);

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

// RAdam. save()/load() keep its state like LibTorch's own optimizers.
class RAdam : public torch::optim::Optimizer {
 public:
  explicit RAdam(std::vector<torch::optim::OptimizerParamGroup> param_groups,
                 RAdamOptions defaults = {});
  explicit RAdam(std::vector<torch::Tensor> params, RAdamOptions defaults = {});

  torch::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;
};

// Creates the optimizer of `config` (name default adamw, lr default 1e-3,
// betas 0.9/0.999, eps 1e-8) over `parameters`. With no_decay_norm_bias,
// the parameters with norm_or_bias form a second group with weight decay 0.
// Returns INVALID_ARGUMENT naming the field for an unknown name, lr <= 0,
// a negative weight decay or momentum, betas outside [0, 1), or nesterov
// without momentum (or with a non-SGD optimizer).
absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>> CreateOptimizer(
    const v1::OptimizerConfig& config,
    const std::vector<NamedParameter>& parameters);

// Sets the learning rate of every parameter group of `optimizer`.
void SetLearningRate(torch::optim::Optimizer& optimizer, double lr);

// Clips the global L2 norm of the gradients of `parameters` to `max_norm`
// (> 0) like torch.nn.utils.clip_grad_norm_; returns the norm before
// clipping.
double ClipGradNorm(const std::vector<NamedParameter>& parameters,
                    double max_norm);

// A per-epoch learning-rate schedule with optional linear warm-up.
//
//   none:            base_lr
//   cosine:          eta_min + (base_lr - eta_min) (1 + cos(pi e / T_max)) / 2
//                    (T_max default: epochs - warmup_epochs; e counts epochs
//                    after warm-up, 0-based)
//   cosine_restarts: as cosine within periods T_0, T_0 * T_mult, ...
//                    (torch's CosineAnnealingWarmRestarts, per epoch)
//   step:            base_lr * gamma^floor(e / step_size) (gamma default 0.1)
//   plateau:         base_lr, multiplied by plateau_factor (default 0.1)
//                    when the watched metric has not improved by more than
//                    early_stopping.min_delta for plateau_patience (default
//                    10) epochs (torch's ReduceLROnPlateau, threshold_mode
//                    abs, cooldown 0)
//   warm-up:         the first warmup_epochs epochs go linearly from
//                    base_lr * warmup_start_factor (default 0.1) to base_lr
//                    (epoch w of W gets factor f + (1 - f) * w / W); the
//                    schedule above starts after them.
//                    Metrics reported during warm-up are ignored by
//                    plateau.
// RAdam's load() restores per-parameter state only (step, moments), like
// LibTorch's own optimizers: on resume, build the optimizer from the config
// and set the learning rate from the schedule.
class LrSchedule {
 public:
  // Returns the schedule of `config` for a run of `epochs` epochs starting
  // at `base_lr`; `maximize` is the watched metric's goal (plateau).
  // Returns INVALID_ARGUMENT naming the field for an unknown name, T_max /
  // T_0 / step_size of 0 where needed (after defaults), a factor outside
  // (0, 1], or warmup_epochs >= epochs.
  static absl::StatusOr<std::unique_ptr<LrSchedule>> Create(
      const v1::SchedulerConfig& config, double base_lr, int epochs,
      bool maximize, double min_delta);

  virtual ~LrSchedule() = default;

  // Returns the learning rate of epoch `epoch` (0-based). For plateau the
  // rate depends on the metrics reported so far, so epochs must be asked in
  // order.
  virtual double LrForEpoch(int epoch) const = 0;

  // Reports the watched metric of the epoch that just ended (plateau uses
  // it; the others ignore it).
  virtual void ReportMetric(double value) = 0;

  // Saves / restores the schedule's state (plateau's best value, bad epochs
  // and current factor) for checkpoints. Load returns INVALID_ARGUMENT when
  // the archive does not hold a state of this schedule.
  virtual void Save(torch::serialize::OutputArchive& archive) const = 0;
  virtual absl::Status Load(torch::serialize::InputArchive& archive) = 0;
};

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_PIPELINE_OPTIM_H_
