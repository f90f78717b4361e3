#include "client/table.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sweepq::client {
namespace {

constexpr absl::string_view kEllipsis = "\u2026";

bool IsContinuationByte(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

// Byte offset of the code point with index `n` (or the size at the end).
size_t OffsetOfCodePoint(absl::string_view text, size_t n) {
  size_t count = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (IsContinuationByte(text[i])) continue;
    if (count == n) return i;
    ++count;
  }
  return text.size();
}

const char* SgrOf(Style style) {
  switch (style) {
    case Style::kNone:
      return "";
    case Style::kBold:
      return "\x1b[1m";
    case Style::kDim:
      return "\x1b[2m";
    case Style::kRed:
      return "\x1b[31m";
    case Style::kGreen:
      return "\x1b[32m";
    case Style::kYellow:
      return "\x1b[33m";
    case Style::kBlue:
      return "\x1b[34m";
    case Style::kCyan:
      return "\x1b[36m";
  }
  return "";
}

// Column widths after shrinking the visible columns to fit `max_width`.
// Returns false when even the minimum widths do not fit.
bool FitWidths(const std::vector<Column>& columns,
               const std::vector<size_t>& natural,
               const std::vector<bool>& visible, size_t max_width, size_t gap,
               std::vector<size_t>* widths) {
  *widths = natural;
  size_t total = 0;
  size_t shown = 0;
  for (size_t i = 0; i < columns.size(); ++i) {
    if (!visible[i]) continue;
    total += natural[i];
    ++shown;
  }
  if (shown > 1) total += gap * (shown - 1);
  while (total > max_width) {
    // Take one column of width from the widest column that can give it.
    size_t best = columns.size();
    for (size_t i = 0; i < columns.size(); ++i) {
      if (!visible[i] || !columns[i].shrinkable) continue;
      size_t floor = std::min(columns[i].min_width, natural[i]);
      if ((*widths)[i] <= floor) continue;
      if (best == columns.size() || (*widths)[i] > (*widths)[best]) best = i;
    }
    if (best == columns.size()) return false;
    --(*widths)[best];
    --total;
  }
  return true;
}

std::string Pad(absl::string_view text, size_t width, Align align) {
  size_t w = DisplayWidth(text);
  if (w >= width) return std::string(text);
  std::string pad(width - w, ' ');
  return align == Align::kRight ? absl::StrCat(pad, text)
                                : absl::StrCat(text, pad);
}

// Cuts a line that is still too wide (only when nothing else helped).
std::string ClipLine(absl::string_view line, size_t max_width) {
  if (DisplayWidth(line) <= max_width) return std::string(line);
  if (max_width == 0) return "";
  return absl::StrCat(line.substr(0, OffsetOfCodePoint(line, max_width - 1)),
                      kEllipsis);
}

}  // namespace

std::string Stylize(absl::string_view text, Style style, bool color) {
  if (!color || style == Style::kNone || text.empty()) {
    return std::string(text);
  }
  return absl::StrCat(SgrOf(style), text, "\x1b[0m");
}

size_t DisplayWidth(absl::string_view text) {
  size_t width = 0;
  for (char c : text) {
    if (!IsContinuationByte(c)) ++width;
  }
  return width;
}

std::string TruncateMiddle(absl::string_view text, size_t width) {
  size_t length = DisplayWidth(text);
  if (length <= width) return std::string(text);
  if (width == 0) return "";
  if (width == 1) return std::string(kEllipsis);
  // Keep one more code point at the head than at the tail.
  size_t keep = width - 1;
  size_t head = (keep + 1) / 2;
  size_t tail = keep - head;
  size_t head_end = OffsetOfCodePoint(text, head);
  size_t tail_start = OffsetOfCodePoint(text, length - tail);
  return absl::StrCat(text.substr(0, head_end), kEllipsis,
                      text.substr(tail_start));
}

Cell CellWithRaw(std::string text, std::string raw, Style style) {
  Cell cell(std::move(text), style);
  cell.raw = std::move(raw);
  cell.has_raw = true;
  return cell;
}

Table::Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

void Table::AddRow(std::vector<Cell> cells) {
  cells.resize(columns_.size());
  rows_.push_back(std::move(cells));
}

std::string Table::Render(const TableOptions& options) const {
  const size_t n = columns_.size();
  if (n == 0) return "";
  std::vector<size_t> natural(n, 1);
  for (size_t i = 0; i < n; ++i) {
    natural[i] = std::max<size_t>(1, DisplayWidth(columns_[i].header));
    for (const auto& row : rows_) {
      natural[i] = std::max(natural[i], DisplayWidth(row[i].text));
    }
  }
  std::vector<bool> visible(n, true);
  std::vector<size_t> widths;
  std::vector<std::string> dropped;
  while (!FitWidths(columns_, natural, visible, options.max_width, options.gap,
                    &widths)) {
    // Leave out the rightmost droppable column still shown.
    size_t drop = n;
    for (size_t i = n; i-- > 0;) {
      if (visible[i] && columns_[i].droppable) {
        drop = i;
        break;
      }
    }
    if (drop == n) break;  // nothing more to drop: lines get clipped
    visible[drop] = false;
    dropped.insert(dropped.begin(), columns_[drop].header);
  }

  size_t last_visible = 0;
  for (size_t i = 0; i < n; ++i) {
    if (visible[i]) last_visible = i;
  }
  const std::string gap(options.gap, ' ');
  auto render_line = [&](auto cell_of) {
    std::string line;
    bool first = true;
    for (size_t i = 0; i < n; ++i) {
      if (!visible[i]) continue;
      if (!first) line.append(gap);
      first = false;
      const auto [text, style] = cell_of(i);
      std::string shown = TruncateMiddle(text, widths[i]);
      // No trailing spaces after a left-aligned last column.
      std::string padded =
          (i == last_visible && columns_[i].align == Align::kLeft)
              ? shown
              : Pad(shown, widths[i], columns_[i].align);
      if (options.color && style != Style::kNone) {
        // Colour the text, not the padding around it.
        size_t at = padded.find(shown);
        padded = absl::StrCat(padded.substr(0, at), Stylize(shown, style, true),
                              padded.substr(at + shown.size()));
      }
      line.append(padded);
    }
    if (!options.color) line = ClipLine(line, options.max_width);
    line.push_back('\n');
    return line;
  };

  std::string out = render_line([&](size_t i) {
    return std::pair<absl::string_view, Style>(columns_[i].header,
                                               Style::kBold);
  });
  for (const auto& row : rows_) {
    out.append(render_line([&](size_t i) {
      return std::pair<absl::string_view, Style>(row[i].text, row[i].style);
    }));
  }
  if (!dropped.empty()) {
    std::string note =
        absl::StrCat("(not shown: ", absl::StrJoin(dropped, ", "),
                     "; see --format json or csv)");
    out.append(
        Stylize(ClipLine(note, options.max_width), Style::kDim, options.color));
    out.push_back('\n');
  }
  return out;
}

std::string Table::RenderCsv() const {
  std::string out;
  std::vector<std::string> fields;
  for (const auto& column : columns_) fields.push_back(CsvField(column.header));
  absl::StrAppend(&out, absl::StrJoin(fields, ","), "\n");
  for (const auto& row : rows_) {
    fields.clear();
    for (const auto& cell : row) {
      fields.push_back(CsvField(cell.has_raw ? cell.raw : cell.text));
    }
    absl::StrAppend(&out, absl::StrJoin(fields, ","), "\n");
  }
  return out;
}

std::string CsvField(absl::string_view value) {
  if (value.find_first_of(",\"\r\n") == absl::string_view::npos) {
    return std::string(value);
  }
  std::string out = "\"";
  for (char c : value) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

}  // namespace sweepq::client
