#include "worker/pipeline/face_crop.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "opencv2/imgproc.hpp"
#include "opencv2/objdetect.hpp"

namespace sweepq::worker {
namespace {

namespace fs = std::filesystem;

absl::Status CheckImage(const cv::Mat& image) {
  if (image.empty()) return absl::InvalidArgumentError("empty image");
  if (image.depth() != CV_8U ||
      (image.channels() != 1 && image.channels() != 3)) {
    return absl::InvalidArgumentError(
        "face detection needs an 8-bit gray or BGR image");
  }
  return absl::OkStatus();
}

cv::Rect ScaleReferenceBox(const cv::Rect& box, cv::Size size) {
  const double sx = static_cast<double>(size.width) / kCropReferenceWidth;
  const double sy = static_cast<double>(size.height) / kCropReferenceHeight;
  cv::Rect scaled(static_cast<int>(std::lround(box.x * sx)),
                  static_cast<int>(std::lround(box.y * sy)),
                  static_cast<int>(std::lround(box.width * sx)),
                  static_cast<int>(std::lround(box.height * sy)));
  return scaled & cv::Rect(0, 0, size.width, size.height);
}

class HaarFaceDetector : public FaceDetector {
 public:
  static constexpr int kMinNeighbors = 5;

  explicit HaarFaceDetector(std::string path) : path_(std::move(path)) {}

  absl::Status Load() {
    std::error_code ec;
    if (!fs::exists(path_, ec)) {
      return absl::NotFoundError(absl::StrCat(
          "haar cascade ", path_,
          " not found (Debian package opencv-data; deploy/install-deps.sh)"));
    }
    ASSIGN_OR_RETURN(std::unique_ptr<cv::CascadeClassifier> cascade,
                     LoadCascade());
    absl::MutexLock lock(&mu_);
    idle_.push_back(std::move(cascade));
    return absl::OkStatus();
  }

  std::string name() const override { return "haar"; }
  std::string settings_key() const override {
    return absl::StrCat("haar(", fs::path(path_).filename().string(),
                        ",sf=1.1,mn=", kMinNeighbors,
                        ",min=1/10,eq,max=", kHaarMaxSide, ",best=support)");
  }

  absl::StatusOr<std::optional<Detection>> Detect(
      const cv::Mat& image) override {
    RETURN_IF_ERROR(CheckImage(image));
    std::vector<cv::Rect> boxes;
    std::vector<int> neighbours;
    double scale = 1.0;
    try {
      cv::Mat gray;
      if (image.channels() == 3) {
        cv::cvtColor(image, gray, cv::COLOR_BGR2GRAY);
      } else {
        gray = image;
      }
      // Detect on a reduced copy; the box is mapped back below.
      const int longer = std::max(gray.cols, gray.rows);
      if (longer > kHaarMaxSide) {
        scale = static_cast<double>(longer) / kHaarMaxSide;
        const cv::Size reduced(
            std::max(1, static_cast<int>(std::lround(gray.cols / scale))),
            std::max(1, static_cast<int>(std::lround(gray.rows / scale))));
        cv::Mat small;
        cv::resize(gray, small, reduced, 0, 0, cv::INTER_AREA);
        gray = small;
      }
      // Into a new matrix: `gray` may share the caller's pixels.
      cv::Mat equalized;
      cv::equalizeHist(gray, equalized);
      gray = equalized;
      const int min_side = std::max(24, std::min(gray.cols, gray.rows) / 10);
      // A CascadeClassifier keeps per-call state, so each concurrent call
      // borrows its own from the pool (loader threads detect in parallel).
      ASSIGN_OR_RETURN(std::unique_ptr<cv::CascadeClassifier> cascade,
                       Borrow());
      cascade->detectMultiScale(gray, boxes, neighbours, 1.1, kMinNeighbors, 0,
                                cv::Size(min_side, min_side));
      absl::MutexLock lock(&mu_);
      idle_.push_back(std::move(cascade));
    } catch (const cv::Exception& e) {
      return absl::InternalError(absl::StrCat("haar detection: ", e.what()));
    }
    if (boxes.empty()) return std::optional<Detection>();
    // The best-supported box (most merged neighbour detections), the
    // larger on a tie: on a reduced image a false, larger box can pass the
    // threshold next to the real face.
    auto support = [&](size_t i) {
      return i < neighbours.size() ? neighbours[i] : kMinNeighbors;
    };
    size_t best = 0;
    for (size_t i = 1; i < boxes.size(); ++i) {
      if (support(i) > support(best) ||
          (support(i) == support(best) &&
           boxes[i].area() > boxes[best].area())) {
        best = i;
      }
    }
    const int n = support(best);
    const cv::Rect& b = boxes[best];
    const cv::Rect box =
        cv::Rect(static_cast<int>(std::lround(b.x * scale)),
                 static_cast<int>(std::lround(b.y * scale)),
                 static_cast<int>(std::lround(b.width * scale)),
                 static_cast<int>(std::lround(b.height * scale))) &
        cv::Rect(0, 0, image.cols, image.rows);
    if (box.empty()) return std::optional<Detection>();
    return std::optional<Detection>(Detection{box, std::min(1.0, n / 10.0)});
  }

 private:
  absl::StatusOr<std::unique_ptr<cv::CascadeClassifier>> LoadCascade() const {
    auto cascade = std::make_unique<cv::CascadeClassifier>();
    try {
      if (!cascade->load(path_)) {
        return absl::InvalidArgumentError(
            absl::StrCat("OpenCV cannot load haar cascade ", path_));
      }
    } catch (const cv::Exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat("haar cascade ", path_, ": ", e.what()));
    }
    return cascade;
  }

  // Takes an idle cascade, or loads one more when all are in use.
  absl::StatusOr<std::unique_ptr<cv::CascadeClassifier>> Borrow() {
    {
      absl::MutexLock lock(&mu_);
      if (!idle_.empty()) {
        std::unique_ptr<cv::CascadeClassifier> cascade =
            std::move(idle_.back());
        idle_.pop_back();
        return cascade;
      }
    }
    return LoadCascade();
  }

  const std::string path_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<cv::CascadeClassifier>> idle_
      ABSL_GUARDED_BY(mu_);
};

class YuNetFaceDetector : public FaceDetector {
 public:
  explicit YuNetFaceDetector(std::string path) : path_(std::move(path)) {}

  absl::Status Load() {
    if (path_.empty()) {
      return absl::InvalidArgumentError(
          "detector yunet needs crop.yunet_model (a YuNet ONNX file)");
    }
    std::error_code ec;
    if (!fs::exists(path_, ec)) {
      return absl::NotFoundError(
          absl::StrCat("yunet model ", path_, " not found"));
    }
    try {
      // A low score threshold: the chain applies min_confidence itself.
      detector_ = cv::FaceDetectorYN::create(path_, "", cv::Size(320, 320),
                                             0.3f, 0.3f, 5000);
    } catch (const cv::Exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat("yunet model ", path_, ": ", e.what()));
    }
    if (detector_.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("OpenCV cannot load yunet model ", path_));
    }
    return absl::OkStatus();
  }

  std::string name() const override { return "yunet"; }
  std::string settings_key() const override {
    std::error_code ec;
    const auto size = fs::file_size(path_, ec);
    return absl::StrCat("yunet(", fs::path(path_).filename().string(), ",",
                        ec ? 0 : size, ")");
  }

  absl::StatusOr<std::optional<Detection>> Detect(
      const cv::Mat& image) override {
    RETURN_IF_ERROR(CheckImage(image));
    cv::Mat faces;
    try {
      cv::Mat bgr = image;
      if (image.channels() == 1) cv::cvtColor(image, bgr, cv::COLOR_GRAY2BGR);
      absl::MutexLock lock(&mu_);
      detector_->setInputSize(bgr.size());
      detector_->detect(bgr, faces);
    } catch (const cv::Exception& e) {
      return absl::InternalError(absl::StrCat("yunet detection: ", e.what()));
    }
    if (faces.empty()) return std::optional<Detection>();
    // Rows: x, y, w, h, 5 landmarks (10 values), score.
    int best = 0;
    for (int i = 1; i < faces.rows; ++i) {
      if (faces.at<float>(i, 14) > faces.at<float>(best, 14)) best = i;
    }
    const cv::Rect box(cv::Point(static_cast<int>(faces.at<float>(best, 0)),
                                 static_cast<int>(faces.at<float>(best, 1))),
                       cv::Size(static_cast<int>(faces.at<float>(best, 2)),
                                static_cast<int>(faces.at<float>(best, 3))));
    const cv::Rect clamped = box & cv::Rect(0, 0, image.cols, image.rows);
    if (clamped.empty()) return std::optional<Detection>();
    return std::optional<Detection>(
        Detection{clamped, static_cast<double>(faces.at<float>(best, 14))});
  }

 private:
  const std::string path_;
  absl::Mutex mu_;
  cv::Ptr<cv::FaceDetectorYN> detector_ ABSL_GUARDED_BY(mu_);
};

class FixedBoxDetector : public FaceDetector {
 public:
  explicit FixedBoxDetector(cv::Rect box) : box_(box) {}

  std::string name() const override { return "fixed"; }
  std::string settings_key() const override {
    return absl::StrCat("fixed(", box_.x, ",", box_.y, ",", box_.width, ",",
                        box_.height, ")");
  }

  absl::StatusOr<std::optional<Detection>> Detect(
      const cv::Mat& image) override {
    if (image.empty()) return absl::InvalidArgumentError("empty image");
    return DetectFromSize(image.size());
  }

  std::optional<Detection> DetectFromSize(cv::Size size) const override {
    cv::Rect box = ScaleReferenceBox(box_, size);
    if (box.empty()) box = cv::Rect(0, 0, size.width, size.height);
    return Detection{box, 1.0};
  }

 private:
  const cv::Rect box_;
};

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::InternalError(
      absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

// Parses cache rows into `entries`, keeping existing keys.
void ParseCacheFile(const std::string& path,
                    absl::flat_hash_map<std::string, FaceCrop>* entries) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, ',');
    if (f.size() != 6 || f[0].size() != 64 || f[5].empty()) continue;
    int v[4];
    bool ok = true;
    for (int i = 0; i < 4; ++i) ok = ok && absl::SimpleAtoi(f[i + 1], &v[i]);
    if (!ok || v[2] <= 0 || v[3] <= 0) continue;
    FaceCrop crop{cv::Rect(v[0], v[1], v[2], v[3]), f[5], false};
    entries->emplace(f[0], std::move(crop));
  }
}

}  // namespace

FaceCropOptions FaceCropOptionsFromConfig(
    const v1::CropConfig& config, const std::string& default_cache_dir) {
  FaceCropOptions options;
  if (config.detectors_size() > 0) {
    options.detectors.assign(config.detectors().begin(),
                             config.detectors().end());
  }
  if (config.has_min_confidence()) {
    options.min_confidence = config.min_confidence();
  }
  if (config.has_pad_x()) options.pad_x = config.pad_x();
  if (config.has_pad_y()) options.pad_y = config.pad_y();
  if (config.has_fixed_box() && config.fixed_box().width() > 0 &&
      config.fixed_box().height() > 0) {
    options.fixed_box =
        cv::Rect(config.fixed_box().x(), config.fixed_box().y(),
                 config.fixed_box().width(), config.fixed_box().height());
  }
  options.yunet_model = config.yunet_model();
  options.cache_dir =
      config.cache_dir().empty() ? default_cache_dir : config.cache_dir();
  return options;
}

absl::StatusOr<std::unique_ptr<FaceDetector>> MakeFaceDetector(
    absl::string_view name, const FaceCropOptions& options) {
  if (name == "haar") {
    auto detector = std::make_unique<HaarFaceDetector>(options.haar_cascade);
    RETURN_IF_ERROR(detector->Load());
    return std::unique_ptr<FaceDetector>(std::move(detector));
  }
  if (name == "yunet") {
    auto detector = std::make_unique<YuNetFaceDetector>(options.yunet_model);
    RETURN_IF_ERROR(detector->Load());
    return std::unique_ptr<FaceDetector>(std::move(detector));
  }
  if (name == "fixed") {
    return std::unique_ptr<FaceDetector>(
        std::make_unique<FixedBoxDetector>(options.fixed_box));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "crop.detectors: unknown detector '", name, "' (haar | yunet | fixed)"));
}

cv::Rect PadAndClampBox(const cv::Rect& box, cv::Size image_size, int pad_x,
                        int pad_y) {
  const int px = static_cast<int>(std::lround(
      pad_x * static_cast<double>(image_size.width) / kCropReferenceWidth));
  const int py = static_cast<int>(std::lround(
      pad_y * static_cast<double>(image_size.height) / kCropReferenceHeight));
  const cv::Rect padded(box.x - px, box.y - py, box.width + 2 * px,
                        box.height + 2 * py);
  return padded & cv::Rect(0, 0, image_size.width, image_size.height);
}

cv::Rect ExpandDetectedBox(const cv::Rect& box, cv::Size image_size,
                           const FaceCropOptions& options) {
  const double left = box.x - options.margin_x * box.width;
  const double right = box.x + box.width * (1 + options.margin_x);
  const double top = box.y - options.margin_top * box.height;
  const double bottom = box.y + box.height * (1 + options.margin_bottom);
  const cv::Rect grown(static_cast<int>(std::lround(left)),
                       static_cast<int>(std::lround(top)),
                       static_cast<int>(std::lround(right - left)),
                       static_cast<int>(std::lround(bottom - top)));
  return PadAndClampBox(grown, image_size, options.pad_x, options.pad_y);
}

absl::StatusOr<std::unique_ptr<DetectionCache>> DetectionCache::Open(
    const std::string& dir, absl::string_view settings_key) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("create cache directory ", dir, ": ", ec.message()));
  }
  const std::string path =
      (fs::path(dir) / absl::StrCat("face_crop-",
                                    Sha256Hex(settings_key).substr(0, 16),
                                    ".csv"))
          .string();
  std::unique_ptr<DetectionCache> cache(new DetectionCache(path));
  if (fs::exists(path, ec)) {
    std::ifstream probe(path);
    if (!probe) return Errno("read detection cache", path);
    absl::MutexLock lock(&cache->mu_);
    ParseCacheFile(path, &cache->entries_);
  }
  return cache;
}

std::optional<FaceCrop> DetectionCache::Lookup(
    const std::string& content_hash) const {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(content_hash);
  if (it == entries_.end()) return std::nullopt;
  FaceCrop crop = it->second;
  crop.from_cache = true;
  return crop;
}

void DetectionCache::Insert(const std::string& content_hash,
                            const FaceCrop& crop) {
  absl::MutexLock lock(&mu_);
  FaceCrop stored = crop;
  stored.from_cache = false;
  entries_[content_hash] = std::move(stored);
  dirty_ = true;
}

absl::Status DetectionCache::Flush() {
  absl::MutexLock lock(&mu_);
  if (!dirty_) return absl::OkStatus();
  const std::string lock_path = path_ + ".lock";
  const int lock_fd =
      ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) return Errno("open", lock_path);
  if (::flock(lock_fd, LOCK_EX) != 0) {
    absl::Status status = Errno("flock", lock_path);
    ::close(lock_fd);
    return status;
  }
  // Merge what other processes wrote since we loaded; ours win on conflict
  // (same key => same image and settings, so both are valid).
  ParseCacheFile(path_, &entries_);
  const std::string temp = absl::StrCat(path_, ".tmp.", ::getpid());
  absl::Status status;
  {
    std::ofstream out(temp, std::ios::trunc);
    for (const auto& [hash, crop] : entries_) {
      out << hash << ',' << crop.box.x << ',' << crop.box.y << ','
          << crop.box.width << ',' << crop.box.height << ',' << crop.source
          << '\n';
    }
    out.flush();
    if (!out.good()) status = Errno("write", temp);
  }
  if (status.ok() && std::rename(temp.c_str(), path_.c_str()) != 0) {
    status = Errno("rename to", path_);
  }
  if (!status.ok()) std::remove(temp.c_str());
  ::flock(lock_fd, LOCK_UN);
  ::close(lock_fd);
  if (status.ok()) dirty_ = false;
  return status;
}

std::string ChainSettingsKey(
    const std::vector<std::unique_ptr<FaceDetector>>& detectors,
    const FaceCropOptions& options) {
  std::vector<std::string> parts;
  parts.reserve(detectors.size());
  for (const auto& detector : detectors) {
    parts.push_back(detector->settings_key());
  }
  return absl::StrCat(
      absl::StrJoin(parts, ">"), ";min_conf=", options.min_confidence,
      ";margin=", options.margin_x, ",", options.margin_top, ",",
      options.margin_bottom, ";pad=", options.pad_x, "x", options.pad_y);
}

absl::StatusOr<std::unique_ptr<FaceCropper>> FaceCropper::Create(
    const FaceCropOptions& options) {
  if (options.detectors.empty()) {
    return absl::InvalidArgumentError("crop.detectors is empty");
  }
  std::vector<std::unique_ptr<FaceDetector>> detectors;
  for (const std::string& name : options.detectors) {
    ASSIGN_OR_RETURN(auto detector, MakeFaceDetector(name, options));
    detectors.push_back(std::move(detector));
  }
  std::unique_ptr<DetectionCache> cache;
  if (!options.cache_dir.empty()) {
    ASSIGN_OR_RETURN(
        cache, DetectionCache::Open(options.cache_dir,
                                    ChainSettingsKey(detectors, options)));
  }
  return std::make_unique<FaceCropper>(std::move(detectors), options,
                                       std::move(cache));
}

FaceCropper::FaceCropper(std::vector<std::unique_ptr<FaceDetector>> detectors,
                         const FaceCropOptions& options,
                         std::unique_ptr<DetectionCache> cache)
    : detectors_(std::move(detectors)),
      options_(options),
      settings_key_(ChainSettingsKey(detectors_, options_)),
      cache_(std::move(cache)) {}

std::optional<FaceCrop> FaceCropper::CachedCrop(
    const cv::Rect& whole, const std::string& content_hash) {
  if (cache_ == nullptr || content_hash.empty()) return std::nullopt;
  std::optional<FaceCrop> cached = cache_->Lookup(content_hash);
  // A cached box outside this image means a hash collision or a changed
  // decoder; detect again rather than crop wrongly.
  if (!cached.has_value() || (cached->box & whole) != cached->box) {
    return std::nullopt;
  }
  absl::MutexLock lock(&mu_);
  ++source_counts_[cached->source];
  ++cache_hits_;
  return cached;
}

std::optional<FaceCrop> FaceCropper::AcceptDetection(
    const FaceDetector& detector, const Detection& found, const cv::Rect& whole,
    const std::string& content_hash) {
  FaceCrop crop;
  crop.source = detector.name();
  crop.box = crop.source == "fixed"
                 ? (found.box & whole)
                 : ExpandDetectedBox(found.box, whole.size(), options_);
  if (crop.box.empty()) return std::nullopt;
  if (cache_ != nullptr && !content_hash.empty()) {
    cache_->Insert(content_hash, crop);
  }
  absl::MutexLock lock(&mu_);
  ++source_counts_[crop.source];
  return crop;
}

absl::StatusOr<FaceCrop> FaceCropper::Locate(const cv::Mat& image,
                                             const std::string& content_hash) {
  if (image.empty()) return absl::InvalidArgumentError("empty image");
  const cv::Rect whole(0, 0, image.cols, image.rows);
  if (std::optional<FaceCrop> cached = CachedCrop(whole, content_hash)) {
    return *cached;
  }
  for (const auto& detector : detectors_) {
    ASSIGN_OR_RETURN(std::optional<Detection> found, detector->Detect(image));
    if (!found.has_value() || found->confidence < options_.min_confidence) {
      continue;
    }
    if (std::optional<FaceCrop> crop =
            AcceptDetection(*detector, *found, whole, content_hash)) {
      return *crop;
    }
  }
  return absl::NotFoundError(
      absl::StrCat("no detector of the chain found a face with confidence >= ",
                   options_.min_confidence, " (add `fixed` as a fallback)"));
}

std::optional<FaceCrop> FaceCropper::LocateFromSize(
    cv::Size image_size, const std::string& content_hash) {
  if (image_size.empty()) return std::nullopt;
  const cv::Rect whole(cv::Point(0, 0), image_size);
  if (std::optional<FaceCrop> cached = CachedCrop(whole, content_hash)) {
    return cached;
  }
  for (const auto& detector : detectors_) {
    std::optional<Detection> found = detector->DetectFromSize(image_size);
    if (!found.has_value()) return std::nullopt;  // needs the pixels
    if (found->confidence < options_.min_confidence) continue;
    if (std::optional<FaceCrop> crop =
            AcceptDetection(*detector, *found, whole, content_hash)) {
      return crop;
    }
  }
  return std::nullopt;
}

absl::Status FaceCropper::FlushCache() {
  return cache_ == nullptr ? absl::OkStatus() : cache_->Flush();
}

std::map<std::string, int64_t> FaceCropper::SourceCounts() const {
  absl::MutexLock lock(&mu_);
  return source_counts_;
}

int64_t FaceCropper::cache_hits() const {
  absl::MutexLock lock(&mu_);
  return cache_hits_;
}

std::string ContentHash(absl::string_view file_bytes) {
  return Sha256Hex(file_bytes);
}

}  // namespace sweepq::worker
