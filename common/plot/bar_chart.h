// Bar charts: one bar per labelled value, horizontal (labels on the left,
// for long names) or vertical (labels below, turned a quarter when they do
// not fit), with the value written at the end of each bar. Thread-safe
// (pure).
#ifndef SWEEPQ_COMMON_PLOT_BAR_CHART_H_
#define SWEEPQ_COMMON_PLOT_BAR_CHART_H_

#include <limits>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/plot/canvas.h"
#include "common/plot/style.h"

namespace sweepq::plot {

struct BarChart {
  std::string title;
  std::vector<std::string> labels;
  // One per label; a NaN value draws no bar and the text "nan".
  std::vector<double> values;
  // Title of the value axis.
  std::string value_title;
  bool horizontal = true;
  // Digits after the point of the value written at each bar.
  int value_decimals = 3;
  // The value axis spans [min(0, values), max(0, values)] rounded to nice
  // ticks, unless these are finite (e.g. 0 and 1 for F1 scores).
  double axis_min = std::numeric_limits<double>::quiet_NaN();
  double axis_max = std::numeric_limits<double>::quiet_NaN();
  // Bar colours: one per bar, or empty for all in SeriesColor(0).
  std::vector<Color> colors;
};

// Draws `chart` on a new canvas of the given size. INVALID_ARGUMENT when
// labels and values (or colours) differ in number, there are no bars, or
// the size is bad.
absl::StatusOr<Canvas> RenderBarChart(const BarChart& chart,
                                      const ChartOptions& options);

}  // namespace sweepq::plot

#endif  // SWEEPQ_COMMON_PLOT_BAR_CHART_H_
