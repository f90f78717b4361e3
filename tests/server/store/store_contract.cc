// The Store contract suite; see store_contract.h for how to instantiate it
// and how it reads the parts of store.h that leave room.
#include "tests/server/store/store_contract.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace sweepq::store {

// ---- Fixture ----

void StoreContractTest::SetUp() {
  std::error_code ec;
  std::filesystem::path base = std::filesystem::temp_directory_path(ec);
  ASSERT_FALSE(ec) << "no temp directory: " << ec.message();
  std::string pattern = (base / "sweepq_store_XXXXXX").string();
  ASSERT_NE(mkdtemp(pattern.data()), nullptr)
      << "mkdtemp " << pattern << ": " << std::strerror(errno);
  temp_dir_ = pattern;
  store_ = GetParam()(temp_dir_);
  ASSERT_NE(store_, nullptr) << "the factory made no store in " << temp_dir_;
}

void StoreContractTest::TearDown() {
  store_.reset();
  if (!temp_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(temp_dir_, ec);
  }
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(StoreContractTest);

namespace {

namespace v1 = ::sweepq::v1;
using ::google::protobuf::Struct;
using ::google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

// ---- Helpers ----

absl::Status ToStatus(const absl::Status& s) { return s; }
template <typename T>
absl::Status ToStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

#define SQ_CONCAT_INNER_(a, b) a##b
#define SQ_CONCAT_(a, b) SQ_CONCAT_INNER_(a, b)
#define ASSERT_OK(expr)                         \
  do {                                          \
    absl::Status sq_status_ = ToStatus(expr);   \
    ASSERT_TRUE(sq_status_.ok()) << sq_status_; \
  } while (0)
#define EXPECT_OK(expr)                         \
  do {                                          \
    absl::Status sq_status_ = ToStatus(expr);   \
    EXPECT_TRUE(sq_status_.ok()) << sq_status_; \
  } while (0)
#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ASSERT_OK_AND_ASSIGN_IMPL_(SQ_CONCAT_(sq_or_, __LINE__), lhs, expr)
#define ASSERT_OK_AND_ASSIGN_IMPL_(var, lhs, expr) \
  auto var = (expr);                               \
  ASSERT_TRUE(var.ok()) << var.status();           \
  lhs = std::move(var).value()
#define EXPECT_CODE(expr, expected) EXPECT_EQ(ToStatus(expr).code(), (expected))

constexpr int64_t kNow = 1'700'000'000'000;
constexpr int64_t kTtl = 60'000;
constexpr char kMask[] = "mask";
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// The helpers below call .value(), which throws on an error status;
// GoogleTest reports the exception as a failure of the test.

NewRun MakeRun(int i, const std::string& dataset = kMask) {
  NewRun run;
  run.config.mutable_data()->set_dataset(dataset);
  run.config.set_name(absl::StrCat("run-", i));
  run.config.set_seed(static_cast<uint64_t>(100 + i));
  run.params["optimizer.lr"] = absl::StrCat("0.00", i + 1);
  run.dataset = dataset;
  return run;
}

NewSweep MakeSweep(int runs, const std::string& dataset = kMask) {
  NewSweep sweep;
  sweep.name = "lr-sweep";
  sweep.spec_yaml = "method: grid\n";
  sweep.metric = "val_f1";
  sweep.goal = v1::GOAL_MAXIMIZE;
  sweep.priority = 0;
  sweep.max_attempts = 3;
  for (int i = 0; i < runs; ++i) sweep.runs.push_back(MakeRun(i, dataset));
  return sweep;
}

int64_t AddTeam(Store& store, const std::string& name) {
  return store
      .CreateTeam(name, "member-hash-" + name, "worker-hash-" + name, kNow)
      .value();
}

InsertSweepResult AddSweep(Store& store, int64_t team, const NewSweep& sweep,
                           int64_t now_ms = kNow) {
  return store.InsertSweep(team, sweep, now_ms).value();
}

v1::Worker AddWorker(Store& store, int64_t team, const std::string& id,
                     int64_t now_ms = kNow) {
  v1::Worker worker;
  worker.set_worker_id(id);
  worker.set_host(id + ".lan");
  worker.set_slots(2);
  worker.add_datasets(kMask);
  worker.set_version("0.1.0");
  return store.UpsertWorker(team, worker, now_ms).value();
}

// Leases the next run, which must exist.
LeaseGrant Lease(Store& store, int64_t team, const std::string& worker,
                 int64_t now_ms = kNow, int64_t ttl_ms = kTtl,
                 const std::vector<std::string>& datasets = {kMask}) {
  std::optional<LeaseGrant> grant =
      store.LeaseRun(team, worker, datasets, now_ms, ttl_ms).value();
  if (!grant.has_value()) {
    ADD_FAILURE() << "expected a run to lease for " << worker;
    return LeaseGrant{};
  }
  return *std::move(grant);
}

v1::MetricPoint Point(const std::string& name, int64_t step, double value) {
  v1::MetricPoint point;
  point.set_name(name);
  point.set_step(step);
  point.set_value(value);
  point.set_wall_time_ms(kNow + step);
  return point;
}

v1::RunEvent Event(const std::string& kind, const std::string& payload) {
  v1::RunEvent event;
  event.set_kind(kind);
  event.set_payload_json(payload);
  event.set_time_ms(kNow);
  return event;
}

// Reports points under the lease as one batch.
void Report(Store& store, int64_t team, const v1::LeaseRef& lease,
            uint64_t batch_seq, const std::vector<v1::MetricPoint>& points,
            int64_t now_ms = kNow) {
  Append(store, team, lease, batch_seq, points, {}, now_ms).value();
}

FinishRequest Finish(const LeaseGrant& grant, v1::Outcome outcome,
                     int64_t now_ms = kNow, bool retryable = false,
                     const std::string& reason = "") {
  FinishRequest request;
  request.lease = grant.lease;
  request.worker_id = grant.run.worker_id();
  request.outcome = outcome;
  request.retryable = retryable;
  request.reason = reason;
  request.now_ms = now_ms;
  return request;
}

WatchBatch ReadAll(Store& store, int64_t team, int64_t run_id) {
  return store.ReadRunStream(team, run_id, 0, 0, 0).value();
}

// The payloads of the run's "state" events, oldest first.
std::vector<Struct> StateEvents(Store& store, int64_t team, int64_t run_id) {
  std::vector<Struct> out;
  for (const v1::RunEvent& event : ReadAll(store, team, run_id).events) {
    if (event.kind() != "state") continue;
    Struct payload;
    auto status = google::protobuf::util::JsonStringToMessage(
        event.payload_json(), &payload);
    EXPECT_TRUE(status.ok()) << event.payload_json();
    out.push_back(payload);
  }
  return out;
}

std::string StateOf(const Struct& payload) {
  auto it = payload.fields().find("state");
  return it == payload.fields().end() ? "" : it->second.string_value();
}

std::vector<std::string> StatesOf(const std::vector<Struct>& payloads) {
  std::vector<std::string> out;
  for (const Struct& payload : payloads) out.push_back(StateOf(payload));
  return out;
}

std::vector<int64_t> IdsOf(const std::vector<v1::Run>& runs) {
  std::vector<int64_t> out;
  for (const v1::Run& run : runs) out.push_back(run.run_id());
  return out;
}

std::vector<int64_t> IdsOf(const std::vector<v1::LeaderboardEntry>& entries) {
  std::vector<int64_t> out;
  for (const auto& entry : entries) out.push_back(entry.run().run_id());
  return out;
}

// ======================================================================
// Teams and tokens
// ======================================================================

TEST_P(StoreContractTest, CreateTeamReturnsIncreasingPositiveIds) {
  ASSERT_OK_AND_ASSIGN(int64_t a, store_->CreateTeam("a", "ma", "wa", kNow));
  ASSERT_OK_AND_ASSIGN(int64_t b, store_->CreateTeam("b", "mb", "wb", kNow));
  EXPECT_GT(a, 0);
  EXPECT_GT(b, a);
}

TEST_P(StoreContractTest, DuplicateTeamNameIsAlreadyExists) {
  ASSERT_OK(store_->CreateTeam("vision", "m1", "w1", kNow));
  EXPECT_CODE(store_->CreateTeam("vision", "m2", "w2", kNow),
              absl::StatusCode::kAlreadyExists);
  // The failed attempt registered no token.
  EXPECT_CODE(store_->FindToken("m2"), absl::StatusCode::kNotFound);
}

TEST_P(StoreContractTest, FindTokenReturnsTeamAndRole) {
  ASSERT_OK_AND_ASSIGN(int64_t team,
                       store_->CreateTeam("vision", "mhash", "whash", kNow));
  AddTeam(*store_, "other");

  ASSERT_OK_AND_ASSIGN(TeamPrincipal member, store_->FindToken("mhash"));
  EXPECT_EQ(member.team_id, team);
  EXPECT_EQ(member.team_name, "vision");
  EXPECT_EQ(member.role, Role::kMember);

  ASSERT_OK_AND_ASSIGN(TeamPrincipal worker, store_->FindToken("whash"));
  EXPECT_EQ(worker.team_id, team);
  EXPECT_EQ(worker.team_name, "vision");
  EXPECT_EQ(worker.role, Role::kWorker);
}

TEST_P(StoreContractTest, UnknownTokenIsNotFound) {
  AddTeam(*store_, "vision");
  EXPECT_CODE(store_->FindToken("nope"), absl::StatusCode::kNotFound);
  EXPECT_CODE(store_->FindToken(""), absl::StatusCode::kNotFound);
}

TEST_P(StoreContractTest, RotateTokenReplacesOnlyThatRole) {
  ASSERT_OK_AND_ASSIGN(int64_t team,
                       store_->CreateTeam("vision", "m-old", "w-old", kNow));
  ASSERT_OK(store_->RotateToken("vision", Role::kWorker, "w-new"));
  EXPECT_CODE(store_->FindToken("w-old"), absl::StatusCode::kNotFound);
  ASSERT_OK_AND_ASSIGN(TeamPrincipal worker, store_->FindToken("w-new"));
  EXPECT_EQ(worker.team_id, team);
  EXPECT_EQ(worker.role, Role::kWorker);
  EXPECT_OK(store_->FindToken("m-old"));

  ASSERT_OK(store_->RotateToken("vision", Role::kMember, "m-new"));
  EXPECT_CODE(store_->FindToken("m-old"), absl::StatusCode::kNotFound);
  ASSERT_OK_AND_ASSIGN(TeamPrincipal member, store_->FindToken("m-new"));
  EXPECT_EQ(member.team_id, team);
  EXPECT_EQ(member.role, Role::kMember);
}

TEST_P(StoreContractTest, RotateTokenOfUnknownTeamIsNotFound) {
  AddTeam(*store_, "vision");
  EXPECT_CODE(store_->RotateToken("nobody", Role::kMember, "x"),
              absl::StatusCode::kNotFound);
}

// ======================================================================
// Sweeps and runs
// ======================================================================

TEST_P(StoreContractTest, InsertSweepQueuesEveryRunWithTheSweepSettings) {
  int64_t team = AddTeam(*store_, "vision");
  NewSweep sweep = MakeSweep(3);
  sweep.priority = 7;
  sweep.max_attempts = 5;
  sweep.goal = v1::GOAL_MINIMIZE;
  sweep.metric = "val_loss";
  sweep.idempotency_key = "key-1";
  ASSERT_OK_AND_ASSIGN(InsertSweepResult result,
                       store_->InsertSweep(team, sweep, kNow + 5));
  EXPECT_GT(result.sweep_id, 0);
  EXPECT_FALSE(result.existing);
  ASSERT_THAT(result.run_ids, SizeIs(3));
  EXPECT_GT(result.run_ids[0], 0);
  EXPECT_LT(result.run_ids[0], result.run_ids[1]);
  EXPECT_LT(result.run_ids[1], result.run_ids[2]);

  ASSERT_OK_AND_ASSIGN(v1::Sweep got, store_->GetSweep(team, result.sweep_id));
  EXPECT_EQ(got.sweep_id(), result.sweep_id);
  EXPECT_EQ(got.name(), "lr-sweep");
  EXPECT_EQ(got.spec_yaml(), "method: grid\n");
  EXPECT_EQ(got.metric(), "val_loss");
  EXPECT_EQ(got.goal(), v1::GOAL_MINIMIZE);
  EXPECT_EQ(got.run_count(), 3u);
  EXPECT_EQ(got.priority(), 7);
  EXPECT_EQ(got.created_at_ms(), kNow + 5);
  EXPECT_EQ(got.idempotency_key(), "key-1");

  for (uint32_t i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(v1::Run run, store_->GetRun(team, result.run_ids[i]));
    EXPECT_EQ(run.run_id(), result.run_ids[i]);
    EXPECT_EQ(run.sweep_id(), result.sweep_id);
    EXPECT_EQ(run.index(), i);
    EXPECT_EQ(run.state(), v1::RUN_STATE_QUEUED);
    EXPECT_EQ(run.priority(), 7);
    EXPECT_EQ(run.attempt(), 0u);
    EXPECT_EQ(run.max_attempts(), 5u);
    EXPECT_EQ(run.dataset(), kMask);
    EXPECT_EQ(run.metric(), "val_loss");
    EXPECT_EQ(run.goal(), v1::GOAL_MINIMIZE);
    EXPECT_FALSE(run.has_best());
    EXPECT_EQ(run.created_at_ms(), kNow + 5);
    EXPECT_EQ(run.worker_id(), "");
    EXPECT_EQ(run.lease_expires_at_ms(), 0);
    EXPECT_FALSE(run.cancel_requested());
    EXPECT_TRUE(MessageDifferencer::Equals(run.config(), sweep.runs[i].config))
        << run.config().DebugString();
    EXPECT_THAT(run.params(),
                UnorderedElementsAre(
                    Pair("optimizer.lr", absl::StrCat("0.00", i + 1))));
    EXPECT_THAT(run.attempts(), IsEmpty());
  }
}

TEST_P(StoreContractTest, IdempotencyKeyReturnsSameSweep) {
  int64_t team = AddTeam(*store_, "vision");
  NewSweep sweep = MakeSweep(2);
  sweep.idempotency_key = "submit-42";
  InsertSweepResult first = AddSweep(*store_, team, sweep);

  NewSweep again = MakeSweep(5);
  again.name = "something else";
  again.idempotency_key = "submit-42";
  ASSERT_OK_AND_ASSIGN(InsertSweepResult second,
                       store_->InsertSweep(team, again, kNow + 1));
  EXPECT_TRUE(second.existing);
  EXPECT_EQ(second.sweep_id, first.sweep_id);
  EXPECT_EQ(second.run_ids, first.run_ids);

  ASSERT_OK_AND_ASSIGN(std::vector<v1::Run> runs,
                       store_->ListRuns(team, RunFilter{}));
  EXPECT_THAT(runs, SizeIs(2));
  ASSERT_OK_AND_ASSIGN(v1::Sweep got, store_->GetSweep(team, first.sweep_id));
  EXPECT_EQ(got.name(), "lr-sweep");
}

TEST_P(StoreContractTest, IdempotencyKeyIsScopedToTheTeam) {
  int64_t a = AddTeam(*store_, "a");
  int64_t b = AddTeam(*store_, "b");
  NewSweep sweep = MakeSweep(1);
  sweep.idempotency_key = "same";
  InsertSweepResult in_a = AddSweep(*store_, a, sweep);
  InsertSweepResult in_b = AddSweep(*store_, b, sweep);
  EXPECT_FALSE(in_b.existing);
  EXPECT_NE(in_b.sweep_id, in_a.sweep_id);
  EXPECT_OK(store_->GetSweep(b, in_b.sweep_id));
}

TEST_P(StoreContractTest, EmptyIdempotencyKeyNeverMatches) {
  int64_t team = AddTeam(*store_, "vision");
  InsertSweepResult first = AddSweep(*store_, team, MakeSweep(1));
  InsertSweepResult second = AddSweep(*store_, team, MakeSweep(1));
  EXPECT_FALSE(second.existing);
  EXPECT_GT(second.sweep_id, first.sweep_id);
}

TEST_P(StoreContractTest, ZeroMaxAttemptsIsInvalid) {
  int64_t team = AddTeam(*store_, "vision");
  NewSweep sweep = MakeSweep(1);
  sweep.max_attempts = 0;
  EXPECT_CODE(store_->InsertSweep(team, sweep, kNow),
              absl::StatusCode::kInvalidArgument);
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Run> runs,
                       store_->ListRuns(team, RunFilter{}));
  EXPECT_THAT(runs, IsEmpty());
}

TEST_P(StoreContractTest, InsertSweepForUnknownTeamIsNotFound) {
  int64_t team = AddTeam(*store_, "vision");
  EXPECT_CODE(store_->InsertSweep(team + 100, MakeSweep(1), kNow),
              absl::StatusCode::kNotFound);
}

TEST_P(StoreContractTest, UnknownIdsAreNotFound) {
  int64_t team = AddTeam(*store_, "vision");
  EXPECT_CODE(store_->GetSweep(team, 12345), absl::StatusCode::kNotFound);
  EXPECT_CODE(store_->GetRun(team, 12345), absl::StatusCode::kNotFound);
  EXPECT_CODE(store_->GetWorker(team, "ghost"), absl::StatusCode::kNotFound);
  EXPECT_CODE(store_->DrainWorker(team, "ghost"), absl::StatusCode::kNotFound);
  EXPECT_CODE(store_->ClearWorker(team, "ghost"), absl::StatusCode::kNotFound);
  EXPECT_CODE(store_->CancelRun(team, 12345, kNow),
              absl::StatusCode::kNotFound);
  EXPECT_CODE(store_->CancelSweep(team, 12345, kNow),
              absl::StatusCode::kNotFound);
  EXPECT_CODE(store_->RetryRun(team, 12345, kNow), absl::StatusCode::kNotFound);
  EXPECT_CODE(store_->ReadRunStream(team, 12345, 0, 0, 10),
              absl::StatusCode::kNotFound);
  EXPECT_CODE(store_->ListArtifacts(team, 12345), absl::StatusCode::kNotFound);
}

TEST_P(StoreContractTest, ForeignTeamSweepIsNotFound) {
  int64_t mine = AddTeam(*store_, "mine");
  int64_t theirs = AddTeam(*store_, "theirs");
  InsertSweepResult sweep = AddSweep(*store_, theirs, MakeSweep(2));

  EXPECT_CODE(store_->GetSweep(mine, sweep.sweep_id),
              absl::StatusCode::kNotFound);
  EXPECT_CODE(store_->CancelSweep(mine, sweep.sweep_id, kNow),
              absl::StatusCode::kNotFound);
  RunFilter filter;
  filter.sweep_id = sweep.sweep_id;
  EXPECT_CODE(store_->ListRuns(mine, filter), absl::StatusCode::kNotFound);
  LeaderboardQuery query;
  query.sweep_id = sweep.sweep_id;
  EXPECT_CODE(store_->Leaderboard(mine, query), absl::StatusCode::kNotFound);

  // Nothing was cancelled by the rejected call.
  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->GetRun(theirs, sweep.run_ids[0]));
  EXPECT_EQ(run.state(), v1::RUN_STATE_QUEUED);
}

TEST_P(StoreContractTest, ForeignTeamRunIsNotFound) {
  int64_t mine = AddTeam(*store_, "mine");
  int64_t theirs = AddTeam(*store_, "theirs");
  AddWorker(*store_, theirs, "their-gpu");
  AddWorker(*store_, mine, "my-gpu");
  InsertSweepResult sweep = AddSweep(*store_, theirs, MakeSweep(2));
  LeaseGrant grant = Lease(*store_, theirs, "their-gpu");
  int64_t run_id = grant.lease.run_id();
  int64_t queued_id = sweep.run_ids[1];

  EXPECT_CODE(store_->GetRun(mine, run_id), absl::StatusCode::kNotFound);
  EXPECT_CODE(store_->CancelRun(mine, queued_id, kNow),
              absl::StatusCode::kNotFound);
  EXPECT_CODE(store_->RetryRun(mine, run_id, kNow),
              absl::StatusCode::kNotFound);
  EXPECT_CODE(store_->ReadRunStream(mine, run_id, 0, 0, 10),
              absl::StatusCode::kNotFound);
  EXPECT_CODE(store_->ListArtifacts(mine, run_id), absl::StatusCode::kNotFound);
  // Writes under the (valid) lease, but through the wrong team.
  EXPECT_CODE(store_->Heartbeat(mine, "their-gpu", grant.lease, kNow, kTtl),
              absl::StatusCode::kNotFound);
  EXPECT_CODE(Append(*store_, mine, grant.lease, 1,
                                   {Point("val_f1", 1, 0.5)}, {}, kNow),
              absl::StatusCode::kNotFound);
  v1::Artifact artifact;
  artifact.set_name("model.pt");
  EXPECT_CODE(store_->AddArtifact(mine, grant.lease, artifact),
              absl::StatusCode::kNotFound);
  EXPECT_CODE(store_->FinishRun(mine, Finish(grant, v1::OUTCOME_SUCCEEDED)),
              absl::StatusCode::kNotFound);

  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->GetRun(theirs, run_id));
  EXPECT_EQ(run.state(), v1::RUN_STATE_LEASED);
  EXPECT_FALSE(run.has_best());
  ASSERT_OK_AND_ASSIGN(v1::Run queued, store_->GetRun(theirs, queued_id));
  EXPECT_EQ(queued.state(), v1::RUN_STATE_QUEUED);
  EXPECT_THAT(ReadAll(*store_, theirs, run_id).metrics, IsEmpty());
}

TEST_P(StoreContractTest, ListRunsIsNewestFirstWithoutConfigOrAttempts) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  InsertSweepResult first = AddSweep(*store_, team, MakeSweep(2));
  InsertSweepResult second = AddSweep(*store_, team, MakeSweep(1), kNow + 1);
  Lease(*store_, team, "gpu1");  // gives the first run an attempt record

  ASSERT_OK_AND_ASSIGN(std::vector<v1::Run> runs,
                       store_->ListRuns(team, RunFilter{}));
  EXPECT_THAT(IdsOf(runs), ElementsAre(second.run_ids[0], first.run_ids[1],
                                       first.run_ids[0]));
  for (const v1::Run& run : runs) {
    EXPECT_FALSE(run.has_config()) << run.run_id();
    EXPECT_THAT(run.attempts(), IsEmpty()) << run.run_id();
    EXPECT_EQ(run.dataset(), kMask);
    EXPECT_EQ(run.metric(), "val_f1");
    EXPECT_THAT(run.params(), SizeIs(1));
  }
  EXPECT_EQ(runs[2].state(), v1::RUN_STATE_LEASED);
  EXPECT_EQ(runs[2].worker_id(), "gpu1");
  EXPECT_EQ(runs[2].attempt(), 1u);
}

TEST_P(StoreContractTest, ListRunsFiltersBySweepAndState) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  InsertSweepResult first = AddSweep(*store_, team, MakeSweep(3));
  InsertSweepResult second = AddSweep(*store_, team, MakeSweep(2), kNow + 1);
  LeaseGrant leased = Lease(*store_, team, "gpu1");
  ASSERT_EQ(leased.lease.run_id(), first.run_ids[0]);

  RunFilter by_sweep;
  by_sweep.sweep_id = second.sweep_id;
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Run> runs,
                       store_->ListRuns(team, by_sweep));
  EXPECT_THAT(IdsOf(runs), ElementsAre(second.run_ids[1], second.run_ids[0]));

  RunFilter by_state;
  by_state.state = v1::RUN_STATE_LEASED;
  ASSERT_OK_AND_ASSIGN(runs, store_->ListRuns(team, by_state));
  EXPECT_THAT(IdsOf(runs), ElementsAre(first.run_ids[0]));

  RunFilter both;
  both.sweep_id = first.sweep_id;
  both.state = v1::RUN_STATE_QUEUED;
  ASSERT_OK_AND_ASSIGN(runs, store_->ListRuns(team, both));
  EXPECT_THAT(IdsOf(runs), ElementsAre(first.run_ids[2], first.run_ids[1]));
}

TEST_P(StoreContractTest, ListRunsPagesWithLimitAndBeforeRunId) {
  int64_t team = AddTeam(*store_, "vision");
  InsertSweepResult sweep = AddSweep(*store_, team, MakeSweep(105));
  const std::vector<int64_t>& ids = sweep.run_ids;

  RunFilter page;
  page.limit = 2;
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Run> runs, store_->ListRuns(team, page));
  EXPECT_THAT(IdsOf(runs), ElementsAre(ids[104], ids[103]));

  page.before_run_id = runs.back().run_id();
  ASSERT_OK_AND_ASSIGN(runs, store_->ListRuns(team, page));
  EXPECT_THAT(IdsOf(runs), ElementsAre(ids[102], ids[101]));

  page.before_run_id = ids[1];
  ASSERT_OK_AND_ASSIGN(runs, store_->ListRuns(team, page));
  EXPECT_THAT(IdsOf(runs), ElementsAre(ids[0]));

  RunFilter unlimited;
  unlimited.limit = 0;  // means 100
  ASSERT_OK_AND_ASSIGN(runs, store_->ListRuns(team, unlimited));
  ASSERT_THAT(runs, SizeIs(100));
  EXPECT_EQ(runs.front().run_id(), ids[104]);
  EXPECT_EQ(runs.back().run_id(), ids[5]);
}

TEST_P(StoreContractTest, ListRunsShowsOnlyTheTeamsRuns) {
  int64_t mine = AddTeam(*store_, "mine");
  int64_t theirs = AddTeam(*store_, "theirs");
  InsertSweepResult my_sweep = AddSweep(*store_, mine, MakeSweep(1));
  AddSweep(*store_, theirs, MakeSweep(3));
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Run> runs,
                       store_->ListRuns(mine, RunFilter{}));
  EXPECT_THAT(IdsOf(runs), ElementsAre(my_sweep.run_ids[0]));
}

TEST_P(StoreContractTest, GetRunHasConfigAndAttemptHistory) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddWorker(*store_, team, "gpu2");
  NewSweep sweep = MakeSweep(1);
  AddSweep(*store_, team, sweep);
  LeaseGrant first = Lease(*store_, team, "gpu1", kNow, 1000);
  ASSERT_OK(store_->ExpireLeases(kNow + 1001));
  LeaseGrant second = Lease(*store_, team, "gpu2", kNow + 2000);

  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->GetRun(team, first.lease.run_id()));
  EXPECT_TRUE(MessageDifferencer::Equals(run.config(), sweep.runs[0].config));
  ASSERT_THAT(run.attempts(), SizeIs(2));
  EXPECT_EQ(run.attempts(0).attempt(), 1u);
  EXPECT_EQ(run.attempts(0).worker_id(), "gpu1");
  EXPECT_EQ(run.attempts(0).started_at_ms(), kNow);
  EXPECT_EQ(run.attempts(0).ended_at_ms(), kNow + 1001);
  EXPECT_EQ(run.attempts(1).attempt(), 2u);
  EXPECT_EQ(run.attempts(1).worker_id(), "gpu2");
  EXPECT_EQ(run.attempts(1).started_at_ms(), kNow + 2000);
  EXPECT_EQ(run.attempts(1).ended_at_ms(), 0);
  EXPECT_EQ(run.attempts(1).outcome(), v1::RUN_STATE_UNSPECIFIED);
  EXPECT_EQ(second.lease.attempt(), 2u);
}

// ======================================================================
// Workers
// ======================================================================

TEST_P(StoreContractTest, UpsertWorkerCreatesActiveWorker) {
  int64_t team = AddTeam(*store_, "vision");
  v1::Worker worker;
  worker.set_worker_id("gpu1");
  worker.set_host("node7");
  worker.set_slots(4);
  worker.add_datasets("mask");
  worker.add_datasets("cifar");
  worker.set_version("1.2.3");
  worker.set_state(v1::WORKER_STATE_QUARANTINED);  // ignored
  worker.set_consecutive_failures(9);              // ignored
  ASSERT_OK_AND_ASSIGN(v1::Worker got,
                       store_->UpsertWorker(team, worker, kNow + 3));
  EXPECT_EQ(got.worker_id(), "gpu1");
  EXPECT_EQ(got.host(), "node7");
  EXPECT_EQ(got.slots(), 4u);
  EXPECT_THAT(got.datasets(), ElementsAre("mask", "cifar"));
  EXPECT_EQ(got.version(), "1.2.3");
  EXPECT_EQ(got.state(), v1::WORKER_STATE_ACTIVE);
  EXPECT_EQ(got.registered_at_ms(), kNow + 3);
  EXPECT_EQ(got.last_seen_at_ms(), kNow + 3);
  EXPECT_EQ(got.consecutive_failures(), 0u);
  EXPECT_THAT(got.running_run_ids(), IsEmpty());

  ASSERT_OK_AND_ASSIGN(v1::Worker read, store_->GetWorker(team, "gpu1"));
  EXPECT_TRUE(MessageDifferencer::Equals(read, got)) << read.DebugString();
}

TEST_P(StoreContractTest, UpsertWorkerUpdatesFieldsAndKeepsQuarantine) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1", kNow);
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant grant = Lease(*store_, team, "gpu1");
  FinishRequest fail =
      Finish(grant, v1::OUTCOME_FAILED, kNow + 10, false, "oom");
  fail.quarantine_after = 1;
  ASSERT_OK(store_->FinishRun(team, fail));

  v1::Worker update;
  update.set_worker_id("gpu1");
  update.set_host("node8");
  update.set_slots(8);
  update.add_datasets("cifar");
  update.set_version("2.0");
  update.set_state(v1::WORKER_STATE_ACTIVE);  // ignored
  ASSERT_OK_AND_ASSIGN(v1::Worker got,
                       store_->UpsertWorker(team, update, kNow + 50));
  EXPECT_EQ(got.host(), "node8");
  EXPECT_EQ(got.slots(), 8u);
  EXPECT_THAT(got.datasets(), ElementsAre("cifar"));
  EXPECT_EQ(got.version(), "2.0");
  EXPECT_EQ(got.last_seen_at_ms(), kNow + 50);
  EXPECT_EQ(got.registered_at_ms(), kNow);
  EXPECT_EQ(got.state(), v1::WORKER_STATE_QUARANTINED);
  EXPECT_EQ(got.consecutive_failures(), 1u);
  EXPECT_FALSE(got.quarantine_reason().empty());
}

TEST_P(StoreContractTest, UpsertWorkerKeepsDrainState) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  ASSERT_OK(store_->DrainWorker(team, "gpu1"));
  v1::Worker got = AddWorker(*store_, team, "gpu1", kNow + 1);
  EXPECT_EQ(got.state(), v1::WORKER_STATE_DRAINING);
}

TEST_P(StoreContractTest, EmptyWorkerIdIsInvalid) {
  int64_t team = AddTeam(*store_, "vision");
  v1::Worker worker;
  worker.set_host("node");
  EXPECT_CODE(store_->UpsertWorker(team, worker, kNow),
              absl::StatusCode::kInvalidArgument);
}

TEST_P(StoreContractTest, UpsertWorkerForUnknownTeamIsNotFound) {
  int64_t team = AddTeam(*store_, "vision");
  v1::Worker worker;
  worker.set_worker_id("gpu1");
  EXPECT_CODE(store_->UpsertWorker(team + 100, worker, kNow),
              absl::StatusCode::kNotFound);
}

TEST_P(StoreContractTest, WorkersAreOrderedAndScopedByTeam) {
  int64_t mine = AddTeam(*store_, "mine");
  int64_t theirs = AddTeam(*store_, "theirs");
  AddWorker(*store_, mine, "gpu-b");
  AddWorker(*store_, mine, "gpu-a");
  AddWorker(*store_, theirs, "gpu-a");  // same id, other team
  AddWorker(*store_, theirs, "gpu-z");
  ASSERT_OK(store_->DrainWorker(theirs, "gpu-a"));

  ASSERT_OK_AND_ASSIGN(std::vector<v1::Worker> workers,
                       store_->ListWorkers(mine));
  ASSERT_THAT(workers, SizeIs(2));
  EXPECT_EQ(workers[0].worker_id(), "gpu-a");
  EXPECT_EQ(workers[1].worker_id(), "gpu-b");
  EXPECT_EQ(workers[0].state(), v1::WORKER_STATE_ACTIVE);

  EXPECT_CODE(store_->GetWorker(mine, "gpu-z"), absl::StatusCode::kNotFound);
  EXPECT_CODE(store_->DrainWorker(mine, "gpu-z"), absl::StatusCode::kNotFound);
  EXPECT_CODE(store_->ClearWorker(mine, "gpu-z"), absl::StatusCode::kNotFound);
}

TEST_P(StoreContractTest, DrainWorkerSetsDrainingButKeepsQuarantine) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddWorker(*store_, team, "gpu2");
  ASSERT_OK_AND_ASSIGN(v1::Worker drained, store_->DrainWorker(team, "gpu1"));
  EXPECT_EQ(drained.state(), v1::WORKER_STATE_DRAINING);
  ASSERT_OK_AND_ASSIGN(drained, store_->DrainWorker(team, "gpu1"));
  EXPECT_EQ(drained.state(), v1::WORKER_STATE_DRAINING);

  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant grant = Lease(*store_, team, "gpu2");
  FinishRequest fail = Finish(grant, v1::OUTCOME_FAILED);
  fail.quarantine_after = 1;
  ASSERT_OK(store_->FinishRun(team, fail));
  ASSERT_OK_AND_ASSIGN(v1::Worker quarantined,
                       store_->DrainWorker(team, "gpu2"));
  EXPECT_EQ(quarantined.state(), v1::WORKER_STATE_QUARANTINED);
}

TEST_P(StoreContractTest, ClearWorkerReturnsItToActiveWithNoFailures) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant grant = Lease(*store_, team, "gpu1");
  FinishRequest fail = Finish(grant, v1::OUTCOME_FAILED, kNow, false, "bad");
  fail.quarantine_after = 1;
  ASSERT_OK(store_->FinishRun(team, fail));

  ASSERT_OK_AND_ASSIGN(v1::Worker cleared, store_->ClearWorker(team, "gpu1"));
  EXPECT_EQ(cleared.state(), v1::WORKER_STATE_ACTIVE);
  EXPECT_EQ(cleared.consecutive_failures(), 0u);
  EXPECT_EQ(cleared.quarantine_reason(), "");

  ASSERT_OK(store_->DrainWorker(team, "gpu1"));
  ASSERT_OK_AND_ASSIGN(cleared, store_->ClearWorker(team, "gpu1"));
  EXPECT_EQ(cleared.state(), v1::WORKER_STATE_ACTIVE);
}

TEST_P(StoreContractTest, WorkerListsTheRunsItHolds) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddWorker(*store_, team, "gpu2");
  AddSweep(*store_, team, MakeSweep(3));
  LeaseGrant a = Lease(*store_, team, "gpu1");
  LeaseGrant b = Lease(*store_, team, "gpu2");
  LeaseGrant c = Lease(*store_, team, "gpu1");

  ASSERT_OK_AND_ASSIGN(v1::Worker gpu1, store_->GetWorker(team, "gpu1"));
  EXPECT_THAT(gpu1.running_run_ids(),
              ElementsAre(a.lease.run_id(), c.lease.run_id()));
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Worker> workers,
                       store_->ListWorkers(team));
  ASSERT_THAT(workers, SizeIs(2));
  EXPECT_THAT(workers[1].running_run_ids(), ElementsAre(b.lease.run_id()));

  ASSERT_OK(store_->FinishRun(team, Finish(a, v1::OUTCOME_SUCCEEDED)));
  ASSERT_OK_AND_ASSIGN(gpu1, store_->GetWorker(team, "gpu1"));
  EXPECT_THAT(gpu1.running_run_ids(), ElementsAre(c.lease.run_id()));
}

// ======================================================================
// Leasing
// ======================================================================

TEST_P(StoreContractTest, LeaseStampsAttemptLeaseAndExpiry) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  NewSweep sweep = MakeSweep(2);
  InsertSweepResult inserted = AddSweep(*store_, team, sweep);

  ASSERT_OK_AND_ASSIGN(
      std::optional<LeaseGrant> grant,
      store_->LeaseRun(team, "gpu1", {kMask}, kNow + 100, 5000));
  ASSERT_TRUE(grant.has_value());
  EXPECT_EQ(grant->lease.run_id(), inserted.run_ids[0]);
  EXPECT_EQ(grant->lease.attempt(), 1u);
  EXPECT_NE(grant->lease.lease_id(), 0u);
  EXPECT_EQ(grant->lease_expires_at_ms, kNow + 5100);
  EXPECT_EQ(grant->run.run_id(), inserted.run_ids[0]);
  EXPECT_EQ(grant->run.state(), v1::RUN_STATE_LEASED);
  EXPECT_EQ(grant->run.attempt(), 1u);
  EXPECT_EQ(grant->run.worker_id(), "gpu1");
  EXPECT_TRUE(
      MessageDifferencer::Equals(grant->run.config(), sweep.runs[0].config));

  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->GetRun(team, inserted.run_ids[0]));
  EXPECT_EQ(run.state(), v1::RUN_STATE_LEASED);
  EXPECT_EQ(run.attempt(), 1u);
  EXPECT_EQ(run.worker_id(), "gpu1");
  EXPECT_EQ(run.lease_expires_at_ms(), kNow + 5100);
  EXPECT_EQ(run.started_at_ms(), kNow + 100);
  ASSERT_THAT(run.attempts(), SizeIs(1));
  EXPECT_EQ(run.attempts(0).attempt(), 1u);
  EXPECT_EQ(run.attempts(0).worker_id(), "gpu1");
  EXPECT_EQ(run.attempts(0).started_at_ms(), kNow + 100);

  ASSERT_OK_AND_ASSIGN(v1::Worker worker, store_->GetWorker(team, "gpu1"));
  EXPECT_EQ(worker.last_seen_at_ms(), kNow + 100);

  LeaseGrant other = Lease(*store_, team, "gpu1");
  EXPECT_EQ(other.lease.run_id(), inserted.run_ids[1]);
  EXPECT_NE(other.lease.lease_id(), grant->lease.lease_id());
}

TEST_P(StoreContractTest, LeaseReturnsNothingWhenNoRunIsQueued) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  ASSERT_OK_AND_ASSIGN(std::optional<LeaseGrant> none,
                       store_->LeaseRun(team, "gpu1", {kMask}, kNow, kTtl));
  EXPECT_FALSE(none.has_value());

  AddSweep(*store_, team, MakeSweep(1));
  Lease(*store_, team, "gpu1");
  ASSERT_OK_AND_ASSIGN(none,
                       store_->LeaseRun(team, "gpu1", {kMask}, kNow, kTtl));
  EXPECT_FALSE(none.has_value());
}

TEST_P(StoreContractTest, LeasePicksHighestPriorityThenOldest) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  NewSweep low = MakeSweep(1);
  low.priority = 0;
  NewSweep high = MakeSweep(1);
  high.priority = 5;
  int64_t old_low = AddSweep(*store_, team, low, kNow).run_ids[0];
  int64_t high_mid = AddSweep(*store_, team, high, kNow + 10).run_ids[0];
  int64_t high_new = AddSweep(*store_, team, high, kNow + 20).run_ids[0];
  // Inserted last (highest id) but created earliest of the priority-5 runs.
  int64_t high_old = AddSweep(*store_, team, high, kNow + 5).run_ids[0];

  std::vector<int64_t> order;
  for (int i = 0; i < 4; ++i) {
    order.push_back(Lease(*store_, team, "gpu1", kNow + 100).lease.run_id());
  }
  EXPECT_THAT(order, ElementsAre(high_old, high_mid, high_new, old_low));
}

TEST_P(StoreContractTest, LeaseBreaksTiesByLowerRunId) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  InsertSweepResult sweep = AddSweep(*store_, team, MakeSweep(3));
  std::vector<int64_t> order;
  for (int i = 0; i < 3; ++i) {
    order.push_back(Lease(*store_, team, "gpu1").lease.run_id());
  }
  EXPECT_EQ(order, sweep.run_ids);
}

TEST_P(StoreContractTest, LeaseSkipsRunsWhoseDatasetWorkerLacks) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  NewSweep cifar = MakeSweep(1, "cifar");
  cifar.priority = 9;
  int64_t cifar_run = AddSweep(*store_, team, cifar).run_ids[0];
  int64_t mask_run = AddSweep(*store_, team, MakeSweep(1)).run_ids[0];

  EXPECT_EQ(Lease(*store_, team, "gpu1", kNow, kTtl, {"mask", "imagenet"})
                .lease.run_id(),
            mask_run);
  ASSERT_OK_AND_ASSIGN(std::optional<LeaseGrant> none,
                       store_->LeaseRun(team, "gpu1", {"mask"}, kNow, kTtl));
  EXPECT_FALSE(none.has_value());
  ASSERT_OK_AND_ASSIGN(none, store_->LeaseRun(team, "gpu1", {}, kNow, kTtl));
  EXPECT_FALSE(none.has_value());
  EXPECT_EQ(Lease(*store_, team, "gpu1", kNow, kTtl, {"cifar"}).lease.run_id(),
            cifar_run);
}

TEST_P(StoreContractTest, LeaseNeverTakesAnotherTeamsRuns) {
  int64_t mine = AddTeam(*store_, "mine");
  int64_t theirs = AddTeam(*store_, "theirs");
  AddWorker(*store_, mine, "gpu1");
  NewSweep urgent = MakeSweep(2);
  urgent.priority = 100;
  AddSweep(*store_, theirs, urgent);
  ASSERT_OK_AND_ASSIGN(std::optional<LeaseGrant> none,
                       store_->LeaseRun(mine, "gpu1", {kMask}, kNow, kTtl));
  EXPECT_FALSE(none.has_value());
}

TEST_P(StoreContractTest, UnregisteredWorkerCannotLease) {
  int64_t mine = AddTeam(*store_, "mine");
  int64_t theirs = AddTeam(*store_, "theirs");
  AddWorker(*store_, theirs, "their-gpu");
  AddSweep(*store_, mine, MakeSweep(1));

  auto ghost = store_->LeaseRun(mine, "ghost-gpu", {kMask}, kNow, kTtl);
  EXPECT_EQ(ghost.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(ghost.status().message()), HasSubstr("ghost-gpu"));
  // A worker registered by another team does not exist for this one.
  auto foreign = store_->LeaseRun(mine, "their-gpu", {kMask}, kNow, kTtl);
  EXPECT_EQ(foreign.status().code(), absl::StatusCode::kFailedPrecondition);

  ASSERT_OK_AND_ASSIGN(std::vector<v1::Run> runs,
                       store_->ListRuns(mine, RunFilter{}));
  EXPECT_EQ(runs[0].state(), v1::RUN_STATE_QUEUED);
}

TEST_P(StoreContractTest, QuarantinedWorkerCannotLease) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(2));
  LeaseGrant grant = Lease(*store_, team, "gpu1");
  FinishRequest fail = Finish(grant, v1::OUTCOME_FAILED);
  fail.quarantine_after = 1;
  ASSERT_OK(store_->FinishRun(team, fail));

  auto result = store_->LeaseRun(team, "gpu1", {kMask}, kNow, kTtl);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("gpu1"));
  EXPECT_THAT(std::string(result.status().message()),
              HasSubstr("WORKER_STATE_QUARANTINED"));

  ASSERT_OK(store_->ClearWorker(team, "gpu1"));
  EXPECT_OK(store_->LeaseRun(team, "gpu1", {kMask}, kNow, kTtl));
}

TEST_P(StoreContractTest, DrainingWorkerCannotLease) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  ASSERT_OK(store_->DrainWorker(team, "gpu1"));
  auto result = store_->LeaseRun(team, "gpu1", {kMask}, kNow, kTtl);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("gpu1"));
  EXPECT_THAT(std::string(result.status().message()),
              HasSubstr("WORKER_STATE_DRAINING"));
}

TEST_P(StoreContractTest, ConcurrentLeasesNeverGrantTheSameRun) {
  int64_t team = AddTeam(*store_, "vision");
  constexpr int kThreads = 8;
  constexpr int kRuns = 60;
  for (int t = 0; t < kThreads; ++t) {
    AddWorker(*store_, team, absl::StrCat("gpu", t));
  }
  AddSweep(*store_, team, MakeSweep(kRuns));

  std::mutex mu;
  std::vector<int64_t> leased;
  std::vector<std::string> errors;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string worker = absl::StrCat("gpu", t);
      while (true) {
        auto grant = store_->LeaseRun(team, worker, {kMask}, kNow, kTtl);
        std::lock_guard<std::mutex> lock(mu);
        if (!grant.ok()) {
          errors.push_back(grant.status().ToString());
          return;
        }
        if (!grant->has_value()) return;
        leased.push_back((*grant)->lease.run_id());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_THAT(errors, IsEmpty());
  EXPECT_THAT(leased, SizeIs(kRuns));
  EXPECT_THAT(std::set<int64_t>(leased.begin(), leased.end()), SizeIs(kRuns));
}

// ======================================================================
// Heartbeats, fencing and directives
// ======================================================================

TEST_P(StoreContractTest, HeartbeatExtendsLeaseAndSaysContinue) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant grant = Lease(*store_, team, "gpu1", kNow, 1000);

  ASSERT_OK_AND_ASSIGN(
      HeartbeatResult beat,
      store_->Heartbeat(team, "gpu1", grant.lease, kNow + 500, 1000));
  EXPECT_EQ(beat.directive, v1::DIRECTIVE_CONTINUE);
  EXPECT_EQ(beat.lease_expires_at_ms, kNow + 1500);
  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->GetRun(team, grant.lease.run_id()));
  EXPECT_EQ(run.lease_expires_at_ms(), kNow + 1500);
  EXPECT_EQ(run.state(), v1::RUN_STATE_LEASED);
  ASSERT_OK_AND_ASSIGN(v1::Worker worker, store_->GetWorker(team, "gpu1"));
  EXPECT_EQ(worker.last_seen_at_ms(), kNow + 500);

  // The extension keeps the run from expiring at the old deadline.
  ASSERT_OK_AND_ASSIGN(std::vector<ExpiredLease> expired,
                       store_->ExpireLeases(kNow + 1200));
  EXPECT_THAT(expired, IsEmpty());
}

TEST_P(StoreContractTest, LeaseStaysCurrentUntilExpireLeasesReclaimsIt) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant grant = Lease(*store_, team, "gpu1", kNow, 1000);
  // Past the deadline, but nobody reclaimed it yet.
  ASSERT_OK_AND_ASSIGN(
      HeartbeatResult beat,
      store_->Heartbeat(team, "gpu1", grant.lease, kNow + 5000, 1000));
  EXPECT_EQ(beat.lease_expires_at_ms, kNow + 6000);
}

TEST_P(StoreContractTest, StaleLeaseRefsAreRejected) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddWorker(*store_, team, "gpu2");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant grant = Lease(*store_, team, "gpu1");

  v1::LeaseRef wrong_id = grant.lease;
  wrong_id.set_lease_id(grant.lease.lease_id() + 1);
  v1::LeaseRef wrong_attempt = grant.lease;
  wrong_attempt.set_attempt(2);
  for (const v1::LeaseRef& lease : {wrong_id, wrong_attempt}) {
    EXPECT_CODE(store_->Heartbeat(team, "gpu1", lease, kNow, kTtl),
                absl::StatusCode::kFailedPrecondition);
    EXPECT_CODE(
        Append(*store_, team, lease, 1, {Point("val_f1", 1, 1)}, {}, kNow),
        absl::StatusCode::kFailedPrecondition);
  }
  // The right lease named by another worker.
  EXPECT_CODE(store_->Heartbeat(team, "gpu2", grant.lease, kNow, kTtl),
              absl::StatusCode::kFailedPrecondition);
  FinishRequest by_other = Finish(grant, v1::OUTCOME_SUCCEEDED);
  by_other.worker_id = "gpu2";
  EXPECT_CODE(store_->FinishRun(team, by_other),
              absl::StatusCode::kFailedPrecondition);

  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->GetRun(team, grant.lease.run_id()));
  EXPECT_EQ(run.state(), v1::RUN_STATE_LEASED);
  EXPECT_FALSE(run.has_best());
  EXPECT_THAT(ReadAll(*store_, team, run.run_id()).metrics, IsEmpty());
}

TEST_P(StoreContractTest, ZombieWriteWithOldLeaseIsRejectedAndChangesNothing) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddWorker(*store_, team, "gpu2");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant zombie = Lease(*store_, team, "gpu1", kNow, 1000);
  Report(*store_, team, zombie.lease, 1, {Point("val_f1", 1, 0.4)});
  ASSERT_OK(store_->ExpireLeases(kNow + 1001));
  LeaseGrant current = Lease(*store_, team, "gpu2", kNow + 2000, 1000);
  ASSERT_EQ(current.lease.run_id(), zombie.lease.run_id());
  Report(*store_, team, current.lease, 1, {Point("val_f1", 1, 0.3)});
  const int64_t run_id = current.lease.run_id();

  ASSERT_OK_AND_ASSIGN(v1::Run before, store_->GetRun(team, run_id));
  WatchBatch stream_before = ReadAll(*store_, team, run_id);
  ASSERT_OK_AND_ASSIGN(v1::Worker gpu1_before, store_->GetWorker(team, "gpu1"));

  EXPECT_CODE(store_->Heartbeat(team, "gpu1", zombie.lease, kNow + 2100, 1000),
              absl::StatusCode::kFailedPrecondition);
  EXPECT_CODE(
      Append(*store_, team, zombie.lease, 2, {Point("val_f1", 2, 0.99)},
                           {Event("log", "{}")}, kNow + 2100),
      absl::StatusCode::kFailedPrecondition);
  v1::Artifact artifact;
  artifact.set_name("model.pt");
  artifact.set_sha256("abc");
  EXPECT_CODE(store_->AddArtifact(team, zombie.lease, artifact),
              absl::StatusCode::kFailedPrecondition);
  EXPECT_CODE(store_->FinishRun(team, Finish(zombie, v1::OUTCOME_FAILED,
                                             kNow + 2100, true, "zombie")),
              absl::StatusCode::kFailedPrecondition);
  // The old lease id with the current attempt number is no better.
  v1::LeaseRef forged = zombie.lease;
  forged.set_attempt(current.lease.attempt());
  EXPECT_CODE(store_->Heartbeat(team, "gpu1", forged, kNow + 2100, 1000),
              absl::StatusCode::kFailedPrecondition);

  ASSERT_OK_AND_ASSIGN(v1::Run after, store_->GetRun(team, run_id));
  EXPECT_TRUE(MessageDifferencer::Equals(before, after))
      << before.DebugString() << "\nvs\n"
      << after.DebugString();
  WatchBatch stream_after = ReadAll(*store_, team, run_id);
  EXPECT_EQ(stream_after.metrics.size(), stream_before.metrics.size());
  EXPECT_EQ(stream_after.events.size(), stream_before.events.size());
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Artifact> artifacts,
                       store_->ListArtifacts(team, run_id));
  EXPECT_THAT(artifacts, IsEmpty());
  ASSERT_OK_AND_ASSIGN(v1::Worker gpu1_after, store_->GetWorker(team, "gpu1"));
  EXPECT_EQ(gpu1_after.consecutive_failures(),
            gpu1_before.consecutive_failures());

  // The current holder is unaffected.
  EXPECT_OK(store_->Heartbeat(team, "gpu2", current.lease, kNow + 2200, 1000));
}

TEST_P(StoreContractTest, WritesAfterFinishAreRejected) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant grant = Lease(*store_, team, "gpu1");
  ASSERT_OK(store_->FinishRun(team, Finish(grant, v1::OUTCOME_SUCCEEDED)));

  EXPECT_CODE(store_->Heartbeat(team, "gpu1", grant.lease, kNow, kTtl),
              absl::StatusCode::kFailedPrecondition);
  EXPECT_CODE(Append(*store_, team, grant.lease, 9,
                                   {Point("val_f1", 1, 1)}, {}, kNow),
              absl::StatusCode::kFailedPrecondition);
  EXPECT_CODE(store_->FinishRun(team, Finish(grant, v1::OUTCOME_FAILED)),
              absl::StatusCode::kFailedPrecondition);
  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->GetRun(team, grant.lease.run_id()));
  EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_FALSE(run.has_best());
}

TEST_P(StoreContractTest, CancelLeasedRunIsADirective) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant grant = Lease(*store_, team, "gpu1");
  const int64_t run_id = grant.lease.run_id();

  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->CancelRun(team, run_id, kNow + 1));
  EXPECT_EQ(run.state(), v1::RUN_STATE_LEASED);
  EXPECT_TRUE(run.cancel_requested());
  EXPECT_EQ(run.finished_at_ms(), 0);
  // Asking twice is harmless.
  ASSERT_OK_AND_ASSIGN(run, store_->CancelRun(team, run_id, kNow + 2));
  EXPECT_TRUE(run.cancel_requested());

  ASSERT_OK_AND_ASSIGN(
      HeartbeatResult beat,
      store_->Heartbeat(team, "gpu1", grant.lease, kNow + 3, kTtl));
  EXPECT_EQ(beat.directive, v1::DIRECTIVE_CANCEL);
  ASSERT_OK_AND_ASSIGN(
      v1::Directive directive,
      Append(*store_, team, grant.lease, 1, {}, {}, kNow + 4));
  EXPECT_EQ(directive, v1::DIRECTIVE_CANCEL);

  ASSERT_OK_AND_ASSIGN(
      v1::RunState state,
      store_->FinishRun(team, Finish(grant, v1::OUTCOME_CANCELLED, kNow + 5)));
  EXPECT_EQ(state, v1::RUN_STATE_CANCELLED);
  ASSERT_OK_AND_ASSIGN(run, store_->GetRun(team, run_id));
  EXPECT_EQ(run.state(), v1::RUN_STATE_CANCELLED);
  EXPECT_EQ(run.finished_at_ms(), kNow + 5);
}

TEST_P(StoreContractTest, DrainingWorkerGetsDrainDirective) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(2));
  LeaseGrant a = Lease(*store_, team, "gpu1");
  LeaseGrant b = Lease(*store_, team, "gpu1");
  ASSERT_OK(store_->DrainWorker(team, "gpu1"));

  ASSERT_OK_AND_ASSIGN(HeartbeatResult beat,
                       store_->Heartbeat(team, "gpu1", a.lease, kNow, kTtl));
  EXPECT_EQ(beat.directive, v1::DIRECTIVE_DRAIN);
  ASSERT_OK_AND_ASSIGN(v1::Directive directive,
                       Append(*store_, team, a.lease, 1, {}, {}, kNow));
  EXPECT_EQ(directive, v1::DIRECTIVE_DRAIN);

  // A cancel outranks the drain.
  ASSERT_OK(store_->CancelRun(team, b.lease.run_id(), kNow));
  ASSERT_OK_AND_ASSIGN(beat,
                       store_->Heartbeat(team, "gpu1", b.lease, kNow, kTtl));
  EXPECT_EQ(beat.directive, v1::DIRECTIVE_CANCEL);

  ASSERT_OK(store_->ClearWorker(team, "gpu1"));
  ASSERT_OK_AND_ASSIGN(beat,
                       store_->Heartbeat(team, "gpu1", a.lease, kNow, kTtl));
  EXPECT_EQ(beat.directive, v1::DIRECTIVE_CONTINUE);
}

// ======================================================================
// Events and metrics
// ======================================================================

TEST_P(StoreContractTest, FirstReportMovesLeasedToRunning) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant grant = Lease(*store_, team, "gpu1");
  ASSERT_OK_AND_ASSIGN(
      v1::Directive directive,
      Append(*store_, team, grant.lease, 1, {}, {}, kNow + 1));
  EXPECT_EQ(directive, v1::DIRECTIVE_CONTINUE);
  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->GetRun(team, grant.lease.run_id()));
  EXPECT_EQ(run.state(), v1::RUN_STATE_RUNNING);
  // Writes under the same lease keep working while RUNNING.
  EXPECT_OK(store_->Heartbeat(team, "gpu1", grant.lease, kNow + 2, kTtl));
  EXPECT_OK(Append(*store_, team, grant.lease, 2, {}, {}, kNow + 3));
}

TEST_P(StoreContractTest, AppendEventsDoesNotExtendTheLease) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant grant = Lease(*store_, team, "gpu1", kNow, 1000);
  Report(*store_, team, grant.lease, 1, {Point("val_f1", 1, 0.5)}, kNow + 900);
  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->GetRun(team, grant.lease.run_id()));
  EXPECT_EQ(run.lease_expires_at_ms(), kNow + 1000);
}

TEST_P(StoreContractTest, DuplicateBatchIsStoredOnce) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant grant = Lease(*store_, team, "gpu1");
  const int64_t run_id = grant.lease.run_id();
  std::vector<v1::MetricPoint> points = {Point("val_f1", 1, 0.5),
                                         Point("loss", 1, 2.0)};
  std::vector<v1::RunEvent> events = {
      Event("log", R"({"line":"epoch 1"})"),
      Event("log", R"({"line":"epoch 1 end"})")};
  ASSERT_OK(Append(*store_, team, grant.lease, 7, points, events, kNow));
  WatchBatch first = ReadAll(*store_, team, run_id);

  // The same batch again, and a batch that repeats a key with a new value.
  ASSERT_OK(Append(*store_, team, grant.lease, 7, points, events, kNow));
  ASSERT_OK(Append(*store_, team, grant.lease, 8,
                                 {Point("val_f1", 1, 0.99)}, {}, kNow));
  WatchBatch second = ReadAll(*store_, team, run_id);

  ASSERT_THAT(second.metrics, SizeIs(2));
  ASSERT_EQ(second.events.size(), first.events.size());
  for (size_t i = 0; i < first.metrics.size(); ++i) {
    EXPECT_TRUE(
        MessageDifferencer::Equals(first.metrics[i], second.metrics[i]));
  }
  for (size_t i = 0; i < first.events.size(); ++i) {
    EXPECT_TRUE(MessageDifferencer::Equals(first.events[i], second.events[i]));
  }
  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->GetRun(team, run_id));
  EXPECT_DOUBLE_EQ(run.best_value(), 0.5);
}

TEST_P(StoreContractTest, EventsAreKeyedByBatchAndIndex) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant grant = Lease(*store_, team, "gpu1");
  const int64_t run_id = grant.lease.run_id();
  v1::RunEvent event = Event("log", R"({"line":"same"})");
  ASSERT_OK(Append(*store_, team, grant.lease, 1, {}, {event}, kNow));
  ASSERT_OK(Append(*store_, team, grant.lease, 2, {}, {event}, kNow));
  ASSERT_OK(
      Append(*store_, team, grant.lease, 2, {}, {event, event}, kNow));
  int logs = 0;
  for (const v1::RunEvent& e : ReadAll(*store_, team, run_id).events) {
    if (e.kind() == "log") ++logs;
  }
  // (1, 0), (2, 0) and (2, 1).
  EXPECT_EQ(logs, 3);
}

TEST_P(StoreContractTest, SamePointInANewAttemptIsKept) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant first = Lease(*store_, team, "gpu1", kNow, 1000);
  Report(*store_, team, first.lease, 1, {Point("loss", 1, 3.0)});
  ASSERT_OK(store_->ExpireLeases(kNow + 1001));
  LeaseGrant second = Lease(*store_, team, "gpu1", kNow + 2000);
  Report(*store_, team, second.lease, 1, {Point("loss", 1, 2.0)});

  WatchBatch batch = ReadAll(*store_, team, first.lease.run_id());
  ASSERT_THAT(batch.metrics, SizeIs(2));
  EXPECT_EQ(batch.metrics[0].attempt(), 1u);
  EXPECT_DOUBLE_EQ(batch.metrics[0].value(), 3.0);
  EXPECT_EQ(batch.metrics[1].attempt(), 2u);
  EXPECT_DOUBLE_EQ(batch.metrics[1].value(), 2.0);
}

TEST_P(StoreContractTest, BestValueTracksFiniteValuesOfTheSweepMetric) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant grant = Lease(*store_, team, "gpu1");
  const int64_t run_id = grant.lease.run_id();
  Report(*store_, team, grant.lease, 1,
         {Point("val_f1", 1, 0.6), Point("val_acc", 1, 0.99),
          Point("val_f1", 2, 0.7)});
  Report(*store_, team, grant.lease, 2,
         {Point("val_f1", 3, 0.65), Point("train_f1", 3, 0.95)});

  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->GetRun(team, run_id));
  EXPECT_TRUE(run.has_best());
  EXPECT_DOUBLE_EQ(run.best_value(), 0.7);
  EXPECT_EQ(run.best_step(), 2);
  EXPECT_EQ(run.best_attempt(), 1u);
}

TEST_P(StoreContractTest, BestPrefersTheEarlierStepOnEqualValues) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant grant = Lease(*store_, team, "gpu1");
  Report(*store_, team, grant.lease, 1, {Point("val_f1", 5, 0.8)});
  Report(*store_, team, grant.lease, 2,
         {Point("val_f1", 3, 0.8), Point("val_f1", 9, 0.8)});
  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->GetRun(team, grant.lease.run_id()));
  EXPECT_EQ(run.best_step(), 3);
}

TEST_P(StoreContractTest, BestSpansAttempts) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant first = Lease(*store_, team, "gpu1", kNow, 1000);
  Report(*store_, team, first.lease, 1, {Point("val_f1", 4, 0.9)});
  ASSERT_OK(store_->ExpireLeases(kNow + 1001));
  LeaseGrant second = Lease(*store_, team, "gpu1", kNow + 2000);
  const int64_t run_id = first.lease.run_id();

  Report(*store_, team, second.lease, 1, {Point("val_f1", 4, 0.5)});
  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->GetRun(team, run_id));
  EXPECT_DOUBLE_EQ(run.best_value(), 0.9);
  EXPECT_EQ(run.best_attempt(), 1u);

  Report(*store_, team, second.lease, 2, {Point("val_f1", 6, 0.95)});
  ASSERT_OK_AND_ASSIGN(run, store_->GetRun(team, run_id));
  EXPECT_DOUBLE_EQ(run.best_value(), 0.95);
  EXPECT_EQ(run.best_step(), 6);
  EXPECT_EQ(run.best_attempt(), 2u);
}

TEST_P(StoreContractTest, NaNAndInfAreStoredButNeverBest) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  NewSweep maximize = MakeSweep(2);
  AddSweep(*store_, team, maximize);
  NewSweep minimize = MakeSweep(1);
  minimize.goal = v1::GOAL_MINIMIZE;
  AddSweep(*store_, team, minimize);
  LeaseGrant max_run = Lease(*store_, team, "gpu1");
  LeaseGrant nan_only = Lease(*store_, team, "gpu1");
  LeaseGrant min_run = Lease(*store_, team, "gpu1");

  Report(*store_, team, max_run.lease, 1,
         {Point("val_f1", 1, kNaN), Point("val_f1", 2, kInf),
          Point("val_f1", 3, 0.5), Point("val_f1", 4, -kInf)});
  Report(*store_, team, nan_only.lease, 1,
         {Point("val_f1", 1, kNaN), Point("val_f1", 2, kInf)});
  Report(*store_, team, min_run.lease, 1,
         {Point("val_f1", 1, -kInf), Point("val_f1", 2, 0.25),
          Point("val_f1", 3, kNaN)});

  WatchBatch stream = ReadAll(*store_, team, max_run.lease.run_id());
  ASSERT_THAT(stream.metrics, SizeIs(4));
  EXPECT_TRUE(std::isnan(stream.metrics[0].value()));
  EXPECT_TRUE(std::isinf(stream.metrics[1].value()));
  EXPECT_GT(stream.metrics[1].value(), 0);
  EXPECT_DOUBLE_EQ(stream.metrics[2].value(), 0.5);
  EXPECT_TRUE(std::isinf(stream.metrics[3].value()));
  EXPECT_LT(stream.metrics[3].value(), 0);

  ASSERT_OK_AND_ASSIGN(v1::Run run,
                       store_->GetRun(team, max_run.lease.run_id()));
  EXPECT_TRUE(run.has_best());
  EXPECT_DOUBLE_EQ(run.best_value(), 0.5);
  EXPECT_EQ(run.best_step(), 3);

  ASSERT_OK_AND_ASSIGN(run, store_->GetRun(team, nan_only.lease.run_id()));
  EXPECT_FALSE(run.has_best());

  ASSERT_OK_AND_ASSIGN(run, store_->GetRun(team, min_run.lease.run_id()));
  EXPECT_TRUE(run.has_best());
  EXPECT_DOUBLE_EQ(run.best_value(), 0.25);
  EXPECT_EQ(run.best_step(), 2);

  ASSERT_OK_AND_ASSIGN(std::vector<v1::LeaderboardEntry> board,
                       store_->Leaderboard(team, LeaderboardQuery{}));
  EXPECT_THAT(IdsOf(board), UnorderedElementsAre(max_run.lease.run_id(),
                                                 min_run.lease.run_id()));
}

TEST_P(StoreContractTest, ReadRunStreamResumesAfterCursor) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant grant = Lease(*store_, team, "gpu1");
  const int64_t run_id = grant.lease.run_id();
  ASSERT_OK(Append(*store_, 
      team, grant.lease, 1,
      {Point("loss", 1, 3.0), Point("loss", 2, 2.0), Point("loss", 3, 1.0)},
      {Event("log", R"({"n":0})"), Event("log", R"({"n":1})")}, kNow + 7));

  // Events so far: QUEUED, LEASED, RUNNING, log 0, log 1.
  ASSERT_OK_AND_ASSIGN(WatchBatch page,
                       store_->ReadRunStream(team, run_id, 0, 0, 2));
  EXPECT_EQ(page.state, v1::RUN_STATE_RUNNING);
  ASSERT_THAT(page.metrics, SizeIs(2));
  ASSERT_THAT(page.events, SizeIs(2));
  EXPECT_EQ(page.metrics[0].name(), "loss");
  EXPECT_EQ(page.metrics[0].step(), 1);
  EXPECT_EQ(page.metrics[0].attempt(), 1u);
  EXPECT_EQ(page.metrics[0].wall_time_ms(), kNow + 1);
  EXPECT_GT(page.metrics[0].seq(), 0);
  EXPECT_LT(page.metrics[0].seq(), page.metrics[1].seq());
  EXPECT_EQ(page.metrics[1].step(), 2);
  EXPECT_GT(page.events[0].seq(), 0);
  EXPECT_LT(page.events[0].seq(), page.events[1].seq());
  EXPECT_EQ(page.events[0].kind(), "state");

  int64_t metric_cursor = page.metrics.back().seq();
  int64_t event_cursor = page.events.back().seq();
  ASSERT_OK_AND_ASSIGN(page, store_->ReadRunStream(team, run_id, metric_cursor,
                                                   event_cursor, 2));
  ASSERT_THAT(page.metrics, SizeIs(1));
  EXPECT_EQ(page.metrics[0].step(), 3);
  ASSERT_THAT(page.events, SizeIs(2));
  EXPECT_EQ(page.events[0].kind(), "state");
  EXPECT_EQ(page.events[1].kind(), "log");
  EXPECT_EQ(page.events[1].payload_json(), R"({"n":0})");
  EXPECT_EQ(page.events[1].attempt(), 1u);
  EXPECT_EQ(page.events[1].time_ms(), kNow);

  metric_cursor = page.metrics.back().seq();
  event_cursor = page.events.back().seq();
  ASSERT_OK_AND_ASSIGN(page, store_->ReadRunStream(team, run_id, metric_cursor,
                                                   event_cursor, 2));
  EXPECT_THAT(page.metrics, IsEmpty());
  ASSERT_THAT(page.events, SizeIs(1));
  EXPECT_EQ(page.events[0].payload_json(), R"({"n":1})");
  event_cursor = page.events.back().seq();

  ASSERT_OK_AND_ASSIGN(page, store_->ReadRunStream(team, run_id, metric_cursor,
                                                   event_cursor, 2));
  EXPECT_THAT(page.metrics, IsEmpty());
  EXPECT_THAT(page.events, IsEmpty());

  // Only what arrives later shows up after the cursors.
  ASSERT_OK(Append(*store_, team, grant.lease, 2, {Point("loss", 4, 0.5)},
                                 {Event("log", R"({"n":2})")}, kNow + 8));
  ASSERT_OK_AND_ASSIGN(page, store_->ReadRunStream(team, run_id, metric_cursor,
                                                   event_cursor, 2));
  ASSERT_THAT(page.metrics, SizeIs(1));
  EXPECT_EQ(page.metrics[0].step(), 4);
  EXPECT_GT(page.metrics[0].seq(), metric_cursor);
  ASSERT_THAT(page.events, SizeIs(1));
  EXPECT_EQ(page.events[0].payload_json(), R"({"n":2})");
}

TEST_P(StoreContractTest, ReadRunStreamLimitZeroReturnsEverything) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant grant = Lease(*store_, team, "gpu1");
  std::vector<v1::MetricPoint> points;
  for (int step = 0; step < 250; ++step) {
    points.push_back(Point("loss", step, 1.0 / (step + 1)));
  }
  Report(*store_, team, grant.lease, 1, points);
  ASSERT_OK_AND_ASSIGN(
      WatchBatch batch,
      store_->ReadRunStream(team, grant.lease.run_id(), 0, 0, 0));
  EXPECT_THAT(batch.metrics, SizeIs(250));
}

TEST_P(StoreContractTest, SeqsIncreaseWithinARunInInsertionOrder) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(2));
  LeaseGrant a = Lease(*store_, team, "gpu1");
  LeaseGrant b = Lease(*store_, team, "gpu1");
  // Steps deliberately out of order: seq follows arrival, not step.
  Report(*store_, team, a.lease, 1, {Point("loss", 5, 1.0)});
  Report(*store_, team, b.lease, 1, {Point("loss", 1, 1.0)});
  Report(*store_, team, a.lease, 2, {Point("loss", 2, 1.0)});
  WatchBatch from_a = ReadAll(*store_, team, a.lease.run_id());
  WatchBatch from_b = ReadAll(*store_, team, b.lease.run_id());
  ASSERT_THAT(from_a.metrics, SizeIs(2));
  ASSERT_THAT(from_b.metrics, SizeIs(1));
  EXPECT_EQ(from_a.metrics[0].step(), 5);
  EXPECT_EQ(from_a.metrics[1].step(), 2);
  EXPECT_GT(from_a.metrics[1].seq(), from_a.metrics[0].seq());
  // Resuming after the first point yields only the second.
  auto rest = store_->ReadRunStream(team, a.lease.run_id(),
                                    from_a.metrics[0].seq(), 0, 0);
  ASSERT_OK(rest);
  ASSERT_THAT(rest->metrics, SizeIs(1));
  EXPECT_EQ(rest->metrics[0].step(), 2);
  // b's RUNNING event was written after a's LEASED event.
  EXPECT_GT(from_b.events.back().seq(), from_a.events[1].seq());
}

TEST_P(StoreContractTest, RunningEventTakesTheTimeOfTheBatchThatCausedIt) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant grant = Lease(*store_, team, "gpu1", kNow);
  // The worker stamped its point 15 ms before the coordinator got it.
  v1::MetricPoint point = Point("val_f1", 1, 0.5);
  point.set_wall_time_ms(kNow + 5);
  ASSERT_OK(Append(*store_, team, grant.lease, 1, {point}, {}, kNow + 20));
  WatchBatch all = ReadAll(*store_, team, grant.lease.run_id());
  ASSERT_THAT(all.metrics, SizeIs(1));
  const v1::RunEvent& running = all.events.back();
  EXPECT_THAT(running.payload_json(), HasSubstr("RUN_STATE_RUNNING"));
  EXPECT_EQ(running.time_ms(), kNow + 5);
  EXPECT_LE(running.time_ms(), all.metrics[0].wall_time_ms());
}

TEST_P(StoreContractTest, StateChangesAppearAsEvents) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddWorker(*store_, team, "gpu2");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant first = Lease(*store_, team, "gpu1", kNow + 10, 1000);
  const int64_t run_id = first.lease.run_id();
  ASSERT_OK(Append(*store_, team, first.lease, 1, {}, {Event("log", "{}")},
                                 kNow + 20));
  ASSERT_OK(store_->CancelRun(team, run_id, kNow + 25));  // not a state change
  ASSERT_OK(store_->ExpireLeases(kNow + 2000));           // cancel requested
  ASSERT_OK(store_->RetryRun(team, run_id, kNow + 3000));
  LeaseGrant second = Lease(*store_, team, "gpu2", kNow + 4000);
  Report(*store_, team, second.lease, 1, {}, kNow + 4100);
  ASSERT_OK(store_->FinishRun(
      team, Finish(second, v1::OUTCOME_SUCCEEDED, kNow + 5000, false, "done")));

  std::vector<Struct> states = StateEvents(*store_, team, run_id);
  EXPECT_THAT(
      StatesOf(states),
      ElementsAre("RUN_STATE_QUEUED", "RUN_STATE_LEASED", "RUN_STATE_RUNNING",
                  "RUN_STATE_CANCELLED", "RUN_STATE_QUEUED", "RUN_STATE_LEASED",
                  "RUN_STATE_RUNNING", "RUN_STATE_SUCCEEDED"));
  for (const Struct& payload : states) {
    for (const char* key : {"state", "attempt", "worker", "reason"}) {
      EXPECT_EQ(payload.fields().count(key), 1u) << key;
    }
    EXPECT_TRUE(payload.fields().at("attempt").has_number_value());
    EXPECT_TRUE(payload.fields().at("worker").has_string_value());
    EXPECT_TRUE(payload.fields().at("reason").has_string_value());
  }
  ASSERT_THAT(states, SizeIs(8));
  auto attempt = [&](int i) {
    return states[i].fields().at("attempt").number_value();
  };
  auto worker = [&](int i) {
    return states[i].fields().at("worker").string_value();
  };
  EXPECT_EQ(attempt(0), 0);
  EXPECT_EQ(attempt(1), 1);
  EXPECT_EQ(worker(1), "gpu1");
  EXPECT_EQ(worker(2), "gpu1");
  EXPECT_EQ(attempt(3), 1);
  EXPECT_EQ(worker(3), "gpu1");
  EXPECT_EQ(states[3].fields().at("reason").string_value(), "lease expired");
  EXPECT_EQ(attempt(5), 2);
  EXPECT_EQ(worker(5), "gpu2");
  EXPECT_EQ(attempt(7), 2);
  EXPECT_EQ(worker(7), "gpu2");
  EXPECT_EQ(states[7].fields().at("reason").string_value(), "done");

  // State events interleave with relayed events in write order, with times.
  std::vector<std::string> kinds;
  std::vector<int64_t> times;
  for (const v1::RunEvent& e : ReadAll(*store_, team, run_id).events) {
    kinds.push_back(e.kind());
    times.push_back(e.time_ms());
  }
  ASSERT_THAT(kinds, SizeIs(9));
  EXPECT_EQ(kinds[0], "state");
  EXPECT_EQ(kinds[1], "state");
  EXPECT_EQ(kinds[2], "state");  // RUNNING comes before the batch's events
  EXPECT_EQ(kinds[3], "log");
  EXPECT_EQ(times[0], kNow);
  EXPECT_EQ(times[1], kNow + 10);
  EXPECT_EQ(times[4], kNow + 2000);
  EXPECT_EQ(times[5], kNow + 3000);
  EXPECT_EQ(times[8], kNow + 5000);
}

// ======================================================================
// Artifacts
// ======================================================================

TEST_P(StoreContractTest, AddArtifactListsItAndReplacesTheSameName) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant first = Lease(*store_, team, "gpu1", kNow, 1000);
  const int64_t run_id = first.lease.run_id();

  v1::Artifact checkpoint;
  checkpoint.set_run_id(999);  // taken from the lease instead
  checkpoint.set_attempt(9);
  checkpoint.set_name("checkpoint.pt");
  checkpoint.set_sha256("aaa");
  checkpoint.set_size(10);
  checkpoint.set_created_at_ms(kNow + 1);
  ASSERT_OK(store_->AddArtifact(team, first.lease, checkpoint));
  checkpoint.set_sha256("bbb");
  checkpoint.set_size(20);
  ASSERT_OK(store_->AddArtifact(team, first.lease, checkpoint));
  v1::Artifact matrix = checkpoint;
  matrix.set_name("confusion.png");
  ASSERT_OK(store_->AddArtifact(team, first.lease, matrix));

  ASSERT_OK(store_->ExpireLeases(kNow + 1001));
  LeaseGrant second = Lease(*store_, team, "gpu1", kNow + 2000);
  v1::Artifact again = checkpoint;
  again.set_sha256("ccc");
  ASSERT_OK(store_->AddArtifact(team, second.lease, again));

  ASSERT_OK_AND_ASSIGN(std::vector<v1::Artifact> artifacts,
                       store_->ListArtifacts(team, run_id));
  ASSERT_THAT(artifacts, SizeIs(3));
  EXPECT_EQ(artifacts[0].name(), "checkpoint.pt");
  EXPECT_EQ(artifacts[0].attempt(), 1u);
  EXPECT_EQ(artifacts[0].run_id(), run_id);
  EXPECT_EQ(artifacts[0].sha256(), "bbb");
  EXPECT_EQ(artifacts[0].size(), 20);
  EXPECT_EQ(artifacts[0].created_at_ms(), kNow + 1);
  EXPECT_EQ(artifacts[1].name(), "confusion.png");
  EXPECT_EQ(artifacts[1].attempt(), 1u);
  EXPECT_EQ(artifacts[2].name(), "checkpoint.pt");
  EXPECT_EQ(artifacts[2].attempt(), 2u);
  EXPECT_EQ(artifacts[2].sha256(), "ccc");
}

// ======================================================================
// Finishing
// ======================================================================

TEST_P(StoreContractTest, SucceededRunIsFinal) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant grant = Lease(*store_, team, "gpu1");
  ASSERT_OK_AND_ASSIGN(
      v1::RunState state,
      store_->FinishRun(team, Finish(grant, v1::OUTCOME_SUCCEEDED, kNow + 9)));
  EXPECT_EQ(state, v1::RUN_STATE_SUCCEEDED);

  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->GetRun(team, grant.lease.run_id()));
  EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(run.finished_at_ms(), kNow + 9);
  EXPECT_EQ(run.worker_id(), "gpu1");
  EXPECT_EQ(run.lease_expires_at_ms(), 0);
  ASSERT_THAT(run.attempts(), SizeIs(1));
  EXPECT_EQ(run.attempts(0).ended_at_ms(), kNow + 9);
  EXPECT_EQ(run.attempts(0).outcome(), v1::RUN_STATE_SUCCEEDED);

  ASSERT_OK_AND_ASSIGN(std::optional<int64_t> next, store_->NextLeaseExpiry());
  EXPECT_FALSE(next.has_value());
  ASSERT_OK_AND_ASSIGN(std::vector<ExpiredLease> expired,
                       store_->ExpireLeases(kNow + 10 * kTtl));
  EXPECT_THAT(expired, IsEmpty());
  ASSERT_OK_AND_ASSIGN(std::optional<LeaseGrant> none,
                       store_->LeaseRun(team, "gpu1", {kMask}, kNow, kTtl));
  EXPECT_FALSE(none.has_value());
}

TEST_P(StoreContractTest, CancelledAndPrunedOutcomesAreFinal) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(2));
  LeaseGrant a = Lease(*store_, team, "gpu1");
  LeaseGrant b = Lease(*store_, team, "gpu1");
  ASSERT_OK_AND_ASSIGN(
      v1::RunState state,
      store_->FinishRun(team, Finish(a, v1::OUTCOME_PRUNED, kNow + 1, true)));
  EXPECT_EQ(state, v1::RUN_STATE_PRUNED);
  ASSERT_OK_AND_ASSIGN(
      state, store_->FinishRun(
                 team, Finish(b, v1::OUTCOME_CANCELLED, kNow + 2, true)));
  EXPECT_EQ(state, v1::RUN_STATE_CANCELLED);
  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->GetRun(team, a.lease.run_id()));
  EXPECT_EQ(run.state(), v1::RUN_STATE_PRUNED);
  EXPECT_EQ(run.finished_at_ms(), kNow + 1);
  ASSERT_OK_AND_ASSIGN(run, store_->GetRun(team, b.lease.run_id()));
  EXPECT_EQ(run.state(), v1::RUN_STATE_CANCELLED);
}

TEST_P(StoreContractTest, FinishWithoutOutcomeIsInvalid) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant grant = Lease(*store_, team, "gpu1");
  EXPECT_CODE(store_->FinishRun(team, Finish(grant, v1::OUTCOME_UNSPECIFIED)),
              absl::StatusCode::kInvalidArgument);
  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->GetRun(team, grant.lease.run_id()));
  EXPECT_EQ(run.state(), v1::RUN_STATE_LEASED);
}

TEST_P(StoreContractTest, NonRetryableFailureIsFinal) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant grant = Lease(*store_, team, "gpu1");
  ASSERT_OK_AND_ASSIGN(
      v1::RunState state,
      store_->FinishRun(team, Finish(grant, v1::OUTCOME_FAILED, kNow + 5, false,
                                     "bad data: 40% unreadable")));
  EXPECT_EQ(state, v1::RUN_STATE_FAILED);
  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->GetRun(team, grant.lease.run_id()));
  EXPECT_EQ(run.state(), v1::RUN_STATE_FAILED);
  EXPECT_EQ(run.error(), "bad data: 40% unreadable");
  EXPECT_FALSE(run.retryable());
  EXPECT_EQ(run.finished_at_ms(), kNow + 5);
  EXPECT_EQ(run.attempt(), 1u);
  EXPECT_EQ(run.attempts(0).outcome(), v1::RUN_STATE_FAILED);
  EXPECT_EQ(run.attempts(0).reason(), "bad data: 40% unreadable");
  ASSERT_OK_AND_ASSIGN(std::optional<LeaseGrant> none,
                       store_->LeaseRun(team, "gpu1", {kMask}, kNow, kTtl));
  EXPECT_FALSE(none.has_value());
}

TEST_P(StoreContractTest, RetryableFailureRequeuesUntilMaxAttempts) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  NewSweep sweep = MakeSweep(1);
  sweep.max_attempts = 2;
  AddSweep(*store_, team, sweep);
  LeaseGrant first = Lease(*store_, team, "gpu1");
  const int64_t run_id = first.lease.run_id();

  ASSERT_OK_AND_ASSIGN(
      v1::RunState state,
      store_->FinishRun(team, Finish(first, v1::OUTCOME_FAILED, kNow + 5, true,
                                     "CUDA error")));
  EXPECT_EQ(state, v1::RUN_STATE_QUEUED);
  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->GetRun(team, run_id));
  EXPECT_EQ(run.state(), v1::RUN_STATE_QUEUED);
  EXPECT_EQ(run.worker_id(), "");
  EXPECT_EQ(run.lease_expires_at_ms(), 0);
  EXPECT_EQ(run.finished_at_ms(), 0);
  EXPECT_EQ(run.attempt(), 1u);
  EXPECT_EQ(run.error(), "CUDA error");
  EXPECT_TRUE(run.retryable());
  ASSERT_THAT(run.attempts(), SizeIs(1));
  EXPECT_EQ(run.attempts(0).outcome(), v1::RUN_STATE_FAILED);
  EXPECT_EQ(run.attempts(0).reason(), "CUDA error");
  EXPECT_EQ(run.attempts(0).ended_at_ms(), kNow + 5);
  ASSERT_OK_AND_ASSIGN(std::optional<int64_t> next, store_->NextLeaseExpiry());
  EXPECT_FALSE(next.has_value());

  LeaseGrant second = Lease(*store_, team, "gpu1", kNow + 10);
  EXPECT_EQ(second.lease.run_id(), run_id);
  EXPECT_EQ(second.lease.attempt(), 2u);
  // The first attempt's lease died with the requeue.
  EXPECT_CODE(store_->Heartbeat(team, "gpu1", first.lease, kNow + 11, kTtl),
              absl::StatusCode::kFailedPrecondition);

  ASSERT_OK_AND_ASSIGN(
      state, store_->FinishRun(team, Finish(second, v1::OUTCOME_FAILED,
                                            kNow + 20, true, "CUDA again")));
  EXPECT_EQ(state, v1::RUN_STATE_FAILED);
  ASSERT_OK_AND_ASSIGN(run, store_->GetRun(team, run_id));
  EXPECT_EQ(run.state(), v1::RUN_STATE_FAILED);
  EXPECT_EQ(run.attempt(), 2u);
  EXPECT_EQ(run.finished_at_ms(), kNow + 20);
  EXPECT_EQ(run.error(), "CUDA again");
  ASSERT_THAT(run.attempts(), SizeIs(2));
  EXPECT_EQ(run.attempts(1).outcome(), v1::RUN_STATE_FAILED);
}

TEST_P(StoreContractTest, RetryableFailureOfCancelRequestedRunIsFinal) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant grant = Lease(*store_, team, "gpu1");
  ASSERT_OK(store_->CancelRun(team, grant.lease.run_id(), kNow));
  ASSERT_OK_AND_ASSIGN(
      v1::RunState state,
      store_->FinishRun(
          team, Finish(grant, v1::OUTCOME_FAILED, kNow + 1, true, "killed")));
  EXPECT_EQ(state, v1::RUN_STATE_FAILED);
}

TEST_P(StoreContractTest, ConsecutiveFailuresQuarantineTheWorker) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(4));
  std::vector<LeaseGrant> grants;
  for (int i = 0; i < 4; ++i) grants.push_back(Lease(*store_, team, "gpu1"));
  auto finish = [&](int i, v1::Outcome outcome, bool retryable) {
    FinishRequest request =
        Finish(grants[i], outcome, kNow + i, retryable, "segfault");
    request.quarantine_after = 3;
    return store_->FinishRun(team, request);
  };

  ASSERT_OK(finish(0, v1::OUTCOME_FAILED, true));  // requeued, still counts
  ASSERT_OK_AND_ASSIGN(v1::Worker worker, store_->GetWorker(team, "gpu1"));
  EXPECT_EQ(worker.consecutive_failures(), 1u);
  EXPECT_EQ(worker.state(), v1::WORKER_STATE_ACTIVE);

  ASSERT_OK(finish(1, v1::OUTCOME_CANCELLED, false));  // leaves the count
  ASSERT_OK(finish(2, v1::OUTCOME_FAILED, false));
  ASSERT_OK_AND_ASSIGN(worker, store_->GetWorker(team, "gpu1"));
  EXPECT_EQ(worker.consecutive_failures(), 2u);
  EXPECT_EQ(worker.state(), v1::WORKER_STATE_ACTIVE);
  EXPECT_EQ(worker.quarantine_reason(), "");

  ASSERT_OK(finish(3, v1::OUTCOME_FAILED, false));
  ASSERT_OK_AND_ASSIGN(worker, store_->GetWorker(team, "gpu1"));
  EXPECT_EQ(worker.consecutive_failures(), 3u);
  EXPECT_EQ(worker.state(), v1::WORKER_STATE_QUARANTINED);
  EXPECT_FALSE(worker.quarantine_reason().empty());
}

TEST_P(StoreContractTest, QuarantineAppliesToADrainingWorker) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant grant = Lease(*store_, team, "gpu1");
  ASSERT_OK(store_->DrainWorker(team, "gpu1"));
  FinishRequest fail = Finish(grant, v1::OUTCOME_FAILED);
  fail.quarantine_after = 1;
  ASSERT_OK(store_->FinishRun(team, fail));
  ASSERT_OK_AND_ASSIGN(v1::Worker worker, store_->GetWorker(team, "gpu1"));
  EXPECT_EQ(worker.state(), v1::WORKER_STATE_QUARANTINED);
}

TEST_P(StoreContractTest, SuccessResetsConsecutiveFailures) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(3));
  LeaseGrant a = Lease(*store_, team, "gpu1");
  LeaseGrant b = Lease(*store_, team, "gpu1");
  LeaseGrant c = Lease(*store_, team, "gpu1");
  FinishRequest fail_a = Finish(a, v1::OUTCOME_FAILED);
  fail_a.quarantine_after = 2;
  ASSERT_OK(store_->FinishRun(team, fail_a));
  ASSERT_OK(store_->FinishRun(team, Finish(b, v1::OUTCOME_SUCCEEDED)));
  ASSERT_OK_AND_ASSIGN(v1::Worker worker, store_->GetWorker(team, "gpu1"));
  EXPECT_EQ(worker.consecutive_failures(), 0u);

  FinishRequest fail_c = Finish(c, v1::OUTCOME_FAILED);
  fail_c.quarantine_after = 2;
  ASSERT_OK(store_->FinishRun(team, fail_c));
  ASSERT_OK_AND_ASSIGN(worker, store_->GetWorker(team, "gpu1"));
  EXPECT_EQ(worker.consecutive_failures(), 1u);
  EXPECT_EQ(worker.state(), v1::WORKER_STATE_ACTIVE);
}

TEST_P(StoreContractTest, ZeroQuarantineAfterNeverQuarantines) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(2));
  for (int i = 0; i < 2; ++i) {
    LeaseGrant grant = Lease(*store_, team, "gpu1");
    FinishRequest fail = Finish(grant, v1::OUTCOME_FAILED);
    fail.quarantine_after = 0;
    ASSERT_OK(store_->FinishRun(team, fail));
  }
  ASSERT_OK_AND_ASSIGN(v1::Worker worker, store_->GetWorker(team, "gpu1"));
  EXPECT_EQ(worker.consecutive_failures(), 2u);
  EXPECT_EQ(worker.state(), v1::WORKER_STATE_ACTIVE);
}

// ======================================================================
// Lease expiry
// ======================================================================

TEST_P(StoreContractTest, LeaseExpiredRunIsRequeuedWithNextAttempt) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddWorker(*store_, team, "gpu2");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant first = Lease(*store_, team, "gpu1", kNow, 1000);
  const int64_t run_id = first.lease.run_id();
  Report(*store_, team, first.lease, 1, {Point("val_f1", 1, 0.5)});

  ASSERT_OK_AND_ASSIGN(std::vector<ExpiredLease> expired,
                       store_->ExpireLeases(kNow + 1001));
  ASSERT_THAT(expired, SizeIs(1));
  EXPECT_EQ(expired[0].run_id, run_id);
  EXPECT_EQ(expired[0].attempt, 1u);
  EXPECT_EQ(expired[0].worker_id, "gpu1");
  EXPECT_EQ(expired[0].new_state, v1::RUN_STATE_QUEUED);

  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->GetRun(team, run_id));
  EXPECT_EQ(run.state(), v1::RUN_STATE_QUEUED);
  EXPECT_EQ(run.worker_id(), "");
  EXPECT_EQ(run.lease_expires_at_ms(), 0);
  EXPECT_EQ(run.finished_at_ms(), 0);
  EXPECT_TRUE(run.has_best());
  ASSERT_THAT(run.attempts(), SizeIs(1));
  EXPECT_EQ(run.attempts(0).outcome(), v1::RUN_STATE_QUEUED);
  EXPECT_EQ(run.attempts(0).reason(), "lease expired");
  EXPECT_EQ(run.attempts(0).ended_at_ms(), kNow + 1001);
  ASSERT_OK_AND_ASSIGN(v1::Worker gpu1, store_->GetWorker(team, "gpu1"));
  EXPECT_THAT(gpu1.running_run_ids(), IsEmpty());
  EXPECT_EQ(gpu1.consecutive_failures(), 0u);

  // Expiring again finds nothing.
  ASSERT_OK_AND_ASSIGN(expired, store_->ExpireLeases(kNow + 5000));
  EXPECT_THAT(expired, IsEmpty());

  LeaseGrant second = Lease(*store_, team, "gpu2", kNow + 6000);
  EXPECT_EQ(second.lease.run_id(), run_id);
  EXPECT_EQ(second.lease.attempt(), 2u);
  EXPECT_NE(second.lease.lease_id(), first.lease.lease_id());
}

TEST_P(StoreContractTest, LeaseExpiresOnlyAfterItsDeadline) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  Lease(*store_, team, "gpu1", kNow, 1000);
  ASSERT_OK_AND_ASSIGN(std::vector<ExpiredLease> expired,
                       store_->ExpireLeases(kNow + 1000));
  EXPECT_THAT(expired, IsEmpty());
  ASSERT_OK_AND_ASSIGN(expired, store_->ExpireLeases(kNow + 1001));
  EXPECT_THAT(expired, SizeIs(1));
}

TEST_P(StoreContractTest, ExpiredLeaseAtMaxAttemptsFails) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  NewSweep sweep = MakeSweep(1);
  sweep.max_attempts = 2;
  AddSweep(*store_, team, sweep);
  LeaseGrant first = Lease(*store_, team, "gpu1", kNow, 1000);
  ASSERT_OK(store_->ExpireLeases(kNow + 1001));
  Lease(*store_, team, "gpu1", kNow + 2000, 1000);

  ASSERT_OK_AND_ASSIGN(std::vector<ExpiredLease> expired,
                       store_->ExpireLeases(kNow + 3001));
  ASSERT_THAT(expired, SizeIs(1));
  EXPECT_EQ(expired[0].attempt, 2u);
  EXPECT_EQ(expired[0].new_state, v1::RUN_STATE_FAILED);

  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->GetRun(team, first.lease.run_id()));
  EXPECT_EQ(run.state(), v1::RUN_STATE_FAILED);
  EXPECT_EQ(run.finished_at_ms(), kNow + 3001);
  EXPECT_THAT(run.error(), HasSubstr("lease expired"));
  EXPECT_THAT(run.error(), HasSubstr("2"));
  ASSERT_THAT(run.attempts(), SizeIs(2));
  EXPECT_EQ(run.attempts(1).outcome(), v1::RUN_STATE_FAILED);
  EXPECT_EQ(run.attempts(1).reason(), "lease expired");
  ASSERT_OK_AND_ASSIGN(std::optional<LeaseGrant> none,
                       store_->LeaseRun(team, "gpu1", {kMask}, kNow, kTtl));
  EXPECT_FALSE(none.has_value());
}

TEST_P(StoreContractTest, ExpiredLeaseOfCancelRequestedRunIsCancelled) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant grant = Lease(*store_, team, "gpu1", kNow, 1000);
  ASSERT_OK(store_->CancelRun(team, grant.lease.run_id(), kNow + 1));
  ASSERT_OK_AND_ASSIGN(std::vector<ExpiredLease> expired,
                       store_->ExpireLeases(kNow + 1001));
  ASSERT_THAT(expired, SizeIs(1));
  EXPECT_EQ(expired[0].new_state, v1::RUN_STATE_CANCELLED);
  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->GetRun(team, grant.lease.run_id()));
  EXPECT_EQ(run.state(), v1::RUN_STATE_CANCELLED);
  EXPECT_EQ(run.finished_at_ms(), kNow + 1001);
  EXPECT_EQ(run.attempts(0).outcome(), v1::RUN_STATE_CANCELLED);
}

TEST_P(StoreContractTest, ExpireLeasesCoversEveryTeamInRunIdOrder) {
  int64_t a = AddTeam(*store_, "a");
  int64_t b = AddTeam(*store_, "b");
  AddWorker(*store_, a, "gpu");
  AddWorker(*store_, b, "gpu");
  AddSweep(*store_, b, MakeSweep(1));
  AddSweep(*store_, a, MakeSweep(1));
  LeaseGrant in_a = Lease(*store_, a, "gpu", kNow, 1000);
  LeaseGrant in_b = Lease(*store_, b, "gpu", kNow, 2000);
  ASSERT_LT(in_b.lease.run_id(), in_a.lease.run_id());

  ASSERT_OK_AND_ASSIGN(std::vector<ExpiredLease> expired,
                       store_->ExpireLeases(kNow + 1500));
  ASSERT_THAT(expired, SizeIs(1));
  EXPECT_EQ(expired[0].run_id, in_a.lease.run_id());

  // Leased again in a, so both teams hold an expired lease now.
  LeaseGrant again = Lease(*store_, a, "gpu", kNow + 1500, 1000);
  ASSERT_OK_AND_ASSIGN(expired, store_->ExpireLeases(kNow + 5000));
  ASSERT_THAT(expired, SizeIs(2));
  EXPECT_EQ(expired[0].run_id, in_b.lease.run_id());
  EXPECT_EQ(expired[0].worker_id, "gpu");
  EXPECT_EQ(expired[0].attempt, 1u);
  EXPECT_EQ(expired[1].run_id, again.lease.run_id());
  EXPECT_EQ(expired[1].attempt, 2u);
  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->GetRun(b, in_b.lease.run_id()));
  EXPECT_EQ(run.state(), v1::RUN_STATE_QUEUED);
}

TEST_P(StoreContractTest, NextLeaseExpiryIsTheEarliestHeldLease) {
  int64_t a = AddTeam(*store_, "a");
  int64_t b = AddTeam(*store_, "b");
  AddWorker(*store_, a, "gpu");
  AddWorker(*store_, b, "gpu");
  ASSERT_OK_AND_ASSIGN(std::optional<int64_t> next, store_->NextLeaseExpiry());
  EXPECT_FALSE(next.has_value());

  AddSweep(*store_, a, MakeSweep(1));
  AddSweep(*store_, b, MakeSweep(1));
  LeaseGrant in_a = Lease(*store_, a, "gpu", kNow, 5000);
  LeaseGrant in_b = Lease(*store_, b, "gpu", kNow, 3000);
  ASSERT_OK_AND_ASSIGN(next, store_->NextLeaseExpiry());
  EXPECT_EQ(next, std::optional<int64_t>(kNow + 3000));

  ASSERT_OK(store_->Heartbeat(b, "gpu", in_b.lease, kNow + 1000, 9000));
  ASSERT_OK_AND_ASSIGN(next, store_->NextLeaseExpiry());
  EXPECT_EQ(next, std::optional<int64_t>(kNow + 5000));

  ASSERT_OK(store_->FinishRun(a, Finish(in_a, v1::OUTCOME_SUCCEEDED)));
  ASSERT_OK_AND_ASSIGN(next, store_->NextLeaseExpiry());
  EXPECT_EQ(next, std::optional<int64_t>(kNow + 10000));
}

// ======================================================================
// Cancel and retry
// ======================================================================

TEST_P(StoreContractTest, CancelQueuedRunIsImmediate) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  InsertSweepResult sweep = AddSweep(*store_, team, MakeSweep(1));
  ASSERT_OK_AND_ASSIGN(v1::Run run,
                       store_->CancelRun(team, sweep.run_ids[0], kNow + 4));
  EXPECT_EQ(run.state(), v1::RUN_STATE_CANCELLED);
  EXPECT_EQ(run.finished_at_ms(), kNow + 4);
  ASSERT_OK_AND_ASSIGN(run, store_->GetRun(team, sweep.run_ids[0]));
  EXPECT_EQ(run.state(), v1::RUN_STATE_CANCELLED);
  ASSERT_OK_AND_ASSIGN(std::optional<LeaseGrant> none,
                       store_->LeaseRun(team, "gpu1", {kMask}, kNow, kTtl));
  EXPECT_FALSE(none.has_value());
}

TEST_P(StoreContractTest, CancelFinalRunIsFailedPrecondition) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(2));
  LeaseGrant done = Lease(*store_, team, "gpu1");
  ASSERT_OK(store_->FinishRun(team, Finish(done, v1::OUTCOME_SUCCEEDED)));
  EXPECT_CODE(store_->CancelRun(team, done.lease.run_id(), kNow),
              absl::StatusCode::kFailedPrecondition);

  ASSERT_OK_AND_ASSIGN(std::vector<v1::Run> queued,
                       store_->ListRuns(team, RunFilter{}));
  int64_t other = queued[0].run_id();
  ASSERT_OK(store_->CancelRun(team, other, kNow));
  EXPECT_CODE(store_->CancelRun(team, other, kNow),
              absl::StatusCode::kFailedPrecondition);
  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->GetRun(team, done.lease.run_id()));
  EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED);
}

TEST_P(StoreContractTest, CancelSweepCancelsQueuedAndFlagsLeasedRuns) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  InsertSweepResult sweep = AddSweep(*store_, team, MakeSweep(4));
  InsertSweepResult other = AddSweep(*store_, team, MakeSweep(1), kNow + 1);
  LeaseGrant running = Lease(*store_, team, "gpu1");
  LeaseGrant done = Lease(*store_, team, "gpu1");
  ASSERT_OK(store_->FinishRun(team, Finish(done, v1::OUTCOME_SUCCEEDED)));

  ASSERT_OK_AND_ASSIGN(auto counts,
                       store_->CancelSweep(team, sweep.sweep_id, kNow + 2));
  EXPECT_EQ(counts.first, 2u);
  EXPECT_EQ(counts.second, 1u);

  ASSERT_OK_AND_ASSIGN(v1::Run run,
                       store_->GetRun(team, running.lease.run_id()));
  EXPECT_EQ(run.state(), v1::RUN_STATE_LEASED);
  EXPECT_TRUE(run.cancel_requested());
  ASSERT_OK_AND_ASSIGN(run, store_->GetRun(team, done.lease.run_id()));
  EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED);
  for (int i : {2, 3}) {
    ASSERT_OK_AND_ASSIGN(run, store_->GetRun(team, sweep.run_ids[i]));
    EXPECT_EQ(run.state(), v1::RUN_STATE_CANCELLED);
    EXPECT_EQ(run.finished_at_ms(), kNow + 2);
  }
  ASSERT_OK_AND_ASSIGN(run, store_->GetRun(team, other.run_ids[0]));
  EXPECT_EQ(run.state(), v1::RUN_STATE_QUEUED);

  ASSERT_OK_AND_ASSIGN(counts,
                       store_->CancelSweep(team, sweep.sweep_id, kNow + 3));
  EXPECT_EQ(counts.first, 0u);
  EXPECT_EQ(counts.second, 1u);
}

TEST_P(StoreContractTest, RetryRunRequeuesFinalRun) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  NewSweep sweep = MakeSweep(2);
  sweep.max_attempts = 2;
  InsertSweepResult inserted = AddSweep(*store_, team, sweep);
  LeaseGrant first = Lease(*store_, team, "gpu1");
  const int64_t run_id = first.lease.run_id();
  ASSERT_OK(store_->FinishRun(
      team, Finish(first, v1::OUTCOME_FAILED, kNow + 1, true, "flaky")));
  LeaseGrant second = Lease(*store_, team, "gpu1", kNow + 2);
  ASSERT_EQ(second.lease.run_id(), run_id);
  Report(*store_, team, second.lease, 1, {Point("val_f1", 1, 0.7)});
  ASSERT_OK(store_->FinishRun(
      team, Finish(second, v1::OUTCOME_FAILED, kNow + 3, true, "flaky again")));

  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->RetryRun(team, run_id, kNow + 4));
  EXPECT_EQ(run.state(), v1::RUN_STATE_QUEUED);
  EXPECT_EQ(run.attempt(), 2u);
  EXPECT_EQ(run.max_attempts(), 4u);
  EXPECT_EQ(run.error(), "");
  EXPECT_FALSE(run.retryable());
  EXPECT_EQ(run.finished_at_ms(), 0);
  EXPECT_EQ(run.worker_id(), "");
  EXPECT_TRUE(run.has_best());
  ASSERT_OK_AND_ASSIGN(run, store_->GetRun(team, run_id));
  EXPECT_EQ(run.state(), v1::RUN_STATE_QUEUED);
  ASSERT_THAT(run.attempts(), SizeIs(2));
  EXPECT_EQ(run.attempts(0).reason(), "flaky");
  EXPECT_EQ(run.attempts(1).reason(), "flaky again");

  LeaseGrant third = Lease(*store_, team, "gpu1", kNow + 5);
  EXPECT_EQ(third.lease.run_id(), run_id);
  EXPECT_EQ(third.lease.attempt(), 3u);

  // A run cancelled while queued gets the sweep's budget from attempt 0.
  ASSERT_OK(store_->CancelRun(team, inserted.run_ids[1], kNow + 6));
  ASSERT_OK_AND_ASSIGN(run,
                       store_->RetryRun(team, inserted.run_ids[1], kNow + 7));
  EXPECT_EQ(run.state(), v1::RUN_STATE_QUEUED);
  EXPECT_EQ(run.max_attempts(), 2u);
}

TEST_P(StoreContractTest, RetryPrunedRunIsAllowed) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant grant = Lease(*store_, team, "gpu1");
  ASSERT_OK(store_->FinishRun(team, Finish(grant, v1::OUTCOME_PRUNED)));
  ASSERT_OK_AND_ASSIGN(v1::Run run,
                       store_->RetryRun(team, grant.lease.run_id(), kNow));
  EXPECT_EQ(run.state(), v1::RUN_STATE_QUEUED);
  EXPECT_EQ(run.max_attempts(), 4u);
}

TEST_P(StoreContractTest, RetryRunOfLiveOrSucceededRunIsFailedPrecondition) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  InsertSweepResult sweep = AddSweep(*store_, team, MakeSweep(3));
  LeaseGrant leased = Lease(*store_, team, "gpu1");
  LeaseGrant done = Lease(*store_, team, "gpu1");
  ASSERT_OK(store_->FinishRun(team, Finish(done, v1::OUTCOME_SUCCEEDED)));

  EXPECT_CODE(store_->RetryRun(team, sweep.run_ids[2], kNow),
              absl::StatusCode::kFailedPrecondition);  // QUEUED
  EXPECT_CODE(store_->RetryRun(team, leased.lease.run_id(), kNow),
              absl::StatusCode::kFailedPrecondition);  // LEASED
  EXPECT_CODE(store_->RetryRun(team, done.lease.run_id(), kNow),
              absl::StatusCode::kFailedPrecondition);  // SUCCEEDED
  Report(*store_, team, leased.lease, 1, {});
  EXPECT_CODE(store_->RetryRun(team, leased.lease.run_id(), kNow),
              absl::StatusCode::kFailedPrecondition);  // RUNNING
  ASSERT_OK_AND_ASSIGN(v1::Run run, store_->GetRun(team, done.lease.run_id()));
  EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED);
}

// ======================================================================
// Leaderboard
// ======================================================================

TEST_P(StoreContractTest, LeaderboardOrdersAndBreaksTies) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(8));
  std::vector<LeaseGrant> g;
  for (int i = 0; i < 8; ++i) g.push_back(Lease(*store_, team, "gpu1"));
  auto id = [&](int i) { return g[i].lease.run_id(); };

  Report(*store_, team, g[0].lease, 1, {Point("val_f1", 5, 0.8)});
  Report(*store_, team, g[1].lease, 1, {Point("val_f1", 7, 0.9)});
  Report(*store_, team, g[2].lease, 1, {Point("val_f1", 3, 0.8)});
  Report(*store_, team, g[3].lease, 1, {Point("val_f1", 5, 0.8)});
  Report(*store_, team, g[4].lease, 1, {Point("val_f1", 5, 0.8)});
  Report(*store_, team, g[5].lease, 1, {Point("val_f1", 5, 0.8)});
  Report(*store_, team, g[6].lease, 1, {Point("val_f1", 1, kNaN)});
  Report(*store_, team, g[7].lease, 1, {Point("loss", 1, 0.1)});
  ASSERT_OK(
      store_->FinishRun(team, Finish(g[0], v1::OUTCOME_SUCCEEDED, kNow + 500)));
  ASSERT_OK(
      store_->FinishRun(team, Finish(g[3], v1::OUTCOME_SUCCEEDED, kNow + 400)));
  ASSERT_OK(
      store_->FinishRun(team, Finish(g[5], v1::OUTCOME_SUCCEEDED, kNow + 400)));

  ASSERT_OK_AND_ASSIGN(std::vector<v1::LeaderboardEntry> board,
                       store_->Leaderboard(team, LeaderboardQuery{}));
  // 0.9 first; then among 0.8: step 3, then finished at 400 (lower id
  // first), then finished at 500, then unfinished.
  EXPECT_THAT(IdsOf(board),
              ElementsAre(id(1), id(2), id(3), id(5), id(0), id(4)));
  for (size_t i = 0; i < board.size(); ++i) {
    EXPECT_EQ(board[i].rank(), i + 1);
    EXPECT_FALSE(board[i].run().has_config());
    EXPECT_THAT(board[i].run().attempts(), IsEmpty());
  }
  EXPECT_DOUBLE_EQ(board[0].run().best_value(), 0.9);
  EXPECT_EQ(board[0].run().best_step(), 7);
}

TEST_P(StoreContractTest, LeaderboardMinimizeGoal) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  NewSweep sweep = MakeSweep(3);
  sweep.metric = "val_loss";
  sweep.goal = v1::GOAL_MINIMIZE;
  InsertSweepResult inserted = AddSweep(*store_, team, sweep);
  std::vector<LeaseGrant> g;
  for (int i = 0; i < 3; ++i) g.push_back(Lease(*store_, team, "gpu1"));
  Report(*store_, team, g[0].lease, 1,
         {Point("val_loss", 1, 0.9), Point("val_loss", 2, 0.5)});
  Report(*store_, team, g[1].lease, 1, {Point("val_loss", 1, 0.2)});
  Report(*store_, team, g[2].lease, 1,
         {Point("val_loss", 1, 0.9), Point("val_loss", 2, 1.5)});

  LeaderboardQuery query;
  query.sweep_id = inserted.sweep_id;
  ASSERT_OK_AND_ASSIGN(std::vector<v1::LeaderboardEntry> board,
                       store_->Leaderboard(team, query));
  EXPECT_THAT(IdsOf(board),
              ElementsAre(g[1].lease.run_id(), g[0].lease.run_id(),
                          g[2].lease.run_id()));
  ASSERT_THAT(board, SizeIs(3));
  EXPECT_DOUBLE_EQ(board[1].run().best_value(), 0.5);
  EXPECT_EQ(board[1].run().best_step(), 2);
  EXPECT_DOUBLE_EQ(board[2].run().best_value(), 0.9);
  EXPECT_EQ(board[2].run().goal(), v1::GOAL_MINIMIZE);
}

TEST_P(StoreContractTest,
       LeaderboardMetricsAtBestComeFromTheBestAttemptAndStep) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant first = Lease(*store_, team, "gpu1", kNow, 1000);
  Report(*store_, team, first.lease, 1,
         {Point("val_f1", 2, 0.7), Point("val_acc", 2, 0.75),
          Point("train_loss", 4, 0.01)});
  ASSERT_OK(store_->ExpireLeases(kNow + 1001));
  LeaseGrant second = Lease(*store_, team, "gpu1", kNow + 2000);
  Report(*store_, team, second.lease, 1,
         {Point("val_f1", 4, 0.9), Point("val_acc", 4, 0.95),
          Point("val_acc", 2, 0.1), Point("val_nll", 4, kInf)});

  ASSERT_OK_AND_ASSIGN(std::vector<v1::LeaderboardEntry> board,
                       store_->Leaderboard(team, LeaderboardQuery{}));
  ASSERT_THAT(board, SizeIs(1));
  EXPECT_EQ(board[0].run().best_attempt(), 2u);
  EXPECT_EQ(board[0].run().best_step(), 4);
  const auto& metrics = board[0].metrics_at_best();
  ASSERT_EQ(metrics.size(), 3u);
  EXPECT_DOUBLE_EQ(metrics.at("val_f1"), 0.9);
  EXPECT_DOUBLE_EQ(metrics.at("val_acc"), 0.95);
  EXPECT_TRUE(std::isinf(metrics.at("val_nll")));
}

TEST_P(StoreContractTest, LeaderboardMetricsAtBestIgnoreLaterAttempts) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(1));
  LeaseGrant first = Lease(*store_, team, "gpu1", kNow, 1000);
  Report(*store_, team, first.lease, 1,
         {Point("val_f1", 4, 0.9), Point("val_acc", 4, 0.95)});
  ASSERT_OK(store_->ExpireLeases(kNow + 1001));
  LeaseGrant second = Lease(*store_, team, "gpu1", kNow + 2000);
  // Same step, worse value, and a metric the best attempt never reported.
  Report(*store_, team, second.lease, 1,
         {Point("val_f1", 4, 0.5), Point("val_acc", 4, 0.1),
          Point("train_loss", 4, 0.01)});

  ASSERT_OK_AND_ASSIGN(std::vector<v1::LeaderboardEntry> board,
                       store_->Leaderboard(team, LeaderboardQuery{}));
  ASSERT_THAT(board, SizeIs(1));
  EXPECT_EQ(board[0].run().best_attempt(), 1u);
  const auto& metrics = board[0].metrics_at_best();
  EXPECT_EQ(metrics.size(), 2u);
  EXPECT_EQ(metrics.count("train_loss"), 0u);
  ASSERT_EQ(metrics.count("val_acc"), 1u);
  EXPECT_DOUBLE_EQ(metrics.at("val_acc"), 0.95);
}

TEST_P(StoreContractTest, LeaderboardFiltersBySweepMetricAndTop) {
  int64_t team = AddTeam(*store_, "vision");
  int64_t other_team = AddTeam(*store_, "other");
  AddWorker(*store_, team, "gpu1");
  AddWorker(*store_, other_team, "gpu1");
  NewSweep f1 = MakeSweep(22);
  InsertSweepResult f1_sweep = AddSweep(*store_, team, f1);
  NewSweep loss = MakeSweep(1);
  loss.metric = "val_loss";
  loss.goal = v1::GOAL_MINIMIZE;
  InsertSweepResult loss_sweep = AddSweep(*store_, team, loss, kNow + 1);
  AddSweep(*store_, other_team, MakeSweep(1));

  for (int i = 0; i < 22; ++i) {
    LeaseGrant grant = Lease(*store_, team, "gpu1");
    Report(*store_, team, grant.lease, 1, {Point("val_f1", 1, 0.01 * i)});
  }
  LeaseGrant loss_run = Lease(*store_, team, "gpu1");
  ASSERT_EQ(loss_run.lease.run_id(), loss_sweep.run_ids[0]);
  Report(*store_, team, loss_run.lease, 1, {Point("val_loss", 1, 100.0)});
  LeaseGrant foreign = Lease(*store_, other_team, "gpu1");
  Report(*store_, other_team, foreign.lease, 1, {Point("val_f1", 1, 1.0)});

  ASSERT_OK_AND_ASSIGN(std::vector<v1::LeaderboardEntry> board,
                       store_->Leaderboard(team, LeaderboardQuery{}));
  ASSERT_THAT(board, SizeIs(20));  // top 20 by default
  EXPECT_EQ(board[0].run().run_id(), f1_sweep.run_ids[21]);
  // -100 scores below every f1 value: the loss run is not in the top 20.
  for (const auto& entry : board) {
    EXPECT_NE(entry.run().run_id(), loss_run.lease.run_id());
    EXPECT_NE(entry.run().run_id(), foreign.lease.run_id());
  }

  LeaderboardQuery top0;
  top0.top = 0;  // means 20
  ASSERT_OK_AND_ASSIGN(board, store_->Leaderboard(team, top0));
  EXPECT_THAT(board, SizeIs(20));

  LeaderboardQuery top3;
  top3.top = 3;
  ASSERT_OK_AND_ASSIGN(board, store_->Leaderboard(team, top3));
  EXPECT_THAT(IdsOf(board),
              ElementsAre(f1_sweep.run_ids[21], f1_sweep.run_ids[20],
                          f1_sweep.run_ids[19]));

  LeaderboardQuery by_metric;
  by_metric.metric = "val_loss";
  ASSERT_OK_AND_ASSIGN(board, store_->Leaderboard(team, by_metric));
  EXPECT_THAT(IdsOf(board), ElementsAre(loss_run.lease.run_id()));

  LeaderboardQuery by_sweep;
  by_sweep.sweep_id = loss_sweep.sweep_id;
  ASSERT_OK_AND_ASSIGN(board, store_->Leaderboard(team, by_sweep));
  EXPECT_THAT(IdsOf(board), ElementsAre(loss_run.lease.run_id()));

  by_sweep.sweep_id = f1_sweep.sweep_id;
  by_sweep.metric = "val_loss";
  ASSERT_OK_AND_ASSIGN(board, store_->Leaderboard(team, by_sweep));
  EXPECT_THAT(board, IsEmpty());
}

TEST_P(StoreContractTest, LeaderboardIsEmptyWithoutFiniteValues) {
  int64_t team = AddTeam(*store_, "vision");
  AddWorker(*store_, team, "gpu1");
  AddSweep(*store_, team, MakeSweep(2));
  LeaseGrant a = Lease(*store_, team, "gpu1");
  Report(*store_, team, a.lease, 1, {Point("val_f1", 1, kNaN)});
  ASSERT_OK_AND_ASSIGN(std::vector<v1::LeaderboardEntry> board,
                       store_->Leaderboard(team, LeaderboardQuery{}));
  EXPECT_THAT(board, IsEmpty());
}

}  // namespace
}  // namespace sweepq::store
