#include "worker/pipeline/gradcam.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/plot/style.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "opencv2/imgcodecs.hpp"
#include "tests/testing/temp_dir.h"
#include "tests/worker/train_test_util.h"
#include "torch/torch.h"
#include "worker/pipeline/dataset.h"
#include "worker/pipeline/face_crop.h"
#include "worker/pipeline/job.h"
#include "worker/pipeline/loader.h"
#include "worker/pipeline/split.h"
#include "worker/pipeline/synthetic.h"
#include "worker/pipeline/trainer.h"

namespace sweepq::worker {
namespace {

namespace fs = std::filesystem;
using ::sweepq::testing::Field;
using ::sweepq::testing::Kind;
using ::sweepq::testing::OfKind;
using ::sweepq::testing::ParseEvent;
using ::testing::HasSubstr;

constexpr int kWidth = 48;
constexpr int kHeight = 64;

std::unique_ptr<Classifier> MustCreate(const std::string& name,
                                       bool multi_head = false) {
  v1::ModelConfig config;
  config.set_name(name);
  config.set_multi_head(multi_head);
  absl::StatusOr<std::unique_ptr<Classifier>> model =
      CreateClassifier(config, 18, 5, kHeight, kWidth);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return nullptr;
  (*model)->SetTraining(false);
  return *std::move(model);
}

// --- ComputeGradCam ----------------------------------------------------------

TEST(ComputeGradCamTest, MapsHaveTheInputSizeAndSpanZeroToOne) {
  std::unique_ptr<Classifier> model = MustCreate("small_cnn");
  ASSERT_NE(model, nullptr);
  torch::manual_seed(3);
  const torch::Tensor images = torch::randn({3, 3, kHeight, kWidth});
  absl::StatusOr<GradCamMaps> cam = ComputeGradCam(*model, images, 4, "");
  ASSERT_TRUE(cam.ok()) << cam.status();
  EXPECT_EQ(cam->layer, "features.14");
  // features.14 is the last block's ReLU, after three 2x2 max-pools.
  EXPECT_EQ(cam->layer_height, kHeight / 8);
  EXPECT_EQ(cam->layer_width, kWidth / 8);
  ASSERT_EQ(cam->maps.sizes(), (std::vector<int64_t>{3, kHeight, kWidth}));
  EXPECT_EQ(cam->maps.device().type(), torch::kCPU);
  for (int64_t i = 0; i < 3; ++i) {
    const torch::Tensor map = cam->maps[i];
    EXPECT_GE(map.min().item<float>(), 0.0f);
    const float peak = map.max().item<float>();
    EXPECT_TRUE(peak == 0.0f || std::abs(peak - 1.0f) < 1e-5f) << peak;
  }
  EXPECT_GT(cam->maps.max().item<float>(), 0.0f);  // not all-zero maps
  ASSERT_EQ(cam->probabilities.sizes(), (std::vector<int64_t>{3, 18}));
  EXPECT_TRUE(torch::allclose(cam->probabilities.sum(1), torch::ones({3})));
  // The parameters' gradients are left alone.
  for (const NamedParameter& p : model->Parameters()) {
    EXPECT_FALSE(p.tensor.grad().defined()) << p.name;
  }
}

TEST(ComputeGradCamTest, EveryImageIsExplainedOnItsOwn) {
  // In eval mode the images of a batch do not mix: an image's map is the
  // same alone and in a batch.
  std::unique_ptr<Classifier> model = MustCreate("small_cnn");
  ASSERT_NE(model, nullptr);
  torch::manual_seed(4);
  const torch::Tensor images = torch::randn({4, 3, kHeight, kWidth});
  absl::StatusOr<GradCamMaps> batch =
      ComputeGradCam(*model, images, 7, "features.10");
  absl::StatusOr<GradCamMaps> alone =
      ComputeGradCam(*model, images.slice(0, 2, 3), 7, "features.10");
  ASSERT_TRUE(batch.ok() && alone.ok());
  EXPECT_EQ(batch->layer_height, kHeight / 4);
  EXPECT_TRUE(torch::allclose(batch->maps[2], alone->maps[0], 1e-4, 1e-5));
}

TEST(ComputeGradCamTest, WorksForResNetsAndMultiHeadModelsUnderNoGrad) {
  std::unique_ptr<Classifier> resnet = MustCreate("resnet18");
  std::unique_ptr<Classifier> multi = MustCreate("small_cnn", true);
  ASSERT_TRUE(resnet && multi);
  torch::NoGradGuard no_grad;  // a caller's guard does not stop Grad-CAM
  const torch::Tensor images = torch::randn({2, 3, 64, 64});
  absl::StatusOr<GradCamMaps> cam = ComputeGradCam(*resnet, images, 0, "");
  ASSERT_TRUE(cam.ok()) << cam.status();
  EXPECT_EQ(cam->layer, "layer4");
  EXPECT_EQ(cam->layer_height, 2);
  EXPECT_EQ(cam->maps.sizes(), (std::vector<int64_t>{2, 64, 64}));
  cam = ComputeGradCam(*resnet, images, 0, "layer2.1");
  ASSERT_TRUE(cam.ok()) << cam.status();
  EXPECT_EQ(cam->layer_height, 8);
  cam = ComputeGradCam(*multi, images, 17, "");
  ASSERT_TRUE(cam.ok()) << cam.status();
  EXPECT_EQ(cam->maps.sizes(), (std::vector<int64_t>{2, 64, 64}));
}

TEST(ComputeGradCamTest, BadClassLayerOrImagesAreInvalidArguments) {
  std::unique_ptr<Classifier> model = MustCreate("small_cnn");
  ASSERT_NE(model, nullptr);
  const torch::Tensor images = torch::randn({1, 3, kHeight, kWidth});
  absl::StatusOr<GradCamMaps> cam = ComputeGradCam(*model, images, 0, "layer4");
  ASSERT_EQ(cam.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(cam.status().message(), HasSubstr("unknown layer 'layer4'"));
  EXPECT_THAT(cam.status().message(), HasSubstr("features.14"));
  cam = ComputeGradCam(*model, images, 18, "");
  EXPECT_EQ(cam.status().code(), absl::StatusCode::kInvalidArgument);
  cam = ComputeGradCam(*model, images, -1, "");
  EXPECT_EQ(cam.status().code(), absl::StatusCode::kInvalidArgument);
  cam = ComputeGradCam(*model, torch::randn({3, kHeight, kWidth}), 0, "");
  EXPECT_EQ(cam.status().code(), absl::StatusCode::kInvalidArgument);
}

// --- The sheet ---------------------------------------------------------------

TEST(GradCamSheetTest, LayoutIsAGridOfUpscaledTiles) {
  GradCamSheetLayout layout = LayoutGradCamSheet(16, kWidth, kHeight);
  EXPECT_EQ(layout.columns, 4);
  EXPECT_EQ(layout.rows, 4);
  EXPECT_EQ(layout.scale, 4);  // 64 * 4 = 256
  EXPECT_EQ(layout.tile_width, 192);
  EXPECT_GE(layout.width, 4 * 192);
  EXPECT_GE(layout.height, 4 * 256);
  layout = LayoutGradCamSheet(5, 224, 224);
  EXPECT_EQ(layout.columns, 3);
  EXPECT_EQ(layout.rows, 2);
  EXPECT_EQ(layout.scale, 1);
}

TEST(GradCamSheetTest, MapIsBlendedOverThePicture) {
  GradCamTile tile;
  tile.image = cv::Mat(kHeight, kWidth, CV_8UC3, cv::Scalar(200, 200, 200));
  tile.cam = cv::Mat::zeros(kHeight, kWidth, CV_32FC1);
  tile.cam(cv::Rect(0, kHeight / 2, kWidth, kHeight / 2)).setTo(1.0f);
  tile.title = "wear/male/<30-normal/male/<30 (X)";
  tile.correct = false;
  GradCamSheet sheet;
  sheet.title = "t";
  sheet.tiles = {tile};
  absl::StatusOr<plot::Canvas> canvas = RenderGradCamSheet(sheet);
  ASSERT_TRUE(canvas.ok()) << canvas.status();
  const GradCamSheetLayout layout = LayoutGradCamSheet(1, kWidth, kHeight);
  EXPECT_EQ(canvas->width(), layout.width);
  EXPECT_EQ(canvas->height(), layout.height);
  // The picture's top half keeps its grey, the bottom half is covered by
  // the heat colour of 1 at 75%.
  const plot::Color grey{200, 200, 200};
  const plot::Color hot = plot::Mix(grey, plot::HeatColor(1.0), 0.75);
  int grey_pixels = 0, hot_pixels = 0;
  for (int y = 0; y < canvas->height(); ++y) {
    for (int x = 0; x < canvas->width(); ++x) {
      grey_pixels += canvas->At(x, y) == grey;
      hot_pixels += canvas->At(x, y) == hot;
    }
  }
  const int half = layout.tile_width * layout.tile_height / 2;
  EXPECT_GT(grey_pixels, half * 8 / 10);
  EXPECT_GT(hot_pixels, half * 8 / 10);

  sheet.tiles.push_back(tile);
  sheet.tiles.back().cam = cv::Mat::zeros(4, 4, CV_32FC1);
  EXPECT_EQ(RenderGradCamSheet(sheet).status().code(),
            absl::StatusCode::kInvalidArgument);
  sheet.tiles.clear();
  EXPECT_EQ(RenderGradCamSheet(sheet).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// --- Trained models ----------------------------------------------------------

// Writes a synthetic data set of `people` people into `dir`/data (its
// manifest to `*manifest` when not null), with masks.csv listing the train
// images by mask state for the csv layout (`path,label,person`, labels
// wear / incorrect / normal), and trains `config` (YAML) on it into
// `dir`/train; returns best.ckpt's path, "" after a failure.
std::string TrainOnSynthetic(const testing::TempDir& dir, int people,
                             const std::string& config,
                             SyntheticManifest* written = nullptr) {
  SyntheticOptions synthetic;
  synthetic.out_dir = dir.Join("data");
  synthetic.people = people;
  synthetic.eval_images = 0;
  synthetic.seed = 11;
  synthetic.threads = 2;
  absl::StatusOr<SyntheticManifest> manifest =
      WriteSyntheticMaskDataset(synthetic);
  EXPECT_TRUE(manifest.ok()) << manifest.status();
  if (!manifest.ok()) return "";
  if (written != nullptr) *written = *manifest;
  std::string masks = "path,label,person\n";
  for (const SyntheticImage& image : manifest->train) {
    static constexpr const char* kStates[] = {"wear", "incorrect", "normal"};
    absl::StrAppend(&masks, image.path, ",", kStates[image.mask], ",",
                    image.person, "\n");
  }
  testing::WriteTextFile(dir.Join("data/masks.csv"), masks);
  testing::WriteTextFile(dir.Join("run.yaml"), config);
  MemoryEventSink sink;
  TrainerOptions options;
  options.config_path = dir.Join("run.yaml");
  options.data_dir = synthetic.out_dir;
  options.out_dir = dir.Join("train");
  options.cache_dir = dir.Join("cache");
  options.events = &sink;
  const TrainResult result = RunTraining(options);
  EXPECT_TRUE(result.status.ok()) << result.status;
  if (!result.status.ok()) return "";
  if (result.best_value.has_value()) {
    std::cout << "trained: best val_f1 " << *result.best_value << " at epoch "
              << result.best_epoch << "\n";
  }
  return dir.Join("train/best.ckpt");
}

const char kBaseConfig[] = R"(
data:
  dataset: mask
  image_width: 48
  image_height: 64
crop:
  detectors: [fixed]
model:
  name: small_cnn
seed: 1
threads: 1
)";

// Mask state only (3 classes: incorrect, normal, wear by name), so that
// what tells a class apart is the mask. One thread: on a loaded two-core
// machine LibTorch's threads wait for each other far longer than they
// compute.
const char kMaskStateConfig[] = R"(
data:
  dataset: mask
  layout: csv
  csv: masks.csv
  image_width: 48
  image_height: 64
  weighted_sampling: true
crop:
  enabled: true
  detectors: [fixed]
model:
  name: small_cnn
optimizer: {lr: 0.003}
scheduler: {name: cosine}
train: {epochs: 8, batch_size: 16}
seed: 1
threads: 1
)";

// The attention test: a small CNN trained briefly to tell the mask states
// of the synthetic faces apart (val macro-F1 about 0.95) knows "wear" by
// the mask, so its Grad-CAM for "wear" on validation images of masked
// faces should put most of its mass on the mask's box (as the generator
// drew it, mapped through the face crop into the 48 x 64 input), far more
// than the box's share of the picture.
// The third block's ReLU (12 x 16 at 48 x 64), not the default last block
// (6 x 8): the finer map separates the mask box from the face around it,
// whose hair now carries gender and age cues (the mask-state model sees
// them too).
constexpr char kAttentionLayer[] = "features.10";

TEST(GradCamTrainedTest, MapsOfMaskedFacesLieOnTheMask) {
  const auto start = std::chrono::steady_clock::now();
  testing::TempDir dir;
  SyntheticManifest manifest;
  const std::string checkpoint =
      TrainOnSynthetic(dir, 60, kMaskStateConfig, &manifest);
  ASSERT_FALSE(checkpoint.empty());
  absl::StatusOr<SourceModel> source = LoadSourceModel(
      checkpoint, torch::kCPU, 0, dir.Join("data"));
  ASSERT_TRUE(source.ok()) << source.status();

  // The regions the generator drew, by path relative to the data root.
  std::map<std::string, SyntheticRegions> regions;
  for (const SyntheticImage& image : manifest.train) {
    regions[image.path] = image.regions;
  }

  absl::StatusOr<Dataset> dataset = LoadDataset(
      DatasetOptionsFromConfig(source->config.data(), dir.Join("data")));
  ASSERT_TRUE(dataset.ok());
  absl::StatusOr<Split> split =
      SplitByPerson(*dataset, SplitOptionsFromConfig(source->config));
  ASSERT_TRUE(split.ok());
  const int wear = static_cast<int>(
      std::find(dataset->class_names.begin(), dataset->class_names.end(),
                "wear") -
      dataset->class_names.begin());
  ASSERT_LT(wear, dataset->num_classes());
  std::vector<size_t> worn;
  for (size_t i : split->val) {
    if (dataset->samples[i].label == wear) worn.push_back(i);
  }
  ASSERT_GE(worn.size(), 20u);
  absl::StatusOr<std::unique_ptr<FaceCropper>> cropper =
      CreateSourceCropper(source->config, dir.Join("cache"));
  ASSERT_TRUE(cropper.ok() && *cropper != nullptr);
  absl::StatusOr<LoaderOptions> loader_options =
      SourceEvalLoaderOptions(source->config, 64);
  ASSERT_TRUE(loader_options.ok());
  absl::StatusOr<std::unique_ptr<Loader>> loader =
      Loader::Create(&*dataset, worn, cropper->get(), *loader_options);
  ASSERT_TRUE(loader.ok()) << loader.status();
  (*loader)->StartEpoch(0);

  // The face crop (the fixed box) maps image pixels into the input.
  std::optional<FaceCrop> crop = (*cropper)->LocateFromSize(
      cv::Size(kSyntheticWidth, kSyntheticHeight), "");
  ASSERT_TRUE(crop.has_value());
  const cv::Rect box = crop->box;
  // Adds the share of `map`'s mass inside `region` (image pixels), the
  // share of the input's pixels it covers and whether the map's peak lies
  // in it to *sums (nothing when the region misses the input).
  struct Sums {
    double mass = 0.0;
    double share = 0.0;
    int peaks = 0;
    int images = 0;
  };
  const auto add = [&](const torch::Tensor& map, const cv::Rect& region,
                       Sums* sums) {
    const double sx = static_cast<double>(kWidth) / box.width;
    const double sy = static_cast<double>(kHeight) / box.height;
    const double x0 = (region.x - box.x) * sx;
    const double x1 = (region.br().x - box.x) * sx;
    const double y0 = (region.y - box.y) * sy;
    const double y1 = (region.br().y - box.y) * sy;
    const auto values = map.accessor<float, 2>();
    double inside = 0.0, total = 0.0, peak = -1.0;
    int pixels = 0;
    bool peak_inside = false;
    for (int y = 0; y < kHeight; ++y) {
      for (int x = 0; x < kWidth; ++x) {
        const double v = values[y][x];
        const bool in =
            x + 0.5 > x0 && x + 0.5 < x1 && y + 0.5 > y0 && y + 0.5 < y1;
        total += v;
        if (in) {
          inside += v;
          ++pixels;
        }
        if (v > peak) {
          peak = v;
          peak_inside = in;
        }
      }
    }
    if (pixels == 0 || total <= 0.0) return;
    sums->mass += inside / total;
    sums->share += static_cast<double>(pixels) / (kWidth * kHeight);
    sums->peaks += peak_inside ? 1 : 0;
    ++sums->images;
  };

  std::string root = dataset->root;
  if (root.back() != '/') root += '/';
  Sums on_mask, on_lower_face;
  while (true) {
    absl::StatusOr<std::optional<Batch>> batch = (*loader)->Next();
    ASSERT_TRUE(batch.ok()) << batch.status();
    if (!batch->has_value()) break;
    const Batch& b = **batch;
    absl::StatusOr<GradCamMaps> cam =
        ComputeGradCam(*source->model, b.images, wear, kAttentionLayer);
    ASSERT_TRUE(cam.ok()) << cam.status();
    for (size_t i = 0; i < b.sample_indices.size(); ++i) {
      std::string path = dataset->samples[b.sample_indices[i]].path;
      if (absl::StartsWith(path, root)) path.erase(0, root.size());
      ASSERT_EQ(regions.count(path), 1u) << path;
      const torch::Tensor map =
          cam->maps[static_cast<int64_t>(i)].contiguous();
      add(map, regions[path].mask, &on_mask);
      add(map, regions[path].lower_face, &on_lower_face);
    }
  }
  ASSERT_GE(on_mask.images, 20);
  ASSERT_EQ(on_lower_face.images, on_mask.images);
  const double n = on_mask.images;
  const double mask_mass = on_mask.mass / n;
  const double mask_share = on_mask.share / n;
  const double face_mass = on_lower_face.mass / n;
  const double face_share = on_lower_face.share / n;
  std::cout << "Grad-CAM of wear on " << on_mask.images
            << " validation images: mass on the lower face " << face_mass
            << " (area share " << face_share << "), on the mask box "
            << mask_mass << " (area share " << mask_share
            << "); peak on the lower face in " << on_lower_face.peaks
            << ", on the mask in " << on_mask.peaks << "; "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                             start)
                   .count()
            << " s\n";
  // (Measured when written: 0.59 of the mass on the lower face, 0.26 of
  // the area; 0.43 on the mask box, 0.20 of the area; the peak on the
  // lower face in 59 of 60 images. A map that ignored the mask would put
  // about the area's share there.)
  EXPECT_GT(face_mass, 0.5);
  EXPECT_GT(face_mass, 2.0 * face_share);
  EXPECT_GT(mask_mass, 1.75 * mask_share);
  EXPECT_GE(on_lower_face.peaks, 0.75 * n);
}

// --- The job -----------------------------------------------------------------

// A barely trained model (one epoch on few people): the job tests are about
// files, events and errors, not about what the model learned.
class GradCamJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    checkpoint_ = TrainOnSynthetic(
        dir_, 12,
        std::string(kBaseConfig) + "train: {epochs: 1, batch_size: 16}\n");
    ASSERT_FALSE(checkpoint_.empty());
    absl::StatusOr<SourceModel> source =
        LoadSourceModel(checkpoint_, torch::kCPU, 0, dir_.Join("data"));
    ASSERT_TRUE(source.ok()) << source.status();
    absl::StatusOr<Dataset> dataset = LoadDataset(
        DatasetOptionsFromConfig(source->config.data(), dir_.Join("data")));
    ASSERT_TRUE(dataset.ok());
    absl::StatusOr<Split> split =
        SplitByPerson(*dataset, SplitOptionsFromConfig(source->config));
    ASSERT_TRUE(split.ok());
    val_counts_.assign(dataset->num_classes(), 0);
    for (size_t i : split->val) ++val_counts_[dataset->samples[i].label];
  }

  struct JobRun {
    TrainResult result;
    std::vector<google::protobuf::Struct> events;
    std::string out;
  };

  JobRun Run(int gradcam_class, int images, const std::string& layer = "") {
    JobOptions options;
    options.config.mutable_data()->set_dataset("mask");
    options.config.mutable_job()->set_kind("gradcam");
    options.config.mutable_job()->add_source_runs(12);
    options.config.mutable_job()->set_gradcam_class(gradcam_class);
    options.config.mutable_job()->set_gradcam_images(images);
    options.config.mutable_job()->set_gradcam_layer(layer);
    options.model_paths = {checkpoint_};
    options.data_dir = dir_.Join("data");
    options.out_dir = dir_.Join(absl::StrCat("job", ++jobs_));
    options.cache_dir = dir_.Join("cache");
    options.threads = 1;
    MemoryEventSink sink;
    options.events = &sink;
    JobRun run;
    run.result = RunGradCamJob(options);
    run.out = options.out_dir;
    for (const std::string& line : sink.lines()) {
      std::optional<google::protobuf::Struct> event = ParseEvent(line);
      EXPECT_TRUE(event.has_value()) << line;
      if (event.has_value()) run.events.push_back(*event);
    }
    return run;
  }

  // The class with the most validation images, and one with none.
  int CommonClass() const {
    return static_cast<int>(
        std::max_element(val_counts_.begin(), val_counts_.end()) -
        val_counts_.begin());
  }
  int EmptyClass() const {
    for (size_t c = 0; c < val_counts_.size(); ++c) {
      if (val_counts_[c] == 0) return static_cast<int>(c);
    }
    return -1;
  }

  testing::TempDir dir_;
  std::string checkpoint_;
  std::vector<int> val_counts_;
  int jobs_ = 0;
};

TEST_F(GradCamJobTest, WritesASheetAndACsvAndAnnouncesThem) {
  const int c = CommonClass();
  const int available = val_counts_[c];
  ASSERT_GE(available, 3);
  const JobRun run = Run(c, 3);
  ASSERT_TRUE(run.result.status.ok()) << run.result.status;
  EXPECT_EQ(run.result.exit_code(), 0);
  ASSERT_FALSE(run.events.empty());
  EXPECT_EQ(Kind(run.events.front()), "start");
  EXPECT_EQ(Field(run.events.front(), "kind").string_value(), "gradcam");
  std::vector<std::string> artifacts;
  for (const auto& a : OfKind(run.events, "artifact")) {
    artifacts.push_back(Field(a, "name").string_value());
    EXPECT_TRUE(fs::is_regular_file(Field(a, "path").string_value()));
  }
  EXPECT_THAT(artifacts, ::testing::ElementsAre("gradcam.csv", "gradcam.png"));
  const auto& summary = run.events.back();
  ASSERT_EQ(Kind(summary), "summary");
  EXPECT_EQ(Field(summary, "images").number_value(), 3);
  EXPECT_EQ(Field(summary, "layer").string_value(), "features.14");
  EXPECT_FALSE(testing::Has(summary, "note"));

  const cv::Mat png = cv::imread(run.out + "/gradcam.png");
  ASSERT_FALSE(png.empty());
  const GradCamSheetLayout layout = LayoutGradCamSheet(3, kWidth, kHeight);
  EXPECT_EQ(png.cols, layout.width);
  EXPECT_EQ(png.rows, layout.height);
  const std::string csv = testing::ReadFileOrEmpty(run.out + "/gradcam.csv");
  const std::vector<std::string> lines =
      absl::StrSplit(csv, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u) << csv;
  EXPECT_EQ(lines[0],
            "path,true,pred,correct,prob,prob_true,cam_mean,cam_peak_x,"
            "cam_peak_y,cam_center_x,cam_center_y");
  const std::vector<std::string> names = MaskClassNames({30, 60});
  EXPECT_THAT(lines[1], HasSubstr(absl::StrCat("train/images/")));
  EXPECT_THAT(lines[1], HasSubstr(absl::StrCat(",", names[c], ",")));
}

TEST_F(GradCamJobTest, FewerImagesThanAskedAreShownAndSaidSo) {
  const int c = CommonClass();
  const JobRun run = Run(c, 64);
  ASSERT_TRUE(run.result.status.ok()) << run.result.status;
  const auto& summary = run.events.back();
  EXPECT_EQ(Field(summary, "images").number_value(), val_counts_[c]);
  EXPECT_EQ(Field(summary, "requested").number_value(), 64);
  EXPECT_THAT(Field(summary, "note").string_value(),
              HasSubstr(absl::StrCat("only ", val_counts_[c], " of the 64")));
  const cv::Mat png = cv::imread(run.out + "/gradcam.png");
  const GradCamSheetLayout layout =
      LayoutGradCamSheet(val_counts_[c], kWidth, kHeight);
  EXPECT_EQ(png.cols, layout.width);
  EXPECT_EQ(png.rows, layout.height);
}

TEST_F(GradCamJobTest, ClassWithoutValidationImagesIsAPermanentError) {
  const int c = EmptyClass();
  // 12 people leave some gender x age band stratum with one person, who
  // never goes to validation.
  ASSERT_GE(c, 0) << "every class has validation images";
  const JobRun run = Run(c, 16);
  EXPECT_EQ(run.result.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(run.result.exit_code(), 3);
  EXPECT_THAT(run.result.status.message(),
              HasSubstr(MaskClassNames({30, 60})[c]));
  ASSERT_FALSE(run.events.empty());
  EXPECT_EQ(Kind(run.events.back()), "error");
  EXPECT_FALSE(Field(run.events.back(), "retryable").bool_value());
  EXPECT_FALSE(fs::exists(run.out + "/gradcam.png"));
}

TEST_F(GradCamJobTest, BadClassOrLayerIsABadConfig) {
  JobRun run = Run(18, 4);
  EXPECT_EQ(run.result.exit_code(), 2);
  EXPECT_THAT(run.result.status.message(), HasSubstr("job.gradcam_class"));
  run = Run(CommonClass(), 4, "layer4");
  EXPECT_EQ(run.result.exit_code(), 2);
  EXPECT_THAT(run.result.status.message(), HasSubstr("job.gradcam_layer"));
  EXPECT_THAT(run.result.status.message(), HasSubstr("features.14"));
  run = Run(CommonClass(), 4, "features.3");
  EXPECT_TRUE(run.result.status.ok()) << run.result.status;
  EXPECT_EQ(Field(run.events.back(), "layer").string_value(), "features.3");
}

}  // namespace
}  // namespace sweepq::worker
