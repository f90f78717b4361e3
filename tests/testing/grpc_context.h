// A gRPC client context as the coordinator's callers send it, for tests
// that talk to the real server directly.
#ifndef SWEEPQ_TESTS_TESTING_GRPC_CONTEXT_H_
#define SWEEPQ_TESTS_TESTING_GRPC_CONTEXT_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

namespace sweepq::testing {

// Returns a context carrying `token` as `authorization: Bearer <token>`
// (no metadata when `token` is empty) and a deadline `seconds` from now.
inline std::unique_ptr<grpc::ClientContext> AuthorizedContext(
    const std::string& token, int seconds) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(seconds));
  return ctx;
}

}  // namespace sweepq::testing

#endif  // SWEEPQ_TESTS_TESTING_GRPC_CONTEXT_H_
