// Charts of a classifier's per-class results, built the same way wherever
// they are drawn: the trainer's report pictures (worker/pipeline/
// train_report.h: confusion.png, per_class_f1.png) and `sweepq plot
// --confusion` (client/plot.h). They only describe the charts; common/plot/
// draws them. Pure functions; thread-safe.
#ifndef SWEEPQ_COMMON_CLASS_CHARTS_H_
#define SWEEPQ_COMMON_CLASS_CHARTS_H_

#include <string>
#include <vector>

#include "common/plot/bar_chart.h"
#include "common/plot/heat_map.h"

namespace sweepq {

// Returns the F1 of every class of the confusion matrix `counts`
// (counts[true][predicted], square): 2 TP / (2 TP + FP + FN), 0 for a
// class with 2 TP + FP + FN == 0 (scikit-learn's zero_division result).
// Rows shorter than the matrix count their missing cells as 0.
std::vector<double> PerClassF1FromConfusion(
    const std::vector<std::vector<double>>& counts);

// Returns the confusion heat map: rows the true class, columns the
// predicted class (both labelled with `class_names`), each cell coloured by
// its share of the row and showing the count, with a colour bar, and when
// `per_class_f1` is not empty its values as bars (0 to 1) beside the rows.
// The caller checks that the sizes agree; RenderHeatMap rejects a mismatch.
plot::HeatMap ConfusionHeatMap(std::string title,
                               const std::vector<std::string>& class_names,
                               std::vector<std::vector<double>> counts,
                               std::vector<double> per_class_f1);

// Returns a horizontal bar chart of `per_class_f1` (one bar per class,
// class names on the left, axis 0 to 1, values with 3 decimals).
plot::BarChart PerClassF1Chart(std::string title,
                               const std::vector<std::string>& class_names,
                               std::vector<double> per_class_f1);

}  // namespace sweepq

#endif  // SWEEPQ_COMMON_CLASS_CHARTS_H_
