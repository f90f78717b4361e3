// Heat maps (e.g. a confusion matrix): a grid of cells coloured by value,
// with the values written in the cells where they fit, row labels on the
// left, column labels below (side by side, wrapped after '/', or turned a
// quarter when too long), an optional colour bar and an optional column of
// bars beside the grid, one per row and aligned with it (e.g. per-class
// F1). Thread-safe (pure).
#ifndef SWEEPQ_COMMON_PLOT_HEAT_MAP_H_
#define SWEEPQ_COMMON_PLOT_HEAT_MAP_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/plot/canvas.h"
#include "common/plot/style.h"

namespace sweepq::plot {

struct HeatMap {
  std::string title;
  std::vector<std::string> row_labels;
  std::vector<std::string> column_labels;
  // values[row][column]; every row has column_labels.size() values.
  // Non-finite values are drawn as empty cells.
  std::vector<std::vector<double>> values;
  // Axis titles: rows on the left (turned), columns below.
  std::string row_title;
  std::string column_title;
  // Colour each cell by its share of its row's sum (for a confusion
  // matrix: the fraction of the true class predicted as each class)
  // instead of by value / the largest value. The text stays the value.
  bool normalize_rows = false;
  // Digits after the point of the values written in the cells.
  int value_decimals = 0;
  // Write 0 in cells whose value is exactly zero (off: they stay blank).
  bool show_zeros = false;
  bool color_bar = true;
  // Optional: one value per row drawn as a bar beside the grid, on an axis
  // from 0 to row_bar_max, with row_bar_title above the bars.
  std::vector<double> row_bars;
  std::string row_bar_title;
  double row_bar_max = 1;
  int row_bar_decimals = 2;
};

// Where RenderHeatMap() put the grid, for callers and tests that look at
// cells.
struct HeatMapLayout {
  Rect grid;
  int cell = 0;  // side of a (square) cell in pixels
  // Column labels: 0 side by side, 1 wrapped, 2 turned.
  int column_label_mode = 0;
};

// Draws `map` on a new canvas of the given size and, when `layout` is not
// null, says where the grid is. INVALID_ARGUMENT for an empty map, a row
// with the wrong number of values or labels (naming the row), row_bars
// of the wrong length, or a picture too small for one pixel per cell.
absl::StatusOr<Canvas> RenderHeatMap(const HeatMap& map,
                                     const ChartOptions& options,
                                     HeatMapLayout* layout = nullptr);

}  // namespace sweepq::plot

#endif  // SWEEPQ_COMMON_PLOT_HEAT_MAP_H_
