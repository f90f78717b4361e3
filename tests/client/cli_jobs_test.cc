// `sweepq predict`, `submission`, `promote` and `gradcam`: the pure pieces
// of client/jobs.h, then the real `sweepq` binary against a real
// sweepq-server on loopback. The test plays the worker through the
// WorkerService API: training runs finish with val_f1 curves, and the jobs
// the CLI queues are leased, report progress and metrics, upload their
// files (submission.csv, gradcam.png) and finish.
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/jobs.h"
#include "client/json.h"
#include "common/crypto.h"
#include "common/sweep.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "sweepq/v1/coordinator.grpc.pb.h"
#include "tests/client/cli_runner.h"
#include "tests/client/fake_worker.h"
#include "tests/testing/grpc_context.h"
#include "tests/testing/server_process.h"
#include "tests/testing/temp_dir.h"

namespace sweepq {
namespace {

namespace v1 = ::sweepq::v1;
using client::JsonValue;
using google::protobuf::util::MessageDifferencer;
using testing::CliResult;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kCli = std::string(SWEEPQ_BINARY_DIR) + "/client/sweepq";
const std::string kUnset = "\x01unset";

// ---- Pure pieces ----

TEST(JobsTest, OneRunSweepYamlExpandsBackIntoTheTrainingConfig) {
  v1::RunConfig config;
  config.mutable_data()->set_dataset("mask");
  config.mutable_data()->set_split("full");
  config.mutable_data()->add_age_bounds(30);
  config.mutable_data()->add_age_bounds(58);
  config.mutable_data()->set_decode_cache_bytes(5'000'000'000ULL);
  config.mutable_model()->set_name("small_cnn");
  config.mutable_train()->set_epochs(7);
  config.mutable_optimizer()->set_lr(0.0003);
  config.mutable_augment()->set_hflip(0);  // optional: 0 is kept
  config.mutable_tta()->add_transforms("hflip");
  config.mutable_tta()->add_scales(1.1);
  config.set_seed(18'000'000'000'000'000'000ULL);
  config.set_name("full(\"12\") \u00e9");
  const std::string yaml =
      client::OneRunSweepYaml(config, "full(12)", "val_f1", v1::GOAL_MAXIMIZE,
                              {"data.split", "train.epochs", "loss.name"});
  absl::StatusOr<ExpandedSweep> sweep = ExpandSweepYaml(yaml, "job.yaml");
  ASSERT_TRUE(sweep.ok()) << sweep.status() << "\n" << yaml;
  EXPECT_EQ(sweep->name, "full(12)");
  EXPECT_EQ(sweep->metric, "val_f1");
  ASSERT_EQ(sweep->runs.size(), 1u);
  EXPECT_TRUE(MessageDifferencer::Equals(sweep->runs[0].config, config))
      << sweep->runs[0].config.DebugString() << "\n"
      << yaml;
  EXPECT_TRUE(sweep->runs[0].config.augment().has_hflip());
  // loss.name is not set, so it is not recorded.
  EXPECT_EQ(sweep->runs[0].params,
            (std::map<std::string, std::string>{{"data.split", "\"full\""},
                                                {"train.epochs", "7"}}));
}

TEST(JobsTest, OneRunSweepYamlOfAJobRecordsItsKindAndSources) {
  v1::RunConfig config;
  config.mutable_data()->set_dataset("mask");
  config.set_name("predict(12,13)");
  config.mutable_job()->set_kind("predict");
  config.mutable_job()->add_source_runs(12);
  config.mutable_job()->add_source_runs(13);
  config.mutable_job()->mutable_tta()->add_transforms("scale");
  config.mutable_job()->mutable_tta()->add_scales(0.9);
  const std::string yaml = client::OneRunSweepYaml(
      config, "predict(12,13)", "val_f1", v1::GOAL_MAXIMIZE,
      {client::kJobKindParam, client::kJobSourcesParam});
  absl::StatusOr<ExpandedSweep> sweep = ExpandSweepYaml(yaml, "job.yaml");
  ASSERT_TRUE(sweep.ok()) << sweep.status() << "\n" << yaml;
  ASSERT_EQ(sweep->runs.size(), 1u);
  EXPECT_TRUE(MessageDifferencer::Equals(sweep->runs[0].config, config))
      << sweep->runs[0].config.DebugString();
  EXPECT_EQ(sweep->runs[0].params,
            (std::map<std::string, std::string>{
                {"job.kind", "\"predict\""}, {"job.source_runs", "[12,13]"}}));

  v1::Run listed;
  listed.mutable_params()->insert(sweep->runs[0].params.begin(),
                                  sweep->runs[0].params.end());
  EXPECT_FALSE(client::IsPredictJobOf(listed, 12)) << "an ensemble";
  (*listed.mutable_params())["job.source_runs"] = "[12]";
  EXPECT_TRUE(client::IsPredictJobOf(listed, 12));
  EXPECT_FALSE(client::IsPredictJobOf(listed, 13));
  (*listed.mutable_params())["job.kind"] = "\"gradcam\"";
  EXPECT_FALSE(client::IsPredictJobOf(listed, 12));
  EXPECT_FALSE(client::IsPredictJobOf(v1::Run(), 12)) << "a training run";
}

TEST(JobsTest, LabelsNameTheKindAndTheSources) {
  EXPECT_EQ(client::JobLabel("predict", {12}), "predict(12)");
  EXPECT_EQ(client::JobLabel("predict", {12, 13}), "predict(12,13)");
  EXPECT_EQ(client::JobLabel("predict", {1, 2, 3, 4, 5, 6, 7, 8, 9}),
            "predict(1,2,3,4,5,6,+3)");
}

TEST(JobsTest, RunListAndTtaFlagsAreCheckedWithTheFlagNamed) {
  auto ids = client::ParseRunList("12, 13,14");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(12, 13, 14));
  EXPECT_THAT(client::ParseRunList("12,x").status().message(),
              HasSubstr("--runs must be run ids"));
  EXPECT_THAT(client::ParseRunList("12,12").status().message(),
              HasSubstr("--runs lists run 12 twice"));
  EXPECT_FALSE(client::ParseRunList("").ok());
  EXPECT_FALSE(client::ParseRunList("0").ok());

  auto tta = client::ParseTtaFlags("hflip,scale", "0.9, 1.1");
  ASSERT_TRUE(tta.ok()) << tta.status();
  EXPECT_THAT(tta->transforms(), ElementsAre("hflip", "scale"));
  EXPECT_THAT(tta->scales(), ElementsAre(0.9, 1.1));
  EXPECT_EQ(client::ParseTtaFlags("", "")->transforms_size(), 0);
  EXPECT_THAT(client::ParseTtaFlags("hflip,flip", "").status().message(),
              HasSubstr("got 'flip'"));
  EXPECT_THAT(client::ParseTtaFlags("hflip,hflip", "").status().message(),
              HasSubstr("twice"));
  EXPECT_THAT(client::ParseTtaFlags("hflip", "0.9").status().message(),
              HasSubstr("--scales goes with --tta scale"));
  EXPECT_THAT(client::ParseTtaFlags("scale", "0.9,-1").status().message(),
              HasSubstr("got '-1'"));
}

TEST(JobsTest, ClassesByNumberOrMaskTaskName) {
  v1::RunConfig config;
  config.mutable_data()->set_dataset("mask");
  client::RunClasses classes = client::ClassesOf(config);
  ASSERT_EQ(classes.count, 18u);
  ASSERT_EQ(classes.names.size(), 18u);
  EXPECT_EQ(classes.names[0], "wear/male/<30");
  EXPECT_EQ(*client::ParseClass("4", classes), 4u);
  EXPECT_EQ(*client::ParseClass("wear/female/<30", classes), 3u);
  EXPECT_EQ(*client::ParseClass("Normal/Female/>=60", classes), 17u);
  EXPECT_THAT(client::ParseClass("18", classes).status().message(),
              HasSubstr("out of range: the run has 18 classes (0-17)"));
  absl::Status typo = client::ParseClass("wear/male/<31", classes).status();
  EXPECT_THAT(typo.message(), HasSubstr("did you mean 'wear/male/<30' (0)?"));
  EXPECT_THAT(typo.message(), HasSubstr("17 normal/female/>=60"));

  config.mutable_data()->add_age_bounds(40);
  classes = client::ClassesOf(config);
  EXPECT_EQ(classes.count, 12u);
  EXPECT_EQ(*client::ParseClass("wear/male/>=40", classes), 1u);

  config.mutable_data()->set_layout("image_folder");
  config.mutable_model()->set_num_classes(5);
  classes = client::ClassesOf(config);
  EXPECT_EQ(classes.count, 5u);
  EXPECT_TRUE(classes.names.empty());
  EXPECT_EQ(*client::ParseClass("2", classes), 2u);
  EXPECT_THAT(client::ParseClass("cat", classes).status().message(),
              HasSubstr("have no names"));
}

TEST(JobsTest, FullDataConfigTrainsTheBestEpochsWithoutValidation) {
  v1::Run run;
  run.set_run_id(12);
  v1::RunConfig& config = *run.mutable_config();
  config.mutable_data()->set_dataset("mask");
  config.mutable_data()->set_split("kfold");
  config.mutable_data()->set_folds(5);
  config.mutable_data()->set_fold(2);
  config.mutable_data()->set_val_ratio(0.3);
  config.mutable_model()->set_name("resnet18");
  config.mutable_train()->set_epochs(30);
  config.mutable_early_stopping()->set_patience(4);
  config.set_name("mine");
  auto full = client::FullDataConfig(run, 9, "full(12)");
  ASSERT_TRUE(full.ok()) << full.status();
  v1::RunConfig expected = config;
  expected.mutable_data()->set_split("full");
  expected.mutable_data()->clear_folds();
  expected.mutable_data()->clear_fold();
  expected.mutable_data()->clear_val_ratio();
  expected.mutable_train()->set_epochs(9);
  expected.mutable_early_stopping()->set_patience(0);
  expected.set_name("full(12)");
  EXPECT_TRUE(MessageDifferencer::Equals(*full, expected))
      << full->DebugString();

  config.mutable_scheduler()->set_name("plateau");
  EXPECT_THAT(client::FullDataConfig(run, 9, "x").status().message(),
              HasSubstr("scheduler plateau"));
}

// ---- End to end ----

std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token,
                                         int seconds = 10) {
  return ::sweepq::testing::AuthorizedContext(token, seconds);
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

std::string LastLine(const std::string& text) {
  std::vector<std::string> lines = Lines(text);
  return lines.empty() ? "" : lines.back();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

using ::sweepq::testing::FakeWorker;

// The jobs tests' worker: both data sets, and a lease that waits for the
// CLI to queue the job.
FakeWorker::Options JobsWorker() {
  FakeWorker::Options options;
  options.slots = 4;
  options.datasets = {"mask", "cifar"};
  options.lease_wait_ms = 20'000;
  return options;
}

// Finishes a training run after one report per epoch of val_f1.
void Train(FakeWorker& worker, const v1::LeaseRef& lease,
           const std::vector<double>& f1, bool finish = true) {
  for (size_t e = 0; e < f1.size(); ++e) {
    worker.Report(
        lease, static_cast<int64_t>(e + 1),
        {{"train_loss", 1.0 / static_cast<double>(e + 1)}, {"val_f1", f1[e]}});
  }
  if (finish) worker.Finish(lease, v1::OUTCOME_SUCCEEDED);
}

constexpr char kOtherDataSweep[] = R"(name: cifar
method: grid
config:
  data: {dataset: cifar, layout: image_folder}
  model: {name: small_cnn, num_classes: 10}
  train: {epochs: 2}
)";

constexpr char kTrainSweep[] = R"(name: train
method: grid
metric: {name: val_f1, goal: maximize}
config:
  data: {dataset: mask}
  model: {name: small_cnn}
  train: {epochs: 3}
  early_stopping: {patience: 2}
parameters:
  optimizer.lr: {values: [0.003, 0.001, 0.0003]}
)";

// On a data set no worker serves: it stays queued.
constexpr char kLaterSweep[] = R"(name: later
method: grid
config:
  data: {dataset: faces}
  model: {name: small_cnn}
  train: {epochs: 3}
)";

// A server with: run D (cifar, SUCCEEDED, val_f1 0.3); runs A (best 0.8 at
// epoch 2), B (best 0.7 at epoch 2), both SUCCEEDED, and C (running, 0.75)
// of sweep "train" on mask; run Q queued on a data set the worker does not
// have, so that the next run the worker leases is the next job queued.
class CliJobsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string db = dir_.Join("sweepq.db");
    auto tokens = testing::CreateTeam(db, "jobs");
    ASSERT_TRUE(tokens.ok()) << tokens.status();
    member_ = tokens->member;
    server_ = std::make_unique<testing::ServerProcess>(std::vector<std::string>{
        "--db=" + db, "--artifacts=" + dir_.Join("artifacts"),
        "--lease_ttl_ms=600000"});
    ASSERT_NE(server_->port(), 0) << "sweepq-server did not start";
    auto channel = grpc::CreateChannel(server_->address(),
                                       grpc::InsecureChannelCredentials());
    team_ = v1::TeamService::NewStub(channel);
    worker_ = std::make_unique<FakeWorker>(server_->address(), tokens->worker,
                                           JobsWorker());

    int64_t other = SubmitDirect(kOtherDataSweep);
    train_sweep_ = SubmitDirect(kTrainSweep);
    SubmitDirect(kLaterSweep);
    ASSERT_GT(train_sweep_, 0);

    v1::LeaseResponse d = worker_->Lease();
    ASSERT_EQ(d.run().sweep_id(), other);
    d_ = d.run().run_id();
    Train(*worker_, d.lease(), {0.3});
    const std::vector<std::vector<double>> curves = {
        {0.5, 0.8, 0.7}, {0.6, 0.7}, {0.75}};
    std::vector<int64_t> ids;
    for (size_t i = 0; i < curves.size(); ++i) {
      v1::LeaseResponse leased = worker_->Lease();
      ASSERT_EQ(leased.run().sweep_id(), train_sweep_);
      ids.push_back(leased.run().run_id());
      Train(*worker_, leased.lease(), curves[i], /*finish=*/i < 2);
    }
    a_ = ids[0];
    b_ = ids[1];
    c_ = ids[2];
    v1::ListRunsRequest list;
    list.set_state(v1::RUN_STATE_QUEUED);
    v1::ListRunsResponse queued = ListRuns(list);
    ASSERT_EQ(queued.runs_size(), 1);
    q_ = queued.runs(0).run_id();
  }

  int64_t SubmitDirect(const std::string& yaml) {
    v1::SubmitSweepRequest request;
    request.set_spec_yaml(yaml);
    request.set_idempotency_key(absl::StrCat("test-", Sha256Hex(yaml)));
    v1::SubmitSweepResponse response;
    grpc::Status status =
        team_->SubmitSweep(Ctx(member_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.sweep_id();
  }

  v1::ListRunsResponse ListRuns(const v1::ListRunsRequest& request) {
    v1::ListRunsResponse response;
    grpc::Status status =
        team_->ListRuns(Ctx(member_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  int RunCount() { return ListRuns(v1::ListRunsRequest()).runs_size(); }

  v1::Run GetRun(int64_t id) {
    v1::GetRunRequest request;
    request.set_run_id(id);
    v1::Run run;
    grpc::Status status = team_->GetRun(Ctx(member_).get(), request, &run);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return run;
  }

  // Runs `sweepq ARGS` logged in through the environment. Commands that
  // wait for a job run under timeout(1), so a broken test cannot hang.
  CliResult Cli(std::vector<std::string> args, bool bounded = false) {
    std::map<std::string, std::string> env = {
        {"XDG_CONFIG_HOME", dir_.Join("config")},
        {"SWEEPQ_SERVER", server_->address()},
        {"SWEEPQ_TOKEN", member_},
        {"SWEEPQ_TEAM", kUnset},
        {"SWEEPQ_TLS_CA", kUnset}};
    args.insert(args.begin(), kCli);
    if (bounded) args.insert(args.begin(), {"/usr/bin/timeout", "60"});
    return testing::RunProcess(args, env);
  }

  // Runs the CLI on its own thread while `work` plays the worker.
  CliResult CliWhile(std::vector<std::string> args,
                     const std::function<void()>& work) {
    CliResult result;
    std::thread cli([&] { result = Cli(args, /*bounded=*/true); });
    work();
    cli.join();
    return result;
  }

  // Queues a job with `args` and returns its id (the last line).
  int64_t Queue(const std::vector<std::string>& args) {
    CliResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    int64_t id = 0;
    EXPECT_TRUE(absl::SimpleAtoi(LastLine(r.out), &id)) << r.out;
    return id;
  }

  // Leases job `id` and finishes it, with `files` uploaded.
  void RunJob(int64_t id, const std::map<std::string, std::string>& files) {
    v1::LeaseResponse leased = worker_->Lease();
    ASSERT_EQ(leased.run().run_id(), id);
    worker_->Report(leased.lease(), 1, {{"pred_f1", 0.66}, {"pred_acc", 0.7}});
    for (const auto& [name, data] : files) {
      worker_->Upload(leased.lease(), name, data);
    }
    worker_->Finish(leased.lease(), v1::OUTCOME_SUCCEEDED);
  }

  std::string Id(int64_t id) { return absl::StrCat(id); }

  testing::TempDir dir_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<v1::TeamService::Stub> team_;
  std::unique_ptr<FakeWorker> worker_;
  std::string member_;
  int64_t train_sweep_ = 0;
  int64_t a_ = 0, b_ = 0, c_ = 0, d_ = 0, q_ = 0;
};

TEST_F(CliJobsTest, PredictQueuesAJobThatListingsShowAndBoardsLeaveOut) {
  CliResult r =
      Cli({"predict", Id(a_), "--tta", "hflip,scale", "--scales", "0.9,1.1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int64_t job = 0;
  ASSERT_TRUE(absl::SimpleAtoi(LastLine(r.out), &job)) << r.out;
  EXPECT_THAT(r.out, HasSubstr(absl::StrCat("queued predict job ", job)));
  EXPECT_THAT(r.out, HasSubstr("eval/info.csv -> submission.csv"));
  EXPECT_THAT(r.out, HasSubstr("sweepq submission " + Id(job)));

  v1::Run run = GetRun(job);
  EXPECT_EQ(run.state(), v1::RUN_STATE_QUEUED);
  EXPECT_EQ(run.dataset(), "mask");
  const v1::RunConfig& config = run.config();
  EXPECT_EQ(config.data().dataset(), "mask");
  EXPECT_EQ(config.name(), "predict(" + Id(a_) + ")");
  EXPECT_EQ(config.job().kind(), "predict");
  EXPECT_THAT(config.job().source_runs(), ElementsAre(a_));
  EXPECT_THAT(config.job().tta().transforms(), ElementsAre("hflip", "scale"));
  EXPECT_THAT(config.job().tta().scales(), ElementsAre(0.9, 1.1));
  EXPECT_EQ(config.job().split(), "");
  EXPECT_FALSE(config.has_model());

  // Listings say what it is.
  r = Cli({"runs"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("job.kind"));
  EXPECT_THAT(r.out, HasSubstr("predict"));
  r = Cli({"runs", "--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto runs = JsonValue::Parse(r.out);
  ASSERT_TRUE(runs.ok()) << runs.status();
  bool listed = false;
  for (const JsonValue& item : runs->items()) {
    if (item.Find("run_id")->number_text() != Id(job)) continue;
    listed = true;
    EXPECT_EQ(item.Find("params")->Find("job.kind")->string_value(), "predict");
    EXPECT_EQ(item.Find("params")->Find("job.source_runs")->Dump(0),
              "[" + Id(a_) + "]");
  }
  EXPECT_TRUE(listed) << r.out;
  r = Cli({"show", Id(job)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("job.kind=predict"));
  EXPECT_THAT(r.out, HasSubstr("kind: predict"));

  // Reporting its scores does not put it on any board.
  RunJob(job, {});
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"board", "--format", "json"},
        {"board", "--sweep", Id(run.sweep_id()), "--format", "json"}}) {
    r = Cli(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto board = JsonValue::Parse(r.out);
    ASSERT_TRUE(board.ok()) << board.status();
    for (const JsonValue& entry : board->items()) {
      EXPECT_NE(entry.Find("run_id")->number_text(), Id(job)) << r.out;
    }
  }
  EXPECT_FALSE(GetRun(job).has_best());

  // --split val, as JSON.
  r = Cli({"predict", Id(b_), "--split", "val", "--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto out = JsonValue::Parse(r.out);
  ASSERT_TRUE(out.ok()) << out.status() << r.out;
  EXPECT_EQ(out->Find("kind")->string_value(), "predict");
  EXPECT_EQ(out->Find("split")->string_value(), "val");
  EXPECT_EQ(out->Find("dataset")->string_value(), "mask");
  EXPECT_EQ(out->Find("source_runs")->Dump(0), "[" + Id(b_) + "]");
  EXPECT_TRUE(out->Find("tta")->is_null());
  EXPECT_EQ(out->Find("state")->string_value(), "queued");
  int64_t val_job = 0;
  ASSERT_TRUE(absl::SimpleAtoi(out->Find("job_id")->number_text(), &val_job));
  EXPECT_EQ(GetRun(val_job).config().job().split(), "val");
}

TEST_F(CliJobsTest, EnsemblesOfListedRunsAndOfTheTopOfABoard) {
  int64_t job = Queue({"predict", "--runs", Id(a_) + "," + Id(b_)});
  EXPECT_THAT(GetRun(job).config().job().source_runs(), ElementsAre(a_, b_));
  EXPECT_EQ(GetRun(job).config().name(),
            "predict(" + Id(a_) + "," + Id(b_) + ")");

  // C (0.75) ranks between A (0.8) and B (0.7) but is still running.
  CliResult r = Cli({"predict", "--top", "2", "--sweep", Id(train_sweep_)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("skipped run " + Id(c_) + " (rank 2"));
  EXPECT_THAT(r.out, HasSubstr("the top 2 of sweep " + Id(train_sweep_) +
                               "'s board by val_f1"));
  int64_t top = 0;
  ASSERT_TRUE(absl::SimpleAtoi(LastLine(r.out), &top)) << r.out;
  EXPECT_THAT(GetRun(top).config().job().source_runs(), ElementsAre(a_, b_));

  // The team board ranks D (cifar, 0.3) fourth.
  job = Queue({"predict", "--top", "2"});
  EXPECT_THAT(GetRun(job).config().job().source_runs(), ElementsAre(a_, b_));

  const int before = RunCount();
  r = Cli({"predict", "--top", "3"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err,
              HasSubstr("different data sets: mask (runs " + Id(a_) + ", " +
                        Id(b_) + "), cifar (run " + Id(d_) + ")"));
  EXPECT_THAT(r.err, HasSubstr("pass --sweep S"));
  r = Cli({"predict", "--top", "5", "--sweep", Id(train_sweep_)});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("has only 2 SUCCEEDED runs"));
  EXPECT_THAT(r.err, HasSubstr("--top 2"));
  EXPECT_EQ(RunCount(), before) << "nothing queued";
}

TEST_F(CliJobsTest, PredictRefusesWhatNoJobCanReadBeforeQueueing) {
  int64_t job = Queue({"predict", Id(a_)});
  const int before = RunCount();
  CliResult r = Cli({"predict", "999999"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_THAT(r.err, HasSubstr("run 999999 not found"));

  r = Cli({"predict", Id(q_)});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("run " + Id(q_) + " is queued"));
  EXPECT_THAT(r.err, HasSubstr("needs a SUCCEEDED run"));
  EXPECT_THAT(r.err, HasSubstr("sweepq watch " + Id(q_)));
  r = Cli({"predict", "--runs", Id(a_) + "," + Id(c_)});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("run " + Id(c_) + " is running"));

  r = Cli({"predict", "--runs", Id(a_) + "," + Id(d_)});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("different data sets: mask (run " + Id(a_) +
                               "), cifar (run " + Id(d_) + ")"));

  r = Cli({"predict", Id(job)});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("is a predict job, not a training run"));

  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"predict"},
        {"predict", Id(a_), "--runs", Id(b_)},
        {"predict", Id(a_), "--sweep", Id(train_sweep_)},
        {"predict", Id(a_), "--tta", "flip"},
        {"predict", Id(a_), "--scales", "0.9"},
        {"predict", Id(a_), "--split", "test"},
        {"predict", "--runs", Id(a_) + "," + Id(a_)},
        {"predict", "twelve"}}) {
    r = Cli(args);
    EXPECT_EQ(r.exit_code, 2) << absl::StrJoin(args, " ") << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("sweepq predict")) << r.err;
  }
  EXPECT_EQ(RunCount(), before) << "nothing queued";
}

TEST_F(CliJobsTest, PredictWaitFollowsTheJobAndExitsByItsOutcome) {
  int64_t job = 0;
  CliResult r = CliWhile({"predict", Id(a_), "--wait"}, [&] {
    v1::LeaseResponse leased = worker_->Lease();
    job = leased.run().run_id();
    EXPECT_EQ(leased.run().config().job().kind(), "predict");
    worker_->Report(
        leased.lease(), 0, {},
        {{"progress", R"({"event":"progress","done":5,"total":10})"}});
    worker_->Report(leased.lease(), 1, {{"pred_f1", 0.66}, {"pred_acc", 0.7}});
    worker_->Finish(leased.lease(), v1::OUTCOME_SUCCEEDED);
  });
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(LastLine(r.out), Id(job)) << r.out;
  EXPECT_THAT(r.err, HasSubstr("watching predict job " + Id(job)));
  EXPECT_THAT(r.err, HasSubstr("progress 5/10"));
  EXPECT_THAT(r.err, HasSubstr("result  pred_acc 0.7000  pred_f1 0.6600"));
  EXPECT_THAT(r.err, HasSubstr("run " + Id(job) + " succeeded"));

  r = CliWhile({"predict", Id(b_), "--wait"}, [&] {
    v1::LeaseResponse leased = worker_->Lease();
    job = leased.run().run_id();
    worker_->Finish(leased.lease(), v1::OUTCOME_FAILED, "CUDA out of memory");
  });
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(LastLine(r.out), Id(job)) << r.out;
  EXPECT_THAT(r.err, HasSubstr("failed"));
  EXPECT_THAT(r.err, HasSubstr("CUDA out of memory"));
}

TEST_F(CliJobsTest, SubmissionOfAJobOrOfTheTrainingRunItWasMadeFrom) {
  const std::string first = "ImageID,ans\n0.jpg,3\n1.jpg,17\n2.jpg,0\n";
  const std::string ensemble = "ImageID,ans\n0.jpg,4\n1.jpg,4\n2.jpg,4\n";
  int64_t job = Queue({"predict", Id(a_)});
  RunJob(job, {{"submission.csv", first}, {"probabilities.csv", "p\n"}});
  // A newer ensemble over A is not "A's" job.
  int64_t both = Queue({"predict", "--runs", Id(a_) + "," + Id(b_)});
  RunJob(both, {{"submission.csv", ensemble}});

  const std::string path = dir_.Join("sub.csv");
  CliResult r = Cli({"submission", Id(job), "-o", path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(path), first);
  EXPECT_THAT(r.out, HasSubstr("predict job " + Id(job) + " (run " + Id(a_) +
                               "): 3 rows"));
  EXPECT_EQ(LastLine(r.out), path);

  r = Cli({"submission", Id(a_), "-o", path});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr(path + " exists"));
  EXPECT_THAT(r.err, HasSubstr("--force"));
  r = Cli({"submission", Id(a_), "-o", path, "--force", "--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto out = JsonValue::Parse(r.out);
  ASSERT_TRUE(out.ok()) << out.status() << r.out;
  EXPECT_EQ(out->Find("job_id")->number_text(), Id(job));
  EXPECT_EQ(out->Find("rows")->number_text(), "3");
  EXPECT_EQ(out->Find("path")->string_value(), path);
  EXPECT_EQ(out->Find("sha256")->string_value(), Sha256Hex(first));
  EXPECT_EQ(ReadFile(path), first);

  const std::string dir = dir_.Join("subs");
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  r = Cli({"submission", Id(both), "-o", dir});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(dir + "/submission.csv"), ensemble);
  EXPECT_THAT(r.out, HasSubstr("(ensemble of runs " + Id(a_) + ", " + Id(b_)));

  // B has no job of its own yet; then one that is still queued.
  r = Cli({"submission", Id(b_), "-o", dir_.Join("b.csv")});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_THAT(r.err, HasSubstr("run " + Id(b_) +
                               " has no finished predict "
                               "job of its own"));
  EXPECT_THAT(r.err, HasSubstr("sweepq predict " + Id(b_) + " --wait"));
  int64_t pending = Queue({"predict", Id(b_)});
  r = Cli({"submission", Id(b_), "-o", dir_.Join("b.csv")});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("predict job " + Id(pending) + " is queued"));
  EXPECT_THAT(r.err, HasSubstr("sweepq watch " + Id(pending)));
  r = Cli({"submission", Id(pending), "-o", dir_.Join("b.csv")});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("wait for it: sweepq watch " + Id(pending)));
}

TEST_F(CliJobsTest, PromoteQueuesTheConfigOnAllDataForTheBestEpoch) {
  CliResult r = Cli({"promote", Id(a_), "--full"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int64_t full = 0;
  ASSERT_TRUE(absl::SimpleAtoi(LastLine(r.out), &full)) << r.out;
  EXPECT_THAT(r.out, HasSubstr("for 2 epochs (its best val_f1 0.8000 was at "
                               "epoch 2), early stopping off"));
  v1::Run source = GetRun(a_);
  v1::Run run = GetRun(full);
  v1::RunConfig expected = source.config();
  expected.mutable_data()->set_split("full");
  expected.mutable_train()->set_epochs(2);
  expected.mutable_early_stopping()->set_patience(0);
  expected.set_name("full(" + Id(a_) + ")");
  EXPECT_TRUE(MessageDifferencer::Equals(run.config(), expected))
      << run.config().DebugString();
  EXPECT_DOUBLE_EQ(run.config().optimizer().lr(),
                   source.config().optimizer().lr());
  EXPECT_EQ(run.params().at("data.split"), "\"full\"");
  EXPECT_EQ(run.params().at("train.epochs"), "2");
  EXPECT_EQ(run.metric(), "val_f1");

  // The promoted run trains without validation: no best value.
  v1::LeaseResponse leased = worker_->Lease();
  ASSERT_EQ(leased.run().run_id(), full);
  worker_->Report(leased.lease(), 1, {{"train_loss", 0.5}});
  worker_->Finish(leased.lease(), v1::OUTCOME_SUCCEEDED);
  r = Cli({"promote", Id(full), "--full"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("has no best val_f1"));
  EXPECT_THAT(r.err, HasSubstr("pass --epochs N"));
  r = Cli({"promote", Id(full), "--full", "--epochs", "4", "--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto out = JsonValue::Parse(r.out);
  ASSERT_TRUE(out.ok()) << out.status() << r.out;
  EXPECT_EQ(out->Find("epochs")->number_text(), "4");
  EXPECT_EQ(out->Find("source_run")->number_text(), Id(full));
  int64_t again = 0;
  ASSERT_TRUE(absl::SimpleAtoi(out->Find("run_id")->number_text(), &again));
  EXPECT_EQ(GetRun(again).config().train().epochs(), 4u);

  const int before = RunCount();
  r = Cli({"promote", Id(a_)});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("say --full"));
  r = Cli({"promote", Id(q_), "--full"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("is queued"));
  EXPECT_EQ(RunCount(), before);
}

TEST_F(CliJobsTest, GradcamWaitsForItsJobAndWritesThePicture) {
  std::string png = "\x89PNG\r\n\x1a\n";
  for (int i = 0; i < 5000; ++i) png.push_back(static_cast<char>(i * 31));
  const std::string path = dir_.Join("cam.png");
  v1::JobConfig seen;
  CliResult r =
      CliWhile({"gradcam", Id(a_), "--class", "wear/female/<30", "--images",
                "8", "-o", path, "--format", "json"},
               [&] {
                 v1::LeaseResponse leased = worker_->Lease();
                 seen = leased.run().config().job();
                 worker_->Upload(leased.lease(), "gradcam.png", png);
                 worker_->Finish(leased.lease(), v1::OUTCOME_SUCCEEDED);
               });
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(seen.kind(), "gradcam");
  EXPECT_THAT(seen.source_runs(), ElementsAre(a_));
  EXPECT_EQ(seen.gradcam_class(), 3u);
  EXPECT_EQ(seen.gradcam_images(), 8u);
  EXPECT_EQ(ReadFile(path), png);
  EXPECT_THAT(r.err, HasSubstr("queued gradcam job"));
  auto out = JsonValue::Parse(r.out);
  ASSERT_TRUE(out.ok()) << out.status() << r.out;
  EXPECT_EQ(out->Find("class")->number_text(), "3");
  EXPECT_EQ(out->Find("class_name")->string_value(), "wear/female/<30");
  EXPECT_EQ(out->Find("path")->string_value(), path);
  EXPECT_EQ(out->Find("run_id")->number_text(), Id(a_));

  // Refused before anything is queued.
  const int before = RunCount();
  r = Cli({"gradcam", Id(a_), "--class", "4", "-o", path});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr(path + " exists"));
  r = Cli({"gradcam", Id(a_), "--class", "wear/male/<31", "-o",
           dir_.Join("x.png")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("did you mean 'wear/male/<30' (0)?"));
  r = Cli({"gradcam", Id(a_), "--class", "18", "-o", dir_.Join("x.png")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("(0-17)"));
  r = Cli({"gradcam", Id(a_), "-o", dir_.Join("x.png")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--class C is required"));
  r = Cli({"gradcam", Id(d_), "--class", "cat", "-o", dir_.Join("x.png")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("give a class number (0-9)"));
  r = Cli({"gradcam", Id(a_), "--class", "4", "-o",
           dir_.Join("no/such/dir/x.png")});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("does not exist"));
  EXPECT_EQ(RunCount(), before);

  // A failed job: exit 1 with its error, nothing written.
  const std::string failed_path = dir_.Join("failed.png");
  r = CliWhile({"gradcam", Id(b_), "--class", "4", "-o", failed_path}, [&] {
    v1::LeaseResponse leased = worker_->Lease();
    worker_->Finish(leased.lease(), v1::OUTCOME_FAILED,
                    "no validation image of class 4");
  });
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("no validation image of class 4"));
  EXPECT_EQ(ReadFile(failed_path), "");
}

TEST_F(CliJobsTest, EveryJobCommandHasHelpWithAnExample) {
  for (const char* command : {"predict", "submission", "promote", "gradcam"}) {
    CliResult r = Cli({command, "--help"});
    EXPECT_EQ(r.exit_code, 0) << command << ": " << r.err;
    EXPECT_THAT(r.out, HasSubstr(absl::StrCat("sweepq ", command, " ")));
    EXPECT_THAT(r.out, HasSubstr("Example")) << r.out;
  }
  CliResult r = Cli({"--help"});
  for (const char* command : {"predict", "submission", "promote", "gradcam"}) {
    EXPECT_THAT(r.out, HasSubstr(absl::StrCat("  ", command, " "))) << r.out;
  }
}

}  // namespace
}  // namespace sweepq
