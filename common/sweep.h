// Sweep files: a base RunConfig plus swept parameters, in the shape of W&B
// sweeps (see docs/sweeps.md), expanded into one validated RunConfig per run.
// Thread-safe: no shared state.
//
//   name: radam-vs-adamw
//   method: grid                 # grid | random
//   metric: {name: val_f1, goal: maximize}
//   run_cap: 20                  # random: number of runs; grid: first N
//   seed: 7                      # random draws repeat for the same seed
//   max_attempts: 3
//   config: {data: {dataset: mask}, model: {name: small_cnn},
//            train: {epochs: 10}}
//   parameters:
//     optimizer.name: {values: [radam, adamw]}
//     optimizer.lr: {distribution: log_uniform, min: 1.0e-4, max: 1.0e-2}
#ifndef SWEEPQ_COMMON_SWEEP_H_
#define SWEEPQ_COMMON_SWEEP_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "sweepq/v1/coordinator.pb.h"
#include "sweepq/v1/run_config.pb.h"

namespace sweepq {

// Bounds the coordinator puts on one sweep file.
struct SweepLimits {
  // Most runs one sweep may expand into; checked before any run is built.
  uint64_t max_runs = 10000;
};

// One run of an expanded sweep.
struct ExpandedRun {
  // The base `config` with this run's parameter values set; validated.
  v1::RunConfig config;
  // Every entry of the file's `parameters` (value, values or distribution)
  // and what this run got: dotted path -> JSON text of the value, e.g.
  // "optimizer.name" -> "\"radam\"", "optimizer.lr" -> "0.001". Keys of the
  // base `config` are not listed.
  std::map<std::string, std::string> params;
};

// A sweep file, expanded.
struct ExpandedSweep {
  // The file's `name`; "" when absent.
  std::string name;
  // "grid" or "random".
  std::string method;
  // Metric the sweep optimises (default "val_f1") and its goal (default
  // GOAL_MAXIMIZE).
  std::string metric;
  v1::Goal goal = v1::GOAL_MAXIMIZE;
  // Attempts each run gets before it stays FAILED (default 3, 1..20).
  uint32_t max_attempts = 3;
  // Grid: the cartesian product of the parameters in file order, the last
  // parameter varying fastest, cut to run_cap. Random: run_cap draws.
  std::vector<ExpandedRun> runs;
};

// Checks a sweep file's keys and parameters and returns how many runs it
// expands into: the grid size (product of the `values` counts, saturating at
// UINT64_MAX) cut to run_cap, or run_cap for random. Builds no run and applies
// no SweepLimits (for a CLI dry run). Errors as ExpandSweepYaml's.
absl::StatusOr<uint64_t> CountSweepRuns(absl::string_view yaml_text,
                                        absl::string_view source);

// Parses, expands and validates a sweep file. The run count is computed
// first and refused above limits.max_runs (the message gives the size, the
// cap and each parameter's count) before anything is built. Random draws
// come from a std::mt19937_64 seeded with `seed` (default 0), so the same
// file gives the same runs. Returns INVALID_ARGUMENT prefixed with `source`
// and naming the key, parameter or run at fault:
//   sweep.yaml: unknown top-level key "program" (expected one of ...)
//   sweep.yaml: config.optimizer.lrr: unknown field "lrr" in
//     sweepq.v1.OptimizerConfig
//   sweep.yaml: parameters.optimizer.lr: min 0.1 is greater than max 0.01
//   sweep.yaml: parameters.optimizer.lr: expected a number, got "fast"
//     (run 1: optimizer.lr="fast")
//   sweep.yaml: run 2 {optimizer.name="radamm"}: optimizer.name: "radamm"
//     is not one of sgd, adam, adamw, radam
absl::StatusOr<ExpandedSweep> ExpandSweepYaml(absl::string_view yaml_text,
                                              absl::string_view source,
                                              const SweepLimits& limits = {});

}  // namespace sweepq

#endif  // SWEEPQ_COMMON_SWEEP_H_
