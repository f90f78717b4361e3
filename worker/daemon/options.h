// WorkerOptions: everything the worker daemon runs with, and the checks
// that turn worker_main's raw flag values into it (data sets, slots, token
// sources, defaults). Every function here is thread-safe.
#ifndef SWEEPQ_WORKER_DAEMON_OPTIONS_H_
#define SWEEPQ_WORKER_DAEMON_OPTIONS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace sweepq::worker {

// One place a run can execute: a GPU, or a share of the CPU.
struct Slot {
  int index = 0;
  // CUDA_VISIBLE_DEVICES for the child: the GPU's index (or UUID), or ""
  // for a CPU slot, so that a CPU run never grabs a GPU.
  std::string cuda_visible_devices;
  bool gpu = false;

  // "gpu 1" or "cpu 0", for logs.
  std::string Describe() const;
};

struct WorkerOptions {
  // Coordinator address HOST:PORT, worker token, PEM CA ("" = plaintext).
  std::string server;
  std::string token;
  std::string tls_ca_file;
  // Stable name of this daemon (default: the host name) and its host.
  std::string worker_id;
  std::string host;
  // Data sets held locally: name -> absolute directory.
  std::map<std::string, std::string> datasets;
  std::vector<Slot> slots;
  // Runs work under <work_dir>/runs; event spools under spool_dir.
  std::string work_dir;
  std::string spool_dir;
  // The sweepq-train executable started per run.
  std::string train_binary;
  // `--threads` passed to each child. 0 = the config decides, except that
  // with several CPU slots a config leaving `threads` at 0 (all cores) gets
  // cores / slots.
  uint32_t threads_per_slot = 0;
  // Circuit breaker: stop leasing after this many consecutive failed runs
  // (0 = never).
  uint32_t max_consecutive_failures = 3;
  // Between SIGTERM and SIGKILL when a child must stop.
  absl::Duration grace_period = absl::Seconds(10);
  // Long-poll length of one Lease call.
  absl::Duration lease_wait = absl::Seconds(30);
  // Deadline of every unary call.
  absl::Duration rpc_timeout = absl::Seconds(20);
  // How often a tripped breaker or a drained worker asks the coordinator
  // whether it was cleared.
  absl::Duration probe_interval = absl::Seconds(10);
  // Ceiling of the reconnect backoff.
  absl::Duration max_backoff = absl::Seconds(10);
  // Keep each finished run's work directory (default: removed after a
  // successful run's artifacts are uploaded).
  bool keep_work_dirs = false;
  // Reported to the coordinator.
  std::string version;
};

// worker_main's flag values, before they are checked.
struct WorkerFlags {
  std::string server;
  std::string token;
  std::string token_file;
  // Value of $SWEEPQ_WORKER_TOKEN ("" if unset).
  std::string env_token;
  std::string tls_ca;
  std::string worker_id;
  std::vector<std::string> data;  // NAME=DIR each
  std::string gpus;               // "0,1" or ""
  int32_t slots = 0;              // 0 = detect
  std::string work_dir;
  std::string spool_dir;          // "" = <work_dir>/spool
  std::string train_binary;       // "" = sweepq-train next to this program
  uint32_t threads_per_slot = 0;
  uint32_t max_consecutive_failures = 3;
  int64_t grace_period_ms = 10'000;
  int64_t lease_wait_ms = 30'000;
  int64_t probe_interval_ms = 10'000;
  int64_t max_backoff_ms = 10'000;
  bool keep_work_dirs = false;
};

// Checks the flags and fills WorkerOptions. `count_gpus` is asked for the
// number of CUDA devices when neither --gpus nor --slots is given (see
// CountGpus); `self_path` is this program's path (default train binary:
// `sweepq-train` in its directory). Returns INVALID_ARGUMENT naming the
// flag for: no --server; no token or two token sources; an unreadable
// token file; a bad --data entry (see ParseDatasets); --gpus together with
// --slots; a bad --gpus list; a train binary that is not an executable
// file; a negative duration.
absl::StatusOr<WorkerOptions> ResolveWorkerOptions(
    const WorkerFlags& flags, const std::string& self_path,
    const std::function<absl::StatusOr<int>()>& count_gpus);

// Parses `NAME=DIR` entries (each may also hold several, comma-separated).
// INVALID_ARGUMENT for a missing `=`, an empty or odd name (allowed:
// letters, digits, `_ . -`), a name given twice, or a DIR that is not a
// directory. Directories are made absolute.
absl::StatusOr<std::map<std::string, std::string>> ParseDatasets(
    const std::vector<std::string>& entries);

// Parses "0,1" (indexes or GPU-/MIG- UUIDs) into GPU slots.
// INVALID_ARGUMENT for an empty item, an odd one, or a duplicate.
absl::StatusOr<std::vector<Slot>> ParseGpuList(absl::string_view list);

// Counts the CUDA devices `nvidia-smi -L` lists; 0 when the command is not
// installed or fails (a CPU-only host).
absl::StatusOr<int> CountGpus();

// This program's absolute path (/proc/self/exe), or `argv0` when that
// cannot be read.
std::string SelfExecutablePath(const char* argv0);

// Rewrites repeated `--NAME V` / `--NAME=V` arguments into one
// `--NAME=V1,V2` (Abseil keeps only the last occurrence of a flag), in the
// place of the first. Arguments after "--" are left alone.
std::vector<std::string> MergeRepeatedFlag(const std::vector<std::string>& args,
                                           absl::string_view name);

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_DAEMON_OPTIONS_H_
