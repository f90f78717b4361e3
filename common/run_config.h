// RunConfig from YAML: yaml-cpp parses the text, YamlToJson turns the tree
// into JSON, protobuf's JSON mapping fills the message (so an unknown or
// mistyped key is rejected with its path) and ValidateRunConfig checks the
// choice words and ranges the schema cannot express. Every function here is
// thread-safe (no shared state).
#ifndef SWEEPQ_COMMON_RUN_CONFIG_H_
#define SWEEPQ_COMMON_RUN_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/json_quote.h"
#include "sweepq/v1/run_config.pb.h"
#include "yaml-cpp/yaml.h"

namespace sweepq {

// Parses `text` as one YAML document; an empty text gives a Null node.
// Returns INVALID_ARGUMENT "<source>: YAML syntax error at line L, column C:
// <reason>" (1-based) when yaml-cpp rejects the text, and an error when the
// text holds more than one document.
absl::StatusOr<YAML::Node> ParseYamlDocument(absl::string_view text,
                                             absl::string_view source);

// Converts a YAML tree into JSON text (compact, keys in document order).
//
// Scalars follow the YAML 1.2 core schema: a plain (unquoted) scalar that
// reads as an integer, float, bool or null becomes a JSON number, bool or
// null; anything quoted or tagged `!!str` stays a string. Numbers keep the
// digits written in the file (no float reformatting); forms JSON lacks are
// rewritten losslessly (`+1` -> `1`, `.5` -> `0.5`, `007` -> `7`,
// `0x1f` -> `31`); `.inf` / `-.inf` / `.nan` become the strings "Infinity" /
// "-Infinity" / "NaN", which protobuf's JSON mapping reads as doubles.
//
// `path` is the dotted location of `node` ("" for a document root), used in
// messages. Returns INVALID_ARGUMENT naming the path (and line and column
// when known) for: a non-scalar or duplicate mapping key, an unsupported tag
// (`!foo`), a `!!int`/`!!float`/`!!bool`/`!!null` scalar that is not one,
// an undefined node, nesting deeper than 64 levels (or a cyclic alias) and
// more than 100000 nodes or 16 MiB of output (alias bombs).
absl::StatusOr<std::string> YamlToJson(const YAML::Node& node,
                                       absl::string_view path);

// Where and why a JSON document did not map onto a RunConfig.
struct RunConfigJsonError {
  // Dotted key path of the offending key, with list indexes
  // ("optimizer.lr", "tta.transforms[1]"); empty when the document as a
  // whole is wrong (JSON syntax, not an object).
  std::string path;
  // What is wrong there, e.g. `unknown field "lrr" in
  // sweepq.v1.OptimizerConfig` or `expected a number, got "fast"`.
  std::string detail;
};

// Maps `json` onto *out (cleared first) with protobuf's JSON mapping;
// unknown fields are errors. Returns std::nullopt on success, else the
// failing key path and a reshaped reason (protobuf's own wording, such as
// `(optimizer) lrr: Cannot find field.`, is rewritten). *out is unspecified
// on failure. RunConfigFromJson is the Status form; sweep expansion uses the
// path to name the parameter at fault.
std::optional<RunConfigJsonError> MapJsonToRunConfig(absl::string_view json,
                                                     v1::RunConfig* out);

// Maps `json` onto *out (cleared first); unknown fields are errors. On
// failure returns INVALID_ARGUMENT "<source>: <path>: <detail>", e.g.
// `run.yaml: optimizer.lr: expected a number, got "fast"`. `source` names
// the input (a file name, or "sweep.yaml: run 3"). *out is unspecified on
// failure.
absl::Status RunConfigFromJson(absl::string_view json, v1::RunConfig* out,
                               absl::string_view source);

// Checks what the schema cannot: every choice word, required fields and
// ranges. Fields left unset mean their default (applied by the pipeline):
//   data.layout mask, data.split holdout, data.val_ratio 0.2,
//   data.age_bounds [30, 60], image 96 x 128, crop.detectors [haar, fixed],
//   augment.hflip 0.5, cutmix.beta 1.0, cutmix.mode box, autoaugment off,
//   loss.name ce (focal_gamma 2.0), optimizer.name adamw (lr 1e-3, betas
//   0.9 / 0.999, eps 1e-8), scheduler.name none, early_stopping val_f1 /
//   maximize, train.batch_size 32, train.device auto,
//   checkpoint_every_epochs 1.
// Rules (an empty choice string means the default):
//   - choice words: data.layout, data.split, crop.detectors[i],
//     augment.cutmix.mode, augment.autoaugment, model.name, loss.name,
//     optimizer.name, scheduler.name, early_stopping.goal, train.device,
//     tta.transforms[i] must be one of the words run_config.proto lists;
//   - required: data.dataset, model.name, train.epochs > 0;
//   - every double is finite;
//   - probabilities and shares (augment.hflip, *.p, cutout.size,
//     data.max_bad_fraction) in [0, 1]; data.val_ratio in (0, 1);
//     model.dropout and loss.label_smoothing in [0, 1);
//   - split kfold: folds >= 2 and fold < folds;
//   - data.age_bounds strictly ascending; layout csv needs data.csv;
//     detector yunet needs crop.yunet_model;
//   - augment: color jitter strengths >= 0 and hue in [0, 0.5];
//     cutmix.beta, mixup.alpha > 0; random_resized_crop scales in (0, 1],
//     ratios > 0, each min <= max; mean and std hold 0 or 3 values, std > 0;
//   - model torchscript needs model.torchscript (the path);
//   - loss: focal_gamma and every weight >= 0;
//   - optimizer: lr > 0, eps > 0, beta1 / beta2 / momentum in [0, 1),
//     weight_decay and grad_clip_norm >= 0;
//   - scheduler: step needs step_size > 0, cosine_restarts needs t_0 > 0,
//     t_mult >= 1, gamma > 0, eta_min >= 0, warmup_start_factor in (0, 1],
//     plateau_factor in (0, 1);
//   - early_stopping.min_delta >= 0; train.checkpoint_every_epochs >= 1;
//     tta.scales > 0.
// A job (config.job set) is checked instead against its own rules: kind
// predict | gradcam; data.dataset required and, besides job, only seed,
// threads, interop_threads and name may be set; 1..kMaxJobSourceRuns
// positive source run ids; split eval | val and tta for predict only;
// gradcam: exactly one source, gradcam_class required, gradcam_images <=
// kMaxGradCamImages. (That the sources exist, succeeded and share the data
// set is the coordinator's check: it needs the store.)
// Returns INVALID_ARGUMENT "<path>: <reason>" for the first violation, e.g.
// `optimizer.name: "radamm" is not one of sgd, adam, adamw, radam`.
absl::Status ValidateRunConfig(const v1::RunConfig& config);

// Limits of a job (see ValidateRunConfig).
inline constexpr int kMaxJobSourceRuns = 64;
inline constexpr uint32_t kMaxGradCamImages = 64;

// Parses a RunConfig YAML document, maps it and validates it. Returns
// INVALID_ARGUMENT prefixed with `source`: YAML syntax errors give the line
// and column (1-based); mapping and validation errors the key path.
absl::StatusOr<v1::RunConfig> LoadRunConfigYaml(absl::string_view yaml_text,
                                                absl::string_view source);

}  // namespace sweepq

#endif  // SWEEPQ_COMMON_RUN_CONFIG_H_
