// Face crop: finds the face box of an image with a chain of detectors, grows
// it by a margin (hair) and padding and clamps it to the image, and caches the
// result per image content so detection runs once per image and host, never
// once per epoch.
//
//   FaceDetector        one detector (interface); built by MakeFaceDetector:
//                         haar   OpenCV's frontal-face Haar cascade (Debian's
//                                opencv-data package);
//                         yunet  cv::FaceDetectorYN on a YuNet ONNX file the
//                                user supplies (CropConfig.yunet_model);
//                         fixed  the fallback box (80, 50, 220 x 320 on a
//                                384 x 512 image, scaled to the image).
//   FaceCropper         the chain of CropConfig.detectors (default
//                       [haar, fixed]): the first box with confidence >=
//                       min_confidence wins; records the winning source and
//                       counts sources so a run can report fallbacks.
//   DetectionCache      a sidecar CSV per detector setting in the cache
//                       directory, keyed by the image's SHA-256.
#ifndef SWEEPQ_WORKER_PIPELINE_FACE_CROP_H_
#define SWEEPQ_WORKER_PIPELINE_FACE_CROP_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "opencv2/core.hpp"
#include "sweepq/v1/run_config.pb.h"

namespace sweepq::worker {

// The image size the crop settings (fixed box, padding) are expressed in.
inline constexpr int kCropReferenceWidth = 384;
inline constexpr int kCropReferenceHeight = 512;

// The Haar detector looks for faces on a copy of the image scaled so that
// its longer side is at most this many pixels: a face in a portrait is
// large, and the cascade's time grows with the pixels (a 384 x 512 image
// takes about a third of the time at 240 x 320).
inline constexpr int kHaarMaxSide = 320;

// Where Debian's opencv-data package puts the frontal-face cascade.
inline constexpr char kDefaultHaarCascade[] =
    "/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml";

// One face found by a detector, in pixels of the image passed to Detect.
struct Detection {
  cv::Rect box;
  // In [0, 1]; detector-specific (see each detector in MakeFaceDetector).
  double confidence = 0.0;
};

// Finds the main face of an image. Implementations are thread-safe.
class FaceDetector {
 public:
  virtual ~FaceDetector() = default;

  // Returns the detector's name as listed in CropConfig.detectors ("haar").
  virtual std::string name() const = 0;

  // Returns a string that changes whenever the detector's output could
  // (name, model file, parameters); part of the detection cache key.
  virtual std::string settings_key() const = 0;

  // Returns the most prominent face of `image` (8-bit BGR or gray), or
  // std::nullopt when there is none. Returns INVALID_ARGUMENT for an empty
  // or non-8-bit image and INTERNAL when OpenCV fails.
  virtual absl::StatusOr<std::optional<Detection>> Detect(
      const cv::Mat& image) = 0;

  // Returns what Detect would return for any image of `size` when the
  // detector needs no pixels (the fixed box), so the loader can choose a
  // reduced decoding before decoding; std::nullopt when it needs pixels
  // (the default).
  virtual std::optional<Detection> DetectFromSize(cv::Size size) const {
    return std::nullopt;
  }
};

// Face-crop settings; see CropConfig in run_config.proto.
struct FaceCropOptions {
  // Detector chain, tried in order: haar | yunet | fixed.
  std::vector<std::string> detectors = {"haar", "fixed"};
  // Minimum confidence for a detector's box to win.
  double min_confidence = 0.5;
  // Margin added around a detected box before the padding, as shares of
  // the box: margin_x of its width left and right, margin_top and
  // margin_bottom of its height above and below. Face detectors box the
  // face from the brows to the chin; the margin brings in the hair above
  // and beside it (where gender and age show) at any face size, which a
  // padding in pixels cannot. Not applied to the fixed box.
  double margin_x = 0.2;
  double margin_top = 0.3;
  double margin_bottom = 0.1;
  // Padding added on each side of a detected box (after the margin), in
  // pixels of a 384 x 512 image (scaled to the image). Not applied to the
  // fixed box.
  int pad_x = 20;
  int pad_y = 30;
  // Fallback box on a 384 x 512 image.
  cv::Rect fixed_box = cv::Rect(80, 50, 220, 320);
  // Haar cascade file.
  std::string haar_cascade = kDefaultHaarCascade;
  // YuNet ONNX model file; required by the yunet detector.
  std::string yunet_model;
  // Directory of the detection cache; empty = no cache.
  std::string cache_dir;
};

// Returns the options of `config`, applying run_config.proto's defaults;
// `default_cache_dir` is used when config.cache_dir is empty.
FaceCropOptions FaceCropOptionsFromConfig(const v1::CropConfig& config,
                                          const std::string& default_cache_dir);

// Builds the detector `name` of `options`:
//   haar:  the cascade in options.haar_cascade, run on a copy of the image
//          scaled down to at most kHaarMaxSide pixels on its longer side
//          (the box is mapped back); the face with the most merged
//          neighbour detections (the larger on a tie); confidence
//          = min(1, merged neighbour detections / 10), so every box the
//          cascade accepts (>= 5 neighbours) has >= 0.5. Returns NOT_FOUND
//          naming the file and the opencv-data package when it is missing,
//          INVALID_ARGUMENT when OpenCV cannot load it.
//   yunet: cv::FaceDetectorYN on options.yunet_model; the face with the
//          highest score (the confidence). Returns INVALID_ARGUMENT when no
//          model is configured, NOT_FOUND when the file is missing and
//          INVALID_ARGUMENT when OpenCV cannot load it.
//   fixed: options.fixed_box scaled from 384 x 512 to the image and clamped
//          to it; confidence 1; never fails on a non-empty image.
// Returns INVALID_ARGUMENT for any other name.
absl::StatusOr<std::unique_ptr<FaceDetector>> MakeFaceDetector(
    absl::string_view name, const FaceCropOptions& options);

// Returns `box` grown by pad_x / pad_y (pixels of a 384 x 512 image, scaled
// to `image_size`) on each side and clamped to the image.
cv::Rect PadAndClampBox(const cv::Rect& box, cv::Size image_size, int pad_x,
                        int pad_y);

// Returns the crop of a detected face `box` on an image of `image_size`:
// grown by options.margin_x / margin_top / margin_bottom (shares of the
// box), then by options.pad_x / pad_y (PadAndClampBox), clamped to the
// image.
cv::Rect ExpandDetectedBox(const cv::Rect& box, cv::Size image_size,
                           const FaceCropOptions& options);

// The crop chosen for one image.
struct FaceCrop {
  // In image pixels, padded and clamped; never empty.
  cv::Rect box;
  // Name of the detector whose box won ("haar", "fixed", ...).
  std::string source;
  // True when the result came from the detection cache.
  bool from_cache = false;
};

// A persistent map from image content hash to FaceCrop for one detector
// setting: the file `<dir>/face_crop-<first 16 hex of SHA-256(settings)>.csv`
// with rows `sha256,x,y,width,height,source`. Flush merges with what other
// processes wrote meanwhile under an flock on `<file>.lock` and replaces the
// file atomically (write to a temporary file, then rename), so runs on one
// host share it safely. Thread-safe.
class DetectionCache {
 public:
  // Opens (creating `dir` if needed) and loads the cache of `settings_key`.
  // Rows that do not parse are ignored (a cache, not a source of truth).
  // Returns INTERNAL naming the path when the directory cannot be created
  // or the file cannot be read.
  static absl::StatusOr<std::unique_ptr<DetectionCache>> Open(
      const std::string& dir, absl::string_view settings_key);

  // Returns the cached crop of the image with SHA-256 `content_hash`.
  std::optional<FaceCrop> Lookup(const std::string& content_hash) const;

  // Records `crop` for `content_hash` in memory until Flush.
  void Insert(const std::string& content_hash, const FaceCrop& crop);

  // Writes new entries to disk (merged with the file's current content);
  // Lookup and Insert wait while it writes, so call it between epochs or at
  // the end of a pass, not per image. Returns INTERNAL naming the path when
  // a write or rename fails.
  absl::Status Flush();

  // Returns the cache file's path.
  const std::string& path() const { return path_; }

 private:
  explicit DetectionCache(std::string path) : path_(std::move(path)) {}

  const std::string path_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, FaceCrop> entries_ ABSL_GUARDED_BY(mu_);
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;
};

// The detector chain with its cache. Thread-safe: Locate may be called from
// many loader threads at once.
class FaceCropper {
 public:
  // Builds the chain of options.detectors (each through MakeFaceDetector)
  // and opens the cache when options.cache_dir is set. Returns the first
  // detector's or the cache's error, and INVALID_ARGUMENT for an empty
  // chain.
  static absl::StatusOr<std::unique_ptr<FaceCropper>> Create(
      const FaceCropOptions& options);

  // Builds a chain of the given detectors (for tests and custom detectors);
  // `cache` may be null.
  FaceCropper(std::vector<std::unique_ptr<FaceDetector>> detectors,
              const FaceCropOptions& options,
              std::unique_ptr<DetectionCache> cache);

  // Returns the crop of `image`. When `content_hash` (the SHA-256 of the
  // image file, see ContentHash) is not empty and the cache has it, no
  // detector runs; otherwise the chain runs and the result is cached.
  // Returns a detector's error, or NOT_FOUND when no detector of the chain
  // found a confident box (a chain without `fixed`).
  absl::StatusOr<FaceCrop> Locate(const cv::Mat& image,
                                  const std::string& content_hash);

  // Returns Locate's crop of an image of `image_size` when it is known
  // without the pixels: cached under `content_hash`, or won by a detector
  // that needs no pixels (DetectFromSize) before any that does. Counts and
  // caches it as Locate does. std::nullopt means the pixels are needed:
  // call Locate.
  std::optional<FaceCrop> LocateFromSize(cv::Size image_size,
                                         const std::string& content_hash);

  // Writes new cache entries to disk; OK without a cache.
  absl::Status FlushCache();

  // Returns how many Locate calls each source won (cache hits included).
  std::map<std::string, int64_t> SourceCounts() const;

  // Returns how many Locate calls the cache answered.
  int64_t cache_hits() const;

  // Returns the cache key of this chain: every detector's settings_key, the
  // confidence threshold, the margin and the padding.
  const std::string& settings_key() const { return settings_key_; }

 private:
  const std::vector<std::unique_ptr<FaceDetector>> detectors_;
  const FaceCropOptions options_;
  const std::string settings_key_;
  const std::unique_ptr<DetectionCache> cache_;
  // Returns the crop cached under `content_hash` if it lies in `whole`,
  // counting the hit.
  std::optional<FaceCrop> CachedCrop(const cv::Rect& whole,
                                     const std::string& content_hash);
  // Returns the crop of `detector`'s `found` box (ExpandDetectedBox unless
  // fixed), or
  // std::nullopt when it is empty; caches and counts it.
  std::optional<FaceCrop> AcceptDetection(const FaceDetector& detector,
                                          const Detection& found,
                                          const cv::Rect& whole,
                                          const std::string& content_hash);
  mutable absl::Mutex mu_;
  std::map<std::string, int64_t> source_counts_ ABSL_GUARDED_BY(mu_);
  int64_t cache_hits_ ABSL_GUARDED_BY(mu_) = 0;
};

// Returns the cache key of a chain of `detectors` under `options`.
std::string ChainSettingsKey(
    const std::vector<std::unique_ptr<FaceDetector>>& detectors,
    const FaceCropOptions& options);

// Returns the lower-case hex SHA-256 of an image file's bytes.
std::string ContentHash(absl::string_view file_bytes);

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_PIPELINE_FACE_CROP_H_
