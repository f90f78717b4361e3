// `sweepq plot`: learning curves of one or more runs, and a run's confusion
// matrix with its per-class F1, as PNG pictures drawn with common/plot/ (no
// OpenCV in the CLI). The data is the run's WatchRun stream: metric points
// (one per metric and epoch) and the `epoch` events the training program
// emits (docs/train-events.md), whose payload carries `confusion` and
// `per_class_f1`.
//
// The functions below turn streamed data into charts and are pure, so tests
// feed them directly; RunPlot() (commands.h) adds the network and the file.
// Thread-safe (no shared state).
#ifndef SWEEPQ_CLIENT_PLOT_H_
#define SWEEPQ_CLIENT_PLOT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/plot/heat_map.h"
#include "common/plot/line_chart.h"
#include "sweepq/v1/coordinator.pb.h"

namespace sweepq::client {

// Metrics `sweepq plot` draws when --metrics is not given (those of them
// that the runs have), in this order.
inline constexpr const char* kDefaultPlotMetrics[] = {"val_f1", "train_loss",
                                                      "val_loss"};

// Everything the coordinator streamed about one run.
struct RunHistory {
  sweepq::v1::Run run;
  // Metric name -> step (epoch) -> point. When several attempts reported a
  // step (a requeued run resumed from a checkpoint), the newest attempt's
  // point is kept.
  std::map<std::string, std::map<int64_t, sweepq::v1::MetricPoint>> metrics;
  // The run's events of kind "epoch" and "start", in stream order.
  std::vector<sweepq::v1::RunEvent> events;
};

// Adds one WatchRun item (a metric point or an event) to `history`.
void AddToHistory(const sweepq::v1::WatchRunResponse& item,
                  RunHistory* history);

// Per-epoch metric names of `runs` (not step_/batch_ ones), sorted.
std::vector<std::string> EpochMetricNames(const std::vector<RunHistory>& runs);

// The metrics to draw: the comma-separated names in `requested`, or when it
// is empty those of kDefaultPlotMetrics that any run has, else every
// per-epoch metric. INVALID_ARGUMENT naming a requested metric that no run
// has (listing the ones they have), or when no run has any metric.
absl::StatusOr<std::vector<std::string>> ChooseMetrics(
    const std::vector<RunHistory>& runs, absl::string_view requested);

// Legend labels, one per run: "run 12 (lr=0.003)" with the swept
// parameters that differ between the runs, or all of a lone run's swept
// parameters; keys shortened to their last dotted segment (two or more
// for keys that would share it); each label cut to 72 characters.
std::vector<std::string> RunLabels(const std::vector<sweepq::v1::Run>& runs);

// The learning-curve chart: a panel per metric (x: epoch, or the global
// step for step_/batch_ metrics; y: the metric), a line per run that has
// points for it, titled with the run ids.
plot::LineChart CurvesChart(const std::vector<RunHistory>& runs,
                            const std::vector<std::string>& metrics);

// One epoch's validation confusion matrix, from an `epoch` event.
struct EpochConfusion {
  uint32_t attempt = 0;
  int64_t epoch = 0;
  // counts[true class][predicted class]; square.
  std::vector<std::vector<double>> counts;
  // One per class, or empty when the event had none.
  std::vector<double> per_class_f1;
  // The event's `metrics` object (val_f1, val_acc, ...).
  std::map<std::string, double> metrics;
};

// Reads an `epoch` event's payload. Returns std::nullopt when it has no
// `confusion` (e.g. data.split: full), INVALID_ARGUMENT naming the field
// when the JSON is malformed, `confusion` is not a square matrix of
// numbers, or `per_class_f1` has the wrong length.
absl::StatusOr<std::optional<EpochConfusion>> ParseEpochEvent(
    const sweepq::v1::RunEvent& event);

// The confusion matrix to draw: epoch `epoch` when > 0 (NOT_FOUND if the
// run has no matrix for it), else the run's best epoch when it has a
// matrix, else its last one. FAILED_PRECONDITION when the run has no
// matrix at all; INVALID_ARGUMENT (naming run and epoch) for a malformed
// event. Among attempts, the newest one's event for an epoch wins.
absl::StatusOr<EpochConfusion> SelectConfusion(const RunHistory& history,
                                               int64_t epoch);

// The mask task's 18 class names for age band bounds `bounds` (e.g. 30, 60
// -> "<30", "30-59", ">=60"): mask state (wear, incorrect, normal) x gender
// (male, female) x age band, class = mask * 6 + gender * 3 + band. The
// names match the training program's (worker/pipeline/dataset.h).
std::vector<std::string> MaskTaskClassNames(const std::vector<int>& bounds);

// Names for `n` classes: those of the run's `start` event (data.classes)
// when it lists n of them; else, for 18 classes, MaskTaskClassNames of the
// run's data.age_bounds (30, 60 when unset); else "0", "1", ....
std::vector<std::string> ClassNames(const RunHistory& history, size_t n);

// The confusion heat map (coloured by the share of each true class, counts
// written in the cells) with the per-class F1 bars beside it.
plot::HeatMap ConfusionChart(const RunHistory& history,
                             const EpochConfusion& confusion);

// The file `sweepq plot` writes when -o is not given:
// run-12-curves.png, runs-12-13-curves.png, run-12-confusion.png.
std::string DefaultPlotPath(const std::vector<int64_t>& run_ids,
                            bool confusion);

}  // namespace sweepq::client

#endif  // SWEEPQ_CLIENT_PLOT_H_
