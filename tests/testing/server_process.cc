#include "tests/testing/server_process.h"

#include <regex>

#include "absl/strings/str_cat.h"

namespace sweepq::testing {

std::string ServerBinary() {
  return std::string(SWEEPQ_BINARY_DIR) + "/server/sweepq-server";
}

absl::StatusOr<TeamTokens> CreateTeam(const std::string& db,
                                      const std::string& name) {
  int status = 0;
  const std::string out = RunCommand(
      {ServerBinary(), "--db=" + db, "team", "create", name}, &status);
  std::smatch member, worker;
  if (status != 0 ||
      !std::regex_search(out, member, std::regex("member token: (\\S+)")) ||
      !std::regex_search(out, worker, std::regex("worker token: (\\S+)"))) {
    return absl::InternalError(
        absl::StrCat("team create exited ", status, ": ", out));
  }
  return TeamTokens{member[1], worker[1]};
}

std::vector<std::string> ServerProcess::Argv(
    const std::vector<std::string>& flags) {
  std::vector<std::string> argv = {ServerBinary(), "--listen=127.0.0.1:0"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return argv;
}

ServerProcess::ServerProcess(const std::vector<std::string>& flags)
    : process_(Argv(flags)) {
  std::string line;
  std::smatch m;
  while (process_.ReadLine(&line)) {
    if (std::regex_search(line, m, std::regex("listening on port (\\d+)"))) {
      port_ = std::stoi(m[1]);
      break;
    }
  }
}

std::string ServerProcess::address() const {
  return absl::StrCat("127.0.0.1:", port_);
}

absl::Status MakeSelfSignedCertificate(const std::string& cert_path,
                                       const std::string& key_path) {
  int status = 0;
  const std::string out = RunCommand(
      {"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
       "-keyout", key_path, "-out", cert_path, "-days", "1", "-subj",
       "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"},
      &status);
  if (status != 0) {
    return absl::InternalError(
        absl::StrCat("openssl could not make a certificate (exit ", status,
                     "): ", out));
  }
  return absl::OkStatus();
}

}  // namespace sweepq::testing
