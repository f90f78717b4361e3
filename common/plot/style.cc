#include "common/plot/style.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/plot/font.h"

namespace sweepq::plot {
namespace {

constexpr Color kSeriesColors[kSeriesColorCount] = {
    {31, 102, 180},   // blue
    {238, 124, 18},   // orange
    {44, 150, 62},    // green
    {206, 40, 44},    // red
    {128, 84, 182},   // purple
    {138, 88, 70},    // brown
    {222, 100, 178},  // pink
    {110, 110, 110},  // grey
    {166, 166, 26},   // olive
    {22, 168, 190},   // teal
};

// Stops of the heat-map colour ramp, evenly spaced over [0, 1].
constexpr Color kHeatStops[] = {
    {248, 250, 253}, {200, 220, 240}, {120, 170, 216},
    {44, 110, 180},  {16, 58, 124},   {8, 30, 72},
};

}  // namespace

Color SeriesColor(size_t index) {
  return kSeriesColors[index % kSeriesColorCount];
}

Marker SeriesMarker(size_t index) {
  constexpr Marker kMarkers[] = {Marker::kCircle, Marker::kSquare,
                                 Marker::kTriangle, Marker::kDiamond};
  return kMarkers[(index / kSeriesColorCount) % 4];
}

Color HeatColor(double t) {
  if (std::isnan(t)) t = 0;
  t = std::clamp(t, 0.0, 1.0);
  constexpr int kSegments = sizeof(kHeatStops) / sizeof(kHeatStops[0]) - 1;
  double at = t * kSegments;
  int i = std::min(static_cast<int>(at), kSegments - 1);
  return Mix(kHeatStops[i], kHeatStops[i + 1], at - i);
}

Color TextColorOn(Color background) {
  return Luminance(background) < 0.5 ? kWhite : kTextColor;
}

int AutoTextScale(int width, int height) {
  int side = std::min(width, height);
  return 1 + std::max(0, side - 200) / 500;
}

int TextScale(const ChartOptions& options) {
  return options.text_scale > 0 ? options.text_scale
                                : AutoTextScale(options.width, options.height);
}

int DrawLegend(Canvas* canvas, int x, int y, int width,
               const std::vector<LegendEntry>& entries, int scale) {
  if (entries.empty()) return 0;
  const int swatch = 18 * scale;     // the line sample before a label
  const int label_gap = 5 * scale;   // between sample and label
  const int entry_gap = 18 * scale;  // between entries
  const int row_height = kLineHeight * scale + 4 * scale;
  struct Item {
    std::string text;
    int width;
  };
  std::vector<std::vector<size_t>> rows(1);
  std::vector<Item> items;
  std::vector<int> row_widths(1, 0);
  for (size_t i = 0; i < entries.size(); ++i) {
    std::string text =
        FitText(entries[i].label, width - swatch - label_gap, scale);
    int w = swatch + label_gap + TextWidth(text, scale);
    items.push_back({text, w});
    int& row_width = row_widths.back();
    int needed = row_width == 0 ? w : row_width + entry_gap + w;
    if (needed > width && row_width > 0) {
      rows.emplace_back();
      row_widths.push_back(w);
    } else {
      row_width = needed;
    }
    rows.back().push_back(i);
  }
  if (canvas != nullptr) {
    for (size_t r = 0; r < rows.size(); ++r) {
      int left = x + std::max(0, (width - row_widths[r]) / 2);
      int center_y = y + static_cast<int>(r) * row_height + row_height / 2;
      for (size_t i : rows[r]) {
        const LegendEntry& e = entries[i];
        canvas->DrawLine(left + scale, center_y, left + swatch - scale,
                         center_y, e.color, 1 + scale);
        canvas->DrawMarker(e.marker, left + swatch / 2.0, center_y,
                           4 + 3 * scale, e.color);
        DrawTextAligned(*canvas, left + swatch + label_gap, center_y,
                        items[i].text, kTextColor, scale, Align::kStart);
        left += items[i].width + entry_gap;
      }
    }
  }
  return static_cast<int>(rows.size()) * row_height;
}

double Frame::PixelX(double v) const {
  double t = (v - x.min) / (x.max - x.min);
  return plot.x + 0.5 + t * (plot.width - 1);
}

double Frame::PixelY(double v) const {
  double t = (v - y.min) / (y.max - y.min);
  return plot.bottom() - 0.5 - t * (plot.height - 1);
}

namespace {

int MaxTickLabelWidth(const Ticks& ticks, int scale) {
  int width = 0;
  for (double v : ticks.values) {
    width = std::max(width, TextWidth(FormatTick(v, ticks), scale));
  }
  return width;
}

}  // namespace

int AxesLeftMargin(const Ticks& y, const AxesLabels& labels, int scale) {
  int margin = 10 * scale;
  if (labels.y_ticks) margin += MaxTickLabelWidth(y, scale);
  if (!labels.y_title.empty()) margin += TextHeight(scale) + 8 * scale;
  return margin;
}

int AxesBottomMargin(const AxesLabels& labels, int scale) {
  int margin = labels.x_ticks ? TextHeight(scale) + 8 * scale : 4 * scale;
  if (!labels.x_title.empty()) margin += TextHeight(scale) + 6 * scale;
  return margin;
}

void DrawAxes(Canvas& canvas, const Frame& frame, const AxesLabels& labels,
              int scale) {
  const Rect& plot = frame.plot;
  const int tick = 4 * scale;
  if (labels.y_ticks) {
    for (double v : frame.y.values) {
      int py = static_cast<int>(std::floor(frame.PixelY(v)));
      canvas.FillRect(Rect{plot.x, py, plot.width, 1}, kGridColor);
      canvas.FillRect(Rect{plot.x - tick, py, tick, 1}, kAxisColor);
      DrawTextAligned(canvas, plot.x - tick - 4 * scale, py,
                      FormatTick(v, frame.y), kTextColor, scale, Align::kEnd);
    }
  }
  if (labels.x_ticks) {
    int last_right = std::numeric_limits<int>::min() / 2;
    for (double v : frame.x.values) {
      int px = static_cast<int>(std::floor(frame.PixelX(v)));
      canvas.FillRect(Rect{px, plot.y, 1, plot.height}, kGridColor);
      canvas.FillRect(Rect{px, plot.bottom(), 1, tick}, kAxisColor);
      std::string text = FormatTick(v, frame.x);
      int w = TextWidth(text, scale);
      // Skip a label that would run into the one before.
      if (px - w / 2 < last_right + 4 * scale) continue;
      DrawText(canvas, px - w / 2, plot.bottom() + tick + 4 * scale, text,
               kTextColor, scale);
      last_right = px - w / 2 + w;
    }
  }
  canvas.StrokeRect(
      Rect{plot.x - 1, plot.y - 1, plot.width + 2, plot.height + 2}, kAxisColor,
      1);
  if (!labels.x_title.empty()) {
    int top = plot.bottom() +
              (labels.x_ticks ? TextHeight(scale) + 8 * scale : 4 * scale) +
              4 * scale;
    std::string text = FitText(labels.x_title, plot.width, scale);
    DrawText(canvas, plot.x + (plot.width - TextWidth(text, scale)) / 2, top,
             text, kTextColor, scale);
  }
  if (!labels.y_title.empty()) {
    int left = plot.x - AxesLeftMargin(frame.y, labels, scale);
    std::string text = FitText(labels.y_title, plot.height, scale);
    int w = TextWidth(text, scale);
    DrawTextUp(canvas, left, plot.y + (plot.height + w) / 2, text, kTextColor,
               scale);
  }
}

int DrawTitle(Canvas& canvas, const Rect& area, const std::string& title,
              int scale) {
  if (title.empty()) return 0;
  int s = scale + 1;
  std::string text = FitText(title, area.width - 8 * scale, s);
  DrawText(canvas, area.x + (area.width - TextWidth(text, s)) / 2,
           area.y + 8 * scale, text, kTextColor, s);
  return TextHeight(s) + 14 * scale;
}

}  // namespace sweepq::plot
