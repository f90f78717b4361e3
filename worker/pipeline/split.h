// Splits of a data set into train and validation sets by person, so that no
// person's images leak from train into validation. People are stratified by
// the set of classes of their images (for the mask layout: gender and age
// band, since everyone has all three mask states), shuffled with a seeded
// generator and dealt out per stratum, so every class keeps about its share
// in both sets. Same data set + options => same split, on every platform
// (the shuffle uses std::mt19937_64 draws directly, not std::shuffle).
// Functions here are thread-safe (no shared state).
#ifndef SWEEPQ_WORKER_PIPELINE_SPLIT_H_
#define SWEEPQ_WORKER_PIPELINE_SPLIT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sweepq/v1/run_config.pb.h"
#include "worker/pipeline/dataset.h"

namespace sweepq::worker {

// How to split.
struct SplitOptions {
  // holdout | kfold | full.
  std::string method = "holdout";
  // holdout: share of people held out for validation, in (0, 1).
  double val_ratio = 0.2;
  // kfold: this split's validation fold, in [0, folds).
  uint32_t fold = 0;
  // kfold: number of folds, >= 2.
  uint32_t folds = 0;
  // Seed of the shuffle.
  uint64_t seed = 0;
};

// Returns the split options of a run: data.split (default holdout),
// data.val_ratio (default 0.2), data.fold, data.folds and the run's seed
// (0 when unset).
SplitOptions SplitOptionsFromConfig(const v1::RunConfig& config);

// A split: indexes into Dataset::samples, each list ascending.
struct Split {
  std::vector<size_t> train;
  // Empty for method full.
  std::vector<size_t> val;
};

// Splits `dataset` by person.
//   holdout: in each stratum round(n * val_ratio) people go to validation,
//     never the stratum's last person (a class seen only in validation
//     could not be learned);
//   kfold: people of each stratum are dealt round-robin into `folds` folds
//     (the start rotating across strata so fold sizes stay even); fold
//     `fold` is validation, the others train. Over fold = 0..folds-1 the
//     validation sets partition the people;
//   full: everything in train, no validation.
// Returns INVALID_ARGUMENT for an unknown method, val_ratio outside (0, 1),
// folds < 2 or fold >= folds, fewer people than folds, and
// "<method split ...>: class N (<name>) has no samples" when the train set
// lacks a class.
absl::StatusOr<Split> SplitByPerson(const Dataset& dataset,
                                    const SplitOptions& options);

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_PIPELINE_SPLIT_H_
