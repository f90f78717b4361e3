// Data pipeline benchmark: images per second of decode -> face crop ->
// resize to the working resolution -> augment (hflip, colour jitter,
// AutoAugment ImageNet, cutout) -> normalize -> float batches, through
// sweepq's Loader, against the PyTorch / torchvision / PIL pipeline of
// bench/pipeline_reference.py on the same JPEGs with the same number of
// threads (loader threads = DataLoader workers), measured in the same run
// so the ratios mean something on a noisy shared machine.
//
//   bench/run_pipeline_bench.sh build     (make bench-pipeline)
//
// Ours is measured with the fixed face box (what the reference crops) with
// the decode cache off (every epoch decodes: `ratio`) and warm (`cached_
// ratio`), and, as extra figures, with the haar -> fixed chain.
//
// Last line: pipeline: ratio=<ours/python> cached_ratio=<ours with warm
//            decode cache/python> images_per_s=<ours, decode cache off>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/flags.h"
#include "common/status_macros.h"
#include "worker/pipeline/dataset.h"
#include "worker/pipeline/face_crop.h"
#include "worker/pipeline/loader.h"

ABSL_FLAG(std::string, data, "",
          "a mask competition layout (sweepq-make-dataset --out)");
ABSL_FLAG(int, threads, 2, "loader threads, and DataLoader workers");
ABSL_FLAG(int, batch_size, 32, "batch size");
ABSL_FLAG(int, epochs, 3, "timed epochs of each measurement");
ABSL_FLAG(int, width, 96, "working width");
ABSL_FLAG(int, height, 128, "working height");
ABSL_FLAG(bool, reference, true,
          "run the PyTorch reference; false prints ratios of 0 (profiling)");
ABSL_FLAG(bool, haar, true, "also measure the haar -> fixed detector chain");
ABSL_FLAG(std::string, python, "/usr/bin/python3",
          "Python with torch and torchvision (Debian's python3-torchvision)");
ABSL_FLAG(std::string, reference_script, "bench/pipeline_reference.py",
          "the PyTorch reference script");

namespace {

namespace worker = ::sweepq::worker;
using Clock = std::chrono::steady_clock;

constexpr char kUsage[] =
    R"(benchmarks sweepq's data pipeline against torchvision.

Usage:
  pipeline_bench --data DIR [--threads 2] [--epochs 3]

DIR is a mask competition layout, e.g. from sweepq-make-dataset.
make bench-pipeline generates one and runs this.
)";

// What one measurement of our loader gave.
struct Measurement {
  int64_t images = 0;
  double seconds = 0;
  worker::LoaderStats stats;
  double per_s() const { return seconds > 0 ? images / seconds : 0; }
};

// The loader settings of both pipelines (see pipeline_reference.py).
worker::LoaderOptions BenchLoaderOptions() {
  worker::LoaderOptions o;
  o.batch_size = absl::GetFlag(FLAGS_batch_size);
  o.width = absl::GetFlag(FLAGS_width);
  o.height = absl::GetFlag(FLAGS_height);
  o.threads = absl::GetFlag(FLAGS_threads);
  // DataLoader's default prefetch_factor 2 per worker.
  o.prefetch_batches = 2 * o.threads;
  o.seed = 1;
  o.shuffle = true;
  o.augment = true;
  worker::LoaderAugmentOptions& a = o.augment_options;
  a.hflip = 0.5;
  a.color_jitter.brightness = 0.2;
  a.color_jitter.contrast = 0.2;
  a.color_jitter.saturation = 0.2;
  a.color_jitter.hue = 0.05;
  a.autoaugment = true;
  a.cutout.p = 0.5;
  a.cutout.size = 0.25;
  a.cutout.holes = 1;
  return o;  // normalize: the mask defaults, as the reference
}

// Runs `epochs` epochs from `first_epoch` on and times them together.
absl::StatusOr<Measurement> RunEpochs(worker::Loader& loader,
                                      int64_t first_epoch, int epochs) {
  Measurement m;
  const auto start = Clock::now();
  for (int64_t e = first_epoch; e < first_epoch + epochs; ++e) {
    loader.StartEpoch(e);
    while (true) {
      ASSIGN_OR_RETURN(std::optional<worker::Batch> batch, loader.Next());
      if (!batch.has_value()) break;
      m.images += batch->images.size(0);
    }
  }
  m.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  m.stats = loader.stats();
  return m;
}

absl::StatusOr<std::unique_ptr<worker::FaceCropper>> MakeCropper(
    std::vector<std::string> detectors, const std::string& cache_dir) {
  worker::FaceCropOptions options;
  options.detectors = std::move(detectors);
  options.cache_dir = cache_dir;
  return worker::FaceCropper::Create(options);
}

// The PyTorch reference's figure.
struct Reference {
  int64_t images = 0;
  double per_s = 0;
};

// Runs the reference script; echoes its output.
absl::StatusOr<Reference> RunReference(const std::string& data) {
  const std::string cmd = absl::StrCat(
      absl::GetFlag(FLAGS_python), " ", absl::GetFlag(FLAGS_reference_script),
      " --data '", data, "' --workers ", absl::GetFlag(FLAGS_threads),
      " --batch-size ", absl::GetFlag(FLAGS_batch_size), " --epochs ",
      absl::GetFlag(FLAGS_epochs) + 1, " --width ", absl::GetFlag(FLAGS_width),
      " --height ", absl::GetFlag(FLAGS_height), " 2>&1");
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) {
    return absl::InternalError(absl::StrCat("cannot run: ", cmd));
  }
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof(buf), pipe) != nullptr) {
    out += buf;
    std::cout << "  " << buf << std::flush;
  }
  const int rc = pclose(pipe);
  std::smatch m;
  if (rc != 0 || !std::regex_search(out, m,
                                    std::regex("reference images=([0-9]+) .* "
                                               "images_per_s=([0-9.eE+-]+)"))) {
    return absl::InternalError(absl::StrCat(
        "the PyTorch reference failed (exit status ", rc, "): ", cmd,
        "\n(needs python3-torchvision and python3-pil; make bench-pipeline "
        "installs them)"));
  }
  return Reference{std::stoll(m[1]), std::stod(m[2])};
}

absl::Status Run() {
  const std::string data = absl::GetFlag(FLAGS_data);
  const int epochs = absl::GetFlag(FLAGS_epochs);
  if (epochs < 1) return absl::InvalidArgumentError("--epochs must be >= 1");
  worker::DatasetOptions dataset_options;
  dataset_options.root = data;
  ASSIGN_OR_RETURN(worker::Dataset dataset,
                   worker::LoadDataset(dataset_options));
  std::vector<size_t> all(dataset.samples.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  const auto n = static_cast<int64_t>(all.size());
  const worker::LoaderOptions base = BenchLoaderOptions();
  std::cout << absl::StrFormat(
      "sweepq pipeline bench: %d images of %s, %d threads, batch %d, "
      "%dx%d (WxH), %d timed epochs each\n",
      n, data, base.threads, base.batch_size, base.width, base.height, epochs);

  // The reference first: it also brings the files into the page cache, so
  // neither side reads from disk.
  Reference python;
  if (absl::GetFlag(FLAGS_reference)) {
    std::cout << "python: torchvision + PIL, DataLoader(num_workers="
              << base.threads << ")\n";
    ASSIGN_OR_RETURN(python, RunReference(data));
  } else {
    python.images = n;
  }
  if (python.images != n) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the reference saw ", python.images, " images, sweepq ", n));
  }

  ASSIGN_OR_RETURN(auto fixed, MakeCropper({"fixed"}, ""));
  // Decode cache off: every epoch decodes, crops and resizes every image.
  worker::LoaderOptions cold_options = base;
  cold_options.decode_cache_bytes = 0;
  ASSIGN_OR_RETURN(
      auto cold_loader,
      worker::Loader::Create(&dataset, all, fixed.get(), cold_options));
  ASSIGN_OR_RETURN(Measurement cold, RunEpochs(*cold_loader, 0, epochs));
  cold_loader.reset();
  // The same without reduced JPEG decoding, to show what it gains.
  worker::LoaderOptions full_options = cold_options;
  full_options.reduced_decoding = false;
  ASSIGN_OR_RETURN(
      auto full_loader,
      worker::Loader::Create(&dataset, all, fixed.get(), full_options));
  ASSIGN_OR_RETURN(Measurement full, RunEpochs(*full_loader, 0, epochs));
  full_loader.reset();

  // Decode cache on: epoch 0 fills it, the timed epochs only augment.
  ASSIGN_OR_RETURN(auto warm_loader,
                   worker::Loader::Create(&dataset, all, fixed.get(), base));
  ASSIGN_OR_RETURN(Measurement fill, RunEpochs(*warm_loader, 0, 1));
  ASSIGN_OR_RETURN(Measurement warm, RunEpochs(*warm_loader, 1, epochs));
  warm_loader.reset();
  if (warm.stats.decodes != n) {
    return absl::InternalError(absl::StrCat(
        "the warm epochs decoded ", warm.stats.decodes - n,
        " images again: the decode cache did not hold the data set"));
  }

  std::optional<Measurement> haar_first;
  std::optional<Measurement> haar_cached;
  if (absl::GetFlag(FLAGS_haar)) {
    // A fresh detection cache, so epoch 0 runs the detector on every image;
    // later epochs decode again (decode cache off) but find the boxes cached.
    std::string cache_dir =
        (std::filesystem::temp_directory_path() / "sweepq-bench-XXXXXX")
            .string();
    if (mkdtemp(cache_dir.data()) == nullptr) {
      return absl::InternalError(absl::StrCat("mkdtemp ", cache_dir));
    }
    absl::Status status = [&]() -> absl::Status {
      ASSIGN_OR_RETURN(auto haar, MakeCropper({"haar", "fixed"}, cache_dir));
      ASSIGN_OR_RETURN(
          auto loader,
          worker::Loader::Create(&dataset, all, haar.get(), cold_options));
      ASSIGN_OR_RETURN(haar_first, RunEpochs(*loader, 0, 1));
      const int64_t fallbacks = haar->SourceCounts()["fixed"];
      ASSIGN_OR_RETURN(haar_cached, RunEpochs(*loader, 1, epochs));
      std::cout << absl::StrFormat(
          "haar chain: %d of %d images fell back to the fixed box; later "
          "epochs: %d boxes from the detection cache, %d reduced decodes\n",
          fallbacks, n, haar->cache_hits(), haar_cached->stats.reduced_decodes);
      return absl::OkStatus();
    }();
    std::error_code ec;
    std::filesystem::remove_all(cache_dir, ec);
    RETURN_IF_ERROR(status);
  }

  auto vs_python = [&](double per_s) {
    return python.per_s > 0 ? per_s / python.per_s : 0.0;
  };
  auto row = [&](const std::string& what, double per_s) {
    std::cout << absl::StrFormat("  %-60s %9.1f %8.2fx\n", what, per_s,
                                 vs_python(per_s));
  };
  std::cout << absl::StrFormat("  %-60s %9s %9s\n", "pipeline", "images/s",
                               "vs python");
  row(absl::StrCat("python: PIL + torchvision, ", base.threads, " workers"),
      python.per_s);
  row("sweepq, fixed box, decode cache off (every epoch decodes)",
      cold.per_s());
  row("  the same, JPEGs decoded at full size (no reduced decoding)",
      full.per_s());
  row("sweepq, fixed box, first epoch (filling the decode cache)",
      fill.per_s());
  row("sweepq, fixed box, warm decode cache", warm.per_s());
  if (haar_first.has_value()) {
    row("sweepq, haar->fixed, first epoch (detector on every image)",
        haar_first->per_s());
    row("sweepq, haar->fixed, boxes cached, decode cache off",
        haar_cached->per_s());
  }
  std::cout << absl::StrFormat(
      "decode cache off: %d decodes, %d of them reduced; warm: %d images "
      "cached (%.1f MiB)\n",
      cold.stats.decodes, cold.stats.reduced_decodes, warm.stats.cached_images,
      static_cast<double>(warm.stats.cached_bytes) / (1 << 20));
  std::cout << absl::StrFormat(
      "pipeline: ratio=%.2f cached_ratio=%.2f images_per_s=%.1f\n",
      vs_python(cold.per_s()), vs_python(warm.per_s()), cold.per_s());
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> rest =
      sweepq::ParseMainFlags(argc, argv, kUsage, "bench/pipeline_bench.cc");
  if (rest.size() > 1 || absl::GetFlag(FLAGS_data).empty()) {
    std::cerr << kUsage;
    return 2;
  }
  const absl::Status status = Run();
  if (!status.ok()) {
    std::cerr << "pipeline_bench: " << status << "\n";
    return 1;
  }
  return 0;
}
