#include "worker/pipeline/metrics.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace sweepq::worker {
namespace {

absl::Status CheckClass(const char* what, int64_t c, int num_classes) {
  if (c < 0 || c >= num_classes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics: ", what, " class ", c, " is out of range [0, ", num_classes,
        ")"));
  }
  return absl::OkStatus();
}

std::string ShapeString(const torch::Tensor& t) {
  std::string out = "[";
  for (int64_t i = 0; i < t.dim(); ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ", ", t.size(i));
  }
  return out + "]";
}

}  // namespace

ConfusionMatrix::ConfusionMatrix(int num_classes)
    : num_classes_(num_classes),
      counts_(static_cast<size_t>(num_classes) * num_classes, 0) {
  CHECK_GE(num_classes, 1);
}

absl::Status ConfusionMatrix::Add(int64_t target, int64_t prediction) {
  if (absl::Status s = CheckClass("target", target, num_classes_); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckClass("prediction", prediction, num_classes_);
      !s.ok()) {
    return s;
  }
  ++counts_[static_cast<size_t>(target * num_classes_ + prediction)];
  return absl::OkStatus();
}

absl::Status ConfusionMatrix::AddBatch(const torch::Tensor& targets,
                                       const torch::Tensor& predictions) {
  if (!targets.defined() || !predictions.defined()) {
    return absl::InvalidArgumentError(
        "metrics: targets and predictions must be defined tensors");
  }
  if (targets.dim() != 1 || predictions.dim() != 1 ||
      targets.size(0) != predictions.size(0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics: targets and predictions must be 1-D of one length, got ",
        ShapeString(targets), " and ", ShapeString(predictions)));
  }
  if (targets.scalar_type() != torch::kLong ||
      predictions.scalar_type() != torch::kLong) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics: targets and predictions must be int64, got ",
        c10::toString(targets.scalar_type()), " and ",
        c10::toString(predictions.scalar_type())));
  }
  torch::Tensor t;
  torch::Tensor p;
  try {
    t = targets.to(torch::kCPU).contiguous();
    p = predictions.to(torch::kCPU).contiguous();
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("metrics: copying a batch to the CPU: ", e.what()));
  }
  const int64_t* tp = t.data_ptr<int64_t>();
  const int64_t* pp = p.data_ptr<int64_t>();
  const int64_t n = t.size(0);
  // Validate the whole batch first so a bad batch counts nothing.
  for (int64_t i = 0; i < n; ++i) {
    if (absl::Status s = CheckClass("target", tp[i], num_classes_); !s.ok()) {
      return s;
    }
    if (absl::Status s = CheckClass("prediction", pp[i], num_classes_);
        !s.ok()) {
      return s;
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    ++counts_[static_cast<size_t>(tp[i] * num_classes_ + pp[i])];
  }
  return absl::OkStatus();
}

ClassificationMetrics ConfusionMatrix::Compute() const {
  const size_t k = static_cast<size_t>(num_classes_);
  ClassificationMetrics m;
  m.confusion.assign(k, std::vector<int64_t>(k, 0));
  std::vector<int64_t> row_sum(k, 0);  // samples of each true class
  std::vector<int64_t> col_sum(k, 0);  // predictions of each class
  int64_t correct = 0;
  for (size_t t = 0; t < k; ++t) {
    for (size_t p = 0; p < k; ++p) {
      const int64_t c = counts_[t * k + p];
      m.confusion[t][p] = c;
      row_sum[t] += c;
      col_sum[p] += c;
      m.count += c;
      if (t == p) correct += c;
    }
  }
  m.per_class_f1.assign(k, 0.0);
  if (m.count == 0) return m;
  m.accuracy = static_cast<double>(correct) / static_cast<double>(m.count);
  // F1 = 2TP / (2TP + FP + FN) with FP + TP = col_sum and FN + TP = row_sum;
  // the macro mean runs over the classes present among the targets or the
  // predictions, as scikit-learn's default `labels` does.
  double sum = 0.0;
  int present = 0;
  for (size_t c = 0; c < k; ++c) {
    const int64_t denominator = row_sum[c] + col_sum[c];
    if (denominator == 0) continue;
    m.per_class_f1[c] = 2.0 * static_cast<double>(m.confusion[c][c]) /
                        static_cast<double>(denominator);
    sum += m.per_class_f1[c];
    ++present;
  }
  m.macro_f1 = sum / present;
  return m;
}

}  // namespace sweepq::worker
