#include "client/watch.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <iostream>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/args.h"
#include "client/commands.h"
#include "client/errors.h"
#include "client/format.h"
#include "client/json.h"
#include "client/table.h"
#include "common/status_macros.h"

namespace sweepq::client {

namespace v1 = ::sweepq::v1;

namespace {

bool IsStepMetric(absl::string_view name) {
  return absl::StartsWith(name, "step_") || absl::StartsWith(name, "batch_");
}

std::string StateWord(absl::string_view proto_name) {
  v1::RunState state;
  if (v1::RunState_Parse(std::string(proto_name), &state)) {
    return StateName(state);
  }
  return std::string(proto_name);
}

}  // namespace

RunWatchPrinter::RunWatchPrinter(std::ostream& out, RunWatchOptions options)
    : out_(out), options_(std::move(options)) {}

void RunWatchPrinter::Add(const v1::WatchRunResponse& item) {
  if (item.state() != v1::RUN_STATE_UNSPECIFIED) {
    state_ = StateName(item.state());
  }
  if (item.has_metric()) {
    // A repeat of something already taken (a resumed stream) is skipped.
    if (item.metric().seq() > 0 && item.metric().seq() <= metric_seq_) return;
    AddMetric(item.metric());
  } else if (item.has_event()) {
    if (item.event().seq() > 0 && item.event().seq() <= event_seq_) return;
    AddEvent(item.event());
  }
  metric_seq_ = std::max(metric_seq_, item.metric_seq());
  event_seq_ = std::max(event_seq_, item.event_seq());
  if (item.has_metric())
    metric_seq_ = std::max(metric_seq_, item.metric().seq());
  if (item.has_event()) event_seq_ = std::max(event_seq_, item.event().seq());
}

void RunWatchPrinter::AddMetric(const v1::MetricPoint& point) {
  if (IsStepMetric(point.name())) return;
  if (point.step() == 0) zero_based_ = true;
  Key key(point.attempt(), point.step());
  if (point.attempt() > attempt_) {
    // A new attempt starts its own epoch timeline.
    attempt_ = point.attempt();
    epoch_end_ms_.clear();
    epoch_seconds_.clear();
  }
  // Epochs before this one are complete: a worker reports an epoch's
  // metrics before it starts the next.
  FlushBefore(&key);
  pending_[key][point.name()] = point.value();
  pending_wall_ms_[key] = std::max(pending_wall_ms_[key], point.wall_time_ms());
}

void RunWatchPrinter::AddEvent(const v1::RunEvent& event) {
  Flush();
  absl::StatusOr<JsonValue> payload = JsonValue::Parse(event.payload_json());
  auto field = [&](absl::string_view name) -> std::string {
    if (!payload.ok()) return "";
    const JsonValue* v = payload->Find(name);
    if (v == nullptr) return "";
    return v->is_string() ? v->string_value() : v->Dump(0);
  };
  std::string line;
  if (event.kind() == "state") {
    std::string state = StateWord(field("state"));
    std::string worker = field("worker");
    std::string reason = field("reason");
    std::string attempt = field("attempt");
    if (state == "leased") {
      line = absl::StrCat("-- leased by ", worker, " (attempt ", attempt, ")");
    } else if (state == "running") {
      line = absl::StrCat("-- running on ", worker, " (attempt ", attempt, ")");
    } else if (state == "queued") {
      // Attempt 0 is the submission; later ones are requeues and retries.
      line = attempt == "0" || attempt.empty()
                 ? "-- queued"
                 : absl::StrCat("-- queued again", reason.empty() ? "" : ": ",
                                reason);
    } else {
      line = absl::StrCat("-- ", state, reason.empty() ? "" : ": ", reason);
    }
    Style style = Style::kDim;
    if (state == "succeeded") style = Style::kGreen;
    if (state == "failed") style = Style::kRed;
    line = Stylize(line, style, options_.color);
  } else if (event.kind() == "progress" && !field("done").empty() &&
             !field("total").empty()) {
    line = absl::StrCat("progress ", field("done"), "/", field("total"));
  } else if (event.kind() == "step" || event.kind() == "epoch" ||
             event.kind() == "metrics" || event.kind() == "checkpoint") {
    // sweepq-train's numbers arrive as metric points too: they are the
    // epoch rows. Checkpoints are bookkeeping.
    return;
  } else if (event.kind() == "start") {
    const std::string kind = field("kind");
    line = absl::StrCat("-- started",
                        kind.empty() ? "" : absl::StrCat(" ", kind, " job"));
    std::vector<std::string> parts;
    if (!field("model").empty()) parts.push_back(field("model"));
    if (!field("device").empty()) parts.push_back(field("device"));
    if (!field("threads").empty()) {
      parts.push_back(absl::StrCat(field("threads"), " threads"));
    }
    const JsonValue* data = payload.ok() ? payload->Find("data") : nullptr;
    const JsonValue* train = data != nullptr ? data->Find("train") : nullptr;
    const JsonValue* val = data != nullptr ? data->Find("val") : nullptr;
    if (train != nullptr && val != nullptr) {
      parts.push_back(absl::StrCat(train->Dump(0), " train / ", val->Dump(0),
                                   " val images"));
    }
    if (field("start_epoch") != "" && field("start_epoch") != "1") {
      parts.push_back(absl::StrCat("resumed at epoch ", field("start_epoch")));
    }
    if (!parts.empty()) absl::StrAppend(&line, ": ", absl::StrJoin(parts, ", "));
    line = Stylize(line, Style::kDim, options_.color);
  } else if (event.kind() == "artifact") {
    line = Stylize(absl::StrCat("   wrote ", field("name")), Style::kDim,
                   options_.color);
  } else if (event.kind() == "early_stop") {
    line = absl::StrCat("-- early stop after epoch ", field("epoch"), ": best ",
                        field("metric"), " ", field("best_value"),
                        " at epoch ", field("best_epoch"));
  } else if (event.kind() == "summary" && !field("best_epoch").empty()) {
    line = absl::StrCat("-- done: best ", field("metric"), " ",
                        field("best_value"), " at epoch ", field("best_epoch"),
                        " of ", field("epochs"));
  } else if (event.kind() == "bad_samples") {
    line = absl::StrCat("bad images: ", field("count"), " (", field("total"),
                        " in all), skipped");
  } else if (event.kind() == "error") {
    line = Stylize(
        absl::StrCat("error: ", field("message"),
                     field("retryable") == "true" ? " (retryable)" : ""),
        Style::kRed, options_.color);
  } else {
    std::string message = field("message");
    line = absl::StrCat(event.kind(), ": ",
                        message.empty() ? event.payload_json() : message);
  }
  PrintLine(line);
}

void RunWatchPrinter::Flush() { FlushBefore(nullptr); }

void RunWatchPrinter::FlushQuiet() {
  // Only epochs that already hold the ranking metric: a worker may report
  // training metrics well before the validation ones of the same epoch.
  while (!pending_.empty() &&
         pending_.begin()->second.count(options_.metric) > 0) {
    Key key = pending_.begin()->first;
    Key next(key.first, key.second + 1);
    FlushBefore(&next);
  }
}

void RunWatchPrinter::FlushBefore(const Key* limit) {
  while (!pending_.empty()) {
    auto it = pending_.begin();
    if (limit != nullptr && !(it->first < *limit)) break;
    bool late = printed_.count(it->first) > 0;
    PrintEpoch(it->first, it->second, pending_wall_ms_[it->first], late);
    printed_.insert(it->first);
    pending_wall_ms_.erase(it->first);
    pending_.erase(it);
  }
}

void RunWatchPrinter::PrintEpoch(const Key& key,
                                 const std::map<std::string, double>& values,
                                 int64_t wall_ms, bool late) {
  const int64_t step = key.second;
  std::vector<std::string> parts;
  std::set<std::string> shown;
  auto add = [&](const std::string& name, double value) {
    std::string text = name == "epoch_time" ? absl::StrFormat("%.1fs", value)
                                            : FormatMetric(value);
    // epoch_time reads as "time 41.2s": the unit says what it is.
    std::string part =
        absl::StrCat(name == "epoch_time" ? "time" : name, " ", text);
    if (name == options_.metric && std::isfinite(value) && !late) {
      bool better =
          !has_best_ || (options_.minimize ? value < best_ : value > best_);
      if (better) {
        has_best_ = true;
        best_ = value;
        absl::StrAppend(&part, " *");
      }
    }
    parts.push_back(
        Stylize(part, name == options_.metric ? Style::kBold : Style::kNone,
                options_.color));
    shown.insert(name);
  };
  for (const char* name : kEpochMetricOrder) {
    auto it = values.find(name);
    if (it != values.end()) add(it->first, it->second);
  }
  for (const auto& [name, value] : values) {
    if (shown.count(name) == 0) add(name, value);
  }
  if (options_.job) {
    PrintLine(absl::StrCat(late ? "result (late)" : "result", "  ",
                           absl::StrJoin(parts, "  ")));
    return;
  }
  std::string epoch = absl::StrCat(step);
  if (options_.epochs > 0) {
    size_t digits = absl::StrCat(options_.epochs).size();
    epoch = absl::StrFormat("%*d/%d", static_cast<int>(digits), step,
                            options_.epochs);
  }
  std::string line = absl::StrCat("epoch ", epoch, late ? " (late)" : "", "  ",
                                  absl::StrJoin(parts, "  "));
  if (!late) {
    int64_t done = zero_based_ ? step + 1 : step;
    epochs_done_ = std::max(epochs_done_, done);
    epoch_end_ms_.push_back(wall_ms);
    auto t = values.find("epoch_time");
    if (t != values.end() && std::isfinite(t->second) && t->second > 0) {
      epoch_seconds_.push_back(t->second);
    }
    if (!options_.live) {
      int64_t eta = EtaMs();
      if (eta >= 0 && epochs_done_ < options_.epochs) {
        absl::StrAppend(&line, "  eta ", FormatDuration(eta));
      }
    }
  }
  PrintLine(line);
}

int64_t RunWatchPrinter::EtaMs() const {
  if (options_.epochs == 0 || epochs_done_ >= options_.epochs) {
    return options_.epochs == 0 ? -1 : 0;
  }
  // Mean of the last (up to) five epochs: the reported epoch_time when the
  // worker sends it, else the spacing between epoch ends.
  double per_epoch_ms = -1;
  if (!epoch_seconds_.empty()) {
    size_t n = std::min<size_t>(5, epoch_seconds_.size());
    double sum = 0;
    for (size_t i = epoch_seconds_.size() - n; i < epoch_seconds_.size(); ++i) {
      sum += epoch_seconds_[i];
    }
    per_epoch_ms = sum / static_cast<double>(n) * 1000;
  } else if (epoch_end_ms_.size() >= 2) {
    size_t n = std::min<size_t>(5, epoch_end_ms_.size() - 1);
    double span = static_cast<double>(
        epoch_end_ms_.back() - epoch_end_ms_[epoch_end_ms_.size() - 1 - n]);
    per_epoch_ms = span / static_cast<double>(n);
  }
  if (per_epoch_ms < 0) return -1;
  return static_cast<int64_t>(
      per_epoch_ms * static_cast<double>(options_.epochs - epochs_done_));
}

std::string RunWatchPrinter::ProgressText(int64_t now_ms) const {
  std::string text;
  if (options_.epochs > 0) {
    text = absl::StrCat(
        ProgressBar(static_cast<double>(epochs_done_), options_.epochs, 32),
        " ", epochs_done_, "/", options_.epochs, " epochs");
    int64_t eta = EtaMs();
    if (eta >= 0 && !epoch_end_ms_.empty()) {
      // Count down from the end of the newest epoch.
      eta = std::max<int64_t>(0, eta - (now_ms - epoch_end_ms_.back()));
      absl::StrAppend(&text, "  eta ", FormatDuration(eta));
    }
  } else {
    text = absl::StrCat(epochs_done_, " epochs");
  }
  absl::StrAppend(&text, "  ", state_);
  return text;
}

void RunWatchPrinter::Tick(int64_t now_ms) {
  if (!options_.live) return;
  out_ << "\r\x1b[K"
       << Stylize(ProgressText(now_ms), Style::kCyan, options_.color)
       << std::flush;
  live_drawn_ = true;
}

void RunWatchPrinter::ClearLive() {
  if (!live_drawn_) return;
  out_ << "\r\x1b[K";
  live_drawn_ = false;
}

void RunWatchPrinter::PrintLine(const std::string& line) {
  ClearLive();
  out_ << line << "\n" << std::flush;
}

namespace {

// Items of one WatchRun call, read on their own thread so the main loop can
// redraw the progress line while the stream is quiet.
class StreamReader {
 public:
  StreamReader(Connection* connection, const v1::WatchRunRequest& request,
               absl::Duration deadline)
      : context_(connection->NewContext(deadline)),
        reader_(connection->stub()->WatchRun(context_.get(), request)),
        thread_([this] { Loop(); }) {}

  ~StreamReader() {
    context_->TryCancel();
    thread_.join();
  }

  // Waits up to `timeout` for items; moves them into *items. Returns true
  // when the stream has ended and everything was taken (*status set).
  bool Take(absl::Duration timeout, std::vector<v1::WatchRunResponse>* items,
            grpc::Status* status) {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !items_.empty() || done_;
    };
    mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    while (!items_.empty()) {
      items->push_back(std::move(items_.front()));
      items_.pop_front();
    }
    if (done_) *status = status_;
    return done_;
  }

 private:
  void Loop() {
    v1::WatchRunResponse item;
    while (reader_->Read(&item)) {
      absl::MutexLock lock(&mu_);
      items_.push_back(item);
    }
    grpc::Status status = reader_->Finish();
    absl::MutexLock lock(&mu_);
    status_ = status;
    done_ = true;
  }

  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReaderInterface<v1::WatchRunResponse>> reader_;
  absl::Mutex mu_;
  std::deque<v1::WatchRunResponse> items_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// Each stream is re-opened after this long (from the cursors, so nothing
// is lost or repeated): a deadline on every call, and a dead connection is
// noticed even when the network drops silently.
constexpr absl::Duration kStreamDeadline = absl::Seconds(60);
constexpr absl::Duration kMaxBackoff = absl::Seconds(10);

// "run 12 succeeded after 8m12s; best val_f1 0.8123 at epoch 7".
std::string OutcomeSummary(const v1::Run& run, int64_t now_ms) {
  std::string summary =
      absl::StrCat("run ", run.run_id(), " ", StateName(run.state()));
  int64_t duration = RunDurationMs(run, now_ms);
  if (duration >= 0) {
    absl::StrAppend(&summary, " after ", FormatDuration(duration));
  }
  if (run.has_best()) {
    absl::StrAppend(&summary, "; best ", run.metric(), " ",
                    FormatMetric(run.best_value()), " at epoch ",
                    run.best_step());
  }
  if (!run.error().empty()) absl::StrAppend(&summary, ": ", run.error());
  return summary;
}

}  // namespace

absl::Status FollowRun(Session& session, int64_t run_id, std::ostream& out,
                       bool color, bool live, absl::Duration give_up_after) {
  ASSIGN_OR_RETURN(Connection * connection, session.connection());
  v1::GetRunRequest get;
  get.set_run_id(run_id);
  ASSIGN_OR_RETURN(v1::Run run,
                   connection->Call(&v1::TeamService::StubInterface::GetRun,
                                    get, "sweepq runs"));
  RunWatchOptions options;
  options.epochs = run.config().train().epochs();
  options.metric = run.metric().empty() ? "val_f1" : run.metric();
  options.minimize = run.goal() == v1::GOAL_MINIMIZE;
  options.color = color;
  options.live = live;
  options.job = run.config().has_job();
  RunWatchPrinter printer(out, options);
  out << "watching "
      << (options.job ? run.config().job().kind() + " job "
                      : std::string("run "))
      << run_id << " (sweep " << run.sweep_id() << ", "
      << StateName(run.state()) << ")"
      << (options.epochs > 0 ? absl::StrCat(", ", options.epochs, " epochs")
                             : "")
      << "\n";

  absl::Duration backoff = absl::Milliseconds(500);
  absl::Time last_contact = absl::Now();
  while (true) {
    v1::WatchRunRequest request;
    request.set_run_id(run_id);
    request.set_after_metric_seq(printer.metric_seq());
    request.set_after_event_seq(printer.event_seq());
    grpc::Status status;
    {
      StreamReader stream(connection, request, kStreamDeadline);
      bool done = false;
      while (!done) {
        std::vector<v1::WatchRunResponse> items;
        done = stream.Take(absl::Seconds(1), &items, &status);
        if (!items.empty()) {
          last_contact = absl::Now();
          backoff = absl::Milliseconds(500);
        }
        for (const auto& item : items) printer.Add(item);
        // A quiet stream means the epoch in hand is probably complete. A
        // broken one is not flushed: the rest of the epoch may follow the
        // reconnect.
        if (items.empty() && !done) printer.FlushQuiet();
        printer.Tick(session.NowMs());
      }
    }
    if (status.ok() ||
        status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      // The stream ends OK once the run is final; check, then stop or go on.
      auto now = connection->Call(&v1::TeamService::StubInterface::GetRun, get,
                                  "sweepq runs");
      if (now.ok()) {
        last_contact = absl::Now();
        if (IsFinalState(now->state())) {
          printer.Flush();
          printer.ClearLive();
          std::string summary = OutcomeSummary(*now, session.NowMs());
          if (now->state() != v1::RUN_STATE_SUCCEEDED) {
            return WithExitCode(absl::AbortedError(summary), kExitFailed);
          }
          out << Stylize(summary, Style::kGreen, options.color) << "\n";
          return absl::OkStatus();
        }
        continue;
      }
      if (!absl::IsUnavailable(now.status()) &&
          !absl::IsDeadlineExceeded(now.status())) {
        printer.ClearLive();
        return now.status();
      }
      status = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            std::string(now.status().message()));
    }
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE) {
      printer.ClearLive();
      return connection->Convert(status, "sweepq runs", kStreamDeadline);
    }
    if (absl::Now() - last_contact > give_up_after) {
      printer.ClearLive();
      return connection->Convert(status, "sweepq runs", kStreamDeadline);
    }
    printer.ClearLive();
    session.err() << "sweepq: lost the coordinator at "
                  << connection->options().server << "; reconnecting in "
                  << absl::FormatDuration(backoff) << " (UNAVAILABLE)\n";
    session.Sleep(backoff);
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

namespace {

// ---- watch --sweep ----

struct SweepSummary {
  std::map<std::string, int> counts;
  bool all_final = true;
  bool any_unsuccessful = false;
  const v1::Run* best = nullptr;
};

SweepSummary Summarize(const std::vector<v1::Run>& runs) {
  SweepSummary s;
  for (const auto& r : runs) {
    ++s.counts[StateName(r.state())];
    if (!IsFinalState(r.state())) s.all_final = false;
    if (r.state() == v1::RUN_STATE_FAILED ||
        r.state() == v1::RUN_STATE_CANCELLED) {
      s.any_unsuccessful = true;
    }
    if (r.has_best()) {
      bool minimize = r.goal() == v1::GOAL_MINIMIZE;
      if (s.best == nullptr ||
          (minimize ? r.best_value() < s.best->best_value()
                    : r.best_value() > s.best->best_value())) {
        s.best = &r;
      }
    }
  }
  return s;
}

std::string SummaryLine(int64_t sweep_id, const std::vector<v1::Run>& runs,
                        const SweepSummary& s) {
  std::vector<std::string> parts;
  for (const char* state : {"queued", "leased", "running", "succeeded",
                            "failed", "cancelled", "pruned"}) {
    auto it = s.counts.find(state);
    if (it != s.counts.end())
      parts.push_back(absl::StrCat(it->second, " ", state));
  }
  std::string line = absl::StrCat("sweep ", sweep_id, ": ", runs.size(),
                                  " runs, ", absl::StrJoin(parts, ", "));
  if (s.best != nullptr) {
    absl::StrAppend(&line, "; best ", s.best->metric(), " ",
                    FormatMetric(s.best->best_value()), " (run ",
                    s.best->run_id(), ")");
  }
  return line;
}

absl::Status WatchSweep(Session& session, int64_t sweep_id,
                        absl::Duration interval, absl::Duration give_up_after) {
  ASSIGN_OR_RETURN(Connection * connection, session.connection());
  const bool live = session.context().stdout_is_tty;
  size_t drawn_lines = 0;
  std::map<int64_t, v1::RunState> last_state;
  absl::Time last_contact = absl::Now();
  absl::Duration backoff = absl::Milliseconds(500);
  while (true) {
    v1::ListRunsRequest request;
    request.set_sweep_id(sweep_id);
    request.set_limit(10000);
    auto response = connection->Call(&v1::TeamService::StubInterface::ListRuns,
                                     request, "sweepq runs for the sweeps");
    if (!response.ok()) {
      if (!absl::IsUnavailable(response.status()) &&
          !absl::IsDeadlineExceeded(response.status())) {
        return response.status();
      }
      if (absl::Now() - last_contact > give_up_after) return response.status();
      session.err() << "sweepq: lost the coordinator; retrying in "
                    << absl::FormatDuration(backoff) << "\n";
      drawn_lines = 0;
      session.Sleep(backoff);
      backoff = std::min(backoff * 2, kMaxBackoff);
      continue;
    }
    last_contact = absl::Now();
    backoff = absl::Milliseconds(500);
    std::vector<v1::Run> runs(response->runs().begin(), response->runs().end());
    std::sort(runs.begin(), runs.end(), [](const v1::Run& a, const v1::Run& b) {
      return a.index() < b.index();
    });
    SweepSummary summary = Summarize(runs);
    std::string header = SummaryLine(sweep_id, runs, summary);
    if (live) {
      std::string text = absl::StrCat(
          header, "\n",
          RunsTable(runs, session.NowMs()).Render(session.table_options()));
      // Redraw in place: up over the previous frame, clear to the end.
      if (drawn_lines > 0) session.out() << "\x1b[" << drawn_lines << "A\x1b[J";
      session.out() << text << std::flush;
      drawn_lines =
          static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
    } else {
      // Logs get one line per change, not a redrawn table.
      bool changed = false;
      for (const auto& r : runs) {
        auto it = last_state.find(r.run_id());
        if (it != last_state.end() && it->second == r.state()) continue;
        changed = true;
        last_state[r.run_id()] = r.state();
        if (r.state() == v1::RUN_STATE_QUEUED && it == last_state.end()) {
          continue;
        }
        std::string line = absl::StrCat("run ", r.run_id(), " (#", r.index(),
                                        ") ", StateName(r.state()));
        if (!r.worker_id().empty() && !IsFinalState(r.state())) {
          absl::StrAppend(&line, " on ", r.worker_id());
        }
        if (r.has_best() && IsFinalState(r.state())) {
          absl::StrAppend(&line, ", best ", r.metric(), " ",
                          FormatMetric(r.best_value()));
        }
        if (!r.error().empty()) absl::StrAppend(&line, ": ", r.error());
        session.out() << line << "\n";
      }
      if (changed) session.out() << header << "\n" << std::flush;
    }
    if (summary.all_final) {
      if (summary.any_unsuccessful) {
        return WithExitCode(
            absl::AbortedError(absl::StrCat(
                "sweep ", sweep_id,
                " ended with failed or cancelled runs (see sweepq runs "
                "--sweep ",
                sweep_id, ")")),
            kExitFailed);
      }
      return absl::OkStatus();
    }
    session.Sleep(interval);
  }
}

}  // namespace

absl::Status RunWatch(const std::vector<std::string>& args,
                      CliContext& context) {
  ArgParser parser(
      "sweepq watch",
      {"sweepq watch RUN | --sweep S [--interval SECONDS]",
       "Follows a run live: one line per epoch (train_loss, val_loss, "
       "val_acc, val_f1,\nlr, epoch_time; * marks a new best), state changes "
       "and, on a terminal, a progress\nbar with ETA. With --sweep, a compact "
       "table of the sweep's runs, refreshed every\n--interval seconds. "
       "Reconnects with backoff when the coordinator goes away,\nresuming "
       "after the last item shown (nothing is printed twice). Returns when "
       "the\nrun or sweep ends: exit status 0 only if it succeeded (a sweep: "
       "no run failed or\nwas cancelled), else 1.",
       "  sweepq watch 42\n  sweepq watch --sweep 3 && sweepq board --sweep "
       "3\n"});
  CommonOptions common;
  int64_t sweep_id = 0;
  double interval_s = 2, give_up_s = 300;
  parser.AddInt("sweep", &sweep_id, "S", "watch every run of sweep S", 1,
                INT64_MAX);
  parser.AddSeconds("interval", &interval_s,
                    "--sweep: refresh period (default 2)");
  parser.AddSeconds("give-up-after", &give_up_s,
                    "stop reconnecting after this long without the "
                    "coordinator (default 300)");
  AddCommonFlags(&parser, &common);
  std::vector<std::string> positionals;
  RETURN_IF_ERROR(parser.Parse(args, &positionals, 0, 1));
  if (parser.help_requested()) {
    *context.out << parser.HelpText();
    return absl::OkStatus();
  }
  if ((sweep_id > 0) == !positionals.empty()) {
    return parser.Error("give either RUN or --sweep S");
  }
  Session session(context, common);
  if (sweep_id > 0) {
    return WatchSweep(session, sweep_id, absl::Seconds(interval_s),
                      absl::Seconds(give_up_s));
  }
  int64_t run_id = 0;
  if (!absl::SimpleAtoi(positionals[0], &run_id) || run_id <= 0) {
    return parser.Error(absl::StrCat(
        "RUN must be a run id (a positive number, as listed by sweepq runs), "
        "got '",
        positionals[0], "'"));
  }
  return FollowRun(session, run_id, session.out(), session.color(),
                   session.context().stdout_is_tty, absl::Seconds(give_up_s));
}

}  // namespace sweepq::client
