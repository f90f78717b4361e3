#include "worker/pipeline/gradcam.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/plot/font.h"
#include "common/plot/png.h"
#include "common/plot/style.h"
#include "common/plot/ticks.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "opencv2/imgproc.hpp"
#include "torch/torch.h"
#include "worker/pipeline/csv.h"
#include "worker/pipeline/dataset.h"
#include "worker/pipeline/face_crop.h"
#include "worker/pipeline/loader.h"
#include "worker/pipeline/split.h"
#include "worker/pipeline/train_events.h"
#include "worker/pipeline/train_report.h"

namespace sweepq::worker {
namespace fs = std::filesystem;

namespace {

constexpr int kDefaultImages = 16;
constexpr int kDefaultBatchSize = 64;

// Sheet geometry (pixels).
constexpr int kMargin = 16;
constexpr int kGap = 12;
constexpr int kLongSide = 256;
constexpr int kMinCellWidth = 132;
constexpr int kMinSheetWidth = 480;
constexpr int kTitleScale = 2;
constexpr int kTitleLines = 3;
constexpr int kKeyWidth = 200;
constexpr int kKeyHeight = 12;
// Opacity of the heat colour at a map value of 1.
constexpr double kMaxOpacity = 0.75;
// How far the picture is taken towards its grey before the heat colours
// go over it: the blues of HeatColor would vanish on blue backgrounds and
// dark hair otherwise.
constexpr double kDesaturation = 0.6;

constexpr plot::Color kRightColor{0, 110, 40};
constexpr plot::Color kWrongColor{190, 30, 30};

std::string ShapeOf(const torch::Tensor& t) {
  return absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "]");
}

// The model's input image `i` of `images` (normalised CHW RGB) as 8-bit
// RGB.
cv::Mat ToRgbImage(const torch::Tensor& images, int64_t i,
                   const NormalizeOptions& normalize) {
  torch::Tensor mean =
      torch::tensor({normalize.mean[0], normalize.mean[1], normalize.mean[2]},
                    torch::kFloat)
          .view({3, 1, 1});
  torch::Tensor std =
      torch::tensor({normalize.std[0], normalize.std[1], normalize.std[2]},
                    torch::kFloat)
          .view({3, 1, 1});
  torch::Tensor pixels = ((images[i].to(torch::kFloat) * std + mean) * 255.0)
                             .round()
                             .clamp(0, 255)
                             .to(torch::kUInt8)
                             .permute({1, 2, 0})
                             .contiguous();
  const int height = static_cast<int>(pixels.size(0));
  const int width = static_cast<int>(pixels.size(1));
  return cv::Mat(height, width, CV_8UC3, pixels.data_ptr<uint8_t>()).clone();
}

cv::Mat ToFloatMat(const torch::Tensor& map) {
  torch::Tensor m = map.to(torch::kFloat).contiguous();
  return cv::Mat(static_cast<int>(m.size(0)), static_cast<int>(m.size(1)),
                 CV_32FC1, m.data_ptr<float>())
      .clone();
}

// Mean, peak and centre of mass of a map (fractions of width and height).
struct CamStats {
  double mean = 0.0;
  double peak_x = 0.0;
  double peak_y = 0.0;
  double center_x = 0.0;
  double center_y = 0.0;
};

CamStats StatsOf(const cv::Mat& cam) {
  CamStats stats;
  double total = 0.0, sum_x = 0.0, sum_y = 0.0, best = -1.0;
  for (int y = 0; y < cam.rows; ++y) {
    for (int x = 0; x < cam.cols; ++x) {
      const double v = cam.at<float>(y, x);
      total += v;
      sum_x += v * (x + 0.5);
      sum_y += v * (y + 0.5);
      if (v > best) {
        best = v;
        stats.peak_x = (x + 0.5) / cam.cols;
        stats.peak_y = (y + 0.5) / cam.rows;
      }
    }
  }
  stats.mean = total / (static_cast<double>(cam.rows) * cam.cols);
  stats.center_x = total > 0 ? sum_x / total / cam.cols : 0.5;
  stats.center_y = total > 0 ? sum_y / total / cam.rows : 0.5;
  return stats;
}

// Draws one tile's picture: the image upscaled with the map blended over
// it.
void DrawTilePicture(plot::Canvas& canvas, int left, int top,
                     const GradCamTile& tile, int width, int height) {
  cv::Mat image, cam;
  cv::resize(tile.image, image, cv::Size(width, height), 0, 0,
             cv::INTER_LINEAR);
  cv::resize(tile.cam, cam, cv::Size(width, height), 0, 0, cv::INTER_LINEAR);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const cv::Vec3b p = image.at<cv::Vec3b>(y, x);
      const plot::Color colour{p[0], p[1], p[2]};
      const auto grey =
          static_cast<uint8_t>(std::lround(255.0 * plot::Luminance(colour)));
      const plot::Color base =
          plot::Mix(colour, plot::Color{grey, grey, grey}, kDesaturation);
      const double t =
          std::clamp(static_cast<double>(cam.at<float>(y, x)), 0.0, 1.0);
      canvas.Set(left + x, top + y,
                 plot::Mix(base, plot::HeatColor(t), kMaxOpacity * t));
    }
  }
  canvas.StrokeRect(plot::Rect{left - 1, top - 1, width + 2, height + 2},
                    plot::kAxisColor);
}

// Prepare / Execute state of one job.
class GradCamJob {
 public:
  GradCamJob(const JobOptions& options, TrainEventWriter* events)
      : options_(options), events_(events) {}

  TrainResult Execute();

 private:
  std::optional<RunFailure> Prepare();
  std::optional<RunFailure> Compute();
  // Adds a row and a tile per image of `batch`. Throws c10::Error.
  void AddTiles(const Batch& batch, const GradCamMaps& maps);
  absl::Status WriteOutputs();
  TrainResult Fail(RunFailure failure) {
    return ReportFailure(std::move(failure), *events_);
  }

  std::string OutPath(const char* name) const {
    return (fs::path(out_dir_) / name).string();
  }
  std::string RelativePath(const std::string& path) const {
    std::string root = dataset_.root;
    if (!root.empty() && root.back() != '/') root += '/';
    return absl::StartsWith(path, root) ? path.substr(root.size()) : path;
  }

  const JobOptions& options_;
  TrainEventWriter* const events_;

  std::string out_dir_;
  torch::Device device_ = torch::kCPU;
  int threads_ = 1;
  SourceModel source_;
  Dataset dataset_;
  int target_class_ = 0;
  int requested_ = kDefaultImages;
  std::vector<size_t> selected_;
  size_t class_in_val_ = 0;
  std::unique_ptr<FaceCropper> cropper_;
  std::unique_ptr<Loader> loader_;
  NormalizeOptions normalize_;
  std::string layer_;

  // Results, one per tile.
  struct Row {
    size_t sample = 0;
    int pred = 0;
    double prob = 0.0;
    double prob_true = 0.0;
    CamStats stats;
  };
  std::vector<Row> rows_;
  std::vector<GradCamTile> tiles_;
};

std::optional<RunFailure> GradCamJob::Prepare() {
  const auto bad_config = [](absl::Status s) {
    return RunFailure{TrainFailure::kBadConfig, std::move(s)};
  };
  const v1::RunConfig& config = options_.config;
  const v1::JobConfig& job = config.job();
  if (job.kind() != "gradcam") {
    return bad_config(absl::InvalidArgumentError(absl::StrCat(
        "job.kind: RunGradCamJob runs gradcam jobs, got '", job.kind(), "'")));
  }
  if (options_.model_paths.size() != 1) {
    return bad_config(absl::InvalidArgumentError(
        absl::StrCat("--models: a gradcam job takes exactly one model, got ",
                     options_.model_paths.size())));
  }
  if (!job.has_gradcam_class()) {
    return bad_config(absl::InvalidArgumentError(
        "job.gradcam_class: required (the class whose images are shown)"));
  }
  requested_ = job.gradcam_images() > 0 ? static_cast<int>(job.gradcam_images())
                                        : kDefaultImages;

  threads_ = options_.threads >= 0 ? options_.threads
                                   : static_cast<int>(config.threads());
  if (threads_ <= 0) {
    threads_ =
        std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }
  at::set_num_threads(threads_);
  device_ = JobDevice();

  std::error_code ec;
  fs::create_directories(options_.out_dir, ec);
  if (ec) {
    return RunFailure{TrainFailure::kRetryable,
                      absl::InternalError(absl::StrCat(
                          "--out ", options_.out_dir, ": ", ec.message()))};
  }
  out_dir_ = fs::absolute(options_.out_dir, ec).lexically_normal().string();
  while (out_dir_.size() > 1 && out_dir_.back() == '/') out_dir_.pop_back();

  absl::StatusOr<SourceModel> source = LoadSourceModel(
      options_.model_paths[0], device_, /*num_classes=*/0, options_.data_dir);
  if (!source.ok()) {
    return RunFailure{ClassifyJobError(source.status()), source.status()};
  }
  source_ = *std::move(source);
  source_.model->SetTraining(false);

  JsonObject start;
  start.Add("kind", "gradcam")
      .AddRaw("sources", JsonArray(std::vector<std::string>{source_.path}))
      .Add("device", device_.is_cuda() ? "cuda:0" : "cpu")
      .Add("threads", threads_)
      .Add("model", source_.model->Describe())
      .Add("class", static_cast<int64_t>(job.gradcam_class()))
      .Add("layer", job.gradcam_layer())
      .Add("requested", requested_);

  // The source run's data set and validation split, as its trainer made
  // them.
  const v1::RunConfig& trained = source_.config;
  absl::StatusOr<Dataset> dataset =
      LoadDataset(DatasetOptionsFromConfig(trained.data(), options_.data_dir));
  if (!dataset.ok()) {
    return RunFailure{
        ClassifyJobError(dataset.status()),
        absl::Status(dataset.status().code(),
                     absl::StrCat("--data ", options_.data_dir, ": ",
                                  dataset.status().message()))};
  }
  dataset_ = *std::move(dataset);
  if (dataset_.num_classes() != source_.model->num_classes()) {
    return RunFailure{
        TrainFailure::kPermanent,
        absl::FailedPreconditionError(absl::StrCat(
            source_.path, ": the model has ", source_.model->num_classes(),
            " classes, the data set ", options_.data_dir, " has ",
            dataset_.num_classes()))};
  }
  if (job.gradcam_class() >= static_cast<uint32_t>(dataset_.num_classes())) {
    return bad_config(absl::InvalidArgumentError(
        absl::StrCat("job.gradcam_class: ", job.gradcam_class(),
                     " is out of range: the "
                     "data set has ",
                     dataset_.num_classes(), " classes (0-",
                     dataset_.num_classes() - 1, ")")));
  }
  target_class_ = static_cast<int>(job.gradcam_class());
  const std::string& class_name = dataset_.class_names[target_class_];
  start.Add("class_name", class_name);
  events_->Emit("start", start);

  absl::StatusOr<Split> split =
      SplitByPerson(dataset_, SplitOptionsFromConfig(trained));
  if (!split.ok()) return RunFailure{TrainFailure::kPermanent, split.status()};
  if (split->val.empty()) {
    return RunFailure{TrainFailure::kPermanent,
                      absl::FailedPreconditionError(absl::StrCat(
                          source_.path,
                          ": the source run has no validation "
                          "split (data.split ",
                          trained.data().split(),
                          "), so there are no validation images to show"))};
  }
  for (size_t index : split->val) {
    if (dataset_.samples[index].label != target_class_) continue;
    ++class_in_val_;
    if (selected_.size() < static_cast<size_t>(requested_)) {
      selected_.push_back(index);
    }
  }
  if (selected_.empty()) {
    return RunFailure{
        TrainFailure::kPermanent,
        absl::FailedPreconditionError(absl::StrCat(
            "job.gradcam_class ", target_class_, " (", class_name,
            "): the source run's validation split (", split->val.size(),
            " images) has no image of this class"))};
  }

  // The validation loader and face crop of the trainer.
  absl::StatusOr<LoaderOptions> loader_options = SourceEvalLoaderOptions(
      trained, job.batch_size() > 0 ? static_cast<int>(job.batch_size())
                                    : kDefaultBatchSize);
  if (!loader_options.ok()) {
    return RunFailure{TrainFailure::kPermanent, loader_options.status()};
  }
  normalize_ = loader_options->normalize;
  absl::StatusOr<std::unique_ptr<FaceCropper>> cropper =
      CreateSourceCropper(trained, JobCacheDir(options_));
  if (!cropper.ok()) {
    return RunFailure{ClassifyJobError(cropper.status()), cropper.status()};
  }
  cropper_ = *std::move(cropper);
  absl::StatusOr<std::unique_ptr<Loader>> loader =
      Loader::Create(&dataset_, selected_, cropper_.get(), *loader_options);
  if (!loader.ok())
    return RunFailure{TrainFailure::kPermanent, loader.status()};
  loader_ = *std::move(loader);
  return std::nullopt;
}

std::optional<RunFailure> GradCamJob::Compute() {
  const std::string& asked = options_.config.job().gradcam_layer();
  loader_->StartEpoch(0);
  while (true) {
    absl::StatusOr<std::optional<Batch>> next = loader_->Next();
    if (!next.ok()) {
      return RunFailure{ClassifyJobError(next.status()), next.status()};
    }
    if (!next->has_value()) break;
    const Batch& batch = **next;
    absl::StatusOr<GradCamMaps> maps;
    try {
      maps = ComputeGradCam(*source_.model, batch.images.to(device_),
                            target_class_, asked);
    } catch (const std::exception& e) {
      maps = absl::InternalError(e.what());
    }
    if (!maps.ok()) {
      const absl::StatusCode code = maps.status().code();
      const absl::Status status(
          code, absl::StrCat(code == absl::StatusCode::kInvalidArgument
                                 ? "job.gradcam_layer: "
                                 : "Grad-CAM: ",
                             maps.status().message()));
      return RunFailure{code == absl::StatusCode::kInvalidArgument
                            ? TrainFailure::kBadConfig
                        : code == absl::StatusCode::kFailedPrecondition
                            ? TrainFailure::kPermanent
                            : TrainFailure::kRetryable,
                        status};
    }
    layer_ = maps->layer;
    try {
      AddTiles(batch, *maps);
    } catch (const std::exception& e) {
      return RunFailure{
          TrainFailure::kRetryable,
          absl::InternalError(absl::StrCat("Grad-CAM: ", e.what()))};
    }
  }
  if (tiles_.empty()) {
    return RunFailure{
        TrainFailure::kPermanent,
        absl::FailedPreconditionError(absl::StrCat(
            "none of the ", selected_.size(), " validation images of class ",
            target_class_, " could be read"))};
  }
  return std::nullopt;
}

void GradCamJob::AddTiles(const Batch& batch, const GradCamMaps& maps) {
  torch::Tensor images = batch.images.to(torch::kCPU);
  for (size_t i = 0; i < batch.sample_indices.size(); ++i) {
    const int64_t row = static_cast<int64_t>(i);
    Row r;
    r.sample = batch.sample_indices[i];
    torch::Tensor probabilities = maps.probabilities[row];
    r.pred = static_cast<int>(probabilities.argmax().item<int64_t>());
    r.prob = probabilities[r.pred].item<double>();
    r.prob_true = probabilities[target_class_].item<double>();
    GradCamTile tile;
    tile.image = ToRgbImage(images, row, normalize_);
    tile.cam = ToFloatMat(maps.maps[row]);
    r.stats = StatsOf(tile.cam);
    tile.correct = r.pred == target_class_;
    tile.title = absl::StrCat(dataset_.class_names[target_class_], "-",
                              dataset_.class_names[r.pred],
                              tile.correct ? " (O)" : " (X)");
    tile.caption = absl::StrCat("p ", plot::FormatFixed(r.prob, 2));
    rows_.push_back(r);
    tiles_.push_back(std::move(tile));
  }
}

absl::Status GradCamJob::WriteOutputs() {
  const std::string& class_name = dataset_.class_names[target_class_];
  std::string csv =
      "path,true,pred,correct,prob,prob_true,cam_mean,cam_peak_x,cam_peak_y,"
      "cam_center_x,cam_center_y\n";
  for (const Row& r : rows_) {
    absl::StrAppend(
        &csv, CsvEscape(RelativePath(dataset_.samples[r.sample].path)), ",",
        CsvEscape(class_name), ",", CsvEscape(dataset_.class_names[r.pred]),
        ",", r.pred == target_class_ ? 1 : 0, ",", JsonNumber(r.prob), ",",
        JsonNumber(r.prob_true), ",", JsonNumber(r.stats.mean), ",",
        JsonNumber(r.stats.peak_x), ",", JsonNumber(r.stats.peak_y), ",",
        JsonNumber(r.stats.center_x), ",", JsonNumber(r.stats.center_y), "\n");
  }
  const std::string csv_path = OutPath("gradcam.csv");
  RETURN_IF_ERROR(WriteFileAtomically(csv_path, csv));
  events_->Artifact("gradcam.csv", csv_path);

  int correct = 0;
  for (const Row& r : rows_) correct += r.pred == target_class_ ? 1 : 0;
  GradCamSheet sheet;
  const int64_t run = options_.config.job().source_runs_size() > 0
                          ? options_.config.job().source_runs(0)
                          : 0;
  sheet.title =
      absl::StrCat(run > 0 ? absl::StrCat("run ", run, ": ") : "",
                   "Grad-CAM of ", class_name, " (class ", target_class_, ")");
  sheet.subtitle = absl::StrCat(
      "layer ", layer_, ", ", source_.model->Describe(), ", ", tiles_.size(),
      " validation images, ", correct, " predicted right");
  sheet.tiles = std::move(tiles_);
  absl::StatusOr<plot::Canvas> canvas = RenderGradCamSheet(sheet);
  if (!canvas.ok()) return canvas.status();
  const std::string png_path = OutPath("gradcam.png");
  RETURN_IF_ERROR(plot::WritePngFile(*canvas, png_path));
  events_->Artifact("gradcam.png", png_path);

  JsonObject summary;
  summary.Add("kind", "gradcam")
      .Add("images", static_cast<int64_t>(rows_.size()))
      .Add("requested", requested_)
      .Add("class", target_class_)
      .Add("class_name", class_name)
      .Add("layer", layer_)
      .Add("correct", correct);
  if (rows_.size() < static_cast<size_t>(requested_)) {
    summary.Add(
        "note",
        absl::StrCat("only ", rows_.size(), " of the ", requested_,
                     " requested images: the validation split has ",
                     class_in_val_, " image", class_in_val_ == 1 ? "" : "s",
                     " of ", class_name,
                     rows_.size() < selected_.size()
                         ? absl::StrCat(", ", selected_.size() - rows_.size(),
                                        " unreadable")
                         : ""));
  }
  events_->Emit("summary", summary);
  LOG(INFO) << "Grad-CAM of " << class_name << " at " << layer_ << ": "
            << rows_.size() << " images, " << correct << " predicted right";
  return absl::OkStatus();
}

TrainResult GradCamJob::Execute() {
  if (std::optional<RunFailure> f = Prepare()) return Fail(*std::move(f));
  if (std::optional<RunFailure> f = Compute()) return Fail(*std::move(f));
  if (absl::Status s = WriteOutputs(); !s.ok()) {
    return Fail(RunFailure{TrainFailure::kRetryable, s});
  }
  return TrainResult{};
}

}  // namespace

absl::StatusOr<GradCamMaps> ComputeGradCam(Classifier& model,
                                           const torch::Tensor& images,
                                           int target_class,
                                           const std::string& layer) {
  if (target_class < 0 || target_class >= model.num_classes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Grad-CAM: class ", target_class, " is out of range [0, ",
                     model.num_classes(), ")"));
  }
  if (images.dim() != 4 || images.size(1) != 3 || images.size(0) < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Grad-CAM: images must be N x 3 x H x W, got ", ShapeOf(images)));
  }
  try {
    torch::AutoGradMode grad_mode(true);
    // The input needs a gradient so that the activation has one even when
    // every parameter before the layer is frozen (an exported module).
    torch::Tensor input = images.detach().requires_grad_(true);
    absl::StatusOr<ActivationOutput> forward =
        model.ForwardWithActivation(input, layer);
    if (!forward.ok()) return forward.status();
    const torch::Tensor& activation = forward->activation;
    if (!activation.defined() || activation.dim() != 4) {
      return absl::InvalidArgumentError(
          absl::StrCat("Grad-CAM: layer '", forward->layer, "' outputs ",
                       activation.defined() ? ShapeOf(activation) : "nothing",
                       ", not N x C x h x w"));
    }
    torch::Tensor score =
        forward->output.logits.to(torch::kFloat).select(1, target_class).sum();
    std::vector<torch::Tensor> gradients = torch::autograd::grad(
        {score}, {activation}, /*grad_outputs=*/{}, /*retain_graph=*/false,
        /*create_graph=*/false, /*allow_unused=*/true);
    if (gradients.empty() || !gradients[0].defined()) {
      return absl::FailedPreconditionError(
          absl::StrCat("Grad-CAM: the score of class ", target_class,
                       " does not depend on layer '", forward->layer, "'"));
    }
    torch::NoGradGuard no_grad;
    const torch::Tensor a = activation.detach().to(torch::kFloat);
    const torch::Tensor weights =
        gradients[0].to(torch::kFloat).mean({2, 3}, /*keepdim=*/true);
    torch::Tensor cam = torch::relu((weights * a).sum(1, /*keepdim=*/true));
    cam = torch::nn::functional::interpolate(
        cam, torch::nn::functional::InterpolateFuncOptions()
                 .size(std::vector<int64_t>{images.size(2), images.size(3)})
                 .mode(torch::kBilinear)
                 .align_corners(false));
    const torch::Tensor peak = cam.amax({2, 3}, /*keepdim=*/true);
    cam = torch::where(peak > 0, cam / peak.clamp_min(1e-12),
                       torch::zeros_like(cam));
    GradCamMaps out;
    out.maps = cam.squeeze(1).to(torch::kCPU).contiguous();
    out.probabilities =
        torch::softmax(forward->output.logits.detach().to(torch::kFloat), 1)
            .to(torch::kCPU);
    out.layer = forward->layer;
    out.layer_height = activation.size(2);
    out.layer_width = activation.size(3);
    return out;
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("Grad-CAM: ", e.what()));
  }
}

GradCamSheetLayout LayoutGradCamSheet(int tiles, int image_width,
                                      int image_height) {
  GradCamSheetLayout layout;
  tiles = std::max(tiles, 1);
  image_width = std::max(image_width, 1);
  image_height = std::max(image_height, 1);
  layout.columns = static_cast<int>(std::ceil(std::sqrt(tiles)));
  layout.rows = (tiles + layout.columns - 1) / layout.columns;
  layout.scale = std::max(1, kLongSide / std::max(image_width, image_height));
  layout.tile_width = image_width * layout.scale;
  layout.tile_height = image_height * layout.scale;
  layout.cell_width = std::max(layout.tile_width, kMinCellWidth);
  // Title lines and the caption above the picture.
  layout.cell_height =
      (kTitleLines + 1) * plot::kLineHeight + 4 + layout.tile_height;
  layout.grid_top = kMargin + plot::TextHeight(kTitleScale) + 6 +
                    plot::TextHeight(1) + 10 + kKeyHeight + 8 + kGap;
  layout.width = std::max(kMinSheetWidth,
                          2 * kMargin + layout.columns * layout.cell_width +
                              (layout.columns - 1) * kGap);
  layout.height = layout.grid_top + layout.rows * layout.cell_height +
                  (layout.rows - 1) * kGap + kMargin;
  return layout;
}

absl::StatusOr<plot::Canvas> RenderGradCamSheet(const GradCamSheet& sheet) {
  if (sheet.tiles.empty()) {
    return absl::InvalidArgumentError("Grad-CAM sheet: no tiles");
  }
  const cv::Size size = sheet.tiles[0].image.size();
  for (size_t i = 0; i < sheet.tiles.size(); ++i) {
    const GradCamTile& tile = sheet.tiles[i];
    if (tile.image.type() != CV_8UC3 || tile.image.size() != size ||
        tile.cam.type() != CV_32FC1 || tile.cam.size() != size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Grad-CAM sheet: tile ", i, " ('", tile.title,
          "') needs an 8-bit RGB image and a float map of ", size.width, "x",
          size.height, ", got ", tile.image.cols, "x", tile.image.rows, " and ",
          tile.cam.cols, "x", tile.cam.rows));
    }
  }
  const GradCamSheetLayout layout = LayoutGradCamSheet(
      static_cast<int>(sheet.tiles.size()), size.width, size.height);
  ASSIGN_OR_RETURN(plot::Canvas canvas,
                   plot::Canvas::Create(layout.width, layout.height));
  const int text_width = layout.width - 2 * kMargin;
  int y = kMargin;
  plot::DrawText(canvas, kMargin, y,
                 plot::FitText(sheet.title, text_width, kTitleScale),
                 plot::kTextColor, kTitleScale);
  y += plot::TextHeight(kTitleScale) + 6;
  plot::DrawText(canvas, kMargin, y,
                 plot::FitText(sheet.subtitle, text_width, 1),
                 plot::kMutedTextColor, 1);
  y += plot::TextHeight(1) + 10;
  // The colour key: what a map value of 0 ... 1 looks like over white.
  const std::string key = "Grad-CAM  0";
  plot::DrawTextAligned(canvas, kMargin, y + kKeyHeight / 2, key,
                        plot::kTextColor, 1, plot::Align::kStart);
  const int key_left = kMargin + plot::TextWidth(key, 1) + 6;
  for (int x = 0; x < kKeyWidth; ++x) {
    const double t = static_cast<double>(x) / (kKeyWidth - 1);
    canvas.FillRect(
        plot::Rect{key_left + x, y, 1, kKeyHeight},
        plot::Mix(plot::kWhite, plot::HeatColor(t), kMaxOpacity * t));
  }
  canvas.StrokeRect(plot::Rect{key_left, y, kKeyWidth, kKeyHeight},
                    plot::kAxisColor);
  plot::DrawTextAligned(canvas, key_left + kKeyWidth + 6, y + kKeyHeight / 2,
                        "1", plot::kTextColor, 1, plot::Align::kStart);

  for (size_t i = 0; i < sheet.tiles.size(); ++i) {
    const GradCamTile& tile = sheet.tiles[i];
    const int column = static_cast<int>(i) % layout.columns;
    const int row = static_cast<int>(i) / layout.columns;
    const int cell_left = kMargin + column * (layout.cell_width + kGap);
    const int cell_top = layout.grid_top + row * (layout.cell_height + kGap);
    const int center_x = cell_left + layout.cell_width / 2;
    std::vector<std::string> lines =
        plot::WrapText(tile.title, layout.cell_width, 1);
    if (lines.size() > static_cast<size_t>(kTitleLines)) {
      lines.resize(kTitleLines);
      lines.back() = plot::FitText(lines.back() + "..", layout.cell_width, 1);
    }
    // Titles sit just above the picture, however many lines they take.
    int line_y = cell_top + (kTitleLines - static_cast<int>(lines.size())) *
                                plot::kLineHeight;
    for (const std::string& line : lines) {
      plot::DrawTextAligned(canvas, center_x, line_y + plot::kLineHeight / 2,
                            line, tile.correct ? kRightColor : kWrongColor, 1,
                            plot::Align::kCenter);
      line_y += plot::kLineHeight;
    }
    plot::DrawTextAligned(
        canvas, center_x,
        cell_top + kTitleLines * plot::kLineHeight + plot::kLineHeight / 2,
        plot::FitText(tile.caption, layout.cell_width, 1),
        plot::kMutedTextColor, 1, plot::Align::kCenter);
    const int picture_top =
        cell_top + (kTitleLines + 1) * plot::kLineHeight + 4;
    const int picture_left =
        cell_left + (layout.cell_width - layout.tile_width) / 2;
    DrawTilePicture(canvas, picture_left, picture_top, tile, layout.tile_width,
                    layout.tile_height);
  }
  return canvas;
}

TrainResult RunGradCamJob(const JobOptions& options) {
  CHECK(options.events != nullptr) << "JobOptions.events is required";
  TrainEventWriter events(options.events);
  GradCamJob job(options, &events);
  return RunGuarded("Grad-CAM job", events, [&] { return job.Execute(); });
}

}  // namespace sweepq::worker
