#include "client/errors.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sweepq::client {
namespace {

constexpr absl::string_view kExitCodePayload = "sweepq.dev/exit-code";

std::string Deadline(double seconds) {
  if (seconds <= 0) return "its deadline";
  return absl::StrFormat("%gs", seconds);
}

}  // namespace

absl::Status WithExitCode(absl::Status status, ExitCode code) {
  status.SetPayload(kExitCodePayload, absl::Cord(absl::StrCat(code)));
  return status;
}

absl::Status UsageError(absl::string_view message) {
  return WithExitCode(absl::InvalidArgumentError(message), kExitUsage);
}

int ExitCodeOf(const absl::Status& status) {
  if (status.ok()) return kExitOk;
  if (auto payload = status.GetPayload(kExitCodePayload)) {
    int code = 0;
    if (absl::SimpleAtoi(std::string(*payload), &code)) return code;
  }
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return kExitNotFound;
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
      return kExitAuth;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return kExitUnavailable;
    case absl::StatusCode::kInvalidArgument:
      return kExitUsage;
    default:
      return kExitFailed;
  }
}

std::string CodeName(absl::StatusCode code) {
  std::string name = absl::StatusCodeToString(code);
  // "NOT_FOUND" etc.; absl spells them with spaces and mixed case.
  for (char& c : name) c = c == ' ' ? '_' : absl::ascii_toupper(c);
  return name;
}

absl::Status FromGrpcStatus(const grpc::Status& status,
                            const CallContext& context) {
  if (status.ok()) return absl::OkStatus();
  const auto code = static_cast<absl::StatusCode>(status.error_code());
  const std::string detail = status.error_message();
  const std::string name = CodeName(code);
  std::string message;
  switch (code) {
    case absl::StatusCode::kUnavailable: {
      message = absl::StrCat("cannot reach the coordinator at ", context.server,
                             " \u2014 is sweepq-server running? (", name, ")");
      std::string lower = absl::AsciiStrToLower(detail);
      // A plaintext client talking to a TLS server sees the socket closed.
      if (absl::StrContains(lower, "handshake") ||
          absl::StrContains(lower, "ssl") ||
          absl::StrContains(lower, "certificate") ||
          (!context.tls && absl::StrContains(lower, "socket closed"))) {
        absl::StrAppend(&message,
                        context.tls
                            ? "\n  the TLS handshake failed: check that "
                              "--tls-ca names the CA that signed the "
                              "server's certificate"
                            : "\n  the server may use TLS: run sweepq login "
                              "again with --tls-ca FILE");
      }
      if (!detail.empty()) absl::StrAppend(&message, "\n  detail: ", detail);
      break;
    }
    case absl::StatusCode::kDeadlineExceeded:
      message = absl::StrCat(
          "the coordinator at ", context.server, " did not answer within ",
          Deadline(context.deadline_s),
          " \u2014 is it overloaded or the network down? Try again or raise "
          "--timeout (",
          name, ")");
      break;
    case absl::StatusCode::kUnauthenticated:
      message = absl::StrCat(
          "token rejected \u2014 run sweepq login with your team's member "
          "token (",
          name, ": ", detail, ")");
      break;
    case absl::StatusCode::kPermissionDenied:
      message = absl::StrCat(
          "this token may not make this call \u2014 the CLI needs the team's "
          "member token, not the worker token; run sweepq login (",
          name, ": ", detail, ")");
      break;
    case absl::StatusCode::kNotFound:
      message = detail;
      if (!context.not_found_hint.empty()) {
        absl::StrAppend(&message, " \u2014 see ", context.not_found_hint);
      }
      absl::StrAppend(&message, " (", name, ")");
      break;
    case absl::StatusCode::kInvalidArgument:
      message = absl::StrCat("the coordinator rejected the request: ", detail,
                             " (", name, ")");
      break;
    case absl::StatusCode::kUnimplemented:
      message = absl::StrCat("the coordinator at ", context.server,
                             " does not know this call \u2014 upgrade "
                             "sweepq-server to this CLI's version (",
                             name, ")");
      break;
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kDataLoss:
      message = absl::StrCat("the coordinator failed: ", detail,
                             " \u2014 see sweepq-server's log (", name, ")");
      break;
    default:
      message = absl::StrCat(detail, " (", name, ")");
      break;
  }
  return absl::Status(code, message);
}

}  // namespace sweepq::client
