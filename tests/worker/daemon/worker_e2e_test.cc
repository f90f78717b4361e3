// The real sweepq-worker against a real sweepq-server on loopback, with
// fake-sweepq-train as the child (fake_train.cc: the contract of
// docs/train-events.md, plus fault injection), real files and short lease
// TTLs. Conditions are awaited by polling the coordinator with a deadline.
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/server_process.h"
#include "tests/testing/temp_dir.h"
#include "tests/worker/daemon/harness.h"
#include "tests/worker/daemon/worker_fixture.h"

namespace sweepq {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::Alive;
using testing::TeamClient;
using testing::WaitFor;
using testing::WorkerProcess;

TEST_F(WorkerE2eTest, SweepRunsToCompletionRanksOnTheBoardAndArtifactsMatch) {
  StartServer({"--lease-ttl-ms=5000"});
  auto sweep = team_->Submit(SweepYaml(3, {"0.001", "0.002", "0.003"}));
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  auto worker = StartWorker("w1", {"--slots=2", "--keep-work-dirs"});
  for (int64_t id : sweep->run_ids()) {
    AwaitState(id, v1::RUN_STATE_SUCCEEDED, absl::Seconds(60), worker.get());
  }

  auto board = team_->Board(sweep->sweep_id());
  ASSERT_TRUE(board.ok()) << board.status();
  ASSERT_EQ(board->size(), 3u);
  std::set<int64_t> ranked;
  for (size_t i = 0; i < board->size(); ++i) {
    ranked.insert((*board)[i].run().run_id());
    if (i > 0) {
      EXPECT_GE((*board)[i - 1].run().best_value(), (*board)[i].run().best_value());
    }
  }
  EXPECT_EQ(ranked, std::set<int64_t>(sweep->run_ids().begin(),
                                      sweep->run_ids().end()));

  for (int64_t id : sweep->run_ids()) {
    SCOPED_TRACE(absl::StrCat("run ", id));
    const std::vector<v1::WatchRunResponse> history = History(id);
    // Every epoch metric at step = epoch, step_loss at the global step,
    // each exactly once.
    auto counts = PointCounts(history);
    double best = -1;
    for (int epoch = 1; epoch <= 3; ++epoch) {
      EXPECT_EQ((counts[{1, "val_f1", epoch}]), 1) << epoch;
      EXPECT_EQ((counts[{1, "train_loss", epoch}]), 1) << epoch;
    }
    for (int step = 1; step <= 6; ++step) {
      EXPECT_EQ((counts[{1, "step_loss", step}]), 1) << step;
    }
    for (const auto& item : history) {
      if (item.has_metric() && item.metric().name() == "val_f1") {
        best = std::max(best, item.metric().value());
      }
    }
    EXPECT_DOUBLE_EQ(Run(id).best_value(), best);
    EXPECT_EQ(Events(history, "start").size(), 1u);
    EXPECT_EQ(Events(history, "epoch").size(), 3u);
    EXPECT_EQ(Events(history, "summary").size(), 1u);
    // A CPU slot hides the GPUs; the child never sees the worker token.
    EXPECT_THAT(Events(history, "start")[0].payload_json(),
                HasSubstr("\"visible_devices\":\"\""));
    EXPECT_THAT(Events(history, "start")[0].payload_json(),
                HasSubstr("\"token_visible\":false"));

    auto artifacts = team_->Artifacts(id);
    ASSERT_TRUE(artifacts.ok()) << artifacts.status();
    std::set<std::string> names;
    for (const auto& a : *artifacts) names.insert(a.name());
    EXPECT_EQ(names, (std::set<std::string>{"best.ckpt", "config.json",
                                            "confusion.csv", "confusion.png",
                                            "last.ckpt", "metrics.csv",
                                            "notes.txt"}));
    const std::string out =
        absl::StrCat(WorkDir("w1"), "/runs/run-", id, "/attempt-1/out/");
    for (const std::string& name : names) {
      auto data = team_->Download(id, name);
      ASSERT_TRUE(data.ok()) << name << ": " << data.status();
      EXPECT_TRUE(*data == ReadFile(out + name)) << name;
    }
  }

  worker->Signal(SIGTERM);
  EXPECT_EQ(worker->Wait(), 0);
  EXPECT_TRUE(worker->LogContains("draining"));
  EXPECT_TRUE(fs::is_empty(WorkDir("w1") + "/spool"));
}

// A slot's next run comes with the answer to its finish (lease_next), a
// message on the attempt's event stream: no call between runs, and each
// run is still leased once.
TEST_F(WorkerE2eTest, NextRunComesWithTheAnswerToTheFinish) {
  StartServer({"--lease-ttl-ms=5000"});
  auto sweep = team_->Submit(SweepYaml(2, {"0.001", "0.002", "0.003"}));
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  ASSERT_EQ(sweep->run_ids_size(), 3);
  auto worker = StartWorker("w1", {});
  for (int64_t id : sweep->run_ids()) {
    AwaitState(id, v1::RUN_STATE_SUCCEEDED, absl::Seconds(60), worker.get());
  }
  // Runs are leased oldest first: the first by Lease, the others by the
  // finish of the one before.
  EXPECT_FALSE(worker->LogContains(
      absl::StrCat("the answer leased run ", sweep->run_ids(0), " next")));
  for (int i = 1; i < 3; ++i) {
    EXPECT_TRUE(worker->LogContains(
        absl::StrCat("the answer leased run ", sweep->run_ids(i), " next")))
        << i;
  }
  EXPECT_TRUE(worker->LogContains(
      "finished OUTCOME_SUCCEEDED on the event stream -> RUN_STATE_SUCCEEDED"))
      << worker->Log();
  EXPECT_FALSE(worker->LogContains("by FinishRun"));
  for (int64_t id : sweep->run_ids()) {
    const v1::Run run = Run(id);
    ASSERT_EQ(run.attempts_size(), 1) << id;
    EXPECT_EQ(run.attempts(0).worker_id(), "w1");
  }
  worker->Signal(SIGTERM);
  EXPECT_EQ(worker->Wait(), 0);
}

TEST_F(WorkerE2eTest, GpuSlotGetsItsDeviceAndFinishedRunsLeaveNoWorkDir) {
  StartServer({"--lease-ttl-ms=5000"});
  auto sweep = team_->Submit(SweepYaml(2, {"0.001"}));
  ASSERT_TRUE(sweep.ok());
  auto worker = StartWorker("w1", {"--gpus=3"});
  const int64_t id = sweep->run_ids(0);
  AwaitState(id, v1::RUN_STATE_SUCCEEDED, absl::Seconds(60), worker.get());
  auto start = Events(History(id), "start");
  ASSERT_EQ(start.size(), 1u);
  EXPECT_THAT(start[0].payload_json(), HasSubstr("\"visible_devices\":\"3\""));
  EXPECT_TRUE(WaitFor(
      [&] { return !fs::exists(absl::StrCat(WorkDir("w1"), "/runs/run-", id)); },
      absl::Seconds(5)));
  auto workers = team_->Workers();
  ASSERT_TRUE(workers.ok());
  ASSERT_EQ(workers->size(), 1u);
  EXPECT_EQ((*workers)[0].slots(), 1u);
  EXPECT_EQ((*workers)[0].datasets(0), "mask");
  EXPECT_THAT((*workers)[0].version(), HasSubstr("sweepq-worker"));
}

// A job over two finished runs: the daemon fetches each source's best.ckpt
// (the coordinator lets the job's lease read exactly those) and passes them
// in order; the job's `metrics` event becomes points; its files upload.
TEST_F(WorkerE2eTest, JobFetchesItsSourcesBestModelsAndUploadsItsFiles) {
  StartServer({"--lease-ttl-ms=5000"});
  auto sweep = team_->Submit(SweepYaml(3, {"0.001", "0.002"}));
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  auto worker = StartWorker("w1", {"--keep-work-dirs"});
  for (int64_t id : sweep->run_ids()) {
    AwaitState(id, v1::RUN_STATE_SUCCEEDED, absl::Seconds(60), worker.get());
  }
  const int64_t a = sweep->run_ids(0), b = sweep->run_ids(1);
  auto job = team_->Submit(absl::StrCat(
      "method: grid\nmetric: {name: val_f1, goal: maximize}\nconfig:\n"
      "  data: {dataset: mask}\n  job: {kind: predict, source_runs: [", b,
      ", ", a, "]}\n"));
  ASSERT_TRUE(job.ok()) << job.status();
  const int64_t id = job->run_ids(0);
  AwaitState(id, v1::RUN_STATE_SUCCEEDED, absl::Seconds(60), worker.get());

  auto first_line = [](const std::string& data) {
    return data.substr(0, data.find('\n'));
  };
  auto best_b = team_->Download(b, "best.ckpt");
  auto best_a = team_->Download(a, "best.ckpt");
  ASSERT_TRUE(best_a.ok() && best_b.ok());
  auto submission = team_->Download(id, "submission.csv");
  ASSERT_TRUE(submission.ok()) << submission.status();
  EXPECT_EQ(*submission, absl::StrCat("source,first_line\n", b, ",",
                                      first_line(*best_b), "\n", a, ",",
                                      first_line(*best_a), "\n"));
  auto counts = PointCounts(History(id));
  EXPECT_EQ((counts[{1, "pred_f1", 1}]), 1);
  // The job has no val_f1: it never ranks on the board.
  auto board = team_->Board(job->sweep_id());
  ASSERT_TRUE(board.ok());
  EXPECT_TRUE(board->empty());
}

TEST_F(WorkerE2eTest, KilledChildIsRetriedAndResumesFromItsUploadedCheckpoint) {
  StartServer({"--lease-ttl-ms=5000"});
  auto sweep = team_->Submit(SweepYaml(6, {"0.001"}));
  ASSERT_TRUE(sweep.ok());
  const int64_t id = sweep->run_ids(0);
  auto worker = StartWorker("w1", {}, {"FAKE_TRAIN_EPOCH_MS=250"});
  // Wait for a checkpoint of epoch 2 or later on the coordinator.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto ckpt = team_->Download(id, "last.ckpt");
        return ckpt.ok() && ckpt->rfind("FAKECKPT epoch=", 0) == 0 &&
               std::stoi(ckpt->substr(15)) >= 2;
      },
      absl::Seconds(30)))
      << worker->Log();
  auto children = worker->Children();
  ASSERT_EQ(children.size(), 1u);
  ASSERT_EQ(kill(children[0], SIGKILL), 0);

  AwaitState(id, v1::RUN_STATE_SUCCEEDED, absl::Seconds(60), worker.get());
  v1::Run run = Run(id);
  EXPECT_EQ(run.attempt(), 2u);
  ASSERT_EQ(run.attempts_size(), 2);
  EXPECT_EQ(run.attempts(0).outcome(), v1::RUN_STATE_FAILED);
  EXPECT_THAT(run.attempts(0).reason(), HasSubstr("signal 9"));
  EXPECT_THAT(run.attempts(0).reason(), HasSubstr("starting at epoch 1 of 6"));

  const auto history = History(id);
  int64_t resumed_at = -1;
  for (const auto& start : Events(history, "start")) {
    if (start.attempt() == 2) resumed_at = IntField(start.payload_json(), "start_epoch");
  }
  EXPECT_GT(resumed_at, 1);
  // The history is continuous: every epoch has a val_f1, the second
  // attempt's first one is the resumed epoch.
  std::set<int64_t> epochs;
  int64_t first_of_second = 1000;
  for (const auto& [key, count] : PointCounts(history)) {
    const auto& [attempt, name, step] = key;
    EXPECT_EQ(count, 1);
    if (name != "val_f1") continue;
    epochs.insert(step);
    if (attempt == 2) first_of_second = std::min(first_of_second, step);
  }
  EXPECT_EQ(epochs, (std::set<int64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(first_of_second, resumed_at);
  EXPECT_TRUE(worker->LogContains("resuming from last.ckpt of attempt 1"));
  // best.ckpt went up with the periodic checkpoints and came back beside
  // the resume checkpoint.
  auto artifacts = team_->Artifacts(id);
  ASSERT_TRUE(artifacts.ok());
  std::set<std::pair<std::string, uint32_t>> listed;
  for (const auto& a : *artifacts) listed.insert({a.name(), a.attempt()});
  EXPECT_EQ(listed.count({"best.ckpt", 1}), 1u);
  for (const auto& start : Events(history, "start")) {
    EXPECT_THAT(start.payload_json(),
                HasSubstr(start.attempt() == 2 ? "\"best_beside_resume\":true"
                                               : "\"best_beside_resume\":false"));
  }
}

TEST_F(WorkerE2eTest, ACheckpointTheChildRefusesMeansStartingOverNotFailing) {
  StartServer({"--lease-ttl-ms=5000"});
  auto sweep = team_->Submit(SweepYaml(4, {"0.001"}));
  ASSERT_TRUE(sweep.ok());
  const int64_t id = sweep->run_ids(0);
  auto worker = StartWorker(
      "w1", {}, {"FAKE_TRAIN_EPOCH_MS=250", "FAKE_TRAIN_REFUSE_RESUME=1"});
  ASSERT_TRUE(WaitFor(
      [&] {
        auto artifacts = team_->Artifacts(id);
        return artifacts.ok() && !artifacts->empty();
      },
      absl::Seconds(30)))
      << worker->Log();
  auto children = worker->Children();
  ASSERT_EQ(children.size(), 1u);
  ASSERT_EQ(kill(children[0], SIGKILL), 0);

  AwaitState(id, v1::RUN_STATE_SUCCEEDED, absl::Seconds(60), worker.get());
  EXPECT_EQ(Run(id).attempt(), 2u);
  EXPECT_TRUE(worker->LogContains("refused to start from the checkpoint"));
  const auto history = History(id);
  std::vector<int64_t> second_starts;
  for (const auto& start : Events(history, "start")) {
    if (start.attempt() == 2) {
      second_starts.push_back(IntField(start.payload_json(), "start_epoch"));
    }
  }
  EXPECT_EQ(second_starts, std::vector<int64_t>{1});
  // The refusal is in the run's history as the child reported it.
  bool refusal = false;
  for (const auto& error : Events(history, "error")) {
    refusal |= error.attempt() == 2 &&
               absl::StrContains(error.payload_json(), "different config");
  }
  EXPECT_TRUE(refusal);
}

TEST_F(WorkerE2eTest, KilledDaemonsRunIsRequeuedAndFinishedByAnother) {
  StartServer({"--lease-ttl-ms=1500"});
  auto sweep = team_->Submit(SweepYaml(5, {"0.001"}));
  ASSERT_TRUE(sweep.ok());
  const int64_t id = sweep->run_ids(0);
  auto first = StartWorker("wa", {}, {"FAKE_TRAIN_EPOCH_MS=300"});
  AwaitState(id, v1::RUN_STATE_RUNNING, absl::Seconds(30), first.get());
  std::vector<pid_t> children;
  ASSERT_TRUE(WaitFor([&] { return !(children = first->Children()).empty(); },
                      absl::Seconds(10)));
  first->Signal(SIGKILL);
  first->Wait();
  // The child dies with its daemon (parent-death signal).
  EXPECT_TRUE(WaitFor([&] { return !Alive(children[0]); }, absl::Seconds(5)));

  auto second = StartWorker("wb", {}, {"FAKE_TRAIN_EPOCH_MS=20"});
  AwaitState(id, v1::RUN_STATE_SUCCEEDED, absl::Seconds(60), second.get());
  v1::Run run = Run(id);
  EXPECT_EQ(run.worker_id(), "wb");
  EXPECT_EQ(run.attempt(), 2u);
  ASSERT_EQ(run.attempts_size(), 2);
  EXPECT_EQ(run.attempts(0).worker_id(), "wa");
  EXPECT_THAT(run.attempts(0).reason(), HasSubstr("lease expired"));
}

TEST_F(WorkerE2eTest, CoordinatorRestartMidRunLosesNoEventAndDoublesNone) {
  StartServer({"--lease-ttl-ms=20000"});
  const int port = server_->port();
  auto sweep = team_->Submit(SweepYaml(10, {"0.001"}));
  ASSERT_TRUE(sweep.ok());
  const int64_t id = sweep->run_ids(0);
  auto worker = StartWorker(
      "w1", {}, {"FAKE_TRAIN_EPOCH_MS=250", "FAKE_TRAIN_STEPS=4"});
  ASSERT_TRUE(WaitFor([&] { return Run(id).best_step() >= 2; },
                      absl::Seconds(30)))
      << worker->Log();

  server_->process().Kill(SIGKILL);
  server_->process().Wait();
  // The worker keeps reading its child and spools what it cannot send.
  const std::string spool = WorkDir("w1") + "/spool";
  auto spooled = [&] {
    std::error_code ec;
    for (const auto& dir : fs::directory_iterator(spool, ec)) {
      for (const auto& f : fs::directory_iterator(dir.path(), ec)) {
        if (f.path().extension() == ".batch") return true;
      }
    }
    return false;
  };
  ASSERT_TRUE(WaitFor(
      [&] { return worker->LogContains("spooling") && spooled(); },
      absl::Seconds(10)))
      << worker->Log();

  StartServer({"--lease-ttl-ms=20000"}, port);
  AwaitState(id, v1::RUN_STATE_SUCCEEDED, absl::Seconds(60), worker.get());

  const auto history = History(id);
  for (const auto& [key, count] : PointCounts(history)) {
    EXPECT_EQ(count, 1) << std::get<1>(key) << " step " << std::get<2>(key);
  }
  auto counts = PointCounts(history);
  for (int epoch = 1; epoch <= 10; ++epoch) {
    EXPECT_EQ((counts[{1, "val_f1", epoch}]), 1) << epoch;
  }
  for (int step = 1; step <= 40; ++step) {
    EXPECT_EQ((counts[{1, "step_loss", step}]), 1) << step;
  }
  // Events have no natural key: a batch resent under another batch_seq
  // would show twice here.
  EXPECT_EQ(Events(history, "start").size(), 1u);
  EXPECT_EQ(Events(history, "epoch").size(), 10u);
  EXPECT_EQ(Events(history, "step").size(), 40u);
  EXPECT_EQ(Events(history, "summary").size(), 1u);
  EXPECT_TRUE(worker->LogContains("replaying"));
  // The batches went over StreamEvents, reopened after the restart.
  EXPECT_TRUE(worker->LogContains("opened event stream #2")) << worker->Log();
  EXPECT_EQ(Run(id).attempt(), 1u);
}

TEST_F(WorkerE2eTest, FrozenDaemonIsFencedKillsItsChildAndTheOtherAttemptStands) {
  StartServer({"--lease-ttl-ms=1500"});
  auto sweep = team_->Submit(SweepYaml(40, {"0.001"}));
  ASSERT_TRUE(sweep.ok());
  const int64_t id = sweep->run_ids(0);
  auto zombie = StartWorker("wa", {}, {"FAKE_TRAIN_EPOCH_MS=400"});
  ASSERT_TRUE(WaitFor([&] { return Run(id).best_step() >= 1; },
                      absl::Seconds(30)))
      << zombie->Log();
  std::vector<pid_t> children = zombie->Children();
  ASSERT_EQ(children.size(), 1u);

  zombie->Signal(SIGSTOP);
  ASSERT_TRUE(WaitFor(
      [&] {
        v1::Run run = Run(id);
        return run.state() == v1::RUN_STATE_QUEUED && run.attempts_size() == 1;
      },
      absl::Seconds(20)));
  auto other = StartWorker("wb", {}, {"FAKE_TRAIN_EPOCH_MS=10"});
  AwaitState(id, v1::RUN_STATE_SUCCEEDED, absl::Seconds(60), other.get());
  const v1::Run before = Run(id);
  auto first_attempt_points = [&] {
    int n = 0;
    for (const auto& [key, count] : PointCounts(History(id))) {
      n += std::get<0>(key) == 1 ? count : 0;
    }
    return n;
  };
  const int zombie_points = first_attempt_points();

  zombie->Signal(SIGCONT);
  EXPECT_TRUE(WaitFor([&] { return zombie->LogContains("lease lost"); },
                      absl::Seconds(20)))
      << zombie->Log();
  EXPECT_TRUE(WaitFor([&] { return !Alive(children[0]); }, absl::Seconds(10)));

  const v1::Run after = Run(id);
  EXPECT_EQ(after.state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(after.worker_id(), "wb");
  EXPECT_EQ(after.attempt(), 2u);
  EXPECT_EQ(after.best_value(), before.best_value());
  EXPECT_EQ(after.finished_at_ms(), before.finished_at_ms());
  EXPECT_EQ(first_attempt_points(), zombie_points);  // its reports were refused
  zombie->Signal(SIGTERM);
  EXPECT_EQ(zombie->Wait(), 0);
}

class CancelTest : public WorkerE2eTest,
                   public ::testing::WithParamInterface<bool> {};

TEST_P(CancelTest, CancelledRunsChildIsGoneWithinTheGracePeriod) {
  const bool ignores_sigterm = GetParam();
  StartServer({"--lease-ttl-ms=3000"});  // heartbeats every second
  auto sweep = team_->Submit(SweepYaml(100, {"0.001"}));
  ASSERT_TRUE(sweep.ok());
  const int64_t id = sweep->run_ids(0);
  std::vector<std::string> env = {"FAKE_TRAIN_EPOCH_MS=200"};
  if (ignores_sigterm) env.push_back("FAKE_TRAIN_MODE=hang");
  auto worker = StartWorker("w1", {"--grace-period-ms=1500"}, env);
  ASSERT_TRUE(WaitFor([&] { return Run(id).best_step() >= 1; },
                      absl::Seconds(30)))
      << worker->Log();
  std::vector<pid_t> children = worker->Children();
  ASSERT_EQ(children.size(), 1u);

  const absl::Time start = absl::Now();
  auto state = team_->Cancel(id);
  ASSERT_TRUE(state.ok()) << state.status();
  AwaitState(id, v1::RUN_STATE_CANCELLED, absl::Seconds(15), worker.get());
  const absl::Duration took = absl::Now() - start;
  EXPECT_FALSE(Alive(children[0]));
  // Directive within a heartbeat (1 s), then at most the grace period.
  EXPECT_LT(took, absl::Milliseconds(1000 + 1500 + 1500)) << took;
  EXPECT_EQ(worker->LogContains("did not stop within"), ignores_sigterm);
  EXPECT_EQ(Run(id).attempt(), 1u);
}

INSTANTIATE_TEST_SUITE_P(ChildHandlesSigterm, CancelTest,
                         ::testing::Values(false, true),
                         [](const auto& info) {
                           return info.param ? "IgnoresSigterm" : "DiesOnSigterm";
                         });

TEST_F(WorkerE2eTest, AlwaysCrashingRunFailsAfterMaxAttemptsAndQuarantinesTheHost) {
  StartServer({"--lease-ttl-ms=5000", "--quarantine-after=3"});
  auto sweep = team_->Submit(SweepYaml(3, {"0.001"}, /*max_attempts=*/3));
  ASSERT_TRUE(sweep.ok());
  const int64_t id = sweep->run_ids(0);
  auto worker = StartWorker("w1", {"--max-consecutive-failures=3"},
                            {"FAKE_TRAIN_MODE=crash"});
  AwaitState(id, v1::RUN_STATE_FAILED, absl::Seconds(60), worker.get());
  v1::Run run = Run(id);
  EXPECT_EQ(run.attempt(), 3u);
  ASSERT_EQ(run.attempts_size(), 3);
  for (const auto& attempt : run.attempts()) {
    EXPECT_EQ(attempt.outcome(), v1::RUN_STATE_FAILED);
    EXPECT_THAT(attempt.reason(), HasSubstr("signal 6"));
    EXPECT_THAT(attempt.reason(), HasSubstr("crashing on purpose"));
  }
  EXPECT_TRUE(WaitFor([&] { return worker->LogContains("circuit breaker tripped"); },
                      absl::Seconds(10)));
  auto workers = team_->Workers();
  ASSERT_TRUE(workers.ok());
  ASSERT_EQ(workers->size(), 1u);
  EXPECT_EQ((*workers)[0].state(), v1::WORKER_STATE_QUARANTINED);
  EXPECT_EQ((*workers)[0].consecutive_failures(), 3u);

  // Nothing more is leased (a negative: watched for a while) ...
  auto next = team_->Submit(SweepYaml(3, {"0.002"}));
  ASSERT_TRUE(next.ok());
  const int64_t next_id = next->run_ids(0);
  EXPECT_FALSE(WaitFor([&] { return !StateIs(next_id, v1::RUN_STATE_QUEUED); },
                       absl::Milliseconds(1500)));
  // ... until a teammate clears the host.
  ASSERT_TRUE(team_->ClearWorker("w1").ok());
  EXPECT_TRUE(WaitFor([&] { return Run(next_id).attempt() >= 1; },
                      absl::Seconds(10)))
      << worker->Log();
  EXPECT_TRUE(worker->LogContains("cleared by a teammate"));
}

TEST_F(WorkerE2eTest, BreakerStopsLeasingEvenWhenTheCoordinatorDoesNotQuarantine) {
  StartServer({"--lease-ttl-ms=5000", "--quarantine-after=0"});
  auto sweep =
      team_->Submit(SweepYaml(3, {"0.001", "0.002", "0.003"}, /*max_attempts=*/1));
  ASSERT_TRUE(sweep.ok());
  auto worker = StartWorker("w1", {"--max-consecutive-failures=2"},
                            {"FAKE_TRAIN_MODE=crash"});
  auto failed = [&] {
    int n = 0;
    for (int64_t id : sweep->run_ids()) n += StateIs(id, v1::RUN_STATE_FAILED);
    return n;
  };
  ASSERT_TRUE(WaitFor([&] { return failed() == 2; }, absl::Seconds(60)))
      << worker->Log();
  EXPECT_TRUE(WaitFor([&] { return worker->LogContains("circuit breaker tripped"); },
                      absl::Seconds(10)));
  EXPECT_FALSE(WaitFor([&] { return failed() > 2; }, absl::Milliseconds(1500)));
  int queued = 0;
  for (int64_t id : sweep->run_ids()) queued += StateIs(id, v1::RUN_STATE_QUEUED);
  EXPECT_EQ(queued, 1);
  auto workers = team_->Workers();
  ASSERT_TRUE(workers.ok());
  EXPECT_EQ((*workers)[0].state(), v1::WORKER_STATE_ACTIVE);
  EXPECT_EQ((*workers)[0].consecutive_failures(), 2u);
}

TEST_F(WorkerE2eTest, ExitStatusAndErrorEventDecideWhetherTheRunIsRetried) {
  StartServer({"--lease-ttl-ms=5000", "--quarantine-after=0"});
  auto final_sweep = team_->Submit(SweepYaml(3, {"0.001"}));
  ASSERT_TRUE(final_sweep.ok());
  const int64_t id = final_sweep->run_ids(0);
  auto worker = StartWorker("w1", {}, {"FAKE_TRAIN_MODE=exit:3"});
  AwaitState(id, v1::RUN_STATE_FAILED, absl::Seconds(30), worker.get());
  v1::Run run = Run(id);
  EXPECT_EQ(run.attempt(), 1u);  // exit 3: retrying cannot help
  EXPECT_FALSE(run.retryable());
  EXPECT_THAT(run.error(), HasSubstr("exited with status 3: fake failure"));
  EXPECT_THAT(run.error(), HasSubstr("failing with 3"));  // stderr's tail
  worker->Signal(SIGTERM);
  EXPECT_EQ(worker->Wait(), 0);

  auto retry_sweep = team_->Submit(SweepYaml(3, {"0.002"}, /*max_attempts=*/2));
  ASSERT_TRUE(retry_sweep.ok());
  const int64_t retried = retry_sweep->run_ids(0);
  auto again = StartWorker("w2", {}, {"FAKE_TRAIN_MODE=exit:1",
                                      "FAKE_TRAIN_RETRYABLE=1"});
  AwaitState(retried, v1::RUN_STATE_FAILED, absl::Seconds(30), again.get());
  EXPECT_EQ(Run(retried).attempt(), 2u);  // the error event said retryable
}

TEST_F(WorkerE2eTest, SigtermDrainsTheRunningRunThenExitsZero) {
  StartServer({"--lease-ttl-ms=5000"});
  auto sweep = team_->Submit(SweepYaml(4, {"0.001", "0.002"}));
  ASSERT_TRUE(sweep.ok());
  auto worker = StartWorker("w1", {}, {"FAKE_TRAIN_EPOCH_MS=250"});
  int64_t running = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        for (int64_t id : sweep->run_ids()) {
          if (StateIs(id, v1::RUN_STATE_RUNNING)) running = id;
        }
        return running != 0;
      },
      absl::Seconds(30)));
  worker->Signal(SIGTERM);
  EXPECT_EQ(worker->Wait(), 0) << worker->Log();
  EXPECT_EQ(team_->StateOf(running), v1::RUN_STATE_SUCCEEDED);
  for (int64_t id : sweep->run_ids()) {
    if (id != running) {
      EXPECT_EQ(team_->StateOf(id), v1::RUN_STATE_QUEUED);
      EXPECT_EQ(Run(id).attempt(), 0u);
    }
  }
}

TEST_F(WorkerE2eTest, SecondSigtermStopsTheRunWhichIsRetriedElsewhere) {
  StartServer({"--lease-ttl-ms=5000"});
  auto sweep = team_->Submit(SweepYaml(100, {"0.001"}));
  ASSERT_TRUE(sweep.ok());
  const int64_t id = sweep->run_ids(0);
  auto worker = StartWorker("w1", {}, {"FAKE_TRAIN_EPOCH_MS=200"});
  AwaitState(id, v1::RUN_STATE_RUNNING, absl::Seconds(30), worker.get());
  std::vector<pid_t> children;
  ASSERT_TRUE(WaitFor([&] { return !(children = worker->Children()).empty(); },
                      absl::Seconds(10)));
  worker->Signal(SIGTERM);
  ASSERT_TRUE(WaitFor([&] { return worker->LogContains("draining"); },
                      absl::Seconds(10)));
  worker->Signal(SIGTERM);
  EXPECT_EQ(worker->Wait(), 0) << worker->Log();
  EXPECT_FALSE(Alive(children[0]));
  v1::Run run = Run(id);
  EXPECT_EQ(run.state(), v1::RUN_STATE_QUEUED);
  ASSERT_EQ(run.attempts_size(), 1);
  EXPECT_EQ(run.attempts(0).outcome(), v1::RUN_STATE_FAILED);
  EXPECT_THAT(run.attempts(0).reason(), HasSubstr("shutting down"));
}

TEST_F(WorkerE2eTest, SpoolLeftByAKilledDaemonIsReplayedByTheNextOne) {
  StartServer({"--lease-ttl-ms=4000"});
  const int port = server_->port();
  auto sweep = team_->Submit(SweepYaml(30, {"0.001"}));
  ASSERT_TRUE(sweep.ok());
  const int64_t id = sweep->run_ids(0);
  auto first = StartWorker("w1", {}, {"FAKE_TRAIN_EPOCH_MS=100"});
  ASSERT_TRUE(WaitFor([&] { return Run(id).best_step() >= 1; },
                      absl::Seconds(30)))
      << first->Log();
  server_->process().Kill(SIGKILL);
  server_->process().Wait();
  // Let the daemon spool a few batches it cannot send, then kill it too.
  const std::string spool = WorkDir("w1") + "/spool";
  auto spooled_events = [&] {
    std::vector<std::string> payloads;
    std::error_code ec;
    for (const auto& dir : fs::directory_iterator(spool, ec)) {
      for (const auto& f : fs::directory_iterator(dir.path(), ec)) {
        v1::ReportEventsRequest batch;
        if (f.path().extension() == ".batch" &&
            batch.ParseFromString(ReadFile(f.path().string()))) {
          for (const auto& e : batch.events()) payloads.push_back(e.payload_json());
        }
      }
    }
    return payloads;
  };
  ASSERT_TRUE(WaitFor([&] { return spooled_events().size() >= 5; },
                      absl::Seconds(10)));
  first->Signal(SIGKILL);
  first->Wait();
  const std::vector<std::string> left_behind = spooled_events();

  StartServer({"--lease-ttl-ms=4000"}, port);
  auto next = StartWorker("w1", {}, {"FAKE_TRAIN_EPOCH_MS=5"});
  EXPECT_TRUE(WaitFor([&] { return next->LogContains("left by an earlier daemon"); },
                      absl::Seconds(20)))
      << next->Log();
  // The dead daemon's lease expires; the run is finished as attempt 2.
  AwaitState(id, v1::RUN_STATE_SUCCEEDED, absl::Seconds(60), next.get());
  std::map<std::string, int> first_attempt;
  for (const auto& item : History(id)) {
    if (item.has_event() && item.event().attempt() == 1) {
      ++first_attempt[item.event().payload_json()];
    }
  }
  for (const std::string& payload : left_behind) {
    EXPECT_EQ(first_attempt[payload], 1) << payload;
  }
  // The daemon empties the spool once the finish is answered (the run is
  // SUCCEEDED from the commit on, a moment earlier).
  EXPECT_TRUE(WaitFor([&] { return fs::is_empty(spool); }, absl::Seconds(10)));
}

TEST_F(WorkerE2eTest, TalksToACoordinatorOverTls) {
  const std::string cert = dir_.Join("cert.pem"), key = dir_.Join("key.pem");
  ASSERT_TRUE(testing::MakeSelfSignedCertificate(cert, key).ok());
  StartServer({"--tls-cert=" + cert, "--tls-key=" + key}, 0, cert);
  const std::string address = absl::StrCat("localhost:", server_->port());
  auto sweep = team_->Submit(SweepYaml(2, {"0.001"}));
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  auto worker =
      StartWorker("w1", {"--server=" + address, "--tls-ca=" + cert});
  AwaitState(sweep->run_ids(0), v1::RUN_STATE_SUCCEEDED, absl::Seconds(60),
             worker.get());
}

TEST_F(WorkerE2eTest, RefusedTokenStopsTheDaemonWithAClearError) {
  StartServer({});
  std::ofstream(dir_.Join("bad.token")) << "not-the-token\n";
  auto worker = StartWorker("w1", {"--token-file=" + dir_.Join("bad.token")});
  EXPECT_EQ(worker->Wait(), 1);
  EXPECT_TRUE(worker->LogContains("refused registration")) << worker->Log();
}

TEST(WorkerMainTest, HelpListsTheDaemonsFlags) {
  int status = 0;
  const std::string out =
      testing::RunCommand({testing::WorkerBinary(), "--help"}, &status);
  for (const char* flag : {"--server", "--token_file", "--data", "--gpus",
                           "--slots", "--work_dir", "--tls_ca",
                           "--max_consecutive_failures", "--grace_period_ms"}) {
    EXPECT_THAT(out, HasSubstr(flag));
  }
  EXPECT_THAT(out, HasSubstr("SIGTERM drains"));
}

}  // namespace
}  // namespace sweepq
