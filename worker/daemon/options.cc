#include "worker/daemon/options.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace sweepq::worker {
namespace {

namespace fs = std::filesystem;

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' ||
         c == '.' || c == '-';
}

absl::Status CheckNonNegative(absl::string_view flag, int64_t ms) {
  if (ms < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " must be >= 0, got ", ms));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ResolveToken(const WorkerFlags& flags) {
  const int sources = !flags.token.empty() + !flags.token_file.empty();
  if (sources > 1) {
    return absl::InvalidArgumentError(
        "--token and --token-file are both given; pass one");
  }
  std::string token;
  if (!flags.token_file.empty()) {
    std::ifstream in(flags.token_file);
    if (!in) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--token-file: cannot read ", flags.token_file));
    }
    std::stringstream text;
    text << in.rdbuf();
    token = std::string(absl::StripAsciiWhitespace(text.str()));
    if (token.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--token-file: ", flags.token_file, " is empty"));
    }
  } else if (!flags.token.empty()) {
    token = flags.token;
  } else {
    token = std::string(absl::StripAsciiWhitespace(flags.env_token));
  }
  if (token.empty()) {
    return absl::InvalidArgumentError(
        "no worker token: pass --token-file FILE (or set SWEEPQ_WORKER_TOKEN, "
        "or --token TOKEN); `sweepq-server team create` prints it");
  }
  if (token.find_first_of(" \t\r\n") != std::string::npos) {
    return absl::InvalidArgumentError("the worker token contains whitespace");
  }
  return token;
}

std::string LocalHostName() {
  char name[256] = {0};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') {
    return "localhost";
  }
  return name;
}

}  // namespace

std::string Slot::Describe() const {
  return absl::StrCat(gpu ? "gpu " : "cpu ",
                      gpu ? cuda_visible_devices : std::to_string(index));
}

absl::StatusOr<std::map<std::string, std::string>> ParseDatasets(
    const std::vector<std::string>& entries) {
  std::map<std::string, std::string> datasets;
  for (const std::string& entry : entries) {
    for (absl::string_view item : absl::StrSplit(entry, ',')) {
      if (item.empty()) continue;
      const size_t eq = item.find('=');
      if (eq == absl::string_view::npos) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--data \"", item, "\": expected NAME=DIR, e.g. mask=/data/mask"));
      }
      const std::string name(item.substr(0, eq));
      const std::string dir(item.substr(eq + 1));
      if (name.empty() ||
          !std::all_of(name.begin(), name.end(), IsNameChar)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--data \"", item,
            "\": the name must be letters, digits, '_', '.' or '-'"));
      }
      if (datasets.count(name) != 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("--data: data set '", name, "' is given twice"));
      }
      std::error_code ec;
      if (dir.empty() || !std::filesystem::is_directory(dir, ec)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--data ", name, "=", dir, ": not a directory"));
      }
      std::filesystem::path absolute = std::filesystem::absolute(dir, ec);
      if (ec) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--data ", name, "=", dir, ": ", ec.message()));
      }
      datasets[name] = absolute.lexically_normal().string();
    }
  }
  return datasets;
}

absl::StatusOr<std::vector<Slot>> ParseGpuList(absl::string_view list) {
  std::vector<Slot> slots;
  std::set<std::string> seen;
  for (absl::string_view raw : absl::StrSplit(list, ',')) {
    const std::string item(absl::StripAsciiWhitespace(raw));
    const bool index = !item.empty() &&
                       std::all_of(item.begin(), item.end(), [](char c) {
                         return absl::ascii_isdigit(static_cast<unsigned char>(c));
                       });
    const bool uuid = (absl::StartsWith(item, "GPU-") ||
                       absl::StartsWith(item, "MIG-")) &&
                      std::all_of(item.begin(), item.end(), IsNameChar);
    if (!index && !uuid) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--gpus \"", list, "\": \"", item,
          "\" is not a GPU index (0, 1, ...) or a GPU-/MIG- UUID"));
    }
    if (!seen.insert(item).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--gpus \"", list, "\": GPU ", item, " is listed twice"));
    }
    Slot slot;
    slot.index = static_cast<int>(slots.size());
    slot.cuda_visible_devices = item;
    slot.gpu = true;
    slots.push_back(slot);
  }
  return slots;
}

absl::StatusOr<int> CountGpus() {
  FILE* pipe = popen("nvidia-smi -L 2>/dev/null", "r");
  if (pipe == nullptr) return 0;
  int count = 0;
  char line[512];
  while (fgets(line, sizeof(line), pipe) != nullptr) {
    if (absl::StartsWith(line, "GPU ")) ++count;
  }
  const int status = pclose(pipe);
  if (status != 0) return 0;  // not installed, or no driver
  return count;
}

std::string SelfExecutablePath(const char* argv0) {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) return self.string();
  return argv0 != nullptr ? std::string(argv0) : std::string();
}

std::vector<std::string> MergeRepeatedFlag(const std::vector<std::string>& args,
                                           absl::string_view name) {
  const std::string bare_long = absl::StrCat("--", name);
  const std::string bare_short = absl::StrCat("-", name);
  std::vector<std::string> out;
  std::vector<std::string> values;
  size_t first = std::string::npos;
  bool after_dashdash = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (after_dashdash || a == "--") {
      after_dashdash = true;
      out.push_back(a);
      continue;
    }
    std::string value;
    bool match = false;
    if (a == bare_long || a == bare_short) {
      if (i + 1 < args.size()) {
        value = args[++i];
        match = true;
      }
    } else if (absl::StartsWith(a, bare_long + "=")) {
      value = a.substr(bare_long.size() + 1);
      match = true;
    } else if (absl::StartsWith(a, bare_short + "=")) {
      value = a.substr(bare_short.size() + 1);
      match = true;
    }
    if (!match) {
      out.push_back(a);
      continue;
    }
    if (first == std::string::npos) {
      first = out.size();
      out.push_back("");
    }
    values.push_back(value);
  }
  if (first != std::string::npos) {
    out[first] = absl::StrCat(bare_long, "=", absl::StrJoin(values, ","));
  }
  return out;
}

absl::StatusOr<WorkerOptions> ResolveWorkerOptions(
    const WorkerFlags& flags, const std::string& self_path,
    const std::function<absl::StatusOr<int>()>& count_gpus) {
  WorkerOptions options;
  if (flags.server.empty()) {
    return absl::InvalidArgumentError(
        "--server HOST:PORT is required (the coordinator's address)");
  }
  options.server = flags.server;
  ASSIGN_OR_RETURN(options.token, ResolveToken(flags));
  if (!flags.tls_ca.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(flags.tls_ca, ec)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tls-ca: cannot read ", flags.tls_ca));
    }
    options.tls_ca_file = flags.tls_ca;
  }
  options.host = LocalHostName();
  options.worker_id = flags.worker_id.empty() ? options.host : flags.worker_id;
  if (options.worker_id.size() > 256) {
    return absl::InvalidArgumentError("--worker-id is longer than 256 bytes");
  }
  ASSIGN_OR_RETURN(options.datasets, ParseDatasets(flags.data));
  if (options.datasets.empty()) {
    return absl::InvalidArgumentError(
        "--data NAME=DIR is required (the data sets this host holds, e.g. "
        "--data mask=/data/mask)");
  }

  if (!flags.gpus.empty() && flags.slots != 0) {
    return absl::InvalidArgumentError(
        "--gpus and --slots are exclusive: --gpus 0,1 runs one run per GPU, "
        "--slots N runs N runs on the CPU");
  }
  if (flags.slots < 0 || flags.slots > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("--slots must be in 0..256, got ", flags.slots));
  }
  if (!flags.gpus.empty()) {
    ASSIGN_OR_RETURN(options.slots, ParseGpuList(flags.gpus));
  } else if (flags.slots > 0) {
    for (int i = 0; i < flags.slots; ++i) {
      Slot slot;
      slot.index = i;
      options.slots.push_back(slot);
    }
  } else {
    ASSIGN_OR_RETURN(int gpus, count_gpus());
    if (gpus > 0) {
      for (int i = 0; i < gpus; ++i) {
        Slot slot;
        slot.index = i;
        slot.cuda_visible_devices = std::to_string(i);
        slot.gpu = true;
        options.slots.push_back(slot);
      }
    } else {
      options.slots.push_back(Slot{});
    }
  }

  options.work_dir = flags.work_dir.empty() ? "sweepq-worker" : flags.work_dir;
  options.work_dir =
      std::filesystem::absolute(options.work_dir).lexically_normal().string();
  options.spool_dir = flags.spool_dir.empty()
                          ? options.work_dir + "/spool"
                          : std::filesystem::absolute(flags.spool_dir)
                                .lexically_normal()
                                .string();

  options.train_binary =
      !flags.train_binary.empty()
          ? flags.train_binary
          : (std::filesystem::path(self_path).parent_path() / "sweepq-train")
                .string();
  struct stat st;
  if (stat(options.train_binary.c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
      access(options.train_binary.c_str(), X_OK) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--train-binary: ", options.train_binary,
        " is not an executable file (build sweepq-train or pass "
        "--train-binary PATH)"));
  }
  options.train_binary = std::filesystem::absolute(options.train_binary).string();

  RETURN_IF_ERROR(CheckNonNegative("grace-period-ms", flags.grace_period_ms));
  RETURN_IF_ERROR(CheckNonNegative("lease-wait-ms", flags.lease_wait_ms));
  RETURN_IF_ERROR(CheckNonNegative("probe-interval-ms", flags.probe_interval_ms));
  if (flags.max_backoff_ms < 100) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max-backoff-ms must be >= 100, got ", flags.max_backoff_ms));
  }
  options.threads_per_slot = flags.threads_per_slot;
  options.max_consecutive_failures = flags.max_consecutive_failures;
  options.grace_period = absl::Milliseconds(flags.grace_period_ms);
  options.lease_wait = absl::Milliseconds(flags.lease_wait_ms);
  options.probe_interval = absl::Milliseconds(flags.probe_interval_ms);
  options.max_backoff = absl::Milliseconds(flags.max_backoff_ms);
  options.keep_work_dirs = flags.keep_work_dirs;
  return options;
}

}  // namespace sweepq::worker
