// The JSON-lines event stream of sweepq-train (docs/train-events.md): a small
// JSON object builder, the sinks the lines go to (stdout for the program, a
// memory buffer for tests) and TrainEventWriter, which writes each kind of
// event with its documented fields and the time. No LibTorch here.
#ifndef SWEEPQ_WORKER_PIPELINE_TRAIN_EVENTS_H_
#define SWEEPQ_WORKER_PIPELINE_TRAIN_EVENTS_H_

#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace sweepq::worker {

// Returns `value` as a JSON number: the shortest text that reads back as the
// same double; `null` for NaN and infinities (JSON has no such numbers).
std::string JsonNumber(double value);

// Builds one JSON object, keys in insertion order. Keys are quoted by the
// builder; values are typed. Not thread-safe.
class JsonObject {
 public:
  JsonObject& Add(absl::string_view key, absl::string_view value);
  JsonObject& Add(absl::string_view key, const char* value);
  JsonObject& Add(absl::string_view key, const std::string& value);
  JsonObject& Add(absl::string_view key, double value);
  JsonObject& Add(absl::string_view key, int64_t value);
  JsonObject& Add(absl::string_view key, int value);
  JsonObject& Add(absl::string_view key, bool value);
  // Adds `json`, which must already be valid JSON text, unchanged.
  JsonObject& AddRaw(absl::string_view key, absl::string_view json);
  JsonObject& Add(absl::string_view key, const JsonObject& value);
  // Adds `null`.
  JsonObject& AddNull(absl::string_view key);

  // Returns the object's text ("{...}").
  std::string ToString() const;

 private:
  void Key(absl::string_view key);
  std::string body_;
};

// Returns a JSON array of numbers (JsonNumber each).
std::string JsonArray(const std::vector<double>& values);
// Returns a JSON array of integers.
std::string JsonArray(const std::vector<int64_t>& values);
// Returns a JSON array of arrays of integers.
std::string JsonArray(const std::vector<std::vector<int64_t>>& rows);
// Returns a JSON array of strings.
std::string JsonArray(const std::vector<std::string>& values);

// Where event lines go. Implementations are thread-safe.
class EventSink {
 public:
  virtual ~EventSink() = default;
  // Writes `line` (one JSON object, no newline) followed by a newline and
  // makes it visible to the reader at once (flushes).
  virtual void Write(absl::string_view line) = 0;
};

// Writes lines to a stdio stream (stdout for sweepq-train), flushing after
// each. Write errors (a closed pipe) are ignored: the events are a report,
// and the run's files and exit status still tell the outcome.
class FileEventSink : public EventSink {
 public:
  // `file` is not owned and must outlive the sink.
  explicit FileEventSink(std::FILE* file) : file_(file) {}
  void Write(absl::string_view line) override;

 private:
  absl::Mutex mu_;
  std::FILE* const file_ ABSL_GUARDED_BY(mu_);
};

// Keeps the lines in memory (tests).
class MemoryEventSink : public EventSink {
 public:
  void Write(absl::string_view line) override;
  // Returns the lines written so far.
  std::vector<std::string> lines() const;

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

// An image the loader skipped, as the bad_samples event names it.
struct BadSampleExample {
  std::string path;
  std::string cause;
};

// Writes the events of docs/train-events.md to a sink. Every event gets
// "event" and "time_ms" first. Thread-compatible (one trainer thread).
class TrainEventWriter {
 public:
  // `sink` is not owned and must outlive the writer. `clock_ms` returns the
  // Unix time in milliseconds; the default reads the system clock.
  explicit TrainEventWriter(EventSink* sink,
                            std::function<int64_t()> clock_ms = nullptr);

  // Writes `fields` (without event / time_ms) as an event of kind `kind`.
  void Emit(absl::string_view kind, const JsonObject& fields);

  // The documented kinds. `config_json` is the resolved config as JSON text.
  struct StartInfo {
    std::string config_json;
    std::string fingerprint;
    int64_t train_samples = 0;
    int64_t val_samples = 0;
    std::vector<std::string> classes;
    int start_epoch = 1;
    std::string device;
    int threads = 0;
    // Additive fields: the model's description and whether mixed precision
    // and channels-last are in effect.
    std::string model;
    bool amp = false;
    bool channels_last = false;
  };
  void Start(const StartInfo& info);
  // `loss` is the step's own loss; `mean_loss` the mean over the steps since
  // the previous step event (additive field).
  void Step(int epoch, int64_t step, double loss, double mean_loss, double lr);
  // `metrics` in the given order; `per_class_f1` and `confusion` are left
  // out when empty (data.split full).
  void Epoch(int epoch, int64_t step,
             const std::vector<std::pair<std::string, double>>& metrics,
             const std::vector<double>& per_class_f1,
             const std::vector<std::vector<int64_t>>& confusion);
  void Checkpoint(int epoch, absl::string_view kind, absl::string_view path);
  void BadSamples(int64_t count, int64_t total,
                  const std::vector<BadSampleExample>& examples);
  void EarlyStop(int epoch, int best_epoch, absl::string_view metric,
                 double best_value);
  void Artifact(absl::string_view name, absl::string_view path);
  // `best_value` std::nullopt (written as null) when the watched metric was
  // never measured (data.split full with a validation metric).
  void Summary(int best_epoch, absl::string_view metric,
               std::optional<double> best_value, int epochs,
               bool stopped_early);
  // `epoch` / `step` are written when known (> 0).
  void Error(absl::string_view message, bool retryable, int epoch,
             int64_t step);

 private:
  EventSink* const sink_;
  std::function<int64_t()> clock_ms_;
};

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_PIPELINE_TRAIN_EVENTS_H_
