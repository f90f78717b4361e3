// The files sweepq-train leaves in its --out directory besides checkpoints
// (docs/train-events.md): metrics.csv (one row per epoch), confusion.csv,
// confusion.png (a heat map) and per_class_f1.png (a bar chart), the
// pictures drawn with common/plot/ through the charts of
// common/class_charts.h that `sweepq plot --confusion` draws too. No
// LibTorch, no OpenCV. Every file is written atomically (temporary file +
// rename), so a reader never sees half a file.
//
// Functions are thread-safe (no shared state); a MetricsTable is used by one
// thread at a time.
#ifndef SWEEPQ_WORKER_PIPELINE_TRAIN_REPORT_H_
#define SWEEPQ_WORKER_PIPELINE_TRAIN_REPORT_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sweepq::worker {

// Writes `contents` to `path` through `<path>.tmp` and a rename. Returns
// INTERNAL naming the file when a write or the rename fails.
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents);

// Copies the file `from` to `to` atomically (through `<to>.tmp`). Returns
// INTERNAL naming the file on failure.
absl::Status CopyFileAtomically(const std::string& from, const std::string& to);

// The per-epoch metrics of a run, as metrics.csv holds them: columns
// `epoch`, `step`, then every metric name in the order first seen; a
// metric an epoch lacks is an empty cell. Numbers are written in their
// shortest round-trip form, so FromCsv(ToCsv()) is exact (a resumed run
// carries its history in the checkpoint this way).
class MetricsTable {
 public:
  struct Row {
    int epoch = 0;
    int64_t step = 0;
    std::vector<std::pair<std::string, double>> metrics;
  };

  // Parses ToCsv's output. Returns INVALID_ARGUMENT naming the line for
  // anything else.
  static absl::StatusOr<MetricsTable> FromCsv(absl::string_view csv);

  // Appends a row.
  void Add(Row row);

  // Returns the table as CSV text (header line first; "" for no rows).
  std::string ToCsv() const;

  const std::vector<Row>& rows() const { return rows_; }

 private:
  std::vector<Row> rows_;
};

// Writes the confusion matrix (`confusion[t][p]`: true class t predicted as
// p) as CSV: a header `true\predicted,<class>...`, then one row per true
// class led by its name. Returns INVALID_ARGUMENT when the matrix is not
// square with one row per class name, INTERNAL when writing fails.
absl::Status WriteConfusionCsv(const std::string& path,
                               const std::vector<std::string>& class_names,
                               const std::vector<std::vector<int64_t>>& confusion);

// Width and height of confusion.png for `classes` classes: at least
// 1400 x 1000, growing by 45 x 40 pixels a class beyond about 20.
std::pair<int, int> ConfusionPngSize(int classes);

// Width and height of per_class_f1.png for `classes` classes: 1000 wide,
// at least 400 high, 28 pixels a class beyond about 9.
std::pair<int, int> PerClassF1PngSize(int classes);

// Draws the confusion matrix as a PNG heat map of ConfusionPngSize:
// common/class_charts.h's ConfusionHeatMap (each cell coloured by its
// share of the true class's samples in the heat-map colours of
// common/plot/style.h, the count written in the cell, class names along
// both axes, a colour bar) with the per-class F1 of the matrix as bars
// beside the rows, and `title` above. Returns INVALID_ARGUMENT for a
// matrix that does not fit the names (or no classes), and the plotting or
// file error (naming the path) otherwise.
absl::Status WriteConfusionPng(const std::string& path,
                               const std::vector<std::string>& class_names,
                               const std::vector<std::vector<int64_t>>& confusion,
                               absl::string_view title);

// Draws the per-class F1 of the confusion matrix (2 TP / (2 TP + FP + FN),
// 0 for a class never true nor predicted) as a PNG of PerClassF1PngSize: a
// horizontal bar per class, class names on the left, axis 0 to 1, the
// value at each bar, `title` above. Errors as WriteConfusionPng.
absl::Status WritePerClassF1Png(
    const std::string& path, const std::vector<std::string>& class_names,
    const std::vector<std::vector<int64_t>>& confusion,
    absl::string_view title);

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_PIPELINE_TRAIN_REPORT_H_
