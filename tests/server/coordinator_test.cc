// Coordinator domain logic over InMemoryStore with a FakeClock: no sleeps.
#include "server/coordinator.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/crypto.h"
#include "glog/logging.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/memory_store.h"
#include "tests/testing/temp_dir.h"

namespace sweepq::server {
namespace {

using ::testing::HasSubstr;
namespace v1 = ::sweepq::v1;

constexpr char kSweep[] = R"(
method: grid
max_attempts: 2
config:
  data: {dataset: mask}
  model: {name: small_cnn}
  train: {epochs: 3}
parameters:
  seed: {values: [1, 2, 3]}
)";

class CoordinatorTest : public ::testing::Test {
 protected:
  CoordinatorTest() {
    auto artifacts = ArtifactStore::Open(dir_.Join("artifacts"));
    CHECK(artifacts.ok());
    artifacts_ = std::move(*artifacts);
    CoordinatorOptions options;
    options.run_expiry_thread = false;
    options.lease_ttl_ms = 30'000;
    coordinator_ = std::make_unique<Coordinator>(&store_, &clock_,
                                                 artifacts_.get(), options);
    auto team = store_.CreateTeam("t", "member-hash", "worker-hash", 0);
    CHECK(team.ok());
    team_ = *team;
  }

  // Submits kSweep.
  void SubmitSweep() {
    v1::SubmitSweepRequest submit;
    submit.set_spec_yaml(kSweep);
    ASSERT_TRUE(coordinator_->SubmitSweep(team_, submit).ok());
  }

  // Finishes `leased` as SUCCEEDED by worker `id`.
  void Succeed(const v1::LeaseResponse& leased, const std::string& id) {
    v1::FinishRunRequest finish;
    *finish.mutable_lease() = leased.lease();
    finish.set_worker_id(id);
    finish.set_outcome(v1::OUTCOME_SUCCEEDED);
    ASSERT_TRUE(coordinator_->FinishRun(team_, finish).ok());
  }

  void Register(const std::string& id) {
    v1::RegisterWorkerRequest req;
    req.set_worker_id(id);
    req.add_datasets("mask");
    ASSERT_TRUE(coordinator_->RegisterWorker(team_, req).ok());
  }

  v1::LeaseResponse Lease(const std::string& id) {
    v1::LeaseRequest req;
    req.set_worker_id(id);
    auto resp = coordinator_->Lease(team_, req, [] { return false; });
    EXPECT_TRUE(resp.ok()) << resp.status();
    return resp.ok() ? *resp : v1::LeaseResponse();
  }

  testing::TempDir dir_;
  FakeClock clock_;
  store::InMemoryStore store_;
  std::unique_ptr<ArtifactStore> artifacts_;
  std::unique_ptr<Coordinator> coordinator_;
  int64_t team_ = 0;
};

TEST_F(CoordinatorTest, LeaseExpiredRunIsRequeuedWithNextAttempt) {
  v1::SubmitSweepRequest submit;
  submit.set_spec_yaml(kSweep);
  auto sweep = coordinator_->SubmitSweep(team_, submit);
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  Register("w1");
  auto first = Lease("w1");
  ASSERT_TRUE(first.granted());

  clock_.AdvanceMs(29'999);
  EXPECT_EQ(*coordinator_->ExpireLeasesNow(), 0u);  // not yet
  clock_.AdvanceMs(2);
  EXPECT_EQ(*coordinator_->ExpireLeasesNow(), 1u);

  auto run = coordinator_->GetRun(team_, first.run().run_id());
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->state(), v1::RUN_STATE_QUEUED);
  ASSERT_EQ(run->attempts_size(), 1);
  EXPECT_THAT(run->attempts(0).reason(), HasSubstr("lease expired"));

  auto second = Lease("w1");
  ASSERT_TRUE(second.granted());
  EXPECT_EQ(second.run().run_id(), first.run().run_id());
  EXPECT_EQ(second.lease().attempt(), 2u);
  EXPECT_NE(second.lease().lease_id(), first.lease().lease_id());
}

// Collects the INFO lines logged while it is alive.
class LogLines : public google::LogSink {
 public:
  LogLines() { google::AddLogSink(this); }
  ~LogLines() override { google::RemoveLogSink(this); }
  void send(google::LogSeverity severity, const char*, const char*, int,
            const struct ::tm*, const char* message,
            size_t message_len) override {
    if (severity != google::GLOG_INFO) return;
    absl::MutexLock lock(&mu_);
    lines_.emplace_back(message, message_len);
  }
  std::vector<std::string> lines() {
    absl::MutexLock lock(&mu_);
    return lines_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> lines_;
};

// Operators get one line per lease and one per finish, successes included
// (docs/operations.md).
TEST_F(CoordinatorTest, EachLeaseAndFinishIsOneLogLine) {
  SubmitSweep();
  Register("w1");
  LogLines log;
  auto leased = Lease("w1");
  ASSERT_TRUE(leased.granted());
  Succeed(leased, "w1");
  const std::string id = std::to_string(leased.run().run_id());
  EXPECT_THAT(log.lines(), ::testing::ElementsAre(
                               "lease run " + id + " attempt 1 -> worker w1",
                               "finish run " + id +
                                   " attempt 1 by w1: OUTCOME_SUCCEEDED -> "
                                   "RUN_STATE_SUCCEEDED"));
}

// A lease serves the data sets the worker registered last, also when it
// re-registers with others after leasing (the coordinator keeps them
// instead of reading the worker's row on every lease).
TEST_F(CoordinatorTest, ALeaseServesTheDatasetsOfTheLatestRegistration) {
  SubmitSweep();
  v1::RegisterWorkerRequest other;
  other.set_worker_id("w1");
  other.add_datasets("cifar");
  ASSERT_TRUE(coordinator_->RegisterWorker(team_, other).ok());
  EXPECT_FALSE(Lease("w1").granted());

  Register("w1");  // now with "mask"
  auto leased = Lease("w1");
  ASSERT_TRUE(leased.granted());
  Succeed(leased, "w1");

  ASSERT_TRUE(coordinator_->RegisterWorker(team_, other).ok());
  EXPECT_FALSE(Lease("w1").granted());
}

// After a worker's first lease, a drain or quarantine is still answered
// from its row: DRAIN, or the quarantine and how to clear it.
TEST_F(CoordinatorTest, DrainAndQuarantineAfterALeaseAreAnsweredFromTheRow) {
  SubmitSweep();
  Register("w1");
  ASSERT_TRUE(Lease("w1").granted());

  ASSERT_TRUE(store_.DrainWorker(team_, "w1").ok());
  auto drained = Lease("w1");
  EXPECT_FALSE(drained.granted());
  EXPECT_EQ(drained.directive(), v1::DIRECTIVE_DRAIN);

  ASSERT_TRUE(store_.ClearWorker(team_, "w1").ok());
  auto leased = Lease("w1");
  ASSERT_TRUE(leased.granted());
  store::FinishRequest failed;
  failed.lease = leased.lease();
  failed.worker_id = "w1";
  failed.outcome = v1::OUTCOME_FAILED;
  failed.reason = "CUDA error";
  failed.now_ms = clock_.NowMs();
  failed.quarantine_after = 1;
  ASSERT_TRUE(store_.FinishRun(team_, failed).ok());
  v1::LeaseRequest req;
  req.set_worker_id("w1");
  auto refused = coordinator_->Lease(team_, req, [] { return false; });
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("quarantined"));
  EXPECT_THAT(refused.status().message(), HasSubstr("sweepq workers clear w1"));

  v1::LeaseRequest stranger;
  stranger.set_worker_id("w9");
  EXPECT_FALSE(coordinator_->Lease(team_, stranger, [] { return false; }).ok());
}

TEST_F(CoordinatorTest, HeartbeatsKeepTheLeaseAlive) {
  SubmitSweep();
  Register("w1");
  auto lease = Lease("w1");
  for (int i = 0; i < 10; ++i) {
    clock_.AdvanceMs(10'000);
    v1::HeartbeatRequest hb;
    hb.set_worker_id("w1");
    *hb.mutable_lease() = lease.lease();
    auto resp = coordinator_->Heartbeat(team_, hb);
    ASSERT_TRUE(resp.ok()) << resp.status();
    EXPECT_EQ(resp->directive(), v1::DIRECTIVE_CONTINUE);
    EXPECT_EQ(*coordinator_->ExpireLeasesNow(), 0u);
  }
}

TEST_F(CoordinatorTest, RunFailsAfterMaxAttemptsOfExpiredLeases) {
  SubmitSweep();
  Register("w1");
  int64_t run_id = 0;
  for (int attempt = 1; attempt <= 2; ++attempt) {
    auto lease = Lease("w1");
    ASSERT_TRUE(lease.granted());
    if (run_id == 0) run_id = lease.run().run_id();
    EXPECT_EQ(lease.run().run_id(), run_id);
    clock_.AdvanceMs(31'000);
    ASSERT_EQ(*coordinator_->ExpireLeasesNow(), 1u);
  }
  auto run = coordinator_->GetRun(team_, run_id);
  EXPECT_EQ(run->state(), v1::RUN_STATE_FAILED);
  EXPECT_THAT(run->error(), HasSubstr("lease expired"));
}

TEST_F(CoordinatorTest, LeaseWithoutRunsReturnsEmptyAtItsDeadline) {
  Register("w1");
  v1::LeaseRequest req;
  req.set_worker_id("w1");
  req.set_wait_ms(50);
  auto resp = coordinator_->Lease(team_, req, [] { return false; });
  ASSERT_TRUE(resp.ok());
  EXPECT_FALSE(resp->granted());
}

TEST_F(CoordinatorTest, SweepOverTheRunCapIsRefused) {
  v1::SubmitSweepRequest submit;
  std::string values;
  for (int i = 0; i < 101; ++i) values += (i ? ", " : "") + std::to_string(i);
  submit.set_spec_yaml(std::string(R"(
method: grid
config:
  data: {dataset: mask}
  model: {name: small_cnn}
  train: {epochs: 3}
parameters:
  seed: {values: [)") + values + R"(]}
  train.batch_size: {values: [)" + values + R"(]}
)");
  auto sweep = coordinator_->SubmitSweep(team_, submit);
  EXPECT_EQ(sweep.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(sweep.status().message(), HasSubstr("10201"));
}

TEST_F(CoordinatorTest, CreateTeamStoresOnlyHashesAndReturnsDistinctTokens) {
  auto tokens = coordinator_->CreateTeam("other");
  ASSERT_TRUE(tokens.ok());
  EXPECT_GE(tokens->member_token.size(), 32u);
  EXPECT_NE(tokens->member_token, tokens->worker_token);
  auto found = store_.FindToken(tokens->member_token);
  EXPECT_EQ(found.status().code(), absl::StatusCode::kNotFound);
  auto by_hash = store_.FindToken(Sha256Hex(tokens->worker_token));
  ASSERT_TRUE(by_hash.ok());
  EXPECT_EQ(by_hash->role, store::Role::kWorker);
}

}  // namespace
}  // namespace sweepq::server
