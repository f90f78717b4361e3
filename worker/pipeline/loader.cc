#include "worker/pipeline/loader.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>

#include "ATen/Parallel.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "opencv2/core.hpp"
#include "worker/pipeline/batch_mix.h"
#include "worker/pipeline/image_decode.h"

namespace sweepq::worker {
namespace {

// Number of bad image examples an error message names.
constexpr size_t kBadExamples = 3;

uint64_t SplitMix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Returns a seed derived from (seed, a, b) so nearby inputs give unrelated
// generators.
uint64_t DeriveSeed(uint64_t seed, uint64_t a, uint64_t b) {
  return SplitMix64(SplitMix64(SplitMix64(seed) ^ a) ^ b);
}

// Salts of the generators derived from the run's seed.
constexpr uint64_t kOrderSalt = 0x6f72646572ULL;  // "order"
constexpr uint64_t kAugmentSalt = 0x6175676dULL;  // "augm"

absl::Status CheckOptions(const LoaderOptions& o) {
  if (o.batch_size < 1) {
    return absl::InvalidArgumentError("loader: batch_size must be >= 1");
  }
  if (o.width < 1 || o.height < 1) {
    return absl::InvalidArgumentError(
        "loader: image width and height must be >= 1");
  }
  if (o.center_crop_width < 0 || o.center_crop_height < 0) {
    return absl::InvalidArgumentError("loader: center crop must be >= 0");
  }
  if (o.threads < 1) {
    return absl::InvalidArgumentError("loader: threads must be >= 1");
  }
  if (o.prefetch_batches < 1) {
    return absl::InvalidArgumentError("loader: prefetch_batches must be >= 1");
  }
  if (!(o.max_bad_fraction >= 0.0 && o.max_bad_fraction <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("loader: max_bad_fraction must be in [0, 1], got ",
                     o.max_bad_fraction));
  }
  if (o.torch_threads < 0) {
    return absl::InvalidArgumentError("loader: torch_threads must be >= 0");
  }
  return absl::OkStatus();
}

// Returns the largest decode scale (8, 4, 2) at which a `box` of the full
// image is still at least `width` x `height`, else 1.
int ReducedDecodeScale(cv::Size box, int width, int height) {
  for (int scale : {8, 4, 2}) {
    if (box.width / scale >= width && box.height / scale >= height) {
      return scale;
    }
  }
  return 1;
}

// Returns `box` (full-size pixels) in an image decoded at 1 / `scale` of
// `reduced` size, clamped to it and never empty.
cv::Rect ScaleBox(const cv::Rect& box, int scale, cv::Size reduced) {
  if (scale == 1) return box;
  const auto at = [scale](int v) {
    return static_cast<int>(std::lround(static_cast<double>(v) / scale));
  };
  const int x0 = std::clamp(at(box.x), 0, reduced.width - 1);
  const int y0 = std::clamp(at(box.y), 0, reduced.height - 1);
  const int x1 = std::clamp(at(box.x + box.width), x0 + 1, reduced.width);
  const int y1 = std::clamp(at(box.y + box.height), y0 + 1, reduced.height);
  return cv::Rect(x0, y0, x1 - x0, y1 - y0);
}

cv::Mat Augment(const cv::Mat& image, const LoaderOptions& options,
                std::mt19937_64& rng) {
  const LoaderAugmentOptions& a = options.augment_options;
  cv::Mat out = image;
  if (a.random_resized_crop) {
    out = RandomResizedCrop(out, options.width, options.height,
                            a.random_resized_crop_options, rng);
  }
  if (a.hflip > 0.0) out = RandomHorizontalFlip(out, a.hflip, rng);
  out = ColorJitter(out, a.color_jitter, rng);
  if (a.autoaugment) out = AutoAugmentImageNet(out, rng);
  if (a.cutout.p > 0.0) out = Cutout(out, a.cutout, rng);
  return out;
}

}  // namespace

absl::StatusOr<LoaderOptions> LoaderOptionsFromConfig(
    const v1::RunConfig& config, bool train) {
  const v1::DataConfig& data = config.data();
  const v1::AugmentConfig& augment = config.augment();
  LoaderOptions o;
  o.width = data.image_width() > 0 ? static_cast<int>(data.image_width()) : 96;
  o.height =
      data.image_height() > 0 ? static_cast<int>(data.image_height()) : 128;
  o.threads =
      data.loader_threads() > 0 ? static_cast<int>(data.loader_threads()) : 2;
  o.prefetch_batches = data.prefetch_batches() > 0
                           ? static_cast<int>(data.prefetch_batches())
                           : 2 * o.threads;
  o.decode_cache_bytes = data.decode_cache_bytes() > 0
                             ? data.decode_cache_bytes()
                             : kDefaultDecodeCacheBytes;
  if (data.has_max_bad_fraction()) {
    o.max_bad_fraction = data.max_bad_fraction();
    if (!(o.max_bad_fraction >= 0.0 && o.max_bad_fraction <= 1.0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "data.max_bad_fraction must be in [0, 1], got ", o.max_bad_fraction));
    }
  }
  o.max_image_pixels = MaxImagePixelsFromConfig(data);
  const uint32_t batch = config.train().batch_size();
  const uint32_t val_batch = config.train().val_batch_size();
  o.batch_size = static_cast<int>(
      train ? (batch > 0 ? batch : 32)
            : (val_batch > 0 ? val_batch : (batch > 0 ? batch : 32)));
  o.center_crop_width = static_cast<int>(augment.center_crop_width());
  o.center_crop_height = static_cast<int>(augment.center_crop_height());
  o.seed = config.has_seed() ? config.seed() : 0;
  o.shuffle = train;
  o.weighted_sampling = train && data.weighted_sampling();
  o.augment = train;
  LoaderAugmentOptions& a = o.augment_options;
  a.hflip = augment.has_hflip() ? augment.hflip() : 0.5;
  if (!(a.hflip >= 0.0 && a.hflip <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("augment.hflip must be in [0, 1], got ", a.hflip));
  }
  a.color_jitter = ColorJitterOptionsFromConfig(augment.color_jitter());
  if (augment.autoaugment() == "imagenet") {
    a.autoaugment = true;
  } else if (!augment.autoaugment().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("augment.autoaugment: unknown policy \"",
                     augment.autoaugment(), "\" (\"\" | imagenet)"));
  }
  a.cutout = CutoutOptionsFromConfig(augment.cutout());
  a.random_resized_crop = augment.random_resized_crop().enabled();
  a.random_resized_crop_options =
      RandomResizedCropOptionsFromConfig(augment.random_resized_crop());
  ASSIGN_OR_RETURN(o.normalize, NormalizeOptionsFromConfig(augment));
  RETURN_IF_ERROR(CheckOptions(o));
  return o;
}

absl::StatusOr<std::unique_ptr<Loader>> Loader::Create(
    const Dataset* dataset, std::vector<size_t> indices, FaceCropper* cropper,
    const LoaderOptions& options) {
  RETURN_IF_ERROR(CheckOptions(options));
  if (dataset == nullptr) {
    return absl::InvalidArgumentError("loader: no data set");
  }
  if (indices.empty()) {
    return absl::InvalidArgumentError("loader: no samples");
  }
  for (size_t index : indices) {
    if (index >= dataset->samples.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("loader: sample index ", index, " out of range (",
                       dataset->samples.size(), " samples)"));
    }
  }
  if (options.torch_threads > 0) {
    try {
      at::set_num_threads(options.torch_threads);
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("loader: set_num_threads: ",
                                              e.what_without_backtrace()));
    }
  }
  return std::unique_ptr<Loader>(
      new Loader(dataset, std::move(indices), cropper, options));
}

Loader::Loader(const Dataset* dataset, std::vector<size_t> indices,
               FaceCropper* cropper, const LoaderOptions& options)
    : dataset_(dataset),
      indices_(std::move(indices)),
      cropper_(cropper),
      options_(options),
      has_sub_labels_(std::all_of(dataset->samples.begin(),
                                  dataset->samples.end(), [](const Sample& s) {
                                    return s.mask >= 0 && s.gender >= 0 &&
                                           s.age_band >= 0;
                                  })) {
  if (options_.weighted_sampling) {
    std::map<int, int64_t> class_counts;
    for (size_t index : indices_)
      ++class_counts[dataset_->samples[index].label];
    double total = 0.0;
    cumulative_weights_.reserve(indices_.size());
    for (size_t index : indices_) {
      total += 1.0 / static_cast<double>(
                         class_counts[dataset_->samples[index].label]);
      cumulative_weights_.push_back(total);
    }
  }
}

Loader::~Loader() { StopThreads(); }

int64_t Loader::batches_per_epoch() const {
  const auto n = static_cast<int64_t>(indices_.size());
  return (n + options_.batch_size - 1) / options_.batch_size;
}

std::vector<size_t> Loader::EpochOrder(int64_t epoch) const {
  std::mt19937_64 rng(
      DeriveSeed(options_.seed, kOrderSalt, static_cast<uint64_t>(epoch)));
  if (options_.weighted_sampling) {
    std::vector<size_t> order;
    order.reserve(indices_.size());
    const double total = cumulative_weights_.back();
    for (size_t i = 0; i < indices_.size(); ++i) {
      const double u = UniformDouble(rng) * total;
      auto it = std::upper_bound(cumulative_weights_.begin(),
                                 cumulative_weights_.end(), u);
      if (it == cumulative_weights_.end()) --it;
      order.push_back(
          indices_[static_cast<size_t>(it - cumulative_weights_.begin())]);
    }
    return order;
  }
  if (!options_.shuffle) return indices_;
  const std::vector<int64_t> perm =
      RandomPermutation(static_cast<int64_t>(indices_.size()), rng);
  std::vector<size_t> order;
  order.reserve(indices_.size());
  for (int64_t p : perm) order.push_back(indices_[static_cast<size_t>(p)]);
  return order;
}

void Loader::StopThreads() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

void Loader::StartEpoch(int64_t epoch) {
  StopThreads();
  order_ = EpochOrder(epoch);
  epoch_ = epoch;
  epoch_bad_ = 0;
  epoch_bad_examples_.clear();
  epoch_status_ = absl::OkStatus();
  {
    absl::MutexLock lock(&mu_);
    stop_ = false;
    next_to_build_ = 0;
    next_to_deliver_ = 0;
    ready_.clear();
  }
  const int64_t threads =
      std::min<int64_t>(options_.threads, batches_per_epoch());
  for (int64_t i = 0; i < threads; ++i) {
    threads_.emplace_back([this] { WorkerLoop(); });
  }
}

bool Loader::CanBuild() const {
  return stop_ || next_to_build_ >= batches_per_epoch() ||
         next_to_build_ < next_to_deliver_ + options_.prefetch_batches;
}

bool Loader::NextReady() const {
  return ready_.find(next_to_deliver_) != ready_.end();
}

void Loader::WorkerLoop() {
  const int64_t batches = batches_per_epoch();
  while (true) {
    int64_t index;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &Loader::CanBuild));
      if (stop_ || next_to_build_ >= batches) return;
      index = next_to_build_++;
    }
    BatchResult result = BuildBatch(index);
    absl::MutexLock lock(&mu_);
    ready_.emplace(index, std::move(result));
  }
}

absl::StatusOr<std::optional<Batch>> Loader::Next() {
  if (epoch_ < 0) {
    return absl::FailedPreconditionError("loader: Next before StartEpoch");
  }
  if (!epoch_status_.ok()) return epoch_status_;
  const int64_t batches = batches_per_epoch();
  while (true) {
    BatchResult result;
    {
      absl::MutexLock lock(&mu_);
      if (next_to_deliver_ >= batches) return std::nullopt;
      mu_.Await(absl::Condition(this, &Loader::NextReady));
      auto it = ready_.find(next_to_deliver_);
      result = std::move(it->second);
      ready_.erase(it);
      ++next_to_deliver_;
    }
    for (BadImage& bad : result.bad) {
      ++epoch_bad_;
      if (epoch_bad_examples_.size() < kBadExamples) {
        epoch_bad_examples_.push_back(bad);
      }
      absl::MutexLock lock(&bad_mu_);
      if (bad_seen_.insert(bad.path).second) {
        bad_images_.push_back(std::move(bad));
      }
    }
    const double allowed =
        options_.max_bad_fraction * static_cast<double>(samples_per_epoch());
    if (static_cast<double>(epoch_bad_) > allowed) {
      std::vector<std::string> examples;
      for (const BadImage& bad : epoch_bad_examples_) {
        examples.push_back(absl::StrCat(bad.path, ": ", bad.cause));
      }
      // The count is of the batches delivered so far, hence "at least".
      epoch_status_ = absl::FailedPreconditionError(absl::StrCat(
          "at least ", epoch_bad_, " of ", samples_per_epoch(),
          " images of epoch ", epoch_, " are unreadable (max_bad_fraction ",
          options_.max_bad_fraction, "); e.g. ",
          absl::StrJoin(examples, "; ")));
      return epoch_status_;
    }
    if (!result.status.ok()) {
      epoch_status_ = result.status;
      return epoch_status_;
    }
    if (result.batch.has_value()) return std::move(result.batch);
  }
}

absl::StatusOr<cv::Mat> Loader::LoadImage(size_t sample_index,
                                          std::optional<BadImage>* bad) {
  const std::string& path = dataset_->samples[sample_index].path;
  {
    absl::MutexLock lock(&cache_mu_);
    if (auto it = known_bad_.find(sample_index); it != known_bad_.end()) {
      *bad = BadImage{path, it->second};
      return cv::Mat();
    }
    if (auto it = cache_.find(sample_index); it != cache_.end()) {
      cache_hits_.fetch_add(1, std::memory_order_relaxed);
      return it->second;
    }
  }
  std::string bytes;
  decodes_.fetch_add(1, std::memory_order_relaxed);
  auto mark_bad = [&](const absl::Status& status) {
    absl::MutexLock lock(&cache_mu_);
    known_bad_[sample_index] = std::string(status.message());
    *bad = BadImage{path, std::string(status.message())};
    return cv::Mat();
  };
  if (absl::Status read = ReadFileBytes(path, &bytes); !read.ok()) {
    return mark_bad(read);
  }
  // The checks come first so a bad image is not counted by the cropper.
  absl::StatusOr<ImageHeader> header =
      CheckEncodedImage(bytes, path, options_.max_image_pixels);
  if (!header.ok()) return mark_bad(header.status());
  const cv::Size full_size(header->width, header->height);
  const std::string hash = cropper_ != nullptr ? ContentHash(bytes) : "";
  // The face box in full-size pixels, when known before decoding.
  std::optional<cv::Rect> box;
  if (cropper_ == nullptr) {
    box = cv::Rect(cv::Point(0, 0), full_size);
  } else if (std::optional<FaceCrop> crop =
                 cropper_->LocateFromSize(full_size, hash)) {
    box = crop->box;
  }
  int scale = 1;
  if (box.has_value() && options_.reduced_decoding &&
      header->format == "jpeg" &&
      !(options_.center_crop_width > 0 && options_.center_crop_height > 0)) {
    scale = ReducedDecodeScale(box->size(), options_.width, options_.height);
  }
  absl::StatusOr<cv::Mat> image =
      DecodeImageReduced(bytes, path, options_.max_image_pixels, scale);
  if (!image.ok()) return mark_bad(image.status());
  if (scale > 1) reduced_decodes_.fetch_add(1, std::memory_order_relaxed);
  cv::Mat out;
  try {
    cv::Mat face;
    if (!box.has_value()) {
      absl::StatusOr<FaceCrop> crop = cropper_->Locate(*image, hash);
      if (!crop.ok()) {
        return absl::Status(
            crop.status().code(),
            absl::StrCat(path, ": face crop: ", crop.status().message()));
      }
      face = (*image)(crop->box);
    } else {
      face = (*image)(ScaleBox(*box, scale, image->size()));
    }
    if (options_.center_crop_width > 0 && options_.center_crop_height > 0) {
      face = CenterCrop(face, options_.center_crop_width,
                        options_.center_crop_height);
    }
    out = Resize(face, options_.width, options_.height);
  } catch (const cv::Exception& e) {
    return absl::InternalError(absl::StrCat(path, ": OpenCV: ", e.what()));
  }
  const uint64_t size = static_cast<uint64_t>(out.total() * out.elemSize());
  absl::MutexLock lock(&cache_mu_);
  if (cached_bytes_ + size <= options_.decode_cache_bytes &&
      cache_.emplace(sample_index, out).second) {
    cached_bytes_ += size;
  }
  return out;
}

Loader::BatchResult Loader::BuildBatch(int64_t index) {
  BatchResult result;
  const auto begin = static_cast<size_t>(index * options_.batch_size);
  const size_t end =
      std::min(order_.size(), begin + static_cast<size_t>(options_.batch_size));
  std::vector<cv::Mat> images;
  std::vector<size_t> rows;
  try {
    for (size_t pos = begin; pos < end; ++pos) {
      const size_t sample_index = order_[pos];
      std::optional<BadImage> bad;
      absl::StatusOr<cv::Mat> image = LoadImage(sample_index, &bad);
      if (!image.ok()) {
        result.status = image.status();
        return result;
      }
      if (bad.has_value()) {
        result.bad.push_back(*std::move(bad));
        continue;
      }
      cv::Mat mat = *image;
      if (options_.augment) {
        std::mt19937_64 rng(DeriveSeed(options_.seed ^ kAugmentSalt,
                                       static_cast<uint64_t>(epoch_),
                                       static_cast<uint64_t>(pos)));
        mat = Augment(mat, options_, rng);
      }
      images.push_back(std::move(mat));
      rows.push_back(sample_index);
    }
  } catch (const cv::Exception& e) {
    result.status = absl::InternalError(
        absl::StrCat("loader: batch ", index, ": OpenCV: ", e.what()));
    return result;
  }
  if (rows.empty()) return result;
  try {
    const auto n = static_cast<int64_t>(rows.size());
    const int64_t plane = int64_t{3} * options_.height * options_.width;
    Batch batch;
    batch.index = index;
    batch.images = torch::empty({n, 3, options_.height, options_.width},
                                torch::TensorOptions().dtype(torch::kFloat));
    float* pixels = batch.images.data_ptr<float>();
    for (int64_t i = 0; i < n; ++i) {
      NormalizeToChw(images[static_cast<size_t>(i)], options_.normalize,
                     pixels + i * plane);
    }
    const auto long_options = torch::TensorOptions().dtype(torch::kLong);
    batch.labels = torch::empty({n}, long_options);
    if (has_sub_labels_) {
      batch.mask = torch::empty({n}, long_options);
      batch.gender = torch::empty({n}, long_options);
      batch.age_band = torch::empty({n}, long_options);
    }
    for (int64_t i = 0; i < n; ++i) {
      const Sample& s = dataset_->samples[rows[static_cast<size_t>(i)]];
      batch.labels.data_ptr<int64_t>()[i] = s.label;
      if (has_sub_labels_) {
        batch.mask.data_ptr<int64_t>()[i] = s.mask;
        batch.gender.data_ptr<int64_t>()[i] = s.gender;
        batch.age_band.data_ptr<int64_t>()[i] = s.age_band;
      }
    }
    batch.sample_indices = std::move(rows);
    result.batch = std::move(batch);
  } catch (const c10::Error& e) {
    result.status = absl::InternalError(absl::StrCat(
        "loader: batch ", index, ": LibTorch: ", e.what_without_backtrace()));
  } catch (const cv::Exception& e) {
    result.status = absl::InternalError(
        absl::StrCat("loader: batch ", index, ": OpenCV: ", e.what()));
  }
  return result;
}

LoaderStats Loader::stats() const {
  LoaderStats stats;
  stats.decodes = decodes_.load(std::memory_order_relaxed);
  stats.reduced_decodes = reduced_decodes_.load(std::memory_order_relaxed);
  stats.cache_hits = cache_hits_.load(std::memory_order_relaxed);
  absl::MutexLock lock(&cache_mu_);
  stats.cached_images = static_cast<int64_t>(cache_.size());
  stats.cached_bytes = cached_bytes_;
  return stats;
}

std::vector<BadImage> Loader::bad_images() const {
  absl::MutexLock lock(&bad_mu_);
  return bad_images_;
}

}  // namespace sweepq::worker
