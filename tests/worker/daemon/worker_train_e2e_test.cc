// The main path with the real child: sweepq-worker runs the real
// sweepq-train on a tiny synthetic data set (sweepq-make-dataset, 24
// people, small_cnn at 32 x 48, few epochs) against a real sweepq-server on
// loopback. Fault injection that needs a misbehaving child (crash loops,
// ignored SIGTERM) stays with the fake in worker_e2e_test.cc.
#include <signal.h>

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/worker/daemon/worker_fixture.h"

namespace sweepq {
namespace {

using ::testing::HasSubstr;
using testing::WaitFor;

// Small enough for a few seconds per epoch on one CPU thread.
std::string TinySweep(int epochs, const std::vector<std::string>& lrs) {
  return absl::StrCat(
      "name: real-train\nmethod: grid\nmetric: {name: val_f1, goal: maximize}\n"
      "max_attempts: 3\n"
      "config:\n"
      "  data: {dataset: mask, image_width: 32, image_height: 48}\n"
      "  crop: {detectors: [fixed]}\n"
      "  model: {name: small_cnn}\n"
      "  train: {epochs: ", epochs, ", batch_size: 16, log_every_steps: 1}\n"
      "  seed: 1\n"
      "  threads: 1\n"
      "parameters:\n"
      "  optimizer.lr: {values: [", absl::StrJoin(lrs, ", "), "]}\n");
}

class TrainE2eTest : public WorkerE2eTest {
 protected:
  void SetUp() override {
    WorkerE2eTest::SetUp();
    train_binary_ = testing::RealTrainBinary();
    int status = 0;
    const std::string out = testing::RunCommand(
        {testing::MakeDatasetBinary(), "--out=" + dir_.Join("data/mask"),
         "--people=24", "--seed=1", "--threads=2"},
        &status);
    ASSERT_EQ(status, 0) << out;
  }
};

TEST_F(TrainE2eTest, RealTrainerRunsASweepToCompletion) {
  StartServer({"--lease-ttl-ms=10000"});
  auto sweep = team_->Submit(TinySweep(2, {"0.001", "0.003"}));
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  auto worker = StartWorker("w1", {"--slots=2", "--keep-work-dirs"});
  for (int64_t id : sweep->run_ids()) {
    AwaitState(id, v1::RUN_STATE_SUCCEEDED, absl::Seconds(300), worker.get());
  }

  auto board = team_->Board(sweep->sweep_id());
  ASSERT_TRUE(board.ok()) << board.status();
  ASSERT_EQ(board->size(), 2u);
  EXPECT_GE((*board)[0].run().best_value(), (*board)[1].run().best_value());
  EXPECT_EQ((std::set<int64_t>{(*board)[0].run().run_id(),
                               (*board)[1].run().run_id()}),
            std::set<int64_t>(sweep->run_ids().begin(), sweep->run_ids().end()));

  for (int64_t id : sweep->run_ids()) {
    SCOPED_TRACE(absl::StrCat("run ", id));
    const auto history = History(id);
    auto counts = PointCounts(history);
    for (int epoch = 1; epoch <= 2; ++epoch) {
      EXPECT_EQ((counts[{1, "val_f1", epoch}]), 1) << epoch;
      EXPECT_EQ((counts[{1, "train_loss", epoch}]), 1) << epoch;
    }
    int step_losses = 0;
    for (const auto& [key, count] : counts) {
      EXPECT_EQ(count, 1);
      step_losses += std::get<1>(key) == "step_loss";
    }
    EXPECT_GT(step_losses, 0);
    EXPECT_EQ(Events(history, "start").size(), 1u);
    EXPECT_EQ(Events(history, "epoch").size(), 2u);
    EXPECT_EQ(Events(history, "summary").size(), 1u);

    auto artifacts = team_->Artifacts(id);
    ASSERT_TRUE(artifacts.ok()) << artifacts.status();
    std::set<std::string> names;
    for (const auto& a : *artifacts) names.insert(a.name());
    for (const char* expected : {"best.ckpt", "last.ckpt", "config.json",
                                 "metrics.csv", "confusion.csv",
                                 "confusion.png"}) {
      EXPECT_EQ(names.count(expected), 1u) << expected;
    }
    const std::string out =
        absl::StrCat(WorkDir("w1"), "/runs/run-", id, "/attempt-1/out/");
    for (const std::string& name : names) {
      auto data = team_->Download(id, name);
      ASSERT_TRUE(data.ok()) << name << ": " << data.status();
      EXPECT_TRUE(*data == ReadFile(out + name)) << name;
      EXPECT_FALSE(data->empty()) << name;
    }
  }
  worker->Signal(SIGTERM);
  EXPECT_EQ(worker->Wait(), 0);
}

TEST_F(TrainE2eTest, KilledRealTrainerResumesFromItsUploadedCheckpoint) {
  StartServer({"--lease-ttl-ms=10000"});
  auto sweep = team_->Submit(TinySweep(6, {"0.001"}));
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  const int64_t id = sweep->run_ids(0);
  auto worker = StartWorker("w1");
  // Kill the child once a checkpoint of attempt 1 is on the coordinator.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto artifacts = team_->Artifacts(id);
        if (!artifacts.ok()) return false;
        for (const auto& a : *artifacts) {
          if (a.name() == "last.ckpt") return true;
        }
        return false;
      },
      absl::Seconds(240)))
      << worker->Log();
  std::vector<pid_t> children = worker->Children();
  ASSERT_EQ(children.size(), 1u) << "the run ended before it could be killed";
  ASSERT_EQ(kill(children[0], SIGKILL), 0);

  AwaitState(id, v1::RUN_STATE_SUCCEEDED, absl::Seconds(300), worker.get());
  v1::Run run = Run(id);
  EXPECT_EQ(run.attempt(), 2u);
  ASSERT_GE(run.attempts_size(), 2);
  EXPECT_THAT(run.attempts(0).reason(), HasSubstr("signal 9"));
  const auto history = History(id);
  int64_t resumed_at = -1;
  for (const auto& start : Events(history, "start")) {
    if (start.attempt() == 2) resumed_at = IntField(start.payload_json(), "start_epoch");
  }
  EXPECT_GT(resumed_at, 1);
  std::set<int64_t> epochs;
  for (const auto& [key, count] : PointCounts(history)) {
    if (std::get<1>(key) == "val_f1") epochs.insert(std::get<2>(key));
  }
  EXPECT_EQ(epochs, (std::set<int64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_TRUE(worker->LogContains("resuming from last.ckpt"));
  // The best model survives the restart even when the best epoch was the
  // first attempt's: it travels beside the resume checkpoint.
  auto artifacts = team_->Artifacts(id);
  ASSERT_TRUE(artifacts.ok());
  bool best_of_second = false;
  for (const auto& a : *artifacts) {
    best_of_second |= a.name() == "best.ckpt" && a.attempt() == 2;
  }
  EXPECT_TRUE(best_of_second);
}

}  // namespace
}  // namespace sweepq
