#include "tests/testing/subprocess.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "glog/logging.h"

namespace sweepq::testing {

Subprocess::Subprocess(const std::vector<std::string>& argv) {
  int fds[2];
  PCHECK(pipe(fds) == 0);
  pid_ = fork();
  PCHECK(pid_ >= 0);
  if (pid_ == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  stdout_fd_ = fds[0];
}

Subprocess::~Subprocess() {
  if (!exited_) {
    Kill(SIGKILL);
    Wait();
  }
  if (stdout_fd_ >= 0) close(stdout_fd_);
}

bool Subprocess::ReadLine(std::string* line) {
  while (true) {
    size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      *line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return true;
    }
    char chunk[4096];
    ssize_t n = read(stdout_fd_, chunk, sizeof(chunk));
    if (n <= 0) {
      if (buffer_.empty()) return false;
      *line = buffer_;
      buffer_.clear();
      return true;
    }
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

std::string Subprocess::ReadAll() {
  std::string out = buffer_;
  buffer_.clear();
  char chunk[4096];
  ssize_t n;
  while ((n = read(stdout_fd_, chunk, sizeof(chunk))) > 0) {
    out.append(chunk, static_cast<size_t>(n));
  }
  return out;
}

void Subprocess::Kill(int signal) {
  if (!exited_) kill(pid_, signal);
}

int Subprocess::Wait() {
  int status = 0;
  if (exited_) return status;
  PCHECK(waitpid(pid_, &status, 0) == pid_);
  exited_ = true;
  return status;
}

std::string RunCommand(const std::vector<std::string>& argv, int* status) {
  Subprocess p(argv);
  std::string out = p.ReadAll();
  int raw = p.Wait();
  if (status != nullptr) {
    *status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  }
  return out;
}

}  // namespace sweepq::testing
