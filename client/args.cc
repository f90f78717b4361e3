#include "client/args.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/errors.h"
#include "client/format.h"

namespace sweepq::client {

ArgParser::ArgParser(std::string command, CommandHelp help)
    : command_(std::move(command)), help_(std::move(help)) {}

void ArgParser::AddString(absl::string_view name, std::string* value,
                          absl::string_view value_name, absl::string_view help,
                          absl::string_view short_name) {
  Flag flag;
  flag.name = absl::StrCat("--", name);
  flag.short_name = std::string(short_name);
  flag.value_name = std::string(value_name);
  flag.help = std::string(help);
  flag.kind = Kind::kString;
  flag.string_value = value;
  flags_.push_back(std::move(flag));
}

void ArgParser::AddInt(absl::string_view name, int64_t* value,
                       absl::string_view value_name, absl::string_view help,
                       int64_t min, int64_t max) {
  Flag flag;
  flag.name = absl::StrCat("--", name);
  flag.value_name = std::string(value_name);
  flag.help = std::string(help);
  flag.kind = Kind::kInt;
  flag.int_value = value;
  flag.min = min;
  flag.max = max;
  flags_.push_back(std::move(flag));
}

void ArgParser::AddBool(absl::string_view name, bool* value,
                        absl::string_view help) {
  Flag flag;
  flag.name = absl::StrCat("--", name);
  flag.help = std::string(help);
  flag.kind = Kind::kBool;
  flag.bool_value = value;
  flags_.push_back(std::move(flag));
}

void ArgParser::AddSeconds(absl::string_view name, double* value,
                           absl::string_view help) {
  Flag flag;
  flag.name = absl::StrCat("--", name);
  flag.value_name = "SECONDS";
  flag.help = std::string(help);
  flag.kind = Kind::kSeconds;
  flag.seconds_value = value;
  flags_.push_back(std::move(flag));
}

const ArgParser::Flag* ArgParser::FindFlag(absl::string_view name) const {
  for (const auto& flag : flags_) {
    if (flag.name == name ||
        (!flag.short_name.empty() && flag.short_name == name)) {
      return &flag;
    }
  }
  return nullptr;
}

absl::Status ArgParser::Error(absl::string_view message) const {
  return UsageError(
      absl::StrCat(command_, ": ", message, " (see ", command_, " --help)"));
}

absl::Status ArgParser::SetValue(const Flag& flag,
                                 absl::string_view value) const {
  switch (flag.kind) {
    case Kind::kString:
      *flag.string_value = std::string(value);
      return absl::OkStatus();
    case Kind::kInt: {
      int64_t n = 0;
      if (!absl::SimpleAtoi(value, &n) || n < flag.min || n > flag.max) {
        return Error(absl::StrCat(flag.name, " expects an integer from ",
                                  flag.min, " to ", flag.max, ", got '", value,
                                  "'"));
      }
      *flag.int_value = n;
      return absl::OkStatus();
    }
    case Kind::kSeconds: {
      double s = 0;
      if (!absl::SimpleAtod(value, &s) || !(s > 0) || s > 86400 * 7) {
        return Error(absl::StrCat(
            flag.name, " expects a number of seconds > 0, got '", value, "'"));
      }
      *flag.seconds_value = s;
      return absl::OkStatus();
    }
    case Kind::kBool:
      if (value == "true" || value == "1") {
        *flag.bool_value = true;
      } else if (value == "false" || value == "0") {
        *flag.bool_value = false;
      } else {
        return Error(absl::StrCat(flag.name, " is a switch: use ", flag.name,
                                  " or ", flag.name, "=false"));
      }
      return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::Status ArgParser::Parse(const std::vector<std::string>& args,
                              std::vector<std::string>* positionals,
                              size_t min_positionals, size_t max_positionals) {
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (flags_done || arg == "-" || arg.empty() || arg[0] != '-') {
      positionals->push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    if (arg == "--help" || arg == "-h") {
      help_requested_ = true;
      return absl::OkStatus();
    }
    absl::string_view name = arg;
    absl::string_view inline_value;
    bool has_inline = false;
    size_t eq = arg.find('=');
    if (eq != std::string::npos && absl::StartsWith(arg, "--")) {
      name = absl::string_view(arg).substr(0, eq);
      inline_value = absl::string_view(arg).substr(eq + 1);
      has_inline = true;
    }
    const Flag* flag = FindFlag(name);
    if (flag == nullptr) {
      std::string message = absl::StrCat("unknown flag ", name);
      // Suggest the closest known flag for a likely typo.
      const Flag* closest = nullptr;
      size_t best = 3;
      for (const auto& f : flags_) {
        size_t d = EditDistance(name, f.name);
        if (d < best) {
          best = d;
          closest = &f;
        }
      }
      if (closest != nullptr) {
        absl::StrAppend(&message, "; did you mean ", closest->name, "?");
      }
      return Error(message);
    }
    if (flag->kind == Kind::kBool) {
      absl::Status status = SetValue(*flag, has_inline ? inline_value : "true");
      if (!status.ok()) return status;
      continue;
    }
    if (!has_inline) {
      if (i + 1 >= args.size()) {
        return Error(absl::StrCat(flag->name, " needs a value (", flag->name,
                                  " ", flag->value_name, ")"));
      }
      inline_value = args[++i];
    }
    absl::Status status = SetValue(*flag, inline_value);
    if (!status.ok()) return status;
  }
  if (positionals->size() < min_positionals) {
    return Error(absl::StrCat("missing argument; usage: ", help_.usage));
  }
  if (positionals->size() > max_positionals) {
    return Error(absl::StrCat("unexpected argument '",
                              (*positionals)[max_positionals],
                              "'; usage: ", help_.usage));
  }
  return absl::OkStatus();
}

std::string ArgParser::HelpText() const {
  std::string out =
      absl::StrCat("Usage: ", help_.usage, "\n\n", help_.description, "\n");
  if (!flags_.empty()) {
    out.append("\nFlags:\n");
    std::vector<std::string> left;
    size_t width = 0;
    for (const auto& flag : flags_) {
      std::string l = flag.short_name.empty()
                          ? flag.name
                          : absl::StrCat(flag.short_name, ", ", flag.name);
      if (!flag.value_name.empty()) absl::StrAppend(&l, " ", flag.value_name);
      width = std::max(width, l.size());
      left.push_back(std::move(l));
    }
    for (size_t i = 0; i < flags_.size(); ++i) {
      absl::StrAppend(&out, "  ", left[i],
                      std::string(width - left[i].size() + 2, ' '),
                      flags_[i].help, "\n");
    }
  }
  absl::StrAppend(&out, "\nExample:\n", help_.example);
  if (!absl::EndsWith(out, "\n")) out.push_back('\n');
  return out;
}

}  // namespace sweepq::client
