#include "worker/pipeline/dataset.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <system_error>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/mask_classes.h"
#include "common/status_macros.h"
#include "worker/pipeline/csv.h"

namespace sweepq::worker {
namespace {

namespace fs = std::filesystem;

constexpr int kMaxAge = 150;

// Joins `path` onto `root` unless it is absolute.
std::string ResolvePath(const std::string& root, const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  return (fs::path(root) / path).string();
}

bool IsHidden(absl::string_view name) {
  return !name.empty() && name[0] == '.';
}

// Lists the entries of `dir` sorted by name. Directory iteration throws on
// I/O errors; the exception becomes a Status naming the directory.
absl::StatusOr<std::vector<fs::directory_entry>> ListDirectory(
    const std::string& dir) {
  std::vector<fs::directory_entry> entries;
  try {
    for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
      entries.push_back(entry);
    }
  } catch (const fs::filesystem_error& e) {
    if (e.code() == std::errc::no_such_file_or_directory) {
      return absl::NotFoundError(absl::StrCat(dir, ": directory not found"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat(dir, ": cannot list: ", e.code().message()));
  }
  std::sort(entries.begin(), entries.end(),
            [](const fs::directory_entry& a, const fs::directory_entry& b) {
              return a.path().filename() < b.path().filename();
            });
  return entries;
}

bool IsDirectory(const fs::directory_entry& entry) {
  std::error_code ec;
  return entry.is_directory(ec);
}

bool IsRegularFile(const fs::directory_entry& entry) {
  std::error_code ec;
  return entry.is_regular_file(ec);
}

bool PathIsDirectory(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

bool PathIsRegularFile(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

std::optional<int> ParseGender(absl::string_view text) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "male") return static_cast<int>(Gender::kMale);
  if (lower == "female") return static_cast<int>(Gender::kFemale);
  return std::nullopt;
}

std::optional<int> ParseAge(absl::string_view text) {
  int age = 0;
  if (!absl::SimpleAtoi(text, &age) || age < 0 || age > kMaxAge) {
    return std::nullopt;
  }
  return age;
}

std::optional<int> ParseMaskState(absl::string_view text) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "wear") return static_cast<int>(MaskState::kWear);
  if (lower == "incorrect") return static_cast<int>(MaskState::kIncorrect);
  if (lower == "normal") return static_cast<int>(MaskState::kNormal);
  return std::nullopt;
}

std::string GenderCause(absl::string_view value) {
  return absl::StrCat("gender \"", value, "\" is not male or female");
}

std::string AgeCause(absl::string_view value) {
  return absl::StrCat("age \"", value, "\" is not an integer in [0, ", kMaxAge,
                      "]");
}

// A person of the mask layout before its images are listed.
struct MaskPerson {
  std::string folder;
  int gender = -1;
  int age = -1;
  // Where the person was declared, for messages ("train.csv: line 4").
  std::string origin;
};

absl::StatusOr<std::vector<MaskPerson>> ReadPeopleFromCsv(
    const std::string& csv_path) {
  ASSIGN_OR_RETURN(CsvTable table, ReadCsv(csv_path));
  ASSIGN_OR_RETURN(const size_t gender_col, table.Column("gender"));
  ASSIGN_OR_RETURN(const size_t age_col, table.Column("age"));
  ASSIGN_OR_RETURN(const size_t path_col, table.Column("path"));
  std::vector<MaskPerson> people;
  std::map<std::string, int> first_line;
  for (const CsvRow& row : table.rows) {
    MaskPerson person;
    person.folder = row.fields[path_col];
    person.origin = absl::StrCat(csv_path, ": line ", row.line);
    if (person.folder.empty() || absl::StrContains(person.folder, "/") ||
        person.folder == "." || person.folder == "..") {
      return table.RowError(row, absl::StrCat("path \"", person.folder,
                                              "\" is not a folder name"));
    }
    const std::optional<int> gender = ParseGender(row.fields[gender_col]);
    if (!gender)
      return table.RowError(row, GenderCause(row.fields[gender_col]));
    const std::optional<int> age = ParseAge(row.fields[age_col]);
    if (!age) return table.RowError(row, AgeCause(row.fields[age_col]));
    person.gender = *gender;
    person.age = *age;
    auto [it, inserted] = first_line.emplace(person.folder, row.line);
    if (!inserted) {
      return table.RowError(
          row, absl::StrCat("person \"", person.folder,
                            "\" already listed at line ", it->second));
    }
    people.push_back(std::move(person));
  }
  return people;
}

// Without train.csv the folder names carry the labels:
// <id>_<gender>_<race>_<age> (the race may itself hold underscores).
absl::StatusOr<std::vector<MaskPerson>> ReadPeopleFromFolders(
    const std::string& images_dir) {
  ASSIGN_OR_RETURN(std::vector<fs::directory_entry> entries,
                   ListDirectory(images_dir));
  std::vector<MaskPerson> people;
  for (const fs::directory_entry& entry : entries) {
    const std::string name = entry.path().filename().string();
    if (IsHidden(name) || !IsDirectory(entry)) continue;
    const std::vector<std::string> parts = absl::StrSplit(name, '_');
    const std::string origin = entry.path().string();
    if (parts.size() < 4) {
      return absl::InvalidArgumentError(absl::StrCat(
          origin, ": folder name is not <id>_<gender>_<race>_<age>"));
    }
    const std::optional<int> gender = ParseGender(parts[1]);
    if (!gender) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": ", GenderCause(parts[1])));
    }
    const std::optional<int> age = ParseAge(parts.back());
    if (!age) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": ", AgeCause(parts.back())));
    }
    people.push_back(MaskPerson{name, *gender, *age, origin});
  }
  return people;
}

// Index of images and people for applying overrides.
struct OverrideTargets {
  // Image key (path relative to the root, and for the mask layout also
  // <folder>/<file>) -> sample index.
  absl::flat_hash_map<std::string, size_t> images;
  // Person -> sample indexes.
  absl::flat_hash_map<std::string, std::vector<size_t>> people;
};

// Applies one override field to one sample. Returns the cause on a bad
// value, empty on success.
std::string ApplyOverride(const Dataset& dataset, const std::string& field,
                          const std::string& value, bool image_target,
                          Sample* sample) {
  if (dataset.layout == "mask") {
    if (field == "gender") {
      const std::optional<int> gender = ParseGender(value);
      if (!gender) return GenderCause(value);
      sample->gender = *gender;
    } else if (field == "age") {
      const std::optional<int> age = ParseAge(value);
      if (!age) return AgeCause(value);
      sample->age = *age;
    } else if (field == "mask") {
      if (!image_target)
        return "field mask needs an image target, not a person";
      const std::optional<int> mask = ParseMaskState(value);
      if (!mask) {
        return absl::StrCat("mask \"", value,
                            "\" is not wear, incorrect or normal");
      }
      sample->mask = *mask;
    } else {
      return absl::StrCat("field \"", field,
                          "\" is not gender, age or mask (layout mask)");
    }
    return "";
  }
  if (field != "label") {
    return absl::StrCat("field \"", field, "\" is not label (layout ",
                        dataset.layout, ")");
  }
  for (int c = 0; c < dataset.num_classes(); ++c) {
    if (dataset.class_names[c] == value) {
      sample->label = c;
      return "";
    }
  }
  int index = -1;
  if (absl::SimpleAtoi(value, &index) && index >= 0 &&
      index < dataset.num_classes()) {
    sample->label = index;
    return "";
  }
  return absl::StrCat("label \"", value, "\" is not a class of the data set");
}

absl::Status ApplyOverrides(const std::string& file,
                            const OverrideTargets& targets, Dataset* dataset) {
  ASSIGN_OR_RETURN(CsvTable table, ReadCsv(file));
  ASSIGN_OR_RETURN(const size_t target_col, table.Column("target"));
  ASSIGN_OR_RETURN(const size_t field_col, table.Column("field"));
  ASSIGN_OR_RETURN(const size_t value_col, table.Column("value"));
  for (const CsvRow& row : table.rows) {
    const std::string& target = row.fields[target_col];
    const std::string field = absl::AsciiStrToLower(row.fields[field_col]);
    const std::string& value = row.fields[value_col];
    std::vector<size_t> indexes;
    bool image_target = false;
    if (auto it = targets.images.find(target); it != targets.images.end()) {
      indexes.push_back(it->second);
      image_target = true;
    } else if (auto jt = targets.people.find(target);
               jt != targets.people.end()) {
      indexes = jt->second;
    } else {
      return table.RowError(
          row, absl::StrCat("target \"", target,
                            "\" is neither a person nor an image of ",
                            dataset->root));
    }
    for (size_t index : indexes) {
      const std::string cause = ApplyOverride(
          *dataset, field, value, image_target, &dataset->samples[index]);
      if (!cause.empty()) return table.RowError(row, cause);
    }
  }
  return absl::OkStatus();
}

absl::Status CheckAgeBounds(absl::Span<const int> bounds) {
  for (size_t i = 1; i < bounds.size(); ++i) {
    if (bounds[i] <= bounds[i - 1]) {
      return absl::InvalidArgumentError(
          absl::StrCat("data.age_bounds must be strictly ascending, got [",
                       absl::StrJoin(bounds, ", "), "]"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Dataset> LoadMaskLayout(const DatasetOptions& options) {
  RETURN_IF_ERROR(CheckAgeBounds(options.age_bounds));
  Dataset dataset;
  dataset.root = options.root;
  dataset.layout = "mask";
  dataset.age_bounds = options.age_bounds;
  dataset.class_names = MaskClassNames(options.age_bounds);
  const int num_bands = static_cast<int>(options.age_bounds.size()) + 1;

  const std::string images_dir =
      (fs::path(options.root) / "train" / "images").string();
  const std::string csv_path =
      (fs::path(options.root) / "train" / "train.csv").string();
  if (!PathIsDirectory(images_dir)) {
    return absl::NotFoundError(
        absl::StrCat(images_dir,
                     ": directory not found (layout mask expects "
                     "train/images/<id>_<gender>_<race>_<age>/)"));
  }
  std::vector<MaskPerson> people;
  if (PathIsRegularFile(csv_path)) {
    ASSIGN_OR_RETURN(people, ReadPeopleFromCsv(csv_path));
  } else {
    ASSIGN_OR_RETURN(people, ReadPeopleFromFolders(images_dir));
  }

  OverrideTargets targets;
  for (const MaskPerson& person : people) {
    const std::string folder = (fs::path(images_dir) / person.folder).string();
    if (!PathIsDirectory(folder)) {
      return absl::NotFoundError(absl::StrCat(person.origin, ": person folder ",
                                              folder, " does not exist"));
    }
    ASSIGN_OR_RETURN(std::vector<fs::directory_entry> entries,
                     ListDirectory(folder));
    size_t found = 0;
    for (const fs::directory_entry& entry : entries) {
      const std::string name = entry.path().filename().string();
      const std::optional<MaskState> mask = MaskStateFromFileName(name);
      if (!mask || !IsRegularFile(entry)) continue;
      Sample sample;
      sample.path = entry.path().string();
      sample.person = person.folder;
      sample.mask = static_cast<int>(*mask);
      sample.gender = person.gender;
      sample.age = person.age;
      const size_t index = dataset.samples.size();
      targets.images[absl::StrCat("train/images/", person.folder, "/", name)] =
          index;
      targets.images[absl::StrCat(person.folder, "/", name)] = index;
      targets.people[person.folder].push_back(index);
      dataset.samples.push_back(std::move(sample));
      ++found;
    }
    if (found == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          person.origin, ": person folder ", folder,
          " holds no mask1..mask5, incorrect_mask or normal image"));
    }
  }
  if (dataset.samples.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.root, ": empty data set: no images (no person in ",
                     PathIsRegularFile(csv_path) ? csv_path : images_dir, ")"));
  }
  if (!options.label_overrides.empty()) {
    RETURN_IF_ERROR(ApplyOverrides(
        ResolvePath(options.root, options.label_overrides), targets, &dataset));
  }
  for (Sample& sample : dataset.samples) {
    sample.age_band = AgeBand(sample.age, options.age_bounds);
    sample.label =
        MaskClassIndex(sample.mask, sample.gender, sample.age_band, num_bands);
  }
  return dataset;
}

absl::StatusOr<Dataset> LoadImageFolderLayout(const DatasetOptions& options) {
  Dataset dataset;
  dataset.root = options.root;
  dataset.layout = "image_folder";
  ASSIGN_OR_RETURN(std::vector<fs::directory_entry> class_dirs,
                   ListDirectory(options.root));
  OverrideTargets targets;
  for (const fs::directory_entry& class_dir : class_dirs) {
    const std::string class_name = class_dir.path().filename().string();
    if (IsHidden(class_name) || !IsDirectory(class_dir)) continue;
    const int label = dataset.num_classes();
    dataset.class_names.push_back(class_name);
    ASSIGN_OR_RETURN(std::vector<fs::directory_entry> files,
                     ListDirectory(class_dir.path().string()));
    for (const fs::directory_entry& file : files) {
      const std::string name = file.path().filename().string();
      if (IsHidden(name) || !IsImageFileName(name) || !IsRegularFile(file)) {
        continue;
      }
      Sample sample;
      sample.path = file.path().string();
      sample.person = absl::StrCat(class_name, "/", name);
      sample.label = label;
      const size_t index = dataset.samples.size();
      targets.images[sample.person] = index;
      targets.people[sample.person].push_back(index);
      dataset.samples.push_back(std::move(sample));
    }
  }
  if (dataset.samples.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.root,
                     ": empty data set: no images (layout image_folder expects "
                     "<root>/<class>/<image>.jpg)"));
  }
  if (!options.label_overrides.empty()) {
    RETURN_IF_ERROR(ApplyOverrides(
        ResolvePath(options.root, options.label_overrides), targets, &dataset));
  }
  return dataset;
}

absl::StatusOr<Dataset> LoadCsvLayout(const DatasetOptions& options) {
  if (options.csv.empty()) {
    return absl::InvalidArgumentError(
        "layout csv needs data.csv (a `path,label` file)");
  }
  if (!PathIsDirectory(options.root)) {
    return absl::NotFoundError(
        absl::StrCat(options.root, ": directory not found"));
  }
  const std::string csv_path = ResolvePath(options.root, options.csv);
  ASSIGN_OR_RETURN(CsvTable table, ReadCsv(csv_path));
  ASSIGN_OR_RETURN(const size_t path_col, table.Column("path"));
  ASSIGN_OR_RETURN(const size_t label_col, table.Column("label"));
  const int person_col = table.FindColumn("person");

  // Integer labels are class indexes; anything else is a class name.
  bool numeric = !table.rows.empty();
  int max_label = -1;
  std::set<std::string> names;
  for (const CsvRow& row : table.rows) {
    const std::string& label = row.fields[label_col];
    if (label.empty()) return table.RowError(row, "empty label");
    int value = 0;
    if (absl::SimpleAtoi(label, &value) && value >= 0) {
      max_label = std::max(max_label, value);
    } else {
      numeric = false;
    }
    names.insert(label);
  }
  Dataset dataset;
  dataset.root = options.root;
  dataset.layout = "csv";
  std::map<std::string, int> index_of;
  if (numeric) {
    for (int c = 0; c <= max_label; ++c) {
      dataset.class_names.push_back(absl::StrCat(c));
    }
  } else {
    dataset.class_names.assign(names.begin(), names.end());
    for (size_t c = 0; c < dataset.class_names.size(); ++c) {
      index_of[dataset.class_names[c]] = static_cast<int>(c);
    }
  }

  OverrideTargets targets;
  for (const CsvRow& row : table.rows) {
    const std::string& rel = row.fields[path_col];
    if (rel.empty()) return table.RowError(row, "empty path");
    if (!IsImageFileName(rel)) {
      return table.RowError(row, absl::StrCat("path \"", rel,
                                              "\" is not a .jpg, .jpeg, "
                                              ".png or .bmp image"));
    }
    Sample sample;
    sample.path = ResolvePath(options.root, rel);
    if (!PathIsRegularFile(sample.path)) {
      return absl::NotFoundError(absl::StrCat(table.path, ": line ", row.line,
                                              ": image ", sample.path,
                                              " does not exist"));
    }
    const std::string& label = row.fields[label_col];
    int value = 0;
    sample.label =
        numeric && absl::SimpleAtoi(label, &value) ? value : index_of.at(label);
    sample.person = person_col >= 0 && !row.fields[person_col].empty()
                        ? row.fields[person_col]
                        : rel;
    const size_t index = dataset.samples.size();
    if (!targets.images.emplace(rel, index).second) {
      return table.RowError(
          row, absl::StrCat("image \"", rel, "\" is listed twice"));
    }
    targets.people[sample.person].push_back(index);
    dataset.samples.push_back(std::move(sample));
  }
  if (dataset.samples.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(csv_path, ": empty data set: no rows after the header"));
  }
  if (!options.label_overrides.empty()) {
    RETURN_IF_ERROR(ApplyOverrides(
        ResolvePath(options.root, options.label_overrides), targets, &dataset));
  }
  return dataset;
}

}  // namespace

DatasetOptions DatasetOptionsFromConfig(const v1::DataConfig& config,
                                        const std::string& root) {
  DatasetOptions options;
  options.root = root;
  if (!config.layout().empty()) options.layout = config.layout();
  options.csv = config.csv();
  options.label_overrides = config.label_overrides();
  if (config.age_bounds_size() > 0) {
    options.age_bounds.assign(config.age_bounds().begin(),
                              config.age_bounds().end());
  }
  return options;
}

int AgeBand(int age, absl::Span<const int> bounds) {
  int band = 0;
  for (int bound : bounds) {
    if (age >= bound) ++band;
  }
  return band;
}

int MaskClassIndex(int mask, int gender, int age_band, int num_age_bands) {
  return mask * kNumGenders * num_age_bands + gender * num_age_bands + age_band;
}

std::vector<std::string> MaskClassNames(absl::Span<const int> bounds) {
  return MaskTaskClassNames(bounds);
}

bool IsImageFileName(absl::string_view name) {
  const size_t dot = name.rfind('.');
  if (dot == absl::string_view::npos) return false;
  const std::string ext = absl::AsciiStrToLower(name.substr(dot + 1));
  return ext == "jpg" || ext == "jpeg" || ext == "png" || ext == "bmp";
}

std::optional<MaskState> MaskStateFromFileName(absl::string_view name) {
  if (IsHidden(name)) return std::nullopt;
  const size_t dot = name.rfind('.');
  if (dot == absl::string_view::npos) return std::nullopt;
  const std::string ext = absl::AsciiStrToLower(name.substr(dot + 1));
  if (ext != "jpg" && ext != "jpeg" && ext != "png") return std::nullopt;
  const std::string stem = absl::AsciiStrToLower(name.substr(0, dot));
  if (stem.size() == 5 && absl::StartsWith(stem, "mask") && stem[4] >= '1' &&
      stem[4] <= '5') {
    return MaskState::kWear;
  }
  if (stem == "incorrect_mask") return MaskState::kIncorrect;
  if (stem == "normal") return MaskState::kNormal;
  return std::nullopt;
}

absl::StatusOr<Dataset> LoadDataset(const DatasetOptions& options) {
  if (options.root.empty()) {
    return absl::InvalidArgumentError("data-set root is empty");
  }
  absl::StatusOr<Dataset> dataset;
  // std::filesystem calls left without an error_code (fs::relative inside
  // helpers, path conversions) may still throw; keep them inside.
  try {
    if (options.layout == "mask") {
      dataset = LoadMaskLayout(options);
    } else if (options.layout == "image_folder") {
      dataset = LoadImageFolderLayout(options);
    } else if (options.layout == "csv") {
      dataset = LoadCsvLayout(options);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("data.layout \"", options.layout,
                       "\" is not one of mask, image_folder, csv"));
    }
  } catch (const fs::filesystem_error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(e.path1().string(), ": ", e.code().message()));
  }
  if (!dataset.ok()) return dataset.status();
  std::sort(dataset->samples.begin(), dataset->samples.end(),
            [](const Sample& a, const Sample& b) {
              return std::tie(a.person, a.path) < std::tie(b.person, b.path);
            });
  std::vector<size_t> all(dataset->samples.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  RETURN_IF_ERROR(CheckEveryClassHasSamples(
      *dataset, all,
      absl::StrCat(options.root, " (layout ", options.layout, ")")));
  return dataset;
}

absl::StatusOr<std::vector<EvalImage>> LoadMaskEvalSet(
    const std::string& root) {
  const std::string csv_path = (fs::path(root) / "eval" / "info.csv").string();
  const fs::path images_dir = fs::path(root) / "eval" / "images";
  ASSIGN_OR_RETURN(CsvTable table, ReadCsv(csv_path));
  ASSIGN_OR_RETURN(const size_t id_col, table.Column("ImageID"));
  RETURN_IF_ERROR(table.Column("ans").status());
  std::vector<EvalImage> images;
  std::set<std::string> seen;
  for (const CsvRow& row : table.rows) {
    const std::string& id = row.fields[id_col];
    if (id.empty() || absl::StrContains(id, "/")) {
      return table.RowError(
          row, absl::StrCat("ImageID \"", id, "\" is not a file name"));
    }
    if (!seen.insert(id).second) {
      return table.RowError(row,
                            absl::StrCat("ImageID \"", id, "\" is repeated"));
    }
    EvalImage image{id, (images_dir / id).string()};
    if (!PathIsRegularFile(image.path)) {
      return absl::NotFoundError(absl::StrCat(csv_path, ": line ", row.line,
                                              ": image ", image.path,
                                              " does not exist"));
    }
    images.push_back(std::move(image));
  }
  if (images.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(csv_path, ": empty evaluation set: no rows"));
  }
  return images;
}

absl::Status CheckEveryClassHasSamples(const Dataset& dataset,
                                       absl::Span<const size_t> indices,
                                       absl::string_view where) {
  std::vector<size_t> counts(dataset.class_names.size(), 0);
  for (size_t index : indices) {
    const int label = dataset.samples[index].label;
    if (label >= 0 && label < dataset.num_classes()) ++counts[label];
  }
  for (size_t c = 0; c < counts.size(); ++c) {
    if (counts[c] == 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": class ", c, " (",
                                                     dataset.class_names[c],
                                                     ") has no samples"));
    }
  }
  return absl::OkStatus();
}

}  // namespace sweepq::worker
