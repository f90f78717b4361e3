// Image decoding that rejects bad input instead of training on it: empty,
// corrupt and truncated files and decompression bombs (more pixels than a
// limit, found from the header before any pixel is decoded). Every error
// names the file. Functions here are thread-safe (no shared state).
#ifndef SWEEPQ_WORKER_PIPELINE_IMAGE_DECODE_H_
#define SWEEPQ_WORKER_PIPELINE_IMAGE_DECODE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "opencv2/core.hpp"
#include "sweepq/v1/run_config.pb.h"

namespace sweepq::worker {

// The pixel limit when DataConfig.max_image_pixels is 0 (PIL's default).
inline constexpr uint64_t kDefaultMaxImagePixels = 89'478'485;

// Width, height and format of an encoded image, read from its header.
struct ImageHeader {
  int width = 0;
  int height = 0;
  // "jpeg", "png" or "bmp".
  std::string format;
};

// Returns the pixel limit of `config` (kDefaultMaxImagePixels for 0).
uint64_t MaxImagePixelsFromConfig(const v1::DataConfig& config);

// Reads the size from the header of a JPEG (SOFn marker), PNG (IHDR) or BMP
// without decoding. Returns INVALID_ARGUMENT "<path>: <cause>" for an empty
// file, an unknown format or a header that ends early or is malformed.
absl::StatusOr<ImageHeader> ReadImageHeader(absl::string_view bytes,
                                            absl::string_view path);

// Decodes `bytes` (the contents of `path`) to an 8-bit BGR image. Checks
// the header first: more than `max_pixels` pixels (0 = no limit) is
// rejected as a decompression bomb before decoding. A JPEG must end with
// its end-of-image marker after the scan and a PNG with its IEND chunk, so
// truncated files are rejected rather than decoded half grey. Returns
// INVALID_ARGUMENT "<path>: <cause>" for each of these and for data OpenCV
// cannot decode.
absl::StatusOr<cv::Mat> DecodeImage(absl::string_view bytes,
                                    absl::string_view path,
                                    uint64_t max_pixels);

// Runs every check DecodeImage makes before decoding (header, pixel
// limit, end marker) and returns the header. Returns what DecodeImage
// returns for those failures.
absl::StatusOr<ImageHeader> CheckEncodedImage(absl::string_view bytes,
                                              absl::string_view path,
                                              uint64_t max_pixels);

// Returns the size of a `size` image decoded at 1 / `scale`: each side
// divided by `scale`, rounded up (as libjpeg's scaled decoding).
cv::Size ReducedSize(cv::Size size, int scale);

// DecodeImage at 1 / `scale` of the image's size, `scale` being 1, 2, 4 or
// 8; the result is ReducedSize(header size, scale). A JPEG is decoded
// reduced by libjpeg's scaled IDCT (about twice as fast at 1/2 as a full
// decode, and close to an area filter, so little aliasing); other formats
// are decoded in full and shrunk with INTER_AREA. The checks are
// DecodeImage's, the pixel limit applying to the full size. Returns
// INVALID_ARGUMENT for another scale and for what DecodeImage rejects.
absl::StatusOr<cv::Mat> DecodeImageReduced(absl::string_view bytes,
                                           absl::string_view path,
                                           uint64_t max_pixels, int scale);

// Reads the file at `path` into *bytes. Returns NOT_FOUND for a missing
// file and INTERNAL naming the path for a read error.
absl::Status ReadFileBytes(const std::string& path, std::string* bytes);

// ReadFileBytes + DecodeImage. When `bytes` is not null it receives the
// file's contents (e.g. for ContentHash).
absl::StatusOr<cv::Mat> ReadImageFile(const std::string& path,
                                      uint64_t max_pixels,
                                      std::string* bytes = nullptr);

}  // namespace sweepq::worker

#endif  // SWEEPQ_WORKER_PIPELINE_IMAGE_DECODE_H_
