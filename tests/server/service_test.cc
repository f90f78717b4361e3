// The coordinator over real gRPC on loopback with a real SQLite file.
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/crypto.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "sweepq/v1/coordinator.grpc.pb.h"
#include "tests/testing/grpc_context.h"
#include "tests/testing/server_process.h"
#include "tests/testing/temp_dir.h"

namespace sweepq::server {
namespace {

using ::testing::HasSubstr;
namespace v1 = ::sweepq::v1;

constexpr char kSweep[] = R"(
name: tiny
method: grid
metric: {name: val_f1, goal: maximize}
config:
  data: {dataset: mask}
  model: {name: small_cnn}
  train: {epochs: 3}
parameters:
  optimizer.name: {values: [radam, adamw]}
)";

struct Team {
  std::string member;
  std::string worker;
};

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(/*tls=*/false); }

  void StartServer(bool tls, int max_message_bytes = 16 << 20) {
    ServerOptions options;
    options.db_path = dir_.Join("sweepq.db");
    options.artifacts_dir = dir_.Join("artifacts");
    options.listen = "127.0.0.1:0";
    options.clock = &clock_;
    options.max_message_bytes = max_message_bytes;
    options.coordinator.run_expiry_thread = false;
    options.coordinator.lease_ttl_ms = 30'000;
    options.coordinator.quarantine_after = 2;
    if (tls) {
      cert_ = dir_.Join("cert.pem");
      key_ = dir_.Join("key.pem");
      absl::Status made = testing::MakeSelfSignedCertificate(cert_, key_);
      ASSERT_TRUE(made.ok()) << made;
      options.tls_cert_file = cert_;
      options.tls_key_file = key_;
    }
    auto server = CoordinatorServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    auto a = server_->coordinator()->CreateTeam("alpha");
    auto b = server_->coordinator()->CreateTeam("beta");
    ASSERT_TRUE(a.ok() && b.ok());
    alpha_ = {a->member_token, a->worker_token};
    beta_ = {b->member_token, b->worker_token};
    std::shared_ptr<grpc::Channel> channel;
    if (tls) {
      grpc::SslCredentialsOptions ssl;
      std::ifstream in(cert_);
      ssl.pem_root_certs.assign(std::istreambuf_iterator<char>(in), {});
      channel = grpc::CreateChannel(
          "localhost:" + std::to_string(server_->port()),
          grpc::SslCredentials(ssl));
    } else {
      channel = grpc::CreateChannel(Address(), grpc::InsecureChannelCredentials());
    }
    channel_ = channel;
    team_ = v1::TeamService::NewStub(channel);
    workers_ = v1::WorkerService::NewStub(channel);
  }

  std::string Address() const {
    return "127.0.0.1:" + std::to_string(server_->port());
  }

  // A client context carrying `token` (none when empty) and a deadline.
  static std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token) {
    return ::sweepq::testing::AuthorizedContext(token, 20);
  }

  v1::SubmitSweepResponse Submit(const Team& team, const std::string& yaml,
                                 const std::string& key = "") {
    v1::SubmitSweepRequest req;
    req.set_spec_yaml(yaml);
    req.set_idempotency_key(key);
    v1::SubmitSweepResponse resp;
    grpc::Status s = team_->SubmitSweep(Ctx(team.member).get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  void Register(const Team& team, const std::string& worker_id) {
    v1::RegisterWorkerRequest req;
    req.set_worker_id(worker_id);
    req.set_host("host-" + worker_id);
    req.set_slots(1);
    req.add_datasets("mask");
    v1::RegisterWorkerResponse resp;
    grpc::Status s = workers_->RegisterWorker(Ctx(team.worker).get(), req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  v1::LeaseResponse Lease(const Team& team, const std::string& worker_id,
                          int64_t wait_ms = 0) {
    v1::LeaseRequest req;
    req.set_worker_id(worker_id);
    req.set_wait_ms(wait_ms);
    v1::LeaseResponse resp;
    grpc::Status s = workers_->Lease(Ctx(team.worker).get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  static v1::ReportEventsRequest Batch(
      const v1::LeaseRef& lease, uint64_t batch, const std::string& metric,
      const std::vector<std::pair<int64_t, double>>& points) {
    v1::ReportEventsRequest req;
    *req.mutable_lease() = lease;
    req.set_batch_seq(batch);
    for (auto [step, value] : points) {
      auto* p = req.add_points();
      p->set_name(metric);
      p->set_step(step);
      p->set_value(value);
    }
    return req;
  }

  grpc::Status Report(const Team& team, const v1::LeaseRef& lease,
                      uint64_t batch, const std::string& metric,
                      std::vector<std::pair<int64_t, double>> points) {
    v1::ReportEventsResponse resp;
    return workers_->ReportEvents(Ctx(team.worker).get(),
                                  Batch(lease, batch, metric, points), &resp);
  }

  // An open StreamEvents call; `ctx` must outlive `stream`.
  struct EventStreamCall {
    std::unique_ptr<grpc::ClientContext> ctx;
    std::unique_ptr<grpc::ClientReaderWriter<v1::ReportEventsRequest,
                                             v1::ReportEventsResponse>>
        stream;
  };

  EventStreamCall OpenStream(const std::string& token) {
    EventStreamCall call;
    call.ctx = Ctx(token);
    call.stream = workers_->StreamEvents(call.ctx.get());
    return call;
  }

  // Sends `batch` on `call` and returns the acked batch_seq (0 when the
  // stream ended instead).
  static uint64_t SendAndAck(EventStreamCall& call,
                             const v1::ReportEventsRequest& batch) {
    if (!call.stream->Write(batch)) return 0;
    v1::ReportEventsResponse ack;
    if (!call.stream->Read(&ack)) return 0;
    return ack.acked_batch_seq();
  }

  // Alpha's kSweep (two runs) with its first run leased to worker gpu1.
  struct FirstLease {
    v1::SubmitSweepResponse sweep;
    v1::LeaseResponse lease;
  };
  FirstLease SubmitAndLeaseFirst() {
    FirstLease out{Submit(alpha_, kSweep), {}};
    EXPECT_EQ(out.sweep.run_ids_size(), 2);
    Register(alpha_, "gpu1");
    out.lease = Lease(alpha_, "gpu1");
    EXPECT_TRUE(out.lease.granted());
    return out;
  }

  // Alpha's first run leased to worker gpu1, and a stream on which its
  // batch 1 (val_f1 at step 1) was stored.
  struct LeasedStream {
    v1::LeaseResponse lease;
    EventStreamCall call;
  };
  LeasedStream StreamWithFirstBatch() {
    Submit(alpha_, kSweep);
    Register(alpha_, "gpu1");
    LeasedStream out{Lease(alpha_, "gpu1"), OpenStream(alpha_.worker)};
    EXPECT_EQ(
        SendAndAck(out.call, Batch(out.lease.lease(), 1, "val_f1", {{1, 0.1}})),
        1u);
    return out;
  }

  // Closes the client side and returns the stream's final status.
  static grpc::Status CloseStream(EventStreamCall& call) {
    call.stream->WritesDone();
    v1::ReportEventsResponse extra;
    while (call.stream->Read(&extra)) {
      ADD_FAILURE() << "unexpected answer " << extra.acked_batch_seq();
    }
    return call.stream->Finish();
  }

  // The steps of the first `n` metric points stored for `run_id`, read
  // while the run is still live (the call ends once `n` have arrived).
  std::vector<int64_t> StoredSteps(const Team& team, int64_t run_id, int n) {
    v1::WatchRunRequest req;
    req.set_run_id(run_id);
    auto ctx = ::sweepq::testing::AuthorizedContext(team.member, 5);
    auto reader = team_->WatchRun(ctx.get(), req);
    std::vector<int64_t> steps;
    v1::WatchRunResponse item;
    while (static_cast<int>(steps.size()) < n && reader->Read(&item)) {
      if (item.has_metric()) steps.push_back(item.metric().step());
    }
    ctx->TryCancel();
    reader->Finish();
    return steps;
  }

  // The steps of every metric point of a finished run.
  std::vector<int64_t> AllSteps(const Team& team, int64_t run_id) {
    std::vector<int64_t> steps;
    for (const auto& item : WatchAll(team, run_id)) {
      if (item.has_metric()) steps.push_back(item.metric().step());
    }
    return steps;
  }

  grpc::Status CancelRun(const Team& team, int64_t run_id) {
    v1::CancelRunRequest req;
    req.set_run_id(run_id);
    v1::CancelRunResponse resp;
    return team_->CancelRun(Ctx(team.member).get(), req, &resp);
  }

  grpc::Status Finish(const Team& team, const std::string& worker_id,
                      const v1::LeaseRef& lease, v1::Outcome outcome,
                      bool retryable = false, v1::RunState* state = nullptr) {
    v1::FinishRunRequest req;
    *req.mutable_lease() = lease;
    req.set_worker_id(worker_id);
    req.set_outcome(outcome);
    req.set_retryable(retryable);
    req.set_reason(outcome == v1::OUTCOME_FAILED ? "boom" : "");
    v1::FinishRunResponse resp;
    grpc::Status s = workers_->FinishRun(Ctx(team.worker).get(), req, &resp);
    if (state != nullptr) *state = resp.state();
    return s;
  }

  grpc::Status Upload(const Team& team, const v1::LeaseRef& lease,
                      const std::string& name, const std::string& data,
                      const std::string& announced_sha) {
    auto ctx = Ctx(team.worker);
    v1::UploadArtifactResponse resp;
    auto writer = workers_->UploadArtifact(ctx.get(), &resp);
    v1::ArtifactChunk first;
    *first.mutable_lease() = lease;
    first.mutable_header()->set_name(name);
    first.mutable_header()->set_size(static_cast<int64_t>(data.size()));
    first.mutable_header()->set_sha256(announced_sha);
    first.set_data(data.substr(0, data.size() / 2));
    writer->Write(first);
    v1::ArtifactChunk rest;
    rest.set_data(data.substr(data.size() / 2));
    writer->Write(rest);
    writer->WritesDone();
    return writer->Finish();
  }

  std::vector<v1::WatchRunResponse> WatchAll(const Team& team, int64_t run_id,
                                             int64_t after_metric = 0,
                                             int64_t after_event = 0) {
    v1::WatchRunRequest req;
    req.set_run_id(run_id);
    req.set_after_metric_seq(after_metric);
    req.set_after_event_seq(after_event);
    auto ctx = Ctx(team.member);
    auto reader = team_->WatchRun(ctx.get(), req);
    std::vector<v1::WatchRunResponse> out;
    v1::WatchRunResponse item;
    while (reader->Read(&item)) out.push_back(item);
    grpc::Status s = reader->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }

  testing::TempDir dir_;
  grpc::Status grpc_status_;
  FakeClock clock_{SystemClock().NowMs()};
  std::string cert_, key_;
  std::unique_ptr<CoordinatorServer> server_;
  Team alpha_, beta_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::TeamService::Stub> team_;
  std::unique_ptr<v1::WorkerService::Stub> workers_;
};

TEST_F(ServiceTest, SweepRunsEndToEndAndRankOnLeaderboard) {
  auto sweep = Submit(alpha_, kSweep);
  ASSERT_EQ(sweep.run_ids_size(), 2);
  Register(alpha_, "gpu1");
  double best[2] = {0.7, 0.9};
  for (int i = 0; i < 2; ++i) {
    auto lease = Lease(alpha_, "gpu1");
    ASSERT_TRUE(lease.granted());
    EXPECT_EQ(lease.run().run_id(), sweep.run_ids(i));
    EXPECT_EQ(lease.lease().attempt(), 1u);
    ASSERT_TRUE(Report(alpha_, lease.lease(), 1, "val_f1",
                       {{1, best[i] - 0.2}, {2, best[i]}, {3, best[i] - 0.1}})
                    .ok());
    ASSERT_TRUE(Report(alpha_, lease.lease(), 2, "val_acc", {{2, 0.95}}).ok());
    ASSERT_TRUE(
        Finish(alpha_, "gpu1", lease.lease(), v1::OUTCOME_SUCCEEDED).ok());
  }
  v1::LeaderboardRequest req;
  req.set_sweep_id(sweep.sweep_id());
  v1::LeaderboardResponse board;
  ASSERT_TRUE(team_->Leaderboard(Ctx(alpha_.member).get(), req, &board).ok());
  ASSERT_EQ(board.entries_size(), 2);
  EXPECT_EQ(board.entries(0).run().run_id(), sweep.run_ids(1));
  EXPECT_DOUBLE_EQ(board.entries(0).run().best_value(), 0.9);
  EXPECT_EQ(board.entries(0).run().best_step(), 2);
  EXPECT_DOUBLE_EQ(board.entries(0).metrics_at_best().at("val_acc"), 0.95);
  EXPECT_EQ(board.entries(0).run().params().at("optimizer.name"), "\"adamw\"");
  EXPECT_EQ(board.entries(1).run().run_id(), sweep.run_ids(0));

  v1::GetRunRequest get;
  get.set_run_id(sweep.run_ids(0));
  v1::Run run;
  ASSERT_TRUE(team_->GetRun(Ctx(alpha_.member).get(), get, &run).ok());
  EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(run.config().optimizer().name(), "radam");
  ASSERT_EQ(run.attempts_size(), 1);
  EXPECT_EQ(run.attempts(0).worker_id(), "gpu1");
}

TEST_F(ServiceTest, ResubmittingWithSameIdempotencyKeyReturnsSameSweep) {
  auto first = Submit(alpha_, kSweep, "key-1");
  auto second = Submit(alpha_, kSweep, "key-1");
  EXPECT_FALSE(first.existing());
  EXPECT_TRUE(second.existing());
  EXPECT_EQ(first.sweep_id(), second.sweep_id());
  v1::ListRunsResponse runs;
  ASSERT_TRUE(
      team_->ListRuns(Ctx(alpha_.member).get(), v1::ListRunsRequest(), &runs)
          .ok());
  EXPECT_EQ(runs.runs_size(), 2);
}

TEST_F(ServiceTest, InvalidSweepIsRejectedWithTheKeyName) {
  v1::SubmitSweepRequest req;
  req.set_spec_yaml(std::string(kSweep) + "  optimizer.lrr: {value: 0.1}\n");
  v1::SubmitSweepResponse resp;
  grpc::Status s = team_->SubmitSweep(Ctx(alpha_.member).get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("lrr"));
}

TEST_F(ServiceTest, OversizedSpecIsRejectedWithTheLimit) {
  v1::SubmitSweepRequest req;
  req.set_spec_yaml(std::string(kSweep) + "#" + std::string(2 << 20, 'x'));
  v1::SubmitSweepResponse resp;
  grpc::Status s = team_->SubmitSweep(Ctx(alpha_.member).get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("limit is 1048576"));
}

TEST_F(ServiceTest, MessageOverTheServerLimitIsResourceExhausted) {
  v1::SubmitSweepRequest req;
  req.set_spec_yaml(std::string(17 << 20, 'x'));
  v1::SubmitSweepResponse resp;
  grpc::Status s = team_->SubmitSweep(Ctx(alpha_.member).get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(ServiceTest, ZombieWritesAfterLeaseExpiryAreRejected) {
  auto sweep = Submit(alpha_, kSweep);
  Register(alpha_, "gpu1");
  Register(alpha_, "gpu2");
  auto zombie = Lease(alpha_, "gpu1");
  ASSERT_TRUE(zombie.granted());
  clock_.AdvanceMs(31'000);
  auto expired = server_->coordinator()->ExpireLeasesNow();
  ASSERT_TRUE(expired.ok());
  EXPECT_EQ(*expired, 1u);
  auto fresh = Lease(alpha_, "gpu2");
  ASSERT_TRUE(fresh.granted());
  EXPECT_EQ(fresh.run().run_id(), zombie.run().run_id());
  EXPECT_EQ(fresh.lease().attempt(), 2u);

  EXPECT_EQ(Report(alpha_, zombie.lease(), 1, "val_f1", {{1, 0.99}}).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  v1::HeartbeatRequest hb;
  hb.set_worker_id("gpu1");
  *hb.mutable_lease() = zombie.lease();
  v1::HeartbeatResponse hb_resp;
  EXPECT_EQ(workers_->Heartbeat(Ctx(alpha_.worker).get(), hb, &hb_resp)
                .error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Upload(alpha_, zombie.lease(), "best.ckpt", "zzz", Sha256Hex("zzz"))
                .error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Finish(alpha_, "gpu1", zombie.lease(), v1::OUTCOME_FAILED)
                .error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  ASSERT_TRUE(Report(alpha_, fresh.lease(), 1, "val_f1", {{1, 0.5}}).ok());
  ASSERT_TRUE(Finish(alpha_, "gpu2", fresh.lease(), v1::OUTCOME_SUCCEEDED).ok());
  v1::GetRunRequest get;
  get.set_run_id(fresh.run().run_id());
  v1::Run run;
  ASSERT_TRUE(team_->GetRun(Ctx(alpha_.member).get(), get, &run).ok());
  EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_DOUBLE_EQ(run.best_value(), 0.5);  // the zombie's 0.99 never landed
  EXPECT_EQ(run.worker_id(), "gpu2");
}

TEST_F(ServiceTest, DuplicateBatchIsStoredOnceAndWatchResumesFromCursor) {
  auto sweep = Submit(alpha_, kSweep);
  Register(alpha_, "gpu1");
  auto lease = Lease(alpha_, "gpu1");
  ASSERT_TRUE(Report(alpha_, lease.lease(), 7, "val_f1", {{1, 0.1}, {2, 0.2}}).ok());
  ASSERT_TRUE(Report(alpha_, lease.lease(), 7, "val_f1", {{1, 0.1}, {2, 0.2}}).ok());
  ASSERT_TRUE(Report(alpha_, lease.lease(), 8, "val_f1", {{3, 0.3}}).ok());
  ASSERT_TRUE(Finish(alpha_, "gpu1", lease.lease(), v1::OUTCOME_SUCCEEDED).ok());

  auto items = WatchAll(alpha_, lease.run().run_id());
  std::vector<int64_t> steps;
  for (const auto& item : items) {
    if (item.has_metric()) steps.push_back(item.metric().step());
  }
  EXPECT_THAT(steps, ::testing::ElementsAre(1, 2, 3));
  EXPECT_EQ(items.back().state(), v1::RUN_STATE_SUCCEEDED);

  // Resuming after the second metric yields only what follows it.
  int64_t metric_cursor = 0, event_cursor = 0;
  for (const auto& item : items) {
    if (item.has_metric() && item.metric().step() == 2) {
      metric_cursor = item.metric_seq();
      event_cursor = item.event_seq();
      break;
    }
  }
  auto rest = WatchAll(alpha_, lease.run().run_id(), metric_cursor, event_cursor);
  std::vector<int64_t> rest_steps;
  for (const auto& item : rest) {
    if (item.has_metric()) rest_steps.push_back(item.metric().step());
  }
  EXPECT_THAT(rest_steps, ::testing::ElementsAre(3));
}

// ---- StreamEvents ----

TEST_F(ServiceTest, StreamAnswersEachBatchInOrderAfterItIsCommitted) {
  Submit(alpha_, kSweep);
  Register(alpha_, "gpu1");
  auto lease = Lease(alpha_, "gpu1");
  ASSERT_TRUE(lease.granted());
  auto call = OpenStream(alpha_.worker);
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    const int64_t step = static_cast<int64_t>(seq);
    ASSERT_EQ(SendAndAck(call, Batch(lease.lease(), seq, "val_f1",
                                     {{step, 0.1 * static_cast<double>(seq)}})),
              seq);
    // Acked means stored: the point is readable before the stream ends.
    EXPECT_EQ(StoredSteps(alpha_, lease.run().run_id(), static_cast<int>(seq))
                  .size(),
              seq);
  }
  grpc::Status s = CloseStream(call);
  EXPECT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(Finish(alpha_, "gpu1", lease.lease(), v1::OUTCOME_SUCCEEDED).ok());
  EXPECT_THAT(AllSteps(alpha_, lease.run().run_id()),
              ::testing::ElementsAre(1, 2, 3));
}

TEST_F(ServiceTest, StreamAnswerCarriesTheCancelDirective) {
  Submit(alpha_, kSweep);
  Register(alpha_, "gpu1");
  auto lease = Lease(alpha_, "gpu1");
  ASSERT_TRUE(CancelRun(alpha_, lease.run().run_id()).ok());
  auto call = OpenStream(alpha_.worker);
  ASSERT_TRUE(call.stream->Write(Batch(lease.lease(), 1, "val_f1", {{1, 0.1}})));
  v1::ReportEventsResponse ack;
  ASSERT_TRUE(call.stream->Read(&ack));
  EXPECT_EQ(ack.directive(), v1::DIRECTIVE_CANCEL);
  EXPECT_TRUE(CloseStream(call).ok());
}

TEST_F(ServiceTest, BatchResentOnTheStreamIsStoredOnce) {
  Submit(alpha_, kSweep);
  Register(alpha_, "gpu1");
  auto lease = Lease(alpha_, "gpu1");
  auto call = OpenStream(alpha_.worker);
  const auto batch = Batch(lease.lease(), 7, "val_f1", {{1, 0.1}, {2, 0.2}});
  EXPECT_EQ(SendAndAck(call, batch), 7u);
  EXPECT_EQ(SendAndAck(call, batch), 7u);
  EXPECT_TRUE(CloseStream(call).ok());
  // And again on a new stream, as after a reconnect.
  auto again = OpenStream(alpha_.worker);
  EXPECT_EQ(SendAndAck(again, batch), 7u);
  EXPECT_TRUE(CloseStream(again).ok());
  ASSERT_TRUE(Finish(alpha_, "gpu1", lease.lease(), v1::OUTCOME_SUCCEEDED).ok());
  EXPECT_THAT(AllSteps(alpha_, lease.run().run_id()),
              ::testing::ElementsAre(1, 2));
}

TEST_F(ServiceTest, StaleLeaseEndsTheStreamAndKeepsTheEarlierBatches) {
  auto [lease, call] = StreamWithFirstBatch();
  EXPECT_EQ(SendAndAck(call, Batch(lease.lease(), 2, "val_f1", {{2, 0.2}})),
            2u);
  // The run ends (as after a lease expiry and a new holder): the lease the
  // stream's next batch names is no longer current.
  ASSERT_TRUE(Finish(alpha_, "gpu1", lease.lease(), v1::OUTCOME_SUCCEEDED).ok());
  EXPECT_EQ(SendAndAck(call, Batch(lease.lease(), 3, "val_f1", {{3, 0.9}})),
            0u);
  grpc::Status s = call.stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("lease"));
  EXPECT_THAT(AllSteps(alpha_, lease.run().run_id()),
              ::testing::ElementsAre(1, 2));
}

// A finish as a message (ReportEventsRequest.finish): sent right behind
// the run's batches without waiting for their answers, it is stored after
// them, answered in order with FinishRun's answer, and its lease_next
// lease takes batches on the same stream.
TEST_F(ServiceTest, StreamFinishesTheRunAfterItsBatchesAndLeasesTheNext) {
  auto [sweep, first] = SubmitAndLeaseFirst();
  auto call = OpenStream(alpha_.worker);
  ASSERT_TRUE(
      call.stream->Write(Batch(first.lease(), 1, "val_f1", {{1, 0.4}})));
  ASSERT_TRUE(
      call.stream->Write(Batch(first.lease(), 2, "val_f1", {{2, 0.6}})));
  v1::ReportEventsRequest finish;
  finish.set_batch_seq(3);
  *finish.mutable_finish()->mutable_lease() = first.lease();
  finish.mutable_finish()->set_worker_id("gpu1");
  finish.mutable_finish()->set_outcome(v1::OUTCOME_SUCCEEDED);
  finish.mutable_finish()->set_lease_next(true);
  ASSERT_TRUE(call.stream->Write(finish));
  v1::ReportEventsResponse answer;
  for (uint64_t seq : {1, 2}) {
    ASSERT_TRUE(call.stream->Read(&answer));
    EXPECT_EQ(answer.acked_batch_seq(), seq);
    EXPECT_FALSE(answer.has_finished());
  }
  ASSERT_TRUE(call.stream->Read(&answer));
  EXPECT_EQ(answer.acked_batch_seq(), 3u);
  ASSERT_TRUE(answer.has_finished());
  EXPECT_EQ(answer.finished().state(), v1::RUN_STATE_SUCCEEDED);
  const v1::LeaseResponse& next = answer.finished().next();
  ASSERT_TRUE(next.granted());
  EXPECT_EQ(next.run().run_id(), sweep.run_ids(1));
  EXPECT_EQ(SendAndAck(call, Batch(next.lease(), 1, "val_f1", {{1, 0.5}})), 1u);
  EXPECT_TRUE(CloseStream(call).ok());

  v1::GetRunRequest get;
  get.set_run_id(first.run().run_id());
  v1::Run run;
  ASSERT_TRUE(team_->GetRun(Ctx(alpha_.member).get(), get, &run).ok());
  EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_DOUBLE_EQ(run.best_value(), 0.6);  // both batches stored first
  EXPECT_THAT(AllSteps(alpha_, first.run().run_id()),
              ::testing::ElementsAre(1, 2));
}

// Three windows' worth of batches (kMaxStreamBatchesInFlight each) and a
// finish, all written before any answer is read: the server reads on as
// answers go out, and every batch is answered once, in order, and stored
// once; the finish's answer comes last.
TEST_F(ServiceTest, StreamTakesMoreBatchesThanItsWindowWithoutWaiting) {
  auto [sweep, first] = SubmitAndLeaseFirst();
  auto call = OpenStream(alpha_.worker);
  const int n = 3 * static_cast<int>(kMaxStreamBatchesInFlight);
  for (int seq = 1; seq <= n; ++seq) {
    ASSERT_TRUE(
        call.stream->Write(Batch(first.lease(), static_cast<uint64_t>(seq),
                                 "val_f1", {{seq, 0.001 * seq}})))
        << seq;
  }
  v1::ReportEventsRequest finish;
  finish.set_batch_seq(static_cast<uint64_t>(n) + 1);
  *finish.mutable_finish()->mutable_lease() = first.lease();
  finish.mutable_finish()->set_worker_id("gpu1");
  finish.mutable_finish()->set_outcome(v1::OUTCOME_SUCCEEDED);
  ASSERT_TRUE(call.stream->Write(finish));
  v1::ReportEventsResponse answer;
  for (int seq = 1; seq <= n; ++seq) {
    ASSERT_TRUE(call.stream->Read(&answer)) << seq;
    ASSERT_EQ(answer.acked_batch_seq(), static_cast<uint64_t>(seq));
    EXPECT_FALSE(answer.has_finished());
  }
  ASSERT_TRUE(call.stream->Read(&answer));
  EXPECT_EQ(answer.finished().state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_TRUE(CloseStream(call).ok());
  std::vector<int64_t> expected(static_cast<size_t>(n));
  std::iota(expected.begin(), expected.end(), 1);
  EXPECT_EQ(AllSteps(alpha_, first.run().run_id()), expected);
}

// A finish message is refused like FinishRun (a stale lease ends the
// stream with FAILED_PRECONDITION, the batches before it kept), and a
// malformed one (with points, or another lease) with INVALID_ARGUMENT that
// names the rule, finishing nothing.
TEST_F(ServiceTest, AFinishMessageIsRefusedAsFinishRunWouldBe) {
  auto [lease, call] = StreamWithFirstBatch();
  v1::LeaseRef stale = lease.lease();
  stale.set_lease_id(stale.lease_id() + 1);
  v1::ReportEventsRequest finish;
  finish.set_batch_seq(2);
  *finish.mutable_finish()->mutable_lease() = stale;
  finish.mutable_finish()->set_worker_id("gpu1");
  finish.mutable_finish()->set_outcome(v1::OUTCOME_SUCCEEDED);
  EXPECT_EQ(SendAndAck(call, finish), 0u);
  grpc::Status s = call.stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << s.error_message();

  *finish.mutable_finish()->mutable_lease() = lease.lease();
  finish.add_points()->set_name("val_f1");
  v1::ReportEventsResponse resp;
  s = workers_->ReportEvents(Ctx(alpha_.worker).get(), finish, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("no points or events"));

  finish.clear_points();
  *finish.mutable_lease() = stale;
  s = workers_->ReportEvents(Ctx(alpha_.worker).get(), finish, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("leave `lease` unset"));

  // Another team's worker cannot finish the run: it does not exist for it.
  finish.clear_lease();
  s = workers_->ReportEvents(Ctx(beta_.worker).get(), finish, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();

  v1::GetRunRequest get;
  get.set_run_id(lease.run().run_id());
  v1::Run run;
  ASSERT_TRUE(team_->GetRun(Ctx(alpha_.member).get(), get, &run).ok());
  EXPECT_EQ(run.state(), v1::RUN_STATE_RUNNING);

  // The unary call takes a finish too, with the lease named twice alike.
  *finish.mutable_lease() = lease.lease();
  ASSERT_TRUE(
      workers_->ReportEvents(Ctx(alpha_.worker).get(), finish, &resp).ok());
  EXPECT_EQ(resp.finished().state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_FALSE(resp.finished().has_next());  // not asked
  EXPECT_THAT(AllSteps(alpha_, lease.run().run_id()),
              ::testing::ElementsAre(1));
}

// A stream outlives many token checks: rotating the worker token ends
// it at its next batch (once the auth cache lapses), storing nothing of
// that batch, as a unary call with the old token would be refused.
TEST_F(ServiceTest, RotatedTokenEndsAnOpenStreamAtItsNextBatch) {
  auto [lease, call] = StreamWithFirstBatch();
  auto rotated =
      server_->coordinator()->RotateToken("alpha", store::Role::kWorker);
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  clock_.AdvanceMs(6'000);  // past the authenticator's 5 s cache
  EXPECT_EQ(SendAndAck(call, Batch(lease.lease(), 2, "val_f1", {{99, 0.2}})),
            0u);
  grpc::Status s = call.stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED)
      << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("no longer valid"));
  // The new token streams; the refused batch (step 99) was not stored.
  alpha_.worker = *rotated;
  auto again = OpenStream(alpha_.worker);
  EXPECT_EQ(SendAndAck(again, Batch(lease.lease(), 3, "val_f1", {{2, 0.3}})),
            3u);
  EXPECT_TRUE(CloseStream(again).ok());
  ASSERT_TRUE(
      Finish(alpha_, "gpu1", lease.lease(), v1::OUTCOME_SUCCEEDED).ok());
  EXPECT_THAT(AllSteps(alpha_, lease.run().run_id()),
              ::testing::ElementsAre(1, 2));
}

TEST_F(ServiceTest, InvalidBatchEndsTheStreamWithInvalidArgument) {
  auto [lease, call] = StreamWithFirstBatch();
  EXPECT_EQ(SendAndAck(call, Batch(lease.lease(), 2, "", {{2, 0.2}})), 0u);
  grpc::Status s = call.stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << s.error_message();
  ASSERT_TRUE(Finish(alpha_, "gpu1", lease.lease(), v1::OUTCOME_SUCCEEDED).ok());
  EXPECT_THAT(AllSteps(alpha_, lease.run().run_id()), ::testing::ElementsAre(1));
}

TEST_F(ServiceTest, OneStreamCarriesBatchesOfTwoLeasesInterleaved) {
  Submit(alpha_, kSweep);  // two runs
  Register(alpha_, "gpu1");
  Register(alpha_, "gpu2");
  auto first = Lease(alpha_, "gpu1");
  auto second = Lease(alpha_, "gpu2");
  ASSERT_TRUE(first.granted() && second.granted());
  ASSERT_NE(first.run().run_id(), second.run().run_id());
  auto call = OpenStream(alpha_.worker);
  for (int i = 1; i <= 4; ++i) {
    const auto& lease = i % 2 == 1 ? first : second;
    const uint64_t seq = static_cast<uint64_t>(i);
    EXPECT_EQ(SendAndAck(call, Batch(lease.lease(), seq, "val_f1",
                                     {{10 * i, 0.1}})),
              seq);
  }
  EXPECT_TRUE(CloseStream(call).ok());
  ASSERT_TRUE(Finish(alpha_, "gpu1", first.lease(), v1::OUTCOME_SUCCEEDED).ok());
  ASSERT_TRUE(Finish(alpha_, "gpu2", second.lease(), v1::OUTCOME_SUCCEEDED).ok());
  EXPECT_THAT(AllSteps(alpha_, first.run().run_id()),
              ::testing::ElementsAre(10, 30));
  EXPECT_THAT(AllSteps(alpha_, second.run().run_id()),
              ::testing::ElementsAre(20, 40));
}

TEST_F(ServiceTest, PipelinedBatchesAreAllAnsweredInOrder) {
  Submit(alpha_, kSweep);
  Register(alpha_, "gpu1");
  auto lease = Lease(alpha_, "gpu1");
  auto call = OpenStream(alpha_.worker);
  constexpr int kBatches = 50;  // more than the server keeps in flight
  for (int i = 1; i <= kBatches; ++i) {
    ASSERT_TRUE(call.stream->Write(Batch(lease.lease(),
                                         static_cast<uint64_t>(i), "val_f1",
                                         {{i, 0.5}})));
  }
  call.stream->WritesDone();
  std::vector<uint64_t> acked;
  v1::ReportEventsResponse ack;
  while (call.stream->Read(&ack)) acked.push_back(ack.acked_batch_seq());
  grpc::Status s = call.stream->Finish();
  EXPECT_TRUE(s.ok()) << s.error_message();
  std::vector<uint64_t> expected;
  for (int i = 1; i <= kBatches; ++i) expected.push_back(i);
  EXPECT_EQ(acked, expected);
  ASSERT_TRUE(Finish(alpha_, "gpu1", lease.lease(), v1::OUTCOME_SUCCEEDED).ok());
  std::vector<int64_t> expected_steps(expected.begin(), expected.end());
  EXPECT_THAT(AllSteps(alpha_, lease.run().run_id()),
              ::testing::ElementsAreArray(expected_steps));
}

TEST_F(ServiceTest, PipelinedFailureComesAfterTheAnswersBeforeIt) {
  Submit(alpha_, kSweep);
  Register(alpha_, "gpu1");
  auto lease = Lease(alpha_, "gpu1");
  auto call = OpenStream(alpha_.worker);
  for (int i = 1; i <= 6; ++i) {
    // Batch 4 names no metric: INVALID_ARGUMENT. Writes after it fail once
    // the server has ended the stream.
    const bool written = call.stream->Write(
        Batch(lease.lease(), static_cast<uint64_t>(i),
              i == 4 ? "" : "val_f1", {{i, 0.5}}));
    if (i <= 4) {
      ASSERT_TRUE(written) << i;
    }
  }
  call.stream->WritesDone();
  std::vector<uint64_t> acked;
  v1::ReportEventsResponse ack;
  while (call.stream->Read(&ack)) acked.push_back(ack.acked_batch_seq());
  grpc::Status s = call.stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << s.error_message();
  EXPECT_EQ(acked, (std::vector<uint64_t>{1, 2, 3}));
  ASSERT_TRUE(Finish(alpha_, "gpu1", lease.lease(), v1::OUTCOME_SUCCEEDED).ok());
  // 1-3 are stored; 5 and 6 may be (they were read before 4 failed).
  std::vector<int64_t> steps = AllSteps(alpha_, lease.run().run_id());
  ASSERT_GE(steps.size(), 3u);
  EXPECT_THAT(std::vector<int64_t>(steps.begin(), steps.begin() + 3),
              ::testing::ElementsAre(1, 2, 3));
  EXPECT_THAT(steps, ::testing::Not(::testing::Contains(4)));
}

TEST_F(ServiceTest, ShutdownEndsOpenStreamsWithUnavailable) {
  Submit(alpha_, kSweep);
  Register(alpha_, "gpu1");
  auto lease = Lease(alpha_, "gpu1");
  auto call = OpenStream(alpha_.worker);
  ASSERT_EQ(SendAndAck(call, Batch(lease.lease(), 1, "val_f1", {{1, 0.1}})),
            1u);
  // Without ShutdownStreams the server would wait for its 5 s grace period
  // and then cancel the call.
  const auto start = std::chrono::steady_clock::now();
  server_->Shutdown();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4));
  v1::ReportEventsResponse ack;
  EXPECT_FALSE(call.stream->Read(&ack));
  EXPECT_EQ(call.stream->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ServiceTest, WatchStreamsLiveEventsUntilTheRunEnds) {
  Submit(alpha_, kSweep);
  Register(alpha_, "gpu1");
  auto lease = Lease(alpha_, "gpu1");
  v1::WatchRunRequest req;
  req.set_run_id(lease.run().run_id());
  auto ctx = Ctx(alpha_.member);
  auto reader = team_->WatchRun(ctx.get(), req);
  std::thread worker([&] {
    for (int step = 1; step <= 3; ++step) {
      ASSERT_TRUE(Report(alpha_, lease.lease(), step, "val_f1",
                         {{step, 0.1 * step}})
                      .ok());
    }
    ASSERT_TRUE(
        Finish(alpha_, "gpu1", lease.lease(), v1::OUTCOME_SUCCEEDED).ok());
  });
  std::vector<int64_t> steps;
  v1::WatchRunResponse item;
  v1::RunState last = v1::RUN_STATE_UNSPECIFIED;
  while (reader->Read(&item)) {
    if (item.has_metric()) steps.push_back(item.metric().step());
    last = item.state();
  }
  worker.join();
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_THAT(steps, ::testing::ElementsAre(1, 2, 3));
  EXPECT_EQ(last, v1::RUN_STATE_SUCCEEDED);
}

TEST_F(ServiceTest, LongPollingLeaseWakesWhenASweepArrives) {
  Register(alpha_, "gpu1");
  v1::LeaseResponse got;
  std::thread waiter([&] { got = Lease(alpha_, "gpu1", /*wait_ms=*/15'000); });
  // Lease calls that find nothing wait on the queue; submitting wakes them.
  // If the wake-up were missing the call would return empty at its deadline.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  Submit(alpha_, kSweep);
  waiter.join();
  EXPECT_TRUE(got.granted());
}

TEST_F(ServiceTest, LongPollWithoutRunsAnswersEmptyAtItsDeadline) {
  Register(alpha_, "gpu1");
  auto got = Lease(alpha_, "gpu1", /*wait_ms=*/300);
  EXPECT_FALSE(got.granted());
  EXPECT_EQ(got.directive(), v1::DIRECTIVE_CONTINUE);
}

int ProcessThreads() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  }
  return -1;
}

TEST_F(ServiceTest, ParkedLongPollsHoldNoThreadsAndAreAllServed) {
  Register(alpha_, "gpu1");
  constexpr int kCalls = 150;
  grpc::CompletionQueue cq;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<v1::LeaseResponse> responses(kCalls);
  std::vector<grpc::Status> statuses(kCalls);
  std::vector<std::unique_ptr<grpc::ClientAsyncResponseReader<v1::LeaseResponse>>>
      calls;
  v1::LeaseRequest req;
  req.set_worker_id("gpu1");
  req.set_wait_ms(15'000);
  for (int i = 0; i < kCalls; ++i) {
    contexts.push_back(Ctx(alpha_.worker));
    calls.push_back(workers_->AsyncLease(contexts.back().get(), req, &cq));
    calls.back()->Finish(&responses[i], &statuses[i],
                         reinterpret_cast<void*>(static_cast<intptr_t>(i)));
  }
  // Every call reaches the server and parks; a synchronous long poll would
  // need a thread per call (150 here), parked ones need none.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const int threads = ProcessThreads();
  EXPECT_LT(threads, 100) << "long polls seem to hold threads";

  // Runs for all of them: each parked call is granted one run.
  std::string yaml = std::string(R"(
method: random
run_cap: )") + std::to_string(kCalls) + R"(
config:
  data: {dataset: mask}
  model: {name: small_cnn}
  train: {epochs: 1}
parameters:
  seed: {distribution: int_uniform, min: 0, max: 1000000}
)";
  Submit(alpha_, yaml);
  std::set<int64_t> runs;
  for (int i = 0; i < kCalls; ++i) {
    void* tag;
    bool ok;
    ASSERT_TRUE(cq.Next(&tag, &ok));
    const auto n = static_cast<size_t>(reinterpret_cast<intptr_t>(tag));
    ASSERT_TRUE(statuses[n].ok()) << statuses[n].error_message();
    EXPECT_TRUE(responses[n].granted());
    runs.insert(responses[n].run().run_id());
  }
  EXPECT_EQ(runs.size(), static_cast<size_t>(kCalls));  // no run twice
  cq.Shutdown();
}

TEST_F(ServiceTest, ShutdownAnswersParkedLongPolls) {
  Register(alpha_, "gpu1");
  grpc::Status status;
  std::thread waiter([&] {
    v1::LeaseRequest req;
    req.set_worker_id("gpu1");
    req.set_wait_ms(15'000);
    v1::LeaseResponse resp;
    status = workers_->Lease(Ctx(alpha_.worker).get(), req, &resp);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto start = std::chrono::steady_clock::now();
  server_->Shutdown();
  waiter.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(ServiceTest, ArtifactUploadIsVerifiedAndDownloadsByteEqual) {
  Submit(alpha_, kSweep);
  Register(alpha_, "gpu1");
  auto lease = Lease(alpha_, "gpu1");
  std::string data(3 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 31);
  grpc::Status bad = Upload(alpha_, lease.lease(), "best.ckpt", data,
                            Sha256Hex("something else"));
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::DATA_LOSS);
  ASSERT_TRUE(
      Upload(alpha_, lease.lease(), "best.ckpt", data, Sha256Hex(data)).ok());

  v1::ListArtifactsRequest list_req;
  list_req.set_run_id(lease.run().run_id());
  v1::ListArtifactsResponse list;
  ASSERT_TRUE(
      team_->ListArtifacts(Ctx(alpha_.member).get(), list_req, &list).ok());
  ASSERT_EQ(list.artifacts_size(), 1);
  EXPECT_EQ(list.artifacts(0).sha256(), Sha256Hex(data));

  v1::DownloadArtifactRequest dl;
  dl.set_run_id(lease.run().run_id());
  dl.set_name("best.ckpt");
  auto ctx = Ctx(alpha_.member);
  auto reader = team_->DownloadArtifact(ctx.get(), dl);
  std::string got;
  v1::ArtifactChunk chunk;
  while (reader->Read(&chunk)) got += chunk.data();
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_TRUE(got == data);
}

// Reads a whole FetchArtifact stream into *data; returns the call status.
grpc::Status Fetch(v1::WorkerService::Stub* stub, const std::string& token,
                   const std::string& worker_id, const v1::LeaseRef& lease,
                   const std::string& name, uint32_t attempt,
                   std::string* data, v1::Artifact* header) {
  v1::FetchArtifactRequest req;
  req.set_worker_id(worker_id);
  *req.mutable_lease() = lease;
  req.set_name(name);
  req.set_attempt(attempt);
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + token);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto reader = stub->FetchArtifact(&ctx, req);
  v1::ArtifactChunk chunk;
  data->clear();
  while (reader->Read(&chunk)) {
    if (chunk.has_header() && header != nullptr) *header = chunk.header();
    *data += chunk.data();
  }
  return reader->Finish();
}

TEST_F(ServiceTest, WorkerFetchesTheResumeCheckpointOnlyUnderItsCurrentLease) {
  Submit(alpha_, kSweep);
  Register(alpha_, "gpu1");
  Register(alpha_, "gpu2");
  auto first = Lease(alpha_, "gpu1");
  ASSERT_TRUE(first.granted());
  EXPECT_FALSE(first.has_resume_from());
  std::string ckpt(1536 << 10, '\0');
  for (size_t i = 0; i < ckpt.size(); ++i) ckpt[i] = static_cast<char>(i * 7);
  ASSERT_TRUE(Upload(alpha_, first.lease(), "last.ckpt", ckpt, Sha256Hex(ckpt))
                  .ok());
  ASSERT_TRUE(Finish(alpha_, "gpu1", first.lease(), v1::OUTCOME_FAILED,
                     /*retryable=*/true)
                  .ok());

  auto second = Lease(alpha_, "gpu2");
  ASSERT_TRUE(second.granted());
  ASSERT_EQ(second.run().run_id(), first.run().run_id());
  ASSERT_TRUE(second.has_resume_from());
  EXPECT_EQ(second.resume_from().attempt(), 1u);
  std::string got;
  v1::Artifact header;
  ASSERT_TRUE(Fetch(workers_.get(), alpha_.worker, "gpu2", second.lease(),
                    "last.ckpt", second.resume_from().attempt(), &got, &header)
                  .ok());
  EXPECT_TRUE(got == ckpt);
  EXPECT_EQ(header.sha256(), Sha256Hex(ckpt));
  EXPECT_EQ(header.size(), static_cast<int64_t>(ckpt.size()));

  // The old lease, another worker's id and an unknown name are refused.
  EXPECT_EQ(Fetch(workers_.get(), alpha_.worker, "gpu1", first.lease(),
                  "last.ckpt", 0, &got, nullptr)
                .error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Fetch(workers_.get(), alpha_.worker, "gpu1", second.lease(),
                  "last.ckpt", 0, &got, nullptr)
                .error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Fetch(workers_.get(), alpha_.worker, "gpu2", second.lease(),
                  "best.ckpt", 0, &got, nullptr)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
  // Once the run is finished the lease no longer opens anything.
  ASSERT_TRUE(Finish(alpha_, "gpu2", second.lease(), v1::OUTCOME_SUCCEEDED).ok());
  EXPECT_EQ(Fetch(workers_.get(), alpha_.worker, "gpu2", second.lease(),
                  "last.ckpt", 0, &got, nullptr)
                .error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

// A job (RunConfig.job) names finished runs of the team; its lease may
// fetch exactly those runs' artifacts.
TEST_F(ServiceTest, JobsNeedSucceededSourcesAndFetchOnlyTheirModels) {
  Submit(alpha_, kSweep);
  Register(alpha_, "gpu1");
  auto a = Lease(alpha_, "gpu1");
  const std::string model = "weights of run a";
  ASSERT_TRUE(
      Upload(alpha_, a.lease(), "best.ckpt", model, Sha256Hex(model)).ok());
  ASSERT_TRUE(Finish(alpha_, "gpu1", a.lease(), v1::OUTCOME_SUCCEEDED).ok());
  auto b = Lease(alpha_, "gpu1");  // stays leased

  auto job = [](int64_t source, const std::string& dataset) {
    return absl::StrCat("method: grid\nconfig:\n  data: {dataset: ", dataset,
                        "}\n  job: {kind: predict, source_runs: [", source,
                        "]}\n");
  };
  auto submit = [&](const Team& team, const std::string& yaml) {
    v1::SubmitSweepRequest req;
    req.set_spec_yaml(yaml);
    v1::SubmitSweepResponse resp;
    grpc::Status s = team_->SubmitSweep(Ctx(team.member).get(), req, &resp);
    return std::make_pair(s, resp);
  };
  const int64_t run_a = a.run().run_id(), run_b = b.run().run_id();
  auto leased = submit(alpha_, job(run_b, "mask")).first;
  EXPECT_EQ(leased.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(leased.error_message(),
              HasSubstr(absl::StrCat("run ", run_b, " is RUN_STATE_LEASED")));
  EXPECT_EQ(submit(alpha_, job(run_a + 1000, "mask")).first.error_code(),
            grpc::StatusCode::NOT_FOUND);
  // Another team's run does not exist for beta.
  EXPECT_EQ(submit(beta_, job(run_a, "mask")).first.error_code(),
            grpc::StatusCode::NOT_FOUND);
  auto other_data = submit(alpha_, job(run_a, "faces")).first;
  EXPECT_EQ(other_data.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(other_data.error_message(), HasSubstr("data set \"mask\""));
  auto [ok, queued] = submit(alpha_, job(run_a, "mask"));
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  ASSERT_EQ(queued.run_ids_size(), 1);

  auto lease = Lease(alpha_, "gpu1");
  ASSERT_TRUE(lease.granted());
  ASSERT_EQ(lease.run().run_id(), queued.run_ids(0));
  ASSERT_TRUE(lease.run().config().has_job());
  auto fetch = [&](int64_t run_id, const std::string& name, std::string* got) {
    v1::FetchArtifactRequest req;
    req.set_worker_id("gpu1");
    *req.mutable_lease() = lease.lease();
    req.set_name(name);
    req.set_run_id(run_id);
    auto ctx = Ctx(alpha_.worker);
    auto reader = workers_->FetchArtifact(ctx.get(), req);
    v1::ArtifactChunk chunk;
    got->clear();
    while (reader->Read(&chunk)) *got += chunk.data();
    return reader->Finish();
  };
  std::string got;
  ASSERT_TRUE(fetch(run_a, "best.ckpt", &got).ok());
  EXPECT_EQ(got, model);
  grpc::Status foreign = fetch(run_b, "best.ckpt", &got);
  EXPECT_EQ(foreign.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(foreign.error_message(), HasSubstr("not a source run"));
  EXPECT_EQ(fetch(0, "best.ckpt", &got).error_code(),
            grpc::StatusCode::NOT_FOUND);  // the job's own: none yet
  ASSERT_TRUE(
      Finish(alpha_, "gpu1", lease.lease(), v1::OUTCOME_SUCCEEDED).ok());
  // A job over a job is refused.
  auto nested = submit(alpha_, job(queued.run_ids(0), "mask")).first;
  EXPECT_EQ(nested.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(nested.error_message(), HasSubstr("is itself a predict job"));
}

// FinishRun with lease_next: the answer carries the worker's next run,
// leased exactly as Lease would (attempt 1, a lease that takes reports,
// the run's config); then nothing (queue empty); never after a refused
// finish, and not without asking.
TEST_F(ServiceTest, FinishRunWithLeaseNextHandsOutTheNextRun) {
  auto [sweep, first] = SubmitAndLeaseFirst();

  auto finish = [&](const v1::LeaseRef& lease, bool lease_next,
                    v1::FinishRunResponse* resp) {
    v1::FinishRunRequest req;
    *req.mutable_lease() = lease;
    req.set_worker_id("gpu1");
    req.set_outcome(v1::OUTCOME_SUCCEEDED);
    req.set_lease_next(lease_next);
    return workers_->FinishRun(Ctx(alpha_.worker).get(), req, resp);
  };
  // A refused finish (stale lease) leases nothing.
  v1::LeaseRef stale = first.lease();
  stale.set_lease_id(first.lease().lease_id() + 1);
  v1::FinishRunResponse refused;
  EXPECT_EQ(finish(stale, true, &refused).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_FALSE(refused.has_next());

  v1::FinishRunResponse done;
  ASSERT_TRUE(finish(first.lease(), true, &done).ok());
  EXPECT_EQ(done.state(), v1::RUN_STATE_SUCCEEDED);
  ASSERT_TRUE(done.has_next());
  const v1::LeaseResponse& next = done.next();
  ASSERT_TRUE(next.granted());
  EXPECT_EQ(next.run().run_id(), sweep.run_ids(1));
  EXPECT_EQ(next.lease().attempt(), 1u);
  EXPECT_EQ(next.run().config().optimizer().name(), "adamw");
  EXPECT_GT(next.heartbeat_interval_ms(), 0);
  EXPECT_GT(next.lease_expires_at_ms(), 0);
  ASSERT_TRUE(Report(alpha_, next.lease(), 1, "val_f1", {{1, 0.5}}).ok());

  v1::GetRunRequest get;
  get.set_run_id(sweep.run_ids(1));
  v1::Run run;
  ASSERT_TRUE(team_->GetRun(Ctx(alpha_.member).get(), get, &run).ok());
  EXPECT_EQ(run.state(), v1::RUN_STATE_RUNNING);
  EXPECT_EQ(run.worker_id(), "gpu1");

  // The queue is empty now: the answer says so (not granted, CONTINUE).
  v1::FinishRunResponse last;
  ASSERT_TRUE(finish(next.lease(), true, &last).ok());
  ASSERT_TRUE(last.has_next());
  EXPECT_FALSE(last.next().granted());
  EXPECT_EQ(last.next().directive(), v1::DIRECTIVE_CONTINUE);

  // Without lease_next there is no `next`, and the run stays queued.
  Submit(alpha_, kSweep);
  auto third = Lease(alpha_, "gpu1");
  ASSERT_TRUE(third.granted());
  v1::FinishRunResponse plain;
  ASSERT_TRUE(finish(third.lease(), false, &plain).ok());
  EXPECT_FALSE(plain.has_next());
  EXPECT_TRUE(Lease(alpha_, "gpu1").granted());
}

// A draining worker finishes its run but gets no next one: DRAIN.
TEST_F(ServiceTest, FinishRunWithLeaseNextTellsADrainingWorkerToDrain) {
  auto sweep = Submit(alpha_, kSweep);
  Register(alpha_, "gpu1");
  auto lease = Lease(alpha_, "gpu1");
  ASSERT_TRUE(lease.granted());
  v1::DrainWorkerRequest drain;
  drain.set_worker_id("gpu1");
  v1::DrainWorkerResponse drained;
  ASSERT_TRUE(
      team_->DrainWorker(Ctx(alpha_.member).get(), drain, &drained).ok());
  v1::FinishRunRequest req;
  *req.mutable_lease() = lease.lease();
  req.set_worker_id("gpu1");
  req.set_outcome(v1::OUTCOME_SUCCEEDED);
  req.set_lease_next(true);
  v1::FinishRunResponse resp;
  ASSERT_TRUE(workers_->FinishRun(Ctx(alpha_.worker).get(), req, &resp).ok());
  EXPECT_EQ(resp.state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_FALSE(resp.next().granted());
  EXPECT_EQ(resp.next().directive(), v1::DIRECTIVE_DRAIN);
  v1::GetRunRequest get;
  get.set_run_id(sweep.run_ids(1));
  v1::Run run;
  ASSERT_TRUE(team_->GetRun(Ctx(alpha_.member).get(), get, &run).ok());
  EXPECT_EQ(run.state(), v1::RUN_STATE_QUEUED);
}

// A finish that quarantines its worker (its second failure here) gets no
// next run: `next` is left out, the finish stands, and Lease says why.
TEST_F(ServiceTest, FinishRunWithLeaseNextGivesAQuarantinedWorkerNoRun) {
  Submit(alpha_, kSweep);
  Register(alpha_, "gpu1");
  auto first = Lease(alpha_, "gpu1");
  ASSERT_TRUE(first.granted());
  ASSERT_TRUE(Finish(alpha_, "gpu1", first.lease(), v1::OUTCOME_FAILED,
                     /*retryable=*/true)
                  .ok());
  auto second = Lease(alpha_, "gpu1");
  ASSERT_TRUE(second.granted());
  v1::FinishRunRequest req;
  *req.mutable_lease() = second.lease();
  req.set_worker_id("gpu1");
  req.set_outcome(v1::OUTCOME_FAILED);
  req.set_retryable(true);
  req.set_reason("boom");
  req.set_lease_next(true);
  v1::FinishRunResponse resp;
  ASSERT_TRUE(workers_->FinishRun(Ctx(alpha_.worker).get(), req, &resp).ok());
  EXPECT_EQ(resp.state(), v1::RUN_STATE_QUEUED);
  EXPECT_FALSE(resp.has_next());
  v1::LeaseRequest lease;
  lease.set_worker_id("gpu1");
  v1::LeaseResponse leased;
  grpc::Status s = workers_->Lease(Ctx(alpha_.worker).get(), lease, &leased);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("quarantined"));
}

TEST_F(ServiceTest, DrainedWorkerGetsDrainAndNoRun) {
  Submit(alpha_, kSweep);
  Register(alpha_, "gpu1");
  auto lease = Lease(alpha_, "gpu1");
  v1::DrainWorkerRequest drain;
  drain.set_worker_id("gpu1");
  v1::DrainWorkerResponse drained;
  ASSERT_TRUE(team_->DrainWorker(Ctx(alpha_.member).get(), drain, &drained).ok());
  EXPECT_EQ(drained.worker().state(), v1::WORKER_STATE_DRAINING);
  v1::HeartbeatRequest hb;
  hb.set_worker_id("gpu1");
  *hb.mutable_lease() = lease.lease();
  v1::HeartbeatResponse hb_resp;
  ASSERT_TRUE(workers_->Heartbeat(Ctx(alpha_.worker).get(), hb, &hb_resp).ok());
  EXPECT_EQ(hb_resp.directive(), v1::DIRECTIVE_DRAIN);
  auto next = Lease(alpha_, "gpu1");
  EXPECT_FALSE(next.granted());
  EXPECT_EQ(next.directive(), v1::DIRECTIVE_DRAIN);
}

TEST_F(ServiceTest, WorkerIsQuarantinedAfterConsecutiveFailuresUntilCleared) {
  Submit(alpha_, kSweep);
  Submit(alpha_, kSweep);
  Register(alpha_, "gpu1");
  for (int i = 0; i < 2; ++i) {
    auto lease = Lease(alpha_, "gpu1");
    ASSERT_TRUE(lease.granted());
    ASSERT_TRUE(Finish(alpha_, "gpu1", lease.lease(), v1::OUTCOME_FAILED,
                       /*retryable=*/true)
                    .ok());
  }
  v1::LeaseRequest req;
  req.set_worker_id("gpu1");
  v1::LeaseResponse resp;
  grpc::Status s = workers_->Lease(Ctx(alpha_.worker).get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("quarantined"));
  EXPECT_THAT(s.error_message(), HasSubstr("sweepq workers clear gpu1"));

  v1::ClearWorkerRequest clear;
  clear.set_worker_id("gpu1");
  v1::ClearWorkerResponse cleared;
  ASSERT_TRUE(team_->ClearWorker(Ctx(alpha_.member).get(), clear, &cleared).ok());
  EXPECT_TRUE(Lease(alpha_, "gpu1").granted());
}

TEST_F(ServiceTest, CancelOfALeasedRunIsDeliveredAsADirective) {
  Submit(alpha_, kSweep);
  Register(alpha_, "gpu1");
  auto lease = Lease(alpha_, "gpu1");
  ASSERT_TRUE(CancelRun(alpha_, lease.run().run_id()).ok());
  v1::HeartbeatRequest hb;
  hb.set_worker_id("gpu1");
  *hb.mutable_lease() = lease.lease();
  v1::HeartbeatResponse hb_resp;
  ASSERT_TRUE(workers_->Heartbeat(Ctx(alpha_.worker).get(), hb, &hb_resp).ok());
  EXPECT_EQ(hb_resp.directive(), v1::DIRECTIVE_CANCEL);
  v1::RunState state;
  ASSERT_TRUE(Finish(alpha_, "gpu1", lease.lease(), v1::OUTCOME_CANCELLED,
                     false, &state)
                  .ok());
  EXPECT_EQ(state, v1::RUN_STATE_CANCELLED);
}

// Operators tell the server's own threads apart in `top -H` and perf.
TEST_F(ServiceTest, TheServersThreadsCarryTheirNames) {
  std::multiset<std::string> names;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    names.insert(name);
  }
  EXPECT_EQ(names.count("sweepq-writer"), 1u);
  EXPECT_EQ(names.count("sweepq-checkpt"), 1u);
  EXPECT_EQ(names.count("sweepq-waiters"), 1u);
}

TEST_F(ServiceTest, HealthServiceAndReflectionAnswer) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(health->Check(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  // Server reflection, spoken on the wire as grpcurl does: a
  // ServerReflectionRequest with `list_services: ""` (field 7) must come
  // back naming both of our services.
  grpc::GenericStub generic(channel_);
  grpc::CompletionQueue cq;
  grpc::ClientContext rctx;
  rctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto call = generic.PrepareCall(
      &rctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      &cq);
  void* tag;
  bool ok;
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  const std::string list_services("\x3a\x00", 2);
  grpc::Slice slice(list_services);
  grpc::ByteBuffer request(&slice, 1);
  call->Write(request, reinterpret_cast<void*>(2));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  grpc::ByteBuffer reply;
  call->Read(&reply, reinterpret_cast<void*>(3));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(reply.Dump(&slices).ok());
  std::string bytes;
  for (const auto& sl : slices) {
    bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  }
  EXPECT_THAT(bytes, HasSubstr("sweepq.v1.TeamService"));
  EXPECT_THAT(bytes, HasSubstr("sweepq.v1.WorkerService"));
  rctx.TryCancel();
  call->Finish(&grpc_status_, reinterpret_cast<void*>(4));
  while (cq.Next(&tag, &ok) && tag != reinterpret_cast<void*>(4)) {
  }
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

// ---- Auth matrix: every RPC, without a token, with a wrong token, with the
// other role's token, and on another team's objects. ----

class AuthMatrixTest : public ServiceTest {
 protected:
  void SetUp() override {
    ServiceTest::SetUp();
    // Objects of team alpha that beta must not see.
    auto sweep = Submit(alpha_, kSweep);
    sweep_id_ = sweep.sweep_id();
    Register(alpha_, "gpu1");
    Register(alpha_, "gpu-of-alpha-only");
    auto lease = Lease(alpha_, "gpu1");
    lease_ = lease.lease();
    ASSERT_TRUE(Upload(alpha_, lease_, "a.txt", "abc", Sha256Hex("abc")).ok());
    Register(beta_, "gpu1");
  }

  // One call per RPC: (name, role it needs, invoke(token, on alpha's ids)).
  struct Rpc {
    std::string name;
    bool member;
    std::function<grpc::Status(const std::string& token)> call;
  };

  std::vector<Rpc> Rpcs() {
    std::vector<Rpc> rpcs;
    auto add = [&](std::string name, bool member,
                   std::function<grpc::Status(const std::string&)> call) {
      rpcs.push_back({std::move(name), member, std::move(call)});
    };
    const int64_t run_id = lease_.run_id();
    add("SubmitSweep", true, [&](const std::string& t) {
      v1::SubmitSweepRequest r;
      r.set_spec_yaml(kSweep);
      v1::SubmitSweepResponse o;
      return team_->SubmitSweep(Ctx(t).get(), r, &o);
    });
    add("ListRuns", true, [&](const std::string& t) {
      v1::ListRunsRequest r;
      r.set_sweep_id(sweep_id_);
      v1::ListRunsResponse o;
      return team_->ListRuns(Ctx(t).get(), r, &o);
    });
    add("GetRun", true, [&, run_id](const std::string& t) {
      v1::GetRunRequest r;
      r.set_run_id(run_id);
      v1::Run o;
      return team_->GetRun(Ctx(t).get(), r, &o);
    });
    add("WatchRun", true, [&, run_id](const std::string& t) {
      v1::WatchRunRequest r;
      r.set_run_id(run_id);
      auto ctx = Ctx(t);
      ctx->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::seconds(2));
      auto reader = team_->WatchRun(ctx.get(), r);
      v1::WatchRunResponse o;
      while (reader->Read(&o)) {
      }
      return reader->Finish();
    });
    add("Leaderboard", true, [&](const std::string& t) {
      v1::LeaderboardRequest r;
      r.set_sweep_id(sweep_id_);
      v1::LeaderboardResponse o;
      return team_->Leaderboard(Ctx(t).get(), r, &o);
    });
    add("CancelRun", true, [&, run_id](const std::string& t) {
      v1::CancelRunRequest r;
      r.set_run_id(run_id);
      v1::CancelRunResponse o;
      return team_->CancelRun(Ctx(t).get(), r, &o);
    });
    add("CancelSweep", true, [&](const std::string& t) {
      v1::CancelSweepRequest r;
      r.set_sweep_id(sweep_id_);
      v1::CancelSweepResponse o;
      return team_->CancelSweep(Ctx(t).get(), r, &o);
    });
    add("RetryRun", true, [&, run_id](const std::string& t) {
      v1::RetryRunRequest r;
      r.set_run_id(run_id);
      v1::RetryRunResponse o;
      return team_->RetryRun(Ctx(t).get(), r, &o);
    });
    add("ListWorkers", true, [&](const std::string& t) {
      v1::ListWorkersResponse o;
      return team_->ListWorkers(Ctx(t).get(), v1::ListWorkersRequest(), &o);
    });
    add("DrainWorker", true, [&](const std::string& t) {
      v1::DrainWorkerRequest r;
      r.set_worker_id("gpu-of-alpha-only");
      v1::DrainWorkerResponse o;
      return team_->DrainWorker(Ctx(t).get(), r, &o);
    });
    add("ClearWorker", true, [&](const std::string& t) {
      v1::ClearWorkerRequest r;
      r.set_worker_id("gpu-of-alpha-only");
      v1::ClearWorkerResponse o;
      return team_->ClearWorker(Ctx(t).get(), r, &o);
    });
    add("ListArtifacts", true, [&, run_id](const std::string& t) {
      v1::ListArtifactsRequest r;
      r.set_run_id(run_id);
      v1::ListArtifactsResponse o;
      return team_->ListArtifacts(Ctx(t).get(), r, &o);
    });
    add("DownloadArtifact", true, [&, run_id](const std::string& t) {
      v1::DownloadArtifactRequest r;
      r.set_run_id(run_id);
      r.set_name("a.txt");
      auto ctx = Ctx(t);
      auto reader = team_->DownloadArtifact(ctx.get(), r);
      v1::ArtifactChunk o;
      while (reader->Read(&o)) {
      }
      return reader->Finish();
    });
    add("RegisterWorker", false, [&](const std::string& t) {
      v1::RegisterWorkerRequest r;
      r.set_worker_id("gpu9");
      v1::RegisterWorkerResponse o;
      return workers_->RegisterWorker(Ctx(t).get(), r, &o);
    });
    add("Lease", false, [&](const std::string& t) {
      v1::LeaseRequest r;
      r.set_worker_id("gpu-of-alpha-only");
      v1::LeaseResponse o;
      return workers_->Lease(Ctx(t).get(), r, &o);
    });
    add("Heartbeat", false, [&](const std::string& t) {
      v1::HeartbeatRequest r;
      r.set_worker_id("gpu1");
      *r.mutable_lease() = lease_;
      v1::HeartbeatResponse o;
      return workers_->Heartbeat(Ctx(t).get(), r, &o);
    });
    add("ReportEvents", false, [&](const std::string& t) {
      v1::ReportEventsRequest r;
      *r.mutable_lease() = lease_;
      r.set_batch_seq(99);
      v1::ReportEventsResponse o;
      return workers_->ReportEvents(Ctx(t).get(), r, &o);
    });
    add("StreamEvents", false, [&](const std::string& t) {
      auto ctx = Ctx(t);
      auto stream = workers_->StreamEvents(ctx.get());
      v1::ReportEventsRequest r;
      *r.mutable_lease() = lease_;
      r.set_batch_seq(98);
      stream->Write(r);
      stream->WritesDone();
      v1::ReportEventsResponse o;
      while (stream->Read(&o)) {
      }
      return stream->Finish();
    });
    add("UploadArtifact", false, [&](const std::string& t) {
      auto ctx = Ctx(t);
      v1::UploadArtifactResponse o;
      auto writer = workers_->UploadArtifact(ctx.get(), &o);
      v1::ArtifactChunk c;
      *c.mutable_lease() = lease_;
      c.mutable_header()->set_name("b.txt");
      c.mutable_header()->set_size(1);
      c.mutable_header()->set_sha256(Sha256Hex("b"));
      c.set_data("b");
      writer->Write(c);
      writer->WritesDone();
      return writer->Finish();
    });
    add("FetchArtifact", false, [&](const std::string& t) {
      v1::FetchArtifactRequest r;
      r.set_worker_id("gpu1");
      *r.mutable_lease() = lease_;
      r.set_name("a.txt");
      auto ctx = Ctx(t);
      auto reader = workers_->FetchArtifact(ctx.get(), r);
      v1::ArtifactChunk o;
      while (reader->Read(&o)) {
      }
      return reader->Finish();
    });
    add("FinishRun", false, [&](const std::string& t) {
      v1::FinishRunRequest r;
      *r.mutable_lease() = lease_;
      r.set_worker_id("gpu1");
      r.set_outcome(v1::OUTCOME_FAILED);
      v1::FinishRunResponse o;
      return workers_->FinishRun(Ctx(t).get(), r, &o);
    });
    return rpcs;
  }

  int64_t sweep_id_ = 0;
  v1::LeaseRef lease_;
};

TEST_F(AuthMatrixTest, EveryRpcNeedsAValidTokenOfItsRole) {
  const auto rpcs = Rpcs();
  ASSERT_EQ(rpcs.size(), 21u);  // every RPC of both services
  for (const auto& rpc : rpcs) {
    SCOPED_TRACE(rpc.name);
    EXPECT_EQ(rpc.call("").error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(rpc.call("not-a-token").error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    const std::string& wrong_role = rpc.member ? alpha_.worker : alpha_.member;
    EXPECT_EQ(rpc.call(wrong_role).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
}

TEST_F(AuthMatrixTest, AnotherTeamsObjectsAreNotFound) {
  for (const auto& rpc : Rpcs()) {
    SCOPED_TRACE(rpc.name);
    const std::string& token = rpc.member ? beta_.member : beta_.worker;
    grpc::Status s = rpc.call(token);
    if (rpc.name == "SubmitSweep" || rpc.name == "RegisterWorker") {
      EXPECT_TRUE(s.ok()) << s.error_message();  // no foreign object named
    } else if (rpc.name == "ListWorkers") {
      EXPECT_TRUE(s.ok()) << s.error_message();
    } else {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND)
          << s.error_message();
    }
  }
  // ListWorkers shows only beta's own worker.
  v1::ListWorkersResponse workers;
  ASSERT_TRUE(team_->ListWorkers(Ctx(beta_.member).get(),
                                 v1::ListWorkersRequest(), &workers)
                  .ok());
  ASSERT_EQ(workers.workers_size(), 2);  // gpu1 and gpu9 registered above
  for (const auto& w : workers.workers()) {
    EXPECT_TRUE(w.running_run_ids().empty());
  }
  // And alpha's run was untouched by every call above.
  v1::GetRunRequest get;
  get.set_run_id(lease_.run_id());
  v1::Run run;
  ASSERT_TRUE(team_->GetRun(Ctx(alpha_.member).get(), get, &run).ok());
  EXPECT_EQ(run.state(), v1::RUN_STATE_LEASED);
  EXPECT_FALSE(run.cancel_requested());
}

// ---- TLS ----

class TlsServiceTest : public ServiceTest {
 protected:
  void SetUp() override { StartServer(/*tls=*/true); }
};

TEST_F(TlsServiceTest, CallsSucceedOverTlsAndPlaintextIsRefused) {
  auto sweep = Submit(alpha_, kSweep);
  EXPECT_EQ(sweep.run_ids_size(), 2);
  auto plain = v1::TeamService::NewStub(
      grpc::CreateChannel(Address(), grpc::InsecureChannelCredentials()));
  v1::ListRunsResponse runs;
  auto ctx = Ctx(alpha_.member);
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
  grpc::Status s = plain->ListRuns(ctx.get(), v1::ListRunsRequest(), &runs);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace sweepq::server
