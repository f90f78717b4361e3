#include "client/format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/json.h"

namespace sweepq::client {

namespace v1 = ::sweepq::v1;

std::string StateName(v1::RunState state) {
  switch (state) {
    case v1::RUN_STATE_QUEUED:
      return "queued";
    case v1::RUN_STATE_LEASED:
      return "leased";
    case v1::RUN_STATE_RUNNING:
      return "running";
    case v1::RUN_STATE_SUCCEEDED:
      return "succeeded";
    case v1::RUN_STATE_FAILED:
      return "failed";
    case v1::RUN_STATE_CANCELLED:
      return "cancelled";
    case v1::RUN_STATE_PRUNED:
      return "pruned";
    default:
      return "unknown";
  }
}

std::optional<v1::RunState> ParseStateName(absl::string_view name) {
  std::string lower = absl::AsciiStrToLower(name);
  absl::string_view view = lower;
  absl::ConsumePrefix(&view, "run_state_");
  for (int s = v1::RUN_STATE_QUEUED; s <= v1::RUN_STATE_PRUNED; ++s) {
    auto state = static_cast<v1::RunState>(s);
    if (view == StateName(state)) return state;
  }
  if (view == "canceled") return v1::RUN_STATE_CANCELLED;
  return std::nullopt;
}

bool IsFinalState(v1::RunState state) {
  return state == v1::RUN_STATE_SUCCEEDED || state == v1::RUN_STATE_FAILED ||
         state == v1::RUN_STATE_CANCELLED || state == v1::RUN_STATE_PRUNED;
}

Style StateStyle(v1::RunState state) {
  switch (state) {
    case v1::RUN_STATE_SUCCEEDED:
      return Style::kGreen;
    case v1::RUN_STATE_FAILED:
      return Style::kRed;
    case v1::RUN_STATE_LEASED:
    case v1::RUN_STATE_RUNNING:
      return Style::kYellow;
    default:
      return Style::kDim;
  }
}

std::string GoalName(v1::Goal goal) {
  return goal == v1::GOAL_MINIMIZE ? "minimize" : "maximize";
}

std::string WorkerStateName(v1::WorkerState state) {
  switch (state) {
    case v1::WORKER_STATE_ACTIVE:
      return "active";
    case v1::WORKER_STATE_DRAINING:
      return "draining";
    case v1::WORKER_STATE_QUARANTINED:
      return "quarantined";
    default:
      return "unknown";
  }
}

std::string FormatDuration(int64_t ms) {
  if (ms < 0) return "-";
  int64_t s = ms / 1000;
  if (s < 60) return absl::StrCat(s, "s");
  int64_t m = s / 60;
  if (m < 60) return absl::StrFormat("%dm%02ds", m, s % 60);
  int64_t h = m / 60;
  if (h < 24) return absl::StrFormat("%dh%02dm", h, m % 60);
  return absl::StrFormat("%dd%02dh", h / 24, h % 24);
}

std::string FormatAgo(int64_t then_ms, int64_t now_ms) {
  if (then_ms <= 0) return "-";
  int64_t delta = std::max<int64_t>(0, now_ms - then_ms);
  int64_t s = delta / 1000;
  if (s < 60) return absl::StrCat(s, "s ago");
  if (s < 3600) return absl::StrCat(s / 60, "m ago");
  if (s < 86400) return absl::StrCat(s / 3600, "h ago");
  return absl::StrCat(s / 86400, "d ago");
}

std::string FormatTime(int64_t ms) {
  if (ms <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%SZ", &tm);
  return buf;
}

std::string FormatBytes(int64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int unit = -1;
  while (v >= 1024 && unit < 3) {
    v /= 1024;
    ++unit;
  }
  return absl::StrFormat(v < 10 ? "%.2f %s" : "%.1f %s", v, units[unit]);
}

std::string FormatMetric(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  double magnitude = std::fabs(value);
  if (magnitude != 0 && magnitude < 1e-3) return absl::StrFormat("%.2e", value);
  if (magnitude < 1000) return absl::StrFormat("%.4f", value);
  if (magnitude < 1e6) return absl::StrFormat("%.1f", value);
  return absl::StrFormat("%.3e", value);
}

std::string FormatMetricRaw(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return JsonValue::Number(value).Dump(0);
}

int64_t RunDurationMs(const v1::Run& run, int64_t now_ms) {
  if (run.started_at_ms() <= 0) return -1;
  int64_t end = run.finished_at_ms() > 0 ? run.finished_at_ms() : now_ms;
  return std::max<int64_t>(0, end - run.started_at_ms());
}

std::vector<std::string> VaryingParams(
    const std::vector<const std::map<std::string, std::string>*>& params) {
  std::set<std::string> keys;
  for (const auto* p : params) {
    for (const auto& [k, v] : *p) keys.insert(k);
  }
  std::vector<std::string> varying;
  for (const auto& key : keys) {
    const std::string* first = nullptr;
    bool missing = false;
    bool differs = false;
    for (const auto* p : params) {
      auto it = p->find(key);
      if (it == p->end()) {
        missing = true;
        continue;
      }
      if (first == nullptr) {
        first = &it->second;
      } else if (*first != it->second) {
        differs = true;
      }
    }
    if (differs || missing) varying.push_back(key);
  }
  return varying;
}

std::vector<std::string> ParamTitles(const std::vector<std::string>& paths) {
  std::vector<std::vector<std::string>> parts;
  for (const auto& p : paths) parts.push_back(absl::StrSplit(p, '.'));
  auto title = [&](size_t i, size_t segments) {
    const auto& s = parts[i];
    size_t n = std::min(segments, s.size());
    return absl::StrJoin(s.end() - static_cast<std::ptrdiff_t>(n), s.end(),
                         ".");
  };
  std::vector<size_t> segments(paths.size(), 2);
  // Lengthen colliding titles until they differ (full paths always do).
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t i = 0; i < paths.size(); ++i) {
      for (size_t j = i + 1; j < paths.size(); ++j) {
        if (title(i, segments[i]) != title(j, segments[j])) continue;
        if (segments[i] < parts[i].size()) {
          ++segments[i];
          changed = true;
        }
        if (segments[j] < parts[j].size()) {
          ++segments[j];
          changed = true;
        }
      }
    }
  }
  std::vector<std::string> titles;
  for (size_t i = 0; i < paths.size(); ++i) {
    titles.push_back(title(i, segments[i]));
  }
  return titles;
}

std::map<std::string, std::string> ParamsOf(const v1::Run& run) {
  return std::map<std::string, std::string>(run.params().begin(),
                                            run.params().end());
}

std::string ProgressBar(double done, double total, size_t width) {
  if (width < 3) return "";
  size_t inner = width - 2;
  double share = total > 0 ? std::clamp(done / total, 0.0, 1.0) : 0.0;
  size_t filled = static_cast<size_t>(std::lround(share * inner));
  return absl::StrCat("[", std::string(filled, '#'),
                      std::string(inner - filled, '.'), "]");
}

size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                         diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

}  // namespace sweepq::client
