// Classification metrics of an evaluation pass: accuracy, macro-F1 exactly
// as scikit-learn's f1_score(average="macro") computes it, per-class F1 and
// the confusion matrix. No LibTorch in the interface beyond AddBatch, so the
// numbers can be tested on plain vectors.
//
// Thread safety: a ConfusionMatrix is used by one thread at a time.
#ifndef SWEEPQ_WORKER_PIPELINE_METRICS_H_
#define SWEEPQ_WORKER_PIPELINE_METRICS_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "torch/types.h"

namespace sweepq::worker {

// What ConfusionMatrix::Compute returns.
struct ClassificationMetrics {
  // Samples counted.
  int64_t count = 0;
  // Share of samples whose prediction equals the target; 0 when count is 0.
  double accuracy = 0.0;
  // Mean of the per-class F1 over the classes that occur among the targets
  // or the predictions (scikit-learn's default `labels`); 0 when count is 0.
  double macro_f1 = 0.0;
  // F1 = 2 TP / (2 TP + FP + FN) of every class in [0, num_classes); 0 for a
  // class with 2 TP + FP + FN == 0 (scikit-learn's zero_division result).
  std::vector<double> per_class_f1;
  // confusion[t][p]: samples of true class t predicted as p.
  std::vector<std::vector<int64_t>> confusion;
};

// Counts (target, prediction) pairs of `num_classes` classes.
class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(int num_classes);

  // Counts one pair. Returns INVALID_ARGUMENT for a class out of range.
  absl::Status Add(int64_t target, int64_t prediction);

  // Counts a batch: `targets` and `predictions` are 1-D int64 tensors of one
  // length (any device). Returns INVALID_ARGUMENT for other shapes or a
  // class out of range.
  absl::Status AddBatch(const torch::Tensor& targets,
                        const torch::Tensor& predictions);

  // Returns the metrics of the pairs counted so far.
  ClassificationMetrics Compute() const;

  int num_classes() const { return num_classes_; }

 private:
  int num_classes_;
  std::vector<int64_t> counts_;  // num_classes_ x num_classes_, row = target
};

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_PIPELINE_METRICS_H_
