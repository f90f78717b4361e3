// Subprocess: starts a program with its stdout on a pipe, for tests that
// drive the real binaries (kill -9 included).
#ifndef SWEEPQ_TESTS_TESTING_SUBPROCESS_H_
#define SWEEPQ_TESTS_TESTING_SUBPROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

namespace sweepq::testing {

class Subprocess {
 public:
  // Starts `argv[0]` (a path) with the arguments; stderr is inherited.
  explicit Subprocess(const std::vector<std::string>& argv);
  ~Subprocess();  // SIGKILLs the process if still running
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  // Reads stdout up to and including the next newline (without it).
  // Returns false at end of file.
  bool ReadLine(std::string* line);
  // Reads stdout until end of file.
  std::string ReadAll();
  // Sends a signal.
  void Kill(int signal);
  // Waits for exit; returns the raw wait status.
  int Wait();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string buffer_;
  bool exited_ = false;
};

// Runs a command to completion and returns its stdout; `status` gets the
// exit code (or 128 + signal).
std::string RunCommand(const std::vector<std::string>& argv, int* status);

}  // namespace sweepq::testing

#endif  // SWEEPQ_TESTS_TESTING_SUBPROCESS_H_
