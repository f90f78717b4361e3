// The data loader: turns samples of a Dataset into batches of LibTorch
// tensors, with loader threads and a bounded prefetch queue.
//
//   - Order: each epoch's sample order is a function of (seed, epoch) only
//     (a shuffle, or weighted draws by inverse class frequency); batch b
//     holds positions [b * batch_size, (b + 1) * batch_size) of it. Threads
//     take batch indexes and the loader delivers batches in index order,
//     and every sample's augmentation generator is seeded from (seed,
//     epoch, position), so the batches do not depend on the thread count.
//   - Decode cache: each image is decoded once, face-cropped and resized
//     to the working resolution, and kept in memory (8-bit BGR) until the
//     byte cap is reached (later images are then decoded every epoch; no
//     eviction). Augmentations run on the cached image every epoch. With
//     weighted sampling one image can be in two batches built at once and
//     then be decoded twice before it is cached.
//   - Reduced decoding: when an image's face box is known before decoding
//     (the fixed box, or the detection cache) and is still at least the
//     working size at 1/2, 1/4 or 1/8 scale, a JPEG is decoded at the
//     strongest such reduction (libjpeg's scaled IDCT) instead of in full.
//   - Bad images (unreadable, truncated, 0 bytes, decompression bombs) are
//     skipped, counted and remembered with their paths; a bad image is not
//     read again. When an epoch's bad images exceed max_bad_fraction of
//     the epoch, Next fails with FAILED_PRECONDITION naming the count and
//     examples.
#ifndef SWEEPQ_WORKER_PIPELINE_LOADER_H_
#define SWEEPQ_WORKER_PIPELINE_LOADER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "opencv2/core.hpp"
#include "sweepq/v1/run_config.pb.h"
#include "torch/types.h"
#include "worker/pipeline/dataset.h"
#include "worker/pipeline/face_crop.h"
#include "worker/pipeline/image_decode.h"
#include "worker/pipeline/transforms.h"

namespace sweepq::worker {

// Default byte cap of the decode cache (1 GiB).
inline constexpr uint64_t kDefaultDecodeCacheBytes = uint64_t{1} << 30;
// Default share of bad images an epoch tolerates.
inline constexpr double kDefaultMaxBadFraction = 0.01;

// Per-image augmentations of the training set, applied in this order after
// the cached crop: RandomResizedCrop, horizontal flip, colour jitter,
// AutoAugment, Cutout, then Normalize.
struct LoaderAugmentOptions {
  bool random_resized_crop = false;
  RandomResizedCropOptions random_resized_crop_options;
  // Horizontal flip probability.
  double hflip = 0.0;
  ColorJitterOptions color_jitter;
  // AutoAugment with the ImageNet policy.
  bool autoaugment = false;
  CutoutOptions cutout;
};

// What a Loader does.
struct LoaderOptions {
  // Samples a batch; >= 1. The last batch of an epoch may be smaller.
  int batch_size = 32;
  // Working resolution of the batches; >= 1.
  int width = 96;
  int height = 128;
  // Centre crop (in pixels of the face crop) before resizing; 0 = off.
  int center_crop_width = 0;
  int center_crop_height = 0;
  // Loader threads; >= 1.
  int threads = 1;
  // Batches built ahead of the consumer (queued plus in progress); >= 1.
  // At most min(threads, prefetch_batches) batches are built at once.
  int prefetch_batches = 2;
  // Decode JPEGs reduced when the face box is known before decoding and
  // stays >= width x height (see the file comment). Not with a centre crop
  // (its size is in pixels of the full-size crop).
  bool reduced_decoding = true;
  // Byte cap of the decode cache; 0 = no cache.
  uint64_t decode_cache_bytes = kDefaultDecodeCacheBytes;
  // Images with more pixels are rejected (decompression bombs); 0 = no
  // limit.
  uint64_t max_image_pixels = kDefaultMaxImagePixels;
  // Share of an epoch's images that may be bad, in [0, 1].
  double max_bad_fraction = kDefaultMaxBadFraction;
  // Shuffle each epoch (training); false keeps the given order.
  bool shuffle = true;
  // Draw each epoch's samples with replacement, weighted by the inverse
  // frequency of their class (implies shuffling).
  bool weighted_sampling = false;
  // Seed of the order and the augmentations.
  uint64_t seed = 0;
  // Applied when `augment` is true (training).
  bool augment = false;
  LoaderAugmentOptions augment_options;
  NormalizeOptions normalize;
  // When > 0, Create calls at::set_num_threads(torch_threads) (global to
  // the process); 0 leaves LibTorch's setting alone.
  int torch_threads = 0;
};

// Returns the loader options of `config` for the training set (`train`:
// shuffled, augmented, weighted when configured) or the validation set
// (in order, not augmented): data.image_width / image_height (default
// 96 x 128), loader_threads (0 = 2), prefetch_batches (0 = 2 * threads),
// decode_cache_bytes (0 = 1 GiB), max_bad_fraction (default 0.01),
// max_image_pixels, train.batch_size / val_batch_size (default 32) and the
// augment section. Returns INVALID_ARGUMENT naming the field for bad
// values.
absl::StatusOr<LoaderOptions> LoaderOptionsFromConfig(
    const v1::RunConfig& config, bool train);

// One batch.
struct Batch {
  // Index of the batch in its epoch.
  int64_t index = 0;
  // N x 3 x height x width float, normalised, RGB.
  torch::Tensor images;
  // N int64 class indexes.
  torch::Tensor labels;
  // N int64 sub-labels (mask state, gender, age band) when every sample of
  // the data set has them (mask layout); undefined tensors otherwise.
  torch::Tensor mask;
  torch::Tensor gender;
  torch::Tensor age_band;
  // Indexes into Dataset::samples of the rows, in order.
  std::vector<size_t> sample_indices;
};

// An image that could not be read.
struct BadImage {
  std::string path;
  std::string cause;
};

// Counters of a Loader since it was created.
struct LoaderStats {
  // Images decoded from disk (cache misses that were read).
  int64_t decodes = 0;
  // Of those, images decoded at a reduced scale.
  int64_t reduced_decodes = 0;
  // Samples served from the decode cache.
  int64_t cache_hits = 0;
  // Images and bytes held by the decode cache.
  int64_t cached_images = 0;
  uint64_t cached_bytes = 0;
};

// Yields the batches of one data set subset epoch after epoch.
//
// Thread safety: StartEpoch, Next and the destructor must be called from
// one thread (the consumer); stats() and bad_images() from any thread. The
// loader's own threads only build batches.
class Loader {
 public:
  // Creates a loader over `indices` (into dataset->samples) of `dataset`.
  // `cropper` crops each image to its face box before resizing; null means
  // the whole image. Both must outlive the loader. Returns
  // INVALID_ARGUMENT for empty indices, an index out of range or bad
  // options.
  static absl::StatusOr<std::unique_ptr<Loader>> Create(
      const Dataset* dataset, std::vector<size_t> indices, FaceCropper* cropper,
      const LoaderOptions& options);

  // Stops the loader threads.
  ~Loader();

  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Starts epoch `epoch` (>= 0), abandoning an unfinished one: computes the
  // order and starts the loader threads.
  void StartEpoch(int64_t epoch);

  // Returns the next batch of the current epoch, or std::nullopt after the
  // last one. A batch whose images are all bad is skipped. Returns
  // FAILED_PRECONDITION "at least <n> of <m> images of epoch <e> are
  // unreadable (max_bad_fraction <f>); e.g. <path>: <cause>; ..." as soon
  // as the bad images of the batches delivered so far exceed
  // max_bad_fraction * <m> (so the failure is deterministic too), a face
  // cropper's error, and INTERNAL when OpenCV or LibTorch fails; after an error
  // the epoch stays failed. FAILED_PRECONDITION without StartEpoch.
  absl::StatusOr<std::optional<Batch>> Next();

  // Returns the number of batches of an epoch.
  int64_t batches_per_epoch() const;

  // Returns the number of samples of an epoch.
  int64_t samples_per_epoch() const {
    return static_cast<int64_t>(indices_.size());
  }

  // Returns the counters.
  LoaderStats stats() const;

  // Returns every bad image seen so far, each once, in the order the
  // consumer met them.
  std::vector<BadImage> bad_images() const;

 private:
  // What a loader thread produced for one batch.
  struct BatchResult {
    absl::Status status;
    std::optional<Batch> batch;
    // Bad images among the batch's samples, in order.
    std::vector<BadImage> bad;
  };

  Loader(const Dataset* dataset, std::vector<size_t> indices,
         FaceCropper* cropper, const LoaderOptions& options);

  // Returns epoch `epoch`'s sample order (indexes into dataset_->samples).
  std::vector<size_t> EpochOrder(int64_t epoch) const;
  // Stops and joins the loader threads.
  void StopThreads();
  // Await conditions.
  bool CanBuild() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool NextReady() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Loader thread body.
  void WorkerLoop();
  // Builds batch `index` of the current epoch.
  BatchResult BuildBatch(int64_t index);
  // Returns the cropped, resized image of `sample_index` (from the cache or
  // disk), or the read error in *bad (then returns an empty Mat with OK).
  absl::StatusOr<cv::Mat> LoadImage(size_t sample_index,
                                    std::optional<BadImage>* bad);

  const Dataset* const dataset_;
  const std::vector<size_t> indices_;
  FaceCropper* const cropper_;
  const LoaderOptions options_;
  const bool has_sub_labels_;
  // Inverse class frequency weight per entry of indices_, cumulative.
  std::vector<double> cumulative_weights_;

  // Consumer-side state (one thread).
  int64_t epoch_ = -1;
  int64_t epoch_bad_ = 0;
  std::vector<BadImage> epoch_bad_examples_;
  absl::Status epoch_status_;
  std::vector<std::thread> threads_;

  mutable absl::Mutex mu_;
  // The current epoch's order; written only while no thread runs.
  std::vector<size_t> order_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  int64_t next_to_build_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_to_deliver_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<int64_t, BatchResult> ready_ ABSL_GUARDED_BY(mu_);

  mutable absl::Mutex cache_mu_;
  absl::flat_hash_map<size_t, cv::Mat> cache_ ABSL_GUARDED_BY(cache_mu_);
  uint64_t cached_bytes_ ABSL_GUARDED_BY(cache_mu_) = 0;
  // Bad images by sample index, so they are not read again.
  absl::flat_hash_map<size_t, std::string> known_bad_
      ABSL_GUARDED_BY(cache_mu_);
  std::atomic<int64_t> decodes_{0};
  std::atomic<int64_t> reduced_decodes_{0};
  std::atomic<int64_t> cache_hits_{0};

  mutable absl::Mutex bad_mu_;
  std::vector<BadImage> bad_images_ ABSL_GUARDED_BY(bad_mu_);
  absl::flat_hash_set<std::string> bad_seen_ ABSL_GUARDED_BY(bad_mu_);
};

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_PIPELINE_LOADER_H_
