// Runs the real `sweepq` binary for end-to-end tests, capturing stdout and
// stderr separately, with extra environment variables and optional stdin.
#ifndef SWEEPQ_TESTS_CLIENT_CLI_RUNNER_H_
#define SWEEPQ_TESTS_CLIENT_CLI_RUNNER_H_

#include <map>
#include <string>
#include <vector>

namespace sweepq::testing {

struct CliResult {
  int exit_code = -1;  // 128 + signal when killed
  std::string out;
  std::string err;
};

// Runs `argv` (argv[0] a path) with the current environment plus `env`
// (a value of "\x01unset" removes the variable), feeding `stdin_text`.
// Blocks until the process exits.
CliResult RunProcess(const std::vector<std::string>& argv,
                     const std::map<std::string, std::string>& env = {},
                     const std::string& stdin_text = "");

}  // namespace sweepq::testing

#endif  // SWEEPQ_TESTS_CLIENT_CLI_RUNNER_H_
