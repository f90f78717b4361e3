#include "worker/pipeline/optim.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "torch/nn/utils/clip_grad.h"
#include "torch/optim/serialize.h"
#include "torch/version.h"

namespace sweepq::worker {
namespace {

constexpr double kPi = 3.14159265358979323846;

// The keys of an optimizer's state map: the parameter's TensorImpl address,
// as LibTorch's own optimizers (and torch::optim::serialize) use. LibTorch
// 1.x keys by the address's text, 2.x by the address itself
// (scripts/check-libtorch2.sh compiles this against 2.x headers).
#if TORCH_VERSION_MAJOR >= 2
void* StateKey(const torch::Tensor& param) {
  return param.unsafeGetTensorImpl();
}
#else
std::string StateKey(const torch::Tensor& param) {
  return c10::guts::to_string(param.unsafeGetTensorImpl());
}
#endif

}  // namespace

// ---------------------------------------------------------------- RAdam

RAdamOptions::RAdamOptions(double lr) : lr_(lr) {}

double RAdamOptions::get_lr() const { return lr(); }

void RAdamOptions::set_lr(const double lr) { this->lr(lr); }

void RAdamOptions::serialize(torch::serialize::OutputArchive& archive) const {
  archive.write("lr", c10::IValue(lr()));
  archive.write("beta1", c10::IValue(std::get<0>(betas())));
  archive.write("beta2", c10::IValue(std::get<1>(betas())));
  archive.write("eps", c10::IValue(eps()));
  archive.write("weight_decay", c10::IValue(weight_decay()));
}

void RAdamOptions::serialize(torch::serialize::InputArchive& archive) {
  c10::IValue value;
  archive.read("lr", value);
  lr(value.toDouble());
  archive.read("beta1", value);
  const double beta1 = value.toDouble();
  archive.read("beta2", value);
  betas(std::make_tuple(beta1, value.toDouble()));
  archive.read("eps", value);
  eps(value.toDouble());
  archive.read("weight_decay", value);
  weight_decay(value.toDouble());
}

void RAdamParamState::serialize(
    torch::serialize::OutputArchive& archive) const {
  archive.write("step", c10::IValue(step()));
  archive.write("exp_avg", exp_avg(), /*is_buffer=*/true);
  archive.write("exp_avg_sq", exp_avg_sq(), /*is_buffer=*/true);
}

void RAdamParamState::serialize(torch::serialize::InputArchive& archive) {
  c10::IValue value;
  archive.read("step", value);
  step(value.toInt());
  torch::Tensor tensor;
  archive.read("exp_avg", tensor, /*is_buffer=*/true);
  exp_avg(tensor);
  torch::Tensor tensor_sq;
  archive.read("exp_avg_sq", tensor_sq, /*is_buffer=*/true);
  exp_avg_sq(tensor_sq);
}

RAdam::RAdam(std::vector<torch::optim::OptimizerParamGroup> param_groups,
             RAdamOptions defaults)
    : torch::optim::Optimizer(std::move(param_groups),
                              std::make_unique<RAdamOptions>(defaults)) {
  const auto [beta1, beta2] = defaults.betas();
  TORCH_CHECK(defaults.lr() >= 0, "Invalid learning rate: ", defaults.lr());
  TORCH_CHECK(defaults.eps() >= 0, "Invalid epsilon value: ", defaults.eps());
  TORCH_CHECK(beta1 >= 0 && beta1 < 1, "Invalid beta1: ", beta1);
  TORCH_CHECK(beta2 >= 0 && beta2 < 1, "Invalid beta2: ", beta2);
  TORCH_CHECK(defaults.weight_decay() >= 0,
              "Invalid weight_decay value: ", defaults.weight_decay());
}

RAdam::RAdam(std::vector<torch::Tensor> params, RAdamOptions defaults)
    : RAdam({torch::optim::OptimizerParamGroup(std::move(params))},
            std::move(defaults)) {}

torch::Tensor RAdam::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups_) {
    const auto& options = static_cast<const RAdamOptions&>(group.options());
    const auto [beta1, beta2] = options.betas();
    const double lr = options.lr();
    // Length limit of the approximated simple moving average (Liu et al.).
    const double rho_inf = 2.0 / (1.0 - beta2) - 1.0;
    for (auto& param : group.params()) {
      if (!param.grad().defined()) continue;
      TORCH_CHECK(!param.grad().is_sparse(),
                  "RAdam does not support sparse gradients");
      auto it = state_.find(StateKey(param));
      if (it == state_.end()) {
        auto fresh = std::make_unique<RAdamParamState>();
        fresh->exp_avg(torch::zeros_like(param, at::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(param, at::MemoryFormat::Preserve));
        it = state_.emplace(StateKey(param), std::move(fresh)).first;
      }
      auto& state = static_cast<RAdamParamState&>(*it->second);
      state.step(state.step() + 1);
      const double t = static_cast<double>(state.step());
      const double bias_correction1 = 1.0 - std::pow(beta1, t);
      const double bias_correction2 = 1.0 - std::pow(beta2, t);

      // L2 weight decay (coupled, as torch.optim.RAdam 1.13).
      const torch::Tensor grad =
          options.weight_decay() != 0.0
              ? param.grad().add(param, options.weight_decay())
              : param.grad();
      state.exp_avg().mul_(beta1).add_(grad, 1.0 - beta1);
      state.exp_avg_sq().mul_(beta2).addcmul_(grad, grad, 1.0 - beta2);
      const torch::Tensor corrected_avg = state.exp_avg().div(bias_correction1);

      const double rho_t =
          rho_inf - 2.0 * t * std::pow(beta2, t) / bias_correction2;
      // The operations below keep PyTorch's order (scalar / tensor is a
      // reciprocal times the scalar there) so that float64 results agree
      // to the last bits, not only to a tolerance.
      if (rho_t > 5.0) {
        const double rect =
            std::sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf /
                      ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t));
        const torch::Tensor adaptive_lr =
            state.exp_avg_sq()
                .sqrt()
                .add_(options.eps())
                .reciprocal_()
                .mul_(std::sqrt(bias_correction2));
        param.add_(corrected_avg.mul(lr).mul_(adaptive_lr).mul_(rect), -1.0);
      } else {
        // Variance not tractable yet: an un-adapted momentum step.
        param.add_(corrected_avg.mul(lr), -1.0);
      }
    }
  }
  return loss;
}

void RAdam::save(torch::serialize::OutputArchive& archive) const {
  torch::optim::serialize<RAdamParamState, RAdamOptions>(archive, *this);
}

void RAdam::load(torch::serialize::InputArchive& archive) {
  torch::optim::serialize<RAdamParamState, RAdamOptions>(archive, *this);
}

// ------------------------------------------------------- CreateOptimizer

absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>> CreateOptimizer(
    const v1::OptimizerConfig& config,
    const std::vector<NamedParameter>& parameters) {
  const std::string name = config.name().empty() ? "adamw" : config.name();
  if (name != "sgd" && name != "adam" && name != "adamw" && name != "radam") {
    return absl::InvalidArgumentError(absl::StrCat(
        "optimizer.name must be one of sgd, adam, adamw, radam, got \"",
        config.name(), "\""));
  }
  const double lr = config.has_lr() ? config.lr() : 1e-3;
  if (!(lr > 0.0) || !std::isfinite(lr)) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.lr must be > 0, got ", lr));
  }
  if (!(config.weight_decay() >= 0.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "optimizer.weight_decay must be >= 0, got ", config.weight_decay()));
  }
  if (!(config.momentum() >= 0.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "optimizer.momentum must be >= 0, got ", config.momentum()));
  }
  if (config.momentum() > 0.0 && name != "sgd") {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.momentum applies to sgd only, not to ", name,
                     " (use beta1)"));
  }
  if (config.nesterov() && name != "sgd") {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.nesterov applies to sgd only, not to ", name));
  }
  if (config.nesterov() && config.momentum() == 0.0) {
    return absl::InvalidArgumentError(
        "optimizer.nesterov requires optimizer.momentum > 0");
  }
  const double beta1 = config.has_beta1() ? config.beta1() : 0.9;
  const double beta2 = config.has_beta2() ? config.beta2() : 0.999;
  const double eps = config.has_eps() ? config.eps() : 1e-8;
  for (const auto& [value, field] :
       {std::make_pair(beta1, "beta1"), std::make_pair(beta2, "beta2")}) {
    if (!(value >= 0.0 && value < 1.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("optimizer.", field, " must be in [0, 1), got ", value));
    }
  }
  if (!(eps >= 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.eps must be >= 0, got ", eps));
  }
  if (!(config.grad_clip_norm() >= 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.grad_clip_norm must be >= 0 (0 = off), got ",
                     config.grad_clip_norm()));
  }
  if (parameters.empty()) {
    return absl::InvalidArgumentError("optimizer: the model has no parameters");
  }

  std::vector<torch::Tensor> decay;
  std::vector<torch::Tensor> no_decay;
  for (const NamedParameter& p : parameters) {
    if (!p.tensor.defined()) {
      return absl::InvalidArgumentError(
          absl::StrCat("optimizer: parameter ", p.name, " is undefined"));
    }
    (config.no_decay_norm_bias() && p.norm_or_bias ? no_decay : decay)
        .push_back(p.tensor);
  }

  // Builds the groups for options type O: the decayed group takes the
  // optimizer's defaults, the exempt one a copy with weight_decay 0.
  auto groups = [&](const auto& defaults) {
    using Options = std::decay_t<decltype(defaults)>;
    std::vector<torch::optim::OptimizerParamGroup> out;
    if (!decay.empty()) out.emplace_back(decay);
    if (!no_decay.empty()) {
      auto options = std::make_unique<Options>(defaults);
      options->weight_decay(0.0);
      out.emplace_back(no_decay, std::move(options));
    }
    return out;
  };

  const double wd = config.weight_decay();
  try {
    std::unique_ptr<torch::optim::Optimizer> optimizer;
    if (name == "sgd") {
      const auto options = torch::optim::SGDOptions(lr)
                               .momentum(config.momentum())
                               .nesterov(config.nesterov())
                               .weight_decay(wd);
      optimizer = std::make_unique<torch::optim::SGD>(groups(options), options);
    } else if (name == "adam") {
      const auto options = torch::optim::AdamOptions(lr)
                               .betas(std::make_tuple(beta1, beta2))
                               .eps(eps)
                               .weight_decay(wd);
      optimizer =
          std::make_unique<torch::optim::Adam>(groups(options), options);
    } else if (name == "adamw") {
      const auto options = torch::optim::AdamWOptions(lr)
                               .betas(std::make_tuple(beta1, beta2))
                               .eps(eps)
                               .weight_decay(wd);
      optimizer =
          std::make_unique<torch::optim::AdamW>(groups(options), options);
    } else {
      const auto options = RAdamOptions(lr)
                               .betas(std::make_tuple(beta1, beta2))
                               .eps(eps)
                               .weight_decay(wd);
      optimizer = std::make_unique<RAdam>(groups(options), options);
    }
    return optimizer;
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer: LibTorch refused the ", name,
                     " options: ", e.what_without_backtrace()));
  }
}

void SetLearningRate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

double ClipGradNorm(const std::vector<NamedParameter>& parameters,
                    double max_norm) {
  TORCH_CHECK(max_norm > 0.0, "ClipGradNorm: max_norm must be > 0, got ",
              max_norm);
  std::vector<torch::Tensor> tensors;
  tensors.reserve(parameters.size());
  for (const NamedParameter& p : parameters) tensors.push_back(p.tensor);
  return torch::nn::utils::clip_grad_norm_(std::move(tensors), max_norm);
}

// ----------------------------------------------------------- LrSchedule

namespace {

enum class ScheduleKind { kNone, kCosine, kCosineRestarts, kStep, kPlateau };

absl::string_view KindName(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::kNone:
      return "none";
    case ScheduleKind::kCosine:
      return "cosine";
    case ScheduleKind::kCosineRestarts:
      return "cosine_restarts";
    case ScheduleKind::kStep:
      return "step";
    case ScheduleKind::kPlateau:
      return "plateau";
  }
  return "unknown";
}

// Settings of a schedule, defaults resolved.
struct ScheduleSettings {
  ScheduleKind kind = ScheduleKind::kNone;
  double base_lr = 0.0;
  int warmup_epochs = 0;
  double warmup_start_factor = 0.1;
  double eta_min = 0.0;
  int64_t t_max = 0;
  int64_t t_0 = 0;
  int64_t t_mult = 1;
  int64_t step_size = 0;
  double gamma = 0.1;
  bool maximize = true;
  double min_delta = 0.0;
  int64_t patience = 10;
  double factor = 0.1;
};

// Archive keys of the schedule state.
constexpr char kKindKey[] = "lr_schedule/kind";
constexpr char kStateKey[] = "lr_schedule/state";

// ReduceLROnPlateau ignores a reduction smaller than this (torch's `eps`).
constexpr double kPlateauMinChange = 1e-8;

// All five schedules: the closed forms of optim.h, warm-up in front.
class EpochSchedule : public LrSchedule {
 public:
  explicit EpochSchedule(const ScheduleSettings& settings)
      : s_(settings),
        best_(settings.maximize ? -std::numeric_limits<double>::infinity()
                                : std::numeric_limits<double>::infinity()) {}

  double LrForEpoch(int epoch) const override {
    if (epoch < s_.warmup_epochs) {
      const double f = s_.warmup_start_factor;
      return s_.base_lr * (f + (1.0 - f) * epoch / s_.warmup_epochs);
    }
    const int64_t e = epoch - s_.warmup_epochs;
    switch (s_.kind) {
      case ScheduleKind::kNone:
        return s_.base_lr;
      case ScheduleKind::kCosine:
        return Cosine(static_cast<double>(e), static_cast<double>(s_.t_max));
      case ScheduleKind::kCosineRestarts: {
        int64_t t_cur = e;
        int64_t period = s_.t_0;
        if (s_.t_mult == 1) {
          t_cur = e % period;
        } else {
          while (t_cur >= period) {
            t_cur -= period;
            period *= s_.t_mult;
          }
        }
        return Cosine(static_cast<double>(t_cur), static_cast<double>(period));
      }
      case ScheduleKind::kStep:
        return s_.base_lr *
               std::pow(s_.gamma, static_cast<double>(e / s_.step_size));
      case ScheduleKind::kPlateau:
        return s_.base_lr * scale_;
    }
    return s_.base_lr;
  }

  void ReportMetric(double value) override {
    const int64_t epoch = reported_++;
    if (s_.kind != ScheduleKind::kPlateau || epoch < s_.warmup_epochs) return;
    // torch's ReduceLROnPlateau, threshold_mode "abs", cooldown 0; NaN is
    // never an improvement.
    const bool better = s_.maximize ? value > best_ + s_.min_delta
                                    : value < best_ - s_.min_delta;
    if (better) {
      best_ = value;
      bad_epochs_ = 0;
      return;
    }
    if (++bad_epochs_ > s_.patience) {
      const double old_lr = s_.base_lr * scale_;
      const double new_scale = scale_ * s_.factor;
      if (old_lr - s_.base_lr * new_scale > kPlateauMinChange) {
        scale_ = new_scale;
      }
      bad_epochs_ = 0;
    }
  }

  void Save(torch::serialize::OutputArchive& archive) const override {
    archive.write(kKindKey, c10::IValue(std::string(KindName(s_.kind))));
    archive.write(kStateKey,
                  torch::tensor({best_, static_cast<double>(bad_epochs_),
                                 scale_, static_cast<double>(reported_)},
                                torch::kDouble));
  }

  absl::Status Load(torch::serialize::InputArchive& archive) override {
    c10::IValue kind;
    torch::Tensor state;
    try {
      if (!archive.try_read(kKindKey, kind) || !kind.isString() ||
          !archive.try_read(kStateKey, state)) {
        return absl::InvalidArgumentError(
            "checkpoint holds no learning-rate schedule state");
      }
    } catch (const c10::Error& e) {
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint's learning-rate schedule state does not "
                       "read: ",
                       e.what_without_backtrace()));
    }
    if (kind.toStringRef() != KindName(s_.kind)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "checkpoint holds the state of a ", kind.toStringRef(),
          " schedule, this run's scheduler.name is ", KindName(s_.kind)));
    }
    if (state.scalar_type() != torch::kDouble || state.dim() != 1 ||
        state.numel() != 4) {
      return absl::InvalidArgumentError(
          "checkpoint's learning-rate schedule state has the wrong shape");
    }
    const torch::Tensor values = state.contiguous();
    const double* v = values.data_ptr<double>();
    best_ = v[0];
    bad_epochs_ = static_cast<int64_t>(v[1]);
    scale_ = v[2];
    reported_ = static_cast<int64_t>(v[3]);
    return absl::OkStatus();
  }

 private:
  double Cosine(double t_cur, double period) const {
    return s_.eta_min + (s_.base_lr - s_.eta_min) *
                            (1.0 + std::cos(kPi * t_cur / period)) / 2.0;
  }

  const ScheduleSettings s_;
  // Plateau state.
  double best_;
  int64_t bad_epochs_ = 0;
  double scale_ = 1.0;
  // Metrics reported so far (epochs ended).
  int64_t reported_ = 0;
};

absl::Status CheckFactor(double value, absl::string_view field) {
  if (!(value > 0.0 && value <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("scheduler.", field, " must be in (0, 1], got ", value));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<LrSchedule>> LrSchedule::Create(
    const v1::SchedulerConfig& config, double base_lr, int epochs,
    bool maximize, double min_delta) {
  ScheduleSettings s;
  const std::string name = config.name().empty() ? "none" : config.name();
  if (name == "none") {
    s.kind = ScheduleKind::kNone;
  } else if (name == "cosine") {
    s.kind = ScheduleKind::kCosine;
  } else if (name == "cosine_restarts") {
    s.kind = ScheduleKind::kCosineRestarts;
  } else if (name == "step") {
    s.kind = ScheduleKind::kStep;
  } else if (name == "plateau") {
    s.kind = ScheduleKind::kPlateau;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "scheduler.name must be one of none, cosine, cosine_restarts, step, "
        "plateau, got \"",
        config.name(), "\""));
  }
  if (!(base_lr > 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.lr must be > 0, got ", base_lr));
  }
  if (epochs <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("train.epochs must be > 0, got ", epochs));
  }
  if (config.warmup_epochs() >= static_cast<uint32_t>(epochs)) {
    return absl::InvalidArgumentError(
        absl::StrCat("scheduler.warmup_epochs must be < train.epochs (", epochs,
                     "), got ", config.warmup_epochs()));
  }
  if (!(config.eta_min() >= 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("scheduler.eta_min must be >= 0, got ", config.eta_min()));
  }
  if (!(min_delta >= 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("early_stopping.min_delta must be >= 0, got ", min_delta));
  }
  s.base_lr = base_lr;
  s.warmup_epochs = static_cast<int>(config.warmup_epochs());
  if (config.has_warmup_start_factor()) {
    if (absl::Status st =
            CheckFactor(config.warmup_start_factor(), "warmup_start_factor");
        !st.ok()) {
      return st;
    }
    s.warmup_start_factor = config.warmup_start_factor();
  }
  s.eta_min = config.eta_min();
  s.maximize = maximize;
  s.min_delta = min_delta;

  switch (s.kind) {
    case ScheduleKind::kNone:
      break;
    case ScheduleKind::kCosine:
      s.t_max = config.t_max() > 0 ? config.t_max() : epochs - s.warmup_epochs;
      break;
    case ScheduleKind::kCosineRestarts:
      if (config.t_0() == 0) {
        return absl::InvalidArgumentError(
            "scheduler.t_0 must be > 0 for cosine_restarts");
      }
      s.t_0 = config.t_0();
      if (config.has_t_mult()) {
        if (config.t_mult() == 0) {
          return absl::InvalidArgumentError(
              "scheduler.t_mult must be >= 1, got 0");
        }
        s.t_mult = config.t_mult();
      }
      break;
    case ScheduleKind::kStep:
      if (config.step_size() == 0) {
        return absl::InvalidArgumentError(
            "scheduler.step_size must be > 0 for step");
      }
      s.step_size = config.step_size();
      if (config.has_gamma()) {
        if (absl::Status st = CheckFactor(config.gamma(), "gamma"); !st.ok()) {
          return st;
        }
        s.gamma = config.gamma();
      }
      break;
    case ScheduleKind::kPlateau:
      if (config.has_plateau_patience()) {
        s.patience = config.plateau_patience();
      }
      if (config.has_plateau_factor()) {
        if (absl::Status st =
                CheckFactor(config.plateau_factor(), "plateau_factor");
            !st.ok()) {
          return st;
        }
        s.factor = config.plateau_factor();
      }
      break;
  }
  return std::unique_ptr<LrSchedule>(std::make_unique<EpochSchedule>(s));
}

}  // namespace sweepq::worker
