#include "common/plot/canvas.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace sweepq::plot {
namespace {

uint8_t Channel(double v) {
  return static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
}

struct Point {
  double x;
  double y;
};

// Distance from (px, py) to the segment a-b.
double SegmentDistance(double px, double py, Point a, Point b) {
  double dx = b.x - a.x, dy = b.y - a.y;
  double len2 = dx * dx + dy * dy;
  double t = len2 > 0 ? ((px - a.x) * dx + (py - a.y) * dy) / len2 : 0;
  t = std::clamp(t, 0.0, 1.0);
  double ex = a.x + t * dx - px, ey = a.y + t * dy - py;
  return std::sqrt(ex * ex + ey * ey);
}

}  // namespace

Color Mix(Color a, Color b, double t) {
  t = std::clamp(t, 0.0, 1.0);
  return Color{Channel(a.r + (b.r - a.r) * t), Channel(a.g + (b.g - a.g) * t),
               Channel(a.b + (b.b - a.b) * t)};
}

double Luminance(Color c) {
  return (0.2126 * c.r + 0.7152 * c.g + 0.0722 * c.b) / 255.0;
}

Rect Rect::Intersect(const Rect& o) const {
  int left = std::max(x, o.x), top = std::max(y, o.y);
  int r = std::min(right(), o.right()), b = std::min(bottom(), o.bottom());
  if (r <= left || b <= top) return Rect{left, top, 0, 0};
  return Rect{left, top, r - left, b - top};
}

absl::StatusOr<Canvas> Canvas::Create(int width, int height, Color background) {
  if (width < 1 || width > kMaxSide || height < 1 || height > kMaxSide) {
    return absl::InvalidArgumentError(
        absl::StrCat("image size ", width, "x", height,
                     " is out of range: width and height must be 1 to ",
                     kMaxSide, " pixels"));
  }
  return Canvas(width, height, background);
}

Canvas::Canvas(int width, int height, Color background)
    : width_(width),
      height_(height),
      clip_{0, 0, width, height},
      pixels_(static_cast<size_t>(width) * height * 3) {
  for (size_t i = 0; i < pixels_.size(); i += 3) {
    pixels_[i] = background.r;
    pixels_[i + 1] = background.g;
    pixels_[i + 2] = background.b;
  }
}

Color Canvas::At(int x, int y) const {
  CHECK(x >= 0 && x < width_ && y >= 0 && y < height_)
      << "pixel (" << x << ", " << y << ") is outside the " << width_ << "x"
      << height_ << " canvas";
  size_t i = (static_cast<size_t>(y) * width_ + x) * 3;
  return Color{pixels_[i], pixels_[i + 1], pixels_[i + 2]};
}

void Canvas::SetClip(const Rect& clip) { clip_ = clip.Intersect(bounds()); }

void Canvas::Set(int x, int y, Color c) {
  if (!clip_.Contains(x, y)) return;
  size_t i = (static_cast<size_t>(y) * width_ + x) * 3;
  pixels_[i] = c.r;
  pixels_[i + 1] = c.g;
  pixels_[i + 2] = c.b;
}

void Canvas::Blend(int x, int y, Color c, double alpha) {
  if (alpha <= 0 || !clip_.Contains(x, y)) return;
  if (alpha >= 1) {
    Set(x, y, c);
    return;
  }
  Set(x, y, Mix(At(x, y), c, alpha));
}

void Canvas::FillRect(const Rect& r, Color c) {
  Rect area = r.Intersect(clip_);
  for (int y = area.y; y < area.bottom(); ++y) {
    for (int x = area.x; x < area.right(); ++x) Set(x, y, c);
  }
}

void Canvas::StrokeRect(const Rect& r, Color c, int thickness) {
  if (r.empty() || thickness <= 0) return;
  int t = std::min({thickness, r.width, r.height});
  FillRect(Rect{r.x, r.y, r.width, t}, c);
  FillRect(Rect{r.x, r.bottom() - t, r.width, t}, c);
  FillRect(Rect{r.x, r.y, t, r.height}, c);
  FillRect(Rect{r.right() - t, r.y, t, r.height}, c);
}

void Canvas::DrawLine(double x0, double y0, double x1, double y1, Color c,
                      double thickness) {
  if (!std::isfinite(x0) || !std::isfinite(y0) || !std::isfinite(x1) ||
      !std::isfinite(y1)) {
    return;
  }
  double half = std::max(thickness, 1.0) / 2;
  // Coverage of a pixel is how far its centre lies inside the capsule of
  // radius `half` around the segment, within half a pixel of its edge.
  Rect box{static_cast<int>(std::floor(std::min(x0, x1) - half - 1)),
           static_cast<int>(std::floor(std::min(y0, y1) - half - 1)), 0, 0};
  box.width = static_cast<int>(std::ceil(std::max(x0, x1) + half + 1)) - box.x;
  box.height = static_cast<int>(std::ceil(std::max(y0, y1) + half + 1)) - box.y;
  box = box.Intersect(clip_);
  for (int y = box.y; y < box.bottom(); ++y) {
    for (int x = box.x; x < box.right(); ++x) {
      double d = SegmentDistance(x + 0.5, y + 0.5, {x0, y0}, {x1, y1});
      Blend(x, y, c, half + 0.5 - d);
    }
  }
}

void Canvas::FillCircle(double cx, double cy, double radius, Color c) {
  if (!std::isfinite(cx) || !std::isfinite(cy) || radius <= 0) return;
  DrawLine(cx, cy, cx, cy, c, 2 * radius);
}

void Canvas::DrawMarker(Marker marker, double cx, double cy, double size,
                        Color c) {
  if (!std::isfinite(cx) || !std::isfinite(cy) || size <= 0) return;
  double h = size / 2;
  // A convex polygon, clockwise on screen.
  std::array<Point, 4> polygon{};
  size_t corners = 0;
  switch (marker) {
    case Marker::kCircle:
      FillCircle(cx, cy, h, c);
      return;
    case Marker::kSquare:
      h *= 0.9;  // a square looks bigger than a circle of the same width
      polygon = {Point{cx - h, cy - h}, Point{cx + h, cy - h},
                 Point{cx + h, cy + h}, Point{cx - h, cy + h}};
      corners = 4;
      break;
    case Marker::kDiamond:
      h *= 1.2;
      polygon = {Point{cx, cy - h}, Point{cx + h, cy}, Point{cx, cy + h},
                 Point{cx - h, cy}};
      corners = 4;
      break;
    case Marker::kTriangle:
      h *= 1.2;
      polygon = {Point{cx, cy - h}, Point{cx + h, cy + h * 0.8},
                 Point{cx - h, cy + h * 0.8}, Point{}};
      corners = 3;
      break;
  }
  // Coverage: the signed distance of the pixel centre to the nearest edge
  // (positive inside), within half a pixel.
  double min_x = cx - 2 * h, max_x = cx + 2 * h;
  double min_y = cy - 2 * h, max_y = cy + 2 * h;
  Rect box{static_cast<int>(std::floor(min_x)),
           static_cast<int>(std::floor(min_y)), 0, 0};
  box.width = static_cast<int>(std::ceil(max_x)) - box.x + 1;
  box.height = static_cast<int>(std::ceil(max_y)) - box.y + 1;
  box = box.Intersect(clip_);
  for (int y = box.y; y < box.bottom(); ++y) {
    for (int x = box.x; x < box.right(); ++x) {
      double px = x + 0.5, py = y + 0.5;
      double inside = 1e9;
      for (size_t i = 0; i < corners; ++i) {
        Point a = polygon[i], b = polygon[(i + 1) % corners];
        double ex = b.x - a.x, ey = b.y - a.y;
        double len = std::sqrt(ex * ex + ey * ey);
        // Clockwise on screen (y down): the inside is to the right of a->b.
        double d = ((px - a.x) * ey - (py - a.y) * ex) / len;
        inside = std::min(inside, -d);
      }
      Blend(x, y, c, inside + 0.5);
    }
  }
}

}  // namespace sweepq::plot
