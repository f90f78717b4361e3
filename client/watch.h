// `sweepq watch`: the live view of a run (per-epoch lines and a progress
// bar with ETA, from the WatchRun stream) or of a sweep (a compact table
// refreshed by polling ListRuns).
//
// RunWatchPrinter turns stream items into lines and is separate from the
// network loop so that tests can feed it items directly, including the
// repeats and gaps a reconnect could cause.
#ifndef SWEEPQ_CLIENT_WATCH_H_
#define SWEEPQ_CLIENT_WATCH_H_

#include <cstdint>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "sweepq/v1/coordinator.pb.h"

namespace sweepq::client {

// Metric names shown first on an epoch line, in this order; other metric
// names follow alphabetically. Names starting with "step_" or "batch_" are
// per-step values, not per-epoch ones, and are not shown.
inline constexpr const char* kEpochMetricOrder[] = {
    "train_loss", "val_loss", "val_acc", "val_f1", "lr", "epoch_time"};

struct RunWatchOptions {
  // train.epochs of the run's config; 0 when unknown (no bar, no ETA).
  uint32_t epochs = 0;
  // The metric the sweep optimises and whether lower is better; an epoch
  // that improves on the best so far is marked with "*".
  std::string metric = "val_f1";
  bool minimize = false;
  bool color = false;
  // Draw a live progress line (a TTY); else progress goes on epoch lines.
  bool live = false;
  // A job (RunConfig.job): its metrics (one step) are shown on a "result"
  // line instead of an epoch line.
  bool job = false;
};

// Prints the items of one run's stream. Metric points are grouped by
// (attempt, step) into one line per epoch; a group is printed when a later
// step or an event arrives, or on Flush(). Each item is accepted at most
// once by its sequence number, so a resumed stream never prints an epoch or
// an event twice. Not thread-safe.
class RunWatchPrinter {
 public:
  RunWatchPrinter(std::ostream& out, RunWatchOptions options);

  // Takes one stream item (a metric point or an event).
  void Add(const sweepq::v1::WatchRunResponse& item);
  // Prints every buffered epoch (the stream ended).
  void Flush();
  // Prints the buffered epochs that already have the ranking metric (the
  // stream went quiet; the others may still be waiting for validation).
  void FlushQuiet();
  // Redraws the live progress line for time `now_ms` (live mode only).
  void Tick(int64_t now_ms);
  // Erases the live progress line, if one is drawn.
  void ClearLive();

  // Cursors to resume the stream from.
  int64_t metric_seq() const { return metric_seq_; }
  int64_t event_seq() const { return event_seq_; }
  // Epochs completed so far (highest epoch printed).
  int64_t epochs_done() const { return epochs_done_; }

  // Estimated milliseconds until the last epoch ends, measured from the
  // end of the newest epoch; -1 when unknown.
  int64_t EtaMs() const;

 private:
  using Key = std::pair<uint32_t, int64_t>;  // (attempt, step)

  void AddMetric(const sweepq::v1::MetricPoint& point);
  void AddEvent(const sweepq::v1::RunEvent& event);
  // Prints buffered epochs with a key below `limit` (all when nullptr).
  void FlushBefore(const Key* limit);
  void PrintEpoch(const Key& key, const std::map<std::string, double>& values,
                  int64_t wall_ms, bool late);
  void PrintLine(const std::string& line);
  std::string ProgressText(int64_t now_ms) const;

  std::ostream& out_;
  RunWatchOptions options_;
  int64_t metric_seq_ = 0;
  int64_t event_seq_ = 0;
  uint32_t attempt_ = 0;
  // Buffered points of epochs not printed yet, and their newest wall time.
  std::map<Key, std::map<std::string, double>> pending_;
  std::map<Key, int64_t> pending_wall_ms_;
  std::set<Key> printed_;
  bool has_best_ = false;
  double best_ = 0;
  bool zero_based_ = false;
  int64_t epochs_done_ = 0;
  // End time of each printed epoch of the current attempt, and the
  // epoch_time metric (s) when reported.
  std::vector<int64_t> epoch_end_ms_;
  std::vector<double> epoch_seconds_;
  bool live_drawn_ = false;
  std::string state_ = "queued";
};

class Session;

// Follows run `run_id` as `sweepq watch RUN` does until it is final,
// writing to `out` (colour and a live progress line only if asked), and
// reconnecting for up to `give_up_after` without the coordinator. Returns
// OK when the run SUCCEEDED; ABORTED (exit 1) with the outcome and the
// run's error otherwise; the connection's errors as they come.
absl::Status FollowRun(Session& session, int64_t run_id, std::ostream& out,
                       bool color, bool live, absl::Duration give_up_after);

}  // namespace sweepq::client

#endif  // SWEEPQ_CLIENT_WATCH_H_
