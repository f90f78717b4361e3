#include "worker/pipeline/train_events.h"

#include <charconv>
#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/json_quote.h"

namespace sweepq::worker {
namespace {

// The bad_samples event names at most this many images.
constexpr size_t kMaxBadExamples = 10;

int64_t SystemClockMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

template <typename T, typename F>
std::string JoinArray(const std::vector<T>& values, F format) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ",";
    out += format(values[i]);
  }
  out += "]";
  return out;
}

}  // namespace

std::string JsonNumber(double value) {
  if (!std::isfinite(value)) return "null";
  char buffer[64];
  // Shortest round-trip form (C++17 <charconv>).
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

void JsonObject::Key(absl::string_view key) {
  if (!body_.empty()) body_ += ",";
  body_ += JsonQuote(key);
  body_ += ":";
}

JsonObject& JsonObject::Add(absl::string_view key, absl::string_view value) {
  Key(key);
  body_ += JsonQuote(value);
  return *this;
}

JsonObject& JsonObject::Add(absl::string_view key, const char* value) {
  return Add(key, absl::string_view(value));
}

JsonObject& JsonObject::Add(absl::string_view key, const std::string& value) {
  return Add(key, absl::string_view(value));
}

JsonObject& JsonObject::Add(absl::string_view key, double value) {
  Key(key);
  body_ += JsonNumber(value);
  return *this;
}

JsonObject& JsonObject::Add(absl::string_view key, int64_t value) {
  Key(key);
  absl::StrAppend(&body_, value);
  return *this;
}

JsonObject& JsonObject::Add(absl::string_view key, int value) {
  return Add(key, static_cast<int64_t>(value));
}

JsonObject& JsonObject::Add(absl::string_view key, bool value) {
  Key(key);
  body_ += value ? "true" : "false";
  return *this;
}

JsonObject& JsonObject::AddRaw(absl::string_view key, absl::string_view json) {
  Key(key);
  body_.append(json.data(), json.size());
  return *this;
}

JsonObject& JsonObject::Add(absl::string_view key, const JsonObject& value) {
  return AddRaw(key, value.ToString());
}

JsonObject& JsonObject::AddNull(absl::string_view key) {
  return AddRaw(key, "null");
}

std::string JsonObject::ToString() const { return absl::StrCat("{", body_, "}"); }

std::string JsonArray(const std::vector<double>& values) {
  return JoinArray(values, [](double v) { return JsonNumber(v); });
}

std::string JsonArray(const std::vector<int64_t>& values) {
  return JoinArray(values, [](int64_t v) { return absl::StrCat(v); });
}

std::string JsonArray(const std::vector<std::vector<int64_t>>& rows) {
  return JoinArray(rows,
                   [](const std::vector<int64_t>& r) { return JsonArray(r); });
}

std::string JsonArray(const std::vector<std::string>& values) {
  return JoinArray(values, [](const std::string& v) { return JsonQuote(v); });
}

void FileEventSink::Write(absl::string_view line) {
  absl::MutexLock lock(&mu_);
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fputc('\n', file_);
  std::fflush(file_);
}

void MemoryEventSink::Write(absl::string_view line) {
  absl::MutexLock lock(&mu_);
  lines_.emplace_back(line);
}

std::vector<std::string> MemoryEventSink::lines() const {
  absl::MutexLock lock(&mu_);
  return lines_;
}

TrainEventWriter::TrainEventWriter(EventSink* sink,
                                   std::function<int64_t()> clock_ms)
    : sink_(sink),
      clock_ms_(clock_ms != nullptr ? std::move(clock_ms) : SystemClockMs) {}

void TrainEventWriter::Emit(absl::string_view kind, const JsonObject& fields) {
  std::string body = fields.ToString();
  std::string line =
      JsonObject().Add("event", kind).Add("time_ms", clock_ms_()).ToString();
  if (body.size() > 2) {  // fields is not "{}"
    line.pop_back();
    line += ",";
    line.append(body, 1, std::string::npos);
  }
  sink_->Write(line);
}

void TrainEventWriter::Start(const StartInfo& info) {
  JsonObject data;
  data.Add("fingerprint", info.fingerprint)
      .Add("train", info.train_samples)
      .Add("val", info.val_samples)
      .AddRaw("classes", JsonArray(info.classes));
  Emit("start", JsonObject()
                    .AddRaw("config", info.config_json)
                    .Add("data", data)
                    .Add("start_epoch", info.start_epoch)
                    .Add("device", info.device)
                    .Add("threads", info.threads)
                    .Add("model", info.model)
                    .Add("amp", info.amp)
                    .Add("channels_last", info.channels_last));
}

void TrainEventWriter::Step(int epoch, int64_t step, double loss,
                            double mean_loss, double lr) {
  Emit("step", JsonObject()
                   .Add("epoch", epoch)
                   .Add("step", step)
                   .Add("loss", loss)
                   .Add("lr", lr)
                   .Add("mean_loss", mean_loss));
}

void TrainEventWriter::Epoch(
    int epoch, int64_t step,
    const std::vector<std::pair<std::string, double>>& metrics,
    const std::vector<double>& per_class_f1,
    const std::vector<std::vector<int64_t>>& confusion) {
  JsonObject values;
  for (const auto& [name, value] : metrics) values.Add(name, value);
  JsonObject fields;
  fields.Add("epoch", epoch).Add("step", step).Add("metrics", values);
  if (!per_class_f1.empty()) fields.AddRaw("per_class_f1", JsonArray(per_class_f1));
  if (!confusion.empty()) fields.AddRaw("confusion", JsonArray(confusion));
  Emit("epoch", fields);
}

void TrainEventWriter::Checkpoint(int epoch, absl::string_view kind,
                                  absl::string_view path) {
  Emit("checkpoint",
       JsonObject().Add("epoch", epoch).Add("kind", kind).Add("path", path));
}

void TrainEventWriter::BadSamples(
    int64_t count, int64_t total,
    const std::vector<BadSampleExample>& examples) {
  std::string list = "[";
  for (size_t i = 0; i < examples.size() && i < kMaxBadExamples; ++i) {
    if (i > 0) list += ",";
    list += JsonObject()
                .Add("path", examples[i].path)
                .Add("cause", examples[i].cause)
                .ToString();
  }
  list += "]";
  Emit("bad_samples", JsonObject()
                          .Add("count", count)
                          .Add("total", total)
                          .AddRaw("examples", list));
}

void TrainEventWriter::EarlyStop(int epoch, int best_epoch,
                                 absl::string_view metric, double best_value) {
  Emit("early_stop", JsonObject()
                         .Add("epoch", epoch)
                         .Add("best_epoch", best_epoch)
                         .Add("metric", metric)
                         .Add("best_value", best_value));
}

void TrainEventWriter::Artifact(absl::string_view name,
                                absl::string_view path) {
  Emit("artifact", JsonObject().Add("name", name).Add("path", path));
}

void TrainEventWriter::Summary(int best_epoch, absl::string_view metric,
                               std::optional<double> best_value, int epochs,
                               bool stopped_early) {
  JsonObject fields;
  fields.Add("best_epoch", best_epoch).Add("metric", metric);
  if (best_value.has_value()) {
    fields.Add("best_value", *best_value);
  } else {
    fields.AddNull("best_value");
  }
  fields.Add("epochs", epochs).Add("stopped_early", stopped_early);
  Emit("summary", fields);
}

void TrainEventWriter::Error(absl::string_view message, bool retryable,
                             int epoch, int64_t step) {
  JsonObject fields;
  fields.Add("message", message).Add("retryable", retryable);
  if (epoch > 0) fields.Add("epoch", epoch);
  if (step > 0) fields.Add("step", step);
  Emit("error", fields);
}

}  // namespace sweepq::worker
