#include "client/plot.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "client/args.h"
#include "client/commands.h"
#include "client/errors.h"
#include "client/format.h"
#include "client/json.h"
#include "common/mask_classes.h"
#include "common/plot/png.h"
#include "common/status_macros.h"
#include "grpcpp/grpcpp.h"

namespace sweepq::client {

namespace v1 = ::sweepq::v1;

namespace {

constexpr size_t kMaxLabelChars = 72;
constexpr int kMinSide = 100;
constexpr int kMaxSide = 8000;

bool IsPerStepMetric(absl::string_view name) {
  return absl::StartsWith(name, "step_") || absl::StartsWith(name, "batch_");
}

// The newest `start` event's data.classes, if it is a list of names.
std::vector<std::string> StartEventClasses(const RunHistory& history) {
  for (auto it = history.events.rbegin(); it != history.events.rend(); ++it) {
    if (it->kind() != "start") continue;
    auto payload = JsonValue::Parse(it->payload_json());
    if (!payload.ok()) return {};
    const JsonValue* data = payload->Find("data");
    const JsonValue* classes =
        data != nullptr ? data->Find("classes") : nullptr;
    if (classes == nullptr || !classes->is_array()) return {};
    std::vector<std::string> names;
    for (const JsonValue& c : classes->items()) {
      if (!c.is_string()) return {};
      names.push_back(c.string_value());
    }
    return names;
  }
  return {};
}

}  // namespace

void AddToHistory(const v1::WatchRunResponse& item, RunHistory* history) {
  if (item.has_metric()) {
    const v1::MetricPoint& point = item.metric();
    auto& by_step = history->metrics[point.name()];
    auto it = by_step.find(point.step());
    if (it == by_step.end() || it->second.attempt() <= point.attempt()) {
      by_step[point.step()] = point;
    }
  } else if (item.has_event()) {
    const std::string& kind = item.event().kind();
    if (kind == "epoch" || kind == "start") {
      history->events.push_back(item.event());
    }
  }
  history->run.set_state(item.state());
}

std::vector<std::string> EpochMetricNames(const std::vector<RunHistory>& runs) {
  std::set<std::string> names;
  for (const RunHistory& h : runs) {
    for (const auto& [name, points] : h.metrics) {
      if (!IsPerStepMetric(name) && !points.empty()) names.insert(name);
    }
  }
  return std::vector<std::string>(names.begin(), names.end());
}

absl::StatusOr<std::vector<std::string>> ChooseMetrics(
    const std::vector<RunHistory>& runs, absl::string_view requested) {
  std::vector<std::string> available = EpochMetricNames(runs);
  std::set<std::string> all;
  for (const RunHistory& h : runs) {
    for (const auto& [name, points] : h.metrics) {
      if (!points.empty()) all.insert(name);
    }
  }
  std::vector<std::string> chosen;
  if (!requested.empty()) {
    for (absl::string_view part : absl::StrSplit(requested, ',')) {
      std::string name(absl::StripAsciiWhitespace(part));
      if (name.empty()) continue;
      if (all.count(name) == 0) {
        return UsageError(absl::StrCat(
            "--metrics: no run has a metric named '", name, "'",
            available.empty() ? ""
                              : absl::StrCat("; they have ",
                                             absl::StrJoin(available, ", "))));
      }
      if (std::find(chosen.begin(), chosen.end(), name) == chosen.end()) {
        chosen.push_back(name);
      }
    }
    if (chosen.empty()) return UsageError("--metrics: no metric named");
    return chosen;
  }
  for (const char* name : kDefaultPlotMetrics) {
    if (std::find(available.begin(), available.end(), name) !=
        available.end()) {
      chosen.push_back(name);
    }
  }
  if (chosen.empty()) chosen = available;
  if (chosen.empty()) {
    return absl::InvalidArgumentError("the runs have no per-epoch metrics");
  }
  return chosen;
}

std::vector<std::string> RunLabels(const std::vector<v1::Run>& runs) {
  std::vector<std::map<std::string, std::string>> params;
  for (const v1::Run& run : runs) params.push_back(ParamsOf(run));
  std::vector<std::string> keys;
  if (runs.size() == 1) {
    for (const auto& [key, value] : params[0]) keys.push_back(key);
  } else {
    std::vector<const std::map<std::string, std::string>*> pointers;
    for (const auto& p : params) pointers.push_back(&p);
    keys = VaryingParams(pointers);
  }
  // The last dotted segment ("lr"); keys that would share one get longer
  // names ("optimizer.name", "scheduler.name").
  std::vector<std::string> names;
  std::map<std::string, int> uses;
  for (const std::string& key : keys) {
    names.push_back(key.substr(key.rfind('.') + 1));
    ++uses[names.back()];
  }
  std::vector<std::string> clashing;
  for (size_t k = 0; k < keys.size(); ++k) {
    if (uses[names[k]] > 1) clashing.push_back(keys[k]);
  }
  std::vector<std::string> longer = ParamTitles(clashing);
  for (size_t k = 0, c = 0; k < keys.size(); ++k) {
    if (uses[names[k]] > 1) names[k] = longer[c++];
  }
  std::vector<std::string> labels;
  for (size_t r = 0; r < runs.size(); ++r) {
    std::vector<std::string> parts;
    for (size_t k = 0; k < keys.size(); ++k) {
      auto it = params[r].find(keys[k]);
      if (it == params[r].end()) continue;
      parts.push_back(absl::StrCat(names[k], "=", JsonDisplay(it->second)));
    }
    std::string label = absl::StrCat("run ", runs[r].run_id());
    if (!parts.empty()) {
      absl::StrAppend(&label, " (", absl::StrJoin(parts, ", "), ")");
    }
    if (label.size() > kMaxLabelChars) {
      label = absl::StrCat(label.substr(0, kMaxLabelChars - 2), "..");
    }
    labels.push_back(label);
  }
  return labels;
}

plot::LineChart CurvesChart(const std::vector<RunHistory>& runs,
                            const std::vector<std::string>& metrics) {
  std::vector<v1::Run> protos;
  std::vector<std::string> ids;
  for (const RunHistory& h : runs) {
    protos.push_back(h.run);
    ids.push_back(absl::StrCat(h.run.run_id()));
  }
  std::vector<std::string> labels = RunLabels(protos);
  plot::LineChart chart;
  if (runs.size() == 1) {
    chart.title = absl::StrCat("run ", ids[0], ": learning curves");
  } else if (runs.size() <= 8) {
    chart.title = absl::StrCat("runs ", absl::StrJoin(ids, ", "));
  } else {
    chart.title = absl::StrCat("runs ", ids[0], ", ", ids[1], ", ... ",
                               ids.back(), " (", runs.size(), " runs)");
  }
  // Colours follow the order of the runs on the command line.
  for (size_t r = 0; r < runs.size(); ++r) {
    for (const std::string& metric : metrics) {
      auto it = runs[r].metrics.find(metric);
      if (it != runs[r].metrics.end() && !it->second.empty()) {
        chart.series_order.push_back(labels[r]);
        break;
      }
    }
  }
  for (const std::string& metric : metrics) {
    plot::LinePanel panel;
    panel.title = metric;
    panel.x_title = IsPerStepMetric(metric) ? "step" : "epoch";
    panel.y_title = metric;
    panel.integer_x = true;
    for (size_t r = 0; r < runs.size(); ++r) {
      auto it = runs[r].metrics.find(metric);
      if (it == runs[r].metrics.end() || it->second.empty()) continue;
      plot::Series series;
      series.name = labels[r];
      for (const auto& [step, point] : it->second) {
        series.x.push_back(static_cast<double>(step));
        series.y.push_back(point.value());
      }
      panel.series.push_back(std::move(series));
    }
    chart.panels.push_back(std::move(panel));
  }
  return chart;
}

absl::StatusOr<std::optional<EpochConfusion>> ParseEpochEvent(
    const v1::RunEvent& event) {
  auto fail = [&](absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("epoch event ", event.seq(), " (attempt ", event.attempt(),
                     "): ", what));
  };
  auto payload = JsonValue::Parse(event.payload_json());
  if (!payload.ok()) return fail(payload.status().message());
  if (!payload->is_object()) return fail("the payload is not a JSON object");
  const JsonValue* confusion = payload->Find("confusion");
  if (confusion == nullptr || confusion->is_null()) return std::nullopt;
  EpochConfusion out;
  out.attempt = event.attempt();
  const JsonValue* epoch = payload->Find("epoch");
  if (epoch == nullptr || !epoch->is_number() || epoch->number_value() < 0) {
    return fail("'epoch' is missing or not a number");
  }
  out.epoch = static_cast<int64_t>(epoch->number_value());
  if (!confusion->is_array() || confusion->items().empty()) {
    return fail("'confusion' is not a non-empty array of rows");
  }
  const size_t n = confusion->items().size();
  for (size_t r = 0; r < n; ++r) {
    const JsonValue& row = confusion->items()[r];
    if (!row.is_array() || row.items().size() != n) {
      return fail(absl::StrCat("'confusion' row ", r, " does not have ", n,
                               " entries (the matrix must be square)"));
    }
    std::vector<double> values;
    for (const JsonValue& v : row.items()) {
      if (!v.is_number()) {
        return fail(absl::StrCat("'confusion' row ", r, " holds a non-number"));
      }
      values.push_back(v.number_value());
    }
    out.counts.push_back(std::move(values));
  }
  const JsonValue* f1 = payload->Find("per_class_f1");
  if (f1 != nullptr && !f1->is_null()) {
    if (!f1->is_array() || f1->items().size() != n) {
      return fail(absl::StrCat("'per_class_f1' must list ", n,
                               " numbers, one per class"));
    }
    for (const JsonValue& v : f1->items()) {
      // null stands for a non-finite value (JSON has no NaN).
      out.per_class_f1.push_back(v.is_number() ? v.number_value()
                                               : std::nan(""));
    }
  }
  const JsonValue* metrics = payload->Find("metrics");
  if (metrics != nullptr && metrics->is_object()) {
    for (const auto& [name, value] : metrics->members()) {
      if (value.is_number()) out.metrics[name] = value.number_value();
    }
  }
  return out;
}

absl::StatusOr<EpochConfusion> SelectConfusion(const RunHistory& history,
                                               int64_t epoch) {
  const int64_t run_id = history.run.run_id();
  // Epoch -> the newest attempt's matrix.
  std::map<int64_t, EpochConfusion> by_epoch;
  for (const v1::RunEvent& event : history.events) {
    if (event.kind() != "epoch") continue;
    auto parsed = ParseEpochEvent(event);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("run ", run_id, ": ", parsed.status().message()));
    }
    if (!parsed->has_value()) continue;
    EpochConfusion& slot = by_epoch[(*parsed)->epoch];
    if (slot.counts.empty() || slot.attempt <= (*parsed)->attempt) {
      slot = std::move(**parsed);
    }
  }
  if (by_epoch.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "run ", run_id,
        " has no confusion matrix yet: none of its epoch "
        "events carries one (runs on data.split: full have none)"));
  }
  if (epoch > 0) {
    auto it = by_epoch.find(epoch);
    if (it == by_epoch.end()) {
      std::vector<std::string> have;
      for (const auto& [e, c] : by_epoch) have.push_back(absl::StrCat(e));
      return absl::NotFoundError(
          absl::StrCat("run ", run_id, " has no confusion matrix for epoch ",
                       epoch, "; it has epochs ", absl::StrJoin(have, ", ")));
    }
    return it->second;
  }
  if (history.run.has_best()) {
    auto it = by_epoch.find(history.run.best_step());
    if (it != by_epoch.end()) return it->second;
  }
  return by_epoch.rbegin()->second;
}

std::vector<std::string> MaskTaskClassNames(const std::vector<int>& bounds) {
  return ::sweepq::MaskTaskClassNames(bounds);
}

std::vector<std::string> ClassNames(const RunHistory& history, size_t n) {
  std::vector<std::string> names = StartEventClasses(history);
  if (names.size() == n) return names;
  std::vector<int> bounds;
  for (int bound : history.run.config().data().age_bounds()) {
    bounds.push_back(bound);
  }
  if (bounds.empty()) {
    bounds.push_back(30);
    bounds.push_back(60);
  }
  names = MaskTaskClassNames(bounds);
  if (names.size() == n) return names;
  names.clear();
  for (size_t i = 0; i < n; ++i) names.push_back(absl::StrCat(i));
  return names;
}

plot::HeatMap ConfusionChart(const RunHistory& history,
                             const EpochConfusion& confusion) {
  const v1::Run& run = history.run;
  std::string metric = run.metric().empty() ? "val_f1" : run.metric();
  std::string which = run.has_best() && run.best_step() == confusion.epoch
                          ? "best epoch"
                          : "epoch";
  plot::HeatMap map;
  map.title = absl::StrCat("run ", run.run_id(), ": confusion matrix at ",
                           which, " ", confusion.epoch);
  auto value = confusion.metrics.find(metric);
  if (value != confusion.metrics.end()) {
    absl::StrAppend(&map.title, " (", metric, " ", FormatMetric(value->second),
                    ")");
  }
  std::vector<std::string> names = ClassNames(history, confusion.counts.size());
  map.row_labels = names;
  map.column_labels = names;
  map.values = confusion.counts;
  map.row_title = "true class";
  map.column_title = "predicted class";
  map.normalize_rows = true;
  map.value_decimals = 0;
  map.color_bar = true;
  if (!confusion.per_class_f1.empty()) {
    map.row_bars = confusion.per_class_f1;
    map.row_bar_title = "F1";
    map.row_bar_max = 1;
    map.row_bar_decimals = 3;
  }
  return map;
}

std::string DefaultPlotPath(const std::vector<int64_t>& run_ids,
                            bool confusion) {
  std::vector<std::string> ids;
  for (size_t i = 0; i < run_ids.size() && i < 4; ++i) {
    ids.push_back(absl::StrCat(run_ids[i]));
  }
  if (run_ids.size() > 4) ids.push_back("etc");
  return absl::StrCat(run_ids.size() == 1 ? "run-" : "runs-",
                      absl::StrJoin(ids, "-"),
                      confusion ? "-confusion.png" : "-curves.png");
}

// ---- The command ----

namespace {

// How long a stream of a run still in progress may stay quiet before the
// history is taken to be complete (the coordinator sends what it has at
// once, then waits for more), before and after the first item.
constexpr absl::Duration kFirstItemWait = absl::Seconds(3);
constexpr absl::Duration kQuietWait = absl::Seconds(1);

std::chrono::system_clock::time_point DeadlineIn(absl::Duration d) {
  return std::chrono::system_clock::now() +
         std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

// Reads the run's WatchRun stream from the start. A final run's stream
// ends by itself; a run in progress is read until the stream goes quiet
// and then cancelled. Uses the asynchronous API so the quiet wait needs no
// second thread.
absl::StatusOr<RunHistory> FetchHistory(Connection* connection,
                                        const v1::Run& run, double timeout_s) {
  RunHistory history;
  history.run = run;
  const bool final_state = IsFinalState(run.state());
  const absl::Duration deadline = absl::Seconds(std::max(timeout_s, 60.0));
  auto context = connection->NewContext(deadline);
  grpc::CompletionQueue queue;
  v1::WatchRunRequest request;
  request.set_run_id(run.run_id());
  auto reader =
      connection->stub()->PrepareAsyncWatchRun(context.get(), request, &queue);
  void* tag = nullptr;
  bool ok = false;
  reader->StartCall(reinterpret_cast<void*>(1));
  bool open = queue.Next(&tag, &ok) && ok;
  bool stopped_quiet = false;
  bool got_any = false;
  v1::WatchRunResponse item;
  while (open) {
    reader->Read(&item, reinterpret_cast<void*>(2));
    absl::Duration wait = final_state ? deadline + absl::Seconds(5)
                          : got_any   ? kQuietWait
                                      : kFirstItemWait;
    auto next = queue.AsyncNext(&tag, &ok, DeadlineIn(wait));
    if (next == grpc::CompletionQueue::TIMEOUT) {
      context->TryCancel();
      stopped_quiet = true;
      queue.Next(&tag, &ok);  // the cancelled read
      break;
    }
    if (next != grpc::CompletionQueue::GOT_EVENT || !ok) break;
    got_any = true;
    AddToHistory(item, &history);
  }
  grpc::Status status;
  reader->Finish(&status, reinterpret_cast<void*>(3));
  queue.Next(&tag, &ok);
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) {
  }
  if (!stopped_quiet && !status.ok()) {
    return connection->Convert(status, "sweepq runs", deadline);
  }
  return history;
}

// Fails unless `path` can be created: its directory exists and is
// writable, and it is not a directory itself. Checked before anything is
// fetched, so a typo costs no waiting.
absl::Status CheckWritable(const std::string& path) {
  std::string dir = ".";
  size_t slash = path.rfind('/');
  if (slash != std::string::npos)
    dir = slash == 0 ? "/" : path.substr(0, slash);
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot write ", path, ": it is a directory; give a file name, e.g. ",
        path, slash + 1 == path.size() ? "" : "/", "plot.png"));
  }
  if (stat(dir.c_str(), &st) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("cannot write ", path,
                                                      ": directory ", dir, ": ",
                                                      std::strerror(errno)));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write ", path, ": ", dir, " is not a directory"));
  }
  if (access(dir.c_str(), W_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("cannot write ", path,
                                                      ": directory ", dir, ": ",
                                                      std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunPlot(const std::vector<std::string>& args,
                     CliContext& context) {
  ArgParser parser(
      "sweepq plot",
      {"sweepq plot RUN [RUN...] [--metrics M1,M2,...] [-o FILE.png] "
       "[--width W] [--height H]\n"
       "       sweepq plot RUN --confusion [--epoch N] [-o FILE.png]",
       "Draws learning curves as a PNG: one panel per metric (default "
       "val_f1,\ntrain_loss, val_loss), one line per run, x = epoch, the "
       "legend naming each run\nwith the swept parameters that differ "
       "(\"run 12 (lr=0.003)\"). With --confusion,\ndraws the run's "
       "validation confusion matrix (rows: true class, colour: share\nof the "
       "row, counts in the cells) with its per-class F1 beside it, at the "
       "best\nepoch (else the last one, or --epoch N). A run still in "
       "progress is drawn with\nthe epochs reported so far. Prints the path "
       "of the file written (default\nrun-RUN-curves.png / "
       "run-RUN-confusion.png); an existing file is replaced.",
       "  sweepq plot 12 13 14 --metrics val_f1,val_loss -o curves.png\n"
       "  sweepq plot 12 --confusion -o cm.png\n"});
  CommonOptions common;
  std::string metrics_text, output;
  int64_t width = 0, height = 0, epoch = 0;
  bool confusion = false;
  parser.AddString("metrics", &metrics_text, "M1,M2",
                   "metrics to draw, one panel each (default: those of "
                   "val_f1,train_loss,val_loss the runs have)");
  parser.AddString("output", &output, "FILE",
                   "the PNG to write (default run-RUN-curves.png)", "-o");
  parser.AddInt("width", &width, "W",
                "picture width in pixels (default 1200; confusion 1400)",
                kMinSide, kMaxSide);
  parser.AddInt("height", &height, "H",
                "picture height in pixels (default 800; confusion 1000)",
                kMinSide, kMaxSide);
  parser.AddBool("confusion", &confusion,
                 "draw the confusion matrix and per-class F1 of one run");
  parser.AddInt("epoch", &epoch, "N",
                "--confusion: the matrix of epoch N (default: the best)", 1,
                INT64_MAX);
  AddCommonFlags(&parser, &common);
  std::vector<std::string> positionals;
  RETURN_IF_ERROR(parser.Parse(args, &positionals, 1, 100));
  if (parser.help_requested()) {
    *context.out << parser.HelpText();
    return absl::OkStatus();
  }
  std::vector<int64_t> run_ids;
  for (const std::string& text : positionals) {
    int64_t id = 0;
    if (!absl::SimpleAtoi(text, &id) || id <= 0) {
      return parser.Error(absl::StrCat(
          "RUN must be a run id (a positive number, as listed by sweepq "
          "runs), got '",
          text, "'"));
    }
    if (std::find(run_ids.begin(), run_ids.end(), id) == run_ids.end()) {
      run_ids.push_back(id);
    }
  }
  if (confusion && run_ids.size() != 1) {
    return parser.Error("--confusion draws one run; give a single RUN");
  }
  if (confusion && !metrics_text.empty()) {
    return parser.Error("--metrics is for learning curves, not --confusion");
  }
  if (!confusion && epoch > 0) {
    return parser.Error("--epoch goes with --confusion");
  }
  plot::ChartOptions chart_options;
  chart_options.width =
      static_cast<int>(width > 0 ? width : (confusion ? 1400 : 1200));
  chart_options.height =
      static_cast<int>(height > 0 ? height : (confusion ? 1000 : 800));
  if (output.empty()) output = DefaultPlotPath(run_ids, confusion);
  RETURN_IF_ERROR(WithExitCode(CheckWritable(output), kExitFailed));

  Session session(context, common);
  ASSIGN_OR_RETURN(Connection * connection, session.connection());
  std::vector<RunHistory> histories;
  for (int64_t run_id : run_ids) {
    v1::GetRunRequest get;
    get.set_run_id(run_id);
    ASSIGN_OR_RETURN(v1::Run run,
                     connection->Call(&v1::TeamService::StubInterface::GetRun,
                                      get, "sweepq runs"));
    ASSIGN_OR_RETURN(RunHistory history,
                     FetchHistory(connection, run, common.timeout_s));
    histories.push_back(std::move(history));
  }

  absl::StatusOr<plot::Canvas> canvas = absl::UnknownError("not drawn");
  std::string what;
  if (confusion) {
    absl::StatusOr<EpochConfusion> selected =
        SelectConfusion(histories[0], epoch);
    if (!selected.ok()) {
      // A malformed event is the run's problem, not the command line's.
      return WithExitCode(selected.status(), absl::IsNotFound(selected.status())
                                                 ? kExitNotFound
                                                 : kExitFailed);
    }
    const EpochConfusion& matrix = *selected;
    canvas = plot::RenderHeatMap(ConfusionChart(histories[0], matrix),
                                 chart_options);
    what = absl::StrCat("confusion matrix of run ", run_ids[0], " at epoch ",
                        matrix.epoch, ", ", matrix.counts.size(), " classes");
  } else {
    std::vector<RunHistory> with_metrics;
    for (RunHistory& h : histories) {
      if (EpochMetricNames({h}).empty()) {
        std::string message =
            absl::StrCat("run ", h.run.run_id(), " has no metrics yet (it is ",
                         StateName(h.run.state()), ")");
        if (histories.size() == 1) {
          return WithExitCode(absl::FailedPreconditionError(message),
                              kExitFailed);
        }
        session.err() << "sweepq: note: " << message
                      << "; drawing the others\n";
        continue;
      }
      with_metrics.push_back(std::move(h));
    }
    if (with_metrics.empty()) {
      return WithExitCode(
          absl::FailedPreconditionError("none of the runs has metrics yet"),
          kExitFailed);
    }
    ASSIGN_OR_RETURN(std::vector<std::string> metrics,
                     ChooseMetrics(with_metrics, metrics_text));
    canvas = plot::RenderLineChart(CurvesChart(with_metrics, metrics),
                                   chart_options);
    what = absl::StrCat(with_metrics.size(),
                        with_metrics.size() == 1 ? " run" : " runs", "; ",
                        absl::StrJoin(metrics, ", "));
  }
  if (!canvas.ok()) return canvas.status();
  RETURN_IF_ERROR(
      WithExitCode(plot::WritePngFile(*canvas, output), kExitFailed));
  session.out() << "wrote " << output << " (" << chart_options.width << "x"
                << chart_options.height << ", " << what << ")\n";
  return absl::OkStatus();
}

}  // namespace sweepq::client
