// A small CSV reader for the data-set files (train.csv, info.csv, label
// overrides, `path,label` lists). It keeps the 1-based line number of every
// row so that errors can name the file, the line and the cause. Functions
// here are thread-safe (no shared state).
#ifndef SWEEPQ_WORKER_PIPELINE_CSV_H_
#define SWEEPQ_WORKER_PIPELINE_CSV_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sweepq::worker {

// One data row of a CSV file.
struct CsvRow {
  // 1-based line number in the file (the header is line 1).
  int line = 0;
  // Field values, unquoted; unquoted fields are trimmed of blanks.
  std::vector<std::string> fields;
};

// A parsed CSV file: a header line and its data rows.
struct CsvTable {
  // The file as named in error messages.
  std::string path;
  std::vector<std::string> header;
  // Data rows in file order; blank lines are skipped.
  std::vector<CsvRow> rows;

  // Returns the index of the header column `name` (exact match). Returns
  // INVALID_ARGUMENT `<path>: line 1: missing column "<name>" (header:
  // a,b,c)` when the header has no such column.
  absl::StatusOr<size_t> Column(absl::string_view name) const;

  // Returns the index of column `name`, or -1 when the header has none.
  int FindColumn(absl::string_view name) const;

  // Returns `<path>: line <row.line>: <cause>` as INVALID_ARGUMENT.
  absl::Status RowError(const CsvRow& row, absl::string_view cause) const;
};

// Reads and parses the CSV file at `path`: comma-separated, double-quoted
// fields with `""` escapes, LF or CRLF line ends, an optional UTF-8 BOM.
// Every row must have as many fields as the header. Returns NOT_FOUND when
// the file cannot be opened and INVALID_ARGUMENT `<path>: line N: <cause>`
// for an empty file (no header), a row whose field count differs from the
// header's, or an unterminated quote.
absl::StatusOr<CsvTable> ReadCsv(const std::string& path);

// Parses CSV `text` as ReadCsv does; `path` only names it in messages.
absl::StatusOr<CsvTable> ParseCsv(absl::string_view text,
                                  const std::string& path);

// Returns `field` quoted for CSV output when it holds a comma, a quote or a
// line break; otherwise unchanged.
std::string CsvEscape(absl::string_view field);

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_PIPELINE_CSV_H_
