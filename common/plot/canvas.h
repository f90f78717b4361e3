// Canvas: an 8-bit RGB raster with clipped drawing primitives (filled and
// outlined rectangles, anti-aliased lines of any thickness, circles and
// markers). It is the drawing surface of the charts in common/plot/ and
// knows nothing about files; common/plot/png.h writes one out.
//
// Coordinates are pixels with (0, 0) at the top-left corner; a pixel (x, y)
// covers [x, x + 1) x [y, y + 1), so the centre of pixel 3 is at 3.5.
// Drawing outside the canvas (or outside the clip rectangle) is silently
// cut off. Not thread-safe; a Canvas is a plain value (copyable).
#ifndef SWEEPQ_COMMON_PLOT_CANVAS_H_
#define SWEEPQ_COMMON_PLOT_CANVAS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace sweepq::plot {

struct Color {
  uint8_t r = 0;
  uint8_t g = 0;
  uint8_t b = 0;

  bool operator==(const Color& o) const {
    return r == o.r && g == o.g && b == o.b;
  }
  bool operator!=(const Color& o) const { return !(*this == o); }
};

inline constexpr Color kWhite{255, 255, 255};
inline constexpr Color kBlack{0, 0, 0};

// Returns a + (b - a) * t per channel, t clamped to [0, 1], rounded.
Color Mix(Color a, Color b, double t);

// Returns the relative luminance of `c` in [0, 1] (Rec. 709 weights on the
// sRGB values, no linearisation: good enough to pick a text colour).
double Luminance(Color c);

// An axis-aligned rectangle of whole pixels: columns [x, x + width), rows
// [y, y + height). Empty when width or height is <= 0.
struct Rect {
  int x = 0;
  int y = 0;
  int width = 0;
  int height = 0;

  int right() const { return x + width; }    // one past the last column
  int bottom() const { return y + height; }  // one past the last row
  bool empty() const { return width <= 0 || height <= 0; }
  bool Contains(int px, int py) const {
    return px >= x && px < right() && py >= y && py < bottom();
  }
  // The overlap of two rectangles (empty if none).
  Rect Intersect(const Rect& o) const;
};

// Shapes DrawMarker() draws centred on a point.
enum class Marker { kCircle, kSquare, kDiamond, kTriangle };

class Canvas {
 public:
  // Largest accepted width or height, so that a typo in a size cannot ask
  // for gigabytes.
  static constexpr int kMaxSide = 16384;

  // Returns a canvas filled with `background`, or INVALID_ARGUMENT naming
  // the bad size unless 1 <= width, height <= kMaxSide.
  static absl::StatusOr<Canvas> Create(int width, int height,
                                       Color background = kWhite);

  int width() const { return width_; }
  int height() const { return height_; }
  Rect bounds() const { return Rect{0, 0, width_, height_}; }

  // The colour of pixel (x, y), which must be on the canvas (CHECKed).
  Color At(int x, int y) const;
  // Rows top to bottom, each `width() * 3` bytes R, G, B.
  const std::vector<uint8_t>& pixels() const { return pixels_; }

  // Restricts all drawing to `clip` (intersected with the canvas) until
  // ResetClip().
  void SetClip(const Rect& clip);
  void ResetClip() { clip_ = bounds(); }
  const Rect& clip() const { return clip_; }

  // Sets one pixel (ignored outside the clip).
  void Set(int x, int y, Color c);
  // Blends `c` over pixel (x, y) with opacity `alpha` in [0, 1].
  void Blend(int x, int y, Color c, double alpha);
  // Fills `r`.
  void FillRect(const Rect& r, Color c);
  // Draws the outline of `r`, `thickness` pixels wide, inside `r`.
  void StrokeRect(const Rect& r, Color c, int thickness = 1);
  // Draws an anti-aliased line from (x0, y0) to (x1, y1) (pixel
  // coordinates, fractions allowed) `thickness` pixels wide, with round
  // ends. Thickness below 1 is drawn as 1.
  void DrawLine(double x0, double y0, double x1, double y1, Color c,
                double thickness = 1);
  // Draws an anti-aliased disc of `radius` centred on (cx, cy).
  void FillCircle(double cx, double cy, double radius, Color c);
  // Draws `marker` of about `size` pixels across centred on (cx, cy).
  void DrawMarker(Marker marker, double cx, double cy, double size, Color c);

 private:
  Canvas(int width, int height, Color background);

  int width_;
  int height_;
  Rect clip_;
  std::vector<uint8_t> pixels_;
};

}  // namespace sweepq::plot

#endif  // SWEEPQ_COMMON_PLOT_CANVAS_H_
