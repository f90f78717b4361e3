// A small per-command argument parser: `--flag VALUE`, `--flag=VALUE`,
// boolean `--flag`, short aliases (`-o`), positionals, and `--` to end
// flags. Errors are usage errors (exit code 2) that name the command, the
// flag and, for a typo, the flag that was probably meant. `--help`/`-h`
// set help_requested() instead of failing. Not thread-safe.
#ifndef SWEEPQ_CLIENT_ARGS_H_
#define SWEEPQ_CLIENT_ARGS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace sweepq::client {

// What `sweepq CMD --help` prints besides the flags.
struct CommandHelp {
  // "sweepq board [--sweep S] [--metric M] ..." (without a trailing newline).
  std::string usage;
  // One or more sentences on what the command does.
  std::string description;
  // At least one example command line, with a comment.
  std::string example;
};

class ArgParser {
 public:
  // `command` is how errors and help name it ("sweepq board").
  ArgParser(std::string command, CommandHelp help);

  // Registers `--name VALUE` (and `short_name`, e.g. "-o", if not empty).
  // `value` keeps its current contents as the default. Pointers must outlive
  // Parse().
  void AddString(absl::string_view name, std::string* value,
                 absl::string_view value_name, absl::string_view help,
                 absl::string_view short_name = "");
  // `--name N`: an integer in [min, max].
  void AddInt(absl::string_view name, int64_t* value,
              absl::string_view value_name, absl::string_view help, int64_t min,
              int64_t max);
  // `--name`: sets `*value` to true (also accepts --name=true|false).
  void AddBool(absl::string_view name, bool* value, absl::string_view help);
  // `--name N`: seconds (fractions allowed), > 0.
  void AddSeconds(absl::string_view name, double* value,
                  absl::string_view help);

  // Parses `args` (the words after the command). Positionals go to
  // `positionals`. Returns a usage error for an unknown flag, a missing or
  // malformed value, or when the number of positionals is outside
  // [min_positionals, max_positionals].
  absl::Status Parse(const std::vector<std::string>& args,
                     std::vector<std::string>* positionals,
                     size_t min_positionals, size_t max_positionals);

  // True after Parse() saw --help or -h (it then returns OK early).
  bool help_requested() const { return help_requested_; }

  // The full help text: usage, description, flags, example.
  std::string HelpText() const;

  // A usage error that names the command and points at --help.
  absl::Status Error(absl::string_view message) const;

 private:
  enum class Kind { kString, kInt, kBool, kSeconds };
  struct Flag {
    std::string name;        // "--sweep"
    std::string short_name;  // "-o" or ""
    std::string value_name;  // "S"
    std::string help;
    Kind kind;
    std::string* string_value = nullptr;
    int64_t* int_value = nullptr;
    bool* bool_value = nullptr;
    double* seconds_value = nullptr;
    int64_t min = 0;
    int64_t max = 0;
  };

  const Flag* FindFlag(absl::string_view name) const;
  absl::Status SetValue(const Flag& flag, absl::string_view value) const;

  std::string command_;
  CommandHelp help_;
  std::vector<Flag> flags_;
  bool help_requested_ = false;
};

}  // namespace sweepq::client

#endif  // SWEEPQ_CLIENT_ARGS_H_
