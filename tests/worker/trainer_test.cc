#include "worker/pipeline/trainer.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "opencv2/imgcodecs.hpp"
#include "tests/testing/temp_dir.h"
#include "tests/worker/train_test_util.h"
#include "torch/types.h"
#include "worker/pipeline/checkpoint.h"
#include "worker/pipeline/synthetic.h"
#include "worker/pipeline/train_report.h"

namespace sweepq::worker {
namespace {

namespace fs = std::filesystem;
using ::sweepq::testing::Field;
using ::sweepq::testing::Has;
using ::sweepq::testing::Kind;
using ::sweepq::testing::Metric;
using ::sweepq::testing::OfKind;
using ::sweepq::testing::ParseEvent;
using ::testing::HasSubstr;

// The learning metrics, which must repeat exactly (the time metrics do
// not).
const std::vector<std::string> kLearningMetrics = {
    "train_loss", "train_acc", "val_loss", "val_acc", "val_f1", "lr"};

// Default sections of the test configs: a small CNN at a low resolution
// on a small synthetic set (seconds per epoch on two cores), one thread so
// that runs repeat bit for bit. A test's YAML replaces any section it
// names.
const std::vector<std::pair<std::string, std::string>> kDefaultSections = {
    {"data:", "data:\n  dataset: mask\n  image_width: 48\n  image_height: 64\n"},
    {"model:", "model:\n  name: small_cnn\n"},
    {"train:", "train:\n  epochs: 2\n  batch_size: 16\n"},
    {"seed:", "seed: 7\n"},
    {"threads:", "threads: 1\n"},
};

// Returns `yaml` with the default sections it does not name.
std::string WithDefaults(const std::string& yaml) {
  std::string out = yaml + "\n";
  for (const auto& [key, section] : kDefaultSections) {
    if (!absl::StartsWith(yaml, key) &&
        !absl::StrContains(yaml, "\n" + key)) {
      out += section;
    }
  }
  return out;
}

// Calls `on_line` for every event line as it is written.
class CallbackSink : public EventSink {
 public:
  explicit CallbackSink(std::function<void(const std::string&)> on_line)
      : on_line_(std::move(on_line)) {}
  void Write(absl::string_view line) override {
    lines_.emplace_back(line);
    if (on_line_) on_line_(lines_.back());
  }
  const std::vector<std::string>& lines() const { return lines_; }

 private:
  std::function<void(const std::string&)> on_line_;
  std::vector<std::string> lines_;
};

struct RunOutput {
  TrainResult result;
  std::vector<google::protobuf::Struct> events;
};

class TrainerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    SyntheticOptions options;
    options.out_dir = dir_->Join("data");
    options.people = 24;
    options.eval_images = 0;
    options.seed = 3;
    options.threads = 2;
    absl::StatusOr<SyntheticManifest> manifest =
        WriteSyntheticMaskDataset(options);
    ASSERT_TRUE(manifest.ok()) << manifest.status();
  }

  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  static std::string DataDir() { return dir_->Join("data"); }
  // Shared by every run, so each image's face is detected once.
  static std::string CacheDir() { return dir_->Join("cache"); }

  // Runs the config `extra` (see WithDefaults) into out dir `name`.
  RunOutput Train(const std::string& extra, const std::string& name,
                  const std::string& resume = "",
                  std::function<void(const std::string&)> on_line = nullptr,
                  const std::string& data_dir = "",
                  const std::string& cache_dir = "") {
    const std::string config = work_.Join(name + ".yaml");
    testing::WriteTextFile(config, WithDefaults(extra));
    CallbackSink sink(std::move(on_line));
    TrainerOptions options;
    options.config_path = config;
    options.data_dir = data_dir.empty() ? DataDir() : data_dir;
    options.out_dir = work_.Join(name);
    options.resume_path = resume;
    options.cache_dir = cache_dir.empty() ? CacheDir() : cache_dir;
    options.events = &sink;
    RunOutput out;
    out.result = RunTraining(options);
    for (const std::string& line : sink.lines()) {
      std::optional<google::protobuf::Struct> event = ParseEvent(line);
      EXPECT_TRUE(event.has_value()) << "not JSON: " << line;
      if (event.has_value()) out.events.push_back(*event);
    }
    return out;
  }

  std::string Out(const std::string& name, const std::string& file) const {
    return work_.Join(name) + "/" + file;
  }

  // Returns the learning metrics of every epoch event, keyed by epoch.
  static std::map<int, std::map<std::string, double>> LearningMetrics(
      const RunOutput& run) {
    std::map<int, std::map<std::string, double>> out;
    for (const auto& e : OfKind(run.events, "epoch")) {
      const int epoch = static_cast<int>(Field(e, "epoch").number_value());
      for (const std::string& name : kLearningMetrics) {
        if (std::optional<double> v = Metric(e, name)) out[epoch][name] = *v;
      }
    }
    return out;
  }

  static testing::TempDir* dir_;
  testing::TempDir work_;
};

testing::TempDir* TrainerTest::dir_ = nullptr;

TEST_F(TrainerTest, RunWritesEventsFilesAndSummary) {
  const RunOutput run = Train(R"(
train:
  epochs: 2
  batch_size: 16
  log_every_steps: 3
)",
                              "run");
  ASSERT_TRUE(run.result.status.ok()) << run.result.status;
  EXPECT_EQ(run.result.exit_code(), 0);
  ASSERT_FALSE(run.events.empty());
  EXPECT_EQ(Kind(run.events.front()), "start");
  EXPECT_EQ(Kind(run.events.back()), "summary");
  const auto& start = run.events.front();
  EXPECT_EQ(Field(start, "start_epoch").number_value(), 1);
  EXPECT_EQ(Field(start, "device").string_value(), "cpu");
  EXPECT_EQ(Field(start, "threads").number_value(), 1);
  const auto& data = Field(start, "data").struct_value();
  EXPECT_EQ(Field(data, "fingerprint").string_value().size(), 64u);
  EXPECT_EQ(Field(data, "train").number_value() + Field(data, "val").number_value(),
            24 * 7);
  EXPECT_EQ(Field(data, "classes").list_value().values_size(), 18);
  // The resolved config carries the defaults.
  const auto& config = Field(start, "config").struct_value();
  EXPECT_EQ(Field(Field(config, "optimizer").struct_value(), "name")
                .string_value(),
            "adamw");

  const auto epochs = OfKind(run.events, "epoch");
  ASSERT_EQ(epochs.size(), 2u);
  for (const auto& e : epochs) {
    for (const char* name :
         {"train_loss", "train_acc", "lr", "epoch_time_s", "images_per_s",
          "data_wait_s", "val_loss", "val_acc", "val_f1"}) {
      EXPECT_TRUE(Metric(e, name).has_value()) << name;
    }
    EXPECT_EQ(Field(e, "per_class_f1").list_value().values_size(), 18);
    EXPECT_EQ(Field(e, "confusion").list_value().values_size(), 18);
    EXPECT_GE(*Metric(e, "data_wait_s"), 0.0);
    EXPECT_LE(*Metric(e, "data_wait_s"), *Metric(e, "epoch_time_s"));
  }
  // Step events every 3 steps, numbered globally.
  const auto steps = OfKind(run.events, "step");
  ASSERT_FALSE(steps.empty());
  for (const auto& s : steps) {
    EXPECT_EQ(static_cast<int64_t>(Field(s, "step").number_value()) % 3, 0);
  }
  EXPECT_EQ(Field(epochs[1], "step").number_value(),
            2 * Field(epochs[0], "step").number_value());

  EXPECT_EQ(OfKind(run.events, "checkpoint").size() >= 2, true);
  for (const char* file :
       {"config.json", "last.ckpt", "best.ckpt", "metrics.csv",
        "confusion.csv", "confusion.png", "per_class_f1.png"}) {
    EXPECT_TRUE(fs::is_regular_file(Out("run", file))) << file;
  }
  std::vector<std::string> artifacts;
  for (const auto& a : OfKind(run.events, "artifact")) {
    artifacts.push_back(Field(a, "name").string_value());
    EXPECT_TRUE(fs::path(Field(a, "path").string_value()).is_absolute());
  }
  EXPECT_THAT(artifacts, ::testing::UnorderedElementsAre(
                             "config.json", "metrics.csv", "confusion.csv",
                             "confusion.png", "per_class_f1.png"));
  // metrics.csv: a header and one row per epoch.
  absl::StatusOr<MetricsTable> table =
      MetricsTable::FromCsv(testing::ReadFileOrEmpty(Out("run", "metrics.csv")));
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->rows().size(), 2u);
  const cv::Mat png = cv::imread(Out("run", "confusion.png"));
  EXPECT_GT(png.cols, 18 * 30);
  EXPECT_GT(png.rows, 18 * 30);
  const std::string csv = testing::ReadFileOrEmpty(Out("run", "confusion.csv"));
  EXPECT_THAT(csv, HasSubstr("wear/male/<30"));

  const auto& summary = run.events.back();
  EXPECT_EQ(Field(summary, "metric").string_value(), "val_f1");
  EXPECT_EQ(Field(summary, "epochs").number_value(), 2);
  EXPECT_FALSE(Field(summary, "stopped_early").bool_value());
  EXPECT_EQ(Field(summary, "best_epoch").number_value(), run.result.best_epoch);
}

TEST_F(TrainerTest, SameSeedAndThreadsGiveIdenticalMetrics) {
  const std::string extra = R"(
train:
  epochs: 2
  batch_size: 16
augment:
  mixup: {p: 0.5}
model:
  name: small_cnn
  dropout: 0.2
)";
  // The first run detects faces (cold detection cache), the second finds
  // them cached: the input pixels must not depend on that.
  const std::string cache = work_.Join("cache-ab");
  const RunOutput a = Train(extra, "a", "", nullptr, "", cache);
  const RunOutput b = Train(extra, "b", "", nullptr, "", cache);
  ASSERT_TRUE(a.result.status.ok()) << a.result.status;
  ASSERT_TRUE(b.result.status.ok()) << b.result.status;
  const auto ma = LearningMetrics(a);
  ASSERT_EQ(ma.size(), 2u);
  EXPECT_EQ(ma, LearningMetrics(b));
  // A different seed trains differently (so the comparison above means
  // something).
  const RunOutput c = Train(extra + "\nseed: 8\n", "c");
  ASSERT_TRUE(c.result.status.ok()) << c.result.status;
  EXPECT_NE(ma, LearningMetrics(c));
}

TEST_F(TrainerTest, ResumeContinuesBitIdentically) {
  // Everything with state across epochs: AdamW moments, a cosine schedule,
  // CutMix, dropout, BatchNorm statistics, gradient clipping.
  const std::string extra = R"(
train:
  epochs: 4
  batch_size: 16
augment:
  cutmix: {p: 0.5}
model:
  name: small_cnn
  dropout: 0.3
optimizer:
  lr: 0.003
  grad_clip_norm: 5.0
scheduler:
  name: cosine
early_stopping:
  patience: 10
)";
  // Each attempt starts with a cold face-detection cache, as on a fresh
  // host; the resumed attempt then finds the cache the first one filled.
  const RunOutput straight =
      Train(extra, "straight", "", nullptr, "", work_.Join("cache-straight"));
  ASSERT_TRUE(straight.result.status.ok()) << straight.result.status;

  // Interrupted run: keep epoch 2's last.ckpt, as a worker would have
  // uploaded it, then continue from it in a fresh directory.
  const std::string snapshot = work_.Join("epoch2.ckpt");
  const std::string cache = work_.Join("cache-attempts");
  const RunOutput first = Train(extra, "first", "", [&](const std::string& line) {
    auto e = ParseEvent(line);
    if (e && Kind(*e) == "checkpoint" &&
        Field(*e, "kind").string_value() == "last" &&
        Field(*e, "epoch").number_value() == 2) {
      fs::copy_file(Field(*e, "path").string_value(), snapshot);
    }
  }, "", cache);
  ASSERT_TRUE(first.result.status.ok()) << first.result.status;
  ASSERT_TRUE(fs::is_regular_file(snapshot));
  const RunOutput resumed =
      Train(extra, "resumed", snapshot, nullptr, "", cache);
  ASSERT_TRUE(resumed.result.status.ok()) << resumed.result.status;
  ASSERT_EQ(Kind(resumed.events.front()), "start");
  EXPECT_EQ(Field(resumed.events.front(), "start_epoch").number_value(), 3);

  const auto expected = LearningMetrics(straight);
  const auto got = LearningMetrics(resumed);
  ASSERT_EQ(got.size(), 2u);
  for (int epoch : {3, 4}) {
    ASSERT_EQ(got.count(epoch), 1u);
    for (const std::string& name : kLearningMetrics) {
      // Bit-identical: EXPECT_EQ on doubles, no tolerance.
      EXPECT_EQ(got.at(epoch).at(name), expected.at(epoch).at(name))
          << "epoch " << epoch << " " << name;
    }
  }
  // Global steps continue, and metrics.csv holds all four epochs.
  EXPECT_EQ(Field(OfKind(resumed.events, "epoch").back(), "step").number_value(),
            Field(OfKind(straight.events, "epoch").back(), "step").number_value());
  absl::StatusOr<MetricsTable> table = MetricsTable::FromCsv(
      testing::ReadFileOrEmpty(Out("resumed", "metrics.csv")));
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->rows().size(), 4u);
  EXPECT_EQ(Field(resumed.events.back(), "epochs").number_value(), 4);
  EXPECT_EQ(Field(resumed.events.back(), "best_epoch").number_value(),
            Field(straight.events.back(), "best_epoch").number_value());

  // Resuming a finished run trains nothing, still leaves last.ckpt and the
  // earlier attempt's best.ckpt (found beside the --resume file) in --out,
  // and reports the same summary.
  const RunOutput again = Train(extra, "again", Out("straight", "last.ckpt"));
  ASSERT_TRUE(again.result.status.ok()) << again.result.status;
  EXPECT_TRUE(OfKind(again.events, "epoch").empty());
  EXPECT_EQ(Field(again.events.front(), "start_epoch").number_value(), 5);
  EXPECT_EQ(Field(again.events.back(), "epochs").number_value(), 4);
  EXPECT_EQ(Field(again.events.back(), "best_value").number_value(),
            Field(straight.events.back(), "best_value").number_value());
  EXPECT_TRUE(fs::is_regular_file(Out("again", "last.ckpt")));
  auto best = Checkpoint::Read(Out("again", "best.ckpt"), torch::kCPU);
  ASSERT_TRUE(best.ok()) << best.status();
  EXPECT_EQ((*best)->progress().epoch,
            Field(straight.events.back(), "best_epoch").number_value());
}

TEST_F(TrainerTest, ResumeWithAnotherConfigIsRejected) {
  const RunOutput first = Train("\ntrain: {epochs: 1, batch_size: 16}\n", "one");
  ASSERT_TRUE(first.result.status.ok()) << first.result.status;
  const RunOutput other =
      Train("\ntrain: {epochs: 1, batch_size: 16}\noptimizer: {lr: 0.1}\n",
            "other", Out("one", "last.ckpt"));
  EXPECT_EQ(other.result.exit_code(), 2);
  EXPECT_THAT(std::string(other.result.status.message()), HasSubstr("lr"));
}

TEST_F(TrainerTest, EarlyStoppingStopsAndKeepsTheBestEpoch) {
  // An lr this small cannot move val_f1 by min_delta: epoch 1 stays best and
  // patience 1 stops the run after epoch 2 of 10.
  const RunOutput run = Train(R"(
train:
  epochs: 10
  batch_size: 16
optimizer:
  name: sgd
  lr: 1.0e-12
early_stopping:
  patience: 1
  min_delta: 0.05
)",
                              "early");
  ASSERT_TRUE(run.result.status.ok()) << run.result.status;
  EXPECT_TRUE(run.result.stopped_early);
  EXPECT_EQ(OfKind(run.events, "epoch").size(), 2u);
  const auto stops = OfKind(run.events, "early_stop");
  ASSERT_EQ(stops.size(), 1u);
  EXPECT_EQ(Field(stops[0], "epoch").number_value(), 2);
  EXPECT_EQ(Field(stops[0], "best_epoch").number_value(), 1);
  EXPECT_EQ(Field(stops[0], "metric").string_value(), "val_f1");
  const auto& summary = run.events.back();
  EXPECT_EQ(Kind(summary), "summary");
  EXPECT_TRUE(Field(summary, "stopped_early").bool_value());
  EXPECT_EQ(Field(summary, "best_epoch").number_value(), 1);
  EXPECT_EQ(Field(summary, "epochs").number_value(), 2);
  // best.ckpt is epoch 1's; last.ckpt epoch 2's.
  auto best = Checkpoint::Read(Out("early", "best.ckpt"), torch::kCPU);
  ASSERT_TRUE(best.ok()) << best.status();
  EXPECT_EQ((*best)->progress().epoch, 1);
  auto last = Checkpoint::Read(Out("early", "last.ckpt"), torch::kCPU);
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ((*last)->progress().epoch, 2);
  EXPECT_EQ((*last)->progress().bad_epochs, 1);
}

TEST_F(TrainerTest, FullSplitTrainsFixedEpochsWithoutValidation) {
  const RunOutput run = Train(R"(
data:
  dataset: mask
  image_width: 48
  image_height: 64
  split: full
train:
  epochs: 2
  batch_size: 16
)",
                              "full");
  ASSERT_TRUE(run.result.status.ok()) << run.result.status;
  const auto epochs = OfKind(run.events, "epoch");
  ASSERT_EQ(epochs.size(), 2u);
  for (const auto& e : epochs) {
    EXPECT_TRUE(Metric(e, "train_loss").has_value());
    EXPECT_FALSE(Metric(e, "val_f1").has_value());
    EXPECT_FALSE(Metric(e, "val_loss").has_value());
    EXPECT_FALSE(Has(e, "confusion"));
  }
  EXPECT_EQ(Field(Field(run.events.front(), "data").struct_value(), "val")
                .number_value(),
            0);
  const auto& summary = run.events.back();
  EXPECT_EQ(Field(summary, "best_epoch").number_value(), 2);
  EXPECT_EQ(Field(summary, "best_value").kind_case(),
            google::protobuf::Value::kNullValue);
  auto best = Checkpoint::Read(Out("full", "best.ckpt"), torch::kCPU);
  ASSERT_TRUE(best.ok()) << best.status();
  EXPECT_EQ((*best)->progress().epoch, 2);
  EXPECT_FALSE(fs::exists(Out("full", "confusion.csv")));
}

TEST_F(TrainerTest, NanLossIsANonRetryableErrorNamingEpochAndStep) {
  const RunOutput run = Train(R"(
train:
  epochs: 3
  batch_size: 16
optimizer:
  name: sgd
  lr: 1.0e+30
)",
                              "nan");
  EXPECT_EQ(run.result.exit_code(), 3);
  ASSERT_FALSE(run.events.empty());
  const auto& error = run.events.back();
  ASSERT_EQ(Kind(error), "error");
  EXPECT_FALSE(Field(error, "retryable").bool_value());
  const int epoch = static_cast<int>(Field(error, "epoch").number_value());
  const int64_t step = static_cast<int64_t>(Field(error, "step").number_value());
  EXPECT_GE(epoch, 1);
  EXPECT_GE(step, 1);
  const std::string message = Field(error, "message").string_value();
  EXPECT_THAT(message, ::testing::ContainsRegex("NaN|infinite"));
  EXPECT_THAT(message, HasSubstr(absl::StrCat("epoch ", epoch, ", step ", step)));
}

TEST_F(TrainerTest, MissingDataDirectoryIsANonRetryableError) {
  const RunOutput run = Train("\ntrain: {epochs: 1}\n", "nodata", "", nullptr,
                              work_.Join("no-such-dir"));
  EXPECT_EQ(run.result.exit_code(), 3);
  ASSERT_EQ(run.events.size(), 1u);
  EXPECT_EQ(Kind(run.events[0]), "error");
  EXPECT_FALSE(Field(run.events[0], "retryable").bool_value());
  EXPECT_THAT(Field(run.events[0], "message").string_value(),
              HasSubstr("no-such-dir"));
}

TEST_F(TrainerTest, ContradictoryConfigsFailBeforeTraining) {
  struct Case {
    std::string yaml;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"\ntrain: {epochs: 1, batch_size: 1}\naugment: {cutmix: {p: 0.5}}\n",
       "augment.cutmix.p"},
      {"\ntrain: {epochs: 1}\nmodel: {name: vgg16}\n", "model.name"},
      {"\ntrain: {epochs: 1}\ndata: {dataset: mask, layout: image_folder}\n"
       "model: {name: small_cnn, multi_head: true}\n",
       "model.multi_head"},
      {"\ntrain: {epochs: 1}\nmodel: {name: small_cnn, num_classes: 10}\n",
       "model.num_classes"},
      {"\ntrain: {epochs: 1}\nearly_stopping: {metric: val_auc}\n",
       "early_stopping.metric"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const RunOutput run = Train(cases[i].yaml, absl::StrCat("bad", i));
    EXPECT_EQ(run.result.exit_code(), 2) << cases[i].yaml;
    ASSERT_FALSE(run.events.empty());
    EXPECT_TRUE(OfKind(run.events, "start").empty());
    EXPECT_EQ(Kind(run.events.back()), "error");
    EXPECT_FALSE(Field(run.events.back(), "retryable").bool_value());
    EXPECT_THAT(std::string(run.result.status.message()),
                HasSubstr(cases[i].field));
  }
}

TEST_F(TrainerTest, TooManyUnreadableImagesIsANonRetryableError) {
  // A copy of the data set with a few images truncated to 0 bytes.
  const std::string data = work_.Join("broken");
  fs::copy(DataDir(), data, fs::copy_options::recursive);
  int broken = 0;
  for (const auto& entry :
       fs::recursive_directory_iterator(data + "/train/images")) {
    if (entry.is_regular_file() && entry.path().filename() == "normal.jpg" &&
        broken < 3) {
      std::ofstream(entry.path(), std::ios::trunc);
      ++broken;
    }
  }
  ASSERT_EQ(broken, 3);
  const RunOutput run = Train(R"(
data:
  dataset: mask
  image_width: 48
  image_height: 64
  max_bad_fraction: 0.0
train: {epochs: 2, batch_size: 16}
)",
                              "bad", "", nullptr, data);
  EXPECT_EQ(run.result.exit_code(), 3);
  ASSERT_FALSE(run.events.empty());
  EXPECT_EQ(Kind(run.events.back()), "error");
  EXPECT_FALSE(Field(run.events.back(), "retryable").bool_value());
  const auto bad = OfKind(run.events, "bad_samples");
  ASSERT_FALSE(bad.empty());
  EXPECT_GE(Field(bad[0], "count").number_value(), 1);
  EXPECT_THAT(Field(bad[0], "examples").list_value().values(0).struct_value()
                  .fields()
                  .at("path")
                  .string_value(),
              HasSubstr("normal.jpg"));
}

TEST_F(TrainerTest, MultiHeadModelTrains) {
  const RunOutput run = Train(R"(
train: {epochs: 1, batch_size: 16}
model:
  name: small_cnn
  multi_head: true
  head_weights: {mask: 1.0, gender: 0.5, age: 0.5}
)",
                              "multi");
  ASSERT_TRUE(run.result.status.ok()) << run.result.status;
  const auto epochs = OfKind(run.events, "epoch");
  ASSERT_EQ(epochs.size(), 1u);
  EXPECT_GT(*Metric(epochs[0], "train_loss"), 0.0);
  EXPECT_TRUE(Metric(epochs[0], "val_f1").has_value());
}

}  // namespace
}  // namespace sweepq::worker
