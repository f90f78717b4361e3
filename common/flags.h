// Flag parsing shared by the project's mains: Abseil flags, with --help
// limited to the main's own flags and dashed spellings accepted.
#ifndef SWEEPQ_COMMON_FLAGS_H_
#define SWEEPQ_COMMON_FLAGS_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace sweepq {

// Rewrites --foo-bar[=v] as --foo_bar[=v] (Abseil only parses underscores;
// people, docs and neighbouring tools write dashes). Stops at "--".
std::vector<std::string> NormalizeFlagSpelling(int argc, char** argv);

// Sets `usage` as the program's usage text, shows only flags defined in a
// file whose path contains `main_file` under --help, normalises the
// spelling and parses. Exits on --help or a bad flag (Abseil's behaviour).
// Returns the positional arguments, argv[0] first.
std::vector<std::string> ParseMainFlags(int argc, char** argv,
                                        absl::string_view usage,
                                        absl::string_view main_file);

}  // namespace sweepq

#endif  // SWEEPQ_COMMON_FLAGS_H_
