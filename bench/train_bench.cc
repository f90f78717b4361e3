// Training benchmark (issue 5):
//   1. ResNet-18 on 3 x 128 x 96, batch 32: forward + backward + AdamW step,
//      images per second of sweepq's model, loss and optimizer against
//      Python PyTorch running torchvision's ResNet-18 with the same batch
//      and threads (bench/train_reference.py), measured in the same run
//      (ours, Python, ours again; ours is the mean of its two passes so a
//      drifting machine favours neither);
//   2. the data stall of real epochs: sweepq-train's loop (face crop,
//      loader threads, augmentation) training ResNet-18 on a synthetic mask
//      data set; stall = data_wait_s / epoch_time_s of the last epoch (the
//      decode cache warm, as in every epoch but a run's first). The first
//      epoch, which also detects faces and decodes every image, is printed
//      too.
//
//   bench/run_train_bench.sh build     (make bench-train)
//
// Last line: train: ratio=<ours/python> stall=<fraction> images_per_s=<n>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "glog/logging.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "torch/torch.h"
#include "worker/pipeline/loss.h"
#include "worker/pipeline/model.h"
#include "worker/pipeline/optim.h"
#include "worker/pipeline/synthetic.h"
#include "worker/pipeline/train_events.h"
#include "worker/pipeline/trainer.h"

ABSL_FLAG(int, threads, 0, "intra-op threads of both sides; 0 = cores");
ABSL_FLAG(int, batch, 32, "batch size");
ABSL_FLAG(int, height, 128, "image height");
ABSL_FLAG(int, width, 96, "image width");
ABSL_FLAG(int, warmup, 3, "untimed steps before each timed pass");
ABSL_FLAG(int, steps, 15, "timed steps per pass");
ABSL_FLAG(int, people, 40, "people of the synthetic set (7 images each)");
ABSL_FLAG(int, epochs, 2, "epochs of the stall measurement");
ABSL_FLAG(std::string, python, "/usr/bin/python3",
          "Python with torch and torchvision (Debian's python3-torch)");
ABSL_FLAG(std::string, reference_script, "bench/train_reference.py",
          "the Python reference script");
ABSL_FLAG(std::string, work_dir, "", "scratch directory (default: a temp dir)");

namespace {

namespace fs = std::filesystem;
namespace sw = ::sweepq::worker;
using Clock = std::chrono::steady_clock;

// Returns images per second of `steps` training steps of sweepq's ResNet-18.
double OursImagesPerSecond(int batch, int height, int width, int warmup,
                           int steps) {
  sweepq::v1::ModelConfig model_config;
  model_config.set_name("resnet18");
  auto model = sw::CreateClassifier(model_config, 18, 0, height, width);
  CHECK(model.ok()) << model.status();
  sweepq::v1::OptimizerConfig optimizer_config;
  optimizer_config.set_name("adamw");
  optimizer_config.set_lr(1e-3);
  auto parameters = (*model)->Parameters();
  auto optimizer = sw::CreateOptimizer(optimizer_config, parameters);
  CHECK(optimizer.ok()) << optimizer.status();
  sweepq::v1::LossConfig loss_config;
  auto loss = sw::Loss::Create(loss_config, 18);
  CHECK(loss.ok()) << loss.status();
  (*model)->SetTraining(true);
  torch::manual_seed(0);
  const torch::Tensor images = torch::randn({batch, 3, height, width});
  const torch::Tensor labels = torch::randint(0, 18, {batch}, torch::kLong);
  const torch::Tensor targets = sw::SoftTargets(labels, labels, 1.0, 18);
  auto step = [&] {
    (*optimizer)->zero_grad();
    torch::Tensor l = (*loss)((*model)->Forward(images).logits, targets);
    l.backward();
    (*optimizer)->step();
  };
  for (int i = 0; i < warmup; ++i) step();
  const Clock::time_point start = Clock::now();
  for (int i = 0; i < steps; ++i) step();
  const double seconds =
      std::chrono::duration<double>(Clock::now() - start).count();
  return batch * steps / seconds;
}

// Runs the Python reference; returns its images per second.
std::optional<double> PythonImagesPerSecond(int threads, int batch, int height,
                                            int width, int warmup, int steps) {
  const std::string command = absl::StrCat(
      absl::GetFlag(FLAGS_python), " ", absl::GetFlag(FLAGS_reference_script),
      " --threads ", threads, " --batch ", batch, " --height ", height,
      " --width ", width, " --warmup ", warmup, " --steps ", steps);
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return std::nullopt;
  std::string output;
  char buffer[512];
  while (fgets(buffer, sizeof(buffer), pipe) != nullptr) output += buffer;
  if (pclose(pipe) != 0) {
    std::cerr << "reference failed: " << command << "\n" << output;
    return std::nullopt;
  }
  std::smatch m;
  if (!std::regex_search(output, m, std::regex("images_per_s=([0-9.]+)"))) {
    std::cerr << "reference printed no images_per_s: " << output;
    return std::nullopt;
  }
  return std::stod(m[1]);
}

struct EpochFigures {
  double epoch_time_s = 0;
  double data_wait_s = 0;
  double images_per_s = 0;
};

// Trains ResNet-18 for --epochs on a synthetic set through sweepq-train's
// loop; returns each epoch's figures.
std::vector<EpochFigures> RealEpochs(const std::string& work_dir, int threads,
                                     int batch) {
  sw::SyntheticOptions synthetic;
  synthetic.out_dir = work_dir + "/data";
  synthetic.people = absl::GetFlag(FLAGS_people);
  synthetic.eval_images = 0;
  synthetic.threads = threads;
  if (!fs::exists(synthetic.out_dir + "/train")) {
    auto manifest = sw::WriteSyntheticMaskDataset(synthetic);
    CHECK(manifest.ok()) << manifest.status();
  }
  const std::string config = work_dir + "/run.yaml";
  {
    std::ofstream out(config);
    out << "data: {dataset: mask}\nmodel: {name: resnet18}\n"
        << "train: {epochs: " << absl::GetFlag(FLAGS_epochs)
        << ", batch_size: " << batch << "}\nseed: 0\nthreads: " << threads
        << "\n";
  }
  sw::MemoryEventSink sink;
  sw::TrainerOptions options;
  options.config_path = config;
  options.data_dir = synthetic.out_dir;
  options.out_dir = work_dir + "/out";
  options.cache_dir = work_dir + "/cache";
  options.events = &sink;
  const sw::TrainResult result = sw::RunTraining(options);
  CHECK(result.status.ok()) << result.status;
  std::vector<EpochFigures> epochs;
  for (const std::string& line : sink.lines()) {
    google::protobuf::Struct event;
    CHECK(google::protobuf::util::JsonStringToMessage(line, &event).ok());
    if (event.fields().at("event").string_value() != "epoch") continue;
    const auto& m = event.fields().at("metrics").struct_value().fields();
    epochs.push_back({m.at("epoch_time_s").number_value(),
                      m.at("data_wait_s").number_value(),
                      m.at("images_per_s").number_value()});
  }
  return epochs;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  int threads = absl::GetFlag(FLAGS_threads);
  if (threads <= 0) {
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }
  const int batch = absl::GetFlag(FLAGS_batch);
  const int height = absl::GetFlag(FLAGS_height);
  const int width = absl::GetFlag(FLAGS_width);
  const int warmup = absl::GetFlag(FLAGS_warmup);
  const int steps = absl::GetFlag(FLAGS_steps);
  torch::set_num_threads(threads);
  at::set_num_interop_threads(1);
  std::printf("resnet18 3x%dx%d batch %d, %d threads, %d timed steps a pass\n",
              height, width, batch, threads, steps);

  const double ours1 = OursImagesPerSecond(batch, height, width, warmup, steps);
  std::printf("ours   pass 1: %.2f images/s\n", ours1);
  const std::optional<double> python =
      PythonImagesPerSecond(threads, batch, height, width, warmup, steps);
  if (!python.has_value()) return 1;
  std::printf("python:        %.2f images/s\n", *python);
  const double ours2 = OursImagesPerSecond(batch, height, width, warmup, steps);
  std::printf("ours   pass 2: %.2f images/s\n", ours2);
  const double ours = (ours1 + ours2) / 2;

  std::string work_dir = absl::GetFlag(FLAGS_work_dir);
  if (work_dir.empty()) {
    std::string pattern = (fs::temp_directory_path() / "train-bench-XXXXXX");
    CHECK(mkdtemp(pattern.data()) != nullptr);
    work_dir = pattern;
  }
  const std::vector<EpochFigures> epochs = RealEpochs(work_dir, threads, batch);
  CHECK(!epochs.empty());
  for (size_t i = 0; i < epochs.size(); ++i) {
    std::printf(
        "epoch %zu: %.2f s, data wait %.3f s (stall %.4f), %.1f images/s\n",
        i + 1, epochs[i].epoch_time_s, epochs[i].data_wait_s,
        epochs[i].data_wait_s / epochs[i].epoch_time_s, epochs[i].images_per_s);
  }
  if (absl::GetFlag(FLAGS_work_dir).empty()) {
    std::error_code ec;
    fs::remove_all(work_dir, ec);
  }
  const EpochFigures& last = epochs.back();
  std::printf("train: ratio=%.3f stall=%.4f images_per_s=%.2f\n",
              ours / *python, last.data_wait_s / last.epoch_time_s, ours);
  return 0;
}
