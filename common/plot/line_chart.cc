#include "common/plot/line_chart.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/plot/font.h"
#include "common/plot/ticks.h"
#include "common/status_macros.h"

namespace sweepq::plot {
namespace {

constexpr double kPreferredAspect = 1.5;  // panel width / height

struct Range {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  bool empty() const { return lo > hi; }
  void Add(double v) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
};

void DrawPanel(Canvas& canvas, const Rect& area, const LinePanel& panel,
               const std::map<std::string, size_t>& series_index, int scale) {
  int title_height = 0;
  if (!panel.title.empty()) {
    std::string text = FitText(panel.title, area.width, scale);
    DrawText(canvas, area.x + (area.width - TextWidth(text, scale)) / 2, area.y,
             text, kTextColor, scale);
    title_height = TextHeight(scale) + 8 * scale;
  }
  Range xr, yr;
  size_t most_points = 0;
  for (const Series& s : panel.series) {
    size_t n = 0;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      xr.Add(s.x[i]);
      yr.Add(s.y[i]);
      ++n;
    }
    most_points = std::max(most_points, n);
  }
  AxesLabels labels{panel.x_title, panel.y_title};
  Rect body{area.x, area.y + title_height, area.width,
            area.height - title_height};
  if (xr.empty()) {
    canvas.StrokeRect(body, kGridColor, 1);
    DrawTextAligned(canvas, body.x + body.width / 2, body.y + body.height / 2,
                    "no data", kMutedTextColor, scale, Align::kCenter);
    return;
  }
  // The y ticks decide the left margin, and the plot height decides how
  // many ticks fit: estimate the height first.
  int bottom = AxesBottomMargin(labels, scale);
  int estimated_height = std::max(1, body.height - bottom);
  int y_target = std::clamp(estimated_height / (30 * scale), 3, 10);
  Frame frame;
  // A little air above and below the data keeps lines off the frame, but
  // never across 0 or 1 (losses stay >= 0, scores <= 1).
  double pad = (yr.hi - yr.lo) * 0.03;
  double lo = yr.lo - pad, hi = yr.hi + pad;
  for (double bound : {0.0, 1.0}) {
    if (yr.lo >= bound && lo < bound) lo = bound;
    if (yr.hi <= bound && hi > bound) hi = bound;
  }
  frame.y = NiceTicks(lo, hi, y_target);
  int left = AxesLeftMargin(frame.y, labels, scale);
  int right = 12 * scale;
  frame.plot =
      Rect{body.x + left, body.y + 2 * scale, body.width - left - right,
           body.height - bottom - 2 * scale};
  if (frame.plot.empty()) return;
  // The x axis spans the data plus room for the end markers; a y axis ends
  // on ticks.
  int x_target = std::clamp(frame.plot.width / (45 * scale), 2, 12);
  double x_pad =
      (xr.hi - xr.lo) * std::max(0.02, (4.0 + 3 * scale) / frame.plot.width);
  frame.x =
      TicksWithin(xr.lo - x_pad, xr.hi + x_pad, x_target, panel.integer_x);
  DrawAxes(canvas, frame, labels, scale);

  const double thickness = 1 + scale;
  // Markers only while they stay apart.
  bool markers =
      most_points <= 1 ||
      frame.plot.width / static_cast<double>(most_points) >= 8.0 * scale;
  canvas.SetClip(Rect{frame.plot.x - 4 * scale, frame.plot.y - 4 * scale,
                      frame.plot.width + 8 * scale,
                      frame.plot.height + 8 * scale});
  for (const Series& s : panel.series) {
    size_t index = series_index.at(s.name);
    Color color = SeriesColor(index);
    bool have_previous = false;
    double px = 0, py = 0;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i])) continue;
      if (!std::isfinite(s.y[i])) {
        have_previous = false;  // a gap
        continue;
      }
      double cx = frame.PixelX(s.x[i]), cy = frame.PixelY(s.y[i]);
      if (have_previous) canvas.DrawLine(px, py, cx, cy, color, thickness);
      px = cx;
      py = cy;
      have_previous = true;
    }
    if (!markers) continue;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      canvas.DrawMarker(SeriesMarker(index), frame.PixelX(s.x[i]),
                        frame.PixelY(s.y[i]), 4 + 3 * scale, color);
    }
  }
  canvas.ResetClip();
}

}  // namespace

std::pair<int, int> PanelGrid(int panels, int width, int height) {
  int best_columns = 1;
  double best_score = std::numeric_limits<double>::infinity();
  for (int columns = 1; columns <= std::max(panels, 1); ++columns) {
    int rows = (panels + columns - 1) / columns;
    double aspect = (static_cast<double>(width) / columns) /
                    (static_cast<double>(height) / rows);
    // Distance from the preferred shape, on a log scale; empty cells cost.
    double score = std::abs(std::log(aspect / kPreferredAspect)) +
                   0.3 * (rows * columns - panels);
    if (score < best_score) {
      best_score = score;
      best_columns = columns;
    }
  }
  return {best_columns, (panels + best_columns - 1) / best_columns};
}

absl::StatusOr<Canvas> RenderLineChart(const LineChart& chart,
                                       const ChartOptions& options) {
  if (chart.panels.empty()) {
    return absl::InvalidArgumentError("a line chart needs at least one panel");
  }
  std::map<std::string, size_t> series_index;
  std::vector<LegendEntry> legend;
  auto add_name = [&](const std::string& name) {
    if (series_index.count(name) != 0) return;
    size_t index = series_index.size();
    series_index[name] = index;
    if (!name.empty()) {
      legend.push_back({name, SeriesColor(index), SeriesMarker(index)});
    }
  };
  for (const std::string& name : chart.series_order) add_name(name);
  for (size_t p = 0; p < chart.panels.size(); ++p) {
    for (const Series& s : chart.panels[p].series) {
      if (s.x.size() != s.y.size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "panel ", p + 1, " (", chart.panels[p].title, "), series '", s.name,
            "': ", s.x.size(), " x values but ", s.y.size(), " y values"));
      }
      add_name(s.name);
    }
  }
  ASSIGN_OR_RETURN(Canvas canvas,
                   Canvas::Create(options.width, options.height));
  const int scale = TextScale(options);
  const int margin = 10 * scale;
  Rect content{margin, 0, options.width - 2 * margin, options.height - margin};
  int top = DrawTitle(canvas, content, chart.title, scale);
  if (top == 0) top = margin;
  top += DrawLegend(&canvas, content.x, top, content.width, legend, scale);
  top += 4 * scale;
  Rect panels_area{content.x, top, content.width, content.bottom() - top};
  auto [columns, rows] = PanelGrid(static_cast<int>(chart.panels.size()),
                                   panels_area.width, panels_area.height);
  const int gap = 16 * scale;
  int cell_w = (panels_area.width - (columns - 1) * gap) / columns;
  int cell_h = (panels_area.height - (rows - 1) * gap) / rows;
  for (size_t p = 0; p < chart.panels.size(); ++p) {
    int c = static_cast<int>(p) % columns, r = static_cast<int>(p) / columns;
    Rect area{panels_area.x + c * (cell_w + gap),
              panels_area.y + r * (cell_h + gap), cell_w, cell_h};
    DrawPanel(canvas, area, chart.panels[p], series_index, scale);
  }
  return canvas;
}

}  // namespace sweepq::plot
