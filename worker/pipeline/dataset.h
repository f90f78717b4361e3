// Data sets: turns a directory on disk into a list of labelled samples
// grouped by person, for the splits, the loader and the evaluation.
//
// Layouts (DataConfig.layout):
//   - mask (default): the mask competition layout
//       train/train.csv                 id,gender,race,age,path
//       train/images/<path>/            mask1..mask5, incorrect_mask, normal
//                                       (.jpg .jpeg .png, any case)
//       eval/info.csv + eval/images/    ImageID,ans
//     A person is a folder (`<id>_<gender>_<race>_<age>`), never an id: ids
//     repeat in the real data. Without train/train.csv the folder names are
//     parsed instead. Class = mask * 2B + gender * B + age band, with B age
//     bands from DataConfig.age_bounds (default [30, 60]: 18 classes); the
//     three sub-labels are kept for multi-head training.
//   - image_folder: root/<class>/<image>; classes in name order; each image
//     is its own person.
//   - csv: DataConfig.csv lists `path,label` (an optional `person` column
//     groups images); integer labels are class indexes, other labels are
//     names sorted into indexes.
// A label-override CSV (`target,field,value`) corrects known mislabels
// without touching the images; see LoadDataset.
//
// All functions are thread-safe (no shared state). Filesystem exceptions are
// caught and returned as Status naming the path.
#ifndef SWEEPQ_WORKER_PIPELINE_DATASET_H_
#define SWEEPQ_WORKER_PIPELINE_DATASET_H_

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "sweepq/v1/run_config.pb.h"

namespace sweepq::worker {

// Mask states of the mask layout, in class order.
enum class MaskState : int { kWear = 0, kIncorrect = 1, kNormal = 2 };
inline constexpr int kNumMaskStates = 3;

// Genders of the mask layout, in class order.
enum class Gender : int { kMale = 0, kFemale = 1 };
inline constexpr int kNumGenders = 2;

// The default age band bounds: <30, 30-59, >=60.
inline constexpr int kDefaultAgeBounds[] = {30, 60};

// One labelled image.
struct Sample {
  // Path of the image file (the data-set root joined with its relative
  // path).
  std::string path;
  // Grouping key of the splits: the person folder name (mask layout), the
  // `person` column (csv layout) or the image's relative path.
  std::string person;
  // Class index in [0, Dataset::class_names.size()).
  int label = -1;
  // Mask layout sub-labels (MaskState, Gender, band index) and the age in
  // years; -1 for the other layouts.
  int mask = -1;
  int gender = -1;
  int age_band = -1;
  int age = -1;
};

// A parsed data set.
struct Dataset {
  // The data-set root directory.
  std::string root;
  // "mask", "image_folder" or "csv".
  std::string layout;
  // Class names by index, e.g. "wear/male/<30" for the mask layout.
  std::vector<std::string> class_names;
  // Age band bounds used (mask layout only).
  std::vector<int> age_bounds;
  // Samples sorted by (person, path); never empty in a loaded data set.
  std::vector<Sample> samples;

  // Returns the number of classes.
  int num_classes() const { return static_cast<int>(class_names.size()); }
};

// One image of the mask layout's evaluation set (no label).
struct EvalImage {
  // The ImageID column of eval/info.csv (a file name).
  std::string image_id;
  // eval/images/<image_id>.
  std::string path;
};

// What LoadDataset reads.
struct DatasetOptions {
  // Data-set root directory.
  std::string root;
  // mask | image_folder | csv.
  std::string layout = "mask";
  // csv layout: the `path,label` file, relative to root unless absolute.
  std::string csv;
  // Optional label-override CSV, relative to root unless absolute.
  std::string label_overrides;
  // Mask layout: strictly ascending exclusive upper bounds of the first age
  // bands.
  std::vector<int> age_bounds = {kDefaultAgeBounds[0], kDefaultAgeBounds[1]};
};

// Returns the options a run with `config` reads from `root`, applying the
// defaults of run_config.proto (layout mask, age bounds [30, 60]).
DatasetOptions DatasetOptionsFromConfig(const v1::DataConfig& config,
                                        const std::string& root);

// Returns the band of `age`: the number of bounds <= age (so with [30, 60]:
// 29 -> 0, 30 -> 1, 59 -> 1, 60 -> 2).
int AgeBand(int age, absl::Span<const int> bounds);

// Returns the class index of a mask-layout sample:
// mask * (2 * num_age_bands) + gender * num_age_bands + age_band.
int MaskClassIndex(int mask, int gender, int age_band, int num_age_bands);

// Returns the mask-layout class names for `bounds`, e.g. with [30, 60]:
// "wear/male/<30", "wear/male/30-59", "wear/male/>=60", ...,
// "normal/female/>=60".
std::vector<std::string> MaskClassNames(absl::Span<const int> bounds);

// Returns the mask state of an image file name of the mask layout
// ("mask3.jpg" -> kWear, "incorrect_mask.png" -> kIncorrect,
// "normal.jpeg" -> kNormal), or std::nullopt for any other name, extension
// or a hidden file ("._mask1.jpg").
std::optional<MaskState> MaskStateFromFileName(absl::string_view name);

// Returns true for the image extensions the layouts read (.jpg .jpeg .png,
// any case; image_folder and csv also .bmp).
bool IsImageFileName(absl::string_view name);

// Loads the data set described by `options`.
//
// Label overrides: a CSV with columns `target,field,value`, applied in file
// order (a later row wins). `target` is a person (mask: folder name; csv:
// person column) or an image path relative to the root (mask also accepts
// `<folder>/<file>`). Fields: mask layout `gender` (male|female), `age`
// (years) for a person or an image, `mask` (wear|incorrect|normal) for an
// image; other layouts `label` (a class name or index) for a person or an
// image.
//
// Returns, naming the file, the line and the cause:
//   NOT_FOUND for a missing root, layout directory, CSV or listed image;
//   INVALID_ARGUMENT for an unknown layout, bounds not strictly ascending,
//   a CSV missing a column, an unparsable row (field count, gender, age,
//   label, duplicate person), a person folder without images, an override
//   naming an unknown target, field or value, an empty data set ("no
//   images"), and a class with no samples ("class 17 (normal/female/>=60)
//   has no samples").
absl::StatusOr<Dataset> LoadDataset(const DatasetOptions& options);

// Loads the mask layout's evaluation list from eval/info.csv (columns
// ImageID, ans) under `root`, in file order. Returns NOT_FOUND when the
// file or a listed image in eval/images/ is missing, and INVALID_ARGUMENT
// `<file>: line N: <cause>` for a missing column, an empty or duplicate
// ImageID, or no rows at all.
absl::StatusOr<std::vector<EvalImage>> LoadMaskEvalSet(const std::string& root);

// Checks that every class of `dataset` has a sample among `indices` (indexes
// into dataset.samples). Returns INVALID_ARGUMENT "<where>: class N (<name>)
// has no samples" for the first class without one.
absl::Status CheckEveryClassHasSamples(const Dataset& dataset,
                                       absl::Span<const size_t> indices,
                                       absl::string_view where);

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_PIPELINE_DATASET_H_
