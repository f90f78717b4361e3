// The class names of the mask task (mask state 3 x gender 2 x age band),
// held once for the training program (worker/pipeline/dataset.h) and the
// CLI's pictures (client/plot.h). Pure functions; thread-safe.
#ifndef SWEEPQ_COMMON_MASK_CLASSES_H_
#define SWEEPQ_COMMON_MASK_CLASSES_H_

#include <string>
#include <vector>

#include "absl/types/span.h"

namespace sweepq {

// Returns the mask task's class names for age band bounds `bounds`
// (strictly ascending exclusive upper bounds of the first bands), class =
// mask * 2B + gender * B + band with B = bounds.size() + 1 bands: mask
// state (wear, incorrect, normal) x gender (male, female) x band, written
// "wear/male/<30". With [30, 60] the bands are "<30", "30-59", ">=60"
// (18 classes); with no bounds the one band is "any".
std::vector<std::string> MaskTaskClassNames(absl::Span<const int> bounds);

}  // namespace sweepq

#endif  // SWEEPQ_COMMON_MASK_CLASSES_H_
