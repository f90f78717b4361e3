#include "client/connection.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_channel.h"

namespace sweepq::client {

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(
    const ConnectionOptions& options) {
  if (options.server.empty()) {
    return WithExitCode(
        absl::FailedPreconditionError(
            "no coordinator configured \u2014 run sweepq login --server "
            "HOST:PORT --team NAME --token TOKEN (or set SWEEPQ_SERVER)"),
        kExitAuth);
  }
  if (options.token.empty()) {
    return WithExitCode(
        absl::FailedPreconditionError(
            "no token configured \u2014 run sweepq login --server HOST:PORT "
            "--team NAME --token TOKEN (or set SWEEPQ_TOKEN)"),
        kExitAuth);
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      ChannelCredentialsFor(options.tls_ca_file);
  if (!credentials.ok()) {
    return absl::Status(
        credentials.status().code(),
        absl::StrCat(credentials.status().message(),
                     " \u2014 fix the path with sweepq login --tls-ca FILE"));
  }
  grpc::ChannelArguments args;
  // Artifacts stream in 1 MiB chunks; leave room for the envelope.
  args.SetMaxReceiveMessageSize(16 << 20);
  // Fail fast on a dead address instead of backing off for minutes.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  auto channel = grpc::CreateCustomChannel(options.server, *credentials, args);
  auto stub = sweepq::v1::TeamService::NewStub(channel);
  auto connection = std::make_unique<Connection>(options, std::move(stub));
  connection->channel_ = std::move(channel);
  return connection;
}

Connection::Connection(
    ConnectionOptions options,
    std::unique_ptr<sweepq::v1::TeamService::StubInterface> stub)
    : options_(std::move(options)), stub_(std::move(stub)) {}

std::unique_ptr<grpc::ClientContext> Connection::NewContext(
    absl::Duration timeout) const {
  if (timeout == absl::ZeroDuration()) timeout = options_.timeout;
  auto context = std::make_unique<grpc::ClientContext>();
  context->AddMetadata("authorization",
                       absl::StrCat("Bearer ", options_.token));
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return context;
}

absl::Status Connection::Convert(const grpc::Status& status,
                                 absl::string_view not_found_hint,
                                 absl::Duration timeout) const {
  CallContext context;
  context.server = options_.server;
  context.deadline_s = absl::ToDoubleSeconds(
      timeout == absl::ZeroDuration() ? options_.timeout : timeout);
  context.not_found_hint = std::string(not_found_hint);
  context.tls = !options_.tls_ca_file.empty();
  return FromGrpcStatus(status, context);
}

}  // namespace sweepq::client
