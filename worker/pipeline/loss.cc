#include "worker/pipeline/loss.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace sweepq::worker {
namespace {

// Soft-F1 denominator guard (loss.h).
constexpr double kF1Eps = 1e-7;

// Lower bound of (1 - p) in the focal factor: keeps the backward pass of
// (1 - p)^gamma finite for gamma < 1 when p rounds to 1. The loss term it
// changes is below 1e-12 * |log p| ~ 1e-24.
constexpr double kFocalFloor = 1e-12;

absl::Status CheckNonNegative(double value, absl::string_view field) {
  if (!(value >= 0.0)) {  // also rejects NaN
    return absl::InvalidArgumentError(
        absl::StrCat("loss.", field, " must be >= 0, got ", value));
  }
  return absl::OkStatus();
}

}  // namespace

torch::Tensor SoftTargets(const torch::Tensor& labels_a,
                          const torch::Tensor& labels_b, double lambda,
                          int num_classes) {
  TORCH_CHECK(labels_a.dim() == 1 && labels_b.dim() == 1 &&
                  labels_a.size(0) == labels_b.size(0),
              "SoftTargets: labels must be 1-D of equal length, got ",
              labels_a.sizes(), " and ", labels_b.sizes());
  const torch::Tensor a =
      torch::one_hot(labels_a.to(torch::kLong), num_classes).to(torch::kFloat);
  if (lambda == 1.0) return a;
  const torch::Tensor b =
      torch::one_hot(labels_b.to(torch::kLong), num_classes).to(torch::kFloat);
  return a.mul(lambda).add_(b, 1.0 - lambda);
}

absl::StatusOr<Loss> Loss::Create(const v1::LossConfig& config,
                                  int num_classes) {
  if (num_classes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("loss: num_classes must be > 0, got ", num_classes));
  }
  Loss loss;
  loss.num_classes_ = num_classes;

  const std::string name = config.name().empty() ? "ce" : config.name();
  if (name != "ce" && name != "focal" && name != "f1") {
    return absl::InvalidArgumentError(absl::StrCat(
        "loss.name must be one of ce, focal, f1, got \"", config.name(), "\""));
  }
  if (!(config.label_smoothing() >= 0.0 && config.label_smoothing() < 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("loss.label_smoothing must be in [0, 1), got ",
                     config.label_smoothing()));
  }
  loss.label_smoothing_ = config.label_smoothing();
  if (config.has_focal_gamma()) {
    if (absl::Status s = CheckNonNegative(config.focal_gamma(), "focal_gamma");
        !s.ok()) {
      return s;
    }
    loss.focal_gamma_ = config.focal_gamma();
  }
  for (const auto& [value, field] :
       {std::make_pair(config.ce_weight(), "ce_weight"),
        std::make_pair(config.focal_weight(), "focal_weight"),
        std::make_pair(config.f1_weight(), "f1_weight")}) {
    if (absl::Status s = CheckNonNegative(value, field); !s.ok()) return s;
  }
  if (config.ce_weight() > 0.0 || config.focal_weight() > 0.0 ||
      config.f1_weight() > 0.0) {
    loss.ce_weight_ = config.ce_weight();
    loss.focal_weight_ = config.focal_weight();
    loss.f1_weight_ = config.f1_weight();
  } else if (name == "ce") {
    loss.ce_weight_ = 1.0;
  } else if (name == "focal") {
    loss.focal_weight_ = 1.0;
  } else {
    loss.f1_weight_ = 1.0;
  }

  const int num_weights = config.class_weights_size();
  if (num_weights != 0 && num_weights != num_classes) {
    return absl::InvalidArgumentError(
        absl::StrCat("loss.class_weights has ", num_weights,
                     " values, expected 0 or num_classes = ", num_classes));
  }
  for (int c = 0; c < num_weights; ++c) {
    if (absl::Status s = CheckNonNegative(
            config.class_weights(c), absl::StrCat("class_weights[", c, "]"));
        !s.ok()) {
      return s;
    }
  }
  loss.class_weights_.assign(config.class_weights().begin(),
                             config.class_weights().end());
  return loss;
}

torch::Tensor Loss::operator()(const torch::Tensor& logits,
                               const torch::Tensor& targets) const {
  TORCH_CHECK(logits.dim() == 2 && logits.size(1) == num_classes_,
              "Loss: logits must be N x ", num_classes_, ", got ",
              logits.sizes());
  TORCH_CHECK(targets.sizes() == logits.sizes(),
              "Loss: targets must have the shape of logits ", logits.sizes(),
              ", got ", targets.sizes());
  // Half-precision logits (mixed precision) are promoted: log_softmax and
  // the soft counts need float accuracy.
  const torch::Tensor x = logits.scalar_type() == torch::kDouble
                              ? logits
                              : logits.to(torch::kFloat);
  const torch::Tensor t = targets.to(x.scalar_type());
  const torch::Tensor log_p = torch::log_softmax(x, /*dim=*/1);

  torch::Tensor total = torch::zeros({}, x.options());
  if (ce_weight_ > 0.0 || focal_weight_ > 0.0) {
    // Smoothed, class-weighted targets w_c t'_nc shared by ce and focal.
    torch::Tensor weighted = label_smoothing_ > 0.0
                                 ? t.mul(1.0 - label_smoothing_)
                                       .add_(label_smoothing_ / num_classes_)
                                 : t;
    if (!class_weights_.empty()) {
      weighted = weighted.mul(
          torch::tensor(class_weights_, x.options().dtype(torch::kDouble))
              .to(x.scalar_type()));
    }
    if (ce_weight_ > 0.0) {
      const torch::Tensor ce = weighted.mul(log_p).sum(1).mean().neg();
      total = total + ce * ce_weight_;
    }
    if (focal_weight_ > 0.0) {
      const torch::Tensor modulation =
          (1.0 - log_p.exp()).clamp_min(kFocalFloor).pow(focal_gamma_);
      const torch::Tensor focal =
          weighted.mul(modulation).mul(log_p).sum(1).mean().neg();
      total = total + focal * focal_weight_;
    }
  }
  if (f1_weight_ > 0.0) {
    const torch::Tensor p = log_p.exp();
    const torch::Tensor tp = p.mul(t).sum(0);
    // 2 TP + FP + FN = sum_n p + sum_n t.
    const torch::Tensor denominator = p.sum(0) + t.sum(0) + kF1Eps;
    const torch::Tensor f1 = 1.0 - tp.mul(2.0).div(denominator).mean();
    total = total + f1 * f1_weight_;
  }
  return total;
}

}  // namespace sweepq::worker
