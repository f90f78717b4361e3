#include "worker/pipeline/split.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace sweepq::worker {
namespace {

// Fisher-Yates with raw mt19937_64 draws: std::shuffle and the standard
// distributions differ between standard libraries, which would make a
// split depend on the compiler. The modulo bias is far below anything a
// split could notice.
template <typename T>
void Shuffle(std::vector<T>* items, std::mt19937_64* rng) {
  for (size_t i = items->size(); i > 1; --i) {
    const size_t j = static_cast<size_t>((*rng)() % i);
    std::swap((*items)[i - 1], (*items)[j]);
  }
}

}  // namespace

SplitOptions SplitOptionsFromConfig(const v1::RunConfig& config) {
  SplitOptions options;
  if (!config.data().split().empty()) options.method = config.data().split();
  if (config.data().has_val_ratio()) {
    options.val_ratio = config.data().val_ratio();
  }
  options.fold = config.data().fold();
  options.folds = config.data().folds();
  options.seed = config.has_seed() ? config.seed() : 0;
  return options;
}

absl::StatusOr<Split> SplitByPerson(const Dataset& dataset,
                                    const SplitOptions& options) {
  std::string where;
  if (options.method == "holdout") {
    if (!(options.val_ratio > 0 && options.val_ratio < 1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "data.val_ratio ", options.val_ratio, " is not in (0, 1)"));
    }
    where = absl::StrCat("holdout split (val_ratio ", options.val_ratio,
                         ", seed ", options.seed, ") train set");
  } else if (options.method == "kfold") {
    if (options.folds < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "split kfold needs data.folds >= 2, got ", options.folds));
    }
    if (options.fold >= options.folds) {
      return absl::InvalidArgumentError(absl::StrCat(
          "data.fold ", options.fold, " is not in [0, ", options.folds, ")"));
    }
    where = absl::StrCat("kfold split (fold ", options.fold, " of ",
                         options.folds, ", seed ", options.seed, ") train set");
  } else if (options.method == "full") {
    where = "full split train set";
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("data.split \"", options.method,
                     "\" is not one of holdout, kfold, full"));
  }

  // Person -> samples, in name order (std::map), so the split does not
  // depend on the order of dataset.samples.
  std::map<std::string, std::vector<size_t>> people;
  for (size_t i = 0; i < dataset.samples.size(); ++i) {
    people[dataset.samples[i].person].push_back(i);
  }
  if (options.method == "kfold" && people.size() < options.folds) {
    return absl::InvalidArgumentError(
        absl::StrCat("split kfold: ", options.folds, " folds but only ",
                     people.size(), " people in ", dataset.root));
  }
  // Stratum = the sorted set of a person's classes.
  std::map<std::vector<int>, std::vector<const std::vector<size_t>*>> strata;
  for (const auto& [name, indexes] : people) {
    std::vector<int> key;
    for (size_t i : indexes) key.push_back(dataset.samples[i].label);
    std::sort(key.begin(), key.end());
    key.erase(std::unique(key.begin(), key.end()), key.end());
    strata[key].push_back(&indexes);
  }

  std::mt19937_64 rng(options.seed);
  Split split;
  double expected_val = 0;
  int64_t taken_val = 0;
  uint64_t dealt = 0;
  for (auto& [key, members] : strata) {
    Shuffle(&members, &rng);
    const int64_t n = static_cast<int64_t>(members.size());
    int64_t quota = 0;
    if (options.method == "holdout") {
      // Rounding is carried across strata so the total stays close to
      // val_ratio even when every stratum is small.
      expected_val += static_cast<double>(n) * options.val_ratio;
      quota =
          std::clamp<int64_t>(std::llround(expected_val) - taken_val, 0, n - 1);
      taken_val += quota;
    }
    for (int64_t p = 0; p < n; ++p) {
      bool to_val = false;
      if (options.method == "holdout") {
        to_val = p < quota;
      } else if (options.method == "kfold") {
        to_val = (dealt++ % options.folds) == options.fold;
      }
      std::vector<size_t>& out = to_val ? split.val : split.train;
      out.insert(out.end(), members[p]->begin(), members[p]->end());
    }
  }
  std::sort(split.train.begin(), split.train.end());
  std::sort(split.val.begin(), split.val.end());
  RETURN_IF_ERROR(CheckEveryClassHasSamples(dataset, split.train, where));
  return split;
}

}  // namespace sweepq::worker
