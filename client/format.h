// Formatting of values for people (tables, progress lines) and for the
// stable JSON fields of docs/cli.md. Pure functions; thread-safe.
#ifndef SWEEPQ_CLIENT_FORMAT_H_
#define SWEEPQ_CLIENT_FORMAT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "client/table.h"
#include "sweepq/v1/coordinator.pb.h"

namespace sweepq::client {

// "queued", "leased", "running", "succeeded", "failed", "cancelled",
// "pruned" ("unknown" for UNSPECIFIED). These are the JSON values too.
std::string StateName(sweepq::v1::RunState state);

// Parses a state name as written above (case-insensitive; RUN_STATE_ prefix
// allowed). Returns nullopt for anything else.
std::optional<sweepq::v1::RunState> ParseStateName(absl::string_view name);

// True for SUCCEEDED, FAILED, CANCELLED and PRUNED.
bool IsFinalState(sweepq::v1::RunState state);

// Colour of a state in tables: green succeeded, red failed, yellow
// leased/running, dim otherwise.
Style StateStyle(sweepq::v1::RunState state);

// "maximize" or "minimize" (UNSPECIFIED reads as maximize).
std::string GoalName(sweepq::v1::Goal goal);

// "active", "draining", "quarantined".
std::string WorkerStateName(sweepq::v1::WorkerState state);

// A duration for people: "0s", "42s", "3m12s", "1h04m", "2d03h".
std::string FormatDuration(int64_t ms);

// How long ago `then_ms` was at `now_ms`: "12s ago", "5m ago", "-" for 0.
std::string FormatAgo(int64_t then_ms, int64_t now_ms);

// UTC time as "2024-05-01 12:03:04Z"; "-" for 0.
std::string FormatTime(int64_t ms);

// Bytes for people: "512 B", "1.5 KiB", "23.4 MiB", "1.02 GiB".
std::string FormatBytes(int64_t bytes);

// A metric value: 4 decimals below 1000 ("0.8123"), fewer for larger
// magnitudes, "nan"/"inf"/"-inf" for non-finite values.
std::string FormatMetric(double value);

// Full precision for CSV: shortest text that reads back exactly.
std::string FormatMetricRaw(double value);

// Duration of a run: finished - started, now - started while it runs, or
// -1 if it never started.
int64_t RunDurationMs(const sweepq::v1::Run& run, int64_t now_ms);

// The keys of `params` (dotted path -> JSON text) whose value is not the
// same in every map (a key missing from some maps varies), sorted.
std::vector<std::string> VaryingParams(
    const std::vector<const std::map<std::string, std::string>*>& params);

// Short column titles for dotted parameter paths: the last two segments
// ("optimizer.lr", "cutmix.mode"), more when two paths would collide.
// Returns one title per path, in order.
std::vector<std::string> ParamTitles(const std::vector<std::string>& paths);

// A params map copied out of a protobuf map field.
std::map<std::string, std::string> ParamsOf(const sweepq::v1::Run& run);

// A progress bar "[#######.......]" `width` characters wide (brackets
// included) for `done` of `total`.
std::string ProgressBar(double done, double total, size_t width);

// Levenshtein distance, for "did you mean" suggestions.
size_t EditDistance(absl::string_view a, absl::string_view b);

}  // namespace sweepq::client

#endif  // SWEEPQ_CLIENT_FORMAT_H_
