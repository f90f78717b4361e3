#include "worker/pipeline/predict.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <new>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "opencv2/core.hpp"
#include "torch/nn/functional/upsampling.h"
#include "torch/torch.h"
#include "worker/pipeline/csv.h"
#include "worker/pipeline/dataset.h"
#include "worker/pipeline/face_crop.h"
#include "worker/pipeline/loader.h"
#include "worker/pipeline/metrics.h"
#include "worker/pipeline/split.h"
#include "worker/pipeline/train_report.h"
#include "worker/pipeline/transforms.h"

namespace sweepq::worker {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

// At most one progress event per this many seconds (plus the last one).
constexpr double kProgressIntervalS = 2.0;
// Corner and centre crops of multicrop.
constexpr int kMultiCrops = 5;

constexpr char kSubmission[] = "submission.csv";
constexpr char kProbabilities[] = "probabilities.csv";

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

bool IsOutOfMemory(const std::string& what) {
  return what.find("out of memory") != std::string::npos ||
         what.find("can't allocate memory") != std::string::npos;
}

RunFailure Permanent(absl::Status status) {
  return RunFailure{TrainFailure::kPermanent, std::move(status)};
}

torch::Tensor ResizeBilinear(const torch::Tensor& images, int64_t height,
                             int64_t width) {
  namespace F = torch::nn::functional;
  return F::interpolate(images, F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{height, width})
                                    .mode(torch::kBilinear)
                                    .align_corners(false));
}

// The images a job predicts, in output order.
struct PredictSet {
  // "eval" or "val".
  std::string split;
  // The images as samples (labels when known, else 0); the loader reads
  // them from here.
  Dataset dataset;
  // Indexes into dataset.samples, in output order.
  std::vector<size_t> indices;
  // The id column of the output files and its values, in output order.
  std::string id_column;
  std::vector<std::string> ids;
  // True when every sample's label is its true class.
  bool labelled = false;
};

// Reads eval/answers.csv (ImageID,ans) for the images of `set`; std::nullopt
// (with a warning) when it is unusable.
std::optional<std::vector<int>> ReadAnswers(const std::string& path,
                                            const std::vector<std::string>& ids,
                                            int num_classes) {
  absl::StatusOr<CsvTable> table = ReadCsv(path);
  if (!table.ok()) {
    LOG(WARNING) << "no scores: " << table.status();
    return std::nullopt;
  }
  absl::StatusOr<size_t> id_col = table->Column("ImageID");
  absl::StatusOr<size_t> ans_col = table->Column("ans");
  if (!id_col.ok() || !ans_col.ok()) {
    LOG(WARNING) << "no scores: "
                 << (id_col.ok() ? ans_col.status() : id_col.status());
    return std::nullopt;
  }
  absl::flat_hash_map<std::string, int> answers;
  for (const CsvRow& row : table->rows) {
    int label = -1;
    if (!absl::SimpleAtoi(row.fields[*ans_col], &label) || label < 0 ||
        label >= num_classes) {
      LOG(WARNING) << "no scores: "
                   << table->RowError(row, absl::StrCat(
                                               "ans \"", row.fields[*ans_col],
                                               "\" is not a class index"));
      return std::nullopt;
    }
    answers[row.fields[*id_col]] = label;
  }
  std::vector<int> labels;
  for (const std::string& id : ids) {
    auto it = answers.find(id);
    if (it == answers.end()) {
      LOG(WARNING) << "no scores: " << path << " has no answer for ImageID "
                   << id;
      return std::nullopt;
    }
    labels.push_back(it->second);
  }
  return labels;
}

absl::StatusOr<PredictSet> LoadEvalSet(
    const std::string& data_dir, const std::vector<std::string>& class_names) {
  const fs::path eval = fs::path(data_dir) / "eval";
  const std::string info = (eval / "info.csv").string();
  const std::string images_dir = (eval / "images").string();
  std::error_code ec;
  if (!fs::is_regular_file(info, ec)) {
    return absl::NotFoundError(absl::StrCat(
        info, " not found (job.split eval predicts the images it lists)"));
  }
  if (!fs::is_directory(images_dir, ec)) {
    return absl::NotFoundError(
        absl::StrCat("evaluation image directory ", images_dir, " not found"));
  }
  ASSIGN_OR_RETURN(std::vector<EvalImage> images, LoadMaskEvalSet(data_dir));
  PredictSet set;
  set.split = "eval";
  set.id_column = "ImageID";
  set.dataset.root = data_dir;
  set.dataset.layout = "eval";
  set.dataset.class_names = class_names;
  for (EvalImage& image : images) {
    Sample sample;
    sample.path = std::move(image.path);
    sample.person = image.image_id;
    sample.label = 0;
    set.indices.push_back(set.dataset.samples.size());
    set.dataset.samples.push_back(std::move(sample));
    set.ids.push_back(std::move(image.image_id));
  }
  const std::string answers = (eval / "answers.csv").string();
  if (fs::is_regular_file(answers, ec)) {
    if (std::optional<std::vector<int>> labels = ReadAnswers(
            answers, set.ids, static_cast<int>(class_names.size()))) {
      for (size_t i = 0; i < labels->size(); ++i) {
        set.dataset.samples[i].label = (*labels)[i];
      }
      set.labelled = true;
    }
  }
  return set;
}

absl::StatusOr<PredictSet> LoadValSet(const std::string& data_dir,
                                      const SourceModel& first) {
  const v1::RunConfig& config = first.config;
  if (config.data().split() == "full") {
    return absl::FailedPreconditionError(absl::StrCat(
        "job.split val: ", first.path,
        " was trained with data.split full: it has no validation split"));
  }
  absl::StatusOr<Dataset> dataset =
      LoadDataset(DatasetOptionsFromConfig(config.data(), data_dir));
  if (!dataset.ok()) {
    return absl::Status(dataset.status().code(),
                        absl::StrCat("--data ", data_dir, ": ",
                                     dataset.status().message()));
  }
  if (dataset->class_names != first.class_names) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--data ", data_dir, ": the data set has ", dataset->num_classes(),
        " classes (", absl::StrJoin(dataset->class_names, ", "), "), ",
        first.path, " predicts ", first.class_names.size(), " (",
        absl::StrJoin(first.class_names, ", "), ")"));
  }
  ASSIGN_OR_RETURN(Split split,
                   SplitByPerson(*dataset, SplitOptionsFromConfig(config)));
  if (split.val.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job.split val: the validation split of ", first.path,
        " is empty on --data ", data_dir));
  }
  PredictSet set;
  set.split = "val";
  set.id_column = "path";
  set.labelled = true;
  set.dataset = *std::move(dataset);
  set.indices = std::move(split.val);
  std::string root = set.dataset.root;
  if (!root.empty() && root.back() != '/') root += '/';
  for (size_t index : set.indices) {
    std::string path = set.dataset.samples[index].path;
    if (path.compare(0, root.size(), root) == 0) path.erase(0, root.size());
    set.ids.push_back(std::move(path));
  }
  return set;
}

// One predict job from start to end.
class PredictRun {
 public:
  PredictRun(const JobOptions& options, TrainEventWriter* events)
      : options_(options), events_(events) {}

  TrainResult Execute();

 private:
  std::optional<RunFailure> Prepare();
  std::optional<RunFailure> PredictWithModel(size_t m, torch::Tensor* probs);
  std::optional<RunFailure> WriteOutputs(const torch::Tensor& mean);
  void Progress(bool last);
  TrainResult Fail(RunFailure failure) {
    return ReportFailure(std::move(failure), *events_);
  }

  std::string OutPath(const char* name) const {
    return (fs::path(out_dir_) / name).string();
  }

  const JobOptions& options_;
  TrainEventWriter* const events_;
  const Clock::time_point start_ = Clock::now();

  std::string out_dir_;
  torch::Device device_ = torch::kCPU;
  int batch_size_ = 64;
  std::string cache_dir_;
  std::vector<SourceModel> models_;
  std::vector<TtaPlan> plans_;
  PredictSet set_;

  std::vector<BadImage> bad_;
  int64_t done_ = 0;
  int64_t total_ = 0;
  Clock::time_point last_progress_ = Clock::now();
};

void PredictRun::Progress(bool last) {
  const Clock::time_point now = Clock::now();
  if (!last && Seconds(now - last_progress_) < kProgressIntervalS) return;
  last_progress_ = now;
  events_->Emit("progress", JsonObject().Add("done", done_).Add("total", total_));
}

std::optional<RunFailure> PredictRun::Prepare() {
  const v1::JobConfig& job = options_.config.job();
  batch_size_ = job.batch_size() > 0 ? static_cast<int>(job.batch_size()) : 64;
  device_ = JobDevice();
  cache_dir_ = JobCacheDir(options_);

  std::error_code ec;
  fs::create_directories(options_.out_dir, ec);
  if (ec) {
    return RunFailure{TrainFailure::kRetryable,
                      absl::InternalError(absl::StrCat(
                          "--out ", options_.out_dir, ": ", ec.message()))};
  }
  out_dir_ = fs::absolute(options_.out_dir, ec).lexically_normal().string();
  while (out_dir_.size() > 1 && out_dir_.back() == '/') out_dir_.pop_back();

  for (const std::string& path : options_.model_paths) {
    absl::StatusOr<SourceModel> source =
        LoadSourceModel(path, device_, 0, options_.data_dir);
    if (!source.ok()) {
      return RunFailure{ClassifyJobError(source.status()), source.status()};
    }
    const SourceModel& first = models_.empty() ? *source : models_.front();
    if (source->class_names != first.class_names) {
      return Permanent(absl::FailedPreconditionError(absl::StrCat(
          "ensemble: ", path, " predicts ", source->class_names.size(),
          " classes (", absl::StrJoin(source->class_names, ", "), "), ",
          first.path, " predicts ", first.class_names.size(), " (",
          absl::StrJoin(first.class_names, ", "),
          "); the models of an ensemble must share their classes")));
    }
    if (source->config.data().dataset() != options_.config.data().dataset()) {
      LOG(WARNING) << path << " was trained on data set \""
                   << source->config.data().dataset() << "\", the job reads \""
                   << options_.config.data().dataset() << "\"";
    }
    plans_.push_back(TtaPlanFor(job.tta(), source->config.tta()));
    models_.push_back(*std::move(source));
  }

  absl::StatusOr<PredictSet> set =
      job.split() == "val"
          ? LoadValSet(options_.data_dir, models_.front())
          : LoadEvalSet(options_.data_dir, models_.front().class_names);
  if (!set.ok())
    return RunFailure{ClassifyJobError(set.status()), set.status()};
  set_ = *std::move(set);
  if (job.split() == "val") {
    for (size_t m = 1; m < models_.size(); ++m) {
      const auto split = [](const v1::RunConfig& c) {
        v1::DataConfig d = c.data();
        return absl::StrCat(d.split(), "/", d.val_ratio(), "/", d.fold(), "/",
                            d.folds(), "/", c.seed());
      };
      if (split(models_[m].config) != split(models_.front().config)) {
        LOG(WARNING) << models_[m].path << " was split differently from "
                     << models_.front().path
                     << ": it may have trained on validation images";
      }
    }
  }
  total_ = static_cast<int64_t>(set_.indices.size() * models_.size());
  return std::nullopt;
}

std::optional<RunFailure> PredictRun::PredictWithModel(size_t m,
                                                       torch::Tensor* probs) {
  SourceModel& source = models_[m];
  const TtaPlan& plan = plans_[m];
  absl::StatusOr<LoaderOptions> loader_options =
      SourceEvalLoaderOptions(source.config, batch_size_);
  if (!loader_options.ok()) {
    return Permanent(absl::InvalidArgumentError(absl::StrCat(
        source.path, ": ", loader_options.status().message())));
  }
  absl::StatusOr<std::unique_ptr<FaceCropper>> cropper =
      CreateSourceCropper(source.config, cache_dir_);
  if (!cropper.ok()) {
    // A bad crop setting is the checkpoint's; a missing cascade file is
    // this host's.
    return RunFailure{
        cropper.status().code() == absl::StatusCode::kInvalidArgument
            ? TrainFailure::kPermanent
            : TrainFailure::kRetryable,
        cropper.status()};
  }
  absl::StatusOr<std::unique_ptr<Loader>> loader = Loader::Create(
      &set_.dataset, set_.indices, cropper->get(), *loader_options);
  if (!loader.ok()) return Permanent(loader.status());

  const int64_t n = static_cast<int64_t>(set_.indices.size());
  const int64_t classes = static_cast<int64_t>(source.class_names.size());
  std::vector<int64_t> row_of(set_.dataset.samples.size(), -1);
  for (size_t row = 0; row < set_.indices.size(); ++row) {
    row_of[set_.indices[row]] = static_cast<int64_t>(row);
  }
  *probs = torch::zeros({n, classes}, torch::kFloat);
  std::vector<bool> predicted(static_cast<size_t>(n), false);
  const bool channels_last =
      device_.is_cuda() && source.config.train().channels_last();

  (*loader)->StartEpoch(0);
  while (true) {
    absl::StatusOr<std::optional<Batch>> next = (*loader)->Next();
    if (!next.ok()) {
      const absl::StatusCode code = next.status().code();
      return RunFailure{code == absl::StatusCode::kFailedPrecondition ||
                                code == absl::StatusCode::kInvalidArgument ||
                                code == absl::StatusCode::kNotFound
                            ? TrainFailure::kPermanent
                            : TrainFailure::kRetryable,
                        next.status()};
    }
    if (!next->has_value()) break;
    Batch& batch = **next;
    torch::Tensor images = batch.images.to(device_);
    if (channels_last) {
      images = images.contiguous(torch::MemoryFormat::ChannelsLast);
    }
    absl::StatusOr<torch::Tensor> p =
        PredictProbabilities(*source.model, images, plan);
    if (!p.ok()) {
      return RunFailure{
          ClassifyJobError(p.status()),
          absl::Status(p.status().code(),
                       absl::StrCat(source.path, ": ", p.status().message()))};
    }
    std::vector<int64_t> rows;
    for (size_t index : batch.sample_indices) {
      const int64_t row = row_of[index];
      rows.push_back(row);
      predicted[static_cast<size_t>(row)] = true;
    }
    probs->index_copy_(0, torch::tensor(rows, torch::kLong), *p);
    done_ += static_cast<int64_t>(rows.size());
    Progress(false);
  }

  // Unreadable images: the model's answer for a black image.
  std::vector<int64_t> missing;
  for (int64_t row = 0; row < n; ++row) {
    if (!predicted[static_cast<size_t>(row)]) missing.push_back(row);
  }
  if (!missing.empty()) {
    const cv::Mat black = cv::Mat::zeros(loader_options->height,
                                         loader_options->width, CV_8UC3);
    std::vector<float> chw = NormalizeToChw(black, loader_options->normalize);
    torch::Tensor image =
        torch::from_blob(chw.data(),
                         {1, 3, loader_options->height, loader_options->width},
                         torch::kFloat)
            .clone()
            .to(device_);
    absl::StatusOr<torch::Tensor> p =
        PredictProbabilities(*source.model, image, plan);
    if (!p.ok()) return RunFailure{ClassifyJobError(p.status()), p.status()};
    for (int64_t row : missing) (*probs)[row].copy_((*p)[0]);
    done_ += static_cast<int64_t>(missing.size());
  }
  for (BadImage& bad : (*loader)->bad_images()) {
    const bool seen =
        std::any_of(bad_.begin(), bad_.end(),
                    [&](const BadImage& b) { return b.path == bad.path; });
    if (!seen) bad_.push_back(std::move(bad));
  }
  if (*cropper != nullptr) {
    if (absl::Status s = (*cropper)->FlushCache(); !s.ok()) {
      LOG(WARNING) << "face-crop cache: " << s;
    }
  }
  return std::nullopt;
}

std::optional<RunFailure> PredictRun::WriteOutputs(const torch::Tensor& mean) {
  const std::vector<std::string>& names = models_.front().class_names;
  const torch::Tensor answers = mean.argmax(1).contiguous();
  const torch::Tensor cpu = mean.to(torch::kDouble).contiguous();
  auto p = cpu.accessor<double, 2>();
  auto ans = answers.accessor<int64_t, 1>();

  std::string submission = absl::StrCat(set_.id_column, ",ans\n");
  std::string probabilities = set_.id_column;
  for (const std::string& name : names) {
    absl::StrAppend(&probabilities, ",", CsvEscape(name));
  }
  probabilities += "\n";
  for (size_t row = 0; row < set_.ids.size(); ++row) {
    const auto r = static_cast<int64_t>(row);
    const std::string id = CsvEscape(set_.ids[row]);
    absl::StrAppend(&submission, id, ",", ans[r], "\n");
    probabilities += id;
    for (int64_t c = 0; c < cpu.size(1); ++c) {
      absl::StrAppend(&probabilities, ",", absl::StrFormat("%.7g", p[r][c]));
    }
    probabilities += "\n";
  }
  auto write = [this](const char* name,
                      const std::string& text) -> std::optional<RunFailure> {
    const std::string path = OutPath(name);
    if (absl::Status s = WriteFileAtomically(path, text); !s.ok()) {
      return RunFailure{TrainFailure::kRetryable, s};
    }
    events_->Artifact(name, path);
    return std::nullopt;
  };
  if (std::optional<RunFailure> f = write(kSubmission, submission)) return f;
  if (std::optional<RunFailure> f = write(kProbabilities, probabilities))
    return f;

  if (set_.labelled) {
    ConfusionMatrix confusion(static_cast<int>(names.size()));
    for (size_t row = 0; row < set_.ids.size(); ++row) {
      const Sample& sample = set_.dataset.samples[set_.indices[row]];
      if (absl::Status s =
              confusion.Add(sample.label, ans[static_cast<int64_t>(row)]);
          !s.ok()) {
        return Permanent(s);
      }
    }
    const ClassificationMetrics metrics = confusion.Compute();
    events_->Emit("metrics",
                  JsonObject()
                      .Add("step", 1)
                      .Add("metrics", JsonObject()
                                          .Add("pred_acc", metrics.accuracy)
                                          .Add("pred_f1", metrics.macro_f1))
                      .AddRaw("per_class_f1", JsonArray(metrics.per_class_f1)));
    LOG(INFO) << "predict " << set_.split << ": accuracy " << metrics.accuracy
              << ", macro-F1 " << metrics.macro_f1;
  }
  return std::nullopt;
}

TrainResult PredictRun::Execute() {
  if (std::optional<RunFailure> f = Prepare()) return Fail(*std::move(f));

  std::vector<std::string> sources;
  std::vector<std::string> described;
  std::vector<int64_t> views;
  for (size_t m = 0; m < models_.size(); ++m) {
    sources.push_back(models_[m].path);
    described.push_back(models_[m].model->Describe());
    views.push_back(plans_[m].views());
  }
  events_->Emit(
      "start",
      JsonObject()
          .Add("kind", "predict")
          .Add("split", set_.split)
          .AddRaw("sources", JsonArray(sources))
          .AddRaw("models", JsonArray(described))
          .AddRaw("classes", JsonArray(models_.front().class_names))
          .Add("images", static_cast<int64_t>(set_.indices.size()))
          .Add("device", device_.is_cuda() ? "cuda:0" : "cpu")
          .Add("threads", static_cast<int>(options_.config.threads())));
  LOG(INFO) << "predicting " << set_.indices.size() << " " << set_.split
            << " images with " << models_.size() << " model(s) on "
            << device_.str();

  // The soft vote: the mean of the models' probabilities.
  torch::Tensor sum;
  for (size_t m = 0; m < models_.size(); ++m) {
    torch::Tensor probs;
    std::optional<RunFailure> f;
    try {
      f = PredictWithModel(m, &probs);
    } catch (const c10::Error& e) {
      const std::string what = e.what_without_backtrace();
      f = IsOutOfMemory(what)
              ? Permanent(absl::ResourceExhaustedError(absl::StrCat(
                    "out of memory predicting with ", models_[m].path,
                    " at batch size ", batch_size_,
                    "; lower job.batch_size: ", what)))
              : RunFailure{
                    TrainFailure::kRetryable,
                    absl::InternalError(absl::StrCat("LibTorch: ", what))};
    } catch (const cv::Exception& e) {
      f = RunFailure{TrainFailure::kRetryable,
                     absl::InternalError(absl::StrCat("OpenCV: ", e.what()))};
    } catch (const std::bad_alloc&) {
      f = Permanent(absl::ResourceExhaustedError(absl::StrCat(
          "out of host memory predicting with ", models_[m].path,
          "; lower job.batch_size or data.decode_cache_bytes")));
    }
    if (f.has_value()) return Fail(*std::move(f));
    // Models are released as soon as they have voted.
    models_[m].model.reset();
    const torch::Tensor as_double = probs.to(torch::kDouble);
    sum = sum.defined() ? sum + as_double : as_double;
  }
  Progress(/*last=*/true);
  if (!bad_.empty()) {
    std::vector<BadSampleExample> examples;
    for (const BadImage& b : bad_) examples.push_back({b.path, b.cause});
    events_->BadSamples(static_cast<int64_t>(bad_.size()),
                        static_cast<int64_t>(bad_.size()), examples);
    LOG(WARNING) << bad_.size()
                 << " unreadable image(s) predicted from a black image, e.g. "
                 << bad_.front().path << ": " << bad_.front().cause;
  }
  const torch::Tensor mean = sum / static_cast<double>(models_.size());
  if (std::optional<RunFailure> f = WriteOutputs(mean))
    return Fail(*std::move(f));

  const double seconds = Seconds(Clock::now() - start_);
  events_->Emit("summary",
                JsonObject()
                    .Add("kind", "predict")
                    .Add("split", set_.split)
                    .Add("images", static_cast<int64_t>(set_.indices.size()))
                    .Add("models", static_cast<int64_t>(models_.size()))
                    .AddRaw("tta_views", JsonArray(views))
                    .Add("bad_images", static_cast<int64_t>(bad_.size()))
                    .Add("seconds", seconds));
  LOG(INFO) << "predicted " << set_.indices.size() << " images in " << seconds
            << " s";
  return TrainResult();
}

}  // namespace

int TtaPlan::views() const {
  const int base =
      1 + (multicrop ? kMultiCrops : 0) + static_cast<int>(scales.size());
  return base * (hflip ? 2 : 1);
}

std::vector<std::string> TtaPlan::Names() const {
  std::vector<std::string> names;
  if (hflip) names.push_back("hflip");
  if (multicrop) names.push_back("multicrop");
  if (!scales.empty()) names.push_back("scale");
  return names;
}

TtaPlan TtaPlanFor(const v1::TtaConfig& job_tta,
                   const v1::TtaConfig& source_tta) {
  const v1::TtaConfig& tta =
      job_tta.transforms_size() > 0 ? job_tta : source_tta;
  TtaPlan plan;
  for (const std::string& name : tta.transforms()) {
    if (name == "hflip") plan.hflip = true;
    if (name == "multicrop") plan.multicrop = true;
    if (name == "scale" && plan.scales.empty()) {
      plan.scales.assign(tta.scales().begin(), tta.scales().end());
      if (plan.scales.empty()) {
        plan.scales.assign(std::begin(kDefaultTtaScales),
                           std::end(kDefaultTtaScales));
      }
    }
  }
  return plan;
}

std::vector<torch::Tensor> TtaViews(const torch::Tensor& images,
                                    const TtaPlan& plan) {
  const int64_t h = images.size(2);
  const int64_t w = images.size(3);
  std::vector<torch::Tensor> views = {images};
  if (plan.multicrop) {
    const int64_t ch = std::clamp<int64_t>(
        std::llround(static_cast<double>(h) * kMultiCropScale), 1, h);
    const int64_t cw = std::clamp<int64_t>(
        std::llround(static_cast<double>(w) * kMultiCropScale), 1, w);
    const std::pair<int64_t, int64_t> corners[kMultiCrops] = {
        {0, 0}, {0, w - cw}, {h - ch, 0}, {h - ch, w - cw},
        {(h - ch) / 2, (w - cw) / 2}};
    for (const auto& [y, x] : corners) {
      views.push_back(
          ResizeBilinear(images.narrow(2, y, ch).narrow(3, x, cw), h, w));
    }
  }
  for (double scale : plan.scales) {
    views.push_back(ResizeBilinear(
        images,
        std::max<int64_t>(1, std::llround(static_cast<double>(h) * scale)),
        std::max<int64_t>(1, std::llround(static_cast<double>(w) * scale))));
  }
  if (plan.hflip) {
    const size_t base = views.size();
    for (size_t i = 0; i < base; ++i) views.push_back(views[i].flip({3}));
  }
  return views;
}

absl::StatusOr<torch::Tensor> PredictProbabilities(Classifier& model,
                                                   const torch::Tensor& images,
                                                   const TtaPlan& plan) {
  if (!images.defined() || images.dim() != 4 || images.size(1) != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("predict: images must be N x 3 x H x W, got ",
                     images.defined() ? c10::str(images.sizes()) : "none"));
  }
  size_t view = 0;
  std::vector<torch::Tensor> views;
  try {
    torch::NoGradGuard no_grad;
    views = TtaViews(images, plan);
    torch::Tensor sum;
    for (view = 0; view < views.size(); ++view) {
      const ClassifierOutput out = model.Forward(views[view]);
      const torch::Tensor p = torch::softmax(out.logits.to(torch::kFloat), 1);
      sum = sum.defined() ? sum + p : p;
    }
    return (sum / static_cast<double>(views.size()))
        .to(torch::kCPU)
        .contiguous();
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    if (IsOutOfMemory(what)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "out of memory on a batch of ", images.size(0), " x ",
          plan.views(), " TTA views; lower job.batch_size: ", what));
    }
    if (view > 0 && view < views.size()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "TTA view ", view, " (", views[view].size(2), " x ",
          views[view].size(3), ", transforms ",
          absl::StrJoin(plan.Names(), ", "),
          "): the model rejects it: ", what));
    }
    return absl::InternalError(absl::StrCat("LibTorch: ", what));
  }
}

TrainResult RunPredictJob(const JobOptions& options) {
  CHECK(options.events != nullptr) << "JobOptions.events is required";
  TrainEventWriter events(options.events);
  PredictRun run(options, &events);
  return RunGuarded("unexpected error", events, [&] { return run.Execute(); });
}

}  // namespace sweepq::worker
