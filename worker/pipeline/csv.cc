#include "worker/pipeline/csv.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sweepq::worker {
namespace {

// Splits one physical line into fields. Multi-line quoted fields are not
// supported: none of the data-set files uses them, and keeping one row per
// line keeps line numbers exact.
absl::Status SplitLine(absl::string_view line, std::vector<std::string>* out) {
  out->clear();
  size_t i = 0;
  while (true) {
    std::string field;
    // Skip blanks before a possible opening quote.
    size_t j = i;
    while (j < line.size() && (line[j] == ' ' || line[j] == '\t')) ++j;
    if (j < line.size() && line[j] == '"') {
      size_t k = j + 1;
      bool closed = false;
      while (k < line.size()) {
        if (line[k] == '"') {
          if (k + 1 < line.size() && line[k + 1] == '"') {
            field.push_back('"');
            k += 2;
            continue;
          }
          closed = true;
          ++k;
          break;
        }
        field.push_back(line[k++]);
      }
      if (!closed)
        return absl::InvalidArgumentError("unterminated quoted field");
      while (k < line.size() && (line[k] == ' ' || line[k] == '\t')) ++k;
      if (k < line.size() && line[k] != ',') {
        return absl::InvalidArgumentError(
            "unexpected text after a closing quote");
      }
      out->push_back(std::move(field));
      if (k >= line.size()) return absl::OkStatus();
      i = k + 1;
      continue;
    }
    const size_t comma = line.find(',', i);
    const absl::string_view raw = line.substr(
        i,
        comma == absl::string_view::npos ? absl::string_view::npos : comma - i);
    out->push_back(std::string(absl::StripAsciiWhitespace(raw)));
    if (comma == absl::string_view::npos) return absl::OkStatus();
    i = comma + 1;
  }
}

}  // namespace

absl::StatusOr<size_t> CsvTable::Column(absl::string_view name) const {
  const int index = FindColumn(name);
  if (index < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": line 1: missing column \"", name,
                     "\" (header: ", absl::StrJoin(header, ","), ")"));
  }
  return static_cast<size_t>(index);
}

int CsvTable::FindColumn(absl::string_view name) const {
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i] == name) return static_cast<int>(i);
  }
  return -1;
}

absl::Status CsvTable::RowError(const CsvRow& row,
                                absl::string_view cause) const {
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": line ", row.line, ": ", cause));
}

absl::StatusOr<CsvTable> ParseCsv(absl::string_view text,
                                  const std::string& path) {
  CsvTable table;
  table.path = path;
  if (absl::StartsWith(text, "\xEF\xBB\xBF")) text.remove_prefix(3);
  int line_number = 0;
  bool have_header = false;
  std::vector<std::string> fields;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == absl::string_view::npos) end = text.size();
    absl::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    if (absl::Status s = SplitLine(line, &fields); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": line ", line_number, ": ", s.message()));
    }
    if (!have_header) {
      if (line_number != 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": line 1: expected a header line, found a blank line"));
      }
      table.header = fields;
      have_header = true;
      continue;
    }
    if (fields.size() != table.header.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": line ", line_number, ": expected ", table.header.size(),
          " fields (", absl::StrJoin(table.header, ","), "), got ",
          fields.size()));
    }
    table.rows.push_back(CsvRow{line_number, fields});
  }
  if (!have_header) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": line 1: empty file, expected a header line"));
  }
  return table;
}

absl::StatusOr<CsvTable> ReadCsv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) {
    return absl::DataLossError(absl::StrCat(path, ": read error"));
  }
  return ParseCsv(buffer.str(), path);
}

std::string CsvEscape(absl::string_view field) {
  if (field.find_first_of(",\"\r\n") == absl::string_view::npos) {
    return std::string(field);
  }
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

}  // namespace sweepq::worker
