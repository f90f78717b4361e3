#include "worker/pipeline/image_decode.h"

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"
#include "tests/testing/temp_dir.h"

namespace sweepq::worker {
namespace {

using ::testing::HasSubstr;

cv::Mat TestImage(int width, int height) {
  cv::Mat image(height, width, CV_8UC3);
  cv::randu(image, cv::Scalar::all(0), cv::Scalar::all(255));
  return image;
}

std::string Encode(const cv::Mat& image, const std::string& ext) {
  std::vector<uchar> buffer;
  EXPECT_TRUE(cv::imencode(ext, image, buffer));
  return std::string(buffer.begin(), buffer.end());
}

std::string WriteFile(const testing::TempDir& dir, const std::string& name,
                      const std::string& bytes) {
  const std::string path = dir.Join(name);
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  return path;
}

class ImageDecodeTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ImageDecodeTest, GoodImageDecodesToBgrOfHeaderSize) {
  testing::TempDir dir;
  const std::string bytes = Encode(TestImage(64, 48), GetParam());
  auto header = ReadImageHeader(bytes, "x");
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->width, 64);
  EXPECT_EQ(header->height, 48);
  const std::string path = WriteFile(dir, "good" + GetParam(), bytes);
  std::string read_bytes;
  auto image = ReadImageFile(path, kDefaultMaxImagePixels, &read_bytes);
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->type(), CV_8UC3);
  EXPECT_EQ(image->size(), cv::Size(64, 48));
  EXPECT_EQ(read_bytes, bytes);
}

TEST_P(ImageDecodeTest, EmptyFileIsRejectedNamingThePath) {
  testing::TempDir dir;
  const std::string path = WriteFile(dir, "empty" + GetParam(), "");
  auto image = ReadImageFile(path, kDefaultMaxImagePixels);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(image.status().message(), HasSubstr(path));
  EXPECT_THAT(image.status().message(), HasSubstr("0 bytes"));
}

TEST_P(ImageDecodeTest, TruncatedFileIsRejected) {
  testing::TempDir dir;
  const std::string bytes = Encode(TestImage(128, 96), GetParam());
  for (double share : {0.9, 0.5, 0.1}) {
    const std::string path =
        WriteFile(dir, "cut" + GetParam(),
                  bytes.substr(0, static_cast<size_t>(bytes.size() * share)));
    auto image = ReadImageFile(path, kDefaultMaxImagePixels);
    EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument)
        << share;
    EXPECT_THAT(image.status().message(), HasSubstr(path));
  }
}

TEST_P(ImageDecodeTest, CorruptFileIsRejected) {
  testing::TempDir dir;
  std::string bytes = Encode(TestImage(64, 64), GetParam());
  // Garbage after the magic bytes: the header no longer parses or decodes.
  for (size_t i = 4; i < bytes.size() - 4; ++i)
    bytes[i] = static_cast<char>(i * 7);
  const std::string path = WriteFile(dir, "corrupt" + GetParam(), bytes);
  auto image = ReadImageFile(path, kDefaultMaxImagePixels);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(image.status().message(), HasSubstr(path));
}

TEST_P(ImageDecodeTest, DecompressionBombIsRejectedBeforeDecoding) {
  testing::TempDir dir;
  const std::string path = WriteFile(dir, "big" + GetParam(),
                                     Encode(TestImage(200, 100), GetParam()));
  auto image = ReadImageFile(path, 19'999);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(image.status().message(), HasSubstr("decompression bomb"));
  EXPECT_THAT(image.status().message(), HasSubstr(path));
  EXPECT_TRUE(ReadImageFile(path, 20'000).ok());
  EXPECT_TRUE(ReadImageFile(path, 0).ok()) << "0 = no limit";
}

// A smooth image (gradients), so a reduced decode and a shrunk full
// decode can be compared pixel by pixel.
cv::Mat SmoothImage(int width, int height) {
  cv::Mat image(height, width, CV_8UC3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      image.at<cv::Vec3b>(y, x) =
          cv::Vec3b(static_cast<uchar>(255 * x / width),
                    static_cast<uchar>(255 * y / height),
                    static_cast<uchar>(128 + 100 * std::sin((x + y) / 15.0)));
    }
  }
  return image;
}

TEST_P(ImageDecodeTest, ReducedDecodeHasTheRoundedUpSize) {
  // Odd sizes: the reduced sides round up (101 / 4 -> 26).
  const std::string bytes = Encode(SmoothImage(203, 101), GetParam());
  for (int scale : {1, 2, 4, 8}) {
    const cv::Size size = ReducedSize(cv::Size(203, 101), scale);
    EXPECT_EQ(size,
              cv::Size((203 + scale - 1) / scale, (101 + scale - 1) / scale));
    auto reduced =
        DecodeImageReduced(bytes, "x", kDefaultMaxImagePixels, scale);
    ASSERT_TRUE(reduced.ok()) << reduced.status();
    EXPECT_EQ(reduced->type(), CV_8UC3);
    EXPECT_EQ(reduced->size(), size) << scale;
  }
}

TEST_P(ImageDecodeTest, ReducedDecodeShowsTheSameImage) {
  // Sides divisible by 8, so each reduced pixel is the mean of a block.
  const std::string bytes = Encode(SmoothImage(200, 96), GetParam());
  auto whole = DecodeImage(bytes, "x", kDefaultMaxImagePixels);
  ASSERT_TRUE(whole.ok()) << whole.status();
  for (int scale : {2, 4, 8}) {
    auto reduced =
        DecodeImageReduced(bytes, "x", kDefaultMaxImagePixels, scale);
    ASSERT_TRUE(reduced.ok()) << reduced.status();
    cv::Mat shrunk;
    cv::resize(*whole, shrunk, reduced->size(), 0, 0, cv::INTER_AREA);
    // Within a few levels on average (JPEG's scaled IDCT is not exactly a
    // block mean); a flipped or shifted image is tens of levels off.
    cv::Mat diff;
    cv::absdiff(*reduced, shrunk, diff);
    const cv::Scalar mean = cv::mean(diff);
    EXPECT_LT((mean[0] + mean[1] + mean[2]) / 3, 3.0) << scale;
  }
}

TEST_P(ImageDecodeTest, ReducedDecodeKeepsTheChecks) {
  const std::string bytes = Encode(TestImage(200, 100), GetParam());
  auto bomb = DecodeImageReduced(bytes, "big", 19'999, 2);
  EXPECT_THAT(bomb.status().message(), HasSubstr("decompression bomb"));
  auto cut = DecodeImageReduced(bytes.substr(0, bytes.size() / 2), "cut",
                                kDefaultMaxImagePixels, 4);
  EXPECT_EQ(cut.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(cut.status().message(), HasSubstr("truncated"));
  auto checked = CheckEncodedImage(bytes.substr(0, bytes.size() / 2), "cut",
                                   kDefaultMaxImagePixels);
  EXPECT_THAT(checked.status().message(), HasSubstr("cut: truncated"));
  auto odd = DecodeImageReduced(bytes, "odd", kDefaultMaxImagePixels, 3);
  EXPECT_EQ(odd.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(odd.status().message(), HasSubstr("odd: decode scale"));
}

INSTANTIATE_TEST_SUITE_P(Formats, ImageDecodeTest,
                         ::testing::Values(".jpg", ".png"),
                         [](const auto& info) { return info.param.substr(1); });

TEST(ImageDecodeTest, PngClaimingHugeSizeIsRejectedFromTheHeader) {
  // A 1x1 PNG whose IHDR claims 100000 x 100000 (10^10 pixels): rejected
  // from the header alone, never allocated.
  std::string bytes = Encode(TestImage(1, 1), ".png");
  const unsigned char size[] = {0, 1, 0x86, 0xA0};  // 100000 big-endian
  for (int i = 0; i < 4; ++i) {
    bytes[16 + i] = static_cast<char>(size[i]);
    bytes[20 + i] = static_cast<char>(size[i]);
  }
  auto image = DecodeImage(bytes, "huge.png", kDefaultMaxImagePixels);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(image.status().message(),
              HasSubstr("100000x100000 = 10000000000 pixels"));
}

TEST(ImageDecodeTest, JpegWithBytesAfterTheEndMarkerStillDecodes) {
  // Some cameras and editors append padding after EOI; that is not
  // truncation.
  std::string bytes = Encode(TestImage(32, 32), ".jpg");
  bytes += std::string(100, '\0');
  auto image = DecodeImage(bytes, "padded.jpg", kDefaultMaxImagePixels);
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->size(), cv::Size(32, 32));
}

TEST(ImageDecodeTest, TruncatedJpegIsNotDecodedHalfGrey) {
  // OpenCV (libjpeg) decodes a truncated JPEG with only a warning, filling
  // the missing rows with grey; the end-marker check must catch it.
  const std::string bytes = Encode(TestImage(64, 64), ".jpg");
  const std::string cut = bytes.substr(0, bytes.size() - 200);
  std::vector<uchar> buffer(cut.begin(), cut.end());
  ASSERT_FALSE(cv::imdecode(buffer, cv::IMREAD_COLOR).empty())
      << "OpenCV rejects truncated JPEGs itself now; the check is redundant";
  auto image = DecodeImage(cut, "cut.jpg", kDefaultMaxImagePixels);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(image.status().message(), HasSubstr("truncated JPEG"));
}

TEST(ImageDecodeTest, UnknownFormatAndMissingFile) {
  auto text = DecodeImage("hello, world", "notes.jpg", 0);
  EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(text.status().message(), HasSubstr("notes.jpg"));
  auto missing = ReadImageFile("/nonexistent/x.jpg", 0);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("/nonexistent/x.jpg"));
}

TEST(ImageDecodeTest, MaxPixelsFromConfig) {
  v1::DataConfig config;
  EXPECT_EQ(MaxImagePixelsFromConfig(config), kDefaultMaxImagePixels);
  config.set_max_image_pixels(1000);
  EXPECT_EQ(MaxImagePixelsFromConfig(config), 1000u);
}

}  // namespace
}  // namespace sweepq::worker
