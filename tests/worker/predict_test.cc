// The predict job (worker/pipeline/predict.h) and the job dispatch
// (worker/pipeline/job.h) on real JPEGs from the synthetic generator and a
// small CNN trained for two epochs by RunTraining.
#include "worker/pipeline/predict.h"

#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/run_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"
#include "tests/worker/train_test_util.h"
#include "torch/torch.h"
#include "worker/pipeline/checkpoint.h"
#include "worker/pipeline/csv.h"
#include "worker/pipeline/job.h"
#include "worker/pipeline/metrics.h"
#include "worker/pipeline/optim.h"
#include "worker/pipeline/synthetic.h"
#include "worker/pipeline/train_config.h"
#include "worker/pipeline/trainer.h"

namespace sweepq::worker {
namespace {

namespace fs = std::filesystem;
using ::sweepq::testing::Field;
using ::sweepq::testing::Kind;
using ::sweepq::testing::Metric;
using ::sweepq::testing::OfKind;
using ::sweepq::testing::ParseEvent;
using ::testing::HasSubstr;

// The source run: a small CNN at a low resolution, two epochs, one thread
// (so it repeats bit for bit). max_bad_fraction leaves room for the one
// corrupt evaluation image of UnreadableEvalImageGetsARowAndABadSamplesEvent.
constexpr char kTrainConfig[] = R"(
data:
  dataset: mask
  image_width: 48
  image_height: 64
  max_bad_fraction: 0.2
model:
  name: small_cnn
train:
  epochs: 2
  batch_size: 16
seed: 7
threads: 1
)";

struct JobOutput {
  TrainResult result;
  std::vector<google::protobuf::Struct> events;
};

// Reads a CSV written by the job: header and rows.
CsvTable ReadTable(const std::string& path) {
  absl::StatusOr<CsvTable> table = ReadCsv(path);
  EXPECT_TRUE(table.ok()) << table.status();
  return table.ok() ? *table : CsvTable();
}

// The probability columns of probabilities.csv, row by row.
std::vector<std::vector<double>> Probabilities(const CsvTable& table) {
  std::vector<std::vector<double>> out;
  for (const CsvRow& row : table.rows) {
    std::vector<double> p;
    for (size_t c = 1; c < row.fields.size(); ++c) {
      double v = 0;
      EXPECT_TRUE(absl::SimpleAtod(row.fields[c], &v)) << row.fields[c];
      p.push_back(v);
    }
    out.push_back(p);
  }
  return out;
}

// Runs jobs into a per-test work directory; no data set of its own.
class JobTest : public ::testing::Test {
 protected:
  // Returns a predict job config with `job_yaml` lines under `job:`.
  static v1::RunConfig JobConfig(const std::string& job_yaml) {
    absl::StatusOr<v1::RunConfig> config = LoadRunConfigYaml(
        absl::StrCat("data: {dataset: mask}\nthreads: 1\njob:\n  kind: "
                     "predict\n",
                     job_yaml),
        "job.yaml");
    EXPECT_TRUE(config.ok()) << config.status();
    return config.ok() ? *config : v1::RunConfig();
  }

  // Runs `config` on `models` over `data_dir` into work directory `out`.
  JobOutput Run(const v1::RunConfig& config,
                const std::vector<std::string>& models, const std::string& out,
                const std::string& data_dir, const std::string& cache_dir) {
    MemoryEventSink sink;
    JobOptions options;
    options.config = config;
    options.model_paths = models;
    options.data_dir = data_dir;
    options.out_dir = work_.Join(out);
    options.cache_dir = cache_dir;
    options.events = &sink;
    JobOutput output;
    output.result = RunJob(options);
    for (const std::string& line : sink.lines()) {
      std::optional<google::protobuf::Struct> e = ParseEvent(line);
      EXPECT_TRUE(e.has_value()) << "not JSON: " << line;
      if (e.has_value()) output.events.push_back(*e);
    }
    return output;
  }

  std::string Out(const std::string& out, const std::string& file) const {
    return work_.Join(out) + "/" + file;
  }

  static std::string ErrorMessage(const JobOutput& output) {
    const auto errors = OfKind(output.events, "error");
    return errors.empty() ? ""
                          : Field(errors.back(), "message").string_value();
  }

  // Writes a checkpoint of an untrained small CNN for 48 x 64 images of the
  // training config with `data_yaml` as its data section (and `model_yaml`
  // as its model section), without training.
  std::string UntrainedCheckpoint(const std::string& name,
                                  const std::string& data_yaml,
                                  const std::string& model_yaml =
                                      "{name: small_cnn}") {
    absl::StatusOr<v1::RunConfig> raw = LoadRunConfigYaml(
        absl::StrCat("data: ", data_yaml, "\nmodel: ", model_yaml,
                     "\ntrain: {epochs: 1}\n"),
        name);
    EXPECT_TRUE(raw.ok()) << raw.status();
    if (!raw.ok()) return "";
    absl::StatusOr<v1::RunConfig> config = ResolveTrainConfig(*raw, 1);
    EXPECT_TRUE(config.ok()) << config.status();
    if (!config.ok()) return "";
    const int classes =
        static_cast<int>(MaskClassNames(std::vector<int>(
                             config->data().age_bounds().begin(),
                             config->data().age_bounds().end()))
                             .size());
    auto model = CreateClassifier(config->model(), classes, 1, 64, 48);
    EXPECT_TRUE(model.ok()) << model.status();
    if (!model.ok()) return "";
    auto optimizer =
        CreateOptimizer(config->optimizer(), (*model)->Parameters());
    auto schedule = LrSchedule::Create(config->scheduler(), 1e-3, 2, true, 0);
    EXPECT_TRUE(optimizer.ok() && schedule.ok());
    if (!optimizer.ok() || !schedule.ok()) return "";
    const std::string path = work_.Join(name + ".ckpt");
    EXPECT_TRUE(SaveCheckpoint(path, **model, **optimizer, **schedule,
                               TrainingProgress(), RunConfigToJson(*config),
                               "fingerprint")
                    .ok());
    return path;
  }

  testing::TempDir work_;
};

// The data set and the trained source run, made once per process (about
// 10 s of rendering and 8 s of training and face detection on two cores).
class PredictTest : public JobTest {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    SyntheticOptions options;
    options.out_dir = DataDir();
    options.people = 24;
    options.eval_images = 70;
    options.seed = 3;
    options.threads = 2;
    absl::StatusOr<SyntheticManifest> manifest =
        WriteSyntheticMaskDataset(options);
    ASSERT_TRUE(manifest.ok()) << manifest.status();

    const std::string config = dir_->Join("train.yaml");
    testing::WriteTextFile(config, kTrainConfig);
    MemoryEventSink sink;
    TrainerOptions train;
    train.config_path = config;
    train.data_dir = DataDir();
    train.out_dir = dir_->Join("run");
    train.cache_dir = CacheDir();
    train.events = &sink;
    const TrainResult result = RunTraining(train);
    ASSERT_TRUE(result.status.ok()) << result.status;
    ASSERT_TRUE(result.best_value.has_value());
    best_val_f1_ = new double(*result.best_value);
    for (const std::string& line : sink.lines()) {
      std::optional<google::protobuf::Struct> e = ParseEvent(line);
      if (e && Kind(*e) == "epoch" &&
          Field(*e, "epoch").number_value() == result.best_epoch) {
        best_val_acc_ = new double(*Metric(*e, "val_acc"));
      }
    }
    ASSERT_NE(best_val_acc_, nullptr);
  }

  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
    delete best_val_f1_;
    best_val_f1_ = nullptr;
    delete best_val_acc_;
    best_val_acc_ = nullptr;
  }

  static std::string DataDir() { return dir_->Join("data"); }
  static std::string CacheDir() { return dir_->Join("cache"); }
  static std::string BestCheckpoint() { return dir_->Join("run/best.ckpt"); }

  // Runs `config` on `models` over the synthetic data set (or `data_dir`).
  JobOutput Predict(const v1::RunConfig& config,
                    const std::vector<std::string>& models,
                    const std::string& out, const std::string& data_dir = "") {
    return Run(config, models, out, data_dir.empty() ? DataDir() : data_dir,
               CacheDir());
  }

  static testing::TempDir* dir_;
  static double* best_val_f1_;
  static double* best_val_acc_;
};

testing::TempDir* PredictTest::dir_ = nullptr;
double* PredictTest::best_val_f1_ = nullptr;
double* PredictTest::best_val_acc_ = nullptr;

TEST_F(PredictTest, SubmissionHasOneRowPerInfoRowInOrder) {
  const JobOutput out = Predict(JobConfig("  source_runs: [1]\n"),
                            {BestCheckpoint()}, "eval");
  ASSERT_TRUE(out.result.status.ok()) << out.result.status;
  EXPECT_EQ(out.result.exit_code(), 0);

  const CsvTable info = ReadTable(DataDir() + "/eval/info.csv");
  const CsvTable submission = ReadTable(Out("eval", "submission.csv"));
  EXPECT_THAT(submission.header, ::testing::ElementsAre("ImageID", "ans"));
  ASSERT_EQ(submission.rows.size(), info.rows.size());
  ASSERT_EQ(info.rows.size(), 70u);
  for (size_t i = 0; i < info.rows.size(); ++i) {
    EXPECT_EQ(submission.rows[i].fields[0], info.rows[i].fields[0]) << i;
    int ans = -1;
    ASSERT_TRUE(absl::SimpleAtoi(submission.rows[i].fields[1], &ans));
    EXPECT_GE(ans, 0);
    EXPECT_LT(ans, 18);
  }

  const CsvTable probabilities = ReadTable(Out("eval", "probabilities.csv"));
  ASSERT_EQ(probabilities.header.size(), 19u);
  EXPECT_EQ(probabilities.header[0], "ImageID");
  EXPECT_EQ(probabilities.header[1], "wear/male/<30");
  EXPECT_EQ(probabilities.header[18], "normal/female/>=60");
  const auto p = Probabilities(probabilities);
  ASSERT_EQ(p.size(), info.rows.size());
  for (size_t i = 0; i < p.size(); ++i) {
    double sum = 0;
    size_t arg_max = 0;
    for (size_t c = 0; c < p[i].size(); ++c) {
      sum += p[i][c];
      if (p[i][c] > p[i][arg_max]) arg_max = c;
    }
    EXPECT_NEAR(sum, 1.0, 1e-5) << i;
    EXPECT_EQ(submission.rows[i].fields[1], absl::StrCat(arg_max)) << i;
  }

  // Events: start first, summary last, both files as artifacts, a final
  // progress event with everything done, scores from answers.csv.
  ASSERT_GE(out.events.size(), 5u);
  EXPECT_EQ(Kind(out.events.front()), "start");
  EXPECT_EQ(Field(out.events.front(), "kind").string_value(), "predict");
  EXPECT_EQ(Kind(out.events.back()), "summary");
  EXPECT_EQ(Field(out.events.back(), "images").number_value(), 70);
  EXPECT_EQ(Field(out.events.back(), "models").number_value(), 1);
  std::vector<std::string> artifacts;
  for (const auto& a : OfKind(out.events, "artifact")) {
    artifacts.push_back(Field(a, "name").string_value());
    EXPECT_TRUE(fs::is_regular_file(Field(a, "path").string_value()));
  }
  EXPECT_THAT(artifacts, ::testing::UnorderedElementsAre("submission.csv",
                                                         "probabilities.csv"));
  const auto progress = OfKind(out.events, "progress");
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(Field(progress.back(), "done").number_value(), 70);
  EXPECT_EQ(Field(progress.back(), "total").number_value(), 70);
  const auto metrics = OfKind(out.events, "metrics");
  ASSERT_EQ(metrics.size(), 1u);
  EXPECT_EQ(Field(metrics[0], "step").number_value(), 1);
  ASSERT_TRUE(Metric(metrics[0], "pred_acc").has_value());
  ASSERT_TRUE(Metric(metrics[0], "pred_f1").has_value());

  // pred_acc / pred_f1 are the scores of submission.csv against
  // answers.csv, computed independently here.
  const CsvTable answers = ReadTable(DataDir() + "/eval/answers.csv");
  std::map<std::string, int> truth;
  for (const CsvRow& row : answers.rows) {
    truth[row.fields[0]] = std::stoi(row.fields[1]);
  }
  ConfusionMatrix confusion(18);
  for (const CsvRow& row : submission.rows) {
    ASSERT_TRUE(confusion.Add(truth.at(row.fields[0]), std::stoi(row.fields[1]))
                    .ok());
  }
  EXPECT_DOUBLE_EQ(*Metric(metrics[0], "pred_acc"),
                   confusion.Compute().accuracy);
  EXPECT_DOUBLE_EQ(*Metric(metrics[0], "pred_f1"),
                   confusion.Compute().macro_f1);
}

TEST_F(PredictTest, EnsembleOfARunWithItselfEqualsTheRun) {
  const JobOutput single = Predict(JobConfig("  source_runs: [1]\n"),
                               {BestCheckpoint()}, "single");
  ASSERT_TRUE(single.result.status.ok()) << single.result.status;
  const JobOutput twice = Predict(JobConfig("  source_runs: [1, 2]\n"),
                              {BestCheckpoint(), BestCheckpoint()}, "twice");
  ASSERT_TRUE(twice.result.status.ok()) << twice.result.status;
  EXPECT_EQ(Field(twice.events.back(), "models").number_value(), 2);
  EXPECT_EQ(Field(OfKind(twice.events, "progress").back(), "total")
                .number_value(),
            140);

  const auto a = Probabilities(ReadTable(Out("single", "probabilities.csv")));
  const auto b = Probabilities(ReadTable(Out("twice", "probabilities.csv")));
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].size(), b[i].size());
    for (size_t c = 0; c < a[i].size(); ++c) {
      EXPECT_NEAR(a[i][c], b[i][c], 1e-6) << i << "," << c;
    }
  }
  EXPECT_EQ(testing::ReadFileOrEmpty(Out("single", "submission.csv")),
            testing::ReadFileOrEmpty(Out("twice", "submission.csv")));
}

TEST_F(PredictTest, ValSplitScoresEqualTheRunsBestValidation) {
  // Same images, same eval transforms, same model, same metric code: the
  // scores must be the trainer's own for its best epoch. (batch_size equal
  // to the trainer's validation batch, so even the float sums match.)
  const JobOutput out =
      Predict(JobConfig("  source_runs: [1]\n  split: val\n  batch_size: 16\n"),
          {BestCheckpoint()}, "val");
  ASSERT_TRUE(out.result.status.ok()) << out.result.status;
  const auto metrics = OfKind(out.events, "metrics");
  ASSERT_EQ(metrics.size(), 1u);
  EXPECT_NEAR(*Metric(metrics[0], "pred_f1"), *best_val_f1_, 1e-12);
  EXPECT_NEAR(*Metric(metrics[0], "pred_acc"), *best_val_acc_, 1e-12);

  const CsvTable submission = ReadTable(Out("val", "submission.csv"));
  EXPECT_THAT(submission.header, ::testing::ElementsAre("path", "ans"));
  ASSERT_FALSE(submission.rows.empty());
  for (const CsvRow& row : submission.rows) {
    EXPECT_TRUE(absl::StartsWith(row.fields[0], "train/images/"))
        << row.fields[0];
    EXPECT_TRUE(fs::is_regular_file(DataDir() + "/" + row.fields[0]));
  }
  EXPECT_EQ(Field(out.events.back(), "images").number_value(),
            static_cast<double>(submission.rows.size()));
}

// Returns the share of rows of `submission` (id,ans) whose mask state
// (class / 6) is the one `truth` gives for the id.
double MaskStateAccuracy(const CsvTable& submission,
                         const std::map<std::string, int>& truth) {
  int right = 0;
  for (const CsvRow& row : submission.rows) {
    right += std::stoi(row.fields[1]) / 6 == truth.at(row.fields[0]) / 6;
  }
  return static_cast<double>(right) / std::max<size_t>(1, submission.rows.size());
}

TEST_F(PredictTest, EvalSetScoresAreCloseToValidationScores) {
  // The eval set holds other people than the validation split, so its
  // scores are only close to the run's validation scores. The two-epoch
  // model has learned the mask state (~70% right, chance 1/3) but hardly
  // gender and age, so its 18-class macro-F1 is ~0.1 on both sets (chance
  // ~0.05) and moves by several points per image on 35-70 images: the F1
  // tolerance 0.1 only catches gross errors. What shows that eval images
  // go through the same pipeline as validation images is the mask state:
  // its accuracy must match within 0.2 (about two standard deviations of
  // the difference of two accuracies near 0.7 on 35 and 70 images) and
  // stay far above chance; wrong pixels (no face crop, another size or
  // normalisation, BGR for RGB) should fall towards 1/3.
  const JobOutput eval = Predict(JobConfig("  source_runs: [1]\n"),
                             {BestCheckpoint()}, "eval_f1");
  const JobOutput val = Predict(JobConfig("  source_runs: [1]\n  split: val\n"),
                            {BestCheckpoint()}, "val_f1");
  ASSERT_TRUE(eval.result.status.ok()) << eval.result.status;
  ASSERT_TRUE(val.result.status.ok()) << val.result.status;
  const auto eval_metrics = OfKind(eval.events, "metrics");
  const auto val_metrics = OfKind(val.events, "metrics");
  ASSERT_EQ(eval_metrics.size(), 1u);
  ASSERT_EQ(val_metrics.size(), 1u);
  const double eval_f1 = *Metric(eval_metrics[0], "pred_f1");
  const double val_f1 = *Metric(val_metrics[0], "pred_f1");

  std::map<std::string, int> truth;
  for (const CsvRow& row :
       ReadTable(DataDir() + "/eval/answers.csv").rows) {
    truth[row.fields[0]] = std::stoi(row.fields[1]);
  }
  DatasetOptions options;
  options.root = DataDir();
  absl::StatusOr<Dataset> dataset = LoadDataset(options);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  for (const Sample& s : dataset->samples) {
    truth[s.path.substr(DataDir().size() + 1)] = s.label;
  }
  const double eval_mask =
      MaskStateAccuracy(ReadTable(Out("eval_f1", "submission.csv")), truth);
  const double val_mask =
      MaskStateAccuracy(ReadTable(Out("val_f1", "submission.csv")), truth);
  EXPECT_NEAR(eval_f1, val_f1, 0.1);
  EXPECT_NEAR(eval_mask, val_mask, 0.2);
  EXPECT_GT(eval_mask, 0.5);
}

TEST_F(PredictTest, HflipOnASymmetricInputEqualsNoTta) {
  absl::StatusOr<SourceModel> source =
      LoadSourceModel(BestCheckpoint(), torch::kCPU);
  ASSERT_TRUE(source.ok()) << source.status();
  torch::manual_seed(11);
  const torch::Tensor x = torch::randn({4, 3, 64, 48});
  const torch::Tensor symmetric = (x + x.flip({3})) / 2;
  TtaPlan none;
  TtaPlan hflip;
  hflip.hflip = true;
  auto p_none = PredictProbabilities(*source->model, symmetric, none);
  auto p_flip = PredictProbabilities(*source->model, symmetric, hflip);
  ASSERT_TRUE(p_none.ok() && p_flip.ok());
  EXPECT_LT((*p_none - *p_flip).abs().max().item<double>(), 1e-6);

  // On an asymmetric input hflip is the mean of the two orientations, and
  // differs from no TTA.
  auto q_none = PredictProbabilities(*source->model, x, none);
  auto q_mirror = PredictProbabilities(*source->model, x.flip({3}), none);
  auto q_flip = PredictProbabilities(*source->model, x, hflip);
  ASSERT_TRUE(q_none.ok() && q_mirror.ok() && q_flip.ok());
  EXPECT_LT((*q_flip - (*q_none + *q_mirror) / 2).abs().max().item<double>(),
            1e-6);
  EXPECT_GT((*q_flip - *q_none).abs().max().item<double>(), 1e-5);
}

TEST_F(PredictTest, MulticropAndScaleViewsRunOnTheRealModel) {
  absl::StatusOr<SourceModel> source =
      LoadSourceModel(BestCheckpoint(), torch::kCPU);
  ASSERT_TRUE(source.ok()) << source.status();
  torch::manual_seed(12);
  const torch::Tensor x = torch::randn({2, 3, 64, 48});
  TtaPlan plan;
  plan.multicrop = true;
  plan.scales = {0.75, 1.25};
  plan.hflip = true;
  EXPECT_EQ(plan.views(), 16);
  const std::vector<torch::Tensor> views = TtaViews(x, plan);
  ASSERT_EQ(views.size(), 16u);
  EXPECT_TRUE(views[0].equal(x));
  for (int i = 1; i <= 5; ++i) {
    EXPECT_EQ(views[i].sizes(), x.sizes()) << i;
  }
  EXPECT_EQ(views[6].sizes(), (std::vector<int64_t>{2, 3, 48, 36}));
  EXPECT_EQ(views[7].sizes(), (std::vector<int64_t>{2, 3, 80, 60}));
  for (int i = 0; i < 8; ++i) {
    EXPECT_TRUE(views[8 + i].equal(views[i].flip({3}))) << i;
  }
  // The top-left crop is the 58 x 43 corner (90%) resized back.
  namespace F = torch::nn::functional;
  const torch::Tensor corner = F::interpolate(
      x.narrow(2, 0, 58).narrow(3, 0, 43),
      F::InterpolateFuncOptions()
          .size(std::vector<int64_t>{64, 48})
          .mode(torch::kBilinear)
          .align_corners(false));
  EXPECT_TRUE(views[1].allclose(corner));

  auto p = PredictProbabilities(*source->model, x, plan);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->sizes(), (std::vector<int64_t>{2, 18}));
  EXPECT_TRUE(p->sum(1).allclose(torch::ones({2})));
  TtaPlan none;
  auto base = PredictProbabilities(*source->model, x, none);
  ASSERT_TRUE(base.ok());
  EXPECT_GT((*p - *base).abs().max().item<double>(), 1e-5);
}

TEST(TtaPlanTest, JobTtaWinsOverTheSourcesAndScaleHasDefaults) {
  v1::TtaConfig job;
  v1::TtaConfig source;
  source.add_transforms("hflip");
  TtaPlan plan = TtaPlanFor(job, source);
  EXPECT_TRUE(plan.hflip);
  EXPECT_FALSE(plan.multicrop);
  EXPECT_EQ(plan.views(), 2);

  job.add_transforms("scale");
  plan = TtaPlanFor(job, source);
  EXPECT_FALSE(plan.hflip);
  EXPECT_THAT(plan.scales, ::testing::ElementsAre(0.9, 1.1));
  EXPECT_EQ(plan.views(), 3);

  job.add_scales(0.8);
  job.add_transforms("multicrop");
  plan = TtaPlanFor(job, source);
  EXPECT_THAT(plan.scales, ::testing::ElementsAre(0.8));
  EXPECT_TRUE(plan.multicrop);
  EXPECT_EQ(plan.views(), 7);
}

TEST_F(PredictTest, JobTtaIsAppliedAndCountedInTheSummary) {
  const JobOutput plain = Predict(JobConfig("  source_runs: [1]\n"),
                              {BestCheckpoint()}, "plain");
  const JobOutput tta =
      Predict(JobConfig("  source_runs: [1]\n  tta: {transforms: [hflip]}\n"),
          {BestCheckpoint()}, "tta");
  ASSERT_TRUE(plain.result.status.ok() && tta.result.status.ok());
  EXPECT_EQ(Field(plain.events.back(), "tta_views").list_value().values(0)
                .number_value(),
            1);
  EXPECT_EQ(Field(tta.events.back(), "tta_views").list_value().values(0)
                .number_value(),
            2);
  EXPECT_NE(testing::ReadFileOrEmpty(Out("plain", "probabilities.csv")),
            testing::ReadFileOrEmpty(Out("tta", "probabilities.csv")));
}

TEST_F(PredictTest, MultiHeadModelGivesProbabilitiesOverTheEighteenClasses) {
  const std::string multi =
      UntrainedCheckpoint("multi",
                          "{dataset: mask, image_width: 48, image_height: 64}",
                          "{name: small_cnn, multi_head: true}");
  const JobOutput out =
      Predict(JobConfig("  source_runs: [1]\n"), {multi}, "multi");
  ASSERT_TRUE(out.result.status.ok()) << out.result.status;
  const auto p = Probabilities(ReadTable(Out("multi", "probabilities.csv")));
  ASSERT_EQ(p.size(), 70u);
  for (const auto& row : p) {
    ASSERT_EQ(row.size(), 18u);
    double sum = 0;
    for (double v : row) sum += v;
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
}

TEST_F(PredictTest, UnreadableEvalImageGetsARowAndABadSamplesEvent) {
  // An eval-only copy of the data set with one image corrupted.
  const std::string data = work_.Join("data");
  fs::create_directories(data);
  fs::copy(DataDir() + "/eval", data + "/eval", fs::copy_options::recursive);
  const CsvTable info = ReadTable(data + "/eval/info.csv");
  const std::string broken = data + "/eval/images/" + info.rows[3].fields[0];
  testing::WriteTextFile(broken, "not a jpeg");

  const JobOutput out =
      Predict(JobConfig("  source_runs: [1]\n"), {BestCheckpoint()}, "bad", data);
  ASSERT_TRUE(out.result.status.ok()) << out.result.status;
  const CsvTable submission = ReadTable(Out("bad", "submission.csv"));
  ASSERT_EQ(submission.rows.size(), info.rows.size());
  EXPECT_EQ(submission.rows[3].fields[0], info.rows[3].fields[0]);
  const auto bad = OfKind(out.events, "bad_samples");
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(Field(bad[0], "count").number_value(), 1);
  const auto& examples = Field(bad[0], "examples").list_value();
  ASSERT_EQ(examples.values_size(), 1);
  EXPECT_EQ(Field(examples.values(0).struct_value(), "path").string_value(),
            broken);
  EXPECT_EQ(Field(out.events.back(), "bad_images").number_value(), 1);
}

// A source checkpoint for the tests that need no data set.
constexpr char kSourceData[] =
    "{dataset: mask, image_width: 48, image_height: 64}";

TEST_F(JobTest, MissingInfoCsvIsAPermanentErrorNamingThePath) {
  const std::string source = UntrainedCheckpoint("source", kSourceData);
  const std::string data = work_.Join("empty");
  fs::create_directories(data + "/eval/images");
  const JobOutput out = Run(JobConfig("  source_runs: [1]\n"), {source}, "x",
                            data, work_.Join("cache"));
  EXPECT_EQ(out.result.exit_code(), 3);
  EXPECT_THAT(ErrorMessage(out), HasSubstr(data + "/eval/info.csv"));
  EXPECT_FALSE(fs::exists(Out("x", "submission.csv")));

  // With info.csv but no image directory.
  fs::remove_all(data + "/eval/images");
  testing::WriteTextFile(data + "/eval/info.csv", "ImageID,ans\na.jpg,0\n");
  const JobOutput no_images = Run(JobConfig("  source_runs: [1]\n"), {source},
                                  "y", data, work_.Join("cache"));
  EXPECT_EQ(no_images.result.exit_code(), 3);
  EXPECT_THAT(ErrorMessage(no_images), HasSubstr(data + "/eval/images"));
}

TEST_F(JobTest, ModelCountMustMatchTheSourceRuns) {
  const std::string data = work_.Join("data");
  const JobOutput out = Run(JobConfig("  source_runs: [1, 2]\n"), {"a.ckpt"},
                            "count", data, "");
  EXPECT_EQ(out.result.exit_code(), 2);
  EXPECT_THAT(ErrorMessage(out), HasSubstr("--models: 1 checkpoint(s) for 2"));
  const JobOutput none =
      Run(JobConfig("  source_runs: [1]\n"), {}, "none", data, "");
  EXPECT_EQ(none.result.exit_code(), 2);
  EXPECT_THAT(ErrorMessage(none), HasSubstr("--models: required"));
}

TEST_F(JobTest, AFileThatIsNotACheckpointIsAPermanentErrorNamingIt) {
  const std::string fake = work_.Join("fake.ckpt");
  testing::WriteTextFile(fake, "this is not a checkpoint");
  const JobOutput out = Run(JobConfig("  source_runs: [1]\n"), {fake}, "fake",
                            work_.Join("data"), "");
  EXPECT_EQ(out.result.exit_code(), 3);
  ASSERT_FALSE(OfKind(out.events, "error").empty());
  EXPECT_FALSE(Field(OfKind(out.events, "error").back(), "retryable")
                   .bool_value());
  EXPECT_THAT(ErrorMessage(out), HasSubstr(fake));

  const std::string missing = work_.Join("missing.ckpt");
  const JobOutput gone = Run(JobConfig("  source_runs: [1]\n"), {missing},
                             "gone", work_.Join("data"), "");
  EXPECT_EQ(gone.result.exit_code(), 3);
  EXPECT_THAT(ErrorMessage(gone), HasSubstr(missing));
}

TEST_F(JobTest, EnsembleMembersWithOtherClassesAreRejected) {
  const std::string eighteen = UntrainedCheckpoint("eighteen", kSourceData);
  // One age bound: 12 classes instead of 18.
  const std::string twelve = UntrainedCheckpoint(
      "twelve",
      "{dataset: mask, image_width: 48, image_height: 64, age_bounds: [30]}");
  const JobOutput out = Run(JobConfig("  source_runs: [1, 2]\n"),
                            {eighteen, twelve}, "classes", work_.Join("data"),
                            "");
  EXPECT_EQ(out.result.exit_code(), 3);
  EXPECT_THAT(ErrorMessage(out), HasSubstr("predicts 12 classes"));
  EXPECT_THAT(ErrorMessage(out), HasSubstr(twelve));
}

TEST_F(JobTest, ValSplitOfARunWithoutValidationIsRejected) {
  const std::string full = UntrainedCheckpoint(
      "full", "{dataset: mask, image_width: 48, image_height: 64, split: full}");
  const JobOutput out = Run(JobConfig("  source_runs: [1]\n  split: val\n"),
                            {full}, "full", work_.Join("data"), "");
  EXPECT_EQ(out.result.exit_code(), 3);
  EXPECT_THAT(ErrorMessage(out), HasSubstr("data.split full"));
}

TEST_F(JobTest, ConfigWithoutJobIsABadConfig) {
  v1::RunConfig config;
  config.mutable_data()->set_dataset("mask");
  const JobOutput out =
      Run(config, {"a.ckpt"}, "nojob", work_.Join("data"), "");
  EXPECT_EQ(out.result.exit_code(), 2);
  EXPECT_THAT(ErrorMessage(out), HasSubstr("no job"));
}

}  // namespace
}  // namespace sweepq::worker
