// Table: renders listings as aligned text tables that fit a width (100
// columns by default) or as CSV.
//
// Widths are counted in Unicode code points (the CLI prints no wide CJK
// characters of its own). When a table is too wide, the widest shrinkable
// columns lose width first and long values are truncated in the middle
// ("resnet…cosine") so both ends stay readable; if the minimum widths still
// do not fit, droppable columns are left out from the right and a note says
// which. Colour (ANSI SGR) is applied after padding so it never changes the
// layout. Not thread-safe; a Table is plain data.
#ifndef SWEEPQ_CLIENT_TABLE_H_
#define SWEEPQ_CLIENT_TABLE_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace sweepq::client {

// Terminal styles the CLI uses; kNone everywhere when colour is off.
enum class Style { kNone, kBold, kDim, kRed, kGreen, kYellow, kBlue, kCyan };

// Wraps `text` in the ANSI sequence of `style` when `color` is true.
std::string Stylize(absl::string_view text, Style style, bool color);

// Number of code points in UTF-8 `text` (its width on a terminal for the
// text this CLI prints).
size_t DisplayWidth(absl::string_view text);

// Shortens `text` to at most `width` code points by replacing its middle
// with "…"; returns it unchanged when it fits. `width` 0 gives "".
std::string TruncateMiddle(absl::string_view text, size_t width);

enum class Align { kLeft, kRight };

struct Column {
  std::string header;
  Align align = Align::kLeft;
  // May lose width (its values truncated in the middle) to fit the table.
  bool shrinkable = true;
  // Width below which a shrinkable column is never cut.
  size_t min_width = 6;
  // May be left out entirely when even minimum widths do not fit.
  bool droppable = false;
};

struct Cell {
  Cell() = default;
  // Implicit on purpose: most cells are plain strings.
  Cell(std::string text) : text(std::move(text)) {}  // NOLINT
  Cell(const char* text) : text(text) {}             // NOLINT
  Cell(std::string text, Style style) : text(std::move(text)), style(style) {}

  // What the table shows.
  std::string text;
  Style style = Style::kNone;
  // What CSV writes, when it differs from `text` (full precision, no unit).
  std::string raw;
  bool has_raw = false;
};

// A cell whose CSV value differs from its display text.
Cell CellWithRaw(std::string text, std::string raw, Style style = Style::kNone);

struct TableOptions {
  // Every rendered line is at most this many code points.
  size_t max_width = 100;
  bool color = false;
  // Spaces between columns.
  size_t gap = 2;
};

class Table {
 public:
  explicit Table(std::vector<Column> columns);

  // Appends a row; missing trailing cells render empty, extra cells are
  // ignored.
  void AddRow(std::vector<Cell> cells);

  size_t row_count() const { return rows_.size(); }
  const std::vector<Column>& columns() const { return columns_; }

  // Renders the header and the rows, one line each ending in '\n'. When
  // columns were dropped, a last line names them. An empty table renders
  // just the header.
  std::string Render(const TableOptions& options) const;

  // Renders RFC 4180 CSV (header first, CRLF-free: lines end in '\n'),
  // using each cell's raw value and no truncation.
  std::string RenderCsv() const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<Cell>> rows_;
};

// Quotes one CSV field if it contains a comma, quote or line break.
std::string CsvField(absl::string_view value);

}  // namespace sweepq::client

#endif  // SWEEPQ_CLIENT_TABLE_H_
