// sweepq-make-dataset: writes a synthetic mask competition data set (see
// worker/pipeline/synthetic.h). Flags are read here only.
#include <algorithm>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "common/flags.h"
#include "worker/pipeline/synthetic.h"

ABSL_FLAG(std::string, out, "",
          "output directory (must not hold train/ or eval/)");
ABSL_FLAG(int, people, 100, "training people, 7 images each");
ABSL_FLAG(uint64_t, seed, 0, "seed; the same seed writes the same files");
ABSL_FLAG(int, eval_images, -1,
          "evaluation images (from other people); -1 = as many as --people");
ABSL_FLAG(int, threads, 0, "rendering threads; 0 = number of cores");
ABSL_FLAG(int, jpeg_quality, 90, "JPEG quality, 1-100");

namespace {

constexpr char kUsage[] = R"(writes a synthetic mask competition data set.

Usage:
  sweepq-make-dataset --out DIR --people N --seed S [--eval-images M]

Writes DIR/train/train.csv, DIR/train/images/<id>_<gender>_<race>_<age>/
(mask1..mask5, incorrect_mask, normal; 384x512 JPEGs), DIR/eval/info.csv,
DIR/eval/images/, DIR/eval/answers.csv (true classes) and
DIR/synthetic_regions.csv (face and mask boxes of every image).
Flags may be written with dashes or underscores.
)";

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> rest =
      sweepq::ParseMainFlags(argc, argv, kUsage, "worker/make_dataset_main.cc");
  if (rest.size() > 1 || absl::GetFlag(FLAGS_out).empty()) {
    std::cerr << kUsage;
    return 2;
  }
  sweepq::worker::SyntheticOptions options;
  options.out_dir = absl::GetFlag(FLAGS_out);
  options.people = absl::GetFlag(FLAGS_people);
  options.seed = absl::GetFlag(FLAGS_seed);
  options.eval_images = absl::GetFlag(FLAGS_eval_images);
  options.jpeg_quality = absl::GetFlag(FLAGS_jpeg_quality);
  const int threads = absl::GetFlag(FLAGS_threads);
  options.threads =
      threads > 0
          ? threads
          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const auto manifest = sweepq::worker::WriteSyntheticMaskDataset(options);
  if (!manifest.ok()) {
    std::cerr << "sweepq-make-dataset: " << manifest.status().message() << "\n";
    return 1;
  }
  std::cout << "wrote " << manifest->people.size() << " people, "
            << manifest->train.size() << " train images, "
            << manifest->eval.size() << " eval images to " << options.out_dir
            << "\n";
  return 0;
}
