#include "client/views.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "client/errors.h"
#include "client/format.h"
#include "google/protobuf/util/json_util.h"

namespace sweepq::client {

namespace v1 = ::sweepq::v1;

namespace {

JsonValue TimeJson(int64_t ms) {
  return ms > 0 ? JsonValue::Int(ms) : JsonValue::Null();
}

JsonValue ParamsJson(
    const google::protobuf::Map<std::string, std::string>& params) {
  // Sorted for a stable order (protobuf maps have none).
  std::map<std::string, std::string> sorted(params.begin(), params.end());
  JsonValue out = JsonValue::Object();
  for (const auto& [path, text] : sorted) {
    absl::StatusOr<JsonValue> value = JsonValue::Parse(text);
    out.Set(path, value.ok() ? *std::move(value) : JsonValue::String(text));
  }
  return out;
}

// Columns for the parameters that vary between `runs`, and a function that
// fills a row's cells for them.
struct ParamColumns {
  std::vector<std::string> paths;
  std::vector<Column> columns;
};

ParamColumns VaryingParamColumns(
    const std::vector<std::map<std::string, std::string>>& params) {
  std::vector<const std::map<std::string, std::string>*> pointers;
  for (const auto& p : params) pointers.push_back(&p);
  ParamColumns out;
  out.paths = VaryingParams(pointers);
  std::vector<std::string> titles = ParamTitles(out.paths);
  for (const auto& title : titles) {
    Column column;
    column.header = title;
    column.min_width = 5;
    column.droppable = true;
    out.columns.push_back(column);
  }
  return out;
}

void AppendParamCells(const ParamColumns& columns,
                      const std::map<std::string, std::string>& params,
                      std::vector<Cell>* row) {
  for (const auto& path : columns.paths) {
    auto it = params.find(path);
    if (it == params.end()) {
      row->push_back(CellWithRaw("-", ""));
    } else {
      std::string shown = JsonDisplay(it->second);
      row->push_back(CellWithRaw(shown, shown));
    }
  }
}

Column Right(std::string header, bool shrinkable = false) {
  Column c;
  c.header = std::move(header);
  c.align = Align::kRight;
  c.shrinkable = shrinkable;
  return c;
}

Column Left(std::string header, size_t min_width = 6) {
  Column c;
  c.header = std::move(header);
  c.min_width = min_width;
  return c;
}

Cell MetricCell(bool has, double value) {
  if (!has) return CellWithRaw("-", "");
  return CellWithRaw(FormatMetric(value), FormatMetricRaw(value));
}

Cell DurationCell(int64_t ms) {
  if (ms < 0) return CellWithRaw("-", "");
  return CellWithRaw(FormatDuration(ms), absl::StrCat(ms / 1000));
}

// The metric every item optimises, or "" when they differ.
template <typename Items, typename MetricOf>
std::string CommonMetric(const Items& items, MetricOf metric_of) {
  std::set<std::string> metrics;
  for (const auto& item : items) metrics.insert(metric_of(item));
  return metrics.size() == 1 ? *metrics.begin() : "";
}

}  // namespace

absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view text,
                                               bool allow_csv) {
  if (text == "table") return OutputFormat::kTable;
  if (text == "json") return OutputFormat::kJson;
  if (text == "csv" && allow_csv) return OutputFormat::kCsv;
  return UsageError(absl::StrCat("--format must be table, json",
                                 allow_csv ? " or csv" : "", ", not '", text,
                                 "'"));
}

// ---- Runs ----

JsonValue RunJson(const v1::Run& run, int64_t now_ms) {
  JsonValue out = JsonValue::Object();
  out.Set("run_id", JsonValue::Int(run.run_id()))
      .Set("sweep_id", JsonValue::Int(run.sweep_id()))
      .Set("index", JsonValue::Int(run.index()))
      .Set("state", JsonValue::String(StateName(run.state())))
      .Set("priority", JsonValue::Int(run.priority()))
      .Set("attempt", JsonValue::Int(run.attempt()))
      .Set("max_attempts", JsonValue::Int(run.max_attempts()))
      .Set("worker_id", JsonValue::String(run.worker_id()))
      .Set("dataset", JsonValue::String(run.dataset()))
      .Set("metric", JsonValue::String(run.metric()))
      .Set("goal", JsonValue::String(GoalName(run.goal())))
      .Set("best_value", run.has_best() ? JsonValue::Number(run.best_value())
                                        : JsonValue::Null())
      .Set("best_step",
           run.has_best() ? JsonValue::Int(run.best_step()) : JsonValue::Null())
      .Set("best_attempt", run.has_best() ? JsonValue::Int(run.best_attempt())
                                          : JsonValue::Null())
      .Set("params", ParamsJson(run.params()))
      .Set("created_at_ms", TimeJson(run.created_at_ms()))
      .Set("started_at_ms", TimeJson(run.started_at_ms()))
      .Set("finished_at_ms", TimeJson(run.finished_at_ms()));
  int64_t duration = RunDurationMs(run, now_ms);
  out.Set("duration_ms",
          duration >= 0 ? JsonValue::Int(duration) : JsonValue::Null())
      .Set("error", JsonValue::String(run.error()))
      .Set("retryable", JsonValue::Bool(run.retryable()))
      .Set("cancel_requested", JsonValue::Bool(run.cancel_requested()));
  return out;
}

Table RunsTable(const std::vector<v1::Run>& runs, int64_t now_ms) {
  std::vector<std::map<std::string, std::string>> params;
  for (const auto& r : runs) params.push_back(ParamsOf(r));
  ParamColumns param_columns = VaryingParamColumns(params);
  std::string metric =
      CommonMetric(runs, [](const v1::Run& r) { return r.metric(); });

  std::vector<Column> columns = {Right("run"),
                                 Right("sweep"),
                                 Right("#"),
                                 Left("state", 9),
                                 Right(metric.empty() ? "best" : metric),
                                 Right("epoch"),
                                 Right("try"),
                                 Right("time"),
                                 Left("worker", 6)};
  for (auto& c : param_columns.columns) columns.push_back(c);
  Table table(std::move(columns));
  for (size_t i = 0; i < runs.size(); ++i) {
    const v1::Run& r = runs[i];
    std::vector<Cell> row;
    row.push_back(absl::StrCat(r.run_id()));
    row.push_back(absl::StrCat(r.sweep_id()));
    row.push_back(absl::StrCat(r.index()));
    std::string state = StateName(r.state());
    if (r.cancel_requested() && !IsFinalState(r.state())) {
      absl::StrAppend(&state, " (cancelling)");
    }
    row.push_back(Cell(state, StateStyle(r.state())));
    Cell best = MetricCell(r.has_best(), r.best_value());
    if (metric.empty() && r.has_best()) {
      best.text = absl::StrCat(r.metric(), " ", best.text);
    }
    row.push_back(best);
    row.push_back(r.has_best() ? Cell(absl::StrCat(r.best_step()))
                               : CellWithRaw("-", ""));
    row.push_back(CellWithRaw(absl::StrCat(r.attempt(), "/", r.max_attempts()),
                              absl::StrCat(r.attempt())));
    row.push_back(DurationCell(RunDurationMs(r, now_ms)));
    row.push_back(r.worker_id().empty() ? CellWithRaw("-", "")
                                        : Cell(r.worker_id()));
    AppendParamCells(param_columns, params[i], &row);
    table.AddRow(std::move(row));
  }
  return table;
}

JsonValue RunsJson(const std::vector<v1::Run>& runs, int64_t now_ms) {
  JsonValue out = JsonValue::Array();
  for (const auto& r : runs) out.Push(RunJson(r, now_ms));
  return out;
}

// ---- Leaderboard ----

Table BoardTable(const std::vector<v1::LeaderboardEntry>& entries,
                 int64_t now_ms) {
  std::vector<std::map<std::string, std::string>> params;
  for (const auto& e : entries) params.push_back(ParamsOf(e.run()));
  ParamColumns param_columns = VaryingParamColumns(params);
  std::string metric = CommonMetric(
      entries, [](const v1::LeaderboardEntry& e) { return e.run().metric(); });
  const std::string second = metric == "val_acc" ? "val_f1" : "val_acc";
  std::set<int64_t> sweeps;
  for (const auto& e : entries) sweeps.insert(e.run().sweep_id());
  const bool show_sweep = sweeps.size() > 1;

  std::vector<Column> columns = {Right("rank"), Right("run")};
  if (show_sweep) columns.push_back(Right("sweep"));
  columns.push_back(Right(metric.empty() ? "best" : metric));
  columns.push_back(Right(second));
  columns.push_back(Right("epoch"));
  for (auto& c : param_columns.columns) columns.push_back(c);
  columns.push_back(Left("state", 9));
  columns.push_back(Right("time"));
  columns.push_back(Left("worker", 6));
  Table table(std::move(columns));

  for (size_t i = 0; i < entries.size(); ++i) {
    const v1::LeaderboardEntry& e = entries[i];
    const v1::Run& r = e.run();
    std::vector<Cell> row;
    row.push_back(Cell(absl::StrCat(e.rank()),
                       e.rank() == 1 ? Style::kBold : Style::kNone));
    row.push_back(absl::StrCat(r.run_id()));
    if (show_sweep) row.push_back(absl::StrCat(r.sweep_id()));
    Cell best = MetricCell(r.has_best(), r.best_value());
    if (metric.empty() && r.has_best()) {
      best.text = absl::StrCat(r.metric(), " ", best.text);
    }
    row.push_back(best);
    auto it = e.metrics_at_best().find(second);
    row.push_back(it == e.metrics_at_best().end()
                      ? CellWithRaw("-", "")
                      : MetricCell(true, it->second));
    row.push_back(r.has_best() ? Cell(absl::StrCat(r.best_step()))
                               : CellWithRaw("-", ""));
    AppendParamCells(param_columns, params[i], &row);
    row.push_back(Cell(StateName(r.state()), StateStyle(r.state())));
    row.push_back(DurationCell(RunDurationMs(r, now_ms)));
    row.push_back(r.worker_id().empty() ? CellWithRaw("-", "")
                                        : Cell(r.worker_id()));
    table.AddRow(std::move(row));
  }
  return table;
}

JsonValue BoardJson(const std::vector<v1::LeaderboardEntry>& entries,
                    int64_t now_ms) {
  JsonValue out = JsonValue::Array();
  for (const auto& e : entries) {
    const v1::Run& r = e.run();
    std::map<std::string, double> metrics(e.metrics_at_best().begin(),
                                          e.metrics_at_best().end());
    JsonValue metrics_json = JsonValue::Object();
    for (const auto& [name, value] : metrics) {
      metrics_json.Set(name, JsonValue::Number(value));
    }
    int64_t duration = RunDurationMs(r, now_ms);
    JsonValue entry = JsonValue::Object();
    entry.Set("rank", JsonValue::Int(e.rank()))
        .Set("run_id", JsonValue::Int(r.run_id()))
        .Set("sweep_id", JsonValue::Int(r.sweep_id()))
        .Set("metric", JsonValue::String(r.metric()))
        .Set("goal", JsonValue::String(GoalName(r.goal())))
        .Set("best_value", r.has_best() ? JsonValue::Number(r.best_value())
                                        : JsonValue::Null())
        .Set("best_step",
             r.has_best() ? JsonValue::Int(r.best_step()) : JsonValue::Null())
        .Set("best_attempt", r.has_best() ? JsonValue::Int(r.best_attempt())
                                          : JsonValue::Null())
        .Set("metrics", std::move(metrics_json))
        .Set("params", ParamsJson(r.params()))
        .Set("state", JsonValue::String(StateName(r.state())))
        .Set("duration_ms",
             duration >= 0 ? JsonValue::Int(duration) : JsonValue::Null())
        .Set("worker_id", JsonValue::String(r.worker_id()));
    out.Push(std::move(entry));
  }
  return out;
}

std::string BoardCaption(int64_t sweep_id, absl::string_view metric,
                         v1::Goal goal, size_t shown, uint32_t top) {
  std::string scope =
      sweep_id > 0 ? absl::StrCat("sweep ", sweep_id, " board") : "team board";
  std::string what = metric.empty()
                         ? std::string("each run by its sweep's metric")
                         : absl::StrCat(metric, goal == v1::GOAL_MINIMIZE
                                                    ? " (lower is better)"
                                                    : " (higher is better)");
  std::string count =
      shown < top ? absl::StrCat(shown, " runs") : absl::StrCat("top ", top);
  return absl::StrCat(scope, ": ", what, ", ", count);
}

// ---- Workers ----

Table WorkersTable(const std::vector<v1::Worker>& workers, int64_t now_ms) {
  Table table({Left("worker", 8), Left("host", 8), Left("state", 8),
               Right("slots"), Left("running", 7), Left("datasets", 8),
               Right("seen"), Right("fails"), Left("reason", 6)});
  for (const auto& w : workers) {
    Style style = w.state() == v1::WORKER_STATE_ACTIVE     ? Style::kGreen
                  : w.state() == v1::WORKER_STATE_DRAINING ? Style::kYellow
                                                           : Style::kRed;
    std::vector<std::string> running;
    for (int64_t id : w.running_run_ids()) running.push_back(absl::StrCat(id));
    std::string running_text = absl::StrJoin(running, ",");
    std::string datasets = absl::StrJoin(w.datasets(), ",");
    table.AddRow({w.worker_id(), w.host().empty() ? "-" : w.host(),
                  Cell(WorkerStateName(w.state()), style),
                  absl::StrCat(w.slots()),
                  running_text.empty() ? "-" : running_text,
                  datasets.empty() ? "-" : datasets,
                  CellWithRaw(FormatAgo(w.last_seen_at_ms(), now_ms),
                              absl::StrCat(w.last_seen_at_ms())),
                  absl::StrCat(w.consecutive_failures()),
                  w.quarantine_reason().empty() ? "-" : w.quarantine_reason()});
  }
  return table;
}

JsonValue WorkerJson(const v1::Worker& w) {
  JsonValue datasets = JsonValue::Array();
  for (const auto& d : w.datasets()) datasets.Push(JsonValue::String(d));
  JsonValue running = JsonValue::Array();
  for (int64_t id : w.running_run_ids()) running.Push(JsonValue::Int(id));
  JsonValue out = JsonValue::Object();
  out.Set("worker_id", JsonValue::String(w.worker_id()))
      .Set("host", JsonValue::String(w.host()))
      .Set("state", JsonValue::String(WorkerStateName(w.state())))
      .Set("slots", JsonValue::Int(w.slots()))
      .Set("datasets", std::move(datasets))
      .Set("version", JsonValue::String(w.version()))
      .Set("running_run_ids", std::move(running))
      .Set("registered_at_ms", TimeJson(w.registered_at_ms()))
      .Set("last_seen_at_ms", TimeJson(w.last_seen_at_ms()))
      .Set("consecutive_failures", JsonValue::Int(w.consecutive_failures()))
      .Set("quarantine_reason", JsonValue::String(w.quarantine_reason()));
  return out;
}

JsonValue WorkersJson(const std::vector<v1::Worker>& workers) {
  JsonValue out = JsonValue::Array();
  for (const auto& w : workers) out.Push(WorkerJson(w));
  return out;
}

// ---- Artifacts ----

Table ArtifactsTable(const std::vector<v1::Artifact>& artifacts,
                     int64_t now_ms) {
  Table table({Left("name", 12), Right("attempt"), Right("size"),
               Left("sha256", 12), Right("created")});
  for (const auto& a : artifacts) {
    table.AddRow({a.name(), absl::StrCat(a.attempt()),
                  CellWithRaw(FormatBytes(a.size()), absl::StrCat(a.size())),
                  CellWithRaw(a.sha256().substr(0, 12), a.sha256()),
                  CellWithRaw(FormatAgo(a.created_at_ms(), now_ms),
                              absl::StrCat(a.created_at_ms()))});
  }
  return table;
}

JsonValue ArtifactsJson(const std::vector<v1::Artifact>& artifacts) {
  JsonValue out = JsonValue::Array();
  for (const auto& a : artifacts) {
    JsonValue item = JsonValue::Object();
    item.Set("run_id", JsonValue::Int(a.run_id()))
        .Set("attempt", JsonValue::Int(a.attempt()))
        .Set("name", JsonValue::String(a.name()))
        .Set("size", JsonValue::Int(a.size()))
        .Set("sha256", JsonValue::String(a.sha256()))
        .Set("created_at_ms", TimeJson(a.created_at_ms()));
    out.Push(std::move(item));
  }
  return out;
}

// ---- Show ----

JsonValue ConfigJson(const v1::RunConfig& config) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string text;
  if (!google::protobuf::util::MessageToJsonString(config, &text, options)
           .ok()) {
    return JsonValue::Object();
  }
  absl::StatusOr<JsonValue> value = JsonValue::Parse(text);
  return value.ok() ? *std::move(value) : JsonValue::Object();
}

namespace {

// A scalar or array written the way YAML reads it back: strings bare unless
// YAML would take them for something else, arrays in flow style.
std::string YamlInline(const JsonValue& value) {
  if (value.is_string()) {
    const std::string& s = value.string_value();
    bool plain = !s.empty() &&
                 s.find_first_of(":#{}[],&*!|>'\"%@`\n") == std::string::npos &&
                 s != "true" && s != "false" && s != "null" &&
                 s.front() != ' ' && s.back() != ' ' &&
                 !(s[0] == '-' || s[0] == '.' || (s[0] >= '0' && s[0] <= '9'));
    return plain ? s : JsonQuote(s);
  }
  if (value.is_array()) {
    std::vector<std::string> items;
    for (const auto& item : value.items()) items.push_back(YamlInline(item));
    return absl::StrCat("[", absl::StrJoin(items, ", "), "]");
  }
  if (value.is_object()) {
    std::vector<std::string> members;
    for (const auto& [k, v] : value.members()) {
      members.push_back(absl::StrCat(k, ": ", YamlInline(v)));
    }
    return absl::StrCat("{", absl::StrJoin(members, ", "), "}");
  }
  return value.Dump(0);
}

// What a job (a run with config.job) does and where its result is, for
// `sweepq show`: a job has no training metric, so no "best" line.
std::string JobLine(const v1::Run& run) {
  const v1::JobConfig& job = run.config().job();
  const int64_t id = run.run_id();
  const std::string sources =
      absl::StrCat(RunsPhrase(SourcesOf(job)),
                   job.source_runs_size() > 1 ? " (soft vote)" : "");
  if (job.kind() == "predict") {
    if (job.split() == "val") {
      return absl::StrCat("predict with ", sources,
                          " on the validation split (scored: pred_f1, "
                          "pred_acc; sweepq watch ",
                          id, ")");
    }
    return absl::StrCat("predict with ", sources,
                        " on the eval set (submission: sweepq submission ", id,
                        ")");
  }
  if (job.kind() == "gradcam") {
    return absl::StrCat("gradcam of ", sources,
                        job.has_gradcam_class()
                            ? absl::StrCat(", class ", job.gradcam_class())
                            : "",
                        " (pictures: sweepq artifacts ls ", id, ")");
  }
  return absl::StrCat(job.kind(), " of ", sources);
}

}  // namespace

std::string JsonToYamlText(const JsonValue& value, int indent) {
  std::string out;
  const std::string pad(static_cast<size_t>(indent), ' ');
  for (const auto& [key, member] : value.members()) {
    if (member.is_object() && !member.members().empty()) {
      absl::StrAppend(&out, pad, key, ":\n",
                      JsonToYamlText(member, indent + 2));
    } else {
      absl::StrAppend(&out, pad, key, ": ", YamlInline(member), "\n");
    }
  }
  return out;
}

JsonValue ShowJson(const RunDetails& details, int64_t now_ms) {
  const v1::Run& run = details.run;
  JsonValue out = RunJson(run, now_ms);
  JsonValue attempts = JsonValue::Array();
  for (const auto& a : run.attempts()) {
    JsonValue item = JsonValue::Object();
    item.Set("attempt", JsonValue::Int(a.attempt()))
        .Set("worker_id", JsonValue::String(a.worker_id()))
        .Set("started_at_ms", TimeJson(a.started_at_ms()))
        .Set("ended_at_ms", TimeJson(a.ended_at_ms()))
        .Set("outcome",
             JsonValue::String(a.ended_at_ms() > 0 ? StateName(a.outcome())
                                                   : "running"))
        .Set("reason", JsonValue::String(a.reason()));
    attempts.Push(std::move(item));
  }
  JsonValue metrics = JsonValue::Object();
  for (const auto& [name, value] : details.metrics_at_best) {
    metrics.Set(name, JsonValue::Number(value));
  }
  out.Set("metrics_at_best", std::move(metrics))
      .Set("attempts", std::move(attempts))
      .Set("artifacts", ArtifactsJson(details.artifacts))
      .Set("config", ConfigJson(run.config()));
  return out;
}

std::string RunsPhrase(const std::vector<int64_t>& ids) {
  return absl::StrCat(ids.size() == 1 ? "run " : "runs ",
                      absl::StrJoin(ids, ", "));
}

std::vector<int64_t> SourcesOf(const v1::JobConfig& job) {
  return std::vector<int64_t>(job.source_runs().begin(),
                              job.source_runs().end());
}

std::string ShowText(const RunDetails& details, int64_t now_ms,
                     const TableOptions& table_options) {
  const v1::Run& run = details.run;
  const bool color = table_options.color;
  std::string out;
  auto line = [&](absl::string_view label, absl::string_view value) {
    std::string text(value);
    // Continuation lines of a multi-line value line up under the first.
    absl::StrReplaceAll({{"\n", "\n              "}}, &text);
    absl::StrAppend(&out, "  ", label,
                    std::string(label.size() < 12 ? 12 - label.size() : 1, ' '),
                    text, "\n");
  };
  std::string state = StateName(run.state());
  if (run.cancel_requested() && !IsFinalState(run.state())) {
    absl::StrAppend(&state, " (cancel requested)");
  }
  absl::StrAppend(
      &out, Stylize(absl::StrCat("run ", run.run_id()), Style::kBold, color),
      "  ", Stylize(state, StateStyle(run.state()), color), "\n");
  line("sweep",
       absl::StrCat(run.sweep_id(), " (run #", run.index(), " of the sweep)"));
  line("dataset", run.dataset().empty() ? "-" : run.dataset());
  line("priority", absl::StrCat(run.priority()));
  line("attempt", absl::StrCat(run.attempt(), " of ", run.max_attempts()));
  if (!run.worker_id().empty()) line("worker", run.worker_id());
  line("created", absl::StrCat(FormatTime(run.created_at_ms()), " (",
                               FormatAgo(run.created_at_ms(), now_ms), ")"));
  if (run.started_at_ms() > 0) line("started", FormatTime(run.started_at_ms()));
  if (run.finished_at_ms() > 0) {
    line("finished", FormatTime(run.finished_at_ms()));
  }
  int64_t duration = RunDurationMs(run, now_ms);
  if (duration >= 0) line("duration", FormatDuration(duration));
  std::string metric = run.metric().empty() ? "val_f1" : run.metric();
  if (run.config().has_job()) line("job", JobLine(run));
  if (run.has_best()) {
    line("best",
         absl::StrCat(metric, " ", FormatMetric(run.best_value()), " at epoch ",
                      run.best_step(), " (attempt ", run.best_attempt(), ", ",
                      GoalName(run.goal()), ")"));
  } else if (!run.config().has_job()) {
    line("best", absl::StrCat("no ", metric, " reported yet"));
  }
  if (!details.metrics_at_best.empty()) {
    std::vector<std::string> parts;
    for (const auto& [name, value] : details.metrics_at_best) {
      parts.push_back(absl::StrCat(name, " ", FormatMetric(value)));
    }
    line("at best", absl::StrJoin(parts, "  "));
  }
  if (!run.error().empty()) {
    line("error", Stylize(run.error(), Style::kRed, color));
    line("retryable", run.retryable() ? "yes" : "no");
  }
  if (run.params_size() > 0) {
    std::map<std::string, std::string> params = ParamsOf(run);
    std::vector<std::string> parts;
    for (const auto& [path, text] : params) {
      parts.push_back(absl::StrCat(path, "=", JsonDisplay(text)));
    }
    line("params", absl::StrJoin(parts, "\n"));
  }

  if (run.attempts_size() > 0) {
    absl::StrAppend(&out, "\n", Stylize("attempts", Style::kBold, color), "\n");
    Table attempts({Right("attempt"), Left("worker", 8), Left("started", 8),
                    Right("time"), Left("outcome", 9), Left("reason", 10)});
    for (const auto& a : run.attempts()) {
      bool open = a.ended_at_ms() <= 0;
      int64_t end = open ? now_ms : a.ended_at_ms();
      std::string outcome = open ? "running" : StateName(a.outcome());
      if (!open && a.outcome() == v1::RUN_STATE_QUEUED) outcome = "requeued";
      attempts.AddRow(
          {absl::StrCat(a.attempt()), a.worker_id(),
           FormatTime(a.started_at_ms()),
           a.started_at_ms() > 0 ? FormatDuration(end - a.started_at_ms())
                                 : "-",
           Cell(outcome, open ? Style::kYellow : StateStyle(a.outcome())),
           a.reason().empty() ? "-" : a.reason()});
    }
    TableOptions indented = table_options;
    indented.max_width =
        table_options.max_width > 2 ? table_options.max_width - 2 : 0;
    for (absl::string_view l :
         absl::StrSplit(attempts.Render(indented), '\n', absl::SkipEmpty())) {
      absl::StrAppend(&out, "  ", l, "\n");
    }
  }

  absl::StrAppend(&out, "\n", Stylize("artifacts", Style::kBold, color), "\n");
  if (details.artifacts.empty()) {
    out.append("  none\n");
  } else {
    TableOptions indented = table_options;
    indented.max_width =
        table_options.max_width > 2 ? table_options.max_width - 2 : 0;
    for (absl::string_view l : absl::StrSplit(
             ArtifactsTable(details.artifacts, now_ms).Render(indented), '\n',
             absl::SkipEmpty())) {
      absl::StrAppend(&out, "  ", l, "\n");
    }
  }

  if (run.has_config()) {
    absl::StrAppend(&out, "\n", Stylize("config", Style::kBold, color), "\n",
                    JsonToYamlText(ConfigJson(run.config()), 2));
  }
  return out;
}

}  // namespace sweepq::client
