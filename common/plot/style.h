// Colours, text sizes and the pieces every chart shares (legend, axes),
// used by line_chart.cc, bar_chart.cc and heat_map.cc. Exposed so that
// tests and callers can name the colour a series is drawn in. Pure
// functions or drawing into a given canvas; thread-safe for distinct
// canvases.
#ifndef SWEEPQ_COMMON_PLOT_STYLE_H_
#define SWEEPQ_COMMON_PLOT_STYLE_H_

#include <cstddef>
#include <string>
#include <vector>

#include "common/plot/canvas.h"
#include "common/plot/ticks.h"

namespace sweepq::plot {

inline constexpr Color kTextColor{34, 34, 34};
inline constexpr Color kMutedTextColor{96, 96, 96};
inline constexpr Color kAxisColor{68, 68, 68};
inline constexpr Color kGridColor{226, 226, 226};
inline constexpr Color kTrackColor{238, 238, 238};

// Size of the picture and of its text, shared by every chart.
struct ChartOptions {
  int width = 1200;
  int height = 800;
  // Integer scale of the 5x9 font for labels (titles are one step larger);
  // 0 picks one from the size (AutoTextScale).
  int text_scale = 0;
};

// The number of distinct series colours before they repeat.
inline constexpr size_t kSeriesColorCount = 10;

// Returns the colour of series `index`: kSeriesColorCount colours that are
// told apart easily, then the same again.
Color SeriesColor(size_t index);

// Returns the marker of series `index`: circles for the first
// kSeriesColorCount series, then another shape each time the colours
// repeat, so no two of the first 40 series look the same.
Marker SeriesMarker(size_t index);

// Returns the heat-map colour of `t` in [0, 1] (clamped; NaN as 0): from
// near white through light and mid blue to dark navy.
Color HeatColor(double t);

// Returns the text colour that reads best on `background` (dark or white).
Color TextColorOn(Color background);

// Returns the label scale for a width x height picture: 1 below 700 pixels
// on the short side, 2 below 1200, 3 below 1700, and so on.
int AutoTextScale(int width, int height);

// The scale in `options`, or AutoTextScale() when it is 0.
int TextScale(const ChartOptions& options);

struct LegendEntry {
  std::string label;
  Color color;
  Marker marker = Marker::kCircle;
};

// Lays out `entries` in rows across `width` pixels (each entry a short line
// with its marker, then its label, cut to fit) and returns the height they
// take. Draws them with the top-left corner at (x, y) when `canvas` is not
// null.
int DrawLegend(Canvas* canvas, int x, int y, int width,
               const std::vector<LegendEntry>& entries, int scale);

// Maps data values onto a plot rectangle: x grows to the right, y upwards.
struct Frame {
  Rect plot;
  Ticks x;
  Ticks y;

  double PixelX(double v) const;
  double PixelY(double v) const;
};

// What DrawAxes() puts around a plot rectangle.
struct AxesLabels {
  std::string x_title;
  std::string y_title;
  // Draw the x tick labels (a bar chart's category axis has none).
  bool x_ticks = true;
  bool y_ticks = true;
};

// The margins DrawAxes() needs around the plot rectangle for `y` ticks
// labelled at `scale` and `labels`: left and bottom, in pixels.
int AxesLeftMargin(const Ticks& y, const AxesLabels& labels, int scale);
int AxesBottomMargin(const AxesLabels& labels, int scale);

// Draws grid lines at the ticks, the frame of `frame.plot`, the tick labels
// and the axis titles (x below, y rotated on the left).
void DrawAxes(Canvas& canvas, const Frame& frame, const AxesLabels& labels,
              int scale);

// Draws `title` centred at the top of `area` at `scale` + 1 and returns the
// height it took (0 for an empty title).
int DrawTitle(Canvas& canvas, const Rect& area, const std::string& title,
              int scale);

}  // namespace sweepq::plot

#endif  // SWEEPQ_COMMON_PLOT_STYLE_H_
