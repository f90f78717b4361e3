// Child events: one line of sweepq-train's stdout (docs/train-events.md)
// turned into what the coordinator stores — a RunEvent carrying the line,
// metric points (epoch metrics at step = epoch, `step_loss` at step =
// global step) — plus the fields the daemon acts on (checkpoints to upload,
// artifacts, the last error's retryable flag).
//
// Thread safety: free functions without shared state.
#ifndef SWEEPQ_WORKER_DAEMON_EVENTS_H_
#define SWEEPQ_WORKER_DAEMON_EVENTS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "sweepq/v1/coordinator.pb.h"

namespace sweepq::worker {

// Longest payload a RunEvent may carry (the coordinator's limit).
inline constexpr size_t kMaxEventPayloadBytes = 64 << 10;
// Event kind used for a stdout line that is not a JSON object.
inline constexpr char kInvalidOutputKind[] = "invalid_output";

struct ChildEvent {
  // The `event` field ("epoch", "step", ...), or kInvalidOutputKind.
  std::string kind;
  // Kept as a run event: kind, the line as payload (or a stub naming the
  // kind and size when the line exceeds kMaxEventPayloadBytes), time.
  sweepq::v1::RunEvent event;
  std::vector<sweepq::v1::MetricPoint> points;

  // `checkpoint` events.
  struct Checkpoint {
    int64_t epoch = 0;
    std::string kind;  // "last" / "best"
    std::string path;
  };
  std::optional<Checkpoint> checkpoint;
  // `artifact` events.
  struct Artifact {
    std::string name;
    std::string path;
  };
  std::optional<Artifact> artifact;
  // `error` events.
  struct Error {
    std::string message;
    bool retryable = true;
  };
  std::optional<Error> error;
  // `start` events: the first epoch this process trains.
  std::optional<int64_t> start_epoch;
};

// Parses one line (without its newline). Never fails: a line that is not a
// JSON object with a string `event` becomes an event of kind
// kInvalidOutputKind whose payload quotes (the first 4 KiB of) the line.
// `time_ms` falls back to `now_ms`. Metric values may be JSON numbers, null
// (NaN) or the strings "NaN", "Infinity", "-Infinity"; other values are
// skipped.
ChildEvent ParseChildLine(absl::string_view line, int64_t now_ms);

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_DAEMON_EVENTS_H_
