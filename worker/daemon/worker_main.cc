// sweepq-worker: the daemon a team runs once per GPU node. Flags are read
// here only and handed on in WorkerOptions; see worker/daemon/worker_daemon.h.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/synchronization/mutex.h"
#include "common/flags.h"
#include "glog/logging.h"
#include "worker/daemon/options.h"
#include "worker/daemon/worker_daemon.h"

ABSL_FLAG(std::string, server, "", "coordinator address, HOST:PORT");
ABSL_FLAG(std::string, token, "",
          "worker token (visible in `ps`: prefer --token-file or "
          "$SWEEPQ_WORKER_TOKEN)");
ABSL_FLAG(std::string, token_file, "", "file holding the worker token");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM file of the CA that signed the coordinator's certificate "
          "(enables TLS)");
ABSL_FLAG(std::string, worker_id, "",
          "stable name of this daemon (default: the host name)");
ABSL_FLAG(std::vector<std::string>, data, {},
          "NAME=DIR of a data set this host holds; repeat or comma-separate");
ABSL_FLAG(std::string, gpus, "",
          "GPUs to use, one run each: 0,1 (default: every GPU nvidia-smi "
          "lists, or one CPU slot without GPUs)");
ABSL_FLAG(int32_t, slots, 0, "run N runs at once on the CPU (no GPU)");
ABSL_FLAG(std::string, work_dir, "sweepq-worker",
          "runs' work directories (runs/), face-crop cache (cache/), spool");
ABSL_FLAG(std::string, spool_dir, "",
          "event spool directory (default: WORK_DIR/spool)");
ABSL_FLAG(std::string, train_binary, "",
          "the sweepq-train executable (default: next to sweepq-worker)");
ABSL_FLAG(uint32_t, threads_per_slot, 0,
          "pass --threads N to every run (0: the run's config decides; "
          "with several CPU slots, cores / slots when it says 0)");
ABSL_FLAG(uint32_t, max_consecutive_failures, 3,
          "circuit breaker: stop leasing after N failed runs in a row "
          "(0 = never)");
ABSL_FLAG(int64_t, grace_period_ms, 10'000,
          "after SIGTERM to a run (cancel, prune, shutdown), SIGKILL it "
          "after this long");
ABSL_FLAG(int64_t, lease_wait_ms, 30'000, "long-poll length of one Lease");
ABSL_FLAG(int64_t, probe_interval_ms, 10'000,
          "how often a tripped or drained worker asks whether it was cleared");
ABSL_FLAG(int64_t, max_backoff_ms, 10'000,
          "ceiling of the jittered exponential reconnect backoff");
ABSL_FLAG(bool, keep_work_dirs, false,
          "keep every run's work directory (default: removed after a "
          "successful upload; failed runs' are always kept)");

namespace {

constexpr char kUsage[] = R"(the sweepq worker daemon: leases runs from the coordinator and trains them.

Usage:
  sweepq-worker --server HOST:PORT --token-file FILE --data NAME=DIR [--data ...]
                [--gpus 0,1 | --slots N] [--work-dir DIR] [--tls-ca FILE]

One sweepq-train child per slot (CUDA_VISIBLE_DEVICES set to its GPU).
SIGTERM drains (finish the runs in progress, lease nothing more, exit 0);
a second SIGTERM stops the runs now (they are retried elsewhere).

Example:
  SWEEPQ_WORKER_TOKEN=... sweepq-worker --server coord:50051 \
      --data mask=/data/mask --gpus 0,1 --work-dir /var/lib/sweepq-worker

Flags may be written with dashes or underscores (--work-dir = --work_dir).
See docs/worker.md.
)";

}  // namespace

int main(int argc, char** argv) {
  // Abseil keeps only the last --data; merge repeated ones first.
  std::vector<std::string> merged = sweepq::worker::MergeRepeatedFlag(
      std::vector<std::string>(argv, argv + argc), "data");
  std::vector<char*> merged_argv;
  for (std::string& a : merged) merged_argv.push_back(a.data());
  merged_argv.push_back(nullptr);
  std::vector<std::string> args = sweepq::ParseMainFlags(
      static_cast<int>(merged.size()), merged_argv.data(), kUsage,
      "worker/daemon/worker_main.cc");
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  if (args.size() > 1) {
    std::cerr << "sweepq-worker: unexpected argument '" << args[1]
              << "' (see --help)\n";
    return 2;
  }

  // Block the stop signals in every thread; one thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGUSR1);  // "stop waiting", sent by main at exit
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  sweepq::worker::WorkerFlags flags;
  flags.server = absl::GetFlag(FLAGS_server);
  flags.token = absl::GetFlag(FLAGS_token);
  flags.token_file = absl::GetFlag(FLAGS_token_file);
  const char* env_token = std::getenv("SWEEPQ_WORKER_TOKEN");
  flags.env_token = env_token != nullptr ? env_token : "";
  flags.tls_ca = absl::GetFlag(FLAGS_tls_ca);
  flags.worker_id = absl::GetFlag(FLAGS_worker_id);
  flags.data = absl::GetFlag(FLAGS_data);
  flags.gpus = absl::GetFlag(FLAGS_gpus);
  flags.slots = absl::GetFlag(FLAGS_slots);
  flags.work_dir = absl::GetFlag(FLAGS_work_dir);
  flags.spool_dir = absl::GetFlag(FLAGS_spool_dir);
  flags.train_binary = absl::GetFlag(FLAGS_train_binary);
  flags.threads_per_slot = absl::GetFlag(FLAGS_threads_per_slot);
  flags.max_consecutive_failures = absl::GetFlag(FLAGS_max_consecutive_failures);
  flags.grace_period_ms = absl::GetFlag(FLAGS_grace_period_ms);
  flags.lease_wait_ms = absl::GetFlag(FLAGS_lease_wait_ms);
  flags.probe_interval_ms = absl::GetFlag(FLAGS_probe_interval_ms);
  flags.max_backoff_ms = absl::GetFlag(FLAGS_max_backoff_ms);
  flags.keep_work_dirs = absl::GetFlag(FLAGS_keep_work_dirs);

  auto options = sweepq::worker::ResolveWorkerOptions(
      flags, sweepq::worker::SelfExecutablePath(argv[0]),
      sweepq::worker::CountGpus);
  if (!options.ok()) {
    std::cerr << "sweepq-worker: " << options.status().message() << "\n";
    return 2;
  }
  options->version = "sweepq-worker " SWEEPQ_VERSION;
  auto daemon = sweepq::worker::WorkerDaemon::Create(*options);
  if (!daemon.ok()) {
    std::cerr << "sweepq-worker: " << daemon.status().message() << "\n";
    return 1;
  }

  std::thread signal_thread([&daemon, &signals] {
    int stops = 0;
    while (true) {
      int sig = 0;
      if (sigwait(&signals, &sig) != 0 || sig == SIGUSR1) return;
      if (++stops == 1) {
        LOG(INFO) << "signal " << sig << ": draining (again to stop now)";
        (*daemon)->Drain();
      } else {
        LOG(WARNING) << "signal " << sig << ": stopping the runs now";
        (*daemon)->Abort();
      }
    }
  });
  absl::Status status = (*daemon)->Run();
  pthread_kill(signal_thread.native_handle(), SIGUSR1);
  signal_thread.join();
  if (!status.ok()) {
    std::cerr << "sweepq-worker: " << status.message() << "\n";
    return 1;
  }
  return 0;
}
