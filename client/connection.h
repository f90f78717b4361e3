// Connection: the CLI's channel to the coordinator's TeamService. Every
// call carries the member token and a deadline; failures come back as
// absl::Status sentences (client/errors.h).
//
// Thread safety: Call() and NewContext() may be used from several threads
// (the gRPC stub is thread-safe); the object must outlive its calls.
#ifndef SWEEPQ_CLIENT_CONNECTION_H_
#define SWEEPQ_CLIENT_CONNECTION_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/errors.h"
#include "grpcpp/grpcpp.h"
#include "sweepq/v1/coordinator.grpc.pb.h"

namespace sweepq::client {

struct ConnectionOptions {
  // HOST:PORT.
  std::string server;
  std::string token;
  // PEM file of the CA; "" = plaintext.
  std::string tls_ca_file;
  // Deadline of every unary call.
  absl::Duration timeout = absl::Seconds(10);
};

// Whether a call may be sent again after UNAVAILABLE (the request was
// possibly not delivered). Only calls that are safe to repeat are retried.
enum class Retry { kNo, kIdempotent };

class Connection {
 public:
  // Builds the channel (connecting lazily). FAILED_PRECONDITION with what
  // to do when the server or token is missing; NOT_FOUND when the CA file
  // cannot be read.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(
      const ConnectionOptions& options);

  // Sends calls to `stub` (owned) instead of a channel of its own; Open()
  // and tests that fake the coordinator use it.
  Connection(ConnectionOptions options,
             std::unique_ptr<sweepq::v1::TeamService::StubInterface> stub);

  const ConnectionOptions& options() const { return options_; }
  sweepq::v1::TeamService::StubInterface* stub() { return stub_.get(); }

  // A client context with the authorization metadata and a deadline of
  // `timeout` from now (the default timeout when zero).
  std::unique_ptr<grpc::ClientContext> NewContext(
      absl::Duration timeout = absl::ZeroDuration()) const;

  // Converts a failed call's status for the user; `not_found_hint` names
  // the command that lists valid ids ("sweepq runs").
  absl::Status Convert(const grpc::Status& status,
                       absl::string_view not_found_hint,
                       absl::Duration timeout = absl::ZeroDuration()) const;

  // Makes a unary call with the default deadline. With Retry::kIdempotent,
  // an UNAVAILABLE answer is retried twice more (after 0.2 s and 0.6 s).
  template <typename Request, typename Response>
  absl::StatusOr<Response> Call(
      grpc::Status (sweepq::v1::TeamService::StubInterface::*method)(
          grpc::ClientContext*, const Request&, Response*),
      const Request& request, absl::string_view not_found_hint,
      Retry retry = Retry::kIdempotent) {
    grpc::Status status;
    for (int attempt = 0;; ++attempt) {
      Response response;
      auto context = NewContext();
      status = (stub_.get()->*method)(context.get(), request, &response);
      if (status.ok()) return response;
      if (retry == Retry::kNo ||
          status.error_code() != grpc::StatusCode::UNAVAILABLE ||
          attempt >= 2) {
        break;
      }
      absl::SleepFor(absl::Milliseconds(attempt == 0 ? 200 : 600));
    }
    return Convert(status, not_found_hint);
  }

 private:
  ConnectionOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<sweepq::v1::TeamService::StubInterface> stub_;
};

}  // namespace sweepq::client

#endif  // SWEEPQ_CLIENT_CONNECTION_H_
