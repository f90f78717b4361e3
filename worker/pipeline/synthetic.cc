#include "worker/pipeline/synthetic.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"
#include "worker/pipeline/csv.h"

namespace sweepq::worker {
namespace {

namespace fs = std::filesystem;

constexpr int kImagesPerPerson = 7;
constexpr double kFemaleShare = 0.61;
constexpr double kBandShares[] = {0.46, 0.47, 0.07};
constexpr double kRepeatedIdShare = 0.04;
constexpr double kJpegExtensionShare = 0.1;

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

uint64_t MixSeed(uint64_t a, uint64_t b) {
  return SplitMix64(SplitMix64(a) ^ (b * 0xD1B54A32D192ED03ULL));
}

// A small deterministic generator: the standard distributions differ
// between standard libraries, and byte-equal output is the contract.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    state_ += 0x9E3779B97F4A7C15ULL;
    return SplitMix64(state_);
  }
  // In [0, 1).
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // In [lo, hi].
  int Int(int lo, int hi) {
    return lo + static_cast<int>(Next() % static_cast<uint64_t>(hi - lo + 1));
  }
  bool Chance(double p) { return Uniform() < p; }
  template <typename T, size_t N>
  const T& Pick(const std::array<T, N>& items) {
    return items[Next() % N];
  }

 private:
  uint64_t state_;
};

const char* GenderWord(int gender) {
  return gender == static_cast<int>(Gender::kFemale) ? "female" : "male";
}

int SampleAge(int band, Rng* rng) {
  switch (band) {
    case 0:
      return rng->Int(18, 29);
    case 1:
      // The real data has a bump in the late fifties (why teams move the
      // 60 bound to 58); keep some 56-59 year-olds.
      return rng->Chance(0.2) ? rng->Int(56, 59) : rng->Int(30, 59);
    default:
      return rng->Chance(0.7) ? 60 : rng->Int(61, 75);
  }
}

int SampleBand(Rng* rng) {
  const double u = rng->Uniform();
  if (u < kBandShares[0]) return 0;
  if (u < kBandShares[0] + kBandShares[1]) return 1;
  return 2;
}

std::string MakeFolder(const SyntheticPerson& p) {
  return absl::StrCat(p.id, "_", GenderWord(p.gender), "_", p.race, "_", p.age);
}

cv::Scalar Bgr(double b, double g, double r) { return cv::Scalar(b, g, r); }

cv::Scalar Scale(const cv::Scalar& c, double f) {
  return cv::Scalar(std::clamp(c[0] * f, 0.0, 255.0),
                    std::clamp(c[1] * f, 0.0, 255.0),
                    std::clamp(c[2] * f, 0.0, 255.0));
}

cv::Scalar Jitter(const cv::Scalar& c, double amount, Rng* rng) {
  return cv::Scalar(
      std::clamp(c[0] + rng->Uniform(-amount, amount), 0.0, 255.0),
      std::clamp(c[1] + rng->Uniform(-amount, amount), 0.0, 255.0),
      std::clamp(c[2] + rng->Uniform(-amount, amount), 0.0, 255.0));
}

// The person's fixed look, drawn from the person's seed. The gender and
// age cues are unambiguous (the data set is a test fixture that a small
// model must be able to learn) and large enough to survive a 48 x 64
// crop: gender = hair shape, age band = hair colour and texture plus
// forehead lines.
struct Look {
  cv::Scalar skin, hair, lips, clothes, eyes;
  // 30-59: light grey streaks through dark hair ("salt and pepper").
  bool streaks = false;
  cv::Scalar streak;
  bool long_hair = false;
  bool glasses = false;
  double face_ratio = 1.3;
  int brow_thickness = 3;
  int forehead_lines = 0;
  bool eye_lines = false;
  bool mouth_lines = false;
};

// Hair by age band: dark and warm below 30; dark with light grey streaks
// for 30-59; white or silver from 60. Lighting scales the whole picture
// by up to about 3x from one image to another, so the bands differ in
// what a gain cannot change: uniform dark vs striped vs uniform light
// (white stays lighter than dark hair under any two lightings).
void SetHair(int band, Rng* rng, Look* look) {
  static const std::array<cv::Scalar, 4> kDark = {
      Bgr(20, 24, 38), Bgr(28, 42, 68), Bgr(30, 50, 88), Bgr(24, 34, 80)};
  static const std::array<cv::Scalar, 3> kLight = {
      Bgr(228, 228, 230), Bgr(210, 210, 214), Bgr(240, 240, 242)};
  look->hair = Jitter(band == 2 ? rng->Pick(kLight) : rng->Pick(kDark), 6, rng);
  look->streaks = band == 1;
  look->streak = Jitter(Bgr(205, 205, 208), 8, rng);
}

Look MakeLook(const SyntheticPerson& person) {
  Rng rng(MixSeed(person.seed, 0x100C));
  const bool female = person.gender == static_cast<int>(Gender::kFemale);
  const int band = AgeBand(person.age, kDefaultAgeBounds);
  Look look;
  static const std::array<cv::Scalar, 5> kSkins = {
      Bgr(170, 200, 235), Bgr(140, 175, 220), Bgr(115, 150, 200),
      Bgr(90, 125, 175), Bgr(150, 185, 225)};
  look.skin = Jitter(rng.Pick(kSkins), 12, &rng);
  SetHair(band, &rng, &look);
  look.long_hair = female;
  look.glasses = rng.Chance(0.15);
  look.face_ratio = rng.Uniform(1.22, 1.38);
  look.brow_thickness = female ? rng.Int(2, 3) : rng.Int(4, 5);
  look.lips = female && rng.Chance(0.6) ? Jitter(Bgr(70, 60, 190), 15, &rng)
                                        : Scale(look.skin, 0.75);
  look.clothes =
      Bgr(rng.Uniform(20, 230), rng.Uniform(20, 230), rng.Uniform(20, 230));
  look.eyes = Jitter(Bgr(40, 45, 50), 15, &rng);
  // Forehead lines: none below 30, two for 30-59, three from 60 with lines
  // around the eyes and the mouth.
  look.forehead_lines = band == 0 ? 0 : (band == 1 ? 2 : 3);
  look.eye_lines = band == 2;
  look.mouth_lines = band == 2;
  return look;
}

// Draws the figure into a colour layer and its coverage (alpha), so the
// whole figure can be tilted before it is laid over the background.
class Layer {
 public:
  Layer(int width, int height)
      : color_(height, width, CV_8UC3, cv::Scalar::all(0)),
        alpha_(height, width, CV_8UC1, cv::Scalar(0)) {}

  void Ellipse(cv::Point2d center, cv::Size2d axes, double angle, double start,
               double end, const cv::Scalar& color) {
    const cv::Point c = ToPoint(center);
    const cv::Size a(static_cast<int>(std::lround(axes.width)),
                     static_cast<int>(std::lround(axes.height)));
    cv::ellipse(color_, c, a, angle, start, end, color, cv::FILLED,
                cv::LINE_AA);
    cv::ellipse(alpha_, c, a, angle, start, end, cv::Scalar(255), cv::FILLED,
                cv::LINE_AA);
  }
  // A filled ellipse (or sector) of hair: `color`, with vertical `streak`
  // strands every `spacing` pixels (from `phase`) when `streaks`, and a
  // darker edge along its curved outline.
  void Hair(cv::Point2d center, cv::Size2d axes, double start, double end,
            const cv::Scalar& color, bool streaks, const cv::Scalar& streak,
            double spacing, double phase) {
    Ellipse(center, axes, 0, start, end, color);
    const cv::Point c = ToPoint(center);
    const cv::Size a(static_cast<int>(std::lround(axes.width)),
                     static_cast<int>(std::lround(axes.height)));
    if (streaks) {
      const cv::Rect roi = cv::Rect(c.x - a.width, c.y - a.height,
                                    2 * a.width + 1, 2 * a.height + 1) &
                           cv::Rect(0, 0, color_.cols, color_.rows);
      if (!roi.empty()) {
        cv::Mat inside(roi.size(), CV_8UC1, cv::Scalar(0));
        cv::ellipse(inside, c - roi.tl(), a, 0, start, end, cv::Scalar(255),
                    cv::FILLED);
        cv::Mat strands(roi.size(), CV_8UC1, cv::Scalar(0));
        const int width = std::max(2, static_cast<int>(spacing * 0.4));
        for (double x = phase - spacing; x < roi.width + spacing;
             x += spacing) {
          const int x0 = static_cast<int>(std::lround(x));
          cv::line(strands, {x0, 0}, {x0 + width, roi.height}, cv::Scalar(255),
                   width);
        }
        cv::bitwise_and(strands, inside, strands);
        cv::Mat target = color_(roi);
        target.setTo(streak, strands);
      }
    }
    const int edge =
        std::max(2, static_cast<int>(std::lround(axes.width / 14)));
    cv::ellipse(color_, c, a, 0, start, end, Scale(color, 0.55), edge,
                cv::LINE_AA);
    cv::ellipse(alpha_, c, a, 0, start, end, cv::Scalar(255), edge,
                cv::LINE_AA);
  }
  void Poly(const std::vector<cv::Point2d>& points, const cv::Scalar& color) {
    std::vector<cv::Point> p;
    for (const cv::Point2d& q : points) p.push_back(ToPoint(q));
    cv::fillPoly(color_, std::vector<std::vector<cv::Point>>{p}, color,
                 cv::LINE_AA);
    cv::fillPoly(alpha_, std::vector<std::vector<cv::Point>>{p},
                 cv::Scalar(255), cv::LINE_AA);
  }
  // Draws on parts already covered (features on the face): no alpha.
  void Line(cv::Point2d a, cv::Point2d b, const cv::Scalar& color,
            int thickness) {
    cv::line(color_, ToPoint(a), ToPoint(b), color, thickness, cv::LINE_AA);
  }
  void Arc(cv::Point2d center, cv::Size2d axes, double start, double end,
           const cv::Scalar& color, int thickness) {
    cv::ellipse(color_, ToPoint(center),
                cv::Size(static_cast<int>(std::lround(axes.width)),
                         static_cast<int>(std::lround(axes.height))),
                0, start, end, color, thickness, cv::LINE_AA);
  }
  void Circle(cv::Point2d center, double radius, const cv::Scalar& color,
              int thickness) {
    cv::circle(color_, ToPoint(center), static_cast<int>(std::lround(radius)),
               color, thickness, cv::LINE_AA);
  }

  cv::Mat& color() { return color_; }
  cv::Mat& alpha() { return alpha_; }

 private:
  static cv::Point ToPoint(cv::Point2d p) {
    return cv::Point(static_cast<int>(std::lround(p.x)),
                     static_cast<int>(std::lround(p.y)));
  }
  cv::Mat color_;
  cv::Mat alpha_;
};

cv::Mat MakeBackground(Rng* rng) {
  cv::Mat bg(kSyntheticHeight, kSyntheticWidth, CV_8UC3);
  const cv::Scalar a =
      Bgr(rng->Uniform(30, 235), rng->Uniform(30, 235), rng->Uniform(30, 235));
  const cv::Scalar b = Jitter(a, 70, rng);
  const bool vertical = rng->Chance(0.5);
  for (int y = 0; y < bg.rows; ++y) {
    cv::Vec3b* row = bg.ptr<cv::Vec3b>(y);
    for (int x = 0; x < bg.cols; ++x) {
      const double t = vertical ? static_cast<double>(y) / bg.rows
                                : static_cast<double>(x) / bg.cols;
      for (int c = 0; c < 3; ++c) {
        row[x][c] = cv::saturate_cast<uchar>(a[c] * (1 - t) + b[c] * t);
      }
    }
  }
  // Clutter: door frames, shelves, posters.
  const int shapes = rng->Int(0, 5);
  for (int i = 0; i < shapes; ++i) {
    const cv::Point p(rng->Int(0, kSyntheticWidth),
                      rng->Int(0, kSyntheticHeight));
    const cv::Size s(rng->Int(20, 200), rng->Int(20, 260));
    const cv::Scalar color = Jitter(a, 90, rng);
    if (rng->Chance(0.6)) {
      cv::rectangle(bg, cv::Rect(p, s), color,
                    rng->Chance(0.5) ? cv::FILLED : rng->Int(2, 8));
    } else {
      cv::line(bg, p, p + cv::Point(s.width, s.height), color, rng->Int(2, 12));
    }
  }
  if (rng->Chance(0.7)) {
    const int k = 2 * rng->Int(1, 4) + 1;
    cv::GaussianBlur(bg, bg, cv::Size(k, k), 0);
  }
  return bg;
}

// The mask outline between `top` and `bottom` (y offsets as shares of the
// face half-height b), for a face at c with half-axes a, b.
std::vector<cv::Point2d> MaskOutline(cv::Point2d c, double a, double b,
                                     double top, double bottom) {
  const double yt = c.y + top * b;
  const double yb = c.y + bottom * b;
  const double ym = (yt + yb) / 2;
  return {{c.x - 0.86 * a, yt + 0.10 * b},
          {c.x - 0.30 * a, yt},
          {c.x, yt - 0.03 * b},
          {c.x + 0.30 * a, yt},
          {c.x + 0.86 * a, yt + 0.10 * b},
          {c.x + 0.95 * a, ym},
          {c.x + 0.55 * a, yb},
          {c.x, yb + 0.05 * b},
          {c.x - 0.55 * a, yb},
          {c.x - 0.95 * a, ym}};
}

cv::Rect TransformedBox(const std::vector<cv::Point2d>& points,
                        const cv::Mat& affine) {
  std::vector<cv::Point2f> moved;
  for (const cv::Point2d& p : points) {
    const double x = affine.at<double>(0, 0) * p.x +
                     affine.at<double>(0, 1) * p.y + affine.at<double>(0, 2);
    const double y = affine.at<double>(1, 0) * p.x +
                     affine.at<double>(1, 1) * p.y + affine.at<double>(1, 2);
    moved.emplace_back(static_cast<float>(x), static_cast<float>(y));
  }
  return cv::boundingRect(moved) &
         cv::Rect(0, 0, kSyntheticWidth, kSyntheticHeight);
}

std::vector<cv::Point2d> BoxCorners(double x0, double y0, double x1,
                                    double y1) {
  return {{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}};
}

}  // namespace

SyntheticCues SyntheticPersonCues(const SyntheticPerson& person) {
  const Look look = MakeLook(person);
  SyntheticCues cues;
  cues.long_hair = look.long_hair;
  cues.hair = look.hair;
  cues.streaks = look.streaks;
  cues.streak = look.streak;
  cues.forehead_lines = look.forehead_lines;
  cues.eye_and_mouth_lines = look.eye_lines && look.mouth_lines;
  return cues;
}

std::vector<SyntheticPerson> SampleSyntheticPeople(int count, uint64_t seed) {
  Rng rng(MixSeed(seed, 0x9E09));
  std::vector<SyntheticPerson> people;
  std::set<std::string> folders;
  int next_id = 1;
  std::vector<int> bands;
  for (int i = 0; i < count; ++i) {
    SyntheticPerson p;
    p.gender = static_cast<int>(rng.Chance(kFemaleShare) ? Gender::kFemale
                                                         : Gender::kMale);
    bands.push_back(SampleBand(&rng));
    p.age = SampleAge(bands.back(), &rng);
    p.extension = rng.Chance(kJpegExtensionShare) ? ".jpeg" : ".jpg";
    p.seed = MixSeed(seed, 0x5EED0000ULL + static_cast<uint64_t>(i));
    const bool repeat = !people.empty() && rng.Chance(kRepeatedIdShare);
    const std::string repeated_id =
        repeat ? people[rng.Next() % people.size()].id : "";
    next_id += rng.Int(1, 3);
    p.id = absl::StrFormat("%06d", next_id);
    if (repeat) p.id = repeated_id;
    people.push_back(std::move(p));
  }
  // Give every gender x band pair at least one person, taking people from
  // the most common pair (the last one of it, for determinism).
  if (count >= kNumGenders * 3) {
    for (int g = 0; g < kNumGenders; ++g) {
      for (int band = 0; band < 3; ++band) {
        std::map<std::pair<int, int>, std::vector<int>> by_pair;
        for (int i = 0; i < count; ++i) {
          by_pair[{people[i].gender, bands[i]}].push_back(i);
        }
        if (by_pair.count({g, band})) continue;
        const auto biggest = std::max_element(
            by_pair.begin(), by_pair.end(), [](const auto& x, const auto& y) {
              return x.second.size() < y.second.size();
            });
        const int i = biggest->second.back();
        people[i].gender = g;
        bands[i] = band;
        people[i].age = SampleAge(band, &rng);
      }
    }
  }
  for (SyntheticPerson& p : people) {
    p.folder = MakeFolder(p);
    // A repeated id with the same gender and age would repeat the folder;
    // the real data never does, so give that person a fresh id.
    while (!folders.insert(p.folder).second) {
      next_id += 1;
      p.id = absl::StrFormat("%06d", next_id);
      p.folder = MakeFolder(p);
    }
  }
  return people;
}

cv::Mat RenderSyntheticImage(const SyntheticPerson& person, MaskState mask,
                             uint64_t image_seed, SyntheticRegions* regions) {
  const Look look = MakeLook(person);
  Rng rng(MixSeed(image_seed, 0x1A6E));
  cv::Mat background = MakeBackground(&rng);

  // Pose: position, scale and tilt vary per image.
  const double a = rng.Uniform(58, 92);
  const double b = a * look.face_ratio;
  const cv::Point2d c(kSyntheticWidth / 2.0 + rng.Uniform(-45, 45),
                      215 + rng.Uniform(-45, 40));
  const double tilt = rng.Uniform(-12, 12);
  const bool long_hair = look.long_hair;

  Layer layer(kSyntheticWidth, kSyntheticHeight);
  const cv::Scalar hair = Jitter(look.hair, 4, &rng);
  const cv::Scalar skin_shadow = Scale(look.skin, 0.85);
  // Hair behind the head: long hair falls past the jaw to the shoulders,
  // short hair is a cap that ends above the ears.
  const double spacing = 0.2 * a;
  const double phase = rng.Uniform(0, spacing);
  auto draw_hair = [&](cv::Point2d center, cv::Size2d axes, double start,
                       double end) {
    layer.Hair(center, axes, start, end, hair, look.streaks, look.streak,
               spacing, phase);
  };
  if (long_hair) {
    draw_hair({c.x, c.y + 0.35 * b}, {1.4 * a, 1.32 * b}, 0, 360);
  } else {
    draw_hair({c.x, c.y - 0.22 * b}, {1.07 * a, 0.88 * b}, 0, 360);
  }
  // Shoulders and neck in front of the long hair.
  layer.Ellipse({c.x, c.y + b + 1.6 * a}, {2.3 * a, 1.5 * a}, 0, 0, 360,
                look.clothes);
  layer.Poly(BoxCorners(c.x - 0.42 * a, c.y + 0.5 * b, c.x + 0.42 * a,
                        c.y + b + 0.6 * a),
             skin_shadow);
  // Ears, then the face.
  layer.Ellipse({c.x - 0.98 * a, c.y}, {0.16 * a, 0.28 * b}, 0, 0, 360,
                skin_shadow);
  layer.Ellipse({c.x + 0.98 * a, c.y}, {0.16 * a, 0.28 * b}, 0, 0, 360,
                skin_shadow);
  layer.Ellipse(c, {a, b}, 0, 0, 360, look.skin);
  // Hair on top (fringe) leaving a forehead, and, for long hair, locks
  // over the ears framing the face down to the jaw.
  draw_hair({c.x, c.y - 0.62 * b}, {1.0 * a, 0.45 * b}, 180, 360);
  if (long_hair) {
    // The locks fall in front of the shoulders, so the shape shows against
    // the clothes whatever the background.
    for (int side : {-1, 1}) {
      draw_hair({c.x + side * 0.95 * a, c.y + 0.4 * b}, {0.25 * a, 1.05 * b}, 0,
                360);
    }
  }
  // Brows, eyes, nose, mouth; age lines thick enough to survive a 48 x 64
  // crop (about 1 pixel there).
  const cv::Scalar line_color = Scale(look.skin, 0.55);
  const int line_thickness =
      std::max(2, static_cast<int>(std::lround(0.04 * b)));
  for (int side : {-1, 1}) {
    layer.Line({c.x + side * 0.15 * a, c.y - 0.3 * b},
               {c.x + side * 0.62 * a, c.y - 0.33 * b}, Scale(hair, 0.6),
               look.brow_thickness);
    const cv::Point2d eye(c.x + side * 0.38 * a, c.y - 0.15 * b);
    layer.Ellipse(eye, {0.17 * a, 0.08 * b}, 0, 0, 360, Bgr(235, 240, 240));
    layer.Circle(eye, 0.07 * a, look.eyes, cv::FILLED);
    if (look.eye_lines) {
      for (int k = 0; k < 2; ++k) {
        layer.Line({c.x + side * 0.58 * a, c.y - 0.13 * b + k * 0.07 * b},
                   {c.x + side * 0.74 * a, c.y - 0.17 * b + k * 0.12 * b},
                   line_color, line_thickness);
      }
      layer.Arc({eye.x, eye.y + 0.1 * b}, {0.15 * a, 0.05 * b}, 20, 160,
                line_color, line_thickness);
    }
    if (look.glasses) {
      layer.Circle(eye, 0.26 * a, Bgr(30, 30, 30), 2);
    }
  }
  if (look.glasses) {
    layer.Line({c.x - 0.12 * a, c.y - 0.15 * b},
               {c.x + 0.12 * a, c.y - 0.15 * b}, Bgr(30, 30, 30), 2);
  }
  // Forehead lines between the brows (0.33 b above the centre) and the
  // fringe (0.62 b above it).
  for (int k = 0; k < look.forehead_lines; ++k) {
    const double y = c.y - 0.42 * b - k * 0.075 * b;
    layer.Arc({c.x, y + 0.25 * a}, {0.48 * a, 0.25 * a}, 215, 325, line_color,
              line_thickness);
  }
  // A shaded nose with dark nostrils: what shows above an incorrectly
  // worn mask, drawn large enough to survive a 48 x 64 crop.
  layer.Poly({{c.x, c.y - 0.1 * b},
              {c.x - 0.16 * a, c.y + 0.23 * b},
              {c.x + 0.16 * a, c.y + 0.23 * b}},
             Scale(look.skin, 0.72));
  for (int side : {-1, 1}) {
    layer.Ellipse({c.x + side * 0.07 * a, c.y + 0.21 * b},
                  {0.055 * a, 0.035 * b}, 0, 0, 360, Scale(look.skin, 0.35));
  }
  layer.Ellipse({c.x, c.y + 0.45 * b}, {0.3 * a, 0.07 * b}, 0, 0, 360,
                look.lips);
  if (look.mouth_lines) {
    for (int side : {-1, 1}) {
      layer.Line({c.x + side * 0.2 * a, c.y + 0.2 * b},
                 {c.x + side * 0.38 * a, c.y + 0.5 * b}, line_color,
                 line_thickness);
    }
  }

  // The mask: each of mask1..mask5 and incorrect_mask gets its own look.
  std::vector<cv::Point2d> outline;
  if (mask != MaskState::kNormal) {
    double top = 0.02;
    if (mask == MaskState::kIncorrect) top = rng.Chance(0.25) ? 0.58 : 0.33;
    outline = MaskOutline(c, a, b, top, 0.92);
    // White, light blue, black, grey, pink, navy and mint: none of them a
    // skin tone, so a worn mask never passes for a bare face.
    static const std::array<cv::Scalar, 7> kMasks = {
        Bgr(245, 245, 245), Bgr(230, 200, 150), Bgr(35, 35, 35),
        Bgr(160, 160, 160), Bgr(200, 170, 240), Bgr(120, 90, 40),
        Bgr(190, 225, 150)};
    const cv::Scalar color = Jitter(rng.Pick(kMasks), 12, &rng);
    const cv::Scalar seam = Scale(color, color[0] > 100 ? 0.8 : 1.6);
    // Ear loops first, then the mask over them.
    for (int side : {-1, 1}) {
      layer.Line(outline[side < 0 ? 0 : 4], {c.x + side * 1.0 * a, c.y}, seam,
                 2);
      layer.Line(outline[side < 0 ? 9 : 5], {c.x + side * 1.0 * a, c.y}, seam,
                 2);
    }
    layer.Poly(outline, color);
    const double yt = c.y + top * b;
    const double yb = c.y + 0.92 * b;
    const int pleats = rng.Int(0, 3);
    for (int k = 1; k <= pleats; ++k) {
      const double y = yt + (yb - yt) * k / (pleats + 1);
      layer.Line({c.x - 0.75 * a, y}, {c.x + 0.75 * a, y}, seam, 1);
    }
    if (rng.Chance(0.2)) {  // A printed pattern.
      for (int k = 0; k < 12; ++k) {
        layer.Circle({c.x + rng.Uniform(-0.6, 0.6) * a,
                      yt + rng.Uniform(0.15, 0.85) * (yb - yt)},
                     0.05 * a, seam, cv::FILLED);
      }
    }
  }

  // Tilt the figure about the face centre, then lay it over the background.
  const cv::Mat affine = cv::getRotationMatrix2D(c, tilt, 1.0);
  cv::Mat color, alpha;
  cv::warpAffine(layer.color(), color, affine, background.size(),
                 cv::INTER_LINEAR, cv::BORDER_CONSTANT);
  cv::warpAffine(layer.alpha(), alpha, affine, background.size(),
                 cv::INTER_LINEAR, cv::BORDER_CONSTANT);

  // Lighting: a gain with a linear falloff in a random direction.
  const double gain = rng.Uniform(0.65, 1.25);
  const double slope = rng.Uniform(0.0, 0.45);
  const double direction = rng.Uniform(0, 2 * M_PI);
  const double dx = std::cos(direction) * slope / kSyntheticWidth;
  const double dy = std::sin(direction) * slope / kSyntheticHeight;
  cv::Mat image(background.size(), CV_8UC3);
  for (int y = 0; y < image.rows; ++y) {
    const cv::Vec3b* bg = background.ptr<cv::Vec3b>(y);
    const cv::Vec3b* fg = color.ptr<cv::Vec3b>(y);
    const uchar* al = alpha.ptr<uchar>(y);
    cv::Vec3b* out = image.ptr<cv::Vec3b>(y);
    for (int x = 0; x < image.cols; ++x) {
      const double light = gain * (1 + (x - kSyntheticWidth / 2.0) * dx * 2 +
                                   (y - kSyntheticHeight / 2.0) * dy * 2);
      const double w = al[x] / 255.0;
      for (int k = 0; k < 3; ++k) {
        out[x][k] = cv::saturate_cast<uchar>(
            (bg[x][k] * (1 - w) + fg[x][k] * w) * light);
      }
    }
  }
  // Sensor noise and, sometimes, a little defocus.
  cv::Mat noise(image.size(), CV_16SC3);
  cv::RNG cv_rng(rng.Next());
  cv_rng.fill(noise, cv::RNG::NORMAL, 0, rng.Uniform(2, 10));
  cv::Mat noisy;
  image.convertTo(noisy, CV_16SC3);
  noisy += noise;
  noisy.convertTo(image, CV_8UC3);
  if (rng.Chance(0.4)) {
    cv::GaussianBlur(image, image, cv::Size(3, 3), rng.Uniform(0.5, 1.2));
  }

  if (regions != nullptr) {
    const double hair_top = 1.1;
    const double side = long_hair ? 1.4 : 1.14;
    regions->face = TransformedBox(
        BoxCorners(c.x - side * a, c.y - hair_top * b, c.x + side * a, c.y + b),
        affine);
    regions->mask =
        outline.empty() ? cv::Rect() : TransformedBox(outline, affine);
    regions->lower_face =
        TransformedBox(BoxCorners(c.x - 0.95 * a, c.y - 0.1 * b, c.x + 0.95 * a,
                                  c.y + 0.97 * b),
                       affine);
  }
  return image;
}

namespace {

struct Job {
  const SyntheticPerson* person;
  MaskState mask;
  uint64_t seed;
  // Absolute output path.
  std::string file;
  SyntheticImage* record;
};

absl::Status WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) {
    return absl::InternalError(
        absl::StrCat(path, ": cannot create: ", std::strerror(errno)));
  }
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  out.close();
  if (!out) {
    return absl::InternalError(absl::StrCat(path, ": write failed"));
  }
  return absl::OkStatus();
}

absl::Status RunJob(const Job& job, int jpeg_quality) {
  try {
    cv::Mat image = RenderSyntheticImage(*job.person, job.mask, job.seed,
                                         &job.record->regions);
    std::vector<uchar> bytes;
    if (!cv::imencode(".jpg", image, bytes,
                      {cv::IMWRITE_JPEG_QUALITY, jpeg_quality})) {
      return absl::InternalError(
          absl::StrCat(job.file, ": JPEG encoding failed"));
    }
    return WriteFile(job.file, std::string(bytes.begin(), bytes.end()));
  } catch (const cv::Exception& e) {
    return absl::InternalError(absl::StrCat(job.file, ": ", e.what()));
  }
}

absl::Status RunJobs(const std::vector<Job>& jobs,
                     const SyntheticOptions& options) {
  const int threads = std::max(1, std::min<int>(options.threads, jobs.size()));
  std::vector<absl::Status> results(threads);
  auto work = [&](int t) {
    for (size_t i = t; i < jobs.size(); i += threads) {
      absl::Status s = RunJob(jobs[i], options.jpeg_quality);
      if (!s.ok()) {
        results[t] = s;
        return;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (std::thread& t : pool) t.join();
  for (const absl::Status& s : results) RETURN_IF_ERROR(s);
  return absl::OkStatus();
}

const char* kStems[kImagesPerPerson] = {
    "mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal"};

MaskState StemState(int k) {
  return k < 5 ? MaskState::kWear
               : (k == 5 ? MaskState::kIncorrect : MaskState::kNormal);
}

SyntheticImage MakeRecord(const SyntheticPerson& p, MaskState mask) {
  SyntheticImage r;
  r.person = p.folder;
  r.mask = static_cast<int>(mask);
  r.gender = p.gender;
  r.age = p.age;
  r.label =
      MaskClassIndex(r.mask, p.gender, AgeBand(p.age, kDefaultAgeBounds), 3);
  return r;
}

std::string BoxFields(const cv::Rect& r) {
  return absl::StrCat(r.x, ",", r.y, ",", r.width, ",", r.height);
}

absl::Status MakeDirectories(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat(dir.string(), ": cannot create: ", ec.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<SyntheticManifest> WriteDataset(
    const SyntheticOptions& options) {
  const fs::path out(options.out_dir);
  for (const char* part : {"train", "eval"}) {
    std::error_code ec;
    if (fs::exists(out / part, ec)) {
      return absl::InvalidArgumentError(
          absl::StrCat((out / part).string(),
                       " already exists; remove it or choose another --out"));
    }
  }
  SyntheticManifest manifest;
  manifest.people = SampleSyntheticPeople(options.people, options.seed);
  const int eval_images =
      options.eval_images < 0 ? options.people : options.eval_images;
  const int eval_people =
      (eval_images + kImagesPerPerson - 1) / kImagesPerPerson;
  std::vector<SyntheticPerson> eval_people_list =
      SampleSyntheticPeople(eval_people, MixSeed(options.seed, 0xE7A1));

  RETURN_IF_ERROR(MakeDirectories(out / "train" / "images"));
  RETURN_IF_ERROR(MakeDirectories(out / "eval" / "images"));

  // Records first (their addresses stay fixed), then jobs pointing at them.
  for (const SyntheticPerson& p : manifest.people) {
    RETURN_IF_ERROR(MakeDirectories(out / "train" / "images" / p.folder));
    for (int k = 0; k < kImagesPerPerson; ++k) {
      SyntheticImage r = MakeRecord(p, StemState(k));
      r.path =
          absl::StrCat("train/images/", p.folder, "/", kStems[k], p.extension);
      manifest.train.push_back(std::move(r));
    }
  }
  Rng eval_rng(MixSeed(options.seed, 0xE7A2));
  std::vector<std::pair<const SyntheticPerson*, int>> eval_slots;
  for (const SyntheticPerson& p : eval_people_list) {
    for (int k = 0; k < kImagesPerPerson; ++k) eval_slots.emplace_back(&p, k);
  }
  eval_slots.resize(eval_images);
  // Shuffled so that info.csv does not list a person's images together.
  for (size_t i = eval_slots.size(); i > 1; --i) {
    std::swap(eval_slots[i - 1], eval_slots[eval_rng.Next() % i]);
  }
  std::set<std::string> ids;
  for (const auto& [p, k] : eval_slots) {
    SyntheticImage r = MakeRecord(*p, StemState(k));
    do {
      r.image_id = absl::StrFormat("%016x%016x%08x.jpg", eval_rng.Next(),
                                   eval_rng.Next(),
                                   static_cast<uint32_t>(eval_rng.Next()));
    } while (!ids.insert(r.image_id).second);
    r.path = absl::StrCat("eval/images/", r.image_id);
    manifest.eval.push_back(std::move(r));
  }

  std::vector<Job> jobs;
  for (size_t i = 0; i < manifest.train.size(); ++i) {
    const SyntheticPerson& p = manifest.people[i / kImagesPerPerson];
    jobs.push_back(Job{&p, static_cast<MaskState>(manifest.train[i].mask),
                       MixSeed(p.seed, i % kImagesPerPerson),
                       (out / manifest.train[i].path).string(),
                       &manifest.train[i]});
  }
  for (size_t i = 0; i < manifest.eval.size(); ++i) {
    const auto& [p, k] = eval_slots[i];
    jobs.push_back(Job{p, StemState(k), MixSeed(p->seed, k),
                       (out / manifest.eval[i].path).string(),
                       &manifest.eval[i]});
  }
  RETURN_IF_ERROR(RunJobs(jobs, options));

  std::string train_csv = "id,gender,race,age,path\n";
  for (const SyntheticPerson& p : manifest.people) {
    absl::StrAppend(&train_csv, p.id, ",", GenderWord(p.gender), ",", p.race,
                    ",", p.age, ",", CsvEscape(p.folder), "\n");
  }
  std::string info = "ImageID,ans\n";
  std::string answers = "ImageID,ans\n";
  for (const SyntheticImage& r : manifest.eval) {
    absl::StrAppend(&info, r.image_id, ",0\n");
    absl::StrAppend(&answers, r.image_id, ",", r.label, "\n");
  }
  std::string regions =
      "path,mask,face_x,face_y,face_w,face_h,mask_x,mask_y,mask_w,mask_h,"
      "lower_face_x,lower_face_y,lower_face_w,lower_face_h\n";
  for (const auto* list : {&manifest.train, &manifest.eval}) {
    for (const SyntheticImage& r : *list) {
      absl::StrAppend(&regions, CsvEscape(r.path), ",", r.mask, ",",
                      BoxFields(r.regions.face), ",", BoxFields(r.regions.mask),
                      ",", BoxFields(r.regions.lower_face), "\n");
    }
  }
  RETURN_IF_ERROR(WriteFile((out / "train" / "train.csv").string(), train_csv));
  RETURN_IF_ERROR(WriteFile((out / "eval" / "info.csv").string(), info));
  RETURN_IF_ERROR(WriteFile((out / "eval" / "answers.csv").string(), answers));
  RETURN_IF_ERROR(WriteFile((out / "synthetic_regions.csv").string(), regions));
  return manifest;
}

}  // namespace

absl::StatusOr<SyntheticManifest> WriteSyntheticMaskDataset(
    const SyntheticOptions& options) {
  if (options.out_dir.empty()) {
    return absl::InvalidArgumentError("output directory is empty");
  }
  if (options.people < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("people must be >= 1, got ", options.people));
  }
  if (options.threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("threads must be >= 1, got ", options.threads));
  }
  if (options.jpeg_quality < 1 || options.jpeg_quality > 100) {
    return absl::InvalidArgumentError(absl::StrCat(
        "jpeg_quality must be in [1, 100], got ", options.jpeg_quality));
  }
  try {
    return WriteDataset(options);
  } catch (const fs::filesystem_error& e) {
    return absl::InternalError(
        absl::StrCat(e.path1().string(), ": ", e.code().message()));
  }
}

}  // namespace sweepq::worker
