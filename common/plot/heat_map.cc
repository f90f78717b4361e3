#include "common/plot/heat_map.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/plot/font.h"
#include "common/plot/ticks.h"
#include "common/status_macros.h"

namespace sweepq::plot {
namespace {

constexpr int kSideBySide = 0;
constexpr int kWrapped = 1;
constexpr int kTurned = 2;
constexpr int kMaxWrappedLines = 3;

absl::Status Validate(const HeatMap& map) {
  if (map.values.empty() || map.column_labels.empty()) {
    return absl::InvalidArgumentError(
        "a heat map needs at least one row and one column");
  }
  if (map.row_labels.size() != map.values.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("heat map: ", map.row_labels.size(), " row labels but ",
                     map.values.size(), " rows of values"));
  }
  for (size_t r = 0; r < map.values.size(); ++r) {
    if (map.values[r].size() != map.column_labels.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "heat map row ", r, " (", map.row_labels[r], ") has ",
          map.values[r].size(), " values; expected one per column (",
          map.column_labels.size(), ")"));
    }
  }
  if (!map.row_bars.empty() && map.row_bars.size() != map.values.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("heat map: ", map.row_bars.size(), " row bars for ",
                     map.values.size(), " rows"));
  }
  return absl::OkStatus();
}

// Each cell's position on the colour ramp, in [0, 1].
std::vector<std::vector<double>> Shares(const HeatMap& map) {
  double lo = 0, hi = 0;
  for (const auto& row : map.values) {
    for (double v : row) {
      if (!std::isfinite(v)) continue;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  std::vector<std::vector<double>> shares;
  for (const auto& row : map.values) {
    double sum = 0;
    for (double v : row) {
      if (std::isfinite(v) && v > 0) sum += v;
    }
    std::vector<double> out;
    for (double v : row) {
      double t = 0;
      if (map.normalize_rows) {
        t = sum > 0 ? std::max(v, 0.0) / sum : 0;
      } else if (hi > lo) {
        t = (v - lo) / (hi - lo);
      }
      out.push_back(std::isfinite(v) ? t : std::nan(""));
    }
    shares.push_back(std::move(out));
  }
  return shares;
}

// Whether every label wraps into at most kMaxWrappedLines lines of
// `width` without being cut; the most lines any label takes in *lines.
bool WrapsCleanly(const std::vector<std::string>& labels, int width, int scale,
                  int* lines) {
  *lines = 1;
  for (const std::string& label : labels) {
    std::vector<std::string> wrapped = WrapText(label, width, scale);
    if (static_cast<int>(wrapped.size()) > kMaxWrappedLines) return false;
    for (const std::string& line : wrapped) {
      if (TextWidth(line, scale) > width) return false;
    }
    std::string joined = absl::StrJoin(wrapped, "");
    std::string squeezed;
    for (char ch : label) {
      if (ch != ' ') squeezed += ch;
    }
    std::string joined_squeezed;
    for (char ch : joined) {
      if (ch != ' ') joined_squeezed += ch;
    }
    if (joined_squeezed != squeezed) return false;  // FitText cut a word
    *lines = std::max(*lines, static_cast<int>(wrapped.size()));
  }
  return true;
}

}  // namespace

absl::StatusOr<Canvas> RenderHeatMap(const HeatMap& map,
                                     const ChartOptions& options,
                                     HeatMapLayout* layout) {
  RETURN_IF_ERROR(Validate(map));
  ASSIGN_OR_RETURN(Canvas canvas,
                   Canvas::Create(options.width, options.height));
  const int s = TextScale(options);
  const int rows = static_cast<int>(map.values.size());
  const int columns = static_cast<int>(map.column_labels.size());
  const int margin = 10 * s;
  const int line = kLineHeight * s;
  Rect content{margin, 0, options.width - 2 * margin, options.height - margin};
  int top = DrawTitle(canvas, content, map.title, s);
  if (top == 0) top = margin;
  const bool bars = !map.row_bars.empty();
  // Room above the grid for the bars' and colour bar's titles.
  if (bars || (map.color_bar && map.normalize_rows)) top += line + 4 * s;

  // Widths of the parts left and right of the grid.
  int row_title_w = map.row_title.empty() ? 0 : TextHeight(s) + 8 * s;
  int row_label_w = 0;
  for (const std::string& label : map.row_labels) {
    row_label_w = std::max(row_label_w, TextWidth(label, s));
  }
  row_label_w = std::min(row_label_w, options.width * 3 / 10) + 8 * s;
  std::string bar_end_text = FormatFixed(map.row_bar_max, map.row_bar_decimals);
  int bar_value_w = TextWidth(bar_end_text, s);
  int bar_track_w = std::max(60 * s, options.width / 7);
  int bars_w = bars ? 14 * s + bar_track_w + 6 * s + bar_value_w : 0;
  std::vector<std::pair<double, std::string>> color_ticks;  // share, text
  if (map.color_bar) {
    if (map.normalize_rows) {
      for (int pct : {0, 25, 50, 75, 100}) {
        color_ticks.push_back({pct / 100.0, absl::StrCat(pct, "%")});
      }
    } else {
      double lo = 0, hi = 0;
      for (const auto& row : map.values) {
        for (double v : row) {
          if (std::isfinite(v)) {
            lo = std::min(lo, v);
            hi = std::max(hi, v);
          }
        }
      }
      Ticks ticks = NiceTicks(lo, hi > lo ? hi : lo + 1, 5);
      for (double v : ticks.values) {
        if (v < lo - 1e-9 || v > hi + 1e-9) continue;
        color_ticks.push_back(
            {hi > lo ? (v - lo) / (hi - lo) : 0, FormatTick(v, ticks)});
      }
    }
  }
  int color_label_w = 0;
  for (const auto& t : color_ticks) {
    color_label_w = std::max(color_label_w, TextWidth(t.second, s));
  }
  int color_w = map.color_bar ? 14 * s + 14 * s + 6 * s + color_label_w : 0;
  int column_title_h = map.column_title.empty() ? 0 : line + 6 * s;

  const int avail_w =
      content.width - row_title_w - row_label_w - bars_w - color_w;
  auto cell_for = [&](int labels_h) {
    int avail_h = content.bottom() - top - labels_h - column_title_h;
    return std::min(avail_w / columns, avail_h / rows);
  };
  int widest_column_label = 0;
  for (const std::string& label : map.column_labels) {
    widest_column_label = std::max(widest_column_label, TextWidth(label, s));
  }
  int mode = kSideBySide;
  int labels_h = line + 6 * s;
  int cell = cell_for(labels_h);
  if (widest_column_label > cell - 4 * s) {
    int lines = kMaxWrappedLines;
    int wrapped_cell = cell_for(lines * line + 6 * s);
    if (WrapsCleanly(map.column_labels, wrapped_cell - 4 * s, s, &lines)) {
      mode = kWrapped;
      labels_h = lines * line + 6 * s;
      cell = cell_for(labels_h);
    } else {
      mode = kTurned;
      labels_h =
          std::min(widest_column_label, options.height * 35 / 100) + 8 * s;
      cell = cell_for(labels_h);
    }
  }
  if (cell < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("a ", options.width, "x", options.height,
                     " picture is too small for a ", rows, "x", columns,
                     " heat map with these labels; make it larger"));
  }

  const int grid_w = columns * cell, grid_h = rows * cell;
  int total_w = row_title_w + row_label_w + grid_w + bars_w + color_w;
  int left = content.x + std::max(0, (content.width - total_w) / 2);
  Rect grid{left + row_title_w + row_label_w, top, grid_w, grid_h};
  if (layout != nullptr) *layout = HeatMapLayout{grid, cell, mode};

  // Cells, with a one-pixel gap between them once cells are large enough.
  const int gap = cell >= 8 ? 1 : 0;
  std::vector<std::vector<double>> shares = Shares(map);
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < columns; ++c) {
      double v = map.values[r][c];
      Rect rect{grid.x + c * cell, grid.y + r * cell, cell - gap, cell - gap};
      if (!std::isfinite(v)) {
        canvas.FillRect(rect, kTrackColor);
        continue;
      }
      Color color = HeatColor(shares[r][c]);
      canvas.FillRect(rect, color);
      if (v == 0 && !map.show_zeros) continue;
      std::string text = FormatFixed(v, map.value_decimals);
      for (int ts = s; ts >= 1; --ts) {
        if (TextWidth(text, ts) <= cell - gap - 2 &&
            kCapHeight * ts <= cell - gap - 2) {
          DrawTextAligned(canvas, rect.x + rect.width / 2,
                          rect.y + rect.height / 2, text, TextColorOn(color),
                          ts, Align::kCenter);
          break;
        }
      }
    }
  }

  // Row labels (smaller when the rows are too thin for them).
  int row_scale = s;
  while (row_scale > 1 && kCapHeight * row_scale + 2 > cell) --row_scale;
  for (int r = 0; r < rows; ++r) {
    std::string label =
        FitText(map.row_labels[r], row_label_w - 8 * s, row_scale);
    DrawTextAligned(canvas, grid.x - 6 * s, grid.y + r * cell + cell / 2, label,
                    kTextColor, row_scale, Align::kEnd);
  }
  if (!map.row_title.empty()) {
    std::string text = FitText(map.row_title, grid_h, s);
    DrawTextUp(canvas, grid.x - row_label_w - row_title_w,
               grid.y + (grid_h + TextWidth(text, s)) / 2, text, kTextColor, s);
  }

  // Column labels.
  const int labels_top = grid.bottom() + 6 * s;
  for (int c = 0; c < columns; ++c) {
    int center = grid.x + c * cell + cell / 2;
    const std::string& label = map.column_labels[c];
    if (mode == kSideBySide) {
      DrawText(canvas, center - TextWidth(label, s) / 2, labels_top, label,
               kTextColor, s);
    } else if (mode == kWrapped) {
      std::vector<std::string> wrapped = WrapText(label, cell - 4 * s, s);
      for (size_t i = 0; i < wrapped.size(); ++i) {
        DrawText(canvas, center - TextWidth(wrapped[i], s) / 2,
                 labels_top + static_cast<int>(i) * line, wrapped[i],
                 kTextColor, s);
      }
    } else {
      int col_scale = s;
      while (col_scale > 1 && TextHeight(col_scale) > cell) --col_scale;
      std::string text = FitText(label, labels_h - 8 * s, col_scale);
      DrawTextUp(canvas, center - TextHeight(col_scale) / 2,
                 labels_top + TextWidth(text, col_scale), text, kTextColor,
                 col_scale);
    }
  }
  if (!map.column_title.empty()) {
    std::string text = FitText(map.column_title, grid_w, s);
    DrawText(canvas, grid.x + (grid_w - TextWidth(text, s)) / 2,
             grid.bottom() + labels_h + 4 * s, text, kTextColor, s);
  }

  int right = grid.right();
  if (bars) {
    int track_x = right + 14 * s;
    if (!map.row_bar_title.empty()) {
      std::string text = FitText(map.row_bar_title, bar_track_w, s);
      DrawText(canvas, track_x + (bar_track_w - TextWidth(text, s)) / 2,
               grid.y - line - 2 * s, text, kTextColor, s);
    }
    int thickness = std::max(1, cell * 6 / 10);
    for (int r = 0; r < rows; ++r) {
      int center = grid.y + r * cell + cell / 2;
      canvas.FillRect(
          Rect{track_x, center - thickness / 2, bar_track_w, thickness},
          kTrackColor);
      double v = map.row_bars[r];
      if (std::isfinite(v) && map.row_bar_max > 0) {
        double share = std::clamp(v / map.row_bar_max, 0.0, 1.0);
        int length = static_cast<int>(std::lround(share * bar_track_w));
        canvas.FillRect(
            Rect{track_x, center - thickness / 2, length, thickness},
            SeriesColor(1));
      }
      int value_scale = row_scale;
      DrawTextAligned(canvas, track_x + bar_track_w + 6 * s, center,
                      FormatFixed(v, map.row_bar_decimals), kTextColor,
                      value_scale, Align::kStart);
    }
    // The axis ends under the bars.
    DrawText(canvas, track_x, grid.bottom() + 6 * s, "0", kMutedTextColor, s);
    DrawText(canvas, track_x + bar_track_w - TextWidth(bar_end_text, s),
             grid.bottom() + 6 * s, bar_end_text, kMutedTextColor, s);
    right = track_x + bar_track_w + 6 * s + bar_value_w;
  }
  if (map.color_bar) {
    int bar_x = right + 14 * s;
    int bar_w = 14 * s;
    for (int y = 0; y < grid_h; ++y) {
      double t = grid_h > 1 ? 1.0 - static_cast<double>(y) / (grid_h - 1) : 1;
      canvas.FillRect(Rect{bar_x, grid.y + y, bar_w, 1}, HeatColor(t));
    }
    canvas.StrokeRect(Rect{bar_x - 1, grid.y - 1, bar_w + 2, grid_h + 2},
                      kAxisColor, 1);
    for (const auto& [share, text] : color_ticks) {
      int y =
          grid.y + static_cast<int>(std::lround((1 - share) * (grid_h - 1)));
      canvas.FillRect(Rect{bar_x + bar_w, y, 3 * s, 1}, kAxisColor);
      DrawTextAligned(canvas, bar_x + bar_w + 6 * s, y, text, kTextColor, s,
                      Align::kStart);
    }
    if (map.normalize_rows) {
      DrawText(canvas, bar_x, grid.y - line - 2 * s, "of row", kMutedTextColor,
               s);
    }
  }
  return canvas;
}

}  // namespace sweepq::plot
