#include "common/flags.h"

#include <algorithm>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"

namespace sweepq {
namespace {

// Abseil's usage config takes a plain function pointer, so the file name
// lives here; set once by ParseMainFlags before parsing.
std::string& MainFile() {
  static auto* file = new std::string();
  return *file;
}

bool IsMainFile(absl::string_view file) {
  return absl::StrContains(file, MainFile());
}

}  // namespace

std::vector<std::string> NormalizeFlagSpelling(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  for (size_t i = 1; i < args.size(); ++i) {
    std::string& a = args[i];
    if (a == "--") break;
    if (a.size() < 3 || a[0] != '-' || a[1] != '-') continue;
    const size_t end = std::min(a.find('='), a.size());
    std::replace(a.begin() + 2, a.begin() + static_cast<long>(end), '-', '_');
  }
  return args;
}

std::vector<std::string> ParseMainFlags(int argc, char** argv,
                                        absl::string_view usage,
                                        absl::string_view main_file) {
  MainFile() = std::string(main_file);
  absl::FlagsUsageConfig config;
  config.contains_help_flags = IsMainFile;
  config.contains_helpshort_flags = IsMainFile;
  absl::SetFlagsUsageConfig(config);
  absl::SetProgramUsageMessage(usage);
  std::vector<std::string> spelled = NormalizeFlagSpelling(argc, argv);
  std::vector<char*> raw;
  for (std::string& a : spelled) raw.push_back(a.data());
  std::vector<char*> rest =
      absl::ParseCommandLine(static_cast<int>(raw.size()), raw.data());
  return std::vector<std::string>(rest.begin(), rest.end());
}

}  // namespace sweepq
