#include "common/plot/bar_chart.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/plot/font.h"
#include "common/plot/ticks.h"
#include "common/status_macros.h"

namespace sweepq::plot {
namespace {

Ticks ValueTicks(const BarChart& chart, int target) {
  double lo = 0, hi = 0;
  for (double v : chart.values) {
    if (!std::isfinite(v)) continue;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  if (std::isfinite(chart.axis_min)) lo = chart.axis_min;
  if (std::isfinite(chart.axis_max)) hi = chart.axis_max;
  return NiceTicks(lo, hi, target);
}

Color BarColor(const BarChart& chart, size_t i) {
  return chart.colors.empty() ? SeriesColor(0) : chart.colors[i];
}

void DrawHorizontal(Canvas& canvas, const Rect& area, const BarChart& chart,
                    int scale) {
  const int n = static_cast<int>(chart.values.size());
  int label_width = 0;
  for (const std::string& label : chart.labels) {
    label_width = std::max(label_width, TextWidth(label, scale));
  }
  label_width = std::min(label_width, area.width * 2 / 5);
  AxesLabels labels{chart.value_title, "", true, false};
  // Room for the value written after the longest bar.
  int value_width = TextWidth(FormatFixed(-1e4, chart.value_decimals), scale);
  Frame frame;
  int bottom = AxesBottomMargin(labels, scale);
  frame.plot =
      Rect{area.x + label_width + 10 * scale, area.y,
           area.width - label_width - 10 * scale - value_width - 8 * scale,
           area.height - bottom};
  if (frame.plot.empty()) return;
  frame.x =
      ValueTicks(chart, std::clamp(frame.plot.width / (60 * scale), 2, 10));
  frame.y = NiceTicks(0, 1, 2);
  DrawAxes(canvas, frame, labels, scale);
  double row = static_cast<double>(frame.plot.height) / n;
  int thickness = std::max(1, static_cast<int>(row * 0.7));
  int zero = static_cast<int>(std::lround(frame.PixelX(0)));
  for (int i = 0; i < n; ++i) {
    int center = frame.plot.y + static_cast<int>(row * i + row / 2);
    std::string label = FitText(chart.labels[i], label_width, scale);
    DrawTextAligned(canvas, frame.plot.x - 6 * scale, center, label, kTextColor,
                    scale, Align::kEnd);
    double v = chart.values[i];
    std::string text = FormatFixed(v, chart.value_decimals);
    int end = zero;
    if (std::isfinite(v)) {
      end = static_cast<int>(std::lround(frame.PixelX(v)));
      canvas.FillRect(Rect{std::min(zero, end), center - thickness / 2,
                           std::abs(end - zero) + 1, thickness},
                      BarColor(chart, i));
    }
    if (v < 0) {
      DrawTextAligned(canvas, std::max(end, zero) + 4 * scale, center, text,
                      kTextColor, scale, Align::kStart);
    } else {
      DrawTextAligned(canvas, end + 4 * scale, center, text, kTextColor, scale,
                      Align::kStart);
    }
  }
}

void DrawVertical(Canvas& canvas, const Rect& area, const BarChart& chart,
                  int scale) {
  const int n = static_cast<int>(chart.values.size());
  AxesLabels labels{"", chart.value_title, false, true};
  Frame frame;
  frame.y = ValueTicks(chart, std::clamp(area.height / (40 * scale), 3, 10));
  int left = AxesLeftMargin(frame.y, labels, scale);
  int slot = (area.width - left - 8 * scale) / std::max(n, 1);
  // Labels side by side when they fit under their bars, else turned.
  int widest = 0;
  for (const std::string& label : chart.labels) {
    widest = std::max(widest, TextWidth(label, scale));
  }
  bool turned = widest > slot - 4 * scale;
  int label_height =
      turned ? std::min(widest, area.height * 2 / 5) : TextHeight(scale);
  int value_height = TextHeight(scale) + 4 * scale;
  frame.plot =
      Rect{area.x + left, area.y + value_height, area.width - left - 8 * scale,
           area.height - value_height - label_height - 10 * scale};
  if (frame.plot.empty()) return;
  frame.x = NiceTicks(0, 1, 2);
  DrawAxes(canvas, frame, labels, scale);
  double width = static_cast<double>(frame.plot.width) / n;
  int thickness = std::max(1, static_cast<int>(width * 0.7));
  int zero = static_cast<int>(std::lround(frame.PixelY(0)));
  for (int i = 0; i < n; ++i) {
    int center = frame.plot.x + static_cast<int>(width * i + width / 2);
    double v = chart.values[i];
    int end = zero;
    if (std::isfinite(v)) {
      end = static_cast<int>(std::lround(frame.PixelY(v)));
      canvas.FillRect(Rect{center - thickness / 2, std::min(zero, end),
                           thickness, std::abs(end - zero) + 1},
                      BarColor(chart, i));
    }
    std::string text = FormatFixed(v, chart.value_decimals);
    int text_width = TextWidth(text, scale);
    if (text_width <= width) {
      int top = std::min(end, zero) - TextHeight(scale) - 2 * scale;
      DrawText(canvas, center - text_width / 2, top, text, kTextColor, scale);
    }
    int label_top = frame.plot.bottom() + 6 * scale;
    if (turned) {
      std::string label = FitText(chart.labels[i], label_height, scale);
      DrawTextUp(canvas, center - TextHeight(scale) / 2,
                 label_top + TextWidth(label, scale), label, kTextColor, scale);
    } else {
      std::string label = chart.labels[i];
      DrawText(canvas, center - TextWidth(label, scale) / 2, label_top, label,
               kTextColor, scale);
    }
  }
}

}  // namespace

absl::StatusOr<Canvas> RenderBarChart(const BarChart& chart,
                                      const ChartOptions& options) {
  if (chart.values.empty()) {
    return absl::InvalidArgumentError("a bar chart needs at least one bar");
  }
  if (chart.labels.size() != chart.values.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("bar chart: ", chart.labels.size(), " labels but ",
                     chart.values.size(), " values"));
  }
  if (!chart.colors.empty() && chart.colors.size() != chart.values.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("bar chart: ", chart.colors.size(), " colours for ",
                     chart.values.size(), " bars"));
  }
  ASSIGN_OR_RETURN(Canvas canvas,
                   Canvas::Create(options.width, options.height));
  const int scale = TextScale(options);
  const int margin = 10 * scale;
  Rect content{margin, 0, options.width - 2 * margin, options.height - margin};
  int top = DrawTitle(canvas, content, chart.title, scale);
  if (top == 0) top = margin;
  Rect area{content.x, top, content.width, content.bottom() - top};
  if (chart.horizontal) {
    DrawHorizontal(canvas, area, chart, scale);
  } else {
    DrawVertical(canvas, area, chart, scale);
  }
  return canvas;
}

}  // namespace sweepq::plot
