#include "worker/pipeline/image_decode.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"

namespace sweepq::worker {
namespace {

absl::Status Bad(absl::string_view path, absl::string_view cause) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", cause));
}

uint32_t Be16(absl::string_view b, size_t i) {
  return (static_cast<uint8_t>(b[i]) << 8) | static_cast<uint8_t>(b[i + 1]);
}
uint32_t Be32(absl::string_view b, size_t i) {
  return (Be16(b, i) << 16) | Be16(b, i + 2);
}
uint32_t Le32(absl::string_view b, size_t i) {
  return static_cast<uint32_t>(static_cast<uint8_t>(b[i])) |
         (static_cast<uint32_t>(static_cast<uint8_t>(b[i + 1])) << 8) |
         (static_cast<uint32_t>(static_cast<uint8_t>(b[i + 2])) << 16) |
         (static_cast<uint32_t>(static_cast<uint8_t>(b[i + 3])) << 24);
}

constexpr char kPngSignature[] = "\x89PNG\r\n\x1a\n";

bool IsJpeg(absl::string_view b) {
  return b.size() >= 3 && static_cast<uint8_t>(b[0]) == 0xFF &&
         static_cast<uint8_t>(b[1]) == 0xD8 &&
         static_cast<uint8_t>(b[2]) == 0xFF;
}
bool IsPng(absl::string_view b) {
  return b.size() >= 8 && b.substr(0, 8) == absl::string_view(kPngSignature, 8);
}
bool IsBmp(absl::string_view b) {
  return b.size() >= 2 && b.substr(0, 2) == "BM";
}

// Walks the JPEG markers up to the first start-of-frame. Sets *sos to the
// offset of the first start-of-scan marker when it is reached.
absl::StatusOr<ImageHeader> ParseJpeg(absl::string_view b,
                                      absl::string_view path) {
  size_t i = 2;
  while (true) {
    while (i < b.size() && static_cast<uint8_t>(b[i]) == 0xFF &&
           i + 1 < b.size() && static_cast<uint8_t>(b[i + 1]) == 0xFF) {
      ++i;  // fill bytes
    }
    if (i + 4 > b.size()) return Bad(path, "JPEG header ends early");
    if (static_cast<uint8_t>(b[i]) != 0xFF) {
      return Bad(path, "corrupt JPEG header (marker expected)");
    }
    const uint8_t marker = static_cast<uint8_t>(b[i + 1]);
    if (marker == 0xD9 || marker == 0xDA) {
      return Bad(path, "JPEG without a frame header");
    }
    const uint32_t length = Be16(b, i + 2);
    if (length < 2) return Bad(path, "corrupt JPEG segment length");
    const bool sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 &&
                     marker != 0xC8 && marker != 0xCC;
    if (sof) {
      if (i + 9 > b.size()) return Bad(path, "JPEG frame header ends early");
      ImageHeader header;
      header.height = static_cast<int>(Be16(b, i + 5));
      header.width = static_cast<int>(Be16(b, i + 7));
      header.format = "jpeg";
      return header;
    }
    i += 2 + length;
  }
}

// True when an end-of-image marker follows the first start-of-scan. Inside
// entropy-coded data 0xFF is always stuffed (FF 00), so FF D9 there is the
// real end; an EOI before the first scan belongs to an EXIF thumbnail.
bool JpegHasEnd(absl::string_view b) {
  size_t sos = std::string::npos;
  for (size_t i = 2; i + 1 < b.size(); ++i) {
    if (static_cast<uint8_t>(b[i]) != 0xFF) continue;
    const uint8_t marker = static_cast<uint8_t>(b[i + 1]);
    if (marker == 0xDA) {
      sos = i;
      break;
    }
    // Skip segments with a length (everything but RSTn, SOI, TEM, fill).
    if (marker != 0xFF && marker != 0x00 && marker != 0x01 && marker != 0xD8 &&
        !(marker >= 0xD0 && marker <= 0xD7) && i + 3 < b.size()) {
      i += 1 + Be16(b, i + 2);
    }
  }
  if (sos == std::string::npos) return false;
  for (size_t i = b.size() - 1; i > sos + 1; --i) {
    if (static_cast<uint8_t>(b[i]) == 0xD9 &&
        static_cast<uint8_t>(b[i - 1]) == 0xFF) {
      return true;
    }
  }
  return false;
}

bool PngHasEnd(absl::string_view b) {
  // IEND is the last chunk: length 0, "IEND", CRC; allow trailing bytes.
  return b.find("IEND") != absl::string_view::npos &&
         b.rfind("IEND") + 8 <= b.size();
}

}  // namespace

uint64_t MaxImagePixelsFromConfig(const v1::DataConfig& config) {
  return config.max_image_pixels() == 0 ? kDefaultMaxImagePixels
                                        : config.max_image_pixels();
}

absl::StatusOr<ImageHeader> ReadImageHeader(absl::string_view bytes,
                                            absl::string_view path) {
  if (bytes.empty()) return Bad(path, "empty file (0 bytes)");
  if (IsJpeg(bytes)) return ParseJpeg(bytes, path);
  if (IsPng(bytes)) {
    if (bytes.size() < 24 || bytes.substr(12, 4) != "IHDR") {
      return Bad(path, "PNG header ends early or lacks IHDR");
    }
    ImageHeader header;
    const uint32_t w = Be32(bytes, 16);
    const uint32_t h = Be32(bytes, 20);
    if (w == 0 || h == 0 || w > 0x7FFFFFFF || h > 0x7FFFFFFF) {
      return Bad(path, "corrupt PNG size");
    }
    header.width = static_cast<int>(w);
    header.height = static_cast<int>(h);
    header.format = "png";
    return header;
  }
  if (IsBmp(bytes)) {
    if (bytes.size() < 26) return Bad(path, "BMP header ends early");
    const int32_t w = static_cast<int32_t>(Le32(bytes, 18));
    const int32_t h = static_cast<int32_t>(Le32(bytes, 22));
    if (w <= 0 || h == 0 || h == INT32_MIN)
      return Bad(path, "corrupt BMP size");
    ImageHeader header;
    header.width = w;
    header.height = h < 0 ? -h : h;
    header.format = "bmp";
    return header;
  }
  return Bad(path, "not a JPEG, PNG or BMP image");
}

absl::StatusOr<ImageHeader> CheckEncodedImage(absl::string_view bytes,
                                              absl::string_view path,
                                              uint64_t max_pixels) {
  ASSIGN_OR_RETURN(ImageHeader header, ReadImageHeader(bytes, path));
  if (header.width <= 0 || header.height <= 0) {
    return Bad(path,
               absl::StrCat("invalid size ", header.width, "x", header.height));
  }
  const uint64_t pixels = static_cast<uint64_t>(header.width) *
                          static_cast<uint64_t>(header.height);
  if (max_pixels != 0 && pixels > max_pixels) {
    return Bad(path, absl::StrCat("decompression bomb: ", header.width, "x",
                                  header.height, " = ", pixels,
                                  " pixels > limit ", max_pixels));
  }
  if (header.format == "jpeg" && !JpegHasEnd(bytes)) {
    return Bad(path, "truncated JPEG (no end-of-image marker)");
  }
  if (header.format == "png" && !PngHasEnd(bytes)) {
    return Bad(path, "truncated PNG (no IEND chunk)");
  }
  return header;
}

cv::Size ReducedSize(cv::Size size, int scale) {
  return cv::Size((size.width + scale - 1) / scale,
                  (size.height + scale - 1) / scale);
}

absl::StatusOr<cv::Mat> DecodeImageReduced(absl::string_view bytes,
                                           absl::string_view path,
                                           uint64_t max_pixels, int scale) {
  int flags = cv::IMREAD_COLOR;
  switch (scale) {
    case 1:
      break;
    case 2:
      flags = cv::IMREAD_REDUCED_COLOR_2;
      break;
    case 4:
      flags = cv::IMREAD_REDUCED_COLOR_4;
      break;
    case 8:
      flags = cv::IMREAD_REDUCED_COLOR_8;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": decode scale must be 1, 2, 4 or 8, got ", scale));
  }
  ASSIGN_OR_RETURN(ImageHeader header,
                   CheckEncodedImage(bytes, path, max_pixels));
  // Only libjpeg decodes reduced; OpenCV would decode other formats in
  // full and resize them bilinearly, so shrink those here instead.
  const bool jpeg = header.format == "jpeg";
  const cv::Size full(header.width, header.height);
  const cv::Size expected = jpeg ? ReducedSize(full, scale) : full;
  cv::Mat image;
  try {
    const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8U,
                         const_cast<char*>(bytes.data()));
    image = cv::imdecode(buffer, jpeg ? flags : cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    return Bad(path,
               absl::StrCat("cannot decode ", header.format, ": ", e.what()));
  }
  if (image.empty()) {
    return Bad(path, absl::StrCat("corrupt ", header.format,
                                  " (OpenCV cannot decode it)"));
  }
  if (image.size() != expected) {
    return Bad(path, absl::StrCat("decoded size ", image.cols, "x", image.rows,
                                  " differs from header ", header.width, "x",
                                  header.height,
                                  scale > 1 ? absl::StrCat(" / ", scale) : ""));
  }
  if (!jpeg && scale > 1) {
    try {
      cv::Mat reduced;
      cv::resize(image, reduced, ReducedSize(full, scale), 0, 0,
                 cv::INTER_AREA);
      image = std::move(reduced);
    } catch (const cv::Exception& e) {
      return Bad(path,
                 absl::StrCat("cannot shrink ", header.format, ": ", e.what()));
    }
  }
  return image;
}

absl::StatusOr<cv::Mat> DecodeImage(absl::string_view bytes,
                                    absl::string_view path,
                                    uint64_t max_pixels) {
  return DecodeImageReduced(bytes, path, max_pixels, 1);
}

absl::Status ReadFileBytes(const std::string& path, std::string* bytes) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(absl::StrCat(path, ": no such image file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InternalError(
        absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) {
    return absl::InternalError(absl::StrCat(path, ": read error"));
  }
  *bytes = std::move(contents).str();
  return absl::OkStatus();
}

absl::StatusOr<cv::Mat> ReadImageFile(const std::string& path,
                                      uint64_t max_pixels, std::string* bytes) {
  std::string local;
  std::string* data = bytes != nullptr ? bytes : &local;
  RETURN_IF_ERROR(ReadFileBytes(path, data));
  return DecodeImage(*data, path, max_pixels);
}

}  // namespace sweepq::worker
