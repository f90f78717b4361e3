#include "common/class_charts.h"

#include <utility>

namespace sweepq {

std::vector<double> PerClassF1FromConfusion(
    const std::vector<std::vector<double>>& counts) {
  const size_t n = counts.size();
  auto at = [&](size_t t, size_t p) {
    return p < counts[t].size() ? counts[t][p] : 0.0;
  };
  std::vector<double> f1(n, 0.0);
  for (size_t c = 0; c < n; ++c) {
    const double tp = at(c, c);
    double fp = 0.0;
    double fn = 0.0;
    for (size_t o = 0; o < n; ++o) {
      if (o == c) continue;
      fp += at(o, c);
      fn += at(c, o);
    }
    const double denominator = 2.0 * tp + fp + fn;
    f1[c] = denominator > 0.0 ? 2.0 * tp / denominator : 0.0;
  }
  return f1;
}

plot::HeatMap ConfusionHeatMap(std::string title,
                               const std::vector<std::string>& class_names,
                               std::vector<std::vector<double>> counts,
                               std::vector<double> per_class_f1) {
  plot::HeatMap map;
  map.title = std::move(title);
  map.row_labels = class_names;
  map.column_labels = class_names;
  map.values = std::move(counts);
  map.row_title = "true class";
  map.column_title = "predicted class";
  map.normalize_rows = true;
  map.value_decimals = 0;
  map.color_bar = true;
  if (!per_class_f1.empty()) {
    map.row_bars = std::move(per_class_f1);
    map.row_bar_title = "F1";
    map.row_bar_max = 1;
    map.row_bar_decimals = 3;
  }
  return map;
}

plot::BarChart PerClassF1Chart(std::string title,
                               const std::vector<std::string>& class_names,
                               std::vector<double> per_class_f1) {
  plot::BarChart chart;
  chart.title = std::move(title);
  chart.labels = class_names;
  chart.values = std::move(per_class_f1);
  chart.value_title = "F1";
  chart.horizontal = true;
  chart.value_decimals = 3;
  chart.axis_min = 0;
  chart.axis_max = 1;
  return chart;
}

}  // namespace sweepq
