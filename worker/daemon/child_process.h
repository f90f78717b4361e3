// ChildProcess: one sweepq-train process under the daemon's supervision.
//
// The child runs in its own process group (signals reach anything it
// starts), with stdin from /dev/null, stdout on a pipe the daemon reads,
// stderr appended to a file, no signals blocked, and SIGKILL as its parent-
// death signal: if the daemon dies (even by kill -9) the child dies with it
// and never trains on under a lease nobody heartbeats. The parent-death
// signal follows the *thread* that started the child, so that thread must
// outlive it (the daemon starts children from the slot thread that
// supervises them).
//
// A waiter thread notices the exit, kills what is left of the process
// group and reaps the child; signals are never sent after that, so a
// recycled pid is never hit.
//
// Thread safety: every method may be called from any thread.
#ifndef SWEEPQ_WORKER_DAEMON_CHILD_PROCESS_H_
#define SWEEPQ_WORKER_DAEMON_CHILD_PROCESS_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace sweepq::worker {

struct ChildSpec {
  // argv[0] is the program's path (no PATH search).
  std::vector<std::string> argv;
  // The whole environment, "NAME=VALUE" each.
  std::vector<std::string> env;
  // The child's stderr is appended to this file (created 0644).
  std::string stderr_path;
  // Working directory; "" = the daemon's.
  std::string cwd;
  // Called once from the waiter thread after the child exited and was
  // reaped (optional); it must not destroy the ChildProcess.
  std::function<void()> on_exit;
};

// How a child ended.
struct ExitStatus {
  bool signaled = false;
  int code = 0;    // exit status, when !signaled
  int signal = 0;  // terminating signal, when signaled

  bool success() const { return !signaled && code == 0; }
  // "exit status 3" or "signal 9 (Killed)".
  std::string Describe() const;
};

class ChildProcess {
 public:
  // Starts the child. INTERNAL naming the program (and errno) when the
  // stderr file cannot be opened, fork fails, or exec fails (a missing or
  // non-executable program is reported here, not as an exit status).
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(
      const ChildSpec& spec);

  // SIGKILLs the process group if the child still runs, reaps it and closes
  // the pipe.
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Read end of the child's stdout (blocking reads; owned by this object).
  int stdout_fd() const { return stdout_fd_; }

  // Sends `signal` to the child's process group; nothing once it exited.
  void Signal(int signal);

  // Waits up to `timeout` for the child to exit; true once it has.
  bool WaitForExit(absl::Duration timeout);

  bool exited() const;
  // How it ended; meaningful once exited().
  ExitStatus exit_status() const;

 private:
  ChildProcess(pid_t pid, int stdout_fd, std::function<void()> on_exit);
  void WaitLoop();

  const pid_t pid_;
  const int stdout_fd_;
  mutable absl::Mutex mu_;
  bool exited_ ABSL_GUARDED_BY(mu_) = false;
  ExitStatus status_ ABSL_GUARDED_BY(mu_);
  const std::function<void()> on_exit_;
  std::thread waiter_;
};

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_DAEMON_CHILD_PROCESS_H_
