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
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"
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
  return absl::OkStatus();
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

absl::Status WriteConfusionPng(
    const std::string& path, const std::vector<std::string>& class_names,
    const std::vector<std::vector<int64_t>>& confusion,
    absl::string_view title) {
  if (absl::Status s = CheckMatrix(class_names, confusion); !s.ok()) return s;
  const int n = static_cast<int>(class_names.size());
  if (n == 0) return absl::InvalidArgumentError("confusion matrix is empty");
  constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;
  constexpr double kCountScale = 0.4;
  constexpr double kLabelScale = 0.45;
  constexpr double kTitleScale = 0.55;
  constexpr int kPad = 8;
  const cv::Scalar kBlack(0, 0, 0);
  const cv::Scalar kWhite(255, 255, 255);
  try {
    int baseline = 0;
    int64_t max_count = 0;
    for (const auto& row : confusion) {
      for (int64_t v : row) max_count = std::max(max_count, v);
    }
    const cv::Size count_size = cv::getTextSize(absl::StrCat(max_count), kFont,
                                                kCountScale, 1, &baseline);
    const int cell = std::max(34, count_size.width + 10);
    int label_width = 0;
    for (const std::string& name : class_names) {
      const cv::Size s = cv::getTextSize(name, kFont, kLabelScale, 1, &baseline);
      label_width = std::max(label_width, s.width);
    }
    label_width += 2 * kPad;
    const int axis_title = 28;
    const int title_height = 34;
    const int colorbar = 70;
    const int grid = n * cell;
    const int left = axis_title + label_width;
    const int top = title_height + axis_title + label_width;
    cv::Mat canvas(top + grid + kPad * 2, left + grid + colorbar, CV_8UC3,
                   kWhite);

    // Cell colours: share of the row's samples through viridis.
    cv::Mat shares(n, n, CV_8UC1, cv::Scalar(0));
    for (int t = 0; t < n; ++t) {
      int64_t total = 0;
      for (int64_t v : confusion[t]) total += v;
      for (int p = 0; p < n; ++p) {
        const double share =
            total > 0 ? static_cast<double>(confusion[t][p]) / total : 0.0;
        shares.at<uint8_t>(t, p) =
            static_cast<uint8_t>(std::lround(255.0 * share));
      }
    }
    cv::Mat colours;
    cv::applyColorMap(shares, colours, cv::COLORMAP_VIRIDIS);
    for (int t = 0; t < n; ++t) {
      int64_t total = 0;
      for (int64_t v : confusion[t]) total += v;
      for (int p = 0; p < n; ++p) {
        const cv::Rect box(left + p * cell, top + t * cell, cell, cell);
        const cv::Vec3b c = colours.at<cv::Vec3b>(t, p);
        const cv::Scalar fill =
            total > 0 ? cv::Scalar(c[0], c[1], c[2]) : cv::Scalar(220, 220, 220);
        cv::rectangle(canvas, box, fill, cv::FILLED);
        cv::rectangle(canvas, box, cv::Scalar(255, 255, 255), 1);
        const std::string text = absl::StrCat(confusion[t][p]);
        const cv::Size s =
            cv::getTextSize(text, kFont, kCountScale, 1, &baseline);
        // Viridis is dark below about half; write light text there.
        const cv::Scalar ink =
            total > 0 && shares.at<uint8_t>(t, p) < 128 ? kWhite : kBlack;
        cv::putText(canvas, text,
                    cv::Point(box.x + (cell - s.width) / 2,
                              box.y + (cell + s.height) / 2),
                    kFont, kCountScale, ink, 1, cv::LINE_AA);
      }
    }

    // Row labels, right-aligned next to the grid.
    for (int t = 0; t < n; ++t) {
      const cv::Size s =
          cv::getTextSize(class_names[t], kFont, kLabelScale, 1, &baseline);
      cv::putText(canvas, class_names[t],
                  cv::Point(left - kPad - s.width,
                            top + t * cell + (cell + s.height) / 2),
                  kFont, kLabelScale, kBlack, 1, cv::LINE_AA);
    }
    // Column labels: drawn on a horizontal strip, then turned a quarter
    // counter-clockwise so they read upwards and end at the grid.
    cv::Mat strip(grid, label_width, CV_8UC3, kWhite);
    for (int p = 0; p < n; ++p) {
      const cv::Size s =
          cv::getTextSize(class_names[p], kFont, kLabelScale, 1, &baseline);
      cv::putText(strip, class_names[p],
                  cv::Point(kPad, p * cell + (cell + s.height) / 2), kFont,
                  kLabelScale, kBlack, 1, cv::LINE_AA);
    }
    cv::Mat rotated;
    cv::rotate(strip, rotated, cv::ROTATE_90_COUNTERCLOCKWISE);
    rotated.copyTo(canvas(cv::Rect(left, top - label_width, grid, label_width)));

    // Axis titles and the title.
    const std::string predicted = "predicted class";
    cv::Size s = cv::getTextSize(predicted, kFont, kLabelScale, 1, &baseline);
    cv::putText(canvas, predicted,
                cv::Point(left + (grid - s.width) / 2,
                          title_height + axis_title - 8),
                kFont, kLabelScale, kBlack, 1, cv::LINE_AA);
    const std::string truth = "true class";
    s = cv::getTextSize(truth, kFont, kLabelScale, 1, &baseline);
    cv::Mat truth_strip(axis_title, s.width + 2 * kPad, CV_8UC3, kWhite);
    cv::putText(truth_strip, truth, cv::Point(kPad, axis_title - 8), kFont,
                kLabelScale, kBlack, 1, cv::LINE_AA);
    cv::rotate(truth_strip, rotated, cv::ROTATE_90_COUNTERCLOCKWISE);
    const int truth_y = top + std::max(0, (grid - rotated.rows) / 2);
    if (truth_y + rotated.rows <= canvas.rows) {
      rotated.copyTo(canvas(cv::Rect(0, truth_y, rotated.cols, rotated.rows)));
    }
    cv::putText(canvas, std::string(title), cv::Point(kPad, title_height - 10),
                kFont, kTitleScale, kBlack, 1, cv::LINE_AA);

    // Colour bar: row share 0 (bottom) to 1 (top).
    const int bar_x = left + grid + 14;
    const int bar_w = 16;
    cv::Mat ramp(grid, 1, CV_8UC1);
    for (int y = 0; y < grid; ++y) {
      ramp.at<uint8_t>(y, 0) =
          static_cast<uint8_t>(255 - (255 * y) / std::max(1, grid - 1));
    }
    cv::Mat ramp_colours;
    cv::applyColorMap(ramp, ramp_colours, cv::COLORMAP_VIRIDIS);
    cv::resize(ramp_colours, ramp_colours, cv::Size(bar_w, grid), 0, 0,
               cv::INTER_NEAREST);
    ramp_colours.copyTo(canvas(cv::Rect(bar_x, top, bar_w, grid)));
    cv::putText(canvas, "1", cv::Point(bar_x + bar_w + 4, top + 10), kFont,
                kCountScale, kBlack, 1, cv::LINE_AA);
    cv::putText(canvas, "0", cv::Point(bar_x + bar_w + 4, top + grid), kFont,
                kCountScale, kBlack, 1, cv::LINE_AA);
    cv::putText(canvas, "row", cv::Point(bar_x - 4, top - 20), kFont,
                kCountScale, kBlack, 1, cv::LINE_AA);
    cv::putText(canvas, "share", cv::Point(bar_x - 8, top - 6), kFont,
                kCountScale, kBlack, 1, cv::LINE_AA);

    std::vector<uint8_t> png;
    if (!cv::imencode(".png", canvas, png)) {
      return absl::InternalError(absl::StrCat(path, ": PNG encoding failed"));
    }
    return WriteFileAtomically(
        path, absl::string_view(reinterpret_cast<const char*>(png.data()),
                                png.size()));
  } catch (const cv::Exception& e) {
    return absl::InternalError(
        absl::StrCat(path, ": drawing the confusion matrix: ", e.what()));
  }
}

}  // namespace sweepq::worker
