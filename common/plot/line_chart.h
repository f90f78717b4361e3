// Line charts: one or more panels (e.g. one per metric) of named series of
// (x, y) points, sharing one legend in which a name has the same colour in
// every panel. Each panel has nice axis ticks fitted to its data, grid
// lines, a title and axis titles. Thread-safe (pure).
#ifndef SWEEPQ_COMMON_PLOT_LINE_CHART_H_
#define SWEEPQ_COMMON_PLOT_LINE_CHART_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/plot/canvas.h"
#include "common/plot/style.h"

namespace sweepq::plot {

struct Series {
  // Legend label; series of the same name in several panels share a colour.
  std::string name;
  // Points in drawing order; x and y have the same length. A non-finite y
  // (NaN, inf) leaves a gap in the line; non-finite x is skipped.
  std::vector<double> x;
  std::vector<double> y;
};

struct LinePanel {
  std::string title;
  std::string x_title;
  std::string y_title;
  std::vector<Series> series;
  // x values are whole numbers (epochs): ticks at least 1 apart.
  bool integer_x = false;
};

struct LineChart {
  std::string title;
  // Optional: series names in legend order; the i-th gets SeriesColor(i).
  // Names not listed follow in the order they first appear in the panels.
  std::vector<std::string> series_order;
  // Laid out in a grid of columns and rows chosen to keep each panel about
  // half again as wide as tall.
  std::vector<LinePanel> panels;
};

// Draws `chart` on a new canvas of the given size. A panel without any
// finite point says "no data". Returns INVALID_ARGUMENT for no panels, a
// series whose x and y differ in length (naming panel and series), or a
// bad size.
absl::StatusOr<Canvas> RenderLineChart(const LineChart& chart,
                                       const ChartOptions& options);

// The grid RenderLineChart() uses for `panels` panels in a width x height
// area: {columns, rows}.
std::pair<int, int> PanelGrid(int panels, int width, int height);

}  // namespace sweepq::plot

#endif  // SWEEPQ_COMMON_PLOT_LINE_CHART_H_
