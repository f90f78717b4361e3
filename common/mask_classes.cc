#include "common/mask_classes.h"

#include "absl/strings/str_cat.h"

namespace sweepq {

std::vector<std::string> MaskTaskClassNames(absl::Span<const int> bounds) {
  static constexpr const char* kMasks[] = {"wear", "incorrect", "normal"};
  static constexpr const char* kGenders[] = {"male", "female"};
  std::vector<std::string> bands;
  for (size_t b = 0; b <= bounds.size(); ++b) {
    if (bounds.empty()) {
      bands.push_back("any");
    } else if (b == 0) {
      bands.push_back(absl::StrCat("<", bounds[0]));
    } else if (b == bounds.size()) {
      bands.push_back(absl::StrCat(">=", bounds[b - 1]));
    } else {
      bands.push_back(absl::StrCat(bounds[b - 1], "-", bounds[b] - 1));
    }
  }
  std::vector<std::string> names;
  for (const char* mask : kMasks) {
    for (const char* gender : kGenders) {
      for (const std::string& band : bands) {
        names.push_back(absl::StrCat(mask, "/", gender, "/", band));
      }
    }
  }
  return names;
}

}  // namespace sweepq
