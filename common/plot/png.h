// PNG output for a Canvas, written from the PNG specification: 8-bit RGB
// (colour type 2), not interlaced, one IDAT chunk compressed with the
// system zlib, and per row the filter (None, Sub, Up, Average or Paeth)
// whose output has the smallest sum of absolute values, the heuristic the
// specification recommends. Thread-safe.
#ifndef SWEEPQ_COMMON_PLOT_PNG_H_
#define SWEEPQ_COMMON_PLOT_PNG_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/plot/canvas.h"

namespace sweepq::plot {

// Returns the PNG file bytes of `canvas`; INTERNAL if zlib fails.
absl::StatusOr<std::string> EncodePng(const Canvas& canvas);

// Writes `canvas` as a PNG file at `path`: to a temporary file in the same
// directory first, renamed into place, so a reader never sees half a file
// and a failure leaves an existing file untouched; the file gets mode 0644.
// Errors carry the errno's canonical code and name the path and
// the cause (no such directory, permission denied, disk full).
absl::Status WritePngFile(const Canvas& canvas, const std::string& path);

}  // namespace sweepq::plot

#endif  // SWEEPQ_COMMON_PLOT_PNG_H_
