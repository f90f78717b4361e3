#include "worker/daemon/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"

namespace sweepq::worker {
namespace {

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

absl::Status Errno(absl::string_view what, int err) {
  return absl::InternalError(absl::StrCat(what, ": ", strerror(err)));
}

}  // namespace

std::string ExitStatus::Describe() const {
  if (signaled) {
    return absl::StrCat("signal ", signal, " (", strsignal(signal), ")");
  }
  return absl::StrCat("exit status ", code);
}

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    const ChildSpec& spec) {
  if (spec.argv.empty()) return absl::InvalidArgumentError("empty argv");
  const std::string& program = spec.argv[0];
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    return Errno(absl::StrCat("cannot start ", program, ": pipe"), errno);
  }
  // The child writes its errno here if exec fails; the pipe closes on a
  // successful exec (O_CLOEXEC), so an empty read means it ran.
  int exec_err[2];
  if (pipe2(exec_err, O_CLOEXEC) != 0) {
    const int err = errno;
    close(out[0]);
    close(out[1]);
    return Errno(absl::StrCat("cannot start ", program, ": pipe"), err);
  }
  const int err_fd = open(spec.stderr_path.c_str(),
                          O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (err_fd < 0 || null_fd < 0) {
    const int err = errno;
    for (int fd : {out[0], out[1], exec_err[0], exec_err[1], err_fd, null_fd}) {
      if (fd >= 0) close(fd);
    }
    return Errno(absl::StrCat("cannot open ", spec.stderr_path), err);
  }

  // Everything the child touches is prepared before fork: only
  // async-signal-safe calls may run between fork and exec.
  std::vector<char*> argv;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const char* cwd = spec.cwd.empty() ? nullptr : spec.cwd.c_str();
  const pid_t parent = getpid();

  const pid_t pid = fork();
  if (pid < 0) {
    const int err = errno;
    for (int fd : {out[0], out[1], exec_err[0], exec_err[1], err_fd, null_fd}) {
      close(fd);
    }
    return Errno(absl::StrCat("cannot start ", program, ": fork"), err);
  }
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the daemon died already
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2}) {
      sigaction(sig, &dfl, nullptr);
    }
    dup2(null_fd, STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    dup2(err_fd, STDERR_FILENO);
    // Descriptors some library opened without O_CLOEXEC must not leak into
    // the child (ENOSYS on old kernels is fine: ours are all O_CLOEXEC).
    syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
    int err = 0;
    if (cwd != nullptr && chdir(cwd) != 0) {
      err = errno;
    } else {
      execve(argv[0], argv.data(), envp.data());
      err = errno;
    }
    ssize_t ignored = write(exec_err[1], &err, sizeof(err));
    (void)ignored;
    _exit(127);
  }
  setpgid(pid, pid);  // also here, so signals work before the child runs
  close(out[1]);
  close(exec_err[1]);
  close(err_fd);
  close(null_fd);
  int child_errno = 0;
  ssize_t n;
  do {
    n = read(exec_err[0], &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  close(exec_err[0]);
  if (n == static_cast<ssize_t>(sizeof(child_errno))) {
    int ignored;
    waitpid(pid, &ignored, 0);
    close(out[0]);
    return Errno(absl::StrCat("cannot run ", program), child_errno);
  }
  return std::unique_ptr<ChildProcess>(
      new ChildProcess(pid, out[0], spec.on_exit));
}

ChildProcess::ChildProcess(pid_t pid, int stdout_fd,
                           std::function<void()> on_exit)
    : pid_(pid), stdout_fd_(stdout_fd), on_exit_(std::move(on_exit)) {
  waiter_ = std::thread([this] { WaitLoop(); });
}

ChildProcess::~ChildProcess() {
  Signal(SIGKILL);
  waiter_.join();
  close(stdout_fd_);
}

void ChildProcess::WaitLoop() {
  siginfo_t info;
  memset(&info, 0, sizeof(info));
  // WNOWAIT: observe the exit but leave the zombie, so that the pid (and
  // the process group id) cannot be reused while Signal may still use it.
  while (waitid(P_PID, pid_, &info, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
  }
  ExitStatus status;
  if (info.si_code == CLD_EXITED) {
    status.code = info.si_status;
  } else {
    status.signaled = true;
    status.signal = info.si_status;
  }
  {
    // Signal() holds mu_, so it never races with the reaping below.
    absl::MutexLock lock(&mu_);
    // Whatever the child started dies with it (and releases the stdout
    // pipe).
    kill(-pid_, SIGKILL);
    int ignored;
    while (waitpid(pid_, &ignored, 0) < 0 && errno == EINTR) {
    }
    status_ = status;
    exited_ = true;
  }
  if (on_exit_) on_exit_();
}

void ChildProcess::Signal(int signal) {
  absl::MutexLock lock(&mu_);
  if (!exited_) kill(-pid_, signal);
}

bool ChildProcess::WaitForExit(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&exited_), timeout);
}

bool ChildProcess::exited() const {
  absl::MutexLock lock(&mu_);
  return exited_;
}

ExitStatus ChildProcess::exit_status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

}  // namespace sweepq::worker
