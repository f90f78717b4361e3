// Drives the real sweepq-server binary from tests: team creation, a server
// on an ephemeral loopback port, and a self-signed certificate for TLS.
#ifndef SWEEPQ_TESTS_TESTING_SERVER_PROCESS_H_
#define SWEEPQ_TESTS_TESTING_SERVER_PROCESS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/testing/subprocess.h"

namespace sweepq::testing {

// Path of the sweepq-server built with the tests.
std::string ServerBinary();

struct TeamTokens {
  std::string member;
  std::string worker;
};

// Runs `sweepq-server --db=DB team create NAME` and reads the two tokens it
// prints. INTERNAL with the command's output when it fails.
absl::StatusOr<TeamTokens> CreateTeam(const std::string& db,
                                      const std::string& name);

// sweepq-server listening on 127.0.0.1:0 with `flags` (e.g. --db=...);
// port() is 0 if it did not start. SIGKILLed on destruction unless waited.
class ServerProcess {
 public:
  explicit ServerProcess(const std::vector<std::string>& flags);

  int port() const { return port_; }
  // "127.0.0.1:PORT".
  std::string address() const;
  Subprocess& process() { return process_; }

 private:
  static std::vector<std::string> Argv(const std::vector<std::string>& flags);
  Subprocess process_;
  int port_ = 0;
};

// Writes a one-day self-signed certificate for "localhost" and its key
// (PEM) with the openssl command. INTERNAL if openssl fails.
absl::Status MakeSelfSignedCertificate(const std::string& cert_path,
                                       const std::string& key_path);

}  // namespace sweepq::testing

#endif  // SWEEPQ_TESTS_TESTING_SERVER_PROCESS_H_
