#include "common/plot/png.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

namespace sweepq::plot {
namespace {

constexpr int kBytesPerPixel = 3;

void AppendU32(std::string* out, uint32_t v) {
  out->push_back(static_cast<char>(v >> 24));
  out->push_back(static_cast<char>(v >> 16));
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v));
}

// Appends a chunk: length, type, data, CRC-32 of type and data.
void AppendChunk(std::string* out, const char type[5],
                 const std::string& data) {
  AppendU32(out, static_cast<uint32_t>(data.size()));
  size_t type_at = out->size();
  out->append(type, 4);
  out->append(data);
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, reinterpret_cast<const Bytef*>(out->data() + type_at),
              static_cast<uInt>(4 + data.size()));
  AppendU32(out, static_cast<uint32_t>(crc));
}

// A status with the canonical code of `error` (NOT_FOUND for ENOENT,
// PERMISSION_DENIED for EACCES, ...) and "`what`: strerror".
absl::Status ErrnoError(int error, const std::string& what) {
  return absl::Status(absl::ErrnoToStatusCode(error),
                      absl::StrCat(what, ": ", std::strerror(error)));
}

uint8_t Paeth(int a, int b, int c) {
  int p = a + b - c;
  int pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  if (pa <= pb && pa <= pc) return static_cast<uint8_t>(a);
  if (pb <= pc) return static_cast<uint8_t>(b);
  return static_cast<uint8_t>(c);
}

// Filters one row with filter `type` (0-4) into `out`; `prior` is the row
// above (all zero for the first row).
void FilterRow(int type, const uint8_t* row, const uint8_t* prior,
               size_t length, uint8_t* out) {
  for (size_t i = 0; i < length; ++i) {
    int a = i >= kBytesPerPixel ? row[i - kBytesPerPixel] : 0;
    int b = prior[i];
    int c = i >= kBytesPerPixel ? prior[i - kBytesPerPixel] : 0;
    int predictor = 0;
    switch (type) {
      case 1:
        predictor = a;
        break;
      case 2:
        predictor = b;
        break;
      case 3:
        predictor = (a + b) / 2;
        break;
      case 4:
        predictor = Paeth(a, b, c);
        break;
      default:
        break;
    }
    out[i] = static_cast<uint8_t>(row[i] - predictor);
  }
}

// The filtered image data: each row prefixed with its filter type byte.
std::vector<uint8_t> FilterImage(const Canvas& canvas) {
  const size_t stride = static_cast<size_t>(canvas.width()) * kBytesPerPixel;
  const std::vector<uint8_t>& pixels = canvas.pixels();
  std::vector<uint8_t> out;
  out.reserve((stride + 1) * canvas.height());
  std::vector<uint8_t> zero(stride, 0), candidate(stride), best(stride);
  for (int y = 0; y < canvas.height(); ++y) {
    const uint8_t* row = pixels.data() + y * stride;
    const uint8_t* prior = y == 0 ? zero.data() : row - stride;
    uint64_t best_cost = UINT64_MAX;
    int best_type = 0;
    for (int type = 0; type <= 4; ++type) {
      FilterRow(type, row, prior, stride, candidate.data());
      // Bytes read as signed: small differences either way are cheap.
      uint64_t cost = 0;
      for (uint8_t v : candidate) cost += v < 128 ? v : 256 - v;
      if (cost < best_cost) {
        best_cost = cost;
        best_type = type;
        best.swap(candidate);
      }
    }
    out.push_back(static_cast<uint8_t>(best_type));
    out.insert(out.end(), best.begin(), best.end());
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> EncodePng(const Canvas& canvas) {
  std::vector<uint8_t> filtered = FilterImage(canvas);
  uLongf compressed_size = compressBound(filtered.size());
  std::string compressed(compressed_size, '\0');
  int rc =
      compress2(reinterpret_cast<Bytef*>(compressed.data()), &compressed_size,
                filtered.data(), filtered.size(), Z_BEST_COMPRESSION);
  if (rc != Z_OK) {
    return absl::InternalError(
        absl::StrCat("zlib compress2 failed with code ", rc));
  }
  compressed.resize(compressed_size);

  std::string header;
  AppendU32(&header, static_cast<uint32_t>(canvas.width()));
  AppendU32(&header, static_cast<uint32_t>(canvas.height()));
  header.push_back(8);  // bit depth
  header.push_back(2);  // colour type: RGB
  header.push_back(0);  // compression: deflate
  header.push_back(0);  // filter method: adaptive, five types
  header.push_back(0);  // no interlace

  std::string png("\x89PNG\r\n\x1a\n", 8);
  AppendChunk(&png, "IHDR", header);
  AppendChunk(&png, "IDAT", compressed);
  AppendChunk(&png, "IEND", "");
  return png;
}

absl::Status WritePngFile(const Canvas& canvas, const std::string& path) {
  auto png = EncodePng(canvas);
  if (!png.ok()) return png.status();
  std::string temp = path + ".tmp-XXXXXX";
  int fd = mkstemp(temp.data());
  if (fd < 0) {
    int error = errno;
    std::string dir = ".";
    size_t slash = path.rfind('/');
    if (slash != std::string::npos) {
      dir = slash == 0 ? "/" : path.substr(0, slash);
    }
    return ErrnoError(error, absl::StrCat("cannot write ", path,
                                          ": cannot create a file in ", dir));
  }
  // Pictures are not secrets: readable by all, not mkstemp's 0600. (Reading
  // the umask would change it for every thread for a moment.)
  fchmod(fd, 0644);
  const std::string& data = *png;
  size_t written = 0;
  while (written < data.size()) {
    ssize_t n = write(fd, data.data() + written, data.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;
      close(fd);
      unlink(temp.c_str());
      return ErrnoError(error, absl::StrCat("cannot write ", path));
    }
    written += static_cast<size_t>(n);
  }
  if (close(fd) != 0) {
    int error = errno;
    unlink(temp.c_str());
    return ErrnoError(error, absl::StrCat("cannot write ", path));
  }
  if (rename(temp.c_str(), path.c_str()) != 0) {
    int error = errno;
    unlink(temp.c_str());
    return ErrnoError(error, absl::StrCat("cannot write ", path));
  }
  return absl::OkStatus();
}

}  // namespace sweepq::plot
