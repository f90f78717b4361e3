// Training losses on soft targets, so that CutMix / MixUp batches (a
// lambda-weighted pair of labels) and label smoothing share one code path:
// cross-entropy (label smoothing, class weights), focal loss (gamma), a
// differentiable soft macro-F1 loss, and weighted sums of them.
//
// Definitions (p = softmax(logits), t = soft target rows, N samples, C
// classes, w = class weights, all ones when not configured):
//   smoothing s:  t' = (1 - s) * t + s / C
//   ce:     mean_n  -sum_c w_c t'_nc log p_nc
//   focal:  mean_n  -sum_c w_c t'_nc (1 - p_nc)^gamma log p_nc
//   f1:     1 - mean_c 2 TP_c / (2 TP_c + FP_c + FN_c + eps), eps = 1e-7,
//           with soft counts TP_c = sum_n p_nc t_nc, FP_c = sum_n p_nc
//           (1 - t_nc), FN_c = sum_n (1 - p_nc) t_nc (smoothing not applied)
// For one-hot targets, ce equals torch.nn.functional.cross_entropy(logits,
// y, weight=w, label_smoothing=s) up to its weight normalisation: PyTorch
// divides by sum_n w_{y_n}, we divide by N (the same when w is all ones).
//
// Thread safety: a Loss is immutable after Create.
#ifndef SWEEPQ_WORKER_PIPELINE_LOSS_H_
#define SWEEPQ_WORKER_PIPELINE_LOSS_H_

#include <vector>

#include "absl/status/statusor.h"
#include "sweepq/v1/run_config.pb.h"
#include "torch/types.h"

namespace sweepq::worker {

// Returns N x C soft targets lambda * onehot(labels_a) + (1 - lambda) *
// onehot(labels_b) (float, on the labels' device). labels_* are 1-D int64.
torch::Tensor SoftTargets(const torch::Tensor& labels_a,
                          const torch::Tensor& labels_b, double lambda,
                          int num_classes);

// A configured loss.
class Loss {
 public:
  // Builds the loss of `config` for `num_classes` classes: `name` (ce |
  // focal | f1, default ce) unless any of ce_weight / focal_weight /
  // f1_weight is set, in which case the loss is their weighted sum.
  // Returns INVALID_ARGUMENT naming the field for an unknown name,
  // label_smoothing outside [0, 1), a negative weight or gamma, or
  // class_weights whose size is neither 0 nor num_classes.
  static absl::StatusOr<Loss> Create(const v1::LossConfig& config,
                                     int num_classes);

  // Returns the scalar loss of `logits` (N x C) against `targets` (N x C
  // soft targets, rows summing to 1), differentiable with respect to
  // logits. Throws c10::Error on shape mismatch (a programming error).
  torch::Tensor operator()(const torch::Tensor& logits,
                           const torch::Tensor& targets) const;

  int num_classes() const { return num_classes_; }

 private:
  Loss() = default;

  int num_classes_ = 0;
  double label_smoothing_ = 0.0;
  double focal_gamma_ = 2.0;
  double ce_weight_ = 0.0;
  double focal_weight_ = 0.0;
  double f1_weight_ = 0.0;
  std::vector<double> class_weights_;
};

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_PIPELINE_LOSS_H_
