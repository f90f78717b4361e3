#include "worker/pipeline/train_report.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/class_charts.h"
#include "common/plot/bar_chart.h"
#include "common/plot/heat_map.h"
#include "common/plot/png.h"
#include "common/status_macros.h"
#include "worker/pipeline/csv.h"
#include "worker/pipeline/train_events.h"

namespace sweepq::worker {
namespace {

absl::Status CheckMatrix(const std::vector<std::string>& class_names,
                         const std::vector<std::vector<int64_t>>& confusion) {
  if (confusion.size() != class_names.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("confusion matrix has ", confusion.size(), " rows for ",
                     class_names.size(), " classes"));
  }
  for (const auto& row : confusion) {
    if (row.size() != class_names.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("confusion matrix row has ", row.size(),
                       " columns for ", class_names.size(), " classes"));
    }
  }
  if (class_names.empty()) {
    return absl::InvalidArgumentError("confusion matrix has no classes");
  }
  return absl::OkStatus();
}

std::vector<std::vector<double>> ToDoubles(
    const std::vector<std::vector<int64_t>>& confusion) {
  std::vector<std::vector<double>> out;
  for (const auto& row : confusion) {
    out.emplace_back(row.begin(), row.end());
  }
  return out;
}

}  // namespace

absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents) {
  const std::string temp = path + ".tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) {
      return absl::InternalError(
          absl::StrCat(temp, ": cannot open for writing: ", std::strerror(errno)));
    }
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.close();
    if (!out) {
      return absl::InternalError(absl::StrCat(temp, ": write failed"));
    }
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("rename ", temp, " to ", path, ": ",
                                            std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status CopyFileAtomically(const std::string& from,
                                const std::string& to) {
  const std::string temp = to + ".tmp";
  std::error_code ec;
  std::filesystem::copy_file(
      from, temp, std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("copy ", from, " to ", temp, ": ", ec.message()));
  }
  std::filesystem::rename(temp, to, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("rename ", temp, " to ", to, ": ", ec.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<MetricsTable> MetricsTable::FromCsv(absl::string_view csv) {
  MetricsTable table;
  if (csv.empty()) return table;
  absl::StatusOr<CsvTable> parsed = ParseCsv(csv, "metrics.csv");
  if (!parsed.ok()) return parsed.status();
  const CsvTable& t = *parsed;
  if (t.header.size() < 2 || t.header[0] != "epoch" || t.header[1] != "step") {
    return absl::InvalidArgumentError(
        "metrics.csv: line 1: header must start with epoch,step");
  }
  for (const CsvRow& r : t.rows) {
    Row row;
    if (!absl::SimpleAtoi(r.fields[0], &row.epoch) ||
        !absl::SimpleAtoi(r.fields[1], &row.step)) {
      return t.RowError(r, "epoch and step must be integers");
    }
    for (size_t i = 2; i < r.fields.size(); ++i) {
      if (r.fields[i].empty()) continue;
      double value = 0.0;
      if (!absl::SimpleAtod(r.fields[i], &value)) {
        return t.RowError(r, absl::StrCat("column ", t.header[i],
                                          ": not a number: ", r.fields[i]));
      }
      row.metrics.emplace_back(t.header[i], value);
    }
    table.rows_.push_back(std::move(row));
  }
  return table;
}

void MetricsTable::Add(Row row) { rows_.push_back(std::move(row)); }

std::string MetricsTable::ToCsv() const {
  if (rows_.empty()) return "";
  std::vector<std::string> columns;
  for (const Row& row : rows_) {
    for (const auto& [name, value] : row.metrics) {
      if (std::find(columns.begin(), columns.end(), name) == columns.end()) {
        columns.push_back(name);
      }
    }
  }
  std::string out = "epoch,step";
  for (const std::string& name : columns) {
    absl::StrAppend(&out, ",", CsvEscape(name));
  }
  out += "\n";
  for (const Row& row : rows_) {
    absl::StrAppend(&out, row.epoch, ",", row.step);
    for (const std::string& name : columns) {
      out += ",";
      for (const auto& [metric, value] : row.metrics) {
        if (metric == name) {
          // NaN / Inf cannot come back as numbers; leave the cell empty.
          const std::string text = JsonNumber(value);
          if (text != "null") out += text;
          break;
        }
      }
    }
    out += "\n";
  }
  return out;
}

absl::Status WriteConfusionCsv(
    const std::string& path, const std::vector<std::string>& class_names,
    const std::vector<std::vector<int64_t>>& confusion) {
  if (absl::Status s = CheckMatrix(class_names, confusion); !s.ok()) return s;
  std::string out = "true\\predicted";
  for (const std::string& name : class_names) {
    absl::StrAppend(&out, ",", CsvEscape(name));
  }
  out += "\n";
  for (size_t t = 0; t < confusion.size(); ++t) {
    absl::StrAppend(&out, CsvEscape(class_names[t]), ",",
                    absl::StrJoin(confusion[t], ","), "\n");
  }
  return WriteFileAtomically(path, out);
}

std::pair<int, int> ConfusionPngSize(int classes) {
  return {std::max(1400, 500 + 45 * classes),
          std::max(1000, 200 + 40 * classes)};
}

std::pair<int, int> PerClassF1PngSize(int classes) {
  return {1000, std::max(400, 150 + 28 * classes)};
}

absl::Status WriteConfusionPng(
    const std::string& path, const std::vector<std::string>& class_names,
    const std::vector<std::vector<int64_t>>& confusion,
    absl::string_view title) {
  RETURN_IF_ERROR(CheckMatrix(class_names, confusion));
  const std::vector<std::vector<double>> counts = ToDoubles(confusion);
  const auto [width, height] =
      ConfusionPngSize(static_cast<int>(class_names.size()));
  absl::StatusOr<plot::Canvas> canvas = plot::RenderHeatMap(
      ConfusionHeatMap(std::string(title), class_names, counts,
                       PerClassF1FromConfusion(counts)),
      plot::ChartOptions{width, height, 0});
  if (!canvas.ok()) {
    return absl::Status(canvas.status().code(),
                        absl::StrCat(path, ": drawing the confusion matrix: ",
                                     canvas.status().message()));
  }
  return plot::WritePngFile(*canvas, path);
}

absl::Status WritePerClassF1Png(
    const std::string& path, const std::vector<std::string>& class_names,
    const std::vector<std::vector<int64_t>>& confusion,
    absl::string_view title) {
  RETURN_IF_ERROR(CheckMatrix(class_names, confusion));
  const auto [width, height] =
      PerClassF1PngSize(static_cast<int>(class_names.size()));
  absl::StatusOr<plot::Canvas> canvas = plot::RenderBarChart(
      PerClassF1Chart(std::string(title), class_names,
                      PerClassF1FromConfusion(ToDoubles(confusion))),
      plot::ChartOptions{width, height, 0});
  if (!canvas.ok()) {
    return absl::Status(canvas.status().code(),
                        absl::StrCat(path, ": drawing the per-class F1: ",
                                     canvas.status().message()));
  }
  return plot::WritePngFile(*canvas, path);
}

}  // namespace sweepq::worker
