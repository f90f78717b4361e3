// gRPC channel set-up shared by the coordinator's clients (the worker
// daemon and the CLI).
#ifndef SWEEPQ_COMMON_GRPC_CHANNEL_H_
#define SWEEPQ_COMMON_GRPC_CHANNEL_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace sweepq {

// Plaintext credentials when `tls_ca_file` is empty; otherwise TLS that
// trusts the PEM certificates in that file. NOT_FOUND names the file when
// it cannot be read.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>>
ChannelCredentialsFor(const std::string& tls_ca_file);

}  // namespace sweepq

#endif  // SWEEPQ_COMMON_GRPC_CHANNEL_H_
