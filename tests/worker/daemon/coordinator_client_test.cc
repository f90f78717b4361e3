// CoordinatorClient's event stream against a real in-process coordinator
// (gRPC on loopback, a real SQLite file).
#include "worker/daemon/coordinator_client.h"

#include <atomic>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/testing/grpc_context.h"
#include "tests/testing/temp_dir.h"

namespace sweepq::worker {
namespace {

namespace v1 = ::sweepq::v1;

constexpr char kSweep[] = R"(
method: grid
config:
  data: {dataset: mask}
  model: {name: small_cnn}
  train: {epochs: 3}
parameters:
  optimizer.name: {values: [radam]}
)";

class EventStreamClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Start(0);
    auto tokens = server_->coordinator()->CreateTeam("alpha");
    ASSERT_TRUE(tokens.ok()) << tokens.status();
    port_ = server_->port();
    ClientOptions options;
    options.server = absl::StrCat("127.0.0.1:", port_);
    options.token = tokens->worker_token;
    options.rpc_timeout = absl::Seconds(10);
    auto client = CoordinatorClient::Connect(options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(*client);

    auto team = v1::TeamService::NewStub(grpc::CreateChannel(
        options.server, grpc::InsecureChannelCredentials()));
    v1::SubmitSweepRequest submit;
    submit.set_spec_yaml(kSweep);
    v1::SubmitSweepResponse submitted;
    grpc::Status s = team->SubmitSweep(
        ::sweepq::testing::AuthorizedContext(tokens->member_token, 10).get(),
        submit, &submitted);
    ASSERT_TRUE(s.ok()) << s.error_message();
    v1::RegisterWorkerRequest reg;
    reg.set_worker_id("gpu1");
    reg.add_datasets("mask");
    ASSERT_TRUE(client_->RegisterWorker(reg).ok());
    auto leased = client_->Lease("gpu1", absl::ZeroDuration(), nullptr);
    ASSERT_TRUE(leased.ok()) << leased.status();
    ASSERT_TRUE(leased->granted());
    lease_ = leased->lease();
  }

  void Start(int port) {
    server::ServerOptions options;
    options.db_path = dir_.Join("sweepq.db");
    options.artifacts_dir = dir_.Join("artifacts");
    options.listen = absl::StrCat("127.0.0.1:", port);
    options.coordinator.run_expiry_thread = false;
    auto server = server::CoordinatorServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  testing::TempDir dir_;
  std::unique_ptr<server::CoordinatorServer> server_;
  int port_ = 0;
  std::unique_ptr<CoordinatorClient> client_;
  v1::LeaseRef lease_;
};

v1::ReportEventsRequest Batch(const v1::LeaseRef& lease, uint64_t seq) {
  v1::ReportEventsRequest batch;
  *batch.mutable_lease() = lease;
  batch.set_batch_seq(seq);
  auto* point = batch.add_points();
  point->set_name("val_f1");
  point->set_step(static_cast<int64_t>(seq));
  point->set_value(0.5);
  return batch;
}

TEST_F(EventStreamClientTest, StreamIsReopenedAfterTheCoordinatorRestarts) {
  auto stream = client_->NewEventStream();
  auto first = stream->Send(Batch(lease_, 1));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->acked_batch_seq(), 1u);

  server_->Shutdown();
  auto down = stream->Send(Batch(lease_, 2));
  ASSERT_FALSE(down.ok());
  EXPECT_TRUE(IsTransient(down.status())) << down.status();

  Start(port_);
  // The channel reconnects within its 200 ms..2 s backoff; the daemon's
  // own retry loop does the same.
  absl::StatusOr<v1::ReportEventsResponse> again = down;
  for (int i = 0; i < 100 && !again.ok() && IsTransient(again.status());
       ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    again = stream->Send(Batch(lease_, 2));
  }
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->acked_batch_seq(), 2u);
  stream->Close();
}

TEST_F(EventStreamClientTest, LostLeaseIsFailedPreconditionAndTheNextSendReopens) {
  auto stream = client_->NewEventStream();
  ASSERT_TRUE(stream->Send(Batch(lease_, 1)).ok());
  v1::FinishRunRequest finish;
  *finish.mutable_lease() = lease_;
  finish.set_worker_id("gpu1");
  finish.set_outcome(v1::OUTCOME_SUCCEEDED);
  ASSERT_TRUE(client_->FinishRun(finish).ok());
  auto lost = stream->Send(Batch(lease_, 2));
  EXPECT_EQ(lost.status().code(), absl::StatusCode::kFailedPrecondition)
      << lost.status();
  EXPECT_NE(lost.status().message().find("StreamEvents"), std::string::npos);
  // A resend opens a new call and is refused the same way.
  EXPECT_EQ(stream->Send(Batch(lease_, 2)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// A client of the coordinator at 127.0.0.1:`port` sending `token`.
std::unique_ptr<CoordinatorClient> ClientTo(
    int port, const std::string& token,
    absl::Duration rpc_timeout = absl::Seconds(10)) {
  ClientOptions options;
  options.server = absl::StrCat("127.0.0.1:", port);
  options.token = token;
  options.rpc_timeout = rpc_timeout;
  auto client = CoordinatorClient::Connect(options);
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? *std::move(client) : nullptr;
}

v1::FinishRunRequest Succeeded(const v1::LeaseRef& lease, bool lease_next) {
  v1::FinishRunRequest finish;
  *finish.mutable_lease() = lease;
  finish.set_worker_id("gpu1");
  finish.set_outcome(v1::OUTCOME_SUCCEEDED);
  finish.set_lease_next(lease_next);
  return finish;
}

TEST_F(EventStreamClientTest, FinishOnTheStreamEndsTheRunAfterItsBatches) {
  auto stream = client_->NewEventStream();
  ASSERT_TRUE(stream->Send(Batch(lease_, 1)).ok());
  auto finished = client_->FinishOnStream(*stream, Succeeded(lease_, true));
  ASSERT_TRUE(finished.ok()) << finished.status();
  ASSERT_TRUE(finished->has_value());
  EXPECT_EQ((*finished)->state(), v1::RUN_STATE_SUCCEEDED);
  ASSERT_TRUE((*finished)->has_next());  // asked; the sweep had one run
  EXPECT_FALSE((*finished)->next().granted());
  // Finished: the same finish again is refused as FinishRun refuses it.
  auto again = client_->FinishOnStream(*stream, Succeeded(lease_, false));
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition)
      << again.status();
}

// A coordinator from before finish messages: it answers every message on
// the stream as a batch (the unknown field ignored) and has FinishRun.
class OldCoordinator final : public v1::WorkerService::Service {
 public:
  grpc::Status StreamEvents(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<v1::ReportEventsResponse,
                               v1::ReportEventsRequest>* stream) override {
    v1::ReportEventsRequest request;
    while (stream->Read(&request)) {
      v1::ReportEventsResponse ack;
      ack.set_acked_batch_seq(request.batch_seq());
      stream->Write(ack);
    }
    return grpc::Status::OK;
  }
  grpc::Status FinishRun(grpc::ServerContext*, const v1::FinishRunRequest*,
                         v1::FinishRunResponse* response) override {
    ++finish_calls;
    response->set_state(v1::RUN_STATE_SUCCEEDED);
    return grpc::Status::OK;
  }
  std::atomic<int> finish_calls{0};
};

TEST_F(EventStreamClientTest, AnOlderCoordinatorsAnswerSaysToCallFinishRun) {
  OldCoordinator old;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&old);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto client = ClientTo(port, "t");
  ASSERT_NE(client, nullptr);
  auto stream = client->NewEventStream();
  auto finished = client->FinishOnStream(*stream, Succeeded(lease_, false));
  ASSERT_TRUE(finished.ok()) << finished.status();
  EXPECT_FALSE(finished->has_value());
  EXPECT_EQ(old.finish_calls, 0);  // the caller decides to call it
  stream->Close();
  server->Shutdown();
}

TEST_F(EventStreamClientTest, SilentCoordinatorTimesOutAndCancelsTheCall) {
  // A gRPC server that accepts calls and never handles them (no call is
  // ever requested from its generic service): a coordinator that hangs.
  grpc::AsyncGenericService silent;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterAsyncGenericService(&silent);
  std::unique_ptr<grpc::ServerCompletionQueue> cq =
      builder.AddCompletionQueue();
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto client = ClientTo(port, "t", absl::Milliseconds(500));
  ASSERT_NE(client, nullptr);
  auto stream = client->NewEventStream();
  const absl::Time start = absl::Now();
  auto sent = stream->Send(Batch(lease_, 1));
  EXPECT_EQ(sent.status().code(), absl::StatusCode::kDeadlineExceeded)
      << sent.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  server->Shutdown(std::chrono::system_clock::now());
  cq->Shutdown();
  void* tag;
  bool ok;
  while (cq->Next(&tag, &ok)) {
  }
}

TEST_F(EventStreamClientTest, BadTokenIsUnauthenticated) {
  auto client = ClientTo(port_, "not-a-token");
  ASSERT_NE(client, nullptr);
  auto stream = client->NewEventStream();
  EXPECT_EQ(stream->Send(Batch(lease_, 1)).status().code(),
            absl::StatusCode::kUnauthenticated);
}

}  // namespace
}  // namespace sweepq::worker
