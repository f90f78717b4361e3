// Tests of common/plot/: canvas primitives, the bitmap font, ticks, the
// PNG encoder (checked with an independent decoder, Debian's python3-pil,
// as well as structurally) and the three charts.
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/crypto.h"
#include "common/plot/bar_chart.h"
#include "common/plot/canvas.h"
#include "common/plot/font.h"
#include "common/plot/heat_map.h"
#include "common/plot/line_chart.h"
#include "common/plot/png.h"
#include "common/plot/style.h"
#include "common/plot/ticks.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace sweepq::plot {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr Color kRed{255, 0, 0};
constexpr Color kBlue{0, 0, 255};

Canvas Blank(int w, int h) { return Canvas::Create(w, h).value(); }

int CountColor(const Canvas& c, Color color,
               Rect area = Rect{0, 0, 1 << 20, 1 << 20}) {
  area = area.Intersect(c.bounds());
  int n = 0;
  for (int y = area.y; y < area.bottom(); ++y) {
    for (int x = area.x; x < area.right(); ++x) n += c.At(x, y) == color;
  }
  return n;
}

// The bounding box of the pixels of `color` (empty if none).
Rect BoxOf(const Canvas& c, Color color) {
  int x0 = c.width(), y0 = c.height(), x1 = -1, y1 = -1;
  for (int y = 0; y < c.height(); ++y) {
    for (int x = 0; x < c.width(); ++x) {
      if (c.At(x, y) != color) continue;
      x0 = std::min(x0, x);
      y0 = std::min(y0, y);
      x1 = std::max(x1, x);
      y1 = std::max(y1, y);
    }
  }
  if (x1 < 0) return Rect{};
  return Rect{x0, y0, x1 - x0 + 1, y1 - y0 + 1};
}

// ---- Canvas ----

TEST(CanvasTest, CreateRejectsBadSizesNamingThem) {
  auto zero = Canvas::Create(0, 10);
  ASSERT_FALSE(zero.ok());
  EXPECT_THAT(zero.status().message(), HasSubstr("0x10"));
  EXPECT_FALSE(Canvas::Create(10, Canvas::kMaxSide + 1).ok());
  auto ok = Canvas::Create(3, 2, kRed);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->pixels().size(), 3u * 2u * 3u);
  EXPECT_EQ(ok->At(2, 1), kRed);
}

TEST(CanvasTest, FillRectIsClippedToCanvasAndClip) {
  Canvas c = Blank(10, 10);
  c.FillRect(Rect{-5, -5, 8, 8}, kRed);  // covers 0..2 x 0..2
  EXPECT_EQ(CountColor(c, kRed), 9);
  EXPECT_EQ(c.At(2, 2), kRed);
  EXPECT_EQ(c.At(3, 3), kWhite);
  c.SetClip(Rect{5, 5, 2, 2});
  c.FillRect(Rect{0, 0, 10, 10}, kBlue);
  EXPECT_EQ(CountColor(c, kBlue), 4);
  c.ResetClip();
  c.Set(9, 9, kBlue);
  EXPECT_EQ(c.At(9, 9), kBlue);
}

TEST(CanvasTest, ThickLineCoversItsWidthAndNothingBeyond) {
  Canvas c = Blank(40, 40);
  // Horizontal through pixel centres of row 20, 5 pixels thick: rows 18-22.
  c.DrawLine(5.5, 20.5, 34.5, 20.5, kRed, 5);
  for (int y = 18; y <= 22; ++y) EXPECT_EQ(c.At(20, y), kRed) << y;
  EXPECT_EQ(c.At(20, 16), kWhite);
  EXPECT_EQ(c.At(20, 24), kWhite);
  // Round ends: reaches 2.5 px beyond the end point, not more.
  EXPECT_EQ(c.At(36, 20), kRed);
  EXPECT_EQ(c.At(38, 20), kWhite);
}

TEST(CanvasTest, LineEdgesAreAntiAliased) {
  Canvas c = Blank(20, 20);
  // Along a pixel boundary: rows 9 and 10 are each half covered.
  c.DrawLine(2, 10, 18, 10, kBlack, 1);
  Color half = c.At(10, 9);
  EXPECT_GT(half.r, 50);
  EXPECT_LT(half.r, 205);
  EXPECT_EQ(c.At(10, 9), c.At(10, 10));
}

TEST(CanvasTest, CircleAndMarkersCoverTheirCentreOnly) {
  Canvas c = Blank(60, 20);
  c.FillCircle(10.5, 10.5, 4, kRed);
  EXPECT_EQ(c.At(10, 10), kRed);
  EXPECT_EQ(c.At(10, 13), kRed);
  EXPECT_EQ(c.At(10, 16), kWhite);
  int x = 20;
  for (Marker m : {Marker::kSquare, Marker::kDiamond, Marker::kTriangle}) {
    c.DrawMarker(m, x + 0.5, 10.5, 8, kBlue);
    EXPECT_EQ(c.At(x, 10), kBlue);
    EXPECT_EQ(c.At(x, 2), kWhite);
    EXPECT_EQ(c.At(x + 8, 10), kWhite);
    x += 12;
  }
}

TEST(CanvasTest, MixAndLuminance) {
  EXPECT_EQ(Mix(kBlack, kWhite, 0.5), (Color{128, 128, 128}));
  EXPECT_EQ(Mix(kBlack, kWhite, 7), kWhite);
  EXPECT_LT(Luminance(kBlue), 0.1);
  EXPECT_DOUBLE_EQ(Luminance(kWhite), 1.0);
}

// ---- Font ----

std::vector<bool> GlyphBits(char ch) {
  std::vector<bool> bits;
  for (int y = 0; y < kGlyphHeight; ++y) {
    for (int x = 0; x < kGlyphWidth; ++x) bits.push_back(GlyphPixel(ch, x, y));
  }
  return bits;
}

TEST(FontTest, EveryPrintableCharacterHasItsOwnGlyph) {
  std::map<std::vector<bool>, char> seen;
  for (int code = 33; code <= 126; ++code) {
    char ch = static_cast<char>(code);
    std::vector<bool> bits = GlyphBits(ch);
    EXPECT_NE(std::count(bits.begin(), bits.end(), true), 0) << ch;
    auto [it, inserted] = seen.emplace(bits, ch);
    EXPECT_TRUE(inserted) << ch << " looks like " << it->second;
  }
  std::vector<bool> space = GlyphBits(' ');
  EXPECT_EQ(std::count(space.begin(), space.end(), true), 0);
}

TEST(FontTest, OnlyDescendersUseTheRowsBelowTheBaseline) {
  const std::string descenders = "gjpqy,;_";
  for (int code = 32; code <= 126; ++code) {
    char ch = static_cast<char>(code);
    bool below = false;
    for (int x = 0; x < kGlyphWidth; ++x) {
      below = below || GlyphPixel(ch, x, 7) || GlyphPixel(ch, x, 8);
    }
    bool expected = descenders.find(ch) != std::string::npos || ch == '|';
    EXPECT_EQ(below, expected) << ch;
  }
}

TEST(FontTest, UnknownCharactersAreABox) {
  EXPECT_TRUE(GlyphPixel('\x01', 0, 0));
  EXPECT_TRUE(GlyphPixel('\xc3', 4, 6));
  EXPECT_FALSE(GlyphPixel('\xc3', 2, 3));
  EXPECT_FALSE(GlyphPixel('A', 5, 0));  // outside the cell
}

TEST(FontTest, TextMetrics) {
  EXPECT_EQ(TextWidth("", 3), 0);
  EXPECT_EQ(TextWidth("a", 1), 5);
  EXPECT_EQ(TextWidth("abc", 2), (3 * 6 - 1) * 2);
  EXPECT_EQ(TextHeight(2), 18);
}

TEST(FontTest, ScaledTextIsTheGlyphBlownUp) {
  Canvas c = Blank(40, 40);
  DrawText(c, 3, 4, "R", kBlack, 3);
  for (int y = 0; y < kGlyphHeight; ++y) {
    for (int x = 0; x < kGlyphWidth; ++x) {
      Color want = GlyphPixel('R', x, y) ? kBlack : kWhite;
      for (int d = 0; d < 9; ++d) {
        EXPECT_EQ(c.At(3 + x * 3 + d % 3, 4 + y * 3 + d / 3), want);
      }
    }
  }
  EXPECT_EQ(BoxOf(c, kBlack).x, 3);
  EXPECT_LE(BoxOf(c, kBlack).right(), 3 + TextWidth("R", 3));
}

TEST(FontTest, UpwardTextIsAQuarterTurnOfTheText) {
  const std::string text = "Ag/9";
  const int w = TextWidth(text, 1), h = TextHeight(1);
  Canvas flat = Blank(w, h);
  DrawText(flat, 0, 0, text, kBlack, 1);
  Canvas up = Blank(h, w);
  DrawTextUp(up, 0, w, text, kBlack, 1);
  for (int v = 0; v < h; ++v) {
    for (int u = 0; u < w; ++u) {
      // Along the text (u) goes up; down the glyph (v) goes right.
      EXPECT_EQ(flat.At(u, v), up.At(v, w - 1 - u)) << u << "," << v;
    }
  }
}

TEST(FontTest, FitTextCutsTheMiddle) {
  EXPECT_EQ(FitText("short", 100, 1), "short");
  std::string cut =
      FitText("incorrect/female/>=60", TextWidth("0123456789", 1), 1);
  EXPECT_EQ(cut, "inco..>=60");
  EXPECT_LE(TextWidth(cut, 1), TextWidth("0123456789", 1));
  EXPECT_EQ(FitText("abcdef", 0, 1), "");
}

TEST(FontTest, WrapTextBreaksAfterSlashesAndAtSpaces) {
  EXPECT_THAT(WrapText("incorrect/female/>=60", TextWidth("incorrect/", 1), 1),
              ElementsAre("incorrect/", "female/", ">=60"));
  EXPECT_THAT(WrapText("wear/male/<30", 1000, 1), ElementsAre("wear/male/<30"));
  EXPECT_THAT(WrapText("true class", TextWidth("class", 1), 1),
              ElementsAre("true", "class"));
  EXPECT_THAT(WrapText("", 10, 1), ElementsAre(""));
}

// ---- Ticks ----

bool IsNiceStep(double step) {
  double mantissa = step / std::pow(10.0, std::floor(std::log10(step)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (std::abs(mantissa - m) < 1e-9) return true;
  }
  return false;
}

TEST(TicksTest, NiceNumbers) {
  EXPECT_DOUBLE_EQ(NiceNumber(0.13, true), 0.1);
  EXPECT_DOUBLE_EQ(NiceNumber(0.13, false), 0.2);
  EXPECT_DOUBLE_EQ(NiceNumber(3.4, true), 5);
  EXPECT_DOUBLE_EQ(NiceNumber(7.5, true), 10);
  EXPECT_DOUBLE_EQ(NiceNumber(420, false), 500);
}

TEST(TicksTest, UnitRangeGetsTenthsOrFifths) {
  Ticks t = NiceTicks(0, 1, 6);
  EXPECT_DOUBLE_EQ(t.step, 0.2);
  ASSERT_EQ(t.values.size(), 6u);
  EXPECT_DOUBLE_EQ(t.values[3], 0.6);
  EXPECT_EQ(FormatTick(t.values[3], t), "0.6");
  EXPECT_EQ(t.decimals, 1);
}

TEST(TicksTest, TicksCoverTheDataWithLittleWaste) {
  const std::vector<std::pair<double, double>> ranges = {
      {0.56, 0.8}, {0.03, 1.43}, {-3, 17},
      {1, 12},     {1e-3, 4e-3}, {12000, 98000}};
  for (auto [lo, hi] : ranges) {
    Ticks t = NiceTicks(lo, hi, 5);
    EXPECT_LE(t.min, lo) << lo;
    EXPECT_GE(t.max, hi) << hi;
    EXPECT_TRUE(IsNiceStep(t.step)) << t.step;
    EXPECT_GE(t.values.size(), 3u) << lo << ".." << hi;
    EXPECT_LE(t.values.size(), 11u) << lo << ".." << hi;
    // Not more than one step of slack on either side.
    EXPECT_LT(lo - t.min, t.step + 1e-12);
    EXPECT_LT(t.max - hi, t.step + 1e-12);
  }
  Ticks epochs = NiceTicks(1, 12, 5, /*integers=*/true);
  EXPECT_LE(epochs.max, 15);  // not 0..20
}

TEST(TicksTest, IntegerTicksNeverStepBelowOne) {
  Ticks t = NiceTicks(1, 3, 10, /*integers=*/true);
  EXPECT_DOUBLE_EQ(t.step, 1);
  EXPECT_EQ(t.decimals, 0);
  EXPECT_EQ(FormatTick(t.values[1], t), absl::StrCat(t.min + 1));
}

TEST(TicksTest, DegenerateRangesAreWidened) {
  Ticks one = NiceTicks(0.5, 0.5, 5);
  EXPECT_LT(one.min, 0.5);
  EXPECT_GT(one.max, 0.5);
  Ticks nan = NiceTicks(std::nan(""), 3, 5);
  EXPECT_DOUBLE_EQ(nan.min, 0);
  EXPECT_DOUBLE_EQ(nan.max, 1);
  Ticks swapped = NiceTicks(10, 0, 3);
  EXPECT_DOUBLE_EQ(swapped.min, 0);
  EXPECT_DOUBLE_EQ(swapped.max, 10);
}

TEST(TicksTest, TicksWithinKeepTheRangeAndPutNiceValuesInside) {
  Ticks t = TicksWithin(0.78, 12.22, 6, /*integers=*/true);
  EXPECT_DOUBLE_EQ(t.min, 0.78);
  EXPECT_DOUBLE_EQ(t.max, 12.22);
  EXPECT_THAT(t.values, ElementsAre(2, 4, 6, 8, 10, 12));
  Ticks single = TicksWithin(3, 3, 4, true);
  EXPECT_LT(single.min, 3);
  EXPECT_GT(single.max, 3);
}

TEST(TicksTest, LabelsNeverReadMinusZeroAndUseExponentsForExtremes) {
  Ticks t = NiceTicks(-1, 1, 5);
  EXPECT_EQ(FormatTick(-1e-17, t), "0.0");
  EXPECT_EQ(FormatFixed(-0.0001, 2), "0.00");
  EXPECT_EQ(FormatFixed(std::nan(""), 2), "nan");
  Ticks tiny = NiceTicks(1e-6, 5e-6, 5);
  EXPECT_EQ(FormatTick(2e-6, tiny), "2e-06");
  Ticks huge = NiceTicks(0, 5e7, 5);
  EXPECT_EQ(FormatTick(2e7, huge), "2e+07");
}

// ---- PNG ----

uint32_t ReadU32(const std::string& s, size_t at) {
  return (static_cast<uint32_t>(static_cast<uint8_t>(s[at])) << 24) |
         (static_cast<uint32_t>(static_cast<uint8_t>(s[at + 1])) << 16) |
         (static_cast<uint32_t>(static_cast<uint8_t>(s[at + 2])) << 8) |
         static_cast<uint32_t>(static_cast<uint8_t>(s[at + 3]));
}

struct Chunk {
  std::string type;
  std::string data;
  bool crc_ok;
};

std::vector<Chunk> Chunks(const std::string& png) {
  std::vector<Chunk> chunks;
  size_t at = 8;
  while (at + 12 <= png.size()) {
    uint32_t length = ReadU32(png, at);
    Chunk c;
    c.type = png.substr(at + 4, 4);
    c.data = png.substr(at + 8, length);
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(png.data() + at + 4),
                4 + length);
    c.crc_ok = crc == ReadU32(png, at + 8 + length);
    chunks.push_back(c);
    at += 12 + length;
  }
  return chunks;
}

int PaethOf(int a, int b, int c) {
  int p = a + b - c;
  int pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

// Rows built so that each of the five PNG filters is the best one for some
// row (so a mistake in any filter shows up in the decoded pixels): random
// rows, then black (None), one colour (Sub), a copy of the row above (Up),
// the average of left and above (Average), the Paeth prediction (Paeth).
Canvas FilterCanvas(int w) {
  const size_t stride = static_cast<size_t>(w) * 3;
  std::mt19937 rng(7);
  std::vector<std::vector<int>> rows;
  auto random_row = [&] {
    std::vector<int> row(stride);
    for (int& v : row) v = static_cast<int>(rng() % 256);
    return row;
  };
  for (int round = 0; round < 2; ++round) {
    rows.push_back(random_row());
    rows.push_back(std::vector<int>(stride, 0));
    rows.push_back(std::vector<int>(stride, 100 + round));
    rows.push_back(random_row());
    rows.push_back(rows.back());
    rows.push_back(random_row());
    std::vector<int> average(stride);
    for (size_t i = 0; i < stride; ++i) {
      int left = i >= 3 ? average[i - 3] : 0;
      average[i] = (left + rows.back()[i]) / 2;
    }
    rows.push_back(average);
    rows.push_back(random_row());
    // A random first pixel: from a copy of the row above, Paeth would go
    // on copying it (and Up would win).
    std::vector<int> paeth = random_row();
    const std::vector<int>& up = rows.back();
    for (size_t i = 3; i < stride; ++i) {
      paeth[i] = PaethOf(paeth[i - 3], up[i], up[i - 3]);
    }
    rows.push_back(paeth);
  }
  Canvas canvas = Blank(w, static_cast<int>(rows.size()));
  for (size_t y = 0; y < rows.size(); ++y) {
    for (int x = 0; x < w; ++x) {
      const int* px = &rows[y][static_cast<size_t>(x) * 3];
      canvas.Set(x, static_cast<int>(y),
                 Color{static_cast<uint8_t>(px[0]), static_cast<uint8_t>(px[1]),
                       static_cast<uint8_t>(px[2])});
    }
  }
  return canvas;
}

TEST(PngTest, FileHasSignatureHeaderAndValidChunks) {
  Canvas c = FilterCanvas(37);
  const int h = c.height();
  auto png = EncodePng(c);
  ASSERT_TRUE(png.ok()) << png.status();
  ASSERT_EQ(png->substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  std::vector<Chunk> chunks = Chunks(*png);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].type, "IHDR");
  EXPECT_EQ(chunks[1].type, "IDAT");
  EXPECT_EQ(chunks[2].type, "IEND");
  for (const Chunk& chunk : chunks) EXPECT_TRUE(chunk.crc_ok) << chunk.type;
  const std::string& header = chunks[0].data;
  ASSERT_EQ(header.size(), 13u);
  EXPECT_EQ(ReadU32(header, 0), 37u);
  EXPECT_EQ(ReadU32(header, 4), static_cast<uint32_t>(h));
  EXPECT_EQ(header.substr(8), std::string("\x08\x02\x00\x00\x00", 5));

  // Inflate: a filter byte per row, and every filter type in use.
  std::string raw((37 * 3 + 1) * h, '\0');
  uLongf raw_size = raw.size();
  ASSERT_EQ(uncompress(reinterpret_cast<Bytef*>(raw.data()), &raw_size,
                       reinterpret_cast<const Bytef*>(chunks[1].data.data()),
                       chunks[1].data.size()),
            Z_OK);
  ASSERT_EQ(raw_size, raw.size());
  std::set<int> filters;
  for (int y = 0; y < h; ++y) {
    filters.insert(static_cast<uint8_t>(raw[y * (37 * 3 + 1)]));
  }
  EXPECT_THAT(filters, ElementsAre(0, 1, 2, 3, 4));
}

// Decodes `path` with python3-pil: "FORMAT MODE WIDTH HEIGHT SHA256" then
// one "R G B" line per (x, y) asked for.
std::vector<std::string> DecodeWithPil(const std::string& path,
                                       const std::vector<int>& xy) {
  const char* script =
      "import hashlib, sys\n"
      "from PIL import Image\n"
      "Image.open(sys.argv[1]).verify()\n"
      "im = Image.open(sys.argv[1]); im.load()\n"
      "print(im.format, im.mode, im.size[0], im.size[1],"
      " hashlib.sha256(im.tobytes()).hexdigest())\n"
      "for i in range(2, len(sys.argv), 2):\n"
      "    print(*im.getpixel((int(sys.argv[i]), int(sys.argv[i + 1]))))\n";
  std::vector<std::string> argv = {"/usr/bin/python3", "-c", script, path};
  for (int v : xy) argv.push_back(absl::StrCat(v));
  int status = -1;
  std::string out = testing::RunCommand(argv, &status);
  EXPECT_EQ(status, 0) << "python3-pil could not decode " << path
                       << " (is python3-pil installed? deploy/install-deps.sh)";
  return absl::StrSplit(out, '\n', absl::SkipEmpty());
}

TEST(PngTest, IndependentDecoderReadsTheSizeAndTheColoursDrawn) {
  testing::TempDir dir;
  Canvas c = Blank(64, 48);
  c.FillRect(Rect{10, 5, 20, 10}, kRed);
  c.Set(63, 47, kBlue);
  const std::string path = dir.Join("red.png");
  ASSERT_TRUE(WritePngFile(c, path).ok());
  std::vector<std::string> lines =
      DecodeWithPil(path, {15, 10, 29, 14, 30, 14, 5, 5, 63, 47});
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_THAT(lines[0], HasSubstr("PNG RGB 64 48"));
  EXPECT_EQ(lines[1], "255 0 0");
  EXPECT_EQ(lines[2], "255 0 0");
  EXPECT_EQ(lines[3], "255 255 255");  // just right of the rectangle
  EXPECT_EQ(lines[4], "255 255 255");
  EXPECT_EQ(lines[5], "0 0 255");
}

TEST(PngTest, IndependentDecoderReadsEveryPixelWhateverTheFilter) {
  testing::TempDir dir;
  Canvas c = FilterCanvas(101);
  const std::string path = dir.Join("noisy.png");
  ASSERT_TRUE(WritePngFile(c, path).ok());
  std::vector<std::string> lines = DecodeWithPil(path, {});
  ASSERT_EQ(lines.size(), 1u);
  std::string pixels(c.pixels().begin(), c.pixels().end());
  EXPECT_EQ(lines[0],
            absl::StrCat("PNG RGB 101 ", c.height(), " ", Sha256Hex(pixels)));
}

TEST(PngTest, WriteReplacesAtomicallyAndNamesThePathOnFailure) {
  testing::TempDir dir;
  const std::string path = dir.Join("out.png");
  std::ofstream(path) << "old";
  ASSERT_TRUE(WritePngFile(Blank(5, 5), path).ok());
  std::ifstream in(path, std::ios::binary);
  std::string head(4, '\0');
  in.read(head.data(), 4);
  EXPECT_EQ(head, "\x89PNG");
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1u) << "a temporary file was left behind";

  const std::string bad = dir.Join("no/such/dir/x.png");
  absl::Status status = WritePngFile(Blank(5, 5), bad);
  EXPECT_TRUE(absl::IsNotFound(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr(bad));
}

// ---- Line chart ----

LineChart RisingAndFalling() {
  LineChart chart;
  chart.title = "two runs";
  LinePanel panel;
  panel.title = "val_f1";
  panel.x_title = "epoch";
  panel.integer_x = true;
  panel.series.push_back({"up", {1, 2, 3, 4}, {0.1, 0.2, 0.3, 0.4}});
  panel.series.push_back({"down", {1, 2, 3, 4}, {0.4, 0.3, 0.2, 0.1}});
  chart.panels.push_back(panel);
  return chart;
}

TEST(LineChartTest, EachSeriesIsDrawnInItsColourAndDirection) {
  auto c = RenderLineChart(RisingAndFalling(), ChartOptions{600, 400, 1});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->width(), 600);
  EXPECT_EQ(c->height(), 400);
  Color up = SeriesColor(0), down = SeriesColor(1);
  EXPECT_GT(CountColor(*c, up), 200);
  EXPECT_GT(CountColor(*c, down), 200);
  // Below the legend: the rising line's left end is low, the falling one's
  // high.
  Rect legend_free{0, 60, 600, 340};
  Rect up_box = BoxOf(*c, up), down_box = BoxOf(*c, down);
  auto lowest_in_column = [&](Color color, int x) {
    int found = -1;
    for (int y = legend_free.y; y < legend_free.bottom(); ++y) {
      if (c->At(x, y) == color) found = y;
    }
    return found;
  };
  int left = up_box.right() - up_box.width + up_box.width / 10;
  int right = up_box.right() - up_box.width / 10;
  EXPECT_GT(lowest_in_column(up, left), lowest_in_column(up, right));
  EXPECT_LT(lowest_in_column(down, left), lowest_in_column(down, right));
  EXPECT_GT(down_box.width, 300);
}

TEST(LineChartTest, SeriesOrderFixesTheColours) {
  LineChart chart = RisingAndFalling();
  chart.series_order = {"down", "up"};
  auto c = RenderLineChart(chart, ChartOptions{600, 400, 1});
  ASSERT_TRUE(c.ok());
  // "down" now has the first colour: its pixels fall to the right.
  Rect box = BoxOf(*c, SeriesColor(0));
  EXPECT_GT(box.width, 300);
  int y_left = -1, y_right = -1;
  for (int y = 60; y < 400; ++y) {
    if (c->At(box.x + box.width / 10, y) == SeriesColor(0)) y_left = y;
    if (c->At(box.right() - box.width / 10, y) == SeriesColor(0)) y_right = y;
  }
  EXPECT_LT(y_left, y_right);
}

TEST(LineChartTest, NonFiniteValuesLeaveAGap) {
  LineChart chart;
  LinePanel panel;
  panel.series.push_back({"gap", {1, 2, 3}, {1, std::nan(""), 1}});
  panel.series.push_back({"ref", {1, 3}, {0, 0}});
  chart.panels.push_back(panel);
  auto c = RenderLineChart(chart, ChartOptions{500, 300, 1});
  ASSERT_TRUE(c.ok());
  Rect box = BoxOf(*c, SeriesColor(0));
  ASSERT_FALSE(box.empty());
  int middle = box.x + box.width / 2;
  // Below the legend, whose samples are drawn in the same colours.
  int in_middle = 0;
  for (int y = 60; y < 300; ++y) {
    in_middle += c->At(middle, y) == SeriesColor(0);
  }
  EXPECT_EQ(in_middle, 0) << "a NaN point was bridged";
  // The reference series without a gap is drawn across.
  int ref_middle = 0;
  for (int y = 60; y < 300; ++y) {
    ref_middle += c->At(middle, y) == SeriesColor(1);
  }
  EXPECT_GT(ref_middle, 0);
}

TEST(LineChartTest, ErrorsNameThePanelAndSeries) {
  LineChart chart;
  LinePanel panel;
  panel.title = "val_loss";
  panel.series.push_back({"run 3", {1, 2}, {1}});
  chart.panels.push_back(panel);
  auto c = RenderLineChart(chart, ChartOptions{});
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("val_loss"));
  EXPECT_THAT(c.status().message(), HasSubstr("run 3"));
  EXPECT_FALSE(RenderLineChart(LineChart{}, ChartOptions{}).ok());
  EXPECT_FALSE(RenderLineChart(RisingAndFalling(), ChartOptions{0, 10}).ok());
}

TEST(LineChartTest, EmptyPanelStillRenders) {
  LineChart chart;
  chart.panels.push_back(LinePanel{"nothing", "", "", {}, false});
  auto c = RenderLineChart(chart, ChartOptions{300, 200, 1});
  ASSERT_TRUE(c.ok());
  EXPECT_GT(CountColor(*c, kMutedTextColor), 20);  // "no data"
}

TEST(LineChartTest, PanelGridKeepsPanelsWiderThanTall) {
  EXPECT_EQ(PanelGrid(1, 1200, 800), std::make_pair(1, 1));
  EXPECT_EQ(PanelGrid(2, 1200, 700), std::make_pair(2, 1));
  EXPECT_EQ(PanelGrid(2, 600, 1200), std::make_pair(1, 2));
  EXPECT_EQ(PanelGrid(4, 1200, 800), std::make_pair(2, 2));
}

TEST(StyleTest, SeriesLookDistinct) {
  std::set<std::tuple<int, int, int, int>> looks;
  for (size_t i = 0; i < 40; ++i) {
    Color c = SeriesColor(i);
    looks.insert({c.r, c.g, c.b, static_cast<int>(SeriesMarker(i))});
  }
  EXPECT_EQ(looks.size(), 40u);
  std::set<std::tuple<int, int, int>> colors;
  for (size_t i = 0; i < kSeriesColorCount; ++i) {
    Color c = SeriesColor(i);
    colors.insert({c.r, c.g, c.b});
  }
  EXPECT_EQ(colors.size(), kSeriesColorCount);
}

TEST(StyleTest, HeatColorsDarkenAndTextStaysReadable) {
  double previous = 2;
  for (double t = 0; t <= 1.0001; t += 0.1) {
    double l = Luminance(HeatColor(t));
    EXPECT_LT(l, previous) << t;
    previous = l;
  }
  EXPECT_EQ(TextColorOn(HeatColor(1)), kWhite);
  EXPECT_EQ(TextColorOn(HeatColor(0)), kTextColor);
  EXPECT_EQ(AutoTextScale(640, 480), 1);
  EXPECT_EQ(AutoTextScale(1200, 800), 2);
  EXPECT_EQ(AutoTextScale(2400, 1800), 4);
}

// ---- Heat map ----

TEST(HeatMapTest, CellsAreColouredByValueOrRowShare) {
  HeatMap map;
  map.row_labels = {"a", "b"};
  map.column_labels = {"a", "b"};
  map.values = {{10, 10}, {1, 3}};
  map.color_bar = false;
  HeatMapLayout layout;
  auto c = RenderHeatMap(map, ChartOptions{400, 300, 1}, &layout);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_GT(layout.cell, 10);
  auto cell_color = [&](const Canvas& canvas, int r, int col) {
    return canvas.At(layout.grid.x + col * layout.cell + 1,
                     layout.grid.y + r * layout.cell + 1);
  };
  EXPECT_EQ(cell_color(*c, 0, 0), HeatColor(1.0));
  EXPECT_EQ(cell_color(*c, 1, 1), HeatColor(0.3));
  map.normalize_rows = true;
  auto n = RenderHeatMap(map, ChartOptions{400, 300, 1}, &layout);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(cell_color(*n, 0, 0), HeatColor(0.5));
  EXPECT_EQ(cell_color(*n, 1, 1), HeatColor(0.75));
  // The count is written in the cell, in white on the dark one (the
  // rectangle leaves out the white gap between cells).
  Rect cell{layout.grid.x + layout.cell, layout.grid.y + layout.cell,
            layout.cell - 1, layout.cell - 1};
  EXPECT_GT(CountColor(*n, kWhite, cell), 5);
}

TEST(HeatMapTest, RowBarsAreAlignedAndProportional) {
  HeatMap map;
  map.row_labels = {"x", "y"};
  map.column_labels = {"x", "y"};
  map.values = {{5, 1}, {2, 7}};
  map.row_bars = {1.0, 0.25};
  map.row_bar_title = "F1";
  HeatMapLayout layout;
  auto c = RenderHeatMap(map, ChartOptions{600, 300, 1}, &layout);
  ASSERT_TRUE(c.ok()) << c.status();
  auto bar_length = [&](int row) {
    int y = layout.grid.y + row * layout.cell + layout.cell / 2;
    return CountColor(*c, SeriesColor(1), Rect{0, y, 600, 1});
  };
  EXPECT_GT(bar_length(0), 40);
  EXPECT_NEAR(bar_length(1) * 4.0, bar_length(0), 4.0);
}

TEST(HeatMapTest, ColumnLabelsAreSideBySideWrappedOrTurned) {
  auto mode_for = [](const std::vector<std::string>& labels, int w, int h) {
    HeatMap map;
    map.row_labels = labels;
    map.column_labels = labels;
    map.values.assign(labels.size(), std::vector<double>(labels.size(), 1));
    HeatMapLayout layout;
    auto c = RenderHeatMap(map, ChartOptions{w, h, 1}, &layout);
    EXPECT_TRUE(c.ok()) << c.status();
    return layout.column_label_mode;
  };
  EXPECT_EQ(mode_for({"0", "1", "2"}, 500, 400), 0);
  EXPECT_EQ(mode_for({"wear/male/<30", "wear/female/<30", "normal/male/<30"},
                     350, 400),
            1);
  std::vector<std::string> long_names;
  for (int i = 0; i < 18; ++i) {
    long_names.push_back(absl::StrCat("incorrect/female/>=", 60 + i));
  }
  EXPECT_EQ(mode_for(long_names, 1000, 700), 2);
}

TEST(HeatMapTest, ErrorsNameTheRow) {
  HeatMap map;
  map.row_labels = {"a", "b"};
  map.column_labels = {"a", "b"};
  map.values = {{1, 2}, {3}};
  auto c = RenderHeatMap(map, ChartOptions{});
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("row 1 (b)"));
  map.values = {{1, 2}, {3, 4}};
  map.row_bars = {1};
  EXPECT_FALSE(RenderHeatMap(map, ChartOptions{}).ok());
  map.row_bars.clear();
  auto tiny = RenderHeatMap(map, ChartOptions{20, 20, 1});
  ASSERT_FALSE(tiny.ok());
  EXPECT_THAT(tiny.status().message(), HasSubstr("too small"));
}

// ---- Bar chart ----

TEST(BarChartTest, BarLengthsAreProportionalBothWays) {
  BarChart chart;
  chart.labels = {"half", "full"};
  chart.values = {0.5, 1.0};
  chart.colors = {kRed, kBlue};
  chart.axis_min = 0;
  chart.axis_max = 1;
  for (bool horizontal : {true, false}) {
    chart.horizontal = horizontal;
    auto c = RenderBarChart(chart, ChartOptions{500, 400, 1});
    ASSERT_TRUE(c.ok()) << c.status();
    Rect half = BoxOf(*c, kRed), full = BoxOf(*c, kBlue);
    int half_len = horizontal ? half.width : half.height;
    int full_len = horizontal ? full.width : full.height;
    EXPECT_GT(full_len, 100) << horizontal;
    EXPECT_NEAR(half_len * 2.0, full_len, 3.0) << horizontal;
  }
}

TEST(BarChartTest, Errors) {
  BarChart chart;
  EXPECT_FALSE(RenderBarChart(chart, ChartOptions{}).ok());
  chart.labels = {"a"};
  chart.values = {1, 2};
  auto c = RenderBarChart(chart, ChartOptions{});
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("1 labels but 2 values"));
}

}  // namespace
}  // namespace sweepq::plot
