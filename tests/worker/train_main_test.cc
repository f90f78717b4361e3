// Runs the real sweepq-train binary as the worker daemon will: reads its
// stdout as JSON lines and checks the contract of docs/train-events.md
// (event order, files, exit status).
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"
#include "tests/worker/train_test_util.h"

namespace sweepq::worker {
namespace {

namespace fs = std::filesystem;
using ::sweepq::testing::Field;
using ::sweepq::testing::Has;
using ::sweepq::testing::Kind;
using ::sweepq::testing::OfKind;
using ::sweepq::testing::ParseEvent;
using ::testing::HasSubstr;

const char kTrainBinary[] = SWEEPQ_BINARY_DIR "/worker/sweepq-train";
const char kMakeDatasetBinary[] = SWEEPQ_BINARY_DIR "/worker/sweepq-make-dataset";

constexpr char kConfig[] = R"(
data:
  dataset: mask
  image_width: 48
  image_height: 64
model:
  name: small_cnn
train:
  epochs: 2
  batch_size: 16
  log_every_steps: 4
seed: 5
)";

// Exit status of a raw wait status; -signal when killed.
int ExitStatus(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  return -WTERMSIG(wait_status);
}

struct ChildRun {
  int exit_status = 0;
  std::vector<std::string> lines;
  std::vector<google::protobuf::Struct> events;
};

class TrainMainTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    int status = 0;
    testing::RunCommand({kMakeDatasetBinary, "--out", dir_->Join("data"),
                         "--people", "12", "--seed", "4", "--eval-images", "7",
                         "--threads", "2"},
                        &status);
    ASSERT_EQ(status, 0) << "sweepq-make-dataset failed";
  }

  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  std::string WriteConfig(const std::string& name, const std::string& text) {
    const std::string path = work_.Join(name);
    testing::WriteTextFile(path, text);
    return path;
  }

  std::vector<std::string> Args(const std::string& config,
                                const std::string& out) {
    return {kTrainBinary,      "--config",        config,
            "--data",          dir_->Join("data"), "--out",
            out,               "--cache-dir",     dir_->Join("cache"),
            "--threads",       "1"};
  }

  // Runs sweepq-train to its end.
  ChildRun Run(const std::vector<std::string>& args) {
    testing::Subprocess child(args);
    ChildRun run;
    std::string line;
    while (child.ReadLine(&line)) {
      run.lines.push_back(line);
      std::optional<google::protobuf::Struct> event = ParseEvent(line);
      EXPECT_TRUE(event.has_value()) << "stdout line is not JSON: " << line;
      if (event.has_value()) run.events.push_back(*event);
    }
    run.exit_status = ExitStatus(child.Wait());
    return run;
  }

  static testing::TempDir* dir_;
  testing::TempDir work_;
};

testing::TempDir* TrainMainTest::dir_ = nullptr;

TEST_F(TrainMainTest, StreamsDocumentedEventsInOrderAndWritesFiles) {
  const std::string out = work_.Join("out");
  const ChildRun run = Run(Args(WriteConfig("run.yaml", kConfig), out));
  ASSERT_EQ(run.exit_status, 0);
  ASSERT_EQ(run.events.size(), run.lines.size());
  ASSERT_GE(run.events.size(), 4u);

  const std::set<std::string> documented = {
      "start",       "step",     "epoch",   "checkpoint", "bad_samples",
      "early_stop",  "artifact", "summary", "error"};
  double previous_time = 0;
  for (const auto& e : run.events) {
    EXPECT_EQ(documented.count(Kind(e)), 1u) << Kind(e);
    ASSERT_TRUE(Has(e, "time_ms"));
    const double time = Field(e, "time_ms").number_value();
    EXPECT_GE(time, previous_time);
    previous_time = time;
  }
  EXPECT_EQ(Kind(run.events.front()), "start");
  EXPECT_EQ(Kind(run.events.back()), "summary");
  EXPECT_TRUE(OfKind(run.events, "error").empty());

  // Epochs 1 and 2 in order, each followed by its last checkpoint; steps
  // between them are numbered globally and increase.
  std::vector<int> epochs;
  double last_step = 0;
  for (size_t i = 0; i < run.events.size(); ++i) {
    const auto& e = run.events[i];
    if (Kind(e) == "step") {
      EXPECT_GT(Field(e, "step").number_value(), last_step);
      last_step = Field(e, "step").number_value();
      EXPECT_EQ(static_cast<int64_t>(last_step) % 4, 0);
    }
    if (Kind(e) != "epoch") continue;
    epochs.push_back(static_cast<int>(Field(e, "epoch").number_value()));
    bool checkpointed = false;
    for (size_t j = i + 1; j < run.events.size(); ++j) {
      const auto& c = run.events[j];
      if (Kind(c) == "epoch") break;
      if (Kind(c) == "checkpoint" &&
          Field(c, "kind").string_value() == "last" &&
          Field(c, "epoch").number_value() == epochs.back()) {
        checkpointed = true;
        EXPECT_TRUE(fs::is_regular_file(Field(c, "path").string_value()));
      }
    }
    EXPECT_TRUE(checkpointed) << "epoch " << epochs.back();
  }
  EXPECT_THAT(epochs, ::testing::ElementsAre(1, 2));
  EXPECT_FALSE(OfKind(run.events, "step").empty());

  for (const char* file : {"config.json", "last.ckpt", "best.ckpt",
                           "metrics.csv", "confusion.csv", "confusion.png"}) {
    EXPECT_TRUE(fs::is_regular_file(out + "/" + file)) << file;
  }
  for (const auto& a : OfKind(run.events, "artifact")) {
    EXPECT_TRUE(fs::is_regular_file(Field(a, "path").string_value()));
  }
  // config.json reads back as a resolved config.
  EXPECT_THAT(testing::ReadFileOrEmpty(out + "/config.json"),
              HasSubstr("\"adamw\""));
}

TEST_F(TrainMainTest, KilledRunResumesFromItsLastCheckpoint) {
  std::string text = kConfig;
  text.replace(text.find("epochs: 2"), 9, "epochs: 3");
  const std::string three = WriteConfig("three.yaml", text);
  const std::string out = work_.Join("killed");
  std::string checkpoint;
  {
    testing::Subprocess child(Args(three, out));
    std::string line;
    while (checkpoint.empty() && child.ReadLine(&line)) {
      auto e = ParseEvent(line);
      if (e && Kind(*e) == "checkpoint" &&
          Field(*e, "kind").string_value() == "last") {
        checkpoint = Field(*e, "path").string_value();
      }
    }
    child.Kill(SIGKILL);
    EXPECT_EQ(ExitStatus(child.Wait()), -SIGKILL);
  }
  ASSERT_FALSE(checkpoint.empty());
  const std::string saved = work_.Join("uploaded.ckpt");
  fs::copy_file(checkpoint, saved);

  std::vector<std::string> args = Args(three, work_.Join("second"));
  args.push_back("--resume");
  args.push_back(saved);
  const ChildRun run = Run(args);
  ASSERT_EQ(run.exit_status, 0);
  ASSERT_EQ(Kind(run.events.front()), "start");
  const int start_epoch =
      static_cast<int>(Field(run.events.front(), "start_epoch").number_value());
  EXPECT_GE(start_epoch, 2);
  const auto epochs = OfKind(run.events, "epoch");
  ASSERT_FALSE(epochs.empty());
  EXPECT_EQ(Field(epochs.front(), "epoch").number_value(), start_epoch);
  EXPECT_EQ(Field(run.events.back(), "epochs").number_value(), 3);
}

TEST_F(TrainMainTest, BadConfigExitsTwoWithANonRetryableError) {
  const ChildRun run = Run(Args(
      WriteConfig("bad.yaml", std::string(kConfig) + "optimizer: {lrr: 1}\n"),
      work_.Join("bad")));
  EXPECT_EQ(run.exit_status, 2);
  ASSERT_EQ(run.events.size(), 1u);
  EXPECT_EQ(Kind(run.events[0]), "error");
  EXPECT_FALSE(Field(run.events[0], "retryable").bool_value());
  EXPECT_THAT(Field(run.events[0], "message").string_value(),
              HasSubstr("optimizer.lrr"));
}

TEST_F(TrainMainTest, BadCommandLineExitsTwo) {
  const std::string config = WriteConfig("ok.yaml", kConfig);
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {kTrainBinary, "--config", config, "--data", dir_->Join("data")},
           {kTrainBinary, "--config", config, "--data", dir_->Join("data"),
            "--out", work_.Join("x"), "--no-such-flag=1"},
           {kTrainBinary, "--config", config, "--data", dir_->Join("data"),
            "--out", work_.Join("x"), "--threads", "many"},
       }) {
    const ChildRun run = Run(args);
    EXPECT_EQ(run.exit_status, 2) << args.back();
    ASSERT_EQ(run.events.size(), 1u) << args.back();
    EXPECT_EQ(Kind(run.events[0]), "error");
    EXPECT_FALSE(Field(run.events[0], "retryable").bool_value());
  }
  // A missing config file is a bad command line too.
  const ChildRun missing =
      Run(Args(work_.Join("missing.yaml"), work_.Join("y")));
  EXPECT_EQ(missing.exit_status, 2);
}

TEST_F(TrainMainTest, NanLossExitsThree) {
  const ChildRun run = Run(Args(
      WriteConfig("nan.yaml",
                  std::string(kConfig) + "optimizer: {name: sgd, lr: 1.0e+30}\n"),
      work_.Join("nan")));
  EXPECT_EQ(run.exit_status, 3);
  ASSERT_FALSE(run.events.empty());
  const auto& error = run.events.back();
  EXPECT_EQ(Kind(error), "error");
  EXPECT_FALSE(Field(error, "retryable").bool_value());
  EXPECT_TRUE(Has(error, "epoch"));
  EXPECT_TRUE(Has(error, "step"));
}

TEST_F(TrainMainTest, HelpDescribesTheCommandLine) {
  int status = -1;  // Abseil's --help exit status; not part of the contract
  const std::string help = testing::RunCommand({kTrainBinary, "--help"}, &status);
  EXPECT_THAT(help, HasSubstr("--resume"));
  EXPECT_THAT(help, HasSubstr("--models"));
  EXPECT_THAT(help, HasSubstr("Exit status"));
}

constexpr char kPredictJob[] = R"({"data": {"dataset": "mask"},
  "job": {"kind": "predict", "source_runs": [3]}})";

TEST_F(TrainMainTest, PredictJobWithModelsWritesTheSubmission) {
  std::string text = kConfig;
  text.replace(text.find("epochs: 2"), 9, "epochs: 1");
  const std::string run_out = work_.Join("source");
  ASSERT_EQ(Run(Args(WriteConfig("one.yaml", text), run_out)).exit_status, 0);

  const std::string out = work_.Join("job");
  std::vector<std::string> args =
      Args(WriteConfig("job.json", kPredictJob), out);
  args.push_back("--models");
  args.push_back(run_out + "/best.ckpt");
  const ChildRun run = Run(args);
  ASSERT_EQ(run.exit_status, 0);
  ASSERT_FALSE(run.events.empty());
  EXPECT_EQ(Kind(run.events.front()), "start");
  EXPECT_EQ(Kind(run.events.back()), "summary");
  EXPECT_TRUE(OfKind(run.events, "error").empty());
  const std::string submission =
      testing::ReadFileOrEmpty(out + "/submission.csv");
  EXPECT_EQ(submission.rfind("ImageID,ans\n", 0), 0u) << submission;
  // A header and one row per evaluation image.
  EXPECT_EQ(std::count(submission.begin(), submission.end(), '\n'), 8);
  EXPECT_TRUE(fs::is_regular_file(out + "/probabilities.csv"));
  EXPECT_EQ(OfKind(run.events, "metrics").size(), 1u);
}

TEST_F(TrainMainTest, JobCommandLineMisuseExitsTwo) {
  const std::string job = WriteConfig("job.json", kPredictJob);
  const std::string train = WriteConfig("ok.yaml", kConfig);
  const std::string ckpt = work_.Join("some.ckpt");
  std::vector<std::string> with_resume = Args(job, work_.Join("a"));
  with_resume.insert(with_resume.end(),
                     {"--models", ckpt, "--resume", ckpt});
  std::vector<std::string> models_for_training = Args(train, work_.Join("b"));
  models_for_training.insert(models_for_training.end(), {"--models", ckpt});
  std::vector<std::string> two_models = Args(job, work_.Join("c"));
  two_models.insert(two_models.end(), {"--models", ckpt + "," + ckpt});
  for (const auto& [args, expected] :
       std::vector<std::pair<std::vector<std::string>, std::string>>{
           {Args(job, work_.Join("d")), "--models: required"},
           {with_resume, "--resume does not apply to a job"},
           {models_for_training, "--models is only for a job"},
           {two_models, "--models: 2 checkpoint(s) for 1"},
       }) {
    const ChildRun run = Run(args);
    EXPECT_EQ(run.exit_status, 2) << expected;
    ASSERT_EQ(run.events.size(), 1u) << expected;
    EXPECT_EQ(Kind(run.events[0]), "error");
    EXPECT_FALSE(Field(run.events[0], "retryable").bool_value());
    EXPECT_THAT(Field(run.events[0], "message").string_value(),
                HasSubstr(expected));
  }
}

}  // namespace
}  // namespace sweepq::worker
