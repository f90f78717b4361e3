// Exit codes of the `sweepq` command and the conversion of gRPC errors into
// sentences that say what to do. docs/cli.md lists the codes; they are part
// of the CLI's contract with scripts and never change meaning.
#ifndef SWEEPQ_CLIENT_ERRORS_H_
#define SWEEPQ_CLIENT_ERRORS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace sweepq::client {

enum ExitCode : int {
  kExitOk = 0,
  // Generic failure, or (watch) the run/sweep ended without succeeding.
  kExitFailed = 1,
  // Bad command line, or input the CLI or coordinator rejected as invalid
  // (a sweep file that does not validate, an unknown flag).
  kExitUsage = 2,
  // A run, sweep, worker, artifact or local file named does not exist.
  kExitNotFound = 3,
  // Not logged in, token rejected, or a token of the wrong role.
  kExitAuth = 4,
  // The coordinator could not be reached or did not answer in time.
  kExitUnavailable = 5,
};

// Marks `status` so that the CLI exits with `code`; the message is kept.
absl::Status WithExitCode(absl::Status status, ExitCode code);

// An INVALID_ARGUMENT status that exits with kExitUsage.
absl::Status UsageError(absl::string_view message);

// The exit code for a status: the code set by WithExitCode, else one
// derived from the canonical code (NOT_FOUND 3, UNAUTHENTICATED and
// PERMISSION_DENIED 4, UNAVAILABLE and DEADLINE_EXCEEDED 5,
// INVALID_ARGUMENT 2, anything else 1). OK is 0.
int ExitCodeOf(const absl::Status& status);

// Context for turning a failed call into a sentence.
struct CallContext {
  // HOST:PORT of the coordinator.
  std::string server;
  // Seconds of the call's deadline (for DEADLINE_EXCEEDED).
  double deadline_s = 0;
  // What to run to find valid ids after a NOT_FOUND ("sweepq runs").
  std::string not_found_hint;
  // Whether the channel uses TLS (hints for handshake failures).
  bool tls = false;
};

// Converts a failed gRPC status into an absl::Status with the same code and
// a message that says what to do, ending in "(CODE)". OK stays OK.
absl::Status FromGrpcStatus(const grpc::Status& status,
                            const CallContext& context);

// "UNAVAILABLE", "NOT_FOUND", ... for a canonical code.
std::string CodeName(absl::StatusCode code);

}  // namespace sweepq::client

#endif  // SWEEPQ_CLIENT_ERRORS_H_
