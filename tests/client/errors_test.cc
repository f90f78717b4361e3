#include "client/errors.h"

#include "gtest/gtest.h"

namespace sweepq::client {
namespace {

CallContext Context() {
  CallContext c;
  c.server = "coord:50051";
  c.deadline_s = 10;
  c.not_found_hint = "sweepq runs";
  return c;
}

TEST(ErrorsTest, UnavailableSaysWhereAndWhatToCheck) {
  absl::Status s = FromGrpcStatus(
      grpc::Status(grpc::StatusCode::UNAVAILABLE, "Connection refused"),
      Context());
  EXPECT_TRUE(absl::IsUnavailable(s));
  EXPECT_EQ(s.message(),
            "cannot reach the coordinator at coord:50051 \u2014 is "
            "sweepq-server running? (UNAVAILABLE)\n  detail: Connection "
            "refused");
  EXPECT_EQ(ExitCodeOf(s), kExitUnavailable);
}

TEST(ErrorsTest, HandshakeFailureHintsAtTls) {
  absl::Status s = FromGrpcStatus(
      grpc::Status(grpc::StatusCode::UNAVAILABLE, "Ssl handshake failed"),
      Context());
  EXPECT_NE(s.message().find("--tls-ca"), std::string::npos);
}

TEST(ErrorsTest, AuthFailuresTellYouToLogIn) {
  absl::Status s = FromGrpcStatus(
      grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "team token rejected"),
      Context());
  EXPECT_EQ(s.message().rfind("token rejected \u2014 run sweepq login", 0), 0u)
      << s.message();
  EXPECT_EQ(ExitCodeOf(s), kExitAuth);
  absl::Status p = FromGrpcStatus(
      grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "worker token"),
      Context());
  EXPECT_NE(p.message().find("member token"), std::string::npos);
  EXPECT_EQ(ExitCodeOf(p), kExitAuth);
}

TEST(ErrorsTest, NotFoundKeepsTheServerMessageAndAddsTheHint) {
  absl::Status s = FromGrpcStatus(
      grpc::Status(grpc::StatusCode::NOT_FOUND, "run 9 not found"), Context());
  EXPECT_EQ(s.message(), "run 9 not found \u2014 see sweepq runs (NOT_FOUND)");
  EXPECT_EQ(ExitCodeOf(s), kExitNotFound);
}

TEST(ErrorsTest, DeadlineNamesTheTimeout) {
  absl::Status s = FromGrpcStatus(
      grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, ""), Context());
  EXPECT_NE(s.message().find("did not answer within 10s"), std::string::npos);
  EXPECT_EQ(ExitCodeOf(s), kExitUnavailable);
}

TEST(ErrorsTest, ExitCodes) {
  EXPECT_EQ(ExitCodeOf(absl::OkStatus()), kExitOk);
  EXPECT_EQ(ExitCodeOf(UsageError("x")), kExitUsage);
  EXPECT_EQ(ExitCodeOf(absl::InvalidArgumentError("x")), kExitUsage);
  EXPECT_EQ(ExitCodeOf(absl::FailedPreconditionError("x")), kExitFailed);
  EXPECT_EQ(
      ExitCodeOf(WithExitCode(absl::AbortedError("run failed"), kExitFailed)),
      kExitFailed);
  EXPECT_EQ(ExitCodeOf(WithExitCode(absl::FailedPreconditionError("login"),
                                    kExitAuth)),
            kExitAuth);
}

}  // namespace
}  // namespace sweepq::client
